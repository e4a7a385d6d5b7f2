"""Results on disk: the results folder written all at once, ``params.json``, and ``load``.

``OutputFolder`` gives a run a temporary sibling of the folder it asked for and renames it
into place only when everything has been written; on an error or Ctrl-C the temporary
folder is removed, so a results folder is complete or absent, never half-written.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
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

    Raises:
      FileNotFoundError: no params.json there. ValueError: not a gmm_ppl params.json.
    """
    from gmm_ppl.em import EMResult
    from gmm_ppl.estimator import GaussianMixture
    from gmm_ppl.params import GMMParams, Prior

    path = Path(path)
    if path.is_dir():
        path = path / "params.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a results folder or its params.json)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(record, dict) or record.get("format") != PARAMS_FORMAT:
        raise ValueError(f"{path} is not a gmm_ppl params.json (format {PARAMS_FORMAT!r})")
    try:
        covariance_type = record["covariance_type"]
        params = GMMParams(*(np.asarray(record[f], np.float64) for f in ("weights", "means", "covariances")))
        prior = None
        if record.get("prior") is not None:
            prior = Prior(**{f: np.asarray(v, np.float64) for f, v in record["prior"].items()})
        n_iter = int(record["n_iter"])
        objective = float(record["objective"])
        trace = np.asarray(record.get("objective_trace") or [objective], np.float64)
        K, D = params.means.shape
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: a field is missing or malformed ({err})") from None
    from gmm_ppl import _validate

    params = _validate.check_params(params, K, D, covariance_type, name=f"{path}")
    fit = EMResult(
        params=params,
        objective=np.float64(objective),
        log_likelihood=np.float64(record["log_likelihood"]),
        n_iter=np.int64(n_iter),
        converged=np.bool_(record["converged"]),
        trace=trace,
        restart_objectives=np.asarray(record.get("restart_objectives") or [objective], np.float64),
        best_restart=np.int64(record.get("best_restart", 0)),
        prior=prior,
        covariance_type=covariance_type,
    )
    gm = GaussianMixture(n_components=K, covariance_type=covariance_type, prior=prior, dtype="float64")
    gm._set_fitted(fit)  # the attributes fit() sets, from the saved EMResult
    gm.n_features_in_ = D
    gm.columns_ = list(record.get("columns") or [f"x{j}" for j in range(D)])
    standardize = record.get("standardize")
    gm.standardize_mean_ = None if not standardize else np.asarray(standardize["mean"], np.float64)
    gm.standardize_scale_ = None if not standardize else np.asarray(standardize["scale"], np.float64)
    return gm


# -- the results folder -------------------------------------------------------------------

# A folder holding this file (or report.md) was written by gmm-ppl and may be replaced by --force.
MARKER = "params.json"


class OutputFolder:
    """A results folder written all at once.

    ``OutputFolder(target, force)`` refuses an existing ``target`` without ``force`` (and,
    even with it, a folder gmm-ppl did not write); entering creates a temporary sibling
    ``.NAME.writing-XXXX`` (``.path``), ``commit()`` renames it to ``target`` (replacing the
    old folder), and leaving the context without a commit (an error, Ctrl-C) removes it.
    """

    def __init__(self, target, force: bool = False):
        self.target = Path(target)
        self.force = force
        self.path: Path | None = None
        self._created: list[Path] = []
        self.committed = False
        self._check()

    def _check(self):
        target = self.target
        if target.exists() or target.is_symlink():
            if not target.is_dir() or target.is_symlink():
                raise ValueError(f"output {target} exists and is not a folder")
            if not self.force:
                raise ValueError(f"output folder {target} exists; pass --force to replace it")
            resolved = target.resolve()
            cwd = Path.cwd().resolve()
            if resolved == cwd or resolved in cwd.parents:
                raise ValueError(f"output folder {target} holds the current folder; refusing to replace it")
            contents = list(target.iterdir())
            if contents and not ((target / MARKER).is_file() or (target / "report.md").is_file()):
                raise ValueError(
                    f"output folder {target} exists and was not written by gmm-ppl (no params.json or report.md); "
                    "refusing to replace it, even with --force"
                )

    def __enter__(self) -> OutputFolder:
        parent = self.target.parent
        missing = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._created = missing  # innermost first: removed in this order on failure
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.writing-", dir=parent))
        return self

    def commit(self):
        """Move the finished folder into place (after removing an old one under --force)."""
        self._check()
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            os.rmdir(old)
            os.rename(self.target, old)
        os.rename(self.path, self.target)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb):
        if not self.committed:
            self.discard()
        return False

    def discard(self):
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        for p in self._created:
            try:
                p.rmdir()  # only if still empty
            except OSError:
                break
