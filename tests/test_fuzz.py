"""Hostile files: the CSV/.npy reader, the model cards and the saved-model loader, fuzzed.

Each reader either returns clean data (finite numbers within the documented range, the
right shapes, paths inside the card's folder) or raises its documented error, a
``ValueError`` (``CardError`` for cards) whose message names the file: never a KeyError,
IndexError, TypeError, OverflowError, RecursionError, UnicodeDecodeError or a parser's own
exception. The command line turns those errors into one line and exit status 2, and leaves
no results folder and no temporary ``.DIR.writing-*`` behind.

Inputs are valid files mutated at random (truncated, bytes flipped or inserted, huge and
non-finite numbers, missing fields, BOMs, other encodings, NUL bytes, deep nesting, wrong
types, unknown keys, paths out of the card's folder) plus tables generated with a known
answer, so that a file read "successfully" but misaligned is caught too. Hypothesis runs
derandomized (the same examples every run); ``pytest --hypothesis-show-statistics``
prints the counts.

``tests/test_cli.py`` keeps the hand-written cases; this file generalises them.
"""

import contextlib
import io
import json
import math
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import gmm_ppl as gp
from gmm_ppl import saved
from gmm_ppl.app import cards, tabular
from gmm_ppl.app.cli import main
from gmm_ppl.params import GMMParams, Prior


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for CI: the same examples every run, no example database, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# Byte strings that break parsers or numbers when inserted anywhere in a file.
HOSTILE_TOKENS = [
    b"1e400",
    b"-1e400",
    b"1e308",
    b"-1.7976931348623157e308",
    b"1e101",
    b"inf",
    b"-Infinity",
    b"nan",
    b"NA",
    b"",
    b",",
    b",,,",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xef\xbb\xbf",  # UTF-8 byte-order mark
    b"\xff\xfe",  # UTF-16 byte-order mark
    b"\xe9",  # Latin-1 e-acute: not UTF-8
    b'"',
    b"'",
    b"[",
    b"]",
    b"{",
    b"=",
    b"#",
    b"9" * 400,
    b"x" * 5000,
    b"[" * 3000,
    b"\\",
    b"0x1F",
    b"1_000",
    b"true",
]


@st.composite
def mutated(draw, base: bytes):
    """``base`` after 1 to 4 random edits, sometimes re-encoded."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate"]))
        if edit == "truncate":
            del data[position:]
        elif edit == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[position:position] = draw(st.sampled_from(HOSTILE_TOKENS) | st.binary(max_size=8))
        elif edit == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        elif edit == "duplicate":
            end = min(len(data), position + draw(st.integers(1, 40)))
            data[position:position] = data[position:end]
    encoding = draw(st.sampled_from([None] * 6 + ["utf-16", "latin-1", "utf-8-sig"]))
    if encoding is not None:
        text = bytes(data).decode("utf-8", errors="replace")
        data = bytearray(text.encode(encoding, errors="replace"))
    return bytes(data)


def _error_names_the(err: BaseException, what) -> None:
    assert str(what) in str(err), f"{type(err).__name__}: {err}"


# -- the CSV and .npy reader ---------------------------------------------------------------

BASE_CSV = b"a,b,group\n" + b"".join(
    f"{0.5 * i - 3:.3f},{(i * 7) % 5 - 2.25:.2f},{'left' if i < 6 else 'right'}\n".encode() for i in range(12)
)


def _check_table(table: tabular.Table) -> None:
    """What a reader that accepted a file must return: a clean (N, D) float64 table."""
    x = table.x
    assert x.dtype == np.float64 and x.ndim == 2
    assert x.shape[0] >= 1 and x.shape[1] == len(table.columns) >= 1
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= tabular.MAX_ABS_VALUE)
    assert len(set(table.columns)) == len(table.columns)
    assert table.n_rows_read == x.shape[0] + table.n_dropped


def _read_or_refuse(path: Path, **options):
    """read_file's result, or None after checking that it refused with a ValueError naming the file."""
    try:
        table = tabular.read_file(path, **options)
    except ValueError as err:
        assert not isinstance(err, UnicodeError), err  # translated, with the file named
        _error_names_the(err, path)
        event("refused")
        return None
    _check_table(table)
    event("accepted")
    return table


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


