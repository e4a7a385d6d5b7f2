"""EM per iteration: gmm_ppl against scikit-learn and gmmx on the same work. Run by hand:

    .venv/bin/pip install -c constraints.txt -e ".[bench]"   # gmmx, once
    .venv/bin/python benchmarks/em.py                          # writes benchmarks/results/em.md
    python benchmarks/em.py --gpu > rows.jsonl                 # on a GPU: results/em_gpu.md
    python benchmarks/em.py --gpu-table rows.jsonl             # the same table from saved rows
    .venv/bin/python benchmarks/em.py --table rows.jsonl       # em.md from saved rows (stdout of a run,
    .venv/bin/python benchmarks/em.py --one gmmx W2 float32    #   plus rows run again one by one: a later
                                                               #   row replaces an earlier one)

Every system gets the same data (drawn from a random mixture), the same initial weights,
means and covariances, and a fixed number of iterations (tol=0 for all, so none stops
early). Each (system, workload) runs in its own fresh process, so the peak resident memory
(ru_maxrss) is that system's alone; the data themselves are counted in it.

Columns: ms per iteration (median of the timed repeats, after the first call), the first
call including compilation, the final mean log-likelihood per row (equal across systems to
float32 rounding: the same work), the precision each system computed in (read from its
fitted means: a ratio is printed only where both systems computed in the column's dtype),
peak memory, the ratio to scikit-learn, and two timings of
one (N, D) x (D, K*D) matmul, the size of the main product of a full-covariance E-step:
"matmul" writes the whole (N, K*D) product to memory, so on a CPU it measures memory
bandwidth more than arithmetic (at W2 the product is 512 MB in float32); "matmul in cache"
makes the same product in chunks of 2048 rows and reduces each chunk (sum of squares) while
it is in cache, as an E-step does, so it measures the arithmetic. An EM iteration needs
about two such products (DESIGN.md).
gmmx 0.7 supports float32 only; the float64 column is gmm_ppl's and scikit-learn's.

With --gpu, gmm_ppl, gmmx and the matmuls run on the GPU (JAX_PLATFORMS=cuda) and
scikit-learn on the same machine's CPU; no interleaved rounds (the speed-ups are large against
the drift), and scikit-learn runs in float32 only, timed on its first call. There gmm_ppl,
like gmmx, gets x already on the GPU, and checks it there. Its time per iteration also counts
what every call does once (check x, send the starting parameters, bring the results back),
so the table adds the cost of one more iteration, from a second fit with LONGER times as
many iterations: (long - short) / (extra iterations).

The targets are judged on interleaved rounds: one process fits with gmm_ppl and
scikit-learn alternately, ROUNDS times (gmm_ppl's time per round the median of REPEATS
fits), and the speed-up is the median of the rounds' ratios. This machine's speed drifts by
20-30% from minute to minute, and the table's two timings of a workload are taken minutes
apart, in separate processes: their ratio moved by as much (W2 15.6x and 22.4x for the
same code, half an hour apart). For full covariances each round also times the in-cache
matmul, and the proxy target is judged on the median of the rounds' gmm_ppl / (2 x matmul).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "em.md"
WORKLOADS = {
    "W1": {"N": 100_000, "D": 2, "K": 3, "covariance_type": "full", "n_iter": 20},
    "W2": {"N": 1_000_000, "D": 8, "K": 16, "covariance_type": "full", "n_iter": 5},
    "W3": {"N": 200_000, "D": 32, "K": 32, "covariance_type": "full", "n_iter": 5},
    "W4": {"N": 1_000_000, "D": 64, "K": 8, "covariance_type": "diag", "n_iter": 5},
}
REPEATS = 3
# Five rounds, not three: this 2-core VM loses about one core for 5-20 s at a time (W2 took
# 73-77 ms an iteration, then 126-144 ms for a dozen calls in a row, in one idle process),
# which slows gmm_ppl, on both cores, by ~1.7x and scikit-learn's mostly single-threaded
# iteration barely; two of three rounds inside such a spell made W2's median 15.7x (26.5x in
# the third round).
ROUNDS = 5
GPU_RESULTS = HERE / "results" / "em_gpu.md"
LONGER = 5
# Issue 5's targets: gmm_ppl float32 at least this many times faster than scikit-learn.
TARGETS = {"W1": 10, "W2": 20, "W3": 10, "W4": 5}


def workload_data(w: dict, dtype):
    """Data and starting parameters, the same for every system (fixed seed), all in ``dtype``.

    Every array, not only x: scikit-learn computes in the precision of what it is given,
    and with float32 data but float64 starting parameters it fitted in float64 (its
    ``means_`` came back float64), 2.3x slower at W2 and 3.9x at W4 than on float32 work.
    Until issue 29 this benchmark did that, and its float32 speed-ups compared gmm_ppl's
    float32 with scikit-learn's float64. ``computed_dtype`` checks what each system did."""
    rng = np.random.default_rng(0)
    N, D, K = w["N"], w["D"], w["K"]
    centres = rng.normal(scale=4.0, size=(K, D))
    z = rng.integers(K, size=N)
    x = (centres[z] + rng.normal(size=(N, D))).astype(dtype)
    weights = np.full(K, 1.0 / K, dtype=dtype)
    means = x[rng.choice(N, K, replace=False)].copy()
    var = x.astype(np.float64).var(axis=0).astype(dtype)
    covariances = (
        np.broadcast_to(np.diag(var), (K, D, D)).copy() if w["covariance_type"] == "full" else np.tile(var, (K, 1))
    )
    return x, weights, means, covariances


