"""The posterior's modes: MAP-EM's local optima, grouped up to label permutation, each with
its log posterior density and a Laplace approximation of its mass.

A mixture's posterior has K! copies of every mode (the labellings), and on data such as Old
Faithful with K=3 it has modes that differ beyond labels (the third component splitting one
cluster or the other). Many MAP-EM restarts, one vmapped call, land in those modes; two
restarts are one mode when, their components matched (``relabel``), the Gaussians agree
(the matched components' Kullback-Leibler divergences sum below ``same``) and so do the
weights. The Laplace approximation sits at each mode of the posterior density in NumPyro's
unconstrained coordinates of the standardised data (the density NUTS samples, its Jacobian
included): Newton's steps from the MAP-EM fit find it, and log mass = -U(u*) + d/2 log(2 pi)
- 1/2 log |H(u*)| - N log |diag(scale)|, with U the potential energy, H its Hessian by
autodiff and the last term the standardisation's. Every mode has the same K! labellings, so
the masses of one labelling each compare the modes as wholes.

Then the sampling: ``sample_modes`` (``sample_posterior``'s default) starts chains in every
mode of weight, relabels each chain to its own mode and weighs the modes three ways; ``modes``,
``select_mode`` and ``plot_modes`` read what it returns.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, programs
from gmm_ppl.params import GMMParams, Prior

NEWTON_STEPS = 50
# Halvings of a Newton step tried before the step is given up (a full step from the MAP-EM
# fit can overshoot: on Old Faithful, K=3, one mode's first full step raised U, and without
# halving the search never moved, 0.5 nats short of the mode's mass).
STEP_HALVINGS = 30
# The largest gradient entry of U at which the search's end counts as the mode.
STATIONARY_GRADIENT = 1e-5


@dataclasses.dataclass(frozen=True)
class Modes:
    """What ``find_modes`` returns: the distinct modes, the highest log posterior first.

    Attributes:
      params: each mode's MAP-EM parameters (``GMMParams``, NumPy).
      log_posterior: (M,) log p(x, params) at each (the unnormalised log posterior).
      restarts: (M,) how many restarts ended in each.
      log_mass: (M,) the Laplace approximation of each mode's log mass (one labelling);
        NaN where Newton's search from the MAP-EM fit did not reach a point with zero
        gradient and a positive definite Hessian (``stationary`` False: not a mode of the
        density NUTS samples, as far as the search could tell).
      weights: (M,) the modes' masses normalised: exp(log_mass) / sum (NaN masses left out).
      gradient: (M,) the largest entry of U's gradient where the search ended (U in the
        standardised coordinates NUTS samples in: ``posterior.Standardisation``).
      restart_mode: (n_init,) the mode each restart ended in (-1: a non-finite end).
      covariance_type, prior: the model.
    """

    params: list
    log_posterior: np.ndarray
    restarts: np.ndarray
    log_mass: np.ndarray
    weights: np.ndarray
    gradient: np.ndarray
    restart_mode: np.ndarray
    covariance_type: str
    prior: Prior

    def table(self):
        """One row per mode: log posterior, restarts, Laplace log mass and weight, and each
        component's weight and mean."""
        import pandas as pd

        rows = []
        for m, params in enumerate(self.params):
            row = {
                "log_posterior": self.log_posterior[m],
                "restarts": int(self.restarts[m]),
                "laplace_log_mass": self.log_mass[m],
                "laplace_weight": self.weights[m],
            }
            for k, (w, mean) in enumerate(zip(params.weights, params.means, strict=True)):
                row[f"weight[{k}]"] = w
                row[f"mean[{k}]"] = np.round(mean, 4).tolist()
            rows.append(row)
        return pd.DataFrame(rows).rename_axis("mode")


