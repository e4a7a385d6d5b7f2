"""One voice (issue 34): every criterion a person reads, in the terminal, report.md,
comparison.md and the results folder's tables, is in one sign, mclust's (larger is better:
BIC = 2 log L - p log N), and each table that shows one names the direction in its header;
and a component table too wide for the terminal is printed turned.

The numbers are checked against computations that do not use the library's: the
log-likelihood by SciPy at the saved parameters, the free parameters counted by hand, and
mclust's BIC of the one deterministic fit (K = 1) from tests/mclust/reference.json.
"""

import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import mclust_bic, scipy_log_likelihood

import gmm_ppl as gp
from gmm_ppl.app import cards, pipeline
from gmm_ppl.app.cli import main, render
from gmm_ppl.compare import Comparison


def _vvv_parameters(k: int, d: int) -> int:
    """Free parameters of K full-covariance components in D dimensions, counted by hand."""
    return (k - 1) + k * d + k * d * (d + 1) // 2


def test_a_selection_folder_speaks_one_sign(tmp_path, capsys):
    data, out = tmp_path / "diabetes.csv", tmp_path / "sel"
    assert main(["datasets", "export", "diabetes", str(data)]) == 0
    args = ["select", str(data), "--k", "1..2", "--covariance-types", "VVV", "--n-init", "2", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    x = gp.datasets.load("diabetes")
    N, D = x.shape

    # selection.csv: 2 log L - p log N, p by hand; K = 1 (one answer) is mclust's own number.
    table = pd.read_csv(out / "selection.csv")
    assert list(table.n_parameters) == [_vvv_parameters(k, D) for k in table.n_components]
    np.testing.assert_allclose(table.bic, 2 * table.log_likelihood - table.n_parameters * math.log(N), rtol=1e-12)
    one = table[table.n_components == 1].iloc[0]
    assert one.bic == pytest.approx(mclust_bic("diabetes", "VVV", 1), abs=1e-6)

    # The chosen fit's BIC from SciPy's log-likelihood at the saved parameters.
    gm = gp.load(out)
    k = gm.n_components
    total = float(np.sum(scipy_log_likelihood(gp.GMMParams(gm.weights_, gm.means_, gm.covariances_), x, "full")))
    bic = 2 * total - _vvv_parameters(k, D) * math.log(N)
    assert bic < 0  # so a printed -2 log L + p log N could not pass for it
    best = table[table.n_components == k].iloc[0]
    assert best.bic == pytest.approx(bic, abs=1e-6) and best.bic == table.bic.max()

    # The same number, with the same sign, everywhere a person reads it.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fit"]["bic"] == pytest.approx(bic, abs=1e-6)
    report_md = (out / "report.md").read_text()
    for text in (stdout, report_md):
        assert f"BIC {bic:.2f} (2 log L - p log N" in text and "larger is better" in text
        assert "smaller is better" not in text
    # Headers: the grid's title, a line above the long table, report.md's column names.
    assert "Criteria in mclust's sign, larger is better: BIC = 2 log L - p log N" in stdout
    assert "BIC (larger is better) by K and structure" in stdout
    assert "| BIC (larger is better) | AIC (larger is better) | ICL (larger is better) |" in report_md
    grid = stdout.split("BIC (larger is better) by K and structure, as mclust prints it (NA: singular):\n\n")[1]
    printed = {int(line.split()[0]): float(line.split()[1]) for line in grid.splitlines()[1:3]}
    assert printed == {k: round(b, 1) for k, b in zip(table.n_components, table.bic, strict=True)}


def test_a_comparison_prints_bic_in_the_librarys_sign():
    """What is printed of a Comparison gives BIC in mclust's sign, as its summary holds it, and
    names the direction; nothing in the other sign (looic) is shown. (That gp.compare stores
    em_ml_bic as 2 log L - p log N, against mclust's number, is test_posterior's.)"""
    log_l, p, N, elpd = -1130.264, 11, 272, -1141.5
    summary = pd.DataFrame(
        {
            "value": pd.Series(
                {
                    "em_ml_log_likelihood": log_l,
                    "em_ml_bic": 2 * log_l - p * math.log(N),  # as gp.compare stores it
                    "n_parameters": p,
                    "elpd_loo": elpd,
                    "seconds_nuts": 1.5,  # a row the command line appends: kept as it is
                },
                dtype=object,
            )
        }
    )
    c = Comparison(pd.DataFrame({"mean": [0.5]}, index=pd.Index(["weights[0]"], name="parameter")), None, summary, 0.94)
    shown = c.readable_summary()["value"]
    assert shown["BIC em_ml (larger is better)"] == pytest.approx(2 * log_l - p * math.log(N), abs=1e-9)
    assert shown["elpd_loo (larger is better)"] == elpd and shown["seconds_nuts"] == 1.5
    assert not any("looic" in name or name == "em_ml_bic" for name in shown.index)
    for text in (c.to_markdown(), str(c)):
        assert "larger is better" in text and "BIC = 2 log L - p log N" in text
        assert "smaller is better" not in text and "looic" not in text
        assert f"{2 * log_l - p * math.log(N):.4g}" in text or f"{2 * log_l - p * math.log(N):.1f}" in text


@pytest.fixture(scope="module")
def wide_fit(tmp_path_factory):
    """A 2-component diagonal fit to 80 rows of 30 columns."""
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 1, (40, 30)), rng.normal(3, 1, (40, 30))])
    path = tmp_path_factory.mktemp("wide") / "wide.csv"
    names = [f"c{j}" for j in range(30)]
    pd.DataFrame(x, columns=names).to_csv(path, index=False)
    spec = cards.RunSpec(
        name="wide",
        description="30 columns",
        data=cards.DataSpec(path=path),
        model=cards.ModelSpec(n_components=2, covariance_type="diag"),
        em=cards.EMSpec(n_init=1, max_iter=200),
    )
    return pipeline.run(spec, quiet=True), names


def _component_block(text: str) -> list[str]:
    """The component table's lines: from its header to the first blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["component"])
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


def test_a_wide_component_table_is_turned_to_fit_the_terminal(wide_fit, monkeypatch):
    outcome, names = wide_fit
    f = outcome.fitted
    monkeypatch.setenv("COLUMNS", "100")
    text = render(outcome)
    block = _component_block(text)
    assert "(turned: one column per component; by component it is wider than 100 columns)" in text
    assert block[0].split() == ["component", "0", "1"] and all(len(line) <= 100 for line in block)
    rows = {re.split(r"\s{2,}", line.strip())[0]: line.split()[-2:] for line in block[1:]}
    assert list(rows) == ["weight", "rows"] + [f"mean {c}" for c in names] + [f"sd {c}" for c in names]
    for j, c in enumerate(names):
        np.testing.assert_allclose([float(v) for v in rows[f"mean {c}"]], f.params.means[:, j], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose([float(v) for v in rows["sd c0"]], np.sqrt(f.params.covariances[:, 0]), rtol=1e-3)

    # A terminal wide enough: by component, one row each.
    monkeypatch.setenv("COLUMNS", "2000")
    text = render(outcome)
    block = _component_block(text)
    assert "turned" not in text and len(block) == 3
    assert block[0].split()[:5] == ["component", "weight", "rows", "mean", "c0"]

    # No COLUMNS and no terminal (a file or a pipe): a pipe has no width, so it is not turned.
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr("sys.stdout", io.StringIO())
    text = render(outcome)
    assert "turned" not in text and len(_component_block(text)) == 3
