"""EM's standard errors from the observed information (gmm_ppl.uncertainty), against two
computations that share nothing with the library's chart or autodiff of its objective:

- finite differences of SciPy's log-likelihood (plus SciPy's log-prior for MAP) in the
  natural parameters (the first K - 1 weights, the means, the covariances' free entries);
- Louis' (1982) formula, I = sum_i E[-Hessian of log p(x_i, z_i)] - Cov[gradient of
  log p(x_i, z_i)] over z_i's posterior, from the complete-data density written here.

At a stationary point the delta method's standard errors do not depend on the
parameterisation, so all three must agree."""

import dataclasses
import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import scipy_log_likelihood, scipy_log_prior

import gmm_ppl as gp

OPTIONS = dict(tol=1e-13, max_iter=5000, reg_covar=0.0, dtype="float64", n_init=3, key=0)


def natural(params, code):
    """(the free natural parameters as a vector, and the map from such a vector back)."""
    K, D = params.means.shape
    family = gp.covariance.get(code).family
    rows, cols = np.tril_indices(D)

    def to_params(phi):
        w = np.append(phi[: K - 1], 1 - np.sum(phi[: K - 1]))
        means = phi[K - 1 : K - 1 + K * D].reshape(K, D)
        rest = phi[K - 1 + K * D :]
        if family == "full":
            cov = np.zeros((K, D, D))
            cov[:, rows, cols] = rest.reshape(K, -1)
            cov[:, cols, rows] = rest.reshape(K, -1)
        elif code == "EII":
            cov = np.full(K, rest[0])
        else:
            raise NotImplementedError(code)
        return gp.GMMParams(w, means, cov)

    cov = np.asarray(params.covariances)
    rest = cov[:, rows, cols].ravel() if family == "full" else cov[:1]
    return np.concatenate([params.weights[: K - 1], np.ravel(params.means), rest]), to_params


def finite_difference_errors(fit, x, code):
    """Standard errors of (weights, means) from a central-difference Hessian of SciPy's
    log-likelihood (+ log-prior) in the natural parameters."""
    phi0, to_params = natural(gp.GMMParams(*(np.asarray(a) for a in fit.params)), code)

    def value(phi):
        p = to_params(phi)
        total = float(np.sum(scipy_log_likelihood(p, x, code)))
        return total if fit.prior is None else total + scipy_log_prior(p, code, fit.prior)

    h = 1e-4 * np.maximum(np.abs(phi0), 1e-2)
    n = len(phi0)
    hessian = np.zeros((n, n))
    for i, j in itertools.combinations_with_replacement(range(n), 2):
        ei, ej = np.eye(n)[i] * h[i], np.eye(n)[j] * h[j]
        hessian[i, j] = hessian[j, i] = (
            value(phi0 + ei + ej) - value(phi0 + ei - ej) - value(phi0 - ei + ej) + value(phi0 - ei - ej)
        ) / (4 * h[i] * h[j])
    cov = np.linalg.inv(-hessian)
    K, D = fit.params.means.shape
    # the last weight is 1 - the others: its variance is 1^T C 1 over the first K - 1
    weights = np.append(np.sqrt(np.diag(cov)[: K - 1]), np.sqrt(np.sum(cov[: K - 1, : K - 1])))
    means = np.sqrt(np.diag(cov)[K - 1 : K - 1 + K * D]).reshape(K, D)
    return weights, means


@pytest.fixture(scope="module")
def faithful64(faithful):
    return np.asarray(faithful, np.float64)


@pytest.mark.parametrize(("code", "prior"), [("full", None), ("full", "default"), ("EII", None)])
def test_standard_errors_are_those_of_finite_differences_of_scipys_log_likelihood(faithful64, code, prior):
    fit = gp.fit_em(faithful64, 2, covariance_type=code, prior=prior, **OPTIONS)
    ours = gp.em_standard_errors(fit, faithful64)
    weights, means = finite_difference_errors(fit, faithful64, code)
    np.testing.assert_allclose(ours.params.weights, weights, rtol=1e-4)
    np.testing.assert_allclose(ours.params.means, means, rtol=1e-4)
    assert ours.information.shape[0] == gp.n_free_parameters(2, 2, code)


