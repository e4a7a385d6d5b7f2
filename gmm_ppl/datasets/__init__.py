"""Datasets shipped inside the package (nothing is downloaded).

``load(name)`` returns the numeric columns as an (N, D) float array;
``load(name, return_labels=True)`` also returns the label column where one exists.
"""

from __future__ import annotations

import csv
import importlib.resources
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
    text = importlib.resources.files(__package__).joinpath(meta.file).read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    x = np.array([[float(row[c]) for c in meta.columns] for row in rows])
    if not return_labels:
        return x
    if meta.label_column is None:
        raise ValueError(f"dataset {name!r} has no label column")
    return x, np.array([row[meta.label_column] for row in rows])
