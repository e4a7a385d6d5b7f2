"""EM time per iteration against the E-step's chunk size, to check the default of a platform
(``stats.CHUNK_ELEMENTS`` on a CPU, ``stats.ACCELERATOR_CHUNK_ELEMENTS`` on a GPU or TPU).
Run by hand, on the platform to check (``benchmarks/gpu_check.sh`` runs it on a GPU):

    python benchmarks/chunks.py                    # W2 and W3 at 2^20 ... 2^26 numbers a chunk
    python benchmarks/chunks.py W1 18 20           # one workload, chunks of 2^18 and 2^20

For each size, one process times ``fit_em`` (float32, the workload's data and start from
``em.py``) with chunks of that many numbers in their (K, D, rows) array, as the time of one
more iteration: (a fit of LONGER times the iterations - a fit of the workload's) / the extra
iterations, so that the fixed costs of a call (checking x, copying it to the device) drop
out. Each fit is timed after its compilation, the median of REPEATS. Prints a table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from em import REPEATS, WORKLOADS, median_seconds, ms_per_extra_iteration, run_gmm_ppl, workload_data  # noqa: E402


def ms_per_iteration(name: str, log2_elements: int) -> tuple[float, int]:
    """ms per extra iteration and rows per chunk; ``log2_elements`` 0: the platform's default."""
    from gmm_ppl.stats import default_chunk_size

    w = WORKLOADS[name]
    data = workload_data(w, np.dtype("float32"))
    elements = 2**log2_elements if log2_elements else None
    chunk = default_chunk_size(w["N"], w["K"], w["D"], elements=elements)
    w = {**w, "chunk_size": chunk}
    fit = run_gmm_ppl(*data, w, "float32")[0]
    fit()  # compiles
    return ms_per_extra_iteration(data, w, "float32", median_seconds(fit, REPEATS)[0]), chunk


def main() -> None:
    import jax

    args = sys.argv[1:]
    names = [a for a in args if a in WORKLOADS] or ["W2", "W3"]
    sizes = [int(a) for a in args if a.isdigit()] or [20, 22, 24, 26]
    device = jax.devices()[0]
    print(f"# ms per extra iteration against chunk size, float32, on {device.platform} ({device.device_kind})")
    print("| workload | numbers per chunk | rows per chunk | ms / iteration |")
    print("|---|---|---|---|")
    for name in names:
        for log2 in [0, *sizes]:
            start = time.perf_counter()
            ms, chunk = ms_per_iteration(name, log2)
            label = "default" if log2 == 0 else f"2^{log2}"
            print(f"| {name} | {label} | {chunk} | {ms:.2f} |  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
