"""A long session's compiled programs are released before they exhaust the process's memory
mappings (gmm_ppl._map_limit). In a subprocess: the check changes the guard's limit and
clears JAX's caches, which the rest of the suite should not see."""

import json
import subprocess
import sys
import textwrap

import pytest

from gmm_ppl import _map_limit

SESSION = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import gmm_ppl as gp
    from gmm_ppl import _map_limit

    x = np.random.default_rng(0).normal(size=(200, 2))
    fit = lambda: gp.fit_em(x, 2, key=0, n_init=2, max_iter=20, dtype="float64")
    before = fit()
    params = gp.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 2)), np.ones(2))
    gp.component_log_prob(params, x[:10])
    start = _map_limit.count_mappings()
    # A limit 400 mappings away: each new data shape below compiles a program (a JAX array
    # is evaluated at its own shape, not padded to a shared one), about 13 mappings, so 60
    # of them would pass it if nothing were released.
    guard = _map_limit.GUARD
    guard.limit, guard.clear_above = start + 400, start + 200
    counts = []
    for n in range(11, 71):
        gp.component_log_prob(params, jax.device_put(x[:n]))
        counts.append(_map_limit.count_mappings())
    after = fit()
    print(json.dumps({
        "start": start, "counts": counts, "clears": guard.clears,
        "same_fit": bool(np.array_equal(before.params.means, after.params.means))
        and float(before.log_likelihood) == float(after.log_likelihood),
    }))
    """
)


@pytest.mark.skipif(_map_limit.GUARD is None, reason="needs /proc (Linux) for the count and the limit")
def test_compiled_programs_are_released_before_the_mapping_limit():
    run = subprocess.run([sys.executable, "-c", SESSION], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["clears"] >= 1
    grown = [count - out["start"] for count in out["counts"]]
    assert max(grown) < 400, grown  # without the releases: about 60 * 13 = 780
    assert grown[-1] < max(grown)  # a release gave mappings back
    assert out["same_fit"]  # programs compiled again give the same fit


def test_the_count_and_the_limit_are_read_from_proc():
    if _map_limit.GUARD is None:
        assert _map_limit.map_limit() is None or _map_limit.count_mappings() is None
    else:
        assert 0 < _map_limit.count_mappings() < _map_limit.map_limit()
