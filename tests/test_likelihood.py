"""The one likelihood: against SciPy, NumPyro's mixture, and in both precisions."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import COVARIANCE_TYPES, as_full, random_params, scipy_log_joint

import gmm_ppl as gp
from gmm_ppl import covariance


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_scipy_in_float64(covariance_type):
    rng = np.random.default_rng(0)
    params = random_params(rng, 3, 4, covariance_type)
    x = rng.normal(scale=3, size=(50, 4))
    full = as_full(params, covariance_type)
    expected = scipy_log_joint(x, params.weights, params.means, full)
    got = np.asarray(gp.component_log_prob(params, x, covariance_type))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(gp.log_likelihood(params, x, covariance_type)),
        np.logaddexp.reduce(expected, axis=1),
        rtol=1e-12,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_numpyro_component_log_probs(covariance_type):
    rng = np.random.default_rng(1)
    params = random_params(rng, 2, 3, covariance_type)
    x = rng.normal(size=(20, 3))
    with jax.enable_x64(True):
        mix = dist.MixtureSameFamily(
            dist.Categorical(probs=params.weights),
            dist.MultivariateNormal(params.means, covariance_matrix=as_full(params, covariance_type)),
        )
        expected = np.asarray(mix.component_log_probs(x))
    np.testing.assert_allclose(np.asarray(gp.component_log_prob(params, x, covariance_type)), expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_agrees_with_float64(covariance_type):
    rng = np.random.default_rng(2)
    params = random_params(rng, 3, 2, covariance_type)
    x = rng.normal(scale=3, size=(40, 2))
    params32 = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    ll32 = gp.log_likelihood(params32, x, covariance_type)  # computed in the dtype of the parameters
    assert ll32.dtype == np.float32
    ll64 = np.asarray(gp.log_likelihood(params, x, covariance_type))
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5, atol=1e-5)


def test_log_sum_exp_is_stable_far_from_every_component():
    params = gp.GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [1.0]]), np.array([1e-2, 1e-2]))
    x = np.array([[1e3], [-1e3], [0.5]])
    ll = np.asarray(gp.log_likelihood(params, x, "spherical"))
    resp = np.asarray(gp.responsibilities(params, x, "spherical"))
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(resp))
    assert ll[0] < -1e7  # every density underflows, yet the log density is exact and finite
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(resp[0], [0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_are_a_distribution(covariance_type):
    rng = np.random.default_rng(3)
    params = random_params(rng, 4, 3, covariance_type)
    resp = np.asarray(gp.responsibilities(params, rng.normal(size=(30, 3)), covariance_type))
    assert resp.shape == (30, 4) and np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-5)


def test_covariance_type_is_inferred_from_shapes_unless_ambiguous():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3))
    for covariance_type in COVARIANCE_TYPES:
        params = random_params(rng, 2, 3, covariance_type)
        np.testing.assert_allclose(
            np.asarray(gp.log_likelihood(params, x)), np.asarray(gp.log_likelihood(params, x, covariance_type))
        )
    square = random_params(rng, 3, 3, "diag")  # (K, D) with K == D: diag or tied?
    with pytest.raises(ValueError, match="pass covariance_type"):
        gp.log_likelihood(square, x)


def test_parameters_vmap_over_a_leading_restart_axis():
    rng = np.random.default_rng(5)
    batch = [random_params(rng, 2, 2, "full") for _ in range(3)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *batch)
    x = rng.normal(size=(7, 2))
    from gmm_ppl.likelihood import joint_log_prob

    per_restart = jax.vmap(lambda p: joint_log_prob(p, x, covariance.FULL))(stacked)
    for b, params in enumerate(batch):
        np.testing.assert_allclose(per_restart[b], gp.component_log_prob(params, x, "full"), rtol=1e-5)


def test_a_jax_array_is_evaluated_where_it_lives(numpy_checks):
    """As in fit_em, a JAX array is checked on its device and never copied to the host for
    NumPy's check; the densities equal those of the same data as a NumPy array, and a
    wrong number of features is still named."""
    rng = np.random.default_rng(3)
    params = random_params(rng, 3, 4, "full")
    x = rng.normal(scale=3, size=(50, 4)).astype(np.float32)
    expected = {f: f(params, x) for f in (gp.log_likelihood, gp.responsibilities, gp.component_log_prob)}
    on_device = jax.numpy.asarray(x)
    numpy_checks.clear()  # the NumPy evaluations above were checked on the host, as they should be
    for f, values in expected.items():
        np.testing.assert_array_equal(f(params, on_device), values)
    assert numpy_checks == []
    with pytest.raises(ValueError, match="x has 3 features; the parameters have 4"):
        gp.log_likelihood(params, on_device[:, :3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [1, 2, 4, 5, 24])  # unrolled up to UNROLLED_MAX_FEATURES, a loop beyond
def test_the_precision_factor_is_lapacks_without_lapack(n_features, dtype):
    """On a CPU the factor U (U U^T = cov^{-1}) is made by XLA's operations; it is upper
    triangular, inverts cov, and equals LAPACK's, value and gradient, to rounding."""
    rng = np.random.default_rng(n_features)
    a = rng.normal(size=(3, n_features, 2 * n_features))
    cov = (a @ np.swapaxes(a, 1, 2) / (2 * n_features) + 0.1 * np.eye(n_features)).astype(dtype)
    eps = np.finfo(dtype).eps
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(covariance._linalg.cholesky_precision)(cov))
        expected = np.asarray(jax.jit(covariance._linalg.cholesky_precision_lapack)(cov))
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.tril(got, -1), 0.0)
        np.testing.assert_allclose(
            got @ np.swapaxes(got, 1, 2) @ cov, np.broadcast_to(np.eye(n_features), cov.shape), atol=1e4 * eps
        )
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e3 * eps * np.abs(expected).max())
        got, expected = [
            np.asarray(jax.jit(jax.grad(lambda c, f=f: jax.numpy.sum(jax.numpy.sin(f(c)))))(cov))
            for f in (covariance._linalg.cholesky_precision, covariance._linalg.cholesky_precision_lapack)
        ]
        # In both precisions (measured: at most 6 eps of the largest entry apart).
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e3 * eps * np.abs(expected).max())


