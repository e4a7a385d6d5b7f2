"""NUTS over the declared model, with the assignments summed out, as ArviZ InferenceData.

``gmm_ppl.sampling.sample_posterior`` (``gp.sample_posterior``) composes the stages here;
they run NumPyro's NUTS kernel on the potential energy of ``gmm_model``
(the same model and ``Prior`` that MAP-EM uses), in either marginal form:

  "marginal"   x_i ~ MixtureSameFamily(Categorical(weights), MVN(means, covariances))
  "enumerate"  z_i ~ Categorical(weights) summed out by funsor's parallel enumeration

Two jitted programs do the work: ``_nuts_start`` sets every chain at its starting point,
and ``_nuts_segment`` runs up to ``SEGMENT_CAPACITY`` NUTS iterations of every chain (warm-up
or sampling: the state knows which), chains one after another by ``lax.map``. A run calls
the segment program again and again, passing the state on, so the draws do not depend on
the segments, and between two calls Ctrl-C can stop sampling with the draws made so far
(``SamplingInterrupted``) and the progress bar is drawn (``gmm_ppl.progress``: on the host,
not by a callback inside the program, which would keep it out of the disk cache). The
programs take the data, the prior and the state as arguments, so a second call with new
data of the same shape, or another number of draws, reuses them, and a new process loads
them from the disk cache (``gmm_ppl.compilation_cache``).

Mixture components have no fixed names: the posterior is symmetric under permuting them,
so chains may settle on different labellings ("label switching"). Every draw is relabelled
to a reference fit (MAP-EM by default) by the permutation that minimises the summed
Kullback-Leibler divergence between matched components; the raw draws are kept in the
``unrelabelled_posterior`` group.

``sample_posterior`` checks its arguments and composes five stages, each a function of its
own so that a caller can run them apart (``gmm_ppl.multimodal`` runs stages 2-5 with one
group of chains per mode):

  1. ``reference_params``   the reference fit (MAP-EM, or given parameters): labels, starts
  2. ``chain_starts``       how the chains start (``ChainStarts``); ``starting_points`` makes
                            the unconstrained points, inside the compiled start program
  3. ``run_nuts``           warm-up and sampling in segments, Ctrl-C, progress: raw draws
  4. ``relabel``            the draws in the reference's labelling
  5. ``to_inference_data``  the ArviZ InferenceData
"""

from __future__ import annotations

import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import xarray as xr
from numpyro import handlers
from numpyro.contrib.funsor import enum
from numpyro.infer import Predictive
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo, constrain_fn, potential_energy, unconstrain_fn
from scipy.optimize import linear_sum_assignment

from gmm_ppl import _validate, covariance, programs
from gmm_ppl._arviz import az
from gmm_ppl.em import EMResult, fit_em
from gmm_ppl.likelihood import joint_log_prob
from gmm_ppl.model import gmm_model, sample_params
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.progress import nuts_bar, reporting

FORMS = ("marginal", "enumerate")
INITS = ("em", "prior", "uniform")
PARAMETERS = ("weights", "means", "covariances")


def _unchecked(model):
    """``model`` run with NumPyro's checks of distribution arguments off. gmm_ppl runs its
    models only inside compiled programs, where the checks see tracers and can never fail
    (the prior is checked on the way in, ``_validate.check_prior``); they only add work: the
    positive-definite check traces an eigendecomposition of every covariance, which under
    ``find_modes``' Hessian (a vmap of a jvp of the gradient) took most of its 2.5 s of tracing."""

    def unchecked(*args, **kwargs):
        with numpyro.validation_enabled(False):
            return model(*args, **kwargs)

    return unchecked


def _model(n_components, covariance_type, form):
    """``gmm_model`` with its static settings bound; x and prior stay arguments."""
    model = _unchecked(
        functools.partial(
            gmm_model, n_components=n_components, covariance_type=covariance_type, marginal=form == "marginal"
        )
    )
    # funsor's enumeration needs the batch dimensions it may use: the data plate is the
    # only one that holds z, so dimension -2 is the first free one.
    return model if form == "marginal" else enum(model, first_available_dim=-2)


def _params_model(n_components, n_features, covariance_type):
    """The prior sites alone: enough to move parameters between constrained and unconstrained."""
    return _unchecked(functools.partial(sample_params, n_components, n_features, covariance_type))


@programs.compiled("potential_energy", static_argnames=("n_components", "covariance_type", "form"))
def _potential_energy(u, x, prior, *, n_components, covariance_type, form):
    """-log p(params, x) in the unconstrained space (Jacobian included), z summed out.

    Jitted on its own so that tracing the NUTS program reuses one trace of the model
    for its several calls of the potential and its gradient.
    """
    model = _model(n_components, covariance_type, form)
    return potential_energy(model, (x,), {"prior": prior}, u, enum=form == "enumerate")


# Most NUTS iterations per chain that one call of the compiled sampler runs: the size of the
# draw buffers it returns. Fixed, so that every run of a model shares one program whatever
# its number of draws or its segments.
SEGMENT_CAPACITY = 100
# Without a given segment_size, segments are sized to take about this long: a Ctrl-C is then
# answered within about a second, and the per-call overhead stays far below the sampling.
SEGMENT_SECONDS = 1.0

_NUTS_STATIC = (
    "n_components",
    "covariance_type",
    "form",
    "num_warmup",
    "target_accept_prob",
    "max_tree_depth",
    "dense_mass",
)


def _nuts_settings(arguments: dict) -> dict:
    """The NUTS settings (``_NUTS_STATIC``) among a function's arguments, for ``_nuts_kernels``."""
    return {name: arguments[name] for name in _NUTS_STATIC}


