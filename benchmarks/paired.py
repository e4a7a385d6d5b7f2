"""EM's time per iteration, this tree against an earlier commit, in one process. Run by hand:

    .venv/bin/python benchmarks/paired.py 431f47a                 # W4: 1e6 x 64, K=8, diag
    .venv/bin/python benchmarks/paired.py 431f47a --rows 1e6 --features 8 --components 16 --covariance full

Why one process: this 2-core machine's speed drifts by 20-30% from minute to minute, more
than a change worth catching, so timings taken in separate processes minutes apart could not
tell a 5-10% difference (issue 27). Here the earlier commit's gmm_ppl is exported with
``git archive`` into a temporary folder and imported under another name (``gmm_base``), and
the two fit the same data alternately, in the same minutes. A fit's time per iteration is the
slope between a 1-iteration and an (1 + steps)-iteration fit (``tol=0``, the same given means),
so a call's fixed costs (checks, transfers, the first and last passes) cancel. It prints each
pair's ratio and their median, and appends them, with the machine, to
``benchmarks/results/paired.md``; the results are timings, never asserted by a test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "paired.md"


def import_commit(commit: str, folder: Path):
    """gmm_ppl as it was at ``commit``, imported as the package ``gmm_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "gmm_ppl"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / "gmm_ppl").rename(folder / "gmm_base")
    for path in (folder / "gmm_base").rglob("*.py"):
        path.write_text(re.sub(r"\bgmm_ppl\b", "gmm_base", path.read_text()))
    sys.path.insert(0, str(folder))
    import gmm_base

    return gmm_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier commit to compare with (e.g. 431f47a)")
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--covariance", default="diag")
    parser.add_argument("--steps", type=int, default=10, help="iterations between the two fits of a pair")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import gmm_ppl

    with tempfile.TemporaryDirectory() as folder:
        gmm_base = import_commit(args.commit, Path(folder))
        N, D, K = int(args.rows), args.features, args.components
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(K, D)) * 3
        x = (centres[rng.integers(K, size=N)] + rng.normal(size=(N, D))).astype(np.float32)
        fits = {"earlier": gmm_base.fit_em, "this tree": gmm_ppl.fit_em}

        def seconds(name: str, n_iter: int) -> float:
            start = time.perf_counter()
            fits[name](x, K, covariance_type=args.covariance, means_init=centres, tol=0.0, max_iter=n_iter)
            return time.perf_counter() - start

        for name in fits:  # compile both programs of both versions first
            seconds(name, 1), seconds(name, 1 + args.steps)
        slopes: dict[str, list[float]] = {name: [] for name in fits}
        for pair in range(args.pairs):
            for name in fits if pair % 2 == 0 else reversed(fits):
                one = seconds(name, 1)
                slopes[name].append(1000 * (seconds(name, 1 + args.steps) - one) / args.steps)
        ratios = np.array(slopes["this tree"]) / np.array(slopes["earlier"])
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        workload = f"N={N} D={D} K={K} {args.covariance}"
        lines = [f"{workload}: ms per iteration, {args.commit} and this tree ({head.stdout.strip()})"]
        for name, values in slopes.items():
            lines.append(f"  {name:>9}: median {np.median(values):7.1f}   {[round(v, 1) for v in values]}")
        each = [round(float(r), 2) for r in ratios]
        lines.append(f"  ratio this tree / earlier: median {np.median(ratios):.3f}   {each}")
        print("\n".join(lines))
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _machine import describe

        with RESULTS.open("a") as out:
            stamp = time.strftime("%Y-%m-%d %H:%M")
            out.write(f"\n## {stamp} UTC, {describe()}\n\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
