#!/usr/bin/env bash
# The GPU check, run by hand on a machine with an NVIDIA GPU and JAX's CUDA plugin:
#
#     benchmarks/gpu_check.sh OUT_FOLDER
#
# 1. the fast tests of the EM modules with JAX_PLATFORMS=cuda: the same code, unchanged;
# 2. benchmarks/em.py --gpu: gmm_ppl and gmmx on the GPU against scikit-learn on the CPU
#    (writes benchmarks/results/em_gpu.md; each row is also printed as JSON as it comes);
# 3. benchmarks/chunks.py: EM's time per iteration against the E-step's chunk size.
# Then, in a second call of the device tool (the three above take up to 555 s of its 600):
#     python3 benchmarks/placement.py      # NUTS with the GPU present and without: placement_gpu.md
#
# Python packages missing from that machine's environment can be carried as wheels in .whl/
# (pure-Python ones: numpyro, funsor, makefun, arviz, xarray-einstats, h5netcdf, platformdirs,
# gmmx); they are installed into a folder of their own that comes first on PYTHONPATH.
# For a Python 3.12 machine, fetch them (ignored by git through .git/info/exclude) with
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#         numpyro==0.22.0 funsor==0.4.8 makefun==1.16.0 arviz==0.23.4 xarray-einstats==0.11.0 \
#         h5netcdf==1.8.2 platformdirs gmmx==0.7
# On H200s the whole check ran 498 s (3a1384c), 438 s (75dce55) and 466 s (629a904), plus the
# machine's start of 1-2 minutes.
# Logs and results go to OUT_FOLDER. The time limits keep the whole check within 10 minutes
# (one call of the workplace's device tool).
set -u -o pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_FOLDER}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
JAX_PLATFORMS=cuda python3 -c "import jax, numpyro, sklearn, gmm_ppl; print('jax', jax.__version__, jax.devices(), 'numpyro', numpyro.__version__, 'scikit-learn', sklearn.__version__)" || exit 1

# First the tests, so a failure shows before the benchmarks. Several test processes share
# the GPU, so none may take most of its memory up front.
JAX_PLATFORMS=cuda XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 120 python3 -m pytest -q -n 8 -p no:cacheprovider \
    tests/test_em.py tests/test_kmeans.py tests/test_likelihood.py tests/test_sklearn.py \
    tests/test_reproducibility.py tests/test_estimator.py tests/test_validation.py 2>&1 | tee "$out/pytest_gpu.log" | tail -25

# Each row is printed as it comes, so a run cut short still leaves its rows: write the
# table from them with `python benchmarks/em.py --gpu-table em_gpu_rows.jsonl`.
timeout 360 python3 benchmarks/em.py --gpu | tee "$out/em_gpu_rows.jsonl"
cp benchmarks/results/em_gpu.md "$out/" 2>/dev/null

# The E-step's chunk size on this GPU: the default (stats.accelerator_chunk_elements) and 2^26,
# each in a process of its own (about 12 s each on the H200), with the GPU's peak memory.
JAX_PLATFORMS=cuda timeout 75 python3 benchmarks/chunks.py W2 W3 0 26 | tee "$out/chunks_gpu.md"
