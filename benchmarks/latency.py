"""How long a new user waits: each piece of work in a fresh process, compilation included.
Run by hand (a few minutes on 2 cores):

    .venv/bin/python benchmarks/latency.py [--repeats N] [--label TEXT] [--append] [--rows NAME,...]

writes benchmarks/results/latency.md (replaced; with --append a new section is added, so
that runs labelled "before" and "after" a change can be kept side by side) and prints it.
``--rows`` measures only the rows named (``small``, ``select``, ``select_mclust``,
``select_mclust_map``, ``fit_em``, ``posterior``, ``demo``).

Every measurement runs this script again as a child process (``--child NAME``). The child
times itself from just before ``import gmm_ppl`` (or ``import sklearn.mixture``) to the end of
the first call: what a new user waits for. It reports the import on its own, the first call
and a second call in the same process (same shapes: nothing left to compile). The parent
also times the child's whole process, interpreter start and the second call included.

The compiled-program disk cache is named by ``$GMM_PPL_CACHE_DIR``: each gmm_ppl measurement
gets a new empty temporary folder there ("empty cache"), then runs again in a second
process with the same folder ("warm cache"). Before issue 28 the library read the variable
only in the command line (its cache was opt-in), so there the Python rows show no difference
between the two: the script measures the library as it is. To measure another commit, run it
with ``PYTHONPATH=/path/to/a/clone``: the children import gmm_ppl from there, and the
results name the commit.

The work (150x4: three shifted standard normal clusters of 50 rows, seed 0, float64):
1. 24 small fits: ``GaussianMixture(k, covariance_type=cov, n_init=5, random_state=0)`` for
   the four scikit-learn covariance types and k = 1..6 on the 150x4 data; scikit-learn's
   ``sklearn.mixture.GaussianMixture`` does the same 24 fits beside it.
2. ``select_model(x)`` on Old Faithful with its defaults (K = 1..9, every structure, five
   k-means++ restarts a model). No peer beside it: R's ``Mclust`` starts each model once.
3. ``select_model(x, init="mclust")``: mclust's own start (its model-based hierarchical
   agglomeration, ``gmm_ppl.hc``), one run a model, the work R's ``Mclust(X, G=1:9)`` does.
   R beside it when ``Rscript`` and mclust are installed (R reads the shipped
   gmm_ppl/datasets/old_faithful.csv).
4. ``select_model(x, init="mclust", prior="default")``: the same under mclust's default prior
   (MAP-EM), beside R's ``Mclust(X, G=1:9, prior=priorControl())``.
5. ``fit_em(x, 2, n_init=10, key=0)`` on Old Faithful.
6. ``sample_posterior(x, 2, key=0, reference=fit)`` on Old Faithful after ``fit = fit_em(x, 2,
   n_init=10, key=0)``, with its defaults: 4 chains x (1000 warm-up + 1000 draws).
7. The command line's demo, ``gmm-ppl demo -q --out DIR``, timed from the parent only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latency.md"
CACHE_VARS = ("GMM_PPL_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")


# ---------------------------------------------------------------- children (fresh processes)

# select_model's rows: their options
SELECT_OPTIONS = {
    "select": {},
    "select_mclust": {"init": "mclust"},
    "select_mclust_map": {"init": "mclust", "prior": "default"},
}


def small_data():
    import numpy as np

    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(50, 4)) + m for m in (0, 3, 6)])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def child(name: str) -> dict:
    """One measurement; times from just before the library's import to the end of the first call."""
    t0 = time.perf_counter()
    if name == "sklearn":
        import warnings

        import sklearn.mixture as lib

        warnings.simplefilter("ignore")  # ConvergenceWarning on some of the 24 fits
    else:
        import gmm_ppl as lib
    out = {"import_s": time.perf_counter() - t0}

    if name in ("small", "sklearn"):
        x = small_data()

        def work():
            for cov in ("full", "tied", "diag", "spherical"):
                for k in range(1, 7):
                    lib.GaussianMixture(k, covariance_type=cov, n_init=5, random_state=0).fit(x)

    elif name in SELECT_OPTIONS:
        x = lib.datasets.load("old_faithful")
        options = SELECT_OPTIONS[name]

        def work():
            return lib.select_model(x, **options)

    elif name == "fit_em":
        x = lib.datasets.load("old_faithful")

        def work():
            return lib.fit_em(x, 2, n_init=10, key=0)

    elif name == "posterior":
        x = lib.datasets.load("old_faithful")
        out["fit_em_s"], fit = timed(lambda: lib.fit_em(x, 2, n_init=10, key=0))

        def work():
            return lib.sample_posterior(x, 2, key=0, reference=fit)

    else:
        raise ValueError(name)

    out["call_s"], result = timed(work)
    out["wait_s"] = time.perf_counter() - t0
    out["again_s"], _ = timed(work)
    if name in SELECT_OPTIONS:
        out["structures"] = len(set(result.table.covariance_type))
        out["best"] = f"{result.best[0]}, K={result.best[1]}"
    return out


