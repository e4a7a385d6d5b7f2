"""Keeps a long-lived process under Linux's limit on memory mappings.

XLA loads each program it compiles for the CPU as small JIT objects, three memory mappings
per kernel (code, constants, data), and JAX keeps every compiled program for as long as its
jitted function lives: ``fit_em`` on a data shape it has not seen adds about 340 mappings. Linux
allows a process ``vm.max_map_count`` mappings (65530 by default). Past that, the next compile
fails ("Failed to materialize symbols"), and jaxlib 0.10.2 dies of a segmentation fault while
raising that error. This project's test suite hit it after about 220 tests in one worker (the
core dump held 65488 mappings); a notebook that fits a few hundred data shapes would too.

So after each compile (JAX's backend-compile event) the process's mappings are counted, and
once they pass halfway to the limit, the next gmm_ppl call (``release_if_needed``, at the top
of ``_validate.precision``) clears JAX's in-memory caches of compiled programs with
``jax.clear_caches()`` and ``programs.forget_all()`` (through ``ON_RELEASE``). Results do not change: a program used
again is loaded from the disk cache (``gmm_ppl.compilation_cache``) or compiled again. Only
where /proc gives the count and the limit (Linux); elsewhere this does nothing.
"""

from __future__ import annotations

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # also fired on a disk-cache load
# What else holds compiled programs, dropped with JAX's caches (``programs`` adds its own).
ON_RELEASE: list = []


def map_limit() -> int | None:
    """The kernel's limit on this process's memory mappings, or None where it is not known."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def count_mappings() -> int | None:
    """How many memory mappings this process has now (about 1 ms at a few thousand)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


class _Guard:
    def __init__(self, limit: int):
        self.limit = limit
        self.clear_above = limit // 2
        self.pending = False
        self.clears = 0

    def after_compile(self, event: str, duration: float, **kwargs) -> None:
        # Runs inside JAX's compile path, so it only notes that a clear is due.
        if event == BACKEND_COMPILE_EVENT and not self.pending:
            count = count_mappings()
            self.pending = count is not None and count > self.clear_above

    def release_if_needed(self) -> None:
        if self.pending:
            self.release()

    def after_build(self) -> None:
        """After a program is compiled or loaded from disk (``programs.Program``)."""
        self.after_compile(BACKEND_COMPILE_EVENT, 0.0)

    def release(self) -> None:
        jax.clear_caches()
        for forget in ON_RELEASE:
            forget()
        self.pending = False
        self.clears += 1
        # What is still mapped now (programs the caller holds, libraries) is a floor: the next
        # clear comes halfway from it to the limit, so a high floor cannot make every call clear.
        floor = count_mappings() or 0
        self.clear_above = max(self.limit // 2, (floor + self.limit) // 2)


_limit = map_limit()
GUARD = _Guard(_limit) if _limit and count_mappings() is not None else None
if GUARD is not None:
    jax.monitoring.register_event_duration_secs_listener(GUARD.after_compile)


def after_build() -> None:
    """Note a program compiled or loaded (a load maps memory as a compile does, and fires no
    compile event)."""
    if GUARD is not None:
        GUARD.after_build()


def release_if_needed() -> None:
    """Clear JAX's compiled-program caches if a compile since the last call took the process
    past halfway to its mapping limit."""
    if GUARD is not None:
        GUARD.release_if_needed()


def release_above(fraction: float) -> None:
    """Clear JAX's compiled-program caches now if the process holds more than ``fraction`` of
    its mapping limit (the test suite does this between tests, at a quarter)."""
    if GUARD is not None and (count_mappings() or 0) > fraction * GUARD.limit:
        GUARD.release()
