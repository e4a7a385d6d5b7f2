"""Input checks, run in NumPy before anything is traced or compiled.

Every failure is a ``ValueError`` whose message names the argument and the problem.
"""

from __future__ import annotations

import contextlib
import numbers

import jax
import numpy as np

from gmm_ppl import covariance
from gmm_ppl.params import GMMParams, Prior

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype) -> np.dtype:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return np.dtype(DTYPES[name])


def precision(dtype) -> contextlib.AbstractContextManager:
    """A context in which JAX keeps arrays of ``dtype`` (float64 needs x64 switched on)."""
    if np.dtype(dtype) == np.float64:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def as_data(x, name: str = "x", n_features: int | None = None) -> np.ndarray:
    """``x`` as a finite 2-D float64 NumPy array, or a ValueError saying what is wrong."""
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be numeric; got dtype {arr.dtype} (non-numeric values such as strings)"
            ) from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty; got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contains NaN or infinity ({int(bad.sum())} values; first at row {row}, column {col})"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features; the parameters have {n_features}")
    return arr


def as_key(key):
    """A JAX PRNG key from a key, an int seed, or None (seed 0, so runs are reproducible)."""
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    return key


def check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}; got {value!r}")
    return float(value)


def check_rows(x: np.ndarray, n_components: int) -> None:
    if x.shape[0] < n_components:
        raise ValueError(
            f"x has {x.shape[0]} rows, fewer than n_components={n_components}; "
            "a mixture needs at least one row per component"
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


def check_params(params, n_components: int, n_features: int, covariance_type: str) -> GMMParams:
    """Initial parameters given by a user: shapes, a simplex of weights, PD covariances."""
    if not isinstance(params, GMMParams):
        params = GMMParams(*params)
    w = np.asarray(params.weights, dtype=np.float64)
    m = check_means(params.means, n_components, n_features, "init_params.means")
    c = np.asarray(params.covariances, dtype=np.float64)
    if w.shape != (n_components,):
        raise ValueError(f"init_params.weights must have shape ({n_components},); got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0) or abs(w.sum() - 1) > 1e-6:
        raise ValueError("init_params.weights must be positive and sum to 1")
    shape = covariance.get(covariance_type).shape(n_components, n_features)
    if c.shape != shape:
        raise ValueError(
            f"init_params.covariances must have shape {shape} for covariance_type={covariance_type!r}; got {c.shape}"
        )
    if covariance_type in ("full", "tied"):
        ok = _positive_definite(c)
    else:
        ok = bool(np.all(np.isfinite(c)) and np.all(c > 0))
    if not ok:
        raise ValueError("init_params.covariances must be symmetric positive definite")
    return GMMParams(w, m, c)


def check_prior(prior, n_components: int, n_features: int, for_em: bool = True) -> Prior:
    if not isinstance(prior, Prior):
        raise ValueError(f"prior must be a gmm_ppl.Prior (see gmm_ppl.default_prior); got {type(prior).__name__}")
    K, D = n_components, n_features
    alpha = np.broadcast_to(np.asarray(prior.alpha, dtype=np.float64), (K,)) if np.ndim(prior.alpha) <= 1 else None
    if alpha is None or np.shape(prior.alpha) not in ((), (1,), (K,)):
        raise ValueError(f"prior.alpha must be a scalar or have shape ({K},); got {np.shape(prior.alpha)}")
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError("prior.alpha must be positive")
    if for_em and np.any(alpha < 1):
        raise ValueError("MAP-EM needs prior.alpha >= 1 (below 1 the Dirichlet has no interior mode)")
    mean = check_means(np.reshape(prior.mean, (1, -1)), 1, D, "prior.mean")[0]
    kappa = check_float(float(prior.kappa), "prior.kappa", 0.0)
    if kappa <= 0:
        raise ValueError("prior.kappa must be positive")
    dof = float(prior.dof)
    if not np.isfinite(dof) or dof <= D - 1:
        raise ValueError(f"prior.dof must exceed n_features - 1 = {D - 1}; got {dof}")
    scale = np.asarray(prior.scale, dtype=np.float64)
    if scale.shape != (D, D) or not _positive_definite(scale):
        raise ValueError(f"prior.scale must be a ({D}, {D}) symmetric positive definite matrix")
    return Prior(np.array(alpha), mean, np.float64(kappa), np.float64(dof), scale)
