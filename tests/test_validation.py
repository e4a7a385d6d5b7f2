"""Bad input is a ValueError naming the problem, raised before anything is compiled.

Every test here runs with the jitted programs replaced by a function that fails the test
when called (the ``no_compile`` fixture), so a passing test proves the check ran first.
"""

import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import unit_covariances

import gmm_ppl as gp
from gmm_ppl import _validate
from gmm_ppl.programs import TwoBuilds

em_module = importlib.import_module("gmm_ppl.em")
kmeans_module = importlib.import_module("gmm_ppl.kmeans")
likelihood_module = importlib.import_module("gmm_ppl.likelihood")

K, D = 2, 2
X = np.array([[0.0, 0.0], [0.1, 0.2], [3.0, 3.1], [3.2, 2.9], [0.3, -0.1], [2.8, 3.3]])
N = X.shape[0]


@pytest.fixture(autouse=True)
def no_compile(monkeypatch):
    """Replace every compiled program by one that fails the test if it is reached."""

    def forbidden(name):
        def program(*args, **kwargs):
            pytest.fail(f"{name} was called: validation should have raised before compiling")

        return program

    monkeypatch.setattr(em_module, "_fit_program", TwoBuilds(forbidden("_fit_program"), forbidden("_fit_program")))
    monkeypatch.setattr(kmeans_module, "_kmeans_program", forbidden("_kmeans_program"))
    monkeypatch.setattr(likelihood_module, "_component_log_prob", forbidden("_component_log_prob"))


def _with(row, col, value):
    x = X.copy()
    x[row, col] = value
    return x


def _params(covariance_type="full", weights=(0.5, 0.5), covariances=None):
    means = np.array([[0.0, 0.0], [3.0, 3.0]])
    if covariances is None:
        covariances = unit_covariances(covariance_type, K, D)
    return gp.GMMParams(np.asarray(weights, dtype=float), means, np.asarray(covariances, dtype=float))


# --- the data -------------------------------------------------------------------------

BAD_DATA = [
    pytest.param(_with(2, 1, np.nan), "NaN", id="nan"),
    pytest.param(_with(0, 0, np.inf), "infinity", id="+inf"),
    pytest.param(_with(4, 1, -np.inf), "infinity", id="-inf"),
    pytest.param(X[:, 0], "2-D", id="1-D"),
    pytest.param(X[None], "2-D", id="3-D"),
    pytest.param(np.float64(1.0), "2-D", id="0-D"),
    pytest.param(np.empty((0, 2)), "empty", id="no-rows"),
    pytest.param(np.empty((4, 0)), "empty", id="no-columns"),
    pytest.param(np.empty(0), "2-D", id="empty-1-D"),
    pytest.param(np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "numeric", id="strings"),
    pytest.param(np.array([[1.0, 2.0], [3.0, "x"], [5.0, 6.0]], dtype=object), "numeric", id="object-with-string"),
    pytest.param([[1.0, 2.0], [3.0]], "could not be read as an array", id="ragged"),
]


# Every entry point that takes data refuses bad data the same way.
DATA_ENTRY_POINTS = {
    "fit_em": lambda x: gp.fit_em(x, K),
    "kmeans": lambda x: gp.kmeans(x, K),
    "default_prior": lambda x: gp.default_prior(x, K),
    "log_likelihood": lambda x: gp.log_likelihood(_params(), x),
}


@pytest.mark.parametrize("entry", DATA_ENTRY_POINTS)
@pytest.mark.parametrize("x, match", BAD_DATA)
def test_bad_data(entry, x, match):
    with pytest.raises(ValueError, match=match):
        DATA_ENTRY_POINTS[entry](x)