def on_the_device(x):
    """x on JAX's default device off a CPU: on a GPU gmm_ppl, gmmx and the matmuls all get it
    there, put once per process (fit_em fits a JAX array where it lives, and a second copy
    would count in the GPU's peak). On a CPU the NumPy array, as scikit-learn gets it."""
    import jax

    return x if jax.default_backend() == "cpu" else jax.device_put(x)


def run_gmm_ppl(x, weights, means, covariances, w, dtype, n_iter=None, matmul_precision="highest"):
    import gmm_ppl as gp

    start = gp.GMMParams(weights, means, covariances)

    def fit():
        return gp.fit_em(
            x,
            w["K"],
            covariance_type=w["covariance_type"],
            init_params=start,
            max_iter=n_iter or w["n_iter"],
            chunk_size=w.get("chunk_size"),  # None: the default (benchmarks/chunks.py sets it)
            tol=0.0,
            reg_covar=1e-6,
            dtype=dtype,
            matmul_precision=matmul_precision,
        )

    return fit, lambda r: float(r.log_likelihood), lambda r: np.asarray(r.params.means).dtype.name


def run_gmm_ppl_at_jax_default(x, weights, means, covariances, w, dtype):
    """gmm_ppl at JAX's default matmul precision, gmmx's (on a GPU, bfloat16 or TF32 inputs):
    the same arithmetic as gmmx, where gmm_ppl's default is full float32. Its log-likelihood
    column shows what the faster products cost."""
    return run_gmm_ppl(x, weights, means, covariances, w, dtype, matmul_precision="default")


def run_sklearn(x, weights, means, covariances, w, dtype):
    from sklearn.mixture import GaussianMixture

    # in the data's dtype, as every starting array: see workload_data
    precisions = (np.linalg.inv(covariances) if w["covariance_type"] == "full" else 1.0 / covariances).astype(x.dtype)

    def fit():
        gm = GaussianMixture(
            w["K"],
            covariance_type=w["covariance_type"],
            max_iter=w["n_iter"],
            tol=0.0,
            reg_covar=1e-6,
            weights_init=weights,
            means_init=means,
            precisions_init=precisions,
            init_params="random_from_data",
        )
        return gm.fit(x)

    return fit, lambda gm: float(gm.score(x)), lambda gm: gm.means_.dtype.name


def run_gmmx(x, weights, means, covariances, w, dtype):
    import jax
    import jax.numpy as jnp
    from gmmx import EMFitter, GaussianMixtureModelJax

    gmm = GaussianMixtureModelJax.from_squeezed(
        means=jnp.asarray(means, jnp.float32),
        covariances=jnp.asarray(covariances, jnp.float32),
        weights=jnp.asarray(weights, jnp.float32),
        covariance_type=w["covariance_type"],
    )
    fitter = EMFitter(max_iter=w["n_iter"], tol=0.0, reg_covar=1e-6)
    xj = jnp.asarray(x)

    def fit():
        return jax.block_until_ready(fitter.fit(xj, gmm))

    def score(result):
        return float(result.gmm.score_samples(xj).mean())

    return fit, score, lambda result: result.gmm.means.dtype.name


