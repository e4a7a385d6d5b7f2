"""The generative model, declared once in NumPyro, and the prior it shares with MAP-EM.

    weights ~ Dirichlet(alpha)                         (only with a prior)
    (mu_k, Sigma_k) ~ Normal-Inverse-Wishart           (only with a prior; Normal-Inverse-Gamma
                                                        for diag and spherical: covariance/priors.py)
    z_i ~ Categorical(weights)                         enumerated in parallel
    x_i | z_i ~ MultivariateNormal(mu_{z_i}, Sigma_{z_i})

``mixture_likelihood`` holds the data sites, in the enumerated form (z as a discrete site
marked ``infer={"enumerate": "parallel"}``) or the marginal form (``MixtureSameFamily``).
``sample_params`` holds the prior sites. ``gmm_model`` is the two together. MAP-EM's
log-prior (``log_prior``) is written out for every structure, and for the four that have
sites the tests hold it equal to NumPyro's density of ``sample_params``, so EM and NUTS
cannot drift apart.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance
from gmm_ppl.params import GMMParams, Prior


def default_prior(
    x, n_components: int, *, alpha: float = 1.0, kappa: float = 0.01, dof: float | None = None, scale=None
) -> Prior:
    """A weakly informative conjugate prior scaled to the data (mclust's ``priorControl``).

    mean = the column means, kappa = 0.01 (the mean prior is worth 1/100 of a row),
    dof = D + 2, scale = cov(x) / K^(2/D), alpha = 1 (uniform weights). A constant column
    takes variance 1 in cov(x); a singular cov(x) (collinear columns, N <= D) keeps only its
    diagonal.

    Args:
      x: (N, D) data the prior is scaled to.
      n_components: K.
      alpha, kappa, dof, scale: override the defaults.
    """
    x = _validate.as_data(x)
    K = _validate.check_int(n_components, "n_components")
    D = x.shape[1]
    if scale is None:
        cov = np.atleast_2d(np.cov(x, rowvar=False)) if x.shape[0] > 1 else np.eye(D)
        # A constant column has no spread to scale by; fall back to a unit scale there. Found
        # by its range: its computed variance is rounding, not zero (1e-34 for 50 rows of 0.1).
        constant = np.ptp(x, axis=0) == 0
        cov[constant, :], cov[:, constant] = 0.0, 0.0
        cov = cov + np.diag(constant.astype(np.float64))
        # Collinear columns, or no more rows than columns, leave cov(x) singular, and the
        # inverse-Wishart scale must be positive definite: keep the columns' variances only.
        if np.linalg.eigvalsh(cov).min() <= 1e-10 * np.abs(cov).max():
            cov = np.diag(np.diag(cov))
        scale = cov / K ** (2.0 / D)
    prior = Prior(
        alpha=np.full(K, float(alpha)),
        mean=x.mean(axis=0),
        kappa=np.float64(kappa),
        dof=np.float64(D + 2 if dof is None else dof),
        scale=np.asarray(scale, dtype=np.float64),
    )
    return _validate.check_prior(prior, K, D, for_em=False)


def sample_params(n_components: int, n_features: int, covariance_type: str, prior: Prior) -> GMMParams:
    """The prior as NumPyro sites 'weights', 'covariances' and 'means'."""
    # NumPyro is imported where it is used: a maximum-likelihood fit never needs it, and
    # importing it took 0.4 s of a new process's first fit_em.
    import numpyro
    import numpyro.distributions as dist

    if not covariance.supports(covariance_type, "nuts"):
        raise ValueError(
            f"covariance_type {covariance_type!r} has no NumPyro model here (MAP-EM has its prior); "
            f"the model has {', '.join(map(repr, covariance.supporting('nuts')))}"
        )
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.broadcast_to(prior.alpha, (n_components,))))
    means, covariances = covariance.get(covariance_type).prior.sample(prior, n_components, n_features)
    return GMMParams(weights, means, covariances)


def mixture_likelihood(x, params: GMMParams, covariance_type: str, *, marginal: bool = False, n_rows=None):
    """The data sites: z_i (enumerated) and x_i, or x_i from the marginal mixture.

    Args:
      x: (N, D) observations, or None to sample ``n_rows`` new ones.
      params: mixture parameters (arrays or sampled sites).
      covariance_type: shape convention of ``params.covariances``.
      marginal: use ``MixtureSameFamily`` (z summed out analytically) instead of an
        enumerated discrete site.
    """
    import numpyro  # where it is used (see sample_params)
    import numpyro.distributions as dist

    K, D = params.means.shape
    full = covariance.get(covariance_type).to_full(params.covariances, K, D)
    scale_tril = jnp.linalg.cholesky(full)
    n = x.shape[0] if x is not None else n_rows
    with numpyro.plate("data", n):
        if marginal:
            mixture = dist.MixtureSameFamily(
                dist.Categorical(probs=params.weights),
                dist.MultivariateNormal(params.means, scale_tril=scale_tril),
            )
            numpyro.sample("x", mixture, obs=x)
        else:
            z = numpyro.sample("z", dist.Categorical(probs=params.weights), infer={"enumerate": "parallel"})
            numpyro.sample("x", dist.MultivariateNormal(params.means[z], scale_tril=scale_tril[z]), obs=x)


def gmm_model(
    x=None,
    *,
    n_components: int,
    covariance_type: str = "full",
    prior: Prior,
    marginal: bool = False,
    n_rows: int | None = None,
):
    """The full generative model: ``sample_params`` then ``mixture_likelihood``.

    With ``x=None`` it simulates ``n_rows`` rows; the number of features comes from
    ``prior.mean``.
    """
    n_features = jnp.shape(prior.mean)[-1]
    params = sample_params(n_components, n_features, covariance_type, prior)
    mixture_likelihood(x, params, covariance_type, marginal=marginal, n_rows=n_rows)
    return params


def log_prior(params: GMMParams, covariance_type: str | covariance.CovarianceType, prior: Prior, present=None):
    """log p(params) under ``prior``: log Dirichlet(weights | alpha) plus the structure's
    conjugate prior on the means and covariances (``covariance.priors``). For scikit-learn's
    four types this is the log density of ``sample_params``' NumPyro sites at ``params``,
    which the tests hold it to; the other structures have no such sites.

    ``covariance_type``: a name, or a record (``covariance.chosen``'s, in a shared program).
    ``present`` (K,) bool: the components of the model, the others padding (MAP-EM holds
    components beyond K at weight 0, ``stats.objective``); None for all."""
    from jax.scipy.special import gammaln, xlogy

    present = jnp.ones(params.weights.shape, bool) if present is None else present
    alpha = jnp.where(present, jnp.broadcast_to(jnp.asarray(prior.alpha, params.weights.dtype), present.shape), 0.0)
    each = jnp.where(present, xlogy(alpha - 1, params.weights) - gammaln(alpha), 0.0)
    dirichlet = gammaln(jnp.sum(alpha)) + jnp.sum(each)
    if not isinstance(covariance_type, covariance.CovarianceType):
        covariance_type = covariance.get(covariance_type)
    return dirichlet + covariance_type.prior.log_density(params.means, params.covariances, prior, present)