CELL_TOKENS = [t.decode("utf-8", errors="replace") for t in HOSTILE_TOKENS if len(t) < 1000] + ["1e-400", "-0", " 7 "]


@st.composite
def edited_csv(draw):
    """BASE_CSV with 1 to 3 cells replaced by hostile text, a field added to or removed from
    a row, or a line duplicated; then, half of the time, mutated byte by byte."""
    rows = [line.split(",") for line in BASE_CSV.decode().splitlines()]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(rows) - 1))
        j = draw(st.integers(0, len(rows[i]) - 1)) if rows[i] else 0
        edit = draw(st.sampled_from(["cell", "cell", "cell", "add field", "remove field", "duplicate line"]))
        if edit == "cell" and rows[i]:
            rows[i][j] = draw(st.sampled_from(CELL_TOKENS))
        elif edit == "add field":
            rows[i].insert(j, draw(st.sampled_from(CELL_TOKENS)))
        elif edit == "remove field" and rows[i]:
            del rows[i][j]
        elif edit == "duplicate line":
            rows.insert(i, list(rows[i]))
    content = ("\n".join(",".join(row) for row in rows) + "\n").encode()
    return draw(mutated(content)) if draw(st.booleans()) else content


@fuzz(300)
@given(content=edited_csv(), columns=st.sampled_from([None, ["a", "b"], ["b"]]), drop_na=st.booleans())
def test_mutated_csv_is_read_cleanly_or_refused(folder, content, columns, drop_na):
    path = folder / "mutated.csv"
    path.write_bytes(content)
    _read_or_refuse(path, columns=columns, drop_na=drop_na)


@fuzz(100)
@given(content=st.binary(max_size=300))
def test_random_bytes_as_csv_are_read_cleanly_or_refused(folder, content):
    path = folder / "random.csv"
    path.write_bytes(content)
    _read_or_refuse(path)


# Cells of a generated table, with what the reader must make of them.
NUMBER = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: (repr(v), v))
MISSING = st.sampled_from(["", "NA", "nan", "NaN", "null", "-", " "]).map(lambda text: (text, math.nan))
TOO_LARGE = st.sampled_from(["1e101", "-3e200", "1e308", "1e400", "inf", "-Infinity"]).map(lambda t: (t, None))


@st.composite
def generated_csv(draw):
    """(file bytes, the values written (NaN where missing), the error the reader must raise or None)."""
    n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    names = [f"c{j}" for j in range(n_cols)]
    rows = [[draw(st.one_of(NUMBER, NUMBER, NUMBER, MISSING, TOO_LARGE)) for _ in names] for _ in range(n_rows)]
    # Every column gets at least one number, so that no column is left out as a label column.
    for j in range(n_cols):
        if all(math.isnan(r[j][1]) if r[j][1] is not None else True for r in rows):
            rows[draw(st.integers(0, n_rows - 1))][j] = draw(NUMBER)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    space = draw(st.sampled_from(["", " "]))  # after each comma
    quote = draw(st.booleans())
    trailing_comma = draw(st.booleans())  # an unnamed, empty last column: left out too
    # A text column, always left out; forced where a row could otherwise be a blank line
    # (one column, unquoted, missing), which CSV readers skip rather than read as a row.
    label = draw(st.booleans()) or (n_cols == 1 and not quote and not trailing_comma)
    wider = draw(st.integers(0, 9)) == 0  # every data row one field wider than the header
    repeated = n_cols >= 2 and draw(st.integers(0, 9)) == 0  # the header names c0 twice
    bom = draw(st.booleans())

    def line(cells, label_cell):
        cells = cells + ([label_cell] if label else [])
        cells = [f'"{c}"' if quote else c for c in cells]
        return ("," + space).join(cells) + ("," if trailing_comma else "")

    header = ["c0", "c0", *names[2:]] if repeated else names
    extra = ["0.5"] if wider else []
    lines = [line(header, "group")] + [line([text for text, _ in row] + extra, "left") for row in rows]
    text = newline.join(lines) + newline * draw(st.integers(0, 3))
    data = ("\ufeff" if bom else "") + text
    values = np.array([[np.nan if v is None else v for _, v in row] for row in rows])
    # The reader's checks, in its order: the file's shape, the header, then the values.
    if wider:
        error = "Expected [0-9]+ fields in line 2"
    elif repeated:
        error = "column 'c0' appears more than once"
    elif any(v is None for row in rows for _, v in row):
        error = "infinite value|are refused"
    else:
        error = None
    return data.encode("utf-8"), values, error


