"""The shipped datasets: shapes, known values, labels, metadata and errors."""

import numpy as np
import pytest

import gmm_ppl as gp


def test_names():
    assert gp.datasets.names() == ["diabetes", "old_faithful"]


def test_old_faithful():
    x = gp.datasets.load("old_faithful")
    assert isinstance(x, np.ndarray)
    assert x.shape == (272, 2)
    assert np.issubdtype(x.dtype, np.floating)
    assert np.all(np.isfinite(x))
    # R's datasets::faithful: first and last rows, column means.
    np.testing.assert_array_equal(x[0], [3.6, 79.0])
    np.testing.assert_array_equal(x[-1], [4.467, 74.0])
    np.testing.assert_allclose(x.mean(axis=0), [3.487783, 70.897059], atol=1e-6)


def test_diabetes():
    x = gp.datasets.load("diabetes")
    assert x.shape == (145, 3)
    assert np.issubdtype(x.dtype, np.floating)
    assert np.all(np.isfinite(x))
    # mclust::diabetes: glucose, insulin, sspg.
    np.testing.assert_array_equal(x[0], [80.0, 356.0, 124.0])
    np.testing.assert_array_equal(x[-1], [346.0, 1568.0, 15.0])


def test_diabetes_labels():
    x, labels = gp.datasets.load("diabetes", return_labels=True)
    np.testing.assert_array_equal(x, gp.datasets.load("diabetes"))
    assert labels.shape == (145,)
    assert set(labels.tolist()) == {"Normal", "Chemical", "Overt"}
    values, counts = np.unique(labels, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {"Normal": 76, "Chemical": 36, "Overt": 33}
    assert labels[0] == "Normal" and labels[-1] == "Overt"


def test_load_returns_a_fresh_array():
    x = gp.datasets.load("old_faithful")
    x[0, 0] = -1.0
    assert gp.datasets.load("old_faithful")[0, 0] == 3.6


@pytest.mark.parametrize(
    "name, n_columns, label_column",
    [("old_faithful", 2, None), ("diabetes", 3, "class")],
)
def test_info(name, n_columns, label_column):
    meta = gp.datasets.info(name)
    assert meta.name == name
    assert len(meta.columns) == n_columns
    assert meta.label_column == label_column
    assert isinstance(meta.description, str) and len(meta.description) > 20
    assert isinstance(meta.source, str) and len(meta.source) > 10


def test_info_columns_and_sources():
    assert gp.datasets.info("old_faithful").columns == ("eruptions", "waiting")
    assert gp.datasets.info("diabetes").columns == ("glucose", "insulin", "sspg")
    assert "Azzalini" in gp.datasets.info("old_faithful").source
    assert "Reaven" in gp.datasets.info("diabetes").source


def test_every_named_dataset_loads():
    for name in gp.datasets.names():
        x = gp.datasets.load(name)
        assert x.ndim == 2 and x.shape[1] == len(gp.datasets.info(name).columns)


@pytest.mark.parametrize("function", [gp.datasets.load, gp.datasets.info])
@pytest.mark.parametrize("name", ["iris", "Old_Faithful", "", "faithful"])
def test_unknown_name_lists_the_choices(function, name):
    with pytest.raises(ValueError, match=r"unknown dataset .*available: \['diabetes', 'old_faithful'\]"):
        function(name)


def test_labels_of_unlabelled_dataset():
    with pytest.raises(ValueError, match="'old_faithful' has no label column"):
        gp.datasets.load("old_faithful", return_labels=True)
