"""The on-disk cache of compiled programs: where it goes, and that a new process reuses
what an earlier one compiled, with the same results."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gmm_ppl as gp
from gmm_ppl.compilation_cache import ENV_VAR, default_cache_dir

# Fits Old Faithful in a fresh process and reports how many programs came from the cache.
FIT_SCRIPT = """
import json, sys, jax
import gmm_ppl as gp
sys.path.insert(0, {tests!r})
from test_reproducibility import fit_digest
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
folder = gp.enable_compilation_cache()
fit = gp.fit_em(gp.datasets.load("old_faithful"), 2, n_init=10, key=0)
print(json.dumps({{"folder": str(folder), "hits": len(hits), "fit": fit_digest(fit)}}))
"""


def _child_env(folder) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env[ENV_VAR] = str(folder)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.setenv(ENV_VAR, "")
    assert default_cache_dir() is None
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gmm_ppl" / "jax"


def test_a_folder_jax_already_uses_is_kept(tmp_path):
    # In a process of its own: the suite's processes keep the cache off.
    script = (
        "import jax, gmm_ppl as gp, sys\n"
        f"jax.config.update('jax_compilation_cache_dir', {str(tmp_path / 'jax')!r})\n"
        f"print(gp.enable_compilation_cache({str(tmp_path / 'other')!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=_child_env(""), capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "jax")
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_second_process_loads_the_fit_from_the_cache_and_gets_the_same_fit(tmp_path):
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", FIT_SCRIPT.format(tests=str(Path(__file__).resolve().parent))],
            env=_child_env(tmp_path),
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["folder"] == second["folder"] == str(tmp_path)
    assert first["hits"] == 0
    assert any(tmp_path.iterdir())
    assert second["hits"] >= 1  # fit_em's program, at least, was not compiled again
    assert second["fit"] == first["fit"]  # every parameter, the trace and the objectives, bit for bit


@pytest.mark.slow
def test_the_command_line_uses_the_cache_only_when_told_to(tmp_path):
    csv = tmp_path / "faithful.csv"
    gp.datasets.export("old_faithful", csv)
    folder = tmp_path / "cache"

    def fit(env_value, out):
        env = dict(_child_env(folder), XDG_CACHE_HOME=str(tmp_path / "xdg"))
        if env_value is None:
            del env[ENV_VAR]
        else:
            env[ENV_VAR] = env_value
        cmd = [sys.executable, "-m", "gmm_ppl", "fit", str(csv), "-k", "2", "--quiet", "--out", str(out)]
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)

    fit(None, tmp_path / "unset")
    fit("", tmp_path / "empty")
    assert not folder.exists() and not (tmp_path / "xdg" / "gmm_ppl").exists()
    fit(str(folder), tmp_path / "on")
    assert any(folder.iterdir())
