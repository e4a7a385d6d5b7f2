"""Where one E-step's time goes, kernel by kernel. Run by hand:

    .venv/bin/python benchmarks/kernels.py            # W2 and W3; writes results/kernels.md
    .venv/bin/python benchmarks/kernels.py W4         # other workloads of em.py

For each workload (float32, em.py's data and starting parameters) one jitted
``sufficient_statistics`` pass is timed as it is, the median of REPEATS, and then PROFILED
more passes run under JAX's profiler with XLA:CPU's per-kernel trace events on
(``--xla_cpu_enable_xprof_traceme``, set here before JAX starts). Each kernel's time is summed
over its calls and divided by the passes. A kernel's name is XLA's (``ynn_fusion.6``); the table
gives the first operation's source name from the optimised HLO beside it, and the HLO itself
can be dumped with ``XLA_FLAGS=--xla_dump_to=DIR`` to read what a fusion holds.

The profiler adds its own cost to every kernel call (W2's and W3's passes took 5-10% longer
traced), so the shares are the guide more than the absolute times. Run it on an idle machine.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import describe  # noqa: E402
from em import WORKLOADS, workload_data  # noqa: E402

from gmm_ppl import covariance, stats  # noqa: E402
from gmm_ppl.params import GMMParams  # noqa: E402

RESULTS = HERE / "results" / "kernels.md"
REPEATS = 9
PROFILED = 3
SHOWN = 25  # kernels listed per workload, the slowest first
# Events of the runtime around the kernels, not kernels themselves.
RUNTIME_EVENTS = ("ThunkExecutor", "SlinkyThreadPool", "$", "while")


def e_step(name: str):
    """The jitted E-step of a workload and its arguments, as ``fit_em`` would chunk them."""
    w = WORKLOADS[name]
    x, weights, means, covariances = workload_data(w, np.float32)
    N, D, K = x.shape[0], w["D"], w["K"]
    centre = x.mean(axis=0)  # fit_em centres the data first
    data = stats.to_chunks(jnp.asarray(x - centre), jnp.ones(N, jnp.float32), stats.default_chunk_size(N, K, D))
    params = GMMParams(*(jnp.asarray(a, jnp.float32) for a in (weights, means - centre, covariances)))
    cov_type = covariance.get(w["covariance_type"])
    return jax.jit(lambda d, p: stats.sufficient_statistics(d, p, cov_type)), (data, params)


def source_names(fn, args) -> dict[str, str]:
    """Kernel name -> the source operation XLA's metadata gives for it."""
    text = fn.lower(*args).compile().as_text()
    names = {}
    for line in text.splitlines():
        line = line.strip()
        if " = " in line and "op_name=" in line:
            kernel = line.split(" = ", 1)[0].lstrip("%")
            op = line.split('op_name="', 1)[1].split('"', 1)[0]
            names[kernel] = op.split("/")[-1]
    return names


def profile(name: str) -> list[str]:
    fn, args = e_step(name)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(PROFILED):
                jax.block_until_ready(fn(*args))
            traced = (time.perf_counter() - start) / PROFILED
        trace = next(Path(folder).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace))["traceEvents"]
    total, calls = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("ph") == "X" and not event["name"].startswith(RUNTIME_EVENTS):
            total[event["name"]] += event.get("dur", 0) / 1e3 / PROFILED  # ms per pass
            calls[event["name"]] += 1
    kernels_ms = sum(total.values())
    names = source_names(fn, args)
    w = WORKLOADS[name]
    lines = [
        f"## {name}: N={w['N']:,}, D={w['D']}, K={w['K']}, {w['covariance_type']}",
        "",
        f"One E-step: {1e3 * np.median(times):.0f} ms (median of {REPEATS}); {1e3 * traced:.0f} ms traced. "
        f"Its {len(total)} kernels ran for {kernels_ms:.0f} ms in all (on several threads at once, so "
        "this can exceed the pass).",
        "",
        "| kernel | source operation | ms per pass | share of kernel time | calls per pass |",
        "|---|---|---|---|---|",
    ]
    for kernel, ms in total.most_common(SHOWN):
        lines.append(
            f"| {kernel} | {names.get(kernel, '')} | {ms:.1f} | {100 * ms / kernels_ms:.0f}% | "
            f"{calls[kernel] // PROFILED} |"
        )
    return lines


def main() -> None:
    chosen = sys.argv[1:] or ["W2", "W3"]
    lines = ["# One E-step, kernel by kernel (XLA:CPU trace events)", "", describe(), ""]
    for name in chosen:
        lines += profile(name) + [""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
