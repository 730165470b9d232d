"""The networks' matrix products in the precision of their arrays, on every backend.

JAX's default precision for a float32 matrix product depends on the hardware: full float32 on
a CPU, TensorFloat-32 (a 10-bit mantissa) on NVIDIA GPUs from Ampere on, one bfloat16 pass on a
TPU. A product of one column's vector (a matrix-vector product, full float32 on a GPU) and of
many columns' matrix (a matrix-matrix product, TensorFloat-32) then round differently, so a
vmapped run would not match a loop over its columns, nor float32 match float64, to float32
rounding. hybridland's networks are small (tens of units) and their time loops are bound by the
sequence, not by arithmetic, so full precision should cost little (not yet measured on a GPU);
every network method that runs a matrix product does so inside ``full_precision``. A product
given its own ``precision`` (a Flax layer's, say) keeps it.
"""

from __future__ import annotations

import functools

import jax

MATMUL_PRECISION = "highest"
"""``jax.default_matmul_precision`` inside every hybridland network: the arrays' own precision."""


def full_precision(method):
    """``method`` (traced or run) with its matrix products at ``MATMUL_PRECISION``."""

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision(MATMUL_PRECISION):
            return method(*args, **kwargs)

    return wrapped
