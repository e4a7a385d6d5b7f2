"""EM (and variational Bayes) on data larger than memory: every E-step is one pass over blocks of rows.

The statistics are additive (``stats.SuffStats``), so a pass that reads the data block by
block, computes each block's statistics with the same compiled E-step as in-memory EM and
adds them up, gives the step ``fit_em`` takes. The loop is ``fit_em``'s too: the ``EM``
learner in ``driver.run``, with Python's loop (``driver.host_loop``) where a compiled
program has ``lax.while_loop``. Only one block (and one chunk's intermediates) is in
memory at a time. ``fit_vb_blocks`` runs variational Bayes' learner (``gmm_ppl.vb.VB``) over
the same passes.

    >>> fit = gp.fit_em_blocks(gp.npy_blocks("big.npy", 100_000), 8, means_init=centres)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, driver, programs
from gmm_ppl.em import EMResult, check_em_options, fit_em
from gmm_ppl.learners import EM
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.stats import NEAREST, compensated_add, default_chunk_size, spherical_unit, sufficient_statistics, to_chunks

Blocks = Callable[[], Iterable[np.ndarray]]


def npy_blocks(path, block_rows: int = 100_000) -> Blocks:
    """Blocks of ``block_rows`` rows of a 2-D ``.npy`` file, read through a memory map, so a
    pass holds one block in memory whatever the file's size."""
    path = Path(path)
    block_rows = _validate.check_int(block_rows, "block_rows")
    shape = np.load(path, mmap_mode="r").shape
    if len(shape) != 2:
        raise ValueError(f"{path} must hold a 2-D array (rows, features); it has shape {shape}")

    def blocks():
        data = np.load(path, mmap_mode="r")
        for start in range(0, data.shape[0], block_rows):
            yield np.asarray(data[start : start + block_rows])

    return blocks


def array_blocks(x, block_rows: int) -> Blocks:
    """Blocks of an in-memory (or memory-mapped) array: for tests and for comparing with
    ``fit_em`` on the same rows."""
    block_rows = _validate.check_int(block_rows, "block_rows")
    return lambda: (x[start : start + block_rows] for start in range(0, len(x), block_rows))


_block_statistics = programs.program(
    "block_statistics",
    lambda x, w, params, cov_type, stats_type, assign, chunk_size: sufficient_statistics(
        to_chunks(x, w, chunk_size), params, cov_type, stats_type, assign
    ),
    static_argnames=("cov_type", "stats_type", "chunk_size"),
)
_compensated_add = programs.program("compensated_add", compensated_add)
_maximise = programs.program("maximise", lambda learner, stats, params: learner.maximise(stats, params))


class _Pass:
    """Passes over the blocks: rows centred on ``shift`` (as ``fit_em`` centres its data),
    every block padded to ``block_rows`` with zero-weight rows, so one compiled E-step
    serves every block."""

    def __init__(self, blocks: Blocks, n_features: int, shift, block_rows: int, chunk_size: int, dtype):
        self.blocks, self.n_features, self.shift = blocks, n_features, shift
        self.block_rows, self.chunk_size, self.dtype = block_rows, chunk_size, dtype

    def statistics(self, params: GMMParams, cov_type, stats_type=None, assign=None):
        """The summed statistics of all rows at ``params`` (``stats.sufficient_statistics``'s
        arguments), the blocks' added as in-memory EM adds its chunks
        (``stats.compensated_add``): the ``statistics`` function of ``gmm_ppl.driver``."""
        carry = None
        for x in self.blocks():
            x = _validate.as_data(x, n_features=self.n_features)
            if x.shape[0] > self.block_rows:
                raise ValueError(f"a block has {x.shape[0]} rows, more than the {self.block_rows} of the first pass")
            pad = self.block_rows - x.shape[0]
            xb = np.pad(x - self.shift, ((0, pad), (0, 0))).astype(self.dtype)
            wb = np.pad(np.ones(x.shape[0], self.dtype), (0, pad))
            stats = _block_statistics(xb, wb, params, cov_type, stats_type, assign, self.chunk_size)
            carry = (stats, jax.tree.map(jnp.zeros_like, stats)) if carry is None else _compensated_add(carry, stats)
        return carry[0]


