"""EM time per iteration against the E-step's chunk size, to check the default of a platform
(``stats.CHUNK_ELEMENTS`` on a CPU; on a GPU or TPU ``stats.accelerator_chunk_elements``, from
a memory budget: 2^24 numbers at issue 5's workloads by default).
Run by hand, on the platform to check (``benchmarks/gpu_check.sh`` runs it on a GPU):

    python benchmarks/chunks.py                    # W2 and W3: the default, 2^20 ... 2^26
    python benchmarks/chunks.py W1 0 18 20         # one workload: the default, 2^18 and 2^20

For each workload and size, a process of its own times ``fit_em`` (float32, the workload's
data and start from ``em.py``) with chunks of that many numbers in their (K, D, rows) array,
as the time of one more iteration: (a fit of LONGER times the iterations - a fit of the
workload's) / the extra iterations, so that the fixed costs of a call (checking x, copying it
to the device) drop out. Each fit is timed after its compilation, the median of REPEATS.
Prints a table; on a GPU or TPU with the device's peak memory, which is why each size runs in
a fresh process (JAX's peak counts the whole process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from em import (  # noqa: E402
    REPEATS,
    WORKLOADS,
    median_seconds,
    ms_per_extra_iteration,
    on_the_device,
    run_gmm_ppl,
    workload_data,
)


def ms_per_iteration(name: str, log2_elements: int) -> tuple[float, int]:
    """ms per extra iteration and rows per chunk; ``log2_elements`` 0: the platform's default."""
    from gmm_ppl.stats import default_chunk_size

    w = WORKLOADS[name]
    x, *start = workload_data(w, np.dtype("float32"))
    data = (on_the_device(x), *start)
    elements = 2**log2_elements if log2_elements else None
    chunk = default_chunk_size(w["N"], w["K"], w["D"], elements=elements)
    w = {**w, "chunk_size": chunk}
    fit = run_gmm_ppl(*data, w, "float32")[0]
    fit()  # compiles
    return ms_per_extra_iteration(data, w, "float32", median_seconds(fit, REPEATS)[0]), chunk


def one(name: str, log2_elements: int) -> None:
    """Run in a process of its own: print one JSON row."""
    import jax

    ms, chunk = ms_per_iteration(name, log2_elements)
    device = jax.devices()[0]
    peak = (device.memory_stats() or {}).get("peak_bytes_in_use")
    row = {"ms": ms, "chunk": chunk, "peak_mb": None if peak is None else peak / 2**20}
    row["device"] = f"{device.platform} ({device.device_kind})"
    print(json.dumps(row))


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--one"]:
        return one(args[1], int(args[2]))
    names = [a for a in args if a in WORKLOADS] or ["W2", "W3"]
    sizes = [int(a) for a in args if a.isdigit()] or [0, 20, 22, 24, 26]  # 0: the default
    print("# ms per extra iteration against chunk size, float32")
    print("| workload | numbers per chunk | rows per chunk | ms / iteration | device peak (MB) | device |")
    print("|---|---|---|---|---|---|")
    for name in names:
        for log2 in sizes:
            start = time.perf_counter()
            command = [sys.executable, __file__, "--one", name, str(log2)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            label = "default" if log2 == 0 else f"2^{log2}"
            peak = "" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
            seconds = time.perf_counter() - start
            cells = [name, label, str(row["chunk"]), f"{row['ms']:.2f}", peak, row["device"]]
            print(f"| {' | '.join(cells)} |  ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
