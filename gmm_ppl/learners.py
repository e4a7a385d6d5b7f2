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
  init(pass_, centers, ...)   EM: parameters from starting centres (k-means' parameters
                              are the centres themselves)

``EM`` is maximum likelihood, or MAP under a conjugate prior; ``KMeans`` is Lloyd's
algorithm, EM with hard assignments, equal weights and one unit variance. Variational Bayes'
learner, ``gmm_ppl.vb.VB``, lives beside its mathematics (expectations under q, the ELBO).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from gmm_ppl import covariance
from gmm_ppl.covariance import CovarianceType
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.stats import NEAREST, m_step, objective, spherical_unit


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
    and meaning of ``tol``)."""

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
        return ~state.converged & (state.n_iter < max_iter)

    def statistics(self, pass_, params: GMMParams):
        return pass_(params, self.cov_type)

    @property
    def structure(self) -> CovarianceType:
        """The record of the structure fitted: ``cov_type``, or ``choices[choice]`` held in it."""
        return self.cov_type if self.choice is None else covariance.chosen(self.choices, self.choice)

    def score(self, stats, params: GMMParams):
        return objective(stats, params, self.structure, self.prior)

    def step(self, stats, params: GMMParams, previous):
        value = self.score(stats, params)
        return self.maximise(stats, params), value, jnp.abs(value - previous) < self.tol

    def maximise(self, stats, params: GMMParams) -> GMMParams:
        """The M-step from statistics taken around ``params.means`` (``stats.m_step``)."""
        return m_step(stats, params, self.structure, self.reg_covar, self.prior)

    def init(self, pass_, centers, active=None, assign=NEAREST) -> GMMParams:
        """Assign each row to its nearest centre (or by ``assign``: ``stats.Random(key)``
        for random responsibilities) and estimate weights, means and covariances from that
        assignment: one M-step (maximum likelihood, or under the prior the MAP step, so that
        a centre owning D rows or fewer still starts positive definite, as every later MAP
        step is). Components left out by ``active`` (K,) bool take no rows and get weight 0."""
        params, spherical = spherical_unit(centers, active)
        return self.maximise(pass_(params, spherical, self.cov_type, assign), self.unit_start(params))

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