def _first_pass(blocks: Blocks):
    """Rows, features, the largest block and the mean of all rows (float64), checking
    every block as ``fit_em`` checks its data."""
    n_rows, total, n_features, block_rows, first = 0, None, None, 0, None
    for index, x in enumerate(blocks()):
        x = _validate.as_data(x, name=f"block {index} (from row {n_rows})", n_features=n_features)
        n_features = x.shape[1]
        first = x if first is None else first
        n_rows += x.shape[0]
        block_rows = max(block_rows, x.shape[0])
        total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
    if n_rows == 0:
        raise ValueError("the blocks hold no rows")
    return n_rows, n_features, block_rows, total / n_rows, first


def fit_em_blocks(
    blocks: Blocks,
    n_components: int,
    *,
    covariance_type: str = "full",
    init_params: GMMParams | None = None,
    means_init=None,
    key=None,
    n_init: int = 1,
    init: str = "kmeans++",
    prior: Prior | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    dtype="float32",
) -> EMResult:
    """EM over blocks of rows read again on every pass: the step of ``fit_em``, not a
    stochastic approximation of it.

    Args:
      blocks: a function that returns a fresh iterable of (n_b, D) arrays on each call
        (EM passes over the data once per iteration): ``npy_blocks(path)``,
        ``array_blocks(x, rows)`` or your own reader.
      n_components, covariance_type, prior, tol, reg_covar, max_iter, dtype: as ``fit_em``.
      init_params, means_init: the start, as ``fit_em``; missing weights and covariances
        come from one pass assigning every row to its nearest mean.
      key, n_init, init: without a given start, the start is ``fit_em``'s fit of the first
        block with these options (the whole data set is never in memory at once).

    Returns:
      An ``EMResult`` like ``fit_em``'s (one restart). From the same start it equals
      ``fit_em``'s result up to the order of floating-point sums.
    """
    K = _validate.check_int(n_components, "n_components")
    covariance_type = covariance.canonical(covariance_type)
    _, max_iter, tol, reg_covar = check_em_options(n_init, max_iter, tol, reg_covar, init)
    dtype = _validate.check_dtype(dtype)
    N, D, block_rows, shift, first = _first_pass(blocks)
    if N < K:
        raise ValueError(f"n_components={K} is more than the {N} rows")
    if prior is not None:
        prior = _validate.check_prior(prior, K, D)
    if init_params is not None and means_init is not None:
        raise ValueError("give init_params or means_init, not both")
    given = GMMParams(*(init_params if init_params is not None else (None, means_init, None)))
    given = _validate.check_params(given, K, D, covariance_type)
    chunk_size = default_chunk_size(block_rows, K, D)
    data = _Pass(blocks, D, shift, block_rows, chunk_size, dtype)

    cast = functools.partial(_validate.to_device, dtype=dtype)

    with _validate.precision(dtype):
        if given.means is None:
            given = fit_em(
                first,
                K,
                covariance_type=covariance_type,
                key=key,
                n_init=n_init,
                init=init,
                reg_covar=reg_covar,
                dtype=dtype,
            ).params
        params = GMMParams(jnp.full(K, 1.0 / K, dtype), cast(np.asarray(given.means, np.float64) - shift), None)
        prior_c = None if prior is None else cast(prior._replace(mean=np.asarray(prior.mean) - shift))
        learner = EM(covariance.get(covariance_type), prior_c, cast(tol), cast(reg_covar))
        if given.weights is None or given.covariances is None:
            # ``learner.init`` over the blocks: nearest mean, one M-step (compiled; the pass
            # is Python's loop over the blocks).
            spherical, spherical_type = spherical_unit(params.means)
            stats = data.statistics(spherical, spherical_type, learner.cov_type, NEAREST)
            # as fit_em: the given means stay
            params = _maximise(learner, stats, learner.unit_start(spherical))._replace(means=params.means)
        params = params._replace(
            **{field: cast(value) for field, value in given._asdict().items() if value is not None and field != "means"}
        )
        end = driver.run(
            learner,
            data.statistics,
            params,
            max_iter,
            driver.trace_capacity(max_iter),
            loop=driver.host_loop,
            step=driver.advance_program,
        )
        end, stats = driver.finish(learner, data.statistics, end, score=driver.score_program)
        loglik = stats.loglik / stats.weight
    params, value = jax.device_get((end.params, end.value))
    params = params._replace(means=(params.means + shift).astype(dtype))
    return EMResult(
        params=params,
        objective=np.asarray(value, dtype),
        log_likelihood=np.asarray(loglik, dtype),
        n_iter=np.asarray(int(end.n_iter)),
        converged=np.asarray(bool(end.converged)),
        trace=np.asarray(end.trace[: max_iter + 1]),
        restart_objectives=np.asarray([value], dtype),
        restart_params=jax.tree.map(lambda a: a[None], params),
        best_restart=np.asarray(0),
        prior=prior,
        covariance_type=covariance_type,
    )


