"""The records of the covariance structures, assembled from the table and the parts.

A structure's record gathers, by role, what the fitters and the model call: its E-step
(``estep``, shared by its family), its M-step (``mstep``), its conjugate prior (``prior``,
None for a structure without one) and its unconstrained chart (``chart``); with its name,
family, free-parameter count (from ``table``), storage shape and full form.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl.covariance import charts, estep, mstep, priors, table
from gmm_ppl.covariance.charts import Chart
from gmm_ppl.covariance.estep import EStep
from gmm_ppl.covariance.mstep import MStep
from gmm_ppl.covariance.priors import ConjugatePrior


class CovarianceType(NamedTuple):
    name: str
    family: str  # the scikit-learn type whose shape and E-step this type shares
    shape: Callable  # (K, D) -> shape of the covariances
    to_full: Callable  # (covariances, K, D) -> (K, D, D)
    unit: Callable  # (K, D, dtype) -> identity covariances in this storage
    n_parameters: Callable  # (K, D) -> free covariance parameters
    estep: EStep
    mstep: MStep
    prior: ConjugatePrior  # its sites (``prior.sample``) None without a NumPyro density
    chart: Chart


class _Storage(NamedTuple):
    shape: Callable
    to_full: Callable
    unit: Callable


def _numpy_or_jax(numpy_fn: Callable, jax_fn: Callable) -> Callable:
    """``numpy_fn`` for NumPy arrays, ``jax_fn`` otherwise (JAX arrays, tracers): on the host,
    JAX's operations would each compile a small program per shape (``select_model`` compiled
    45 of them for its singularity check, about 1 s with every program loaded from disk)."""
    return lambda cov, K, D: numpy_fn(cov, K, D) if isinstance(cov, np.ndarray) else jax_fn(cov, K, D)


# How each family stores its covariances: scikit-learn's shapes.
STORAGE = {
    "full": _Storage(
        shape=lambda K, D: (K, D, D),
        to_full=lambda cov, K, D: cov,
        unit=lambda K, D, dtype: jnp.broadcast_to(jnp.eye(D, dtype=dtype), (K, D, D)),
    ),
    "tied": _Storage(
        shape=lambda K, D: (D, D),
        to_full=_numpy_or_jax(
            lambda cov, K, D: np.broadcast_to(cov, (K, D, D)), lambda cov, K, D: jnp.broadcast_to(cov, (K, D, D))
        ),
        unit=lambda K, D, dtype: jnp.eye(D, dtype=dtype),
    ),
    "diag": _Storage(
        shape=lambda K, D: (K, D),
        to_full=_numpy_or_jax(
            lambda cov, K, D: cov[..., :, None] * np.eye(D, dtype=cov.dtype),
            lambda cov, K, D: jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(cov),
        ),
        unit=lambda K, D, dtype: jnp.ones((K, D), dtype),
    ),
    "spherical": _Storage(
        shape=lambda K, D: (K,),
        to_full=_numpy_or_jax(
            lambda cov, K, D: cov[:, None, None] * np.eye(D, dtype=cov.dtype),
            lambda cov, K, D: cov[:, None, None] * jnp.eye(D, dtype=cov.dtype),
        ),
        unit=lambda K, D, dtype: jnp.ones(K, dtype),
    ),
}


def _structure(name: str, m: MStep, chart: Chart) -> CovarianceType:
    """The record of table row ``name``: its family's storage, E-step and conjugate prior
    (with NumPyro sites where the table says 'nuts'), the given parts."""
    row = table.ENTRIES[name]
    if "map" not in row.capabilities:  # every structure's prior has a MAP step (``priors``)
        raise ValueError(f"covariance type {name!r}: the table denies the MAP step its prior gives")
    prior = priors.of_structure(name, row.code, row.family, nuts="nuts" in row.capabilities)
    storage = STORAGE[row.family]
    return CovarianceType(
        name=name,
        family=row.family,
        shape=storage.shape,
        to_full=storage.to_full,
        unit=storage.unit,
        n_parameters=row.n_parameters,
        estep=estep.BY_FAMILY[row.family],
        mstep=m,
        prior=prior,
        chart=chart,
    )


FULL = _structure("full", mstep.FULL, charts.FULL)
TIED = _structure("tied", mstep.TIED, charts.TIED)
DIAG = _structure("diag", mstep.DIAG, charts.DIAG)
SPHERICAL = _structure("spherical", mstep.SPHERICAL, charts.SPHERICAL)
EII = _structure("EII", mstep.EII, charts.EII)
EEI = _structure("EEI", mstep.EEI, charts.EEI)
EVI = _structure("EVI", mstep.EVI, charts.EVI)
EVV = _structure("EVV", mstep.EVV, charts.EVV)
EEV = _structure("EEV", mstep.EEV, charts.EEV)
VEI = _structure("VEI", mstep.VEI, charts.VEI)
VEE = _structure("VEE", mstep.VEE, charts.VEE)
EVE = _structure("EVE", mstep.EVE, charts.EVE)
VVE = _structure("VVE", mstep.VVE, charts.VVE)
VEV = _structure("VEV", mstep.VEV, charts.VEV)

#: Every structure by its registry name, in the table's order: ``name -> CovarianceType``.
COVARIANCE_TYPES: dict[str, CovarianceType] = {
    t.name: t for t in (FULL, TIED, DIAG, SPHERICAL, EII, EEI, EVI, EVV, EEV, VEI, VEE, EVE, VVE, VEV)
}
if tuple(COVARIANCE_TYPES) != tuple(table.ENTRIES):
    raise ValueError("gmm_ppl.covariance: the records and the table name different structures")


class _Held(NamedTuple):
    """How a narrower family is held in a wider one's storage (``chosen``)."""

    wider: str
    narrow_scatter: Callable  # the wider family's scatter -> the narrower's
    # (the narrower's scatter, K, D) -> the wider storage, the scatter in the first slot of
    # zeros: narrow_scatter's sum maps it back exactly (adding zeros rounds nothing)
    widen_scatter: Callable
    narrow: Callable  # covariances in the wider storage (any leading axes kept) -> its own
    widen: Callable  # (its covariances, K, D) -> the wider storage (tied's: its full form)


