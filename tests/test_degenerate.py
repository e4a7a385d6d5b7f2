"""Degenerate data gives finite parameters, never NaN, with the default reg_covar, and where
the maximum-likelihood answer is known by hand, that answer (see ``assert_known_answer``).

Every distinct (N, D, K, covariance_type, dtype, init_params given or not) is a fresh JIT
compile, so the scenarios share shapes where they can: three of them use (N, D, K) =
(12, 2, 3) and run for every covariance type and dtype; the others run for one or two
(type, dtype) pairs by default and for all of them under ``-m slow``.
"""

import numpy as np
import pytest
from conftest import MCLUST_EXTRA_TYPES, as_full, unit_covariances
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import gmm_ppl as gp

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = ("float32", "float64")
REG_COVAR = 1e-6  # fit_em's default
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


# -- the known answers -----------------------------------------------------------------------
#
# Tolerances: ``eps`` is the dtype's machine epsilon. A value computed from data of magnitude
# |x| by a few sums and divisions carries a few roundings of eps |x|: 8 eps |x| allows for
# them. A covariance that is reg_covar * I because the scatter is exactly zero (every row of
# the component equals its mean, and EM takes moments around the current means) is reg_covar
# rounded to the dtype: 2 eps reg_covar.


def eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_reg_covar_identity(full, dtype):
    """Every (D, D) matrix is reg_covar * I: the covariance of a component whose rows all
    equal its mean (or of a component with no rows)."""
    expected = np.broadcast_to(REG_COVAR * np.eye(full.shape[-1]), full.shape)
    np.testing.assert_allclose(full, expected, rtol=0, atol=2 * eps(dtype) * REG_COVAR)


def assert_components_on_the_distinct_points(x, weights, means, full, dtype):
    """Data made of repeated points: the maximum-likelihood mixture puts every component on one
    of the distinct points (k-means++ picks K distinct points while there are some left: a
    point already chosen is at distance 0, probability 0; then each point's rows have all
    their responsibility on the components sitting on it, whose densities are ~e^-(1e6) at
    the others). So each mean is a point, every point has a component, the weights of a
    point's components add up to its share of the rows, and every covariance is
    reg_covar * I."""
    points, counts = np.unique(x, axis=0, return_counts=True)
    owner = np.linalg.norm(means[:, None] - points[None], axis=-1).argmin(axis=1)
    np.testing.assert_allclose(means, points[owner], rtol=0, atol=8 * eps(dtype) * np.abs(x).max())
    assert set(owner) == set(range(len(points))), f"a point has no component: {means}"
    shares = np.bincount(owner, weights=weights, minlength=len(points))
    np.testing.assert_allclose(shares, counts / len(x), rtol=0, atol=8 * eps(dtype))
    assert_reg_covar_identity(full, dtype)


def assert_constant_column(means, full, covariance_type, dtype):
    """Column 1 is the constant 5: every mean holds 5 there; the column has no spread, so no
    covariance with column 0 and (where the structure gives it a variance of its own, not
    one shared with column 0 as in spherical and EII) variance reg_covar."""
    np.testing.assert_allclose(means[:, 1], 5.0, rtol=8 * eps(dtype))
    np.testing.assert_allclose(full[:, 0, 1], 0.0, rtol=0, atol=2 * eps(dtype) * REG_COVAR)
    if covariance_type not in ("spherical", "VII", "EII"):
        np.testing.assert_allclose(full[:, 1, 1], REG_COVAR, rtol=2 * eps(dtype))


def assert_far_apart_groups(weights, means, full, covariance_type, dtype):
    """The groups are 1e6 standard deviations apart: every responsibility is 0 or 1, so the
    fit is the groups' own statistics (weights 1/3, group means, biased covariances plus
    reg_covar: pooled for 'tied', averaged over features for 'spherical'), of the rows as
    the dtype holds them.

    Means: two spacings of the largest value (0.25 at 2e6 in float32: all a float32 mean
    holds there). A covariance taken around a mean off by delta is off by delta^2 (0.0625 in
    float32; measured 0.007), plus, in float64, round-off of deviations taken from values of
    2e6: 10 eps |x|."""
    x = FAR_APART.astype(dtype).astype(np.float64)
    groups = np.repeat(np.arange(3), 4)
    order = np.argsort(means[:, 0])  # the groups are in increasing order of the first column
    group_means = np.stack([x[groups == k].mean(axis=0) for k in range(3)])
    deviations = x - group_means[groups]
    scatter = np.einsum("nd,ne->nde", deviations, deviations)
    group_cov = np.stack([scatter[groups == k].mean(axis=0) for k in range(3)])
    expected = {
        "full": group_cov,
        "tied": np.broadcast_to(scatter.mean(axis=0), (3, 2, 2)),
        "diag": group_cov * np.eye(2),
        "spherical": np.trace(group_cov, axis1=1, axis2=2)[:, None, None] / 2 * np.eye(2),
    }[gp.covariance.get(covariance_type).family] + REG_COVAR * np.eye(2)
    mean_atol = 2 * float(np.spacing(np.abs(x).max().astype(dtype)))
    np.testing.assert_allclose(weights[order], np.full(3, 1 / 3), rtol=0, atol=8 * eps(dtype))
    np.testing.assert_allclose(means[order], group_means, rtol=0, atol=mean_atol)
    cov_atol = mean_atol**2 + 10 * eps("float64") * np.abs(x).max()
    np.testing.assert_allclose(full[order], expected, rtol=0, atol=cov_atol)


