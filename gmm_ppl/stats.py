"""The E-step as additive sufficient statistics, folded over row chunks, and the M-step.

Everything expensive in EM is one pass over the rows. ``sufficient_statistics`` makes that
pass chunk by chunk with ``lax.scan``, so memory is O(chunk * K * D) whatever N is; padding
rows carry weight 0 and add nothing. ``m_step`` maps statistics (plus an optional conjugate
prior, which only adds pseudo-statistics) to new parameters in closed form.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import covariance, programs
from gmm_ppl.covariance import CovarianceType
from gmm_ppl.likelihood import log_constants
from gmm_ppl.model import log_prior
from gmm_ppl.params import GMMParams, Prior, SuffStats

# Rows per chunk are chosen so one (K, D, chunk) array holds about this many numbers: 2 MB
# in float32, so a chunk's intermediates stay in cache. On 2 CPU cores the E-step at 2^19
# took 136, 405 and 190 ms on issue 5's W2, W3 and W4; 2^18 149, 387 and 202 ms; 2^20 217,
# 556 and 164 ms (benchmarks/em.py's workloads). That machine's caches were not recorded; on
# an EPYC of family 26 with AVX-512, 1 MB of L2 a core (2026-11-28), 2^20 was the faster, one
# more iteration (benchmarks/chunks.py) W2 61 against 67 ms and W3 166 against 188 ms (2^18:
# 73 and 194 ms). A rule from the machine's caches would need both machines' figures.
CHUNK_ELEMENTS = 2**19
# On a GPU or TPU kernel launches set the chunk, not the cache: each chunk's E-step is a few
# kernels, and on an H200 at CHUNK_ELEMENTS a chunk cost 80-110 us, far more than its
# arithmetic (an iteration took 19.8 ms over W2's 245 chunks and 43.8 ms over W3's 391, where
# one matmul of the whole W2 E-step's size took 0.3 ms). There the chunk is the largest that
# keeps the call's predicted peak on the device within a memory budget
# (``accelerator_chunk_elements``). The prediction, from the H200's peaks
# (benchmarks/results/chunks_gpu.md, each size in a process of its own): W2 200 MB + 2.8 x
# each further chunk byte, W4 about 1.6 x the data + 2.5 x the chunk's bytes, W3 about
# 134 MB + 0.8 x them (24 MB of data): 1.6 x the data + 150 MB + 3 x the chunk's bytes
# covers each (it over-predicts W2's: 392 against 200 MB at 2^24).
ACCELERATOR_PEAK_PER_DATA_BYTE = 1.6
ACCELERATOR_PEAK_FIXED = 150 * 2**20
ACCELERATOR_PEAK_PER_CHUNK_BYTE = 3
# The default budget: issue 5's bound on a call's peak, 1.5 x the data + 300 MB, or, if it is
# larger, the predicted peak of a chunk of ACCELERATOR_DEFAULT_ELEMENTS numbers (the size the
# H200 ran within that bound: W2, W3 and W4 in 8, 13 and 31 chunks; 2^26 ran W2 2.1 times
# faster per iteration at 663 MB), so that large data never gets smaller chunks than that;
# at most the data + FREE_MEMORY_SHARE of the device's free memory. ``fit_em(memory_budget=)``
# sets another: at 2 GB W2 runs in one chunk.
DEFAULT_BUDGET_DATA_FACTOR, DEFAULT_BUDGET_HEADROOM = 1.5, 300 * 2**20
ACCELERATOR_DEFAULT_ELEMENTS = 2**24
FREE_MEMORY_SHARE = 0.5
# The fewest numbers a chunk holds, whatever the budget.
ACCELERATOR_MIN_ELEMENTS = 2**16


def free_bytes(device) -> int | None:
    """The device's free memory (``memory_stats``: its limit less what is in use), or None
    where JAX does not say (a CPU)."""
    stats = device.memory_stats() if device is not None else None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def predicted_peak(data_bytes: int, elements: int, itemsize: int) -> float:
    """A call's predicted peak on a GPU or TPU, in bytes, with chunks of ``elements`` numbers."""
    return (
        ACCELERATOR_PEAK_PER_DATA_BYTE * data_bytes
        + ACCELERATOR_PEAK_FIXED
        + ACCELERATOR_PEAK_PER_CHUNK_BYTE * elements * itemsize
    )


