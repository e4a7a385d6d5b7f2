"""Peak memory of EM on data larger than one chunk: in memory (``fit_em``) and streamed from
a ``.npy`` file (``fit_em_blocks``). Run by hand:

    .venv/bin/python benchmarks/memory.py      # writes benchmarks/results/memory.md (about 2 minutes)

Each case runs in its own fresh process. It imports JAX and gmm_ppl, notes the resident
memory (the baseline), makes or opens the data, then runs EM: D=8, K=16, full covariances,
float32, a fixed start and 3 iterations (tol=0). Memory is read from /proc/self/status:
VmHWM, the kernel's peak resident set, and RssAnon, the process's own (anonymous) memory,
sampled every 2 ms by a thread for its peak. A memory-mapped file's pages count in VmHWM
while mapped, but they are the kernel's page cache, dropped under pressure; RssAnon is what
the process holds. Every number is megabytes above the baseline.

What the E-step would hold if it were not chunked: one (N, K, D) float32 array, N*K*D*4
bytes (the "N*K*D" column). ``fit_em`` folds over chunks of at most ``stats.CHUNK_ELEMENTS``
elements of (rows, K, D), so its peak should follow the data (a few copies of (N, D): the
caller's array, the centred copy, the chunked copy), not N*K*D. ``fit_em_blocks`` holds one
block (``block_rows`` rows) at a time, so its own memory should not grow with the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "memory.md"
D, K, N_ITER = 8, 16, 3
IN_MEMORY_ROWS = (100_000, 1_000_000, 4_000_000)
FILE_ROWS = (1_000_000, 4_000_000)
BLOCK_ROWS = 100_000
MB = 2**20


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class AnonPeak:
    """The largest RssAnon seen by a thread polling /proc/self/status every 2 ms."""

    def __init__(self):
        self.peak = status_kb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb("RssAnon"))
            time.sleep(0.002)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kb("RssAnon"))
        return self.peak


def make_rows(n_rows: int, out=None, seed: int = 0) -> np.ndarray:
    """(n_rows, D) float32 rows of a K-component mixture, written block by block into ``out``
    (an array or a memory map) so that making them needs no temporary of their size."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(K, D)).astype(np.float32)
    out = np.empty((n_rows, D), np.float32) if out is None else out
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n_rows)
        z = rng.integers(K, size=stop - start)
        out[start:stop] = centres[z] + rng.standard_normal((stop - start, D), dtype=np.float32)
    return out


def start_params():
    import gmm_ppl as gp

    rng = np.random.default_rng(1)
    return gp.GMMParams(np.full(K, 1.0 / K), rng.normal(scale=4.0, size=(K, D)), np.broadcast_to(np.eye(D), (K, D, D)))


