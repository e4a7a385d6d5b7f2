"""The core pytrees: mixture parameters, sufficient statistics and the conjugate prior.

All three are NamedTuples of arrays, so they work under ``jit``, ``vmap`` (a leading
restart axis) and ``jax.tree.map``. They hold no validation: checks live in
``gmm_ppl._validate`` and run on the Python side before anything is compiled.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class GMMParams(NamedTuple):
    """Parameters of a K-component Gaussian mixture in D dimensions.

    Attributes:
      weights: (K,) mixing proportions, summing to one.
      means: (K, D) component means.
      covariances: shaped by the covariance type, as in scikit-learn:
        full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array


class SuffStats(NamedTuple):
    """Additive sufficient statistics of one pass of the E-step over some rows.

    Moments are taken around reference means ``m`` (the means the E-step ran at), not
    around zero, so that float32 stays accurate on data far from the origin. Statistics of
    two sets of rows computed around the same reference simply add.

    Attributes:
      n: (K,) weighted responsibility totals, sum_i w_i r_ik.
      s1: (K, D) sum_i w_i r_ik (x_i - m_k).
      s2: second moments sum_i w_i r_ik (x_i - m_k)(x_i - m_k)^T reduced to the
        covariance type: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
      loglik: () sum_i w_i log p(x_i).
      weight: () sum_i w_i.
    """

    n: jax.Array
    s1: jax.Array
    s2: jax.Array
    loglik: jax.Array
    weight: jax.Array


class Prior(NamedTuple):
    """The conjugate prior, consumed by MAP-EM and by the NumPyro model alike.

    ``weights ~ Dirichlet(alpha)`` and, per component, a Normal-Inverse-Wishart on the
    mean and covariance: ``Sigma_k ~ InverseWishart(dof, scale)``,
    ``mu_k | Sigma_k ~ Normal(mean, Sigma_k / kappa)``. Diagonal and spherical structures
    take an InverseGamma(dof / 2, tr(scale) / (2 D)) on each variance; a structure whose
    components share one covariance has its prior once (``gmm_ppl.covariance.priors``,
    every structure). Build one with ``gmm_ppl.default_prior``.

    Attributes:
      alpha: (K,) Dirichlet concentration; MAP-EM needs alpha >= 1.
      mean: (D,) prior mean of the component means (m0).
      kappa: () prior strength of the mean, in pseudo-observations (kappa0).
      dof: () Inverse-Wishart degrees of freedom (nu0), greater than D - 1.
      scale: (D, D) Inverse-Wishart scale matrix (Psi0), positive definite.
    """

    alpha: jax.Array
    mean: jax.Array
    kappa: jax.Array
    dof: jax.Array
    scale: jax.Array


def with_components(prior: Prior, n_components: int) -> Prior:
    """``prior`` for a program of ``n_components``: its Dirichlet alpha cut to the first
    n_components, or padded with 1 for components held at weight 0 (which have no prior,
    ``gmm_ppl.covariance.priors``, so the padding's value is never read)."""
    alpha = np.asarray(prior.alpha)[:n_components]
    return prior._replace(alpha=np.pad(alpha, (0, n_components - len(alpha)), constant_values=1.0))
