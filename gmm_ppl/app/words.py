"""Words for people, shared by the command line's tables, the progress lines and report.md.

A structure's mclust code and words come from the covariance table (``gmm_ppl.covariance``)."""

from __future__ import annotations

from gmm_ppl import covariance
from gmm_ppl._text import spoken_list


def code_of(covariance_type: str) -> str:
    """mclust's code of a covariance type ('full' -> 'VVV'; 'EEV' stays)."""
    return covariance.code(covariance_type)


def describe_covariance(covariance_type: str) -> str:
    name = covariance.canonical(covariance_type)
    code = code_of(name)
    label = name if code == name else f"{name} ({code})"
    return f"{label}: {covariance.words(name)}"


def supported_words(capability: str, conjunction: str = "and") -> str:
    """The structures that support ``capability`` ('map', 'nuts' or 'vb'), by name, then their
    mclust codes: 'full, tied, diag and spherical (VVV, EEE, VVI, VII)'."""
    names = covariance.supporting(capability)
    return f"{spoken_list(names, conjunction)} ({', '.join(map(covariance.code, names))})"


def covariance_choices() -> str:
    """The covariance types as the command line's help lists them: the names that are not
    mclust codes, then every code."""
    names = [e.name for e in covariance.TABLE if e.name != e.code]
    return f"{', '.join(names)} or an mclust code ({', '.join(e.code for e in covariance.TABLE)})"


def interrupted_words(interrupted: dict) -> str:
    return (
        f"NUTS was interrupted (Ctrl-C) after {interrupted['draws']} of {interrupted['draws_requested']} "
        "draws per chain"
    )
