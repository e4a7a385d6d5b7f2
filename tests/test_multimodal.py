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
                    dtype="float64")  # fmt: skip
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
