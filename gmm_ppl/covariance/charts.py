"""Unconstrained charts of the covariances: ``unconstrain`` maps a structure's covariances
to an unconstrained array (or tuple of arrays) of its free parameters, ``constrain``
(unconstrained, K, D) maps back. Anything that differentiates with respect to the
covariances uses them, e.g. ``gmm_ppl.check_stationarity``'s gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from gmm_ppl.covariance.mstep import common_axes


class Chart(NamedTuple):
    unconstrain: Callable  # covariances -> unconstrained array of the structure's free parameters
    constrain: Callable  # (unconstrained array, K, D) -> covariances


def _chol_unconstrain(cov):
    chol = jnp.linalg.cholesky(cov)
    diag = jnp.diagonal(chol, axis1=-2, axis2=-1)
    return chol - jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(diag - jnp.log(diag))


def _chol_constrain(u):
    low = jnp.tril(u)
    diag = jnp.diagonal(low, axis1=-2, axis2=-1)
    chol = low + jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(jnp.exp(diag) - diag)
    return chol @ jnp.swapaxes(chol, -1, -2)


def _unit_det_chol_constrain(u, K, D):
    """(log volumes, log-Cholesky factors) -> lambda C with |C| = 1: one volume and a C_k per
    component (EVV), or a volume per component and one C (VEE)."""
    log_volume, chol_u = u
    c = _chol_constrain(chol_u)
    unit = c / jnp.exp(jnp.linalg.slogdet(c)[1] / D)[..., None, None]
    return jnp.exp(log_volume)[..., None, None] * unit


def _evv_unconstrain(cov):
    D = cov.shape[-1]
    log_volume = jnp.linalg.slogdet(cov[0])[1] / D
    return log_volume, _chol_unconstrain(cov / jnp.exp(log_volume))


def _vee_unconstrain(cov):
    D = cov.shape[-1]
    log_volumes = jnp.linalg.slogdet(cov)[1] / D
    return log_volumes, _chol_unconstrain(cov[0] / jnp.exp(log_volumes[0]))


def _rotations(generators, base):
    """Orthogonal matrices near ``base``: base @ expm(G - G^T); the base point is fixed (its
    gradient stopped), the generators are the free coordinates, 0 at the base."""
    return jax.lax.stop_gradient(base) @ jnp.vectorize(expm, signature="(d,d)->(d,d)")(
        generators - jnp.swapaxes(generators, -1, -2)
    )


def _own_axes_unconstrain(cov, varying_volume):
    """(log volume, or log volumes (K,) for VEV; log shape (D,); rotation generators
    (K, D, D) at 0; the eigenvectors they rotate from, a fixed base point)."""
    values, vectors = jnp.linalg.eigh(cov)
    log_values = jnp.log(values)
    log_volumes = jnp.mean(log_values, axis=-1)
    log_volume = log_volumes if varying_volume else log_volumes[0]
    return log_volume, log_values[0] - log_volumes[0], jnp.zeros_like(cov), vectors


def _own_axes_constrain(u, K, D):
    """lambda_k D_k A D_k^T (lambda_k all equal for EEV), A = exp(log shape) over its
    geometric mean."""
    log_volume, log_shape, generators, base = u
    rotations = _rotations(generators, base)
    shape = jnp.exp(log_shape - jnp.mean(log_shape))
    return jnp.exp(log_volume)[..., None, None] * jnp.einsum("kde,e,kfe->kdf", rotations, shape, rotations)


def _common_axes_unconstrain(cov, equal_volume):
    """EVE: (log volume, log diagonals (K, D) whose means are taken out, generator (D, D)
    at 0, the shared axes); VVE: (log diagonals (K, D), generator, axes)."""
    axes = common_axes(cov)
    log_diagonals = jnp.log(jnp.einsum("dj,kde,ej->kj", axes, cov, axes))
    generator = jnp.zeros_like(axes)
    if not equal_volume:
        return log_diagonals, generator, axes
    log_volume = jnp.mean(log_diagonals[0])
    return log_volume, log_diagonals - log_volume, generator, axes


def _common_axes_constrain(u, K, D):
    if len(u) == 4:  # EVE: one volume, shapes of unit determinant
        log_volume, log_diagonals, generator, axes = u
        log_diagonals = log_volume + log_diagonals - jnp.mean(log_diagonals, axis=-1, keepdims=True)
    else:
        log_diagonals, generator, axes = u
    rotation = _rotations(generator, axes)
    return jnp.einsum("dj,kj,ej->kde", rotation, jnp.exp(log_diagonals), rotation)


FULL = Chart(unconstrain=_chol_unconstrain, constrain=lambda u, K, D: _chol_constrain(u))
TIED = Chart(unconstrain=_chol_unconstrain, constrain=lambda u, K, D: _chol_constrain(u))
DIAG = Chart(unconstrain=jnp.log, constrain=lambda u, K, D: jnp.exp(u))
SPHERICAL = Chart(unconstrain=jnp.log, constrain=lambda u, K, D: jnp.exp(u))
EII = Chart(  # one variance
    unconstrain=lambda cov: jnp.log(cov[:1]),
    constrain=lambda u, K, D: jnp.broadcast_to(jnp.exp(u), (K,)),
)
EEI = Chart(  # one diagonal
    unconstrain=lambda cov: jnp.log(cov[:1]),
    constrain=lambda u, K, D: jnp.broadcast_to(jnp.exp(u), (K, D)),
)
EVI = Chart(  # (log volume, log diagonals whose mean is taken out)
    unconstrain=lambda cov: (jnp.mean(jnp.log(cov[0])), jnp.log(cov) - jnp.mean(jnp.log(cov[0]))),
    constrain=lambda u, K, D: jnp.exp(u[0] + u[1] - jnp.mean(u[1], axis=-1, keepdims=True)),
)
EVV = Chart(unconstrain=_evv_unconstrain, constrain=_unit_det_chol_constrain)
EEV = Chart(unconstrain=lambda cov: _own_axes_unconstrain(cov, varying_volume=False), constrain=_own_axes_constrain)
VEI = Chart(  # (log volumes (K,), log diagonal shape (D,) whose mean is taken out)
    unconstrain=lambda cov: (jnp.mean(jnp.log(cov), axis=-1), jnp.log(cov[0]) - jnp.mean(jnp.log(cov[0]))),
    constrain=lambda u, K, D: jnp.exp(u[0][:, None] + u[1] - jnp.mean(u[1])),
)
VEE = Chart(unconstrain=_vee_unconstrain, constrain=_unit_det_chol_constrain)
VEV = Chart(unconstrain=lambda cov: _own_axes_unconstrain(cov, varying_volume=True), constrain=_own_axes_constrain)
EVE = Chart(unconstrain=lambda cov: _common_axes_unconstrain(cov, equal_volume=True), constrain=_common_axes_constrain)
VVE = Chart(unconstrain=lambda cov: _common_axes_unconstrain(cov, equal_volume=False), constrain=_common_axes_constrain)