def test_nan_message_locates_the_first_bad_value():
    x = _with(1, 0, np.nan)
    x[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(2 values; first at row 1, column 0\)"):
        gp.fit_em(x, K)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_jax_array_with_a_bad_value_is_refused_by_name(bad):
    """fit_em checks a JAX array on its device (that check is itself a small compiled
    program; the fit's are never reached); a bad value is still named, and wrong-shaped
    JAX arrays meet the same checks as NumPy's."""
    x = jnp.asarray(_with(1, 0, bad)).at[5, 1].set(bad)
    with pytest.raises(ValueError, match=r"NaN or infinity \(2 values; first at row 1, column 0\)"):
        gp.fit_em(x, K)
    with pytest.raises(ValueError, match="must be 2-D"):
        gp.fit_em(x[:, 0], K)
    with pytest.raises(ValueError, match="fewer than n_components"):
        gp.fit_em(x[: K - 1], K)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_data_whose_sum_overflows_is_accepted(dtype):
    """The check looks at the sum first; a sum that overflows to infinity on finite data
    must send it to the value-by-value check, not to an error, nor to NumPy's overflow
    warning."""
    big = np.finfo(dtype).max / 2
    x = np.full((6, 2), big, dtype)
    with np.errstate(over="ignore"):
        assert not np.isfinite(x.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(_validate.as_data(x, keep_float32=True), x)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(1 values; first at row 3, column 1\)"):
        _validate.as_data(x, keep_float32=True)


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize(
    "x",
    [
        pytest.param(X + 1j, id="complex"),
        pytest.param(np.array([["2020-01-01", "2021-01-01"]] * 3, dtype="datetime64[D]"), id="datetime64"),
    ],
)
def test_fit_em_rejects_non_real_dtypes(x):
    with pytest.raises(ValueError, match="numeric|real"):
        gp.fit_em(x, 1)


def test_fewer_rows_than_components():
    with pytest.raises(ValueError, match="fewer than n_components=7"):
        gp.fit_em(X, 7)
    # kmeans's argument is n_clusters; the shared check still says n_components.
    with pytest.raises(ValueError, match="fewer than n_(components|clusters)=7"):
        gp.kmeans(X, 7)


# --- scalar arguments -----------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 2.5, 2.0, True, False, "2", None], ids=repr)
def test_n_components_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        gp.fit_em(X, value)
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        gp.default_prior(X, value)
    with pytest.raises(ValueError, match="n_clusters must be an integer >= 1"):
        gp.kmeans(X, value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"covariance_type": "unknown"}, "unknown covariance_type 'unknown'", id="covariance_type"),
        pytest.param({"covariance_type": "Full"}, "unknown covariance_type", id="covariance_type-case"),
        pytest.param({"covariance_type": None}, "unknown covariance_type", id="covariance_type-None"),
        pytest.param({"covariance_type": ["full"]}, "unknown covariance_type", id="covariance_type-list"),
        pytest.param({"init": "kmeans+++"}, "unknown init 'kmeans\\+\\+\\+'", id="init"),
        pytest.param({"tol": -1e-3}, "tol must be a finite number >= 0", id="tol-negative"),
        pytest.param({"tol": np.nan}, "tol must be a finite number", id="tol-nan"),
        pytest.param({"tol": "small"}, "tol must be a finite number", id="tol-string"),
        pytest.param({"reg_covar": -1e-6}, "reg_covar must be a finite number >= 0", id="reg_covar-negative"),
        pytest.param({"reg_covar": np.inf}, "reg_covar must be a finite number", id="reg_covar-inf"),
        pytest.param({"max_iter": -1}, "max_iter must be an integer >= 0", id="max_iter-negative"),
        pytest.param({"max_iter": 10.0}, "max_iter must be an integer", id="max_iter-float"),
        pytest.param({"n_init": 0}, "n_init must be an integer >= 1", id="n_init-0"),
        pytest.param({"n_init": -3}, "n_init must be an integer >= 1", id="n_init-negative"),
        pytest.param({"chunk_size": -4}, "chunk_size must be an integer >= 1", id="chunk_size-negative"),
        pytest.param({"dtype": "float16"}, "dtype must be 'float32' or 'float64'", id="dtype-float16"),
        pytest.param({"dtype": np.float16}, "dtype must be 'float32' or 'float64'", id="dtype-np.float16"),
        pytest.param({"dtype": "int32"}, "dtype must be 'float32' or 'float64'", id="dtype-int32"),
        pytest.param({"dtype": "bfloat16"}, "dtype must be 'float32' or 'float64'", id="dtype-bfloat16"),
    ],
)
def test_fit_em_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gp.fit_em(X, K, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"tol": -1.0}, "tol must be a finite number >= 0", id="tol-negative"),
        pytest.param({"max_iter": 0}, "max_iter must be an integer >= 1", id="max_iter-0"),
        pytest.param({"n_init": 0}, "n_init must be an integer >= 1", id="n_init-0"),
        pytest.param({"chunk_size": -1}, "chunk_size must be an integer >= 1", id="chunk_size-negative"),
        pytest.param({"dtype": "float16"}, "dtype must be 'float32' or 'float64'", id="dtype-float16"),
        pytest.param({"centers_init": np.zeros((3, D))}, r"centers_init must have shape \(2, 2\)", id="centers-K"),
        pytest.param({"centers_init": np.zeros((K, 3))}, r"centers_init must have shape \(2, 2\)", id="centers-D"),
        pytest.param({"centers_init": np.full((K, D), np.nan)}, "centers_init contains NaN", id="centers-nan"),
    ],
)
def test_kmeans_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gp.kmeans(X, K, **kwargs)


