"""EM beyond one device and beyond memory: rows sharded over a mesh, and blocks read from disk.

The multi-device check runs in a subprocess: JAX fixes its device count when it starts, and
``--xla_force_host_platform_device_count=4`` splits this CPU into four devices.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gmm_ppl as gp

FOUR_DEVICES = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import gmm_ppl as gp
    from gmm_ppl import _validate, em
    from gmm_ppl.params import GMMParams

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1003, 3)) * (k + 1) + 4 * rng.normal(size=3) for k in range(3)])
    mesh = gp.row_mesh()
    out = {"devices": len(jax.devices())}
    for dtype in ("float64", "float32"):
        for name, options in {"kmeans++": dict(key=1, n_init=4), "means": dict(means_init=x[[0, 1500, 2500]])}.items():
            one = gp.fit_em(x, 3, dtype=dtype, chunk_size=512, **options)
            four = gp.fit_em(x, 3, dtype=dtype, chunk_size=512, mesh=mesh, **options)
            out[f"{dtype} {name}"] = {
                "n_iter": [int(one.n_iter), int(four.n_iter)],
                # Largest difference relative to the size of the quantity (absolute below 1).
                **{
                    field: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                                        / np.maximum(np.abs(np.asarray(a, np.float64)), 1.0)))
                    for field, a, b in [("loglik", one.log_likelihood, four.log_likelihood),
                                        *zip(("weights", "means", "covariances"), one.params, four.params)]
                },
            }
    # a mesh as jax.make_mesh makes it (explicit axes by default): the same fit as row_mesh's
    made = jax.make_mesh((4,), ("rows",))
    plain = gp.fit_em(x, 3, dtype="float64", chunk_size=512, mesh=mesh, key=1, n_init=4)
    other = gp.fit_em(x, 3, dtype="float64", chunk_size=512, mesh=made, key=1, n_init=4)
    out["make_mesh"] = [str(made.axis_types), float(np.max(np.abs(plain.params.means - other.params.means)))]
    xs, ws = em.shard_rows(x, np.ones(len(x)), mesh, 512, np.float64)
    out["shard_rows"] = [s.data.shape[0] for s in xs.addressable_shards]
    with _validate.precision("float64"):
        hlo = em._fit_program.optimised.lower(
            xs, ws, jax.random.key(0), GMMParams(None, jnp.asarray(x[:3]), None), None, 1e-3, 1e-6,
            n_components=3, covariance_type="full", n_init=1, init="given", max_iter=100, chunk_size=512,
            row_blocks=4,
        ).compile().as_text()
    out["all_reduce"] = hlo.count("all-reduce")
    out["all_gather"] = hlo.count("all-gather")
    # variational Bayes over the same mesh (float64): every restart's ELBO and the kept q
    for covariance_type in ("full", "diag"):
        one = gp.fit_vb(x, 3, covariance_type=covariance_type, key=1, n_init=3, n_draws=0, tol=1e-8, max_iter=500)
        four = gp.fit_vb(x, 3, covariance_type=covariance_type, key=1, n_init=3, n_draws=0, tol=1e-8, max_iter=500,
                         mesh=mesh)
        out[f"vb {covariance_type}"] = {
            "n_iter": [one.n_iter, four.n_iter],
            "elbos": float(np.max(np.abs(one.restart_elbos - four.restart_elbos) / np.abs(one.restart_elbos))),
            "means": float(np.max(np.abs(one.q.means - four.q.means) / np.maximum(np.abs(one.q.means), 1.0))),
            "covariances": float(np.max(np.abs(one.q.covariances - four.q.covariances)
                                        / np.maximum(np.abs(one.q.covariances), 1.0))),
        }
    try:
        gp.fit_em(x, 3, mesh=mesh, chunk_size=7)
        out["bad_chunk"] = "accepted"
    except ValueError as err:
        out["bad_chunk"] = str(err)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", FOUR_DEVICES], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_fit_on_four_devices_equals_the_fit_on_one(four_devices):
    # Four devices add the same rows' statistics in another order (each device's sum, then an
    # all-reduce), so the fits may differ by round-off only: 16 units in the last place of the
    # dtype, relative (float64: 3.6e-15; measured at most 1.0e-15, and float32 4.8e-7).
    assert four_devices["devices"] == 4
    for dtype in ("float64", "float32"):
        ulps16 = 16 * np.finfo(dtype).eps
        for start in ("kmeans++", "means"):
            result = four_devices[f"{dtype} {start}"]
            assert result["n_iter"][0] == result["n_iter"][1]
            for field in ("loglik", "weights", "means", "covariances"):
                assert result[field] <= ulps16, (dtype, start, field, result)


@pytest.mark.slow
def test_variational_bayes_on_four_devices_equals_it_on_one(four_devices):
    # the same rows' statistics added in another order: round-off only (float64; VB's ELBO is
    # a sum over rows, 3009 here, and each restart's converged q follows it)
    for covariance_type in ("full", "diag"):
        result = four_devices[f"vb {covariance_type}"]
        assert result["n_iter"][0] == result["n_iter"][1]
        for field in ("elbos", "means", "covariances"):
            assert result[field] <= 1e-12, (covariance_type, field, result)


@pytest.mark.slow
def test_a_mesh_from_jax_make_mesh_fits_as_row_mesh_does(four_devices):
    # jax.make_mesh gives explicit axes, under which the E-step once raised ShardingTypeError
    axis_types, difference = four_devices["make_mesh"]
    assert "Explicit" in axis_types and difference == 0.0


@pytest.mark.slow
def test_the_rows_are_split_over_the_devices_and_the_sums_are_all_reduced(four_devices):
    # 3009 rows padded to 6 chunks of 512: 768 rows on each device, and no device gathers
    # the others' rows; the statistics are summed by all-reduce.
    assert four_devices["shard_rows"] == [768] * 4
    assert four_devices["all_reduce"] > 0
    assert four_devices["all_gather"] == 0


@pytest.mark.slow
def test_a_mesh_needs_chunks_that_divide_over_its_devices(four_devices):
    assert "chunk_size (7) must be a multiple of the mesh's 4 devices" in four_devices["bad_chunk"]


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    # Far from the origin, unequal spreads: the blocks must centre their rows as fit_em does.
    return np.concatenate([rng.normal(size=(700, 3)) * (k + 1) + 5 * rng.normal(size=3) + 100 for k in range(3)])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_em_over_blocks_takes_the_same_steps_as_em_in_memory(blobs, covariance_type):
    # 2100 rows in blocks of 500 (the last one short), each block in chunks smaller still.
    start = blobs[[0, 800, 1600]]
    options = dict(covariance_type=covariance_type, means_init=start, dtype="float64", tol=1e-8)
    in_memory = gp.fit_em(blobs, 3, **options)
    blocks = gp.fit_em_blocks(gp.array_blocks(blobs, 500), 3, **options)
    assert int(blocks.n_iter) == int(in_memory.n_iter) > 10
    np.testing.assert_allclose(blocks.trace, in_memory.trace, rtol=1e-12)
    for got, want in zip(blocks.params, in_memory.params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_map_em_over_blocks_from_a_npy_file_equals_em_in_memory(blobs, tmp_path):
    np.save(tmp_path / "x.npy", blobs)
    prior = gp.default_prior(blobs, 3)
    start = gp.GMMParams(np.full(3, 1 / 3), blobs[[0, 800, 1600]], np.broadcast_to(np.eye(3), (3, 3, 3)))
    options = dict(init_params=start, prior=prior, dtype="float64", max_iter=5, tol=0.0)
    in_memory = gp.fit_em(blobs, 3, **options)
    blocks = gp.fit_em_blocks(gp.npy_blocks(tmp_path / "x.npy", block_rows=300), 3, **options)
    np.testing.assert_allclose(blocks.objective, in_memory.objective, rtol=1e-12)
    for got, want in zip(blocks.params, in_memory.params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("weights", ["dirichlet", "dirichlet_process"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_variational_bayes_over_blocks_takes_fit_vbs_steps(blobs, covariance_type, weights, tmp_path):
    """From the same means and prior: every iteration's ELBO and the final q, to round-off
    (the blocks' statistics added in another order); from a .npy file in 300-row blocks."""
    np.save(tmp_path / "x.npy", blobs)
    prior = gp.default_prior(blobs, 3)
    options = dict(covariance_type=covariance_type, weights=weights, prior=prior, means_init=blobs[[0, 800, 1600]],
                   tol=1e-8, max_iter=300)  # fmt: skip
    in_memory = gp.fit_vb(blobs, 3, n_draws=0, **options)
    blocks = gp.fit_vb_blocks(gp.npy_blocks(tmp_path / "x.npy", block_rows=300), 3, **options)
    assert blocks.n_iter == in_memory.n_iter > 3 and blocks.converged
    np.testing.assert_allclose(blocks.trace[: blocks.n_iter], in_memory.trace[: in_memory.n_iter], rtol=1e-12)
    for got, want in zip(blocks.q, in_memory.q, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_variational_bayes_over_blocks_needs_a_prior_and_starts_from_the_first_block(blobs):
    with pytest.raises(ValueError, match="needs a Prior"):
        gp.fit_vb_blocks(gp.array_blocks(blobs, 500), 3, prior="default")
    rows = np.random.default_rng(1).permutation(blobs)
    prior = gp.default_prior(rows, 3)
    fit = gp.fit_vb_blocks(gp.array_blocks(rows, 1000), 3, prior=prior, key=0, n_init=3, tol=1e-6, max_iter=500)
    whole = gp.fit_vb(rows, 3, prior=prior, key=0, n_init=3, tol=1e-6, max_iter=500, n_draws=0)
    assert fit.converged and fit.idata is None
    np.testing.assert_allclose(fit.elbo, whole.elbo, rtol=1e-8)


def test_em_over_many_blocks_in_float32_adds_their_statistics_without_drift(blobs):
    """700 blocks of 3 rows: the blocks' statistics are added with Kahan's compensated sum
    (``stats.compensated_add``, as in-memory EM adds its chunks), so the float32
    fit's objectives stay within 1e-7 of float64 EM's (measured 7.3e-8), the float32 E-step's
    own rounding (in-memory float32 EM: 3e-8 in log-likelihood). Added plainly they drifted to
    1.8e-7 to 4.5e-7, which this bound catches."""
    start = gp.GMMParams(np.full(3, 1 / 3), blobs[[0, 800, 1600]], np.broadcast_to(4 * np.eye(3), (3, 3, 3)))
    options = dict(init_params=start, max_iter=2, tol=0.0)
    exact = gp.fit_em(blobs, 3, dtype="float64", **options)
    blocks = gp.fit_em_blocks(gp.array_blocks(blobs, 3), 3, dtype="float32", **options)
    np.testing.assert_allclose(blocks.trace, exact.trace, rtol=1e-7)
    np.testing.assert_allclose(blocks.log_likelihood, exact.log_likelihood, rtol=1e-7)


def test_em_over_blocks_starts_from_a_fit_of_the_first_block(blobs):
    rows = np.random.default_rng(1).permutation(blobs)  # a file in no particular order
    options = dict(key=0, n_init=3, tol=1e-9, max_iter=500, dtype="float64")
    fit = gp.fit_em_blocks(gp.array_blocks(rows, 1000), 3, **options)
    whole = gp.fit_em(rows, 3, **options)
    assert fit.converged
    np.testing.assert_allclose(fit.log_likelihood, whole.log_likelihood, rtol=1e-8)


def test_em_over_blocks_names_bad_blocks(blobs):
    bad = blobs.copy()
    bad[1500, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gp.fit_em_blocks(gp.array_blocks(bad, 500), 3)
    with pytest.raises(ValueError, match="features"):
        gp.fit_em_blocks(lambda: iter([blobs[:10], blobs[10:20, :2]]), 2)
    with pytest.raises(ValueError, match="no rows"):
        gp.fit_em_blocks(lambda: iter([]), 2)
    with pytest.raises(ValueError, match="more than the 4 rows"):
        gp.fit_em_blocks(gp.array_blocks(blobs[:4], 2), 5)


TWO_PROCESSES = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
    import numpy as np
    import gmm_ppl as gp

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1000, 3)) * (k + 1) + 4 * rng.normal(size=3) for k in range(3)])
    fit = gp.fit_em(x, 3, means_init=x[[0, 1500, 2500]], dtype="float64", chunk_size=512, mesh=gp.row_mesh())
    print(json.dumps({"processes": jax.process_count(), "devices": len(jax.devices()),
                      "loglik": float(fit.log_likelihood), "means": fit.params.means.tolist()}))
    """
)


@pytest.mark.slow
def test_two_processes_through_jax_distributed_fit_what_one_process_fits():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, address, str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1000, 3)) * (k + 1) + 4 * rng.normal(size=3) for k in range(3)])
    alone = gp.fit_em(x, 3, means_init=x[[0, 1500, 2500]], dtype="float64", chunk_size=512)
    for result in results:
        assert result["processes"] == 2 and result["devices"] == 2
        np.testing.assert_allclose(result["loglik"], alone.log_likelihood, rtol=1e-12)
        np.testing.assert_allclose(result["means"], alone.params.means, rtol=1e-12)  # measured: 9e-16 apart


def test_large_arrays_reach_jax_as_private_aligned_copies():
    """``_validate.to_device``: a large array is copied once into 64-byte-aligned memory
    that JAX takes as it is (not copied again at 0.6 GB/s), and that copy is private, so
    changing the caller's array afterwards changes nothing."""
    import jax
    import jax.numpy as jnp

    from gmm_ppl import _validate

    x = np.random.default_rng(0).normal(size=(100_000, 4))[:, 1:]  # 2.4 MB, a strided view
    x[0, :] = [-0.0, 5e-324, 1e-45]  # a signed zero and subnormals (of float64; of float32): bits kept
    for source, dtype in [(x, np.float32), (x.astype(np.float32), None), (np.ascontiguousarray(x), None)]:
        copy = _validate.aligned_copy(source, dtype)  # a cast, then the bit-for-bit copies
        assert copy.ctypes.data % 64 == 0 and copy.flags.c_contiguous
        expected = source.astype(dtype or source.dtype)
        assert copy.dtype == expected.dtype
        np.testing.assert_array_equal(copy.view(np.uint8), expected.view(np.uint8))
    # What the speed rests on: JAX on the CPU takes aligned memory without copying it.
    copy = _validate.aligned_copy(x, np.float32)
    assert jax.device_put(copy).unsafe_buffer_pointer() == copy.ctypes.data
    out = _validate.to_device(x, np.float32)
    assert out.dtype == jnp.float32 and out.shape == x.shape
    expected = x.astype(np.float32)
    x[:] = 0.0
    np.testing.assert_array_equal(np.asarray(out), expected)
    assert _validate.to_device(None, np.float32) is None
    small = _validate.to_device({"tol": 1e-3, "w": np.ones(3)}, np.float32)
    assert small["tol"].dtype == jnp.float32 and small["w"].shape == (3,)
