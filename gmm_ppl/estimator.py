"""``GaussianMixture``: a scikit-learn estimator running gmm_ppl's jitted EM underneath.

A drop-in for ``sklearn.mixture.GaussianMixture``: the same constructor arguments with the
same meanings, the same fitted attributes and methods, plus ``prior`` (MAP-EM) and
``dtype``. There is no second EM here: ``fit`` calls ``gmm_ppl.fit_em``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp, softmax
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from gmm_ppl import _validate, covariance, criteria
from gmm_ppl.density import full_covariances
from gmm_ppl.em import fit_em
from gmm_ppl.likelihood import component_log_prob
from gmm_ppl.params import GMMParams

# scikit-learn's names for the initialisations, and gmm_ppl's own extra ones.
_INIT_NAMES = {
    "kmeans": "kmeans",
    "k-means++": "kmeans++",
    "random": "random",
    "random_from_data": "random_from_data",
    "hierarchical": "hierarchical",
    "mclust": "mclust",
}


def warn_if_not_converged(estimator) -> None:
    """scikit-learn's ConvergenceWarning, in its words, when a fit stopped at max_iter (not
    after max_iter=0, which asks for the start itself)."""
    if not estimator.converged_ and estimator.max_iter > 0:
        warnings.warn(
            "Best performing initialization did not converge. Try different init parameters, "
            "or increase max_iter, tol, or check for degenerate data.",
            ConvergenceWarning,
            stacklevel=3,
        )


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM (maximum likelihood or MAP), scikit-learn's API.

    Parameters have scikit-learn's meanings:

    Args:
      n_components: number of mixture components K.
      covariance_type: 'full' (K, D, D), 'tied' (D, D), 'diag' (K, D) or 'spherical' (K,).
      tol: convergence threshold on the change of the mean per-row objective.
      reg_covar: added to the diagonal of every covariance.
      max_iter: EM iterations per initialisation.
      n_init: initialisations, run batched; the best is kept.
      init_params: 'kmeans' (default), 'k-means++', 'random', 'random_from_data',
        'hierarchical' (Ward's clustering of the standardised data) or 'mclust' (mclust's
        model-based hierarchical agglomeration, ``gmm_ppl.hc``); the last two are
        gmm_ppl's additions, deterministic, one run.
      weights_init, means_init, precisions_init: user-provided starting values. Given
        means make the start deterministic; the missing pieces are estimated from the
        nearest-mean assignment (scikit-learn takes them from a k-means run instead).
      random_state: int, RandomState or None, as in scikit-learn.
      warm_start: start the next ``fit`` from the current solution (then one
        initialisation); its first change is measured from the current ``lower_bound_``, so
        repeated fits with a small ``max_iter`` converge (``converged_``), as in scikit-learn.
        ``n_iter_`` and ``lower_bounds_`` are those of the last call, as in scikit-learn.
      verbose, verbose_interval: print the objective trace every ``verbose_interval``
        iterations (after the compiled run; EM itself runs without Python in the loop).
      prior: None (maximum likelihood), 'default' or a ``gmm_ppl.Prior`` (MAP-EM).
      dtype: None (default: the data's, as scikit-learn: float32 data are fitted in
        float32, anything else in float64), 'float64' or 'float32'.

    Attributes:
      weights_, means_, covariances_, precisions_, precisions_cholesky_: as scikit-learn.
      converged_, n_iter_: whether and after how many iterations the best run converged.
      lower_bound_: objective of the best run before its last M-step (scikit-learn's).
      lower_bounds_: the objective at every iteration of the best run.
      dtype_: the precision the fit computed in ('float32' or 'float64').
      n_features_in_, feature_names_in_: as scikit-learn.
      em_result_: the ``gmm_ppl.EMResult`` (trace, every restart's objective, ...).

    Example:
      >>> gm = gp.GaussianMixture(2, n_init=10, random_state=0).fit(x)
      >>> gm.means_, gm.predict(x), gm.bic(x)
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        prior=None,
        dtype=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.prior = prior
        self.dtype = dtype

    def fit(self, X, y=None):
        """Estimate the parameters by EM. Returns the fitted estimator."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if self.init_params not in _INIT_NAMES:
            raise ValueError(f"unknown init_params {self.init_params!r}; expected one of {list(_INIT_NAMES)}")
        K = _validate.check_int(self.n_components, "n_components")
        covariance.get(self.covariance_type)
        dtype = X.dtype.name if self.dtype is None else _validate.check_dtype(self.dtype)
        start = self._start(X.shape[1], K)
        n_init, previous = self.n_init, None
        if self.warm_start and hasattr(self, "converged_"):
            # scikit-learn's warm start: one run from the last fit, whose first change is
            # measured from the last fit's lower bound, so that repeated short fits converge
            start, n_init = GMMParams(self.weights_, self.means_, self.covariances_), 1
            previous = self.lower_bound_
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        try:
            fit = fit_em(
                X,
                K,
                covariance_type=self.covariance_type,
                key=seed,
                n_init=n_init,
                init=_INIT_NAMES[self.init_params],
                init_params=start,
                prior=self.prior,
                tol=self.tol,
                reg_covar=self.reg_covar,
                max_iter=self.max_iter,
                dtype=dtype,
                previous_objective=previous,
            )
            self._set_fitted(fit)
        except (FloatingPointError, np.linalg.LinAlgError) as error:
            raise ValueError(_ill_defined_message(dtype)) from error
        if self.verbose:
            self._report(fit)
        warn_if_not_converged(self)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then the most probable component of every row (equal to fit(X).predict(X))."""
        return self.fit(X, y).predict(X)

    def _start(self, n_features, K):
        """Starting values given in the constructor, checked with scikit-learn's words, as
        partial ``GMMParams`` (or None)."""
        if self.weights_init is None and self.means_init is None and self.precisions_init is None:
            return None
        weights = None if self.weights_init is None else _check_weights(self.weights_init, K)
        means = None if self.means_init is None else _check_means(self.means_init, K, n_features)
        covariances = None
        if self.precisions_init is not None:
            precisions = _check_precisions(self.precisions_init, self.covariance_type, K, n_features)
            covariances = _inverse(precisions, covariance.get(self.covariance_type).family)
        return GMMParams(weights, means, covariances)

    def _set_fitted(self, fit):
        params = fit.params
        self.em_result_ = fit
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.covariances_ = np.asarray(params.covariances)
        family = covariance.get(self.covariance_type).family
        self.precisions_cholesky_ = _precision_cholesky(self.covariances_, family)
        self.precisions_ = _inverse(self.covariances_, family)
        self.converged_ = bool(fit.converged)
        self.n_iter_ = int(fit.n_iter)
        self.lower_bounds_ = [float(v) for v in fit.trace[: self.n_iter_]]
        # after max_iter=0 there is no iteration's bound: -inf, as scikit-learn
        self.lower_bound_ = self.lower_bounds_[-1] if self.lower_bounds_ else -np.inf
        self.dtype_ = self.means_.dtype.name  # fit_em's results are in the dtype it computed in

    def _report(self, fit):
        trace = np.asarray(fit.trace)
        print(f"Best of {len(fit.restart_objectives)} initialisation(s): restart {int(fit.best_restart)}")
        for i in range(self.verbose_interval, self.n_iter_ + 1, self.verbose_interval):
            print(f"  Iteration {i}\t objective {trace[i]:.6f}\t change {trace[i] - trace[i - 1]:.3e}")
        status = "converged" if self.converged_ else "did not converge"
        print(f"Initialization {status}. objective {trace[self.n_iter_]:.6f}")

    # -- evaluation ---------------------------------------------------------------------

    def _log_prob(self, X):
        """(N, K) log pi_k + log N(x_i | mu_k, Sigma_k), after scikit-learn's checks."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        params = GMMParams(self.weights_, self.means_, self.covariances_)
        # in the precision of the fitted means (also where a user set the attributes by hand)
        if np.asarray(self.means_).dtype == np.float32:
            params = GMMParams(*(np.asarray(a, np.float32) for a in params))
        return np.asarray(component_log_prob(params, X, self.covariance_type), dtype=np.float64)

    def score_samples(self, X):
        """Per-row log density log p(x_i), shape (N,)."""
        return logsumexp(self._log_prob(X), axis=1)

    def score(self, X, y=None):
        """Mean per-row log-likelihood."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities p(z_i = k | x_i), shape (N, K)."""
        return softmax(self._log_prob(X), axis=1)

    def predict(self, X):
        """Most probable component of each row, shape (N,)."""
        return np.argmax(self._log_prob(X), axis=1)

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the fitted mixture: (X (n, D), component labels (n,)),
        grouped by component as scikit-learn does."""
        check_is_fitted(self)
        # scikit-learn's words for a count below 1 (which print n_components there: a known
        # slip); anything not an integer gets check_int's
        if isinstance(n_samples, numbers.Integral) and not isinstance(n_samples, bool) and n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample.")
        n_samples = _validate.check_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        K, D = self.means_.shape
        chol = np.linalg.cholesky(full_covariances(self.covariances_, self.covariance_type, K, D))
        X = np.vstack(
            [m + rng.standard_normal((c, D)) @ L.T for m, L, c in zip(self.means_, chol, counts, strict=True)]
        )
        y = np.repeat(np.arange(K), counts)
        return X, y

    def _n_parameters(self):
        """Free parameters of the fitted model."""
        return covariance.n_free_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    # scikit-learn's contract is smaller-is-better: the library's criteria (mclust's sign,
    # larger is better; gmm_ppl.criteria) negated.

    def bic(self, X):
        """Bayesian information criterion on X: -2 log L + p log N (smaller is better)."""
        n = np.shape(X)[0]
        return -criteria.bic(self.score(X) * n, self._n_parameters(), n)

    def aic(self, X):
        """Akaike information criterion on X: -2 log L + 2 p (smaller is better)."""
        return -criteria.aic(self.score(X) * np.shape(X)[0], self._n_parameters())


def _ill_defined_message(dtype) -> str:
    """scikit-learn's words for a fit whose covariances became singular."""
    message = (
        "Fitting the mixture model failed because some components have ill-defined empirical covariance "
        "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
        "increase reg_covar, or scale the input data."
    )
    if np.dtype(dtype) == np.float32:
        message += " The numerical accuracy can also be improved by passing float64 data instead of float32."
    return message


