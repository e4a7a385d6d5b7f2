"""Property-based tests (hypothesis): what must hold for every mixture, not for one data set.

Over random data, seeds, permutations and transformations, and over the covariance types,
dtypes and priors: EM never lowers its objective; fits keep valid parameters (weights on
the simplex, symmetric positive definite covariances that keep their type's constraint);
the log-likelihood and the fit do not depend on the order of the rows or the labels of the
components; fits are equivariant to translating and scaling the data; responsibilities are
distributions; and NumPyro's enumerated and marginal densities of the declared model equal
the library's own.

Compiling is what costs here: every distinct (rows, D, K, covariance type, dtype, prior or
not) compiles a new EM program, a few seconds each on 2 CPU cores. So the fits draw from
one fixed pool of configurations, ``FIT_CONFIGS``, shared by every fit test (a program
compiled for one test serves the others), and hypothesis varies the seeds, data,
permutations and transformations far more than the shapes. Every configuration starts
from given means (one deterministic run, the same program for all tests).
"""

import itertools
import math
from typing import NamedTuple

import jax
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, MCLUST_EXTRA_TYPES, as_full, random_params, sample_mixture
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpyro.contrib.funsor import enum
from numpyro.contrib.funsor import log_density as enum_log_density
from numpyro.infer.util import log_density
from scipy import stats

import gmm_ppl as gp

N_ROWS = 48
MAX_ITER = 60


class FitConfig(NamedTuple):
    covariance_type: str
    dtype: str
    with_prior: bool
    n_features: int
    n_components: int


# float32 is where round-off bites: every scikit-learn type, MAP on two of them, and the two
# mclust types that take determinants and eigenvectors (EVV, EEV). float64 takes them all.
FLOAT32_COMBOS = {
    ("full", False),
    ("tied", False),
    ("diag", False),
    ("spherical", False),
    ("full", True),
    ("diag", True),
    ("EVV", False),
    ("EEV", False),
}


