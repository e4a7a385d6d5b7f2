"""Variational Bayes (``gp.fit_vb``): the ELBO is the ELBO, coordinate ascent never lowers it,
the Dirichlet process empties what the data do not need, and q's draws read as a posterior."""

import jax
import numpy as np
import pytest
from conftest import (
    COVARIANCE_TYPES,
    SMALL_PROBLEMS_BUILD,
    random_params,
    sample_mixture,
    scipy_log_prior,
    spy_on_builds,
)
from scipy import stats
from scipy.special import digamma, logsumexp

import gmm_ppl as gp
from gmm_ppl import programs, vb

WEIGHT_PRIORS = ("dirichlet", "dirichlet_process")


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(3)
    truth = random_params(rng, 3, 3, "full", spread=4.0)
    return sample_mixture(rng, truth, "full", 120)


# -- an independent ELBO, by SciPy ----------------------------------------------------------------


def _q_as_distributions(q, covariance_type, K, D):
    """Per component: (df, scale) of q's inverse-Wishart over Sigma_k (full, tied), or
    (shape, scale) arrays of the inverse-gamma over each variance (diag, spherical), read
    from scikit-learn's parametrisation of q (C_k = E[Lambda_k]^-1) as the textbook forms."""
    dof, cov = np.asarray(q.dof), np.asarray(q.covariances)
    if covariance_type == "full":
        return [(dof[k], dof[k] * cov[k]) for k in range(K)]
    if covariance_type == "tied":  # one Wishart, K nu_k degrees of freedom
        return (K * dof[0], K * dof[0] * cov)
    if covariance_type == "diag":
        return [(dof[k] / 2, dof[k] * cov[k] / 2) for k in range(K)]
    return [(D * dof[k] / 2, D * dof[k] * cov[k] / 2) for k in range(K)]


def _expected_log_weights(q, weights):
    c = np.asarray(q.concentration)
    if weights == "dirichlet":
        return digamma(c) - digamma(c.sum())
    a, b = c
    return digamma(a) - digamma(a + b) + np.concatenate([[0.0], np.cumsum(digamma(b) - digamma(a + b))[:-1]])


def _responsibilities(x, q, covariance_type, weights):
    """q(z) from q(pi) q(mu, Lambda): log rho_ik = E log pi_k + E log|Lambda_k| / 2
    - D log(2 pi) / 2 - E[(x - mu_k)' Lambda_k (x - mu_k)] / 2 (Bishop, eq. 10.46)."""
    K, D = np.shape(q.means)
    forms = _q_as_distributions(q, covariance_type, K, D)
    log_rho = np.empty((len(x), K))
    for k in range(K):
        diff = x - q.means[k]
        if covariance_type in ("full", "tied"):
            df, scale = forms[k] if covariance_type == "full" else forms
            w = np.linalg.inv(scale)  # Wishart scale of Lambda_k
            e_log_det = sum(digamma((df - i) / 2) for i in range(D)) + D * np.log(2) + np.linalg.slogdet(w)[1]
            quad = df * np.einsum("nd,de,ne->n", diff, w, diff)
        else:
            shape, rate = forms[k]
            rate = np.broadcast_to(rate, (D,))
            e_log_det = np.sum(digamma(shape) - np.log(rate))
            quad = np.sum(diff**2 * shape / rate, axis=1)
        quad = quad + D / q.mean_precision[k]
        log_rho[:, k] = 0.5 * e_log_det - 0.5 * D * np.log(2 * np.pi) - 0.5 * quad
    log_rho += _expected_log_weights(q, weights)
    return np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))