# --- sample weights -------------------------------------------------------------------

BAD_WEIGHTS = [
    pytest.param(np.ones(N - 1), r"sample_weight must have shape \(6,\)", id="too-short"),
    pytest.param(np.ones((N, 1)), r"sample_weight must have shape \(6,\)", id="2-D"),
    pytest.param(np.float64(1.0), r"sample_weight must have shape \(6,\)", id="scalar"),
    pytest.param(np.r_[np.ones(N - 1), -1.0], "non-negative", id="negative"),
    pytest.param(np.zeros(N), "sums to zero", id="all-zero"),
    pytest.param(np.r_[np.ones(N - 1), np.nan], "finite", id="nan"),
    pytest.param(np.r_[np.ones(N - 1), np.inf], "finite", id="inf"),
]


@pytest.mark.parametrize("sample_weight, match", BAD_WEIGHTS)
def test_fit_em_bad_sample_weight(sample_weight, match):
    with pytest.raises(ValueError, match=match):
        gp.fit_em(X, K, sample_weight=sample_weight)


@pytest.mark.parametrize("sample_weight, match", BAD_WEIGHTS)
def test_kmeans_bad_sample_weight(sample_weight, match):
    with pytest.raises(ValueError, match=match):
        gp.kmeans(X, K, sample_weight=sample_weight)


# --- starting values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "means_init, match",
    [
        pytest.param(np.zeros((3, D)), r"means_init must have shape \(2, 2\); got \(3, 2\)", id="too-many-rows"),
        pytest.param(np.zeros((K, 1)), r"means_init must have shape \(2, 2\); got \(2, 1\)", id="too-few-columns"),
        pytest.param(np.zeros(K * D), r"means_init must have shape \(2, 2\)", id="flat"),
        pytest.param(np.array([[0.0, np.nan], [1.0, 1.0]]), "means_init contains NaN", id="nan"),
    ],
)
def test_bad_means_init(means_init, match):
    with pytest.raises(ValueError, match=match):
        gp.fit_em(X, K, means_init=means_init)


