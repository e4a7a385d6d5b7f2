"""Every notebook in notebooks/ runs top to bottom in quick mode (GMM_PPL_QUICK=1).

The notebooks are executed in a fresh kernel from a copy read here; their outputs are never
written back (`make notebooks` re-executes them at full size and saves the outputs). A cell
that raises fails the test with nbclient's CellExecutionError, which names the cell.
"""

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


# slow: a kernel per notebook, about 20 s each; `make test` (and CI) runs them, plain pytest not.
@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits this process's environment when it starts.
    monkeypatch.setenv("GMM_PPL_QUICK", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