def run_matmul(x, weights, means, covariances, w, dtype):
    import jax
    import jax.numpy as jnp

    xj = jnp.asarray(x)
    b = jnp.ones((w["D"], w["K"] * w["D"]), xj.dtype)
    product = jax.jit(lambda a, b: a @ b)

    def fit():
        return jax.block_until_ready(product(xj, b))

    return fit, lambda r: float("nan"), lambda r: r.dtype.name


def run_matmul_in_cache(x, weights, means, covariances, w, dtype):
    import jax
    import jax.numpy as jnp

    rows = 2048
    n = x.shape[0] // rows * rows
    chunks = jnp.asarray(x[:n].reshape(-1, rows, w["D"]))
    b = jnp.asarray(np.random.default_rng(0).normal(size=(w["D"], w["K"] * w["D"])), chunks.dtype)

    # The squares keep XLA from rewriting sum(a @ b) as sum(a) @ b, which skips the product.
    def chunk_sum(total, a):
        return total + jnp.sum((a @ b) ** 2), None

    product = jax.jit(lambda c: jax.lax.scan(chunk_sum, jnp.zeros((), c.dtype), c)[0])

    def fit():
        return jax.block_until_ready(product(chunks))

    return fit, lambda r: float("nan"), lambda r: r.dtype.name


SYSTEMS = {
    "gmm_ppl": run_gmm_ppl,
    "gmm_ppl, JAX's default matmul": run_gmm_ppl_at_jax_default,
    "scikit-learn": run_sklearn,
    "gmmx": run_gmmx,
    "matmul": run_matmul,
    "matmul in cache": run_matmul_in_cache,
}
IMPORTS = {
    "gmm_ppl": "gmm_ppl",
    "gmm_ppl, JAX's default matmul": "gmm_ppl",
    "scikit-learn": "sklearn.mixture",
    "gmmx": "gmmx",
    "matmul": "jax",
    "matmul in cache": "jax",
}
PROXIES = ("matmul", "matmul in cache")


def median_seconds(fit, repeats: int):
    """Median wall time of ``repeats`` calls of ``fit``, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def ms_per_extra_iteration(data, w: dict, dtype: str, seconds: float) -> float:
    """gmm_ppl's time per iteration without a call's fixed costs: a fit of LONGER times the
    workload's iterations (compiled first, the median of REPEATS) less ``seconds``, the
    workload's own fit, over the extra iterations."""
    long_fit = run_gmm_ppl(*data, w, dtype, n_iter=LONGER * w["n_iter"])[0]
    long_fit()
    long_seconds = median_seconds(long_fit, REPEATS)[0]
    return 1e3 * (long_seconds - seconds) / ((LONGER - 1) * w["n_iter"])


def run_one(system: str, name: str, dtype: str, gpu: bool = False) -> dict:
    """Runs in a child process."""
    import warnings

    warnings.filterwarnings("ignore")
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    w = WORKLOADS[name]
    __import__(IMPORTS[system])
    import jax

    jax.devices()
    # Peak memory so far: the interpreter, the system's libraries and JAX's runtime. The
    # fit's own memory is the peak above it.
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    x, weights, means, covariances = workload_data(w, np.dtype(dtype))
    x = on_the_device(x)
    fit, score, computed = SYSTEMS[system](x, weights, means, covariances, w, dtype)
    start = time.perf_counter()
    result = fit()
    first = time.perf_counter() - start
    if gpu and system == "scikit-learn":
        # It compiles nothing and takes seconds a call, so its first call is its time: the
        # GPU run keeps within a short lease.
        per_call = first
    else:
        per_call, result = median_seconds(fit, REPEATS if system != "scikit-learn" else 2)
    n_iter = 1 if system in PROXIES else w["n_iter"]
    row = {
        "system": system,
        "workload": name,
        "dtype": dtype,
        "device": jax.devices()[0].device_kind if system != "scikit-learn" else f"CPU, {os.cpu_count()} cores",
        "ms_per_iter": 1e3 * per_call / n_iter,
        "first_s": first,
        "loglik": score(result),
        "computed_dtype": computed(result),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "baseline_mb": baseline,
        "data_mb": x.nbytes / 2**20,
    }
    if gpu and system == "gmm_ppl":
        row["ms_per_extra_iter"] = ms_per_extra_iteration((x, weights, means, covariances), w, dtype, per_call)
    if gpu and system != "scikit-learn":
        stats = jax.devices()[0].memory_stats() or {}
        row["device_peak_mb"] = stats.get("peak_bytes_in_use", float("nan")) / 2**20
    return row