def _aligned_kl(draws: dict, mode: GMMParams, covariance_type: str) -> tuple[dict, np.ndarray]:
    """(the draws relabelled to ``mode`` (``relabel``), each draw's summed Kullback-Leibler
    divergence sum_k KL(draw component k || mode component k), flat (S,)): how far a draw
    lies from a mode up to labels, for grouping restarts and placing posterior draws."""
    from gmm_ppl.density import full_covariances
    from gmm_ppl.posterior import full_covariances_of_draws, relabel

    K, D = np.shape(mode.means)
    lead = np.shape(draws["weights"])[:-1]
    aligned, _ = relabel(draws, mode, covariance_type)
    means = np.asarray(aligned["means"], np.float64).reshape(-1, K, D)
    cov = np.asarray(aligned["covariances"], np.float64)
    cov = full_covariances_of_draws(cov.reshape(means.shape[0], *cov.shape[len(lead) :]), covariance_type, K, D)
    reference = full_covariances(np.asarray(mode.covariances, np.float64), covariance_type, K, D)
    inverse = np.linalg.inv(reference)
    diff = np.asarray(mode.means, np.float64)[None] - means
    kl = 0.5 * (
        np.einsum("kde,sked->sk", inverse, cov)
        + np.einsum("skd,kde,ske->sk", diff, inverse, diff)
        - D
        + np.linalg.slogdet(reference)[1][None]
        - np.linalg.slogdet(cov)[1]
    )
    return aligned, kl.sum(axis=1)


def group_restarts(restarts: GMMParams, objectives, covariance_type: str, same: float = 1e-3):
    """(mode of every restart (-1 for a non-finite one), the index of each mode's best restart):
    restarts visited from the highest objective down; one joins the first mode whose
    parameters it matches up to label permutation (``relabel``; the components'
    Kullback-Leibler divergences summed below ``same`` and the weights within ``same``)."""
    objectives = np.asarray(objectives, np.float64)
    name = covariance.canonical(covariance_type)
    mode_of = np.full(len(objectives), -1)
    representatives: list[int] = []
    for r in np.argsort(-objectives, kind="stable"):
        if not np.isfinite(objectives[r]):
            continue
        draw = {n: np.asarray(a[r], np.float64)[None] for n, a in zip(("weights", "means", "covariances"), restarts,
                                                                       strict=True)}  # fmt: skip
        for m, best in enumerate(representatives):
            reference = GMMParams(*(np.asarray(a[best], np.float64) for a in restarts))
            aligned, (kl,) = _aligned_kl(draw, reference, name)
            if kl < same and np.max(np.abs(aligned["weights"][0] - reference.weights)) < same:
                mode_of[r] = m
                break
        else:
            mode_of[r] = len(representatives)
            representatives.append(int(r))
    return mode_of, representatives


def _energy_function(unflatten, x, prior, n_components, covariance_type):
    from numpyro.infer.util import potential_energy

    from gmm_ppl.posterior import _model

    model = _model(n_components, covariance_type, "marginal")
    return lambda v: potential_energy(model, (x,), {"prior": prior}, unflatten(v))


def _derivatives(flat, shapes, x, prior, *, n_components, covariance_type):
    """At the flat unconstrained point ``flat`` (``shapes``: the pytree it unflattens to):
    U, the largest entry of its gradient, Newton's move H^-1 grad, log |H| and whether the
    Hessian H is positive definite."""
    from jax.flatten_util import ravel_pytree

    _, unflatten = ravel_pytree(shapes)
    energy = jax.value_and_grad(_energy_function(unflatten, x, prior, n_components, covariance_type))
    # The Hessian as jax.hessian makes it (forward over reverse: the gradient's tangent along
    # each axis, the columns stacked last), with U and its gradient the primal outputs of
    # the same jvp: the NumPyro model is traced once, not three times (energy, grad and
    # hessian took 1.4-1.5 s of tracing on Old Faithful, K=2, about a sixth of a new
    # process's first search).
    (values, grads), (_, columns) = jax.vmap(lambda v: jax.jvp(energy, (flat,), (v,)))(
        jnp.eye(flat.size, dtype=flat.dtype)
    )
    here, grad, h = values[0], grads[0], columns.T
    positive = jnp.all(jnp.linalg.eigvalsh(h) > 0)
    return here, jnp.max(jnp.abs(grad)), jnp.linalg.solve(h, grad), jnp.linalg.slogdet(h)[1], positive


# It runs a few dozen times a search: the quick build wherever it is offered (gmm_ppl.programs).
_derivatives_program = programs.two_builds(
    "laplace_derivatives", _derivatives, static_argnames=("n_components", "covariance_type")
)


