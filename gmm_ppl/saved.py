"""A fit on disk: ``params.json``, written by ``params_record`` and ``dumps``, read by ``load``.

The writer and the reader of the format are kept together here; the command line
(``gmm_ppl.app``) writes the file into its results folder, ``gmm_ppl.load`` reads it back.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

PARAMS_FORMAT = "gmm_ppl.params/1"


# -- JSON ---------------------------------------------------------------------------------


def jsonable(value):
    """NumPy scalars and arrays, tuples and paths as plain JSON values; NaN and infinity as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_SCALAR = r'(?:-?[0-9][0-9.eE+-]*|null|true|false|"[^"\\\[\],]*")'
_FLAT_ARRAY = re.compile(r"\[\s+(" + _SCALAR + r"(?:,\s+" + _SCALAR + r")*)\s+\]")


def dumps(value) -> str:
    """Indented JSON with every innermost array on one line (a matrix reads row by row)."""
    text = json.dumps(jsonable(value), indent=2, allow_nan=False)
    return _FLAT_ARRAY.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text) + "\n"


# -- params.json --------------------------------------------------------------------------


def params_record(
    *,
    params,
    covariance_type: str,
    columns,
    method: str,
    prior,
    log_likelihood: float,
    objective: float,
    n_iter: int,
    converged: bool,
    trace,
    restart_objectives,
    best_restart: int,
    n_rows: int,
    mean=None,
    scale=None,
    extra: dict | None = None,
) -> dict:
    """The fitted model as a plain dictionary, the content of ``params.json``."""
    K, D = np.shape(params.means)
    record = {
        "format": PARAMS_FORMAT,
        "method": method,
        "covariance_type": covariance_type,
        "n_components": int(K),
        "n_features": int(D),
        "columns": list(columns),
        "weights": np.asarray(params.weights, np.float64),
        "means": np.asarray(params.means, np.float64),
        "covariances": np.asarray(params.covariances, np.float64),
        "log_likelihood": float(log_likelihood),
        "log_likelihood_total": float(log_likelihood) * n_rows,
        "objective": float(objective),
        "n_iter": int(n_iter),
        "converged": bool(converged),
        "n_rows": int(n_rows),
        "standardize": None if mean is None else {"mean": np.asarray(mean), "scale": np.asarray(scale)},
        "prior": None if prior is None else {f: np.asarray(v, np.float64) for f, v in prior._asdict().items()},
        "restart_objectives": np.asarray(restart_objectives, np.float64),
        "best_restart": int(best_restart),
        "objective_trace": np.asarray(trace, np.float64)[: int(n_iter) + 1] if len(trace) else [],
    }
    if extra:
        record.update(extra)
    return jsonable(record)


def load(path):
    """A fitted ``gmm_ppl.GaussianMixture`` from a results folder or its ``params.json``.

    The estimator has the saved weights, means and covariances (and the prior of a MAP fit),
    so ``predict``, ``predict_proba``, ``score_samples``, ``sample``, ``bic`` work as after
    ``fit``. ``em_result_`` holds the saved objective trace and restart objectives.

    Standardised fits (``--standardize``, ``data.standardize = true``) were fitted to
    ``(x - mean) / scale``; the model is returned in those standardised units, unchanged,
    and ``mean`` and ``scale`` are kept as ``standardize_mean_`` and ``standardize_scale_``
    (None for raw fits): predict with ``gm.predict((x - gm.standardize_mean_) /
    gm.standardize_scale_)``. The column names are ``columns_``.

    Every field is checked (type, shape, finite, weights on the simplex, covariances and the
    prior valid), so a damaged or edited file fails here, with the file and the field named,
    rather than later inside ``predict``.

    Raises:
      FileNotFoundError: no params.json there. ValueError: not a gmm_ppl params.json, or a
      field is missing or malformed (the message names the file and the field).
    """
    from gmm_ppl import _validate, covariance
    from gmm_ppl._validate import MAX_ABS_VALUE
    from gmm_ppl.em import EMResult
    from gmm_ppl.estimator import GaussianMixture
    from gmm_ppl.params import GMMParams, Prior

    path = Path(path)
    if path.is_dir():
        path = path / "params.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a results folder or its params.json)")
    record = _read_json(path)
    if not isinstance(record, dict) or record.get("format") != PARAMS_FORMAT:
        raise ValueError(f"{path} is not a gmm_ppl params.json (format {PARAMS_FORMAT!r})")
    field = _Fields(path, record)

    covariance_type = field.text("covariance_type")
    try:
        covariance_type = covariance.canonical(covariance_type)
    except ValueError as err:
        raise ValueError(f"{path}: covariance_type: {err}") from None
    means = field.array("means", ndim=2)
    K, D = means.shape
    if K < 1 or D < 1:
        raise ValueError(f"{path}: means has shape {means.shape}; expected (K, D) with K, D >= 1")
    params = GMMParams(field.array("weights"), means, field.array("covariances"))
    try:
        params = _validate.check_params(params, K, D, covariance_type, name="params")
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    # A fit of data within +-MAX_ABS_VALUE (all gmm-ppl reads) has means within it and
    # variances below its square; beyond that predict would overflow.
    if np.abs(params.means).max() > MAX_ABS_VALUE or np.abs(params.covariances).max() > MAX_ABS_VALUE**2:
        raise ValueError(
            f"{path}: means beyond +-{MAX_ABS_VALUE:.0e} or covariances beyond {MAX_ABS_VALUE**2:.0e}; "
            "no fit of data gmm-ppl reads has them"
        )
    prior = None
    if record.get("prior") is not None:
        raw = field.table("prior", set(Prior._fields))
        fields = {f: _Fields(path, raw, "prior.").array(f, finite=True) for f in Prior._fields}
        try:
            prior = _validate.check_prior(Prior(**fields), K, D)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    n_iter = field.integer("n_iter", minimum=1)
    objective = field.number("objective")
    log_likelihood = field.number("log_likelihood")
    converged = field.flag("converged")
    trace = field.numbers("objective_trace", default=[objective])
    restart_objectives = field.numbers("restart_objectives", default=[objective])
    best_restart = field.integer("best_restart", minimum=0, default=0)
    if best_restart >= len(restart_objectives):
        raise ValueError(
            f"{path}: best_restart is {best_restart}, but restart_objectives has {len(restart_objectives)} entries"
        )
    columns = field.names("columns", D, default=[f"x{j}" for j in range(D)])
    mean = scale = None
    if record.get("standardize") is not None:
        std = _Fields(path, field.table("standardize", {"mean", "scale"}), "standardize.")
        mean, scale = std.array("mean", shape=(D,), finite=True), std.array("scale", shape=(D,), finite=True)
        if not np.all(scale > 0):
            raise ValueError(f"{path}: standardize.scale must be positive")

    fit = EMResult(
        params=params,
        objective=np.float64(objective),
        log_likelihood=np.float64(log_likelihood),
        n_iter=np.int64(n_iter),
        converged=np.bool_(converged),
        trace=trace,
        restart_objectives=restart_objectives,
        restart_params=None,  # a results folder keeps the best restart only
        best_restart=np.int64(best_restart),
        prior=prior,
        covariance_type=covariance_type,
    )
    gm = GaussianMixture(n_components=K, covariance_type=covariance_type, prior=prior, dtype="float64")
    gm._set_fitted(fit)  # the attributes fit() sets, from the saved EMResult
    # Variances below 1e-200: squared Mahalanobis distances overflow and densities become NaN.
    if not np.abs(gm.precisions_cholesky_).max() <= MAX_ABS_VALUE:
        raise ValueError(f"{path}: covariances so close to singular that densities would overflow float64")
    gm.n_features_in_ = D
    gm.columns_ = columns
    gm.standardize_mean_ = mean
    gm.standardize_scale_ = scale
    return gm


