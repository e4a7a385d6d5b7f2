"""The conjugate prior of every structure (Fraley and Raftery 2007, mclust's
``priorControl``): its log density, its NumPyro sites where the structure has them, and
the pseudo-statistics that make MAP-EM's M-step the structure's own M-step.

The prior on one covariance, by family (nu = dof, Psi = scale, s = tr(Psi) / D: mclust's
one number for the diagonal and spherical structures, which its ``defaultPrior`` makes
from the same variances as Psi):
  ellipsoidal (full or tied storage)  Sigma ~ InverseWishart(nu, Psi)
  diagonal (diag storage)             each variance s2_d ~ InverseGamma(nu / 2, s / 2)
  spherical                           s2 ~ InverseGamma(nu / 2, s / 2)
and every component's mean given its covariance, mu_k ~ N(m0, Sigma_k / kappa); the
weights ~ Dirichlet(alpha) (``gmm_ppl.model``). A structure whose components share one
covariance (EII, EEI, EEE: no V in its code) has the covariance's prior once; the others
have it on each component's covariance, restricted to the structure (for VVV, VVI and VII
the product of the components' priors). Both as in mclust.

MAP. In the covariances, log prior + complete-data log-likelihood is
    sum_k -(n_k + c_k) / 2 log|Sigma_k| - tr((W_k + kappa d_k d_k^T + S_k) Sigma_k^-1) / 2
(W_k the scatter around the new mean mu_k, d_k = mu_k - m0), with the prior's
pseudo-scatter S_k and pseudo-count c_k per component: Psi and nu + D + 1 (ellipsoidal),
s and nu + 2 (each variance), s and (nu + 2) / D (spherical, whose count is in rows of D
variances), divided by K where the covariance is shared; plus 1 for the mean's prior.
That is the log-likelihood's form, so the structure's maximum-likelihood M-step given the
augmented scatter and counts (``pseudo``) is its MAP M-step: exact where the M-step is
exact, and a generalised EM step, one that raises the log posterior, where it iterates
(VEI, VEE, VEV, EVE, VVE). For VVV, VVI, VII and EEE this is mclust's MAP M-step to the
letter; where mclust's Fortran differs (EII, EEI, VEI, EVI, EEV, VEV: the README, "MAP-EM
and the prior") its step is not the mode of the prior it states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax.scipy.special import gammaln, multigammaln


class ConjugatePrior(NamedTuple):
    # (prior, present (K,) bool) -> (pseudo-scatter reduced as the structure's scatter is,
    # pseudo-count per component (K,)): what MAP-EM adds to the statistics before the
    # structure's M-step. Components not ``present`` (weight 0: padding) get none.
    pseudo: Callable
    # (means (K, D), covariances in the structure's storage, prior, present) ->
    # log p(means, covariances) of the ``present`` components
    log_density: Callable
    # (prior, K, D) -> (means, covariances) as NumPyro sites; None where the structure has no
    # NumPyro density (mclust's structures beyond scikit-learn's four), so no NUTS
    sample: Callable | None


def _numpyro():
    """NumPyro and its distributions, imported where a prior's sites are made: a
    maximum-likelihood fit never needs them, and importing them took 0.4 s of a new
    process's first fit_em."""
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist


def variance_scale(prior):
    """s = tr(Psi) / D: the inverse-gamma priors' scale (times 2) of the diagonal and
    spherical structures."""
    return jnp.trace(prior.scale) / prior.scale.shape[-1]


def _log_inverse_gamma(x, shape, scale):
    return shape * jnp.log(scale) - gammaln(shape) - (shape + 1) * jnp.log(x) - scale / x


def _log_inverse_wishart(cov, dof, psi):
    """log InverseWishart(cov | dof, psi), cov (..., D, D)."""
    D = psi.shape[-1]
    log_det = jnp.linalg.slogdet(cov)[1]
    trace = jnp.trace(jnp.linalg.solve(cov, jnp.broadcast_to(psi, cov.shape)), axis1=-2, axis2=-1)
    return (
        dof / 2 * jnp.linalg.slogdet(psi)[1]
        - dof * D / 2 * jnp.log(2.0)
        - multigammaln(dof / 2, D)
        - (dof + D + 1) / 2 * log_det
        - trace / 2
    )


def _log_normal_given(means, cov, prior, present):
    """sum_k log N(mu_k | m0, Sigma_k / kappa) over the present k; cov (K, D, D) or one
    (D, D) for all."""
    D = means.shape[-1]
    cov = jnp.broadcast_to(cov, means.shape + (D,))
    d = means - prior.mean
    mahalanobis = jnp.einsum("kd,kd->k", d, jnp.linalg.solve(cov, d[..., None])[..., 0])
    each = D / 2 * jnp.log(prior.kappa / (2 * jnp.pi)) - jnp.linalg.slogdet(cov)[1] / 2 - prior.kappa / 2 * mahalanobis
    return jnp.sum(jnp.where(present, each, 0.0))


