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
    """(log lambda, log-Cholesky factors) -> lambda * C_k with |C_k| = 1."""
    log_volume, chol_u = u
    c = _chol_constrain(chol_u)
    return jnp.exp(log_volume) * c / jnp.exp(jnp.linalg.slogdet(c)[1] / D)[:, None, None]


def _unit_det_chol_unconstrain(cov):
    D = cov.shape[-1]
    log_volume = jnp.linalg.slogdet(cov[0])[1] / D
    return log_volume, _chol_unconstrain(cov / jnp.exp(log_volume))


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
EVV = Chart(unconstrain=_unit_det_chol_unconstrain, constrain=_unit_det_chol_constrain)
EEV = Chart(unconstrain=_eev_unconstrain, constrain=_eev_constrain)
VEI = Chart(  # (log volumes (K,), log diagonal shape (D,) whose mean is taken out)
    unconstrain=lambda cov: (jnp.mean(jnp.log(cov), axis=-1), jnp.log(cov[0]) - jnp.mean(jnp.log(cov[0]))),
    constrain=lambda u, K, D: jnp.exp(u[0][:, None] + u[1] - jnp.mean(u[1])),
)
