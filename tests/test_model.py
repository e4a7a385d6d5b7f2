"""EM's likelihood and MAP objective equal NumPyro's own densities of the declared model."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from conftest import COVARIANCE_TYPES
from numpyro.contrib.funsor import enum
from numpyro.contrib.funsor import log_density as enum_log_density
from numpyro.infer.util import log_density

import gmm_ppl as gp


@pytest.fixture(scope="module")
def fits(faithful):
    """Float64 fits of Old Faithful, ML and MAP, for every covariance type."""
    out = {}
    for covariance_type in COVARIANCE_TYPES:
        for prior in (None, "default"):
            out[covariance_type, prior] = gp.fit_em(
                faithful, 2, covariance_type=covariance_type, prior=prior, n_init=3, dtype="float64", tol=1e-8
            )
    return out


def _sites(params):
    return {"weights": params.weights, "means": params.means, "covariances": params.covariances}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_equals_enumerated_and_marginal_numpyro_density(fits, faithful, covariance_type):
    fit = fits[covariance_type, None]
    total = float(fit.log_likelihood) * faithful.shape[0]
    with jax.enable_x64(True):
        x = jnp.asarray(faithful)
        enumerated, trace = enum_log_density(
            enum(gp.mixture_likelihood, first_available_dim=-2), (x, fit.params, covariance_type), {}, {}
        )
        marginal, _ = log_density(gp.mixture_likelihood, (x, fit.params, covariance_type), {"marginal": True}, {})
    assert trace["z"]["infer"]["enumerate"] == "parallel"
    assert abs(float(enumerated) - total) <= 1e-9 * abs(total)
    assert abs(float(marginal) - total) <= 1e-9 * abs(total)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_objective_equals_the_models_log_joint(fits, faithful, covariance_type):
    fit = fits[covariance_type, "default"]
    n = faithful.shape[0]
    kwargs = {"n_components": 2, "covariance_type": covariance_type, "prior": fit.prior}
    with jax.enable_x64(True):
        x = jnp.asarray(faithful)
        enumerated, _ = enum_log_density(enum(gp.gmm_model, first_available_dim=-2), (x,), kwargs, _sites(fit.params))
        marginal, _ = log_density(gp.gmm_model, (x,), {**kwargs, "marginal": True}, _sites(fit.params))
        prior_only = gp.log_prior(fit.params, covariance_type, fit.prior)
    total = float(fit.objective) * n
    assert abs(float(enumerated) - total) <= 1e-9 * abs(total)
    assert abs(float(marginal) - total) <= 1e-9 * abs(total)
    np.testing.assert_allclose(float(fit.log_likelihood) * n + float(prior_only), total, rtol=1e-12)


def test_ml_and_map_differ_and_map_raises_the_log_joint(fits, faithful):
    """The MAP fit has a higher log joint than the ML fit evaluated under the same prior."""
    ml, mp = fits["full", None], fits["full", "default"]
    with jax.enable_x64(True):
        joint_ml = float(ml.log_likelihood) * faithful.shape[0] + float(gp.log_prior(ml.params, "full", mp.prior))
    assert float(mp.objective) * faithful.shape[0] > joint_ml
    assert float(mp.log_likelihood) < float(ml.log_likelihood)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_simulates_from_the_prior(covariance_type):
    prior = gp.default_prior(np.random.default_rng(0).normal(size=(20, 3)), 2)
    with numpyro.handlers.seed(rng_seed=0):
        trace = numpyro.handlers.trace(gp.gmm_model).get_trace(
            n_components=2, covariance_type=covariance_type, prior=prior, n_rows=15
        )
    assert trace["x"]["value"].shape == (15, 3)
    assert trace["weights"]["value"].shape == (2,)
    expected = {"full": (2, 3, 3), "tied": (3, 3), "diag": (2, 3), "spherical": (2,)}[covariance_type]
    assert trace["covariances"]["value"].shape == expected
    assert np.all(np.isfinite(trace["x"]["value"]))


def test_default_prior_follows_mclust(faithful):
    prior = gp.default_prior(faithful, 3)
    np.testing.assert_allclose(prior.mean, faithful.mean(axis=0))
    np.testing.assert_allclose(prior.scale, np.cov(faithful, rowvar=False) / 3 ** (2 / 2))
    assert float(prior.kappa) == 0.01 and float(prior.dof) == 2 + 2
    np.testing.assert_array_equal(prior.alpha, np.ones(3))