@pytest.mark.parametrize(
    "covariance_type, params, match",
    [
        pytest.param("full", _params(weights=(0.5, 0.6)), "weights must be non-negative and sum to 1", id="sum>1"),
        pytest.param("diag", _params("diag", weights=(0.2, 0.2)), "sum to 1", id="sum<1"),
        pytest.param("full", _params(weights=(1.5, -0.5)), "weights must be non-negative", id="negative-weight"),
        pytest.param("full", _params(weights=(1 / 3,) * 3), r"weights must have shape \(2,\)", id="weights-shape"),
        pytest.param(
            "full",
            _params(covariances=[np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]),
            "positive definite",
            id="full-indefinite",
        ),
        pytest.param(
            "full",
            _params(covariances=[np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]),
            "symmetric positive definite",
            id="full-asymmetric",
        ),
        pytest.param("tied", _params("tied", covariances=-np.eye(2)), "positive definite", id="tied-negative"),
        pytest.param("tied", _params("tied", covariances=np.zeros((2, 2))), "positive definite", id="tied-zero"),
        pytest.param("diag", _params("diag", covariances=[[1.0, 1.0], [1.0, 0.0]]), "positive", id="diag-zero"),
        pytest.param("spherical", _params("spherical", covariances=[1.0, -1.0]), "positive", id="spherical-negative"),
        pytest.param("spherical", _params("spherical", covariances=[1.0, np.nan]), "positive", id="spherical-nan"),
        pytest.param("full", _params("diag"), r"covariances must have shape \(2, 2, 2\)", id="full-given-diag"),
        pytest.param(
            "tied",
            _params("full"),
            r"covariances must have shape \(2, 2\) for covariance_type='tied'",
            id="tied-given-full",
        ),
        pytest.param("diag", _params("spherical"), r"covariances must have shape \(2, 2\)", id="diag-given-spherical"),
        pytest.param("spherical", _params("diag"), r"covariances must have shape \(2,\)", id="spherical-given-diag"),
        pytest.param(
            "full",
            gp.GMMParams(np.full(2, 0.5), np.zeros((2, 3)), np.stack([np.eye(2)] * 2)),
            r"init_params.means must have shape \(2, 2\)",
            id="means-shape",
        ),
    ],
)
def test_bad_init_params(covariance_type, params, match):
    with pytest.raises(ValueError, match=match):
        gp.fit_em(X, K, covariance_type=covariance_type, init_params=params)


# --- the prior ------------------------------------------------------------------------


def _prior(**changes):
    return gp.default_prior(X, K)._replace(**changes)


@pytest.mark.parametrize(
    "prior, match",
    [
        pytest.param("nonsense", "prior must be a Prior, 'default' or None; got 'nonsense'", id="nonsense"),
        pytest.param({"alpha": 1.0}, "prior must be a gmm_ppl.Prior", id="dict"),
        pytest.param(_prior(alpha=np.full(K, 0.5)), r"alpha >= 1", id="alpha<1"),
        pytest.param(_prior(alpha=np.float64(0.9)), r"alpha >= 1", id="scalar-alpha<1"),
        pytest.param(_prior(alpha=np.zeros(K)), "alpha must be positive", id="alpha-zero"),
        pytest.param(_prior(alpha=np.ones(3)), r"alpha must be a scalar or have shape \(2,\)", id="alpha-shape"),
        pytest.param(_prior(scale=np.eye(3)), r"prior.scale must be a \(2, 2\)", id="scale-3x3"),
        pytest.param(_prior(scale=np.ones(2)), r"prior.scale must be a \(2, 2\)", id="scale-vector"),
        pytest.param(_prior(scale=-np.eye(2)), "prior.scale must be .*positive definite", id="scale-not-pd"),
        pytest.param(_prior(mean=np.zeros(3)), r"prior.mean must have shape \(1, 2\)", id="mean-shape"),
        pytest.param(_prior(kappa=np.float64(0.0)), "kappa must be positive", id="kappa-zero"),
        pytest.param(_prior(kappa=np.float64(-1.0)), "kappa", id="kappa-negative"),
        pytest.param(_prior(dof=np.float64(0.5)), r"dof must exceed n_features - 1 = 1", id="dof-small"),
    ],
)
def test_fit_em_bad_prior(prior, match):
    with pytest.raises(ValueError, match=match):
        gp.fit_em(X, K, prior=prior)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"alpha": 0.0}, "alpha must be positive", id="alpha-zero"),
        pytest.param({"alpha": -1.0}, "alpha must be positive", id="alpha-negative"),
        pytest.param({"kappa": 0.0}, "kappa must be positive", id="kappa-zero"),
        pytest.param({"dof": 1.0}, "dof must exceed n_features - 1", id="dof"),
        pytest.param({"scale": np.eye(3)}, r"prior.scale must be a \(2, 2\)", id="scale-shape"),
        pytest.param({"scale": np.array([[1.0, 2.0], [2.0, 1.0]])}, "positive definite", id="scale-indefinite"),
    ],
)
def test_default_prior_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gp.default_prior(X, K, **kwargs)


