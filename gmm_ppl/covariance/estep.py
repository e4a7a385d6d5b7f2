"""The E-step's forms, one record per family (full, tied, diag, spherical).

A record gives a precision factor derived once per iteration, half the log-determinant of
the precision per component, the squared Mahalanobis distances and the second moments
around the means weighted by responsibilities, reduced to the family's shape. The
distances come in three layouts: of differences ``diff`` (n, K, D), for the densities of
``gmm_ppl.likelihood``; of a chunk's rows stored as columns, for EM's E-step
(``gmm_ppl.stats.Chunks``); and written out per component and feature, for few of them
(``gmm_ppl.stats.written_out``). The moments come in the last two layouts.

mclust's parameterisations other than scikit-learn's four share the E-step of the family
whose storage shape they have: they differ only in their M-step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from gmm_ppl.covariance._linalg import cholesky_precision


class EStep(NamedTuple):
    precision_factor: Callable  # covariances -> factor used by the E-step
    half_log_det: Callable  # (factor, K, D) -> (K,) half log-determinant of precision
    mahalanobis: Callable  # (diff (n, K, D), factor) -> (n, K)
    # The E-step's forms, on a chunk's rows stored as columns (see ``gmm_ppl.stats.Chunks``):
    # (means (K, D), factor) -> a function of x (D, n) giving (K, n). The outer call does the
    # work that depends only on the parameters, once per pass, outside the loop over chunks:
    # XLA:CPU did not hoist it out of the loop itself (W3: 2% of the E-step's kernel time).
    mahalanobis_cols: Callable
    second_moment_cols: Callable  # (x (D, n), means (K, D), rw (K, n)) -> reduced sum rw d d^T, d = x - m
    # The same two, written out per component and feature on row vectors for few
    # components and features (see ``gmm_ppl.stats.written_out``):
    mahalanobis_rows: Callable  # (diff_k: D rows (n,), factor, k) -> (n,)
    second_moment_rows: Callable  # (diff: K lists of D rows, rw: K rows) -> as second_moment_cols


def _sum(terms):
    return functools.reduce(jnp.add, terms)


def _quadratic_rows(diff, f):
    """sum_e (sum_d diff_d f_de)^2 for rows diff_d; ``f`` is upper triangular
    (``cholesky_precision``), so only d <= e contribute."""
    return _sum([_sum([diff[d] * f[d, e] for d in range(e + 1)]) ** 2 for e in range(len(diff))])


def _moment_rows(rw, diff):
    """(D, D) sum_i rw_i diff_id diff_ie, each pair once."""
    weighted = [rw * row for row in diff]
    moments = [[None] * len(diff) for _ in diff]
    for d in range(len(diff)):
        for e in range(d, len(diff)):
            moments[d][e] = moments[e][d] = jnp.sum(weighted[d] * diff[e])
    return jnp.stack([jnp.stack(row) for row in moments])


# Most features for which ``_full_distances`` is written out per feature rather than made
# as a matmul. E-step alone, the two forms alternated in one process (medians of 7, 2 cores,
# K=16): D=4 (N=1e6) 77 against 113 ms; D=8 (issue 5's W2) 135 against 199 ms; D=12 (N=4e5)
# 111 against 125 ms; D=16 132 against 163 ms. With more features the matmul wins: D=24,
# K=32 (N=2e5) 270 against 299 ms; D=32 (W3) 449 against 516 ms.
ELEMENTWISE_MAX_FEATURES = 16
# Components whose F_k^T x ``_full_distances`` makes in one matmul, above 16 features. A
# chunk's (K, D, n) array holds about CHUNK_ELEMENTS numbers (``gmm_ppl.stats``), 2 MB, so a
# half product of 4 components takes 128 KB at K=32 and stays in cache until it is squared.
# E-step alone against all K in one matmul, alternated in one process (medians of 11-15): W3
# (D=32, K=32) 428 against 459 ms and 427 against 483 ms; D=20, K=16 184 against 194 ms;
# D=64, K=16 362 against 375 ms; D=24, K=32 level (279 against 281 ms). Groups of 2 were
# slower (W3 601 ms), of 8 no faster (D=24: 335 ms).
COMPONENTS_PER_PRODUCT = 4


def _full_distances(means, f):
    """The function of x (D, n) giving (K, n) |f_k^T (x_i - m_k)|^2 for its columns x_i.

    Up to ELEMENTWISE_MAX_FEATURES features it is written out per feature, as
    ``_quadratic_rows`` on rows that hold all K components, (K, n) each: D (D + 1) / 2
    multiply-adds of such rows, which XLA:CPU fuses into one vectorised loop.

    With more features the products f_k^T x of COMPONENTS_PER_PRODUCT components at a time
    are one matmul, which XLA:CPU runs at matmul speed; the batched form (one small (D, D)
    product per component) ran 2 to 3 times slower (issue 5's W2, W3), and all K components
    in one matmul up to 12% slower at D >= 20. And f_k is upper triangular
    (``cholesky_precision``), so the first D/2 entries of f_k^T x involve only the first
    D/2 features: the matmul is made in two halves and skips that zero quarter (the E-step
    then took 4 to 12% less CPU time on W2 and W3; three or four blocks were no better
    on W3 and slower on W2). The squares are summed over features as adds of (K, n) rows
    rather than by a reduction, which XLA:CPU fused into the matmul's kernel: the E-step
    at D=24, K=32 took 270 against 320 ms (medians of 7) and 282 against 316 ms (of 11);
    on W3 the two were level (449 against 473, 495 against 491 ms).
    On data centred at its mean (as EM's is), subtracting f_k^T m_k afterwards loses no
    more than forming x_i - m_k first: both are limited by the rounding of x itself."""
    K, D = means.shape
    if D <= ELEMENTWISE_MAX_FEATURES:
        rows_f = jnp.moveaxis(f, 0, -1)[..., None]  # rows_f[d, e] = f[:, d, e] as (K, 1)
        rows_m = [means[:, d, None] for d in range(D)]  # (K, 1) each
        return lambda x: _quadratic_rows([x[d] - m for d, m in enumerate(rows_m)], rows_f)
    ft = jnp.swapaxes(f, -1, -2)  # lower triangular: entry e of f_k^T x involves features d <= e
    offset = (ft @ means[:, :, None])[..., 0]  # (K, D) f_k^T m_k
    groups = [  # per group of components, its two halves: rows of F^T, their offsets, the width
        [
            (
                ft[k : k + COMPONENTS_PER_PRODUCT, lo:hi, :hi].reshape(-1, hi),
                offset[k : k + COMPONENTS_PER_PRODUCT, lo:hi].reshape(-1, 1),
                hi - lo,
            )
            for lo, hi in ((0, D // 2), (D // 2, D))
        ]
        for k in range(0, K, COMPONENTS_PER_PRODUCT)
    ]

    def distances(x):
        rows = []
        for group in groups:
            squares = []
            for a, o, width in group:
                y = (a @ x[: a.shape[1]] - o).reshape(-1, width, x.shape[1])
                squares += [y[:, e] ** 2 for e in range(width)]
            rows.append(_sum(squares))
        return jnp.concatenate(rows)

    return distances


def _tied_distances(means, f):
    offset = (means @ f)[:, :, None]
    return lambda x: jnp.sum(((f.T @ x)[None] - offset) ** 2, axis=1)


def _squared_diffs(x, means):
    """(K, D, n) (x_di - m_kd)^2 for the columns x_i of x (D, n)."""
    return (x[None] - means[:, :, None]) ** 2


# Fewest features for which ``_full_moments`` forms all components' moments as one matmul.
# E-step alone, the two forms alternated in one process (medians of 9, 2 cores): D=8, K=16
# (issue 5's W2) 139 ms as K products against 146 ms as one matmul, on a slower minute 193
# against 225 ms; D=16, K=16 (N=4e5) 173 against 155 ms; D=32, K=32 (W3) 504 against 390 ms.
ONE_MATMUL_MIN_FEATURES = 16


def _full_moments(x, means, rw):
    """(K, D, D) sum_i rw_ki d_ki d_ki^T with d_ki = x_i - m_k, for columns x_i of x (D, n).

    With fewer than ONE_MATMUL_MIN_FEATURES features: one (D, n) x (n, D) product per
    component, (rw_k d_k) d_k^T. With more, formed as sum_i rw_ki d_ki x_i^T - s_k m_k^T
    with s_k = sum_i rw_ki d_ki (equal, as d_ki = x_i - m_k), so the products of all K
    components are one (K D, n) x (n, D) matmul. The result is symmetric, so that matmul
    is made in two halves that skip the lower-left quarter: the first D/2 features of
    every component against all features, the rest against the last D/2. The moments
    alone over issue 5's W3 (391 chunks of 512 rows) took 208 ms as K products, 433 ms as
    a batched dot, 150 ms as one matmul and 125 ms in two halves.

    Accuracy of the one-matmul form: one factor is x_i rather than d_ki, so a product
    rounds at eps |d| |x|, not eps |d|^2, and in float32 a component's moments carry a
    relative error of about eps |x| / sigma_k. On data centred at its mean (as EM's is)
    that is the size of the rounding the centring itself leaves in x, but it no longer
    averages out over the rows: for a cluster 1e5 of its sigmas from the mean (D=5, 2048
    rows) the error was 1.4e-3 against 5.6e-5 with d_ki in both factors; at 1e3 sigmas,
    1.3e-5 against 1.7e-6. With x in both factors the error would grow as
    eps |x|^2 / sigma_k^2, which in float32 broke positive definiteness."""
    K, D = means.shape
    if D < ONE_MATMUL_MIN_FEATURES:
        moments = []
        for r, m in zip(rw, means, strict=True):
            d = x - m[:, None]
            moments.append((r * d) @ d.T)
        return jnp.stack(moments)
    n = x.shape[1]
    weighted = rw[:, None, :] * (x[None] - means[:, :, None])  # (K, D, n)
    # A row of ones after the features: each product's last column is then
    # s_k = sum_i rw_ki d_ki, summed by the matmul rather than by a second pass over
    # ``weighted`` (W3's E-step: 419 -> 390 ms).
    x1 = jnp.concatenate([x, jnp.ones((1, n), x.dtype)])
    h = D // 2

    def block(rows, first):
        """sum_i rw_ki d_ki[rows] d_ki[first:]^T"""
        right = x1[first:]  # features first..D-1, then the ones
        product = (weighted[:, rows].reshape(-1, n) @ right.T).reshape(K, -1, right.shape[0])
        moments, s = product[..., :-1], product[..., -1]
        return moments - s[:, :, None] * means[:, None, first:]

    top = block(slice(0, h), 0)  # (K, h, D)
    bottom_right = block(slice(h, D), h)  # (K, D - h, D - h)
    bottom = jnp.concatenate([jnp.swapaxes(top[:, :, h:], 1, 2), bottom_right], axis=2)
    return jnp.concatenate([top, bottom], axis=1)


def _log_diag_half_det(factor):
    return jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)


FULL = EStep(
    precision_factor=cholesky_precision,
    half_log_det=lambda f, K, D: _log_diag_half_det(f),
    mahalanobis=lambda diff, f: jnp.sum(jnp.einsum("nkd,kde->nke", diff, f) ** 2, axis=-1),
    mahalanobis_cols=_full_distances,
    second_moment_cols=_full_moments,
    mahalanobis_rows=lambda diff, f, k: _quadratic_rows(diff, f[k]),
    second_moment_rows=lambda diff, rw: jnp.stack([_moment_rows(r, d) for r, d in zip(rw, diff, strict=True)]),
)

TIED = EStep(
    precision_factor=cholesky_precision,
    half_log_det=lambda f, K, D: jnp.broadcast_to(_log_diag_half_det(f), (K,)),
    mahalanobis=lambda diff, f: jnp.sum((diff @ f) ** 2, axis=-1),
    mahalanobis_cols=_tied_distances,
    second_moment_cols=lambda x, means, rw: jnp.sum(_full_moments(x, means, rw), axis=0),
    mahalanobis_rows=lambda diff, f, k: _quadratic_rows(diff, f),
    second_moment_rows=lambda diff, rw: _sum([_moment_rows(r, d) for r, d in zip(rw, diff, strict=True)]),
)

DIAG = EStep(
    precision_factor=lambda cov: 1.0 / cov,
    half_log_det=lambda f, K, D: 0.5 * jnp.sum(jnp.log(f), axis=-1),
    mahalanobis=lambda diff, f: jnp.sum(diff**2 * f, axis=-1),
    # contractions written as einsum: XLA:CPU runs them as dots, several times faster than
    # the same sums written as broadcast products reduced over an axis (issue 5's W4)
    mahalanobis_cols=lambda means, f: lambda x: jnp.einsum("kdn,kd->kn", _squared_diffs(x, means), f),
    second_moment_cols=lambda x, means, rw: jnp.einsum("kdn,kn->kd", _squared_diffs(x, means), rw),
    mahalanobis_rows=lambda diff, f, k: _sum([row**2 * f[k, d] for d, row in enumerate(diff)]),
    second_moment_rows=lambda diff, rw: jnp.stack(
        [jnp.stack([jnp.sum(r * row**2) for row in d]) for r, d in zip(rw, diff, strict=True)]
    ),
)

SPHERICAL = EStep(
    precision_factor=lambda cov: 1.0 / cov,
    half_log_det=lambda f, K, D: 0.5 * D * jnp.log(f),
    mahalanobis=lambda diff, f: jnp.sum(diff**2, axis=-1) * f,
    mahalanobis_cols=lambda means, f: lambda x: jnp.sum(_squared_diffs(x, means), axis=1) * f[:, None],
    second_moment_cols=lambda x, means, rw: jnp.einsum("kdn,kn->k", _squared_diffs(x, means), rw),
    mahalanobis_rows=lambda diff, f, k: _sum([row**2 for row in diff]) * f[k],
    second_moment_rows=lambda diff, rw: jnp.stack(
        [jnp.sum(r * _sum([row**2 for row in d])) for r, d in zip(rw, diff, strict=True)]
    ),
)

# The E-step of each family, by the family's name (the table's ``family`` column).
BY_FAMILY = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}
