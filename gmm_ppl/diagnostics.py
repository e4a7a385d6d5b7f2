"""Checks a user can run on a fit: is it a stationary point of its objective?"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance
from gmm_ppl.params import GMMParams
from gmm_ppl.stats import default_chunk_size, objective, sufficient_statistics, to_chunks


def check_stationarity(fit, x, sample_weight=None) -> float:
    """Norm of the gradient of the fit's objective at ``fit.params``.

    The objective is the one EM maximised: the mean per-row log-likelihood, plus
    log-prior / sum of weights for a MAP fit. The gradient is taken by autodiff with respect
    to an unconstrained parameterisation (weight logits, means, and log-Cholesky factors
    or log-variances of the covariances), in which a local maximum has zero gradient.
    With ``reg_covar`` > 0 the EM fixed point is shifted by about ``reg_covar`` and the
    norm is not exactly zero; use float64 and a small ``tol`` for a tight check.

    Args:
      fit: an ``EMResult`` from ``fit_em``.
      x: (N, D) the data it was fitted to.
      sample_weight: (N,) the row weights it was fitted with, if any.

    Returns:
      The Euclidean norm of the gradient over all unconstrained parameters.
    """
    cov_type = covariance.get(fit.covariance_type)
    params = GMMParams(*fit.params)
    K, D = params.means.shape
    x = _validate.as_data(x, n_features=D)
    w = _validate.check_sample_weight(sample_weight, x.shape[0])
    dtype = _validate.dtype_of(params.means)
    with _validate.precision(dtype):
        # Chunked by NumPy, then put on the device: made by JAX outside a program, they
        # compiled one program an operation. Constants of the program below.
        chunks = to_chunks(np.asarray(x, dtype), np.asarray(w, dtype), default_chunk_size(x.shape[0], K, D))
        data = _validate.to_device(chunks, dtype)

        def value(u):
            logits, means, cov_u = u
            p = GMMParams(jax.nn.softmax(logits), means, cov_type.chart.constrain(cov_u, K, D))
            return objective(sufficient_statistics(data, p, cov_type), p, fit.covariance_type, fit.prior)

        def gradient_norm(at: GMMParams):
            u = (jnp.log(at.weights), at.means, cov_type.chart.unconstrain(at.covariances))
            grads = jax.grad(value)(u)
            return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))

        # One program compiled per call, outside gmm_ppl.programs: the data are constants of
        # it, and as an argument of a registered one they moved the gradient's norm by 3e-6
        # of itself in float32 (1e-13 in float64). The parameterisation and the norm are in
        # it too: run operation by operation they compiled about 25 small programs a call.
        return float(jax.jit(gradient_norm)(_validate.to_device(params, dtype)))
