"""``BayesianGaussianMixture``: scikit-learn's variational estimator, fitted by gmm_ppl's VB.

A drop-in for ``sklearn.mixture.BayesianGaussianMixture``: it is that class (the same
constructor, checks, attributes, and the methods that read a fit: predict, score_samples,
sample, ...), with ``fit`` run by ``gmm_ppl.vb``'s compiled coordinate ascent in the
'scikit-learn' variant, every restart batched in one call. The starts are scikit-learn's
own (its k-means, k-means++, random or random_from_data responsibilities, drawn from
``random_state`` in its order), so a fit reproduces scikit-learn's, iteration for iteration.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.base import _fit_context
from sklearn.mixture import BayesianGaussianMixture as _ScikitLearnBGM
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from gmm_ppl import vb
from gmm_ppl.estimator import warn_if_not_converged

_WEIGHT_PRIORS = {"dirichlet_distribution": "dirichlet", "dirichlet_process": "dirichlet_process"}


class BayesianGaussianMixture(_ScikitLearnBGM):
    """Variational Bayesian Gaussian mixture, scikit-learn's estimator fitted by gmm_ppl.

    Arguments, attributes and methods are scikit-learn's (``sklearn.mixture.
    BayesianGaussianMixture``), with their meanings: the Dirichlet or Dirichlet-process
    weights (``weight_concentration_prior_type``), the Wishart-based priors of the four
    covariance types and scikit-learn's approximations for tied, diag and spherical (see
    ``gmm_ppl.vb``, variant 'scikit-learn'). ``fit`` computes in float64 whatever the data's
    dtype, as scikit-learn's does (its priors are float64). For the exact mean-field fit
    under gmm_ppl's ``Prior``, with the ELBO and draws from q, use ``gmm_ppl.fit_vb``.

    Example:
      >>> bgm = gp.BayesianGaussianMixture(n_components=6, random_state=0).fit(x)
      >>> bgm.weights_, bgm.predict(x), bgm.lower_bound_
    """

    def _initialize(self, X, resp):
        # scikit-learn's _initialize_parameters draws a start's responsibilities and hands
        # them here; its own first update (NumPy) makes the start, which fit_predict
        # collects to run every start in one compiled call. (scikit-learn's first update is
        # kept as it is: for tied it takes every row's moments whatever the
        # responsibilities, which its k-means++ and random_from_data starts give to K rows.)
        super()._initialize(X, resp)
        self._starts.append(self._variational_params())

    def _variational_params(self) -> vb.VBParams:
        return vb.VBParams(
            np.asarray(self.weight_concentration_, np.float64),
            np.asarray(self.mean_precision_, np.float64),
            np.asarray(self.means_, np.float64),
            np.broadcast_to(np.asarray(self.degrees_of_freedom_, np.float64), (self.n_components,)),
            np.asarray(self.covariances_, np.float64),
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None):
        """Fit by variational Bayes (``n_init`` starts, batched) and return the labels of X."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        self._check_parameters(X)
        K, N = self.n_components, X.shape[0]
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        weights = _WEIGHT_PRIORS[self.weight_concentration_prior_type]
        concentration = self.weight_concentration_prior_
        prior = vb.VBPrior(
            np.full(K, concentration, np.float64) if weights == "dirichlet" else np.float64(concentration),
            np.asarray(self.mean_prior_, np.float64),
            np.float64(self.mean_precision_prior_),
            np.float64(self.degrees_of_freedom_prior_),
            np.asarray(self.covariance_prior_, np.float64),
        )
        offset = vb.bound_offset(prior, self.covariance_type, weights, "scikit-learn", K, N)
        # float64 whatever X's dtype, as scikit-learn computes (its priors are float64): on
        # 3e5 float32 rows, a float32 bound changed in steps of 0.125 and met tol early
        options = dict(
            n_components=K,
            covariance_type=self.covariance_type,
            weights=weights,
            variant="scikit-learn",
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            dtype=np.float64,
        )
        if do_init:
            self._starts = []
            random_state = check_random_state(self.random_state)
            try:
                for _ in range(self.n_init):
                    self._initialize_parameters(X, random_state)
                starts = vb.VBParams(*(np.stack(parts) for parts in zip(*self._starts, strict=True)))
            finally:
                del self._starts
            runs = vb.run_vb(X, np.ones(N), prior, starts=starts, **options)
        else:
            start = jax.tree.map(lambda a: a[None], self._variational_params())
            previous = float(np.squeeze(self.lower_bound_)) + offset
            runs = vb.run_vb(X, np.ones(N), prior, starts=start, previous=previous, **options)
        values = np.where(np.isnan(runs.value), -np.inf, runs.value)
        # scikit-learn keeps the first start with the highest bound; with max_iter=0 (no
        # bound) the last start
        best = len(values) - 1 if self.max_iter == 0 else int(np.argmax(values))
        q = vb.VBParams(*(np.asarray(a[best]) for a in runs.params))
        n_iter = int(runs.n_iter[best])
        concentration = tuple(q.concentration) if weights == "dirichlet_process" else q.concentration
        dof = q.dof[0] if self.covariance_type == "tied" else q.dof
        self._set_parameters(
            (
                concentration,
                q.mean_precision,
                q.means,
                dof,
                q.covariances,
                _compute_precision_cholesky(q.covariances, self.covariance_type),
            )
        )
        self.n_iter_ = n_iter
        self.converged_ = bool(runs.converged[best])
        self.lower_bound_ = np.float64(-np.inf if self.max_iter == 0 else values[best] - offset)
        self.lower_bounds_ = [np.float64(v - offset) for v in runs.trace[best][:n_iter]]
        if self.verbose:
            self._print_trace(runs, best, offset)
        warn_if_not_converged(self)
        # the labels of a last E-step, as scikit-learn's fit_predict: the same as fit(X).predict(X)
        _, log_resp = self._e_step(X)
        return log_resp.argmax(axis=1)

    def _print_trace(self, runs, best, offset):
        """scikit-learn's verbose lines, printed after the compiled run (no Python runs
        between iterations, so no time lapses)."""
        for i in range(len(runs.n_iter)):
            print(f"Initialization {i}")
            trace = runs.trace[i][: int(runs.n_iter[i])] - offset
            for n_iter in range(self.verbose_interval, len(trace) + 1, self.verbose_interval):
                change = trace[n_iter - 1] - (trace[n_iter - 2] if n_iter > 1 else -np.inf)
                print(f"  Iteration {n_iter}" + (f"\t ll change {change:.5f}" if self.verbose >= 2 else ""))
            if self.max_iter == 0:  # scikit-learn says nothing more of a start it does not run
                continue
            state = "converged" if runs.converged[i] else "did not converge"
            bound = f"\t lower bound {trace[-1]:.5f}." if self.verbose >= 2 and len(trace) else ""
            print(f"Initialization {state}." + bound)
