"""EM's own uncertainty: standard errors from the observed information, and the bootstrap.

``em_standard_errors(fit, x)`` differentiates the fit's objective twice by autodiff (the
marginal log-likelihood summed over rows, or the log posterior for a MAP fit) in the
structure's unconstrained chart (weight logits, means, ``covariance.charts``), and carries
the inverse of that observed information to the weights, means and covariance entries by
the delta method. The charts have more coordinates than the model has free parameters
(the logits' common shift, a Cholesky factor's upper triangle, rotations' base points): the
information is inverted on the directions that move the parameters, the row space of the
parameters' Jacobian, whose dimension is the model's free-parameter count (checked). At a
stationary point the result does not depend on the chart.

``bootstrap_em(fit, x, n_boot)`` refits replicates of the data (rows drawn with
replacement, Dirichlet row weights, or rows drawn from the fit), each an EM started at the
fit, all in one compiled program, and matches each replicate's components to the fit's.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, programs
from gmm_ppl.likelihood import joint_log_prob
from gmm_ppl.model import log_prior
from gmm_ppl.params import GMMParams


@dataclasses.dataclass(frozen=True)
class StandardErrors:
    """What ``em_standard_errors`` returns.

    Attributes:
      params: the standard errors, a ``GMMParams`` shaped as the fit's parameters (the
        covariances in the fit's storage).
      covariance: (P, P) the delta method's covariance of the flattened parameters
        (weights, then means, then covariances, each in C order), P their count.
      information: (F, F) the observed information on the free directions, F the model's
        free-parameter count.
    """

    params: GMMParams
    covariance: np.ndarray
    information: np.ndarray

    def intervals(self, fit, level: float = 0.9) -> tuple[GMMParams, GMMParams]:
        """Wald intervals estimate -/+ z * standard error at ``level`` (normal quantiles), as
        (lower, upper) ``GMMParams``."""
        from scipy.stats import norm

        z = norm.ppf(0.5 + level / 2)
        lower = GMMParams(*(np.asarray(p) - z * s for p, s in zip(fit.params, self.params, strict=True)))
        upper = GMMParams(*(np.asarray(p) + z * s for p, s in zip(fit.params, self.params, strict=True)))
        return lower, upper


def _derivatives(x, w, params, prior, *, covariance_type):
    """(the Jacobian of the flattened parameters, the Hessian of the objective) with respect
    to the chart's coordinates at ``params``."""
    cov_type = covariance.get(covariance_type)
    K, D = params.means.shape
    start = (jnp.log(params.weights), params.means, cov_type.chart.unconstrain(params.covariances))
    flat, unflatten = jax.flatten_util.ravel_pytree(start)

    def constrained(v):
        logits, means, cov_u = unflatten(v)
        return GMMParams(jax.nn.softmax(logits), means, cov_type.chart.constrain(cov_u, K, D))

    def flat_params(v):
        return jnp.concatenate([jnp.ravel(a) for a in constrained(v)])

    def total(v):
        """sum_i w_i log p(x_i) (+ log p(params) for MAP), from the one likelihood on all
        rows at once: its Hessian compiles in a fraction of the time the chunked E-step's takes."""
        p = constrained(v)
        value = jnp.sum(w * jax.nn.logsumexp(joint_log_prob(p, x, cov_type), axis=1))
        return value if prior is None else value + log_prior(p, covariance_type, prior)

    return jax.jacfwd(flat_params)(flat), jax.hessian(total)(flat)


_derivatives_program = programs.program("em_standard_errors", _derivatives, static_argnames=("covariance_type",))