def _unconstrained(params, prior, *, covariance_type):
    from gmm_ppl.posterior import _unconstrain

    return _unconstrain(params, covariance_type, prior)


# NumPyro's transforms run eagerly op by op took 3.4 s (each op compiled on its first call).
_unconstrain_program = programs.program("unconstrain", _unconstrained, static_argnames=("covariance_type",))


def _laplace(u, x, prior, *, n_components, covariance_type):
    """(u*, -U(u*), log |H(u*)|, the largest entry of U's gradient at u*, whether H(u*) is
    positive definite) from Newton's steps on the potential energy U, each halved until it
    lowers U and keeps the Hessian positive definite; the search stops where the Hessian is
    not positive definite (its start), where no step does both, or where the gradient has
    vanished (below STATIONARY_GRADIENT / 100). The steps are taken here, on the host: a
    compiled loop (a scan of Newton's steps with every halving tried at once) compiled in
    12 s on Old Faithful against 2 s for this one program."""
    # ravel_pytree's vector, made on the host: on JAX arrays it compiles its reshapes and
    # concatenation, one small program each, for every new shape
    flat = np.concatenate([np.ravel(leaf) for leaf in jax.device_get(jax.tree.leaves(u))])
    derivatives = functools.partial(
        _derivatives_program.pick(0), shapes=u, x=x, prior=prior, n_components=n_components,
        covariance_type=covariance_type,
    )  # fmt: skip
    here, gradient, move, log_det, positive = derivatives(flat)
    for _ in range(NEWTON_STEPS):
        if not bool(positive) or float(gradient) <= STATIONARY_GRADIENT / 100:
            break
        move = np.asarray(move)
        for halving in range(STEP_HALVINGS):  # the largest step that does
            trial = flat - 0.5**halving * move
            at_trial = derivatives(trial)
            # A step that lowers U into a region where H is not positive definite would end
            # the search short of the mode: keep halving.
            if np.isfinite(float(at_trial[0])) and float(at_trial[0]) <= float(here) and bool(at_trial[4]):
                flat, (here, gradient, move, log_det, positive) = trial, at_trial
                break
        else:
            break
    return flat, -float(here), float(log_det), float(gradient), bool(positive)


