"""Numerical extremes (issue 8): EM, the estimator and NUTS on data at the edges of what
floating point holds — K=1, D=1, N == K, clusters 1e6 standard deviations apart, scales
1e-8 and 1e8, a constant column, a row duplicated many times, float32 data offset by 1e6,
and a component that empties mid-fit.

The oracle for most cases needs no EM: every data set is made of labelled groups so far
apart (at least 20 standard deviations, a log-odds above 140) that the maximum-likelihood
mixture *is* the groups' own sample statistics — weights n_k / N, the group means, the
groups' biased covariances (pooled for 'tied', averaged over features for 'spherical')
plus ``reg_covar`` on the diagonal. It is computed here in float64 NumPy and SciPy, and EM
(whose start, k-means++ or given means, separates such groups exactly) must reproduce it.

Compiles dominate the time: the cases share (N, D, K) = (40, 2, 2) where they can, and
the estimator runs with the settings of ``fit_em``'s default program (one k-means++
start, tol 1e-3, 100 iterations), so it reuses the programs the EM sweep compiled.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from conftest import as_full as full_covariances
from conftest import scipy_log_joint, unit_covariances
from scipy.special import logsumexp

import gmm_ppl as gp

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = ("float32", "float64")
REG_COVAR = 1e-6  # fit_em's and GaussianMixture's default
SEPARATION = 20.0  # between the two groups of the basic data, in units of their spread


def basic_groups(n_features=2, seed=0, sizes=(20, 20)):
    """Two groups of rows with different shapes, SEPARATION apart along the first axis."""
    rng = np.random.default_rng(seed)
    shape = np.array([[1.0, 0.0], [0.4, 0.8]])[:n_features, :n_features]
    first = rng.normal(size=(sizes[0], n_features)) @ shape.T
    second = rng.normal(size=(sizes[1], n_features)) * 0.5
    second[:, 0] += SEPARATION
    return np.concatenate([first, second]), np.repeat([0, 1], sizes)


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the extremes table.

    build: () -> (x, groups); ``groups`` labels each row by the component that must take it,
      or is None where the data do not determine the assignment.
    n_components: K.
    reg_covar: passed to EM.
    oracle: whether the fit must equal the groups' own statistics (see the module docstring).
    init: a function of the covariance type giving starting GMMParams, or None for k-means++.
    means_init: starting means instead (the cases with a shape of their own: a given start
      compiles in half the time of k-means++, which test_degenerate runs on such shapes).
    dtypes: those run. The cases with (N, D, K) = (40, 2, 2) run both (one compile per type
      and dtype serves them all); each other case costs a compile per type and dtype, and
      runs one.
    """

    build: Callable[[], tuple[np.ndarray, np.ndarray | None]]
    n_components: int = 2
    reg_covar: float = REG_COVAR
    oracle: bool = True
    init: Callable[[str], gp.GMMParams] | None = None
    means_init: np.ndarray | None = None
    dtypes: tuple[str, ...] = DTYPES


def offset_float32():
    # The data as a float32 user holds them: the rows themselves are float32 values near
    # 1e6 (spacing 0.0625), so the oracle is taken of exactly these values.
    x, groups = basic_groups(seed=5)
    return (x + 1e6).astype(np.float32), groups


def far_apart():
    # Unit-spread groups 1e6 standard deviations apart (the basic data's second group moved).
    x, groups = basic_groups(seed=2)
    x[groups == 1, 0] += 1e6 - SEPARATION
    return x, groups


def constant_column():
    x, groups = basic_groups(seed=3)
    x[:, 1] = 5.0
    return x, groups


def duplicated_row():
    # One row repeated 30 times beside a group of 10: the ML fit puts a component on the
    # repeated row with covariance reg_covar * I (mclust would call it singular).
    x, groups = basic_groups(seed=4, sizes=(30, 10))
    x[groups == 0] = x[0]
    return x, groups


