"""Degenerate data gives finite parameters, never NaN, with the default reg_covar.

Every distinct (N, D, K, covariance_type, dtype, init_params given or not) is a fresh JIT
compile, so the scenarios share shapes where they can: three of them use (N, D, K) =
(12, 2, 3) and run for every covariance type and dtype; the others run for one or two
(type, dtype) pairs by default and for all of them under ``-m slow``.
"""

import numpy as np
import pytest
from conftest import MCLUST_EXTRA_TYPES, unit_covariances

import gmm_ppl as gp

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = ("float32", "float64")
ALL = [(c, d) for c in COVARIANCE_TYPES for d in DTYPES]

rng = np.random.default_rng(20240601)

# Three distinct points, each repeated four times: N = 12, D = 2.
THREE_POINTS = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
DUPLICATES = np.repeat(THREE_POINTS, 4, axis=0)

# The second column is constant.
CONSTANT_COLUMN = np.column_stack([rng.normal(size=12), np.full(12, 5.0)])

# Three unit-variance clusters of four rows, 1e6 standard deviations apart.
FAR_CENTERS = np.array([[0.0, 0.0], [1e6, -1e6], [2e6, 1e6]])
FAR_APART = np.repeat(FAR_CENTERS, 4, axis=0) + rng.normal(size=(12, 2))

# Ten identical rows.
IDENTICAL = np.tile([[1.5, -2.0]], (10, 1))

# Two clusters; the third component of EMPTY_INIT starts far from every row, so the
# first E-step gives it no responsibility at all.
TWO_CLUSTERS = np.concatenate([rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 8.0])
EMPTY_MEANS = np.array([[0.0, 0.0], [8.0, 8.0], [1e3, -1e3]])

# N == K: three distinct rows, three components.
N_EQUALS_K = np.array([[0.0, 1.0], [2.0, -1.0], [5.0, 4.0]])

ONE_FEATURE = np.concatenate([rng.normal(size=(6, 1)), rng.normal(size=(6, 1)) + 6.0])


def empty_component_init(covariance_type):
    K, D = EMPTY_MEANS.shape
    return gp.GMMParams(np.full(K, 1.0 / K), EMPTY_MEANS, unit_covariances(covariance_type, K, D))


# name: (data, K, uses init_params, (type, dtype) pairs run by default)
SCENARIOS = {
    "duplicates-K3": (DUPLICATES, 3, False, ALL),
    "constant-column": (CONSTANT_COLUMN, 3, False, ALL),
    "far-apart": (FAR_APART, 3, False, ALL),
    "duplicates-K4": (DUPLICATES, 4, False, [("tied", "float32"), ("diag", "float64")]),
    "all-identical": (IDENTICAL, 2, False, [("full", "float64"), ("spherical", "float32")]),
    "empty-component": (TWO_CLUSTERS, 3, True, [("full", "float32"), ("diag", "float64")]),
    "N-equals-K": (N_EQUALS_K, 3, False, [("spherical", "float64")]),
    "K-is-1": (CONSTANT_COLUMN, 1, False, [("tied", "float64")]),
    "D-is-1": (ONE_FEATURE, 2, False, [("full", "float32")]),
}


def sweep():
    for name, (_, _, _, fast) in SCENARIOS.items():
        for covariance_type, dtype in ALL:
            marks = () if (covariance_type, dtype) in fast else (pytest.mark.slow,)
            yield pytest.param(name, covariance_type, dtype, marks=marks, id=f"{name}-{covariance_type}-{dtype}")


def fit(name, covariance_type, dtype, **kwargs):
    x, K, uses_init, _ = SCENARIOS[name]
    if uses_init:
        kwargs["init_params"] = empty_component_init(covariance_type)
    return gp.fit_em(x, K, covariance_type=covariance_type, dtype=dtype, **kwargs)


def assert_valid(result, covariance_type, dtype, K, D):
    params = result.params
    weights, means, cov = (np.asarray(a) for a in params)
    for field, value in zip(params._fields, (weights, means, cov), strict=True):
        assert value.dtype == np.dtype(dtype), field
        assert np.all(np.isfinite(value)), f"{field} is not finite: {value}"
    assert weights.shape == (K,)
    assert means.shape == (K, D)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=0, atol=1e-5 if dtype == "float32" else 1e-12)
    cov = cov.astype(np.float64)
    symmetric = {"rtol": 1e-6, "atol": 1e-6 * np.abs(cov).max()}
    covariance_type = gp.covariance.get(covariance_type).family  # mclust's extras: by storage
    if covariance_type == "full":
        assert cov.shape == (K, D, D)
        np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), **symmetric)
        assert np.all(np.linalg.eigvalsh(cov) > 0), np.linalg.eigvalsh(cov)
    elif covariance_type == "tied":
        assert cov.shape == (D, D)
        np.testing.assert_allclose(cov, cov.T, **symmetric)
        assert np.all(np.linalg.eigvalsh(cov) > 0), np.linalg.eigvalsh(cov)
    else:
        assert cov.shape == ((K, D) if covariance_type == "diag" else (K,))
        assert np.all(cov > 0), cov
    assert np.isfinite(float(result.log_likelihood))
    assert np.isfinite(float(result.objective))


