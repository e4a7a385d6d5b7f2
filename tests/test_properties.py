"""Property-based tests (hypothesis): what must hold for every mixture, not for one data set.

Over random data, seeds, permutations and transformations, and over the covariance types,
dtypes and priors: EM never lowers its objective; fits keep valid parameters (weights on
the simplex, symmetric positive definite covariances that keep their type's constraint);
the log-likelihood and the fit do not depend on the order of the rows or the labels of the
components; fits are equivariant to translating and scaling the data; responsibilities are
SciPy's normalised densities; NumPyro's enumerated and marginal densities of the declared
model equal the library's log-likelihood plus SciPy's density of the documented prior; and
the reported objectives and log-priors are SciPy's.

Every test is parametrised over its configurations (covariance type, dtype, prior or not,
D, K), so each property is checked on every one of them by construction; hypothesis draws
the seeds, data, permutations and transformations within each.

Compiling is what costs here: every distinct (rows, D, K, covariance type, dtype, prior or
not) compiles a new EM program, a few seconds each on 2 CPU cores. So the fits use one
fixed pool of configurations, ``FIT_CONFIGS``, shared by every fit test (a program
compiled for one test serves the others), and hypothesis runs few examples per
configuration: the examples are cheap (milliseconds), the shapes are not. Every
configuration starts from given means (one deterministic run, the same program for all
tests).
"""

import itertools
import math
import zlib
from typing import NamedTuple

