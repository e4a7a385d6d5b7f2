"""Starting points for EM: centres chosen by k-means++, k-means, random rows or Ward's
hierarchical clustering, then a hard assignment of every row to its nearest centre and one
M-step from that assignment (scikit-learn's recipe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import hc
from gmm_ppl.kmeans import kmeans_plusplus, lloyd, scaled_tolerance
from gmm_ppl.learners import EM
from gmm_ppl.params import GMMParams
from gmm_ppl.stats import Random

INIT_METHODS = ("kmeans++", "kmeans", "random_from_data", "random", "hierarchical", "mclust")

# Ward's linkage needs O(N^2) memory; above this many rows it runs on a random subset.
HIERARCHICAL_MAX_ROWS = 4000

# Lloyd's iterations when EM starts from k-means: a start need not be a converged k-means.
KMEANS_INIT_MAX_ITER = 100
KMEANS_INIT_TOL = 1e-4


def initial_params(
    key,
    learner: EM,
    statistics,
    x,
    w,
    n_components: int,
    method: str,
    active=None,
) -> GMMParams:
    """Starting parameters by ``method`` (traceable), from the passes over the rows that
    ``statistics`` makes (``driver.in_memory``; ``x`` and ``w`` are the same rows, for the
    seeding): 'random' estimates them from random responsibilities (scikit-learn's
    'random'); the others from the nearest-centre assignment to ``initial_centers``
    (``learner.init``). ``active`` (K,) bool: components used (the rest get weight 0)."""
    if method == "random":
        zeros = jnp.zeros((n_components, x.shape[1]), x.dtype)
        return learner.init(statistics, zeros, active, assign=Random(key))
    centers = initial_centers(key, statistics, x, w, n_components, method, active)
    return learner.init(statistics, centers, active)


def initial_centers(key, statistics, x, w, n_components: int, method: str, active=None):
    """(K, D) starting centres by ``method`` (one of ``INIT_METHODS``; traceable). With
    ``active``, the first centres drawn are the active ones (``active`` is a prefix)."""
    if method == "random_from_data":
        p = (w > 0) / jnp.sum(w > 0)
        return x[jax.random.choice(key, x.shape[0], (n_components,), replace=False, p=p)]
    centers = kmeans_plusplus(key, x, w, n_components)
    if method == "kmeans":
        tol = scaled_tolerance(x, w, KMEANS_INIT_TOL)
        centers = lloyd(statistics, centers, KMEANS_INIT_MAX_ITER, tol, active).params
    return centers


def hierarchical_centers(x: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """(K, D) centres of Ward's agglomerative clustering of the standardised rows.

    A deterministic start in the spirit of mclust's model-based hierarchical agglomeration;
    on some data (the diabetes data with K=3) it reaches the best optimum where most
    k-means++ starts stop at worse ones. Runs in NumPy/SciPy before compilation; above
    ``HIERARCHICAL_MAX_ROWS`` rows it clusters a random subset (``seed``) and the centres are
    the means of the subset's clusters.
    """
    # Imported here: SciPy's clustering (with scipy.spatial) took 0.34 s of every first call
    # that imports this module, fit_em's among them, for a start few fits use.
    from scipy.cluster.hierarchy import fcluster, ward

    rows = x
    if x.shape[0] > HIERARCHICAL_MAX_ROWS:
        rows = x[np.random.default_rng(seed).choice(x.shape[0], HIERARCHICAL_MAX_ROWS, replace=False)]
    spread = rows.std(axis=0)
    z = (rows - rows.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    labels = fcluster(ward(z), n_components, criterion="maxclust") - 1
    # Identical rows can leave fewer clusters than asked; a missing centre is the first row,
    # and a component whose centre duplicates another's starts with no rows of its own.
    centers = [rows[labels == k].mean(axis=0) if np.any(labels == k) else rows[0] for k in range(n_components)]
    return np.stack(centers)


# The starts that are one deterministic run per K (the same for every structure).
DETERMINISTIC_STARTS = ("hierarchical", "mclust")


def deterministic_starts(x, w, ks, init):
    """(means (len(ks), max K, D), labels (len(ks), N) or None) of the start ``init`` (one of
    ``DETERMINISTIC_STARTS``) for every K of ``ks``, components beyond K zero: Ward's
    centres ('hierarchical'), or mclust's classification and its classes' means ('mclust',
    ``gmm_ppl.hc``)."""
    N, D = x.shape
    means = np.zeros((len(ks), max(ks), D))
    if init == "hierarchical":
        for i, k in enumerate(ks):
            means[i, :k] = hierarchical_centers(x[w > 0], k)
        return means, None
    labels = np.zeros((len(ks), N), np.int32)
    for i, (k, (k_labels, k_means)) in enumerate(hc.starts(x, w, ks).items()):
        labels[i], means[i, :k] = k_labels, k_means
    return means, labels
