"""The posterior's modes: MAP-EM's local optima, grouped up to label permutation, each with
its log posterior density and a Laplace approximation of its mass.

A mixture's posterior has K! copies of every mode (the labellings), and on data such as Old
Faithful with K=3 it has modes that differ beyond labels (the third component splitting one
cluster or the other). Many MAP-EM restarts, one vmapped call, land in those modes; two
restarts are one mode when, their components matched (``relabel``), the Gaussians agree
(the matched components' Kullback-Leibler divergences sum below ``same``) and so do the
weights. The Laplace approximation sits at each mode of the posterior density in NumPyro's
unconstrained coordinates (the density NUTS samples, its Jacobian included): Newton's steps
from the MAP-EM fit find it, and log mass = -U(u*) + d/2 log(2 pi) - 1/2 log |H(u*)|, with U
the potential energy and H its Hessian by autodiff. Every mode has the same K! labellings,
so the masses of one labelling each compare the modes as wholes.
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
      gradient: (M,) the largest entry of U's gradient where the search ended.
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


def _gaussian_kl(m0, c0, m1, c1) -> float:
    """sum_k KL(N(m0_k, c0_k) || N(m1_k, c1_k)) for (K, D) means and (K, D, D) covariances."""
    D = m0.shape[-1]
    inv1 = np.linalg.inv(c1)
    diff = m1 - m0
    trace = np.einsum("kde,ked->k", inv1, c0)
    maha = np.einsum("kd,kde,ke->k", diff, inv1, diff)
    logdet = np.linalg.slogdet(c1)[1] - np.linalg.slogdet(c0)[1]
    return float(np.sum(0.5 * (trace + maha - D + logdet)))


def group_restarts(restarts: GMMParams, objectives, covariance_type: str, same: float = 1e-3):
    """(mode of every restart (-1 for a non-finite one), the index of each mode's best restart):
    restarts visited from the highest objective down; one joins the first mode whose
    parameters it matches up to label permutation (``relabel``; the components'
    Kullback-Leibler divergences summed below ``same`` and the weights within ``same``)."""
    from gmm_ppl.density import full_covariances
    from gmm_ppl.posterior import relabel

    objectives = np.asarray(objectives, np.float64)
    K, D = np.shape(restarts.means)[1:]
    name = covariance.canonical(covariance_type)
    mode_of = np.full(len(objectives), -1)
    representatives: list[int] = []
    for r in np.argsort(-objectives, kind="stable"):
        if not np.isfinite(objectives[r]):
            continue
        params = GMMParams(*(np.asarray(a[r], np.float64) for a in restarts))
        for m, best in enumerate(representatives):
            reference = GMMParams(*(np.asarray(a[best], np.float64) for a in restarts))
            draws = {
                "weights": params.weights[None],
                "means": params.means[None],
                "covariances": params.covariances[None],
            }
            aligned, _ = relabel(draws, reference, name)
            kl = _gaussian_kl(
                aligned["means"][0],
                full_covariances(aligned["covariances"][0], name, K, D),
                reference.means,
                full_covariances(reference.covariances, name, K, D),
            )
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
    energy = _energy_function(unflatten, x, prior, n_components, covariance_type)
    grad, h = jax.grad(energy)(flat), jax.hessian(energy)(flat)
    positive = jnp.all(jnp.linalg.eigvalsh(h) > 0)
    return energy(flat), jnp.max(jnp.abs(grad)), jnp.linalg.solve(h, grad), jnp.linalg.slogdet(h)[1], positive


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
    lowers U; the search stops where the Hessian is not positive definite, where no step
    lowers U, or where the gradient has vanished (below STATIONARY_GRADIENT / 100). The
    steps are taken here, on the host: a compiled loop (a scan of Newton's steps with every
    halving tried at once) compiled in 12 s on Old Faithful against 2 s for this one program."""
    from jax.flatten_util import ravel_pytree

    flat = np.asarray(ravel_pytree(u)[0])
    derivatives = functools.partial(
        _derivatives_program.pick(0), shapes=u, x=x, prior=prior, n_components=n_components,
        covariance_type=covariance_type,
    )  # fmt: skip
    here, gradient, move, log_det, positive = derivatives(flat)
    for _ in range(NEWTON_STEPS):
        if not bool(positive) or float(gradient) <= STATIONARY_GRADIENT / 100:
            break
        move = np.asarray(move)
        for halving in range(STEP_HALVINGS):  # the largest step that lowers U
            trial = flat - 0.5**halving * move
            at_trial = derivatives(trial)
            if np.isfinite(float(at_trial[0])) and float(at_trial[0]) <= float(here):
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

    x = _validate.as_data(x)
    N, D = x.shape
    K = _validate.check_int(n_components, "n_components")
    name = covariance.canonical(covariance_type)
    if not covariance.supports(name, "nuts"):
        raise ValueError(f"covariance_type {covariance_type!r} has no NumPyro model, whose density the modes are of")
    prior = default_prior(x, K) if prior is None else _validate.check_prior(prior, K, D)
    fit = fit_em(x, K, covariance_type=name, prior=prior, n_init=n_init, key=key, tol=tol, max_iter=max_iter,
                 dtype="float64")  # fmt: skip
    objectives = np.asarray(fit.restart_objectives, np.float64)
    mode_of, representatives = group_restarts(fit.restart_params, objectives, name, same)
    params, log_mass, gradients = [], [], []
    with _validate.precision(np.float64):
        xj = _validate.to_device(x, np.float64)
        prior_j = _validate.to_device(prior, np.float64)
        for r in representatives:
            p = GMMParams(*(np.asarray(a[r], np.float64) for a in fit.restart_params))
            params.append(p)
            u = _unconstrain_program(_validate.to_device(p, np.float64), prior_j, covariance_type=name)
            flat, log_density, log_det, gradient, positive = _laplace(
                u, xj, prior_j, n_components=K, covariance_type=name
            )
            d = flat.shape[0]
            mass = float(log_density) + 0.5 * d * math.log(2 * math.pi) - 0.5 * float(log_det)
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
    from gmm_ppl.density import full_covariances
    from gmm_ppl.posterior import full_covariances_of_draws, relabel

    name = found.covariance_type
    K, D = np.shape(found.params[0].means)
    lead = np.shape(draws["weights"])[:-1]
    distances = []
    for mode in found.params:
        aligned, _ = relabel(draws, mode, name)
        means = np.asarray(aligned["means"], np.float64).reshape(-1, K, D)
        cov = np.asarray(aligned["covariances"], np.float64)
        cov = full_covariances_of_draws(cov.reshape(means.shape[0], *cov.shape[len(lead) :]), name, K, D)
        reference = full_covariances(np.asarray(mode.covariances, np.float64), name, K, D)
        inverse = np.linalg.inv(reference)
        diff = mode.means[None] - means
        kl = 0.5 * (
            np.einsum("kde,sked->sk", inverse, cov)
            + np.einsum("skd,kde,ske->sk", diff, inverse, diff)
            - D
            + np.linalg.slogdet(reference)[1][None]
            - np.linalg.slogdet(cov)[1]
        )
        distances.append(kl.sum(axis=1))
    return np.argmin(np.stack(distances, axis=-1), axis=-1).reshape(lead)
