"""The one owner of gmm_ppl's compiled programs.

Every jitted entry point of the library is made here, by ``program`` (one build) or
``two_builds`` (an optimised build and a quick one), under a name, with its static
arguments. ``PROGRAMS`` lists them all, so a policy on shapes and builds (which build a
problem gets, how shapes are padded to reuse a program) has one place to live, and
``compiled_count()`` says how many programs a process has compiled so far.

The modules keep the bodies (what a program computes); this module only decides how each
is compiled. It imports nothing from gmm_ppl, so any module can register its programs.

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
elements (rows x components x features x restarts): at most about 50 ms more over 100
iterations, against 1.3-1.5 s of compiling saved. ``fit_em`` counts a ``max_iter`` above
100 as that much more work, so a long run of a small problem is built optimised. Results
are the same up to rounding (tests/test_em.py). Only on a CPU: other backends keep their
one build.

Two programs have both builds: ``fit_em``'s, and ``sample_posterior``'s start of the chains
(a few gradient evaluations; 1.0-1.1 s instead of 4.2 s to compile on Old Faithful). Not the
NUTS sampler, nor ``select_model``'s grid, whose runs are long enough that the quick build
lost more than it saved (the grid of nine structures on Old Faithful ran in 15 s against
2.6 s, having compiled in about 22 s against 47 s).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

QUICK_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
QUICK_MAX_WORK = 2**15


@dataclasses.dataclass(frozen=True)
class TwoBuilds:
    """A function jitted twice: ``optimised`` and ``quick`` (``QUICK_OPTIONS``). Each build
    keeps its own compiled programs, so a shape compiled once is not compiled again."""

    optimised: Callable[..., Any]
    quick: Callable[..., Any]

    def pick(self, work: int, platform: str | None = None) -> Callable[..., Any]:
        """The build for a problem of ``work`` elements per pass on ``platform`` (default:
        JAX's default backend)."""
        quick = (platform or jax.default_backend()) == "cpu" and work <= QUICK_MAX_WORK
        return self.quick if quick else self.optimised

    def cache_size(self) -> int:
        """Programs compiled so far, both builds together."""
        return self.optimised._cache_size() + self.quick._cache_size()


# name -> (the jitted function or TwoBuilds, its static argument names)
PROGRAMS: dict[str, tuple[Any, tuple[str, ...]]] = {}


def _register(name: str, compiled, static_argnames) -> None:
    if name in PROGRAMS:
        raise ValueError(f"a program named {name!r} is already registered")
    PROGRAMS[name] = (compiled, tuple(static_argnames))


def program(name: str, fn: Callable[..., Any], static_argnames=()) -> Callable[..., Any]:
    """``fn`` jitted once (one build), registered under ``name``."""
    compiled = jax.jit(fn, static_argnames=static_argnames)
    _register(name, compiled, static_argnames)
    return compiled


def two_builds(name: str, fn: Callable[..., Any], static_argnames=()) -> TwoBuilds:
    """``fn`` jitted twice, optimised and quick (``TwoBuilds``), registered under ``name``."""
    compiled = TwoBuilds(
        jax.jit(fn, static_argnames=static_argnames),
        jax.jit(fn, compiler_options=QUICK_OPTIONS, static_argnames=static_argnames),
    )
    _register(name, compiled, static_argnames)
    return compiled


def compiled(name: str, static_argnames=()):
    """``program`` as a decorator."""
    return lambda fn: program(name, fn, static_argnames)


def compiled_two_builds(name: str, static_argnames=()):
    """``two_builds`` as a decorator."""
    return lambda fn: two_builds(name, fn, static_argnames)


def compiled_count() -> dict[str, int]:
    """Programs compiled so far in this process, per registered name (both builds together)."""
    return {
        name: compiled.cache_size() if isinstance(compiled, TwoBuilds) else compiled._cache_size()
        for name, (compiled, _) in PROGRAMS.items()
    }
