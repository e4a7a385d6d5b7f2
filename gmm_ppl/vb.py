"""Variational Bayes for the mixture: mean-field coordinate ascent on EM's statistics.

q(z) q(pi) prod_k q(mu_k, Lambda_k) under the conjugate prior (Bishop 2006, section 10.2;
the truncated stick-breaking weights of Blei and Jordan 2006). One iteration is EM's: a
pass over the rows that collects the additive statistics (``stats.sufficient_statistics``,
the same chunked pass), then closed-form updates of q(pi) and q(mu, Lambda) from them. So
VB runs in the one loop (``gmm_ppl.driver``), restarts batched with ``vmap``, and what makes
the pass fast makes VB fast.

Why the pass is EM's. Under q, the E-step's log rho_ik = E[log pi_k] + E[log N(x_i | mu_k,
Lambda_k)] is a Gaussian log density in x_i with precision E[Lambda_k] = C_k^{-1} and a
constant of its own: the pass runs at the "expected parameters" (``expected_params``), whose
weights carry E[log pi_k], the expected log-determinant beyond log|C_k|^{-1} and the mean's
-D / (2 beta_k).

The value of an iteration is the evidence lower bound (ELBO) at q(z) from its pass and the
q(pi), q(mu, Lambda) of its update. At that point (q(theta) optimal for q(z)) the ELBO is the
entropy of q(z) plus log normalisers of the updated q over the prior's (Bishop's eq. 10.70
to 10.77 after cancellation, and scikit-learn's ``_compute_lower_bound``), and the entropy
comes from the same statistics: H = sum_i log sum_k rho_ik - sum_k E_q(z)[log rho_ik]. It is
the whole ELBO, constants included, summed over rows (not per row, as EM's objective is):
coordinate ascent never lowers it (a property test) and ``tol`` applies to it, as in
scikit-learn's ``BayesianGaussianMixture``.

The updates are held in scikit-learn's parametrisation (``VBPrior``): nu_k = nu0 + c_k and
C_k = (psi + (scatter_k + kappa-term) / r + c_k reg I) / nu_k, where the count c_k and divisor
r are per family: full and diag c_k = N_k, r = 1; tied c = N / K, r = K; spherical c_k = N_k,
r = D. In that form every family's update is the exact mean-field update of a conjugate prior
(``from_prior`` maps gmm_ppl's ``Prior`` onto it): an inverse-Wishart for full and for tied's
one shared covariance, an inverse-gamma on each variance for diag and spherical, as MAP-EM's
(``gmm_ppl.covariance.priors``). Two variants read it:

  'exact'         the mean-field q of that prior: Wishart's expected log-determinant with
                  r nu_k degrees of freedom (full, tied), gamma's with r nu_k / 2 shape
                  (diag, spherical); the ELBO with the matching normalisers.
  'scikit-learn'  scikit-learn's own reading (``BayesianGaussianMixture``): the Wishart
                  form with nu_k for every family, tied counted as K Wisharts. For full it
                  is the exact one; for the other three it is scikit-learn's approximation,
                  kept so that ``gmm_ppl.BayesianGaussianMixture`` reproduces its fits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

from gmm_ppl import _validate, covariance, driver, programs
from gmm_ppl.covariance import CovarianceType
from gmm_ppl.init import initial_params
from gmm_ppl.likelihood import log_constants
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.random_draws import restart_keys
from gmm_ppl.stats import NEAREST, default_chunk_size, spherical_unit

WEIGHT_PRIORS = ("dirichlet", "dirichlet_process")
VARIANTS = ("exact", "scikit-learn")


class VBPrior(NamedTuple):
    """The prior in the parametrisation of the updates (scikit-learn's ``*_prior_``).

    Attributes:
      concentration: (K,) the Dirichlet's alpha, or () the stick-breaking concentration
        gamma (each stick Beta(1, gamma)).
      mean: (D,) m0. kappa: () the mean's prior precision, in rows (beta0).
      dof: () nu0 in the update's scale (the covariance type's; see the module docstring).
      psi: the covariance prior in the type's storage: full and tied (D, D), diag (D,),
        spherical ().
    """

    concentration: jax.Array
    mean: jax.Array
    kappa: jax.Array
    dof: jax.Array
    psi: jax.Array


class VBParams(NamedTuple):
    """The variational distribution q(pi) q(mu, Lambda), in scikit-learn's parametrisation.

    Attributes:
      concentration: q(pi): (K,) Dirichlet alpha_k, or (2, K) the sticks' Beta(a_k, b_k).
      mean_precision: (K,) beta_k: mu_k | Lambda_k ~ N(means_k, (beta_k Lambda_k)^-1).
      means: (K, D) the means of q(mu_k).
      dof: (K,) nu_k (tied: K equal entries).
      covariances: C_k = E_q[Lambda_k]^-1, in the type's storage (scikit-learn's
        ``covariances_``).
    """

    concentration: jax.Array
    mean_precision: jax.Array
    means: jax.Array
    dof: jax.Array
    covariances: jax.Array


def _divisor(family: str, K: int, D: int) -> int:
    """r: how many copies of the update's prior one covariance's statistics are shared
    among (tied: the K components; spherical: the D features)."""
    return {"full": 1, "diag": 1, "tied": K, "spherical": D}[family]


def _reshape_per_component(values, family: str):
    """(K,) values shaped to broadcast against covariances of ``family``'s storage."""
    return {"full": values[:, None, None], "tied": values[0], "diag": values[:, None], "spherical": values}[family]


