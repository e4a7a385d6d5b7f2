"""Shared fixtures. JAX runs on the CPU; float64 is opt-in per call (dtype="float64"),
so the suite exercises the same default configuration a user has."""

import faulthandler
import json
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

import gmm_ppl as gp  # noqa: E402
from gmm_ppl import _map_limit, _validate, programs  # noqa: E402

# The suite keeps compiled programs on disk as a user does (gmm_ppl.compilation_cache), in
# a folder of its own that both workers and the command lines they start share (so writers
# meet), and that a developer's next run reuses. GMM_PPL_TEST_CACHE_DIR moves it; set empty,
# the suite runs without the cache. test_compilation_cache.py tests the cache's rules in
# folders and processes of its own.
SUITE_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "programs"
os.environ["GMM_PPL_CACHE_DIR"] = os.environ.get("GMM_PPL_TEST_CACHE_DIR", str(SUITE_CACHE))

# A worker that crashes in compiled code (a segfault in XLA, say) loses its Python stack in
# the report: xdist shows the tail of the worker's output, and faulthandler's list of loaded
# extension modules fills that tail. So each worker writes faulthandler's report to a file of
# its own, and the run's summary prints the stacks from any that crashed.
CRASH_DIR = Path(__file__).resolve().parent.parent / ".pytest_cache" / "crashes"
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_crash_report = pytest.StashKey()
# Left out of the summary: the module list, and the frames of the test runner under each test.
_RUNNER_FRAMES = ("/_pytest/", "/pluggy/", "/xdist/", "/execnet/", '"<string>"')


@pytest.hookimpl(trylast=True)  # after pytest's faulthandler plugin, which writes to stderr
def pytest_configure(config):
    CRASH_DIR.mkdir(parents=True, exist_ok=True)
    if WORKER is None:  # the controller starts the run: earlier runs' reports are stale
        for old in CRASH_DIR.glob("*.txt"):
            old.unlink()
        return
    report = open(CRASH_DIR / f"{WORKER}-{os.getpid()}.txt", "w")  # noqa: SIM115 (open while the worker lives)
    config.stash[_crash_report] = report
    faulthandler.enable(file=report, all_threads=True)


def pytest_unconfigure(config):
    report = config.stash.get(_crash_report, None)
    if report is not None:
        faulthandler.disable()
        report.close()


def pytest_terminal_summary(terminalreporter):
    if WORKER is not None:
        return
    for path in sorted(CRASH_DIR.glob("*.txt")):
        lines = [
            line
            for line in path.read_text().splitlines()
            if not line.startswith("Extension modules") and not any(frame in line for frame in _RUNNER_FRAMES)
        ]
        if any(lines):
            terminalreporter.section(f"worker crash: {path.stem}")
            for line in lines:
                terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Compiled programs held by a worker are released between tests, at a quarter of the
    process's mapping limit (see gmm_ppl._map_limit, which does it at half during a call).
    So gmm_ppl's own release never falls inside a test, where a test counting compilations
    would see it."""
    _map_limit.release_above(0.25)
    yield


COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# mclust parameterisations beyond scikit-learn's four (MAP-EM under their prior, no NumPyro
# model; the last five iterative).
MCLUST_EXTRA_TYPES = ("EII", "EEI", "EVI", "EVV", "EEV", "VEI", "VEE", "EVE", "VVE", "VEV")


@pytest.fixture(scope="session")
def faithful():
    return gp.datasets.load("old_faithful")


@pytest.fixture(scope="session")
def diabetes():
    return gp.datasets.load("diabetes")


@pytest.fixture
def numpy_checks(monkeypatch):
    """The arrays that ``_validate.as_data`` (the NumPy check, on the host) is given during
    the test, in order: empty when data stayed on its device."""
    seen = []
    check = _validate.as_data
    monkeypatch.setattr(_validate, "as_data", lambda x, *args, **kwargs: seen.append(x) or check(x, *args, **kwargs))
    return seen


# The build a small problem gets: the quick one exists on a CPU only (gmm_ppl.programs).
SMALL_PROBLEMS_BUILD = "quick" if jax.default_backend() == "cpu" else "optimised"


def spy_on_builds(builds, called: list, data: list | None = None):
    """``builds`` (a ``programs.TwoBuilds``) whose builds append their name
    ('optimised' or 'quick') to ``called`` when called, to see which one a call took, and
    their first argument (the data) to ``data`` if given."""

    def spy(name):
        program = getattr(builds, name)

        def call(*args, **kwargs):
            called.append(name)
            if data is not None:
                data.append(args[0])
            return program(*args, **kwargs)

        return call

    return programs.TwoBuilds(spy("optimised"), spy("quick"))


def numpyro_densities(model, args, kwargs, sites):
    """NumPyro's log density of ``model`` with z enumerated out (funsor) and in the marginal
    form, in float64, as one compiled program (op by op, JAX compiled some 300 small
    programs a call), and the ``infer`` entry of z's site in the enumerated trace."""
    from numpyro.contrib.funsor import enum
    from numpyro.contrib.funsor import log_density as enum_log_density
    from numpyro.infer.util import log_density

    infer = {}

    def both():
        arrays = tuple(a if isinstance(a, str) else jax.tree.map(jnp.asarray, a) for a in args)
        values = jax.tree.map(jnp.asarray, sites)
        enumerated, trace = enum_log_density(enum(model, first_available_dim=-2), arrays, kwargs, values)
        infer.update(trace["z"]["infer"])
        marginal, _ = log_density(model, arrays, {**kwargs, "marginal": True}, values)
        return enumerated, marginal

    with jax.enable_x64(True):
        enumerated, marginal = jax.jit(both)()
    return float(enumerated), float(marginal), infer


