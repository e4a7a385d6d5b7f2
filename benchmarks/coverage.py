"""How often each method's nominal 90% intervals hold the truth: ML-EM's Wald intervals
(observed information) and bootstrap percentiles, variational Bayes' and NUTS's posterior
intervals, over data sets drawn from known parameters. Run by hand:

    .venv/bin/python benchmarks/coverage.py             # writes benchmarks/results/coverage.md
    .venv/bin/python benchmarks/coverage.py --replicates 20 --out /tmp/coverage.md

The truth: two overlapping full-covariance components in two dimensions (the means 2.6
standard deviations apart along the first axis), 200 rows per data set. Every method fits
K=2, full covariances; VB and NUTS under the same prior (``default_prior``); MAP-EM gives a
point only. An interval of a Bayesian method is the equal-tailed 90% interval of its draws
(4000 from q; 2 chains of 500 from NUTS after 500 warm-up draws). Components are matched to
the truth's by their means (the assignment with the smaller squared distance), per method
and data set. "Error" is the root mean square error of the point estimate (ML, MAP, the
posterior means) over the data sets; "width" the mean width of the intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gmm_ppl as gp  # noqa: E402

LEVEL = 0.9
N_ROWS = 200
TRUTH = gp.GMMParams(
    weights=np.array([0.4, 0.6]),
    means=np.array([[0.0, 0.0], [2.6, 0.5]]),
    covariances=np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.2]]]),
)
METHODS = ("ml_wald", "ml_bootstrap", "map", "vb", "nuts")


def entries(params: gp.GMMParams) -> dict[str, float]:
    """The free entries by name: weights[0], the means, each covariance's upper triangle."""
    w, m, c = (np.asarray(a, np.float64) for a in params)
    out = {"weights[0]": w[0]}
    for k in range(m.shape[0]):
        for d in range(m.shape[1]):
            out[f"means[{k},{d}]"] = m[k, d]
    for k in range(c.shape[0]):
        for d in range(c.shape[1]):
            for e in range(d, c.shape[2]):
                out[f"covariances[{k},{d},{e}]"] = c[k, d, e]
    return out


def _order(means) -> np.ndarray:
    """The permutation of two components that matches their means to the truth's."""
    straight = np.sum((means - TRUTH.means) ** 2)
    swapped = np.sum((means[::-1] - TRUTH.means) ** 2)
    return np.array([0, 1]) if straight <= swapped else np.array([1, 0])


def _permuted(params, order) -> gp.GMMParams:
    return gp.GMMParams(*(np.asarray(a)[order] for a in params))


def _from_draws(draws: dict, order):
    """(point, low, high) entries of draws (S, K, ...) in the truth's component order."""
    flat = [
        entries(gp.GMMParams(*(draws[n][s][order] for n in ("weights", "means", "covariances"))))
        for s in range(len(draws["weights"]))
    ]
    names = list(flat[0])
    table = np.array([[f[n] for n in names] for f in flat])
    low, high = np.quantile(table, [0.5 - LEVEL / 2, 0.5 + LEVEL / 2], axis=0)
    return (dict(zip(names, values, strict=True)) for values in (table.mean(0), low, high))


def replicate(seed: int, methods=METHODS) -> dict:
    """One data set: per method, (point, low, high) entries in the truth's labelling, and the
    seconds it took."""
    rng = np.random.default_rng(seed)
    z = rng.choice(2, size=N_ROWS, p=TRUTH.weights)
    chol = np.linalg.cholesky(TRUTH.covariances)
    x = TRUTH.means[z] + np.einsum("nde,ne->nd", chol[z], rng.standard_normal((N_ROWS, 2)))
    prior = gp.default_prior(x, 2)
    out = {}
    start = time.perf_counter()
    ml = gp.fit_em(x, 2, n_init=5, key=seed, dtype="float64", tol=1e-9, max_iter=2000)
    order = _order(ml.params.means)
    ml_time = time.perf_counter() - start
    intervals = {
        "ml_wald": lambda: gp.em_standard_errors(ml, x).intervals(ml, LEVEL),
        "ml_bootstrap": lambda: gp.bootstrap_em(ml, x, 200, key=seed).intervals(LEVEL),
    }
    for method, interval in intervals.items():
        if method in methods:
            start = time.perf_counter()
            low, high = interval()
            seconds = ml_time + time.perf_counter() - start
            out[method] = (*(entries(_permuted(p, order)) for p in (ml.params, low, high)), seconds)
    if "map" in methods:
        start = time.perf_counter()
        fit = gp.fit_em(x, 2, n_init=5, key=seed, dtype="float64", tol=1e-9, max_iter=2000, prior=prior)
        point = entries(_permuted(fit.params, _order(fit.params.means)))
        out["map"] = (point, None, None, time.perf_counter() - start)
    if "vb" in methods:
        start = time.perf_counter()
        fit = gp.fit_vb(x, 2, prior=prior, n_init=5, key=seed, tol=1e-9, max_iter=2000, n_draws=0)
        draws = gp.vb.draw_q(fit.q, "full", "dirichlet", 4000, np.random.default_rng(seed))
        out["vb"] = (*_from_draws(draws, _order(fit.params.means)), time.perf_counter() - start)
    if "nuts" in methods:
        start = time.perf_counter()
        idata = gp.sample_posterior(
            x,
            2,
            prior=prior,
            key=seed,
            num_warmup=500,
            num_samples=500,
            num_chains=2,
            log_likelihood=False,
            modes=1,
            progress=False,
        )
        draws = {
            n: idata.posterior[n].values.reshape(-1, *idata.posterior[n].shape[2:])
            for n in ("weights", "means", "covariances")
        }
        order_nuts = _order(draws["means"].mean(0))
        out["nuts"] = (*_from_draws(draws, order_nuts), time.perf_counter() - start)
    return out


