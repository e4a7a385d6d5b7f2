"""The posterior's modes (gp.find_modes): MAP-EM's optima grouped up to labels, and the
Laplace approximation of each one's mass, against the exact evidence and against symmetry."""

import warnings

import numpy as np
import pytest
from scipy.special import multigammaln

import gmm_ppl as gp
from gmm_ppl import multimodal


def test_grouping_sees_through_label_permutations():
    """Three restarts: an optimum, the same optimum with its labels swapped, another one."""
    a = gp.GMMParams(np.array([0.3, 0.7]), np.array([[0.0, 0.0], [5.0, 5.0]]), np.stack([np.eye(2)] * 2))
    swapped = gp.GMMParams(a.weights[::-1], a.means[::-1], a.covariances[::-1])
    other = gp.GMMParams(np.array([0.5, 0.5]), np.array([[0.0, 1.0], [5.0, 4.0]]), np.stack([2 * np.eye(2)] * 2))
    restarts = gp.GMMParams(*(np.stack(parts) for parts in zip(a, swapped, other, strict=True)))
    mode_of, representatives = multimodal.group_restarts(restarts, np.array([-1.0, -1.0, -2.0]), "full")
    assert mode_of.tolist() == [0, 0, 1] and representatives == [0, 2]
    mode_of, _ = multimodal.group_restarts(restarts, np.array([-1.0, np.nan, -2.0]), "full")
    assert mode_of.tolist() == [0, -1, 1]  # a restart that failed belongs to no mode


def test_one_component_s_laplace_mass_is_the_exact_evidence():
    """K=1, full: the posterior is normal-inverse-Wishart, whose evidence log p(x) has a closed
    form (Murphy 2007, eq. 266); the Laplace approximation in NumPyro's unconstrained
    coordinates is within 0.05 nats of it on 500 rows (seen: 0.009)."""
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=500)
    prior = gp.default_prior(x, 1)
    N, D = x.shape
    m0, k0, v0, s0 = prior.mean, float(prior.kappa), float(prior.dof), prior.scale
    xbar = x.mean(axis=0)
    kn, vn = k0 + N, v0 + N
    sn = s0 + (x - xbar).T @ (x - xbar) + k0 * N / kn * np.outer(xbar - m0, xbar - m0)
    evidence = (
        -N * D / 2 * np.log(np.pi)
        + multigammaln(vn / 2, D)
        - multigammaln(v0 / 2, D)
        + v0 / 2 * np.linalg.slogdet(s0)[1]
        - vn / 2 * np.linalg.slogdet(sn)[1]
        + D / 2 * (np.log(k0) - np.log(kn))
    )
    found = gp.find_modes(x, 1, n_init=3)
    assert len(found.params) == 1 and found.restarts.tolist() == [3]
    assert abs(found.log_mass[0] - evidence) < 0.05


def _searches_ended_at_modes(found):
    """Every finite mass was taken where U's gradient vanishes; every NaN mass was warned of."""
    finite = np.isfinite(found.log_mass)
    assert np.all(found.gradient[finite] <= multimodal.STATIONARY_GRADIENT), found.gradient


@pytest.mark.slow
def test_mirror_images_are_two_modes_of_equal_mass():
    """Two equal clusters, mirror images through the origin, K=3: the third component splits
    one cluster or the other, two modes that the symmetry makes equal. The two best modes
    are each other's mirror image, with the same log posterior, and their Laplace weights
    (normalised over the pair) are 0.5 +/- 0.05."""
    rng = np.random.default_rng(1)
    half = rng.normal(size=(100, 2)) * [0.8, 0.5] + [3.0, 1.0]
    x = np.concatenate([half, -half])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = gp.find_modes(x, 3, n_init=30)
    warned = any("led Newton's search to no mode" in str(w.message) for w in caught)
    assert warned == bool(np.isnan(found.log_mass).any())
    _searches_ended_at_modes(found)
    first, second = found.params[:2]
    assert found.log_posterior[0] == pytest.approx(found.log_posterior[1], rel=1e-9)
    np.testing.assert_allclose(np.sort(first.means[:, 0]), np.sort(-second.means[:, 0]), atol=1e-3)
    pair = found.weights[:2] / found.weights[:2].sum()
    np.testing.assert_allclose(pair, 0.5, atol=0.05)