def n_equals_k():
    return np.array([[0.0, 1.0], [3.0, -1.0]]), np.array([0, 1])


# Point-symmetric data: group B is group A reflected through (5, 0). A third component
# starts at the centre (5, 0) broad (covariance 25) with half the weight, so it takes
# about 1.9 rows of responsibility at the start; once the two groups' components tighten,
# it loses them. By the symmetry its mean stays at (5, 0).
_HALF = np.random.default_rng(6).normal(size=(20, 2)) * 0.05
EMPTYING_CENTRE = np.array([5.0, 0.0])
EMPTYING_DATA = np.concatenate([_HALF, 2 * EMPTYING_CENTRE - _HALF])


def emptying_start(covariance_type):
    unit = unit_covariances(covariance_type, 3, 2)
    if covariance_type == "tied":
        covariances = 4.0 * unit
    else:
        covariances = unit * np.array([1.0, 1.0, 25.0]).reshape((3,) + (1,) * (unit.ndim - 1))
    return gp.GMMParams(np.array([0.25, 0.25, 0.5]), np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 0.0]]), covariances)


CASES = {
    # float64, the estimator's default: the sample mean and covariance to 1e-9.
    "K=1": Case(
        lambda: (basic_groups()[0], np.zeros(40, int)), n_components=1, means_init=np.zeros((1, 2)), dtypes=("float64",)
    ),
    "D=1": Case(lambda: basic_groups(n_features=1, seed=1), means_init=np.array([[5.0], [15.0]]), dtypes=("float32",)),
    # Starting means away from both rows: the nearest-centre start gives each row its own.
    "N=K": Case(n_equals_k, means_init=np.array([[1.0, 0.0], [2.0, 0.0]]), dtypes=("float32",)),
    "far-apart-1e6-sd": Case(far_apart),
    "scale-1e8": Case(lambda: (basic_groups(seed=7)[0] * 1e8, basic_groups(seed=7)[1])),
    # reg_covar is absolute (scikit-learn's convention): scaled with the data, the fit is the
    # unit-scale fit mapped back.
    "scale-1e-8-reg-scaled": Case(lambda: (basic_groups(seed=7)[0] * 1e-8, basic_groups(seed=7)[1]), reg_covar=1e-22),
    # With the default reg_covar = 1e-6, 1e10 times the data's variance, every covariance is
    # reg_covar * I and the groups are not resolved.
    "scale-1e-8-default-reg": Case(lambda: (basic_groups(seed=7)[0] * 1e-8, None), oracle=False),
    "constant-column": Case(constant_column),
    "row-duplicated-30x": Case(duplicated_row),
    "float32-offset-1e6": Case(offset_float32),
    "empties-mid-fit": Case(
        lambda: (EMPTYING_DATA, np.repeat([0, 1], 20)),
        n_components=3,
        oracle=False,
        init=emptying_start,
        dtypes=("float32",),  # float32 underflows first
    ),
}


def sweep():
    for name, case in CASES.items():
        for covariance_type in COVARIANCE_TYPES:
            for dtype in case.dtypes:
                yield pytest.param(name, covariance_type, dtype, id=f"{name}-{covariance_type}-{dtype}")


# -- the oracle: the groups' own statistics, in float64 NumPy -------------------------------


def group_oracle(x, groups, covariance_type, reg_covar):
    """The ML mixture of perfectly separated groups: GMMParams in the covariance type's shape."""
    x = np.asarray(x, np.float64)
    K, D = groups.max() + 1, x.shape[1]
    counts = np.bincount(groups, minlength=K)
    means = np.stack([x[groups == k].mean(axis=0) for k in range(K)])
    scatter = np.stack([(x[groups == k] - means[k]).T @ (x[groups == k] - means[k]) for k in range(K)])
    full = scatter / counts[:, None, None]
    covariances = {
        "full": full + reg_covar * np.eye(D),
        "tied": scatter.sum(axis=0) / len(x) + reg_covar * np.eye(D),
        "diag": np.diagonal(full, axis1=1, axis2=2) + reg_covar,
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1) + reg_covar,
    }[covariance_type]
    return gp.GMMParams(counts / len(x), means, covariances)


