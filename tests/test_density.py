"""The density estimator: marginals and conditionals in closed form, the density on a grid."""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, as_full, random_params, scipy_log_joint
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import gmm_ppl as gp


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_density_is_joint_over_marginal(covariance_type):
    """p(x_a | x_b = v) = p(x_a, v) / p(v), every density computed by SciPy from the full
    covariance matrices (independent of the library's likelihood and marginal)."""
    rng = np.random.default_rng(0)
    params = random_params(rng, 3, 4, covariance_type)
    given, values = [1, 3], np.array([0.5, -1.0])
    cond = gp.conditional(params, given, values, covariance_type)
    rest = rng.normal(size=(10, 2))
    full_rows = np.zeros((10, 4))
    full_rows[:, [0, 2]] = rest
    full_rows[:, given] = values
    full = as_full(params, covariance_type)
    joint = logsumexp(scipy_log_joint(full_rows, params.weights, params.means, full), axis=1)
    block = full[:, given][:, :, given]
    margin = logsumexp(scipy_log_joint(values[None], params.weights, params.means[:, given], block), axis=1)[0]
    got = logsumexp(scipy_log_joint(rest, cond.weights, cond.means, cond.covariances), axis=1)
    np.testing.assert_allclose(got, joint - margin, rtol=1e-10)
    np.testing.assert_allclose(cond.weights.sum(), 1.0)


def test_marginal_is_the_mixture_of_marginals():
    rng = np.random.default_rng(1)
    params = random_params(rng, 2, 3, "full")
    x = rng.normal(size=(7, 2))
    expected = np.logaddexp(
        *[
            np.log(params.weights[k])
            + multivariate_normal(params.means[k, [0, 2]], params.covariances[k][np.ix_([0, 2], [0, 2])]).logpdf(x)
            for k in range(2)
        ]
    )
    np.testing.assert_allclose(gp.log_likelihood(gp.marginal(params, [0, 2]), x, "full"), expected, rtol=1e-12)


def test_density_grid_for_contours(faithful):
    fit = gp.fit_em(faithful, 2, n_init=3, dtype="float64")
    xs, ys, log_density = gp.density_grid(fit.params, bounds=((1, 6), (40, 100)), resolution=50)
    assert xs.shape == (50,) and ys.shape == (50,) and log_density.shape == (50, 50)
    # The grid integrates to about one (the mixture's mass is well inside these bounds).
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(np.exp(log_density).sum() * cell - 1) < 0.02
    i, j = np.unravel_index(np.argmax(log_density), log_density.shape)
    assert abs(xs[j] - 4.3) < 0.3 and abs(ys[i] - 80) < 3  # the taller mode: long eruptions


def test_held_out_log_likelihood(faithful):
    rng = np.random.default_rng(2)
    order = rng.permutation(len(faithful))
    train, test = faithful[order[:200]], faithful[order[200:]]
    gm = gp.GaussianMixture(2, n_init=3, random_state=0).fit(train)
    held_out = gm.score(test)
    assert np.isfinite(held_out) and held_out < gm.score(train) + 0.5


def test_bad_arguments():
    params = random_params(np.random.default_rng(3), 2, 3, "full")
    with pytest.raises(ValueError, match="given must leave"):
        gp.conditional(params, [0, 1, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="values must be 1 finite"):
        gp.conditional(params, [0], [np.nan])
    with pytest.raises(ValueError, match="dims must be distinct feature indices"):
        gp.marginal(params, [3])