@fuzz(200)
@given(case=generated_csv(), drop_na=st.booleans())
def test_generated_csv_reads_exactly_what_was_written(folder, case, drop_na):
    content, values, error = case
    path = folder / "generated.csv"
    path.write_bytes(content)
    missing = np.isnan(values).any(axis=1)
    if error is None and missing.any() and (not drop_na or missing.all()):
        error = "missing value"
    if error is not None:
        with pytest.raises(ValueError, match=error):
            tabular.read_file(path, drop_na=drop_na)
        event(f"refused: {error}")
        return
    event("accepted")
    table = tabular.read_file(path, drop_na=drop_na)
    _check_table(table)
    assert table.columns == [f"c{j}" for j in range(values.shape[1])]  # no label column, no empty column
    np.testing.assert_array_equal(table.x, values[~missing])  # every value in its own row and column
    assert table.n_dropped == int(missing.sum())


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BASE_NPY = _npy_bytes(np.arange(24, dtype=np.float64).reshape(12, 2) / 7)


@fuzz(200)
@given(content=mutated(BASE_NPY) | st.sampled_from([BASE_NPY[:n] for n in (0, 6, 10, 60, 128, 140)]))
def test_mutated_npy_is_read_cleanly_or_refused(folder, content):
    path = folder / "mutated.npy"
    path.write_bytes(content)
    _read_or_refuse(path)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((3, 2), 1e300), "are refused"),
        (np.array([[1.0, np.inf]]), "infinite value"),
        (np.ones((3, 2), dtype=np.complex128), "expected real numbers"),
        (np.ones(4), "expected a 2-D"),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]), "expected a 2-D"),
    ],
)
def test_npy_contents_that_cannot_be_fitted_are_refused(folder, array, message):
    path = folder / "content.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        tabular.read_file(path)


def test_npz_and_lying_npy_headers_are_refused(folder):
    # An .npz named .npy, and a header promising a terabyte: both were crashes
    # (AttributeError; MemoryError) before the header was checked against the file's size.
    path = folder / "archive.npy"
    with open(path, "wb") as f:
        np.savez(f, x=np.ones((3, 2)))
    with pytest.raises(ValueError, match="npz"):
        tabular.read_file(path)
    header_end = BASE_NPY.index(b"(12, 2)")
    lying = BASE_NPY[:header_end] + b"(999999999999, 2)" + BASE_NPY[header_end + len(b"(12, 2)") :]
    lying = lying[:8] + (int.from_bytes(lying[8:10], "little") + 10).to_bytes(2, "little") + lying[10:]
    path.write_bytes(lying)
    with pytest.raises(ValueError, match=f"{path}"):
        tabular.read_file(path)


