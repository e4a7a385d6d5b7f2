"""Input checks, run in NumPy before anything is traced or compiled.

Every failure is a ``ValueError`` whose message names the argument and the problem.
"""

from __future__ import annotations

import contextlib
import numbers

import jax
import numpy as np

from gmm_ppl import _map_limit, covariance, programs
from gmm_ppl.params import GMMParams, Prior

DTYPES = {"float32": np.float32, "float64": np.float64}

# Largest magnitude a value may have: squared differences of such values, summed over 1e7
# rows, stay far below float64's limit (1.8e308). The command line's readers refuse data
# beyond it, and ``gmm_ppl.load`` refuses saved fits that no such data could give.
MAX_ABS_VALUE = 1e100


def check_dtype(dtype) -> np.dtype:
    """float32 or float64, from a name ('float64', 'f8', 'double') or a NumPy dtype."""
    try:
        resolved = None if dtype is None else np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return resolved


def dtype_of(array) -> np.dtype:
    """float64 for float64 input, float32 for anything else (JAX's default precision)."""
    return np.dtype(np.float64 if np.asarray(array).dtype == np.float64 else np.float32)


# What ``fit_em(matmul_precision=)`` takes: JAX's names, the default first.
MATMUL_PRECISIONS = ("highest", "high", "default")


def check_matmul_precision(value) -> str:
    if value not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {', '.join(map(repr, MATMUL_PRECISIONS))}; got {value!r}")
    return value


@contextlib.contextmanager
def precision(dtype, matmul: str = "highest"):
    """A context in which JAX keeps arrays of ``dtype`` (float64 needs x64 switched on) and
    multiplies float32 matrices in full float32 (``matmul``: 'highest').

    On GPUs and TPUs JAX's default float32 matmul rounds its inputs to TF32 or bfloat16; on an
    H200 that moved a float32 log-likelihood by 1e-3 relative. Every entry point runs inside
    this context, so every compiled program gets full precision; ``fit_em`` lets a caller ask
    for JAX's 'default' or 'high' instead, to compare speed with a library that runs there
    (gmmx). A CPU computes float32 products in full float32 whatever this says. It is also
    where a long session's compiled programs are released before they exhaust the process's
    memory mappings (``_map_limit``).
    """
    _map_limit.release_if_needed()
    with contextlib.ExitStack() as stack:
        if np.dtype(dtype) == np.float64:
            stack.enter_context(jax.enable_x64(True))
        stack.enter_context(jax.default_matmul_precision(matmul))
        yield


# Arrays above this size go to the device through a 64-byte-aligned copy (see ``to_device``).
_ALIGNED_COPY_BYTES = 1 << 20
_ALIGNMENT = 64


def to_device(tree, dtype):
    """Every array of ``tree`` as a JAX array of ``dtype`` (None stays None).

    Why the aligned copy: on the CPU, ``jax.device_put`` of a NumPy array whose memory is
    not 64-byte aligned copies it slowly, 0.6 GB/s here: 435 ms for issue 5's
    W4 data (1e6 x 64 float32), more than half an EM iteration. An aligned array is taken
    as it is. So a large array is first copied by NumPy into a fresh aligned buffer, cast
    to ``dtype`` on the way (one pass, where casting first would make two), that only the
    JAX array refers to: the caller's array is never shared, and mutating it later cannot
    change a result.

    A JAX array is cast where it lives, without a copy through the host (see
    ``as_data_where_it_is``); JAX arrays are immutable, so sharing one is safe.
    """
    if tree is None:
        return None

    def one(a):
        if isinstance(a, jax.Array):
            return a.astype(dtype)
        a = np.asarray(a)
        if a.size * np.dtype(dtype).itemsize < _ALIGNED_COPY_BYTES:
            # device_put, not jnp.asarray: that compiles a small program for each new shape
            # and dtype (10-50 ms each, a few per first call), device_put compiles none. A
            # copy (may_alias=False): device_put takes aligned NumPy memory as it is.
            return jax.device_put(np.asarray(a, dtype), may_alias=False)
        return jax.device_put(aligned_copy(a, dtype))

    return jax.tree.map(one, tree)


