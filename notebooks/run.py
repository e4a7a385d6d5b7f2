"""Re-execute notebooks at full size, in place, outputs saved: `make notebooks`.

Usage: python notebooks/run.py [NOTEBOOK.ipynb ...]   (default: every notebooks/*.ipynb)
GMM_PPL_QUICK is removed from the environment, so the notebooks run at their full sizes.
"""

import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def main(argv):
    os.environ.pop("GMM_PPL_QUICK", None)
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:  # no timestamps: re-running unchanged notebooks changes nothing
            cell.metadata.pop("execution", None)
        nbclient.NotebookClient(
            nb, timeout=1800, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(HERE)}}
        ).execute()
        nbformat.write(nb, path)
        print(f"{path}: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