def _log_det(covariances, family: str, D: int):
    """(K,) log |C_k| (tied: the shared one, repeated)."""
    if family in ("full", "tied"):
        return jnp.linalg.slogdet(covariances)[1]
    if family == "diag":
        return jnp.sum(jnp.log(covariances), axis=-1)
    return D * jnp.log(covariances)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["prior", "tol", "reg_covar", "previous"],
    meta_fields=["cov_type", "weights", "variant"],
)
@dataclasses.dataclass(frozen=True)
class VB:
    """The VB learner (``gmm_ppl.learners``' protocol): the pass at the expected parameters,
    then the updates of q(pi) and q(mu, Lambda) and the ELBO at that point. The rule is met
    when the ELBO changes by less than ``tol`` (scikit-learn's)."""

    cov_type: CovarianceType
    prior: VBPrior
    tol: jax.Array
    reg_covar: jax.Array
    previous: jax.Array | None = None
    weights: str = "dirichlet"
    variant: str = "exact"

    def initial_value(self, dtype):
        return jnp.asarray(-jnp.inf if self.previous is None else self.previous, dtype)

    def keep_going(self, state, max_iter):
        return ~state.converged & (state.n_iter < max_iter)

    def statistics(self, pass_, q: VBParams):
        return pass_(self.expected_params(q), self.cov_type)

    def step(self, stats, q: VBParams, previous):
        new = self.maximise(stats, q.means)
        value = self.elbo(stats, q, new)
        return new, value, jnp.abs(value - previous) < self.tol

    def init(self, pass_, centers, active=None, assign=NEAREST) -> VBParams:
        """q from an assignment of the rows (nearest centre, or ``assign``), as EM's start."""
        params, spherical = spherical_unit(centers, active)
        return self.maximise(pass_(params, spherical, self.cov_type, assign), params.means)

    # -- the updates --------------------------------------------------------------------

    def maximise(self, stats, reference_means) -> VBParams:
        """q(pi), q(mu, Lambda) from the statistics of q(z), taken around ``reference_means``."""
        K, D = stats.s1.shape
        p, family, mstep = self.prior, self.cov_type.family, self.cov_type.mstep
        n = stats.n + 10 * jnp.finfo(stats.s1.dtype).eps  # scikit-learn's guard, as EM's
        shift = stats.s1 / n[:, None]
        xbar = reference_means + shift
        scatter = stats.s2 - mstep.outer(stats.s1, shift)  # around each component's own mean
        beta = p.kappa + n
        means = (p.kappa * p.mean + n[:, None] * xbar) / beta[:, None]
        off = xbar - p.mean
        spread = scatter + mstep.outer((n * p.kappa / beta)[:, None] * off, off)
        count = jnp.broadcast_to(jnp.sum(n) / K, (K,)) if family == "tied" else n
        dof = p.dof + count
        total = mstep.add_to_diagonal(
            p.psi + spread / _divisor(family, K, D), _reshape_per_component(count * self.reg_covar, family)
        )
        covariances = total / _reshape_per_component(dof, family)
        return VBParams(self._concentration(n), beta, means, dof, covariances)

    def _concentration(self, n):
        if self.weights == "dirichlet":
            return self.prior.concentration + n
        rest = jnp.sum(n) - jnp.cumsum(n)  # the rows of the components after k
        return jnp.stack([1.0 + n, self.prior.concentration + rest])

    # -- expectations under q -------------------------------------------------------------

    def expected_log_weights(self, q: VBParams):
        """(K,) E_q[log pi_k]."""
        c = q.concentration
        if self.weights == "dirichlet":
            return digamma(c) - digamma(jnp.sum(c))
        a, b = c
        total = digamma(a + b)
        return digamma(a) - total + jnp.concatenate([jnp.zeros(1, a.dtype), jnp.cumsum(digamma(b) - total)[:-1]])

    def _effective_dof(self, dof, D):
        """(K,) the degrees of freedom the Wishart or gamma form reads: nu_k in scikit-learn's
        reading, r nu_k in the exact one."""
        K = dof.shape[0]
        if self.variant == "scikit-learn":
            return dof
        return _divisor(self.cov_type.family, K, D) * dof

    def _wishart_form(self) -> bool:
        return self.variant == "scikit-learn" or self.cov_type.family in ("full", "tied")

    def _log_weights(self, q: VBParams):
        """(K,) E[log pi_k] + (E[log|Lambda_k|] + log|C_k|) / 2 - D / (2 beta_k): the part of
        log rho_ik that the Gaussian of mean m_k and covariance C_k leaves out."""
        D = q.means.shape[1]
        nu = self._effective_dof(q.dof, D)
        if self._wishart_form():
            digammas = jnp.sum(digamma(0.5 * (nu[:, None] - jnp.arange(D))), axis=1)
        else:
            digammas = D * digamma(0.5 * nu)
        beyond_det = digammas + D * math.log(2.0) - D * jnp.log(nu)
        return self.expected_log_weights(q) + 0.5 * beyond_det - 0.5 * D / q.mean_precision

    def expected_params(self, q: VBParams) -> GMMParams:
        """The parameters at which EM's pass gives log rho_ik up to a constant (see the module
        docstring): means and C_k as they are, and weights exp(``_log_weights``) divided by
        the largest, so that an emptied component's weight (its log weight some -D / (2 kappa)
        below the others') does not take the others down with it when it underflows."""
        log_weights = self._log_weights(q)
        return GMMParams(jnp.exp(log_weights - jnp.max(log_weights)), q.means, q.covariances)

    # -- the bound ---------------------------------------------------------------------------

    def _log_normaliser(self, dof, covariances, D: int):
        """log of the normalising integral of q(Lambda) (or of the prior's, given its dof and
        C = psi / nu0), summed over the covariances the type has: the Wishart's
        2^(nu D / 2) |W|^(nu / 2) Gamma_D(nu / 2) with W^-1 = nu C (its pi^(D(D-1)/4) left out,
        which the bound's difference cancels), or per variance the gamma's Gamma(a) / b^a with
        a = nu / 2, b = nu C / 2."""
        family = self.cov_type.family
        nu = self._effective_dof(dof, D)
        if self._wishart_form():
            log_det = _log_det(covariances, family, D)
            each = (
                -0.5 * nu * (D * jnp.log(nu) + log_det)
                + 0.5 * nu * D * math.log(2.0)
                + jnp.sum(gammaln(0.5 * (nu[:, None] - jnp.arange(D))), axis=1)
            )
            # one shared covariance: once, unless scikit-learn's reading counts it K times
            return each[0] if family == "tied" and self.variant == "exact" else jnp.sum(each)
        a = 0.5 * nu
        if family == "diag":
            return jnp.sum(gammaln(a)[:, None] - a[:, None] * jnp.log(a[:, None] * covariances))
        return jnp.sum(gammaln(a) - a * jnp.log(a * covariances))

    def _log_weights_normaliser(self, concentration):
        if self.weights == "dirichlet":
            return jnp.sum(gammaln(concentration)) - gammaln(jnp.sum(concentration))
        a, b = concentration
        return jnp.sum(gammaln(a) + gammaln(b) - gammaln(a + b))

    def _prior_as_q(self, K: int, D: int):
        """(concentration, dof, C) of the prior, in q's shapes, for its normalisers."""
        p, family = self.prior, self.cov_type.family
        if self.weights == "dirichlet":
            concentration = jnp.broadcast_to(p.concentration, (K,))
        else:
            concentration = jnp.stack([jnp.ones(K, p.mean.dtype), jnp.broadcast_to(p.concentration, (K,))])
        dof = jnp.broadcast_to(p.dof, (K,))
        cov = p.psi / p.dof
        if family != "tied":
            cov = jnp.broadcast_to(cov, self.cov_type.shape(K, D))
        return concentration, dof, cov

    def elbo(self, stats, q: VBParams, new: VBParams):
        """The ELBO at q(z) of the pass at ``q`` and the update ``new`` made from it."""
        K, D = q.means.shape
        family = self.cov_type.family
        expected = self.expected_params(q)
        factor = self.cov_type.estep.precision_factor(q.covariances)
        log_const = log_constants(expected, factor, self.cov_type)
        # sum_i sum_k r_ik log rho_ik, from the moments around q's means; a component whose
        # weight underflowed has no rows (0 * -inf is 0 here)
        quadratic = _trace_with_precision(family, factor, stats.s2)
        expected_log_rho = jnp.sum(jnp.where(stats.n > 0, stats.n * log_const, 0.0)) - 0.5 * jnp.sum(quadratic)
        # The pass ran at weights divided by exp(shift): log rho_ik, its log-sum-exp and so
        # sum_ik r_ik log rho_ik are all lower by shift (times the rows' weight).
        shift = jnp.max(self._log_weights(q))
        entropy = stats.loglik - expected_log_rho + shift * (stats.weight - jnp.sum(stats.n))
        prior_concentration, prior_dof, prior_cov = self._prior_as_q(K, D)
        return (
            entropy
            + self._log_weights_normaliser(new.concentration)
            - self._log_weights_normaliser(prior_concentration)
            + self._log_normaliser(new.dof, new.covariances, D)
            - self._log_normaliser(prior_dof, prior_cov, D)
            + 0.5 * D * jnp.sum(jnp.log(self.prior.kappa / new.mean_precision))
            - 0.5 * D * math.log(2 * math.pi) * stats.weight
        )


