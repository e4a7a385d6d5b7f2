"""The M-step of each structure: the covariances from the scatter around the new means.

``ml_covariance(scatter, n, D, previous)`` gives the maximum-likelihood covariances from the
scatter reduced to the structure's shape, the responsibilities' sums ``n`` (K,) and the
number of features; ``previous`` holds the covariances of the parameters the statistics
were taken at. Nine have closed forms and ignore ``previous``; mclust's VEI, VEE, VEV, EVE
and VVE have none, and their M-steps are inner iterations (between volume, shape and
orientation) that start from ``previous``, so that EM's outer loop warm-starts them.
``outer(a, b)`` is the same reduction of sum_k a_k b_k^T, used for the corrections from
moments around the reference means to the scatter; and ``add_to_diagonal`` adds
``reg_covar``. MAP-EM calls the same M-step on the statistics the conjugate prior
augments (``priors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class MStep(NamedTuple):
    outer: Callable  # (a (K, D), b (K, D)) -> reduced sum_k a_k b_k^T
    ml_covariance: Callable  # (scatter, n (K,), D, previous covariances) -> maximum-likelihood covariances
    add_to_diagonal: Callable  # (covariances, reg) -> covariances + reg I


def _add_eye(cov, reg):
    # Symmetrised too: in float32 the M-step's scatter rounds its (d, e) and (e, d) entries
    # apart by a few ulps, and a covariance should be exactly symmetric.
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return cov + reg * jnp.eye(cov.shape[-1], dtype=cov.dtype)


def _full_outer(a, b):
    return a[:, :, None] * b[:, None, :]


def _tied_outer(a, b):
    return a.T @ b


def _diag_outer(a, b):
    return a * b


def _spherical_outer(a, b):
    return jnp.sum(a * b, axis=-1)


def _add_to_each(cov, reg):
    return cov + reg


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


def _log_det_or_minus_inf(scatter):
    """log |W| of symmetric positive semi-definite matrices, -inf where W is numerically
    singular. slogdet would give a finite log |W| (about -67 in float64) from round-off
    for a rank-deficient scatter, and that tiny volume would then blow up its shape."""
    D = scatter.shape[-1]
    values = jnp.linalg.eigvalsh(scatter)
    full_rank = values[..., 0] > 100 * D * jnp.finfo(scatter.dtype).eps * values[..., -1]
    return jnp.where(full_rank, jnp.sum(jnp.log(jnp.where(full_rank[..., None], values, 1.0)), axis=-1), -jnp.inf)


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


# Inner steps of the M-steps that alternate between volumes and one shape (VEI, VEE, VEV).
# Each maximises the complete-data objective exactly in the shape given the volumes, then in
# the volumes given the shape, so none lowers it: EM stays monotone (generalised EM) whatever
# the count. Started from the previous covariances, the inner iteration goes on across EM's
# iterations, so EM's fixed points are those of the full maximisation, where mclust iterates
# to convergence inside each M-step.
VOLUME_SHAPE_STEPS = 5


def _previous_volumes(previous, scatter):
    """|Sigma_k|^(1/D) of the previous covariances (unit ones at the first M-step, which
    ``learners.EM.unit_start`` gives identity covariances)."""
    if scatter.ndim == 2:
        return jnp.exp(jnp.mean(jnp.log(previous), axis=-1))
    return jnp.exp(jnp.linalg.slogdet(previous)[1] / scatter.shape[-1])


def _volumes_and_diagonal_shape(scatter, n, D, volumes):
    """Varying volume, one diagonal shape (Celeux and Govaert 1995): Sigma_k = lambda_k B
    with B diagonal, |B| = 1, fitted to diagonal scatters W_k (K, D). No closed form:
    alternate B = sum_k W_k / lambda_k over its geometric mean, and
    lambda_k = tr(W_k B^-1) / (D n_k), from the given volumes. A component without rows
    takes no part in the shape and gets volume 0 (then reg_covar I, as in the other
    structures). A direction with no spread in any component makes the likelihood unbounded
    (B's entry would go to 0): every covariance is then 0, and reg_covar I after
    regularisation, as EVI's are when no component has a volume. Returns lambda_k B (K, D)."""
    tiny = jnp.finfo(scatter.dtype).tiny
    has_rows = jnp.sum(scatter, axis=-1) > tiny

    def shape_given(volumes):
        """(B, whether B is a shape: every direction has some spread)."""
        weighted = jnp.sum(jnp.where(has_rows[:, None], scatter / jnp.where(has_rows, volumes, 1.0)[:, None], 0.0), 0)
        root = jnp.exp(jnp.mean(jnp.log(weighted)))
        ok = root > tiny
        return jnp.where(ok, weighted / jnp.where(ok, root, 1.0), 1.0), ok

    def step(_, volumes):
        return jnp.sum(scatter / shape_given(volumes)[0], axis=-1) / (D * n)

    volumes = jax.lax.fori_loop(0, VOLUME_SHAPE_STEPS, step, volumes)
    shape, ok = shape_given(volumes)
    return jnp.where(ok, volumes[:, None] * shape, 0.0)


def _vei_covariance(scatter, n, D, previous):
    """Varying volume, equal diagonal shape: lambda_k B on the diagonal scatters."""
    return _volumes_and_diagonal_shape(scatter, n, D, _previous_volumes(previous, scatter))


def _vev_covariance(scatter, n, D, previous):
    """Varying volume, equal shape, own orientation (Celeux and Govaert 1995):
    Sigma_k = lambda_k D_k A D_k^T. With W_k = L_k Omega_k L_k^T (eigenvalues ascending for
    every k), the best orientation is D_k = L_k whatever lambda_k and A (von Neumann's trace
    inequality pairs the eigenvalues in one order), and lambda_k A is VEI's iteration on the
    eigenvalues Omega_k."""
    values, vectors = jnp.linalg.eigh(scatter)
    values = jnp.maximum(values, 0.0)  # a singular scatter's zero eigenvalues, not round-off below 0
    diagonal = _volumes_and_diagonal_shape(values, n, D, _previous_volumes(previous, scatter))
    return jnp.einsum("kde,ke,kfe->kdf", vectors, diagonal, vectors)


def _vee_covariance(scatter, n, D, previous):
    """Varying volume, equal shape and orientation (Celeux and Govaert 1995):
    Sigma_k = lambda_k C, |C| = 1. No closed form: alternate C = sum_k W_k / lambda_k over
    |.|^(1/D) and lambda_k = tr(W_k C^-1) / (D n_k), as VEI does with diagonal matrices;
    singular scatters as there (a direction with no spread in any component: every
    covariance 0)."""
    tiny = jnp.finfo(scatter.dtype).tiny
    has_rows = jnp.trace(scatter, axis1=-2, axis2=-1) > tiny
    eye = jnp.eye(D, dtype=scatter.dtype)

    def shape_given(volumes):
        scaled = scatter / jnp.where(has_rows, volumes, 1.0)[:, None, None]
        weighted = jnp.sum(jnp.where(has_rows[:, None, None], scaled, 0.0), 0)
        root = jnp.exp(_log_det_or_minus_inf(weighted) / D)
        ok = root > tiny
        return jnp.where(ok, weighted / jnp.where(ok, root, 1.0), eye), ok

    def step(_, volumes):
        inverse = jnp.linalg.inv(shape_given(volumes)[0])
        return jnp.einsum("kde,de->k", scatter, inverse) / (D * n)

    volumes = jax.lax.fori_loop(0, VOLUME_SHAPE_STEPS, step, _previous_volumes(previous, scatter))
    shape, ok = shape_given(volumes)
    return jnp.where(ok, volumes[:, None, None] * shape, 0.0)


# The orientation shared by every component (EVE, VVE) has no closed form: Browne and
# McNicholas's (2014) two majorise-minimise steps (MM 1 and MM 2, as mclust runs them), each
# of which never raises sum_k tr(W_k D C_k^-1 D^T), alternate with the exact diagonals given
# the orientation. The inner iteration stops when the complete-data objective changes by
# less than sqrt(eps) per row and feature, or after ORIENTATION_STEPS; warm-started from the
# previous covariances' axes, it takes few steps after EM's first iterations.
ORIENTATION_STEPS = 100


def common_axes(covariances):
    """The eigenvectors D (D, D) that covariances D C_k D^T (K, D, D) share: those of
    sum_k w_k Sigma_k, with distinct weights so that no two of its eigenvalues tie where the
    components' own diagonals differ (for two components with swapped diagonals, the plain
    sum would be a multiple of I, whose eigenvectors say nothing)."""
    weights = 1.0 + 0.6180339887498949 * jnp.arange(covariances.shape[0], dtype=covariances.dtype)
    return jnp.linalg.eigh(jnp.einsum("k,kde->de", weights, covariances))[1]


def _orientation_mm(scatter, top, inverse, axes):
    """Browne and McNicholas's MM 1 then MM 2 for the orientation D minimising
    sum_k tr(W_k D C_k^-1 D^T): each majorises a concave rewriting by its tangent (with
    ``top`` >= W_k's largest eigenvalue, then with C_k^-1's largest entry) and minimises the
    tangent over orthogonal matrices by an SVD. ``inverse`` (K, D) holds C_k^-1, 0 for a
    component that takes no part."""
    mm1 = jnp.einsum("kd,ed,kef->df", inverse, axes, scatter) - jnp.einsum("k,kd,ed->de", top, inverse, axes)
    p, _, rt = jnp.linalg.svd(mm1)
    axes = (p @ rt).T
    wd = scatter @ axes
    mm2 = jnp.sum(wd * inverse[:, None, :] - jnp.max(inverse, axis=-1)[:, None, None] * wd, axis=0)
    p, _, rt = jnp.linalg.svd(mm2)
    return p @ rt


def _common_orientation(diagonal_covariance):
    """An M-step Sigma_k = D C_k D^T with one orientation D and diagonals C_k from
    ``diagonal_covariance`` (a diagonal structure's M-step, applied to diag(D^T W_k D)):
    EVE is EVI in a common orientation, VVE is VVI in one, started from the previous
    covariances' axes."""

    def ml_covariance(scatter, n, D, previous):
        dtype = scatter.dtype
        tiny = jnp.finfo(dtype).tiny
        top = jnp.linalg.eigvalsh(scatter)[:, -1]
        axes = common_axes(previous)  # the identity's at the first M-step (mclust's start)

        def diagonals(axes):
            """(C_k (K, D), C_k^-1 where it takes part else 0, the target)."""
            rotated = jnp.einsum("dj,kde,ej->kj", axes, scatter, axes)
            cov = diagonal_covariance(rotated, n, D, None)
            takes_part = jnp.all(cov > tiny, axis=-1, keepdims=True)
            safe = jnp.where(takes_part, cov, 1.0)
            target = jnp.sum(jnp.where(takes_part, n[:, None] * jnp.log(safe) + rotated / safe, 0.0))
            return cov, jnp.where(takes_part, 1.0 / safe, 0.0), target

        def go_on(state):
            _, _, _, before, after, steps = state
            # per row and feature: unchanged when the data are scaled, which moves the
            # target by a constant (mclust divides by 1 + |target| instead)
            change = jnp.abs(after - before) / (D * jnp.sum(n))
            return (steps < ORIENTATION_STEPS) & (change > jnp.sqrt(jnp.finfo(dtype).eps))

        def step(state):
            axes, _, inverse, _, target, steps = state
            axes = _orientation_mm(scatter, top, inverse, axes)
            cov, inverse, after = diagonals(axes)
            return axes, cov, inverse, target, after, steps + 1

        cov, inverse, target = diagonals(axes)
        axes, cov = jax.lax.while_loop(go_on, step, (axes, cov, inverse, jnp.inf, target, 0))[:2]
        return jnp.einsum("dj,kj,ej->kde", axes, cov, axes)

    return ml_covariance


FULL = MStep(
    outer=_full_outer,
    ml_covariance=lambda scatter, n, D, previous: scatter / n[:, None, None],
    add_to_diagonal=_add_eye,
)

TIED = MStep(
    outer=_tied_outer,
    ml_covariance=lambda scatter, n, D, previous: scatter / jnp.sum(n),
    add_to_diagonal=_add_eye,
)

DIAG = MStep(
    outer=_diag_outer,
    ml_covariance=lambda scatter, n, D, previous: scatter / n[:, None],
    add_to_diagonal=_add_to_each,
)

SPHERICAL = MStep(
    outer=_spherical_outer,
    ml_covariance=lambda scatter, n, D, previous: scatter / (n * D),
    add_to_diagonal=_add_to_each,
)

# mclust's parameterisations Sigma_k = lambda_k D_k A_k D_k^T (volume, orientation, shape)
# that are not scikit-learn's, each with its own closed-form maximum-likelihood M-step.

EII = SPHERICAL._replace(  # lambda I: one variance shared by every component and feature; stored (K,)
    ml_covariance=lambda scatter, n, D, previous: jnp.broadcast_to(jnp.sum(scatter) / (jnp.sum(n) * D), scatter.shape),
)

EEI = DIAG._replace(  # lambda A: one diagonal covariance shared by every component; stored (K, D)
    ml_covariance=lambda scatter, n, D, previous: jnp.broadcast_to(
        jnp.sum(scatter, axis=0) / jnp.sum(n), scatter.shape
    ),
)

EVI = DIAG._replace(  # lambda A_k: equal volume, varying diagonal shape; stored (K, D)
    ml_covariance=lambda scatter, n, D, previous: _volume_and_shapes(
        jnp.sum(jnp.log(scatter), axis=-1), scatter, n, D, jnp.ones_like(scatter)
    ),
)

EVV = FULL._replace(  # lambda C_k: equal volume, varying shape and orientation; stored (K, D, D)
    ml_covariance=lambda scatter, n, D, previous: _volume_and_shapes(
        _log_det_or_minus_inf(scatter), scatter, n, D, jnp.broadcast_to(jnp.eye(D, dtype=scatter.dtype), scatter.shape)
    ),
)

EEV = FULL._replace(  # lambda D_k A D_k^T: equal volume and shape, varying orientation; (K, D, D)
    ml_covariance=lambda scatter, n, D, previous: _eev_covariance(scatter, n, D),
)

# mclust's structures whose M-step is an inner iteration, warm-started from the previous covariances.

VEI = DIAG._replace(  # lambda_k B: own volume, one diagonal shape; stored (K, D)
    ml_covariance=_vei_covariance,
)

VEE = FULL._replace(  # lambda_k C: own volume, one shape and orientation; stored (K, D, D)
    ml_covariance=_vee_covariance,
)

VEV = FULL._replace(  # lambda_k D_k A D_k^T: own volume and orientation, one shape; (K, D, D)
    ml_covariance=_vev_covariance,
)

EVE = FULL._replace(  # lambda D A_k D^T: equal volume, own diagonal shape, one orientation; (K, D, D)
    ml_covariance=_common_orientation(EVI.ml_covariance),
)

VVE = FULL._replace(  # D C_k D^T: own volume and diagonal shape, one orientation; (K, D, D)
    ml_covariance=_common_orientation(DIAG.ml_covariance),
)
