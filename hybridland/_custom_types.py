"""Shape-annotated array aliases used across hybridland (jaxtyping)."""

from jaxtyping import Array, ArrayLike, Float

FloatArray = Float[Array, "*batch"]
"""A float array of any (possibly empty) batch shape: a scalar per column, or ``[column]``."""

Scalar = Float[Array, ""]
"""A float scalar (one column, one step)."""

ColumnTime = Float[Array, "column time"]
"""A series per column, column-major: ``[column, time]``."""

__all__ = ["Array", "ArrayLike", "ColumnTime", "Float", "FloatArray", "Scalar"]
