"""The covariance types: everything that depends on the shape of the covariances.

Each type is a record of small pure functions, looked up by name at trace time
(``COVARIANCE_TYPES[name]``), so the EM loop never branches on the type. Shapes follow
scikit-learn: full (K, D, D), tied (D, D), diag (K, D), spherical (K,). mclust's codes name
them too (VVV, EEE, VVI, VII), and five more of mclust's parameterisations have
closed-form M-steps here: EII (one variance for all, stored (K,)), EEI (one diagonal for
all, stored (K, D)), EVI (equal volume, varying diagonal shape, (K, D)), EVV (equal
volume, varying shape and orientation, (K, D, D)) and EEV (equal volume and shape, varying
orientation, (K, D, D)).

Per type the record gives
  * the E-step: a precision factor derived once per iteration, the squared Mahalanobis
    distances, and half the log-determinant of the precision per component. The
    distances come in three layouts: of differences ``diff`` (n, K, D), for the densities
    of ``gmm_ppl.likelihood``; of a chunk's rows stored as columns, for EM's E-step
    (``gmm_ppl.stats.Chunks``); and written out per component and feature, for few of
    them (``gmm_ppl.stats.written_out``);
  * the M-step: second moments around the means weighted by responsibilities, reduced to
    the type's shape (in the E-step's two layouts); ``outer(a, b)``, the same reduction of
    sum a_k b_k^T used for the corrections; the covariances from the scatter, for maximum
    likelihood and for MAP;
  * the conjugate prior as NumPyro sample sites, and the free-parameter count;
  * an unconstrained parameterisation, used by ``check_stationarity``.

The priors, per type (nu = dof, Psi = scale, m0 = mean, kappa as in ``Prior``):
  full       Sigma_k ~ InverseWishart(nu, Psi),           mu_k ~ N(m0, Sigma_k / kappa)
  tied       Sigma   ~ InverseWishart(nu, Psi),           mu_k ~ N(m0, Sigma / kappa)
  diag       s2_kd   ~ InverseGamma(nu / 2, Psi_dd / 2),  mu_kd ~ N(m0_d, s2_kd / kappa)
  spherical  s2_k    ~ InverseGamma(nu D / 2, tr(Psi) / 2), mu_k ~ N(m0, s2_k I / kappa)
The MAP denominators below are the exponents of the resulting posterior modes.
EII, EEI, EVI, EVV and EEV have no conjugate prior here: MAP-EM and the NumPyro prior refuse
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import expm, solve_triangular


class CovarianceType(NamedTuple):
    name: str
    family: str  # the scikit-learn type whose shape and E-step this type shares
    shape: Callable  # (K, D) -> shape of the covariances
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
    outer: Callable  # (a (K, D), b (K, D)) -> reduced sum_k a_k b_k^T
    ml_covariance: Callable  # (scatter, n (K,), D) -> maximum-likelihood covariances
    # (scatter, kappa * outer(m - m0), Psi, n, D, dof) -> posterior-mode covariances, or
    # None for a type without a conjugate prior (then ``sample_prior`` is None too)
    map_covariance: Callable | None
    add_to_diagonal: Callable  # (covariances, reg) -> covariances + reg I
    to_full: Callable  # (covariances, K, D) -> (K, D, D)
    n_parameters: Callable  # (K, D) -> free covariance parameters
    sample_prior: Callable | None  # (prior, K, D) -> (means, covariances) as NumPyro sites
    unconstrain: Callable  # covariances -> unconstrained array of the type's free parameters
    constrain: Callable  # (unconstrained array, K, D) -> covariances


# Most features for which ``_cholesky_precision_xla`` unrolls its two loops over features.
# Unrolled, the loops' steps fuse: Old Faithful (D=2) with 32 restarts, 50 iterations, took
# 2.4-2.6 ms unrolled, 3.0-3.6 ms as loops and 2.8 ms with LAPACK. With many features the
# unrolled program is long to compile (D=32: 1.8 s for the factor alone, 0.2 s as loops).
UNROLLED_MAX_FEATURES = 4


def _cholesky_precision(cov):
    """U, upper triangular, with U U^T = cov^{-1}: scikit-learn's precisions_cholesky_,
    L^{-T} for the Cholesky factor L of cov.

    On a CPU it is made by XLA's own operations, not by LAPACK. JAX's LAPACK on a CPU is
    SciPy's OpenBLAS, which gave a batch of 32x32 triangular solves to its own threads; they
    then kept the two cores of the benchmark machine busy while XLA's threads ran the E-step
    that followed: issue 5's W3 E-step (D=32, K=32) took 181 ms with LAPACK's factor in the
    program, 131 ms with this one, and 130 ms with LAPACK and OPENBLAS_NUM_THREADS=1; the
    Cholesky factorisation alone (potrf) did not do it, the triangular solve did. Other
    platforms keep their solvers (cuSOLVER on a GPU), whose kernels a loop would multiply."""
    return jax.lax.platform_dependent(cov, cpu=_cholesky_precision_xla, default=_cholesky_precision_lapack)


def _cholesky_precision_lapack(cov):
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _cholesky_precision_xla(cov):
    """As ``_cholesky_precision_lapack``, in two loops over the D features: L column by
    column, then M = L^{-1} row by row; a matrix is NaN from its first pivot that is not
    positive (LAPACK's factor is NaN throughout). cov is symmetrised first, as
    ``jnp.linalg.cholesky`` does, so that a gradient is spread over both triangles."""
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    D = cov.shape[-1]
    features = jnp.arange(D)
    unroll = D <= UNROLLED_MAX_FEATURES

    def column(j, chol):
        # L[:, j] = (cov[:, j] - L[:, :j] L[j, :j]^T) / L[j, j]; columns j.. of chol are still 0
        col = cov[..., :, j] - jnp.einsum("...de,...e->...d", chol, chol[..., j, :])
        pivot = col[..., j, None]
        col = col / jnp.where(pivot > 0, jnp.sqrt(pivot), jnp.nan)
        return chol.at[..., :, j].set(jnp.where(features >= j, col, 0.0))

    def row(i, inverse):
        # M[i] = (e_i - L[i, :i] M[:i]) / L[i, i]; rows i.. of inverse are still 0
        l_i = chol[..., i, :]
        unit = (features == i).astype(cov.dtype)
        return inverse.at[..., i, :].set((unit - jnp.einsum("...e,...ef->...f", l_i, inverse)) / l_i[..., i, None])

    zeros = jnp.zeros_like(cov)
    chol = jax.lax.fori_loop(0, D, column, zeros, unroll=unroll)
    return jnp.swapaxes(jax.lax.fori_loop(0, D, row, zeros, unroll=unroll), -1, -2)


def _sum(terms):
    return functools.reduce(jnp.add, terms)


def _quadratic_rows(diff, f):
    """sum_e (sum_d diff_d f_de)^2 for rows diff_d; ``f`` is upper triangular
    (``_cholesky_precision``), so only d <= e contribute."""
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
    (``_cholesky_precision``), so the first D/2 entries of f_k^T x involve only the first
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


def _add_eye(cov, reg):
    # Symmetrised too: in float32 the M-step's scatter rounds its (d, e) and (e, d) entries
    # apart by a few ulps, and a covariance should be exactly symmetric.
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return cov + reg * jnp.eye(cov.shape[-1], dtype=cov.dtype)


def _chol_unconstrain(cov):
    chol = jnp.linalg.cholesky(cov)
    diag = jnp.diagonal(chol, axis1=-2, axis2=-1)
    return chol - jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(diag - jnp.log(diag))


def _chol_constrain(u):
    low = jnp.tril(u)
    diag = jnp.diagonal(low, axis1=-2, axis2=-1)
    chol = low + jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(jnp.exp(diag) - diag)
    return chol @ jnp.swapaxes(chol, -1, -2)


def _full_prior(prior, K, D):
    with numpyro.plate("component", K):
        cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _tied_prior(prior, K, D):
    cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
    with numpyro.plate("component", K):
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _diag_prior(prior, K, D):
    with numpyro.plate("component", K):
        var = numpyro.sample(
            "covariances",
            dist.InverseGamma(prior.dof / 2, jnp.diagonal(prior.scale) / 2).to_event(1),
        )
        means = numpyro.sample("means", dist.Normal(prior.mean, jnp.sqrt(var / prior.kappa)).to_event(1))
    return means, var


def _spherical_prior(prior, K, D):
    with numpyro.plate("component", K):
        var = numpyro.sample("covariances", dist.InverseGamma(prior.dof * D / 2, jnp.trace(prior.scale) / 2))
        scale = jnp.sqrt(var / prior.kappa)[:, None]
        means = numpyro.sample("means", dist.Normal(prior.mean, scale).to_event(1))
    return means, var


FULL = CovarianceType(
    name="full",
    family="full",
    shape=lambda K, D: (K, D, D),
    precision_factor=_cholesky_precision,
    half_log_det=lambda f, K, D: _log_diag_half_det(f),
    mahalanobis=lambda diff, f: jnp.sum(jnp.einsum("nkd,kde->nke", diff, f) ** 2, axis=-1),
    mahalanobis_cols=_full_distances,
    second_moment_cols=_full_moments,
    mahalanobis_rows=lambda diff, f, k: _quadratic_rows(diff, f[k]),
    second_moment_rows=lambda diff, rw: jnp.stack([_moment_rows(r, d) for r, d in zip(rw, diff, strict=True)]),
    outer=lambda a, b: a[:, :, None] * b[:, None, :],
    ml_covariance=lambda scatter, n, D: scatter / n[:, None, None],
    map_covariance=lambda scatter, off, psi, n, D, dof: (scatter + psi + off) / (dof + n + D + 2)[:, None, None],
    add_to_diagonal=_add_eye,
    to_full=lambda cov, K, D: cov,
    n_parameters=lambda K, D: K * D * (D + 1) // 2,
    sample_prior=_full_prior,
    unconstrain=_chol_unconstrain,
    constrain=lambda u, K, D: _chol_constrain(u),
)

TIED = CovarianceType(
    name="tied",
    family="tied",
    shape=lambda K, D: (D, D),
    precision_factor=_cholesky_precision,
    half_log_det=lambda f, K, D: jnp.broadcast_to(_log_diag_half_det(f), (K,)),
    mahalanobis=lambda diff, f: jnp.sum((diff @ f) ** 2, axis=-1),
    mahalanobis_cols=_tied_distances,
    second_moment_cols=lambda x, means, rw: jnp.sum(_full_moments(x, means, rw), axis=0),
    mahalanobis_rows=lambda diff, f, k: _quadratic_rows(diff, f),
    second_moment_rows=lambda diff, rw: _sum([_moment_rows(r, d) for r, d in zip(rw, diff, strict=True)]),
    outer=lambda a, b: a.T @ b,
    ml_covariance=lambda scatter, n, D: scatter / jnp.sum(n),
    map_covariance=lambda scatter, off, psi, n, D, dof: (scatter + psi + off) / (dof + jnp.sum(n) + D + 1 + n.shape[0]),
    add_to_diagonal=_add_eye,
    to_full=lambda cov, K, D: jnp.broadcast_to(cov, (K, D, D)),
    n_parameters=lambda K, D: D * (D + 1) // 2,
    sample_prior=_tied_prior,
    unconstrain=_chol_unconstrain,
    constrain=lambda u, K, D: _chol_constrain(u),
)

DIAG = CovarianceType(
    name="diag",
    family="diag",
    shape=lambda K, D: (K, D),
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
    outer=lambda a, b: a * b,
    ml_covariance=lambda scatter, n, D: scatter / n[:, None],
    map_covariance=lambda scatter, off, psi, n, D, dof: (scatter + jnp.diagonal(psi) + off) / (dof + n + 3)[:, None],
    add_to_diagonal=lambda cov, reg: cov + reg,
    to_full=lambda cov, K, D: jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(cov),
    n_parameters=lambda K, D: K * D,
    sample_prior=_diag_prior,
    unconstrain=jnp.log,
    constrain=lambda u, K, D: jnp.exp(u),
)

SPHERICAL = CovarianceType(
    name="spherical",
    family="spherical",
    shape=lambda K, D: (K,),
    precision_factor=lambda cov: 1.0 / cov,
    half_log_det=lambda f, K, D: 0.5 * D * jnp.log(f),
    mahalanobis=lambda diff, f: jnp.sum(diff**2, axis=-1) * f,
    mahalanobis_cols=lambda means, f: lambda x: jnp.sum(_squared_diffs(x, means), axis=1) * f[:, None],
    second_moment_cols=lambda x, means, rw: jnp.einsum("kdn,kn->k", _squared_diffs(x, means), rw),
    mahalanobis_rows=lambda diff, f, k: _sum([row**2 for row in diff]) * f[k],
    second_moment_rows=lambda diff, rw: jnp.stack(
        [jnp.sum(r * _sum([row**2 for row in d])) for r, d in zip(rw, diff, strict=True)]
    ),
    outer=lambda a, b: jnp.sum(a * b, axis=-1),
    ml_covariance=lambda scatter, n, D: scatter / (n * D),
    map_covariance=lambda scatter, off, psi, n, D, dof: (scatter + jnp.trace(psi) + off) / (D * (dof + n + 1) + 2),
    add_to_diagonal=lambda cov, reg: cov + reg,
    to_full=lambda cov, K, D: cov[:, None, None] * jnp.eye(D, dtype=cov.dtype),
    n_parameters=lambda K, D: K,
    sample_prior=_spherical_prior,
    unconstrain=jnp.log,
    constrain=lambda u, K, D: jnp.exp(u),
)

# mclust's parameterisations Sigma_k = lambda_k D_k A_k D_k^T (volume, orientation, shape)
# that are not scikit-learn's. Each reuses the E-step of the scikit-learn type of its shape
# and has its own closed-form maximum-likelihood M-step; they have no conjugate prior here.

EII = SPHERICAL._replace(
    name="EII",  # lambda I: one variance shared by every component and feature; stored (K,)
    ml_covariance=lambda scatter, n, D: jnp.broadcast_to(jnp.sum(scatter) / (jnp.sum(n) * D), scatter.shape),
    map_covariance=None,
    n_parameters=lambda K, D: 1,
    sample_prior=None,
    unconstrain=lambda cov: jnp.log(cov[:1]),
    constrain=lambda u, K, D: jnp.broadcast_to(jnp.exp(u), (K,)),
)

EEI = DIAG._replace(
    name="EEI",  # lambda A: one diagonal covariance shared by every component; stored (K, D)
    ml_covariance=lambda scatter, n, D: jnp.broadcast_to(jnp.sum(scatter, axis=0) / jnp.sum(n), scatter.shape),
    map_covariance=None,
    n_parameters=lambda K, D: D,
    sample_prior=None,
    unconstrain=lambda cov: jnp.log(cov[:1]),
    constrain=lambda u, K, D: jnp.broadcast_to(jnp.exp(u), (K, D)),
)


def _volume_and_shapes(log_det, scatter, n, D, unit):
    """Equal volume, varying shape (Celeux and Govaert 1995): with W_k the scatter of
    component k, shape_k = W_k / |W_k|^(1/D) and lambda = sum_k |W_k|^(1/D) / N; the
    covariances are lambda * shape_k. A component whose scatter is singular (empty, or
    fewer rows than dimensions) takes the unit shape, as it has none of its own."""
    root = jnp.exp(log_det / D)  # |W_k|^(1/D), 0 for a singular scatter
    ok = root > jnp.finfo(scatter.dtype).tiny
    expand = (slice(None),) + (None,) * (scatter.ndim - 1)
    shapes = jnp.where(ok[expand], scatter / jnp.where(ok, root, 1.0)[expand], unit)
    volume = jnp.sum(jnp.where(ok, root, 0.0)) / jnp.sum(n)
    return volume * shapes


def _unit_det_chol_constrain(u, K, D):
    """(log lambda, log-Cholesky factors) -> lambda * C_k with |C_k| = 1."""
    log_volume, chol_u = u
    c = _chol_constrain(chol_u)
    return jnp.exp(log_volume) * c / jnp.exp(jnp.linalg.slogdet(c)[1] / D)[:, None, None]


def _unit_det_chol_unconstrain(cov):
    D = cov.shape[-1]
    log_volume = jnp.linalg.slogdet(cov[0])[1] / D
    return log_volume, _chol_unconstrain(cov / jnp.exp(log_volume))


EVI = DIAG._replace(
    name="EVI",  # lambda A_k: equal volume, varying diagonal shape; stored (K, D)
    ml_covariance=lambda scatter, n, D: _volume_and_shapes(
        jnp.sum(jnp.log(scatter), axis=-1), scatter, n, D, jnp.ones_like(scatter)
    ),
    map_covariance=None,
    n_parameters=lambda K, D: 1 + K * (D - 1),
    sample_prior=None,
    unconstrain=lambda cov: (jnp.mean(jnp.log(cov[0])), jnp.log(cov) - jnp.mean(jnp.log(cov[0]))),
    constrain=lambda u, K, D: jnp.exp(u[0] + u[1] - jnp.mean(u[1], axis=-1, keepdims=True)),
)


def _log_det_or_minus_inf(scatter):
    """log |W| of symmetric positive semi-definite matrices, -inf where W is numerically
    singular. slogdet would give a finite log |W| (about -67 in float64) from round-off
    for a rank-deficient scatter, and that tiny volume would then blow up its shape."""
    D = scatter.shape[-1]
    values = jnp.linalg.eigvalsh(scatter)
    full_rank = values[..., 0] > 100 * D * jnp.finfo(scatter.dtype).eps * values[..., -1]
    return jnp.where(full_rank, jnp.sum(jnp.log(jnp.where(full_rank[..., None], values, 1.0)), axis=-1), -jnp.inf)


EVV = FULL._replace(
    name="EVV",  # lambda C_k: equal volume, varying shape and orientation; stored (K, D, D)
    ml_covariance=lambda scatter, n, D: _volume_and_shapes(
        _log_det_or_minus_inf(scatter), scatter, n, D, jnp.broadcast_to(jnp.eye(D, dtype=scatter.dtype), scatter.shape)
    ),
    map_covariance=None,
    n_parameters=lambda K, D: 1 + K * (D * (D + 1) // 2 - 1),
    sample_prior=None,
    unconstrain=_unit_det_chol_unconstrain,
    constrain=_unit_det_chol_constrain,
)


def _eev_covariance(scatter, n, D):
    """Equal volume and shape, varying orientation (Celeux and Govaert 1995): with
    W_k = L_k Omega_k L_k^T (eigenvalues in the same order for every k), the shape is
    A = sum_k Omega_k / |sum_k Omega_k|^(1/D), the volume lambda = |sum_k Omega_k|^(1/D) / N,
    and Sigma_k = lambda L_k A L_k^T."""
    omega, vectors = jnp.linalg.eigh(scatter)
    total = jnp.sum(omega, axis=0)
    root = jnp.exp(jnp.mean(jnp.log(total)))  # |sum_k Omega_k|^(1/D)
    ok = root > jnp.finfo(scatter.dtype).tiny
    shape = jnp.where(ok, total / jnp.where(ok, root, 1.0), 1.0)
    volume = jnp.where(ok, root, 0.0) / jnp.sum(n)
    return volume * jnp.einsum("kde,e,kfe->kdf", vectors, shape, vectors)


def _eev_unconstrain(cov):
    """(log lambda, log shape (D,), rotation generators (K, D, D) at 0, the eigenvectors
    they rotate from). The last is a fixed base point: constrain stops its gradient."""
    values, vectors = jnp.linalg.eigh(cov)
    log_values = jnp.log(values[0])
    log_volume = jnp.mean(log_values)
    return log_volume, log_values - log_volume, jnp.zeros_like(cov), vectors


def _eev_constrain(u, K, D):
    log_volume, log_shape, generators, base = u
    rotations = jax.lax.stop_gradient(base) @ jax.vmap(expm)(generators - jnp.swapaxes(generators, -1, -2))
    shape = jnp.exp(log_shape - jnp.mean(log_shape))
    return jnp.exp(log_volume) * jnp.einsum("kde,e,kfe->kdf", rotations, shape, rotations)


EEV = FULL._replace(
    name="EEV",  # lambda D_k A D_k^T: equal volume and shape, varying orientation; (K, D, D)
    ml_covariance=_eev_covariance,
    map_covariance=None,
    n_parameters=lambda K, D: 1 + (D - 1) + K * D * (D - 1) // 2,
    sample_prior=None,
    unconstrain=_eev_unconstrain,
    constrain=_eev_constrain,
)

COVARIANCE_TYPES: dict[str, CovarianceType] = {
    t.name: t for t in (FULL, TIED, DIAG, SPHERICAL, EII, EEI, EVI, EVV, EEV)
}

# mclust's codes for scikit-learn's four types.
ALIASES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}


def canonical(name: str) -> str:
    """The registry name of a covariance type given by its name or mclust code."""
    resolved = ALIASES.get(name, name) if isinstance(name, str) else None
    if resolved not in COVARIANCE_TYPES:
        choices = sorted(COVARIANCE_TYPES) + sorted(ALIASES)
        raise ValueError(f"unknown covariance_type {name!r}; expected one of {choices}")
    return resolved


def get(name: str) -> CovarianceType:
    """The record of a covariance type (a name or mclust code); ValueError if unknown."""
    return COVARIANCE_TYPES[canonical(name)]


def n_free_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of the mixture: weights (K - 1), means (K D) and covariances."""
    K, D = n_components, n_features
    return (K - 1) + K * D + get(covariance_type).n_parameters(K, D)


def infer_covariance_type(params) -> str:
    """The covariance type implied by the shapes of ``params``; ambiguous shapes raise."""
    K, D = params.means.shape[-2:]
    ndim = jnp.ndim(params.covariances) - (jnp.ndim(params.means) - 2)
    if ndim == 3:
        return "full"
    if ndim == 1:
        return "spherical"
    if K == D:
        raise ValueError(
            "covariances of shape (K, D) with K == D could be 'diag' or 'tied'; pass covariance_type explicitly"
        )
    return "diag" if params.covariances.shape[-2] == K else "tied"
