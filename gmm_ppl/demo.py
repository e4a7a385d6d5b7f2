"""The demo behind `make demo`: EM on Old Faithful, ML and MAP, with the checks printed.

Run with ``python -m gmm_ppl.demo``. (The `gmm-ppl` command line will take this over.)
"""

from __future__ import annotations

import time

import jax
import numpy as np

import gmm_ppl as gp


def main() -> None:
    x = gp.datasets.load("old_faithful")
    columns = gp.datasets.info("old_faithful").columns
    print(f"Old Faithful: {x.shape[0]} eruptions x {x.shape[1]} features ({', '.join(columns)})")

    start = time.perf_counter()
    fit = gp.fit_em(x, 2, key=jax.random.key(0), n_init=10, tol=1e-10, max_iter=500, dtype="float64")
    seconds = time.perf_counter() - start
    print(f"\nML-EM, K=2, full covariances, 10 batched restarts ({seconds:.1f} s including compilation)")
    _print_fit(fit, x)

    fit_map = gp.fit_em(
        x, 2, key=jax.random.key(0), n_init=10, prior="default", tol=1e-10, max_iter=500, dtype="float64"
    )
    print("\nMAP-EM under the default conjugate prior (Dirichlet + Normal-Inverse-Wishart)")
    _print_fit(fit_map, x)
    print(f"  mean log joint per row:        {float(fit_map.objective):.6f}")

    km = gp.kmeans(x, 2, key=jax.random.key(0), n_init=10)
    em_labels = np.argmax(gp.responsibilities(fit.params, x), axis=1)
    agree = np.mean(km.labels == em_labels)
    print("\nk-means (hard-assignment EM with one shared spherical variance)")
    for k, center in enumerate(np.asarray(km.centers)):
        print(f"  centre {k}: {np.array2string(center, precision=3)}")
    print(f"  labels agree with EM's most probable component on {max(agree, 1 - agree):.1%} of rows")


def _print_fit(fit, x) -> None:
    for k in range(fit.params.weights.shape[0]):
        print(
            f"  component {k}: weight {fit.params.weights[k]:.4f}  "
            f"mean {np.array2string(fit.params.means[k], precision=4)}  "
            f"covariance {np.array2string(fit.params.covariances[k], precision=4).replace(chr(10), '')}"
        )
    n = int(fit.n_iter)
    rises = np.diff(fit.trace[: n + 1])
    print(f"  iterations: {n}, converged: {bool(fit.converged)}")
    print(
        f"  mean log-likelihood per row:   {float(fit.log_likelihood):.6f}  (total {fit.log_likelihood * len(x):.3f})"
    )
    print(f"  best of restarts: {np.array2string(np.sort(fit.restart_objectives)[::-1][:3], precision=6)} ...")
    print(
        f"  objective trace: {fit.trace[0]:.6f} -> {fit.trace[n]:.6f}; largest dip {min(rises.min(), 0):.1e} "
        "(reg_covar nudges each M-step off the exact maximiser; with reg_covar=0 EM never dips)"
    )
    print(f"  gradient norm at the fit (check_stationarity): {gp.check_stationarity(fit, x):.1e}")


if __name__ == "__main__":
    main()
