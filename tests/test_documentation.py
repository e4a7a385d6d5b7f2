"""The Python blocks of the README and of the documentation's pages run, each page's blocks
in order in a namespace of the page's own, and what they say they give (the values in their
comments) is checked against the namespace after each block: the documentation cannot
drift from the code.

The numbers are mclust's (Old Faithful's VVV, G=2 log-likelihood -1130.264, so -4.155 per
row; its BIC search's choice EEE, G=3 with BIC -2314.3) or shapes and definitions the pages
state; each is compared with a computation of its own (SciPy, NumPy), not with the library.
This test also holds the check that select_model finds mclust's model on Old Faithful: the
selection page runs that search (every structure, K = 1..9, 10 restarts).
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import mclust_bic, scipy_log_likelihood

import gmm_ppl as gp

ROOT = Path(__file__).resolve().parent.parent
# The pages whose Python blocks run (each page's first block makes its own data).
PAGES = [
    "README.md",
    "docs/getting-started.md",
    "docs/cli.md",
    "docs/performance.md",
    "docs/model.md",
    "docs/selection.md",
]
# mclust 6.0.0 on Old Faithful: VVV, G=2 has log-likelihood -1130.264 (11 parameters);
# its default BIC search (G=1..9, 14 structures) picks EEE, G=3 at BIC -2314.3.
MCLUST_VVV2_LOGLIK = -1130.264
MCLUST_BEST, MCLUST_BEST_BIC = ("EEE", 3), -2314.3
N_FAITHFUL = 272


def check_readme_tour(ns):
    # fit.log_likelihood  # -4.155 per row: mclust's optimum, -1130.264 in all
    assert round(float(ns["fit"].log_likelihood), 3) == round(MCLUST_VVV2_LOGLIK / N_FAITHFUL, 3) == -4.155
    # idata = gp.sample_posterior(x, 2, key=1)  # ... an ArviZ InferenceData
    assert {"posterior", "sample_stats", "log_likelihood"} <= set(ns["idata"].groups())
    # table = gp.compare(fit, idata)  # EM beside the posterior, entry by entry (table.parameters)
    assert len(ns["table"].parameters) >= 2 + 2 * 2  # every weight and mean entry at least
    # sel.best  # ('EEE', 3): mclust's choice, BIC -2314.3 (mclust's sign: larger is better)
    sel = ns["sel"]
    assert sel.best == MCLUST_BEST
    best = sel.table.set_index(["covariance_type", "n_components"]).loc[MCLUST_BEST]
    assert abs(best.bic - MCLUST_BEST_BIC) <= 0.05, best.bic
    # gm = gp.GaussianMixture(n_components=3, covariance_type="tied").fit(x)  # scikit-learn's API
    gm, x = ns["gm"], ns["x"]
    assert gm.covariances_.shape == (2, 2)
    params = gp.GMMParams(gm.weights_, gm.means_, gm.covariances_)
    np.testing.assert_allclose(gm.score(x), scipy_log_likelihood(params, x, "tied").mean(), rtol=1e-5)


def check_saved_fit(ns):
    # gm.predict(...)  # the fit's labels ... (from the folder or its params.json)
    folder, gm = ns["folder"], ns["gm"]
    saved = pd.read_csv(folder / "fit" / "assignments.csv")
    np.testing.assert_array_equal(gm.predict(gp.datasets.load("old_faithful")), saved["component"])
    np.testing.assert_array_equal(gp.load(folder / "fit" / "params.json").means_, gm.means_)


def check_tour(ns):
    x, fit = ns["x"], ns["fit"]
    assert x.shape == (N_FAITHFUL, 2)  # (272, 2)
    # fit.log_likelihood  # mean per-row log-likelihood at fit.params (float32 by default:
    # SciPy's float64 value of the same parameters to float32 round-off of a 272-row sum)
    log_lik = scipy_log_likelihood(fit.params, x, "full")
    np.testing.assert_allclose(float(fit.log_likelihood), log_lik.mean(), rtol=N_FAITHFUL * 2**-23)
    # fit.trace  # objective after 0, 1, ..., n_iter M-steps (NaN-padded): the last is the
    # objective of the returned parameters, which without a prior is their log-likelihood.
    trace = np.asarray(fit.trace)
    np.testing.assert_allclose(trace[int(fit.n_iter)], log_lik.mean(), rtol=N_FAITHFUL * 2**-23)
    assert np.all(np.isnan(trace[int(fit.n_iter) + 1 :])) and not np.any(np.isnan(trace[: int(fit.n_iter) + 1]))
    # fit.restart_objectives  # final objective of every restart; fit.best_restart is the winner
    restarts = np.asarray(fit.restart_objectives)
    assert restarts.shape == (10,) and restarts[int(fit.best_restart)] == restarts.max()
    assert gp.log_likelihood(fit.params, x).shape == (N_FAITHFUL,)  # (272,)
    assert gp.component_log_prob(fit.params, x).shape == (N_FAITHFUL, 2)  # (272, 2)
    assert gp.responsibilities(fit.params, x).shape == (N_FAITHFUL, 2)  # (272, 2)


def check_devices_and_blocks(ns):
    # print(fit_mesh.log_likelihood, fit_disk.log_likelihood)  # -4.155 and -4.155
    expected = round(MCLUST_VVV2_LOGLIK / N_FAITHFUL, 3)
    assert expected == -4.155
    assert round(float(ns["fit_mesh"].log_likelihood), 3) == expected
    assert round(float(ns["fit_disk"].log_likelihood), 3) == expected


def check_default_prior(ns):
    # mclust's defaults: mean = column means, kappa = 0.01, dof = D + 2,
    # scale = cov(x) / K^(2/D), alpha = 1
    prior, x = ns["prior"], ns["x"]
    K, D = 2, x.shape[1]
    np.testing.assert_allclose(prior.mean, x.mean(axis=0), rtol=1e-12)
    assert float(prior.kappa) == 0.01 and float(prior.dof) == D + 2
    np.testing.assert_allclose(prior.scale, np.cov(x, rowvar=False) / K ** (2 / D), rtol=1e-12)
    np.testing.assert_array_equal(np.broadcast_to(prior.alpha, (K,)), 1.0)


def check_numpyro_model(ns):
    # both equal fit.log_likelihood * N (float32 here; ...): a float32 sum of 272 terms is
    # exact to 272 eps relative.
    total = float(ns["fit"].log_likelihood) * N_FAITHFUL
    for name in ("enumerated", "marginal"):
        np.testing.assert_allclose(float(ns[name]), total, rtol=N_FAITHFUL * 2**-23, err_msg=name)
    assert ns["simulated"]["x"]["value"].shape == (500, 2)  # (500, 2)


def check_estimator(ns):
    gm, x = ns["gm"], ns["x"]
    # gm.bic(x), gm.aic(x)  # smaller is better, scikit-learn's sign: -(2 log L - p log N)
    # with mclust's log L and p = 11 (2 weights - 1, 2 x 2 means, 2 x 3 covariance entries);
    # mclust's log L is given to 1e-3, so the BIC to 2e-3.
    p = 1 + 2 * 2 + 2 * 3
    np.testing.assert_allclose(gm.bic(x), -2 * MCLUST_VVV2_LOGLIK + p * np.log(N_FAITHFUL), rtol=0, atol=2e-3)
    np.testing.assert_allclose(gm.aic(x), -2 * MCLUST_VVV2_LOGLIK + 2 * p, rtol=0, atol=2e-3)
    X_new, z_new = ns["X_new"], ns["z_new"]
    assert X_new.shape == (100, 2) and z_new.shape == (100,)


def check_selection(ns):
    # sel.best  # ('EEE', 3): mclust's choice on Old Faithful, BIC -2314.3
    sel = ns["sel"]
    assert sel.best == MCLUST_BEST
    best = sel.table.set_index(["covariance_type", "n_components"]).loc[MCLUST_BEST]
    assert abs(best.bic - MCLUST_BEST_BIC) <= 0.05, best.bic  # as printed: to its last digit
    assert best.bic >= mclust_bic("old_faithful", *MCLUST_BEST)  # at least mclust's own, unrounded
    # sel.table  # log_likelihood, n_parameters, bic, aic, icl, singular, n_iter, ...
    columns = {"log_likelihood", "n_parameters", "bic", "aic", "icl", "singular", "n_iter"}
    assert columns <= set(sel.table.columns) and len(sel.table) == len(gp.covariance.DEFAULT_SELECTION) * 9
    assert len(ns["ax"].get_lines()) == len(gp.covariance.DEFAULT_SELECTION)  # one curve per structure
    # sel.wide_table()  # BIC as mclust prints it: K = 1..9 as rows, the 14 structures as columns, ...
    wide = sel.wide_table()
    assert list(wide.index) == list(range(1, 10)) and list(wide.columns) == list(gp.covariance.DEFAULT_SELECTION)
    assert len(wide.columns) == 14 and wide.loc[MCLUST_BEST[1], MCLUST_BEST[0]] == best.bic


def check_datasets(ns):
    assert gp.datasets.names() == ["diabetes", "old_faithful"]
    assert ns["x_db"].shape == (145, 3) and np.shape(ns["labels"]) == (145,)  # (145, 3), clinical class
    assert ns["x_sim"].shape == (500, 2) and ns["z_sim"].shape == (500,)


def check_variational(ns):
    # vbfit.params.weights  # E_q[pi]: two components hold 97% of the weight, three of the others < 0.1%
    vbfit, bgm, x = ns["vbfit"], ns["bgm"], ns["x"]
    weights = np.sort(vbfit.params.weights)[::-1]
    assert round(weights[:2].sum(), 2) == 0.97 and np.all(weights[3:] < 1e-3), weights
    assert vbfit.converged
    # vbfit.trace[: vbfit.n_iter]  # the ELBO after every iteration: never decreases
    trace = vbfit.trace[: vbfit.n_iter]
    assert np.all(np.diff(trace) >= -1e-10 * abs(trace[-1]))
    # vbfit.idata  # draws from q with sample_posterior's groups and dims
    assert {"posterior", "log_likelihood", "observed_data", "constant_data"} <= set(vbfit.idata.groups())
    # bgm = ...  # scikit-learn's fit: the same as scikit-learn's own, by scikit-learn
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = BayesianGaussianMixture(n_components=6, random_state=0).fit(x)
    np.testing.assert_allclose(bgm.means_, theirs.means_, rtol=1e-6)


# A check runs after the block that holds its marker (a line unique to that block).
CHECKS = {
    "table = gp.compare(fit, idata)": check_readme_tour,
    "gm = gp.load(folder": check_saved_fit,
    "gp.check_stationarity(fit, x)": check_tour,
    "print(fit_mesh.log_likelihood": check_devices_and_blocks,
    "prior = gp.default_prior(x, 2)": check_default_prior,
    "marginal, _ = marginal_log_density": check_numpyro_model,
    "X_new, z_new = gm.sample(100)": check_estimator,
    "vbfit = gp.fit_vb(": check_variational,
    "sel = gp.select_model(x, n_components=range(1, 10), key=0, n_init=10)": check_selection,
    "gp.datasets.names()": check_datasets,
}


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), flags=re.S)


def test_every_page_with_python_blocks_is_run():
    """A new page's examples cannot be left out of the run below by forgetting PAGES."""
    pages = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
    assert sorted(p for p in pages if python_blocks(p)) == sorted(PAGES)


