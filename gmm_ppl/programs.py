"""The one owner of gmm_ppl's compiled programs.

Every jitted entry point of the library is made here, by ``program`` (one build) or
``two_builds`` (an optimised build and a quick one), under a name, with its static
arguments. ``PROGRAMS`` lists them all, so a policy on shapes and builds (which build a
problem gets, how shapes are padded to reuse a program) has one place to live, and
``compiled_count()`` says how many programs a process has compiled so far.

The modules keep the bodies (what a program computes); this module only decides how each
is compiled, and keeps the executables (``Program``): in memory, and on disk for later
processes (``gmm_ppl.compilation_cache``). It imports no gmm_ppl module that registers
programs, so any module can register its own.

Two builds of a compiled program: optimised, and quick to compile for small problems.


On a CPU, XLA spends most of a small fit's time compiling: Old Faithful's ``fit_em``
(272 rows, K=2, 10 restarts) compiled in 1.9-2.1 s and then ran in 1 ms. Most of that is
per kernel: the MLIR fusion emitters and LLVM's optimiser, about 15 ms for each of the
program's 124 kernels. Built with LLVM's optimisation off and the older (non-MLIR) kernel
emitters, the same program compiled in 0.5-0.7 s (three rounds, fresh processes, 2 cores).

The quick build runs slower: 5-9 times at 50 iterations, e.g. (N, D, K, restarts) =
(1e4, 4, 4, 8) took 659 against 85 ms, for 1.2 against 3.5 s of compiling; and batched
restarts gain little in it (32 restarts on Old Faithful cost 10-13 times one restart,
against 3.5-4.6 times optimised: ``benchmarks/small.py``). It costs 10-25 ns more per
element of a pass. So it is used only where a pass touches at most ``QUICK_MAX_WORK``
elements (rows x components x features x restarts): at most 65-165 ms more over 100
iterations, against 1.3-1.5 s of compiling saved (the bound was 2^15 until small problems
were padded to shared shapes, below, which makes them larger). ``fit_em`` counts a ``max_iter`` above
100 as that much more work, so a long run of a small problem is built optimised. Results
are the same up to rounding (tests/test_em.py). Only on a CPU: other backends keep their
one build.

Four programs have both builds: ``fit_em``'s, ``fit_vb``'s (its first call on Old Faithful,
K=6, 3.8 s instead of 4.8 s), ``sample_posterior``'s start of the chains (a few gradient
evaluations; 1.0-1.1 s instead of 4.2 s to compile on Old Faithful) and the Laplace step of
the modes search (``gmm_ppl.multimodal``). Not the
NUTS sampler, nor ``select_model``'s grid, whose runs are long enough that the quick build
lost more than it saved (the grid of nine structures on Old Faithful ran in 15 s against
2.6 s, having compiled in about 22 s against 47 s).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import os
import pickle
import platform
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from gmm_ppl import _map_limit, compilation_cache

QUICK_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
QUICK_MAX_WORK = 2**16

# Shape buckets for small problems. A notebook fits one data set with several K and
# covariance types, and each exact (rows, K) was a program of its own: 24 programs, 1.2-1.4 s
# each to compile, for scikit-learn's 1 s of fitting (issue 28). Up to QUICK_MAX_WORK
# elements a pass (after padding), rows are padded with zero-weight rows to one of four
# sizes an octave and K to at least MIN_COMPONENT_BUCKET (then a power of two), components
# beyond K held at weight 0. Padding changes no result beyond rounding
# (tests/test_padding.py). The cost is compute: K=3 padded to 8 on 160 x 4 rows ran 100
# iterations in 120-136 ms against 46 ms (quick build), small beside the 1.2 s compile it
# saves for each K after the first.
MIN_COMPONENT_BUCKET = 8
MIN_ROW_BUCKET = 32


def runs_as_work(n_init: int, max_iter: int) -> int:
    """Restarts as a multiple of a pass's work, for the build's bound (QUICK_MAX_WORK), which
    is set for runs of up to 100 iterations: iterations beyond that count as more work."""
    return n_init * max(max_iter, 100) // 100


def row_bucket(n_rows: int) -> int:
    """The padded row count: at least MIN_ROW_BUCKET, else ``n_rows`` rounded up to a
    multiple of a quarter of its octave's start (160 for 150 rows, 320 for 272)."""
    if n_rows <= MIN_ROW_BUCKET:
        return MIN_ROW_BUCKET
    step = 1 << max(0, n_rows.bit_length() - 3)
    return -(-n_rows // step) * step


def component_bucket(n_components: int) -> int:
    """The padded K: MIN_COMPONENT_BUCKET, or the next power of two above it."""
    return max(MIN_COMPONENT_BUCKET, 1 << (n_components - 1).bit_length())


def padded_shape(n_rows: int, n_components: int, n_features: int, n_batch: int, components: bool = True):
    """(rows, K) a small problem is compiled for, or None when the padded problem would do
    more than QUICK_MAX_WORK elements a pass (then it is compiled for its exact shape).
    ``components``: whether K may be padded (the caller's start must allow it)."""
    rows = row_bucket(n_rows)
    k = component_bucket(n_components) if components else n_components
    return (rows, k) if rows * k * n_features * n_batch <= QUICK_MAX_WORK else None


class Program:
    """A jitted function whose compiled executables this module keeps: in memory for the
    process, and on disk for later processes (``gmm_ppl.compilation_cache``).

    Called like the function. The executable for a call is found by its key: the static
    arguments, the structure and types (shape, dtype, weak type) of the other arguments,
    and the JAX settings that change a trace (x64, matmul precision, default device). On a
    miss in memory, the disk is tried under that key plus what the program's code depends
    on (``_environment``); on a miss there, the function is traced, lowered and compiled
    (``jax.jit``'s own steps) and the executable saved. A load skips tracing as well as
    compiling, which JAX's own persistent cache does not.

    Calls that this key cannot describe go to ``jax.jit`` as before: inside a trace (a
    program called from another), or with arrays placed on other devices than the default
    one (a mesh). A function with a closure is never saved to disk (its captured values
    are not in the key); one that closes over functions only (a decorator's) is.
    """

    def __init__(self, name: str, fn: Callable[..., Any], static_argnames=(), compiler_options=None):
        self.name = name
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.jitted = jax.jit(fn, static_argnames=self.static_argnames, compiler_options=compiler_options)
        self.build = "quick" if compiler_options else "optimised"
        self.storable = _closes_over_code_only(fn)
        self._executables: dict[Any, Any] = {}
        self.compiles = 0  # compiled in this process
        self.loads = 0  # loaded from disk
        signature = inspect.signature(fn)
        self._parameters = list(signature.parameters)
        positions = [i for i, p in enumerate(self._parameters) if p in self.static_argnames]
        # Calls with a static argument at this position or beyond are rewritten with keywords.
        self._first_static = min(positions, default=len(self._parameters))

    def __call__(self, *args, **kwargs):
        args, kwargs, static, key = self._split(args, kwargs)
        if key is None:
            return self.jitted(*args, **static, **kwargs)
        executable = self._executables.get(key)
        if executable is None:
            disk_key = self._disk_key(key)
            executable = self._load(disk_key)
            if executable is None:
                lowered = self.jitted.trace(*args, **kwargs, **static).lower()
                executable = self._keep_compiled(disk_key, lowered.compile())
            self._executables[key] = executable
        return executable(*args, **kwargs)

    def _split(self, args, kwargs):
        """(args, kwargs, static, key): the call's static arguments apart, and the key of its
        executable, or None for a call to leave to ``jax.jit`` (see the class docstring)."""
        first = self._first_static
        if len(args) > first:  # a static argument given by position: from there on, by name
            kwargs.update(zip(self._parameters[first : len(args)], args[first:], strict=True))
            args = args[:first]
        static = {name: kwargs.pop(name) for name in self.static_argnames if name in kwargs}
        leaves, structure = jax.tree.flatten((args, kwargs))
        if not all(map(_plain, leaves)):
            return args, kwargs, static, None
        config = jax.config
        key = (
            tuple(static.items()),
            structure,
            tuple(jax.typeof(leaf) for leaf in leaves),
            (config.jax_enable_x64, config.jax_default_matmul_precision, config.jax_default_device),
        )
        return args, kwargs, static, key

    def _load(self, disk_key: str | None):
        """The executable saved under ``disk_key``, or None."""
        if disk_key is None:
            return None
        store = compilation_cache.store()
        payload = store.load(disk_key)
        if payload is None:
            return None
        try:
            executable = _deserialize(payload)
        except Exception:  # an entry this jaxlib cannot read: compile instead
            store.discard(disk_key)
            return None
        self.loads += 1
        _after_build()
        return executable

    def _keep_compiled(self, disk_key: str | None, executable):
        """``executable``, just compiled, counted and saved under ``disk_key`` if there is one."""
        self.compiles += 1
        _after_build()
        store = compilation_cache.store()
        if disk_key is not None and store.writable:
            payload = _serialize(executable)
            if payload is not None:
                store.save(disk_key, payload)
        return executable

    def _disk_key(self, key) -> str | None:
        """``key`` as a string that means the same in another process, or None when it cannot
        (a closure, or an object shown by its address)."""
        if not self.storable or compilation_cache.store().folder is None:
            return None
        text = _FUNCTION_ADDRESS.sub(r"<function \1>", repr((self.name, self.build, key)))
        if " at 0x" in text:
            return None
        return text + "\n" + _environment()

    def lower(self, *args, **kwargs):
        return self.jitted.lower(*args, **kwargs)

    def cache_size(self) -> int:
        """Executables this process holds for the program (compiled, or loaded from disk)."""
        return len(self._executables) + self.jitted._cache_size()

    def forget(self) -> None:
        """Drop the executables held in memory (see ``_map_limit``)."""
        self._executables.clear()


_FUNCTION_ADDRESS = re.compile(r"<function (\S+) at 0x[0-9a-f]+>")


def _closes_over_code_only(fn) -> bool:
    """Whether every value ``fn`` closes over is a function, class or module (whose code the
    disk key covers, ``_environment``), not data that the key would not see."""
    for cell in getattr(fn, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, types.FunctionType):
            if not _closes_over_code_only(value):
                return False
        elif not isinstance(value, type | types.ModuleType | types.BuiltinFunctionType):
            return False
    return True


def default_device():
    """The device a program runs on without committed inputs: ``jax.default_device``'s (as
    ``sample_posterior(device=)`` sets it), else the default backend's first."""
    device = jax.config.jax_default_device
    if isinstance(device, str):  # a platform's name
        return jax.devices(device)[0]
    return device or jax.devices()[0]


def _plain(leaf) -> bool:
    """Whether ``leaf`` is a value that a key describes fully: not a tracer, and not a JAX
    array placed anywhere but the default device (the key holds ``jax_default_device``)."""
    if isinstance(leaf, jax.core.Tracer):
        return False
    if isinstance(leaf, jax.Array):
        devices = leaf.sharding.device_set
        return len(devices) == 1 and next(iter(devices)) == default_device()
    return True


def _serialize(executable) -> bytes | None:
    from jax.experimental import serialize_executable

    try:
        return pickle.dumps((_calls_out(executable), serialize_executable.serialize(executable)))
    except Exception:  # e.g. a program with constants XLA cannot serialise: not kept
        return None


def _calls_out(executable) -> bool:
    """Whether the program calls code outside XLA's own kernels (LAPACK's, on a CPU): one
    that calls none is loaded without setting LAPACK up (``_deserialize``), 0.1 s of a warm
    process's first fit. Any custom call counts, LAPACK's or not, and so does a program
    whose text cannot be read."""
    try:
        return "custom_call_target" in executable.as_text()
    except Exception:
        return True


def _deserialize(payload: bytes):
    from jax._src.lax import linalg
    from jax.experimental import serialize_executable

    calls_out, serialized = pickle.loads(payload)
    # A CPU program that calls LAPACK (eigh, in EEV's and EVV's M-steps) finds its kernels
    # set up only when something was lowered to them in this process: loaded without that,
    # it died of a segmentation fault. jax.export does the same before it runs a loaded program.
    if calls_out:
        linalg.initialize_lapack()
    # On the device the program runs on: by default JAX loads an executable onto every local
    # device of the backend, and on a host with two devices a one-device program then asked
    # for two shards of every argument (a GPU machine with several cards would fail so).
    device = default_device()
    return serialize_executable.deserialize_and_load(*serialized, backend=device.client, execution_devices=[device])


def _after_build() -> None:
    _map_limit.after_build()


@functools.cache
def _environment() -> str:
    """What a compiled program depends on besides its key: gmm_ppl's source, the libraries
    it traces through, the device, the CPU (XLA compiles for its instruction set) and
    XLA's flags."""
    source = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        source.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    versions = []
    for dist in ("jax", "jaxlib", "numpyro", "funsor"):
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    device = jax.devices()[0]
    return "\n".join(
        [
            source.hexdigest(),
            " ".join(versions),
            f"{device.platform} {device.device_kind} {device.client.platform_version} x{jax.device_count()}",
            _cpu(),
            os.environ.get("XLA_FLAGS", ""),
        ]
    )


def _cpu() -> str:
    """The CPU's model and instruction-set flags (Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


@dataclasses.dataclass(frozen=True)
class TwoBuilds:
    """A function compiled two ways: ``optimised`` and ``quick`` (``QUICK_OPTIONS``), each a
    ``Program`` with its own executables."""

    optimised: Program
    quick: Program

    def pick(self, work: int, platform: str | None = None) -> Program:
        """The build for a problem of ``work`` elements per pass on ``platform`` (default:
        JAX's default backend)."""
        quick = (platform or jax.default_backend()) == "cpu" and work <= QUICK_MAX_WORK
        return self.quick if quick else self.optimised

    def cache_size(self) -> int:
        """Executables held so far, both builds together."""
        return self.optimised.cache_size() + self.quick.cache_size()

    def forget(self) -> None:
        self.optimised.forget()
        self.quick.forget()


# name -> (the Program or TwoBuilds, its static argument names)
PROGRAMS: dict[str, tuple[Program | TwoBuilds, tuple[str, ...]]] = {}


def _register(name: str, compiled, static_argnames) -> None:
    if name in PROGRAMS:
        raise ValueError(f"a program named {name!r} is already registered")
    PROGRAMS[name] = (compiled, (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames))


def program(name: str, fn: Callable[..., Any], static_argnames=()) -> Program:
    """``fn`` as a ``Program`` (one build), registered under ``name``."""
    compiled = Program(name, fn, static_argnames)
    _register(name, compiled, static_argnames)
    return compiled


def two_builds(name: str, fn: Callable[..., Any], static_argnames=()) -> TwoBuilds:
    """``fn`` as two ``Program``s, optimised and quick (``TwoBuilds``), registered under ``name``."""
    compiled = TwoBuilds(Program(name, fn, static_argnames), Program(name, fn, static_argnames, QUICK_OPTIONS))
    _register(name, compiled, static_argnames)
    return compiled


def compiled(name: str, static_argnames=()):
    """``program`` as a decorator."""
    return lambda fn: program(name, fn, static_argnames)


def compiled_two_builds(name: str, static_argnames=()):
    """``two_builds`` as a decorator."""
    return lambda fn: two_builds(name, fn, static_argnames)


def compiled_count() -> dict[str, int]:
    """Executables held so far in this process, per registered name (both builds together):
    compiled here or loaded from disk."""
    return {name: compiled.cache_size() for name, (compiled, _) in PROGRAMS.items()}


def forget_all() -> None:
    """Drop every executable held in memory (``_map_limit`` calls this with ``jax.clear_caches``)."""
    for compiled, _ in PROGRAMS.values():
        compiled.forget()


_map_limit.ON_RELEASE.append(forget_all)
