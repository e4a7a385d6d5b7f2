"""``sample_posterior``: NUTS over the mixture's posterior, in every mode found or from one
reference, as ArviZ InferenceData.

The argument checks and the choice between the two live here: ``gmm_ppl.posterior`` has the
stages of a run from one reference (the fit whose labelling the draws take), and
``gmm_ppl.multimodal`` finds the posterior's modes and runs those stages with a group of
chains in each. This module sits above both, so neither imports the other's caller.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np

from gmm_ppl import _validate, covariance, multimodal
from gmm_ppl._arviz import az
from gmm_ppl._text import spoken_list
from gmm_ppl.em import EMResult
from gmm_ppl.model import default_prior
from gmm_ppl.params import GMMParams, Prior
from gmm_ppl.posterior import (
    FORMS,
    INITS,
    SEGMENT_CAPACITY,
    SamplingInterrupted,
    _feature_names,
    chain_starts,
    reference_params,
    relabel,
    run_nuts,
    to_inference_data,
)
from gmm_ppl.progress import check_progress


def sample_posterior(
    x,
    n_components: int,
    *,
    covariance_type: str = "full",
    prior: Prior | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    key=None,
    reference: EMResult | GMMParams | None = None,
    init: str | GMMParams | EMResult = "em",
    form: str = "marginal",
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    log_likelihood: bool = True,
    feature_names=None,
    dtype="float64",
    segment_size: int | None = None,
    progress=True,
    modes="auto",
    device="auto",
) -> az.InferenceData:
    """Sample the posterior of the mixture by NUTS, the assignments summed out.

    Args:
      x: (N, D) numeric data without NaN or infinity.
      n_components: K.
      covariance_type: 'full', 'tied', 'diag' or 'spherical' (the structures the NumPyro
        model has).
      prior: a ``Prior``; None for ``default_prior(x, K)``, the prior MAP-EM uses by default.
      num_warmup, num_samples, num_chains: NUTS warm-up iterations, kept draws per chain,
        and chains (run one after another in the compiled program).
      key: JAX PRNG key or int seed; the same key gives the same draws.
      reference: the fit whose labelling every draw takes (an ``EMResult`` or
        ``GMMParams``). None: MAP-EM under ``prior`` (10 restarts), the posterior mode.
      init: where chains start. 'em' (default): at the reference, each chain's means moved
        by twice their asymptotic standard error; 'prior': a draw from the prior per chain;
        'uniform': NumPyro's init_to_uniform; or parameters (``GMMParams``/``EMResult``).
      form: 'marginal' (``MixtureSameFamily``; the default, faster: see
        benchmarks/results/nuts.md) or 'enumerate' (an explicit z site summed out by
        funsor's parallel enumeration). Both have the same density.
      target_accept_prob, max_tree_depth, dense_mass: NUTS settings.
      log_likelihood: store the (chain, draw, row) pointwise log density for ``az.loo``;
        turn off for large N (it holds chains * draws * N numbers).
      feature_names: names for the ``feature`` coordinate.
      dtype: 'float64' (default) or 'float32'.
      segment_size: NUTS iterations per chain in one call of the compiled sampler (1 to
        ``SEGMENT_CAPACITY``); None (default) sizes segments to about a second each. The
        draws are the same whatever the segments: they only set how soon a Ctrl-C is answered.
      progress: True (default): a progress bar on stderr once the run has taken
        ``gmm_ppl.progress.SHOW_AFTER`` (2) seconds, so a short run prints nothing: warm-up,
        then draws done per chain of ``num_samples``, the divergences among the draws so far,
        and the time taken; redrawn in place on a terminal and in a notebook, a line every 10 s
        in a log. False or None: nothing. A ``gmm_ppl.progress.ProgressBar``: that bar. Or a
        function called after every segment as ``progress(phase, done, total)``, phase
        'warmup' or 'sampling', done and total iterations per chain (with a parameter
        named ``divergences``, also the divergent transitions among the draws so far). Progress is reported
        between the segments of the compiled sampler (about a second each), never from
        inside it, so the draws are the same bit for bit whatever ``progress`` is, and the
        sampler stays in the on-disk program cache.
      modes: 'auto' (default): look for the posterior's modes beyond label switching
        (``find_modes``: 50 MAP-EM restarts, Laplace masses) and start ``num_chains`` chains
        in each mode of Laplace weight at least ``multimodal.MIN_WEIGHT`` (the heaviest
        ``multimodal.MAX_MODES``), each chain relabelled to its own mode; with one such mode
        this is a ``modes=1`` run from that mode (the same up to Monte Carlo error). Only
        with ``reference`` None, ``init`` 'em', every Dirichlet alpha at least 1 and K at
        most N (where MAP-EM has modes): otherwise as ``modes=1``. 1: one reference, every
        chain relabelled to it. Or a ``Modes`` (``find_modes``' result for this model and
        this prior) to sample.
      device: where the run computes. 'auto' (default): on a CPU-only machine the CPU; with
        a GPU or TPU, the CPU for small problems, where NUTS on the accelerator is bound by
        kernel launches (``nuts_device`` says how), else JAX's default device. 'default':
        JAX's default device whatever the size. Or a ``jax.Device``.

    Raises:
      SamplingInterrupted: a KeyboardInterrupt (Ctrl-C) after warm-up and at least one
        segment of draws; its ``idata`` holds the draws made so far. A KeyboardInterrupt
        earlier (reference fit, compilation, warm-up) propagates as it is.

    Returns:
      ``arviz.InferenceData`` with groups:

      - posterior: weights (chain, draw, component), means (..., component, feature),
        covariances in the covariance type's shape (second feature dim 'feature2');
        relabelled to ``reference``.
      - unrelabelled_posterior: the same draws as sampled.
      - log_likelihood: x (chain, draw, row), log p(x_i | parameters), z summed out.
      - sample_stats: diverging, energy, n_steps, acceptance_rate, step_size, lp (the log
        density NUTS sampled, in standardised unconstrained coordinates: ``run_nuts``) and
        the relabelling permutation (``relabel``).
      - observed_data: x. constant_data: the prior and the reference parameters.

      When modes were looked for, the chains carry a ``mode`` coordinate (the mode each
      started in), sample_stats ``nearest_mode`` (the mode each draw lies nearest) and a
      ``modes`` group holds every mode found: its parameters, Laplace and stacking weights,
      draw share and its chains' diagnostics (``gp.modes(idata)`` reads it; a warning says
      when there are several, or when a chain crossed from its mode to another). Functions
      that average labelled draws (``posterior_mean``, ``gp.compare``, ...) then want one
      mode: ``gp.select_mode(idata, m)``.

      Attributes name the covariance type, form and dtype, the draws asked for
      (``num_samples_requested``) and ``interrupted`` (0, or 1 in a ``SamplingInterrupted``).
    """
    dtype = _validate.check_dtype(dtype)
    x = _validate.as_data(x)
    N, D = x.shape
    K = _validate.check_int(n_components, "n_components")
    cov_name = covariance.canonical(covariance_type)
    if not covariance.supports(cov_name, "nuts"):
        raise ValueError(
            f"covariance_type {covariance_type!r} has no NumPyro model; NUTS supports "
            f"{spoken_list(map(repr, covariance.supporting('nuts')))}"
        )
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    if not isinstance(init, (EMResult, GMMParams)) and init not in INITS:
        raise ValueError(f"init must be one of {INITS}, a GMMParams or an EMResult; got {init!r}")
    for name, value in (("num_warmup", num_warmup), ("num_samples", num_samples), ("num_chains", num_chains)):
        _validate.check_int(value, name, minimum=0 if name == "num_warmup" else 1)
    _validate.check_int(max_tree_depth, "max_tree_depth")
    check_progress(progress)
    if segment_size is not None and _validate.check_int(segment_size, "segment_size") > SEGMENT_CAPACITY:
        raise ValueError(f"segment_size must be at most {SEGMENT_CAPACITY}; got {segment_size}")
    target_accept_prob = _validate.check_float(target_accept_prob, "target_accept_prob")
    if not 0 < target_accept_prob < 1:
        raise ValueError(f"target_accept_prob must lie in (0, 1); got {target_accept_prob}")
    if K > N:
        warnings.warn(
            f"n_components={K} exceeds the {N} rows: some components hold no data and their posterior is their prior",
            stacklevel=2,
        )
    prior = default_prior(x, K) if prior is None else prior
    prior = _validate.check_prior(prior, K, D, for_em=False)
    key = _validate.as_key(key)
    names = _feature_names(feature_names, D)
    # Where NUTS runs (``nuts_device``): JAX's default device for every array and program of
    # the run, the mode search and the reference fit included; part of each program's key.
    with jax.default_device(nuts_device(device, N, K, D)):
        found = _modes_to_sample(modes, x, K, cov_name, prior, key, reference, init)
        if found is not None:
            idata = multimodal.sample_modes(
                x, found, multimodal.modes_to_sample(found), num_chains=num_chains, key=key,
                log_likelihood=log_likelihood, num_warmup=num_warmup, num_samples=num_samples, form=form,
                target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth, dense_mass=dense_mass,
                dtype=dtype, segment_size=segment_size, progress=progress, feature_names=names,
            )  # fmt: skip
        else:  # one reference: the stages of gmm_ppl.posterior
            reference = reference_params(x, K, cov_name, prior, key, reference)
            starts = chain_starts(init, reference, num_chains, cov_name)
            draws, stats = run_nuts(
                x,
                prior,
                starts,
                key,
                covariance_type=cov_name,
                num_warmup=num_warmup,
                num_samples=num_samples,
                form=form,
                target_accept_prob=target_accept_prob,
                max_tree_depth=max_tree_depth,
                dense_mass=dense_mass,
                dtype=dtype,
                segment_size=segment_size,
                progress=progress,
            )
            relabelled, permutations = relabel(draws, reference, cov_name)
            idata = to_inference_data(
                draws,
                stats,
                relabelled=relabelled,
                permutations=permutations,
                x=x,
                prior=prior,
                reference=reference,
                covariance_type=cov_name,
                form=form,
                dtype=dtype,
                feature_names=names,
                num_samples_requested=num_samples,
                log_likelihood=log_likelihood,
            )
    done = idata.posterior.sizes["draw"]
    if done < num_samples:
        raise SamplingInterrupted(idata, done, num_samples)
    return idata


# A NUTS step is a chain of small kernels, each waiting on the one before, so on a GPU or
# TPU a small problem's step costs the kernels' launch latency (tens of microseconds each),
# not their arithmetic. Old Faithful (272 rows, D=2, K=2) sampled about ten times slower on
# an H200 than on 2 CPU cores (38.8 s against about 4 s, compiled: benchmarks/results/gpu.md).
# The likelihood's gradient costs about N K D^2 multiply-adds; below this many the CPU is
# taken. The crossover is not measured (no GPU was lent since): 2^22, about 4 million, is an
# estimate, about a millisecond of small-kernel arithmetic on 2 CPU cores, which is what a
# step's few dozen kernel launches cost on a GPU.
NUTS_ACCELERATOR_WORK = 2**22


def nuts_device(device, n_rows: int, n_components: int, n_features: int, backend: str | None = None):
    """The device a NUTS run computes on (``sample_posterior``'s ``device``): None for JAX's
    default device. 'auto' takes the CPU when JAX's default backend is an accelerator and
    the likelihood's work per gradient, N K D^2, is below NUTS_ACCELERATOR_WORK (and the
    process has a CPU backend: ``JAX_PLATFORMS`` may leave it out)."""
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str) and device == "default":
        return None
    if isinstance(device, str) and device == "auto":
        backend = backend or jax.default_backend()
        small = n_rows * n_components * n_features**2 < NUTS_ACCELERATOR_WORK
        if backend == "cpu" or not small:
            return None
        try:
            return jax.devices("cpu")[0]
        except RuntimeError:  # JAX_PLATFORMS leaves the CPU out: the accelerator, then
            return None
    raise ValueError(f"device must be 'auto', 'default' or a jax.Device; got {device!r}")


def _modes_to_sample(modes, x, K, covariance_type, prior, key, reference, init):
    """The ``Modes`` to sample, or None for one reference (``sample_posterior``'s ``modes``)."""
    if isinstance(modes, multimodal.Modes):
        if modes.covariance_type != covariance_type or np.shape(modes.params[0].means) != (K, x.shape[1]):
            raise ValueError("modes were found for another model: another covariance type, K or D")
        if not all(np.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(modes.prior, prior, strict=True)):
            raise ValueError("modes were found under another prior than this run's: pass that prior, or find them anew")
        if reference is not None or not (isinstance(init, str) and init == "em"):
            raise ValueError("given modes start the chains in them: reference and init do not apply")
        return modes
    if isinstance(modes, str) and modes == "auto":
        # MAP-EM has no interior mode with a Dirichlet alpha below 1, nor K components on fewer
        # rows: one reference there (``_default_reference``'s ML-EM fit, or its padded one).
        interior = np.all(np.asarray(prior.alpha) >= 1) and K <= x.shape[0]
        if reference is not None or not (isinstance(init, str) and init == "em") or not interior:
            return None
        return multimodal.find_modes(x, K, covariance_type=covariance_type, prior=prior, key=_validate.fold_in(key, 1))
    if isinstance(modes, (int, np.integer)) and not isinstance(modes, bool) and modes == 1:
        return None
    raise ValueError(f"modes must be 'auto', 1 or a Modes (gp.find_modes); got {modes!r}")


__all__ = ["sample_posterior"]