def test_every_check_has_one_block():
    blocks = [block for page in PAGES for block in python_blocks(page)]
    found = {marker: sum(marker in block for block in blocks) for marker in CHECKS}
    assert found == dict.fromkeys(CHECKS, 1), "a checked block left the documentation, or its marker is not unique"


# One test a page (each page's first block makes its own data), so that the pages run on
# the suite's workers side by side: run as one test they took 190-200 s on one worker.
@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_documented_python_blocks_run_and_give_what_they_say(page):
    namespace: dict = {}
    blocks = python_blocks(page)
    assert blocks, f"{page} has no Python block: take it out of PAGES"
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page} python block {i + 1}", "exec"), namespace)
        for marker, check in CHECKS.items():
            if marker in block:
                check(namespace)


@pytest.mark.slow
def test_readme_command_lines_run(tmp_path, monkeypatch):
    """Every line of the README's command-line block runs as written (in-process, quietly, in
    an empty folder) and exits 0; each that names --out writes its report there."""
    import shlex

    from gmm_ppl.app.cli import main

    (block,) = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    lines = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert all(line.startswith("gmm-ppl ") for line in lines) and len(lines) >= 5
    monkeypatch.chdir(tmp_path)
    for line in lines:
        args = shlex.split(line)[1:]
        quiet = ["--quiet"] if args[0] in {"fit", "sample", "compare", "select", "run"} else []
        assert main([*args, *quiet]) == 0, line
        if "--out" in args:
            assert (tmp_path / args[args.index("--out") + 1] / "report.md").is_file(), line