def e_step_work(w: dict, itemsize: int = 4) -> tuple[float, float]:
    """(floating-point operations, bytes read) of one E-step's main arithmetic.

    Full covariances: per row and component, the distance |F_k^T (x_i - m_k)|^2 with F_k
    triangular, D (D + 1) / 2 multiply-adds, and the second moments r_ki d_ki d_ki^T, symmetric,
    as many: 2 N K D (D + 1) in all (two dense (N, D) x (D, K D) products would be
    4 N K D^2). Diagonal: four (N, D) x (D, K) products, x and x^2 against the precisions for
    the distances and against the responsibilities for the moments: 8 N K D (how
    scikit-learn computes them). Bytes: the data read once."""
    N, D, K = w["N"], w["D"], w["K"]
    flops = 2 * N * K * D * (D + 1) if w["covariance_type"] == "full" else 8 * N * K * D
    return float(flops), float(N * D * itemsize)


def run_peak() -> dict:
    """Runs in a child process: this machine's limits as JAX reaches them, float32. The
    arithmetic peak from a 2048^3 matmul (its operands, 16 MB each, stay mostly in cache) and
    the streaming read from a sum over 256 MB, each the best of REPEATS after a first call."""
    import jax
    import jax.numpy as jnp

    def best_seconds(fn, *args):
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(max(REPEATS, 5)):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
        return min(times)

    a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
    matmul = best_seconds(jax.jit(lambda a: a @ a), a)
    big = jnp.ones(64 * 2**20, jnp.float32)  # 256 MB
    read = best_seconds(jax.jit(jnp.sum), big)
    return {
        "system": "peak",
        "workload": "-",
        "dtype": "float32",
        "gflops": 2 * 2048**3 / matmul / 1e9,
        "gb_per_s": big.nbytes / read / 1e9,
    }


def run_rounds(name: str) -> dict:
    """Runs in a child process: gmm_ppl and scikit-learn alternately on one workload (float32),
    so each round's ratio compares timings taken seconds apart; for full covariances the
    in-cache matmul too, for the proxy's ratio (taken apart, a slow minute for one of the
    two moved W2's from 2.7 to 4.8)."""
    import warnings

    warnings.filterwarnings("ignore")
    w = WORKLOADS[name]
    data = workload_data(w, np.dtype("float32"))
    systems = ("gmm_ppl", "scikit-learn") + (("matmul in cache",) if w["covariance_type"] == "full" else ())
    made = {system: SYSTEMS[system](*data, w, "float32") for system in systems}
    fits = {system: fit for system, (fit, _, _) in made.items()}
    # the first fit compiles gmm_ppl's program and the matmul's, warms scikit-learn's and
    # NumPy's, and says in which precision each system computed
    computed = {system: check(fits[system]()) for system, (_, _, check) in made.items()}

    def ms_per_iter(fit, repeats, n_iter=w["n_iter"]):
        return 1e3 * median_seconds(fit, repeats)[0] / n_iter

    rounds = []
    for _ in range(ROUNDS):
        ours = ms_per_iter(fits["gmm_ppl"], REPEATS)
        sk = ms_per_iter(fits["scikit-learn"], 1)
        rounds.append({"gmm_ppl": ours, "scikit-learn": sk, "ratio": sk / ours})
        if "matmul in cache" in fits:
            matmul = ms_per_iter(fits["matmul in cache"], REPEATS, n_iter=1)
            rounds[-1].update({"matmul in cache": matmul, "proxy ratio": ours / (2 * matmul)})
    return {"system": "rounds", "workload": name, "dtype": "float32", "rounds": rounds, "computed_dtype": computed}


