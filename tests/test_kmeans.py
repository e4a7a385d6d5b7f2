"""k-means: Lloyd's algorithm as hard-assignment EM, against scikit-learn's KMeans."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans

import gmm_ppl as gp


def test_same_start_same_result_as_scikit_learn_lloyd(diabetes):
    start = diabetes[[0, 50, 100]]
    sk = KMeans(3, init=start, n_init=1, algorithm="lloyd", tol=1e-4, max_iter=300).fit(diabetes)
    ours = gp.kmeans(diabetes, 3, centers_init=start, tol=1e-4, dtype="float64")
    np.testing.assert_allclose(ours.centers, sk.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(ours.labels, sk.labels_)
    np.testing.assert_allclose(float(ours.inertia), sk.inertia_, rtol=1e-10)
    assert bool(ours.converged)


def test_result_is_a_lloyd_fixed_point(faithful):
    km = gp.kmeans(faithful, 3, key=jax.random.key(0), n_init=5, dtype="float64")
    centers, labels = np.asarray(km.centers), np.asarray(km.labels)
    nearest = np.argmin(((faithful[:, None, :] - centers) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(labels, nearest)  # E-step: each row to its nearest centre
    for k in range(3):  # M-step: each centre is the mean of its rows
        np.testing.assert_allclose(centers[k], faithful[labels == k].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(float(km.inertia), ((faithful - centers[labels]) ** 2).sum(), rtol=1e-10)


def test_hard_em_with_shared_spherical_variance_is_kmeans(faithful):
    """The lecture's special case: with equal weights and one shared spherical variance,
    EM's most probable component is the nearest centre, at any variance."""
    km = gp.kmeans(faithful, 2, key=jax.random.key(1), n_init=3, dtype="float64")
    for variance in (1e-2, 1.0, 1e2):
        params = gp.GMMParams(np.full(2, 0.5), km.centers, np.full(2, variance))
        hard = np.argmax(gp.responsibilities(params, faithful, "spherical"), axis=1)
        np.testing.assert_array_equal(hard, km.labels)


def test_at_least_as_good_as_scikit_learn_with_restarts(faithful, diabetes):
    for x, k in ((faithful, 2), (faithful, 4), (diabetes, 3)):
        ours = gp.kmeans(x, k, key=jax.random.key(0), n_init=10, dtype="float64")
        sk = KMeans(k, n_init=10, random_state=0).fit(x)
        assert float(ours.inertia) <= sk.inertia_ * (1 + 1e-9)


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random_from_data", "random", "hierarchical", "mclust"])
def test_every_init_method_reaches_the_old_faithful_optimum(faithful, init):
    fit = gp.fit_em(faithful, 2, init=init, n_init=5, key=jax.random.key(0), tol=1e-8, dtype="float64")
    assert abs(float(fit.log_likelihood) - (-1130.264 / 272)) < 1e-5


def test_hierarchical_start_reaches_mclusts_optimum_on_the_diabetes_data(diabetes):
    """mclust's VVV, G=3 on the diabetes data: BIC -4751.3, i.e. log-likelihood -2303.49.
    Most k-means++ starts stop at worse optima there; the deterministic Ward start does not."""
    fit = gp.fit_em(diabetes, 3, init="hierarchical", tol=1e-8, max_iter=1000, dtype="float64")
    assert float(fit.log_likelihood) * len(diabetes) > -2303.5
    assert fit.restart_objectives.shape == (1,)