@pytest.mark.parametrize("name, covariance_type, dtype", list(sweep()))
def test_degenerate_data_gives_finite_parameters(name, covariance_type, dtype):
    x, K, _, _ = SCENARIOS[name]
    result = fit(name, covariance_type, dtype)
    assert_valid(result, covariance_type, dtype, K, x.shape[1])


@pytest.mark.parametrize("covariance_type, dtype", ALL)
def test_all_identical_rows_with_three_components(covariance_type, dtype):
    # Same (N, D, K) as the three scenarios run for every type: no extra compile.
    x = np.tile([[-4.0, 7.0]], (12, 1))
    result = gp.fit_em(x, 3, covariance_type=covariance_type, dtype=dtype)
    assert_valid(result, covariance_type, dtype, 3, 2)
    np.testing.assert_allclose(np.asarray(result.params.means), np.tile([[-4.0, 7.0]], (3, 1)), atol=1e-5)


@pytest.mark.parametrize("covariance_type, dtype", ALL)
def test_far_apart_clusters_are_found(covariance_type, dtype):
    result = fit("far-apart", covariance_type, dtype)  # compiled by the sweep already
    means = np.asarray(result.params.means, dtype=np.float64)
    order = np.argsort(means[:, 0])
    cluster_means = FAR_APART.reshape(3, 4, 2).mean(axis=1)
    np.testing.assert_allclose(means[order], cluster_means, rtol=0, atol=0.5)
    np.testing.assert_allclose(np.asarray(result.params.weights)[order], np.full(3, 1 / 3), atol=1e-4)


@pytest.mark.parametrize("covariance_type, dtype", SCENARIOS["empty-component"][3])
def test_empty_component_keeps_its_mean_and_gets_reg_covar(covariance_type, dtype):
    result = fit("empty-component", covariance_type, dtype)
    weights = np.asarray(result.params.weights, dtype=np.float64)
    means = np.asarray(result.params.means, dtype=np.float64)
    assert weights[2] < 1e-5
    np.testing.assert_allclose(means[2], EMPTY_MEANS[2], rtol=1e-6)
    if covariance_type == "full":
        np.testing.assert_allclose(np.asarray(result.params.covariances)[2], 1e-6 * np.eye(2), rtol=1e-3)
    elif covariance_type == "diag":
        np.testing.assert_allclose(np.asarray(result.params.covariances)[2], [1e-6, 1e-6], rtol=1e-3)


@pytest.mark.parametrize("covariance_type, dtype", SCENARIOS["all-identical"][3])
def test_zero_reg_covar_on_identical_rows_raises(covariance_type, dtype):
    # reg_covar is not static: this reuses the compile of the all-identical scenario.
    with pytest.raises(FloatingPointError, match="reg_covar > 0"):
        gp.fit_em(IDENTICAL, 2, covariance_type=covariance_type, dtype=dtype, reg_covar=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type, dtype", [p for p in ALL if p not in SCENARIOS["all-identical"][3]])
def test_zero_reg_covar_on_identical_rows_raises_sweep(covariance_type, dtype):
    with pytest.raises(FloatingPointError, match="reg_covar > 0"):
        gp.fit_em(IDENTICAL, 2, covariance_type=covariance_type, dtype=dtype, reg_covar=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["duplicates-K3", "constant-column", "far-apart", "all-identical"])
@pytest.mark.parametrize("covariance_type", MCLUST_EXTRA_TYPES)
def test_mclust_structures_on_degenerate_data(name, covariance_type):
    """EII, EEI, EVI, EVV: finite, positive-definite fits on the same degenerate data (EVI
    and EVV fall back to a unit shape for a component whose scatter is singular)."""
    x, K, _, _ = SCENARIOS[name]
    result = gp.fit_em(x, K, covariance_type=covariance_type, dtype="float64")
    assert_valid(result, covariance_type, "float64", K, x.shape[1])
