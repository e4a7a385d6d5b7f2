"""k-means, the lecture's special case of EM, and the seeding it shares with EM.

With equal weights, one shared spherical variance and hard (one-hot) responsibilities,
the E-step assigns each row to its nearest centre and the M-step moves each centre to the
mean of its rows: Lloyd's algorithm. ``lloyd`` runs exactly so: the ``KMeans`` learner
(``gmm_ppl.learners``) in the loop that runs EM (``gmm_ppl.driver``), on the same
``sufficient_statistics`` and ``m_step``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from gmm_ppl import _validate, driver, programs
from gmm_ppl.learners import KMeans
from gmm_ppl.random_draws import exponential_draws, restart_keys
from gmm_ppl.stats import default_chunk_size, map_rows, to_chunks


def kmeans_plusplus(key, x, w, n_clusters: int):
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): each new centre is a row drawn with
    probability proportional to its weight times its squared distance to the nearest centre
    so far. Zero-weight (padding) rows are never drawn; if every remaining distance is zero
    (all rows identical) the draw falls back to the weights alone.

    Each draw is an exponential race: with E_i ~ Exp(1) independent, row i has the largest
    p_i / E_i with probability p_i / sum(p) (the Gumbel-max trick without a logarithm of p).
    p is scaled to a largest value of 1, so p / E (E >= 6e-8) cannot overflow. It is
    elementwise work and one argmax, which split over devices with the rows, where
    ``jax.random.choice``'s cumulative sum did not (13 times slower on 4 devices). The E_i
    come from ``exponential_draws``.
    """
    n = x.shape[0]
    p0 = w / jnp.max(w)
    first = x[jnp.argmax(p0 / exponential_draws(key, 0, n, x.dtype))]
    centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, axis=1)

    def add_center(k, carry):
        centers, d2 = carry
        p = w * d2
        top = jnp.max(p)
        p = jnp.where(top > 0, p / jnp.where(top > 0, top, 1.0), p0)
        c = x[jnp.argmax(p / exponential_draws(key, k, n, x.dtype))]
        return centers.at[k].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, axis=1))

    centers, _ = jax.lax.fori_loop(1, n_clusters, add_center, (centers, d2))
    return centers


def scaled_tolerance(x, w, tol):
    """scikit-learn's k-means tolerance: ``tol`` times the mean per-feature variance."""
    mean = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
    return tol * jnp.mean(jnp.sum(w[:, None] * (x - mean) ** 2, axis=0) / jnp.sum(w))


def lloyd(statistics, centers, max_iter, tol, active=None) -> driver.LoopState:
    """Lloyd's iterations from ``centers`` until the squared centre shift is at most ``tol``,
    over the rows that ``statistics`` passes over (``driver.in_memory(chunks)``).

    Returns the loop's end: ``params`` the centres, ``value`` the last shift, ``converged``
    whether it was at most ``tol``. An empty
    cluster keeps its centre; centres left out by ``active`` (K,) bool take no rows.
    """
    return driver.run(KMeans(tol, active), statistics, centers, max_iter, driver.trace_capacity(max_iter))


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["centers", "labels", "inertia", "n_iter", "converged", "restart_inertias"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class KMeansResult:
    """Result of ``kmeans``.

    Attributes:
      centers: (K, D) cluster centres.
      labels: (N,) index of each row's nearest centre.
      inertia: () weighted sum of squared distances of rows to their centres.
      n_iter: () Lloyd iterations of the best restart.
      converged: () whether the centre shift fell to ``tol`` before ``max_iter``.
      restart_inertias: (n_init,) final inertia of every restart.
    """

    centers: jax.Array
    labels: jax.Array
    inertia: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    restart_inertias: jax.Array


def _kmeans_body(x, w, key, centers_init, tol, *, n_clusters, n_init, max_iter, chunk_size, seeded):
    shift = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
    xc = x - shift
    data = to_chunks(xc, w, chunk_size)
    statistics = driver.in_memory(data)
    learner = KMeans(scaled_tolerance(xc, w, tol))
    if seeded:
        starts = (centers_init - shift)[None]
    else:
        starts = jax.vmap(lambda k: kmeans_plusplus(k, xc, w, n_clusters))(restart_keys(key, n_init))

    def run(centers):
        end, _ = driver.finish(learner, statistics, lloyd(statistics, centers, max_iter, learner.tol))
        return end  # its value is now the inertia

    ends = jax.vmap(run)(starts)
    best = jnp.argmin(ends.value)
    best_centers = ends.params[best]
    labels = map_rows(
        lambda rows: jnp.argmin(jnp.sum((rows[:, None, :] - best_centers) ** 2, axis=-1), axis=1),
        data,
        x.shape[0],
    )
    return KMeansResult(
        best_centers + shift, labels, ends.value[best], ends.n_iter[best], ends.converged[best], ends.value
    )


_kmeans_program = programs.program(
    "kmeans", _kmeans_body, static_argnames=("n_clusters", "n_init", "max_iter", "chunk_size", "seeded")
)


def kmeans(
    x,
    n_clusters: int,
    *,
    key=None,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    centers_init=None,
    sample_weight=None,
    chunk_size: int | None = None,
    dtype="float32",
) -> KMeansResult:
    """Lloyd's k-means, as hard-assignment EM with one shared spherical variance.

    Args:
      x: (N, D) data.
      n_clusters: K.
      key: JAX PRNG key (or an int seed) for the k-means++ seeding; default key 0.
      n_init: restarts, run batched; the one with the smallest inertia is returned.
      max_iter: most Lloyd iterations per restart.
      tol: stop when the summed squared centre shift is at most ``tol`` times the mean
        per-feature variance of the data (scikit-learn's rule).
      centers_init: (K, D) starting centres instead of k-means++ (then one run).
      sample_weight: (N,) non-negative row weights.
      chunk_size: rows per chunk of the E-step (memory O(chunk * K * D)).
      dtype: 'float32' (default) or 'float64'.

    Example:
      >>> km = gp.kmeans(x, 2, key=jax.random.key(0), n_init=10)
      >>> km.centers, km.labels, km.inertia
    """
    x = _validate.as_data(x)
    K = _validate.check_int(n_clusters, "n_clusters")
    _validate.check_rows(x, K, "n_clusters")
    n_init = _validate.check_int(n_init, "n_init")
    max_iter = _validate.check_int(max_iter, "max_iter")
    tol = _validate.check_float(tol, "tol")
    w = _validate.check_sample_weight(sample_weight, x.shape[0])
    dtype = _validate.check_dtype(dtype)
    seeded = centers_init is not None
    if seeded:
        centers_init = _validate.check_means(centers_init, K, x.shape[1], "centers_init")
        n_init = 1
    if chunk_size is None:
        chunk_size = default_chunk_size(x.shape[0], K, x.shape[1], n_init)
    chunk_size = _validate.check_int(chunk_size, "chunk_size")
    key = _validate.as_key(key)
    with _validate.precision(dtype):
        cast = functools.partial(_validate.to_device, dtype=dtype)
        result = _kmeans_program(
            cast(x),
            cast(w),
            key,
            cast(centers_init),
            cast(tol),
            n_clusters=K,
            n_init=n_init,
            max_iter=max_iter,
            chunk_size=chunk_size,
            seeded=seeded,
        )
    return jax.device_get(result)  # NumPy, as fit_em