def aligned_copy(a: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``a`` (cast to ``dtype`` if given) whose memory starts on a
    64-byte boundary.

    An array already of ``dtype`` is copied as unsigned integers of its width by a ufunc, bit
    for bit. NumPy's own copy (a memcpy) ran at less than half that speed on this project's
    AMD EPYC, because a NumPy array's memory starts 16 bytes past a 64-byte boundary and the
    copy's memory starts on one: W4's 244 MB took 139-169 ms that way against 56-66 ms."""
    a = np.asarray(a)
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    nbytes = a.size * dtype.itemsize
    raw = np.empty(nbytes + _ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    aligned = raw[start : start + nbytes].view(dtype).reshape(a.shape)
    if a.dtype == dtype and a.flags.c_contiguous and dtype.itemsize in (1, 2, 4, 8):
        bits = np.dtype(f"u{dtype.itemsize}")
        np.positive(a.reshape(-1).view(bits), out=aligned.reshape(-1).view(bits))
    else:  # a cast or a strided source, copied element by element anyway
        np.copyto(aligned, a, casting="unsafe")
    return aligned


def as_data(x, name: str = "x", n_features: int | None = None, keep_float32: bool = False) -> np.ndarray:
    """``x`` as a finite 2-D float64 NumPy array, or a ValueError saying what is wrong.

    ``keep_float32``: float32 input stays float32 (EM casts to its own dtype anyway; on
    large data this saves a float64 copy twice the data's size).
    """
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {err}") from None
    if arr.dtype.kind == "O" and not any(isinstance(v, (str, bytes, complex)) for v in arr.flat):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be real numbers; got dtype {arr.dtype} "
            "(strings, complex numbers, dates and other non-numeric values are refused)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty; got shape {arr.shape}")
    arr = arr.astype(np.float32 if keep_float32 and arr.dtype == np.float32 else np.float64, copy=False)
    # A NaN or an infinity makes the sum non-finite, and the sum is one pass with no boolean
    # array the data's size (W4's 244 MB: 22 against 41 ms). Only then, or when finite values
    # overflow the sum (silently: that is no error of the data), is every value checked, to
    # name the first bad one.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if not np.isfinite(total):
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} contains NaN or infinity ({int(bad.sum())} values; first at row {row}, column {col})"
            )
    check_features(arr, n_features, name)
    return arr


_all_finite = programs.program("all_finite", lambda a: jax.numpy.isfinite(a).all())


def as_data_where_it_is(x, name: str = "x", n_features: int | None = None, keep_float32: bool = False):
    """``as_data`` that leaves a JAX array on its device: the checks run there, and only
    their one-bit answer comes to the host. Anything else goes through ``as_data``.

    Why: ``as_data`` copies a GPU array to the host, and EM then copies it back. On an H200
    that cost about 190 ms a call at issue 5's W4 (244 MB), against 1.9 ms an EM iteration
    (``benchmarks/results/em_gpu.md``). Bad data found here is named by ``as_data`` on a host
    copy (only then).
    """
    on_device = (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and x.ndim == 2
        and 0 not in x.shape
        and np.dtype(x.dtype).kind in "biuf"
    )
    if not on_device:
        return as_data(x, name, n_features, keep_float32=keep_float32)
    if not bool(jax.device_get(_all_finite(x))):
        as_data(jax.device_get(x), name)  # raises, naming the first NaN or infinity
    check_features(x, n_features, name)
    return x


def check_features(x, n_features: int | None, name: str = "x") -> None:
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features; the parameters have {n_features}")


def seed_key(seed: int):
    """``jax.random.key(seed)``, without compiling where that can be avoided: for the
    default threefry implementation and 0 <= seed < 2^31 the key's data are [0, seed]
    (a test holds this against ``jax.random.key``). ``jax.random.key`` compiles two small
    programs on its first call, 0.13 s of a first fit's 2.6 s on 2 CPU cores."""
    if jax.config.jax_default_prng_impl == "threefry2x32" and 0 <= seed < 2**31:
        return jax.random.wrap_key_data(np.array([0, seed], np.uint32), impl="threefry2x32")
    return jax.random.key(seed)


# jax.random.fold_in as a program of the library: called outside one it compiles two small
# programs (threefry's fold-in, the conversion of its integer) on a process's first call,
# where a program is loaded from the disk cache in a warm process.
_fold_in_program = programs.program("fold_in", jax.random.fold_in)


def fold_in(key, data: int):
    """``jax.random.fold_in(key, data)``, the same key, from a compiled program. ``data`` as
    the uint32 that fold_in makes of it (a negative one is an error, as there)."""
    return _fold_in_program(key, np.uint32(data))


def as_key(key):
    """A JAX PRNG key from a key, an int seed, or None (seed 0, so runs are reproducible)."""
    if key is None:
        return seed_key(0)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return seed_key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and np.shape(key) == ():
        return key
    if dtype == np.uint32 and np.shape(key) == (2,):  # a legacy jax.random.PRNGKey
        return key
    raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)) or an int seed; got {key!r}")