def random_params(rng, n_components, n_features, covariance_type, spread=3.0):
    """Random valid parameters of a covariance type (NumPy float64)."""
    K, D = n_components, n_features
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=spread, size=(K, D))
    if covariance_type == "full":
        a = rng.normal(size=(K, D, D))
        cov = a @ np.swapaxes(a, 1, 2) / D + 0.5 * np.eye(D)
    elif covariance_type == "tied":
        a = rng.normal(size=(D, D))
        cov = a @ a.T / D + 0.5 * np.eye(D)
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 2.0, size=(K, D))
    elif covariance_type == "spherical":
        cov = rng.uniform(0.3, 2.0, size=K)
    elif covariance_type == "EII":
        cov = np.full(K, rng.uniform(0.3, 2.0))
    elif covariance_type == "EEI":
        cov = np.tile(rng.uniform(0.3, 2.0, size=D), (K, 1))
    elif covariance_type == "EVI":
        v = rng.normal(scale=0.5, size=(K, D))
        cov = rng.uniform(0.3, 2.0) * np.exp(v - v.mean(axis=1, keepdims=True))
    elif covariance_type == "VEI":
        v = rng.normal(scale=0.5, size=D)
        cov = rng.uniform(0.3, 2.0, size=(K, 1)) * np.exp(v - v.mean())
    elif covariance_type == "EVV":
        a = rng.normal(size=(K, D, D))
        c = a @ np.swapaxes(a, 1, 2) / D + 0.5 * np.eye(D)
        cov = rng.uniform(0.3, 2.0) * c / np.linalg.det(c)[:, None, None] ** (1 / D)
    elif covariance_type == "EEV":
        rotations = np.linalg.qr(rng.normal(size=(K, D, D)))[0]
        shape = np.exp(rng.normal(scale=0.5, size=D))
        cov = rng.uniform(0.3, 2.0) * np.einsum("kde,e,kfe->kdf", rotations, shape / shape.prod() ** (1 / D), rotations)
    elif covariance_type == "VEE":
        a = rng.normal(size=(D, D))
        c = a @ a.T / D + 0.5 * np.eye(D)
        cov = rng.uniform(0.3, 2.0, size=(K, 1, 1)) * c / np.linalg.det(c) ** (1 / D)
    elif covariance_type in ("EVE", "VVE"):
        axes = np.linalg.qr(rng.normal(size=(D, D)))[0]
        v = rng.normal(scale=0.5, size=(K, D))
        if covariance_type == "EVE":
            v = np.log(rng.uniform(0.3, 2.0)) + v - v.mean(axis=1, keepdims=True)
        cov = np.einsum("dj,kj,ej->kde", axes, np.exp(v), axes)
    elif covariance_type == "VEV":
        rotations = np.linalg.qr(rng.normal(size=(K, D, D)))[0]
        shape = np.exp(rng.normal(scale=0.5, size=D))
        volumes = rng.uniform(0.3, 2.0, size=(K, 1, 1))
        cov = volumes * np.einsum("kde,e,kfe->kdf", rotations, shape / shape.prod() ** (1 / D), rotations)
    else:
        raise ValueError(covariance_type)
    return gp.GMMParams(weights, means, cov)


def mclust_bic(data: str, code: str, k: int) -> float:
    """mclust's BIC of one fit, from the record tests/mclust/reference.R wrote."""
    reference = json.loads((Path(__file__).parent / "mclust" / "reference.json").read_text())
    return next(f["bic"] for f in reference["fits"] if (f["data"], f["structure"], f["k"]) == (data, code, k))


def unit_covariances(covariance_type, n_components, n_features):
    """Identity covariances in the shape of a covariance type."""
    K, D = n_components, n_features
    return {
        "full": np.stack([np.eye(D)] * K),
        "tied": np.eye(D),
        "diag": np.ones((K, D)),
        "spherical": np.ones(K),
    }[gp.covariance.get(covariance_type).family]


