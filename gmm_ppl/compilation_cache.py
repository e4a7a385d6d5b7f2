"""Compiled programs kept on disk, so that a new process does not compile them again.

Compiling is most of a small fit's time: about 3 s for ``fit_em`` on Old Faithful and 36 s
for ``select_model``'s nine-structure grid on 2 CPU cores, against milliseconds and 7 s to
run them once compiled (benchmarks/small.py). JAX can keep compiled programs in a folder (its
persistent compilation cache) and load them in later processes. In Python, call
``gp.enable_compilation_cache()`` once, first thing; the command line uses it when
``$GMM_PPL_CACHE_DIR`` names a folder.

Opt-in for now. It was made so after test workers died of segmentation faults, one while
loading a cached program (inside JAX's ``deserialize_executable``). The cause was the
process's memory-mapping limit (see ``_map_limit``), which loading a program meets as
compiling one does, not the cache: 40 cache loads in a row were clean, and a cache entry cut
short is caught (JAX warns and compiles). It stays off by default until runs with it on have
been seen clean again.

The folder: ``$GMM_PPL_CACHE_DIR`` if that is set (set but empty: no cache), else
``$XDG_CACHE_HOME/gmm_ppl/jax``, else ``~/.cache/gmm_ppl/jax``. A folder already chosen
through JAX itself (``JAX_COMPILATION_CACHE_DIR`` or ``jax_compilation_cache_dir``) is kept.
Entries are keyed by the program, the JAX version and the device, so a stale entry is never
used; deleting the folder is always safe.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax

ENV_VAR = "GMM_PPL_CACHE_DIR"
# Every program is kept, however quickly it compiled (JAX's default keeps only those over
# 1 s): the many small ones add up. `make demo` ran again in 12 s with all 76 of its programs
# cached (1.1 MB), in 20 s with only the 5 that compile for more than 0.5 s, in 35 s cold.
MIN_COMPILE_SECONDS = 0.0


def default_cache_dir() -> Path | None:
    """The folder ``enable_compilation_cache()`` uses; None when ``$GMM_PPL_CACHE_DIR`` is set empty."""
    if ENV_VAR in os.environ:
        value = os.environ[ENV_VAR].strip()
        return Path(value).expanduser() if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gmm_ppl" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs in ``path`` (default ``default_cache_dir()``) from now on.

    Returns the folder in use, or None when the cache is off (``$GMM_PPL_CACHE_DIR`` set
    empty, or a folder that cannot be created, which is warned about). Results are the
    same with and without it: only XLA's compiled programs are stored, not data or fits.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = default_cache_dir() if path is None else Path(path).expanduser()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        warnings.warn(f"compilation cache off: cannot create {folder} ({err.strerror or err})", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder


def enable_if_asked() -> Path | None:
    """The command line's rule: the cache only when ``$GMM_PPL_CACHE_DIR`` names a folder
    (opt-in, see above). Returns the folder in use, or None."""
    if not os.environ.get(ENV_VAR, "").strip():
        return None
    return enable_compilation_cache()
