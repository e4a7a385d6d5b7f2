"""Progress of long runs (``gmm_ppl.progress``): NUTS's bar (draws, divergences) and a model
grid's, which never change a result, print nothing when turned off or on a short run, and
stay off the command line's stderr with --quiet.

The NUTS runs have the shapes and settings of test_cli's and test_reproducibility's (60 rows
x 2 columns, K=2, 2 chains, 20 warm-up iterations), and the grid test_selection's, so the
compiled programs are shared.
"""

import io
import re

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import gmm_ppl as gp
from gmm_ppl import posterior, progress
from gmm_ppl.app.cli import main
from gmm_ppl.posterior import PARAMETERS

# Segments of 7 iterations: 3 calls of the sampler for warm-up, 5 for the draws.
NUTS = {
    "num_warmup": 20,
    "num_samples": 30,
    "num_chains": 2,
    "segment_size": 7,
    "modes": 1,
    "log_likelihood": False,
    "key": 3,
}
SEGMENTS = [("warmup", d, 20) for d in (7, 14, 20)] + [("sampling", d, 30) for d in (7, 14, 21, 28, 30)]
GRID = {"n_components": [1, 2, 3], "covariance_types": ["EII", "VVV", "EEE"], "key": 0, "n_init": 3}


@pytest.fixture(scope="module")
def blobs():
    """test_cli's 60 rows: two separated clusters."""
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal([0, 0], 0.5, size=(30, 2)), rng.normal([4, 3], 0.7, size=(30, 2))])


@pytest.fixture(scope="module")
def reference(blobs):
    return gp.fit_em(blobs, 2, key=0, n_init=2, max_iter=200, dtype="float64")


@pytest.fixture
def shown_at_once(monkeypatch):
    """The bar shows from the first update on, however short the run."""
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)


def _draws(idata) -> dict:
    return {
        **{n: idata.posterior[n].values for n in PARAMETERS},
        **{n: idata.sample_stats[n].values for n in idata.sample_stats.data_vars},
    }


def test_draws_are_the_same_with_a_bar_without_one_and_with_a_function(blobs, reference, shown_at_once, capsys):
    without = gp.sample_posterior(blobs, 2, reference=reference, progress=False, **NUTS)
    with_bar = gp.sample_posterior(blobs, 2, reference=reference, progress=True, **NUTS)
    calls = []
    with_function = gp.sample_posterior(blobs, 2, reference=reference, progress=lambda *a: calls.append(a), **NUTS)
    assert "NUTS, 2 chains: sampling" in capsys.readouterr().err  # the bar did draw
    assert calls == SEGMENTS  # a function still gets (phase, done, total) after every segment
    for other in (with_bar, with_function):
        for name, value in _draws(without).items():
            np.testing.assert_array_equal(_draws(other)[name], value, err_msg=name)


def test_no_progress_prints_nothing(blobs, reference, shown_at_once, capsys):
    for off in (False, None):
        gp.sample_posterior(blobs, 2, reference=reference, progress=off, **NUTS)
    assert capsys.readouterr().err == ""