@pytest.mark.parametrize(
    "content, message",
    [
        # pandas used the first column as the index when every row had one field more than
        # the header: every value moved one column to the left, silently.
        ("a,b\n1,2,3\n4,5,6\n", "Expected 2 fields in line 2, saw 3"),
        # pandas renamed the second 'a' to 'a.1', so the duplicate check never fired.
        ("a,a\n1,2\n3,4\n", "column 'a' appears more than once"),
        # Finite, but EM's squared distances overflowed ("non-finite objective ... reg_covar"),
        # and with --standardize the column silently became zeros.
        ("a,b\n1,1e300\n2,-1e300\n3,0\n", "holds 1e+300 in row 1; values beyond +-1e+100 are refused"),
        ("a;b\n1;2\n", "the file must be comma-separated"),
    ],
)
def test_csv_regressions(folder, content, message):
    path = folder / "regression.csv"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        tabular.read_file(path)
    assert message in str(err.value)


def test_trailing_comma_column_is_left_out(folder):
    # 'a,b,' on every line is an unnamed column with no value at all: left out like a label
    # column (it used to make every row 'have missing values').
    path = folder / "trailing.csv"
    path.write_text("a,b,\n1,2,\n3,4,\n")
    table = tabular.read_file(path)
    assert table.columns == ["a", "b"] and table.skipped_columns == ["Unnamed: 2"]
    np.testing.assert_array_equal(table.x, [[1, 2], [3, 4]])


# -- model cards ---------------------------------------------------------------------------


class Raw(str):
    """TOML text written as it is (values tomllib reads but Python cannot write plainly)."""


def toml_value(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(table: dict) -> str:
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in table.items())


def _shipped_cards() -> dict[str, dict]:
    folder = cards.builtin_folder()
    return {
        name: tomllib.loads((folder / f"{name}.toml").read_text(encoding="utf-8")) for name in cards.builtin_names()
    }


SHIPPED = _shipped_cards()

HOSTILE_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.integers(-3, 3) | st.floats(-2, 2), max_size=3),
    st.lists(st.lists(st.floats(-2, 2), min_size=1, max_size=3), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["k", "x", "enabled", "n_rows"]), st.integers(-2, 5), max_size=2),
    st.sampled_from(["1..9", "9..1", "1..100000000000000000000", "0", "3,2,2", "VVV", "EEV", "banana", "default"]),
    st.sampled_from([Raw("1e400"), Raw("99999999999999999999999"), Raw("[" * 2000 + "]" * 2000), Raw("-0")]),
)

# data.path values: inside the folder, out of it by '..', absolute, through symlinks.
HOSTILE_PATHS = [
    "data.csv",
    "sub/data.csv",
    "inner_link",
    "../data.csv",
    "sub/../../data.csv",
    "/etc/passwd",
    "escape_link",
    "escape_dir/passwd",
    "loop_a",
    "da\x00ta.csv",
    "",
    ".",
    "sub",
    "x" * 5000,
    "~/data.csv",
]


def _leaf_paths(table: dict, prefix=()) -> list[tuple]:
    paths = []
    for key, value in table.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _leaf_paths(value, (*prefix, key))
    return paths


@st.composite
def mutated_card(draw):
    """A shipped card as a dictionary, after 1 to 3 edits: a value replaced, a key deleted or
    added, or the data source turned into a hostile data.path."""
    card = json.loads(json.dumps(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))]))
    for _ in range(draw(st.integers(1, 3))):
        paths = _leaf_paths(card)
        edit = draw(st.sampled_from(["replace", "replace", "delete", "add", "path"]))
        if edit == "path" or not paths:
            data = card.setdefault("data", {}) if isinstance(card.get("data", {}), dict) else {}
            for source in ("dataset", "simulate"):
                data.pop(source, None)
            data["path"] = draw(st.sampled_from(HOSTILE_PATHS))
            card["data"] = data
            continue
        path = draw(st.sampled_from(paths))
        parent = card
        for key in path[:-1]:
            parent = parent[key]
        if edit == "replace":
            parent[path[-1]] = draw(HOSTILE_VALUES)
        elif edit == "delete":
            del parent[path[-1]]
        else:
            parent[draw(st.sampled_from(["n_inti", "extra", "Model", "data ", "é"]))] = draw(HOSTILE_VALUES)
    return card


