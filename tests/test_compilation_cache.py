"""The on-disk cache of compiled programs (``gmm_ppl.compilation_cache``): where it goes, that
a later process loads what an earlier one compiled and gets the same results bit for bit,
and that it survives what a shared folder meets: writers at once, entries cut short or
corrupt, a folder it cannot write, a size bound."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gmm_ppl as gp
from gmm_ppl import compilation_cache, em, programs
from gmm_ppl.compilation_cache import ENV_VAR, MAX_MB_VAR, Store, default_cache_dir

TESTS = str(Path(__file__).resolve().parent)

# Fits in a fresh process; reports the fits' digests and how fit_em's program was obtained.
FIT_SCRIPT = """
import json, sys
import numpy as np
import gmm_ppl as gp
from gmm_ppl import programs
sys.path.insert(0, {tests!r})
from test_reproducibility import fit_digest
x = gp.datasets.load("old_faithful")
digests = [fit_digest(gp.fit_em(x, k, n_init=3, key=k, covariance_type=c)) for k, c in {models!r}]
builds = programs.PROGRAMS["fit_em"][0]
print(json.dumps({{
    "digests": digests,
    "compiles": builds.quick.compiles + builds.optimised.compiles,
    "loads": builds.quick.loads + builds.optimised.loads,
}}))
"""
MODELS = [(2, "full"), (3, "diag")]


def _run_fits(folder, models=MODELS, env=None, **popen):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    env[ENV_VAR] = str(folder)
    cmd = [sys.executable, "-c", FIT_SCRIPT.format(tests=TESTS, models=models)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _result(process) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def own_store(tmp_path):
    """This process's programs kept in a folder of the test's own, and none held in memory;
    the suite's store is back afterwards."""
    before = compilation_cache.store()
    programs.forget_all()
    yield compilation_cache.enable_compilation_cache(tmp_path / "programs")
    compilation_cache._store = before
    programs.forget_all()


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.setenv(ENV_VAR, "")
    assert default_cache_dir() is None  # set empty: off
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gmm_ppl" / "programs"


def test_an_entry_comes_back_whole_or_not_at_all(tmp_path):
    store = Store(tmp_path)
    store.save("key one", b"program one")
    assert store.load("key one") == b"program one"
    assert store.load("key two") is None
    (path,) = store.entries()
    path.write_bytes(path.read_bytes()[:-3])  # cut short
    assert store.load("key one") is None
    assert store.entries() == []  # and deleted, to be written again
    store.save("key one", b"program one")
    (path,) = store.entries()
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1  # one bit flipped
    path.write_bytes(bytes(blob))
    assert store.load("key one") is None


def test_a_folder_that_cannot_be_written_is_warned_about_once(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    store = Store(blocker / "programs")
    with pytest.warns(RuntimeWarning, match="not being saved") as caught:
        store.save("a", b"1")
        store.save("b", b"2")
    assert len(caught) == 1
    assert store.load("a") is None  # and the process goes on without it


def test_a_full_disk_is_warned_about_once_and_leaves_no_partial_file(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.save("kept", b"1")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compilation_cache.os, "replace", full)
    with pytest.warns(RuntimeWarning, match="No space left on device"):
        store.save("new", b"2")
    store.save("newer", b"3")  # no second warning: saving is off for the process
    assert [p.name for p in tmp_path.iterdir()] == [store._path("kept").name]  # no temporary file left
    assert store.load("kept") == b"1"


def test_the_folder_is_bounded_and_keeps_what_was_used_last(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_MB_VAR, str(10_000 / 2**20))  # 10,000 bytes
    store = Store(tmp_path)
    for i in range(4):
        store.save(f"old {i}", bytes(2000))
        os.utime(store._path(f"old {i}"), (1e9 + i, 1e9 + i))  # used long ago, in this order
    assert store.load("old 0") == bytes(2000)  # used now: the newest
    store.save("new", bytes(3000))  # 11,000 bytes and more: evict down to 7,500
    kept = {p.name for p in store.entries()}
    assert kept == {store._path(k).name for k in ("old 0", "old 3", "new")}
    assert sum(p.stat().st_size for p in store.entries()) <= 10_000


def test_a_program_is_loaded_not_compiled_and_gives_the_same_result(own_store, tmp_path):
    x = gp.datasets.load("old_faithful")
    builds = em._fit_program
    compiles = builds.quick.compiles
    first = gp.fit_em(x, 2, n_init=3, key=1)
    assert builds.quick.compiles == compiles + 1
    assert len(list(own_store.iterdir())) >= 1
    programs.forget_all()  # as a new process: nothing held in memory
    loads = builds.quick.loads
    again = gp.fit_em(x, 2, n_init=3, key=1)
    assert builds.quick.compiles == compiles + 1 and builds.quick.loads == loads + 1
    for a, b in zip((*first.params, first.trace), (*again.params, again.trace), strict=True):
        np.testing.assert_array_equal(a, b)
    # Every entry cut short: the program is compiled again, with the same result.
    for path in own_store.iterdir():
        path.write_bytes(path.read_bytes()[:1000])
    programs.forget_all()
    third = gp.fit_em(x, 2, n_init=3, key=1)
    assert builds.quick.compiles == compiles + 2
    np.testing.assert_array_equal(third.params.means, first.params.means)


def test_a_host_with_several_devices_loads_a_program_onto_the_one_it_runs_on(tmp_path):
    """With two devices (a machine with two GPUs; here two CPU devices), a loaded program ran
    on both and asked for two shards of every argument: the second process failed. Now it
    loads onto the default device and fits as the first process did."""
    two = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    first = _result(_run_fits(tmp_path, [(2, "full")], env=two))
    second = _result(_run_fits(tmp_path, [(2, "full")], env=two))
    assert (first["compiles"], first["loads"]) == (1, 0) and (second["compiles"], second["loads"]) == (0, 1)
    assert second["digests"] == first["digests"]


def test_with_the_cache_off_nothing_is_written(tmp_path):
    before = compilation_cache.store()
    try:
        compilation_cache.disable_compilation_cache()
        programs.forget_all()
        gp.fit_em(gp.datasets.load("old_faithful"), 2, n_init=3, key=5)
        assert compilation_cache.store().folder is None
    finally:
        compilation_cache._store = before
    env = dict(os.environ, JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env[ENV_VAR] = ""
    code = "import gmm_ppl as gp; gp.fit_em(gp.datasets.load('old_faithful'), 2)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert not (tmp_path / "xdg" / "gmm_ppl").exists()


@pytest.mark.slow
def test_soak_processes_writing_and_reading_one_folder_at_once(tmp_path):
    """Rounds of three processes at once on one folder, each fitting the same models: in the
    first all compile and write the same entries at once; in the second every entry has been
    cut in half, and all compile again; in the third all load. Every process ends cleanly
    with the fits of a process without the cache, bit for bit. EVV's M-step calls LAPACK,
    which a loaded program needs set up (programs._deserialize)."""
    models = [(2, "full"), (3, "EVV")]
    reference = _result(_run_fits("", models))["digests"]  # no cache
    rounds = []
    for round_ in range(3):
        if round_ == 1:
            for path in Path(tmp_path).iterdir():
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        runs = [_result(p) for p in [_run_fits(tmp_path, models) for _ in range(3)]]
        assert all(r["digests"] == reference for r in runs)
        rounds.append([(r["compiles"], r["loads"]) for r in runs])
    assert rounds[1] == [(len(models), 0)] * 3  # nothing cut short was loaded
    assert rounds[2] == [(0, len(models))] * 3  # and the mended entries were
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".tmp-")]
    print("soak rounds (compiles, loads) per process:", rounds)


