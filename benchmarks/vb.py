"""Variational Bayes: gmm_ppl.BayesianGaussianMixture against scikit-learn's, the same work.
Run by hand:

    .venv/bin/python benchmarks/vb.py            # writes benchmarks/results/vb.md

The same work: float64 data (both compute in float64: scikit-learn follows the data's
dtype), the same start (scikit-learn's own k-means start from the same random_state; the
estimator takes it), one start, tol=0 so both run exactly max_iter iterations, and the fits
checked equal (means to 1e-6) and in float64 (scikit-learn's fitted arrays) before a time
is reported. Times are whole `fit` calls,
medians of rounds alternating the two systems; gmm_ppl's first call (its compilation) is
reported apart.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORKLOADS = [
    {"name": "V1", "N": 100_000, "D": 2, "K": 3, "covariance_type": "full"},
    {"name": "V2", "N": 200_000, "D": 8, "K": 8, "covariance_type": "full"},
    {"name": "V3", "N": 200_000, "D": 16, "K": 8, "covariance_type": "diag"},
]
MAX_ITER, ROUNDS = 20, 3


def data(N, D, K, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(K, D))
    return centres[rng.integers(K, size=N)] + rng.normal(size=(N, D))


def main() -> None:
    import sklearn
    from _machine import describe
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture as Theirs

    import gmm_ppl as gp

    warnings.simplefilter("ignore", ConvergenceWarning)
    lines = [
        "# Variational Bayes: gmm_ppl.BayesianGaussianMixture against scikit-learn's",
        "",
        describe(scikit_learn=sklearn.__version__, gmm_ppl=gp.__version__),
        "",
        f"`.venv/bin/python benchmarks/vb.py`. float64 data and arithmetic, Dirichlet-process weights, scikit-learn's "
        f"k-means start (random_state 0) for both, {MAX_ITER} iterations (tol=0), fits checked equal (means to 1e-6). "
        f"Seconds per whole `fit`, median of {ROUNDS} alternating rounds; gmm_ppl's first call, which compiles, apart.",
        "",
        "| workload | scikit-learn (s) | gmm_ppl (s) | ratio | the shared k-means start (s) | ratio without it | "
        "gmm_ppl first call (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in WORKLOADS:
        x = data(w["N"], w["D"], w["K"])
        options = dict(
            n_components=w["K"], covariance_type=w["covariance_type"], max_iter=MAX_ITER, tol=0.0, random_state=0
        )
        start = time.perf_counter()
        ours = gp.BayesianGaussianMixture(**options).fit(x)
        first = time.perf_counter() - start
        theirs = Theirs(**options).fit(x)
        # the same arithmetic: both computed in float64 (scikit-learn's fitted arrays show its precision)
        assert theirs.means_.dtype == theirs.covariances_.dtype == ours.means_.dtype == np.float64
        np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6, atol=1e-9)
        assert ours.n_iter_ == theirs.n_iter_ == MAX_ITER
        times = {"ours": [], "theirs": []}
        for _ in range(ROUNDS):
            for name, cls in (("theirs", Theirs), ("ours", gp.BayesianGaussianMixture)):
                start = time.perf_counter()
                cls(**options).fit(x)
                times[name].append(time.perf_counter() - start)
        t_theirs, t_ours = np.median(times["theirs"]), np.median(times["ours"])
        starts = []
        for _ in range(ROUNDS):
            begin = time.perf_counter()
            KMeans(n_clusters=w["K"], n_init=1, random_state=np.random.RandomState(0)).fit(x)
            starts.append(time.perf_counter() - begin)
        t_start = np.median(starts)
        label = f"{w['name']} {w['N']:.0e} x {w['D']}, K={w['K']} {w['covariance_type']}"
        lines.append(
            f"| {label} | {t_theirs:.3f} | {t_ours:.3f} | {t_theirs / t_ours:.1f}x | {t_start:.3f} | "
            f"{(t_theirs - t_start) / (t_ours - t_start):.1f}x | {first:.2f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Both fits include scikit-learn's k-means start (the estimator draws it with scikit-learn's code); its time, "
        "measured alone, is taken from both for the last ratio.",
        "",
    ]
    (HERE / "results" / "vb.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
