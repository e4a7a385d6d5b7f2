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
    print(f"Old Faithful: {x.shape[0]} eruptions x {x.shape[1]} features ({', '.join(gp.datasets.info('old_faithful').columns)})")
    start = time.perf_counter()
    fit = gp.fit_em(x, 2, covariance_type="full", key=jax.random.key(0), n_init=10, tol=1e-10, max_iter=500, dtype="float64")
    seconds = time.perf_counter() - start
    print(f"\nML-EM, K=2, full covariance, 10 restarts: {int(fit.n_iter)} iterations, converged={bool(fit.converged)}, {seconds:.2f} s with compilation")
    _print_params(fit.params)
    print(f"mean log-likelihood per row: {float(fit.log_likelihood):.6f} (total {float(fit.log_likelihood) * x.shape[0]:.3f})")
    print(f"restart objectives: {np.round(np.asarray(fit.restart_objectives), 6)}")
    print(f"gradient norm at the fit (check_stationarity): {gp.check_stationarity(fit, x):.2e}")
    trace = np.asarray(fit.trace)[: int(fit.n_iter) + 1]
    print(f"objective never decreased: {bool(np.all(np.diff(trace) >= -1e-12))}")

    prior = gp.default_prior(x, 2)
    fit_map = gp.fit_em(x, 2, key=jax.random.key(0), n_init=10, prior=prior, tol=1e-10, max_iter=500, dtype="float64")
    print(f"\nMAP-EM under the default conjugate prior: {int(fit_map.n_iter)} iterations")
    _print_params(fit_map.params)
    print(f"mean log-likelihood {float(fit_map.log_likelihood):.6f}; mean log joint {float(fit_map.objective):.6f}")
    print(f"gradient norm of the log joint at the MAP fit: {gp.check_stationarity(fit_map, x):.2e}")

    km = gp.kmeans(x, 2, key=jax.random.key(0), n_init=10)
    agree = np.mean(np.asarray(km.labels) == np.argmax(np.asarray(gp.responsibilities(fit.params, x)), axis=1))
    agree = max(agree, 1 - agree)
    print(f"\nk-means (hard-assignment EM): centres {np.round(np.asarray(km.centers), 3).tolist()}, "
          f"labels agree with EM's most probable component on {agree:.1%} of rows")


def _print_params(params) -> None:
    for k in range(params.weights.shape[0]):
        cov = np.asarray(params.covariances[k])
        print(
            f"  component {k}: weight {float(params.weights[k]):.4f}  mean {np.round(np.asarray(params.means[k]), 4).tolist()}"
            f"  covariance {np.round(cov, 4).tolist()}"
        )


if __name__ == "__main__":
    main()