def _log_normal_each(means, variances, prior, present):
    """sum_kd log N(mu_kd | m0_d, s2_kd / kappa) over the present k; variances (K, D) or (K, 1)."""
    d = means - prior.mean
    each = 0.5 * jnp.log(prior.kappa / (2 * jnp.pi * variances)) - prior.kappa * d * d / (2 * variances)
    return jnp.sum(jnp.where(present[:, None], each, 0.0))


def _conjugate(family: str, shared: bool, sample: Callable | None) -> ConjugatePrior:
    """The prior of a structure stored as ``family``, its covariance ``shared`` by every
    component or not (see the module's docstring)."""

    def copies(present):
        """How many times the covariance's prior is shared out: once per present component
        where the covariance is shared, else none (each has its own)."""
        return jnp.maximum(jnp.sum(present), 1) if shared else 1

    def pseudo(prior, present):
        K, D = present.shape[0], prior.scale.shape[-1]
        one = present.astype(prior.scale.dtype)  # 1 for a present component, else 0
        share = one / copies(present)
        if family in ("full", "tied"):
            scatter, count = share[:, None, None] * prior.scale, prior.dof + D + 1
            if family == "tied":  # tied's scatter is the sum of the components'
                scatter = jnp.sum(scatter, axis=0)
        else:
            scatter = share * variance_scale(prior)
            scatter = jnp.broadcast_to(scatter[:, None], (K, D)) if family == "diag" else scatter
            count = prior.dof + 2 if family == "diag" else (prior.dof + 2) / D
        return scatter, share * count + one

    def log_density(means, covariances, prior, present):
        if family in ("full", "tied"):
            if family == "tied":  # one covariance, whatever the components
                return _log_inverse_wishart(covariances, prior.dof, prior.scale) + _log_normal_given(
                    means, covariances, prior, present
                )
            per_covariance = _log_inverse_wishart(covariances, prior.dof, prior.scale)
            return jnp.sum(jnp.where(present, per_covariance, 0.0)) / copies(present) + _log_normal_given(
                means, covariances, prior, present
            )
        per_variance = _log_inverse_gamma(covariances, prior.dof / 2, variance_scale(prior) / 2)
        per_variance = per_variance if family == "spherical" else jnp.sum(per_variance, axis=-1)
        variances = covariances if family == "diag" else covariances[:, None]
        return jnp.sum(jnp.where(present, per_variance, 0.0)) / copies(present) + _log_normal_each(
            means, variances, prior, present
        )

    return ConjugatePrior(pseudo=pseudo, log_density=log_density, sample=sample)


def _full_sites(prior, K, D):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", K):
        cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _tied_sites(prior, K, D):
    numpyro, dist = _numpyro()
    cov = numpyro.sample("covariances", dist.InverseWishart(prior.dof, scale_matrix=prior.scale))
    with numpyro.plate("component", K):
        means = numpyro.sample("means", dist.MultivariateNormal(prior.mean, cov / prior.kappa))
    return means, cov


def _diag_sites(prior, K, D):
    numpyro, dist = _numpyro()
    s = jnp.broadcast_to(variance_scale(prior), (D,))
    with numpyro.plate("component", K):
        var = numpyro.sample("covariances", dist.InverseGamma(prior.dof / 2, s / 2).to_event(1))
        means = numpyro.sample("means", dist.Normal(prior.mean, jnp.sqrt(var / prior.kappa)).to_event(1))
    return means, var


def _spherical_sites(prior, K, D):
    numpyro, dist = _numpyro()
    with numpyro.plate("component", K):
        var = numpyro.sample("covariances", dist.InverseGamma(prior.dof / 2, variance_scale(prior) / 2))
        scale = jnp.sqrt(var / prior.kappa)[:, None]
        means = numpyro.sample("means", dist.Normal(prior.mean, scale).to_event(1))
    return means, var


_SITES = {"full": _full_sites, "tied": _tied_sites, "diag": _diag_sites, "spherical": _spherical_sites}


def of_structure(name: str, code: str, family: str, nuts: bool) -> ConjugatePrior:
    """The prior of structure ``name`` (mclust's ``code``, stored as ``family``): shared
    where no letter of its code is V; with NumPyro sites where ``nuts`` (then ``name`` is
    its family's own, one of scikit-learn's four)."""
    if nuts and name != family:
        raise ValueError(f"covariance type {name!r}: only a family's own structure has its NumPyro sites")
    return _conjugate(family, shared="V" not in code, sample=_SITES[family] if nuts else None)
