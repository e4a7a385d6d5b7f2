"""Data for the command line and the model cards: a CSV or .npy file, a shipped dataset or a
simulation, as one checked (N, D) float64 table with column names.

Every problem is a ``ValueError`` (or ``OSError`` for a file that cannot be read) whose
message names the file, the column and the row, so the command line can print it on one
line. ``tests/test_fuzz.py`` feeds these readers truncated, mutated and mis-encoded files
and checks that nothing else escapes.

Values beyond +-1e100 (``MAX_ABS_VALUE``) are refused: EM sums squared distances between
rows, and with values near float64's limit (1.8e308) those overflow, so a fit would fail
with a misleading message or, after ``standardize``, silently see a column of zeros.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gmm_ppl._validate import MAX_ABS_VALUE


@dataclasses.dataclass
class Table:
    """Rows ready for fitting.

    Attributes:
      x: (N, D) float64, finite.
      columns: the D column names.
      source: where the rows came from, in words ('data.csv', "dataset 'old_faithful'").
      n_rows_read: rows before rows with missing values were dropped.
      n_dropped: rows dropped for missing values (``drop_na``).
      skipped_columns: non-numeric columns left out because no columns were named.
      labels: (N,) known labels (a dataset's class, a simulation's components), or None.
      label_name: what ``labels`` are ('class', 'true component').
      mean, scale: the standardisation applied (x = (raw - mean) / scale), or None.
      truth: the parameters a simulation was drawn from (``GMMParams``), or None.
      truth_covariance_type: their covariance type.
    """

    x: np.ndarray
    columns: list[str]
    source: str
    n_rows_read: int
    n_dropped: int = 0
    skipped_columns: list[str] = dataclasses.field(default_factory=list)
    labels: np.ndarray | None = None
    label_name: str | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    truth: object = None
    truth_covariance_type: str | None = None
    description: str | None = None

    @property
    def shape(self):
        return self.x.shape


def parse_columns(text: str | None) -> list[str] | None:
    """'a,b' -> ['a', 'b']; None stays None."""
    if text is None:
        return None
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise ValueError(f"--columns must be comma-separated names without empty entries; got {text!r}")
    return names


def read_file(path, columns=None, *, drop_na: bool = False) -> Table:
    """A CSV (any extension but .npy) or .npy file as a ``Table``.

    CSV: UTF-8 (a byte-order mark is fine), comma-separated; the first line holds the column
    names, each once, and no row may have more fields than the header. Without ``columns``,
    every column is used except columns holding no number at all (label columns, empty
    columns: reported in ``skipped_columns``); a column that mixes numbers and text is an
    error naming the first offending row (rows count from 1, the header excluded). With
    ``columns``, each named column must exist and be numeric. .npy: a 2-D numeric array,
    columns named x0, x1, ... (``columns`` may name them or give their indices); a .npz
    archive or a header that promises more data than the file holds is refused.

    Rows with missing values (empty cells, NA, NaN) are refused with their count, or dropped
    with ``drop_na=True`` (the count is kept in ``n_dropped``). Infinity (including numbers
    such as 1e400 that overflow float64) and values beyond +-``MAX_ABS_VALUE`` are always
    refused.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a data file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    if path.suffix.lower() == ".npy":
        frame = _npy_frame(path)
    else:
        frame = _csv_frame(path)
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no data rows")
    return _from_frame(frame, str(path), columns, drop_na)


def _csv_frame(path: Path):
    import pandas as pd

    try:
        # Everything as text first: the numeric check below then names the offending cell.
        # header=None: pandas would otherwise rename a repeated column ('a' -> 'a.1') and, when
        # every row has one field more than the header, silently turn the first column into
        # the index, shifting every value one column to the left; read raw, a row wider than
        # the header is a parser error naming its line.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, header=None)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} is not a readable CSV file: {str(err).strip().splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text (UTF-8) CSV file") from None
    header = ["" if pd.isna(v) else str(v) for v in raw.iloc[0]]
    frame = raw.iloc[1:].reset_index(drop=True)
    # A repeated name stays repeated: _from_frame refuses it, naming the column.
    frame.columns = [name if name != "" else f"Unnamed: {j}" for j, name in enumerate(header)]
    return frame


