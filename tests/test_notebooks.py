"""Every notebook in notebooks/ runs top to bottom in quick mode (GMM_PPL_QUICK=1).

The notebooks are executed in a fresh kernel from a copy read here; their outputs are never
written back (`make notebooks` re-executes them at full size and saves the outputs). A cell
that raises fails the test with nbclient's CellExecutionError, which names the cell.

The numbers docs/notebooks.md quotes from a notebook are those of its committed (full-size) run:
they are checked against the saved outputs here, and the claims that do not depend on the
machine's round-off are checked on runs of the test suite's own (tests/test_posterior.py).
"""

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))

# A cell run after the notebook's own, in quick mode: what the notebook's prose says of its
# results, asserted on the kernel's variables (no computation of its own: milliseconds).
CHECKS = {
    "04_em_against_nuts.ipynb": """
assert int(idata.sample_stats["diverging"].sum()) == 0
assert table["ml_in_hdi"].all() and table["map_in_hdi"].all(), table  # EM inside its 94% HDIs
assert labels_differ == 0  # the posterior's labels are EM's
# MAP-EM's log joint (the notebook's, in float32) is its own objective (float64), to float32's
# round-off over N rows: eps 6e-8 times 272 is 1.6e-5 relative.
assert abs(log_joint_map - float(map_fit.objective) * N) < 2e-5 * abs(log_joint_map)
assert (log_joint_draws < log_joint_map).all()  # no draw above MAP-EM
""",
    "06_four_ways.ipynb": """
assert np.all(np.diff(elbo) >= -1e-9 * abs(elbo[-1]))  # the ELBO never decreases
assert 0.75 < ratio.min() and ratio.max() < 1.25, ratio  # Old Faithful: VB's sds are NUTS's (0.94-1.02 committed)
assert db_ratio.median() < 1, db_ratio  # the bio-assay data: VB narrower than NUTS (median 0.83 committed)
assert sim_ratio.median() < 0.8, sim_ratio  # overlapping components: VB too narrow (0.55 committed)
weights = np.sort(dp.params.weights)[::-1]
assert weights[:2].sum() > 0.95 and (weights > 0.01).sum() <= 3, weights  # the sticks empty out
""",
}


# slow: a kernel per notebook, about 20 s each; `make test` (and CI) runs them, plain pytest not.
@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits this process's environment when it starts.
    monkeypatch.setenv("GMM_PPL_QUICK", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    if path.name in CHECKS:
        nb.cells.append(nbformat.v4.new_code_cell(CHECKS[path.name]))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell


def _printed(path) -> str:
    """Everything the code cells of a committed notebook printed, as saved."""
    nb = nbformat.read(path, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"the notebook no longer prints {pattern!r}"
    return match.groups()


def test_the_docs_quote_notebook_4s_committed_outputs():
    """The notebooks page's description of notebook 4 states numbers of its committed run (they
    depend on the machine's round-off, so no other run can check them): each must be what the
    saved outputs print, rounded as the page rounds it."""
    printed = _printed(NOTEBOOKS / "04_em_against_nuts.ipynb")
    readme = " ".join((ROOT / "docs" / "notebooks.md").read_text().split())  # line breaks as spaces
    start = readme.index("`04_em_against_nuts.ipynb`")
    described = readme[start : readme.index("`05_", start)]

    # "Four chains started from prior draws settle two in each labelling (raw r_hat 1.74, relabelled 1.00"
    (swapped,) = _number(r"labels were swapped: \[([^\]]*)\]", printed)
    assert sorted(float(s) for s in swapped.split(",")) == [0.0, 0.0, 1.0, 1.0]
    assert "two in each labelling" in described
    raw, relabelled = (float(v) for v in _number(r"raw draws ([\d.]+), relabelled ([\d.]+)", printed))
    assert f"raw r_hat {raw:.2f}, relabelled {relabelled:.2f}" in described
    # "every ML-EM and MAP-EM entry lies in its 94% HDI"
    ml, ml_of, mp, mp_of = _number(r"94% HDI: (\d+) of (\d+) entries; MAP-EM: (\d+) of (\d+)", printed)
    assert ml == ml_of and mp == mp_of
    assert "every ML-EM and MAP-EM entry lies in its 94% HDI" in described
    # "one ambiguous eruption between the clusters"
    assert _number(r"ambiguous rows: (\d+) of", printed) == ("1",)
    assert "one ambiguous eruption" in described
    # "no draw's log joint above MAP-EM's"
    assert _number(r"draws above MAP-EM: (\d+)", printed) == ("0",)
    assert "no draw's log joint above MAP-EM's" in described
    # "BIC picks 2, LOO ranks 3 first by 2.8 with standard error 3.2"
    bic, loo = _number(r"BIC chooses K=(\d+); LOO ranks K=(\d+) first", printed)
    gap, se = _number(r"LOO's margin over K=\d+: ([\d.]+) with standard error ([\d.]+)", printed)
    assert f"BIC picks {bic}, LOO ranks {loo} first by {gap} with standard error {se}" in described
    # "the 94% HDIs cover 78 of 88 entries, ML-EM's error within 2 posterior sd in 82 of 88"
    covered, total = _number(r"covers the truth in (\d+) of (\d+)", printed)
    within, total_again = _number(r"within 2 posterior sd of the truth: (\d+) of (\d+)", printed)
    assert f"cover {covered} of {total} entries" in described
    assert f"within 2 posterior sd in {within} of {total_again}" in described


def test_the_docs_quote_notebook_6s_committed_outputs():
    """The notebooks page's description of notebook 6 states numbers of its committed run: each must be
    what the saved outputs print."""
    printed = _printed(NOTEBOOKS / "06_four_ways.ipynb")
    readme = " ".join((ROOT / "docs" / "notebooks.md").read_text().split())
    start = readme.index("`06_four_ways.ipynb`")
    described = readme[start : readme.index("```bash", start)]
    low, high = _number(r"VB's sd over NUTS's, per entry: from ([\d.]+) to ([\d.]+)", printed)
    assert f"VB's sds {low} to {high} times NUTS's" in described
    weights, median = _number(r"VB's sd over NUTS's: weights ([\d.]+)  median over the 11 entries ([\d.]+)", printed)
    assert f"{weights} times NUTS's for the weight, a median {median}" in described
    low, high, median = _number(r"on the bio-assay data: from ([\d.]+) to ([\d.]+) , median ([\d.]+)", printed)
    assert f"VB's sds {low} to {high} times NUTS's (median {median})" in described
    wald, boot = _number(r"medians: standard error ([\d.]+) , bootstrap sd ([\d.]+)", printed)
    assert f"EM's standard errors a median {wald} and its bootstrap's {boot}" in described
    assert _number(r"components above 1%: (\d+)", printed) == ("3",) and "three components above 1%" in described