def scipy_log_joint(x, weights, means, full):
    """(N, K) log pi_k + log N(x_i | mu_k, Sigma_k) by SciPy (independent of the library);
    ``full``: (K, D, D) covariances (``as_full``)."""
    logpdf = [multivariate_normal(m, c).logpdf(x).reshape(-1) for m, c in zip(means, full, strict=True)]
    return np.log(np.asarray(weights, np.float64)) + np.stack(logpdf, axis=1)


def as_full(params, covariance_type):
    """(K, D, D) covariance matrices of any covariance type, in NumPy (independent of the library)."""
    K, D = np.shape(params.means)
    c = np.asarray(params.covariances, dtype=np.float64)
    covariance_type = gp.covariance.get(covariance_type).family
    return {
        "full": lambda: c,
        "tied": lambda: np.broadcast_to(c, (K, D, D)),
        "diag": lambda: np.stack([np.diag(v) for v in c]),
        "spherical": lambda: c[:, None, None] * np.eye(D),
    }[covariance_type]()


def sample_mixture(rng, params, covariance_type, n_rows):
    """Rows drawn from a mixture (NumPy), for tests that need data with known structure."""
    K, D = np.shape(params.means)
    full = as_full(params, covariance_type)
    z = rng.choice(K, size=n_rows, p=np.asarray(params.weights))
    chol = np.linalg.cholesky(full)
    eps = rng.normal(size=(n_rows, D))
    return np.asarray(params.means)[z] + np.einsum("nde,ne->nd", chol[z], eps)


def scipy_log_likelihood(params, x, covariance_type):
    """(N,) log p(x_i) of a mixture by SciPy in float64 (independent of the library), at the
    parameters as given (float32 ones widened exactly)."""
    from scipy.special import logsumexp

    means = np.asarray(params.means, np.float64)
    log_joint = scipy_log_joint(np.asarray(x, np.float64), params.weights, means, as_full(params, covariance_type))
    return logsumexp(log_joint, axis=1)


def scipy_log_prior(params, covariance_type, prior) -> float:
    """log p(params) under the conjugate prior documented in gmm_ppl.covariance.priors, by
    SciPy's densities in float64 (independent of the library and of NumPyro). With
    s = tr(Psi) / D:
      weights ~ Dirichlet(alpha);
      ellipsoidal (full storage, tied)  Sigma_k ~ InverseWishart(nu, Psi)
      diagonal (diag storage)           s2_kd ~ InverseGamma(nu / 2, s / 2)
      spherical                         s2_k ~ InverseGamma(nu / 2, s / 2)
      mu_k ~ N(m0, Sigma_k / kappa) given each component's covariance;
    the covariance's prior counted once where the structure shares one covariance (no V in
    its mclust code: EII, EEI, EEE), else once per component."""
    from scipy import stats

    weights, means, cov = (np.asarray(a, dtype=np.float64) for a in params)
    K, D = means.shape
    dof, kappa, psi, m0 = float(prior.dof), float(prior.kappa), np.asarray(prior.scale), np.asarray(prior.mean)
    s = np.trace(psi) / D
    entry = gp.covariance.entry(covariance_type)
    copies = K if "V" not in entry.code else 1
    # SciPy wants weights on the simplex to 1e-9, and float32 weights, widened, miss it by
    # their round-off; renormalised, the density moves by sum_k (alpha_k - 1) log(sum w),
    # of the order of that round-off (and not at all for the default alpha = 1).
    total = stats.dirichlet(np.asarray(prior.alpha, dtype=np.float64)).logpdf(weights / weights.sum())
    if entry.family in ("full", "tied"):
        per_component = cov if entry.family == "full" else np.broadcast_to(cov, (K, D, D))
        for sigma in per_component:
            total += stats.invwishart(df=dof, scale=psi).logpdf(sigma if D > 1 else sigma[0, 0]) / copies
        for mu, sigma in zip(means, per_component, strict=True):
            total += stats.multivariate_normal(m0, sigma / kappa).logpdf(mu)
    else:
        variances = cov if entry.family == "diag" else np.broadcast_to(cov[:, None], (K, D))
        per_variance = stats.invgamma(dof / 2, scale=s / 2).logpdf(cov)
        total += per_variance.sum() / copies
        total += stats.norm(m0, np.sqrt(variances / kappa)).logpdf(means).sum()
    return float(total)


def scipy_log_joint_density(params, x, covariance_type, prior) -> float:
    """log p(x, params) of the documented model by SciPy: the mixture's log-likelihood plus
    the conjugate prior's log density, independent of the library and NumPyro."""
    log_likelihood = float(np.sum(scipy_log_likelihood(params, x, covariance_type)))
    return log_likelihood + scipy_log_prior(params, covariance_type, prior)
