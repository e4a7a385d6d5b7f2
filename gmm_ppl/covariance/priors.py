"""The conjugate priors: the prior as NumPyro sample sites, and the posterior mode of the
covariances under it (MAP-EM's M-step).

The priors, per structure (nu = dof, Psi = scale, m0 = mean, kappa as in ``Prior``):
  full       Sigma_k ~ InverseWishart(nu, Psi),           mu_k ~ N(m0, Sigma_k / kappa)
  tied       Sigma   ~ InverseWishart(nu, Psi),           mu_k ~ N(m0, Sigma / kappa)
  diag       s2_kd   ~ InverseGamma(nu / 2, Psi_dd / 2),  mu_kd ~ N(m0_d, s2_kd / kappa)
  spherical  s2_k    ~ InverseGamma(nu D / 2, tr(Psi) / 2), mu_k ~ N(m0, s2_k I / kappa)
The MAP denominators below are the exponents of the resulting posterior modes. The other
structures have no conjugate prior here (their record's ``prior`` is None): MAP-EM and the
NumPyro model refuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp


class ConjugatePrior(NamedTuple):
    sample: Callable  # (prior, K, D) -> (means, covariances) as NumPyro sites
    # (scatter, kappa * outer(m - m0), Psi, n, D, dof, previous covariances) -> posterior-mode
    # covariances; ``previous`` as for ``MStep.ml_covariance`` (unused by these closed forms)
    map_covariance: Callable


def _numpyro():
    """NumPyro and its distributions, imported where a prior's sites are made: a
    maximum-likelihood fit never needs them, and importing them took 0.4 s of a new
    process's first fit_em."""
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist


def _full_prior(prior, K, D):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", K):
        cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _tied_prior(prior, K, D):
    numpyro, dist = _numpyro()
    cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
    with numpyro.plate("component", K):
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _diag_prior(prior, K, D):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", K):
        var = numpyro.sample(
            "covariances",
            dist.InverseGamma(prior.dof / 2, jnp.diagonal(prior.scale) / 2).to_event(1),
        )
        means = numpyro.sample("means", dist.Normal(prior.mean, jnp.sqrt(var / prior.kappa)).to_event(1))
    return means, var


def _spherical_prior(prior, K, D):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", K):
        var = numpyro.sample("covariances", dist.InverseGamma(prior.dof * D / 2, jnp.trace(prior.scale) / 2))
        scale = jnp.sqrt(var / prior.kappa)[:, None]
        means = numpyro.sample("means", dist.Normal(prior.mean, scale).to_event(1))
    return means, var


FULL = ConjugatePrior(
    sample=_full_prior,
    map_covariance=lambda scatter, off, psi, n, D, dof, previous: (
        (scatter + psi + off) / (dof + n + D + 2)[:, None, None]
    ),
)

TIED = ConjugatePrior(
    sample=_tied_prior,
    map_covariance=lambda scatter, off, psi, n, D, dof, previous: (
        (scatter + psi + off) / (dof + jnp.sum(n) + D + 1 + n.shape[0])
    ),
)

DIAG = ConjugatePrior(
    sample=_diag_prior,
    map_covariance=lambda scatter, off, psi, n, D, dof, previous: (
        (scatter + jnp.diagonal(psi) + off) / (dof + n + 3)[:, None]
    ),
)

SPHERICAL = ConjugatePrior(
    sample=_spherical_prior,
    map_covariance=lambda scatter, off, psi, n, D, dof, previous: (
        (scatter + jnp.trace(psi) + off) / (D * (dof + n + 1) + 2)
    ),
)
