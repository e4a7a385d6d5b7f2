"""The gmm-ppl command line and the model cards: every shipped card runs, results folders are
complete or absent, saved fits load back, bad input gives one line and exit status 2.

``main([...])`` runs in-process (one JAX compilation per program for the whole session);
one test starts ``python -m gmm_ppl`` as a subprocess.
"""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gmm_ppl as gp
from gmm_ppl.app import cards, pipeline, report
from gmm_ppl.app.cli import main

MODELS = Path(__file__).resolve().parent.parent / "models"
# Small EM runs share one compiled program: same K, covariance type, restarts and shape.
FAST_FIT = ["-k", "2", "--n-init", "2", "--max-iter", "200", "--quiet"]


@pytest.fixture(scope="session")
def blobs(tmp_path_factory):
    """60 rows, two separated clusters, columns a and b, and a text label column."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal([0, 0], 0.5, size=(30, 2)), rng.normal([4, 3], 0.7, size=(30, 2))])
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    lines = ["a,b,group"] + [f"{a:.6f},{b:.6f},{'left' if i < 30 else 'right'}" for i, (a, b) in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return path, x


@pytest.fixture(scope="session")
def fit_dir(blobs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fit"
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out)]) == 0
    return out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gmm-ppl: error: "), err
    return lines[0]


# -- the shipped cards ----------------------------------------------------------------------

CARD_FILES = {
    "old_faithful": {
        "posterior.nc",
        "comparison.csv",
        "comparison.md",
        "trace.png",
        "ellipses.png",
        "em_trace.csv",
        "modes.csv",
    },
    "diabetes": {"selection.csv", "bic.png", "em_trace.csv", "ellipses.png"},
    "kmeans_faithful": {"ellipses.png"},
    "map_diabetes": {"em_trace.csv", "ellipses.png"},
    "simulated": {"recovery.csv", "posterior.nc", "comparison.csv", "trace.png", "modes.csv"},
    "four_ways": {"posterior.nc", "comparison.csv", "comparison.md", "trace.png", "modes.csv"},
}
NUTS_CARDS = {"old_faithful", "simulated", "four_ways"}


def test_every_card_is_listed_here():
    assert set(cards.builtin_names()) == set(CARD_FILES)
    assert MODELS.is_symlink() and (MODELS / "old_faithful.toml").is_file()  # one copy, in gmm_ppl/app/models


def _check_card_folder(name, out, stdout):
    """What a card run in fast mode must leave: the report announced, every file of the card,
    every figure linked from the report, and a saved fit that loads back."""
    assert f"report: {out / 'report.md'}" in stdout
    files = {p.name for p in out.iterdir()}
    assert {"params.json", "report.md", "summary.json", "density.png", "assignments.csv"} | CARD_FILES[name] <= files
    text = (out / "report.md").read_text()
    for figure in (f for f in files if f.endswith(".png")):
        assert f"]({figure})" in text  # every figure is linked from the report
    if "posterior.nc" in files:  # the posterior's modes beside the draws, their shares summing to 1
        modes = pd.read_csv(out / "modes.csv")
        assert (
            "## Modes" in text and abs(modes.draw_share.sum() - 1) < 1e-9 and abs(modes.laplace_weight.sum() - 1) < 1e-9
        )
        assert ("modes.png" in files) == ((modes.laplace_weight >= 0.01).sum() > 1)  # a figure only for several
    gm = gp.load(out)
    assert gm.predict(np.zeros((1, gm.n_features_in_))).shape == (1,)


# old_faithful is the demo's card: test_demo_fast_prints_the_comparison runs it (once).
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in NUTS_CARDS else n
        for n in sorted(CARD_FILES)
        if n != "old_faithful"
    ],
)
def test_card_runs_fast_and_writes_its_files(name, tmp_path, capsys):
    out = tmp_path / name
    card = str(MODELS / f"{name}.toml") if name == "diabetes" else name  # a path, or a built-in name
    assert main(["run", card, "--fast", "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    _check_card_folder(name, out, stdout)
    if name == "diabetes":  # the BIC grid as mclust prints it, K by structure: selection.csv's values
        long = pd.read_csv(out / "selection.csv")
        title = "BIC (larger is better) by K and structure, as mclust prints it (NA: singular):\n\n"
        block = stdout.split(title)[1].splitlines()
        header, rows = block[0].split(), [line.split() for line in block[1 : 1 + long.n_components.nunique()]]
        assert header == ["K", *dict.fromkeys(long.covariance_type)]
        for row in rows:
            for code, printed in zip(header[1:], row[1:], strict=True):
                fit = long[(long.n_components == int(row[0])) & (long.covariance_type == code)].iloc[0]
                assert printed == ("NA" if fit.singular else f"{fit.bic:.1f}")
    if name == "four_ways":  # every method's columns, and the time each took
        comparison = pd.read_csv(out / "comparison.csv")
        for column in ("em_ml", "em_map", "wald_low", "boot_high", "vb_mean", "vb_sd", "mean", "hdi_low"):
            assert column in comparison.columns, column
        summary = json.loads((out / "summary.json").read_text())["comparison"]["summary"]
        for method in ("em_ml", "em_map", "vb", "bootstrap", "nuts"):
            assert summary[f"seconds_{method}"] > 0, method
    if name == "simulated":
        recovery = json.loads((out / "summary.json").read_text())["recovery"]
        assert max(abs(r["em_error"]) for r in recovery) < 0.5  # 600 rows, well separated


@pytest.mark.slow
def test_demo_fast_prints_the_comparison(tmp_path, capsys):
    # The demo is the old_faithful card (--fast keeps the test short): its folder is checked
    # as every other card's is.
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "EM beside the posterior" in stdout and "em_ml" in stdout
    _check_card_folder("old_faithful", out, stdout)
    # One sign in the whole folder (issue 34): the comparison's BIC of the ML fit is the EM
    # result's, 2 log L - p log N (larger is better), in the terminal, report.md and comparison.md.
    fit = json.loads((out / "summary.json").read_text())["fit"]
    bic = 2 * fit["log_likelihood_total"] - fit["n_parameters"] * np.log(272)
    assert fit["bic"] == pytest.approx(bic, abs=1e-9) and bic < 0
    assert re.search(rf"BIC em_ml \(larger is better\) +{re.escape(f'{bic:.1f}')}\n", stdout)
    for text in (stdout, (out / "report.md").read_text(), (out / "comparison.md").read_text()):
        assert "smaller is better" not in text and "looic" not in text
    for text in ((out / "report.md").read_text(), (out / "comparison.md").read_text()):
        assert f"| BIC em_ml (larger is better) | {bic:.0f} |" in text


def test_cards_command_lists_the_cards(capsys):
    assert main(["cards"]) == 0
    out = capsys.readouterr().out
    for name in CARD_FILES:
        assert name in out


# -- results folder -------------------------------------------------------------------------


def test_fit_writes_a_complete_folder(fit_dir, blobs):
    files = {p.name for p in fit_dir.iterdir()}
    assert files == {
        "params.json",
        "assignments.csv",
        "em_trace.csv",
        "ellipses.png",
        "density.png",
        "summary.json",
        "report.md",
    }
    params = json.loads((fit_dir / "params.json").read_text())
    assert params["covariance_type"] == "full" and params["n_components"] == 2
    assert params["columns"] == ["a", "b"]  # the label column is left out
    assert params["standardize"] is None and params["converged"] is True
    assert np.isclose(sum(params["weights"]), 1)
    trace = (fit_dir / "em_trace.csv").read_text().splitlines()
    assert trace[0] == "iteration,objective" and len(trace) == params["n_iter"] + 2
    report_text = (fit_dir / "report.md").read_text()
    assert "## EM result" in report_text and "![fitted density](density.png)" in report_text
    assert not list(fit_dir.parent.glob(".fit.*"))  # no temporary folder left


def test_load_round_trip_predicts_the_fit_labels(blobs, tmp_path):
    spec = cards.RunSpec(
        name="t",
        description="t",
        data=cards.DataSpec(path=blobs[0], columns=["a", "b"]),
        model=cards.ModelSpec(n_components=2, covariance_type="diag", prior="default"),
        em=cards.EMSpec(n_init=2, max_iter=200),
    )
    outcome = pipeline.run(spec, out=tmp_path / "r", quiet=True)
    gm = gp.load(tmp_path / "r" / "params.json")
    assert isinstance(gm, gp.GaussianMixture)
    np.testing.assert_array_equal(gm.predict(blobs[1]), outcome.fitted.labels)
    assert gm.prior is not None and gm.covariance_type == "diag"
    assert gm.standardize_mean_ is None and gm.columns_ == ["a", "b"]
    np.testing.assert_allclose(gm.score(blobs[1]), outcome.fitted.log_likelihood, rtol=1e-6)


def test_load_of_a_standardised_fit_keeps_standardised_units(blobs, tmp_path, capsys):
    out = tmp_path / "std"
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--standardize", "--out", str(out)]) == 0
    gm = gp.load(out)
    x = blobs[1]
    np.testing.assert_allclose(gm.standardize_mean_, x.mean(axis=0), atol=1e-6)
    labels = gm.predict((x - gm.standardize_mean_) / gm.standardize_scale_)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[-1]


def test_json_output_parses(blobs, capsys):
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["model"]["n_components"] == 2 and record["out"] is None and record["files"] == []
    assert record["data"]["skipped_columns"] == ["group"]
    assert captured.err == ""  # --quiet: no progress


def test_progress_on_stderr_unless_quiet(blobs, capsys):
    assert main(["fit", str(blobs[0]), "-k", "2", "--n-init", "2", "--max-iter", "200"]) == 0
    captured = capsys.readouterr()
    assert "[1/2] data: " in captured.err and "60 rows x 2 columns (a, b)" in captured.err
    assert "[2/2] EM: K=2" in captured.err
    assert "nothing written" in captured.out


def test_seed_makes_runs_reproducible(blobs, tmp_path):
    for name in ("one", "two"):
        assert main(["fit", str(blobs[0]), *FAST_FIT, "--seed", "7", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "one" / "params.json").read_bytes() == (tmp_path / "two" / "params.json").read_bytes()


def test_existing_folder_needs_force(fit_dir, blobs, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out)]) == 0
    (out / "marker").write_text("old run")
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out)]) == 2
    assert "exists; pass --force" in _one_error_line(capsys)
    assert (out / "marker").exists()  # untouched
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out), "--force"]) == 0
    assert not (out / "marker").exists() and (out / "params.json").exists()
    # --force never replaces a folder gmm-ppl did not write.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(foreign), "--force"]) == 2
    assert "not written by gmm-ppl" in _one_error_line(capsys)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_interrupted_run_leaves_nothing(blobs, tmp_path, monkeypatch, capsys):
    def interrupt(outcome, folder):
        (Path(folder) / "half-written.png").write_bytes(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_figures", interrupt)
    out = tmp_path / "sub" / "run"
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted; nothing was written to {out}"
    assert not out.exists() and not (tmp_path / "sub").exists()  # the parent it created is gone too
    assert list(tmp_path.iterdir()) == []


def test_interrupted_force_keeps_the_old_folder(fit_dir, blobs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "kept"
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out)]) == 0
    before = (out / "params.json").read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "fit_model", interrupt)
    assert main(["fit", str(blobs[0]), *FAST_FIT, "--out", str(out), "--force"]) == 130
    assert (out / "params.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


# NUTS runs on the blobs sharing one compiled sampler (same K, chains, warm-up and data shape),
# also with test_reproducibility's.
SAMPLE = ["-k", "2", "--n-init", "2", "--max-iter", "200", "--chains", "2", "--warmup", "20"]


def _ctrl_c_after(draws: int, monkeypatch):
    """Ctrl-C when NUTS has made ``draws`` draws: one-iteration segments, and a KeyboardInterrupt
    raised between two calls of the compiled sampler, where a real Ctrl-C surfaces."""
    from gmm_ppl import posterior

    segment = posterior._nuts_segment

    def interrupted_segment(x, prior, states, n_steps, **nuts):
        if int(np.min(states.i)) >= nuts["num_warmup"] + draws:
            raise KeyboardInterrupt
        return segment(x, prior, states, n_steps, **nuts)

    monkeypatch.setattr(posterior, "SEGMENT_SECONDS", 0.0)
    monkeypatch.setattr(posterior, "_nuts_segment", interrupted_segment)


def test_interrupted_sampling_writes_the_draws_made_so_far(blobs, tmp_path, monkeypatch, capsys):
    import arviz as az

    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["sample", str(blobs[0]), *SAMPLE, "--draws", "40", "--seed", "3", "--quiet", "--out", full]) == 0
    _ctrl_c_after(25, monkeypatch)
    assert main(["sample", str(blobs[0]), *SAMPLE, "--draws", "40", "--seed", "3", "--quiet", "--out", part]) == 130
    captured = capsys.readouterr()
    message = f"interrupted: NUTS was interrupted (Ctrl-C) after 25 of 40 draws per chain; wrote {part} with them"
    assert captured.err.strip().splitlines()[-1] == message
    assert "INTERRUPTED: NUTS was interrupted (Ctrl-C) after 25 of 40 draws" in captured.out
    assert {p.name for p in part.iterdir()} == {p.name for p in full.iterdir()}  # a complete folder
    summary = json.loads((part / "summary.json").read_text())
    assert summary["interrupted"] == {"stage": "nuts", "draws": 25, "draws_requested": 40}
    assert summary["posterior"]["num_samples"] == 25 and summary["posterior"]["num_samples_requested"] == 40
    assert json.loads((full / "summary.json").read_text())["interrupted"] is None
    assert "**Interrupted:** NUTS was interrupted (Ctrl-C) after 25 of 40" in (part / "report.md").read_text()
    # The same seed: the kept draws are the first 25 of the uninterrupted run, and the EM fit is the same.
    kept, whole = az.from_netcdf(part / "posterior.nc"), az.from_netcdf(full / "posterior.nc")
    assert kept.posterior.sizes["draw"] == 25 and kept.attrs["interrupted"] == 1
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(kept.posterior[name].values, whole.posterior[name].values[:, :25])
    assert (part / "params.json").read_bytes() == (full / "params.json").read_bytes()
    np.testing.assert_array_equal(gp.load(part).means_, gp.load(full).means_)


def test_interrupt_during_warmup_writes_nothing(blobs, tmp_path, monkeypatch, capsys):
    _ctrl_c_after(-5, monkeypatch)  # 5 iterations before the end of warm-up
    out = tmp_path / "run"
    assert main(["sample", str(blobs[0]), *SAMPLE, "--draws", "40", "--quiet", "--out", out]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted; nothing was written to {out}"
    assert list(tmp_path.iterdir()) == []


# The child: ``python -m gmm_ppl`` (runpy runs the package's __main__ as -m does), with a
# progress line after every sampling segment instead of every 10 s, so that the test knows
# when a segment of draws is kept (each line is printed after its segment is stored).
# The child takes Ctrl-C as a program started from a terminal does: a suite started in the
# background of a non-interactive shell (`make test &`) ignores SIGINT, and its children
# inherit that, so the SIGINT below was lost and the child ran all its draws.
_SAMPLE_WITH_A_LINE_PER_SEGMENT = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import runpy; import gmm_ppl.app.pipeline as p; p.PROGRESS_EVERY = 0.0; "
    "runpy.run_module('gmm_ppl', run_name='__main__', alter_sys=True)"
)


@pytest.mark.slow
def test_ctrl_c_during_sampling_keeps_the_draws(blobs, tmp_path):
    """A real SIGINT to ``python -m gmm_ppl sample``, sent once a segment of draws is kept:
    the run waits on the child's own progress line, never on the clock."""
    import os
    import re
    import signal
    import threading

    import arviz as az

    out = tmp_path / "run"
    argv = [*SAMPLE, "--draws", "400000", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    child = subprocess.Popen(
        [sys.executable, "-c", _SAMPLE_WITH_A_LINE_PER_SEGMENT, "sample", str(blobs[0]), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # A safety net only: a child that hangs is killed (and the test fails) instead of the
    # suite hanging; a run that works never comes near it.
    watchdog = threading.Timer(600, child.kill)
    watchdog.start()
    progress, first = [], None
    try:
        for line in child.stderr:
            progress.append(line)
            if first := re.search(r"(\d+) of 400000 draws per chain \(\d+ s, \d+ divergences?\)", line):
                break
        assert first is not None, "".join(progress)  # the child ended or was killed first
        assert any("warm-up done" in line for line in progress), "".join(progress)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate()
    finally:
        watchdog.cancel()
        child.kill()
    assert child.returncode == 130, "".join(progress) + stderr
    summary = json.loads((out / "summary.json").read_text())
    draws = summary["interrupted"]["draws"]
    # At least the segments reported before the signal; the run stopped long before the end.
    assert int(first.group(1)) <= draws < 400_000 and summary["interrupted"]["draws_requested"] == 400_000
    assert f"after {draws} of 400000 draws per chain; wrote {out} with them" in stderr
    assert az.from_netcdf(out / "posterior.nc").posterior.sizes["draw"] == draws
    assert gp.load(out).n_components == 2 and "report:" in stdout


# -- bad input ------------------------------------------------------------------------------


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_INPUT = {
    "missing file": (lambda d: ["fit", str(d / "nope.csv"), "-k", "2"], "no such file"),
    "empty file": (lambda d: ["fit", _write(d, "e.csv", ""), "-k", "2"], "is empty"),
    "header only": (lambda d: ["fit", _write(d, "h.csv", "a,b\n"), "-k", "2"], "no data rows"),
    "non-numeric column": (
        lambda d: ["fit", _write(d, "t.csv", "a,b\n1,2\n3,x\n5,6\n"), "-k", "2", "--columns", "a,b"],
        "column 'b' is not numeric: row 2 holds 'x'",
    ),
    "mixed column, no --columns": (
        lambda d: ["fit", _write(d, "m.csv", "a,b\n1,2\n3,oops\n5,6\n"), "-k", "2"],
        "column 'b' is not numeric: row 2",
    ),
    "NaN rows": (
        lambda d: ["fit", _write(d, "n.csv", "a,b\n1,2\n,4\n5,NaN\n7,8\n"), "-k", "2"],
        "2 of 4 rows have missing values (first: row 2); drop them with --drop-na",
    ),
    "wrong column name": (
        lambda d: ["fit", _write(d, "c.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--columns", "a,z"],
        "no column 'z'; columns: a, b",
    ),
    "K larger than rows": (
        lambda d: ["fit", _write(d, "k.csv", "a,b\n1,2\n3,4\n5,7\n"), "-k", "5"],
        "k.csv has 3 rows, fewer than K=5 components",
    ),
    "unknown covariance type": (
        lambda d: ["fit", _write(d, "u.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--covariance-type", "banana"],
        "--covariance-type: unknown covariance_type 'banana'",
    ),
    "NUTS with a structure the NumPyro model lacks": (
        lambda d: ["sample", _write(d, "p.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--covariance-type", "EEV"],
        "NUTS needs a covariance type the NumPyro model has",
    ),
    "bad K grid": (lambda d: ["select", _write(d, "g.csv", "a,b\n1,2\n3,4\n"), "--k", "9..1"], "K must be a range"),
    "unknown option": (lambda d: ["fit", "x.csv", "-k", "2", "--n-inti", "3"], "unrecognized arguments: --n-inti"),
    "missing -k": (lambda d: ["fit", "x.csv"], "required: -k"),
    "too many restarts, named as the option": (
        lambda d: ["fit", _write(d, "r.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--n-init", "20000"],
        "--n-init must be at most 10000; got 20000",
    ),
    "restarts x iterations, named as the options": (
        lambda d: ["fit", _write(d, "t.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--n-init", "10000", "--max-iter", "10000"],
        "--n-init x (--max-iter + 1) = 100010000 is above 100000000",
    ),
    "too many chains, named as the option": (
        lambda d: ["sample", _write(d, "c.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--chains", "1001"],
        "--chains must be at most 1000; got 1001",
    ),
    "infinite value": (
        lambda d: ["fit", _write(d, "i.csv", "a,b\n1,2\n3,inf\n"), "-k", "1"],
        "infinite value in row 2",
    ),
    "an unknown method to compare": (
        lambda d: ["compare", _write(d, "m.csv", "a,b\n1,2\n3,4\n"), "-k", "1", "--methods", "ml,gibbs,nuts"],
        "--methods must name some of ml, map, vb, nuts, bootstrap; got ml, gibbs, nuts",
    ),
    "not a card": (lambda d: ["run", _write(d, "bad.toml", "name = [")], "not valid TOML"),
    "unknown card": (lambda d: ["run", "no_such_card"], "no built-in card of that name"),
    "unknown dataset": (lambda d: ["datasets", "describe", "iris"], "unknown dataset 'iris'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path, capsys):
    make_argv, expected = BAD_INPUT[case]
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "out"
    argv = make_argv(data) + (["--out", str(out)] if make_argv(data)[0] in ("fit", "sample", "select", "run") else [])
    capsys.readouterr()
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert expected in line, line
    assert capsys.readouterr().out == ""
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_drop_na_drops_and_reports(tmp_path, capsys):
    path = _write(tmp_path, "n.csv", "a,b\n" + "".join(f"{i % 7},{(i * 3) % 5}\n" for i in range(20)) + ",1\n2,NA\n")
    assert main(["fit", path, "-k", "1", "--drop-na", "--quiet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["n_rows"] == 20 and data["n_rows_dropped"] == 2 and data["n_rows_read"] == 22


def test_npy_input(tmp_path, blobs, capsys):
    path = tmp_path / "x.npy"
    np.save(path, blobs[1])
    assert main(["fit", str(path), *FAST_FIT, "--json", "--columns", "x1,x0"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["columns"] == ["x1", "x0"]


# -- cards ----------------------------------------------------------------------------------

CARD = """
name = "t"
description = "a test card"
[data]
path = "data.csv"
[model]
n_components = 2
[em]
n_init = 2
max_iter = 200
"""


def _card(tmp_path, text, blobs):
    (tmp_path / "data.csv").write_text(blobs[0].read_text())
    path = tmp_path / "card.toml"
    path.write_text(text)
    return path


def test_card_with_a_data_file_runs(tmp_path, blobs, capsys):
    path = _card(tmp_path, CARD, blobs)
    assert main(["run", str(path), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["source"].endswith("data.csv")


@pytest.mark.parametrize(
    "change, message",
    [
        (("n_init = 2", "n_inti = 2"), "em.n_inti is not a known key (known: n_init, init, max_iter, tol, seed)"),
        (("n_init = 2", 'n_init = "two"'), "em.n_init must be an integer; got 'two' (string)"),
        (("n_components = 2", "n_components = 2.5"), "model.n_components must be an integer; got 2.5 (float)"),
        (('path = "data.csv"', 'path = "../data.csv"'), "data.path '../data.csv' leads out of the card's folder"),
        (('path = "data.csv"', 'path = "/etc/passwd"'), "leads out of the card's folder"),
        (('description = "a test card"', ""), "description is required"),
        (("[em]", "[emm]"), "emm is not a known key"),
        (("n_components = 2", 'covariance_type = "full"'), "model needs exactly one of n_components and select"),
        (("n_components = 2", 'n_components = 2\nmethod = "kmeans"\nprior = "default"'), "model.prior does not apply"),
        (("n_components = 2", 'n_components = 2\ncovariance_type = "EEV"\n[mcmc]'), "mcmc.enabled: covariance type"),
        (("n_components = 2", 'select = {k = "1..3", criterion = "bic", extra = 1}'), "model.select.extra is not"),
        (("n_components = 2", "select = {k = [0, 2]}"), 'model.select.k must be a range such as "1..9"'),
        (("[em]", '[compare]\nmethods = ["ml", "vb"]\n[em]'), "compare.methods: a comparison sets the methods"),
        (("[em]", '[compare]\nmethod = ["nuts"]\n[em]'), "compare.method is not a known key (known: methods)"),
    ],
)
def test_bad_card_is_refused_with_the_key(tmp_path, blobs, change, message, capsys):
    path = _card(tmp_path, CARD.replace(*change), blobs)
    with pytest.raises(cards.CardError, match="^card ") as err:
        cards.load_card(path)
    assert message in str(err.value)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_fast_mode_shrinks_the_card():
    with cards.builtin_path("diabetes") as path:
        spec = cards.fast(cards.load_card(path))
    assert spec.model.select.k == [1, 2, 3] and len(spec.model.select.covariance_types) == 2
    with cards.builtin_path("old_faithful") as path:
        spec = cards.fast(cards.load_card(path))
    assert spec.em.n_init == 2 and spec.mcmc.num_samples == 100 and spec.mcmc.num_chains == 2


# -- datasets -------------------------------------------------------------------------------


def test_datasets_commands(tmp_path, capsys):
    assert main(["datasets", "describe", "diabetes"]) == 0
    out = capsys.readouterr().out
    assert "145 rows x 3 columns" in out and "Reaven" in out and "Normal 76" in out
    target = tmp_path / "diabetes.csv"
    assert main(["datasets", "export", "diabetes", str(target)]) == 0
    assert target.read_text().splitlines()[0].replace('"', "") == "glucose,insulin,sspg,class"
    assert main(["datasets", "export", "diabetes", str(target)]) == 2
    assert "exists" in _one_error_line(capsys)
    assert main(["datasets", "export", "diabetes", str(target), "--force"]) == 0


def test_simulate_draws_from_the_model():
    truth = gp.GMMParams([0.7, 0.3], [[0.0, 0.0], [6.0, 6.0]], [1.0, 0.5])
    x, z = gp.datasets.simulate(truth, 2000, seed=1, covariance_type="spherical")
    assert x.shape == (2000, 2) and set(np.unique(z)) == {0, 1}
    assert abs(np.mean(z == 0) - 0.7) < 0.04
    np.testing.assert_allclose(x[z == 1].mean(axis=0), [6, 6], atol=0.1)
    np.testing.assert_allclose(x[z == 1].var(axis=0), [0.5, 0.5], rtol=0.15)
    x2, _ = gp.datasets.simulate(truth, 2000, seed=1, covariance_type="spherical")
    np.testing.assert_array_equal(x, x2)


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "gmm_ppl", "datasets", "list"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "old_faithful" in result.stdout and "diabetes" in result.stdout


def test_the_comparison_stage_names_the_runs_own_fit_and_what_methods_add():
    spec = cards.load_card(MODELS / "old_faithful.toml")  # maximum likelihood
    assert pipeline.comparison_words(spec) == "comparison: ML-EM, MAP-EM beside the posterior, PSIS-LOO"
    only = dataclasses.replace(spec, methods=("nuts",))
    assert pipeline.comparison_words(only) == "comparison: ML-EM beside the posterior, PSIS-LOO"
    map_run = dataclasses.replace(spec, model=dataclasses.replace(spec.model, prior="default"), methods=("vb",))
    assert pipeline.comparison_words(map_run) == "comparison: MAP-EM, variational Bayes beside the posterior, PSIS-LOO"


@pytest.mark.slow
def test_a_run_on_a_posterior_with_two_modes_draws_each(tmp_path):
    """Mirror-symmetric data (two equal clusters of two lobes each), K=3: the third component
    splits one cluster or the other, two modes of equal weight by symmetry. The results folder
    gets modes.png, linked from the report, with one panel per mode: in each, two of the three
    ellipses lie on one side of the origin, and on opposite sides in the two panels."""
    rng = np.random.default_rng(1)
    half = np.concatenate([rng.normal(size=(60, 2)) * 0.5 + [2.0, 1.5], rng.normal(size=(60, 2)) * 0.5 + [4.0, 0.5]])
    path = tmp_path / "mirror.csv"
    pd.DataFrame(np.concatenate([half, -half]), columns=["a", "b"]).to_csv(path, index=False)
    spec = cards.RunSpec(
        name="mirror",
        description="two mirror-image clusters of two lobes, K=3",
        data=cards.DataSpec(path=path),
        model=cards.ModelSpec(n_components=3),
        em=cards.EMSpec(n_init=10),
        mcmc=cards.MCMCSpec(enabled=True, num_warmup=100, num_samples=100, num_chains=2),
        compare=False,
    )
    outcome = pipeline.run(spec, out=tmp_path / "run", quiet=True)
    assert "![each mode's MAP-EM fit: 2-sd ellipses](modes.png)" in (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "modes.png").stat().st_size > 0
    from gmm_ppl.app.report import modes_figure

    axes = modes_figure(outcome).axes
    assert len(axes) == 2
    sides = []
    for ax in axes:
        centres = np.array([patch.center for patch in ax.patches])
        assert centres.shape == (3, 2)
        # Which cluster holds two components: the sign of the side (a + b) two centres share.
        side = np.sign(centres.sum(axis=1))
        sides.append(1 if (side > 0).sum() == 2 else -1)
        weight = float(ax.get_title().split("Laplace weight ")[1].split(",")[0])
        assert abs(weight - 0.5) <= 0.05, ax.get_title()  # equal by symmetry
        # The panel draws the mode its title names: that mode's MAP-EM means, in the table's row.
        m = int(ax.get_title().split("mode ")[1].split(":")[0])
        np.testing.assert_allclose(centres, outcome.modes_found.params[m].means[:, :2])
        assert weight == pytest.approx(outcome.modes.laplace_weight.iloc[m], abs=0.005)
    assert sorted(sides) == [-1, 1]