@pytest.fixture(scope="module")
def card_folder(tmp_path_factory):
    """A card's folder with a data file, a subfolder and symlinks in, out and in a loop."""
    root = tmp_path_factory.mktemp("cards")
    (root / "data.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    (root / "sub").mkdir()
    (root / "sub" / "data.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    os.symlink(root / "data.csv", root / "inner_link")
    os.symlink("/etc/passwd", root / "escape_link")
    os.symlink("/etc", root / "escape_dir")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "loop_a", root / "loop_b")
    return root


def _load_card_or_refuse(path: Path, folder: Path):
    try:
        spec = cards.load_card(path)
    except cards.CardError as err:
        assert str(err).startswith(f"card {path}: "), err
        event("refused")
        return None
    event("accepted")
    spec.check()  # what load_card accepts, a run accepts
    if spec.data.path is not None:
        assert spec.data.path.is_relative_to(folder.resolve()), spec.data.path
        event("accepted, with a data.path inside the card's folder")
    return spec


def test_shipped_cards_survive_the_round_trip_through_toml_document(card_folder):
    # The fuzzer writes cards with toml_document: unmutated, every shipped card must load.
    for name, card in SHIPPED.items():
        path = card_folder / f"{name}.toml"
        path.write_text(toml_document(card))
        cards.load_card(path).check()


@fuzz(300)
@given(card=mutated_card())
def test_mutated_card_loads_cleanly_or_is_refused(card_folder, card):
    path = card_folder / "mutated.toml"
    path.write_text(toml_document(card), encoding="utf-8")
    _load_card_or_refuse(path, card_folder)


@fuzz(150)
@given(content=st.sampled_from(sorted(SHIPPED)).flatmap(lambda n: mutated(toml_document(SHIPPED[n]).encode())))
def test_mutated_card_bytes_load_cleanly_or_are_refused(card_folder, content):
    path = card_folder / "bytes.toml"
    path.write_bytes(content)
    _load_card_or_refuse(path, card_folder)


@fuzz(60)
@given(card=mutated_card())
def test_refused_card_through_the_command_line_exits_2_and_writes_nothing(card_folder, card):
    path = card_folder / "cli.toml"
    path.write_text(toml_document(card), encoding="utf-8")
    if _load_card_or_refuse(path, card_folder) is not None:
        return  # a valid card would run EM here; the reader's side is checked above
    out = card_folder / "cli_out"
    _assert_refused_cleanly(*_run_cli(["run", path, "--out", out]), out)


@pytest.mark.parametrize(
    "edit, message",
    [
        # Each raised something other than a CardError before (or built a 1e20-element list).
        ({"model": {"select": {"k": "1..100000000000000000000"}}}, "a K grid holds at most 1000 values"),
        ({"model": {"n_components": 2}, "em": {"n_init": 10**20}}, "em.n_init must be at most 10000"),
        ({"model": {"n_components": 2}, "em": {"seed": 2**64}}, "em.seed must be at most"),
        ({"model": {"n_components": 2}, "em": {"tol": math.inf}}, "em.tol must be a finite number"),
        # Allowed one by one, these asked for gigabytes: EM's trace is n_init x (max_iter + 1).
        ({"model": {"n_components": 2}, "em": {"n_init": 10_000, "max_iter": 10**6}}, "is above 100000000"),
        ({"model": {"n_components": 2}, "mcmc": {"num_chains": 10**6}}, "mcmc.num_chains must be at most 1000"),
        ({"model": {"n_components": 2}, "mcmc": {"num_samples": 10**7}}, "is above 1000000 kept draws"),
        ({"model": {"n_components": 2}, "em": {"tol": Raw("1" + "0" * 400)}}, "em.tol must be a number within"),
        ({"model": {"n_components": 2}, "x": Raw("[" * 3000 + "]" * 3000)}, "nested too deeply"),
        ({"model": {"n_components": 2}, "data": {"path": "loop_a"}}, "data.path 'loop_a' cannot be resolved"),
        ({"model": {"n_components": 2}, "data": {"path": "a\x00b"}}, "holds a NUL character"),
        ({"model": {"n_components": 2}, "data": {"path": "escape_dir/passwd"}}, "leads out of the card's folder"),
    ],
)
def test_card_regressions(card_folder, edit, message):
    card = {"name": "t", "description": "d", "data": {"path": "data.csv"}} | edit
    path = card_folder / "regression.toml"
    path.write_text(toml_document(card))
    with pytest.raises(cards.CardError) as err:
        cards.load_card(path)
    assert message in str(err.value)


SIMULATE = SHIPPED["simulated"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("weights", [0.5, 0.5], "data.simulate.weights must have shape (3,)"),
        ("means", [[0.0, 0.0], [1.0]], "data.simulate.means must be a K x D array"),
        ("weights", [0.9, 0.9, 0.9], "must be non-negative and sum to 1"),
        ("covariances", [[[1.0, 2.0], [2.0, 1.0]]] * 3, "symmetric positive definite"),
        ("means", [[1e200, 0.0], [0.0, 0.0], [1.0, 1.0]], "beyond +-1e+100"),
        ("n_rows", 10**12, "data.simulate.n_rows must be an integer <= 10000000"),
    ],
)
def test_simulate_truth_is_checked_when_the_card_is_read(card_folder, field, value, message):
    # These passed load_card and failed later, inside datasets.simulate or EM, with
    # messages that did not name the card (a ragged array was numpy's own ValueError).
    card = json.loads(json.dumps(SIMULATE))
    card["data"]["simulate"][field] = value
    path = card_folder / "simulate.toml"
    path.write_text(toml_document(card))
    with pytest.raises(cards.CardError) as err:
        cards.load_card(path)
    assert message in str(err.value)