def _npy_frame(path: Path):
    import pandas as pd

    arr = _npy_array(path)
    if arr.ndim != 2:
        raise ValueError(f"{path} holds an array of shape {arr.shape}; expected a 2-D (rows, columns) array")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {arr.dtype} values; expected real numbers")
    with np.errstate(over="ignore"):  # float128 beyond float64's range becomes inf, refused below
        values = arr.astype(np.float64)
    return pd.DataFrame(values, columns=[f"x{j}" for j in range(arr.shape[1])])


def _npy_array(path: Path) -> np.ndarray:
    """The array in a .npy file; its header is checked against the file's size first, so a
    damaged header cannot ask for terabytes."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise ValueError(f"{path} is a .npz (zip) archive, not a .npy array; save one array with numpy.save")
        f.seek(0)
        try:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except Exception as err:  # ValueError, EOFError, SyntaxError, tokenize errors: a damaged header
            raise ValueError(f"{path} is not a readable .npy file (bad header: {_one_line(err)})") from None
        if dtype.hasobject:
            raise ValueError(f"{path} holds Python objects; expected an array of real numbers")
        expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
        available = path.stat().st_size - f.tell()
        if expected > available:
            raise ValueError(
                f"{path} is truncated: its header promises shape {shape} ({expected} bytes), the file holds {available}"
            )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # whatever else a damaged file raises; the header was fine
        raise ValueError(f"{path} is not a readable .npy file: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _short(value, limit: int = 40) -> str:
    """repr of a cell or a name for a message, cut to ``limit`` characters: one line stays readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _list(names, limit: int = 12) -> str:
    shown = ", ".join(n if len(n) <= 40 else n[:36] + "..." for n in names[:limit])
    return shown + (f", ... ({len(names)} columns)" if len(names) > limit else "")


_MISSING = {"", "na", "nan", "n/a", "null", "none", "-"}


def _from_frame(frame, source: str, columns, drop_na: bool) -> Table:
    available = [str(c) for c in frame.columns]
    frame.columns = available
    if len(set(available)) != len(available):
        seen = [c for c in available if available.count(c) > 1]
        raise ValueError(f"{source}: column {_short(seen[0])} appears more than once in the header")
    skipped = []
    if columns is None:
        chosen = []
        for name in available:
            numeric, bad = _to_numeric(frame[name])
            if numeric.isna().all():
                # No cell is a number: a label column, or one left empty (a trailing comma on
                # every line); either way it cannot be a feature.
                skipped.append(name)
            else:
                chosen.append(name)
        if not chosen:
            hint = ""
            if len(available) == 1 and any(sep in available[0] for sep in ";\t|"):
                hint = "; the file must be comma-separated"
            raise ValueError(f"{source}: no numeric column (columns: {_list(available)}){hint}")
    else:
        chosen = []
        for name in columns:
            if name in available:
                chosen.append(name)
            elif name.isdigit() and int(name) < len(available) and available[int(name)] == f"x{name}":
                chosen.append(available[int(name)])  # .npy columns by index
            else:
                raise ValueError(f"{source}: no column {_short(name)}; columns: {_list(available)}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"{source}: a column is named twice in --columns ({', '.join(columns)})")
    values = {}
    for name in chosen:
        numeric, bad = _to_numeric(frame[name])
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"{source}: column {_short(name)} is not numeric: row {row + 1} holds {_short(frame[name].iloc[row])}"
                + ("" if columns is not None else "; pick numeric columns with --columns")
            )
        values[name] = numeric.to_numpy(dtype=np.float64)
    x = np.column_stack([values[c] for c in chosen]) if chosen else np.empty((len(frame), 0))
    if np.isinf(x).any():
        row, col = np.argwhere(np.isinf(x))[0]
        raise ValueError(
            f"{source}: column {_short(chosen[col])} holds an infinite value in row {row + 1}"
            + _cell_text(frame, chosen[col], row)
        )
    check_magnitude(x, chosen, source, frame)
    missing = np.isnan(x).any(axis=1)
    n_missing = int(missing.sum())
    n_read = x.shape[0]
    if n_missing:
        if not drop_na:
            first = int(np.argmax(missing))
            raise ValueError(
                f"{source}: {n_missing} of {n_read} rows have missing values (first: row {first + 1}); "
                "drop them with --drop-na (data.drop_na = true in a card)"
            )
        x = x[~missing]
        if x.shape[0] == 0:
            raise ValueError(f"{source}: every row has a missing value; nothing is left after --drop-na")
    return Table(x=x, columns=chosen, source=source, n_rows_read=n_read, n_dropped=n_missing, skipped_columns=skipped)