def _trace_with_precision(family: str, factor, s2):
    """tr(E[Lambda_k] S_k) per component (tied: summed) from the E-step's precision factor."""
    if family == "full":
        return jnp.sum(factor * (s2 @ factor), axis=(-2, -1))
    if family == "tied":
        return jnp.sum(factor * (s2 @ factor))
    return jnp.sum(factor * s2, axis=-1) if family == "diag" else factor * s2


# -- gmm_ppl's Prior in the updates' form -------------------------------------------------------


def from_prior(prior: Prior, covariance_type: str, weights: str = "dirichlet", concentration=None) -> VBPrior:
    """``prior`` (gmm_ppl's, as MAP-EM and NUTS read it) as the updates' ``VBPrior``: full
    (dof, scale); tied, one inverse-Wishart shared by the K components, (dof / K, scale / K);
    diag, an inverse-gamma(dof / 2, s / 2) on every variance with s = tr(scale) / D,
    (dof, s per feature); spherical, the same on each component's one variance, (dof / D,
    s / D). The weights: the Dirichlet's ``prior.alpha``, or the sticks' ``concentration``."""
    K, D = np.shape(prior.alpha)[0], np.shape(prior.mean)[0]
    family = covariance.get(covariance_type).family
    scale = np.asarray(prior.scale, np.float64)
    s = np.trace(scale) / D  # priors.variance_scale's s, in NumPy: float64 whatever JAX's x64 setting
    dof, psi = {
        "full": (prior.dof, scale),
        "tied": (prior.dof / K, scale / K),
        "diag": (prior.dof, np.full(D, s)),
        "spherical": (prior.dof / D, np.float64(s / D)),
    }[family]
    weight_prior = np.asarray(prior.alpha, np.float64) if weights == "dirichlet" else np.float64(concentration)
    return VBPrior(weight_prior, np.asarray(prior.mean, np.float64), np.float64(prior.kappa), np.float64(dof), psi)