def _fit_configs(
    shapes=((1, 2), (2, 3), (3, 2), (2, 1), (3, 3), (1, 3), (2, 2)), mclust_shapes=((3, 3), (2, 2), (2, 3), (3, 2))
) -> tuple[FitConfig, ...]:
    """Every covariance type in float64, with and without a prior where it has one (the
    mclust extras have none), and FLOAT32_COMBOS in float32: 21 configurations. Each takes
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
NUMPYRO_CONFIGS = _fit_configs(shapes=[(2, 3), (1, 2)], mclust_shapes=[(2, 3)])
FLOAT64_CONFIGS = tuple(c for c in FIT_CONFIGS if c.dtype == "float64")

# Tolerances for quantities of order one (a mean per-row objective, a responsibility, a
# standardised parameter), as sums over 48 rows and 60 EM iterations accumulate round-off:
# about 170 ulps in float32; in float64 far above round-off, yet far below any real error.
RTOL = {"float64": 1e-10, "float32": 2e-5}

# derandomize: CI draws the same examples on every run; database=None: nothing written.
PROPERTY_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

seeds = st.integers(0, 2**32 - 1)


def mixture_data(config: FitConfig, seed: int):
    """(x (N_ROWS, D), K distinct rows of x as starting means, the true parameters)."""
    rng = np.random.default_rng(seed)
    truth = random_params(rng, config.n_components, config.n_features, config.covariance_type)
    x = sample_mixture(rng, truth, config.covariance_type, N_ROWS)
    means_init = x[rng.choice(N_ROWS, config.n_components, replace=False)]
    return x, means_init, truth


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
    """Leave out EEV draws whose start gives a component D rows or fewer. No bug: EEV's
    M-step is not unique when a component's scatter is singular (any basis of its null
    space serves as its eigenvectors, each giving another covariance), so round-off picks
    one, and fits that should agree (rows reordered, data transformed) part by up to 1e-2
    for a few iterations."""
    if config.covariance_type == "EEV":
        owners = np.argmin(((x[:, None, :] - means_init[None]) ** 2).sum(-1), axis=1)
        assume(np.bincount(owners, minlength=config.n_components).min() > config.n_features)


@pytest.mark.slow
@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(config=st.sampled_from(FIT_CONFIGS), seed=seeds)
def test_em_never_lowers_its_objective(config, seed):
    """The objective trace is non-decreasing, ML and MAP, every covariance type, both dtypes.

    reg_covar=0, so each M-step is the exact maximiser; tol=0, so every run goes on for
    MAX_ITER iterations, well into the round-off floor where a dip would show. Without a
    prior and without reg_covar, ML-EM may legitimately run into a singularity (a component
    collapsing onto a few rows: the likelihood is unbounded); fit_em then raises
    FloatingPointError, and such draws say nothing about monotonicity.
    """
    x, means_init, _ = mixture_data(config, seed)
    prior = gp.default_prior(x, config.n_components) if config.with_prior else None
    try:
        result = fit(x, config, means_init, prior=prior, reg_covar=0.0)
    except FloatingPointError:
        assert prior is None  # a MAP covariance always includes the prior scale: it cannot collapse
        assume(False)
    trace = np.asarray(result.trace, dtype=np.float64)[: int(result.n_iter) + 1]
    assert np.all(np.isfinite(trace))
    rise = np.diff(trace)
    assert np.all(rise >= -RTOL[config.dtype] * np.maximum(1.0, np.abs(trace[1:]))), rise.min()
    # The reported objective is that of the returned parameters: their log-likelihood
    # recomputed by the public function, plus the log-prior / N under MAP.
    expected = float(np.mean(gp.log_likelihood(result.params, x, config.covariance_type).astype(np.float64)))
    if prior is not None:
        with jax.enable_x64(True):
            params64 = gp.GMMParams(*(np.asarray(a, np.float64) for a in result.params))
            expected += float(gp.log_prior(params64, config.covariance_type, prior)) / N_ROWS
    assert abs(float(result.objective) - expected) <= RTOL[config.dtype] * max(1.0, abs(expected))


def constraint_violation(covariances, covariance_type, n_components, n_features) -> float:
    """How far (relative) fitted covariances are from their mclust structure: 0 when EII and
    EEI share one covariance, EVI and EVV have equal volumes |Sigma_k|, EEV equal eigenvalues."""
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("EII", "EEI"):
        return float(np.max(np.abs(c - c[:1])) / np.max(np.abs(c)))
    if covariance_type in ("EVI", "EVV"):
        shapes_only = gp.GMMParams(None, np.zeros((n_components, n_features)), c)
        log_volumes = np.linalg.slogdet(as_full(shapes_only, covariance_type))[1]
        return float(np.max(np.abs(log_volumes - log_volumes[0])))
    if covariance_type == "EEV":
        values = np.linalg.eigvalsh(c)
        return float(np.max(np.abs(values - values[:1])) / np.max(values))
    return 0.0


@pytest.mark.slow
@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(config=st.sampled_from(FIT_CONFIGS), seed=seeds, offset=st.sampled_from([0.0, 1e2, 1e4]))
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


@st.composite
def fit_permutations(draw, configs=FIT_CONFIGS):
    config = draw(st.sampled_from(configs))
    return config, draw(seeds), np.array(draw(st.permutations(range(config.n_components))))


@pytest.mark.slow
@settings(max_examples=25, **PROPERTY_SETTINGS)
@given(case=fit_permutations())
def test_fits_ignore_row_order_and_relabel_with_their_start(case):
    """EM from the same start on the rows in another order gives the same fit; EM from the
    starting means in another order gives the same fit, relabelled the same way."""
    config, seed, component_order = case
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


@st.composite
def affine_maps(draw):
    """A scale a (either sign, 0.1 to 10) and a translation b per feature."""
    config = draw(st.sampled_from(FLOAT64_CONFIGS))
    magnitude = 10 ** draw(st.floats(-1, 1))
    sign = draw(st.sampled_from([1.0, -1.0]))
    shift = np.array(draw(st.lists(st.floats(-100, 100), min_size=config.n_features, max_size=config.n_features)))
    return config, draw(seeds), sign * magnitude, shift


@pytest.mark.slow
@settings(max_examples=30, **PROPERTY_SETTINGS)
@given(case=affine_maps())
def test_fits_are_equivariant_to_translating_and_scaling_the_data(case):
    """Fitting a x + b from a m0 + b gives means a m + b, covariances a^2 Sigma and the same
    weights and responsibilities as fitting x from m0; the mean log-likelihood per row drops
    by D log|a| (the log-Jacobian). float64.

    reg_covar is scaled by a^2 with the data, or it would break the symmetry. The default
    prior is built from the transformed data, which transforms it the same way (its mean
    is the column means, its scale cov(x) / K^(2/D)); the log-prior then changes by the
    log-Jacobian of the map of the parameters, (K D + 2 n_cov) log|a|, n_cov the free
    covariance parameters (means scale by a, covariance entries by a^2).
    """
    config, seed, a, b = case
    K, D = config.n_components, config.n_features
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
        n_cov = gp.COVARIANCE_TYPES[config.covariance_type].n_parameters(K, D)
        expected = float(on_x.objective) - D * log_jacobian - (K * D + 2 * n_cov) * log_jacobian / N_ROWS
        assert abs(float(on_y.objective) - expected) <= rtol
    np.testing.assert_allclose(
        gp.responsibilities(on_y.params, y, config.covariance_type),
        gp.responsibilities(on_x.params, x, config.covariance_type),
        rtol=0,
        atol=1e-6,
    )


@st.composite
def mixtures(draw, configs=FIT_CONFIGS):
    """(config, random parameters in the config's dtype, (N_ROWS, D) float64 rows): rows
    drawn from the mixture, a few of them moved far out (up to 1e3 spreads away), where
    every component density underflows."""
    config = draw(st.sampled_from(configs))
    rng = np.random.default_rng(draw(seeds))
    truth = random_params(rng, config.n_components, config.n_features, config.covariance_type)
    params = gp.GMMParams(*(np.asarray(a, dtype=config.dtype) for a in truth))
    x = sample_mixture(rng, truth, config.covariance_type, N_ROWS)
    far = rng.choice(N_ROWS, 4, replace=False)
    x[far] *= 10 ** draw(st.floats(0, 3))
    return config, params, x


def as_float64(params):
    return gp.GMMParams(*(np.asarray(a, dtype=np.float64) for a in params))


@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(case=mixtures(), data=st.data())
def test_log_likelihood_ignores_row_order_and_component_labels(case, data):
    """Permuting the rows permutes the per-row log-likelihood; relabelling the components
    permutes the columns of the per-component log densities and leaves the log-likelihood
    unchanged. Every covariance type, both dtypes."""
    config, params, x = case
    covariance_type = config.covariance_type
    # A seed, not st.permutations(range(48)): hypothesis spends most draws of so long a
    # permutation on shrinking machinery and rejects them as too large.
    row_order = np.random.default_rng(data.draw(seeds, label="row_seed")).permutation(N_ROWS)
    component_order = np.array(data.draw(st.permutations(range(config.n_components)), label="component_order"))
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


@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(case=mixtures())
def test_responsibilities_are_distributions(case):
    """Responsibilities lie in [0, 1], sum to one over the components, and are the
    normalised per-component densities, even for rows far from every component."""
    config, params, x = case
    resp = gp.responsibilities(params, x, config.covariance_type)
    assert resp.dtype == np.dtype(config.dtype)
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0) and np.all(resp <= 1)
    atol = 10 * RTOL[config.dtype]
    np.testing.assert_allclose(resp.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=atol)
    log_joint = gp.component_log_prob(params, x, config.covariance_type).astype(np.float64)
    expected = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(resp, expected, rtol=0, atol=atol)


def _sites(params):
    return {"weights": params.weights, "means": params.means, "covariances": params.covariances}


@settings(max_examples=25, **PROPERTY_SETTINGS)
@given(case=mixtures(NUMPYRO_CONFIGS))
def test_enumerated_and_marginal_numpyro_densities_equal_the_librarys(case):
    """NumPyro's log density of the declared model, with z enumerated out (funsor) and in
    the marginal form (MixtureSameFamily), equals the library's log-likelihood (summed over
    rows), plus its log-prior under a prior. NumPyro runs in float64 at the very parameters
    the library used (float32 ones widened), so the difference is the library's round-off."""
    config, params, x = case
    K, covariance_type = config.n_components, config.covariance_type
    library = float(np.sum(gp.log_likelihood(params, x, covariance_type), dtype=np.float64))
    magnitude = float(np.sum(np.abs(gp.log_likelihood(as_float64(params), x, covariance_type))))
    params64 = as_float64(params)
    with jax.enable_x64(True):
        if config.with_prior:
            prior = gp.default_prior(x, K)
            library += float(gp.log_prior(params64, covariance_type, prior))
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
    tolerance = 10 * RTOL[config.dtype] * max(1.0, magnitude)
    assert abs(float(enumerated) - library) <= tolerance, (float(enumerated), library)
    assert abs(float(marginal) - library) <= tolerance, (float(marginal), library)


