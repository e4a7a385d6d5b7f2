"""Small problems are compiled for shared shapes (``programs.padded_shape``): rows padded with
zero weight, components beyond K held at weight 0. Padding must not change a result beyond
rounding (the fit of the exact shape, from the same start, to 1e-10 in float64), nor a BIC,
and a notebook's usual sequence of calls must compile few programs."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_ppl as gp
from gmm_ppl import covariance, programs

# Every maximum-likelihood structure gmm_ppl has, by mclust code; the default run takes three.
ALL_CODES = list(covariance.DEFAULT_SELECTION)
# tied and spherical are held in the storage of full and diag in a shared program (em.SHARED_SMALL_FITS).
QUICK_CODES = ["VVV", "EEE", "VII"]


@pytest.fixture(scope="module")
def blobs():
    """150 rows, 4 columns, three groups: the size of the bio-assay data."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(50, 4)) + m for m in (0, 3, 6)])


def _unpadded(monkeypatch):
    monkeypatch.setattr(programs, "padded_shape", lambda *args, **kwargs: None)


def _assert_same_fit(padded, exact):
    assert padded.params.means.shape == exact.params.means.shape
    # Restarts that reach one optimum (all of them at K=1) tie up to rounding: either is best.
    best, other = int(exact.best_restart), int(padded.best_restart)
    np.testing.assert_allclose(exact.restart_objectives[other], exact.restart_objectives[best], rtol=1e-10)
    np.testing.assert_allclose(padded.log_likelihood, exact.log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(padded.restart_objectives, exact.restart_objectives, rtol=1e-10)
    same_restart = jax.tree.map(lambda a: a[other], exact.restart_params)
    for a, b in zip(jax.tree.leaves(padded.params), jax.tree.leaves(same_restart), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(jax.tree.leaves(padded.restart_params), jax.tree.leaves(exact.restart_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    assert bool(padded.converged) == bool(exact.converged)
    if other == best:  # the trace and iterations are the best restart's
        assert int(padded.n_iter) == int(exact.n_iter)
        n = int(exact.n_iter) + 1
        np.testing.assert_allclose(padded.trace[:n], exact.trace[:n], rtol=1e-10)


def test_the_buckets():
    rows = (1, 32, 33, 145, 150, 256, 257, 272)
    assert [programs.row_bucket(n) for n in rows] == [32, 32, 40, 160, 160, 256, 320, 320]
    assert [programs.component_bucket(k) for k in (1, 6, 8, 9, 17)] == [8, 8, 8, 16, 32]
    assert programs.padded_shape(150, 3, 4, 5) == (160, 8)
    assert programs.padded_shape(150, 3, 4, 5, components=False) == (160, 3)
    assert programs.padded_shape(10**5, 3, 4, 5) is None  # large: its exact shape


def _check_fit(x, code, k, init, monkeypatch, **options):
    options = dict(covariance_type=code, key=3, n_init=4, init=init, dtype="float64", **options)
    padded = gp.fit_em(x, k, **options)
    _unpadded(monkeypatch)
    exact = gp.fit_em(x, k, **options)
    _assert_same_fit(padded, exact)


@pytest.mark.parametrize("code", QUICK_CODES)
def test_a_padded_fit_is_the_fit_of_the_exact_shape(blobs, code, monkeypatch):
    _check_fit(blobs, code, 3, "kmeans++", monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("code", ALL_CODES)
# K=3 fits these data with no component on fewer rows than columns. With one (K=5 here),
# EEV's orientation of that component is any eigenbasis of a singular scatter, which rounding
# picks, and a fit of the exact shape differs as much from itself with its rows permuted.
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("init", ["kmeans++", "kmeans", "hierarchical"])
def test_every_structure_padded_is_the_fit_of_the_exact_shape(blobs, code, k, init, monkeypatch):
    weights = np.random.default_rng(1).integers(1, 4, size=len(blobs))
    _check_fit(blobs, code, k, init, monkeypatch, sample_weight=weights)


@pytest.mark.parametrize("code", ["tied", "spherical"])
def test_a_given_weight_of_zero_keeps_its_fit(blobs, code, monkeypatch):
    """A component given weight 0 is absent from the start. Padded, the fit is the fit of the
    exact shape: a tied fit held as full covariances would have returned the absent
    component's unit covariance as the shared one."""
    given = gp.GMMParams(np.array([0.0, 0.5, 0.5]), None, None)
    _check_fit(blobs, code, 3, "kmeans++", monkeypatch, init_params=given)


@pytest.mark.parametrize("code", ["VVV", "EEE", "VII", "EII", "VEI"])
def test_a_map_fit_is_the_fit_of_the_exact_shape(blobs, code, monkeypatch):
    """Under MAP too: the components beyond K have no prior (the log-prior and the prior's
    pseudo-statistics are those of the K present ones; a shared covariance's prior is
    shared among those K). Tied (EEE) and spherical (VII) fits run in the program they share
    with full and diag (``em.SHARED_SMALL_FITS``), under the chosen structure's prior."""
    _check_fit(blobs, code, 2, "kmeans++", monkeypatch, prior="default")


def test_the_estimator_criteria_and_predictions_are_those_of_the_exact_shape(blobs, monkeypatch):
    def evaluate():
        est = gp.GaussianMixture(3, covariance_type="diag", n_init=3, random_state=0, dtype="float64").fit(blobs)
        return est.bic(blobs), est.aic(blobs), est.score_samples(blobs), est.predict_proba(blobs), est.predict(blobs)

    padded = evaluate()
    _unpadded(monkeypatch)
    exact = evaluate()
    for a, b in zip(padded[:4], exact[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(padded[4], exact[4])


def test_a_jax_array_and_a_numpy_array_get_the_same_padded_fit(blobs):
    options = dict(key=2, n_init=3)
    from_numpy = gp.fit_em(blobs.astype(np.float32), 3, **options)
    on_device = gp.fit_em(jnp.asarray(blobs, jnp.float32), 3, **options)
    for a, b in zip(jax.tree.leaves(on_device.params), jax.tree.leaves(from_numpy.params), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("prior", [None, "default"], ids=["ml", "map"])
def test_a_notebook_pass_compiles_one_fit_program_per_storage_family(blobs, prior):
    """The sequence a notebook runs: four covariance types x K = 1..6, each fitted, scored and
    used to predict. Counted from an empty memory (programs loaded from the suite's disk
    cache count as held, so the count is the programs the pass needs, not how long it took).
    Full and tied fits share a program, diag and spherical another (``em.SHARED_SMALL_FITS``),
    under MAP-EM too."""
    jax.clear_caches()
    programs.forget_all()
    for code in ("full", "tied", "diag", "spherical"):
        for k in range(1, 7):
            est = gp.GaussianMixture(k, covariance_type=code, n_init=5, random_state=0, prior=prior).fit(blobs)
            est.predict(blobs)
            est.score(blobs)
            est.bic(blobs)
    held = programs.compiled_count()
    assert held["fit_em"] == 2  # one per storage family, not one per (type, K): 24
    assert held["component_log_prob"] == 2  # likewise (likelihood._evaluate)
    assert sum(held.values()) <= 10, held


def _programs_compiled() -> int:
    """Executables the registered programs have compiled in this process (loads not counted)."""
    builds = []
    for compiled, _ in programs.PROGRAMS.values():
        builds += [compiled.optimised, compiled.quick] if isinstance(compiled, programs.TwoBuilds) else [compiled]
    return sum(build.compiles for build in builds)


def _logged_compiles(caplog) -> list[str]:
    return [r.getMessage().split(" ")[1] for r in caplog.records if r.getMessage().startswith("Compiling ")]


def _compiles_outside_programs(caplog, calls) -> tuple[int, list[str]]:
    """(compiles made by ``calls()`` beyond the registered programs', the names of all it
    made), from JAX's compile log, with every compiled program dropped first. An operation
    run outside a program (``jnp.asarray`` of NumPy data, arithmetic on a program's output)
    compiles a program of its own for each new shape, 10-50 ms each, in a warm process too;
    a registered program's compiles are counted by the program, its loads from disk compile
    nothing."""
    jax.clear_caches()
    programs.forget_all()
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles(True):
        caplog.clear()
        jnp.arange(7.0) * 3  # outside a program: its compiles must be in the log
        assert _logged_compiles(caplog), "JAX's compile log was not read"
        caplog.clear()
        before = _programs_compiled()
        calls()
        names = _logged_compiles(caplog)
    return len(names) - (_programs_compiled() - before), names


def test_first_calls_compile_only_the_librarys_programs(blobs, caplog):
    """A first fit, its densities and a variational fit compile (or load from disk) the
    library's programs and nothing else: no operation outside them compiles."""
    x = blobs[:140]

    def calls():
        fit = gp.fit_em(x, 3, key=0, n_init=2)
        gp.log_likelihood(fit.params, x)
        gp.responsibilities(fit.params, x)
        gp.component_log_prob(fit.params, x)
        gp.GaussianMixture(2, random_state=0).fit(x).score(x)
        gp.BayesianGaussianMixture(n_components=3, random_state=0, max_iter=20).fit(x)
        gp.select_model(x, [1, 2], ["VVV", "VII"], init="mclust", progress=False)

    outside, names = _compiles_outside_programs(caplog, calls)
    assert outside == 0, names


@pytest.mark.slow
def test_a_first_posterior_compiles_only_the_librarys_programs(blobs, caplog):
    """sample_posterior's start, sampler, relabelling, pointwise log-likelihood and the
    modes search likewise."""
    x = blobs[:140]

    def calls():
        idata = gp.sample_posterior(x, 3, key=0, num_warmup=30, num_samples=30, num_chains=2, progress=False)
        gp.assignment_probabilities(idata, x)

    outside, names = _compiles_outside_programs(caplog, calls)
    assert outside == 0, names


@pytest.mark.parametrize("code", ["VVV", "VVI", "VII", "VEI", "VEE", "EVE", "VVE", "VEV"])
def test_padding_keeps_a_fit_without_regularisation(blobs, code, monkeypatch):
    """reg_covar=0 is allowed; a component held at weight 0 then has no rows and its covariance
    came out singular, its density NaN on every row: small fits failed with
    FloatingPointError once K was padded. The padded fit is the exact one."""
    padded = gp.fit_em(blobs, 3, covariance_type=code, key=0, n_init=2, reg_covar=0.0, dtype="float64")
    _unpadded(monkeypatch)
    exact = gp.fit_em(blobs, 3, covariance_type=code, key=0, n_init=2, reg_covar=0.0, dtype="float64")
    _assert_same_fit(padded, exact)


def test_mclusts_start_padded_is_the_fit_of_the_exact_shape(blobs, monkeypatch):
    """mclust's start hands EM a classification (gmm_ppl.hc): its labels are padded with the
    rows (weight 0, so they take no part), and the fit is that of the exact shape."""
    weights = np.random.default_rng(1).integers(1, 4, size=len(blobs))
    _check_fit(blobs, "VVV", 3, "mclust", monkeypatch, sample_weight=weights)


@pytest.mark.parametrize("code", ["VVV", "EEE", "VEI", "VII"])
@pytest.mark.parametrize("prior", [None, "default"])
def test_given_means_padded_are_the_fit_of_the_exact_shape(blobs, code, prior, monkeypatch):
    """Given means (``means_init``) are padded with absent components: they take no rows in
    the start's nearest-mean assignment nor after, and the fit is that of the exact shape."""
    if prior is not None and not covariance.supports(code, "map"):
        pytest.skip(f"{code} has no MAP step")
    means = blobs[[0, 60, 120]]
    _check_fit(blobs, code, 3, "kmeans++", monkeypatch, means_init=means, prior=prior)


def test_fits_from_given_starts_share_a_program_across_k(blobs):
    """K = 1..6 from mclust's start, from the hierarchical one and from given means, the
    components padded to 8: two programs in all, not one per K and start (18). mclust's start
    hands the program a classification too; the hierarchical start and given means share one."""
    jax.clear_caches()
    programs.forget_all()
    for k in range(1, 7):
        gp.fit_em(blobs, k, init="mclust")
        gp.fit_em(blobs, k, init="hierarchical")
        gp.fit_em(blobs, k, means_init=blobs[:k])
        gp.fit_em(blobs, k, means_init=blobs[:k], init="random")  # the means replace the draws
    assert programs.compiled_count()["fit_em"] == 2