# -- the saved-model loader ----------------------------------------------------------------


def _params_json(covariance_type: str, with_prior: bool, standardized: bool) -> dict:
    """A params.json record as gmm-ppl writes it, for K=2, D=2 (no fitting needed)."""
    K, D = 2, 2
    covariances = {
        "full": np.stack([np.eye(D), [[2.0, 0.3], [0.3, 1.0]]]),
        "diag": np.array([[1.0, 2.0], [0.5, 1.5]]),
        "spherical": np.array([1.0, 0.5]),
        "tied": np.array([[1.0, 0.2], [0.2, 1.0]]),
    }[covariance_type]
    params = GMMParams(np.array([0.4, 0.6]), np.array([[0.0, 0.0], [3.0, 2.0]]), covariances)
    prior = Prior(np.ones(K), np.zeros(D), np.float64(0.01), np.float64(D + 2), np.eye(D)) if with_prior else None
    return saved.params_record(
        params=params,
        covariance_type=covariance_type,
        columns=["a", "b"],
        method="em",
        prior=prior,
        log_likelihood=-3.25,
        objective=-3.5,
        n_iter=3,
        converged=True,
        trace=[-5.0, -4.0, -3.6, -3.5],
        restart_objectives=[-3.5, -3.7],
        best_restart=0,
        n_rows=40,
        mean=np.array([1.0, 2.0]) if standardized else None,
        scale=np.array([0.5, 3.0]) if standardized else None,
    )


BASE_RECORDS = [
    _params_json(t, p, s) for t, p, s in [("full", True, True), ("diag", False, False), ("spherical", True, False)]
] + [_params_json("tied", False, True)]


def _json_paths(value, prefix=()) -> list[tuple]:
    paths = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        paths.append((*prefix, key))
        paths += _json_paths(child, (*prefix, key))
    return paths


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.floats(-3, 3) | st.none(), max_size=4),
    st.just({}),
    st.just({"mean": [0.0], "scale": [1.0]}),
)