def find_modes(
    x,
    n_components: int,
    *,
    covariance_type: str = "full",
    prior: Prior | None = None,
    n_init: int = 50,
    key=0,
    tol: float = 1e-10,
    max_iter: int = 2000,
    same: float = 1e-3,
) -> Modes:
    """The posterior's distinct modes from ``n_init`` MAP-EM restarts (one compiled call),
    each with its log posterior and a Laplace approximation of its mass (module docstring).

    Args:
      x: (N, D) data.
      n_components: K.
      covariance_type: one of the structures the NumPyro model has (full, tied, diag,
        spherical).
      prior: the ``Prior`` (default ``default_prior(x, K)``, as ``sample_posterior``'s).
      n_init, key, tol, max_iter: MAP-EM's restarts (float64). The grouping takes the
        restarts' ends as optima: keep ``tol`` tight (at tol=1e-6 on Old Faithful, K=3,
        restarts still creeping along one flat mode came out as four).
      same: restarts closer than this (summed Kullback-Leibler divergence of matched
        components, and weights) are one mode.

    Returns:
      ``Modes``, the highest log posterior first.
    """
    from gmm_ppl.em import fit_em
    from gmm_ppl.model import default_prior
    from gmm_ppl.posterior import Standardisation, relative_reg_covar

    x = _validate.as_data(x)
    N, D = x.shape
    K = _validate.check_int(n_components, "n_components")
    name = covariance.canonical(covariance_type)
    if not covariance.supports(name, "nuts"):
        raise ValueError(f"covariance_type {covariance_type!r} has no NumPyro model, whose density the modes are of")
    prior = default_prior(x, K) if prior is None else _validate.check_prior(prior, K, D)
    fit = fit_em(x, K, covariance_type=name, prior=prior, n_init=n_init, key=key, tol=tol, max_iter=max_iter,
                 reg_covar=relative_reg_covar(x), dtype="float64")  # fmt: skip
    objectives = np.asarray(fit.restart_objectives, np.float64)
    mode_of, representatives = group_restarts(fit.restart_params, objectives, name, same)
    # The search runs in NUTS's standardised coordinates (``posterior.Standardisation``), where
    # STATIONARY_GRADIENT means the same at any scale of the data (at 1e8 the search in the
    # data's own coordinates ended nowhere). The evidence there differs from the data's by
    # the likelihood's Jacobian alone, -N log |diag(scale)| (the prior maps exactly): added back.
    standard = Standardisation.of(x, name)
    jacobian = -N * float(np.sum(np.log(standard.scale)))
    params, log_mass, gradients = [], [], []
    with _validate.precision(np.float64):
        xj = _validate.to_device(standard.data(x), np.float64)
        prior_j = _validate.to_device(standard.prior(prior), np.float64)
        for r in representatives:
            p = GMMParams(*(np.asarray(a[r], np.float64) for a in fit.restart_params))
            params.append(p)
            p_z = _validate.to_device(standard.params(p, name), np.float64)
            u = _unconstrain_program(p_z, prior_j, covariance_type=name)
            flat, log_density, log_det, gradient, positive = _laplace(
                u, xj, prior_j, n_components=K, covariance_type=name
            )
            d = flat.shape[0]
            mass = float(log_density) + 0.5 * d * math.log(2 * math.pi) - 0.5 * float(log_det) + jacobian
            stationary = bool(positive) and float(gradient) <= STATIONARY_GRADIENT
            log_mass.append(mass if stationary else np.nan)
            gradients.append(float(gradient))
    log_mass = np.asarray(log_mass)
    if np.any(np.isnan(log_mass)):
        warnings.warn(
            f"{int(np.isnan(log_mass).sum())} MAP-EM end(s) led Newton's search to no mode of the posterior's "
            "density (a gradient left, or a Hessian not positive definite): their masses are NaN",
            stacklevel=2,
        )
    finite = np.where(np.isnan(log_mass), -np.inf, log_mass)
    weights = np.exp(finite - np.max(finite))
    return Modes(
        params=params,
        log_posterior=objectives[representatives] * N,
        restarts=np.bincount(mode_of[mode_of >= 0], minlength=len(representatives)),
        log_mass=log_mass,
        weights=weights / weights.sum(),
        gradient=np.asarray(gradients),
        restart_mode=mode_of,
        covariance_type=name,
        prior=prior,
    )


def nearest_modes(draws: dict, found: Modes) -> np.ndarray:
    """The mode each draw lies nearest, up to label permutation: for every draw and mode, the
    components matched (``relabel``, the Hungarian algorithm on their Kullback-Leibler
    divergences) and their divergences summed; the mode with the smallest sum.

    Args:
      draws: 'weights' (..., K), 'means' (..., K, D), 'covariances' (..., covariance shape),
        with any leading dimensions (``posterior_params(idata)``: chain, draw).
      found: ``find_modes``' result for the same model.

    Returns:
      (...) int: an index into ``found.params``. A chain whose draws change mode crossed
      from one mode to another.
    """
    lead = np.shape(draws["weights"])[:-1]
    distances = [_aligned_kl(draws, mode, found.covariance_type)[1] for mode in found.params]
    return np.argmin(np.stack(distances, axis=-1), axis=-1).reshape(lead)


# Sampling every mode (``sample_posterior(modes=...)``).

# Modes whose Laplace weight is below this are listed but not sampled (on Old Faithful, K=3,
# three of the seven modes weigh 0.0005 to 0.0010 each).
MIN_WEIGHT = 0.01
# At most this many modes are sampled, the heaviest; chains run num_chains per mode.
MAX_MODES = 4
# A chain stayed in its mode when at least this share of its draws lie nearest it.
STAYED = 0.9


def modes_to_sample(found: Modes, min_weight: float = MIN_WEIGHT, max_modes: int = MAX_MODES) -> list[int]:
    """The modes ``sample_posterior`` starts chains in: those of Laplace weight at least
    ``min_weight``, the heaviest ``max_modes``; where no mode has a Laplace mass (Newton's
    search found none), the highest log posterior."""
    order = [int(m) for m in np.argsort(-np.nan_to_num(found.weights, nan=-1.0), kind="stable")]
    chosen = [m for m in order if found.weights[m] >= min_weight][:max_modes]
    return chosen or [0]


