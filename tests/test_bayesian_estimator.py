"""gmm_ppl.BayesianGaussianMixture is scikit-learn's estimator of that name, fitted by
gmm_ppl's compiled VB: scikit-learn's checks, and scikit-learn's fits from the same starts."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import gmm_ppl as gp

WEIGHT_PRIORS = ("dirichlet_distribution", "dirichlet_process")
FITTED = (
    "weights_",
    "weight_concentration_",
    "mean_precision_",
    "means_",
    "degrees_of_freedom_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
)


@parametrize_with_checks([gp.BayesianGaussianMixture()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _both(x, **options):
    """scikit-learn's fit and gmm_ppl's, of the same options (warnings of either silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkBayesianGaussianMixture(**options).fit(x), gp.BayesianGaussianMixture(**options).fit(x)


def _assert_same_fit(ours, theirs, rtol=1e-6):
    for name in FITTED:
        np.testing.assert_allclose(
            np.asarray(getattr(ours, name), float),
            np.asarray(getattr(theirs, name), float),
            rtol=rtol,
            atol=1e-9,
            err_msg=name,
        )
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
    assert ours.lower_bound_ == pytest.approx(float(np.squeeze(theirs.lower_bound_)), rel=rtol)
    np.testing.assert_allclose(ours.lower_bounds_, np.squeeze(theirs.lower_bounds_), rtol=rtol)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("weight_prior", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_same_fit_as_scikit_learn(faithful, covariance_type, weight_prior, init_params):
    """float64, Old Faithful, K=4: every fitted attribute, the bound and its trace, the
    iterations, and the labels, to 1e-6 (seen: 1.3e-10 at worst)."""
    options = dict(
        n_components=4,
        covariance_type=covariance_type,
        weight_concentration_prior_type=weight_prior,
        init_params=init_params,
        random_state=1,
        max_iter=300,
    )
    theirs, ours = _both(faithful, **options)
    _assert_same_fit(ours, theirs)
    np.testing.assert_array_equal(ours.predict(faithful), theirs.predict(faithful))


def test_restarts_keep_scikit_learns_choice(faithful):
    """Five random starts, one compiled call: the start kept is scikit-learn's (its bound,
    its iterations), and its fit the same up to the order of the components."""
    theirs, ours = _both(faithful, n_components=3, init_params="random", n_init=5, random_state=0, max_iter=500)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-9)
    assert ours.n_iter_ == theirs.n_iter_
    order = [np.lexsort(m.means_.T) for m in (ours, theirs)]
    np.testing.assert_allclose(ours.means_[order[0]], theirs.means_[order[1]], rtol=1e-6)


def test_warm_start_continues_as_scikit_learn(faithful):
    options = dict(n_components=3, warm_start=True, max_iter=5, random_state=0)
    ours, theirs = gp.BayesianGaussianMixture(**options), SkBayesianGaussianMixture(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(faithful)
            theirs.fit(faithful)
            _assert_same_fit(ours, theirs)


def test_max_iter_zero_keeps_scikit_learns_last_start(faithful):
    theirs, ours = _both(faithful, n_components=3, max_iter=0, n_init=3, init_params="random", random_state=0)
    for name in FITTED:
        np.testing.assert_allclose(
            np.asarray(getattr(ours, name), float), np.asarray(getattr(theirs, name), float), rtol=1e-12, err_msg=name
        )
    assert ours.lower_bound_ == -np.inf and ours.n_iter_ == 0 and not ours.converged_


def test_no_convergence_warns_and_verbose_prints_the_trace(faithful, capsys):
    model = gp.BayesianGaussianMixture(n_components=3, max_iter=4, verbose=2, verbose_interval=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model.fit(faithful)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 4" in out and "did not converge" in out


def test_fit_predict_is_fit_then_predict(faithful):
    model = gp.BayesianGaussianMixture(n_components=3, random_state=0, max_iter=300)
    labels = model.fit_predict(faithful)
    np.testing.assert_array_equal(labels, model.predict(faithful))


def test_float32_data_are_fitted_in_float64_as_scikit_learn_does(faithful):
    """scikit-learn's float64 priors make its fit float64 whatever the data's dtype; so here."""
    theirs, ours = _both(faithful.astype(np.float32), n_components=2, random_state=0, init_params="random")
    assert ours.means_.dtype == theirs.means_.dtype == np.float64
    _assert_same_fit(ours, theirs)