def _read_json(path: Path):
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    except RecursionError:  # json parses nested arrays recursively
        raise ValueError(f"{path} is not a gmm_ppl params.json: arrays nested too deeply") from None


_REQUIRED = object()  # a field without a default


class _Fields:
    """Typed fields of one JSON object; a ValueError naming the file and the field otherwise."""

    def __init__(self, path: Path, record: dict, prefix: str = ""):
        self.path, self.record, self.prefix = path, record, prefix

    def _get(self, key, default):
        if key in self.record:
            return self.record[key]
        if default is _REQUIRED:
            raise ValueError(f"{self.path}: {self.prefix}{key} is missing")
        return default

    def fail(self, key, expected: str):
        value = repr(self.record.get(key))
        value = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"{self.path}: {self.prefix}{key} must be {expected}; got {value}")

    def text(self, key) -> str:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, str):
            self.fail(key, "a string")
        return value

    def flag(self, key) -> bool:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, bool):
            self.fail(key, "true or false")
        return value

    def integer(self, key, minimum: int, default=_REQUIRED) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**63:
            self.fail(key, f"an integer >= {minimum}")
        return value

    def number(self, key) -> float:
        """A number; null stands for NaN (``jsonable`` writes NaN and infinity as null)."""
        value = self._get(key, _REQUIRED)
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, "a number")
        try:
            return float(value)
        except OverflowError:
            self.fail(key, "a number within float64's range")

    def numbers(self, key, default) -> np.ndarray:
        """A non-empty list of numbers (null for NaN) as a 1-D float64 array."""
        value = self._get(key, default)
        if value == []:  # k-means saves no objective trace
            value = default
        if not isinstance(value, list) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value
        ):
            self.fail(key, "a list of numbers")
        try:
            return np.array([math.nan if v is None else v for v in value], dtype=np.float64)
        except OverflowError:
            self.fail(key, "a list of numbers within float64's range")

    def array(self, key, ndim=None, shape=None, finite=False) -> np.ndarray:
        """A (nested) list of numbers as a float64 array."""
        value = self._get(key, _REQUIRED)
        try:
            if isinstance(value, (str, bytes, dict, bool)) or value is None:
                raise TypeError
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            self.fail(key, "an array of numbers")
        if ndim is not None and arr.ndim != ndim:
            self.fail(key, f"a {ndim}-D array of numbers")
        if shape is not None and arr.shape != shape:
            self.fail(key, f"an array of shape {shape}")
        if finite and not np.all(np.isfinite(arr)):
            self.fail(key, "finite numbers")
        return arr

    def table(self, key, fields: set) -> dict:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, dict) or set(value) != fields:
            self.fail(key, "an object with the fields " + ", ".join(sorted(fields)))
        return value

    def names(self, key, n: int, default) -> list[str]:
        value = self._get(key, None)
        if value is None:
            return default
        if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) for v in value):
            self.fail(key, f"a list of {n} column names")
        return list(value)