def _nuts_kernels(x, prior, *, n_components, covariance_type, form, num_warmup, target_accept_prob,
                  max_tree_depth, dense_mass):  # fmt: skip
    """NumPyro's NUTS kernels on the model's potential: (init(u, key) -> state, step(state) -> state)."""
    config = {"n_components": n_components, "covariance_type": covariance_type, "form": form}

    def potential_fn_gen(x, prior):
        return lambda u: _potential_energy(u, x, prior, **config)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def init(u, key):
        return init_kernel(
            u,
            num_warmup,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
            model_args=(x, prior),
            rng_key=key,
        )

    def step(state):
        return sample_kernel(state, model_args=(x, prior))

    return init, step


def _without_numpyro_checks(fn):
    """``fn`` traced with NumPyro's argument checks off. NumPyro checks a distribution's
    arguments as it is built; in a jitted program they are tracers, so no check can fail,
    yet tracing them took 1.5 s of the 2.5 s that tracing the NUTS start took on Old
    Faithful (their masks, ``jnp.tril``'s, were computed and compiled at trace time). The
    prior is checked before anything is traced (``_validate.check_prior``)."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with numpyro.validation_enabled(False):
            return fn(*args, **kwargs)

    return traced


@programs.compiled_two_builds("nuts_start", static_argnames=(*_NUTS_STATIC, "init", "num_chains"))
@_without_numpyro_checks
def _nuts_start(
    x,
    prior,
    start,
    key,
    *,
    init,
    num_chains,
    n_components,
    covariance_type,
    form,
    num_warmup,
    target_accept_prob,
    max_tree_depth,
    dense_mass,
):
    """(num_chains,)-batched NUTS states at the chains' starting points, and the potential
    energy there (finite, or the start is unusable).

    ``init`` 'em', 'prior' or 'uniform': the points are ``starting_points(init, start, ...)``
    (``start`` a ``GMMParams``); None: ``start`` holds them, (num_chains, ...) unconstrained.
    """
    nuts = _nuts_settings(locals())
    start_key, chain_key = jax.random.split(key)
    u0 = start if init is None else starting_points(init, start, x, prior, covariance_type, num_chains, start_key)
    init_state, _ = _nuts_kernels(x, prior, **nuts)
    states = jax.vmap(init_state)(u0, jax.random.split(chain_key, num_chains))
    return states, states.potential_energy


@programs.compiled("nuts_segment", static_argnames=_NUTS_STATIC)
@_without_numpyro_checks
def _nuts_segment(
    x,
    prior,
    states,
    n_steps,
    *,
    n_components,
    covariance_type,
    form,
    num_warmup,
    target_accept_prob,
    max_tree_depth,
    dense_mass,
):
    """``n_steps`` (<= SEGMENT_CAPACITY, traced) NUTS iterations of every chain from ``states``:
    (new states, constrained draws and sampler statistics, (chains, SEGMENT_CAPACITY, ...),
    of which the first ``n_steps`` are filled).

    Warm-up and sampling both run here, one segment after another: the state carries the
    iteration count and the adaptation, so the draws do not depend on how the iterations
    are cut into segments, and ``n_steps`` being an argument keeps one compiled program for
    any segment (chains one after another by ``lax.map``: on a CPU a ``vmap`` over chains
    makes every chain wait for the longest trajectory).
    """
    nuts = _nuts_settings(locals())
    init_state, step = _nuts_kernels(x, prior, **nuts)

    def record(state):
        stats = {
            "diverging": state.diverging,
            "energy": state.energy,
            "n_steps": state.num_steps,
            "acceptance_rate": state.accept_prob,
            "step_size": state.adapt_state.step_size,
            "lp": -state.potential_energy,
        }
        return state.z, stats

    def chain(state):
        # NumPyro's sample kernel reads settings (the warm-up schedule, the tree depth) that its
        # init kernel stores; re-running init from the state's own point and gradient sets them
        # without evaluating the model, and XLA drops the unused result.
        init_state(ParamInfo(state.z, state.potential_energy, state.z_grad), state.rng_key)
        buffers = jax.tree.map(lambda a: jnp.zeros((SEGMENT_CAPACITY, *a.shape), a.dtype), record(state))

        def body(i, carry):
            state, buffers = carry
            state = step(state)
            buffers = jax.tree.map(lambda b, v: b.at[i].set(v), buffers, record(state))
            return state, buffers

        return jax.lax.fori_loop(0, n_steps, body, (state, buffers))

    states, (z, stats) = jax.lax.map(chain, states)
    params_model = _params_model(n_components, x.shape[1], covariance_type)

    def constrain(u):
        return constrain_fn(params_model, (), {"prior": prior}, u)

    draws = jax.vmap(jax.vmap(constrain))(z)
    return states, ({name: draws[name] for name in PARAMETERS}, stats)


# Stage 1: the reference fit. It names the components (every draw is relabelled to it) and
# is where 'em' chains start.


def relative_reg_covar(x) -> float:
    """The MAP-EM fits behind NUTS (the reference, ``find_modes``) take reg_covar relative to
    the data's spread: fit_em's absolute 1e-6 would swamp data on a scale like 1e-8 and start
    the chains far from the posterior."""
    spread = float(np.mean(np.var(x, axis=0)))
    return 1e-6 * spread if spread > 0 else 1e-6


def _default_reference(x, K, covariance_type, prior: Prior, key) -> GMMParams:
    """The posterior mode by MAP-EM (10 restarts); ML-EM if alpha < 1 has no interior mode.

    With more components than rows EM cannot fit them all: it fits one per row and the rest
    sit at the prior mean with the data's spread and a negligible weight.
    """
    N, D = x.shape
    fitted = fit_em(
        x,
        min(K, N),
        covariance_type=covariance_type,
        prior=prior if np.all(prior.alpha >= 1) and K <= N else None,
        n_init=10,
        key=key,
        reg_covar=relative_reg_covar(x),
        dtype="float64",
    ).params
    extra = K - N
    if extra <= 0:
        return fitted
    spread = np.atleast_2d(np.cov(x, rowvar=False)) if N > 1 else np.asarray(prior.scale)
    spread = spread + 1e-6 * np.eye(D)
    pad = {"full": np.broadcast_to(spread, (extra, D, D)), "diag": np.broadcast_to(np.diag(spread), (extra, D))}
    pad["spherical"] = np.full(extra, np.mean(np.diag(spread)))
    family = covariance.get(covariance_type).family
    covariances = fitted.covariances if family == "tied" else np.concatenate([fitted.covariances, pad[family]], axis=0)
    weights = np.concatenate([fitted.weights, np.full(extra, 1e-3)])
    means = np.concatenate([fitted.means, np.broadcast_to(prior.mean, (extra, D))], axis=0)
    return GMMParams(weights / weights.sum(), means, covariances)


def reference_params(x, n_components: int, covariance_type: str, prior: Prior, key, reference=None) -> GMMParams:
    """The reference fit: the parameters whose labelling the draws take.

    Args:
      x: (N, D) data, as ``sample_posterior`` checks it (a float64 NumPy array).
      n_components: K.
      covariance_type: the covariance type's canonical name (``covariance.canonical``).
      prior: the ``Prior`` of the posterior, checked (``_validate.check_prior``).
      key: the run's JAX PRNG key. The MAP-EM fit uses ``jax.random.fold_in(key, 1)``, so
        the same key goes on to ``run_nuts``.
      reference: None for MAP-EM under ``prior``, the posterior mode (``_default_reference``:
        10 restarts); or an ``EMResult`` or ``GMMParams`` to take as it is.

    Returns:
      ``GMMParams`` of float64 NumPy arrays, checked (shapes, weights on the simplex,
      positive definite covariances): weights (K,), means (K, D), covariances in the
      covariance type's shape ((K, D, D), (D, D), (K, D) or (K,)).

    Raises:
      ValueError: a given ``reference`` of the wrong shape, or not valid parameters.
    """
    if reference is None:
        reference = _default_reference(x, n_components, covariance_type, prior, _validate.fold_in(key, 1))
    elif isinstance(reference, EMResult):
        reference = reference.params
    return _validate.check_params(GMMParams(*reference), n_components, x.shape[1], covariance_type, name="reference")


# Stage 2: where the chains start.


class ChainStarts(NamedTuple):
    """How a group of chains starts: ``run_nuts``'s compiled start program turns it into
    unconstrained starting points (``starting_points``), one per chain.

    Fields:
      init: 'em' (around ``params``), 'prior' or 'uniform' (``params`` then give only the
        shapes); see ``starting_points``.
      params: ``GMMParams``: weights (K,), means (K, D), covariances in the covariance
        type's shape.
      num_chains: C, the number of chains.
    """

    init: str
    params: GMMParams
    num_chains: int


def chain_starts(init, reference: GMMParams, num_chains: int, covariance_type: str) -> ChainStarts:
    """How ``sample_posterior``'s ``init`` starts the chains.

    Args:
      init: 'em', 'prior' or 'uniform' (checked by the caller): chains start from
        ``reference`` as ``starting_points`` describes; or a ``GMMParams`` or ``EMResult``:
        'em' chains around those parameters, checked as ``reference`` is.
      reference: the reference fit (``reference_params``), (K,), (K, D) and the covariance
        type's shape.
      num_chains: C.
      covariance_type: the covariance type's canonical name.

    Returns:
      ``ChainStarts`` for ``run_nuts``.

    Raises:
      ValueError: given parameters of the wrong shape, or not valid parameters.
    """
    if isinstance(init, (EMResult, GMMParams)):
        K, D = np.shape(reference.means)
        start = init.params if isinstance(init, EMResult) else GMMParams(*init)
        start = _validate.check_params(GMMParams(*start), K, D, covariance_type, name="init")
        return ChainStarts("em", start, num_chains)
    return ChainStarts(init, reference, num_chains)


def _unconstrain(params: GMMParams, covariance_type, prior):
    """Parameters in NumPyro's unconstrained space: the dict ``starting_points`` describes,
    without the chain dimension."""
    K, D = params.means.shape
    return unconstrain_fn(
        _params_model(K, D, covariance_type),
        (),
        {"prior": prior},
        {"weights": params.weights, "means": params.means, "covariances": params.covariances},
    )


def starting_points(init, start: GMMParams, x, prior, covariance_type, num_chains, key):
    """(num_chains, ...) unconstrained starting points; traced inside ``_nuts_start``.

    'em': at ``start`` (the reference fit, or given parameters), each chain's means moved
    by twice their asymptotic standard error (Sigma_k / n_k), so that chains start apart
    and r_hat can tell whether they agree. 'prior': a draw from the prior per chain.
    'uniform': NumPyro's init_to_uniform, uniform on (-2, 2) in the unconstrained space.

    Args:
      init: 'em', 'prior' or 'uniform'.
      start: ``GMMParams`` (JAX arrays): weights (K,), means (K, D), covariances in the
        covariance type's shape; for 'prior' and 'uniform' they give only the shapes.
      x: (N, D) data (JAX array): its N scales the 'em' spread, its dtype that of the noise.
      prior: the ``Prior`` (JAX arrays).
      covariance_type: the covariance type's canonical name.
      num_chains: C.
      key: JAX PRNG key.

    Returns:
      dict of unconstrained arrays (NumPyro's transforms of the prior's supports): 'weights'
      (C, K - 1), 'means' (C, K, D), 'covariances' (C, K, D (D + 1) / 2) for 'full',
      (C, D (D + 1) / 2) for 'tied', (C, K, D) for 'diag', (C, K) for 'spherical'.
    """
    K, D = start.means.shape
    u = _unconstrain(start, covariance_type, prior)
    if init == "em":
        n_k = jnp.maximum(start.weights * x.shape[0], 1.0)
        full = covariance.get(covariance_type).to_full(start.covariances, K, D)
        chol = jnp.linalg.cholesky(full / n_k[:, None, None])
        noise = jax.random.normal(key, (num_chains, K, D), x.dtype)
        u = {name: jnp.broadcast_to(v, (num_chains, *v.shape)) for name, v in u.items()}
        u["means"] = start.means + 2.0 * jnp.einsum("kij,ckj->cki", chol, noise)  # unconstrained already
    elif init == "prior":
        model = _params_model(K, D, covariance_type)

        def draw(k):
            trace = handlers.trace(handlers.seed(model, k)).get_trace(prior=prior)
            return _unconstrain(GMMParams(*(trace[n]["value"] for n in PARAMETERS)), covariance_type, prior)

        u = jax.vmap(draw)(jax.random.split(key, num_chains))
    else:
        keys = jax.random.split(key, len(u))
        u = {
            name: jax.random.uniform(k, (num_chains, *v.shape), x.dtype, -2.0, 2.0)
            for k, (name, v) in zip(keys, sorted(u.items()), strict=True)
        }
    return u


# Stage 3: the NUTS run, in standardised coordinates.


class Standardisation(NamedTuple):
    """z = (x - shift) / scale, under which NUTS samples: its warm-up then adapts one step
    size and one mass matrix to entries of about unit size, whatever the data's scale (at
    scale 1e8, 100 warm-up iterations in the data's own coordinates left 933 leapfrog steps
    a draw). The conjugate prior maps exactly, so the posterior is the same, mapped.

    Fields: shift (D,), scale (D,): per feature for 'full' and 'tied' (the normal-inverse-
    Wishart prior maps under any affine map); one number for all features for 'diag' and
    'spherical', whose inverse-gamma prior has one rate for every variance.
    """

    shift: np.ndarray
    scale: np.ndarray

    @staticmethod
    def of(x, covariance_type: str) -> Standardisation:
        x = np.asarray(x, np.float64)
        # A constant column (found by its range: its computed variance is rounding, not zero)
        # keeps scale 1, as default_prior gives it a unit scale.
        variance = np.where(np.ptp(x, axis=0) > 0, np.var(x, axis=0), 0.0)
        if covariance.get(covariance_type).family in ("diag", "spherical"):
            variance = np.full_like(variance, np.mean(variance))
        scale = np.where(variance > 0, np.sqrt(variance), 1.0)
        return Standardisation(x.mean(axis=0), scale)

    def data(self, x):
        return (x - self.shift) / self.scale

    def prior(self, prior: Prior) -> Prior:
        s = self.scale
        return prior._replace(
            mean=(np.asarray(prior.mean) - self.shift) / s, scale=np.asarray(prior.scale) / np.outer(s, s)
        )

    def params(self, params: GMMParams, covariance_type: str, back: bool = False) -> GMMParams:
        """Parameters (or draws, any leading dimensions) in standardised coordinates, or
        ``back`` from them."""
        s = self.scale
        factor = {
            "full": np.outer(s, s), "tied": np.outer(s, s), "diag": s**2, "spherical": s[0] ** 2,
        }[covariance.get(covariance_type).family]  # fmt: skip
        means, covariances = np.asarray(params.means), np.asarray(params.covariances)
        if back:
            return GMMParams(params.weights, means * s + self.shift, covariances * factor)
        return GMMParams(params.weights, (means - self.shift) / s, covariances / factor)


def run_nuts(
    x,
    prior: Prior,
    starts: ChainStarts | list | dict,
    key,
    *,
    covariance_type: str,
    num_warmup: int,
    num_samples: int,
    form: str = "marginal",
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    dtype="float64",
    segment_size: int | None = None,
    progress=None,
) -> tuple[dict, dict]:
    """NUTS warm-up, then sampling, of every chain, in segments of the compiled sampler.

    The chains start in ``_nuts_start`` and run in calls of ``_nuts_segment`` (see the
    module's docstring); the draws are the same whatever the segments. The arguments are
    those of ``sample_posterior``, checked as it checks them.

    Args:
      x: (N, D) data (a NumPy array); it goes to the device as ``dtype``.
      prior: the checked ``Prior``.
      starts: a ``ChainStarts``, turned into the unconstrained starting points inside the
        compiled start program (``starting_points``, with the first half of ``key``'s
        split); a list of them, groups of chains started apart (one per mode of the
        posterior, say), all run together, in the list's order, group g's starting points
        from ``jax.random.fold_in(key, 2 + g)`` (``sample_posterior`` gives
        ``fold_in(key, 1)`` to the search for modes); or the points themselves, in the data's own
        coordinates (not standardised), a dict of unconstrained arrays with a leading
        chain dimension C, as ``starting_points`` returns them: 'weights' (C, K - 1),
        'means' (C, K, D), 'covariances' (C, K, D (D + 1) / 2) for 'full', (C, D (D + 1) / 2)
        for 'tied', (C, K, D) for 'diag', (C, K) for 'spherical'.
      key: JAX PRNG key, split into the starting points' key and the chains' NUTS keys.
      covariance_type: the covariance type's canonical name.
      num_warmup, num_samples: warm-up iterations and kept draws per chain.
      form, target_accept_prob, max_tree_depth, dense_mass: as in ``sample_posterior``.
      dtype: 'float64' or 'float32': the precision of the run and of the draws.
      segment_size: iterations per chain in one call of the compiled sampler (1 to
        ``SEGMENT_CAPACITY``); None sizes segments to about ``SEGMENT_SECONDS``.
      progress: True (a bar on stderr, ``gmm_ppl.progress``), False or None (nothing), a
        ``ProgressBar``, or a function called as ``progress(phase, done, total)`` after every
        segment (``sample_posterior``).

    Unless the starting points are given as a dict, NUTS samples in standardised
    coordinates (``Standardisation``) and the draws are mapped back.

    Returns:
      (draws, stats), NumPy arrays of S draws per chain, chains first, as sampled (not
      relabelled). draws: 'weights' (C, S, K), 'means' (C, S, K, D), 'covariances'
      (C, S, covariance type's shape), constrained, of ``dtype``. stats: 'diverging',
      'energy', 'n_steps', 'acceptance_rate', 'step_size', 'lp' (minus the potential
      energy NUTS sampled: the log density in its unconstrained coordinates, standardised
      unless the starts were a dict, so not the log joint of the draws), each (C, S). S is
      ``num_samples``, or fewer when a KeyboardInterrupt (Ctrl-C) during sampling ended the
      run after at least one segment of draws; one earlier propagates.

    Raises:
      FloatingPointError: the log density is not finite at a chain's starting point.
    """
    dtype = _validate.check_dtype(dtype)
    N, D = np.shape(x)
    given = isinstance(starts, dict)
    groups = [starts] if isinstance(starts, ChainStarts) else starts
    if not given and not groups:
        raise ValueError("starts is an empty list: no chains to run")
    if given:
        num_chains, K = np.shape(starts["means"])[:2]
        standard = None
    else:
        num_chains, K = sum(g.num_chains for g in groups), np.shape(groups[0].params.means)[0]
        standard = Standardisation.of(x, covariance_type)
        x, prior = standard.data(x), standard.prior(prior)
        groups = [g._replace(params=standard.params(g.params, covariance_type)) for g in groups]
    with _validate.precision(dtype):
        xj = _validate.to_device(x, dtype)
        prior_j = _validate.to_device(Prior(*prior), dtype)
        nuts = {
            "n_components": K,
            "covariance_type": covariance_type,
            "form": form,
            "num_warmup": num_warmup,
            "target_accept_prob": target_accept_prob,
            "max_tree_depth": max_tree_depth,
            "dense_mass": dense_mass,
        }
        # The start runs once, a few gradient evaluations per chain: small problems take the
        # build that compiles quickly (gmm_ppl.programs); 4.2 s against about 1 s on
        # Old Faithful. The sampler, thousands of evaluations, is always optimised.
        start_program = _nuts_start.pick(num_chains * N * K * D)
        if given:
            start = _validate.to_device({name: starts[name] for name in PARAMETERS}, dtype)
            states, start_energy = start_program(xj, prior_j, start, key, init=None, num_chains=num_chains, **nuts)
        else:
            started = [
                start_program(xj, prior_j, _validate.to_device(GMMParams(*g.params), dtype),
                              key if len(groups) == 1 else _validate.fold_in(key, 2 + i), init=g.init,
                              num_chains=g.num_chains, **nuts)
                for i, g in enumerate(groups)
            ]  # fmt: skip
            states, start_energy = jax.tree.map(lambda *parts: jnp.concatenate(parts), *started)
        if not np.all(np.isfinite(np.asarray(start_energy))):
            if given:
                raise FloatingPointError("the log density is not finite at a given starting point")
            inits = sorted({g.init for g in groups})
            raise FloatingPointError(
                f"init={inits[0] if len(inits) == 1 else inits!r} started a chain where the log density is not "
                "finite; try init='em'"
            )

        def run_segment(states, n_steps):
            return _nuts_segment(xj, prior_j, states, np.int32(n_steps), **nuts)

        with reporting(progress, lambda: nuts_bar(num_chains)) as report:
            kept = _run_segments(run_segment, states, num_warmup, num_samples, segment_size, report)
        draws = {n: np.concatenate([d[n] for d, _ in kept], axis=1) for n in PARAMETERS}
        stats = {n: np.concatenate([s[n] for _, s in kept], axis=1) for n in kept[0][1]}
    if standard is not None:
        back = standard.params(GMMParams(*(draws[n] for n in PARAMETERS)), covariance_type, back=True)
        draws = {n: np.asarray(v, draws[n].dtype) for n, v in zip(PARAMETERS, back, strict=True)}
    return draws, stats


def _run_segments(run_segment, states, num_warmup: int, num_samples: int, segment_size, report) -> list:
    """Warm-up, then sampling, in segments of at most SEGMENT_CAPACITY iterations per chain.

    Returns the sampling segments as host arrays [(draws, stats), ...], each (chains, n, ...).
    A KeyboardInterrupt (Ctrl-C lands between segments, when a compiled call returns) during
    sampling ends the loop with the segments kept so far; during warm-up, or before the first
    draw, it propagates. ``segment_size`` None sizes segments to about SEGMENT_SECONDS from the
    speed of the previous one (the first call also compiles, so it is short).

    ``report``: called as ``report(phase, done, total, divergences)`` after every segment
    (``gmm_ppl.progress.reporting``): iterations per chain done of the phase's total, and
    during sampling the divergent transitions among the draws so far, all chains (None in
    warm-up, whose divergences the adaptation causes and the draws do not keep). Progress is
    reported here, on the host between two compiled calls, and not by a host callback in
    ``_nuts_segment``: a callback ties the executable to a Python function of this process,
    which ``gmm_ppl.programs`` cannot keep in its on-disk cache (issue 28).
    """
    kept = []
    steps = segment_size or 10
    phase = "warmup"
    divergences = 0
    try:
        for phase, total in (("warmup", num_warmup), ("sampling", num_samples)):
            done = 0
            while done < total:
                n = min(steps, total - done, SEGMENT_CAPACITY)
                began = time.perf_counter()
                states, out = run_segment(states, n)
                out = jax.device_get(out)  # waits for the segment: a Ctrl-C surfaces here or after
                if phase == "sampling":
                    kept.append(jax.tree.map(lambda a, n=n: a[:, :n], out))
                    divergences += int(np.sum(kept[-1][1]["diverging"]))
                done += n
                if segment_size is None:
                    rate = n / max(time.perf_counter() - began, 1e-6)
                    steps = int(min(max(rate * SEGMENT_SECONDS, 1), SEGMENT_CAPACITY))
                report(phase, done, total, divergences if phase == "sampling" else None)
    except KeyboardInterrupt:
        if phase != "sampling" or not kept:
            raise
    return kept


# Stage 4: relabelling to the reference.


def relabel(draws: dict, reference: GMMParams, covariance_type: str) -> tuple[dict, np.ndarray]:
    """Permute the components of every draw to match ``reference``.

    The permutation of each draw minimises sum_k KL(draw component perm[k] || reference
    component k), found by the Hungarian algorithm; the divergence uses means and
    covariances, so it tells apart components that share a mean.

    Args:
      draws: 'weights' (..., K), 'means' (..., K, D), 'covariances' (..., covariance shape),
        any leading draw dimensions.
      reference: parameters whose labelling the draws take.
      covariance_type: shape convention of the covariances.

    Returns:
      (relabelled draws, permutations (..., K)): ``relabelled[..., k] = draw[..., perm[k]]``.
    """
    name = covariance.canonical(covariance_type)
    K, D = np.shape(reference.means)
    means = np.asarray(draws["means"], dtype=np.float64)
    lead = means.shape[:-2]
    flat_means = means.reshape(-1, K, D)
    M = flat_means.shape[0]
    cov = np.asarray(draws["covariances"], dtype=np.float64)
    full = full_covariances_of_draws(cov.reshape(M, *cov.shape[len(lead) :]), name, K, D)
    ref_full = full_covariances_of_draws(np.asarray(reference.covariances)[None], name, K, D)[0]
    ref_inv = np.linalg.inv(ref_full)  # (K, D, D)
    _, ref_logdet = np.linalg.slogdet(ref_full)
    _, logdet = np.linalg.slogdet(full)  # (M, K)
    ref_means = np.asarray(reference.means, dtype=np.float64)
    diff = ref_means[None, None, :, :] - flat_means[:, :, None, :]  # (M, j draw, k ref, D)
    maha = np.einsum("mjkd,kde,mjke->mjk", diff, ref_inv, diff)
    trace = np.einsum("kde,mjed->mjk", ref_inv, full)
    kl = 0.5 * (trace + maha - D + ref_logdet[None, None, :] - logdet[:, :, None])
    perms = np.empty((M, K), dtype=np.int64)
    for m in range(M):
        rows, cols = linear_sum_assignment(kl[m].T)  # rows: reference k, cols: draw j
        perms[m, rows] = cols
    out = {}
    for field, value in draws.items():
        value = np.asarray(value)
        flat = value.reshape(M, *value.shape[len(lead) :])
        if field == "covariances" and covariance.get(name).family == "tied":
            out[field] = value  # shared by all components: nothing to permute
        else:
            out[field] = np.take_along_axis(flat, perms.reshape(M, K, *([1] * (flat.ndim - 2))), axis=1).reshape(
                value.shape
            )
    return out, perms.reshape(*lead, K)


@programs.compiled("full_covariances_of_draws", static_argnames=("covariance_type", "K", "D"))
def _full_batch(cov, covariance_type, K, D):
    return jax.vmap(lambda c: covariance.get(covariance_type).to_full(c, K, D))(cov)


def full_covariances_of_draws(cov, covariance_type: str, K: int, D: int) -> np.ndarray:
    """(M, K, D, D) float64 matrices from M stored covariances (the registry's to_full, batched)."""
    with _validate.precision(np.float64):
        return np.asarray(_full_batch(np.asarray(cov, np.float64), covariance_type, K, D))


# Stage 5: the InferenceData.


def _dims(covariance_type, K, D):
    cov_dims = {
        "full": ["component", "feature", "feature2"],
        "tied": ["feature", "feature2"],
        "diag": ["component", "feature"],
        "spherical": ["component"],
    }[covariance.get(covariance_type).family]
    return {"weights": ["component"], "means": ["component", "feature"], "covariances": cov_dims}


@programs.compiled("pointwise_log_likelihood", static_argnames=("covariance_type",))
def _pointwise(draws, x, covariance_type):
    """(M, N) log p(x_i | draw m): the marginal density, z summed out."""
    cov_type = covariance.get(covariance_type)

    def one(p):
        return jax.nn.logsumexp(joint_log_prob(GMMParams(*p), x, cov_type), axis=1)

    return jax.lax.map(one, tuple(draws[n] for n in PARAMETERS), batch_size=64)


def _feature_names(feature_names, D):
    if feature_names is None:
        return [f"x{j}" for j in range(D)]
    names = [str(n) for n in feature_names]
    if len(names) != D:
        raise ValueError(f"feature_names has {len(names)} names for {D} features")
    return names


def to_inference_data(
    draws: dict,
    stats: dict,
    *,
    relabelled: dict,
    permutations: np.ndarray,
    x,
    prior: Prior,
    reference: GMMParams,
    covariance_type: str,
    form: str,
    dtype,
    feature_names=None,
    num_samples_requested: int | None = None,
    log_likelihood: bool = True,
    inference_library: str = "numpyro (gmm_ppl.sample_posterior)",
) -> az.InferenceData:
    """The ArviZ InferenceData of a run: ``sample_posterior``'s result.

    Args:
      draws: the draws as sampled (``run_nuts``): 'weights' (C, S, K), 'means' (C, S, K, D),
        'covariances' (C, S, covariance type's shape), of ``dtype``.
      stats: the sampler's statistics (``run_nuts``), each (C, S).
      relabelled, permutations: ``relabel(draws, reference, covariance_type)``: the draws
        in ``reference``'s labelling, and the permutations (C, S, K).
      x: (N, D) data, a NumPy array.
      prior: the checked ``Prior``.
      reference: the reference fit (``reference_params``).
      covariance_type: the covariance type's canonical name.
      form: 'marginal' or 'enumerate' (NUTS), or 'variational' (``fit_vb``'s draws from q), for the attrs.
      dtype: the run's dtype: that of the attrs, and of the pointwise log-likelihood.
      feature_names: names for the ``feature`` coordinate (None: x0, x1, ...).
      num_samples_requested: the draws per chain asked for (None: S); fewer made means
        ``interrupted`` = 1 in the attrs.
      log_likelihood: compute the (C, S, N) pointwise log density log p(x_i | draw).
      inference_library: the attrs' word for what made the draws (``fit_vb``'s are from q).

    Returns:
      ``arviz.InferenceData`` with the groups and attrs that ``sample_posterior`` documents:
      posterior (relabelled), unrelabelled_posterior (``draws``), sample_stats (``stats``
      and 'relabel', the permutations), log_likelihood (if asked), observed_data, and
      constant_data (the prior and the reference, float64).
    """
    dtype = _validate.check_dtype(dtype)
    N, D = x.shape
    K = np.shape(reference.means)[0]
    num_chains, done = np.shape(draws["weights"])[:2]
    names = _feature_names(feature_names, D)
    requested = done if num_samples_requested is None else num_samples_requested
    pointwise = None
    if log_likelihood:
        # From the draws as sampled: relabelled, the sum over components would run in another
        # order, and round differently.
        with _validate.precision(dtype):
            xj = _validate.to_device(x, dtype)
            flat = {n: np.asarray(v).reshape(num_chains * done, *np.shape(v)[2:]) for n, v in draws.items()}
            pointwise = np.asarray(_pointwise(flat, xj, covariance_type)).reshape(num_chains, done, N)
    dims = _dims(covariance_type, K, D)
    coords = {"component": np.arange(K), "feature": names, "feature2": names, "row": np.arange(N)}
    groups = {
        "posterior": relabelled,
        "sample_stats": {**stats, "relabel": permutations},
        "constant_data": {
            **{f"prior_{f}": np.asarray(v, dtype=np.float64) for f, v in prior._asdict().items()},
            **{f"reference_{n}": np.asarray(v, dtype=np.float64) for n, v in zip(PARAMETERS, reference, strict=True)},
        },
    }
    if pointwise is not None:
        groups["log_likelihood"] = {"x": pointwise}
    const_dims = {
        "prior_alpha": ["component"],
        "prior_mean": ["feature"],
        "prior_scale": ["feature", "feature2"],
        **{f"reference_{n}": d for n, d in dims.items()},
    }
    idata = az.from_dict(
        **groups,
        coords=coords,
        dims={
            **dims,
            "x": ["row"],
            "relabel": ["component"],
            **const_dims,
        },
        attrs={
            "covariance_type": covariance_type,
            "form": form,
            "dtype": dtype.name,
            "inference_library": inference_library,
            "num_samples_requested": requested,
            "interrupted": int(done < requested),
        },
    )
    # Added apart: observed_data's x is (row, feature), log_likelihood's x is (chain, draw, row).
    observed = xr.Dataset({"x": (("row", "feature"), x)}, coords={"row": coords["row"], "feature": names})
    raw = az.convert_to_dataset(draws, coords=coords, dims=dims)
    idata.add_groups({"observed_data": observed, "unrelabelled_posterior": raw})
    return idata


class SamplingInterrupted(KeyboardInterrupt):
    """Ctrl-C (KeyboardInterrupt) during NUTS sampling, after warm-up.

    A ``KeyboardInterrupt``, so an interrupted program still stops; catch it to keep what
    was sampled: ``idata`` holds the ``num_samples_done`` draws per chain made before the
    interrupt (a complete InferenceData, its attrs ``interrupted`` = 1 and
    ``num_samples_requested``), the same draws an uninterrupted run with the same key
    starts with.
    """

    def __init__(self, idata: az.InferenceData, num_samples_done: int, num_samples: int):
        super().__init__(f"NUTS interrupted after {num_samples_done} of {num_samples} draws per chain")
        self.idata = idata
        self.num_samples_done = num_samples_done
        self.num_samples = num_samples


def prior_of(idata: az.InferenceData) -> Prior:
    """The ``Prior`` a posterior was sampled under (kept in its constant_data group)."""
    data = idata.constant_data
    return Prior(
        alpha=data["prior_alpha"].values,
        mean=data["prior_mean"].values,
        kappa=np.float64(data["prior_kappa"].values.squeeze()),
        dof=np.float64(data["prior_dof"].values.squeeze()),
        scale=data["prior_scale"].values,
    )


def posterior_params(idata: az.InferenceData, group: str = "posterior") -> dict:
    """The draws as NumPy arrays (chain, draw, ...) keyed 'weights', 'means', 'covariances'.

    Raises:
      ValueError: the chains hold several modes of the posterior, each relabelled to its own
        mode, whose components are not the same components (``gp.select_mode``).
    """
    if "mode" in idata[group].coords and len(np.unique(idata[group]["mode"].values)) > 1:
        found = np.unique(idata[group]["mode"].values).tolist()
        raise ValueError(
            f"idata holds the draws of {len(found)} modes of the posterior ({found}), as many chains in each "
            "whatever its weight, each mode's components its own: averaging them would mix different "
            "components. Take one with gp.select_mode(idata, m) (gp.modes(idata) lists them)"
        )
    return {n: idata[group][n].values for n in PARAMETERS}


def flat_draws(idata: az.InferenceData, group: str = "posterior") -> dict:
    """The draws as NumPy arrays with chain and draw merged into one leading axis."""
    return {n: v.reshape(-1, *v.shape[2:]) for n, v in posterior_params(idata, group).items()}


def posterior_mean(idata: az.InferenceData) -> GMMParams:
    """The posterior mean of every entry of the (relabelled) parameters."""
    return GMMParams(*(v.mean(axis=0) for v in flat_draws(idata).values()))


def _flat_draws(idata, dtype):
    return _validate.to_device(flat_draws(idata), dtype)


@programs.compiled("assignment_moments", static_argnames=("covariance_type",))
def _assignment_moments(draws, x, covariance_type):
    """Mean and mean square over draws of p(z_i = k | x_i, draw): (N, K) each."""
    cov_type = covariance.get(covariance_type)

    def add(carry, p):
        r = jax.nn.softmax(joint_log_prob(GMMParams(*p), x, cov_type), axis=1)
        return (carry[0] + r, carry[1] + r * r), None

    zeros = jnp.zeros((x.shape[0], draws["weights"].shape[-1]), x.dtype)
    (total, squares), _ = jax.lax.scan(add, (zeros, zeros), tuple(draws[n] for n in PARAMETERS))
    M = draws["weights"].shape[0]
    return total / M, squares / M


def assignment_probabilities(idata: az.InferenceData, x=None, *, method: str = "closed_form", key=None):
    """Posterior assignment probabilities p(z_i = k | x), averaged over the draws.

    Args:
      idata: from ``sample_posterior`` (its relabelled posterior is used).
      x: rows to classify; default the observed data.
      method: 'closed_form' (per draw, the softmax of log w_k + log N(x_i | mu_k, Sigma_k),
        averaged: exact given the draws) or 'enumeration' (NumPyro's ``infer_discrete``
        samples z_i from the enumerated model once per draw; the frequencies estimate the
        same probabilities with Monte Carlo error).
      key: PRNG key for 'enumeration'.

    Returns:
      xarray Dataset over (row, component): ``probability`` (mean over draws), ``sd``
      (spread over draws; zero for 'enumeration', where each draw gives one z), and per
      row ``entropy`` of the mean probabilities and ``label`` (the most probable component).
    """
    x = idata.observed_data["x"].values if x is None else _validate.as_data(x)
    cov_name = idata.attrs["covariance_type"]
    dtype = np.dtype(idata.attrs.get("dtype", "float64"))
    with _validate.precision(dtype):
        draws = _flat_draws(idata, dtype)
        xj = _validate.to_device(x, dtype)
        if method == "closed_form":
            mean, square = (np.asarray(a, np.float64) for a in _assignment_moments(draws, xj, cov_name))
            sd = np.sqrt(np.maximum(square - mean**2, 0.0))
        elif method == "enumeration":
            K = draws["weights"].shape[-1]
            prior = _validate.to_device(Prior(*prior_of(idata)), dtype)
            model = functools.partial(gmm_model, n_components=K, covariance_type=cov_name, prior=prior, marginal=False)
            z = Predictive(model, posterior_samples=draws, infer_discrete=True, return_sites=["z"])(
                _validate.as_key(key), xj
            )["z"]
            mean = np.asarray(jax.nn.one_hot(z, K, dtype=jnp.float64).mean(axis=0))
            sd = np.zeros_like(mean)
        else:
            raise ValueError(f"method must be 'closed_form' or 'enumeration'; got {method!r}")
    entropy = -np.sum(np.where(mean > 0, mean * np.log(np.where(mean > 0, mean, 1.0)), 0.0), axis=1)
    return xr.Dataset(
        {
            "probability": (("row", "component"), mean),
            "sd": (("row", "component"), sd),
            "entropy": ("row", entropy),
            "label": ("row", mean.argmax(axis=1)),
        },
        coords={"row": np.arange(x.shape[0]), "component": np.arange(mean.shape[1])},
    )


def log_predictive_density(idata: az.InferenceData, x) -> np.ndarray:
    """Per-row posterior predictive log density log mean_s p(x_i | draw s) of new rows."""
    x = _validate.as_data(x, n_features=idata.posterior.sizes["feature"])
    dtype = np.dtype(idata.attrs.get("dtype", "float64"))
    with _validate.precision(dtype):
        pointwise = np.asarray(
            _pointwise(_flat_draws(idata, dtype), _validate.to_device(x, dtype), idata.attrs["covariance_type"])
        )
    M = pointwise.shape[0]
    return np.logaddexp.reduce(pointwise.astype(np.float64), axis=0) - math.log(M)


__all__ = [
    "assignment_probabilities",
    "ChainStarts",
    "chain_starts",
    "log_predictive_density",
    "posterior_params",
    "reference_params",
    "relabel",
    "run_nuts",
    "SamplingInterrupted",
    "starting_points",
    "to_inference_data",
]