def run_child(name: str, cache: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    if cache is not None:
        env["GMM_PPL_CACHE_DIR"] = cache
    wall, proc = timed(
        lambda: subprocess.run(
            [sys.executable, __file__, "--child", name], capture_output=True, text=True, env=env, cwd=ROOT
        )
    )
    if proc.returncode:
        return failed(f"child {name}", proc)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall}


def failed(what: str, proc) -> dict:
    """A child that crashed or failed: its cell says so, the run goes on."""
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
    print(f"{what} failed ({how}):\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
    return {"failed": how}


def run_demo(cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env["GMM_PPL_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as out:
        command = [str(Path(sys.executable).parent / "gmm-ppl"), "demo", "-q", "--out", str(Path(out) / "demo")]
        wall, proc = timed(lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT))
    if proc.returncode:
        return failed("gmm-ppl demo", proc)
    return {"process_s": wall}


# ---------------------------------------------------------------- R's mclust

R_SCRIPT = """
suppressMessages(library(mclust))
x <- as.matrix(read.csv(commandArgs(TRUE)[1]))
prior <- if (commandArgs(TRUE)[2] == "prior") priorControl() else NULL
first <- system.time(m <- Mclust(x, G = 1:9, prior = prior, verbose = FALSE))[["elapsed"]]
again <- system.time(m <- Mclust(x, G = 1:9, prior = prior, verbose = FALSE))[["elapsed"]]
cat(sprintf("RESULT %.4f %.4f %s,K=%d\\n", first, again, m$modelName, m$G))
"""


def r_version() -> str | None:
    """'R x.y.z, mclust a.b.c', or None when Rscript or mclust is missing."""
    if shutil.which("Rscript") is None:
        return None
    code = 'suppressMessages(library(mclust)); cat(R.version$major, R.version$minor, format(packageVersion("mclust")))'
    check = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True)
    if check.returncode:
        return None
    major, minor, mclust = check.stdout.split()
    return f"R {major}.{minor}, mclust {mclust}"


def source_digest() -> str:
    """The gmm_ppl being measured (the one the children import: ``PYTHONPATH=/a/clone`` measures
    another commit): its git commit, and a fingerprint of its .py files with when one last changed."""
    import importlib.util

    package = Path(importlib.util.find_spec("gmm_ppl").origin).parent
    files = sorted(package.rglob("*.py"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    newest = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(f.stat().st_mtime for f in files)))
    git = ["git", "-C", str(package.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "gmm_ppl"], capture_output=True, text=True).stdout.strip()
    where = f"{package.parent} at {commit or 'an unknown commit'}{' with uncommitted changes' if dirty else ''}"
    return f"{where}; gmm_ppl/*.py sha256 {digest}, newest file changed {newest}"


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall, CPU seconds the whole machine was busy, CPU seconds of this process and its children)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    t = os.times()
    return time.time(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system


def other_work(start, end) -> str:
    """How much of the machine other processes took while the benchmark ran (Linux)."""
    if start is None or end is None:
        return ""
    wall, busy, ours = (b - a for a, b in zip(start, end, strict=True))
    others = max(busy - ours, 0.0)
    share = 100 * others / (wall * os.cpu_count())
    warning = " That is well above a few percent: the times are high." if share > 5 else ""
    return (
        f" Other processes used {others:.0f} CPU-seconds of the {wall * os.cpu_count():.0f} available during the"
        f" run ({share:.0f}%).{warning}"
    )


def run_mclust(folder: str, prior: bool = False) -> dict:
    """Mclust on the shipped CSV of Old Faithful (the same numbers as ``datasets.load``), under
    its default prior (``priorControl()``) if ``prior``."""
    csv, script = ROOT / "gmm_ppl" / "datasets" / "old_faithful.csv", Path(folder) / "mclust.R"
    script.write_text(R_SCRIPT)
    wall, proc = timed(
        lambda: subprocess.run(
            ["Rscript", str(script), str(csv), "prior" if prior else "none"], capture_output=True, text=True
        )
    )
    line = [r for r in proc.stdout.splitlines() if r.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr[-3000:]}")
    _, first, again, best = line[0].split()
    return {"call_s": float(first), "again_s": float(again), "process_s": wall, "best": best.replace(",", ", ")}


# ---------------------------------------------------------------- the table


def median(runs: list[dict]) -> dict:
    """Each number the median over repeats; anything else from the first run; a failure wins."""
    runs = [r for r in runs if "failed" in r] or runs
    return {k: statistics.median(r[k] for r in runs) if isinstance(v, float) else v for k, v in runs[0].items()}


def repeat(n: int, fn) -> dict:
    return median([fn() for _ in range(n)])


def cached_pair(n: int, fn) -> tuple[dict, dict]:
    """fn(folder) in two processes sharing a new folder (empty, then warm), n times; medians."""
    empty, warm = [], []
    for _ in range(n):
        with tempfile.TemporaryDirectory(prefix="gmm_ppl_cache_") as folder:
            empty.append(fn(folder))
            warm.append(fn(folder))
    return median(empty), median(warm)


def cell(r: dict) -> str:
    if "failed" in r:
        return f"failed ({r['failed']})"
    if "wait_s" not in r:
        return f"{r['process_s']:.1f} (process)"
    return f"{r['wait_s']:.1f} (import {r['import_s']:.1f}, call {r['call_s']:.1f}; process {r['process_s']:.1f})"


def again(r: dict) -> str:
    return f"{r['again_s']:.2f}" if r["again_s"] < 1 else f"{r['again_s']:.1f}"


def other(r: dict | str | None) -> str:
    if r is None:
        return "—"
    if isinstance(r, str):
        return r
    parts = [f"first {r['call_s']:.1f}, again {again(r)}"]
    if "import_s" in r:
        parts.append(f"import {r['import_s']:.1f}")
    parts.append(f"process {r['process_s']:.1f}")
    return f"{parts[0]} ({'; '.join(parts[1:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each cell; the table gives medians")
    parser.add_argument("--label", default="", help="printed in the section heading (e.g. 'before')")
    parser.add_argument("--append", action="store_true", help="add a section to the results file")
    parser.add_argument("--rows", default="", help="only these rows, by name, comma-separated (default: all)")
    args = parser.parse_args()
    n = args.repeats

    rows = []
    r_ok = r_version()
    source, start = source_digest(), cpu_seconds()
    for work, name in (
        ("24 small fits (150x4, 4 types x K=1..6, n_init=5)", "small"),
        ("select_model, Old Faithful (defaults: 5 restarts a model)", "select"),
        ("select_model, Old Faithful, init='mclust' (one start a model, as Mclust)", "select_mclust"),
        (
            "select_model, Old Faithful, init='mclust', prior='default' (MAP-EM, as Mclust with priorControl())",
            "select_mclust_map",
        ),
        ("first fit_em (Old Faithful, K=2, n_init=10)", "fit_em"),
        ("first sample_posterior (Old Faithful, K=2, 4x(1000+1000))", "posterior"),
        ("gmm-ppl demo --out DIR", "demo"),
    ):
        if args.rows and name not in args.rows.split(","):
            continue
        print(f"... {work}", file=sys.stderr, flush=True)
        if name == "demo":
            empty, warm = cached_pair(n, run_demo)
        else:
            empty, warm = cached_pair(n, lambda folder, name=name: run_child(name, folder))
        sk = repeat(n, lambda: run_child("sklearn", None)) if name == "small" else None
        r = None
        if name == "select":
            r = "not the same work: Mclust starts each model once (next row)"
        elif SELECT_OPTIONS.get(name, {}).get("init") == "mclust":  # Mclust's own work: R beside it
            r = "R not installed"
            if r_ok:
                prior = "prior" in SELECT_OPTIONS[name]
                with tempfile.TemporaryDirectory() as folder:
                    r = repeat(n, lambda folder=folder, prior=prior: run_mclust(folder, prior))
        rows.append((name, work, empty, warm, sk, r))

    import sklearn
    from _machine import describe  # after the children: the parent starts JAX only now

    versions = {"gmm_ppl": importlib.metadata.version("gmm_ppl"), "scikit_learn": sklearn.__version__}
    label = f" — {args.label}" if args.label else ""
    lines = [
        f"## New user's wait, compilation included{label}",
        "",
        describe(**versions) + (f" {r_ok}." if r_ok else ""),
        "",
        f"Source measured: {source}."
        + ("" if source_digest() == source else f" **It changed during the run** (now {source_digest()}).")
        + other_work(start, cpu_seconds()),
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}, median of {n} run(s) per cell; times in seconds. Every cell "
        "is a fresh process. gmm_ppl empty cache: `GMM_PPL_CACHE_DIR` names a new empty temporary folder; "
        "warm cache: a second process with the same folder. The first number is from just before `import "
        "gmm_ppl` to the end of the first call (import and call also given alone); process: the child's "
        "whole wall time seen from the parent (interpreter start, a second call and exit included). Again "
        "in the same process: the same call a second time in the empty-cache process. scikit-learn and R: "
        "first and second call in one fresh process (`import sklearn.mixture` not in the calls).",
        "",
        "| work | gmm_ppl empty cache (s) | gmm_ppl warm cache (s) | again in the same process (s) "
        "| scikit-learn (s) | R mclust (s) |",
        "|---|---|---|---|---|---|",
    ]
    for _, work, empty, warm, sk, r in rows:
        same = again(empty) if "again_s" in empty else "—"  # not for the demo, nor after a failure
        lines.append(f"| {work} | {cell(empty)} | {cell(warm)} | {same} | {other(sk)} | {other(r)} |")
    by_name = {name: (empty, r) for name, _, empty, _, _, r in rows}
    lines.append("")
    for name, how in (
        ("select", "with five k-means++ restarts a model"),
        ("select_mclust", "from mclust's start"),
        ("select_mclust_map", "from mclust's start under its default prior"),
    ):
        if name not in by_name:
            continue
        select, mclust = by_name[name]
        if "best" in select:
            lines.append(
                f"- select_model {how} fitted {select['structures']} structures; best model {select['best']}"
                + (f" (mclust's: {mclust['best']})." if isinstance(mclust, dict) else ".")
            )
    posterior = by_name.get("posterior", ({},))[0]
    if "fit_em_s" in posterior:
        lines.append(
            f"- sample_posterior: the call alone; the reference fit_em before it took {posterior['fit_em_s']:.1f} s "
            "in the empty-cache process."
        )
    for _, work, *cells in rows:
        for column, r in zip(("empty cache", "warm cache", "scikit-learn"), cells, strict=False):
            if isinstance(r, dict) and "failed" in r:
                lines.append(f"- {work}, {column}: the process failed ({r['failed']}); its stderr was printed.")
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(exist_ok=True)
    if args.append and RESULTS.exists():
        RESULTS.write_text(RESULTS.read_text().rstrip("\n") + "\n\n" + text)
    else:
        RESULTS.write_text("# Latency: how long a new user waits\n\n" + text)
    print(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
    else:
        sys.path.insert(0, str(HERE))
        main()