@pytest.mark.slow
def test_old_faithful_s_modes(faithful):
    """K=2: every restart in one mode, MAP-EM's fit. K=3: several modes, each Laplace mass
    taken at a zero of U's gradient (a full Newton step once overshot one mode's, and the
    search stayed where it started, its gradient 3.0, its mass 0.5 nats short)."""
    found = gp.find_modes(faithful, 2, n_init=20)
    assert len(found.params) == 1 and found.restarts.tolist() == [20] and found.weights.tolist() == [1.0]
    fit = gp.fit_em(faithful, 2, prior=gp.default_prior(faithful, 2), n_init=20, key=0, tol=1e-10, max_iter=2000,
                    reg_covar=1e-6 * np.mean(np.var(faithful, axis=0)), dtype="float64")  # fmt: skip
    assert found.log_posterior[0] == pytest.approx(float(fit.objective) * len(faithful), rel=1e-12)
    _searches_ended_at_modes(found)
    three = gp.find_modes(faithful, 3, n_init=30)
    assert len(three.params) > 1 and np.all(np.isfinite(three.log_mass))
    _searches_ended_at_modes(three)


def test_modes_need_the_numpyro_model():
    with pytest.raises(ValueError, match="has no NumPyro model"):
        gp.find_modes(np.random.default_rng(0).normal(size=(50, 2)), 2, covariance_type="VVE")


def test_each_draw_is_given_its_nearest_mode_whatever_its_labels():
    """Draws made of two modes' parameters, jittered and with their labels permuted at random:
    each is given the mode it was made from (a chain that crosses is seen to)."""
    rng = np.random.default_rng(0)
    eye = np.stack([np.eye(2)] * 3)
    a = gp.GMMParams(np.array([0.5, 0.4, 0.1]), np.array([[0.0, 0.0], [5.0, 0.0], [0.5, 0.5]]), eye)
    b = gp.GMMParams(np.array([0.5, 0.4, 0.1]), np.array([[0.0, 0.0], [5.0, 0.0], [4.5, -0.5]]), eye)
    found = multimodal.Modes(
        params=[a, b], log_posterior=np.zeros(2), restarts=np.ones(2, int), log_mass=np.zeros(2),
        weights=np.full(2, 0.5), gradient=np.zeros(2), restart_mode=np.zeros(2, int), covariance_type="full",
        prior=None,
    )  # fmt: skip
    truth = rng.integers(2, size=(3, 40))  # (chain, draw)
    draws = {"weights": [], "means": [], "covariances": []}
    for source in truth.ravel():
        p = (a, b)[source]
        order = rng.permutation(3)
        draws["weights"].append(p.weights[order])
        draws["means"].append(p.means[order] + 0.05 * rng.normal(size=(3, 2)))
        draws["covariances"].append(p.covariances[order] * rng.uniform(0.9, 1.1))
    draws = {n: np.asarray(v).reshape(3, 40, *np.shape(v)[1:]) for n, v in draws.items()}
    np.testing.assert_array_equal(multimodal.nearest_modes(draws, found), truth)


# -- sample_posterior(modes='auto'): every mode sampled, weighed, reported -------------------

MODE_NUTS = {"num_warmup": 500, "num_samples": 500, "num_chains": 4}


def _lobed_mirror_data():
    """Two equal clusters, mirror images through the origin, each made of two lobes: with K=3
    the third component splits one cluster's lobes or the other's, two modes that the
    symmetry makes equal and the emptiness between the clusters keeps apart for NUTS."""
    rng = np.random.default_rng(1)
    lobes = [rng.normal(size=(60, 2)) * 0.5 + [2.0, 1.5], rng.normal(size=(60, 2)) * 0.5 + [4.0, 0.5]]
    half = np.concatenate(lobes)
    return np.concatenate([half, -half])


@pytest.fixture(scope="module")
def mirror_run():
    x = _lobed_mirror_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = gp.sample_posterior(x, 3, key=0, **MODE_NUTS)
    return x, idata, [str(w.message) for w in caught]