def stacking_weights(pointwise_lpd) -> np.ndarray:
    """Stacking weights (Yao, Vehtari and Gelman 2022): w on the simplex maximising
    sum_i log sum_m w_m exp(lpd[m, i]), from (M, N) leave-one-out log predictive densities
    of M groups of draws; found by L-BFGS on w = softmax(a)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    lpd = np.asarray(pointwise_lpd, np.float64)
    M = lpd.shape[0]
    if M == 1:
        return np.ones(1)

    def loss(a):
        log_w = a - logsumexp(a)
        mixed = logsumexp(log_w[:, None] + lpd, axis=0)  # (N,)
        share = np.exp(log_w[:, None] + lpd - mixed[None])  # (M, N): each group's share of each point
        grad_log_w = share.sum(axis=1)
        return -mixed.sum(), -(grad_log_w - softmax(a) * grad_log_w.sum())

    found = minimize(loss, np.zeros(M), jac=True, method="L-BFGS-B")
    return softmax(found.x)


def _loo_pointwise(log_lik) -> np.ndarray:
    """(N,) PSIS-LOO log predictive densities of (chains, draws, N) pointwise log-likelihoods
    (ArviZ's Pareto-smoothed importance weights, the relative efficiency taken as 1)."""
    import arviz as az
    from scipy.special import logsumexp

    samples = np.asarray(log_lik, np.float64).reshape(-1, np.shape(log_lik)[-1]).T  # (N, S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: the weights are reported, k is not
        log_weights, _ = az.psislw(-samples)
    return logsumexp(log_weights + samples, axis=1)


def _diagnostics(relabelled: dict, diverging) -> tuple[float, float, int]:
    """(max r_hat, min bulk ESS over the weights' and means' entries, divergences) of one
    mode's chains (ArviZ's rank-normalised split r_hat; NaN r_hat for a single chain)."""
    import arviz as az

    data = az.convert_to_dataset({n: relabelled[n] for n in ("weights", "means")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r_hat = az.rhat(data)
        ess = az.ess(data, method="bulk")
    r_hat = max(float(np.max(r_hat[n].values)) for n in data.data_vars)
    ess = min(float(np.min(ess[n].values)) for n in data.data_vars)
    return r_hat, ess, int(np.sum(diverging))


def sample_modes(x, found: Modes, sampled: list[int], *, num_chains: int, key, log_likelihood: bool, **settings):
    """``sample_posterior`` for ``modes``: ``num_chains`` chains started in each mode of
    ``sampled`` (around its MAP-EM parameters, as init='em' starts them: one group of
    ``run_nuts``' starts per mode), all run in one compiled sampler; each chain relabelled to
    its own mode's parameters.

    Args:
      x: (N, D) data, checked.
      found: ``find_modes``' result for this model and prior.
      sampled: indices into ``found.params`` (``modes_to_sample``).
      num_chains: chains per mode.
      key: the run's JAX PRNG key.
      log_likelihood: store the pointwise log-likelihood (the stacking weights need it).
      settings: ``run_nuts``' and ``to_inference_data``'s other arguments (form, dtype, ...).

    Returns:
      ``arviz.InferenceData``: ``sample_posterior``'s groups, the chains in mode order with a
      ``mode`` coordinate on ``chain`` (the mode each started in), sample_stats' ``nearest_mode``
      (the mode each draw lies nearest: ``nearest_modes``) and a ``modes`` group with one
      entry per mode found (``modes(idata)`` reads it).
    """
    import xarray as xr

    from gmm_ppl.posterior import PARAMETERS, ChainStarts, _dims, relabel, run_nuts, to_inference_data

    name, prior = found.covariance_type, found.prior
    nuts = {n: settings.pop(n) for n in ("form", "target_accept_prob", "max_tree_depth", "dense_mass", "dtype",
                                         "segment_size", "progress", "num_warmup", "num_samples")}  # fmt: skip
    starts = [ChainStarts("em", found.params[m], num_chains) for m in sampled]
    draws, stats = run_nuts(x, prior, starts, key, covariance_type=name, **nuts)
    chain_mode = np.repeat(np.asarray(sampled), num_chains)
    relabelled = {n: np.empty_like(v) for n, v in draws.items()}
    permutations = np.empty((*draws["weights"].shape,), np.int64)
    for m in sampled:
        chains = chain_mode == m
        aligned, perms = relabel({n: v[chains] for n, v in draws.items()}, found.params[m], name)
        for n in PARAMETERS:
            relabelled[n][chains] = aligned[n]
        permutations[chains] = perms
    nearest = nearest_modes(draws, found)
    idata = to_inference_data(
        draws,
        {**stats, "nearest_mode": nearest},
        relabelled=relabelled,
        permutations=permutations,
        x=x,
        prior=prior,
        reference=found.params[sampled[0]],
        covariance_type=name,
        num_samples_requested=nuts["num_samples"],
        log_likelihood=log_likelihood,
        form=nuts["form"],
        dtype=nuts["dtype"],
        **settings,
    )
    for group in ("posterior", "unrelabelled_posterior", "sample_stats", "log_likelihood"):
        if group in idata.groups():  # setattr: ArviZ's idata[group] = ... would list the group twice
            setattr(idata, group, idata[group].assign_coords(mode=("chain", chain_mode)))

    # Per mode found: its diagnostics where sampled, and the three weights.
    M = len(found.params)
    r_hat, ess, divergences, stayed = (np.full(M, np.nan) for _ in range(4))
    stacked = np.full(M, np.nan)
    for m in sampled:
        chains = chain_mode == m
        r_hat[m], ess[m], divergences[m] = _diagnostics(
            {n: relabelled[n][chains] for n in PARAMETERS}, stats["diverging"][chains]
        )
        stayed[m] = np.min(np.mean(nearest[chains] == m, axis=1))
    if log_likelihood:
        lpd = [_loo_pointwise(idata.log_likelihood["x"].values[chain_mode == m]) for m in sampled]
        stacked[sampled] = stacking_weights(np.stack(lpd))
    share = np.bincount(nearest.ravel(), minlength=M) / nearest.size
    dims = _dims(name, *np.shape(found.params[0].means))
    K = len(found.params[0].weights)
    table = xr.Dataset(
        {
            "log_posterior": ("mode", found.log_posterior),
            "restarts": ("mode", found.restarts),
            "laplace_log_mass": ("mode", found.log_mass),
            "laplace_weight": ("mode", found.weights),
            "stacking_weight": ("mode", stacked),
            "draw_share": ("mode", share),
            "sampled": ("mode", np.isin(np.arange(M), sampled)),
            "r_hat": ("mode", r_hat),
            "ess_bulk": ("mode", ess),
            "divergences": ("mode", divergences),
            "stayed": ("mode", stayed),
            **{
                f"mode_{n}": (["mode", *dims[n]], np.stack([np.asarray(p[i], np.float64) for p in found.params]))
                for i, n in enumerate(PARAMETERS)
            },
        },
        coords={"mode": np.arange(M), "component": np.arange(K), "feature": idata.posterior["feature"].values,
                "feature2": idata.posterior["feature"].values},
        attrs={"stayed_threshold": STAYED, "num_chains_per_mode": num_chains},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'modes' is not one of ArviZ's schema's groups
        idata.add_groups({"modes": table})
    _warn(idata)
    return idata


def _modes_group(idata):
    if "modes" not in idata.groups():
        raise ValueError(
            "idata has no modes group: it was sampled with modes=1 or a given reference; "
            "sample_posterior(..., modes='auto') looks for the modes"
        )
    return idata.modes


def _sampled_modes(idata) -> np.ndarray:
    return np.unique(idata.posterior["mode"].values) if "mode" in idata.posterior.coords else np.zeros(0, int)


def _warn(idata) -> None:
    """A warning when the chains hold several modes, and one when a chain crossed to another."""
    table = idata.modes
    sampled = _sampled_modes(idata)
    if len(sampled) > 1:
        laplace = ", ".join(f"{table.laplace_weight.values[m]:.3g}" for m in sampled)
        stacked = table.stacking_weight.values[sampled]
        stacking = (
            "stacking weights " + ", ".join(f"{w:.3g}" for w in stacked)
            if np.all(np.isfinite(stacked))
            else "no stacking weights without the log-likelihood"
        )
        warnings.warn(
            f"the posterior has {len(sampled)} modes beyond label switching (modes {', '.join(map(str, sampled))}; "
            f"Laplace weights {laplace}, {stacking}); each mode's chains are relabelled to that "
            "mode: read gp.modes(idata) and take one mode with gp.select_mode(idata, m) rather than pooling them",
            UserWarning,
            stacklevel=4,  # the caller of sample_posterior
        )
    crossed = [int(m) for m in sampled if table.stayed.values[m] < STAYED]
    if crossed:
        warnings.warn(
            f"chains started in mode(s) {', '.join(map(str, crossed))} crossed to other modes (fewer than "
            f"{STAYED:.0%} of a chain's draws nearest the mode it started in: gp.modes(idata)['stayed']): there "
            "the modes are not apart for NUTS, the draws of a mode's chains mix modes, and the draw_share column "
            "(the share of all draws nearest each mode) is the better weight",
            UserWarning,
            stacklevel=4,
        )


def _bhattacharyya(m1, c1, m2, c2) -> float:
    """The Bhattacharyya coefficient of two Gaussians: 1 for the same, towards 0 apart."""
    c = (c1 + c2) / 2
    d = m1 - m2
    distance = d @ np.linalg.solve(c, d) / 8 + 0.5 * (
        np.linalg.slogdet(c)[1] - 0.5 * (np.linalg.slogdet(c1)[1] + np.linalg.slogdet(c2)[1])
    )
    return float(np.exp(-distance))


def _point(v) -> str:
    return "(" + ", ".join(f"{a:.3g}" for a in np.atleast_1d(v)) + ")"


def describe_mode(params: GMMParams, covariance_type: str) -> tuple[str, str]:
    """(each component in words: weight and mean; the two components whose Gaussians overlap
    most, by the Bhattacharyya coefficient (1: the same Gaussian, 0: apart), and around
    where: the pair that splits a cluster, when a mode has one more component than clusters)."""
    from gmm_ppl.density import full_covariances

    K, D = np.shape(params.means)
    components = "; ".join(f"{w:.2f} at {_point(m)}" for w, m in zip(params.weights, params.means, strict=True))
    if K < 2:
        return components, ""
    full = full_covariances(np.asarray(params.covariances, np.float64), covariance_type, K, D)
    pairs = [(j, k) for j in range(K) for k in range(j + 1, K)]
    overlaps = [_bhattacharyya(params.means[j], full[j], params.means[k], full[k]) for j, k in pairs]
    j, k = pairs[int(np.argmax(overlaps))]
    w = params.weights[[j, k]]
    centre = (w[0] * params.means[j] + w[1] * params.means[k]) / w.sum()
    return components, f"components {j} and {k} overlap most ({max(overlaps):.2f}), around {_point(centre)}"


def modes(idata):
    """``sample_posterior``'s modes as a table, one row per mode found, the sampled ones first
    by Laplace weight.

    Columns: the three weights (laplace_weight: the Laplace masses normalised; stacking_weight:
    Yao, Vehtari and Gelman's stacking of the modes' chains by their leave-one-out predictive
    densities; draw_share: the share of all draws lying nearest the mode, the weight to read
    when chains crossed), log_posterior, restarts (MAP-EM's that ended there), sampled,
    per sampled mode r_hat (the largest, weights and means relabelled to the mode), ess_bulk
    (the smallest), divergences and stayed (the smallest share of a chain's draws nearest the
    mode it started in), and in words the components (weight at mean) and the pair of
    components that overlap most (``describe_mode``: where a cluster is split).

    Raises:
      ValueError: ``idata`` was not sampled with ``modes`` (``modes=1``, or a given reference).
    """
    import pandas as pd

    table = _modes_group(idata)
    name = idata.attrs["covariance_type"]
    rows = []
    for m in table["mode"].values:
        params = GMMParams(*(table[f"mode_{n}"].values[m] for n in ("weights", "means", "covariances")))
        components, closest = describe_mode(params, name)
        row = {n: table[n].values[m].item() for n in (
            "laplace_weight", "stacking_weight", "draw_share", "log_posterior", "restarts", "sampled", "r_hat",
            "ess_bulk", "divergences", "stayed")}  # fmt: skip
        rows.append({**row, "components": components, "closest_pair": closest})
    frame = pd.DataFrame(rows).rename_axis("mode")
    order = sorted(frame.index, key=lambda m: (not frame.sampled[m], -np.nan_to_num(frame.laplace_weight[m])))
    return frame.loc[order]


def select_mode(idata, mode: int):
    """The chains started in ``mode`` as an InferenceData of their own: the groups with a
    chain dimension cut to those chains (renumbered 0..C-1), the reference in constant_data
    that mode's parameters. ``gp.compare``, ``posterior_mean``, ``plot_ellipses`` and
    ``az.summary`` then read one mode. The modes group stays whole: ``gp.modes`` of the
    result still lists every mode found and sampled.

    Raises:
      ValueError: ``mode`` was not sampled (``gp.modes(idata)['sampled']``).
    """
    table = _modes_group(idata)
    sampled = _sampled_modes(idata)
    if mode not in sampled:
        raise ValueError(f"mode {mode!r} was not sampled; the sampled modes are {sampled.tolist()}")
    chains = np.flatnonzero(idata.posterior["mode"].values == mode)
    one = idata.isel(chain=chains)
    for group in one.groups():
        if "chain" in one[group].dims:
            setattr(one, group, one[group].assign_coords(chain=np.arange(len(chains))))
    for n in ("weights", "means", "covariances"):
        reference = one.constant_data[f"reference_{n}"]
        one.constant_data[f"reference_{n}"] = reference.copy(data=table[f"mode_{n}"].values[mode])
    return one


def plot_modes(idata, fit=None, *, axes=None, n_draws: int = 40, seed: int = 0):
    """One panel per sampled mode: the data and that mode's posterior draws' 2-sd ellipses
    (``plot_ellipses`` on ``select_mode(idata, m)``), titled with its weights.

    Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    from gmm_ppl.compare import plot_ellipses

    table = _modes_group(idata)
    sampled = _sampled_modes(idata)
    if axes is None:
        _, axes = plt.subplots(1, len(sampled), figsize=(4.5 * len(sampled), 4), squeeze=False)
        axes = axes[0]
    for ax, m in zip(axes, sampled, strict=True):
        plot_ellipses(select_mode(idata, m), fit, ax=ax, n_draws=n_draws, seed=seed)
        ax.set_title(
            f"mode {m}: Laplace {table.laplace_weight.values[m]:.2f}, stacking {table.stacking_weight.values[m]:.2f}",
            fontsize=9,
        )
    return axes


def modes_of_run(idata, *, n_init: int = 50, key=0):
    """The modes of the posterior a one-reference run (``modes=1``, or a given reference)
    sampled, beside its draws: ``find_modes`` under its prior, and the share of its draws
    nearest each mode (``nearest_modes``). What the command line's report shows.

    Returns:
      (``Modes``, a pandas DataFrame, one row per mode, the highest log posterior first:
      log_posterior, restarts, laplace_weight, draw_share, components, closest_pair).
    """
    import pandas as pd

    from gmm_ppl.posterior import posterior_params, prior_of

    x = idata.observed_data["x"].values
    K = idata.posterior.sizes["component"]
    name = idata.attrs["covariance_type"]
    found = find_modes(x, K, covariance_type=name, prior=prior_of(idata), n_init=n_init, key=key)
    nearest = nearest_modes(posterior_params(idata), found)
    share = np.bincount(nearest.ravel(), minlength=len(found.params)) / nearest.size
    rows = []
    for m, params in enumerate(found.params):
        components, closest = describe_mode(params, name)
        rows.append({
            "log_posterior": found.log_posterior[m], "restarts": int(found.restarts[m]),
            "laplace_weight": found.weights[m], "draw_share": share[m], "components": components,
            "closest_pair": closest,
        })  # fmt: skip
    return found, pd.DataFrame(rows).rename_axis("mode")
