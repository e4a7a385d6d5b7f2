"""Where NUTS runs best: ``sample_posterior`` on Old Faithful (K=2, 4 chains of 1000 + 1000,
one reference, no progress bar) with a GPU present, against the same call with only the CPU
(``JAX_PLATFORMS=cpu``). Issue 35's target: with a GPU present, no slower than the CPU alone.
Run by hand on a machine with a GPU (after ``benchmarks/gpu_check.sh``, in a call of its own:
about 15 s for each of the first two rows and 90 s for the GPU row on an H200 in 2026-11):

    python benchmarks/placement.py          # writes benchmarks/results/placement_gpu.md

Each row is a fresh process with its own empty compiled-program cache: the first call pays
compiling, the second does not. ``device='auto'`` (the default) takes the CPU for a problem
this small (``gmm_ppl.sampling.nuts_device``); ``device='default'`` keeps JAX's default
device, the GPU, to show what the rule avoids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "placement_gpu.md"
# (row name, JAX_PLATFORMS, sample_posterior's device)
ROWS = [
    ("GPU present, device='auto'", None, "auto"),
    ("CPU only (JAX_PLATFORMS=cpu)", "cpu", "auto"),
    ("GPU present, device='default' (the GPU)", None, "default"),
]


def one(device: str) -> dict:
    """Runs in a child process: two calls, timed."""
    import time

    import jax

    import gmm_ppl as gp
    from gmm_ppl.sampling import nuts_device

    x = gp.datasets.load("old_faithful")
    times = []
    for _ in range(2):
        start = time.perf_counter()
        gp.sample_posterior(x, 2, key=0, modes=1, progress=False, device=device)
        times.append(time.perf_counter() - start)
    return {
        "backend": jax.default_backend(),
        # What the rule chose; the arrays' device is not kept in the InferenceData.
        "device_chosen": str(nuts_device(device, x.shape[0], 2, x.shape[1]) or jax.devices()[0]),
        "first_s": times[0],
        "second_s": times[1],
    }


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _machine import describe

    rows = []
    for name, platforms, device in ROWS:
        env = dict(os.environ, GMM_PPL_CACHE_DIR=tempfile.mkdtemp())
        if platforms:
            env["JAX_PLATFORMS"] = platforms
        done = subprocess.run(
            [sys.executable, __file__, "--one", device], env=env, capture_output=True, text=True, timeout=200
        )
        if done.returncode:
            rows.append({"name": name, "error": done.stderr.strip().splitlines()[-1:]})
        else:
            rows.append({"name": name, **json.loads(done.stdout.strip().splitlines()[-1])})
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "# NUTS placement: Old Faithful, K=2, 4 x (1000 + 1000), with a GPU present and without",
        "",
        describe(device="see rows"),
        "",
        "| run | device the rule chose | first call (s) | second call (s) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | |")
        else:
            lines.append(f"| {r['name']} | {r['device_chosen']} | {r['first_s']:.1f} | {r['second_s']:.1f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(sys.argv[2])))
    else:
        main()
