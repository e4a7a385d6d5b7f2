"""The one likelihood of the mixture, shared by EM, the checks and the public API.

log p(x_i, z_i = k) = log pi_k + log N(x_i | mu_k, Sigma_k), and the per-row density is its
log-sum-exp over k, which stays finite when every component density underflows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, programs
from gmm_ppl.params import GMMParams


def joint_log_prob(params: GMMParams, x, cov_type: covariance.CovarianceType):
    """(N, K) log pi_k + log N(x_i | mu_k, Sigma_k): the traceable core.

    Differences x_i - mu_k are formed first, (N, K, D): the data here need not be centred,
    and subtracting the mean first keeps float32 accurate far from the origin (EM's E-step,
    on centred data, uses the column form ``cov_type.estep.mahalanobis_cols`` instead).
    """
    diff = x[:, None, :] - params.means[None, :, :]
    factor = cov_type.estep.precision_factor(params.covariances)
    return log_constants(params, factor, cov_type) - 0.5 * cov_type.estep.mahalanobis(diff, factor)


def log_constants(params: GMMParams, factor, cov_type: covariance.CovarianceType):
    """(K,) log pi_k plus the log of component k's normalising constant: the part of
    log pi_k N(x | mu_k, Sigma_k) that does not depend on x. ``factor`` is
    ``cov_type.estep.precision_factor(params.covariances)``, which callers derive once."""
    K, D = params.means.shape
    return jnp.log(params.weights) - 0.5 * D * math.log(2 * math.pi) + cov_type.estep.half_log_det(factor, K, D)


# What an evaluation returns, reduced over the components inside the program: applied
# outside it, operation by operation, JAX compiled each of its operations for each new
# shape (27 small programs in the demo's report, warm disk cache or not). Padded
# components have log weight -inf, so they add exact zeros to a row's sum over components.
_REDUCTIONS = {
    "components": lambda log_prob: log_prob,
    "rows": lambda log_prob: jax.nn.logsumexp(log_prob, axis=1),
    "responsibilities": lambda log_prob: jax.nn.softmax(log_prob, axis=1),
}


@programs.compiled("component_log_prob", static_argnames=("covariance_type", "reduce"))
def _component_log_prob(params, x, covariance_type, reduce="components"):
    """The (N, K) joint log densities, or their reduction ``reduce`` (``_REDUCTIONS``)."""
    return _REDUCTIONS[reduce](joint_log_prob(params, x, covariance.get(covariance_type)))


def _evaluate(params, x, covariance_type, reduce: str):
    """Validate, then run the jitted core in the dtype of ``params``, reduced as ``reduce``
    (a key of ``_REDUCTIONS``)."""
    params = GMMParams(*params)
    dtype = _validate.dtype_of(params.means)
    if np.ndim(params.means) != 2:
        raise ValueError(f"params.means must have shape (K, D); got {np.shape(params.means)}")
    covariance_type = covariance_type or covariance.infer_covariance_type(params)
    K, D = np.shape(params.means)
    if any(p is None for p in params):
        raise ValueError("params must have weights, means and covariances")
    params = _validate.check_params(params, K, D, covariance_type, name="params")
    x = _validate.as_data_where_it_is(x, n_features=D)  # a JAX array stays on its device
    N = x.shape[0]
    padded = None if isinstance(x, jax.Array) else programs.padded_shape(N, K, D, 1)
    # The density is the storage family's: one program per family (and reduction), not per
    # structure (VVE's is full's). A small evaluation also shares the storage of scikit-learn's wider type
    # (spherical held as diag, tied as full), as fit_em's small fits do: two programs for
    # a notebook's four types.
    family = covariance.get(covariance_type).family
    if padded is not None:
        x, params = _pad(x, params, covariance_type, *padded)
        params = params._replace(covariances=covariance.to_shared(params.covariances, covariance_type, padded[1], D))
        family = covariance.shared_family(covariance_type)
    with _validate.precision(dtype):
        out = _component_log_prob(params, _validate.to_device(x, dtype), family, reduce)
    # NumPy out, as fit_em: float64 stays float64 whatever JAX's x64 setting. Padding cut
    # off on the host (slicing a JAX array compiles a program of its own), into an array of
    # its own, not a view that keeps the padded one.
    out = np.asarray(out)
    return np.ascontiguousarray(out[:N] if reduce == "rows" else out[:N, :K])


def _pad(x, params: GMMParams, covariance_type: str, rows: int, components: int):
    """Small data and parameters padded to a shared shape (``programs.padded_shape``), so that
    one program serves several N and K: zero rows, and components of weight 0 (log weight
    -inf) that copy the first component's mean and covariance (valid for every structure).
    Each row's and component's log density is computed on its own, so the first N rows and
    K columns are those of the unpadded call."""
    K = params.means.shape[0]

    def repeat_first(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[:1], components - K, axis=0)])

    tied = covariance.get(covariance_type).family == "tied"
    return np.pad(x, ((0, rows - x.shape[0]), (0, 0))), GMMParams(
        np.pad(np.asarray(params.weights), (0, components - K)),
        repeat_first(params.means),
        params.covariances if tied else repeat_first(params.covariances),
    )


def component_log_prob(params: GMMParams, x, covariance_type: str | None = None) -> np.ndarray:
    """Per-component joint log densities ``log pi_k + log N(x_i | mu_k, Sigma_k)``.

    This is the (N, K) array an E-step needs; it equals NumPyro's
    ``MixtureSameFamily.component_log_probs``.

    Args:
      params: the mixture parameters.
      x: (N, D) data.
      covariance_type: 'full', 'tied', 'diag' or 'spherical'; inferred from the shape of
        ``params.covariances`` when omitted (an error when K == D makes it ambiguous).

    Returns:
      (N, K) NumPy array in the dtype of ``params``.
    """
    return _evaluate(params, x, covariance_type, "components")


def log_likelihood(params: GMMParams, x, covariance_type: str | None = None) -> np.ndarray:
    """Per-row log density ``log p(x_i) = logsumexp_k [log pi_k + log N(x_i | mu_k, Sigma_k)]``.

    Example:
      >>> fit = gp.fit_em(x, 2, key=jax.random.key(0))
      >>> gp.log_likelihood(fit.params, x).mean()   # equals fit.log_likelihood
    """
    return _evaluate(params, x, covariance_type, "rows")


def responsibilities(params: GMMParams, x, covariance_type: str | None = None) -> np.ndarray:
    """(N, K) posterior assignment probabilities p(z_i = k | x_i); rows sum to one."""
    return _evaluate(params, x, covariance_type, "responsibilities")