def _draw(q, covariance_type, weights, rng):
    """One theta from q, with log q(theta): weights (or sticks), covariances, means."""
    K, D = np.shape(q.means)
    forms = _q_as_distributions(q, covariance_type, K, D)
    if weights == "dirichlet":
        pi = rng.dirichlet(q.concentration)
        log_q = stats.dirichlet(q.concentration).logpdf(pi)
    else:
        a, b = q.concentration
        v = rng.beta(a, b)
        pi = v * np.concatenate([[1.0], np.cumprod(1 - v[:-1])])
        log_q = stats.beta(a, b).logpdf(v).sum()
    if covariance_type == "tied":
        sigma = stats.invwishart(*forms).rvs(random_state=rng).reshape(D, D)
        log_q += stats.invwishart(*forms).logpdf(sigma)
        full = np.broadcast_to(sigma, (K, D, D))
    else:
        full = []
        for k in range(K):
            if covariance_type == "full":
                s = stats.invwishart(*forms[k]).rvs(random_state=rng).reshape(D, D)
                log_q += stats.invwishart(*forms[k]).logpdf(s)
                full.append(s)
            else:
                shape, scale = forms[k]
                var = stats.invgamma(shape, scale=scale).rvs(
                    size=D if covariance_type == "diag" else 1, random_state=rng
                )
                log_q += stats.invgamma(shape, scale=scale).logpdf(var).sum()
                full.append(np.diag(np.broadcast_to(var, (D,))))
        full = np.stack(full)
    means = np.stack([rng.multivariate_normal(q.means[k], full[k] / q.mean_precision[k]) for k in range(K)])
    log_q += sum(
        stats.multivariate_normal(q.means[k], full[k] / q.mean_precision[k]).logpdf(means[k]) for k in range(K)
    )
    stored = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2)}
    cov = stored.get(covariance_type, full[:, 0, 0])
    return pi, means, cov, full, v if weights != "dirichlet" else None, log_q


def scipy_elbo_at_draw(x, r, q_new, covariance_type, weights, prior, concentration, rng):
    """H(r) + sum_ik r_ik log[pi_k N(x_i | mu_k, Sigma_k)] + log p(theta) - log q(theta) at
    one theta ~ q_new. When q_new is the optimal q(theta) for q(z) = r, this is the same for
    every theta, and equals the ELBO at (r, q_new)."""
    pi, means, cov, full, sticks, log_q = _draw(q_new, covariance_type, weights, rng)
    log_joint = np.log(pi) + np.stack(
        [stats.multivariate_normal(means[k], full[k]).logpdf(x) for k in range(len(pi))], axis=1
    )
    entropy = -np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0))
    params = gp.GMMParams(pi / pi.sum(), means, cov)
    log_prior = scipy_log_prior(params, covariance_type, prior)
    if weights == "dirichlet_process":  # sticks' Beta(1, gamma) in place of the Dirichlet
        log_prior -= stats.dirichlet(np.asarray(prior.alpha, float)).logpdf(pi / pi.sum())
        log_prior += stats.beta(1.0, concentration).logpdf(sticks).sum()
    return entropy + np.sum(r * log_joint) + log_prior - log_q


@pytest.mark.parametrize("weights", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_elbo_is_the_elbo_of_scipys_densities(simulated, covariance_type, weights):
    """Iteration m + 1's value, against SciPy: q(z) from q_m by Bishop's expectations, q_m+1
    from the update, and the ELBO at a draw from q_m+1 of the prior's and q's densities.
    The identity holds at every draw only if q_m+1 is q(theta)'s exact optimum given q(z)."""
    x, K = simulated, 3
    prior = gp.default_prior(x, K)
    concentration = None if weights == "dirichlet" else 0.5
    fit = gp.fit_vb(
        x,
        K,
        covariance_type=covariance_type,
        weights=weights,
        concentration=concentration,
        max_iter=4,
        n_draws=0,
        key=1,
    )
    q_m = fit.q
    vb_prior = vb.from_prior(prior, covariance_type, weights, concentration)
    runs = vb.run_vb(
        x,
        np.ones(len(x)),
        vb_prior,
        n_components=K,
        covariance_type=covariance_type,
        weights=weights,
        variant="exact",
        tol=0.0,
        reg_covar=0.0,
        max_iter=1,
        dtype=np.float64,
        starts=vb.VBParams(*(np.asarray(a)[None] for a in q_m)),
    )
    q_new = vb.VBParams(*(np.asarray(a)[0] for a in runs.params))
    value = float(runs.trace[0, 0])
    r = _responsibilities(x, q_m, covariance_type, weights)
    rng = np.random.default_rng(0)
    at_draws = [scipy_elbo_at_draw(x, r, q_new, covariance_type, weights, prior, concentration, rng) for _ in range(3)]
    np.testing.assert_allclose(at_draws, value, rtol=1e-9)


# -- coordinate ascent --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weights", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_elbo_never_decreases(simulated, covariance_type, weights, seed):
    """Every iteration of every restart (vb.run_vb keeps them all): the trace never goes down
    (beyond rounding, 1e-10 of its size)."""
    options = dict(covariance_type=covariance_type, weights=weights, n_init=3, key=seed, max_iter=150, tol=1e-8)
    fit = gp.fit_vb(simulated, 5, n_draws=0, **options)
    prior = vb.from_prior(gp.default_prior(simulated, 5), covariance_type, weights, fit.concentration)
    runs = vb.run_vb(simulated, np.ones(len(simulated)), prior, n_components=5, variant="exact", reg_covar=0.0,
                     dtype=np.float64, **{**options, "key": gp._validate.as_key(seed)})  # fmt: skip
    for trace, n_iter in zip(runs.trace, runs.n_iter, strict=True):
        trace = trace[:n_iter]
        assert n_iter > 3 and np.all(np.isfinite(trace))
        assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[-1]))
    # The kept restart's last step. To the last bits: the quick build (a small fit's, see
    # gmm_ppl.programs) can round the run's ELBO and its trace entry apart by an ulp; the
    # step before differs by about tol (1e-8), a million times more.
    assert fit.elbo == pytest.approx(fit.trace[fit.n_iter - 1], rel=4 * np.finfo(float).eps, abs=0)


