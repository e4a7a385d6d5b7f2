"""Words for people, shared by the command line's tables, the progress lines and report.md."""

from __future__ import annotations

from gmm_ppl import covariance

# mclust's codes of the registry's names, for messages and tables.
MCLUST_CODE = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
COVARIANCE_WORDS = {
    "full": "each component its own covariance",
    "tied": "one covariance shared by all components",
    "diag": "per-component diagonal covariance",
    "spherical": "per-component single variance",
    "EII": "one variance for every component and feature",
    "EEI": "one diagonal covariance shared by all components",
    "EVI": "equal volume, each component its own diagonal shape",
    "EVV": "equal volume, own shape and orientation",
    "EEV": "equal volume and shape, own orientation",
}


def code_of(covariance_type: str) -> str:
    """mclust's code of a covariance type ('full' -> 'VVV'; 'EEV' stays)."""
    name = covariance.canonical(covariance_type)
    return MCLUST_CODE.get(name, name)


def describe_covariance(covariance_type: str) -> str:
    name = covariance.canonical(covariance_type)
    code = code_of(name)
    label = name if code == name else f"{name} ({code})"
    return f"{label}: {COVARIANCE_WORDS[name]}"


def interrupted_words(interrupted: dict) -> str:
    return (
        f"NUTS was interrupted (Ctrl-C) after {interrupted['draws']} of {interrupted['draws_requested']} "
        "draws per chain"
    )
