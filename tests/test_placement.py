"""Where NUTS runs (``sample_posterior(device=)``, issue 35): the rule that keeps a small
problem off an accelerator, checked with the backend named (this machine has no GPU), and a
run on a named device, the same draws as on JAX's default device."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import gmm_ppl as gp
from gmm_ppl.sampling import NUTS_ACCELERATOR_WORK, nuts_device

CPU = jax.devices("cpu")[0]


@pytest.mark.parametrize("backend", ["gpu", "tpu"])
def test_auto_keeps_small_problems_on_the_cpu_beside_an_accelerator(backend):
    # Old Faithful, K=2: 272 x 2 x 2^2 = 2176 multiply-adds a gradient, far below the bound.
    assert nuts_device("auto", 272, 2, 2, backend=backend) == CPU
    # issue 5's W2 shape: 1e6 rows, K=16, D=8: 1e9, the accelerator (JAX's default device).
    assert nuts_device("auto", 1_000_000, 16, 8, backend=backend) is None
    # The bound itself, by hand: N K D^2 below it is small.
    n = NUTS_ACCELERATOR_WORK // (3 * 4**2)
    assert nuts_device("auto", n, 3, 4, backend=backend) == CPU
    assert nuts_device("auto", n + 1, 3, 4, backend=backend) is None


def test_a_cpu_machine_and_explicit_choices_are_taken_as_they_are():
    assert nuts_device("auto", 272, 2, 2, backend="cpu") is None
    assert nuts_device("default", 272, 2, 2, backend="gpu") is None
    assert nuts_device(CPU, 10**9, 16, 8, backend="gpu") == CPU
    with pytest.raises(ValueError, match="device must be 'auto', 'default' or a jax.Device; got 'cuda'"):
        nuts_device("cuda", 272, 2, 2)


# In a process with two CPU devices: the same run on JAX's default device (the first) and on
# the second, named. Their draws, and whether the second's arrays were on it.
TWO_DEVICES = """
import json
import jax
import numpy as np
import gmm_ppl as gp
from gmm_ppl import posterior
rng = np.random.default_rng(0)
x = np.vstack([rng.normal([0, 0], 0.5, size=(30, 2)), rng.normal([4, 3], 0.7, size=(30, 2))])
options = dict(num_warmup=20, num_samples=30, num_chains=2, modes=1, key=3, progress=False, log_likelihood=False)
seen = []
segment = posterior._nuts_segment
def spy(x, *args, **kwargs):
    seen.append(str(next(iter(x.devices()))))
    return segment(x, *args, **kwargs)
posterior._nuts_segment = spy
default = gp.sample_posterior(x, 2, **options)
named = gp.sample_posterior(x, 2, device=jax.devices()[1], **options)
print(json.dumps({
    "devices": sorted(set(seen)),
    "same": all(np.array_equal(default.posterior[n].values, named.posterior[n].values) for n in posterior.PARAMETERS),
}))
"""


@pytest.mark.slow
def test_a_run_on_a_named_device_runs_there_and_draws_what_the_default_device_draws(tmp_path):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        GMM_PPL_CACHE_DIR=str(tmp_path),
    )
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"devices": ["cpu:0", "cpu:1"], "same": True}


def test_a_bad_device_is_refused_by_name():
    with pytest.raises(ValueError, match="device must be 'auto', 'default' or a jax.Device; got 'gpu0'"):
        gp.sample_posterior(np.zeros((10, 2)) + np.arange(10)[:, None], 2, device="gpu0", progress=False)
