"""The Cholesky factor of a precision, U with U U^T = Sigma^{-1}: the E-step's factor for the
full and tied families, made by XLA's own operations on a CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

# Most features for which ``cholesky_precision_xla`` unrolls its two loops over features.
# Unrolled, the loops' steps fuse: Old Faithful (D=2) with 32 restarts, 50 iterations, took
# 2.4-2.6 ms unrolled, 3.0-3.6 ms as loops and 2.8 ms with LAPACK. With many features the
# unrolled program is long to compile (D=32: 1.8 s for the factor alone, 0.2 s as loops).
UNROLLED_MAX_FEATURES = 4


def cholesky_precision(cov):
    """U, upper triangular, with U U^T = cov^{-1}: scikit-learn's precisions_cholesky_,
    L^{-T} for the Cholesky factor L of cov.

    On a CPU it is made by XLA's own operations, not by LAPACK. JAX's LAPACK on a CPU is
    SciPy's OpenBLAS, which gave a batch of 32x32 triangular solves to its own threads; they
    then kept the two cores of the benchmark machine busy while XLA's threads ran the E-step
    that followed: issue 5's W3 E-step (D=32, K=32) took 181 ms with LAPACK's factor in the
    program, 131 ms with this one, and 130 ms with LAPACK and OPENBLAS_NUM_THREADS=1; the
    Cholesky factorisation alone (potrf) did not do it, the triangular solve did. Other
    platforms keep their solvers (cuSOLVER on a GPU), whose kernels a loop would multiply."""
    return jax.lax.platform_dependent(cov, cpu=cholesky_precision_xla, default=cholesky_precision_lapack)


def cholesky_precision_lapack(cov):
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def cholesky_precision_xla(cov):
    """As ``cholesky_precision_lapack``, in two loops over the D features: L column by
    column, then M = L^{-1} row by row; a matrix is NaN from its first pivot that is not
    positive (LAPACK's factor is NaN throughout). cov is symmetrised first, as
    ``jnp.linalg.cholesky`` does, so that a gradient is spread over both triangles."""
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    D = cov.shape[-1]
    features = jnp.arange(D)
    unroll = D <= UNROLLED_MAX_FEATURES

    def column(j, chol):
        # L[:, j] = (cov[:, j] - L[:, :j] L[j, :j]^T) / L[j, j]; columns j.. of chol are still 0
        col = cov[..., :, j] - jnp.einsum("...de,...e->...d", chol, chol[..., j, :])
        pivot = col[..., j, None]
        col = col / jnp.where(pivot > 0, jnp.sqrt(pivot), jnp.nan)
        return chol.at[..., :, j].set(jnp.where(features >= j, col, 0.0))

    def row(i, inverse):
        # M[i] = (e_i - L[i, :i] M[:i]) / L[i, i]; rows i.. of inverse are still 0
        l_i = chol[..., i, :]
        unit = (features == i).astype(cov.dtype)
        return inverse.at[..., i, :].set((unit - jnp.einsum("...e,...ef->...f", l_i, inverse)) / l_i[..., i, None])

    zeros = jnp.zeros_like(cov)
    chol = jax.lax.fori_loop(0, D, column, zeros, unroll=unroll)
    return jnp.swapaxes(jax.lax.fori_loop(0, D, row, zeros, unroll=unroll), -1, -2)
