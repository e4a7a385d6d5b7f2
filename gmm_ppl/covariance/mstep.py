"""The M-step of each structure: the covariances from the scatter around the new means.

``ml_covariance(scatter, n, D, previous)`` gives the maximum-likelihood covariances from the
scatter reduced to the structure's shape, the responsibilities' sums ``n`` (K,) and the
number of features; ``previous`` holds the covariances of the parameters the statistics
were taken at. All but VEI have closed forms and ignore ``previous``; a structure whose
M-step is an inner iteration (VEI here; mclust's VEE, EVE, VVE and VEV too alternate between
volume, shape and orientation) starts that iteration from ``previous``, so that EM's outer
loop warm-starts it. ``outer(a, b)`` is the same reduction of sum_k a_k b_k^T,
used for the corrections from moments around the reference means to the scatter; and
``add_to_diagonal`` adds ``reg_covar``. The MAP form, under the conjugate prior, is in
``priors``.
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


# Inner steps of VEI's M-step. Each maximises the complete-data objective exactly in the
# shape given the volumes, then in the volumes given the shape, so none lowers it: EM stays
# monotone (generalised EM) whatever the count. Started from the previous covariances, the
# inner iteration goes on across EM's iterations, so EM's fixed points are those of the full
# maximisation, where mclust iterates to convergence inside each M-step.
VEI_INNER_STEPS = 5


def _vei_covariance(scatter, n, D, previous):
    """Varying volume, equal diagonal shape (Celeux and Govaert 1995): Sigma_k = lambda_k B
    with B diagonal, |B| = 1. No closed form: with W_k the diagonal scatter of component k,
    alternate B = sum_k W_k / lambda_k over its geometric mean, and
    lambda_k = tr(W_k B^-1) / (D n_k), from the previous volumes |Sigma_k|^(1/D). A component
    without rows takes no part in the shape and gets volume 0 (then reg_covar I, as in the
    other structures). A feature with no spread in any component makes the likelihood
    unbounded (B's entry would go to 0): every covariance is then 0, and reg_covar I after
    regularisation, as EVI's are when no component has a volume."""
    tiny = jnp.finfo(scatter.dtype).tiny
    has_rows = jnp.sum(scatter, axis=-1) > tiny
    # the first M-step (from the unit spherical start of ``learners.EM.init``) has no
    # volumes of this structure yet: unit ones
    previous = previous if previous.shape == scatter.shape else jnp.ones_like(scatter)
    volumes = jnp.exp(jnp.mean(jnp.log(previous), axis=-1))

    def shape_given(volumes):
        """(B, whether B is a shape: every feature has some spread)."""
        weighted = jnp.sum(jnp.where(has_rows[:, None], scatter / jnp.where(has_rows, volumes, 1.0)[:, None], 0.0), 0)
        root = jnp.exp(jnp.mean(jnp.log(weighted)))
        ok = root > tiny
        return jnp.where(ok, weighted / jnp.where(ok, root, 1.0), 1.0), ok

    def step(_, volumes):
        return jnp.sum(scatter / shape_given(volumes)[0], axis=-1) / (D * n)

    volumes = jax.lax.fori_loop(0, VEI_INNER_STEPS, step, volumes)
    shape, ok = shape_given(volumes)
    return jnp.where(ok, volumes[:, None] * shape, 0.0)


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

VEI = DIAG._replace(  # lambda_k B: own volume, one diagonal shape; stored (K, D); an inner iteration
    ml_covariance=_vei_covariance,
)
