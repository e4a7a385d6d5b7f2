"""gmm_ppl.GaussianMixture is a real scikit-learn estimator and a drop-in for scikit-learn's."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, scipy_log_joint_density, scipy_log_likelihood
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import gmm_ppl as gp


@parametrize_with_checks([gp.GaussianMixture()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _precisions_init(x, K, covariance_type):
    """Precisions of a rough start: per-component spread of the whole data."""
    var = x.var(axis=0)
    return {
        "full": np.stack([np.linalg.inv(np.cov(x.T))] * K),
        "tied": np.linalg.inv(np.cov(x.T)),
        "diag": np.stack([1 / var] * K),
        "spherical": np.full(K, 1 / var.mean()),
    }[covariance_type]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_gives_scikit_learns_fitted_model(diabetes, covariance_type):
    K = 3
    start = dict(
        weights_init=np.full(K, 1 / K),
        means_init=diabetes[[0, 80, 130]],
        precisions_init=_precisions_init(diabetes, K, covariance_type),
    )
    ours = gp.GaussianMixture(K, covariance_type=covariance_type, max_iter=500, **start).fit(diabetes)
    theirs = SkGaussianMixture(K, covariance_type=covariance_type, max_iter=500, **start).fit(diabetes)
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(diabetes), theirs.score_samples(diabetes), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(diabetes), theirs.predict_proba(diabetes), atol=1e-8)
    np.testing.assert_allclose(ours.bic(diabetes), theirs.bic(diabetes), rtol=1e-8)
    np.testing.assert_allclose(ours.aic(diabetes), theirs.aic(diabetes), rtol=1e-8)


def test_fit_predict_equals_fit_then_predict(faithful):
    a = gp.GaussianMixture(2, n_init=3, random_state=0).fit_predict(faithful)
    b = gp.GaussianMixture(2, n_init=3, random_state=0).fit(faithful).predict(faithful)
    np.testing.assert_array_equal(a, b)


def test_random_state_makes_fits_reproducible(faithful):
    fits = [gp.GaussianMixture(3, init_params="random", random_state=5).fit(faithful) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)


def test_every_init_name_of_scikit_learn_is_accepted(faithful):
    # tol=1e-6: from 'random' (every component starts near the data mean) EM creeps at
    # first and the default tol=1e-3 stops it early, in scikit-learn as here.
    for init in ("kmeans", "k-means++", "random", "random_from_data", "hierarchical", "mclust"):
        gm = gp.GaussianMixture(2, init_params=init, n_init=3, random_state=0, max_iter=500, tol=1e-6).fit(faithful)
        assert abs(gm.score(faithful) - (-1130.264 / 272)) < 1e-5, init


def test_map_estimator_is_map_em_and_maximises_the_log_joint(faithful):
    """``GaussianMixture(prior="default")`` is ``fit_em(prior="default")`` from the same start
    (given means), with scikit-learn's attributes; and what it maximised is the log joint:
    its objective is SciPy's log-likelihood plus SciPy's log prior density (per row), and
    under that objective the MAP maximum beats the ML maximum from the same start (which
    beats it in log-likelihood)."""
    K, N = 2, faithful.shape[0]
    start = faithful[[0, 1]]  # one row in each cluster: a deterministic start, no k-means++
    gm = gp.GaussianMixture(K, prior="default", means_init=start, random_state=0).fit(faithful)
    # The estimator's defaults: float64, tol 1e-3, reg_covar 1e-6, max_iter 100, one start.
    fit = gp.fit_em(faithful, K, prior="default", means_init=start, key=1, dtype="float64")
    for name, ours in zip(("weights_", "means_", "covariances_"), fit.params, strict=True):
        np.testing.assert_allclose(getattr(gm, name), ours, rtol=1e-12, err_msg=name)
    assert gm.n_iter_ == int(fit.n_iter) and gm.converged_ == bool(fit.converged)
    # scikit-learn's lower_bound_ is the objective of the E-step of the last iteration, the
    # one before its M-step: trace[n_iter - 1].
    trace = np.asarray(fit.trace)
    np.testing.assert_allclose(gm.lower_bounds_, trace[: gm.n_iter_], rtol=1e-12)
    np.testing.assert_allclose(gm.lower_bound_, trace[gm.n_iter_ - 1], rtol=1e-12)

    prior = gp.default_prior(faithful, K)  # what "default" stands for

    def log_joint_per_row(params):
        return scipy_log_joint_density(params, faithful, "full", prior) / N

    fitted = gp.GMMParams(gm.weights_, gm.means_, gm.covariances_)
    np.testing.assert_allclose(gm.em_result_.objective, log_joint_per_row(fitted), rtol=1e-9)
    # The two maxima differ by about 1e-3 per row, as much as tol=1e-3 may leave: both fits
    # run to tol=1e-10 here (tol is not compiled in: same programs).
    tight = {"means_init": start, "tol": 1e-10, "dtype": "float64"}
    map_fit = gp.fit_em(faithful, K, prior="default", **tight)
    ml_fit = gp.fit_em(faithful, K, **tight)
    assert bool(map_fit.converged) and bool(ml_fit.converged)
    assert log_joint_per_row(map_fit.params) > log_joint_per_row(ml_fit.params)
    ml_log_lik, map_log_lik = (scipy_log_likelihood(f.params, faithful, "full").mean() for f in (ml_fit, map_fit))
    assert ml_log_lik > map_log_lik


def test_warm_start_continues_from_the_last_fit(faithful):
    gm = gp.GaussianMixture(2, warm_start=True, max_iter=3, tol=0.0, init_params="random", random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(faithful)
    first = gm.lower_bounds_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(faithful)
    # The second fit starts where the first stopped: its first objective is above the
    # first fit's last one (EM rose in between), not back at a fresh start.
    assert gm.lower_bounds_[0] > first[-1] > first[0]


def test_sample_draws_from_the_fitted_mixture(faithful):
    gm = gp.GaussianMixture(2, n_init=3, random_state=0).fit(faithful)
    X, y = gm.sample(20000)
    assert X.shape == (20000, 2) and set(np.unique(y)) == {0, 1}
    np.testing.assert_allclose(np.bincount(y) / 20000, gm.weights_, atol=0.02)
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(axis=0), gm.means_[k], rtol=0.02)


def test_verbose_prints_the_trace(faithful, capsys):
    gp.GaussianMixture(2, verbose=1, verbose_interval=2, random_state=0).fit(faithful)
    out = capsys.readouterr().out
    assert "Iteration 2" in out and "converged" in out


def test_bad_input(faithful):
    gm = gp.GaussianMixture(2)
    with pytest.raises(NotFittedError):
        gm.predict(faithful)
    gm.fit(faithful)
    with pytest.raises(ValueError, match="features"):
        gm.predict(np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        gm.score_samples(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError):
        gm.predict(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="covariance_type"):
        gp.GaussianMixture(2, covariance_type="VVX").fit(faithful)
    with pytest.raises(ValueError, match="init_params"):
        gp.GaussianMixture(2, init_params="nope").fit(faithful)
    with pytest.raises(ValueError, match="'full precision' should have the shape"):
        gp.GaussianMixture(2, precisions_init=np.ones((2, 3, 3))).fit(faithful)


# -- scikit-learn's documented behaviours, side by side with scikit-learn itself (issue 30) --


def _full_start(x, K, rows):
    """A whole start (weights, means, precisions) both libraries take as it is."""
    return {
        "weights_init": np.full(K, 1 / K),
        "means_init": x[rows],
        "precisions_init": np.stack([np.linalg.inv(np.cov(x.T))] * K),
    }


def test_max_iter_zero_returns_the_start(faithful):
    """max_iter=0 returns the initialisation, without a warning, with scikit-learn's n_iter_,
    converged_ and lower_bound_. Given a whole start, that is the start itself (scikit-learn
    1.9 raises AttributeError there: it never sets covariances_ from precisions_init)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: the start was asked for
        ours = gp.GaussianMixture(2, max_iter=0, random_state=0).fit(faithful)
        theirs = SkGaussianMixture(2, max_iter=0, random_state=0).fit(faithful)
        start = _full_start(faithful, 2, [0, 1])
        given = gp.GaussianMixture(2, max_iter=0, **start).fit(faithful)
    for gm in (ours, theirs, given):
        assert (gm.n_iter_, gm.converged_, gm.lower_bound_) == (0, False, -np.inf)
    assert ours.lower_bounds_ == [] and int(ours.em_result_.n_iter) == 0
    # the start of a one-iteration fit from the same seed: no EM step was taken
    step = gp.GaussianMixture(2, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        step.fit(faithful)
    np.testing.assert_allclose(step.em_result_.trace[0], ours.em_result_.trace[0], rtol=1e-12)
    assert not np.allclose(step.means_, ours.means_, rtol=1e-6)
    np.testing.assert_array_equal(given.means_, start["means_init"])
    np.testing.assert_array_equal(given.weights_, start["weights_init"])
    np.testing.assert_allclose(given.precisions_, start["precisions_init"], rtol=1e-12)


def test_warm_start_with_max_iter_1_converges_as_scikit_learn(faithful):
    """Repeated one-iteration fits from the same start: each call continues the last, its
    change measured from the last lower bound, until converged_, after as many calls as
    scikit-learn, through the same lower bounds; and the bound never goes down."""
    start = _full_start(faithful, 3, [0, 1, 2])
    runs = {}
    for cls in (gp.GaussianMixture, SkGaussianMixture):
        gm = cls(3, max_iter=1, warm_start=True, tol=1e-6, **start)
        bounds, iterations = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(500):
                gm.fit(faithful)
                bounds.append(gm.lower_bound_)
                iterations.append(gm.n_iter_)
                if gm.converged_:
                    break
        runs[cls] = (bounds, iterations, gm.converged_)
    (ours, our_iterations, our_converged), (theirs, _, their_converged) = runs.values()
    assert our_converged and their_converged and len(ours) == len(theirs)
    assert 10 < len(ours) < 500 and set(our_iterations) == {1}  # n_iter_ per call, as scikit-learn
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    assert np.all(np.diff(ours) >= 0)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_a_singular_covariance_raises_scikit_learns_value_error(covariance_type):
    # five identical rows far from the rest: with reg_covar=0 their component collapses
    x = np.vstack([np.zeros((5, 2)), 10 + np.random.default_rng(0).normal(size=(20, 2))])
    options = dict(covariance_type=covariance_type, reg_covar=0, means_init=[[0, 0], [10, 10]])
    with pytest.raises(ValueError) as theirs:
        SkGaussianMixture(2, **options).fit(x)
    with pytest.raises(ValueError) as ours:
        gp.GaussianMixture(2, **options).fit(x)
    assert str(ours.value) == str(theirs.value)
    assert "increase reg_covar" in str(ours.value)


STARTS_REFUSED = {
    "weights of the wrong shape": dict(weights_init=[1.0]),
    "weights not summing to one": dict(weights_init=[0.3, 0.3]),
    "means of the wrong shape": dict(means_init=[[0.0, 0.0, 0.0]]),
    "precisions of the wrong shape": dict(precisions_init=np.eye(2)),
    "precisions not symmetric": dict(precisions_init=np.array([[[1, 0.5], [0, 1]]] * 2)),
    "precisions not positive definite": dict(precisions_init=np.array([[[1, 2], [2, 1]]] * 2)),
    "diagonal precisions not positive": dict(covariance_type="diag", precisions_init=np.array([[1, -1]] * 2)),
    "tied precisions of the wrong shape": dict(covariance_type="tied", precisions_init=np.ones(2)),
}


@pytest.mark.parametrize("case", STARTS_REFUSED)
def test_invalid_starts_are_refused_in_scikit_learns_words(faithful, case):
    with pytest.raises(ValueError) as theirs:
        SkGaussianMixture(2, **STARTS_REFUSED[case]).fit(faithful)
    with pytest.raises(ValueError) as ours:
        gp.GaussianMixture(2, **STARTS_REFUSED[case]).fit(faithful)
    assert str(ours.value) == str(theirs.value)


def test_where_scikit_learns_words_misreport_the_values_ours_do_not(faithful):
    # scikit-learn prints max and min the wrong way round ("max value -0.50000, min value
    # 1.50000"), and n_components for n_samples: the same words with the right values
    with pytest.raises(ValueError, match=r"in the range \[0, 1\], but got max value 1.50000, min value -0.50000"):
        gp.GaussianMixture(2, weights_init=[-0.5, 1.5]).fit(faithful)
    gm = gp.GaussianMixture(2, random_state=0).fit(faithful)
    for n in (0, -3):
        with pytest.raises(ValueError, match=rf"Invalid value for 'n_samples': {n} \. The sampling requires"):
            gm.sample(n)


def test_no_convergence_warns_in_scikit_learns_words(faithful):
    start = _full_start(faithful, 3, [0, 1, 2])
    messages = []
    for cls in (gp.GaussianMixture, SkGaussianMixture):
        with pytest.warns(ConvergenceWarning) as caught:
            gm = cls(3, max_iter=2, **start).fit(faithful)
        assert not gm.converged_
        messages.append([str(w.message) for w in caught if w.category is ConvergenceWarning])
    assert messages[0] == messages[1] and len(messages[0]) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_restarts_are_never_worse(faithful, seed):
    """The first of n_init=10 restarts is the very start n_init=1 takes (restart i's key does
    not depend on n_init), so ten restarts end at least as high."""
    one = gp.GaussianMixture(3, n_init=1, random_state=seed, tol=1e-6).fit(faithful).em_result_
    ten = gp.GaussianMixture(3, n_init=10, random_state=seed, tol=1e-6).fit(faithful).em_result_
    np.testing.assert_allclose(ten.restart_objectives[0], one.objective, rtol=1e-10)
    np.testing.assert_allclose(ten.restart_params.means[0], one.params.means, rtol=1e-9)
    assert ten.objective >= one.objective - 1e-12


def test_float32_data_are_fitted_in_float32(faithful):
    x32 = faithful.astype(np.float32)
    ours = gp.GaussianMixture(2, random_state=0).fit(x32)
    theirs = SkGaussianMixture(2, random_state=0).fit(x32)
    assert ours.dtype_ == "float32" and theirs.means_.dtype == np.float32
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(ours, name).dtype == np.float32, name
    assert gp.GaussianMixture(2, random_state=0).fit(faithful).means_.dtype == np.float64
    assert gp.GaussianMixture(2, random_state=0, dtype="float64").fit(x32).means_.dtype == np.float64
    # the same model as in float64, to float32's accuracy
    ours64 = gp.GaussianMixture(2, random_state=0).fit(faithful)
    np.testing.assert_allclose(ours.means_, ours64.means_, rtol=1e-5)
    assert abs(ours.score(faithful) - ours64.score(faithful)) < 1e-5