@st.composite
def mutated_record(draw):
    """A params.json record after 1 to 3 edits: a value (anywhere in the tree) replaced, a key
    deleted, an array lengthened or shortened; written with NaN and Infinity allowed."""
    record = json.loads(json.dumps(draw(st.sampled_from(BASE_RECORDS))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_json_paths(record)))
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        child = parent[path[-1]]
        edit = draw(st.sampled_from(["replace", "replace", "delete", "grow", "shrink", "scale"]))
        if edit == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif edit == "delete":
            del parent[path[-1]]
        elif edit == "grow" and isinstance(child, list) and child:
            child.append(json.loads(json.dumps(child[-1])))
        elif edit == "shrink" and isinstance(child, list) and child:
            child.pop()
        elif edit == "scale" and isinstance(child, (int, float)) and not isinstance(child, bool):
            parent[path[-1]] = child * draw(st.sampled_from([0.0, -1.0, 1e-320, 1e-300, 1e150, 1e300, math.inf]))
    return json.dumps(record).encode()


def _load_or_refuse(path: Path):
    try:
        gm = saved.load(path)
    except ValueError as err:
        assert not isinstance(err, UnicodeError), err
        _error_names_the(err, path)
        event("refused")
        return None
    event("accepted")
    _check_model(gm)
    return gm


def _check_model(gm) -> None:
    """What a loaded model must be: finite parameters of consistent shapes."""
    D = gm.means_.shape[1]
    for array in (gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_):
        assert np.all(np.isfinite(array))
    assert gm.n_features_in_ == D and len(gm.columns_) == D
    assert (gm.standardize_mean_ is None) == (gm.standardize_scale_ is None)
    if gm.standardize_scale_ is not None:
        assert gm.standardize_scale_.shape == (D,) and np.all(gm.standardize_scale_ > 0)


def test_base_records_load(folder):
    # The fuzzer's starting points are valid, and load back as written.
    for record in BASE_RECORDS:
        path = folder / "params.json"
        path.write_text(saved.dumps(record))
        gm = saved.load(path)
        _check_model(gm)
        assert gm.covariance_type == record["covariance_type"]
        np.testing.assert_array_equal(gm.means_, record["means"])


@fuzz(400)
@given(content=mutated_record())
def test_mutated_params_json_loads_cleanly_or_is_refused(folder, content):
    path = folder / "params.json"
    path.write_bytes(content)
    _load_or_refuse(path)


@fuzz(150)
@given(
    content=st.sampled_from(range(len(BASE_RECORDS))).flatmap(lambda i: mutated(json.dumps(BASE_RECORDS[i]).encode()))
)
def test_mutated_params_json_bytes_load_cleanly_or_are_refused(folder, content):
    path = folder / "params.json"
    path.write_bytes(content)
    _load_or_refuse(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        # KeyError, TypeError, AttributeError, OverflowError and IndexError before.
        (lambda r: r.pop("converged"), "converged is missing"),
        (lambda r: r.pop("log_likelihood"), "log_likelihood is missing"),
        (lambda r: r.update(n_iter=1e400), "n_iter must be an integer >= 1"),
        (lambda r: r.update(n_iter=0), "n_iter must be an integer >= 1"),
        (lambda r: r.update(best_restart=10**30), "best_restart must be an integer"),
        (lambda r: r.update(prior=[1, 2]), "prior must be an object with the fields alpha, dof"),
        (lambda r: r.update(standardize={"mean": [0, 0]}), "standardize must be an object"),
        (lambda r: r.update(objective_trace=5), "objective_trace must be a list of numbers"),
        (lambda r: r.update(columns=["a"]), "columns must be a list of 2 column names"),
        (lambda r: r["prior"].update(alpha=[-1.0, -1.0]), "prior.alpha must be positive"),
        (lambda r: r.update(means=[[1e300, 0.0], [0.0, 0.0]]), "means beyond +-1e+100"),
        (lambda r: r.update(covariances=np.multiply(r["covariances"], 1e-320).tolist()), "close to singular"),
    ],
)
def test_params_json_regressions(folder, edit, message):
    record = json.loads(json.dumps(BASE_RECORDS[0]))
    edit(record)
    path = folder / "params.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError) as err:
        gp.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_deeply_nested_and_mis_encoded_params_json_are_refused(folder):
    path = folder / "params.json"
    path.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested too deeply"):
        gp.load(path)
    path.write_bytes(json.dumps(BASE_RECORDS[1]).replace('"a"', '"\xe9"').encode("latin-1"))
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        gp.load(path)