def as_full(covariances, covariance_type, K, D):
    """(K, D, D) float64 covariance matrices of any covariance type (conftest's, from the arrays alone)."""
    return full_covariances(gp.GMMParams(None, np.zeros((K, D)), covariances), covariance_type)


def scipy_log_density(params, x, covariance_type):
    """(N,) log p(x_i) of a mixture, by SciPy in float64, rows centred first (exact for an
    offset: the density depends on x - mu only)."""
    weights, means = np.asarray(params.weights, np.float64), np.asarray(params.means, np.float64)
    K, D = means.shape
    centre = means.mean(axis=0)
    x = np.asarray(x, np.float64) - centre
    full = as_full(params.covariances, covariance_type, K, D)
    return logsumexp(scipy_log_joint(x, weights, means - centre, full), axis=1)


# -- checks shared by EM and the estimator --------------------------------------------------


def tolerances(x, spread, dtype, narrowest=None):
    """(absolute tolerance on means, tolerance on covariances relative to each component's
    largest entry, on the mean log-likelihood relative to max(1, |value|)), for data whose
    groups have standard deviations up to ``spread`` and down to ``narrowest``.

    float32 holds a row only to the spacing of its magnitude, and EM centres the rows on
    their mean, so it sees them to the spacing of their distance from that mean:
    ``resolution`` is that spacing in units of the groups' spread (1e-7 for most cases,
    0.03 for groups 1e6 apart), and a covariance moves by at most twice that, relatively.
    The returned float32 means are rounded to the spacing of their magnitude (0.0625 at
    1e6); at the maximum that lowers the log-likelihood by up to D/2 (spacing/narrowest)^2.
    """
    x = np.asarray(x, np.float64)
    if dtype == "float64":
        return 1e-9 * spread + 8 * float(np.spacing(np.abs(x).max())), 1e-8, 1e-8
    resolution = float(np.spacing(np.float32(np.abs(x - x.mean(axis=0)).max()))) / spread
    mean_spacing = float(np.spacing(np.float32(np.abs(x).max())))
    rounding = 0.5 * x.shape[1] * (mean_spacing / (narrowest or spread)) ** 2
    # Means: two float32 spacings of the largest value (0.125 at 1e6: all a float32 mean holds).
    mean_atol = 2 * mean_spacing + spread * (1e-5 + 2 * resolution)
    return mean_atol, 1e-4 + 2 * resolution, 1e-4 + resolution + rounding


def match_components(means, reference_means):
    """Permutation p with means[p[k]] nearest to reference_means[k] (a bijection, asserted)."""
    distance = np.linalg.norm(np.asarray(means, np.float64)[None] - reference_means[:, None], axis=-1)
    order = distance.argmin(axis=1)
    assert sorted(order) == list(range(len(reference_means))), f"components do not match groups: {distance}"
    return order


def assert_valid(weights, means, covariances, covariance_type, dtype, K, D):
    """Finite parameters of the right dtype and shape, weights on the simplex, covariances
    symmetric positive definite."""
    for name, value in (("weights", weights), ("means", means), ("covariances", covariances)):
        value = np.asarray(value)
        assert value.dtype == np.dtype(dtype), name
        assert np.all(np.isfinite(value)), f"{name} not finite: {value}"
    assert np.shape(weights) == (K,) and np.shape(means) == (K, D)
    assert np.all(np.asarray(weights) >= 0)
    np.testing.assert_allclose(np.sum(weights, dtype=np.float64), 1.0, atol=1e-5 if dtype == "float32" else 1e-12)
    full = as_full(covariances, covariance_type, K, D)
    np.testing.assert_allclose(full, np.swapaxes(full, -1, -2), rtol=1e-6, atol=1e-6 * np.abs(full).max())
    assert np.all(np.linalg.eigvalsh(full) > 0), np.linalg.eigvalsh(full)


