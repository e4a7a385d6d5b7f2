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


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random_from_data", "random", "hierarchical"])
def test_every_init_method_reaches_the_old_faithful_optimum(faithful, init):
    fit = gp.fit_em(faithful, 2, init=init, n_init=5, key=jax.random.key(0), tol=1e-8, dtype="float64")
    assert abs(float(fit.log_likelihood) - (-1130.264 / 272)) < 1e-5


def test_hierarchical_start_reaches_mclusts_optimum_on_the_diabetes_data(diabetes):
    """mclust's VVV, G=3 on the diabetes data: BIC -4751.3, i.e. log-likelihood -2303.49.
    Most k-means++ starts stop at worse optima there; the deterministic Ward start does not."""
    fit = gp.fit_em(diabetes, 3, init="hierarchical", tol=1e-8, max_iter=1000, dtype="float64")
    assert float(fit.log_likelihood) * len(diabetes) > -2303.5
    assert fit.restart_objectives.shape == (1,)