def fit_vb_blocks(
    blocks: Blocks,
    n_components: int,
    *,
    prior: Prior,
    covariance_type: str = "full",
    weights: str = "dirichlet",
    concentration: float | None = None,
    means_init=None,
    key=None,
    n_init: int = 1,
    init: str = "kmeans++",
    tol: float = 1e-3,
    reg_covar: float = 0.0,
    max_iter: int = 100,
    dtype="float64",
):
    """Variational Bayes over blocks of rows read again on every pass: ``fit_vb``'s
    iterations, its learner in the loop that reads the blocks (as ``fit_em_blocks``).

    Args:
      blocks: as ``fit_em_blocks``'s.
      prior: a ``Prior`` (``default_prior``'s scale is the whole data's covariance, which no
        block holds: make it from a sample of rows, or state your own).
      n_components, covariance_type, weights, concentration, tol, reg_covar, max_iter, dtype:
        as ``fit_vb``'s.
      means_init: the start, as ``fit_vb``'s; without it, the means of ``fit_vb``'s fit of
        the first block (with ``key``, ``n_init``, ``init``).

    Returns:
      A ``VBResult`` without draws (``idata`` None). From the same start it equals
      ``fit_vb``'s result up to the order of floating-point sums.
    """
    from gmm_ppl import vb

    K = _validate.check_int(n_components, "n_components")
    name = vb.check_vb_options(covariance_type, weights)
    n_init, max_iter, tol, reg_covar = vb.check_run_options(n_init, max_iter, tol, reg_covar, init)
    dtype = _validate.check_dtype(dtype)
    N, D, block_rows, shift, first = _first_pass(blocks)
    if N < K:
        raise ValueError(f"n_components={K} is more than the {N} rows")
    if not isinstance(prior, Prior):
        raise ValueError("fit_vb_blocks needs a Prior (default_prior of a sample of the rows, or your own)")
    prior = _validate.check_prior(prior, K, D, for_em=False)
    concentration = vb.check_concentration(weights, concentration, K)
    if means_init is None:
        options = dict(covariance_type=name, weights=weights, concentration=concentration, key=key, n_init=n_init)
        means_init = vb.fit_vb(first, K, prior=prior, init=init, n_draws=0, dtype=dtype, **options).q.means
    means_init = _validate.check_means(means_init, K, D)
    vb_prior = vb.from_prior(prior, name, weights, concentration)
    data = _Pass(blocks, D, shift, block_rows, default_chunk_size(block_rows, K, D), dtype)
    cast = functools.partial(_validate.to_device, dtype=dtype)
    with _validate.precision(dtype):
        centred = cast(vb_prior._replace(mean=vb_prior.mean - shift))
        learner = vb.VB(covariance.get(name), centred, cast(tol), cast(reg_covar), None, weights, "exact")
        # ``learner.init`` over the blocks: nearest mean, then the update (compiled; the pass
        # is Python's loop over the blocks)
        spherical, spherical_type = spherical_unit(cast(np.asarray(means_init, np.float64) - shift))
        stats = data.statistics(spherical, spherical_type, learner.cov_type, NEAREST)
        q = _maximise(learner, stats, spherical.means)
        end = driver.run(
            learner,
            data.statistics,
            q,
            max_iter,
            driver.trace_capacity(max_iter),
            loop=driver.host_loop,
            step=driver.advance_program,
        )
    end = jax.device_get(end)
    end = end._replace(
        params=end.params._replace(means=(end.params.means + shift).astype(dtype)), trace=end.trace[:max_iter]
    )
    runs = jax.tree.map(lambda a: np.asarray(a)[None], end)
    return vb.result_of_runs(runs, prior, weights, concentration, name, dtype)