def em_standard_errors(fit, x, sample_weight=None) -> StandardErrors:
    """Standard errors of an EM fit's weights, means and covariances from the observed
    information (the negative Hessian of its objective times the rows' total weight: the
    log-likelihood, or the log posterior for a MAP fit).

    Meaningful at a converged fit (a stationary point); float64 fits give the accurate
    Hessian. A weight of 0 (a padded or emptied component) has no information: give a fit
    whose components all have rows.

    Args:
      fit: an ``EMResult`` from ``fit_em``.
      x: (N, D) the data it was fitted to.
      sample_weight: (N,) the row weights it was fitted with, if any.

    Returns:
      ``StandardErrors``.
    """
    params = GMMParams(*(np.asarray(a) for a in fit.params))
    K, D = params.means.shape
    if np.any(params.weights <= 0):
        raise ValueError("em_standard_errors: a component has weight 0, so no information; fit without it")
    x = _validate.as_data(x, n_features=D)
    w = _validate.check_sample_weight(sample_weight, x.shape[0])
    dtype = _validate.dtype_of(params.means)
    with _validate.precision(dtype):
        jacobian, hessian = _derivatives_program(
            *(_validate.to_device(a, dtype) for a in (x, w, params, fit.prior)), covariance_type=fit.covariance_type
        )
        jacobian, hessian = (np.asarray(a, np.float64) for a in (jacobian, hessian))
    # The directions that move the parameters: the row space of the Jacobian.
    _, singular, vt = np.linalg.svd(jacobian)
    rank = int(np.sum(singular > singular[0] * 1e3 * np.finfo(dtype).eps * max(jacobian.shape)))
    expected = covariance.n_free_parameters(K, D, fit.covariance_type)
    if rank != expected:
        raise FloatingPointError(
            f"em_standard_errors: the chart of {fit.covariance_type!r} moves {rank} parameters here, "
            f"the model has {expected}: a degenerate fit (a collapsed component?)"
        )
    free = vt[:rank].T  # (chart coordinates, F)
    information = -free.T @ hessian @ free
    information = 0.5 * (information + information.T)
    if np.linalg.eigvalsh(information)[0] <= 0:
        raise FloatingPointError(
            "em_standard_errors: the observed information is not positive definite: "
            "the fit is not a local maximum (converge it further, tol smaller, float64)"
        )
    carry = jacobian @ free
    cov = carry @ np.linalg.solve(information, carry.T)
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    shapes = [np.shape(a) for a in params]
    pieces = np.split(errors, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
    standard = GMMParams(*(piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True)))
    return StandardErrors(params=standard, covariance=cov, information=information)


BOOTSTRAP_KINDS = ("nonparametric", "weighted", "parametric")


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """What ``bootstrap_em`` returns.

    Attributes:
      replicates: a ``GMMParams`` with a leading axis of ``n_boot``: each replicate's fit,
        its components matched to the fit's.
      converged: (n_boot,) whether each replicate's EM met its tolerance.
      kind: 'nonparametric', 'weighted' or 'parametric'.
      finite: (n_boot,) whether each replicate ended with finite parameters. One whose
        component collapsed onto too few rows (possible at ``reg_covar=0``) has NaN ones;
        the standard errors and intervals leave it out.
    """

    replicates: GMMParams
    converged: np.ndarray
    kind: str
    finite: np.ndarray

    def _kept(self) -> GMMParams:
        return GMMParams(*(np.asarray(a)[self.finite] for a in self.replicates))

    @property
    def standard_errors(self) -> GMMParams:
        """The finite replicates' standard deviations, shaped as the fit's parameters."""
        return GMMParams(*(np.std(a, axis=0, ddof=1) for a in self._kept()))

    def intervals(self, level: float = 0.9) -> tuple[GMMParams, GMMParams]:
        """Percentile intervals of the finite replicates at ``level``, as (lower, upper)
        ``GMMParams``."""
        low, high = 50 * (1 - level), 50 * (1 + level)
        kept = self._kept()
        return (
            GMMParams(*(np.percentile(a, low, axis=0) for a in kept)),
            GMMParams(*(np.percentile(a, high, axis=0) for a in kept)),
        )


def _replicates_body(xs, ws, given, prior, tol, reg_covar, **static):
    """Every replicate's EM from ``given`` (the fit), one after another in one program."""
    from gmm_ppl.em import fit_body

    key = jax.random.key(0)  # unused: every replicate starts at the given parameters

    def one(args):
        x, w = args
        fit = fit_body(x, w, key, given, prior, tol, reg_covar, **static)
        return fit.params, fit.converged

    return jax.lax.map(one, (xs, ws))


_replicates_program = programs.program(
    "bootstrap_em",
    _replicates_body,
    static_argnames=("max_iter", "n_components", "covariance_type", "n_init", "init", "chunk_size"),
)