def test_the_dirichlet_process_empties_the_components_the_data_do_not_need():
    """Three separated clusters fitted with K = 8 sticks: three components keep the rows,
    the other five next to no weight, and the three means are the clusters'."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    x = np.concatenate([c + rng.normal(size=(100, 2)) for c in centres])
    fit = gp.fit_vb(
        x, 8, weights="dirichlet_process", concentration=0.1, n_init=10, key=0, max_iter=1000, tol=1e-6, n_draws=0
    )
    kept = fit.params.weights > 0.01
    assert kept.sum() == 3
    assert np.sort(fit.params.weights[kept]) == pytest.approx(np.full(3, 1 / 3), abs=0.01)
    np.testing.assert_allclose(np.sort(fit.params.means[kept], axis=0), np.sort(centres, axis=0), atol=0.3)
    assert fit.params.weights[~kept].sum() < 0.01


def test_integer_sample_weights_are_copies_of_rows(simulated):
    counts = np.random.default_rng(0).integers(1, 4, size=len(simulated))
    # different starts (the seeding draws rows by weight), so many: both reach the best optimum
    options = dict(covariance_type="diag", n_draws=0, tol=1e-10, max_iter=1000, n_init=10, key=2)
    weighted = gp.fit_vb(simulated, 3, sample_weight=counts, prior=gp.default_prior(simulated, 3), **options)
    copies = gp.fit_vb(np.repeat(simulated, counts, axis=0), 3, prior=gp.default_prior(simulated, 3), **options)
    order = [np.argsort(f.params.means[:, 0]) for f in (weighted, copies)]
    for a, b in zip(weighted.params, copies.params, strict=True):
        np.testing.assert_allclose(np.asarray(a)[order[0]], np.asarray(b)[order[1]], rtol=1e-6)
    assert weighted.elbo == pytest.approx(copies.elbo, rel=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_the_quick_build_fits_as_the_optimised_build_does(simulated, covariance_type, monkeypatch):
    """A small VB fit takes the quick-to-compile build on a CPU, as fit_em's does
    (gmm_ppl.programs); with the bound at 0 the same fit takes the optimised build, and both
    reach the same q. 120 rows x 3 features x 3 components x 2 restarts touch 2,160
    elements a pass; a max_iter of 3100 counts as 66,960, beyond the bound of 2^16."""
    called = []
    monkeypatch.setattr(vb, "_vb_program", spy_on_builds(vb._vb_program, called))
    options = dict(covariance_type=covariance_type, n_init=2, key=1, n_draws=0, tol=1e-8, max_iter=200)
    quick = gp.fit_vb(simulated, 3, **options)
    gp.fit_vb(simulated, 3, **{**options, "max_iter": 3100})
    monkeypatch.setattr(programs, "QUICK_MAX_WORK", 0)
    optimised = gp.fit_vb(simulated, 3, **options)
    assert called == [SMALL_PROBLEMS_BUILD, "optimised", "optimised"]
    assert quick.n_iter == optimised.n_iter and quick.n_iter < 200
    assert quick.elbo == pytest.approx(optimised.elbo, rel=1e-12)
    for a, b in zip(jax.tree.leaves(quick.q), jax.tree.leaves(optimised.q), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_degenerate_data_fit_without_crashing(covariance_type):
    """Duplicate rows and a constant column: the prior keeps q proper (no reg_covar)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.repeat(rng.normal(size=(5, 2)), 20, axis=0), np.ones((100, 1))], axis=1)
    fit = gp.fit_vb(x, 3, covariance_type=covariance_type, n_draws=0, key=0)
    assert np.isfinite(fit.elbo) and np.all(np.isfinite(fit.params.covariances))


