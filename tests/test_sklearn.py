"""Same data and the same initial weights, means and precisions as scikit-learn, float64:
EM gives scikit-learn's fitted model."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_params, sample_mixture
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import gmm_ppl as gp
from gmm_ppl import stats

N_ITER = 25


def _precisions(params, covariance_type):
    cov = np.asarray(params.covariances)
    return np.linalg.inv(cov) if covariance_type in ("full", "tied") else 1.0 / cov


# (K, D): K D^2 = 27 runs the E-step written out per component and feature, 100 the
# form on chunks of rows stored as columns (``gmm_ppl.stats.written_out``).
@pytest.fixture(scope="module", params=[(3, 3), (4, 5)], ids=["written-out", "columns"])
def data(request):
    K, D = request.param
    assert stats.written_out(K, D) == (request.param == (3, 3))
    rng = np.random.default_rng(0)
    truth = random_params(rng, K, D, "full")
    return sample_mixture(rng, truth, "full", 300), K


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_same_fit_as_scikit_learn(data, covariance_type):
    data, K = data
    D = data.shape[1]
    rng = np.random.default_rng(1)
    start = random_params(rng, K, D, covariance_type)
    start = start._replace(means=data[rng.choice(len(data), K, replace=False)])
    # tol=0 makes both run exactly N_ITER M-steps.
    sk = GaussianMixture(
        K,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=N_ITER,
        reg_covar=1e-6,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_precisions(start, covariance_type),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(data)
    ours = gp.fit_em(
        data,
        K,
        covariance_type=covariance_type,
        init_params=start,
        tol=0.0,
        max_iter=N_ITER,
        reg_covar=1e-6,
        dtype="float64",
    )
    assert int(ours.n_iter) == sk.n_iter_ == N_ITER
    assert abs(float(ours.log_likelihood) - sk.score(data)) <= 1e-8 * abs(sk.score(data))
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-6, atol=1e-10)
    # scikit-learn's lower bound is the objective before its last M-step: our trace has it.
    np.testing.assert_allclose(ours.trace[N_ITER - 1], sk.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_convergence_rule_as_scikit_learn(faithful, covariance_type):
    """With a tolerance, both stop after the same number of iterations."""
    start = gp.GMMParams(
        np.array([0.5, 0.5]),
        faithful[[0, 1]],
        {
            "full": np.stack([np.cov(faithful.T)] * 2),
            "tied": np.cov(faithful.T),
            "diag": np.stack([faithful.var(0)] * 2),
            "spherical": np.full(2, faithful.var(0).mean()),
        }[covariance_type],
    )
    sk = GaussianMixture(
        2,
        covariance_type=covariance_type,
        tol=1e-4,
        max_iter=500,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_precisions(start, covariance_type),
    ).fit(faithful)
    ours = gp.fit_em(
        faithful, 2, covariance_type=covariance_type, init_params=start, tol=1e-4, max_iter=500, dtype="float64"
    )
    assert bool(ours.converged) and sk.converged_
    assert int(ours.n_iter) == sk.n_iter_
    for got, want in zip(ours.params, (sk.weights_, sk.means_, sk.covariances_), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