@pytest.mark.slow
def test_mirror_modes_weigh_one_half_both_ways(mirror_run):
    """The issue's check: the two split-modes weigh 0.5 +/- 0.05 by Laplace and by stacking;
    every chain stayed in the mode it started in, each mode's chains agree (r_hat < 1.01, no
    divergences), and the user is warned that there are two modes."""
    x, idata, messages = mirror_run
    table = gp.modes(idata)
    sampled = table[table.sampled]
    assert len(sampled) == 2
    np.testing.assert_allclose(sampled.laplace_weight, 0.5, atol=0.05)
    np.testing.assert_allclose(sampled.stacking_weight, 0.5, atol=0.05)
    np.testing.assert_allclose(sampled.draw_share, 0.5, atol=0.05)  # the chains were split 4 and 4
    assert np.all(sampled.stayed >= 0.99) and np.all(sampled.r_hat < 1.01) and np.all(sampled.divergences == 0)
    assert any("the posterior has 2 modes" in m for m in messages)
    assert not any("crossed" in m for m in messages)
    # Each mode's components are the mirror image of the other's.
    first, second = (idata.modes.mode_means.values[m] for m in sampled.index)
    np.testing.assert_allclose(np.sort(first[:, 0]), np.sort(-second[:, 0]), atol=1e-3)
    # The chains are in mode order, 4 each, and each chain's draws are relabelled to its own mode.
    assert idata.posterior["mode"].values.tolist() == [sampled.index[0]] * 4 + [sampled.index[1]] * 4
    for m in sampled.index:
        one = gp.select_mode(idata, m)
        mean = gp.posterior.posterior_mean(one).means
        np.testing.assert_allclose(mean, idata.modes.mode_means.values[m], atol=0.15)


@pytest.mark.slow
def test_draws_of_several_modes_are_not_averaged(mirror_run):
    """Averaging labelled draws over modes is refused with words that say what to do; one
    mode's draws then go to gp.compare and ArviZ as any run's do; the file keeps the modes."""
    x, idata, _ = mirror_run
    with pytest.raises(ValueError, match="select_mode"):
        gp.posterior.posterior_mean(idata)
    with pytest.raises(ValueError, match="2 modes"):
        gp.compare(gp.fit_em(x, 3, key=0), idata)
    sampled = gp.modes(idata).query("sampled").index
    one = gp.select_mode(idata, sampled[1])
    assert one.posterior.sizes["chain"] == 4 and one.posterior["chain"].values.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(one.constant_data.reference_means.values, idata.modes.mode_means.values[sampled[1]])
    # EM's fit beside the mode it lies in (nearest_modes, as for a draw): the same partition.
    fit = gp.fit_em(x, 3, key=0)
    found = multimodal.Modes(
        params=[gp.GMMParams(*(idata.modes[f"mode_{n}"].values[m] for n in ("weights", "means", "covariances")))
                for m in idata.modes["mode"].values],
        log_posterior=None, restarts=None, log_mass=None, weights=None, gradient=None, restart_mode=None,
        covariance_type="full", prior=None,
    )  # fmt: skip
    own = int(multimodal.nearest_modes({n: np.asarray(v)[None] for n, v in fit.params._asdict().items()}, found)[0])
    assert own in sampled
    table = gp.compare(fit, gp.select_mode(idata, own))
    assert table.summary.loc["same_label_fraction", "value"] > 0.9
    with pytest.raises(ValueError, match="was not sampled"):
        gp.select_mode(idata, 99)
    axes = gp.plot_modes(idata)
    assert len(axes) == 2 and all("Laplace" in ax.get_title() for ax in axes)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_a_mode_s_words_name_its_components_and_the_closest_pair():
    """By hand: three unit Gaussians, two of them 1 apart (Bhattacharyya coefficient
    exp(-1/8)), the third far away."""
    params = gp.GMMParams(np.array([0.2, 0.3, 0.5]), np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]]),
                          np.stack([np.eye(2)] * 3))  # fmt: skip
    components, closest = multimodal.describe_mode(params, "full")
    assert components == "0.20 at (0, 0); 0.30 at (1, 0); 0.50 at (10, 0)"
    assert closest == f"components 0 and 1 overlap most ({np.exp(-1 / 8):.2f}), around (0.6, 0)"


def test_stacking_weights_maximise_the_log_score():
    """Against a grid over the simplex (two groups) and a hand case: a group that predicts
    every point better takes all the weight."""
    rng = np.random.default_rng(0)
    lpd = rng.normal(size=(2, 40))
    grid = np.linspace(0, 1, 100001)
    score = np.log(grid[:, None] * np.exp(lpd[0]) + (1 - grid[:, None]) * np.exp(lpd[1])).sum(axis=1)
    assert multimodal.stacking_weights(lpd)[0] == pytest.approx(grid[np.argmax(score)], abs=1e-3)
    assert multimodal.stacking_weights(np.stack([lpd[0], lpd[0] - 1.0]))[0] > 0.999
    assert multimodal.stacking_weights(lpd[:1]).tolist() == [1.0]


