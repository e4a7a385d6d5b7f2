"""The fitted mixture as a density estimator: marginals, conditionals, and the density on a
grid for plotting (the lecture's last figure).

A Gaussian mixture stays a Gaussian mixture under both operations, in closed form:
  * marginal over coordinates a: the same weights, means mu_k[a], covariances Sigma_k[a, a];
  * conditional on x_b = v: weights proportional to pi_k N(v | mu_k[b], Sigma_k[b, b]),
    means mu_k[a] + Sigma_k[a, b] Sigma_k[b, b]^{-1} (v - mu_k[b]),
    covariances Sigma_k[a, a] - Sigma_k[a, b] Sigma_k[b, b]^{-1} Sigma_k[b, a].
Both return 'full' parameters (NumPy, float64), ready for ``log_likelihood``.
"""

from __future__ import annotations

import numpy as np

from gmm_ppl import _validate, covariance
from gmm_ppl.likelihood import component_log_prob, log_likelihood
from gmm_ppl.params import GMMParams


def full_covariances(covariances, covariance_type: str, n_components: int, n_features: int) -> np.ndarray:
    """(K, D, D) float64 NumPy covariance matrices from any covariance type's storage."""
    with _validate.precision(np.float64):
        full = covariance.get(covariance_type).to_full(np.asarray(covariances, np.float64), n_components, n_features)
        return np.asarray(full, dtype=np.float64)


def _full(params: GMMParams, covariance_type: str | None):
    params = GMMParams(*(np.asarray(a, dtype=np.float64) for a in params))
    covariance_type = covariance_type or covariance.infer_covariance_type(params)
    K, D = params.means.shape
    params = _validate.check_params(params, K, D, covariance_type, name="params")
    return params.weights, params.means, full_covariances(params.covariances, covariance_type, K, D)


def _dims(dims, n_features: int, name: str) -> np.ndarray:
    dims = np.atleast_1d(np.asarray(dims))
    if dims.dtype.kind not in "iu" or dims.ndim != 1 or len(dims) == 0:
        raise ValueError(f"{name} must be a non-empty list of feature indices; got {dims!r}")
    if np.any(dims < 0) or np.any(dims >= n_features) or len(set(dims.tolist())) != len(dims):
        raise ValueError(f"{name} must be distinct feature indices in [0, {n_features}); got {dims.tolist()}")
    return dims


def marginal(params: GMMParams, dims, covariance_type: str | None = None) -> GMMParams:
    """The mixture of the coordinates ``dims`` alone (full covariances).

    Example:
      >>> waiting = gp.marginal(fit.params, [1])        # a 1-D mixture of waiting times
      >>> gp.log_likelihood(waiting, x[:, [1]])
    """
    weights, means, full = _full(params, covariance_type)
    a = _dims(dims, means.shape[1], "dims")
    return GMMParams(weights, means[:, a], full[:, a[:, None], a])


def conditional(params: GMMParams, given, values, covariance_type: str | None = None) -> GMMParams:
    """The mixture of the other coordinates given x[given] = values (full covariances).

    Args:
      params: a fitted mixture.
      given: indices of the conditioning coordinates.
      values: their values, shape (len(given),).
      covariance_type: of ``params``; inferred from shapes if omitted.

    Example:
      >>> eruption_given_wait = gp.conditional(fit.params, given=[1], values=[80.0])
    """
    weights, means, full = _full(params, covariance_type)
    D = means.shape[1]
    b = _dims(given, D, "given")
    if len(b) == D:
        raise ValueError("given must leave at least one coordinate to condition")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (len(b),) or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be {len(b)} finite numbers, one per given coordinate; got {values!r}")
    a = np.setdiff1d(np.arange(D), b)
    s_bb = full[:, b[:, None], b]
    s_ab = full[:, a[:, None], b]
    gain = np.linalg.solve(s_bb, np.swapaxes(s_ab, 1, 2))  # (K, |b|, |a|) = S_bb^{-1} S_ba
    means_a = means[:, a] + np.einsum("kba,kb->ka", gain, v - means[:, b])
    cov_a = full[:, a[:, None], a] - s_ab @ gain
    cov_a = (cov_a + np.swapaxes(cov_a, 1, 2)) / 2  # symmetric to round-off
    # Each component's weight is re-weighted by how well it explains the given values.
    log_w = component_log_prob(GMMParams(weights, means[:, b], s_bb), v[None], "full")[0]
    # normalised as scipy's softmax does; NumPy rather than scipy.special, whose import cost
    # every select_model's first call 0.1-0.2 s (this module gives it full_covariances)
    shifted = np.exp(log_w - np.max(log_w))
    return GMMParams(shifted / np.sum(shifted), means_a, cov_a)


def density_grid(params: GMMParams, bounds, resolution: int = 100, dims=(0, 1), covariance_type: str | None = None):
    """Log density of the (marginal) mixture on a regular 2-D grid, for contour plots.

    Args:
      params: a fitted mixture.
      bounds: ((x_min, x_max), (y_min, y_max)) in the coordinates ``dims``.
      resolution: points per axis.
      dims: the two coordinates to show; other coordinates are marginalised out.

    Returns:
      (xs (resolution,), ys (resolution,), log_density (resolution, resolution)), with
      ``log_density[i, j]`` at (xs[j], ys[i]): ready for ``plt.contour(xs, ys, log_density)``.
    """
    resolution = _validate.check_int(resolution, "resolution", 2)
    (x0, x1), (y0, y1) = np.asarray(bounds, dtype=np.float64)
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    plane = marginal(params, list(dims), covariance_type)
    return xs, ys, np.asarray(log_likelihood(plane, grid, "full")).reshape(resolution, resolution)