# A structure in a program shared by several families (``chosen``) is held in a wider
# storage: spherical (K,) as diag (K, D), tied (D, D) as full (K, D, D).
_HELD_IN = {
    "spherical": _Held(
        "diag",
        narrow_scatter=lambda scatter: jnp.sum(scatter, axis=-1),
        widen_scatter=lambda scatter, K, D: jnp.zeros((K, D), scatter.dtype).at[:, 0].set(scatter),
        narrow=lambda cov: cov[..., 0],
        widen=_numpy_or_jax(
            lambda cov, K, D: np.broadcast_to(cov[:, None], (K, D)),
            lambda cov, K, D: jnp.broadcast_to(cov[:, None], (K, D)),
        ),
    ),
    "tied": _Held(
        "full",
        narrow_scatter=lambda scatter: jnp.sum(scatter, axis=0),
        widen_scatter=lambda scatter, K, D: jnp.zeros((K, D, D), scatter.dtype).at[0].set(scatter),
        narrow=lambda cov: cov[..., 0, :, :],
        widen=STORAGE["tied"].to_full,
    ),
}
_FAMILY_RECORDS = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}


def shared_family(name: str) -> str:
    """The family whose storage and E-step hold structure ``name`` in a program shared with
    other families: diag for the spherical ones, full for tied, else its own."""
    family = table.entry(name).family
    return _HELD_IN[family].wider if family in _HELD_IN else family


def shared(names: tuple[str, ...]) -> CovarianceType:
    """The family record that holds every structure of ``names``: their own family's if they
    have one, else the wider one (``shared_family``); ValueError if none holds them all."""
    families = {table.entry(name).family for name in names}
    if len(families) > 1:
        families = {shared_family(name) for name in names}
    if len(families) != 1:
        raise ValueError(f"covariance structures {names} have no family in common")
    return _FAMILY_RECORDS[families.pop()]


def from_shared(covariances, name: str, names: tuple[str, ...]):
    """Covariances of structure ``name`` (any leading axes) back in its own storage from
    that of ``shared(names)``."""
    family = table.entry(name).family
    return covariances if shared(names).family == family else _HELD_IN[family].narrow(covariances)


def to_shared(covariances, name: str, K: int, D: int):
    """Covariances of structure ``name`` in the storage of its ``shared_family`` (the reverse
    of ``from_shared``); NumPy arrays stay NumPy."""
    family = table.entry(name).family
    return _HELD_IN[family].widen(covariances, K, D) if family in _HELD_IN else covariances


def chosen(names: tuple[str, ...], index) -> CovarianceType:
    """One record for several structures, the structure ``names[index]`` picked at run time
    (``index`` may be traced): the storage, E-step and corrections of the family that holds
    them all (``shared``), and the chosen structure's M-step and conjugate prior by
    ``lax.switch``, which runs only that branch. A model selection grid then needs one
    program for every structure in a family's storage instead of one each
    (``gmm_ppl.selection``), under a prior too: the prior's pseudo-statistics and log
    density are the chosen structure's, in the holder's storage. It has no NumPyro sites."""
    holder = shared(names)
    members = [COVARIANCE_TYPES[table.canonical(name)] for name in names]

    def held(member, D, scatter, n, previous):
        """``member``'s covariances, from the holder's scatter and previous covariances, in its storage."""
        if member.family == holder.family:
            return member.mstep.ml_covariance(scatter, n, D, previous)
        way = _HELD_IN[member.family]
        own = member.mstep.ml_covariance(way.narrow_scatter(scatter), n, D, way.narrow(previous))
        return way.widen(own, n.shape[0], D)

    def ml_covariance(scatter, n, D, previous):
        branches = [functools.partial(held, member, D) for member in members]
        return jax.lax.switch(index, branches, scatter, n, previous)

    def pseudo(prior, present):
        K, D = present.shape[0], prior.scale.shape[-1]

        def of(member):
            scatter, count = member.prior.pseudo(prior, present)
            if member.family != holder.family:
                scatter = _HELD_IN[member.family].widen_scatter(scatter, K, D)
            return scatter, jnp.broadcast_to(count, (K,)).astype(scatter.dtype)

        return jax.lax.switch(index, [functools.partial(of, member) for member in members])

    def log_density(means, covariances, prior, present):
        def of(member):
            return member.prior.log_density(means, from_shared(covariances, member.name, names), prior, present)

        return jax.lax.switch(index, [functools.partial(of, member) for member in members])

    return holder._replace(
        name="|".join(m.name for m in members),
        mstep=holder.mstep._replace(ml_covariance=ml_covariance),
        prior=ConjugatePrior(pseudo=pseudo, log_density=log_density, sample=None),
    )
