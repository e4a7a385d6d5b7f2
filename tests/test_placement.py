"""Where NUTS runs (``sample_posterior(device=)``, issue 35): the rule that keeps a small
problem off an accelerator, checked with the backend named (this machine has no GPU), and a
run on a named device, the same draws as on JAX's default device."""

import jax
import numpy as np
import pytest

import gmm_ppl as gp
from gmm_ppl.posterior import PARAMETERS
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


def test_a_run_on_a_named_device_draws_what_the_default_device_draws():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal([0, 0], 0.5, size=(30, 2)), rng.normal([4, 3], 0.7, size=(30, 2))])
    options = dict(num_warmup=20, num_samples=30, num_chains=2, modes=1, key=3, progress=False, log_likelihood=False)
    default = gp.sample_posterior(x, 2, **options)
    named = gp.sample_posterior(x, 2, device=CPU, **options)
    for name in PARAMETERS:
        np.testing.assert_array_equal(named.posterior[name].values, default.posterior[name].values, err_msg=name)
    with pytest.raises(ValueError, match="device must be"):
        gp.sample_posterior(x, 2, device="gpu0", **options)