def test_leave_one_out_densities_are_arviz_s():
    """The pointwise PSIS-LOO densities the stacking weights use are ArviZ's az.loo's (its
    relative efficiency set to 1 by one chain of independent draws)."""
    import arviz as az

    rng = np.random.default_rng(0)
    log_lik = rng.normal(-2.0, 0.3, size=(1, 400, 30))
    idata = az.from_dict(posterior={"a": rng.normal(size=(1, 400))}, log_likelihood={"x": log_lik})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.loo(idata, pointwise=True, reff=1.0).loo_i.values
    np.testing.assert_allclose(multimodal._loo_pointwise(log_lik), expected, rtol=1e-12)


def test_modes_argument_is_checked(faithful):
    with pytest.raises(ValueError, match="modes must be 'auto', 1 or a Modes"):
        gp.sample_posterior(faithful, 2, modes=2)
    other = gp.find_modes(faithful, 2, covariance_type="diag", n_init=2)
    with pytest.raises(ValueError, match="another model"):
        gp.sample_posterior(faithful, 2, modes=other)
    found = gp.find_modes(faithful, 2, n_init=2)
    prior = gp.default_prior(faithful, 2)._replace(kappa=0.5)
    with pytest.raises(ValueError, match="another prior"):
        gp.sample_posterior(faithful, 2, prior=prior, modes=found)
    with pytest.raises(ValueError, match="reference and init do not apply"):
        gp.sample_posterior(faithful, 2, init="prior", modes=found)


def test_a_plain_idata_has_no_modes_to_show():
    import arviz as az

    plain = az.from_dict(posterior={"weights": np.ones((1, 2, 2)) / 2})
    for show in (gp.modes, gp.plot_modes, lambda idata: gp.select_mode(idata, 0)):
        with pytest.raises(ValueError, match="no modes group"):
            show(plain)


@pytest.mark.slow
def test_one_mode_runs_as_one_reference_did(faithful):
    """Old Faithful, K=2: one mode, so the default call is modes=1's run from that mode: the
    same reference (MAP-EM's fit), posterior means within Monte Carlo error of a modes=1 run
    (5 standard errors by ESS), no warning about modes."""
    import arviz as az

    settings = {"num_warmup": 500, "num_samples": 500, "num_chains": 2}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = gp.sample_posterior(faithful, 2, key=3, **settings)
    assert not any("modes" in str(w.message) for w in caught)
    table = gp.modes(auto)
    assert table.sampled.sum() == 1 and table.laplace_weight.iloc[0] == 1.0 and table.stacking_weight.iloc[0] == 1.0
    one = gp.sample_posterior(faithful, 2, key=4, modes=1, **settings)
    # The same reference up to its labels (the components compared in the order of their first
    # mean) and to EM's tolerance: modes=1 fits to fit_em's default tol, find_modes to 1e-10.
    order = [np.argsort(run.constant_data.reference_means.values[:, 0]) for run in (auto, one)]
    references = [run.constant_data.reference_means.values[o] for run, o in zip((auto, one), order, strict=True)]
    np.testing.assert_allclose(*references, rtol=1e-3)
    a, b = (run.posterior["means"].isel(component=o) for run, o in zip((auto, one), order, strict=True))
    se = np.hypot(*(d.std(("chain", "draw")).values / np.sqrt(az.ess(d).means.values) for d in (a, b)))
    assert np.all(np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values) < 5 * se)
    with pytest.raises(ValueError, match="no modes group"):
        gp.modes(one)


def test_modes_are_found_and_weighed_alike_at_any_scale():
    """The search runs in standardised coordinates: the same data times 1e8 (and 1e-8) give
    the same modes, the same weights, and Laplace masses shifted by -N D log(scale), the
    likelihood's Jacobian (at 1e8 in the data's own coordinates no search reached a mode)."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) * 0.5 + [4.0, 1.0]])
    unit = gp.find_modes(x, 2, n_init=5)
    for factor in (1e8, 1e-8):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "led Newton's search to no mode"
            scaled = gp.find_modes(x * factor, 2, n_init=5)
        assert len(scaled.params) == len(unit.params) == 1
        np.testing.assert_allclose(scaled.log_mass, unit.log_mass - x.size * np.log(factor), rtol=1e-9)
        means = [np.sort(p.means[:, 0]) for p in (scaled.params[0], unit.params[0])]  # up to labels
        np.testing.assert_allclose(means[0], means[1] * factor, rtol=1e-6)
