"""The one table of covariance structures: per structure its names, its words for people,
its family, its free-parameter count and what it supports.

Every question about a structure that is not arithmetic is asked here: its mclust code
(``code``), its words (``words``), whether MAP-EM, the NumPyro model or variational Bayes
support it (``supports``), the default grid of ``select_model`` (``DEFAULT_SELECTION``). This module
imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

# What a structure may support:
#   map   MAP-EM, under the conjugate prior (its record's ``prior``): every structure
#   nuts  the NumPyro model: sample_posterior, simulate, the prior's sites (``prior.sample``)
#   vb    variational Bayes (``gmm_ppl.vb``): q's conjugate updates and expectations
CAPABILITIES = ("map", "nuts", "vb")
MAP = frozenset({"map"})
CONJUGATE = frozenset(CAPABILITIES)  # scikit-learn's four, which the NumPyro model and VB have

# mclust's models, simplest first (mclust's ``mclust.options("emModelNames")``): the order of
# ``select_model``'s default grid.
MCLUST_MODEL_NAMES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip


class Entry(NamedTuple):
    name: str  # the registry's name: scikit-learn's for its four types, else mclust's code
    code: str  # mclust's code (volume, shape, orientation: E equal, V varying, I identity)
    family: str  # the scikit-learn type whose storage shape and E-step the structure shares
    n_parameters: Callable[[int, int], int]  # (K, D) -> free covariance parameters
    capabilities: frozenset[str]  # a subset of CAPABILITIES
    words: str  # for people: the command line's tables, progress lines and report.md


# Rows in the registry's order, which is the order messages list them in.
# fmt: off
TABLE: tuple[Entry, ...] = (
    Entry("full",      "VVV", "full",      lambda K, D: K * D * (D + 1) // 2,             CONJUGATE,
          "each component its own covariance"),
    Entry("tied",      "EEE", "tied",      lambda K, D: D * (D + 1) // 2,                 CONJUGATE,
          "one covariance shared by all components"),
    Entry("diag",      "VVI", "diag",      lambda K, D: K * D,                            CONJUGATE,
          "per-component diagonal covariance"),
    Entry("spherical", "VII", "spherical", lambda K, D: K,                                CONJUGATE,
          "per-component single variance"),
    Entry("EII",       "EII", "spherical", lambda K, D: 1,                                MAP,
          "one variance for every component and feature"),
    Entry("EEI",       "EEI", "diag",      lambda K, D: D,                                MAP,
          "one diagonal covariance shared by all components"),
    Entry("EVI",       "EVI", "diag",      lambda K, D: 1 + K * (D - 1),                  MAP,
          "equal volume, each component its own diagonal shape"),
    Entry("EVV",       "EVV", "full",      lambda K, D: 1 + K * (D * (D + 1) // 2 - 1),   MAP,
          "equal volume, own shape and orientation"),
    Entry("EEV",       "EEV", "full",      lambda K, D: 1 + (D - 1) + K * D * (D - 1) // 2, MAP,
          "equal volume and shape, own orientation"),
    Entry("VEI",       "VEI", "diag",      lambda K, D: K + (D - 1),                      MAP,
          "own volume, one diagonal shape for all components"),
    Entry("VEE",       "VEE", "full",      lambda K, D: K + D * (D + 1) // 2 - 1,         MAP,
          "own volume, one shape and orientation for all components"),
    Entry("EVE",       "EVE", "full",      lambda K, D: 1 + K * (D - 1) + D * (D - 1) // 2, MAP,
          "equal volume, own diagonal shape, one orientation"),
    Entry("VVE",       "VVE", "full",      lambda K, D: K * D + D * (D - 1) // 2,         MAP,
          "own volume and shape, one orientation"),
    Entry("VEV",       "VEV", "full",      lambda K, D: K + (D - 1) + K * D * (D - 1) // 2, MAP,
          "own volume and orientation, one shape"),
)
# fmt: on

ENTRIES: dict[str, Entry] = {e.name: e for e in TABLE}
# mclust's codes of the structures whose registry name is another (scikit-learn's).
ALIASES: dict[str, str] = {e.code: e.name for e in TABLE if e.code != e.name}
# select_model's default grid: every structure, by its code, in mclust's order.
DEFAULT_SELECTION: tuple[str, ...] = tuple(sorted((e.code for e in TABLE), key=MCLUST_MODEL_NAMES.index))


def canonical(name: str) -> str:
    """The registry name of a covariance type given by its name or mclust code."""
    resolved = ALIASES.get(name, name) if isinstance(name, str) else None
    if resolved not in ENTRIES:
        choices = sorted(ENTRIES) + sorted(ALIASES)
        raise ValueError(f"unknown covariance_type {name!r}; expected one of {choices}")
    return resolved


def entry(name: str) -> Entry:
    """The table's row of a covariance type (a name or mclust code); ValueError if unknown."""
    return ENTRIES[canonical(name)]


def code(name: str) -> str:
    """mclust's code of a covariance type ('full' -> 'VVV'; 'EEV' stays)."""
    return entry(name).code


def words(name: str) -> str:
    """What a covariance type means, in words for people."""
    return entry(name).words


def supports(name: str, capability: str) -> bool:
    """Whether covariance type ``name`` (a name or mclust code) supports ``capability``:
    'map' (MAP-EM under the conjugate prior) or 'nuts' (the NumPyro model, so
    sample_posterior and simulate)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; expected one of {list(CAPABILITIES)}")
    return capability in entry(name).capabilities


def supporting(capability: str) -> tuple[str, ...]:
    """The registry names of the structures that support ``capability``, in table order."""
    return tuple(e.name for e in TABLE if supports(e.name, capability))


def format_table() -> str:
    """The table as text, with each structure's free parameters for K components and D features."""
    header = ("name", "code", "family", "free parameters (K=3, D=4)", "supports", "words")
    rows = [
        (e.name, e.code, e.family, str(e.n_parameters(3, 4)), ", ".join(sorted(e.capabilities)) or "-", e.words)
        for e in TABLE
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows))