# -- the compiled program -----------------------------------------------------------------------

VB_STATIC = (
    "max_iter", "n_components", "covariance_type", "n_init", "init", "chunk_size", "weights", "variant", "row_blocks"
)  # fmt: skip


def vb_body(
    x,
    w,
    key,
    starts,
    means,
    prior: VBPrior,
    tol,
    reg_covar,
    previous=None,
    *,
    max_iter,
    n_components,
    covariance_type,
    n_init,
    init,
    chunk_size,
    weights,
    variant,
    row_blocks=1,
) -> driver.LoopState:
    """Every restart's run of VB, stacked (traceable). The starts: ``starts`` (``VBParams``
    stacked along a leading restart axis: scikit-learn's, or its warm start, whose first
    change is measured from ``previous``), else the update from the nearest-mean assignment
    to ``means`` (K, D) (one run), else ``n_init`` by ``init`` as EM's (``gmm_ppl.init``)
    from ``key``. ``row_blocks``: the devices the rows are sharded over,
    as ``em.fit_body``'s."""
    shift, xc, statistics = driver.centred(x, w, chunk_size, row_blocks)
    learner = VB(
        covariance.get(covariance_type),
        prior._replace(mean=prior.mean - shift),
        tol,
        reg_covar,
        previous,
        weights,
        variant,
    )
    if starts is not None:
        starts = starts._replace(means=starts.means - shift)
    elif means is not None:
        starts = jax.tree.map(lambda a: a[None], learner.init(statistics, means - shift))
    else:
        starts = jax.vmap(lambda k: initial_params(k, learner, statistics, xc, w, n_components, init))(
            restart_keys(key, n_init)
        )
    capacity = driver.trace_capacity(max_iter)
    runs = driver.over_restarts(lambda s: driver.run(learner, statistics, s, max_iter, capacity), starts)
    return runs._replace(params=runs.params._replace(means=runs.params.means + shift))


