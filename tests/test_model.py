"""EM's likelihood and MAP objective equal NumPyro's own densities of the declared model, and
SciPy's densities of the documented model."""

import numpy as np
import numpyro
import pytest
from conftest import COVARIANCE_TYPES, numpyro_densities, scipy_log_joint_density, scipy_log_likelihood

import gmm_ppl as gp

# One float64 value (a sum over 272 rows, plus the log-prior) computed two ways: each side
# takes a few dozen operations per term, each within eps of its size. Measured on these
# fits: at most 0.9 eps of the total; 64 eps leaves a margin of 70.
ROUND_OFF = 64 * np.finfo(np.float64).eps


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
    args = (faithful, fit.params, covariance_type)
    enumerated, marginal, infer = numpyro_densities(gp.mixture_likelihood, args, {}, {})
    assert infer["enumerate"] == "parallel"
    assert abs(enumerated - total) <= ROUND_OFF * abs(total)
    assert abs(marginal - total) <= ROUND_OFF * abs(total)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_objective_equals_the_models_log_joint(fits, faithful, covariance_type):
    """MAP-EM's objective (times N) is NumPyro's log density of gmm_model, enumerated and
    marginal, and SciPy's log-likelihood plus the documented prior's log density."""
    fit = fits[covariance_type, "default"]
    n = faithful.shape[0]
    kwargs = {"n_components": 2, "covariance_type": covariance_type, "prior": fit.prior}
    enumerated, marginal, _ = numpyro_densities(gp.gmm_model, (faithful,), kwargs, _sites(fit.params))
    total = float(fit.objective) * n
    assert abs(enumerated - total) <= ROUND_OFF * abs(total)
    assert abs(marginal - total) <= ROUND_OFF * abs(total)
    independent = scipy_log_joint_density(fit.params, faithful, covariance_type, fit.prior)
    assert abs(independent - total) <= ROUND_OFF * abs(total), (independent, total)


def test_ml_and_map_differ_and_map_raises_the_log_joint(fits, faithful):
    """The MAP fit has a higher log joint than the ML fit evaluated under the same prior,
    and a lower log-likelihood (both by SciPy)."""
    ml, mp = fits["full", None], fits["full", "default"]
    joint_ml, joint_map = (scipy_log_joint_density(f.params, faithful, "full", mp.prior) for f in (ml, mp))
    assert joint_map > joint_ml
    loglik_ml, loglik_map = (np.sum(scipy_log_likelihood(f.params, faithful, "full")) for f in (ml, mp))
    assert loglik_map < loglik_ml


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


def test_default_prior_where_cov_x_cannot_scale_it():
    """The documentation (Bugs the sweep found; Numerical extremes): a constant column takes a unit
    scale, with no covariance with the others; collinear columns, or no more rows than
    columns, leave cov(x) singular, and the prior keeps only the columns' variances."""
    rng = np.random.default_rng(0)
    K, D = 2, 3
    x = rng.normal(size=(40, D))
    for value in (5.0, 0.1):  # 5.0's variance computes to 0; 0.1's to rounding, 1e-34 (found by its range)
        x[:, 1] = value
        by_hand = np.cov(x, rowvar=False)
        by_hand[1, :], by_hand[:, 1] = 0.0, 0.0
        by_hand[1, 1] = 1.0
        np.testing.assert_allclose(gp.default_prior(x, K).scale, by_hand / K ** (2 / D), rtol=1e-12, atol=1e-15)
    collinear = rng.normal(size=(40, D))
    collinear[:, 2] = 2.0 * collinear[:, 0] - collinear[:, 1]
    few_rows = rng.normal(size=(D, D))  # N <= D
    for y in (collinear, few_rows):
        expected = np.diag(np.var(y, axis=0, ddof=1)) / K ** (2 / D)
        np.testing.assert_allclose(gp.default_prior(y, K).scale, expected, rtol=1e-12, atol=1e-15)


def test_nuts_reference_fit_scales_with_the_data():
    """The documentation (Bugs the sweep found): the reference NUTS relabels to is fitted with reg_covar
    relative to the data's variance, so data on a 1e-8 scale get the unit-scale reference
    times 1e-8 (an absolute 1e-6, 1e10 times their variance, swamped them)."""
    from gmm_ppl import posterior

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + [8.0, 0.0]])
    unit, tiny = (posterior._default_reference(y, 2, "full", gp.default_prior(y, 2), key=0) for y in (x, x * 1e-8))
    np.testing.assert_allclose(tiny.weights, unit.weights, rtol=1e-6)
    np.testing.assert_allclose(tiny.means, unit.means * 1e-8, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(tiny.covariances, unit.covariances * 1e-16, rtol=1e-5)