def test_default_prior_allows_alpha_below_one_but_em_does_not():
    prior = gp.default_prior(X, K, alpha=0.5)  # valid for the NumPyro model
    with pytest.raises(ValueError, match="MAP-EM needs prior.alpha >= 1"):
        gp.fit_em(X, K, prior=prior)


# --- log_likelihood -------------------------------------------------------------------


@pytest.mark.parametrize("n_features", [1, 3])
@pytest.mark.parametrize("function", [gp.log_likelihood, gp.component_log_prob, gp.responsibilities])
def test_evaluation_wrong_number_of_features(function, n_features):
    x = np.zeros((4, n_features))
    with pytest.raises(ValueError, match=f"x has {n_features} features; the parameters have 2"):
        function(_params(), x)


def test_log_likelihood_unknown_covariance_type():
    with pytest.raises(ValueError, match="unknown covariance_type 'blocked'"):
        gp.log_likelihood(_params(), X, covariance_type="blocked")


def test_log_likelihood_ambiguous_covariance_shape():
    # K == D: (K, D) covariances could be 'diag' or 'tied'.
    with pytest.raises(ValueError, match="pass covariance_type explicitly"):
        gp.log_likelihood(_params("diag"), X)


# --- checks added after review: keys, dtypes, scalar prior fields, evaluated params ------


@pytest.mark.parametrize("key", ["abc", True, 1.5], ids=repr)
def test_fit_em_bad_key(key):
    with pytest.raises(ValueError, match="key"):
        gp.fit_em(X, K, key=key)


@pytest.mark.parametrize("x64", [False, True])
def test_an_int_seed_gives_the_key_jax_random_key_gives(x64):
    from gmm_ppl._validate import as_key

    with jax.enable_x64(x64):
        for seed in (0, 1, 5, 2**31 - 1, 2**31, 2**32 + 3, -1):
            key, expected = as_key(seed), jax.random.key(seed)
            assert jax.random.key_impl(key) == jax.random.key_impl(expected)
            np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(expected))
        np.testing.assert_array_equal(jax.random.key_data(as_key(None)), jax.random.key_data(jax.random.key(0)))


@pytest.mark.parametrize("dtype", [123, None], ids=repr)
def test_fit_em_dtype_not_a_float_name(dtype):
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        gp.fit_em(X, K, dtype=dtype)


def test_fit_em_prior_kappa_not_scalar():
    with pytest.raises(ValueError, match="kappa"):
        gp.fit_em(X, K, prior=_prior(kappa=np.ones(K)))


@pytest.mark.parametrize(
    "params, covariance_type",
    [
        pytest.param(_params()._replace(weights=np.full(3, 1 / 3)), None, id="weights-shape"),
        pytest.param(_params()._replace(covariances=np.ones(5)), None, id="covariances-shape"),
        pytest.param(_params(), "tied", id="full-shape-as-tied"),
    ],
)
def test_log_likelihood_inconsistent_params(params, covariance_type):
    with pytest.raises(ValueError, match="weights|covariances"):
        gp.log_likelihood(params, X, covariance_type=covariance_type)