def accelerator_chunk_elements(data_bytes: int, itemsize: int, memory_budget: int | None = None, device=None) -> int:
    """Numbers a chunk's (K, D, rows) arrays may hold on a GPU or TPU: the largest power of two
    (at least ACCELERATOR_MIN_ELEMENTS) whose ``predicted_peak`` is within ``memory_budget``
    bytes (default: see DEFAULT_BUDGET_DATA_FACTOR). A power of two because the chunk is a
    compiled program's shape: a budget that follows the free memory must not make a new
    program at every call. A given budget below the smallest chunk's prediction is warned of."""
    if memory_budget is None:
        memory_budget = max(
            DEFAULT_BUDGET_DATA_FACTOR * data_bytes + DEFAULT_BUDGET_HEADROOM,
            predicted_peak(data_bytes, ACCELERATOR_DEFAULT_ELEMENTS, itemsize),
        )
        free = free_bytes(device or programs.default_device())
        if free is not None:
            memory_budget = min(memory_budget, data_bytes + FREE_MEMORY_SHARE * free)
    elif memory_budget < predicted_peak(data_bytes, ACCELERATOR_MIN_ELEMENTS, itemsize):
        warnings.warn(
            f"memory_budget={memory_budget} bytes is below the predicted peak of the smallest chunk "
            f"({predicted_peak(data_bytes, ACCELERATOR_MIN_ELEMENTS, itemsize):.0f} bytes for "
            f"{data_bytes} bytes of data): the smallest chunk is used",
            RuntimeWarning,
            stacklevel=3,
        )
    chunk_bytes = (memory_budget - predicted_peak(data_bytes, 0, itemsize)) / ACCELERATOR_PEAK_PER_CHUNK_BYTE
    elements = max(1, int(chunk_bytes // itemsize))
    return max(ACCELERATOR_MIN_ELEMENTS, 1 << (elements.bit_length() - 1))


# Largest K * D^2 for which the E-step is written out per component and feature (see
# ``written_out``): D=2 up to K=16, D=3 up to K=7, D=4 up to K=4.
WRITTEN_OUT_MAX_TERMS = 64


@functools.partial(jax.tree_util.register_dataclass, data_fields=["x", "w"], meta_fields=["n_blocks"])
@dataclasses.dataclass(frozen=True)
class Chunks:
    """Rows split into C equal chunks; rows past N, at the end, are padding with weight 0.
    A chunk stores its rows as the columns of a (D, n) array.

    The rows come in ``n_blocks`` equal contiguous blocks, and chunk c holds the c-th run
    of n / n_blocks rows of every block. With one block (one device), chunk c is simply
    rows c n to (c + 1) n - 1.

    Why blocks: with the rows sharded in contiguous blocks over the devices of a mesh
    (``fit_em(mesh=)``, one block per device), every chunk holds an equal part of each
    device's rows, so splitting the data into chunks moves nothing between devices and
    each chunk's sums are one all-reduce. Why runs of rows rather than every C-th row: the
    copy that makes the chunks then reads the rows in order, which took half the time of
    the strided layout before it (issue 5's W2: 29 against 58 ms; W4: 198 against 373 ms).

    Why rows as columns: the E-step's arrays are then (K, n) and (K, D, n), with the rows
    on the minor axis. Its sums over components and features become elementwise
    operations on rows of length n, and only the sums over rows reduce along a vector;
    XLA:CPU compiles a reduction over a short minor axis (K or D) into a scalar loop.

    Attributes:
      x: (C, D, n) rows, as columns.
      w: (C, n) row weights; 0 on padding.
      n_blocks: contiguous blocks of rows (static).
    """

    x: jax.Array
    w: jax.Array
    n_blocks: int = 1


def default_chunk_size(
    n_rows: int,
    n_components: int,
    n_features: int,
    n_batch: int = 1,
    platform: str | None = None,
    elements: int | None = None,
    *,
    itemsize: int = 4,
    memory_budget: int | None = None,
    device=None,
) -> int:
    """Rows per chunk: at most ``elements`` / (K D n_batch), and as even as possible so the
    last chunk's zero-weight padding stays small. ``elements`` defaults to CHUNK_ELEMENTS
    on a CPU, and on any other ``platform`` (JAX's default backend unless given) to what
    ``accelerator_chunk_elements`` allows the data, (N, D) numbers of ``itemsize`` bytes,
    within ``memory_budget`` on ``device``; ``benchmarks/chunks.py`` passes other sizes."""
    if elements is None:
        platform = platform or jax.default_backend()
        if platform == "cpu":
            elements = CHUNK_ELEMENTS
        else:
            elements = accelerator_chunk_elements(n_rows * n_features * itemsize, itemsize, memory_budget, device)
    cap = max(1, min(n_rows, elements // (n_components * n_features * n_batch)))
    n_chunks = max(1, -(-n_rows // cap))
    return max(1, -(-n_rows // n_chunks))


def to_chunks(x, w, chunk_size: int, n_blocks: int = 1) -> Chunks:
    """Pad (N, D) rows to a multiple of ``chunk_size`` and split them into chunks, the rows
    taken as ``n_blocks`` contiguous blocks (see ``Chunks``; traceable). ``n_blocks`` must
    divide ``chunk_size``, and with more than one block N must be a multiple of it. NumPy
    rows give NumPy chunks: outside a program, JAX would compile each operation."""
    xp = np if isinstance(x, np.ndarray) and isinstance(w, np.ndarray) else jnp
    n, d = x.shape
    n_chunks = -(-n // chunk_size)
    pad = n_chunks * chunk_size - n
    run = chunk_size // n_blocks
    x = xp.pad(x, ((0, pad), (0, 0))).reshape(n_blocks, n_chunks, run, d)
    w = xp.pad(w, (0, pad)).reshape(n_blocks, n_chunks, run)
    return Chunks(
        xp.transpose(x, (1, 3, 0, 2)).reshape(n_chunks, d, chunk_size),
        xp.swapaxes(w, 0, 1).reshape(n_chunks, chunk_size),
        n_blocks,
    )


def sufficient_statistics(
    data: Chunks,
    params: GMMParams,
    cov_type: CovarianceType,
    stats_type: CovarianceType | None = None,
    assign=None,
) -> SuffStats:
    """One E-step pass: statistics of all rows around ``params.means``.

    Args:
      data: the chunked rows.
      params: parameters the responsibilities are computed at.
      cov_type: covariance type of ``params``.
      stats_type: covariance type whose second moments to collect (default ``cov_type``;
        initialisation assigns with one type and estimates another).
      assign: how rows are given to components, chosen by the learner that asks for the
        pass: ``POSTERIOR`` (default: EM's responsibilities), ``NEAREST`` (one-hot at the
        nearest centre: k-means, hard EM) or ``Random(key)``.
    """
    assign = assign or POSTERIOR
    stats_type = stats_type or cov_type
    K = params.means.shape[0]
    factor = cov_type.estep.precision_factor(params.covariances)
    log_constant = log_constants(params, factor, cov_type)  # once per pass, not per chunk
    distances = cov_type.estep.mahalanobis_cols(params.means, factor)  # likewise

    def chunk_stats(chunk, index):
        x, w = chunk.x, chunk.w
        if written_out(K, x.shape[0]) and isinstance(assign, Posterior):
            return _written_out_stats(x, w, params, factor, log_constant, cov_type, stats_type)
        distance = distances(x)
        log_joint = log_constant[:, None] - 0.5 * distance
        log_norm, resp = assign(log_joint, distance, params, index)
        rw = resp * w
        n = jnp.sum(rw, axis=1)
        return SuffStats(
            n=n,
            # sum_i rw_ki (x_i - m_k) as one (K, n) x (n, D) matmul: its rounding, about eps |x|
            # per row, is that of the centred data themselves
            s1=rw @ x.T - n[:, None] * params.means,
            s2=stats_type.estep.second_moment_cols(x, params.means, rw),
            # where(): a padding row whose density underflows must not turn 0 * -inf into NaN
            loglik=jnp.sum(jnp.where(w > 0, w * log_norm, 0.0)),
            weight=jnp.sum(w),
        )

    # The loop carries the chunk it works on and fetches the next one for the following
    # iteration, rather than scanning over the chunks. A scanned chunk is a dynamic slice of
    # the data, which XLA:CPU fuses into every kernel that reads it, and those kernels came
    # out unvectorised (the slice's index clamped per element): the written-out E-step at
    # N=1e6, D=2, K=3 (12 chunks) took 27.4 ms a pass, 11.1 ms with the chunk carried; W4
    # 284 against 221 ms; W2 and W3 unchanged; the statistics bit for bit the same.
    n_chunks = data.x.shape[0]

    def add(carry, index):
        sums, chunk = carry
        following = jax.tree.map(lambda a: a[jnp.minimum(index + 1, n_chunks - 1)], data)
        return (compensated_add(sums, chunk_stats(chunk, index)), following), None

    first = jax.tree.map(lambda a: a[0], data)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(chunk_stats, first, 0))
    ((total, _), _), _ = jax.lax.scan(add, ((zeros, zeros), first), jnp.arange(n_chunks))
    return total


# How the rows of a pass are given to the components: a rule that maps the log joint
# densities (K, n) and the squared distances (K, n) at ``params``, for the chunk numbered
# ``index``, to the rows' log normaliser (n,), log p(x_i), and their responsibilities (K, n).
# The learner that asks for a pass picks one. They are pytrees, so a rule can be an argument
# of a compiled program (its data, such as a key, traced; its kind static).


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Posterior:
    """EM's responsibilities: p(z = k | x) at ``params``.

    The log-sum-exp as ``jax.nn.logsumexp`` computes it, and the responsibilities as its
    own shifted terms over their sum, rather than exp(log_joint - log_norm): one exp per
    entry instead of two (as the written-out E-step, ``_written_out_stats``, always did).
    One E-step alone, the two forms alternated in one process (medians of 11, 2 cores):
    W2 100 against 105 ms, W3 251 against 262 ms, W4 173 against 180 ms; the statistics
    equal to 5e-7 of their size (float32)."""

    def __call__(self, log_joint, distance, params, index):
        top = jnp.max(log_joint, axis=0)
        top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
        shifted = jnp.exp(log_joint - top)
        total = jnp.sum(shifted, axis=0)
        return jnp.log(total) + top, shifted / total


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Nearest:
    """One-hot responsibilities at the nearest centre (k-means, hard EM).

    Nearest by distance, not by log density: at a scale like 1e-8 the squared distances
    vanish beside the log densities' constant in float32, and every row would go to the
    first centre. Callers pass equal weights and unit covariances (``spherical_unit``),
    where the two orders agree. A component of weight zero takes no rows."""

    def __call__(self, log_joint, distance, params, index):
        K = log_joint.shape[0]
        distance = jnp.where((params.weights > 0)[:, None], distance, jnp.inf)
        nearest = (jnp.arange(K)[:, None] == jnp.argmin(distance, axis=0)).astype(log_joint.dtype)
        return jax.nn.logsumexp(log_joint, axis=0), nearest


@functools.partial(jax.tree_util.register_dataclass, data_fields=["key"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Random:
    """Random responsibilities (uniform draws normalised per row: scikit-learn's 'random'
    initialisation), a fresh draw per chunk from ``key``; ``params`` then only sets the
    reference means and, by a zero weight, the components left out."""

    key: jax.Array

    def __call__(self, log_joint, distance, params, index):
        # drawn (n, K), as before rows became columns, so a seed gives the same start
        draws = jax.random.uniform(jax.random.fold_in(self.key, index), log_joint.shape[::-1], log_joint.dtype).T
        draws = draws * (params.weights > 0)[:, None]
        return jax.nn.logsumexp(log_joint, axis=0), draws / jnp.sum(draws, axis=0)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["onehot"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Classification:
    """Given hard assignments (mclust's start: ``gmm_ppl.hc``): ``onehot`` (C, K, n), the
    rows' one-hot labels in the chunks' layout (``of_labels``); ``params`` then only sets
    the reference means."""

    onehot: jax.Array

    def __call__(self, log_joint, distance, params, index):
        return jax.nn.logsumexp(log_joint, axis=0), self.onehot[index]

    @classmethod
    def of_labels(cls, labels, w, n_components: int, chunk_size: int, n_blocks: int = 1) -> Classification:
        """The rule for ``labels`` (N,) in 0..K-1, chunked as ``to_chunks(x, w, ...)`` chunks
        the rows (traceable)."""
        onehot = (labels[:, None] == jnp.arange(n_components)).astype(w.dtype)
        return cls(to_chunks(onehot, w, chunk_size, n_blocks).x)


POSTERIOR, NEAREST = Posterior(), Nearest()


def compensated_add(carry, value):
    """Kahan's compensated sum, leaf by leaf: ``carry`` is (total, lost) and ``value`` is
    added to it. Adding a thousand chunk sums one after another rounds each time at the
    size of the total: in float32 the mean log-likelihood of W4 (issue 5: N=1e6 in 977
    chunks) drifted by 7e-7 of its value, and a fit over 700 blocks (``fit_em_blocks``) by
    4.5e-7."""
    total, lost = carry
    term = jax.tree.map(jnp.subtract, value, lost)
    new = jax.tree.map(jnp.add, total, term)
    return new, jax.tree.map(lambda new, total, term: (new - total) - term, new, total, term)


def written_out(n_components: int, n_features: int) -> bool:
    """Whether the E-step is written out per component and feature (``_written_out_stats``).

    XLA:CPU compiles a fusion that reduces over a short axis (the K components of the
    log-sum-exp, the D features of a distance) into a scalar loop, and so did the E-step
    on (n, K, D) arrays it had before rows became columns: 10.9 ms per pass on N=1e5, D=2,
    K=3 (full), where the same arithmetic as elementwise operations on (n,) rows took
    2.6 ms, and 32 restarts on Old Faithful 325 against 160 us. At D=4, K=4 the gain had
    shrunk to 11.7 against 8.7 ms; the written-out program grows as K D^2, so it is kept
    to small problems.
    """
    return n_components * n_features**2 <= WRITTEN_OUT_MAX_TERMS


def _written_out_stats(x, w, params, factor, log_constant, cov_type, stats_type) -> SuffStats:
    """One chunk's statistics as ``chunk_stats`` computes them, written out per component k
    and feature d on the (n,) rows of the chunk: elementwise operations and sums over rows."""
    K, D = params.means.shape
    rows = list(x)
    diff = [[rows[d] - params.means[k, d] for d in range(D)] for k in range(K)]
    log_joint = [log_constant[k] - 0.5 * cov_type.estep.mahalanobis_rows(diff[k], factor, k) for k in range(K)]
    # log-sum-exp over the components as jax.nn.logsumexp computes it
    top = functools.reduce(jnp.maximum, log_joint)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    shifted = [jnp.exp(term - top) for term in log_joint]
    total = functools.reduce(jnp.add, shifted)
    log_norm = jnp.log(total) + top
    rw = [term * (w / total) for term in shifted]
    return SuffStats(
        n=jnp.stack([jnp.sum(r) for r in rw]),
        s1=jnp.stack([jnp.stack([jnp.sum(r * row) for row in d]) for r, d in zip(rw, diff, strict=True)]),
        s2=stats_type.estep.second_moment_rows(diff, rw),
        loglik=jnp.sum(jnp.where(w > 0, w * log_norm, 0.0)),
        weight=jnp.sum(w),
    )


def map_rows(fn, data: Chunks, n_rows: int):
    """Apply ``fn`` to each chunk's rows, as an (n, D) array, and join the per-row results
    in the order of the rows (the first ``n_rows``)."""
    out = jax.lax.map(lambda chunk: fn(chunk.x.T), data)  # (C, n, ...)
    n_chunks, n = out.shape[:2]
    out = out.reshape((n_chunks, data.n_blocks, n // data.n_blocks) + out.shape[2:])
    return jnp.swapaxes(out, 0, 1).reshape((-1,) + out.shape[3:])[:n_rows]


def objective(stats: SuffStats, params: GMMParams, covariance_type: str | CovarianceType, prior: Prior | None):
    """Mean per-row objective: (sum_i w_i log p(x_i) [+ log p(params)]) / sum_i w_i.
    ``covariance_type``: a name, or a record (``covariance.chosen``'s, in a shared program)."""
    total = stats.loglik
    if prior is not None:  # of the model's components: those held at weight 0 are padding
        total = total + log_prior(params, covariance_type, prior, present=params.weights > 0)
    return total / stats.weight


def m_step(
    stats: SuffStats, params: GMMParams, cov_type: CovarianceType, reg_covar, prior: Prior | None = None
) -> GMMParams:
    """The M-step from statistics taken at ``params`` (around ``params.means``).

    Maximum likelihood without a prior; with one, the mode of the posterior under the
    conjugate prior: the structure's own M-step on the scatter and counts the prior
    augments (``covariance.priors``). The
    structure's M-step also gets ``params.covariances``: the closed forms ignore them, and
    an iterative one would warm-start from them. ``reg_covar`` is added
    to the diagonal in both cases, as in scikit-learn. A component with no responsibility
    keeps its mean, gets covariance ``reg_covar * I`` (where its structure lets it have its own)
    and a weight of 10 eps / N (the ``10 * eps`` below, scikit-learn's guard against
    dividing by zero). A component whose
    weight is exactly zero is absent: it gets no responsibility, its weight stays zero and
    its covariance is the identity, whose density stays finite (this is how a model
    selection grid, and a small fit, pad smaller K to a larger one).
    """
    K, D = stats.s1.shape
    ref_means = params.means
    present = params.weights > 0
    n = stats.n + 10 * jnp.finfo(stats.s1.dtype).eps
    if prior is None:
        pseudo = jnp.where(present, n, 0.0)
        shift = stats.s1 / n[:, None]
    else:
        pseudo = jnp.where(present, n + jnp.broadcast_to(prior.alpha, (K,)) - 1, 0.0)
        shift = (stats.s1 + prior.kappa * (prior.mean - ref_means)) / (n + prior.kappa)[:, None]
        # An absent component has no prior to pull its mean (covariance.priors): it keeps
        # it, so that its scatter and kappa-term add nothing to a shared covariance's.
        shift = jnp.where(present[:, None], shift, 0.0)
    weights = pseudo / jnp.sum(pseudo)
    means = ref_means + shift
    # Scatter around the new means, from moments around the reference means.
    scatter = (
        stats.s2
        - cov_type.mstep.outer(stats.s1, shift)
        - cov_type.mstep.outer(shift, stats.s1)
        + cov_type.mstep.outer(n[:, None] * shift, shift)
    )
    if prior is None:
        covariances = cov_type.mstep.ml_covariance(scatter, n, D, params.covariances)
    else:  # the same M-step on the statistics the prior augments (covariance.priors)
        off = jnp.where(present[:, None], means - prior.mean, 0.0)
        prior_scatter, prior_count = cov_type.prior.pseudo(prior, present)
        scatter = scatter + prior.kappa * cov_type.mstep.outer(off, off) + prior_scatter
        covariances = cov_type.mstep.ml_covariance(scatter, n + prior_count, D, params.covariances)
    covariances = cov_type.mstep.add_to_diagonal(covariances, reg_covar)
    if cov_type.family != "tied":
        # An absent component has no rows: its covariance above is reg_covar I, singular at
        # reg_covar=0, and its density would then be NaN on every row, which its zero weight
        # cannot cancel (small fits padded to K=8 failed so, issue 28). It keeps a unit one.
        unit = cov_type.unit(K, D, covariances.dtype)
        covariances = jnp.where(present.reshape((K,) + (1,) * (covariances.ndim - 1)), covariances, unit)
    return GMMParams(weights, means, covariances)


def spherical_unit(centers, active=None) -> tuple[GMMParams, CovarianceType]:
    """Equal weights and unit spherical covariances: the most probable component of a row
    is then its nearest centre, so a hard E-step with these parameters is a k-means
    assignment. ``active`` (K,) bool leaves out centres (weight 0)."""
    K = centers.shape[0]
    weights = jnp.ones(K, centers.dtype) if active is None else active.astype(centers.dtype)
    params = GMMParams(weights / jnp.sum(weights), centers, jnp.ones(K, centers.dtype))
    return params, covariance.SPHERICAL