def assert_known_answer(name, result, covariance_type, dtype):
    x, K, _, _ = SCENARIOS[name]
    weights = np.asarray(result.params.weights, np.float64)
    means = np.asarray(result.params.means, np.float64)
    full = as_full(result.params, covariance_type)
    if name in ("duplicates-K3", "duplicates-K4", "all-identical", "N-equals-K"):
        assert_components_on_the_distinct_points(x, weights, means, full, dtype)
    elif name == "constant-column":
        assert_constant_column(means, full, covariance_type, dtype)
    elif name == "far-apart":
        assert_far_apart_groups(weights, means, full, covariance_type, dtype)
    elif name == "empty-component":
        assert_empty_component(x, weights, means, full, covariance_type, dtype)
    elif name == "K-is-1":
        # One component: the sample mean and the biased sample covariance, plus reg_covar
        # (diag keeps the diagonal; spherical averages it). Column 1 is constant.
        expected = np.cov(x.T, bias=True)
        family = gp.covariance.get(covariance_type).family
        if family == "diag":
            expected = np.diag(np.diag(expected))
        elif family == "spherical":
            expected = np.trace(expected) / 2 * np.eye(2)
        np.testing.assert_allclose(weights, [1.0], rtol=0, atol=8 * eps(dtype))
        np.testing.assert_allclose(means[0], x.mean(axis=0), rtol=0, atol=8 * eps(dtype) * np.abs(x).max())
        spread = np.abs(x - x.mean(axis=0)).max() ** 2
        np.testing.assert_allclose(full[0], expected + REG_COVAR * np.eye(2), rtol=0, atol=8 * eps(dtype) * spread)
    elif name == "D-is-1":
        assert_d_is_1(x, weights, means, full, covariance_type, dtype, float(result.log_likelihood))
    else:
        raise AssertionError(f"no known answer for {name}")


def assert_empty_component(x, weights, means, full, covariance_type, dtype):
    """Component 2 starts 1e3 away from every row: its responsibility underflows to exactly 0
    in the first E-step and stays 0. The M-step then leaves its mean where it started (a zero
    shift), gives it covariance reg_covar * I (no scatter; with 'tied' it shares the pooled
    covariance, which the comparison below checks) and weight 10 eps / N: the
    10 eps rows that scikit-learn's M-step adds to every component's count, over the N
    rows (1.9e-16 for these 12 rows in float64, 9.9e-8 in float32).

    Components 0 and 1 are then a two-component fit: the scikit-learn fit of the two clusters
    from the same start (equal weights, unit covariances; the third component scales both
    starting weights alike, which leaves the responsibilities unchanged), to round-off."""
    N = len(x)
    np.testing.assert_allclose(weights[2], 10 * eps(dtype) / N, rtol=1e-5)  # (N + 30 eps) rounds
    np.testing.assert_array_equal(means[2], EMPTY_MEANS[2])
    family = gp.covariance.get(covariance_type).family
    if family != "tied":  # a tied covariance stays shared: the pooled scatter of all rows
        assert_reg_covar_identity(full[2:], dtype)
    theirs = SkGaussianMixture(
        2,
        covariance_type=family,
        weights_init=[0.5, 0.5],
        means_init=EMPTY_MEANS[:2],
        precisions_init=unit_covariances(covariance_type, 2, 2),
        reg_covar=REG_COVAR,
    ).fit(x)
    # Round-off of 12 rows over three EM iterations, summed in another order and, in
    # scikit-learn, through Cholesky factors: measured 5e-8 (float32) and 1e-14 (float64) of
    # each parameter's scale; 1e-5 and 1e-12 leave two orders of magnitude.
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(weights[:2] / weights[:2].sum(), theirs.weights_, rtol=0, atol=rtol)
    np.testing.assert_allclose(means[:2], theirs.means_, rtol=0, atol=rtol * np.abs(theirs.means_).max())
    their_full = as_full(gp.GMMParams(theirs.weights_, theirs.means_, theirs.covariances_), family)
    np.testing.assert_allclose(full[:2], their_full, rtol=0, atol=rtol * np.abs(their_full).max())


