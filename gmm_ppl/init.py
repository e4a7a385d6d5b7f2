"""Starting points for EM: centres chosen by k-means++, k-means or random rows, then a
hard assignment of every row to its nearest centre and one M-step from that assignment
(scikit-learn's recipe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gmm_ppl.covariance import CovarianceType
from gmm_ppl.kmeans import kmeans_plusplus, lloyd
from gmm_ppl.params import GMMParams
from gmm_ppl.stats import Chunks, m_step, spherical_unit, sufficient_statistics

INIT_METHODS = ("kmeans++", "kmeans", "random_from_data")

# Lloyd's iterations when EM starts from k-means: a start need not be a converged k-means.
KMEANS_INIT_MAX_ITER = 100
KMEANS_INIT_TOL = 1e-4


def params_from_centers(data: Chunks, centers, cov_type: CovarianceType, reg_covar) -> GMMParams:
    """Assign each row to its nearest centre and estimate weights, means and covariances
    of ``cov_type`` from that hard assignment (maximum likelihood)."""
    params, spherical = spherical_unit(centers)
    stats = sufficient_statistics(data, params, spherical, stats_type=cov_type, hard=True)
    return m_step(stats, centers, cov_type, reg_covar)


def initial_centers(key, data: Chunks, x, w, n_components: int, method: str):
    """(K, D) starting centres by ``method`` (one of ``INIT_METHODS``; traceable)."""
    if method == "random_from_data":
        p = (w > 0) / jnp.sum(w > 0)
        return x[jax.random.choice(key, x.shape[0], (n_components,), replace=False, p=p)]
    centers = kmeans_plusplus(key, x, w, n_components)
    if method == "kmeans":
        variance = jnp.sum(w[:, None] * (x - jnp.sum(w[:, None] * x, 0) / jnp.sum(w)) ** 2, 0) / jnp.sum(w)
        centers, _, _ = lloyd(data, centers, KMEANS_INIT_MAX_ITER, KMEANS_INIT_TOL * jnp.mean(variance))
    return centers