import jax
import numpy as np
import pytest
from conftest import (
    COVARIANCE_TYPES,
    MCLUST_EXTRA_TYPES,
    as_full,
    random_params,
    sample_mixture,
    scipy_log_joint,
    scipy_log_likelihood,
    scipy_log_prior,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpyro.contrib.funsor import enum
from numpyro.contrib.funsor import log_density as enum_log_density
from numpyro.infer.util import log_density
from scipy.special import softmax

import gmm_ppl as gp

N_ROWS = 48
MAX_ITER = 60


class FitConfig(NamedTuple):
    covariance_type: str
    dtype: str
    with_prior: bool
    n_features: int
    n_components: int


# float32 is where round-off bites: every scikit-learn type, MAP on two of them, and the
# mclust types that take determinants and eigenvectors (EVV, EEV) or SVDs (EVE, whose
# orientation step VVE shares). float64 takes them all.
FLOAT32_COMBOS = {
    ("full", False),
    ("tied", False),
    ("diag", False),
    ("spherical", False),
    ("full", True),
    ("diag", True),
    ("EVV", False),
    ("EEV", False),
    ("EVE", False),
}


def _fit_configs(
    shapes=((1, 2), (2, 3), (3, 2), (2, 1), (3, 3), (1, 3), (2, 2)), mclust_shapes=((3, 3), (2, 2), (2, 3), (3, 2))
) -> tuple[FitConfig, ...]:
    """Every covariance type in float64, scikit-learn's four with and without a prior (the
    mclust extras without: MCLUST_MAP_CONFIGS adds them under one where a test takes it),
    and FLOAT32_COMBOS in float32: 27 configurations. Each takes
    the next (D, K) from a short cycle, so D = 1..3 and K = 1..3 all occur without
    multiplying the programs; the mclust extras take D, K >= 2, where their constraints
    (equal volumes, shapes, orientations) mean something."""
    shapes, mclust_shapes = itertools.cycle(shapes), itertools.cycle(mclust_shapes)
    return tuple(
        FitConfig(
            covariance_type, dtype, with_prior, *next(shapes if covariance_type in COVARIANCE_TYPES else mclust_shapes)
        )
        for dtype in ("float64", "float32")
        for covariance_type in COVARIANCE_TYPES + MCLUST_EXTRA_TYPES
        for with_prior in ((False, True) if covariance_type in COVARIANCE_TYPES else (False,))
        if dtype == "float64" or (covariance_type, with_prior) in FLOAT32_COMBOS
    )


FIT_CONFIGS = _fit_configs()
# NumPyro evaluates op by op, compiling every operation anew for each (D, K): its checks
# cycle the same combinations over two shapes only.
NUMPYRO_CONFIGS = _fit_configs(shapes=[(1, 2), (2, 3)], mclust_shapes=[(2, 3)])
FLOAT64_CONFIGS = tuple(c for c in FIT_CONFIGS if c.dtype == "float64")
# The four types the NumPyro model has, as NumPyro's checks take them with a prior in
# float64 (D = 2, K = 3: NumPyro's prior sites at that shape are compiled there already).
PRIOR_CONFIGS = tuple(c for c in NUMPYRO_CONFIGS if c.dtype == "float64" and c.with_prior)
# mclust's structures beyond those four under their prior (MAP-EM only: no NumPyro sites),
# in float64 at the shapes their maximum-likelihood configurations take.
MCLUST_MAP_CONFIGS = tuple(
    c._replace(with_prior=True) for c in FIT_CONFIGS if c.covariance_type in MCLUST_EXTRA_TYPES and c.dtype == "float64"
)


def config_id(config: FitConfig) -> str:
    """The test id of a configuration, such as full-float32-map-D2K3."""
    objective = "map" if config.with_prior else "ml"
    return f"{config.covariance_type}-{config.dtype}-{objective}-D{config.n_features}K{config.n_components}"


def over(configs):
    """Parametrise a property test over ``configs``: every one is checked, whatever hypothesis draws."""
    return pytest.mark.parametrize("config", configs, ids=config_id)


# Tolerances for quantities of order one (a mean per-row objective, a responsibility, a
# standardised parameter), as sums over 48 rows and 60 EM iterations accumulate round-off:
# about 170 ulps in float32; in float64 far above round-off, yet far below any real error.
RTOL = {"float64": 1e-10, "float32": 2e-5}
# Tolerance for one value computed two ways, with no iterations in between (an objective
# and SciPy's, a density and NumPyro's, consecutive objectives at EM's round-off floor),
# relative to the size of its terms: each side takes a few dozen operations per term, each
# within eps. Measured (630 fits, 315 NumPyro densities, 3,600 priors): at most 4.1 eps.
ROUND_OFF = {dtype: 64 * float(np.finfo(dtype).eps) for dtype in ("float32", "float64")}

# derandomize: CI draws the same examples on every run; database=None: nothing written.
# too_slow: the first example of a configuration compiles its programs. Hypothesis's other
# health checks stay on (filtering too much among them).
PROPERTY_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

seeds = st.integers(0, 2**32 - 1)


def config_rng(config: FitConfig, seed: int):
    """A random generator for ``seed`` and ``config`` together. Derandomised hypothesis draws
    the same values in every parametrised case (its seed is the test function's digest, and
    its first example is the simplest: seed 0), so the seed alone would give every
    configuration the same data."""
    return np.random.default_rng([seed, zlib.crc32(repr(config).encode())])


def mixture_data(config: FitConfig, seed: int):
    """(x (N_ROWS, D), K distinct rows of x as starting means, the true parameters)."""
    rng = config_rng(config, seed)
    truth = random_params(rng, config.n_components, config.n_features, config.covariance_type)
    x = sample_mixture(rng, truth, config.covariance_type, N_ROWS)
    means_init = x[rng.choice(N_ROWS, config.n_components, replace=False)]
    return x, means_init, truth


# Between neighbouring component means, in spreads (the largest standard deviation of any
# component); and how far each starting mean is from its component's mean.
SEPARATION, START_OFFSET = 4.0, 1.0


def separated_mixture_data(config: FitConfig, seed: int):
    """(x (N_ROWS, D), starting means): K components of N_ROWS / K rows each (16 or more,
    well above D), their means SEPARATION spreads apart along a random direction, and
    starting means START_OFFSET spreads from the true ones in random directions.

    Data on which maximum-likelihood EM without reg_covar cannot run into a singular
    covariance: every start owns most of its component's rows (at least 8 of 16, more
    than D, in 15,000 draws), and EM stays near the separated fit rather than collapsing a
    component onto D rows or fewer (none of 15,000 fits, 1,000 per ML configuration,
    raised; from mixture_data's random starting rows up to 11 % of the fits of full, diag
    and spherical collapse, the likelihood's own singularity). EM still has work to do: a
    median 7 iterations (2 to 18 for the middle 80 %) to reach a relative change of 1e-9."""
    rng = config_rng(config, seed)
    K, D = config.n_components, config.n_features
    truth = random_params(rng, K, D, config.covariance_type)
    full = as_full(truth, config.covariance_type)
    spread = math.sqrt(np.linalg.eigvalsh(full).max())
    direction = rng.normal(size=D)
    means = (np.arange(K) - (K - 1) / 2)[:, None] * SEPARATION * spread * direction / np.linalg.norm(direction)
    z = np.repeat(np.arange(K), N_ROWS // K)
    x = means[z] + np.einsum("nde,ne->nd", np.linalg.cholesky(full)[z], rng.normal(size=(N_ROWS, D)))
    offsets = rng.normal(size=(K, D))
    offsets *= START_OFFSET * spread / np.linalg.norm(offsets, axis=1, keepdims=True)
    return x, means + offsets


def fit(x, config: FitConfig, means_init, *, prior=None, reg_covar=1e-6, tol=0.0):
    """One EM run from ``means_init``. tol=0: exactly MAX_ITER iterations, so runs that are
    compared take the same number of steps whatever their round-off."""
    return gp.fit_em(
        x,
        config.n_components,
        covariance_type=config.covariance_type,
        means_init=means_init,
        prior=prior,
        reg_covar=reg_covar,
        tol=tol,
        max_iter=MAX_ITER,
        dtype=config.dtype,
    )


def permute_components(params, permutation, covariance_type):
    """The same mixture with its components relabelled: new component k is old component permutation[k]."""
    shared = gp.covariance.get(covariance_type).family == "tied"  # one covariance for all components
    covariances = params.covariances if shared else np.asarray(params.covariances)[permutation]
    return gp.GMMParams(np.asarray(params.weights)[permutation], np.asarray(params.means)[permutation], covariances)


def assert_params_close(actual, expected, covariance_type, rtol, scale=1.0):
    """Parameters equal to ``rtol`` relative to their natural scale: weights to 1, means and
    covariances to the data's ``scale`` and ``scale**2``."""
    np.testing.assert_allclose(actual.weights, expected.weights, rtol=0, atol=rtol)
    np.testing.assert_allclose(actual.means, expected.means, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(
        as_full(actual, covariance_type),
        as_full(expected, covariance_type),
        rtol=0,
        atol=rtol * scale**2,
    )


def avoid_singular_eev_starts(config: FitConfig, x, means_init):
    """Leave out EEV and VEV draws whose start gives a component D rows or fewer. No bug:
    their M-steps (each component's own orientation) are not unique when a component's
    scatter is singular (any basis of its null space serves as its eigenvectors, each giving
    another covariance), so round-off picks one, and fits that should agree (rows
    reordered, data transformed) part by up to 1e-2 for a few iterations."""
    if config.covariance_type in ("EEV", "VEV"):
        owners = np.argmin(((x[:, None, :] - means_init[None]) ** 2).sum(-1), axis=1)
        assume(np.bincount(owners, minlength=config.n_components).min() > config.n_features)


@pytest.mark.slow
@over(FIT_CONFIGS + MCLUST_MAP_CONFIGS)
@settings(max_examples=3, **PROPERTY_SETTINGS)
@given(seed=seeds)
def test_em_never_lowers_its_objective(config, seed):
    """The objective trace is non-decreasing, ML and MAP, every covariance type, both dtypes.

    reg_covar=0, so each M-step is the exact maximiser; tol=0, so every run goes on for
    MAX_ITER iterations, well into the round-off floor where a dip would show. Without a
    prior and without reg_covar the likelihood is unbounded (a component collapsing onto D
    rows or fewer), so ML fits separated components from near their means, where EM cannot
    get there (separated_mixture_data); MAP fits any mixture from random rows (a MAP
    covariance always includes the prior's scale: it cannot collapse). Either way a
    FloatingPointError fails the test.
    """
    if config.with_prior:
        x, means_init, _ = mixture_data(config, seed)
        prior = gp.default_prior(x, config.n_components)
    else:
        (x, means_init), prior = separated_mixture_data(config, seed), None
    result = fit(x, config, means_init, prior=prior, reg_covar=0.0)
    trace = np.asarray(result.trace, dtype=np.float64)[: int(result.n_iter) + 1]
    assert np.all(np.isfinite(trace))
    rise = np.diff(trace)
    assert np.all(rise >= -ROUND_OFF[config.dtype] * np.maximum(1.0, np.abs(trace[1:]))), rise.min()
    # The reported objective is that of the returned parameters: their mean log-likelihood,
    # plus the log-prior / N under MAP, both computed by SciPy in float64.
    expected = float(np.mean(scipy_log_likelihood(result.params, x, config.covariance_type)))
    if prior is not None:
        expected += scipy_log_prior(result.params, config.covariance_type, prior) / N_ROWS
    assert abs(float(result.objective) - expected) <= ROUND_OFF[config.dtype] * max(1.0, abs(expected))


def constraint_violation(covariances, covariance_type, n_components, n_features) -> float:
    """How far (relative) fitted covariances are from their mclust structure: 0 when EII and
    EEI share one covariance, EVI and EVV have equal volumes |Sigma_k|, EEV equal eigenvalues,
    VEI and VEE one shape (each covariance over its volume |Sigma_k|^(1/D)), VEV one
    eigenvalue shape, EVE and VVE common axes (covariances that commute), EVE with equal
    volumes."""
    c = np.asarray(covariances, dtype=np.float64)
    if c.ndim > 1 and c.shape[0] == n_components:  # an emptied component's is 0 (reg_covar I less reg_covar)
        c = c[np.any(c.reshape(n_components, -1) != 0, axis=1)]
        n_components = len(c)
    if covariance_type in ("EII", "EEI"):
        return float(np.max(np.abs(c - c[:1])) / np.max(np.abs(c)))
    if covariance_type == "VEI":
        log_shapes = np.log(c) - np.mean(np.log(c), axis=-1, keepdims=True)
        return float(np.max(np.abs(log_shapes - log_shapes[:1])))
    full = as_full(gp.GMMParams(None, np.zeros((n_components, n_features)), c), covariance_type)
    log_volumes = np.linalg.slogdet(full)[1] / n_features
    if covariance_type in ("EVI", "EVV"):
        return float(np.max(np.abs(log_volumes - log_volumes[0])))
    if covariance_type == "EEV":
        values = np.linalg.eigvalsh(c)
        return float(np.max(np.abs(values - values[:1])) / np.max(values))
    if covariance_type == "VEE":
        shapes = c / np.exp(log_volumes)[:, None, None]
        return float(np.max(np.abs(shapes - shapes[:1])) / np.max(np.abs(shapes)))
    if covariance_type == "VEV":
        log_shapes = np.log(np.linalg.eigvalsh(c)) - log_volumes[:, None]
        return float(np.max(np.abs(log_shapes - log_shapes[:1])))
    if covariance_type in ("EVE", "VVE"):
        commutators = np.einsum("ide,kef->ikdf", c, c) - np.einsum("kde,ief->ikdf", c, c)
        violation = np.max(np.abs(commutators)) / np.max(np.abs(c)) ** 2
        if covariance_type == "EVE":
            violation = max(violation, np.max(np.abs(log_volumes - log_volumes[0])))
        return float(violation)
    return 0.0


@pytest.mark.slow
@over(FIT_CONFIGS)
@settings(max_examples=3, **PROPERTY_SETTINGS)
@given(seed=seeds, offset=st.sampled_from([1e4, 1e2, 0.0]))  # the simplest draw, tried first: the farthest
def test_fits_keep_valid_parameters(config, seed, offset):
    """With the default reg_covar, on data near or far from the origin (float32 must stay
    correct there too): finite parameters, weights on the simplex, covariances symmetric
    positive definite in their own dtype and keeping their mclust structure, and the
    responsibilities of the fit are distributions."""
    x, means_init, _ = mixture_data(config, seed)
    x, means_init = x + offset, means_init + offset
    prior = gp.default_prior(x, config.n_components) if config.with_prior else None
    reg_covar = 1e-6
    result = fit(x, config, means_init, prior=prior, reg_covar=reg_covar)
    K, D = config.n_components, config.n_features
    rtol = RTOL[config.dtype]
    params = result.params
    assert all(np.asarray(a).dtype == np.dtype(config.dtype) for a in params)
    assert all(np.all(np.isfinite(a)) for a in params)
    assert np.all(params.weights >= 0) and abs(float(np.sum(params.weights, dtype=np.float64)) - 1) <= 10 * rtol
    full = as_full(params, config.covariance_type).astype(config.dtype)  # exact: widened, then narrowed back
    asymmetry = np.max(np.abs(full - np.swapaxes(full, 1, 2)), initial=0.0)
    assert asymmetry <= rtol * np.max(np.abs(full)), asymmetry
    assert np.all(np.linalg.eigvalsh(full.astype(np.float64)) > 0)
    np.linalg.cholesky(full)  # positive definite in the fit's own precision: raises if not
    # reg_covar is added after the constrained M-step (as in scikit-learn), so the
    # structure holds for the covariances less reg_covar I.
    covariances = np.asarray(params.covariances, np.float64)
    full_family = gp.covariance.get(config.covariance_type).family in ("full", "tied")
    unregularised = covariances - reg_covar * (np.eye(D) if full_family else 1.0)
    assert constraint_violation(unregularised, config.covariance_type, K, D) <= 100 * rtol
    resp = np.asarray(gp.responsibilities(params, x, config.covariance_type))
    assert resp.dtype == np.dtype(config.dtype) and np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=10 * rtol)


def component_orders(n_components: int):
    """Permutations of the components, reversed: hypothesis tries the simplest draw first,
    the identity, which reversed relabels (for K > 1)."""
    return st.permutations(range(n_components)).map(lambda order: np.array(order[::-1]))


@pytest.mark.slow
@over(FIT_CONFIGS)
@settings(max_examples=2, **PROPERTY_SETTINGS)
@given(seed=seeds, data=st.data())
def test_fits_ignore_row_order_and_relabel_with_their_start(config, seed, data):
    """EM from the same start on the rows in another order gives the same fit; EM from the
    starting means in another order gives the same fit, relabelled the same way."""
    component_order = data.draw(component_orders(config.n_components), label="component_order")
    x, means_init, _ = mixture_data(config, seed)
    avoid_singular_eev_starts(config, x, means_init)
    prior = gp.default_prior(x, config.n_components) if config.with_prior else None
    base = fit(x, config, means_init, prior=prior)
    row_order = np.random.default_rng(seed + 1).permutation(N_ROWS)
    shuffled = fit(x[row_order], config, means_init, prior=prior)
    relabelled = fit(x, config, means_init[component_order], prior=prior)
    # Round-off of summing the rows in another order, after MAX_ITER iterations; EM is a
    # contraction near its fixed points, so it does not grow much.
    rtol = 100 * RTOL[config.dtype]
    scale = float(np.max(np.std(x, axis=0)))
    assert_params_close(shuffled.params, base.params, config.covariance_type, rtol, scale)
    assert_params_close(
        relabelled.params,
        permute_components(base.params, component_order, config.covariance_type),
        config.covariance_type,
        rtol,
        scale,
    )
    for other in (shuffled, relabelled):
        assert abs(float(other.objective) - float(base.objective)) <= rtol * max(1.0, abs(float(base.objective)))


# Free covariance parameters of the types with a prior, counted by hand: each scales by a^2.
N_COVARIANCE_PARAMETERS = {
    "full": lambda K, D: K * D * (D + 1) // 2,
    "tied": lambda K, D: D * (D + 1) // 2,
    "diag": lambda K, D: K * D,
    "spherical": lambda K, D: K,
}


@pytest.mark.slow
@over(FLOAT64_CONFIGS)
@settings(max_examples=3, **PROPERTY_SETTINGS)
@given(
    seed=seeds,
    log10_magnitude=st.floats(-1, 1),
    sign=st.sampled_from([-1.0, 1.0]),  # the simplest draw, tried first: a = -1, a reflection
    shift=st.lists(st.floats(-100, 100), min_size=3, max_size=3),
)
def test_fits_are_equivariant_to_translating_and_scaling_the_data(config, seed, log10_magnitude, sign, shift):
    """Fitting a x + b from a m0 + b gives means a m + b, covariances a^2 Sigma and the same
    weights and responsibilities as fitting x from m0; the mean log-likelihood per row drops
    by D log|a| (the log-Jacobian). float64.

    reg_covar is scaled by a^2 with the data, or it would break the symmetry. The default
    prior is built from the transformed data, which transforms it the same way (its mean
    is the column means, its scale cov(x) / K^(2/D)); the log-prior then changes by the
    log-Jacobian of the map of the parameters, (K D + 2 n_cov) log|a|, n_cov the free
    covariance parameters (means scale by a, covariance entries by a^2).
    """
    K, D = config.n_components, config.n_features
    a, b = sign * 10**log10_magnitude, np.array(shift[:D])  # a scale of either sign, 0.1 to 10; a shift per feature
    x, means_init, _ = mixture_data(config, seed)
    avoid_singular_eev_starts(config, x, means_init)
    y = a * x + b
    reg_covar = 1e-6
    prior_x = gp.default_prior(x, K) if config.with_prior else None
    prior_y = gp.default_prior(y, K) if config.with_prior else None
    on_x = fit(x, config, means_init, prior=prior_x, reg_covar=reg_covar)
    on_y = fit(y, config, a * means_init + b, prior=prior_y, reg_covar=reg_covar * a**2)
    rtol = 1e-7  # of the data's scale: round-off grown over MAX_ITER iterations, with room
    scale = float(np.max(np.std(x, axis=0)))
    mapped = gp.GMMParams(on_x.params.weights, a * on_x.params.means + b, a**2 * np.asarray(on_x.params.covariances))
    np.testing.assert_allclose(on_y.params.weights, mapped.weights, rtol=0, atol=rtol)
    np.testing.assert_allclose(on_y.params.means, mapped.means, rtol=0, atol=rtol * scale * abs(a))
    np.testing.assert_allclose(
        as_full(on_y.params, config.covariance_type),
        as_full(mapped, config.covariance_type),
        rtol=0,
        atol=rtol * (scale * a) ** 2,
    )
    log_jacobian = math.log(abs(a))
    assert abs(float(on_y.log_likelihood) - (float(on_x.log_likelihood) - D * log_jacobian)) <= rtol
    if config.with_prior:
        n_cov = N_COVARIANCE_PARAMETERS[config.covariance_type](K, D)
        expected = float(on_x.objective) - D * log_jacobian - (K * D + 2 * n_cov) * log_jacobian / N_ROWS
        assert abs(float(on_y.objective) - expected) <= rtol
    np.testing.assert_allclose(
        gp.responsibilities(on_y.params, y, config.covariance_type),
        gp.responsibilities(on_x.params, x, config.covariance_type),
        rtol=0,
        atol=1e-6,
    )


def mixture(config: FitConfig, seed: int, nearness: float):
    """(random parameters in the config's dtype, (N_ROWS, D) float64 rows): rows drawn from
    the mixture, four of them moved out 10^(3 - nearness) times as far (up to 1e3 spreads
    away, where every component density underflows)."""
    rng = config_rng(config, seed)
    truth = random_params(rng, config.n_components, config.n_features, config.covariance_type)
    params = gp.GMMParams(*(np.asarray(a, dtype=config.dtype) for a in truth))
    x = sample_mixture(rng, truth, config.covariance_type, N_ROWS)
    x[rng.choice(N_ROWS, 4, replace=False)] *= 10 ** (3 - nearness)
    return params, x


# In [0, 3]: the simplest draw, tried first (0), moves four rows the farthest, 1e3 times out.
nearness = st.floats(0, 3)


def as_float64(params):
    return gp.GMMParams(*(np.asarray(a, dtype=np.float64) for a in params))


@over(FIT_CONFIGS)
@settings(max_examples=2, **PROPERTY_SETTINGS)
@given(seed=seeds, nearness=nearness, row_seed=seeds, data=st.data())
def test_log_likelihood_ignores_row_order_and_component_labels(config, seed, nearness, row_seed, data):
    """Permuting the rows permutes the per-row log-likelihood; relabelling the components
    permutes the columns of the per-component log densities and leaves the log-likelihood
    unchanged. Every covariance type, both dtypes."""
    params, x = mixture(config, seed, nearness)
    covariance_type = config.covariance_type
    # A seed, not st.permutations(range(48)): hypothesis spends most draws of so long a
    # permutation on shrinking machinery and rejects them as too large.
    row_order = np.random.default_rng(row_seed).permutation(N_ROWS)
    component_order = data.draw(component_orders(config.n_components), label="component_order")
    log_lik = gp.log_likelihood(params, x, covariance_type)
    assert log_lik.dtype == np.dtype(config.dtype) and np.all(np.isfinite(log_lik))
    rtol = RTOL[config.dtype]
    np.testing.assert_allclose(gp.log_likelihood(params, x[row_order], covariance_type), log_lik[row_order], rtol=rtol)
    relabelled = permute_components(params, component_order, covariance_type)
    np.testing.assert_allclose(gp.log_likelihood(relabelled, x, covariance_type), log_lik, rtol=rtol)
    np.testing.assert_allclose(
        gp.component_log_prob(relabelled, x, covariance_type),
        gp.component_log_prob(params, x, covariance_type)[:, component_order],
        rtol=rtol,
    )


@over(FIT_CONFIGS)
@settings(max_examples=2, **PROPERTY_SETTINGS)
@given(seed=seeds, nearness=nearness)
def test_responsibilities_are_distributions(config, seed, nearness):
    """Responsibilities lie in [0, 1], sum to one over the components, and are the
    normalised per-component densities computed by SciPy, even for rows far from every
    component."""
    params, x = mixture(config, seed, nearness)
    resp = gp.responsibilities(params, x, config.covariance_type)
    assert resp.dtype == np.dtype(config.dtype)
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0) and np.all(resp <= 1)
    atol = 10 * RTOL[config.dtype]
    np.testing.assert_allclose(resp.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=atol)
    log_joint = scipy_log_joint(x, params.weights, params.means, as_full(params, config.covariance_type))
    expected = softmax(log_joint, axis=1)
    # A row's log joint of size L comes with a few eps L of round-off (a few dozen operations
    # on terms of that size), and a responsibility moves by at most half the largest error
    # of its row (d r_k / d l_j = r_k (delta_kj - r_j)): 10 eps L leaves a margin of 20. Rows
    # 1e3 spreads out have L near 1e7, so only their sums, checked above, are tight there.
    # Measured over the draws: at most 0.5 eps L.
    row_scale = np.maximum(1.0, np.abs(log_joint).max(axis=1, keepdims=True))
    assert np.all(np.abs(resp - expected) <= 10 * np.finfo(config.dtype).eps * row_scale)


def _sites(params):
    return {"weights": params.weights, "means": params.means, "covariances": params.covariances}


@over(NUMPYRO_CONFIGS)
@settings(max_examples=2, **PROPERTY_SETTINGS)
@given(seed=seeds, nearness=nearness)
def test_enumerated_and_marginal_numpyro_densities_equal_the_librarys(config, seed, nearness):
    """NumPyro's log density of the declared model, with z enumerated out (funsor) and in
    the marginal form (MixtureSameFamily), equals the library's log-likelihood (summed over
    rows), plus under a prior the documented prior's log density (by SciPy: the library's
    own log_prior is NumPyro's density of the same sites). NumPyro runs in float64 at the
    very parameters the library used (float32 ones widened), so the difference is the
    library's round-off."""
    params, x = mixture(config, seed, nearness)
    K, covariance_type = config.n_components, config.covariance_type
    library = float(np.sum(gp.log_likelihood(params, x, covariance_type), dtype=np.float64))
    params64 = as_float64(params)
    magnitude = float(np.sum(np.abs(scipy_log_likelihood(params64, x, covariance_type))))
    with jax.enable_x64(True):
        if config.with_prior:
            prior = gp.default_prior(x, K)
            log_prior = scipy_log_prior(params64, covariance_type, prior)
            library, magnitude = library + log_prior, magnitude + abs(log_prior)
            model, args, kwargs, sites = (
                gp.gmm_model,
                (x,),
                {"n_components": K, "covariance_type": covariance_type, "prior": prior},
                _sites(params64),
            )
        else:
            model, args, kwargs, sites = gp.mixture_likelihood, (x, params64, covariance_type), {}, {}
        enumerated, _ = enum_log_density(enum(model, first_available_dim=-2), args, kwargs, sites)
        marginal, _ = log_density(model, args, {**kwargs, "marginal": True}, sites)
    tolerance = ROUND_OFF[config.dtype] * max(1.0, magnitude)
    assert abs(float(enumerated) - library) <= tolerance, (float(enumerated), library)
    assert abs(float(marginal) - library) <= tolerance, (float(marginal), library)


@over(PRIOR_CONFIGS + MCLUST_MAP_CONFIGS)
@settings(max_examples=8, **PROPERTY_SETTINGS)
@given(seed=seeds, nearness=nearness)
def test_log_prior_is_the_documented_conjugate_prior(config, seed, nearness):
    """The log-prior that MAP-EM adds (and NUTS samples, for the four types the NumPyro model
    has) equals SciPy's Dirichlet, Inverse-Wishart / Inverse-Gamma and Normal densities as
    documented (conftest.scipy_log_prior), for every structure."""
    params, x = mixture(config, seed, nearness)
    prior = gp.default_prior(x, config.n_components)
    with jax.enable_x64(True):
        library = float(gp.log_prior(params, config.covariance_type, prior))
    expected = scipy_log_prior(params, config.covariance_type, prior)
    assert abs(library - expected) <= ROUND_OFF["float64"] * max(1.0, abs(expected)), (library, expected)