def scipy_log_prior(params, covariance_type, prior) -> float:
    """The conjugate prior as documented in gmm_ppl.covariance, computed by SciPy."""
    weights, means, cov = as_float64(params)
    K, D = means.shape
    dof, kappa, psi, m0 = float(prior.dof), float(prior.kappa), np.asarray(prior.scale), np.asarray(prior.mean)
    total = stats.dirichlet(np.asarray(prior.alpha, dtype=np.float64)).logpdf(weights)
    if covariance_type in ("full", "tied"):
        per_component = cov if covariance_type == "full" else np.broadcast_to(cov, (K, D, D))
        for sigma in cov if covariance_type == "full" else cov[None]:
            total += stats.invwishart(df=dof, scale=psi).logpdf(sigma if D > 1 else sigma[0, 0])
        for mu, sigma in zip(means, per_component, strict=True):
            total += stats.multivariate_normal(m0, sigma / kappa).logpdf(mu)
    elif covariance_type == "diag":
        total += stats.invgamma(dof / 2, scale=np.diag(psi) / 2).logpdf(cov).sum()
        total += stats.norm(m0, np.sqrt(cov / kappa)).logpdf(means).sum()
    else:
        total += stats.invgamma(dof * D / 2, scale=np.trace(psi) / 2).logpdf(cov).sum()
        total += stats.norm(m0, np.sqrt(cov[:, None] / kappa)).logpdf(means).sum()
    return float(total)


@settings(max_examples=30, **PROPERTY_SETTINGS)
@given(case=mixtures(tuple(c for c in FLOAT64_CONFIGS if c.covariance_type in COVARIANCE_TYPES)))
def test_log_prior_is_the_documented_conjugate_prior(case):
    """The log-prior that MAP-EM adds and NUTS samples (one NumPyro model) equals SciPy's
    Dirichlet, Inverse-Wishart / Inverse-Gamma and Normal densities as documented."""
    config, params, x = case
    prior = gp.default_prior(x, config.n_components)
    with jax.enable_x64(True):
        library = float(gp.log_prior(params, config.covariance_type, prior))
    expected = scipy_log_prior(params, config.covariance_type, prior)
    assert abs(library - expected) <= 1e-9 * max(1.0, abs(expected)), (library, expected)
