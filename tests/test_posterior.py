"""NUTS over the declared model: structure of the output, relabelling, assignment
posteriors, the comparison with EM, and correctness on data with known parameters."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_params, sample_mixture, scipy_log_joint, spy_on_builds
from numpyro.infer.util import log_density
from scipy.special import logsumexp

import gmm_ppl as gp
from gmm_ppl import compile_options, posterior

# Small runs: one compiled program per shape, shared by the tests below.
SMALL = {"num_warmup": 300, "num_samples": 300, "num_chains": 2}


@pytest.fixture(scope="module")
def em_fit(faithful):
    return gp.fit_em(faithful, 2, n_init=5, key=0, dtype="float64")


@pytest.fixture(scope="module")
def idata(faithful, em_fit):
    return gp.sample_posterior(faithful, 2, key=1, reference=em_fit, feature_names=["eruptions", "waiting"], **SMALL)


def _mixture_logpdf(x, weights, means, full):
    """log p(x_i) of one parameter set, by SciPy (independent of the library)."""
    return logsumexp(scipy_log_joint(x, weights, means, full), axis=1)


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
    np.testing.assert_allclose(closed["probability"].sum("component"), 1.0, rtol=1e-10)
    # Each enumerated estimate is a frequency over 600 draws: binomial error at most 0.5/sqrt(600).
    assert float(np.abs(closed["probability"] - enumerated["probability"]).max()) < 5 * 0.5 / np.sqrt(600)
    # Close to EM's responsibilities on this well-separated data, most rows near certain.
    em = gp.responsibilities(em_fit.params, faithful)
    assert np.abs(closed["probability"].values - em).max() < 0.15
    assert float((closed["entropy"] < 0.1).mean()) > 0.8


def test_compare_sets_both_em_fits_beside_the_posterior(idata, em_fit, faithful):
    table = gp.compare(em_fit, idata, x_test=faithful[:40])
    p = table.parameters
    assert len(p) == 2 + 4 + 8
    assert list(p.columns[:2]) == ["em_ml", "em_map"]
    # The posterior was relabelled to em_fit, so the EM column keeps em_fit's labels.
    assert p.loc["means[0, waiting]", "em_ml"] == pytest.approx(em_fit.params.means[0, 1], rel=1e-12)
    assert p["ml_in_hdi"].all() and p["map_in_hdi"].all()
    assert (p["hdi_low"] <= p["mean"]).all() and (p["mean"] <= p["hdi_high"]).all()
    s = table.summary["value"]
    assert s["adjusted_rand_index"] > 0.95
    assert s["em_ml_log_likelihood"] == pytest.approx(-1130.264, abs=1e-3)
    assert s["em_map_log_likelihood"] < s["em_ml_log_likelihood"]
    assert s["looic"] == pytest.approx(-2 * s["elpd_loo"])
    assert np.isfinite([s["heldout_lpd_em_ml"], s["heldout_lpd_posterior"]]).all()
    assert "| weights[0] |" in table.to_markdown()
    assert len(table.assignments) == faithful.shape[0]


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
    programs = (posterior._nuts_start.cache_size(), posterior._nuts_segment._cache_size())
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        gp.sample_posterior(faithful[::-1] + 0.01, 2, key=2, reference=em_fit, **SMALL)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)  # not gmm_ppl's own (_map_limit)
    # Neither NUTS program compiled again; only tiny programs may appear.
    assert (posterior._nuts_start.cache_size(), posterior._nuts_segment._cache_size()) == programs
    assert sum(compiles) < 1.0, compiles


def test_the_quick_build_starts_the_chains_as_the_optimised_build_does(faithful, em_fit, idata, monkeypatch):
    """The chains' start (a few gradient evaluations) takes the quick-to-compile build on
    small data (gmm_ppl.compile_options); with the bound at 0 it takes the optimised
    build, and the draws that follow are the same."""
    called = []
    monkeypatch.setattr(posterior, "_nuts_start", spy_on_builds(posterior._nuts_start, called))
    monkeypatch.setattr(compile_options, "QUICK_MAX_WORK", 0)
    optimised = gp.sample_posterior(
        faithful, 2, key=1, reference=em_fit, feature_names=["eruptions", "waiting"], **SMALL
    )
    assert called == ["optimised"]
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(optimised.posterior[name].values, idata.posterior[name].values, rtol=1e-12)


def test_same_key_gives_the_same_draws(faithful, em_fit, idata):
    again = gp.sample_posterior(faithful, 2, key=1, reference=em_fit, feature_names=["eruptions", "waiting"], **SMALL)
    np.testing.assert_array_equal(again.posterior["means"].values, idata.posterior["means"].values)


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
    np.testing.assert_allclose(energies[0], energies[1], rtol=1e-10)


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


def test_map_em_sits_where_the_gradient_of_the_models_log_joint_vanishes(faithful):
    """At MAP-EM's fit, the gradient of NumPyro's log joint of gmm_model vanishes along
    every direction that keeps the parameters valid (weights along the simplex)."""
    prior = gp.default_prior(faithful, 2)
    fit = gp.fit_em(faithful, 2, prior=prior, n_init=3, tol=1e-12, max_iter=2000, reg_covar=0.0, dtype="float64")
    with jax.enable_x64(True):

        def log_joint(weights, means, covariances):
            value, _ = log_density(
                gp.gmm_model,
                (jnp.asarray(faithful),),
                {"n_components": 2, "covariance_type": "full", "prior": prior, "marginal": True},
                {"weights": weights, "means": means, "covariances": covariances},
            )
            return value

        args = tuple(jnp.asarray(a) for a in fit.params)
        g_w, g_m, g_c = jax.grad(log_joint, argnums=(0, 1, 2))(*args)
    g_w = np.asarray(g_w)
    g_w = g_w - g_w.mean()  # the simplex's tangent space
    g_c = np.asarray(g_c)
    g_c = 0.5 * (g_c + np.swapaxes(g_c, -1, -2))  # symmetric directions
    # Scaled by the size of each parameter, a unit change of log density per relative step.
    scaled = np.concatenate([g_w * fit.params.weights, np.asarray(g_m).ravel(), (g_c * fit.params.covariances).ravel()])
    assert np.max(np.abs(scaled)) < 1e-5
    # And the same gradient is far from zero at the ML fit, so the test can tell.
    ml = gp.fit_em(faithful, 2, n_init=3, tol=1e-12, max_iter=2000, reg_covar=0.0, dtype="float64")
    with jax.enable_x64(True):
        ml_grad = jax.grad(log_joint, argnums=2)(*(jnp.asarray(a) for a in ml.params))
    assert np.max(np.abs(np.asarray(ml_grad) * ml.params.covariances)) > 1e-2


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
        ({"covariance_type": "EEV"}, "no conjugate prior"),
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


# --- Slow: the headline numbers of the issue, at full size. -----------------------------------


@pytest.mark.slow
def test_old_faithful_four_chains_relabelled_rhat_below_1_01_and_forms_agree(faithful, em_fit):
    runs = {
        form: gp.sample_posterior(faithful, 2, key=7, reference=em_fit, form=form, num_chains=4)
        for form in posterior.FORMS
    }
    for form, run in runs.items():
        rhat = az.rhat(run.posterior[["weights", "means", "covariances"]])
        assert max(float(rhat[v].max()) for v in rhat.data_vars) < 1.01, form
        assert int(run.sample_stats["diverging"].sum()) == 0, form
    # Same posterior from both forms: means of every entry within Monte Carlo error.
    a, b = (runs[f].posterior for f in posterior.FORMS)
    for name in ("weights", "means", "covariances"):
        mcse = np.hypot(az.mcse(a[[name]])[name].values, az.mcse(b[[name]])[name].values)
        diff = np.abs(a[name].mean(("chain", "draw")).values - b[name].mean(("chain", "draw")).values)
        assert np.all(diff < 5 * mcse + 1e-12), name


@pytest.mark.slow
def test_chains_started_apart_switch_labels_and_relabelling_reconciles_them(faithful, em_fit):
    idata = gp.sample_posterior(faithful, 2, key=1, reference=em_fit, init="uniform", num_warmup=300, num_samples=300)
    relabelled = idata.sample_stats["relabel"].values[..., 0]  # (chain, draw): which raw component became 0
    per_chain = [np.bincount(row, minlength=2).argmax() for row in relabelled]
    assert len(set(per_chain)) == 2, "with this seed the chains settle on both labellings"
    raw = az.rhat(idata.unrelabelled_posterior["means"])["means"].max()
    fixed = az.rhat(idata.posterior["means"])["means"].max()
    assert float(raw) > 1.5 and float(fixed) < 1.02


@pytest.mark.slow
def test_posterior_intervals_cover_known_parameters_at_about_their_rate():
    """Simulate from the model with known parameters, several seeds: the 90% HDIs of the
    free entries (weights, means, lower-triangle covariances) should hold the truth about
    90% of the time."""
    rng = np.random.default_rng(11)
    truth = gp.GMMParams(
        np.array([0.4, 0.6]),
        np.array([[-2.0, 0.0], [2.0, 1.0]]),
        np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]]),
    )
    hits, total = 0, 0
    lower = np.tril_indices(2)
    for seed in range(8):
        x = sample_mixture(rng, truth, "full", 200)
        idata = gp.sample_posterior(x, 2, key=seed, reference=truth, num_warmup=400, num_samples=400, num_chains=2)
        hdi = az.hdi(idata.posterior, hdi_prob=0.9)
        for name, true in zip(("weights", "means", "covariances"), truth, strict=True):
            low, high = hdi[name].sel(hdi="lower").values, hdi[name].sel(hdi="higher").values
            inside = (low <= true) & (true <= high)
            if name == "covariances":
                inside = inside[:, lower[0], lower[1]]
            elif name == "weights":
                inside = inside[:1]  # the second weight is 1 minus the first
            hits += int(inside.sum())
            total += inside.size
    coverage = hits / total
    # 8 seeds x 11 free entries (1 weight, 4 means, 6 covariance entries); binomial sd at 0.9 is 0.03.
    assert 0.78 <= coverage <= 0.99, coverage
    print(f"90% HDI coverage over {total} entries: {coverage:.3f}")