def test_the_bar_counts_the_divergences_the_draws_keep(blobs, reference, shown_at_once, monkeypatch, capsys):
    # NUTS rarely diverges on these data: marking every third iteration of the first chain
    # divergent in what the sampler returns (the buffers' unfilled tail too, which no draw
    # keeps) gives a count to check.
    segment = posterior._nuts_segment

    def diverging_segment(*args, **kwargs):
        states, (draws, stats) = segment(*args, **kwargs)
        marked = stats["diverging"].at[0].set(jnp.arange(stats["diverging"].shape[1]) % 3 == 0)
        return states, (draws, {**stats, "diverging": marked})

    monkeypatch.setattr(posterior, "_nuts_segment", diverging_segment)
    idata = gp.sample_posterior(blobs, 2, reference=reference, progress=True, **NUTS)
    lines = capsys.readouterr().err.splitlines()  # stderr is no terminal here: one line per update
    divergences = int(idata.sample_stats["diverging"].values.sum())
    assert divergences == 4 * 3 + 1  # 0, 3 and 6 of each segment of 7 draws, 0 of the last (2 draws)
    last = re.fullmatch(
        r"NUTS, 2 chains: sampling \[#{20}\] 30/30 draws per chain, (\d+) divergences, \d+ s", lines[-1]
    )
    assert last is not None, lines
    assert int(last.group(1)) == divergences
    assert lines[0].startswith("NUTS, 2 chains: warm-up [") and "7/20 iterations per chain" in lines[0]

    # A function with a parameter named divergences gets the same count; one without does not.
    counts = []
    gp.sample_posterior(
        blobs, 2, reference=reference, progress=lambda *a, divergences: counts.append(divergences), **NUTS
    )
    assert counts[:3] == [None] * 3 and counts[-1] == divergences  # warm-up has none to count
    assert counts[3:] == sorted(counts[3:])  # so far: never fewer
    positional = []

    def only_by_position(phase, done, total, divergences, /):
        positional.append(divergences)

    gp.sample_posterior(blobs, 2, reference=reference, progress=only_by_position, **NUTS)
    assert positional == counts


def test_a_short_run_prints_nothing_and_a_terminal_gets_one_line_redrawn():
    quiet = io.StringIO()
    bar = progress.nuts_bar(4)
    bar.stream, bar.show_after = quiet, 60.0
    with progress.reporting(bar, None) as report:
        for phase, done, total in SEGMENTS:
            report(phase, done, total, 0 if phase == "sampling" else None)
    assert quiet.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = progress.ProgressBar("grid", {"models": "models"}, stream=terminal, show_after=0.0)
    with progress.reporting(bar, None) as report:
        for done in (3, 6, 9):
            report("models", done, 9)
    text = terminal.getvalue()
    assert text.startswith("\rgrid [") and text.endswith("9/9 models, 0 s\n") and text.count("\n") == 1


def test_a_missing_or_broken_stderr_turns_the_bar_off_not_the_run(monkeypatch):
    """pythonw has no stderr; a closed stream or a broken pipe raises on write: the bar stops
    trying after the first failure, and the run it reports on goes on."""

    class BrokenPipe(io.StringIO):
        writes = 0

        def write(self, text):
            BrokenPipe.writes += 1
            raise BrokenPipeError

    closed = io.StringIO()
    closed.close()
    for stream in (None, closed, BrokenPipe()):
        monkeypatch.setattr("sys.stderr", stream)
        bar = progress.ProgressBar("grid", {"models": "models"}, show_after=0.0)
        with progress.reporting(bar, None) as report:
            for done in (3, 6, 9):
                report("models", done, 9)
        assert bar.broken
    assert BrokenPipe.writes == 1


def test_progress_must_be_a_bool_a_function_or_none(blobs):
    with pytest.raises(TypeError, match="progress must be True"):
        gp.sample_posterior(blobs, 2, progress="yes")
    with pytest.raises(TypeError, match="progress must be True"):
        gp.select_model(blobs, progress=1)


def test_the_grid_reports_every_model_and_fits_the_same(faithful, shown_at_once, capsys):
    calls = []
    quiet = gp.select_model(faithful, progress=False, **GRID)
    assert capsys.readouterr().err == ""
    counted = gp.select_model(faithful, progress=lambda *a: calls.append(a), **GRID)
    assert calls == [("models", 3, 9), ("models", 6, 9), ("models", 9, 9)]  # one call per structure
    shown = gp.select_model(faithful, progress=True, **GRID)
    assert "model grid [####################] 9/9 models" in capsys.readouterr().err
    for other in (counted, shown):
        pd.testing.assert_frame_equal(other.table, quiet.table)
        assert other.best == quiet.best


def test_select_shows_grid_progress_unless_quiet(blobs, tmp_path, shown_at_once, capsys):
    path = tmp_path / "blobs.csv"
    np.savetxt(path, blobs, delimiter=",", header="a,b", comments="")
    argv = ["select", str(path), "--k", "1..2", "--covariance-types", "EII,VVV", "--n-init", "2"]
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "[2/2] model grid" in err and "      model grid [####################] 4/4 models" in err