# -- through the command line --------------------------------------------------------------


def _run_cli(argv) -> tuple[int, str]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        status = main([str(a) for a in argv])
    return status, stderr.getvalue()


def _assert_refused_cleanly(status: int, stderr: str, out: Path) -> str:
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gmm-ppl: error: "), stderr
    assert "Traceback" not in stderr
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.writing-*"))
    return lines[0]


@fuzz(60)
@given(content=mutated(BASE_CSV))
def test_mutated_csv_through_the_command_line_exits_2_and_writes_nothing(folder, content):
    # -k above any row count: a file the reader accepts stops at the row check, after the
    # temporary results folder was made, so cleanup runs on every example without fitting.
    path = folder / "cli.csv"
    path.write_bytes(content)
    out = folder / "cli_out"
    status, stderr = _run_cli(["fit", path, "-k", "100000", "--quiet", "--out", out])
    _assert_refused_cleanly(status, stderr, out)


HOSTILE_FILES = {
    "row wider than the header": ("wide.csv", b"a,b\n1,2,3\n4,5,6\n", "Expected 2 fields"),
    "value beyond 1e100": ("huge.csv", b"a,b\n1,1e308\n2,3\n4,5\n", "are refused"),
    "UTF-16 file": ("utf16.csv", "a,b\n1,2\n3,4\n".encode("utf-16"), "not a text (UTF-8) CSV file"),
    ".npz named .npy": ("archive.npy", None, "is a .npz (zip) archive"),
    "truncated .npy": ("cut.npy", BASE_NPY[:140], "is truncated"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_hostile_data_file_through_the_command_line(folder, case):
    name, content, message = HOSTILE_FILES[case]
    path = folder / name
    if content is None:
        with open(path, "wb") as f:
            np.savez(f, x=np.ones((3, 2)))
    else:
        path.write_bytes(content)
    out = folder / "out"
    assert message in _assert_refused_cleanly(*_run_cli(["fit", path, "-k", "2", "--out", out]), out)


def test_hostile_card_and_grid_through_the_command_line(card_folder):
    out = card_folder / "out"
    card = card_folder / "deep.toml"
    card.write_text('name = "t"\ndescription = "d"\nx = ' + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested too deeply" in _assert_refused_cleanly(*_run_cli(["run", card, "--out", out]), out)
    card = card_folder / "loop.toml"
    card.write_text(toml_document({"name": "t", "description": "d", "data": {"path": "loop_a"}}))
    assert "cannot be resolved" in _assert_refused_cleanly(*_run_cli(["run", card, "--out", out]), out)
    grid = ["select", card_folder / "data.csv", "--k", "1..100000000000000000000", "--out", out]
    assert "at most 1000 values" in _assert_refused_cleanly(*_run_cli(grid), out)


def test_hostile_file_in_a_real_process_prints_no_traceback(folder):
    # One real `python -m gmm_ppl` (the rest run main() in-process): exit status and stderr
    # as a shell sees them.
    import subprocess
    import sys

    path = folder / "process.csv"
    path.write_bytes(b"a,b\n1,2,3\n4,5,6\n")
    out = folder / "process_out"
    result = subprocess.run(
        [sys.executable, "-m", "gmm_ppl", "fit", str(path), "-k", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_refused_cleanly(result.returncode, result.stderr, out)
