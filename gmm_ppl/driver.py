"""The one loop over the data: any learner, to convergence or ``max_iter``.

A learner (``gmm_ppl.learners``) says which pass over the rows it needs and what it does
with the statistics; this module runs it. The shape follows BlackJAX: a state carried by
the loop (``LoopState``), a pure ``advance``, and ``run``, which loops with
``lax.while_loop`` inside a compiled program, or with ``host_loop`` where each pass reads
the rows from disk (``gmm_ppl.streaming``): the same loop either way.

Where the rows come from is the caller's ``statistics`` function, ``statistics(params,
cov_type, stats_type=None, assign=POSTERIOR) -> SuffStats`` (``stats.sufficient_statistics``'s
arguments after the data): ``in_memory(chunks)`` for rows in memory, or a pass over blocks.

Convergence rule: step t computes its value at the current parameters (EM: the objective
of its E-step; k-means: the shift of the centres) and whether the learner's rule is met,
then moves the parameters. The loop stops after step t when the rule is met, or after
``max_iter`` steps. ``converged`` is true exactly when the rule was met, including on the
last allowed step. The learner writes the loop's condition (``keep_going``) from the same
rule: the form of that expression is part of the compiled program, and k-means' own form
(``n_iter < max_iter & shift > tol``) keeps its results bit for bit those of its former
loop (the other order moved them by an ulp in float64).

The trace of values has a fixed capacity (``trace_capacity``, a power of two), so that
``max_iter`` need not be part of a program's shape: ``run`` takes it traced or static.
(``fit_em`` still compiles per ``max_iter``: see ``em.FIT_STATIC`` for why.)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_ppl import programs
from gmm_ppl.stats import Chunks, sufficient_statistics, to_chunks

# The smallest trace: runs of up to 127 iterations (scikit-learn's default max_iter is 100).
TRACE_MIN_CAPACITY = 128


class LoopState(NamedTuple):
    """The loop's carry.

    Attributes:
      params: the learner's parameters after ``n_iter`` steps.
      value: () the learner's value of the last step (EM: the objective of its E-step;
        the learner's ``initial_value`` before the first).
      n_iter: () steps done.
      converged: () whether the learner's rule has been met.
      trace: (capacity,) value of step 0, 1, ...; NaN beyond.
    """

    params: object
    value: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    trace: jax.Array


def trace_capacity(max_iter: int) -> int:
    """Entries of the trace for runs of up to ``max_iter`` steps (at least max_iter + 1:
    one more for the final scoring pass), rounded up to a power of two."""
    return max(TRACE_MIN_CAPACITY, 1 << int(max_iter).bit_length())


def start(learner, params, capacity: int) -> LoopState:
    value = learner.initial_value(jax.tree.leaves(params)[0].dtype)
    return LoopState(
        params=params,
        value=value,
        n_iter=jnp.asarray(0),
        converged=jnp.asarray(False),
        trace=jnp.full(capacity, jnp.nan, value.dtype),
    )


def advance(learner, state: LoopState, stats) -> LoopState:
    """One step of ``learner`` from the statistics of a pass at ``state.params``. Under
    ``vmap`` the loop runs until every restart is done, and a restart that is done keeps
    its state (``while_loop`` selects it), so the step need not check."""
    params, value, met = learner.step(stats, state.params, state.value)
    return state._replace(
        params=params,
        value=value,
        n_iter=state.n_iter + 1,
        converged=met,
        trace=state.trace.at[state.n_iter].set(value),
    )


def run(learner, statistics, params, max_iter, capacity: int, *, loop=jax.lax.while_loop, step=advance) -> LoopState:
    """``learner`` from ``params`` until its rule is met or ``max_iter`` steps (an int or a
    traced int at most ``capacity`` - 1). ``loop``: ``lax.while_loop`` in a compiled program,
    or ``host_loop`` with ``step`` a compiled ``advance`` (``advance_program``)."""

    def keep_going(state):
        return learner.keep_going(state, max_iter)

    def body(state):
        return step(learner, state, learner.statistics(statistics, state.params))

    return loop(keep_going, body, start(learner, params, capacity))


def host_loop(keep_going, body, state):
    """``lax.while_loop``'s meaning, run by Python: for passes that read rows from disk."""
    while bool(keep_going(state)):
        state = body(state)
    return state


def finish(learner, statistics, state: LoopState, *, score=None):
    """One more pass, which scores the returned parameters: the state with ``value`` then of
    ``state.params`` (also written to the trace), and that pass's statistics. ``score``:
    a compiled scoring (``score_program``) for ``host_loop``'s callers."""
    stats = learner.statistics(statistics, state.params)
    value = learner.score(stats, state.params) if score is None else score(learner, stats, state.params)
    return state._replace(value=value, trace=state.trace.at[state.n_iter].set(value)), stats


def over_restarts(fn, starts):
    """``fn`` of every start (a batch along the leading axis), batched by ``vmap``; every
    restart's end is kept.

    One start runs without ``vmap``: a batch axis of size 1 made XLA:CPU's float32 E-step
    2.6 times slower (batched dots; N=2e5, D=64, K=8, diag), float64 not at all."""
    if jax.tree.leaves(starts)[0].shape[0] == 1:
        return jax.tree.map(lambda a: a[None], fn(jax.tree.map(lambda a: a[0], starts)))
    return jax.vmap(fn)(starts)


# The pass over rows in memory, a program of its own: JAX traces and lowers it once per
# enclosing program where the loop and its last pass both call it (tracing the E-step is a
# large part of a small fit's first call); XLA inlines the calls.
_in_memory_pass = programs.program("statistics", sufficient_statistics, static_argnames=("cov_type", "stats_type"))


def in_memory(chunks: Chunks):
    """The ``statistics`` function of rows held in memory as ``chunks``."""
    return functools.partial(_in_memory_pass, chunks)


def centred(x, w, chunk_size: int, row_blocks: int = 1):
    """(shift, x - shift, the ``statistics`` function of x - shift in chunks): the rows around
    their weighted mean, so that second moments of data far from the origin stay accurate in
    float32 (the learners' objectives do not change with the shift). Traceable."""
    shift = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
    xc = x - shift
    return shift, xc, in_memory(to_chunks(xc, w, chunk_size, row_blocks))


# ``advance`` and the scoring of ``finish`` compiled on their own, for ``host_loop``.
advance_program = programs.program("advance", advance)
score_program = programs.program("score", lambda learner, stats, params: learner.score(stats, params))