def test_a_covariance_that_is_not_positive_definite_has_a_nan_factor():
    """As with LAPACK, the factor of an indefinite matrix is NaN (from its first pivot that
    is not positive), and the other matrices of the batch are unaffected."""
    cov = np.array([[[1.0, 0.0], [0.0, 4.0]], [[1.0, 2.0], [2.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]])
    got = np.asarray(covariance._linalg.cholesky_precision(cov))
    np.testing.assert_allclose(got[0], [[1.0, 0.0], [0.0, 0.5]])
    assert np.isnan(got[1]).any() and np.isnan(got[2]).any()


@pytest.mark.parametrize("n_features", [3, 32])  # the unrolled factor, and the loop
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_the_e_step_on_a_cpu_calls_no_lapack(covariance_type, n_features):
    """JAX's LAPACK on a CPU is SciPy's OpenBLAS, whose threads, given a batch of triangular
    solves, kept the cores busy while the E-step ran (see covariance._linalg.cholesky_precision):
    the E-step's program must not call it."""
    from gmm_ppl import stats

    if jax.default_backend() != "cpu":
        pytest.skip("a GPU or TPU keeps its own solver (covariance._linalg.cholesky_precision)")

    rng = np.random.default_rng(6)
    params = random_params(rng, 3, n_features, covariance_type)
    data = stats.to_chunks(rng.normal(size=(64, n_features)), np.ones(64), 32)
    cov_type = covariance.get(covariance_type)
    program = jax.jit(lambda d, p: stats.sufficient_statistics(d, p, cov_type)).lower(data, params).compile()
    assert 'custom_call_target="lapack' not in program.as_text()
