"""A text progress bar on stderr for long runs: NUTS's draws, a model grid's fits.

``sample_posterior(progress=True)`` and ``select_model(progress=True)`` (the defaults) show
one: the phase (NUTS warm-up or sampling), iterations done of the total per chain, the
divergent transitions among the draws so far, and the time taken::

    NUTS, 4 chains: sampling [########------------]  400/1000 draws per chain, 2 divergences, 14 s
    model grid [#############-------]  81/126 models, 23 s

Nothing is printed before ``SHOW_AFTER`` seconds have passed, so a short run prints nothing
at all. On a terminal, and in a Jupyter notebook, the bar is one line redrawn in place
(``\\r``); elsewhere (a log file, a pipe) it prints a line when it first shows, every
``LINE_EVERY`` seconds, and when a phase ends. No dependency: plain writes to stderr.

The bar is drawn on the host between two calls of a compiled program, never from inside
one: NUTS runs in segments of about a second (``gmm_ppl.posterior._run_segments``) and a
grid in one program per covariance structure (``gmm_ppl.selection``). A host callback inside
the program (``jax.debug.callback``, ``io_callback``) would report more often, but it ties
the executable to a Python function of this process: XLA cannot serialise it
(``serialize_executable`` fails on the callback's closure), so ``gmm_ppl.programs`` could
not keep the program in its on-disk cache and every new process would compile NUTS again
(about 10 s; issue 28). Reporting between calls changes nothing in the programs, so the
draws and fits are the same with the bar, without it, or with a function of one's own.

``progress`` arguments take:

  True                  this module's bar on stderr
  False or None         nothing
  a ``ProgressBar``     that bar (its own label, stream or delay)
  a function            called after every compiled call as ``progress(phase, done, total)``,
                        or with ``divergences=`` too (NUTS's so far; None for a grid) when
                        it has a parameter of that name
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from collections.abc import Callable, Iterator

# Seconds a run must have taken before its bar first shows: a run shorter than this prints
# nothing. Read at every update, so a test can set it to 0.
SHOW_AFTER = 2.0
# Where stderr is not a terminal: seconds between two plain lines (and a line as a phase ends).
LINE_EVERY = 10.0
# On a terminal: the least seconds between two redraws of the line.
REDRAW_EVERY = 0.1
BAR_WIDTH = 20

# The words a phase shows (``phase`` as the runs report it).
PHASE_WORDS = {"warmup": "warm-up", "sampling": "sampling", "models": ""}

Reporter = Callable[..., None]


def _interactive(stream) -> bool:
    """A stream that shows a ``\\r`` redraw in place: a terminal, or a Jupyter notebook's
    stderr (ipykernel's OutStream is no TTY, yet its output area honours ``\\r``)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class ProgressBar:
    """A one-line progress bar on stderr, shown once the run has taken ``SHOW_AFTER`` seconds.

    Call it as ``bar(phase, done, total, divergences=None)`` after every step of the run;
    ``start()`` before the run (the clock starts there; ``reporting`` calls it) and
    ``close()`` after (it ends a line drawn in place).

    Args:
      label: the words before the phase ('NUTS, 4 chains', 'model grid').
      units: {phase: words after ``done/total``}: 'draws per chain', 'models'.
      stream: where to write (None: ``sys.stderr`` as it is when the bar writes).
      show_after: seconds before the bar first shows (None: ``SHOW_AFTER``).
    """

    def __init__(self, label: str = "", units: dict | None = None, *, stream=None, show_after: float | None = None):
        self.label = label
        self.units = dict(units or {})
        self.stream = stream
        self.show_after = show_after
        self.start()

    def start(self) -> None:
        """Start the clock; nothing shown yet."""
        self.started = time.perf_counter()
        self.shown = False
        self._state = None  # the last (phase, done, total, divergences) reported
        self._drawn = None  # the state last written
        self._last_write = -float("inf")
        self._width = 0  # the length of the line drawn in place, to blank it over
        self._open = False  # a line drawn in place waits for its newline
        self.broken = False  # stderr could not be written: nothing more is tried

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def text(self, phase: str, done: int, total: int, divergences: int | None, elapsed: float) -> str:
        """The bar's line (no newline)."""
        filled = BAR_WIDTH if total <= 0 else min(BAR_WIDTH, BAR_WIDTH * done // total)
        word = PHASE_WORDS.get(phase, phase)
        head = f"{self.label}: {word}" if self.label and word else self.label or word
        parts = [f"{head} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done:>{len(str(total))}}/{total}"]
        unit = self.units.get(phase, "")
        if unit:
            parts[0] += f" {unit}"
        if divergences is not None:
            parts.append(f"{divergences} divergence{'' if divergences == 1 else 's'}")
        parts.append(_clock(elapsed))
        return ", ".join(parts)

    def __call__(self, phase: str, done: int, total: int, divergences: int | None = None) -> None:
        now = time.perf_counter()
        self._state = (phase, done, total, divergences)
        show_after = SHOW_AFTER if self.show_after is None else self.show_after
        if not self.shown and now - self.started < show_after:
            return
        phase_ends = done >= total
        if _interactive(self._out()):
            if self.shown and not phase_ends and now - self._last_write < REDRAW_EVERY:
                return
            self._draw_in_place(now)
        elif not self.shown or phase_ends or now - self._last_write >= LINE_EVERY:
            self._write(self.text(*self._state, now - self.started) + "\n", now)
        self.shown = True

    def _draw_in_place(self, now: float) -> None:
        line = self.text(*self._state, now - self.started)
        self._write("\r" + line.ljust(self._width), now)
        self._width, self._open = len(line), True

    def _write(self, text: str, now: float) -> None:
        """Write, or turn the bar off for good: a stderr that is None (pythonw), closed or a
        broken pipe must not stop the run the bar reports on."""
        out = self._out()
        if self.broken or out is None:
            self.broken = True
            return
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            self.broken = True
            return
        self._last_write, self._drawn = now, self._state

    def close(self) -> None:
        """End the line drawn in place (brought up to date first); nothing if never shown."""
        if self._open:
            if self._drawn != self._state:
                self._draw_in_place(time.perf_counter())
            self._write("\n", time.perf_counter())
            self._open = False


def check_progress(progress, name: str = "progress") -> None:
    """Refuse a ``progress`` argument that is none of True, False, None, a function."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise TypeError(
        f"{name} must be True (a progress bar on stderr), False or None (nothing), or a function "
        f"progress(phase, done, total); got {progress!r}"
    )


@contextlib.contextmanager
def reporting(progress, default: Callable[[], ProgressBar]) -> Iterator[Reporter]:
    """The reporter a run calls as ``report(phase, done, total, divergences)`` after every
    compiled call, from a ``progress`` argument (see the module's docstring); one that does
    nothing for False or None. ``default()`` makes the bar that True asks for. A bar is started on entry and
    closed on exit, an exception (Ctrl-C) included; a function gets the first three
    arguments, and ``divergences=`` too when it has a parameter of that name."""
    check_progress(progress)
    if progress is None or progress is False:
        yield lambda phase, done, total, divergences=None: None
    elif progress is True or isinstance(progress, ProgressBar):
        bar = default() if progress is True else progress
        bar.start()
        try:
            yield bar
        finally:
            bar.close()
    else:
        kind = _divergences_kind(progress)
        if kind is None:
            yield lambda phase, done, total, divergences=None: progress(phase, done, total)
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            yield lambda phase, done, total, divergences=None: progress(phase, done, total, divergences)
        else:
            yield lambda phase, done, total, divergences=None: progress(phase, done, total, divergences=divergences)


def _divergences_kind(function):
    """How ``function`` takes a parameter named divergences (``inspect.Parameter``'s kind), or
    None when it has none, or no signature Python can read."""
    try:
        parameter = inspect.signature(function).parameters.get("divergences")
    except (TypeError, ValueError):
        return None
    return None if parameter is None else parameter.kind


def nuts_bar(num_chains: int) -> ProgressBar:
    """The bar of a NUTS run: warm-up iterations, then draws, per chain, and divergences."""
    chains = f"{num_chains} chain{'' if num_chains == 1 else 's'}"
    return ProgressBar(f"NUTS, {chains}", {"warmup": "iterations per chain", "sampling": "draws per chain"})


def grid_bar(label: str = "model grid") -> ProgressBar:
    """The bar of a model grid: models fitted of the grid's."""
    return ProgressBar(label, {"models": "models"})


__all__ = ["ProgressBar", "check_progress", "grid_bar", "nuts_bar", "reporting", "SHOW_AFTER"]