def child(system: str, name: str, dtype: str, gpu: bool = False) -> dict:
    platform = "cuda" if gpu and system != "scikit-learn" else os.environ.get("JAX_PLATFORMS", "cpu")
    env = {**os.environ, "JAX_PLATFORMS": platform}
    command = [sys.executable, __file__, "--one", system, name, dtype, *(["gpu"] if gpu else [])]
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"system": system, "workload": name, "dtype": dtype, "error": "timed out after 30 minutes"}
    if out.returncode != 0:
        return {"system": system, "workload": name, "dtype": dtype, "error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    gpu = "--gpu" in sys.argv
    only = [a for a in sys.argv[1:] if a != "--gpu"] or list(WORKLOADS)
    rows = []
    if gpu:
        # The first line of the GPU run's output says where it ran, so the table can also be
        # written later from the saved lines (--gpu-table) if the run is cut short.
        rows.append(gpu_machine())
        print(json.dumps(rows[0]), flush=True)
    if not gpu:
        rows.append(child("peak", "-", "float32"))
        print(json.dumps(rows[-1]), flush=True)
    for name in only:
        for dtype in ("float32", "float64"):
            for system in SYSTEMS:
                if dtype == "float64" and system in ("gmmx", *PROXIES):
                    continue
                if system == "gmm_ppl, JAX's default matmul" and (not gpu or dtype == "float64"):
                    continue  # a CPU multiplies float32 in full at any setting; float64 has no other
                if gpu and dtype == "float64" and system == "scikit-learn":
                    continue  # the GPU run's time goes to the float32 targets; em.md has float64
                if system in PROXIES and WORKLOADS[name]["covariance_type"] != "full":
                    continue  # a diagonal E-step has no such product
                row = child(system, name, dtype, gpu)
                rows.append(row)
                print(json.dumps(row), flush=True)
        if not gpu:
            row = child("rounds", name, "float32")
            rows.append(row)
            print(json.dumps(row), flush=True)
    if gpu:
        write_gpu_results(rows)
    else:
        write_results(rows)


def find(rows: list[dict], system: str, workload: str, dtype: str = "float32") -> dict | None:
    """The row of one system on one workload, or None if it is missing or failed."""
    return next(
        (
            r
            for r in rows
            if r["system"] == system and r["workload"] == workload and r["dtype"] == dtype and "error" not in r
        ),
        None,
    )


def not_comparable(row: dict, peer: dict | None = None) -> str | None:
    """Why a ratio between ``row`` and ``peer`` would compare different arithmetic: a system
    that computed in another precision than its column's (scikit-learn follows its inputs'
    dtype), or None when both computed in the column's precision."""
    for r in (row, peer):
        if r is None:
            continue
        computed = r.get("computed_dtype")
        for system, dtype in computed.items() if isinstance(computed, dict) else [(r["system"], computed)]:
            if dtype is not None and dtype != r["dtype"]:
                return f"no ratio: {system} computed in {dtype}, not {r['dtype']}"
    return None


def write_results(rows: list[dict]) -> None:
    sys.path.insert(0, str(HERE))
    import sklearn
    from _machine import describe

    import gmm_ppl as gp

    lines = [
        "# EM per iteration: gmm_ppl, scikit-learn, gmmx",
        "",
        describe(scikit_learn=sklearn.__version__, gmm_ppl=gp.__version__),
        "",
        *(
            f"- {n}: N={w['N']:,}, D={w['D']}, K={w['K']}, {w['covariance_type']}, {w['n_iter']} iterations"
            for n, w in WORKLOADS.items()
        ),
        "",
        "| workload | dtype | system | ms / iteration | x faster than scikit-learn (separate processes) "
        "| computed in | first call (s) | mean log-lik | peak memory (MB) | above imports (MB) | data (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["system"] in ("rounds", "peak") and "error" not in r:
            continue  # reported against the targets and the machine's limits below
        if "error" in r:
            lines.append(f"| {r['workload']} | {r['dtype']} | {r['system']} | failed: {r['error']} | | | | | | | |")
            continue
        sk = find(rows, "scikit-learn", r["workload"], r["dtype"])
        ratio = (not_comparable(r, sk) or f"{sk['ms_per_iter'] / r['ms_per_iter']:.1f}") if sk else ""
        loglik = "" if np.isnan(r["loglik"]) else f"{r['loglik']:.6f}"
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {r['system']} | {r['ms_per_iter']:.2f} | {ratio} "
            f"| {r.get('computed_dtype', '')} | {r['first_s']:.2f} "
            f"| {loglik} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['baseline_mb']:.0f} | {r['data_mb']:.0f} |"
        )
    lines += [
        "",
        f"Against the targets (float32, gmm_ppl's speed-up over scikit-learn: the median of {ROUNDS} interleaved "
        "rounds in one process; each round's ms per iteration, gmm_ppl / scikit-learn, in brackets):",
    ]
    for name, target in TARGETS.items():
        interleaved = find(rows, "rounds", name)
        if interleaved and not_comparable(interleaved):
            lines.append(f"- {name}: {not_comparable(interleaved)}")
        elif interleaved:
            ratio = float(np.median([r["ratio"] for r in interleaved["rounds"]]))
            each = ", ".join(
                f"{r['ratio']:.1f}x ({r['gmm_ppl']:.1f} / {r['scikit-learn']:.0f})" for r in interleaved["rounds"]
            )
            lines.append(
                f"- {name}: {ratio:.1f}x (target {target}x): {'met' if ratio >= target else 'not met'}; {each}"
            )
    lines += [
        "",
        "Against two matmuls of the E-step's size made in cache (float32; target: within 3x on W2 and W3): "
        "the median of the same rounds, each round's ms per iteration, gmm_ppl / the matmul, in brackets:",
    ]
    for name in WORKLOADS:
        interleaved = find(rows, "rounds", name)
        if interleaved and "proxy ratio" in interleaved["rounds"][0]:
            ratio = float(np.median([r["proxy ratio"] for r in interleaved["rounds"]]))
            each = ", ".join(
                f"{r['proxy ratio']:.2f} ({r['gmm_ppl']:.1f} / {r['matmul in cache']:.1f})"
                for r in interleaved["rounds"]
            )
            verdict = f" (target 3): {'met' if ratio <= 3 else 'not met'}" if name in ("W2", "W3") else ""
            lines.append(f"- {name}: gmm_ppl = {ratio:.2f} x two 'matmul in cache'{verdict}; {each}")
    peak = find(rows, "peak", "-")
    if peak:
        lines += [
            "",
            f"Against this machine's limits (float32, measured in this run: a 2048^3 matmul at "
            f"{peak['gflops']:.0f} GFLOP/s, a sum over 256 MB at {peak['gb_per_s']:.1f} GB/s). An E-step's "
            "main arithmetic and the bytes it reads (`e_step_work`), the time each takes at this machine's "
            "peak, the limit (the larger of the two), and gmm_ppl's iteration (the median of the rounds: "
            "one E-step and one M-step) against it:",
            "",
            "| workload | GFLOP per E-step | MB read | at peak arithmetic (ms) | at peak read (ms) "
            "| limit (ms) | gmm_ppl (ms / iteration) | x the limit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, w in WORKLOADS.items():
            interleaved = find(rows, "rounds", name)
            if not interleaved:
                continue
            flops, nbytes = e_step_work(w)
            compute_ms, read_ms = 1e3 * flops / (peak["gflops"] * 1e9), 1e3 * nbytes / (peak["gb_per_s"] * 1e9)
            limit = max(compute_ms, read_ms)
            ours = float(np.median([r["gmm_ppl"] for r in interleaved["rounds"]]))
            lines.append(
                f"| {name} | {flops / 1e9:.3g} | {nbytes / 2**20:.0f} | {compute_ms:.2f} | {read_ms:.2f} "
                f"| {limit:.2f} | {ours:.1f} | {ours / limit:.1f} |"
            )
    lines += ["", "The same from the table's separate processes:"]
    for name in WORKLOADS:
        ours = find(rows, "gmm_ppl", name)
        for proxy in PROXIES:
            ref = find(rows, proxy, name)
            if ours and ref:
                lines.append(
                    f"- {name}: gmm_ppl = {ours['ms_per_iter'] / (2 * ref['ms_per_iter']):.2f} x two '{proxy}'"
                )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


def gpu_machine() -> dict:
    """The machine of a GPU run: its CPU, the card (nvidia-smi) and the versions, asked without
    starting JAX's GPU backend in this process (the children need the card's memory)."""
    sys.path.insert(0, str(HERE))
    import sklearn
    from _machine import describe

    import gmm_ppl as gp

    try:
        card = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        card = "nvidia-smi not found"
    return {
        "machine": describe(device="cuda", scikit_learn=sklearn.__version__, gmm_ppl=gp.__version__),
        "card": card,
    }


def write_gpu_results(rows: list[dict]) -> None:
    """The --gpu table: gmm_ppl, gmmx and the matmuls on the GPU, scikit-learn on the CPU.
    ``rows[0]`` is the machine (``gpu_machine``)."""
    machine, rows = rows[0], rows[1:]
    lines = [
        "# EM per iteration on a GPU: gmm_ppl and gmmx on the GPU, scikit-learn on the CPU",
        "",
        machine["machine"],
        f"nvidia-smi: {machine['card']}.",
        *([machine["note"]] if "note" in machine else []),
        "",
        *(
            f"- {n}: N={w['N']:,}, D={w['D']}, K={w['K']}, {w['covariance_type']}, {w['n_iter']} iterations"
            for n, w in WORKLOADS.items()
        ),
        "",
        "ms / iteration: a whole call over its iterations. gmm_ppl and gmmx get x already on the GPU; "
        "for gmm_ppl a call also checks x there, sends the starting parameters and brings the results "
        "back. One more iteration: gmm_ppl's time per "
        f"iteration without those fixed costs, (a fit with {LONGER}x the iterations - this fit) / the "
        "extra iterations. GPU peak: JAX's peak bytes in use on the device.",
        "",
        "| workload | dtype | system | device | ms / iteration | one more iteration (ms) "
        "| x faster than scikit-learn | first call (s) | mean log-lik | host peak (MB) | GPU peak (MB) | data (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['workload']} | {r['dtype']} | {r['system']} | | failed: {r['error']} |" + " |" * 7)
            continue
        sk = find(rows, "scikit-learn", r["workload"], r["dtype"])
        ratio = (not_comparable(r, sk) or f"{sk['ms_per_iter'] / r['ms_per_iter']:.1f}") if sk else ""
        loglik = "" if np.isnan(r["loglik"]) else f"{r['loglik']:.6f}"
        extra = f"{r['ms_per_extra_iter']:.2f}" if "ms_per_extra_iter" in r else ""
        device_mb = f"{r['device_peak_mb']:.0f}" if "device_peak_mb" in r else ""
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {r['system']} | {r['device']} | {r['ms_per_iter']:.2f} | {extra} "
            f"| {ratio} | {r['first_s']:.2f} | {loglik} | {r['peak_mb']:.0f} | {device_mb} | {r['data_mb']:.0f} |"
        )
    GPU_RESULTS.parent.mkdir(exist_ok=True)
    GPU_RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {GPU_RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        saved = {}
        for line in Path(sys.argv[2]).read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                saved[row["system"], row["workload"], row["dtype"]] = row  # a later run of a row replaces it
        write_results(list(saved.values()))
    elif len(sys.argv) == 3 and sys.argv[1] == "--gpu-table":
        saved = Path(sys.argv[2]).read_text().splitlines()
        write_gpu_results([json.loads(line) for line in saved if line.startswith("{")])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "--one":
        if sys.argv[2] == "rounds":
            one = run_rounds(sys.argv[3])
        elif sys.argv[2] == "peak":
            one = run_peak()
        else:
            one = run_one(sys.argv[2], sys.argv[3], sys.argv[4], gpu=sys.argv[5:] == ["gpu"])
        print(json.dumps(one))
    else:
        main()