def _cell_text(frame, name, row) -> str:
    """' (the file says '1e400')' where the file's text is not simply a number's usual spelling."""
    if frame is None or frame[name].dtype.kind in "biuf":
        return ""
    return f" (the file says {_short(str(frame[name].iloc[row]).strip())})"


def check_magnitude(x: np.ndarray, columns, source: str, frame=None) -> None:
    """Refuse values beyond +-``MAX_ABS_VALUE`` (finite, but EM's squared distances overflow)."""
    with np.errstate(invalid="ignore"):
        huge = np.abs(x) > MAX_ABS_VALUE
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise ValueError(
            f"{source}: column {_short(columns[col])} holds {x[row, col]:.4g} in row {row + 1}; values beyond "
            f"+-{MAX_ABS_VALUE:.0e} are refused (EM's squared distances would overflow float64): rescale the column"
        )


def _to_numeric(series):
    """(float values with NaN for missing cells, mask of cells that are neither numbers nor missing)."""
    import pandas as pd

    if series.dtype.kind in "biuf":
        return series.astype(np.float64), pd.Series(np.zeros(len(series), bool), index=series.index)
    text = series.astype(str).str.strip()
    missing = text.str.lower().isin(_MISSING)
    numeric = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = numeric.isna() & ~missing
    return numeric.astype(np.float64), bad


def select_columns(x: np.ndarray, names: list[str], columns, source: str) -> tuple[np.ndarray, list[str]]:
    """The named columns of an in-memory table (a dataset or a simulation)."""
    if columns is None:
        return x, list(names)
    idx = []
    for c in columns:
        if c not in names:
            raise ValueError(f"{source}: no column {c!r}; columns: {', '.join(names)}")
        idx.append(names.index(c))
    if len(set(idx)) != len(idx):
        raise ValueError(f"{source}: a column is named twice ({', '.join(columns)})")
    return x[:, idx], [names[i] for i in idx]


def dataset_table(name: str, columns=None) -> Table:
    """A shipped dataset as a ``Table`` (with its label column, where it has one)."""
    from gmm_ppl import datasets

    meta = datasets.info(name)
    if meta.label_column is not None:
        x, labels = datasets.load(name, return_labels=True)
    else:
        x, labels = datasets.load(name), None
    source = f"dataset {name!r}"
    x, chosen = select_columns(x, list(meta.columns), columns, source)
    return Table(
        x=x,
        columns=chosen,
        source=source,
        n_rows_read=x.shape[0],
        labels=labels,
        label_name=meta.label_column,
        description=meta.description,
    )


def simulated_table(params, n_rows: int, seed: int, covariance_type: str, columns=None) -> Table:
    """Rows drawn from the generative model with known ``params`` (see ``datasets.simulate``)."""
    from gmm_ppl import GMMParams, datasets

    x, z = datasets.simulate(params, n_rows, seed=seed, covariance_type=covariance_type)
    names = [f"x{j}" for j in range(x.shape[1])]
    source = f"simulated ({n_rows} rows, seed {seed})"
    x, chosen = select_columns(x, names, columns, source)
    if len(chosen) != len(names):
        raise ValueError(f"{source}: a simulation keeps all its columns (the true parameters cover all of them)")
    if not np.isfinite(x).all():
        raise ValueError(f"{source}: the drawn rows overflow float64; the true means or covariances are too large")
    check_magnitude(x, chosen, source)
    truth = GMMParams(*(np.asarray(v, dtype=np.float64) for v in GMMParams(*params)))
    return Table(
        x=x,
        columns=chosen,
        source=source,
        n_rows_read=n_rows,
        labels=z,
        label_name="true component",
        truth=truth,
        truth_covariance_type=covariance_type,
        description="Rows drawn from gmm_ppl.gmm_model with known parameters (numpyro.handlers.condition).",
    )


def standardize(table: Table) -> Table:
    """Centre every column and divide by its standard deviation (ddof=0); a constant
    column keeps scale 1. The mean and scale are kept on the table (and in params.json)."""
    mean = table.x.mean(axis=0)
    scale = table.x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return dataclasses.replace(table, x=(table.x - mean) / scale, mean=mean, scale=scale)