def test_exponential_draws_are_independent_exp1_across_rows_draws_restarts_and_seeds():
    from scipy import stats

    from gmm_ppl.random_draws import exponential_draws, restart_keys

    # As fit_em makes them: restart keys of the user's seeds 0, 1, 2, ... (whose threefry
    # keys share their first word, 0).
    keys = jax.vmap(lambda s: restart_keys(jax.random.key(s), 2))(np.arange(16))
    n_rows = 2048
    draws = np.asarray(
        jax.vmap(jax.vmap(lambda k: jax.vmap(lambda d: exponential_draws(k, d, n_rows, np.float32))(np.arange(4))))(
            keys
        )
    )  # (seed, restart, draw index, row)
    assert draws.shape == (16, 2, 4, n_rows) and np.all(np.isfinite(draws)) and np.all(draws > 0)
    assert stats.kstest(draws.ravel(), "expon").pvalue > 1e-3
    bound = 5 / np.sqrt(draws.size / 2)  # five standard errors of a correlation of independent draws

    def corr(a, b):
        return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]

    assert abs(corr(draws[..., 1:], draws[..., :-1])) < bound  # neighbouring rows
    assert abs(corr(draws[:, :, 1:], draws[:, :, :-1])) < bound  # neighbouring draw indices
    assert abs(corr(draws[:, 1:], draws[:, :-1])) < bound  # the two restarts
    assert abs(corr(draws[1:], draws[:-1])) < bound  # neighbouring seeds
    # No stream repeats a run of another (or of itself) at any shift within these rows:
    # every three consecutive numbers are unique (by chance two triples would agree with
    # probability about 2^-69).
    streams = draws.reshape(-1, n_rows)
    triples = np.stack([streams[:, :-2], streams[:, 1:-1], streams[:, 2:]], axis=-1).reshape(-1, 3)
    assert len(np.unique(triples, axis=0)) == len(triples)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exponential_draws_stay_finite_and_positive_at_the_extreme_bits(dtype):
    from gmm_ppl.random_draws import _exponential_from_bits

    bits = np.array([0, 1, 0x1FF, 0x200, 0xFFFFFDFF, 0xFFFFFE00, 0xFFFFFFFF], np.uint32)
    with jax.enable_x64(dtype == np.float64):
        draws = np.asarray(_exponential_from_bits(bits, dtype))
    assert draws.dtype == dtype and np.all(np.isfinite(draws)) and np.all(draws > 0)
    np.testing.assert_allclose(draws[[0, -1]], [-np.log(2.0**-24), -np.log1p(-(2.0**-24))], rtol=1e-6)
    # so a zero-weight row's score 0 / E is 0, never 0 / 0
    assert np.all(np.zeros_like(draws) / draws == 0)


def test_kmeans_plusplus_draws_rows_in_proportion_to_weight_times_squared_distance():
    from scipy import stats

    from gmm_ppl.kmeans import kmeans_plusplus

    x = np.array([[0.0], [1.0], [3.0], [7.0], [8.0], [20.0]], np.float32)
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 0.0], np.float32)  # the last row is padding
    n_keys = 20000
    centers = np.asarray(
        jax.vmap(lambda k: kmeans_plusplus(k, jax.numpy.asarray(x), w, 2))(jax.random.split(jax.random.key(1), n_keys))
    )
    first, second = (np.searchsorted(x[:, 0], centers[:, j, 0]) for j in range(2))
    assert np.all(x[first, 0] == centers[:, 0, 0]) and np.all(x[second, 0] == centers[:, 1, 0])
    assert not np.any(first == 5) and not np.any(second == 5)  # zero weight: never drawn
    # P(first = i, second = j) = w_i / sum(w) * w_j d_ij^2 / sum_l w_l d_il^2
    xs, ws = x[:5, 0].astype(np.float64), w[:5].astype(np.float64)
    d2 = (xs[:, None] - xs[None, :]) ** 2
    expected = (ws / ws.sum())[:, None] * (ws * d2) / (ws * d2).sum(axis=1, keepdims=True)
    observed = np.zeros((5, 5))
    np.add.at(observed, (first, second), 1)
    cells = expected > 0
    assert np.all(observed[~cells] == 0)  # a row is never drawn again
    assert stats.chisquare(observed[cells], n_keys * expected[cells]).pvalue > 1e-3


def test_restart_keys_are_distinct_a_prefix_of_more_and_keys_of_the_same_implementation():
    from gmm_ppl.random_draws import restart_keys

    for impl in ("threefry2x32", "rbg"):
        key = jax.random.key(7, impl=impl)
        eight = restart_keys(key, 8)
        assert jax.random.key_impl(eight) == jax.random.key_impl(key)
        words = np.asarray(jax.random.key_data(eight))
        assert words.shape == (8, *jax.random.key_data(key).shape)
        assert len(np.unique(words.reshape(8, -1), axis=0)) == 8
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(restart_keys(key, 3))), words[:3])
        other = np.asarray(jax.random.key_data(restart_keys(jax.random.key(8, impl=impl), 8)))
        assert not np.any(np.all(other.reshape(8, -1)[:, None] == words.reshape(8, -1)[None], axis=-1))
        draws = np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (4,)))(eight))  # jax.random takes them
        assert len(np.unique(draws)) == draws.size
