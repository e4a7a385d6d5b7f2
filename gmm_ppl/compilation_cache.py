"""Compiled programs kept on disk, so that a new process neither traces nor compiles them again.

Compiling is most of a small fit's time (1.2-1.4 s a program for a 150-row fit on 2 CPU
cores, which then runs in milliseconds: ``benchmarks/results/latency.md``), and a new process
would pay it again for every program.
So every program of ``gmm_ppl.programs`` is saved here after it is compiled, as XLA's
executable with the pytree structure of its inputs and outputs, under a key made of
everything the program depends on (see ``programs.Program``): the program's name, build,
static arguments and input types; the source of gmm_ppl; the versions of JAX, jaxlib,
NumPyro and funsor; the device, the CPU and XLA's flags. A later process with the same key
loads the executable and runs it without tracing Python or compiling (about 0.1 s for
``fit_em``'s program, against 1-3 s). Results are the same bit for bit: it is the same
executable.

**On by default.** The folder: ``$GMM_PPL_CACHE_DIR`` if that is set, else
``$XDG_CACHE_HOME/gmm_ppl/programs``, else ``~/.cache/gmm_ppl/programs``. To turn it off, set
``GMM_PPL_CACHE_DIR`` to the empty string, or call ``gp.disable_compilation_cache()``;
``gp.enable_compilation_cache(folder)`` chooses another folder. Deleting the folder is
always safe.

Safe by construction:

- **Two processes at once**: an entry is written to a temporary file in the folder and
  renamed into place (atomic on POSIX and Windows), so a reader sees a whole entry or none;
  two writers of one key write the same program and the last rename wins.
- **An entry cut short or corrupt**: each entry starts with the SHA-256 of the rest and its
  key; one that does not match is deleted and the program compiled again.
- **A folder that is read-only, full or missing**: one warning, then the process goes on
  without saving (and loads what it can).
- **Bounded**: at most ``MAX_BYTES`` (``$GMM_PPL_CACHE_MAX_MB``, default 1024 MB); past it,
  the entries used longest ago are deleted (loading an entry marks it used).

Earlier, JAX's own persistent cache was opt-in here, after test workers died of segmentation
faults, one while loading a cached program. The cause was the process's memory-mapping limit
(``_map_limit``), which loading a program meets as compiling one does, not the cache;
``_map_limit`` now counts loaded programs too, and ``tests/test_compilation_cache.py`` soaks
the cache with several processes writing and reading at once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
from pathlib import Path

ENV_VAR = "GMM_PPL_CACHE_DIR"
MAX_MB_VAR = "GMM_PPL_CACHE_MAX_MB"
MAX_BYTES = 1024 * 2**20
# After an eviction the folder holds at most this fraction of the bound, so that not every
# save evicts.
_EVICT_TO = 0.75
_MAGIC = b"gmm_ppl program 1\n"
_SUFFIX = ".program"
# A temporary file older than this is left from a process that died while writing.
_STALE_TMP_SECONDS = 3600


def default_cache_dir() -> Path | None:
    """The folder used unless ``enable_compilation_cache`` chose one; None when
    ``$GMM_PPL_CACHE_DIR`` is set to the empty string (the cache is off)."""
    if ENV_VAR in os.environ:
        value = os.environ[ENV_VAR].strip()
        return Path(value).expanduser() if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gmm_ppl" / "programs"


def max_bytes() -> int:
    """The size bound: ``$GMM_PPL_CACHE_MAX_MB`` megabytes if set, else ``MAX_BYTES``."""
    value = os.environ.get(MAX_MB_VAR, "").strip()
    try:
        return int(float(value) * 2**20) if value else MAX_BYTES
    except ValueError:
        return MAX_BYTES


class Store:
    """A folder of compiled programs, keyed by strings (see the module docstring)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.writable = folder is not None
        self.warned = False

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + _SUFFIX)

    def load(self, key: str) -> bytes | None:
        """The payload saved under ``key``, or None (absent, unreadable or corrupt: a corrupt
        entry is deleted)."""
        if self.folder is None:
            return None
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        payload = _unpack(blob, key)
        if payload is None:
            self.discard(key)
            return None
        try:
            os.utime(path)  # used now: the last to be evicted
        except OSError:
            pass
        return payload

    def save(self, key: str, payload: bytes) -> None:
        """Keep ``payload`` under ``key``; a folder that cannot take it is warned about once,
        and then left alone for the rest of the process."""
        if not self.writable:
            return
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(_pack(payload, key))
            os.replace(tmp, self._path(key))
            tmp = None
            self._evict(max_bytes())
        except OSError as err:
            self.writable = False
            if not self.warned:
                self.warned = True
                warnings.warn(
                    f"compiled programs are not being saved to {self.folder} ({err.strerror or err}); "
                    f"later processes will compile them again. Set {ENV_VAR} to another folder, "
                    "or to the empty string to turn the cache off.",
                    RuntimeWarning,
                    stacklevel=4,
                )
        finally:
            if tmp is not None:
                _remove(Path(tmp))

    def discard(self, key: str) -> None:
        if self.folder is not None:
            _remove(self._path(key))

    def entries(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == _SUFFIX and not p.name.startswith(".tmp-")]
        except OSError:
            return []

    def _evict(self, limit: int) -> None:
        """Delete the entries used longest ago until the folder holds at most ``_EVICT_TO`` of
        ``limit``, if it holds more than ``limit``; and temporary files left by dead writers."""
        now = time.time()
        sized = []
        for path in self.folder.iterdir():
            try:
                info = path.stat()
            except OSError:  # deleted by another process meanwhile
                continue
            if path.name.startswith(".tmp-"):
                if now - info.st_mtime > _STALE_TMP_SECONDS:
                    _remove(path)
            elif path.suffix == _SUFFIX:
                sized.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in sized)
        if total <= limit:
            return
        for _, size, path in sorted(sized):
            if total <= _EVICT_TO * limit:
                break
            _remove(path)
            total -= size


def _pack(payload: bytes, key: str) -> bytes:
    key_bytes = key.encode()
    digest = hashlib.sha256(key_bytes + payload).digest()
    return _MAGIC + digest + len(key_bytes).to_bytes(4, "little") + key_bytes + payload


def _unpack(blob: bytes, key: str) -> bytes | None:
    """The payload of an entry, or None if the entry is not whole or is another key's."""
    head = len(_MAGIC) + 32 + 4
    if len(blob) < head or not blob.startswith(_MAGIC):
        return None
    digest = blob[len(_MAGIC) : len(_MAGIC) + 32]
    n_key = int.from_bytes(blob[head - 4 : head], "little")
    key_bytes, payload = blob[head : head + n_key], blob[head + n_key :]
    if key_bytes != key.encode() or hashlib.sha256(key_bytes + payload).digest() != digest:
        return None
    return payload


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


_store: Store | None = None


def store() -> Store:
    """The store in use: the folder ``enable_compilation_cache`` chose, else the default."""
    global _store
    if _store is None:
        _store = Store(default_cache_dir())
    return _store


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs in ``path`` (default ``default_cache_dir()``) from now on.

    The cache is on by default; call this to choose another folder. Returns the folder in
    use, or None when the cache is off (``$GMM_PPL_CACHE_DIR`` set to the empty string).
    Results are the same with and without it: only compiled programs are stored, not data
    or fits.
    """
    global _store
    folder = default_cache_dir() if path is None else Path(path).expanduser()
    _store = Store(folder)
    return folder


def disable_compilation_cache() -> None:
    """Neither load nor save compiled programs from now on in this process (programs
    already compiled stay in memory)."""
    global _store
    _store = Store(None)
