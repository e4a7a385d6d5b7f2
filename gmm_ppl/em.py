"""EM for the Gaussian mixture: maximum likelihood or MAP, one compiled program.

``fit_em`` validates its inputs in NumPy, then calls one jitted program (``fit_body``)
that initialises all restarts, runs the ``EM`` learner (``gmm_ppl.learners``) from each in
the one loop (``gmm_ppl.driver``), batched with ``vmap``, and returns the best with how
every restart ended.

Convergence rule: iteration t computes the objective J_t at the current parameters
(the mean per-row log-likelihood, plus log-prior / N under MAP) in its E-step, then
updates the parameters. EM stops after iteration t when |J_t - J_{t-1}| < tol, or after
``max_iter`` iterations. ``converged`` is true exactly when that rule was met, including on
the last allowed iteration. Same rule and same ``tol`` meaning as scikit-learn.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, driver, programs
from gmm_ppl._text import spoken_list
from gmm_ppl.init import DETERMINISTIC_STARTS, INIT_METHODS, deterministic_starts, initial_params
from gmm_ppl.learners import EM
from gmm_ppl.model import default_prior
from gmm_ppl.params import GMMParams, Prior, with_components
from gmm_ppl.random_draws import restart_keys
from gmm_ppl.stats import Classification, default_chunk_size


def run_em(learner: EM, statistics, params: GMMParams, max_iter, capacity: int):
    """EM from ``params`` to convergence or ``max_iter``, then one more pass that scores the
    returned parameters. Returns the loop's end (``driver.LoopState``), whose ``value`` then
    belongs to its ``params``, and their mean per-row log-likelihood.

    Of the last pass only the log-likelihood is used, so JAX and XLA drop its moments: it
    costs 28% (W2) and 47% (W3) of an E-step (issue 5). scikit-learn's fit ends with the
    same pass (its final E-step, for the labels)."""
    end = driver.run(learner, statistics, params, max_iter, capacity)
    end, stats = driver.finish(learner, statistics, end)
    return end, stats.loglik / stats.weight


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "params",
        "objective",
        "log_likelihood",
        "n_iter",
        "converged",
        "trace",
        "restart_objectives",
        "restart_params",
        "best_restart",
        "prior",
    ],
    meta_fields=["covariance_type"],
)
@dataclasses.dataclass(frozen=True)
class EMResult:
    """What ``fit_em`` returns: the best restart, and how every restart ended.

    Attributes:
      params: fitted ``GMMParams`` (weights (K,), means (K, D), covariances by type).
      objective: () mean per-row objective at ``params``: log-likelihood, plus
        log-prior / sum of weights under MAP.
      log_likelihood: () mean per-row log-likelihood at ``params``.
      n_iter: () EM iterations (M-steps) of the best restart.
      converged: () whether the best restart met the convergence rule.
      trace: (max_iter + 1,) objective after 0, 1, ..., n_iter M-steps; NaN beyond.
        EM never lowers it.
      restart_objectives: (n_init,) final objective of every restart (-inf if one failed).
      restart_params: ``GMMParams`` of every restart's end, stacked along a leading
        (n_init,) axis, so that distinct optima can be found; None for a fit read back from
        a results folder (``gp.load``).
      best_restart: () index of the returned restart.
      prior: the ``Prior`` of a MAP fit, or None for maximum likelihood.
      covariance_type: the structure's registry name ('full', 'tied', 'diag', 'spherical'
        or another of mclust's codes, such as 'VVE'); inside a program shared by several
        structures, the tuple of their names until ``as_structure``.
    """

    params: GMMParams
    objective: jax.Array
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    trace: jax.Array
    restart_objectives: jax.Array
    restart_params: GMMParams | None
    best_restart: jax.Array
    prior: Prior | None
    covariance_type: str


# The static arguments of ``fit_body``: a program is compiled per value of these (and per
# shape of the arrays). ``max_iter`` need not be one (the trace has a fixed capacity,
# ``driver.trace_capacity``), but as a traced bound of the loop it changed XLA's program
# enough to move fitted parameters by an ulp (Old Faithful, K=3, float32), so it stays
# static until a change of results is wanted.
FIT_STATIC = ("max_iter", "n_components", "covariance_type", "n_init", "init", "chunk_size", "row_blocks")

# The scikit-learn types whose small (padded) fits share one program per storage family,
# the type chosen at run time (``covariance.chosen``). Only these: the eight structures of
# full storage in one program compiled in 4.1 s against 2.0 s for full alone (quick build,
# 160 x 4 rows, K=8), too much for a user who fits one of them; full with tied, 1.7-2.0 s.
SHARED_SMALL_FITS = (("full", "tied"), ("diag", "spherical"))


def fit_body(
    x,
    w,
    key,
    given,
    prior,
    tol,
    reg_covar,
    n_active=None,
    previous=None,
    choice=None,
    labels=None,
    *,
    max_iter,
    n_components,
    covariance_type,
    n_init,
    init,
    chunk_size,
    row_blocks=1,
) -> EMResult:
    """Initialise ``n_init`` restarts, run them batched, keep every end and pick the best
    (traceable).

    ``n_active`` (a traced int, or None for all K): only the first ``n_active`` components
    take part; the others keep weight 0. A grid over K then needs one program, not one
    per K (see ``gmm_ppl.selection``). ``row_blocks``: the devices the rows are sharded
    over, in contiguous blocks (``shard_rows``); the chunks take an equal part of each.
    The trace returned has the loop's capacity, ``driver.trace_capacity(max_iter)``, and a
    single start's ``restart_params`` is None (``complete`` makes both what fit_em returns).
    ``previous``: fit_em's ``previous_objective`` (a traced scalar), or None for -inf.
    ``covariance_type`` may be a tuple of structures, one program for them all, and then
    ``choice`` (a traced int) picks the one fitted (``covariance.chosen``), under a prior too.
    ``labels`` (N,) ints with ``given.means`` (their classes' means): the start is the
    M-step from that classification (mclust's start, ``gmm_ppl.hc``), one run.
    """
    shift, xc, statistics = driver.centred(x, w, chunk_size, row_blocks)
    active = None if n_active is None else jnp.arange(n_components) < n_active
    if prior is not None:
        prior = prior._replace(mean=prior.mean - shift)
    if isinstance(covariance_type, tuple):  # several structures, the one fitted by `choice`
        if choice is None:
            raise ValueError(f"a program for the structures {covariance_type} needs the choice of one")
        learner = EM(covariance.shared(covariance_type), prior, tol, reg_covar, previous, choice, covariance_type)
    else:
        learner = EM(covariance.get(covariance_type), prior, tol, reg_covar, previous)

    # `given` holds the starting weights, means and covariances the user fixed (None where
    # not). Given means fix the rest through the nearest-mean assignment (one run);
    # otherwise every restart starts by `init`, and given pieces replace its estimates.
    if given.means is not None:
        means = given.means - shift
        if labels is not None:  # the M-step's own means: the given ones are its reference
            assign = Classification.of_labels(labels, w, n_components, chunk_size, row_blocks)
            base = learner.init(statistics, means, active, assign=assign)
        elif given.weights is None or given.covariances is None:
            base = learner.init(statistics, means, active)._replace(means=means)
        else:
            base = given._replace(means=means)
        starts = jax.tree.map(lambda a: a[None], base)
    else:
        starts = jax.vmap(lambda k: initial_params(k, learner, statistics, xc, w, n_components, init, active))(
            restart_keys(key, n_init)
        )
    starts = starts._replace(
        **{
            field: jnp.broadcast_to(value, getattr(starts, field).shape)
            for field, value in given._asdict().items()
            if value is not None and field != "means"
        }
    )

    runs, log_likelihoods = driver.over_restarts(
        lambda start: run_em(learner, statistics, start, max_iter, driver.trace_capacity(max_iter)), starts
    )
    objectives = jnp.where(jnp.isnan(runs.value), -jnp.inf, runs.value)
    best = jnp.argmax(objectives)
    run = jax.tree.map(lambda a: a[best], runs)
    if prior is not None:
        prior = prior._replace(mean=prior.mean + shift)
    return EMResult(
        params=run.params._replace(means=run.params.means + shift),
        objective=run.value,
        log_likelihood=log_likelihoods[best],
        n_iter=run.n_iter,
        converged=run.converged,
        trace=run.trace,
        restart_objectives=objectives,
        # One start's end is the fit itself: not an output of the program (as one, it cost W4
        # 4-8% an iteration, benchmarks/results/paired.md); ``complete`` copies it on the host.
        restart_params=runs.params._replace(means=runs.params.means + shift) if len(objectives) > 1 else None,
        best_restart=best,
        prior=prior,
        covariance_type=covariance_type,
    )


_fit_program = programs.two_builds("fit_em", fit_body, static_argnames=FIT_STATIC)


def complete(result: EMResult, max_iter: int) -> EMResult:
    """``fit_body``'s result, on the host, as ``fit_em`` returns it: the trace (of the loop's
    capacity) cut to max_iter + 1 entries, and a single start's end as ``restart_params``."""
    restarts = result.restart_params
    if restarts is None:
        restarts = jax.tree.map(lambda a: np.asarray(a)[None], result.params)
    return dataclasses.replace(result, trace=result.trace[..., : max_iter + 1], restart_params=restarts)


def as_structure(fit: EMResult, name: str) -> EMResult:
    """A completed fit of a program shared by several structures (``fit_body`` given a tuple
    of them) as the fit of structure ``name``: its covariances back in that structure's own
    storage (``covariance.from_shared``). Any other fit is returned as it is."""
    names = fit.covariance_type
    if not isinstance(names, tuple):
        return fit
    own = functools.partial(covariance.from_shared, name=name, names=names)
    return dataclasses.replace(
        fit,
        covariance_type=name,
        params=fit.params._replace(covariances=own(fit.params.covariances)),
        restart_params=fit.restart_params._replace(covariances=own(fit.restart_params.covariances)),
    )


def first_components(fit: EMResult, k: int) -> EMResult:
    """The fit of the first ``k`` components of a fit padded with components held at
    weight 0 (``fit_body``'s ``n_active``); ``fit`` itself when it has ``k``."""
    if fit.params.means.shape[-2] == k:
        return fit
    tied = covariance.get(fit.covariance_type).family == "tied"

    def first(params: GMMParams, lead: tuple) -> GMMParams:  # lead: the axes before the components'
        cut = (*lead, slice(k))
        return GMMParams(
            params.weights[cut], params.means[cut], params.covariances if tied else params.covariances[cut]
        )

    return dataclasses.replace(
        fit, params=first(fit.params, ()), restart_params=first(fit.restart_params, (slice(None),))
    )


def row_mesh(devices=None) -> jax.sharding.Mesh:
    """A one-axis mesh ('rows') over ``devices`` (default: all of ``jax.devices()``), for
    ``fit_em(mesh=)``. On a multi-host run after ``jax.distributed.initialize()``,
    ``jax.devices()`` lists the devices of every process."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return jax.sharding.Mesh(devices.reshape(-1), ("rows",))


def shard_rows(x: np.ndarray, w: np.ndarray, mesh: jax.sharding.Mesh, chunk_size: int, dtype):
    """(x, w) padded with zero-weight rows to whole chunks, rows split over the devices.

    ``chunk_size`` must be a multiple of the device count: each device's block of rows
    then fills an equal part of every chunk (see ``stats.Chunks``).
    """
    n_devices = mesh.devices.size
    if chunk_size % n_devices:
        raise ValueError(f"chunk_size ({chunk_size}) must be a multiple of the mesh's {n_devices} devices")
    n_rows = -(-x.shape[0] // chunk_size) * chunk_size
    pad = n_rows - x.shape[0]
    # Automatic axes whatever the mesh was made with: under the explicit axes that
    # ``jax.make_mesh`` gives by default, the E-step's sums over the sharded rows raised
    # ShardingTypeError (JAX asks for each product's output sharding); under automatic axes
    # XLA adds the all-reduce itself, as for ``row_mesh``'s.
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    mesh = jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=auto)
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))
    x = np.pad(np.asarray(x, dtype), ((0, pad), (0, 0)))
    w = np.pad(np.asarray(w, dtype), (0, pad))
    return jax.device_put(x, rows), jax.device_put(w, rows)


def check_em_options(n_init, max_iter, tol, reg_covar, init):
    """The run options shared by fit_em and select_model, checked: (n_init, max_iter, tol, reg_covar)."""
    if init not in INIT_METHODS:
        raise ValueError(f"unknown init {init!r}; expected one of {list(INIT_METHODS)}")
    return (
        _validate.check_int(n_init, "n_init"),
        _validate.check_int(max_iter, "max_iter", minimum=0),
        _validate.check_float(tol, "tol"),
        _validate.check_float(reg_covar, "reg_covar"),
    )


def fit_em(
    x,
    n_components: int,
    *,
    covariance_type: str = "full",
    key=None,
    n_init: int = 1,
    init: str = "kmeans++",
    init_params: GMMParams | None = None,
    means_init=None,
    prior: Prior | str | None = None,
    sample_weight=None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
    dtype="float32",
    mesh: jax.sharding.Mesh | None = None,
    previous_objective: float | None = None,
    matmul_precision: str = "highest",
    memory_budget: int | None = None,
) -> EMResult:
    """Fit a Gaussian mixture by EM: maximum likelihood, or MAP under a conjugate prior.

    Args:
      x: (N, D) numeric data without NaN or infinity. A JAX array (on a GPU, say) is
        checked and fitted where it lives, without a copy through the host (unless ``mesh``,
        ``prior='default'``, ``init='hierarchical'`` or ``'mclust'`` need it there).
      n_components: K >= 1, at most N.
      covariance_type: 'full' (K, D, D), 'tied' (D, D), 'diag' (K, D) or 'spherical' (K,),
        or mclust's codes: VVV, EEE, VVI, VII for those four, and its ten others (EII, EEI,
        EVI, EVV, EEV, VEI, VEE, EVE, VVE, VEV; shapes and meanings in ``gmm_ppl.covariance``).
      key: JAX PRNG key or int seed for the initialisation (default: key 0).
      n_init: restarts, run batched in one compiled call; the best objective wins.
      init: 'kmeans++' (default), 'kmeans' (k-means++ then Lloyd), 'random_from_data'
        (K distinct random rows as centres), 'hierarchical' (the centres of Ward's
        agglomerative clustering of the standardised data: deterministic, one run, O(N^2)
        memory up to 4000 rows, a random subset beyond), 'mclust' (mclust's own start:
        its model-based hierarchical agglomeration, ``gmm_ppl.hc``, whose classification
        gives the starting parameters by one M-step; deterministic, one run, O(N^2) up to
        2000 rows) or 'random' (parameters estimated from random responsibilities,
        scikit-learn's 'random'). Except for 'random' and 'mclust', rows are hard-assigned
        to the nearest centre and one M-step gives the starting parameters.
      init_params: starting ``GMMParams``. Fields may be None: given weights or covariances
        replace those of every restart's start; given means make the start deterministic
        (one run), the missing pieces estimated from the nearest-mean assignment.
      means_init: (K, D) starting means; shorthand for ``init_params=GMMParams(None, means, None)``.
      prior: None for maximum likelihood; a ``Prior`` (or 'default' for
        ``default_prior(x, K)``) for MAP-EM.
      sample_weight: (N,) non-negative row weights; an integer weight counts as that many
        copies of the row.
      tol: stop when the mean per-row objective changes by less than ``tol``.
      reg_covar: added to the covariance diagonal after every M-step; keeps covariances
        positive definite on degenerate data (duplicate rows, constant columns, a
        component that loses its rows). Must be > 0 for such data. With reg_covar=0 each
        M-step is the exact maximiser and the objective never decreases; with
        reg_covar > 0 it can dip by round-off-sized amounts (about 1e-12 per row on Old
        Faithful) as EM settles.
      max_iter: most EM iterations per restart; 0 returns the starting parameters, scored
        (the best-scoring start of ``n_init``).
      chunk_size: rows per chunk of the E-step; memory is O(chunk_size * K * D). Default:
        about 2^19 / (K D n_init) rows on a CPU (a chunk stays in cache); on a GPU or TPU
        as many as ``memory_budget`` allows (fewer, larger chunks: fewer kernel launches).
      dtype: 'float32' (default) or 'float64'.
      matmul_precision: 'highest' (default): float32 products in full float32. 'default' or
        'high' are JAX's faster settings of a GPU or TPU (bfloat16 or TF32 inputs; on an H200
        'default' moved a float32 log-likelihood by 1e-3 relative), there to compare speed
        with a library that runs at them, such as gmmx. A CPU computes in full float32 with
        any of the three. The setting is part of the compiled program's key.
      memory_budget: on a GPU or TPU, the bytes a call may hold on a device at its peak, the
        data included; the E-step's chunks are the largest that fit
        (``stats.accelerator_chunk_elements``). Default: 1.5 x the data + 300 MB, or what a
        chunk of 2^24 numbers is predicted to need if more; at most the data + half the
        device's free memory. Ignored on a CPU, where chunks fit the cache, and with
        ``chunk_size``.
      mesh: a ``jax.sharding.Mesh`` to spread the rows over: they are split in equal
        contiguous blocks over all of its devices (padded with zero-weight rows), each
        device computes the statistics of its rows, and XLA's all-reduce sums them. The
        parameters are small and replicated. Default: one device. See ``row_mesh``.
      previous_objective: when this fit continues an earlier one from its parameters (given
        as ``init_params``), that fit's last objective (``trace[n_iter - 1]``, scikit-learn's
        ``lower_bound_``): the first iteration's change is measured from it rather than from
        -inf, so the continued fit can converge at its first iteration (scikit-learn's
        ``warm_start``). Needs a single start.

    Returns:
      An ``EMResult`` of NumPy arrays in ``dtype`` (NumPy, so float64 results stay float64
      whatever JAX's x64 setting).

    Raises:
      ValueError: naming the problem with the inputs, before anything is compiled.
      FloatingPointError: if every restart ended with a non-finite objective.

    Example:
      >>> x = gp.datasets.load("old_faithful")
      >>> fit = gp.fit_em(x, 2, key=jax.random.key(0), n_init=10)
      >>> fit.params.means, fit.log_likelihood, fit.converged
    """
    x = _validate.as_data_where_it_is(x, keep_float32=True)
    K = _validate.check_int(n_components, "n_components")
    N, D = x.shape
    covariance_type = covariance.canonical(covariance_type)
    _validate.check_rows(x, K)
    n_init, max_iter, tol, reg_covar = check_em_options(n_init, max_iter, tol, reg_covar, init)
    w = _validate.check_sample_weight(sample_weight, N)
    dtype = _validate.check_dtype(dtype)
    matmul_precision = _validate.check_matmul_precision(matmul_precision)
    if memory_budget is not None:
        memory_budget = _validate.check_int(memory_budget, "memory_budget")
    # The options that work on the host share one copy of a device array x, made if needed.
    x_on_host = functools.cache(lambda: np.asarray(jax.device_get(x)))
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be a Prior, 'default' or None; got {prior!r}")
        prior = default_prior(x_on_host(), K)
    if prior is not None:
        if not covariance.supports(covariance_type, "map"):
            raise ValueError(
                f"covariance_type {covariance_type!r} has no MAP step here; "
                f"MAP-EM supports {spoken_list(map(repr, covariance.supporting('map')))}"
            )
        prior = _validate.check_prior(prior, K, D)
    if init_params is not None and means_init is not None:
        raise ValueError("give init_params or means_init, not both")
    key = _validate.as_key(key)
    if means_init is not None:
        means_init = _validate.check_means(means_init, K, D)
    given = GMMParams(*(init_params if init_params is not None else (None, means_init, None)))
    labels = None
    if init in DETERMINISTIC_STARTS and given.means is None:
        means, labels = deterministic_starts(x_on_host(), w, [K], init)
        given = given._replace(means=means[0])
        labels = None if labels is None else labels[0]
    given = _validate.check_params(given, K, D, covariance_type)
    if given.means is not None:
        n_init = 1
    if previous_objective is not None:
        previous_objective = float(previous_objective)
        if n_init != 1:
            raise ValueError("previous_objective continues one fit: give its parameters as init_params")
    n_devices = 1 if mesh is None else mesh.devices.size
    # Where the program runs, for its chunk size and build: the mesh's devices, or those of a
    # JAX array x (a program follows its committed inputs), else JAX's default backend (None).
    if mesh is not None:
        device = mesh.devices.flat[0]
    elif isinstance(x, jax.Array):
        device = next(iter(x.devices()))
    else:
        device = None
    platform = None if device is None else device.platform
    batch = programs.runs_as_work(n_init, max_iter)
    # A small problem is compiled for a bucket of shapes (programs.padded_shape): rows padded
    # with zero weight, components beyond K held at weight 0. Not where the start's random
    # draws depend on the shape ('random', 'random_from_data', unless given means replace
    # them), nor for K where the start gives weights or covariances, nor for a mesh (which
    # pads rows its own way). Given means (``means_init``, and the 'mclust' and
    # 'hierarchical' starts) are padded with absent components, which take no rows: fitting
    # K = 1..6 from such a start compiles one program, not six. Under MAP the components
    # beyond K have no prior either (``covariance.priors``: only present ones).
    padded = None
    drawn = init in ("random", "random_from_data") and given.means is None
    if mesh is None and chunk_size is None and not drawn:
        pad_components = given.weights is None and given.covariances is None
        padded = programs.padded_shape(N, K, D, batch, components=pad_components)
    rows, components = padded or (N, K)
    if given.means is not None and components > K:
        given = given._replace(means=np.pad(given.means, ((0, components - K), (0, 0))))
    program_prior = None if prior is None else with_components(prior, components)
    # A small problem of a scikit-learn type shares its program with the other type of its
    # storage family (full and tied, diag and spherical: ``SHARED_SMALL_FITS``), the type
    # chosen at run time, under a prior too: a notebook's pass over the four types compiles
    # two programs. Not with given covariances (in the type's own storage), nor given
    # weights: one of 0 makes its component absent, and held as full covariances an absent
    # component gets the unit one, where tied storage would keep the shared covariance in
    # its place.
    structures, choice = covariance_type, None
    if padded and given.weights is None and given.covariances is None:
        sharing = next((group for group in SHARED_SMALL_FITS if covariance_type in group), None)
        if sharing is not None:
            structures, choice = sharing, np.int32(sharing.index(covariance_type))
    if chunk_size is None:
        chunk_size = n_devices * default_chunk_size(
            -(-rows // n_devices), components, D, n_init, platform,
            itemsize=np.dtype(dtype).itemsize, memory_budget=memory_budget, device=device,
        )  # fmt: skip
    chunk_size = _validate.check_int(chunk_size, "chunk_size")

    cast = functools.partial(_validate.to_device, dtype=dtype)
    with _validate.precision(dtype, matmul_precision):
        if mesh is not None:
            x_in, w_in = shard_rows(x_on_host(), w, mesh, chunk_size, dtype)
        else:
            pad = ((0, rows - N), (0, 0))
            if not padded:
                x_in = cast(x)
            elif isinstance(x, jax.Array):  # padded where it lives: a copy on its device, not through the host
                x_in = jnp.pad(cast(x), pad)
            else:
                x_in = cast(np.pad(x, pad))
            w_in = cast(np.pad(w, pad[0]))
        program = _fit_program.pick(rows * components * D * batch, platform)
        result = program(
            x_in,
            w_in,
            key,
            cast(given),
            cast(program_prior),
            cast(tol),
            cast(reg_covar),
            None if components == K else np.int32(K),
            None if previous_objective is None else cast(previous_objective),
            choice,
            None if labels is None else np.pad(labels, (0, x_in.shape[0] - N)),
            max_iter=max_iter,
            n_components=components,
            covariance_type=structures,
            n_init=n_init,
            init="given" if given.means is not None else init,  # init is unused then: one program
            chunk_size=chunk_size,
            row_blocks=n_devices,
        )
    # NumPy on the way out: float64 results stay float64 even where JAX's x64 mode is off.
    result = first_components(as_structure(complete(jax.device_get(result), max_iter), covariance_type), K)
    if prior is not None:  # the prior of the K components, as given
        result = dataclasses.replace(result, prior=with_components(result.prior, K))
    if not np.isfinite(float(result.objective)):
        raise FloatingPointError(
            "every EM restart ended with a non-finite objective; with degenerate data "
            f"(duplicate rows, a constant column) use reg_covar > 0 (got {reg_covar})"
        )
    return result