def test_bad_input_is_refused_by_name(simulated):
    with pytest.raises(ValueError, match="'VVE' has no variational Bayes"):
        gp.fit_vb(simulated, 2, covariance_type="VVE")
    with pytest.raises(ValueError, match="unknown covariance_type|unknown covariance"):
        gp.fit_vb(simulated, 2, covariance_type="banana")
    with pytest.raises(ValueError, match="weights must be one of"):
        gp.fit_vb(simulated, 2, weights="pitman-yor")
    with pytest.raises(ValueError, match="concentration is the Dirichlet process's"):
        gp.fit_vb(simulated, 2, concentration=0.5)
    with pytest.raises(ValueError, match="NaN|finite"):
        gp.fit_vb(np.where(np.eye(len(simulated), 3, dtype=bool), np.nan, simulated), 2)
    with pytest.raises(ValueError, match="n_components"):
        gp.fit_vb(simulated[:2], 3)
    with pytest.raises(ValueError, match="unknown init"):
        gp.fit_vb(simulated, 2, init="mclust")


# -- q as a posterior ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faithful_vb(faithful):
    return gp.fit_vb(
        faithful, 2, n_init=3, key=0, n_draws=4000, tol=1e-8, max_iter=500, feature_names=["eruptions", "waiting"]
    )


def test_draws_from_q_have_q_s_moments(faithful_vb):
    """The draws' means against q's closed forms: E[mu_k] = m_k, E[pi] = alpha / sum(alpha),
    E[Sigma_k] = nu C_k / (nu - D - 1) (the inverse-Wishart's mean), each within five
    standard errors of 4000 draws."""
    q, post = faithful_vb.q, faithful_vb.idata.posterior
    D = q.means.shape[1]
    draws = {n: post[n].values.reshape(-1, *post[n].shape[2:]) for n in ("weights", "means", "covariances")}
    for name, expected in [
        ("weights", q.concentration / q.concentration.sum()),
        ("means", q.means),
        ("covariances", q.dof[:, None, None] * q.covariances / (q.dof - D - 1)[:, None, None]),
    ]:
        sample = draws[name]
        assert np.all(np.abs(sample.mean(0) - expected) <= 5 * sample.std(0) / np.sqrt(len(sample)) + 1e-12)


def test_q_s_inference_data_has_the_posterior_s_groups_and_dims(faithful_vb, faithful):
    idata = faithful_vb.idata
    nuts = gp.sample_posterior(
        faithful, 2, num_warmup=20, num_samples=20, num_chains=2, key=0, feature_names=["eruptions", "waiting"]
    )
    for group in ("posterior", "log_likelihood", "observed_data", "constant_data"):
        assert set(idata[group].data_vars) == set(nuts[group].data_vars)
        for name in idata[group].data_vars:
            assert idata[group][name].dims == nuts[group][name].dims
    assert idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] == 4000
    assert idata.attrs["form"] == "variational"
    # the pointwise log-likelihood of the draws, by SciPy for one draw
    w, m, c = (idata.posterior[n].values[1, 7] for n in ("weights", "means", "covariances"))
    by_scipy = logsumexp(
        np.log(w) + np.stack([stats.multivariate_normal(m[k], c[k]).logpdf(faithful) for k in range(2)], axis=1), axis=1
    )
    np.testing.assert_allclose(idata.log_likelihood["x"].values[1, 7], by_scipy, rtol=1e-10)


def test_compare_and_arviz_read_q_as_they_read_a_posterior(faithful_vb, faithful):
    """gp.compare sets EM beside q entry by entry; on Old Faithful, K=2, the ML fit lies in
    q's 94% interval for every mean, and ArviZ summarises q's draws (r_hat of independent
    draws 1 to within 0.01)."""
    import arviz as az

    fit = gp.fit_em(faithful, 2, n_init=5, key=0, dtype="float64", tol=1e-8)
    table = gp.compare(fit, faithful_vb.idata)
    means = table.parameters.loc[[i for i in table.parameters.index if i.startswith("means")]]
    assert len(means) == 4 and means["ml_in_hdi"].all()
    summary = az.summary(faithful_vb.idata, var_names=["means"])
    assert np.all(np.abs(summary["r_hat"] - 1) <= 0.01)