def check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}; got {value!r}")
    return float(value)


def check_rows(x: np.ndarray, n_components: int, name: str = "n_components") -> None:
    if x.shape[0] < n_components:
        raise ValueError(
            f"x has {x.shape[0]} rows, fewer than {name}={n_components}; a mixture needs at least one row per component"
        )


def check_sample_weight(sample_weight, n_rows: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n_rows)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_rows,):
        raise ValueError(f"sample_weight must have shape ({n_rows},); got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero; at least one row needs positive weight")
    return w


def _positive_definite(a: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return False
    return bool(np.allclose(a, np.swapaxes(a, -1, -2), rtol=1e-6, atol=1e-10 * np.abs(a).max()))


def check_means(means, n_components: int, n_features: int, name: str = "means_init") -> np.ndarray:
    m = np.asarray(means, dtype=np.float64)
    if m.shape != (n_components, n_features):
        raise ValueError(f"{name} must have shape ({n_components}, {n_features}); got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or infinity")
    return m


def check_params(
    params, n_components: int, n_features: int, covariance_type: str, name: str = "init_params"
) -> GMMParams:
    """Parameters given by a user, as float64: shapes, weights on the simplex, PD covariances.

    A field that is None stays None (a partial start for ``fit_em``).
    """
    w, m, c = GMMParams(*params)
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (n_components,):
            raise ValueError(f"{name}.weights must have shape ({n_components},); got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-5:
            raise ValueError(f"{name}.weights must be non-negative and sum to 1")
    if m is not None:
        m = check_means(m, n_components, n_features, f"{name}.means")
    if c is not None:
        c = check_matrices(c, n_components, n_features, covariance_type, f"{name}.covariances")
    return GMMParams(w, m, c)


def check_matrices(c, n_components: int, n_features: int, covariance_type: str, name: str) -> np.ndarray:
    """Covariances (or precisions) of a covariance type: the shape, and positive definite."""
    c = np.asarray(c, dtype=np.float64)
    cov_type = covariance.get(covariance_type)
    shape = cov_type.shape(n_components, n_features)
    if c.shape != shape:
        raise ValueError(f"{name} must have shape {shape} for covariance_type={covariance_type!r}; got {c.shape}")
    if cov_type.family in ("full", "tied"):
        ok = bool(np.all(np.isfinite(c))) and _positive_definite(c)
    else:
        ok = bool(np.all(np.isfinite(c)) and np.all(c > 0))
    if not ok:
        raise ValueError(f"{name} must be symmetric positive definite")
    return c


def check_prior(prior, n_components: int, n_features: int, for_em: bool = True) -> Prior:
    if not isinstance(prior, Prior):
        raise ValueError(f"prior must be a gmm_ppl.Prior (see gmm_ppl.default_prior); got {type(prior).__name__}")
    K, D = n_components, n_features
    if np.shape(prior.alpha) not in ((), (1,), (K,)):
        raise ValueError(f"prior.alpha must be a scalar or have shape ({K},); got {np.shape(prior.alpha)}")
    alpha = np.broadcast_to(np.asarray(prior.alpha, dtype=np.float64), (K,))
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError("prior.alpha must be positive")
    if for_em and np.any(alpha < 1):
        raise ValueError("MAP-EM needs prior.alpha >= 1 (below 1 the Dirichlet has no interior mode)")
    mean = check_means(np.reshape(prior.mean, (1, -1)), 1, D, "prior.mean")[0]
    for field in ("kappa", "dof"):
        if np.shape(getattr(prior, field)) != ():
            raise ValueError(f"prior.{field} must be a scalar; got shape {np.shape(getattr(prior, field))}")
    kappa = float(prior.kappa)
    if not np.isfinite(kappa) or kappa <= 0:
        raise ValueError(f"prior.kappa must be positive; got {kappa}")
    dof = float(prior.dof)
    if not np.isfinite(dof) or dof <= D - 1:
        raise ValueError(f"prior.dof must exceed n_features - 1 = {D - 1}; got {dof}")
    scale = np.asarray(prior.scale, dtype=np.float64)
    if scale.shape != (D, D) or not _positive_definite(scale):
        raise ValueError(f"prior.scale must be a ({D}, {D}) symmetric positive definite matrix")
    return Prior(np.array(alpha), mean, np.float64(kappa), np.float64(dof), scale)
