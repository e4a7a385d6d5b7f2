"""benchmarks/em.py compares like with like (issue 29): every system gets its column's dtype,
scikit-learn then computes in it, and a ratio against a system that computed in another
precision is refused. The benchmark's timings are not tested; what it gives each system is."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

# loaded by path under a name of its own: benchmarks/ is not a package
_spec = importlib.util.spec_from_file_location(
    "benchmarks_em", Path(__file__).resolve().parent.parent / "benchmarks" / "em.py"
)
em = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(em)

SMALL = {"N": 2_000, "D": 3, "K": 2, "n_iter": 3}


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_starting_array_has_the_columns_dtype(covariance_type, dtype):
    arrays = em.workload_data({**SMALL, "covariance_type": covariance_type}, np.dtype(dtype))
    assert [a.dtype.name for a in arrays] == [dtype] * 4


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_scikit_learn_computes_in_the_dtype_it_is_given(covariance_type):
    """The premise of the fix: float32 data with float32 starts is fitted in float32, and
    the same data with float64 starts (what the benchmark gave it before) in float64."""
    w = {**SMALL, "covariance_type": covariance_type}
    x, weights, means, covariances = em.workload_data(w, np.dtype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 iterations do not converge
        fit, _, computed = em.run_sklearn(x, weights, means, covariances, w, "float32")
        assert computed(fit()) == "float32"
        as64 = [a.astype(np.float64) for a in (weights, means, covariances)]
        fit64, _, _ = em.run_sklearn(x, *as64, w, "float32")
        assert computed(fit64()) == "float64"


def row(system, dtype, computed):
    return {"system": system, "workload": "W1", "dtype": dtype, "computed_dtype": computed}


def test_a_ratio_against_other_arithmetic_is_refused():
    ours = row("gmm_ppl", "float32", "float32")
    assert em.not_comparable(ours, row("scikit-learn", "float32", "float32")) is None
    refused = em.not_comparable(ours, row("scikit-learn", "float32", "float64"))
    assert refused == "no ratio: scikit-learn computed in float64, not float32"
    assert "gmm_ppl computed in float64" in em.not_comparable(row("gmm_ppl", "float32", "float64"))
    rounds = row("rounds", "float32", {"gmm_ppl": "float32", "scikit-learn": "float64"})
    assert em.not_comparable(rounds) == "no ratio: scikit-learn computed in float64, not float32"
    assert em.not_comparable({**rounds, "computed_dtype": {"gmm_ppl": "float32", "scikit-learn": "float32"}}) is None


def test_e_step_work_is_counted_by_hand():
    # W3: per row and component D (D + 1) / 2 multiply-adds for the distance, as many for
    # the moments; W4: four (N, D) x (D, K) products
    assert em.e_step_work(em.WORKLOADS["W3"]) == (2 * 200_000 * 32 * 32 * 33, 200_000 * 32 * 4)
    assert em.e_step_work(em.WORKLOADS["W4"]) == (4 * 2 * 1_000_000 * 64 * 8, 1_000_000 * 64 * 4)
