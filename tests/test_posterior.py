"""NUTS over the declared model: structure of the output, relabelling, assignment
posteriors, the comparison with EM, the documentation's numbers on Old Faithful, and calibration
on data simulated from the model."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_params, sample_mixture, scipy_log_joint
from scipy import stats
from scipy.special import gammaln, logsumexp, softmax
from sklearn.metrics import adjusted_rand_score

import gmm_ppl as gp
from gmm_ppl import _validate, posterior, programs

# Small runs: one compiled program per shape, shared by the tests below.
SMALL = {"num_warmup": 300, "num_samples": 300, "num_chains": 2}
PARAMETERS = ("weights", "means", "covariances")


@pytest.fixture(scope="module")
def em_fit(faithful):
    return gp.fit_em(faithful, 2, n_init=5, key=0, dtype="float64")


# ML-EM and MAP-EM (under the default prior) run to their optima: no regularisation, a tight tolerance.
TO_THE_OPTIMUM = {"n_init": 3, "tol": 1e-12, "max_iter": 2000, "reg_covar": 0.0, "dtype": "float64"}


@pytest.fixture(scope="module")
def ml_fit(faithful):
    return gp.fit_em(faithful, 2, **TO_THE_OPTIMUM)


@pytest.fixture(scope="module")
def map_fit(faithful):
    return gp.fit_em(faithful, 2, prior=gp.default_prior(faithful, 2), **TO_THE_OPTIMUM)


@pytest.fixture(scope="module")
def idata(faithful, em_fit):
    return gp.sample_posterior(faithful, 2, key=1, reference=em_fit, feature_names=["eruptions", "waiting"], **SMALL)


def _mixture_logpdf(x, weights, means, full):
    """log p(x_i) of one parameter set, by SciPy (independent of the library)."""
    return logsumexp(scipy_log_joint(x, weights, means, full), axis=1)


def _log_gaussians(x, means, covariances):
    """(M, N, K) log N(x_i | mu_k, Sigma_k) for M parameter sets, by hand in NumPy."""
    inv = np.linalg.inv(covariances)  # (M, K, D, D)
    _, logdet = np.linalg.slogdet(covariances)  # (M, K)
    diff = x[None, :, None, :] - means[:, None, :, :]  # (M, N, K, D)
    maha = np.einsum("mnkd,mkde,mnke->mnk", diff, inv, diff)
    return -0.5 * (maha + logdet[:, None, :] + x.shape[1] * np.log(2 * np.pi))


def _flat(idata, name):
    """(chains x draws, ...) of a posterior variable."""
    values = idata.posterior[name].values
    return values.reshape(-1, *values.shape[2:])


def test_inference_data_has_named_groups_and_dims(idata, faithful):
    post = idata.posterior
    assert {"weights", "means", "covariances"} <= set(post.data_vars)
    assert "z" not in post.data_vars
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature2")
    assert post.sizes == {"chain": 2, "draw": 300, "component": 2, "feature": 2, "feature2": 2}
    assert list(post["feature"].values) == ["eruptions", "waiting"]
    assert idata.log_likelihood["x"].shape == (2, 300, faithful.shape[0])
    np.testing.assert_array_equal(idata.observed_data["x"].values, faithful)
    assert {"diverging", "energy", "n_steps", "step_size", "lp", "relabel"} <= set(idata.sample_stats.data_vars)
    raw = idata.unrelabelled_posterior
    # Relabelling only permutes components: the same multiset of weights in every draw.
    np.testing.assert_allclose(np.sort(raw["weights"].values, -1), np.sort(post["weights"].values, -1))
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0, rtol=1e-12)
    assert idata.attrs["covariance_type"] == "full" and idata.attrs["form"] == "marginal"


def test_pointwise_log_likelihood_is_the_marginal_density_of_each_draw(idata, faithful):
    post = idata.posterior
    for chain, draw in [(0, 0), (1, 150), (0, 299)]:
        w, m, c = (post[n].values[chain, draw] for n in ("weights", "means", "covariances"))
        expected = _mixture_logpdf(faithful, w, m, c)
        np.testing.assert_allclose(idata.log_likelihood["x"].values[chain, draw], expected, rtol=1e-10)


def test_loo_from_the_library_matches_a_direct_importance_sampling_computation(idata):
    """PSIS-LOO from az.loo against plain importance-sampling LOO computed here:
    elpd_i = -log mean_s 1 / p(x_i | theta_s). With every Pareto k small they agree closely."""
    loo = az.loo(idata, pointwise=True)
    assert np.all(loo.pareto_k.values < 0.7)
    ll = idata.log_likelihood["x"].values.reshape(-1, idata.log_likelihood.sizes["row"])
    direct = -(logsumexp(-ll, axis=0) - np.log(ll.shape[0]))
    np.testing.assert_allclose(loo.loo_i.values, direct, atol=0.05)
    np.testing.assert_allclose(float(loo["elpd_loo"]), direct.sum(), rtol=2e-3)


def test_assignment_probabilities_closed_form_and_enumeration_agree(idata, em_fit, faithful):
    closed = gp.assignment_probabilities(idata)
    enumerated = gp.assignment_probabilities(idata, method="enumeration", key=5)
    # The closed form is the mean over draws of p(z_i = k | x_i, draw): here by hand in NumPy.
    w, m, c = (_flat(idata, n) for n in PARAMETERS)
    by_hand = softmax(np.log(w)[:, None, :] + _log_gaussians(faithful, m, c), axis=2).mean(axis=0)
    # Measured: 2e-14 relative at most (exponentials of log densities, averaged over 600 draws).
    np.testing.assert_allclose(closed["probability"].values, by_hand, rtol=1e-12, atol=1e-15)
    # Each enumerated estimate is a frequency over 600 draws: binomial error at most 0.5/sqrt(600).
    assert float(np.abs(closed["probability"] - enumerated["probability"]).max()) < 5 * 0.5 / np.sqrt(600)
    # Close to EM's responsibilities on this well-separated data, most rows near certain.
    em = gp.responsibilities(em_fit.params, faithful)
    assert np.abs(closed["probability"].values - em).max() < 0.15
    assert float((closed["entropy"] < 0.1).mean()) > 0.8


def test_compare_sets_both_em_fits_beside_the_posterior(idata, em_fit, faithful):
    # MAP-EM under the posterior's prior, started from em_fit, to set beside it.
    map_fit = gp.fit_em(
        idata.observed_data["x"].values,
        2,
        covariance_type=idata.attrs["covariance_type"],
        init_params=em_fit.params,
        prior=posterior.prior_of(idata),
        tol=1e-6,
        max_iter=500,
        dtype="float64",
    )
    table = gp.compare([em_fit, map_fit], idata, x_test=faithful[:40])
    p = table.parameters
    assert len(p) == 2 + 4 + 8
    assert list(p.columns[:2]) == ["em_ml", "em_map"]
    # The posterior was relabelled to em_fit, so the EM column keeps em_fit's labels.
    assert p.loc["means[0, waiting]", "em_ml"] == pytest.approx(em_fit.params.means[0, 1], rel=1e-12)
    assert p["ml_in_hdi"].all() and p["map_in_hdi"].all()
    assert (p["hdi_low"] <= p["mean"]).all() and (p["mean"] <= p["hdi_high"]).all()
    s = table.summary["value"]
    # The adjusted Rand index of EM's labels (SciPy) against the posterior's (the draws'
    # responsibilities averaged, by hand), by scikit-learn.
    w, m, c = (_flat(idata, n) for n in PARAMETERS)
    posterior_labels = softmax(np.log(w)[:, None, :] + _log_gaussians(faithful, m, c), axis=2).mean(0).argmax(1)
    em_labels = scipy_log_joint(faithful, *em_fit.params).argmax(axis=1)
    assert s["adjusted_rand_index"] == adjusted_rand_score(em_labels, posterior_labels)
    # mclust's log-likelihood of VVV, G=2 on Old Faithful, and BIC from it by hand (11 parameters).
    assert s["em_ml_log_likelihood"] == pytest.approx(-1130.264, abs=1e-3)
    assert s["em_ml_bic"] == pytest.approx(-2 * 1130.264 - 11 * np.log(272), abs=2e-3)  # mclust's sign
    assert s["em_map_log_likelihood"] < s["em_ml_log_likelihood"]
    assert "looic" not in s.index  # -2 elpd_loo, the other sign: az.loo gives it
    assert np.isfinite([s["heldout_lpd_em_ml"], s["heldout_lpd_posterior"]]).all()
    assert "| weights[0] |" in table.to_markdown()
    assert len(table.assignments) == faithful.shape[0]


def test_compare_sets_the_wald_and_bootstrap_intervals_beside_the_posterior(idata, ml_fit, faithful):
    """The first fit's standard errors (em_standard_errors) and bootstrap (bootstrap_em), in
    the posterior's labelling; on these data the posterior sd of the means is the standard
    error to within 30% (NUTS's sd from 600 draws, the bootstrap's from 200)."""
    boot = gp.bootstrap_em(ml_fit, faithful, 200, key=0)
    table = gp.compare(ml_fit, idata, wald=True, bootstrap=boot, hdi_prob=0.9)
    p = table.parameters
    assert list(p.columns[:7]) == ["em_ml", "em_se", "wald_low", "wald_high", "boot_sd", "boot_low", "boot_high"]
    se, boot_sd = gp.em_standard_errors(ml_fit, faithful).params, boot.standard_errors
    for k in range(2):
        for d, name in enumerate(["eruptions", "waiting"]):
            row = p.loc[f"means[{k}, {name}]"]
            j = int(np.argmin(np.abs(ml_fit.params.means[:, d] - row["em_ml"])))  # the fit's component
            assert row["em_ml"] == ml_fit.params.means[j, d]
            assert row["em_se"] == pytest.approx(se.means[j, d], rel=1e-12)
            assert row["boot_sd"] == pytest.approx(boot_sd.means[j, d], rel=1e-12)
            z = 1.6448536269514722  # the normal's 95th percentile: a 90% interval
            assert row["wald_low"] == pytest.approx(row["em_ml"] - z * row["em_se"], rel=1e-12)
            assert row["boot_low"] < row["em_ml"] < row["boot_high"]
            assert row["sd"] == pytest.approx(row["em_se"], rel=0.3)


# ArviZ 0.23 calls a matplotlib helper that matplotlib 3.11 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")
def test_plots_draw_posterior_and_em_ellipses_and_arviz_traces(idata, em_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    ax = gp.plot_ellipses(idata, em_fit, n_draws=10)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2 * 10 + 2
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"
    axes = az.plot_trace(idata, var_names=["weights", "means"])
    assert axes.shape == (2, 2)
    az.plot_pair(idata, var_names=["means"], coords={"component": [0]})
    plt.close("all")


def test_a_second_call_with_new_data_of_the_same_shape_does_not_recompile(faithful, em_fit):
    # The first call here, not the idata fixture's: conftest may release compiled programs
    # between tests (see _release_compiled_programs), dropping the fixture's.
    gp.sample_posterior(faithful, 2, key=1, reference=em_fit, **SMALL)
    programs = (posterior._nuts_start.cache_size(), posterior._nuts_segment.cache_size())
    # JAX records this event once for every program XLA compiles, with the function's name
    # (the suite keeps the persistent cache off, so no program comes from disk either).
    compiled = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        gp.sample_posterior(faithful[::-1] + 0.01, 2, key=2, reference=em_fit, **SMALL)
        nothing_compiled = list(compiled)

        def a_new_program(v):
            return v + 1

        jax.jit(a_new_program)(np.float32(0))  # the listener hears a compilation, named
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)  # not gmm_ppl's own (_map_limit)
    # Nothing compiled at all: neither NUTS program (whose caches kept their size) nor any helper.
    assert nothing_compiled == [], nothing_compiled
    assert (posterior._nuts_start.cache_size(), posterior._nuts_segment.cache_size()) == programs
    assert compiled == ["jit(a_new_program)"], compiled


def test_the_quick_build_starts_the_chains_as_the_optimised_build_does(faithful, em_fit, idata, monkeypatch):
    """The chains' start (a few gradient evaluations) takes the quick-to-compile build on
    small data (gmm_ppl.programs). Made to take the optimised build instead, it gives the
    same starting states (positions, potential energies, gradients) up to rounding. (The
    draws that follow are not compared: NUTS's trajectories amplify a last-bit difference
    in a gradient, and the two builds' programs round differently.)"""
    starts = {}

    def keeping(name, build):
        def call(*args, **kwargs):
            states, energy = build(*args, **kwargs)
            starts[name] = (states.z, states.potential_energy, states.z_grad)
            return states, energy

        return call

    builds = posterior._nuts_start
    for name in ("quick", "optimised"):
        build = getattr(builds, name)
        monkeypatch.setattr(posterior, "_nuts_start", programs.TwoBuilds(keeping(name, build), keeping(name, build)))
        gp.sample_posterior(faithful, 2, key=1, reference=em_fit, num_warmup=5, num_samples=5, num_chains=2)
    for quick, optimised in zip(jax.tree.leaves(starts["quick"]), jax.tree.leaves(starts["optimised"]), strict=True):
        np.testing.assert_allclose(np.asarray(quick), np.asarray(optimised), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_enumerated_and_marginal_forms_have_the_same_potential(covariance_type):
    rng = np.random.default_rng(3)
    params = random_params(rng, 3, 2, covariance_type)
    x = sample_mixture(rng, params, covariance_type, 40)
    prior = gp.default_prior(x, 3)
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        prior_j = gp.Prior(*(jnp.asarray(a) for a in prior))
        u = posterior._unconstrain(gp.GMMParams(*(jnp.asarray(a) for a in params)), covariance_type, prior_j)
        energies = [
            float(posterior._potential_energy(u, xj, prior_j, n_components=3, covariance_type=covariance_type, form=f))
            for f in posterior.FORMS
        ]
    # Equal to round-off: measured 0 to 3e-16 relative (an ulp or two of about 200, summed over
    # 40 rows); 1e-13 leaves room for a few hundred ulps of difference in the two sums.
    np.testing.assert_allclose(energies[0], energies[1], rtol=1e-13)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_relabel_undoes_known_permutations(covariance_type):
    rng = np.random.default_rng(4)
    K, D, M = 4, 3, 50
    ref = random_params(rng, K, D, covariance_type, spread=1.0)
    perms = np.stack([rng.permutation(K) for _ in range(M)])
    per_component = covariance_type != "tied"
    draws = {
        "weights": np.asarray(ref.weights)[perms],
        "means": np.asarray(ref.means)[perms] + rng.normal(scale=0.05, size=(M, K, D)),
        "covariances": np.asarray(ref.covariances)[perms]
        if per_component
        else np.broadcast_to(ref.covariances, (M, D, D)),
    }
    relabelled, found = gp.relabel(draws, ref, covariance_type)
    # draws[j] = ref[perms[j]], so relabelled[k] = draws[found[k]] needs found = perms^-1.
    np.testing.assert_array_equal(found, np.argsort(perms, axis=1))
    np.testing.assert_allclose(relabelled["weights"], np.broadcast_to(ref.weights, (M, K)))


def test_relabel_tells_apart_components_that_share_a_mean():
    ref = gp.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 2)), np.array([0.1, 10.0]))
    draws = {"weights": np.array([[0.5, 0.5]]), "means": np.zeros((1, 2, 2)), "covariances": np.array([[9.0, 0.2]])}
    _, perms = gp.relabel(draws, ref, "spherical")
    np.testing.assert_array_equal(perms, [[1, 0]])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", np.array([-1.0, 1.0]), "prior.alpha"),
        ("dof", np.float64(0.5), "prior.dof"),
        ("scale", np.array([[1.0, 2.0], [2.0, 1.0]]), "prior.scale"),
        ("kappa", np.float64(0.0), "prior.kappa"),
    ],
)
def test_invalid_prior_hyperparameters_are_named(faithful, field, value, message):
    prior = gp.default_prior(faithful, 2)._replace(**{field: value})
    with pytest.raises(ValueError, match=message):
        gp.sample_posterior(faithful, 2, prior=prior, **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"covariance_type": "EEV"}, "no NumPyro model"),
        ({"form": "sum"}, "form must be"),
        ({"init": "nowhere"}, "init must be"),
        ({"num_chains": 0}, "num_chains"),
        ({"target_accept_prob": 1.5}, "target_accept_prob"),
    ],
)
def test_bad_options_are_refused_before_sampling(faithful, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gp.sample_posterior(faithful, 2, **{**SMALL, **kwargs})


def test_more_components_than_rows_warns_and_samples():
    x = np.array([[0.0, 0.0], [1.0, 0.5], [3.0, 3.0]])
    with pytest.warns(UserWarning, match="exceeds the 3 rows"):
        idata = gp.sample_posterior(x, 5, covariance_type="diag", num_warmup=50, num_samples=50, num_chains=1)
    assert np.isfinite(idata.posterior["means"].values).all()
    assert idata.posterior.sizes["component"] == 5


# --- Slow: the documentation's numbers on Old Faithful, at the size it states them. ------------------

# The documentation's run: 4 chains x (1000 warm-up + 1000 draws), sample_posterior's defaults.
FULL = {"num_warmup": 1000, "num_samples": 1000, "num_chains": 4}


def _log_joint_by_hand(x, prior, weights, means, covariances):
    """(M,) log p(x, params) for M parameter sets (full covariances), the model as the
    documentation and ``Prior`` declare it, in NumPy and SciPy (independent of the library and of
    NumPyro): the mixture's log-likelihood, weights ~ Dirichlet(alpha), and per component
    Sigma_k ~ InverseWishart(dof, scale), mu_k ~ N(mean, Sigma_k / kappa)."""
    M, K, D = means.shape
    log_lik = logsumexp(np.log(weights)[:, None, :] + _log_gaussians(x, means, covariances), axis=2).sum(axis=1)
    alpha = np.asarray(prior.alpha)
    log_weights = gammaln(alpha.sum()) - gammaln(alpha).sum() + np.log(weights) @ (alpha - 1)
    flat = covariances.reshape(M * K, D, D)
    # SciPy takes a batch of matrices with the batch on the last axis.
    log_covariances = stats.invwishart.logpdf(np.moveaxis(flat, 0, -1), prior.dof, prior.scale).reshape(M, K)
    # N(mu_k | mean, Sigma_k / kappa) = N(mean | mu_k, Sigma_k / kappa): one "row", the prior mean.
    log_means = _log_gaussians(np.asarray(prior.mean)[None, :], means, covariances / prior.kappa)[:, 0, :]
    return log_lik + log_weights + (log_covariances + log_means).sum(axis=1)


def _max_rhat(group):
    rhat = az.rhat(group[list(PARAMETERS)])
    return max(float(rhat[v].max()) for v in rhat.data_vars)


def _assert_mixes(idata, what):
    # docs: "relabelled r_hat below 1.01 for every entry, no divergences".
    assert _max_rhat(idata.posterior) < 1.01, what
    assert int(idata.sample_stats["diverging"].sum()) == 0, what


@pytest.mark.slow
def test_old_faithful_at_the_readmes_size(faithful, em_fit, map_fit, subtests):
    """The documentation's claims on Old Faithful (K=2, full, 4 chains x (1000 + 1000)), and
    notebook 4's, each checked by a computation of its own. One test, so that every run
    here shares one compiled sampler (4 chains, 1000 warm-up iterations) in one process;
    subtests report each claim apart."""
    run = gp.sample_posterior(faithful, 2, key=7, reference=em_fit, **FULL)
    post = run.posterior
    draws = {n: _flat(run, n) for n in PARAMETERS}

    with subtests.test(msg="r_hat, divergences and bulk ESS"):
        _assert_mixes(run, "marginal form")
        # docs: "minimum bulk ESS above the 4000 draws" (6061 in benchmarks/results/nuts.md;
        # 5400 to 6200 over ten runs here, other keys and starts). NUTS's draws of this posterior are
        # anticorrelated: more effective draws than the 4000 draws made.
        ess = az.ess(post[list(PARAMETERS)], method="bulk")
        assert min(float(ess[v].min()) for v in ess.data_vars) > 4000

    with subtests.test(msg="every ML-EM and MAP-EM entry in its 94% HDI"):
        # The posterior took em_fit's labelling; MAP-EM's own fit is matched to it by its means.
        kept, swapped = (
            np.abs(m - em_fit.params.means).sum() for m in (map_fit.params.means, map_fit.params.means[::-1])
        )
        map_params = [np.asarray(v)[::-1] if swapped < kept else np.asarray(v) for v in map_fit.params]
        hdi = az.hdi(post[list(PARAMETERS)], hdi_prob=0.94)
        for name, ml, mp in zip(PARAMETERS, em_fit.params, map_params, strict=True):
            low, high = hdi[name].sel(hdi="lower").values, hdi[name].sel(hdi="higher").values
            assert np.all((low <= ml) & (ml <= high)), name
            assert np.all((low <= mp) & (mp <= high)), name

    with subtests.test(msg="the posterior's assignment is EM's on every row (adjusted Rand index 1)"):
        log_gaussians = _log_gaussians(faithful, draws["means"], draws["covariances"])
        posterior_labels = softmax(np.log(draws["weights"])[:, None, :] + log_gaussians, axis=2).mean(0).argmax(1)
        em_labels = scipy_log_joint(faithful, *em_fit.params).argmax(axis=1)
        assert adjusted_rand_score(em_labels, posterior_labels) == 1.0

    with subtests.test(msg="no draw's log joint above MAP-EM's"):
        prior = gp.default_prior(faithful, 2)
        at_map = _log_joint_by_hand(faithful, prior, *(np.asarray(v)[None] for v in map_fit.params))[0]
        # The hand-written log joint is the function MAP-EM maximises (its objective is per row).
        np.testing.assert_allclose(at_map, float(map_fit.objective) * faithful.shape[0], rtol=1e-12)
        of_draws = _log_joint_by_hand(faithful, prior, draws["weights"], draws["means"], draws["covariances"])
        assert np.all(of_draws < at_map), at_map - of_draws.max()

    with subtests.test(msg="the enumerated form: r_hat, divergences, the same posterior"):
        # Another key than the marginal run's: with the same key the two forms, whose potentials
        # are equal to round-off (test_enumerated_and_marginal_forms_have_the_same_potential),
        # would replay nearly the same trajectories and the comparison would repeat that test.
        # 500 draws a chain suffice for r_hat and the comparison; the compile is the cost.
        enumerated = gp.sample_posterior(
            faithful, 2, key=8, reference=em_fit, form="enumerate", **{**FULL, "num_samples": 500}
        )
        _assert_mixes(enumerated, "enumerated form")
        for name in PARAMETERS:
            a, b = post[[name]], enumerated.posterior[[name]]
            mcse = np.hypot(az.mcse(a)[name].values, az.mcse(b)[name].values)
            diff = np.abs(a[name].mean(("chain", "draw")).values - b[name].mean(("chain", "draw")).values)
            # Within Monte Carlo error: |z| > 4 has probability 6e-5 per entry (1e-3 over the 14).
            assert np.all(diff < 4 * mcse), (name, diff / mcse)

    for init in ("uniform", "prior"):
        with subtests.test(msg=f'chains started with init="{init}" settle in both labellings'):
            # docs: init="uniform" (the Bayesian section) and chains started from prior draws
            # (notebook 4) settle in both labellings; raw r_hat flags it, relabelling fixes it.
            # Which chains land in which labelling depends on the key: with key 3 both inits
            # split (by hand, keys 2-8 with init="prior": 5 of 7 split, key 2 not).
            apart = gp.sample_posterior(faithful, 2, key=3, reference=em_fit, init=init, **FULL)
            which = apart.sample_stats["relabel"].values[..., 0]  # (chain, draw): the raw component that became 0
            per_chain = [np.bincount(row, minlength=2).argmax() for row in which]
            assert len(set(per_chain)) == 2, f"with this key the chains settle in both labellings: {per_chain}"
            # Rank-normalised r_hat of four chains of which one sits in a far-apart mode is 1.53
            # (two: 1.73; az.rhat of such chains); without a switch it is about 1.00.
            assert _max_rhat(apart.unrelabelled_posterior) > 1.4
            _assert_mixes(apart, init)


@pytest.mark.slow
def test_bic_picks_two_components_on_old_faithful(faithful, ml_fit):
    """Notebook 4: of ML fits with K = 1..3 (full), BIC picks K = 2. By hand: SciPy's
    log-likelihood at each fit, -2 log L + p log N, p = (K - 1) + K D + K D (D + 1) / 2; K = 1
    is the sample mean and (biased) covariance, the exact ML fit."""
    N, D = faithful.shape
    k3 = gp.fit_em(faithful, 3, n_init=10, key=0, tol=1e-10, max_iter=2000, dtype="float64")
    assert bool(ml_fit.converged) and bool(k3.converged)  # at their optima: BIC(2) and BIC(3) differ by 2.0
    fits = {
        1: (np.ones(1), faithful.mean(0)[None], np.cov(faithful.T, bias=True)[None]),
        2: ml_fit.params,
        3: k3.params,
    }
    bic = {
        K: -2 * logsumexp(scipy_log_joint(faithful, *params), axis=1).sum()
        + ((K - 1) + K * D + K * D * (D + 1) // 2) * np.log(N)
        for K, params in fits.items()
    }
    assert min(bic, key=bic.get) == 2, bic


@pytest.mark.slow
def test_posterior_intervals_cover_parameters_drawn_from_the_prior_at_their_rate():
    """Simulation-based calibration: parameters drawn from a prior (by SciPy), data drawn from
    the mixture, the posterior under that prior by NUTS. Averaged over the prior, a 90% (50%)
    credible interval holds the true value with probability 0.9 (0.5) exactly, so what is
    measured is the sampler and the model's density, not an asymptotic approximation.
    Components have no fixed names, so every draw and the truth are ordered by the first
    coordinate of their means: a function of the parameters that does not depend on labels."""
    rng = np.random.default_rng(2026)
    n_sets, N, K, D = 30, 272, 2, 2  # Old Faithful's shape and SMALL: the idata fixture's program
    prior = gp.Prior(
        alpha=np.full(K, 3.0), mean=np.zeros(D), kappa=np.float64(0.05), dof=np.float64(D + 4), scale=3.0 * np.eye(D)
    )
    lower = np.tril_indices(D)

    def ordered(weights, means, covariances):
        """(..., 11) the weight of the component with the smaller first mean, the means and the
        covariances' lower triangles, that component first."""
        order = np.argsort(means[..., 0], axis=-1)
        w = np.take_along_axis(weights, order, -1)[..., :1]  # the other weight is 1 minus it
        m = np.take_along_axis(means, order[..., None], -2)
        c = np.take_along_axis(covariances, order[..., None, None], -3)[..., lower[0], lower[1]]
        return np.concatenate([w, m.reshape(*m.shape[:-2], -1), c.reshape(*c.shape[:-2], -1)], axis=-1)

    coverage = {0.9: [], 0.5: []}
    for seed in range(n_sets):
        weights = stats.dirichlet(prior.alpha).rvs(random_state=rng)[0]
        covariances = stats.invwishart(df=prior.dof, scale=prior.scale).rvs(size=K, random_state=rng)
        means = np.stack([rng.multivariate_normal(prior.mean, c / prior.kappa) for c in covariances])
        truth = gp.GMMParams(weights, means, covariances)
        x = sample_mixture(rng, truth, "full", N)
        idata = gp.sample_posterior(x, K, prior=prior, key=seed, log_likelihood=False, **SMALL)
        post = idata.posterior
        draws = ordered(*(post[n].values for n in PARAMETERS))  # (chain, draw, 11)
        true = ordered(*truth)
        for prob, covered in coverage.items():
            hdi = az.hdi(draws, hdi_prob=prob)  # (11, 2)
            covered.append(np.mean((hdi[:, 0] <= true) & (true <= hdi[:, 1])))
    for prob, covered in coverage.items():
        covered = np.asarray(covered)
        # The data sets are independent; the 11 entries of one data set are not (one unlucky
        # draw of the data moves a component's weight, mean and covariance together). So the
        # unit is the data set: its coverage, a number in [0, 1] with mean prob.
        # (a) Whatever the entries' correlation, that number's variance is at most prob (1 - prob),
        # a Bernoulli's: the mean coverage varies at most as a binomial proportion of n_sets
        # trials, whose 99% interval is binom.ppf([0.005, 0.995], 30, 0.9) / 30 = [0.733, 1.0]
        # (for 0.5: [0.267, 0.733]). A loose bound, but it assumes nothing of the entries.
        low, high = stats.binom.ppf([0.005, 0.995], n_sets, prob) / n_sets
        assert low <= covered.mean() <= high, (prob, covered.mean())
        # (b) Tighter, from the data sets' measured spread: prob lies within the 99% t-interval
        # of the mean coverage (t.ppf(0.995, 29) = 2.76), and that interval is narrow enough to
        # tell a posterior 1.5 times too narrow or too wide (for a normal posterior, a 90%
        # interval would cover 0.727 or 0.986 of the time; a 50% one, 0.347 or 0.688).
        half = stats.t.ppf(0.995, n_sets - 1) * covered.std(ddof=1) / np.sqrt(n_sets)
        assert abs(covered.mean() - prob) <= half, (prob, covered.mean(), half)
        too_narrow, too_wide = {0.9: (0.727, 0.986), 0.5: (0.347, 0.688)}[prob]
        assert too_narrow < prob - half and prob + half < too_wide, (prob, half)
        print(f"{prob:.0%} HDIs over {n_sets} data sets: mean coverage {covered.mean():.3f} +- {half:.3f} (99% t)")


def test_compare_sets_variational_bayes_beside_the_posterior(idata, em_fit, faithful):
    """fit_vb's q, same model and prior, in the posterior's labelling: its columns are its
    draws' mean, sd and HDI (by NumPy and ArviZ on q's own draws, components matched by the
    means), and on Old Faithful, K=2, q's means and sds of the means lie within 15% of
    NUTS's (the components are well apart, where mean-field VB is close)."""
    vb = gp.fit_vb(faithful, 2, n_init=3, key=0, n_draws=2000, feature_names=["eruptions", "waiting"])
    table = gp.compare(em_fit, idata, vb=vb, hdi_prob=0.9)
    p = table.parameters
    assert ["vb_mean", "vb_sd", "vb_low", "vb_high"] == [c for c in p.columns if c.startswith("vb_")]
    assert table.summary.loc["vb_elbo", "value"] == vb.elbo
    q = vb.idata.posterior
    for k in range(2):
        for name in ("eruptions", "waiting"):
            row = p.loc[f"means[{k}, {name}]"]
            j = int(np.argmin(np.abs(vb.params.means[:, 0] - p.loc[f"means[{k}, eruptions]", "vb_mean"])))
            draws = q["means"].sel(component=j, feature=name).values.ravel()
            assert row["vb_mean"] == pytest.approx(draws.mean(), rel=1e-12)
            assert row["vb_sd"] == pytest.approx(draws.std(ddof=1), rel=1e-12)
            low, high = az.hdi(draws, hdi_prob=0.9)
            assert (row["vb_low"], row["vb_high"]) == pytest.approx((low, high), rel=1e-12)
            assert row["vb_mean"] == pytest.approx(row["mean"], rel=0.01)
            assert row["vb_sd"] == pytest.approx(row["sd"], rel=0.15)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_standardised_coordinates_map_the_prior_exactly(covariance_type):
    """NUTS samples z = (x - shift) / scale under the prior mapped to z; that is the same
    posterior, mapped, when log p(theta) - log p_z(T theta) is the same at every theta (the
    log Jacobian of T). Checked at draws from the prior (NumPyro's sites), on columns whose
    scales differ by 300 times."""
    from numpyro import handlers

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2)) * [3.0, 0.01] + [100.0, -5.0]
    prior = gp.default_prior(x, 2)
    standard = posterior.Standardisation.of(x, covariance_type)
    if covariance_type in ("diag", "spherical"):  # one scale for all features: one rate for all variances
        assert standard.scale[0] == standard.scale[1]
    differences = []
    for seed in range(4):
        with _validate.precision(np.float64):
            trace = handlers.trace(handlers.seed(gp.sample_params, seed)).get_trace(2, 2, covariance_type, prior)
        theta = gp.GMMParams(*(np.asarray(trace[n]["value"], np.float64) for n in ("weights", "means", "covariances")))
        mapped = standard.params(theta, covariance_type)
        back = standard.params(mapped, covariance_type, back=True)
        for a, b in zip(theta, back, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        with _validate.precision(np.float64):
            differences.append(
                float(gp.log_prior(theta, covariance_type, prior))
                - float(gp.log_prior(mapped, covariance_type, standard.prior(prior)))
            )
    np.testing.assert_allclose(differences, differences[0], rtol=0, atol=1e-8)