def test_the_information_is_louis(faithful64):
    """Louis' formula in the natural parameters of a full mixture, from the complete-data
    density, gives the same standard errors."""
    x = faithful64
    fit = gp.fit_em(x, 2, covariance_type="full", **OPTIONS)
    phi0, _ = natural(gp.GMMParams(*(np.asarray(a) for a in fit.params)), "full")
    K, D = 2, 2
    rows, cols = np.tril_indices(D)

    def complete(phi, row, k):
        """log p(x_row, z = k | phi)."""
        w = jnp.append(phi[: K - 1], 1 - jnp.sum(phi[: K - 1]))
        means = phi[K - 1 : K - 1 + K * D].reshape(K, D)
        entries = phi[K - 1 + K * D :].reshape(K, -1)
        cov = jnp.zeros((K, D, D)).at[:, rows, cols].set(entries).at[:, cols, rows].set(entries)
        return jnp.log(w[k]) + jax.scipy.stats.multivariate_normal.logpdf(row, means[k], cov[k])

    @jax.jit  # one program: run op by op, JAX compiled about a thousand small ones (22 s)
    def per_row_and_component(phi, data):
        def each(f):
            return jax.vmap(lambda k: jax.vmap(lambda r: f(phi, r, k))(data))(jnp.arange(K))

        return each(jax.grad(complete)), each(jax.hessian(complete)), jax.nn.softmax(each(complete), axis=0)

    with jax.enable_x64(True):
        grads, hessians, resp = (np.asarray(a) for a in per_row_and_component(jnp.asarray(phi0), jnp.asarray(x)))
    expected_neg_hessian = -np.einsum("kn,knij->ij", resp, hessians)
    mean_grad = np.einsum("kn,kni->ni", resp, grads)
    second = np.einsum("kn,kni,knj->ij", resp, grads, grads) - np.einsum("ni,nj->ij", mean_grad, mean_grad)
    cov = np.linalg.inv(expected_neg_hessian - second)
    ours = gp.em_standard_errors(fit, x)
    np.testing.assert_allclose(ours.params.means.ravel(), np.sqrt(np.diag(cov)[K - 1 : K - 1 + K * D]), rtol=1e-6)
    np.testing.assert_allclose(ours.params.weights[0], np.sqrt(cov[0, 0]), rtol=1e-6)
    full_entries = np.sqrt(np.diag(cov)[K - 1 + K * D :]).reshape(K, -1)
    np.testing.assert_allclose(ours.params.covariances[:, rows, cols], full_entries, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("code", ["tied", "diag", "spherical", "VEV", "EVE"])
def test_every_structure_has_its_free_parameter_count_and_finite_errors(faithful64, code):
    fit = gp.fit_em(faithful64, 2, covariance_type=code, **OPTIONS)
    se = gp.em_standard_errors(fit, faithful64)
    assert se.information.shape[0] == gp.n_free_parameters(2, 2, code)
    for estimate, error in zip(fit.params, se.params, strict=True):
        assert np.shape(error) == np.shape(estimate) and np.all(np.isfinite(error))
    np.testing.assert_allclose(se.params.weights[0], se.params.weights[1], rtol=1e-8)  # w2 = 1 - w1
    lower, upper = se.intervals(fit, 0.9)
    assert np.all(lower.means < fit.params.means) and np.all(fit.params.means < upper.means)


def test_a_component_without_weight_has_no_information(faithful64):
    fit = gp.fit_em(faithful64, 2, **OPTIONS)
    emptied = fit.params._replace(weights=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="weight 0"):
        gp.em_standard_errors(dataclasses.replace(fit, params=emptied), faithful64)


BOOTSTRAP = json.loads((Path(__file__).parent / "mclust" / "bootstrap.json").read_text())


@pytest.fixture(scope="module")
def faithful_fit(faithful64):
    fit = gp.fit_em(faithful64, 2, **OPTIONS)
    # mclust's component order: its first component has the longer eruptions
    order = np.argsort(-fit.params.means[:, 0])
    return fit, order


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "mclust_type"), [("nonparametric", "bs"), ("weighted", "wlbs")])
def test_bootstrap_standard_errors_are_mclusts(faithful64, faithful_fit, kind, mclust_type):
    """Against mclust's MclustBootstrap (999 replicates, tests/mclust/bootstrap.R), ours with
    500: Monte Carlo error of a standard deviation from n replicates is about 1 / sqrt(2 n),
    3% and 2%, so the two agree to 10% (weights, means) and 15% (covariance entries)."""
    fit, order = faithful_fit
    # the same fit (mclust stops EM by its looser rule: 7e-5 apart)
    np.testing.assert_allclose(fit.params.means[order], BOOTSTRAP["means"], rtol=1e-4)
    boot = gp.bootstrap_em(fit, faithful64, 500, kind=kind, key=1)
    assert boot.converged.all()
    se, theirs = boot.standard_errors, BOOTSTRAP[mclust_type]
    np.testing.assert_allclose(se.weights[order], theirs["weights"], rtol=0.10)
    np.testing.assert_allclose(se.means[order], theirs["means"], rtol=0.10)
    np.testing.assert_allclose(se.covariances[order], theirs["covariances"], rtol=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_bootstrap_agrees_with_the_observed_information(faithful64, faithful_fit, kind):
    fit, _ = faithful_fit
    boot = gp.bootstrap_em(fit, faithful64, 500, kind=kind, key=2)
    information = gp.em_standard_errors(fit, faithful64)
    np.testing.assert_allclose(boot.standard_errors.means, information.params.means, rtol=0.15)
    np.testing.assert_allclose(boot.standard_errors.weights, information.params.weights, rtol=0.15)
    lower, upper = boot.intervals(0.9)
    assert np.all(lower.means < fit.params.means) and np.all(fit.params.means < upper.means)


def test_bootstrap_refuses_an_unknown_kind(faithful64):
    fit = gp.fit_em(faithful64, 2, **OPTIONS)
    with pytest.raises(ValueError, match="kind must be one of"):
        gp.bootstrap_em(fit, faithful64, 10, kind="jackknife")


def test_a_replicate_that_collapses_is_left_out_not_fatal():
    """Two overlapping components, 200 rows (benchmarks/coverage.py's data set 64): at
    reg_covar=0 one of 200 nonparametric replicates collapses a component and ends with NaN
    parameters. It is reported (``finite``) and left out of the errors and intervals, which
    are those of the other 199 (NumPy); it used to stop the whole bootstrap with SciPy's
    'matrix contains invalid numeric entries'."""
    rng = np.random.default_rng(64)
    means = np.array([[0.0, 0.0], [2.6, 0.5]])
    chol = np.linalg.cholesky(np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.2]]]))
    z = rng.choice(2, size=200, p=[0.4, 0.6])
    x = means[z] + np.einsum("nde,ne->nd", chol[z], rng.standard_normal((200, 2)))
    fit = gp.fit_em(x, 2, n_init=5, key=64, dtype="float64", tol=1e-9, max_iter=2000)
    boot = gp.bootstrap_em(fit, x, 200, key=64)
    assert boot.finite.sum() == 199
    kept = np.asarray(boot.replicates.means)[boot.finite]
    np.testing.assert_allclose(boot.standard_errors.means, kept.std(axis=0, ddof=1), rtol=1e-12)
    low, high = boot.intervals(0.9)
    np.testing.assert_allclose(low.means, np.percentile(kept, 5, axis=0), rtol=1e-12)
    assert np.all(np.isfinite(high.covariances))
