"""The README's Python blocks run, in order, in one namespace: the documentation cannot
drift from the code."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    fit, x = namespace["fit"], namespace["x"]
    assert abs(float(fit.log_likelihood) * x.shape[0] - namespace["enumerated"]) < 1e-3 * x.shape[0]
    assert abs(float(fit.log_likelihood) * x.shape[0] - namespace["marginal"]) < 1e-3 * x.shape[0]
