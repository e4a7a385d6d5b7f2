"""The results folder of a run, written all at once.

``OutputFolder`` gives a run a temporary sibling of the folder it asked for and renames it
into place only when everything has been written; on an error or Ctrl-C the temporary
folder is removed, so a results folder is complete or absent, never half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# A folder holding this file (or report.md) was written by gmm-ppl and may be replaced by --force.
MARKER = "params.json"


class OutputFolder:
    """A results folder written all at once.

    ``OutputFolder(target, force)`` refuses an existing ``target`` without ``force`` (and,
    even with it, a folder gmm-ppl did not write); entering creates a temporary sibling
    ``.NAME.writing-<random suffix>`` (``.path``), ``commit()`` renames it to ``target`` (replacing the
    old folder), and leaving the context without a commit (an error, Ctrl-C) removes it.
    """

    def __init__(self, target, force: bool = False):
        self.target = Path(target)
        self.force = force
        self.path: Path | None = None
        self._created: list[Path] = []
        self.committed = False
        self._check()

    def _check(self):
        target = self.target
        if target.exists() or target.is_symlink():
            if not target.is_dir() or target.is_symlink():
                raise ValueError(f"output {target} exists and is not a folder")
            if not self.force:
                raise ValueError(f"output folder {target} exists; pass --force to replace it")
            resolved = target.resolve()
            cwd = Path.cwd().resolve()
            if resolved == cwd or resolved in cwd.parents:
                raise ValueError(f"output folder {target} holds the current folder; refusing to replace it")
            contents = list(target.iterdir())
            if contents and not ((target / MARKER).is_file() or (target / "report.md").is_file()):
                raise ValueError(
                    f"output folder {target} exists and was not written by gmm-ppl (no params.json or report.md); "
                    "refusing to replace it, even with --force"
                )

    def __enter__(self) -> OutputFolder:
        parent = self.target.parent
        missing = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._created = missing  # innermost first: removed in this order on failure
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.writing-", dir=parent))
        return self

    def commit(self):
        """Move the finished folder into place (after removing an old one under --force)."""
        self._check()
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            os.rmdir(old)
            os.rename(self.target, old)
        os.rename(self.path, self.target)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb):
        if not self.committed:
            self.discard()
        return False

    def discard(self):
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        for p in self._created:
            try:
                p.rmdir()  # only if still empty
            except OSError:
                break
