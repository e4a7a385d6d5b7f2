"""Datasets shipped inside the package (nothing is downloaded).

``load(name)`` returns the numeric columns as an (N, D) float array;
``load(name, return_labels=True)`` also returns the label column where one exists.
``export(name, path)`` writes a dataset's shipped CSV to a file, and ``simulate(params,
n_rows)`` draws rows and their true components from the generative model with known
parameters.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np


class DatasetInfo(NamedTuple):
    name: str
    file: str
    columns: tuple[str, ...]
    label_column: str | None
    description: str
    source: str


DATASETS = {
    "old_faithful": DatasetInfo(
        name="old_faithful",
        file="old_faithful.csv",
        columns=("eruptions", "waiting"),
        label_column=None,
        description=(
            "272 eruptions of the Old Faithful geyser, Yellowstone: eruption time and waiting "
            "time to the next eruption, in minutes. Two clear clusters; the lecture's EM example."
        ),
        source="Azzalini, A. and Bowman, A. W. (1990), Applied Statistics 39, 357-365; R's datasets::faithful.",
    ),
    "diabetes": DatasetInfo(
        name="diabetes",
        file="diabetes.csv",
        columns=("glucose", "insulin", "sspg"),
        label_column="class",
        description=(
            "145 non-obese adults: plasma glucose and insulin responses to oral glucose, and "
            "steady-state plasma glucose (sspg); clinical class Normal, Chemical or Overt "
            "diabetes. The lecture's bio-assay clustering example."
        ),
        source="Reaven, G. M. and Miller, R. G. (1979), Diabetologia 16, 17-24; R's mclust::diabetes.",
    ),
}


def names() -> list[str]:
    """Names of the shipped datasets."""
    return sorted(DATASETS)


def info(name: str) -> DatasetInfo:
    """Columns, description and source of a dataset."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; available: {names()}") from None


def load(name: str, return_labels: bool = False):
    """The numeric columns of dataset ``name`` as an (N, D) float64 array.

    Args:
      name: one of ``names()``.
      return_labels: also return the label column as an (N,) string array (an error for
        a dataset without labels).
    """
    meta = info(name)
    rows = list(csv.DictReader(text(name).splitlines()))
    x = np.array([[float(row[c]) for c in meta.columns] for row in rows])
    if not return_labels:
        return x
    if meta.label_column is None:
        raise ValueError(f"dataset {name!r} has no label column")
    return x, np.array([row[meta.label_column] for row in rows])


def text(name: str) -> str:
    """The shipped CSV file of dataset ``name``, as text (header, numeric columns, labels)."""
    meta = info(name)
    return importlib.resources.files(__package__).joinpath(meta.file).read_text(encoding="utf-8")


def export(name: str, path, *, overwrite: bool = False) -> Path:
    """Write dataset ``name``'s CSV file (the shipped one, labels included) to ``path``.

    The file is written to a temporary sibling and renamed into place, so ``path`` is never
    half-written. An existing file is refused unless ``overwrite``.
    """
    content = text(name)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / (name + '.csv')}")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def simulate(params, n_rows: int, seed: int = 0, covariance_type: str = "full"):
    """Rows drawn from the generative model ``gmm_ppl.gmm_model`` with known parameters.

    The model's parameter sites are fixed to ``params`` (``numpyro.handlers.condition``);
    z_i ~ Categorical(weights) and x_i | z_i ~ N(mu_z, Sigma_z) are then drawn by NumPyro,
    in float64.

    Args:
      params: a ``GMMParams`` (or a mapping with 'weights', 'means', 'covariances'), the
        covariances in ``covariance_type``'s shape.
      n_rows: rows to draw.
      seed: NumPyro's seed; the same seed gives the same rows.
      covariance_type: 'full', 'tied', 'diag' or 'spherical' (mclust's VVV, EEE, VVI, VII).

    Returns:
      (x (n_rows, D) float64, labels (n_rows,) int: the component each row was drawn from).

    Example:
      >>> truth = gp.GMMParams([0.5, 0.5], [[0.0, 0.0], [4.0, 4.0]], [1.0, 2.0])
      >>> x, z = gp.datasets.simulate(truth, 200, seed=0, covariance_type="spherical")
    """
    import jax
    import jax.numpy as jnp

    from gmm_ppl import _validate, covariance
    from gmm_ppl._text import spoken_list
    from gmm_ppl.params import GMMParams, Prior

    if isinstance(params, dict):
        unknown = set(params) - {"weights", "means", "covariances"}
        if unknown:
            raise ValueError(f"params has unknown fields {sorted(unknown)}; expected weights, means, covariances")
        params = GMMParams(params.get("weights"), params.get("means"), params.get("covariances"))
    params = GMMParams(*params)
    if any(p is None for p in params):
        raise ValueError("params needs weights, means and covariances")
    covariance_type = covariance.canonical(covariance_type)
    if not covariance.supports(covariance_type, "nuts"):
        raise ValueError(
            f"covariance_type {covariance_type!r} is not in the NumPyro model; simulate supports "
            f"{spoken_list(map(repr, covariance.supporting('nuts')))}"
        )
    means = np.asarray(params.means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"params.means must have shape (K, D); got {means.shape}")
    K, D = means.shape
    params = _validate.check_params(params, K, D, covariance_type, name="params")
    n_rows = _validate.check_int(n_rows, "n_rows")
    seed = _validate.check_int(seed, "seed", minimum=0)
    # The prior's sites are conditioned on ``params``, so its hyperparameters only have to
    # be valid: they do not change the draws.
    prior = Prior(np.ones(K), np.zeros(D), np.float64(1.0), np.float64(D + 2), np.eye(D))

    with _validate.precision(np.float64):
        # One compiled program: run eagerly, every small operation would compile on its own.
        values = {name: jnp.asarray(v, jnp.float64) for name, v in params._asdict().items()}
        prior = Prior(*(jnp.asarray(a, jnp.float64) for a in prior))
        x, labels = _simulate_program()(
            jax.random.key(seed), values, prior, n_components=K, covariance_type=covariance_type, n_rows=n_rows
        )
        x = np.asarray(x, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
    return x, labels


@functools.cache
def _simulate_program():
    """The compiled draw of ``simulate``, made on first use (this module loads no JAX until then)."""
    from numpyro import handlers

    from gmm_ppl import programs
    from gmm_ppl.model import gmm_model

    def draw(key, values, prior, *, n_components, covariance_type, n_rows):
        model = handlers.seed(handlers.condition(gmm_model, data=values), rng_seed=key)
        trace = handlers.trace(model).get_trace(
            None, n_components=n_components, covariance_type=covariance_type, prior=prior, n_rows=n_rows
        )
        return trace["x"]["value"], trace["z"]["value"]

    return programs.program("simulate", draw, static_argnames=("n_components", "covariance_type", "n_rows"))


__all__ = ["DatasetInfo", "export", "info", "load", "names", "simulate", "text"]