def assert_responsibilities(resp, groups, dtype, certainty=1 - 1e-6):
    """Finite, summing to one; with groups, the most probable component is the row's group
    under one fixed relabelling, with probability at least ``certainty``."""
    resp = np.asarray(resp, np.float64)
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-5 if dtype == "float32" else 1e-12)
    if groups is not None and resp.shape[1] > 1:
        labels = resp.argmax(axis=1)
        for g in np.unique(groups):
            assert len(np.unique(labels[groups == g])) == 1, f"group {g} split over components"
        assert len(np.unique(labels)) == len(np.unique(groups)), "two groups share a component"
        assert resp.max(axis=1).min() > certainty


def assert_case(name, weights, means, covariances, covariance_type, dtype, mean_log_lik):
    """The case's expected fit: the group oracle, or the case's own behaviour."""
    case = CASES[name]
    x, groups = case.build()
    x = x.astype(dtype)  # the values EM sees
    K, D = case.n_components, x.shape[1]
    weights, means = np.asarray(weights, np.float64), np.asarray(means, np.float64)
    if case.oracle:
        expected = group_oracle(x, groups, covariance_type, case.reg_covar)
        variances = np.diagonal(as_full(expected.covariances, covariance_type, K, D), axis1=1, axis2=2)
        spread, narrowest = np.sqrt(variances.max()), np.sqrt(variances.min())
    else:
        spread = narrowest = float(np.asarray(x, np.float64).std(axis=0).max())
    mean_atol, cov_rtol, loglik_atol = tolerances(x, spread, dtype, narrowest)
    if case.oracle:
        order = match_components(means, expected.means)
        np.testing.assert_allclose(weights[order], expected.weights, atol=1e-6 if dtype == "float32" else 1e-12)
        np.testing.assert_allclose(means[order], expected.means, rtol=0, atol=mean_atol)
        got = as_full(covariances, covariance_type, K, D)[order]
        want = as_full(expected.covariances, covariance_type, K, D)
        # Relative to each component's largest entry, so 1e-8-scale covariances are held to it.
        scale = np.abs(want).max(axis=(1, 2), keepdims=True)
        assert np.all(np.abs(got - want) <= cov_rtol * scale), (got, want)
        expected_loglik = scipy_log_density(expected, x, covariance_type).mean()
        np.testing.assert_allclose(
            mean_log_lik, expected_loglik, rtol=0, atol=loglik_atol * max(1, abs(expected_loglik))
        )
    if name == "constant-column":
        # The constant column has variance reg_covar exactly (spherical: averaged in) and no
        # covariance with the other column; its mean is the constant.
        full = as_full(covariances, covariance_type, K, D)
        if covariance_type != "spherical":
            # "Exactly": reg_covar in the fit's dtype, to a few units in its last place.
            np.testing.assert_allclose(full[:, 1, 1], np.asarray(REG_COVAR, dtype), rtol=4 * np.finfo(dtype).eps)
            np.testing.assert_allclose(full[:, 0, 1], 0.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(means[:, 1], 5.0, rtol=1e-7)
    elif name == "float32-offset-1e6":
        # Against the float64 oracle of the rows before they were offset and rounded to float32:
        # each row moved by at most h, half a float32 spacing at 1e6, so a mean moves by at
        # most h and a covariance entry by at most 2 h mean|deviation| + h^2.
        exact, _ = basic_groups(seed=5)
        expected = group_oracle(exact, groups, covariance_type, case.reg_covar)
        h = float(np.spacing(np.float32(1e6))) / 2
        deviation = np.abs(exact - expected.means[groups]).mean()
        order = match_components(means - 1e6, expected.means)
        np.testing.assert_allclose(means[order] - 1e6, expected.means, rtol=0, atol=h + mean_atol)
        np.testing.assert_allclose(
            as_full(covariances, covariance_type, K, D)[order],
            as_full(expected.covariances, covariance_type, K, D),
            rtol=0,
            atol=2 * h * deviation + h**2 + 1e-4,
        )
    elif name == "far-apart-1e6-sd" and dtype == "float32":
        # The documentation's "covariances agree to about 1e-2" (tolerances() allows twice the
        # resolution, 0.07; measured at most 2.9e-3), relative to each component's largest entry.
        got = as_full(covariances, covariance_type, K, D)[order]
        want = as_full(expected.covariances, covariance_type, K, D)
        assert np.all(np.abs(got - want) <= 1e-2 * np.abs(want).max(axis=(1, 2), keepdims=True)), (got, want)
    elif name == "scale-1e-8-default-reg":
        # reg_covar is absolute: it swamps the data's 1e-16 variances.
        full = as_full(covariances, covariance_type, K, D)
        np.testing.assert_allclose(full, np.broadcast_to(REG_COVAR * np.eye(D), full.shape), rtol=0, atol=1e-12)
        assert np.all((means >= x.min(axis=0) - 1e-9) & (means <= x.max(axis=0) + 1e-9))
        # log N(x | m, reg_covar I) with |x - m|^2 / reg_covar ~ 1e-10: the normaliser alone.
        np.testing.assert_allclose(mean_log_lik, -0.5 * D * np.log(2 * np.pi * REG_COVAR), atol=1e-5)
    elif name == "empties-mid-fit":
        start = case.init(covariance_type)
        start_mass = gp.responsibilities(start, x, covariance_type)[:, 2].sum()
        assert start_mass > 1.0, start_mass  # it held rows at the start
        assert weights[2] < 1e-4, weights  # and lost them
        np.testing.assert_allclose(means[2], EMPTYING_CENTRE, atol=1e-3)
        np.testing.assert_allclose(weights[:2], 0.5, atol=1e-4)
        assert np.isfinite(mean_log_lik)


def certainty(name):
    # An emptied component keeps a sliver (1e-4) of the rows nearest to it; elsewhere the
    # groups are 20 standard deviations apart and responsibilities are 0 or 1 to round-off.
    return 0.999 if name == "empties-mid-fit" else 1 - 1e-6


# -- EM ---------------------------------------------------------------------------------------


def fit_case(name, covariance_type, dtype):
    case = CASES[name]
    x, _ = case.build()
    init = None if case.init is None else case.init(covariance_type)
    return gp.fit_em(
        x,
        case.n_components,
        covariance_type=covariance_type,
        dtype=dtype,
        reg_covar=case.reg_covar,
        init_params=init,
        means_init=case.means_init,
    )


@pytest.mark.parametrize("name, covariance_type, dtype", list(sweep()))
def test_em_extremes(name, covariance_type, dtype):
    case = CASES[name]
    x, groups = case.build()
    fit = fit_case(name, covariance_type, dtype)
    weights, means, covariances = fit.params
    assert_valid(weights, means, covariances, covariance_type, dtype, case.n_components, x.shape[1])
    assert np.isfinite(fit.log_likelihood) and np.isfinite(fit.objective)
    assert_responsibilities(gp.responsibilities(fit.params, x, covariance_type), groups, dtype, certainty(name))
    assert_case(name, weights, means, covariances, covariance_type, dtype, float(fit.log_likelihood))
    if name == "float32-offset-1e6":
        # fit.log_likelihood is that of the parameters before their means were rounded to
        # float32 (spacing 2h = 0.0625 at 1e6); a mean moved by at most h lowers the mean
        # log-likelihood by at most D/2 (h / sigma_min)^2 (docs: measured up to 1.7e-3).
        returned = scipy_log_density(fit.params, x.astype(dtype), covariance_type).mean()
        h = float(np.spacing(np.float32(1e6))) / 2
        sigma_min = np.sqrt(np.linalg.eigvalsh(as_full(covariances, covariance_type, case.n_components, 2)).min())
        bound = 0.5 * x.shape[1] * (h / sigma_min) ** 2
        assert -1e-4 <= float(fit.log_likelihood) - returned <= bound


# -- the scikit-learn estimator ---------------------------------------------------------------


def precisions_of(params, covariance_type):
    c = np.asarray(params.covariances, np.float64)
    return np.linalg.inv(c) if covariance_type in ("full", "tied") else 1.0 / c


@pytest.mark.parametrize("name, covariance_type, dtype", list(sweep()))
def test_estimator_extremes(name, covariance_type, dtype):
    case = CASES[name]
    x, groups = case.build()
    K, D = case.n_components, x.shape[1]
    start = {}
    if case.init is not None:
        init = case.init(covariance_type)
        start = {
            "weights_init": init.weights,
            "means_init": init.means,
            "precisions_init": precisions_of(init, covariance_type),
        }
    elif case.means_init is not None:
        start = {"means_init": case.means_init}
    # k-means++ with one start: fit_em's default program, compiled by the EM sweep already.
    gm = gp.GaussianMixture(
        K,
        covariance_type=covariance_type,
        init_params="k-means++",
        reg_covar=case.reg_covar,
        dtype=dtype,
        random_state=0,
        **start,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning, no RuntimeWarning from NumPy
        gm.fit(x)
        proba = gm.predict_proba(x)
        log_density = gm.score_samples(x)
        bic = gm.bic(x)
        drawn, labels = gm.sample(50)
    assert gm.converged_
    assert_valid(gm.weights_, gm.means_, gm.covariances_, covariance_type, dtype, K, D)
    assert np.all(np.isfinite(gm.precisions_cholesky_)) and np.all(np.isfinite(gm.precisions_))
    assert_responsibilities(proba, groups, dtype, certainty(name))
    np.testing.assert_array_equal(gm.predict(x), proba.argmax(axis=1))
    # score_samples is the fitted mixture's density, evaluated accurately whatever the offset.
    own = gp.GMMParams(gm.weights_, gm.means_, gm.covariances_)
    _, _, loglik_rtol = tolerances(x.astype(dtype), float(x.std(axis=0).max()), dtype)
    expected_density = scipy_log_density(own, x.astype(dtype), covariance_type)
    np.testing.assert_allclose(
        log_density, expected_density, rtol=0, atol=loglik_rtol * max(1, np.abs(expected_density).max())
    )
    assert np.isfinite(bic)
    assert drawn.shape == (50, D) and np.all(np.isfinite(drawn)) and set(labels) <= set(range(K))
    assert_case(name, gm.weights_, gm.means_, gm.covariances_, covariance_type, dtype, gm.score(x))


# -- NUTS ---------------------------------------------------------------------------------------

NUTS_SETTINGS = {"num_warmup": 100, "num_samples": 100, "num_chains": 2, "key": 0}

# name: data builder (rows, groups); all (40, 2) with K=2 and 'full', so NUTS compiles once.
# NUTS samples in standardised coordinates, so 100 warm-up steps suffice at scales 1e8 and
# 1e-8 too (in the data's own coordinates the mass matrix was still 1e16 off the posterior's
# scale after them, and every draw at 1e8 took 933 leapfrog steps against 10 at unit scale).
NUTS_CASES = {
    "far-apart-1e6-sd": far_apart,
    "constant-column": constant_column,
    "scale-1e8": lambda: (basic_groups(seed=7)[0] * 1e8, basic_groups(seed=7)[1]),
    "scale-1e-8": lambda: (basic_groups(seed=7)[0] * 1e-8, basic_groups(seed=7)[1]),
}


def nuts_reference(x):
    """The labelling reference: fit_em's ML fit, a program the EM sweep compiled already
    (the default, MAP-EM with 10 restarts, would be one more compile), its reg_covar relative
    to the data's spread (the absolute 1e-6 would merge the groups at scale 1e-8)."""
    return gp.fit_em(x, 2, dtype="float64", reg_covar=1e-6 * float(np.mean(np.var(x, axis=0))))


def assert_finite_inference_data(idata):
    for group in ("posterior", "unrelabelled_posterior", "log_likelihood", "sample_stats", "observed_data"):
        for name, values in idata[group].data_vars.items():
            if values.dtype.kind == "f":
                assert np.all(np.isfinite(values.values)), f"{group}.{name} is not finite"


@pytest.mark.slow
@pytest.mark.parametrize("name", NUTS_CASES)
def test_nuts_extremes(name):
    import arviz as az

    x, groups = NUTS_CASES[name]()
    idata = gp.sample_posterior(x, 2, covariance_type="full", reference=nuts_reference(x), **NUTS_SETTINGS)
    assert_finite_inference_data(idata)
    if name.startswith("scale-"):  # adapted within the 100 warm-up steps at any scale: short trajectories
        assert float(idata.sample_stats["n_steps"].mean()) < 32, float(idata.sample_stats["n_steps"].mean())
    covariances = idata.posterior["covariances"].values.reshape(-1, 2, 2, 2)
    assert np.all(np.linalg.eigvalsh(covariances) > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ on short chains
        summary = az.summary(idata, var_names=["weights", "means", "covariances"])
    assert np.all(np.isfinite(summary[["mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk"]].to_numpy()))
    # The groups are found: every row's most probable component is its group's, and each
    # group's posterior mean lies within 4 posterior sd of the group's sample mean.
    probabilities = gp.assignment_probabilities(idata)
    assert_responsibilities(probabilities["probability"].values, groups, "float64", certainty=1 - 1e-6)
    labels = probabilities["label"].values
    draws = idata.posterior["means"].values.reshape(-1, 2, 2)
    # With the assignment certain, each component's covariance has the closed-form conjugate
    # posterior under the default prior, an inverse-Wishart(nu0 + n, Psi_n); NUTS's posterior
    # mean must be its mean Psi_n / (nu0 + n - D - 1) within Monte Carlo error. For groups 1e6
    # sd apart that is the prior's scale (cov(x) / K), not the groups' unit spread.
    prior = gp.default_prior(x, 2)
    mean_covariances = idata.posterior["covariances"].mean(("chain", "draw")).values
    mcse = az.mcse(idata, var_names=["covariances"])["covariances"].values
    for g in range(2):
        k = labels[groups == g][0]
        gap = np.abs(draws[:, k].mean(axis=0) - x[groups == g].mean(axis=0))
        assert np.all(gap <= 4 * draws[:, k].std(axis=0) + 1e-12 * np.abs(x).max()), (name, g, gap)
        rows = x[groups == g]
        n, centre = len(rows), rows.mean(axis=0)
        offset = centre - np.asarray(prior.mean)
        psi = (
            np.asarray(prior.scale)
            + (rows - centre).T @ (rows - centre)
            + float(prior.kappa) * n / (float(prior.kappa) + n) * np.outer(offset, offset)
        )
        expected = psi / (float(prior.dof) + n - x.shape[1] - 1)
        assert np.all(np.abs(mean_covariances[k] - expected) <= 5 * mcse[k] + 1e-9 * np.abs(expected).max()), (
            name,
            mean_covariances[k],
            expected,
            mcse[k],
        )


def test_nuts_with_as_many_rows_as_components():
    # Two rows in two dimensions: cov(x) has rank 1; the default prior then keeps only the
    # columns' variances (a singular inverse-Wishart scale was refused before).
    x, _ = n_equals_k()
    idata = gp.sample_posterior(x, 2, covariance_type="full", **NUTS_SETTINGS)
    assert_finite_inference_data(idata)
