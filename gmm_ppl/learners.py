"""Learners: what to do with the additive statistics, one kind of fit each.

A learner is a small pytree (its numbers traced, its kind static) with pure functions, in
the manner of BlackJAX's algorithms and of scikit-learn's mixture estimators, which supply
only their steps to one loop (``gmm_ppl.driver``):

  statistics(pass_, params)   the pass over the rows it needs (``pass_`` computes it:
                              rows in memory or blocks from disk)
  step(stats, params, prev)   -> (new params, this step's value, whether its rule is met)
  score(stats, params)        the value of ``params`` from one more pass (``driver.finish``)
  keep_going(state, max_iter) whether the loop goes on: its rule is not met, and steps remain
  initial_value(dtype)        the value before the first step

``EM`` is maximum likelihood, or MAP under a conjugate prior; ``KMeans`` is Lloyd's
algorithm, EM with hard assignments, equal weights and one unit variance.

EM's steps run M-step first: the loop carries an ``EMIterate`` (parameters with the
statistics of a pass at them), and a step is the M-step from those statistics, then the
E-step at the new parameters, whose objective is the step's value. Its first step's M-step
is the start's (from an assignment of the rows: ``EM.start``), so a compiled fit holds one
M-step, not one for the start and one in the loop, and it needs no scoring pass after the
loop: the value already belongs to the parameters. XLA then compiles select_model's
program of the eight full and tied structures (each M-step behind a switch) in 4.6 s
instead of 5.4 s, and Old Faithful's first fit_em in 0.80 s instead of 0.92 s (2 CPU
cores); every fit is the same to rounding (issue 28).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_ppl import covariance, programs
from gmm_ppl.covariance import CovarianceType
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.stats import NEAREST, m_step, objective, spherical_unit


class EMIterate(NamedTuple):
    """What EM's loop carries (``driver.LoopState.params``): parameters with the statistics
    of a pass at them.

    Attributes:
      params: the parameters of the last step; before the first, those the start's
        statistics were taken at (the start's centres, identity covariances).
      stats: the statistics of a pass at ``params`` (before the first step, the start's
        assignment of the rows).
      met: () whether the last step's value met the rule (the loop stops one step later:
        see ``EM.step``).
      fixed: the starting weights, means or covariances the caller fixed (None where not):
        they replace the first M-step's.
      first: () whether no step has been taken yet.
    """

    params: GMMParams
    stats: object
    met: jax.Array
    fixed: GMMParams
    first: jax.Array


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["prior", "tol", "reg_covar", "previous", "choice"],
    meta_fields=["cov_type", "choices"],
)
@dataclasses.dataclass(frozen=True)
class EM:
    """EM: soft assignments, then the M-step of ``cov_type`` (of ``choices[choice]`` when a
    program serves several structures); maximum likelihood, or MAP under ``prior``. Its
    value is the objective of its E-step (the mean per-row log-likelihood, plus log-prior / N
    under MAP); the rule is met when that changes by less than ``tol`` (scikit-learn's rule
    and meaning of ``tol``).

    Its parameters in the loop are an ``EMIterate``; a step is M-step then E-step (see the
    module docstring). Step s (from 0) gives the parameters after s + 1 M-steps (the first
    the start's) and their objective J_s; the loop stops after the step that follows a
    step whose J_s met the rule, so that the parameters returned are those of one M-step
    more, as scikit-learn's (which checks after its M-step), and their objective is known
    without another pass. The fit's iterations are the steps less one."""

    cov_type: CovarianceType
    prior: Prior | None
    tol: jax.Array
    reg_covar: jax.Array
    # The value the first step's change is measured from: -inf (None), or the last value of
    # the run this one continues (scikit-learn's warm_start), so that it can stop at once.
    previous: jax.Array | None = None
    # Several structures in one program (model selection, small fits): their names, and
    # the (traced) index of the one this run fits; ``cov_type`` is then the record of the
    # family that holds them all (``covariance.shared``), and the M-step the chosen one's.
    choice: jax.Array | None = None
    choices: tuple[str, ...] = ()

    def initial_value(self, dtype):
        return jnp.asarray(-jnp.inf if self.previous is None else self.previous, dtype)

    def keep_going(self, state, max_iter):
        # ``state.n_iter`` counts steps, the first M-step's included: max_iter + 1 in all.
        return ~state.converged & (state.n_iter <= max_iter)

    def statistics(self, pass_, it: EMIterate):
        """The M-step from ``it``, the fixed pieces of the start put in on the first, then
        the pass at the new parameters: (parameters, their statistics)."""
        params = maximise_program(self, it.stats, it.params)
        params = GMMParams(
            *(
                new if fixed is None else jnp.where(it.first, fixed, new)
                for new, fixed in zip(params, it.fixed, strict=True)
            )
        )
        return params, pass_(params, self.cov_type)

    def score(self, stats, params: GMMParams):
        return objective(stats, params, self.cov_type.name, self.prior)

    def step(self, moved, it: EMIterate, previous):
        """The E-step's objective of the parameters ``statistics`` moved to, and the rule of
        the step before (see the class docstring)."""
        params, stats = moved
        value = self.score(stats, params)
        met = jnp.abs(value - previous) < self.tol
        return EMIterate(params, stats, met, it.fixed, jnp.zeros_like(it.first)), value, it.met

    def maximise(self, stats, params: GMMParams) -> GMMParams:
        """The M-step from statistics taken around ``params.means`` (``stats.m_step``)."""
        cov_type = self.cov_type if self.choice is None else covariance.chosen(self.choices, self.choice)
        return m_step(stats, params, cov_type, self.reg_covar, self.prior)

    def start(self, pass_, centers, active=None, assign=NEAREST, fixed=None) -> EMIterate:
        """The start from an assignment of each row to its nearest centre (or by ``assign``:
        ``stats.Random(key)`` for random responsibilities): its statistics, whose M-step
        (maximum likelihood, or under the prior the MAP step, so that a centre owning D rows
        or fewer still starts positive definite, as every later MAP step is) is the first
        step's. Components left out by ``active`` (K,) bool take no rows and get weight 0.
        ``fixed``: pieces that replace that M-step's (``EMIterate.fixed``)."""
        params, spherical = spherical_unit(centers, active)
        stats = pass_(params, spherical, self.cov_type, assign)
        return self._iterate(self.unit_start(params), stats, fixed)

    def start_at(self, params: GMMParams, stats_shape) -> EMIterate:
        """The start at given weights, means and covariances: the first step's M-step has
        no rows (zero statistics of ``stats_shape``, the pass's shapes and dtypes) and is
        replaced by ``params``."""
        stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape)
        return self._iterate(params, stats, params)

    def _iterate(self, params, stats, fixed) -> EMIterate:
        fixed = GMMParams(None, None, None) if fixed is None else fixed
        return EMIterate(params, stats, jnp.asarray(False), fixed, jnp.asarray(True))

    def unit_start(self, params: GMMParams) -> GMMParams:
        """``params`` with identity covariances in this structure's storage: the previous
        covariances of the first M-step after an assignment, from which an iterative M-step
        (VEI, VEE, VEV, EVE, VVE) starts (unit volumes, the identity's axes)."""
        K, D = params.means.shape
        return params._replace(covariances=self.cov_type.unit(K, D, params.means.dtype))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["tol", "active"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class KMeans:
    """Lloyd's k-means: every row to its nearest centre, every centre to the mean of its
    rows. Its parameters are the (K, D) centres; its value is the summed squared shift of the
    centres, and the rule is met when that is at most ``tol`` (scikit-learn's rule; an
    empty cluster keeps its centre). ``active`` (K,) bool leaves centres out (no rows)."""

    tol: jax.Array
    active: jax.Array | None = None

    def initial_value(self, dtype):
        return jnp.asarray(jnp.inf, dtype)

    def keep_going(self, state, max_iter):
        # the rule written on the shift (a NaN shift stops), as k-means always had it
        return (state.n_iter < max_iter) & (state.value > self.tol)

    def statistics(self, pass_, centers):
        params, spherical = spherical_unit(centers, self.active)
        return pass_(params, spherical, None, NEAREST)

    def score(self, stats, centers):
        """The inertia: the weighted sum of squared distances of the rows to their centres."""
        return jnp.sum(stats.s2)

    def step(self, stats, centers, previous):
        params, spherical = spherical_unit(centers, self.active)
        new = m_step(stats, params, spherical, 0.0).means
        shift = jnp.sum((new - centers) ** 2)
        return new, shift, shift <= self.tol


# The M-step as a program of its own: inside a fit, JAX traces it once and XLA inlines it;
# called from Python (``streaming``'s loop over blocks), it runs compiled.
maximise_program = programs.program("maximise", lambda learner, stats, params: learner.maximise(stats, params))