def test_only_a_program_that_calls_outside_xla_sets_lapack_up_when_loaded():
    """A loaded program that calls LAPACK needs its kernels set up first, or it dies (the soak
    test above loads EVV's, whose M-step takes eigendecompositions); one that calls nothing
    outside XLA's kernels is loaded without (0.1 s of a warm process). Which is which is read
    from the compiled program's text when it is saved: here against what each program is
    known to do, EVV's eigh on the CPU and a full-covariance fit on 2 features (Cholesky
    unrolled in XLA's own operations up to 4 features)."""
    x = gp.datasets.load("old_faithful")
    for code, calls_lapack in (("full", False), ("EVV", True)):
        programs.forget_all()
        gp.fit_em(x, 3, covariance_type=code, key=0, n_init=2)
        (executable,) = [
            e for build in (em._fit_program.quick, em._fit_program.optimised) for e in build._executables.values()
        ]
        assert programs._calls_out(executable) == calls_lapack, code
        assert ('custom_call_target="lapack' in executable.as_text()) == calls_lapack, code


@pytest.mark.slow
def test_the_command_line_uses_the_cache_unless_turned_off(tmp_path):
    csv = tmp_path / "faithful.csv"
    gp.datasets.export("old_faithful", csv)

    def fit(env_value, out):
        env = dict(os.environ, JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "xdg"))
        env.pop(ENV_VAR, None)
        if env_value is not None:
            env[ENV_VAR] = env_value
        cmd = [sys.executable, "-m", "gmm_ppl", "fit", str(csv), "-k", "2", "--quiet", "--out", str(out)]
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)

    fit("", tmp_path / "off")
    assert not (tmp_path / "xdg" / "gmm_ppl").exists()  # (matplotlib keeps its own cache there)
    fit(None, tmp_path / "default")
    assert any((tmp_path / "xdg" / "gmm_ppl" / "programs").iterdir())


POSTERIOR_SCRIPT = """
import json, sys
import gmm_ppl as gp
from gmm_ppl import posterior
sys.path.insert(0, {tests!r})
from test_reproducibility import draws_digest
x = gp.datasets.load("old_faithful")
fit = gp.fit_em(x, 2, n_init=3, key=0)
idata = gp.sample_posterior(x, 2, key=1, reference=fit, num_warmup=50, num_samples=50, num_chains=2)
segment = posterior._nuts_segment
print(json.dumps({{"digest": draws_digest(idata), "compiles": segment.compiles, "loads": segment.loads}}))
"""


@pytest.mark.slow
def test_a_second_process_loads_the_sampler_and_draws_the_same(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env[ENV_VAR] = str(tmp_path)
    script = POSTERIOR_SCRIPT.format(tests=TESTS)
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            ).stdout.splitlines()[-1]
        )
        for _ in range(2)
    ]
    assert (runs[0]["compiles"], runs[0]["loads"]) == (1, 0)
    assert (runs[1]["compiles"], runs[1]["loads"]) == (0, 1)
    assert runs[1]["digest"] == runs[0]["digest"]  # every draw, bit for bit
