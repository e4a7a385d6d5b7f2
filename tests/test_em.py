"""EM: the known optimum, the convergence rule, restarts, weights, chunks, precision,
stationarity and compile-once behaviour (monotonicity over random draws: test_properties.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    COVARIANCE_TYPES,
    MCLUST_EXTRA_TYPES,
    SMALL_PROBLEMS_BUILD,
    as_full,
    random_params,
    scipy_log_joint,
    scipy_log_likelihood,
    spy_on_builds,
)

import gmm_ppl as gp
from gmm_ppl import em, programs, stats

# mclust's VVV, G=2 on Old Faithful: log-likelihood -1130.264 over 272 rows.
FAITHFUL_LOGLIK_PER_ROW = -1130.264 / 272


@pytest.fixture(scope="module")
def faithful_fit(faithful):
    return gp.fit_em(
        faithful, 2, key=jax.random.key(0), n_init=5, tol=1e-12, max_iter=1000, reg_covar=0.0, dtype="float64"
    )


def test_finds_the_known_optimum_of_old_faithful(faithful_fit, faithful):
    fit = faithful_fit
    assert abs(float(fit.log_likelihood) - FAITHFUL_LOGLIK_PER_ROW) < 1e-5
    assert bool(fit.converged)
    np.testing.assert_allclose(np.sort(np.asarray(fit.params.weights)), [0.3559, 0.6441], atol=1e-4)
    np.testing.assert_allclose(
        float(fit.log_likelihood), float(np.mean(gp.log_likelihood(fit.params, faithful))), rtol=1e-12
    )
    assert fit.params.means.dtype == np.float64


def test_trace_rises_and_ends_at_the_reported_objective(faithful_fit):
    fit = faithful_fit
    n = int(fit.n_iter)
    trace = np.asarray(fit.trace)
    assert trace.shape == (1000 + 1,)
    assert np.all(np.isfinite(trace[: n + 1])) and np.all(np.isnan(trace[n + 1 :]))
    assert trace[n] == float(fit.objective)
    # reg_covar=0: each M-step is the exact maximiser, so EM never lowers the objective.
    assert np.all(np.diff(trace[: n + 1]) >= -1e-13)


@pytest.mark.parametrize(
    "covariance_type, prior",
    [(c, p) for c in COVARIANCE_TYPES + MCLUST_EXTRA_TYPES for p in (None, "default")],
)
def test_gradient_vanishes_at_ml_and_map_fixed_points(faithful, covariance_type, prior):
    options = dict(covariance_type=covariance_type, n_init=3, tol=1e-13, max_iter=2000, reg_covar=0.0, dtype="float64")
    fit = gp.fit_em(faithful, 2, prior=prior, **options)
    assert bool(fit.converged)
    assert gp.check_stationarity(fit, faithful) < 1e-5
    # ... and it is a local maximum of the right objective, not merely of something else:
    # nudging any parameter lowers it.
    if prior is None:
        moved = fit.params._replace(means=fit.params.means + 1e-3)
        assert float(np.mean(gp.log_likelihood(moved, faithful, covariance_type))) < float(fit.log_likelihood)
    if covariance_type in COVARIANCE_TYPES:
        # Independently of check_stationarity (the library's own objective): the gradient of
        # NumPyro's density of the declared model, the likelihood (ML) or the log joint
        # (MAP), vanishes at the fit; under MAP it does not vanish at the ML fit, so the
        # check can tell the two objectives apart.
        model_prior = gp.default_prior(faithful, 2) if prior else None
        assert numpyro_gradient_size(faithful, fit.params, covariance_type, model_prior) < 1e-5
        if prior:
            ml = gp.fit_em(faithful, 2, **options)
            assert numpyro_gradient_size(faithful, ml.params, covariance_type, model_prior) > 1e-3


def numpyro_gradient_size(x, params, covariance_type, prior):
    """The largest entry of the gradient of NumPyro's log density of gmm_model (the data
    sites alone when ``prior`` is None) at ``params``, along directions that keep them
    valid (the weights along the simplex, symmetric covariances), each entry times the size
    of its parameter: the change of log density for a small relative step."""
    from numpyro.infer.util import log_density

    K = len(params.weights)

    def log_joint(weights, means, covariances):
        sites = gp.GMMParams(weights, means, covariances)
        if prior is None:
            model, args, kwargs, values = gp.mixture_likelihood, (jnp.asarray(x), sites, covariance_type), {}, {}
        else:
            model, args, values = gp.gmm_model, (jnp.asarray(x),), sites._asdict()
            kwargs = {"n_components": K, "covariance_type": covariance_type, "prior": prior}
        value, _ = log_density(model, args, {**kwargs, "marginal": True}, values)
        return value

    with jax.enable_x64(True):
        gradient = jax.jit(jax.grad(log_joint, argnums=(0, 1, 2)))  # one program, not hundreds op by op
        g_w, g_m, g_c = (np.asarray(g) for g in gradient(*map(jnp.asarray, params)))
    g_w = g_w - g_w.mean()
    if covariance_type in ("full", "tied"):
        g_c = 0.5 * (g_c + np.swapaxes(g_c, -1, -2))
    scaled = [g_w * params.weights, g_m.ravel(), (g_c * np.asarray(params.covariances)).ravel()]
    return float(np.max(np.abs(np.concatenate([np.ravel(a) for a in scaled]))))


def test_converged_is_true_when_the_rule_is_met_on_the_last_iteration(faithful):
    kwargs = dict(key=jax.random.key(1), tol=1e-6, dtype="float64")
    free = gp.fit_em(faithful, 2, max_iter=500, **kwargs)
    n = int(free.n_iter)
    assert bool(free.converged) and 2 <= n < 500
    exact = gp.fit_em(faithful, 2, max_iter=n, **kwargs)
    assert bool(exact.converged) and int(exact.n_iter) == n
    short = gp.fit_em(faithful, 2, max_iter=n - 1, **kwargs)
    assert not bool(short.converged) and int(short.n_iter) == n - 1
    # The rule itself: the last recorded change is below tol, the one before is not.
    trace = np.asarray(free.trace)
    assert abs(trace[n - 1] - trace[n - 2]) < 1e-6 <= abs(trace[n - 2] - trace[n - 3])


def test_restarts_are_batched_and_the_best_wins(diabetes):
    fit = gp.fit_em(diabetes, 3, key=jax.random.key(0), n_init=8, dtype="float64")
    objectives = np.asarray(fit.restart_objectives)
    assert objectives.shape == (8,)
    assert float(fit.objective) == objectives.max() == objectives[int(fit.best_restart)]
    assert len(np.unique(np.round(objectives, 6))) > 1  # the restarts really started apart


def test_best_of_restarts_is_at_least_as_good_as_scikit_learn(faithful, diabetes):
    from sklearn.mixture import GaussianMixture

    for x, k in ((faithful, 2), (faithful, 3), (diabetes, 3)):
        ours = gp.fit_em(x, k, key=jax.random.key(0), n_init=10, tol=1e-6, max_iter=500, dtype="float64")
        sk = GaussianMixture(k, n_init=10, tol=1e-6, max_iter=500, random_state=0).fit(x)
        assert float(ours.log_likelihood) >= sk.score(x) - 1e-6, (k, float(ours.log_likelihood), sk.score(x))


def test_integer_sample_weights_equal_repeated_rows(faithful):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=faithful.shape[0])
    counts[:2] = 1  # keep the rows used as starting means
    means = faithful[[0, 1]]
    weighted = gp.fit_em(faithful, 2, means_init=means, sample_weight=counts, tol=1e-10, dtype="float64")
    repeated = gp.fit_em(np.repeat(faithful, counts, axis=0), 2, means_init=means, tol=1e-10, dtype="float64")
    for a, b in zip(weighted.params, repeated.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8)
    np.testing.assert_allclose(float(weighted.log_likelihood), float(repeated.log_likelihood), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_chunked_statistics_equal_one_pass(faithful, covariance_type):
    kwargs = dict(covariance_type=covariance_type, key=jax.random.key(3), n_init=2, dtype="float64")
    one = gp.fit_em(faithful, 3, **kwargs)
    chunked = gp.fit_em(faithful, 3, chunk_size=50, **kwargs)  # 272 rows: 6 chunks, the last padded
    for a, b in zip(one.params, chunked.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert int(one.n_iter) == int(chunked.n_iter)


@pytest.mark.parametrize("platform", ["cpu", "gpu", "tpu", None])  # None: the platform the suite runs on
def test_default_chunks_fit_the_cache_on_a_cpu_and_are_larger_on_an_accelerator(platform, monkeypatch):
    """Issue 5's W2 (N=1e6, K=16, D=8): on a CPU a chunk's (K, D, n) array stays near
    CHUNK_ELEMENTS; on a GPU or TPU, where each chunk costs kernel launches, as large as the
    default memory budget allows: 2^24 numbers for W2's 32 MB of data. Either way the chunks
    cover the rows with less than one row of padding per chunk. Without a platform, JAX's
    default backend decides. (A device with plenty of free memory: the budget's own bound.)"""
    monkeypatch.setattr(stats, "free_bytes", lambda device: 100 * 2**30)
    n_rows, K, D = 1_000_000, 16, 8
    on_cpu = (platform or jax.default_backend()) == "cpu"
    n_chunks = 245 if on_cpu else 8
    chunk = stats.default_chunk_size(n_rows, K, D, platform=platform)
    elements = stats.CHUNK_ELEMENTS if on_cpu else 2**24
    assert chunk * K * D <= elements
    assert -(-n_rows // chunk) == n_chunks
    assert 0 <= n_chunks * chunk - n_rows < n_chunks
    # Restarts share the budget: 4 restarts, chunks a quarter as long (rounded to even them out).
    assert stats.default_chunk_size(n_rows, K, D, 4, platform) * K * D * 4 <= elements


MB = 2**20


def _predicted_peak(data_bytes, elements, itemsize=4):
    """The peak the policy predicts, written out: 1.6 x the data's bytes + 150 MB + 3 x a chunk's."""
    return 1.6 * data_bytes + 150 * MB + 3 * elements * itemsize


@pytest.mark.parametrize(
    ("name", "n_rows", "K", "D"), [("W2", 10**6, 16, 8), ("W3", 2 * 10**5, 32, 32), ("W4", 10**6, 8, 64)]
)
@pytest.mark.parametrize("itemsize", [4, 8])
def test_accelerator_chunks_keep_the_predicted_peak_within_the_memory_budget(name, n_rows, K, D, itemsize, monkeypatch):
    """On a GPU or TPU the chunk is the largest power of two of numbers whose predicted peak is
    within the budget. By default issue 5's workloads keep the 2^24 numbers the H200 ran them
    with (W2 at 2^25 measured 381 MB, past issue 5's 346 MB: chunks_gpu.md), in float32 and
    float64; a device with little free memory gets smaller chunks, within the data + half of
    it; a given budget (2 GB) lets W2 run in one chunk; one too small for any chunk is warned of."""
    data = n_rows * D * itemsize
    assert stats.free_bytes(jax.devices("cpu")[0]) is None  # a CPU says nothing of its memory
    monkeypatch.setattr(stats, "free_bytes", lambda device: 100 * 2**30)
    assert stats.accelerator_chunk_elements(data, itemsize) == 2**24
    # A device with 200 MB free: the budget is the data + 100 MB.
    monkeypatch.setattr(stats, "free_bytes", lambda device: 200 * MB)
    small = stats.accelerator_chunk_elements(data, itemsize)
    assert small < 2**24
    assert small == 2**16 or _predicted_peak(data, small, itemsize) <= data + 100 * MB
    assert _predicted_peak(data, 2 * small, itemsize) > data + 100 * MB
    # A budget given: 2 GB.
    given = stats.accelerator_chunk_elements(data, itemsize, memory_budget=2 * 2**30)
    assert _predicted_peak(data, given, itemsize) <= 2 * 2**30 < _predicted_peak(data, 2 * given, itemsize)
    if name == "W2" and itemsize == 4:
        assert stats.default_chunk_size(n_rows, K, D, platform="gpu", memory_budget=2 * 2**30) == n_rows
    with pytest.warns(
        RuntimeWarning, match="memory_budget=1000 bytes is below the predicted peak of the smallest chunk"
    ):
        assert stats.accelerator_chunk_elements(data, itemsize, memory_budget=1000) == 2**16
    # A CPU platform: the cache's rule, whatever the budget.
    assert (
        stats.default_chunk_size(n_rows, K, D, platform="cpu", memory_budget=2 * 2**30) * K * D <= stats.CHUNK_ELEMENTS
    )


def test_large_data_on_an_accelerator_keep_chunks_of_the_default_size(monkeypatch):
    """Issue 5's bound (1.5 x the data + 300 MB) leaves ever less room for a chunk as the data
    grow; the default budget never gives fewer numbers a chunk than 2^24 where the device has
    the memory: 1e8 rows of 8 (3.2 GB, K=4) in 191 chunks, not tens of thousands."""
    monkeypatch.setattr(stats, "free_bytes", lambda device: 100 * 2**30)
    n_rows, K, D = 10**8, 4, 8
    chunk = stats.default_chunk_size(n_rows, K, D, platform="gpu")
    assert chunk * K * D <= 2**24 and -(-n_rows // chunk) == 191


def test_a_bad_memory_budget_is_refused_by_name(faithful):
    with pytest.raises(ValueError, match="memory_budget must be an integer >= 1; got -5"):
        gp.fit_em(faithful, 2, memory_budget=-5)


@pytest.mark.parametrize(("n_rows", "n_blocks"), [(21, 1), (24, 4)])
def test_each_chunk_holds_a_run_of_rows_of_every_block_and_map_rows_restores_the_order(n_rows, n_blocks):
    """``stats.Chunks``: with one block, chunk c is rows 8c to 8c + 7 (the last padded with
    zero weights); with four blocks of 6 rows (four devices), chunk c holds rows 2c and
    2c + 1 of each block, so every device keeps its own rows."""
    x = np.stack([np.arange(n_rows), -np.arange(n_rows)], axis=1).astype(float)
    data = stats.to_chunks(jnp.asarray(x), jnp.ones(n_rows), 8, n_blocks)
    assert data.x.shape == (3, 2, 8)
    if n_blocks == 1:
        np.testing.assert_array_equal(data.x[1, 0], np.arange(8, 16))
        np.testing.assert_array_equal(data.w[2], [1, 1, 1, 1, 1, 0, 0, 0])
    else:
        np.testing.assert_array_equal(data.x[1, 0], [2, 3, 8, 9, 14, 15, 20, 21])
    np.testing.assert_array_equal(data.x[:, 1], -data.x[:, 0])
    np.testing.assert_array_equal(stats.map_rows(lambda rows: rows, data, n_rows), x)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES + MCLUST_EXTRA_TYPES)
def test_written_out_statistics_equal_the_array_form(covariance_type, monkeypatch):
    """The two forms of the E-step (``stats.written_out``) give the same statistics, and the
    same gradient of the objective, for every covariance type; the third component is
    absent (weight 0), as in a model-selection grid."""
    rng = np.random.default_rng(0)
    K, D = 3, 2
    cov_type = gp.covariance.get(covariance_type)
    params = random_params(rng, K, D, covariance_type)
    params = params._replace(weights=np.array([0.4, 0.6, 0.0]))
    x, w = rng.normal(size=(101, D)) * 2, rng.uniform(0.5, 2.0, size=101)
    with jax.enable_x64(True):
        data = stats.to_chunks(jnp.asarray(x), jnp.asarray(w), 40)  # 3 chunks, the last padded

    def mean_objective(p):
        return stats.objective(stats.sufficient_statistics(data, p, cov_type), p, covariance_type, None)

    def both(fn):
        results = []
        for limit in (K * D**2, 0):  # written out, then the array form
            monkeypatch.setattr(stats, "WRITTEN_OUT_MAX_TERMS", limit)
            with jax.enable_x64(True):  # a new jit per form: traced with its limit
                results.append(jax.jit(fn)(jax.tree.map(jnp.asarray, params)))
        return results

    assert stats.written_out(K, D)
    written, arrays = both(lambda p: stats.sufficient_statistics(data, p, cov_type))
    for a, b in zip(written, arrays, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert float(written.n[2]) == 0.0
    grad_written, grad_arrays = both(jax.grad(mean_objective))
    # The documentation's "to 1e-12" (measured: at most 9e-16 apart, entries of size 0.5 to 8).
    np.testing.assert_allclose(grad_written.means, grad_arrays.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_written.covariances, grad_arrays.covariances, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("n_features", [5, 16, 21])
def test_statistics_equal_a_direct_computation(covariance_type, n_features):
    """The E-step's statistics over 3 chunks (the last padded) equal the sums written
    directly in NumPy from the definition, in float64, on both sides of the feature counts
    where the distances change form (``ELEMENTWISE_MAX_FEATURES``, with the components in
    groups of ``COMPONENTS_PER_PRODUCT`` above it) and the second moments become one matmul
    (``ONE_MATMUL_MIN_FEATURES``)."""
    rng = np.random.default_rng(7)
    K, D, N = 6, n_features, 150  # above 16 features: a group of 4 components and one of 2
    assert not stats.written_out(K, D)
    params = random_params(rng, K, D, covariance_type)
    x, w = rng.normal(size=(N, D)) * 2, rng.uniform(0.5, 2.0, size=N)
    with jax.enable_x64(True):
        data = stats.to_chunks(jnp.asarray(x), jnp.asarray(w), 60)
        got = stats.sufficient_statistics(data, jax.tree.map(jnp.asarray, params), gp.covariance.get(covariance_type))
    log_joint = scipy_log_joint(x, params.weights, params.means, as_full(params, covariance_type))
    d = x[:, None, :] - params.means[None]  # (N, K, D)
    log_norm = np.logaddexp.reduce(log_joint, axis=1)
    rw = np.exp(log_joint - log_norm[:, None]) * w[:, None]
    moments = np.einsum("nk,nkd,nke->kde", rw, d, d)
    np.testing.assert_allclose(got.n, rw.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.s1, np.einsum("nk,nkd->kd", rw, d), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.s2, moments if covariance_type == "full" else moments.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.loglik, np.sum(w * log_norm), rtol=1e-10)


@pytest.mark.parametrize("n_features", [5, 16, 21])
def test_second_moments_equal_the_centred_products(n_features):
    """``_full_moments`` forms sum_i r_ki d_ki d_ki^T per component below 16 features, and
    from 16 on from d_ki x_i^T, in two blocks of features. In float64 it equals the
    centred products; in float32, for a tight component far from the data's mean, its
    error stays within a small multiple of eps |x| / sigma (its docstring's bound) and the
    moments stay positive definite."""
    rng = np.random.default_rng(5)
    K, n, D = 3, 300, n_features
    x = rng.normal(size=(D, n))
    x[:, :100] = 50.0 + 0.01 * x[:, :100]  # component 0: 5000 of its sigmas out
    x -= x.mean(axis=1, keepdims=True)  # centred, as EM's data are
    r = rng.uniform(size=(K, n)) * np.r_[np.ones(100), np.full(200, 1e-3)]
    r[1:, :100] = 0.0
    # reference means off the weighted means, as EM's previous means are: s_k is not 0
    means = (r @ x.T) / r.sum(axis=1)[:, None] + np.array([[0.005], [0.3], [-0.2]])
    d = x[None] - means[:, :, None]
    expected = np.einsum("kn,kdn,ken->kde", r, d, d)
    with jax.enable_x64(True):
        got = gp.covariance.estep._full_moments(jnp.asarray(x), jnp.asarray(means), jnp.asarray(r))
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11 * np.abs(expected).max())
    got32 = np.asarray(gp.covariance.estep._full_moments(*(jnp.asarray(a, jnp.float32) for a in (x, means, r))))
    eps_x_over_sigma = np.finfo(np.float32).eps * np.abs(x).max() / 0.01
    scale = np.abs(expected).max(axis=(1, 2))[:, None, None]
    assert np.all(np.abs(got32 - expected) <= 10 * eps_x_over_sigma * scale)
    assert np.all(np.linalg.eigvalsh(0.5 * (got32 + np.swapaxes(got32, 1, 2)).astype(np.float64)) > 0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_on_offset_data_matches_float64(faithful, covariance_type):
    x = faithful + 1e4
    kwargs = dict(covariance_type=covariance_type, means_init=x[[0, 1]], tol=1e-5, max_iter=200)
    f32 = gp.fit_em(x, 2, **kwargs)
    f64 = gp.fit_em(x, 2, dtype="float64", **kwargs)
    assert f32.params.means.dtype == np.float32
    assert abs(float(f32.log_likelihood) - float(f64.log_likelihood)) < 1e-3
    full = gp.COVARIANCE_TYPES[covariance_type].to_full(f32.params.covariances, 2, 2)
    assert np.all(np.linalg.eigvalsh(np.asarray(full, dtype=np.float64)) > 0)


@pytest.mark.parametrize("build", ["quick", "optimised"])
def test_a_second_call_with_new_data_of_the_same_shape_does_not_recompile(faithful, build, monkeypatch):
    # Old Faithful with 4 restarts is a small problem (the quick build, on a CPU); with the
    # bound at 0 it takes the optimised build. Neither compiles a shape twice.
    if build == "optimised":
        monkeypatch.setattr(programs, "QUICK_MAX_WORK", 0)
    called, builds = [], em._fit_program
    monkeypatch.setattr(em, "_fit_program", spy_on_builds(builds, called))
    gp.fit_em(faithful, 2, n_init=4)
    before = builds.cache_size()
    fit = gp.fit_em(faithful * 1.5 + 3.0, 2, n_init=4, key=jax.random.key(7), tol=1e-4, reg_covar=1e-5)
    assert builds.cache_size() == before
    assert programs.compiled_count()["fit_em"] == before  # the registry counts the same programs
    assert called == [build if build == "optimised" else SMALL_PROBLEMS_BUILD] * 2
    assert np.isfinite(float(fit.objective))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_jax_array_is_fitted_where_it_lives(faithful, dtype, monkeypatch, numpy_checks):
    """Data already on a device (a GPU, say) is checked and fitted there, and the fit equals
    the fit of the same data as a NumPy array. The proof that nothing the size of x went
    through the host: the NumPy check never saw it, and the float32 program got the
    caller's own buffer. (On a GPU JAX's transfer guard also forbids every implicit copy to
    the host; on a CPU, where NumPy can read a JAX array in place, it does not fire.)"""
    options = dict(n_init=3, key=4, dtype=dtype)
    # Padded to a shared shape (programs.padded_shape), small data would be copied on its
    # device, and the proof below that the program got the caller's buffer would not hold.
    monkeypatch.setattr(programs, "padded_shape", lambda *args, **kwargs: None)
    from_numpy = gp.fit_em(faithful.astype(np.float32), 2, **options)
    on_device = jnp.asarray(faithful, jnp.float32)
    fitted = []
    numpy_checks.clear()  # the NumPy fit above was checked on the host, as it should be
    monkeypatch.setattr(em, "_fit_program", spy_on_builds(em._fit_program, [], data=fitted))
    with jax.transfer_guard_device_to_host("disallow"):
        in_place = gp.fit_em(on_device, 2, **options)
    assert numpy_checks == []
    if dtype == "float32":
        assert fitted[0].unsafe_buffer_pointer() == on_device.unsafe_buffer_pointer()
    assert int(in_place.n_iter) == int(from_numpy.n_iter)
    np.testing.assert_array_equal(in_place.log_likelihood, from_numpy.log_likelihood)
    for a, b in zip(jax.tree.leaves(in_place.params), jax.tree.leaves(from_numpy.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_long_max_iter_counts_as_more_work_for_the_quick_build(faithful, monkeypatch):
    """The quick build's bound holds for 100 iterations; more count as more work. Old
    Faithful with 3 restarts touches 3,264 elements a pass (too many padded to a shared
    shape, so it is fitted as it is): at max_iter=2000 that counts as 65,280, within 2^16;
    at 2100 as 68,544, beyond it."""
    called = []
    monkeypatch.setattr(em, "_fit_program", spy_on_builds(em._fit_program, called))
    for max_iter in (2000, 2100):
        gp.fit_em(faithful, 2, n_init=3, max_iter=max_iter)
    assert called == [SMALL_PROBLEMS_BUILD, "optimised"]


def test_a_jax_array_picks_the_chunks_and_build_of_its_own_devices(faithful, monkeypatch):
    """A JAX array's program runs where the array is, so its platform, not JAX's default
    backend, picks the chunk size and the build (a NumPy array leaves it to the default),
    and its device is the one whose memory an accelerator's chunks are sized to."""
    devices = [jax.devices()[0]]
    try:
        devices.append(jax.devices("cpu")[0])  # beside a GPU, an array on the host's CPU
    except RuntimeError:  # JAX_PLATFORMS leaves out the CPU backend
        pass
    asked = []
    monkeypatch.setattr(
        em, "default_chunk_size", lambda *args, **kwargs: asked.append((args[-1], kwargs["device"])) or 512
    )
    for device in devices:
        gp.fit_em(jax.device_put(faithful, device), 2, n_init=2)
    gp.fit_em(faithful, 2, n_init=2)
    assert asked == [(device.platform, device) for device in devices] + [(None, None)]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_quick_build_fits_as_the_optimised_build_does(faithful, covariance_type, monkeypatch):
    """Small problems get the quick-to-compile build on a CPU (gmm_ppl.programs;
    other platforms have one build); with the bound at 0 the same fit takes the optimised
    build, and both reach the same fit."""
    called = []
    monkeypatch.setattr(em, "_fit_program", spy_on_builds(em._fit_program, called))
    options = dict(covariance_type=covariance_type, n_init=3, key=2, dtype="float64")
    quick = gp.fit_em(faithful, 2, **options)
    monkeypatch.setattr(programs, "QUICK_MAX_WORK", 0)
    optimised = gp.fit_em(faithful, 2, **options)
    assert called == [SMALL_PROBLEMS_BUILD, "optimised"]
    assert int(quick.n_iter) == int(optimised.n_iter)
    np.testing.assert_allclose(float(quick.log_likelihood), float(optimised.log_likelihood), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(quick.params), jax.tree.leaves(optimised.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_partial_starting_parameters(faithful):
    means = faithful[[0, 1]]
    shorthand = gp.fit_em(faithful, 2, means_init=means, dtype="float64")
    partial = gp.fit_em(faithful, 2, init_params=gp.GMMParams(None, means, None), dtype="float64")
    np.testing.assert_array_equal(shorthand.params.means, partial.params.means)
    assert partial.restart_objectives.shape == (1,)  # given means: a deterministic start, one run
    # Given weights alone replace the weights of every random restart; restarts still run.
    weights_only = gp.fit_em(faithful, 2, init_params=gp.GMMParams(np.array([0.9, 0.1]), None, None), n_init=3)
    assert weights_only.restart_objectives.shape == (3,)
    assert abs(float(weights_only.log_likelihood) - FAITHFUL_LOGLIK_PER_ROW) < 1e-4


def test_mclust_codes_name_the_same_models(faithful):
    for code, name in {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}.items():
        a = gp.fit_em(faithful, 2, covariance_type=code, dtype="float64")
        b = gp.fit_em(faithful, 2, covariance_type=name, dtype="float64")
        assert a.covariance_type == name
        np.testing.assert_array_equal(a.params.means, b.params.means)


def test_free_parameter_counts_follow_mclust():
    # mclust's nMclustParams for G=3, d=4: (G - 1) + G d + the covariance parameters.
    counts = {"EII": 1, "VII": 3, "EEI": 4, "VEI": 6, "EVI": 10, "VVI": 12}
    counts.update({"EEE": 10, "VEE": 12, "EVE": 16, "VVE": 18, "EEV": 22, "VEV": 24, "EVV": 28, "VVV": 30})
    for code, n_cov in counts.items():
        assert gp.n_free_parameters(3, 4, code) == 2 + 12 + n_cov, code


@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("covariance_type", MCLUST_EXTRA_TYPES)
def test_constrained_types_keep_their_constraint(faithful, covariance_type, prior):
    """ML and MAP: the prior's pseudo-statistics keep the structure (covariance.priors)."""
    fit = gp.fit_em(faithful, 3, covariance_type=covariance_type, n_init=3, reg_covar=0.0, dtype="float64", prior=prior)
    cov = fit.params.covariances
    if covariance_type in ("EII", "EEI"):  # one covariance shared by all
        np.testing.assert_array_equal(cov, np.broadcast_to(cov[0], cov.shape))
    elif covariance_type == "EEV":  # the same eigenvalues (volume and shape), other axes
        values = np.linalg.eigvalsh(cov)
        np.testing.assert_allclose(values, np.broadcast_to(values[0], values.shape), rtol=1e-10)
        assert not np.allclose(cov[0], cov[1])
    elif covariance_type == "VEI":  # one diagonal shape, differing volumes
        volumes = np.exp(np.mean(np.log(cov), axis=-1))
        np.testing.assert_allclose(cov / volumes[:, None], np.broadcast_to(cov[0] / volumes[0], cov.shape), rtol=1e-10)
        assert np.ptp(np.log(volumes)) > 0.1
    elif covariance_type in ("VEE", "VEV"):  # one shape (VEE: and orientation), differing volumes
        volumes = np.linalg.det(cov) ** (1 / 2)
        if covariance_type == "VEE":
            shapes = cov / volumes[:, None, None]
        else:
            shapes = np.linalg.eigvalsh(cov) / volumes[:, None]
        np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-10)
        assert np.ptp(np.log(volumes)) > 0.1
        assert covariance_type == "VEE" or not np.allclose(cov[0] / volumes[0], cov[1] / volumes[1])
    elif covariance_type in ("EVE", "VVE"):  # common axes: covariances that commute; own diagonals
        np.testing.assert_allclose(cov[0] @ cov[1], cov[1] @ cov[0], rtol=0, atol=1e-10 * np.max(cov) ** 2)
        volumes = np.linalg.det(cov) ** (1 / 2)
        if covariance_type == "EVE":
            np.testing.assert_allclose(volumes, volumes[0], rtol=1e-10)
        else:
            assert np.ptp(np.log(volumes)) > 0.1
        assert not np.allclose(cov[0] / volumes[0], cov[1] / volumes[1])
    else:  # equal volumes |Sigma_k|, differing shapes
        full = gp.density.full_covariances(cov, covariance_type, 3, 2)
        dets = np.linalg.det(full)
        np.testing.assert_allclose(dets, dets[0], rtol=1e-10)
        assert not np.allclose(full[0], full[1])


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_every_restart_end_is_kept(diabetes, covariance_type):
    """EMResult.restart_params holds where every restart ended (for a caller that looks for
    distinct optima): the best one is the fit, and each end's objective is its mean
    log-likelihood, by SciPy."""
    fit = gp.fit_em(diabetes, 3, covariance_type=covariance_type, key=5, n_init=4, dtype="float64")
    ends = fit.restart_params
    assert ends.weights.shape == (4, 3) and ends.means.shape == (4, 3, 3)
    assert ends.covariances.shape == (4,) + np.shape(fit.params.covariances)
    assert np.ptp(fit.restart_objectives) > 1e-3  # the restarts ended apart: the check can fail
    for i in range(4):
        end = gp.GMMParams(*(a[i] for a in ends))
        mean_log_likelihood = np.mean(scipy_log_likelihood(end, diabetes, covariance_type))
        np.testing.assert_allclose(mean_log_likelihood, fit.restart_objectives[i], rtol=1e-12)
    for a, b in zip(fit.params, ends, strict=True):
        np.testing.assert_array_equal(a, b[fit.best_restart])
    # One start (given means): its end, the fit itself, is the one restart's.
    one = gp.fit_em(diabetes, 3, covariance_type=covariance_type, means_init=fit.params.means, dtype="float64")
    for a, b in zip(one.params, one.restart_params, strict=True):
        assert b.shape == (1,) + np.shape(a)
        np.testing.assert_array_equal(a, b[0])


def test_max_iter_zero_scores_the_start_and_takes_no_step(faithful):
    """max_iter=0 (scikit-learn's way to inspect a start): the start itself, its objective
    SciPy's mean log-likelihood there, no iteration."""
    start = gp.GMMParams(np.array([0.4, 0.6]), faithful[[0, 1]], np.stack([np.cov(faithful.T)] * 2))
    fit = gp.fit_em(faithful, 2, init_params=start, max_iter=0, dtype="float64")
    assert int(fit.n_iter) == 0 and not bool(fit.converged)
    for ours, given in zip(fit.params, start, strict=True):
        np.testing.assert_array_equal(ours, given)
    expected = np.mean(scipy_log_likelihood(start, faithful, "full"))
    np.testing.assert_allclose([fit.objective, fit.log_likelihood, fit.trace[0]], expected, rtol=1e-12)


def test_previous_objective_lets_a_continued_fit_converge_at_once(faithful):
    """A fit continued from a converged one, with that fit's last objective, stops after its
    first iteration (its change from that objective is below tol); from -inf it cannot."""
    first = gp.fit_em(faithful, 2, key=0, tol=1e-6, dtype="float64")
    assert bool(first.converged)
    last = float(first.trace[int(first.n_iter) - 1])
    continued = gp.fit_em(faithful, 2, init_params=first.params, tol=1e-6, dtype="float64", previous_objective=last)
    assert bool(continued.converged) and int(continued.n_iter) == 1
    plain = gp.fit_em(faithful, 2, init_params=first.params, tol=1e-6, dtype="float64")
    assert int(plain.n_iter) == 2
    with pytest.raises(ValueError, match="previous_objective continues one fit"):
        gp.fit_em(faithful, 2, n_init=3, previous_objective=last)


def test_matmul_precision_is_the_one_the_program_runs_under(faithful, monkeypatch):
    """fit_em(matmul_precision=) sets JAX's matmul precision for its compiled program (part of
    the program's key, so each has its own executable); an unknown name is refused. A CPU
    multiplies float32 in full whatever the setting: the same fit."""
    seen = []

    class Spy:  # the program fit_em picks, recording the precision in force when it runs
        def __init__(self, builds):
            self.builds = builds

        def pick(self, *args, **kwargs):
            program = self.builds.pick(*args, **kwargs)

            def run(*a, **k):
                seen.append(jax.config.jax_default_matmul_precision)
                return program(*a, **k)

            return run

    monkeypatch.setattr(em, "_fit_program", Spy(em._fit_program))
    fits = {p: gp.fit_em(faithful, 2, key=0, n_init=2, matmul_precision=p) for p in ("highest", "default")}
    assert seen == ["highest", "default"]
    assert jax.config.jax_default_matmul_precision != "default"  # restored after the call
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(fits["highest"].params.means, fits["default"].params.means)
    with pytest.raises(ValueError, match="matmul_precision must be one of 'highest', 'high', 'default'; got 'bf16'"):
        gp.fit_em(faithful, 2, matmul_precision="bf16")