# Two builds, as ``fit_em``'s (``programs``): a small problem's VB fit is mostly compiling,
# and the quick build compiles it in a fraction of the optimised build's time.
_vb_program = programs.two_builds("fit_vb", vb_body, static_argnames=VB_STATIC)


def run_vb(
    x,
    w,
    prior: VBPrior,
    *,
    n_components: int,
    covariance_type: str,
    weights: str,
    variant: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    dtype,
    key=None,
    n_init: int = 1,
    init: str = "kmeans++",
    starts: VBParams | None = None,
    means=None,
    previous: float | None = None,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> driver.LoopState:
    """The compiled runs for checked inputs, every restart's end as NumPy arrays (leading
    axis the restarts; the trace cut to max_iter entries: entry t is iteration t + 1's
    ELBO). ``fit_vb`` and ``BayesianGaussianMixture`` call it; the latter gives ``starts``
    (stacked ``VBParams``). ``mesh``: the rows split over its devices, as ``fit_em``'s."""
    from gmm_ppl.em import shard_rows

    N, D = x.shape
    if starts is not None:
        n_init = np.shape(starts.means)[0]
    elif means is not None:
        n_init, init = 1, "given"  # init is unused then: one program
    n_devices = 1 if mesh is None else mesh.devices.size
    if chunk_size is None:
        device = None if mesh is None else mesh.devices.flat[0]
        chunk_size = n_devices * default_chunk_size(
            -(-N // n_devices), n_components, D, n_init, None if device is None else device.platform,
            itemsize=np.dtype(dtype).itemsize, device=device,
        )  # fmt: skip
    # The build by the work of a pass, longer runs counted as more work, as in ``fit_em``.
    platform = None if mesh is None else mesh.devices.flat[0].platform
    program = _vb_program.pick(N * n_components * D * programs.runs_as_work(n_init, max_iter), platform)
    cast = functools.partial(_validate.to_device, dtype=dtype)
    with _validate.precision(dtype):
        x_in, w_in = (cast(x), cast(w)) if mesh is None else shard_rows(x, w, mesh, chunk_size, dtype)
        runs = program(
            x_in,
            w_in,
            key if key is not None else _validate.as_key(None),
            cast(starts),
            cast(means),
            cast(prior),
            cast(tol),
            cast(reg_covar),
            None if previous is None else cast(previous),
            max_iter=max_iter,
            n_components=n_components,
            covariance_type=covariance_type,
            n_init=n_init,
            init=init,
            chunk_size=chunk_size,
            weights=weights,
            variant=variant,
            row_blocks=n_devices,
        )
    runs = jax.device_get(runs)
    return runs._replace(trace=runs.trace[..., :max_iter])


# -- the user's call ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VBResult:
    """What ``fit_vb`` returns.

    Attributes:
      q: the best restart's variational parameters (``VBParams``, NumPy).
      params: ``GMMParams`` summarising q: the weights E_q[pi] (normalised under the sticks,
        as scikit-learn's ``weights_``), the means of q(mu) and C_k = E_q[Lambda_k]^-1 (the
        covariances scikit-learn's ``BayesianGaussianMixture`` reports).
      elbo: () the ELBO after the last iteration (the whole ELBO, summed over rows).
      trace: (max_iter,) the ELBO after iteration 1, 2, ..., n_iter; NaN beyond. Never
        decreases in float64 (with reg_covar=0); in float32 its rounding, relative to a sum
        over rows, can be larger than an iteration's gain on large data.
      n_iter, converged: iterations of the best restart, and whether it met the rule.
      restart_elbos: (n_init,) every restart's last ELBO; best_restart its index.
      prior: the ``Prior``; weights: 'dirichlet' or 'dirichlet_process';
      concentration: the sticks' gamma (None under a Dirichlet); covariance_type.
      idata: ``arviz.InferenceData`` of draws from q, with ``sample_posterior``'s groups and
        dims (None when ``n_draws=0``), so that ArviZ, ``gp.compare`` and
        ``gp.plot_ellipses`` read it as they read a posterior.
    """

    q: VBParams
    params: GMMParams
    elbo: float
    trace: np.ndarray
    n_iter: int
    converged: bool
    restart_elbos: np.ndarray
    best_restart: int
    prior: Prior
    weights: str
    concentration: float | None
    covariance_type: str
    idata: object = None


def stick_weights(sticks) -> np.ndarray:
    """Weights from stick fractions v (..., K): v_k prod_{j<k} (1 - v_j), normalised over the
    K components (the mass beyond the K-th stick left out, as scikit-learn's ``weights_``)."""
    sticks = np.asarray(sticks)
    rest = np.cumprod(1 - sticks[..., :-1], axis=-1)
    w = sticks * np.concatenate([np.ones_like(sticks[..., :1]), rest], axis=-1)
    return w / np.sum(w, axis=-1, keepdims=True)


def point_weights(concentration: np.ndarray, weights: str) -> np.ndarray:
    """E_q[pi]: the Dirichlet's mean, or the sticks' expected weights (``stick_weights`` of
    each stick's mean a / (a + b); scikit-learn's ``weights_``)."""
    concentration = np.asarray(concentration)
    if weights == "dirichlet":
        return concentration / np.sum(concentration)
    a, b = concentration
    return stick_weights(a / (a + b))


# The starts fit_vb takes: EM's, but the deterministic ones (one EM-specific run each).
VB_INITS = ("kmeans++", "kmeans", "random_from_data", "random")


def check_vb_options(covariance_type: str, weights: str, variant: str = "exact") -> str:
    """The structure's canonical name (mclust's VVV, EEE, VVI, VII are scikit-learn's four),
    the weights prior and the variant checked."""
    name = covariance.canonical(covariance_type)
    if not covariance.supports(name, "vb"):
        supported = ", ".join(f"{n} ({covariance.code(n)})" for n in covariance.supporting("vb"))
        raise ValueError(f"covariance_type {covariance_type!r} has no variational Bayes here; VB supports {supported}")
    if weights not in WEIGHT_PRIORS:
        raise ValueError(f"weights must be one of {list(WEIGHT_PRIORS)}; got {weights!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}; got {variant!r}")
    return name


def check_run_options(n_init, max_iter, tol, reg_covar, init):
    """fit_vb's and fit_vb_blocks' run options, checked as fit_em's (``em.check_em_options``):
    (n_init, max_iter, tol, reg_covar)."""
    from gmm_ppl.em import check_em_options

    if init not in VB_INITS:
        raise ValueError(f"unknown init {init!r}; variational Bayes takes {', '.join(map(repr, VB_INITS))}")
    return check_em_options(n_init, max_iter, tol, reg_covar, init)


def fit_vb(
    x,
    n_components: int,
    *,
    covariance_type: str = "full",
    prior: Prior | str = "default",
    weights: str = "dirichlet",
    concentration: float | None = None,
    key=None,
    n_init: int = 1,
    init: str = "kmeans++",
    means_init=None,
    sample_weight=None,
    tol: float = 1e-3,
    reg_covar: float = 0.0,
    max_iter: int = 100,
    dtype="float64",
    n_draws: int = 1000,
    feature_names=None,
    mesh: jax.sharding.Mesh | None = None,
) -> VBResult:
    """Fit the mixture by mean-field variational Bayes (coordinate ascent on the ELBO).

    The same model and prior as MAP-EM and ``sample_posterior``: Dirichlet weights (or a
    Dirichlet process, truncated at K and written as sticks), and per component the
    conjugate normal-inverse-Wishart (full; tied's one covariance shared, with its prior
    once) or an inverse-gamma on each variance (diag, spherical), as ``gp.Prior`` states.
    q factorises as q(z) q(pi) prod_k q(mu_k, Lambda_k), each factor updated in closed form.

    Args:
      x: (N, D) numeric data without NaN or infinity.
      n_components: K, or the truncation of the Dirichlet process: with
        ``weights='dirichlet_process'`` (or a small Dirichlet ``alpha``) K can be set high
        and the components the data do not need keep next to no weight.
      covariance_type: 'full', 'tied', 'diag' or 'spherical'.
      prior: a ``Prior``, or 'default' for ``default_prior(x, K)``.
      weights: 'dirichlet' (the prior's alpha) or 'dirichlet_process' (stick-breaking,
        each stick Beta(1, concentration)).
      concentration: the Dirichlet process's concentration (default 1 / K, scikit-learn's);
        under 'dirichlet' give the prior's alpha instead.
      key, n_init, init: the starts, as ``fit_em``'s ('kmeans++', 'kmeans', 'random',
        'random_from_data'): each start's assignment of the rows gives the first q; the
        restart with the highest ELBO is kept.
      means_init: (K, D) starting means instead: the update from every row assigned to its
        nearest mean gives the first q (one run).
      sample_weight: (N,) non-negative row weights (counts).
      tol: stop when the ELBO (summed over rows) changes by less than ``tol``.
      reg_covar: added to each row's scatter as scikit-learn's ``reg_covar`` is (default 0:
        the prior keeps q proper; with reg_covar > 0 an update is no longer exactly the
        optimum and the ELBO may dip by about that much).
      max_iter: most iterations per restart (0: the starts, unscored).
      dtype: 'float64' (default: the ELBO is a sum over rows, and ``tol`` an absolute change
        of it, which float32 cannot resolve beyond a few thousand rows) or 'float32'.
      n_draws: draws from q for ``idata`` (4 chains of independent draws, n_draws rounded up
        to a multiple of 4; 0 for none).
      feature_names: names for the ``feature`` coordinate.
      mesh: a ``jax.sharding.Mesh`` to spread the rows over, as ``fit_em``'s (``row_mesh``):
        each device sums the statistics of its rows, and XLA's all-reduce adds them.

    Returns:
      A ``VBResult``.

    Example:
      >>> vb = gp.fit_vb(x, 6, weights="dirichlet_process", n_init=5)
      >>> vb.params.weights, vb.trace, az.summary(vb.idata)
    """
    x = _validate.as_data(x)
    N, D = x.shape
    K = _validate.check_int(n_components, "n_components")
    _validate.check_rows(x, K)
    name = check_vb_options(covariance_type, weights)
    n_init, max_iter, tol, reg_covar = check_run_options(n_init, max_iter, tol, reg_covar, init)
    n_draws = _validate.check_int(n_draws, "n_draws", minimum=0)
    dtype = _validate.check_dtype(dtype)
    w = _validate.check_sample_weight(sample_weight, N)
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be a Prior or 'default'; got {prior!r}")
        from gmm_ppl.model import default_prior

        prior = default_prior(x, K)
    prior = _validate.check_prior(prior, K, D, for_em=False)
    concentration = check_concentration(weights, concentration, K)
    vb_prior = from_prior(prior, name, weights, concentration)
    if means_init is not None:
        means_init = _validate.check_means(means_init, K, D)
    runs = run_vb(
        x,
        w,
        vb_prior,
        n_components=K,
        covariance_type=name,
        weights=weights,
        variant="exact",
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        dtype=dtype,
        key=_validate.as_key(key),
        n_init=n_init,
        init=init,
        means=means_init,
        mesh=mesh,
    )
    result = result_of_runs(runs, prior, weights, concentration, name, dtype)
    if n_draws:
        rng = np.random.default_rng(np.asarray(jax.random.key_data(_validate.as_key(key))).ravel())
        idata = draws_as_inference_data(result, x, n_draws, rng, feature_names=feature_names, dtype=dtype)
        result = dataclasses.replace(result, idata=idata)
    return result


def check_concentration(weights: str, concentration, n_components: int):
    """The sticks' concentration (default 1 / K, scikit-learn's), or None under a Dirichlet,
    whose concentration is the prior's alpha."""
    if weights == "dirichlet":
        if concentration is not None:
            raise ValueError("concentration is the Dirichlet process's; a Dirichlet's is prior.alpha")
        return None
    concentration = (
        1.0 / n_components if concentration is None else _validate.check_float(concentration, "concentration")
    )
    if concentration <= 0:
        raise ValueError(f"concentration must be positive; got {concentration}")
    return concentration


def result_of_runs(runs: driver.LoopState, prior: Prior, weights: str, concentration, name: str, dtype) -> VBResult:
    """The ``VBResult`` of ``run_vb``'s runs (NumPy, a leading restart axis): the restart with
    the highest ELBO, without draws."""
    values = np.where(np.isnan(runs.value), -np.inf, runs.value)
    best = int(np.argmax(values))
    q = VBParams(*(np.asarray(a[best]) for a in runs.params))
    if not np.all(np.isfinite(q.covariances)):
        raise FloatingPointError("variational Bayes ended with non-finite parameters")
    params = GMMParams(point_weights(q.concentration, weights).astype(dtype), q.means, q.covariances)
    return VBResult(
        q=q,
        params=params,
        elbo=float(values[best]),
        trace=np.asarray(runs.trace[best]),
        n_iter=int(runs.n_iter[best]),
        converged=bool(runs.converged[best]),
        restart_elbos=values,
        best_restart=best,
        prior=prior,
        weights=weights,
        concentration=concentration,
        covariance_type=name,
    )


# -- draws from q ----------------------------------------------------------------------------------


def draw_q(q: VBParams, covariance_type: str, weights: str, n: int, rng: np.random.Generator) -> dict:
    """``n`` independent draws of (weights, means, covariances) from q (the exact variant's):
    the weights from the Dirichlet, or from the sticks normalised over the K components;
    Sigma_k = Lambda_k^-1 from the inverse-Wishart(r nu_k, r nu_k C_k) (full, tied) or each
    variance from the inverse-gamma(r nu_k / 2, r nu_k C_k / 2) (diag, spherical); then
    mu_k ~ N(m_k, Sigma_k / beta_k)."""
    from scipy.stats import invwishart

    K, D = q.means.shape
    family = covariance.get(covariance_type).family
    nu = _divisor(family, K, D) * np.asarray(q.dof, np.float64)
    if weights == "dirichlet":
        pi = rng.dirichlet(q.concentration, size=n)
    else:
        a, b = q.concentration
        pi = stick_weights(rng.beta(a, b, size=(n, K)))
    if family == "full":
        cov = np.stack(
            [
                invwishart.rvs(df=nu[k], scale=nu[k] * q.covariances[k], size=n, random_state=rng).reshape(n, D, D)
                for k in range(K)
            ],
            axis=1,
        )
        full = cov
    elif family == "tied":
        cov = invwishart.rvs(df=nu[0], scale=nu[0] * q.covariances, size=n, random_state=rng).reshape(n, D, D)
        full = np.broadcast_to(cov[:, None], (n, K, D, D))
    elif family == "diag":
        cov = (0.5 * nu[:, None] * q.covariances) / rng.gamma(0.5 * nu[:, None], size=(n, K, D))
        full = cov[..., None] * np.eye(D)
    else:
        cov = (0.5 * nu * q.covariances) / rng.gamma(0.5 * nu, size=(n, K))
        full = cov[..., None, None] * np.eye(D)
    z = rng.standard_normal((n, K, D))
    means = q.means + np.einsum("nkde,nke->nkd", np.linalg.cholesky(full), z) / np.sqrt(q.mean_precision)[:, None]
    return {"weights": pi, "means": means, "covariances": cov}


def draws_as_inference_data(result: VBResult, x, n_draws: int, rng, *, feature_names=None, dtype="float64"):
    """``result``'s q as ``sample_posterior``'s InferenceData: 4 chains of independent draws
    (ArviZ's diagnostics then read them as they read NUTS's), no relabelling (q is one
    mode), the pointwise log-likelihood of every draw, and the prior and summary in
    constant_data."""
    from gmm_ppl import _arviz, posterior  # noqa: F401  (_arviz: ArviZ imported quietly, first)

    n_chains = 4
    per_chain = max(1, -(-n_draws // n_chains))
    flat = draw_q(result.q, result.covariance_type, result.weights, n_chains * per_chain, rng)
    dtype = _validate.check_dtype(dtype)
    draws = {k: v.reshape(n_chains, per_chain, *v.shape[1:]).astype(dtype) for k, v in flat.items()}
    K = result.params.means.shape[0]
    identity = np.broadcast_to(np.arange(K), (n_chains, per_chain, K))
    return posterior.to_inference_data(
        draws,
        {},
        relabelled=draws,
        permutations=identity,
        x=x,
        prior=result.prior,
        reference=result.params,
        covariance_type=result.covariance_type,
        form="variational",
        dtype=dtype,
        feature_names=feature_names,
        num_samples_requested=per_chain,
        inference_library="gmm_ppl.fit_vb (mean-field variational Bayes)",
    )


def bound_offset(
    prior: VBPrior, covariance_type: str, weights: str, variant: str, n_components: int, total_weight: float
) -> float:
    """The ELBO minus scikit-learn's lower bound, which leaves out what does not change
    during a fit: the prior's normalisers, its mean's kappa term and the rows' 2 pi."""
    K, D = n_components, np.shape(prior.mean)[0]
    with _validate.precision(np.float64):
        prior_terms = _prior_normalisers_program(
            _validate.to_device(prior, np.float64),
            covariance_type=covariance_type,
            weights=weights,
            variant=variant,
            n_components=K,
        )
    kappa_term = 0.5 * D * K * np.log(float(prior.kappa))
    return float(-float(prior_terms) + kappa_term - 0.5 * D * math.log(2 * math.pi) * total_weight)


def _prior_normalisers(prior: VBPrior, covariance_type: str, weights: str, variant: str, n_components: int):
    """The prior's normalisers (weights' and covariances'), as q's at the prior."""
    learner, D = VB(covariance.get(covariance_type), prior, 0.0, 0.0, None, weights, variant), prior.mean.shape[0]
    concentration, dof, cov = learner._prior_as_q(n_components, D)
    return learner._log_weights_normaliser(concentration) + learner._log_normaliser(dof, cov, D)


# One program, loaded from the disk cache in a warm process: run operation by operation,
# its 26 operations compiled a small program each before every BayesianGaussianMixture fit
# of a new K or type, with the disk cache warm too.
_prior_normalisers_program = programs.program(
    "vb_prior_normalisers",
    _prior_normalisers,
    static_argnames=("covariance_type", "weights", "variant", "n_components"),
)