def bootstrap_em(fit, x, n_boot: int = 200, *, kind: str = "nonparametric", key=0, tol=1e-8, max_iter=1000,
                 reg_covar=None, sample_weight=None) -> Bootstrap:  # fmt: skip
    """The bootstrap of an EM fit: ``n_boot`` replicates, each an EM started at the fit,
    all in one compiled call (mclust's ``MclustBootstrap`` does the same from the fit's
    responsibilities).

    Kinds: 'nonparametric' (each replicate's rows drawn with replacement: multinomial row
    counts as sample weights), 'weighted' (Rubin's Bayesian bootstrap: Dirichlet(1, ..., 1)
    row weights times N, the weighted likelihood bootstrap), 'parametric' (N new rows drawn
    from the fitted mixture). A MAP fit's replicates are MAP fits under its prior. Each
    replicate's components are matched to the fit's (by their means, the assignment that
    moves them least), so label switching does not blur the errors.

    Args:
      fit: an ``EMResult`` from ``fit_em``.
      x: (N, D) the data it was fitted to.
      n_boot: replicates.
      kind: 'nonparametric', 'weighted' or 'parametric'.
      key: the seed of the replicates' draws (NumPy).
      tol, max_iter: each replicate's EM, as ``fit_em``'s.
      reg_covar: as ``fit_em``'s; default 0 in float64, 1e-6 in float32.
      sample_weight: (N,) the row weights the fit was made with, if any (nonparametric and
        weighted kinds multiply them).

    Returns:
      ``Bootstrap``.
    """
    from scipy.optimize import linear_sum_assignment

    from gmm_ppl.density import full_covariances
    from gmm_ppl.stats import default_chunk_size

    if kind not in BOOTSTRAP_KINDS:
        raise ValueError(f"kind must be one of {BOOTSTRAP_KINDS}; got {kind!r}")
    n_boot = _validate.check_int(n_boot, "n_boot")
    params = GMMParams(*(np.asarray(a) for a in fit.params))
    K, D = params.means.shape
    x = _validate.as_data(x, n_features=D)
    N = x.shape[0]
    w = _validate.check_sample_weight(sample_weight, N)
    dtype = _validate.dtype_of(params.means)
    if reg_covar is None:
        reg_covar = 0.0 if dtype == np.float64 else 1e-6
    rng = np.random.default_rng(key)
    if kind == "nonparametric":
        xs = np.broadcast_to(x, (n_boot, N, D))
        ws = rng.multinomial(N, np.full(N, 1.0 / N), size=n_boot) * w
    elif kind == "weighted":
        xs = np.broadcast_to(x, (n_boot, N, D))
        ws = rng.dirichlet(np.ones(N), size=n_boot) * N * w
    else:
        full = full_covariances(params.covariances, fit.covariance_type, K, D)
        labels = rng.choice(K, size=(n_boot, N), p=params.weights / params.weights.sum())
        noise = rng.standard_normal((n_boot, N, D))
        chol = np.linalg.cholesky(full)
        xs = params.means[labels] + np.einsum("bnde,bne->bnd", chol[labels], noise)
        ws = np.ones((n_boot, N))
    with _validate.precision(dtype):
        cast = functools.partial(_validate.to_device, dtype=dtype)
        replicates, converged = _replicates_program(
            cast(np.ascontiguousarray(xs)),
            cast(ws),
            cast(params),
            cast(fit.prior),
            cast(tol),
            cast(reg_covar),
            max_iter=int(max_iter),
            n_components=K,
            covariance_type=fit.covariance_type,
            n_init=1,
            init="given",
            chunk_size=default_chunk_size(N, K, D),
        )
        replicates, converged = jax.device_get((replicates, converged))
    replicates = GMMParams(*(np.array(a) for a in replicates))
    finite = np.all([np.isfinite(a.reshape(n_boot, -1)).all(axis=1) for a in replicates], axis=0)
    if not finite.any():
        raise FloatingPointError("bootstrap_em: every replicate ended with non-finite parameters; try reg_covar > 0")
    tied = covariance.get(fit.covariance_type).family == "tied"
    for b in np.flatnonzero(finite):  # match each replicate's components to the fit's
        cost = np.sum((replicates.means[b][:, None, :] - params.means[None]) ** 2, axis=-1)
        _, order = linear_sum_assignment(cost.T)  # fit's component j <- replicate's order[j]
        replicates.weights[b] = replicates.weights[b][order]
        replicates.means[b] = replicates.means[b][order]
        if not tied:
            replicates.covariances[b] = replicates.covariances[b][order]
    return Bootstrap(replicates=replicates, converged=np.asarray(converged), kind=kind, finite=finite)