def reset_hwm():
    """Reset VmHWM to the current resident set (Linux: 5 > /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def case(kind: str, n_rows: int, path: str | None) -> dict:
    """One measurement, in this (fresh) process: the data, then EM twice. The first call
    compiles (XLA's compiler takes memory of its own); the second shows what EM itself holds."""
    import jax

    import gmm_ppl as gp

    jax.numpy.zeros(1).block_until_ready()  # the runtime's own memory belongs to the baseline
    baseline_hwm, baseline_anon = status_kb("VmHWM"), status_kb("RssAnon")
    anon = AnonPeak()
    options = {"covariance_type": "full", "init_params": start_params(), "max_iter": N_ITER, "tol": 0.0}
    x = make_rows(n_rows) if kind == "fit_em" else None
    data_kb = status_kb("RssAnon") - baseline_anon

    def fit():
        if kind == "fit_em":
            return gp.fit_em(x, K, dtype="float32", **options)
        return gp.fit_em_blocks(gp.npy_blocks(path, BLOCK_ROWS), K, dtype="float32", **options)

    began = time.perf_counter()
    fit()
    first_seconds = time.perf_counter() - began
    first = {"hwm": status_kb("VmHWM") - baseline_hwm, "anon": anon.stop() - baseline_anon}
    reset_hwm()
    before_hwm, before_anon = status_kb("VmHWM"), status_kb("RssAnon")
    anon = AnonPeak()
    began = time.perf_counter()
    result = fit()
    seconds = time.perf_counter() - began
    second = {"hwm": status_kb("VmHWM") - before_hwm, "anon": anon.stop() - before_anon}
    return {
        "kind": kind,
        "n_rows": n_rows,
        "data_mb": n_rows * D * 4 / MB,
        "data_rss_mb": data_kb / 1024,
        "n_k_d_mb": n_rows * K * D * 4 / MB,
        "first_anon_mb": first["anon"] / 1024,
        "first_hwm_mb": first["hwm"] / 1024,
        "first_seconds": first_seconds,
        "anon_mb": second["anon"] / 1024,
        "hwm_mb": second["hwm"] / 1024,
        "seconds": seconds,
        "log_likelihood": float(result.log_likelihood),
        "n_iter": int(result.n_iter),
    }


def child(kind: str, n_rows: int, path: str | None = None) -> dict:
    argv = [sys.executable, __file__, "--case", json.dumps([kind, n_rows, path])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    header = (
        "| rows N | data N x D x 4 B | N*K*D x 4 B | first call: peak RssAnon (VmHWM) above imports "
        "| compiled call: peak RssAnon (VmHWM) above what it started with | compiled call (s) |\n"
        "|---:|---:|---:|---:|---:|---:|"
    )
    lines = [
        f"| {r['n_rows']:,} | {r['data_mb']:.0f} MB | {r['n_k_d_mb']:.0f} MB "
        f"| {r['first_anon_mb']:.0f} MB ({r['first_hwm_mb']:.0f} MB) | {r['anon_mb']:.0f} MB ({r['hwm_mb']:.0f} MB) "
        f"| {r['seconds']:.1f} |"
        for r in rows
    ]
    return "\n".join([header, *lines])


def main():
    sys.path.insert(0, str(HERE))
    import numpy.lib.format as npy_format
    from _machine import describe

    in_memory = []
    for n in IN_MEMORY_ROWS:
        in_memory.append(child("fit_em", n))
        print(in_memory[-1], flush=True)
    streamed = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in FILE_ROWS:
            path = str(Path(tmp) / f"rows_{n}.npy")
            mm = npy_format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
            make_rows(n, mm)
            mm.flush()
            del mm
            streamed.append(child("fit_em_blocks", n, path))
            print(streamed[-1], flush=True)
            Path(path).unlink()
    text = f"""# Peak memory of EM on data larger than a chunk

{describe()}

Produced by `benchmarks/memory.py` (its docstring says how memory is measured). D={D}, K={K},
full covariances, float32, {N_ITER} EM iterations from a fixed start; each case in a fresh
process; megabytes above the process's resident memory after importing JAX and gmm_ppl.

## `fit_em`, data in memory

{table(in_memory)}

The first call includes XLA's compilation, whose memory does not grow with N. A compiled call
holds about {np.median([r["anon_mb"] / r["data_mb"] for r in in_memory[1:]]):.1f} times the (N, D) data on
top of the caller's array (N >= 1e6; the centred and chunked copies EM works on), while one
(N, K, D) intermediate alone would be K = {K} times the data ({in_memory[-1]["n_k_d_mb"]:.0f} MB at
N={in_memory[-1]["n_rows"]:,}). Memory grows with N, as the data must, and not with N*K*D.

## `fit_em_blocks`, a `.npy` file read by `npy_blocks` ({BLOCK_ROWS:,} rows a block)

{table(streamed)}

The process's own memory (RssAnon) stays at the size of a block and its chunk intermediates
whatever the file's size. VmHWM also counts the file's pages while the memory map is open;
those are the kernel's page cache, reclaimed under memory pressure, so a file larger than
memory streams.
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(case(*json.loads(sys.argv[2]))))
    else:
        main()