# The starting values' checks, with scikit-learn's words (sklearn/mixture/_gaussian_mixture.py),
# so that code matching on its messages keeps working.


def _check_shape(array, shape, name):
    if array.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {array.shape}")


def _as_float_array(value, name):
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"The parameter '{name}' must be finite numbers")
    return array.astype(np.float32 if array.dtype == np.float32 else np.float64)


def _check_weights(weights, K):
    weights = _as_float_array(weights, "weights")
    _check_shape(weights, (K,), "weights")
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{weights.max():.5f}, min value {weights.min():.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(abs(1.0 - weights.sum()), 0.0, atol=atol):
        raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {weights.sum():.5f}")
    return weights


def _check_means(means, K, D):
    means = _as_float_array(means, "means")
    _check_shape(means, (K, D), "means")
    return means


def _check_precisions(precisions, covariance_type, K, D):
    """Precisions in the storage shape of ``covariance_type`` (the covariance registry's)."""
    name = f"{covariance_type} precision"
    precisions = _as_float_array(precisions, name)
    cov_type = covariance.get(covariance_type)
    _check_shape(precisions, cov_type.shape(K, D), name)
    if cov_type.family in ("full", "tied"):
        matrices = precisions.reshape(-1, D, D)
        symmetric = np.allclose(matrices, np.swapaxes(matrices, 1, 2))
        if not symmetric or not np.all(np.linalg.eigvalsh(matrices) > 0):
            raise ValueError(f"'{name}' should be symmetric, positive-definite")
    elif np.any(precisions <= 0):
        raise ValueError(f"'{name}' should be positive")
    return precisions


def _inverse(matrices, family):
    """Covariances <-> precisions in the shape of a covariance family."""
    if family in ("full", "tied"):
        return np.linalg.inv(matrices)
    return 1.0 / np.asarray(matrices)


def _precision_cholesky(covariances, family):
    """scikit-learn's ``precisions_cholesky_``: L with L L^T = Sigma^{-1} (upper triangular),
    or 1/sqrt(variance) for diag and spherical."""
    if family not in ("full", "tied"):
        return 1.0 / np.sqrt(covariances)
    chol = np.linalg.cholesky(covariances)
    eye = np.eye(chol.shape[-1], dtype=chol.dtype)
    if family == "tied":
        return solve_triangular(chol, eye, lower=True).T
    return np.stack([solve_triangular(c, eye, lower=True).T for c in chol])