# D-is-1 runs EM to a tight tol (not static: no extra compile), so that it ends at the maximum
# scikit-learn finds, not a tol-sized step short of it.
TIGHT_TOL = 1e-10


def assert_d_is_1(x, weights, means, full, covariance_type, dtype, mean_log_lik):
    """Two groups 6 standard deviations apart on one feature: the global maximum, found by
    scikit-learn's best of 10 restarts run to tol=1e-12. EM stops when an iteration gains
    less than tol; at a linear rate r <= 0.9 what is left is below 10 tol. Round-off of a
    12-row float32 objective is about 16 eps |log-likelihood|. The objective is flat at the
    maximum: a gap d allows parameters off by about sqrt(d) (sd 1 here), so 1e-3 in
    parameters (measured 1e-4)."""
    family = gp.covariance.get(covariance_type).family
    theirs = SkGaussianMixture(2, covariance_type=family, n_init=10, tol=1e-12, max_iter=1000, random_state=0).fit(x)
    theirs_loglik = theirs.score(x)
    np.testing.assert_allclose(
        mean_log_lik, theirs_loglik, rtol=0, atol=max(10 * TIGHT_TOL, 16 * eps(dtype) * abs(theirs_loglik))
    )
    order, their_order = np.argsort(means[:, 0]), np.argsort(theirs.means_[:, 0])
    their_full = as_full(gp.GMMParams(theirs.weights_, theirs.means_, theirs.covariances_), family)
    np.testing.assert_allclose(weights[order], theirs.weights_[their_order], rtol=0, atol=1e-3)
    np.testing.assert_allclose(means[order], theirs.means_[their_order], rtol=0, atol=1e-3)
    np.testing.assert_allclose(full[order], their_full[their_order], rtol=0, atol=1e-3)


@pytest.mark.parametrize("name, covariance_type, dtype", list(sweep()))
def test_degenerate_data_gives_the_known_finite_fit(name, covariance_type, dtype):
    x, K, _, _ = SCENARIOS[name]
    result = fit(name, covariance_type, dtype, **({"tol": TIGHT_TOL} if name == "D-is-1" else {}))
    assert_valid(result, covariance_type, dtype, K, x.shape[1])
    assert_known_answer(name, result, covariance_type, dtype)


@pytest.mark.parametrize("covariance_type, dtype", ALL)
def test_all_identical_rows_with_three_components(covariance_type, dtype):
    # Same (N, D, K) as the three scenarios run for every type: no extra compile.
    x = np.tile([[-4.0, 7.0]], (12, 1))
    result = gp.fit_em(x, 3, covariance_type=covariance_type, dtype=dtype)
    assert_valid(result, covariance_type, dtype, 3, 2)
    weights, means = (np.asarray(a, np.float64) for a in result.params[:2])
    assert_components_on_the_distinct_points(x, weights, means, as_full(result.params, covariance_type), dtype)


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
@pytest.mark.parametrize("name", ["duplicates-K3", "constant-column", "far-apart", "all-identical", "empty-component"])
@pytest.mark.parametrize("covariance_type", MCLUST_EXTRA_TYPES)
def test_mclust_structures_on_degenerate_data(name, covariance_type):
    """EII, EEI, EVI, EVV, EEV: finite, positive-definite fits on the same degenerate data,
    with the known answer where the structure does not change it: components on the distinct
    points with covariance reg_covar * I, the constant column's mean, variance and covariance,
    the far-apart groups' weights and means (their covariances are the structure's own
    pooling of the groups' scatter), and an emptied component's mean and weight (its
    covariance takes the volume the components share, not reg_covar * I)."""
    x, K, _, _ = SCENARIOS[name]
    result = fit(name, covariance_type, "float64")
    assert_valid(result, covariance_type, "float64", K, x.shape[1])
    weights, means = (np.asarray(a, np.float64) for a in result.params[:2])
    full = as_full(result.params, covariance_type)
    if name in ("duplicates-K3", "all-identical"):
        assert_components_on_the_distinct_points(x, weights, means, full, "float64")
    elif name == "constant-column":
        assert_constant_column(means, full, covariance_type, "float64")
    elif name == "far-apart":
        order = np.argsort(means[:, 0])
        np.testing.assert_allclose(weights[order], np.full(3, 1 / 3), rtol=0, atol=8 * eps("float64"))
        group_means = FAR_APART.reshape(3, 4, 2).mean(axis=1)
        np.testing.assert_allclose(means[order], group_means, rtol=0, atol=2 * float(np.spacing(2e6)))
    else:  # see assert_empty_component
        np.testing.assert_allclose(weights[2], 10 * eps("float64") / len(x), rtol=1e-5)
        np.testing.assert_array_equal(means[2], EMPTY_MEANS[2])