def summarise(results: list[dict]) -> dict:
    """Per method and entry group: coverage, mean width and RMSE over the data sets."""
    truth = entries(TRUTH)
    groups = {
        "weights": ["weights[0]"],
        "means": [n for n in truth if n.startswith("means")],
        "covariances": [n for n in truth if n.startswith("covariances")],
    }
    summary = {}
    for method in results[0]:
        row = {}
        for group, names in groups.items():
            points = np.array([[r[method][0][n] for n in names] for r in results])
            row[f"{group}_rmse"] = float(np.sqrt(np.mean((points - [truth[n] for n in names]) ** 2)))
            if results[0][method][1] is not None:
                low = np.array([[r[method][1][n] for n in names] for r in results])
                high = np.array([[r[method][2][n] for n in names] for r in results])
                inside = (low <= [truth[n] for n in names]) & ([truth[n] for n in names] <= high)
                row[f"{group}_coverage"] = float(inside.mean())
                row[f"{group}_width"] = float(np.mean(high - low))
        row["seconds"] = float(np.median([r[method][3] for r in results]))
        summary[method] = row
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "coverage.md")
    args = parser.parse_args(argv)
    import numpyro
    from _machine import describe

    warnings.simplefilter("ignore")
    results = [replicate(seed) for seed in range(args.replicates)]
    summary = summarise(results)
    lines = [
        "# Coverage of nominal 90% intervals: EM's Wald and bootstrap, VB, NUTS",
        "",
        describe(numpyro=numpyro.__version__, gmm_ppl=gp.__version__),
        "",
        f"`.venv/bin/python benchmarks/coverage.py --replicates {args.replicates}`: {args.replicates} data sets of "
        f"{N_ROWS} rows from two overlapping full-covariance components in 2-D (truth in the script), K=2 fitted by "
        "each method; VB and NUTS under `default_prior`. Coverage: the share of (data set, entry) pairs whose "
        "interval holds the true value (the nominal is 0.90; with this many data sets a coverage has a standard "
        f"error of about {np.sqrt(0.09 / args.replicates / 1):.2f} per entry, less pooled over a group's entries). "
        "Width: the intervals' mean width. RMSE: of the point estimate (ML, MAP, the posterior means). Seconds: "
        "median per data set.",
        "",
        "| method | weights coverage | means coverage | covariances coverage | weights width | means width | "
        "covariances width | weights RMSE | means RMSE | covariances RMSE | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        cells = [row.get(f"{g}_coverage") for g in ("weights", "means", "covariances")]
        cells += [row.get(f"{g}_width") for g in ("weights", "means", "covariances")]
        cells += [row[f"{g}_rmse"] for g in ("weights", "means", "covariances")] + [row["seconds"]]
        lines.append(f"| {method} | " + " | ".join("—" if c is None else f"{c:.3f}" for c in cells) + " |")
    vb, nuts = summary["vb"], summary["nuts"]
    lines += [
        "",
        "VB against NUTS, the same model and prior: VB's intervals are "
        + ", ".join(
            f"{vb[f'{g}_width'] / nuts[f'{g}_width']:.2f}x as wide for the {g}"
            for g in ("weights", "means", "covariances")
        )
        + ".",
        "",
        "```json",
        json.dumps(summary, indent=1),
        "```",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
