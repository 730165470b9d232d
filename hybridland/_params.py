"""Bounded physical parameters of a column.

Every parameter has a documented physical range. Optimisers never see the bounded value:
``Params.to_unconstrained`` maps each one through a logit onto the real line and
``Params.from_unconstrained`` maps it back through a sigmoid, so any optimiser step lands on a
physically valid parameter set.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import ArrayLike, FloatArray


class Bound(NamedTuple):
    """Physical range, default value, units and meaning of one parameter."""

    low: float
    high: float
    default: float
    units: str
    description: str


PARAMETER_BOUNDS: dict[str, Bound] = {
    "theta_cap": Bound(0.15, 0.55, 0.30, "m3 m-3", "volumetric water content at field capacity"),
    "theta_wp": Bound(0.02, 0.14, 0.10, "m3 m-3", "volumetric water content at wilting point"),
    "root_depth": Bound(0.1, 3.0, 1.0, "m", "root-zone depth"),
    "et_threshold": Bound(
        0.05, 1.0, 0.6, "1", "relative soil storage below which ET falls below demand"
    ),
    "runoff_shape": Bound(
        1.0, 6.0, 2.0, "1", "exponent of the surface-runoff partition (S/Smax)**shape"
    ),
    "soil_drainage": Bound(1e-4, 0.5, 0.01, "day-1", "linear drainage rate of the soil store"),
    "baseflow_rate": Bound(1e-4, 0.5, 0.02, "day-1", "linear recession rate of groundwater"),
    "ddf": Bound(0.5, 8.0, 3.0, "mm degC-1 day-1", "degree-day snowmelt factor"),
    "t_snow": Bound(-3.0, 3.0, 1.0, "degC", "air temperature of a 50/50 rain-snow partition"),
    "t_melt": Bound(-3.0, 3.0, 0.0, "degC", "air temperature above which snow melts"),
    "pet_coefficient": Bound(0.5, 2.0, 1.0, "1", "multiplier on potential evapotranspiration"),
    "ground_heat_fraction": Bound(
        0.0, 0.3, 0.05, "1", "ground heat flux as a fraction of net radiation"
    ),
}


class Params(eqx.Module):
    """Physical parameters of one column (scalars) or many columns (shape ``[column]``).

    Units and ranges are in ``PARAMETER_BOUNDS``. The soil store holds plant-available water,
    so its capacity is ``Smax = 1000 (theta_cap - theta_wp) root_depth`` in mm.
    """

    theta_cap: FloatArray
    theta_wp: FloatArray
    root_depth: FloatArray
    et_threshold: FloatArray
    runoff_shape: FloatArray
    soil_drainage: FloatArray
    baseflow_rate: FloatArray
    ddf: FloatArray
    t_snow: FloatArray
    t_melt: FloatArray
    pet_coefficient: FloatArray
    ground_heat_fraction: FloatArray

    @classmethod
    def default(cls, n_columns: int | None = None, dtype=None, **overrides: ArrayLike) -> Params:
        """Default parameters, scalar or broadcast to ``[n_columns]``; keywords override."""
        unknown = set(overrides) - set(PARAMETER_BOUNDS)
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {sorted(unknown)}; known: {sorted(PARAMETER_BOUNDS)}."
            )
        shape = () if n_columns is None else (n_columns,)
        values = {}
        for name, bound in PARAMETER_BOUNDS.items():
            value = overrides.get(name, bound.default)
            values[name] = jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)
        return cls(**values)

    @property
    def soil_capacity(self) -> FloatArray:
        """Plant-available water capacity Smax, mm."""
        return 1000.0 * (self.theta_cap - self.theta_wp) * self.root_depth

    def to_unconstrained(self) -> Params:
        """Map every bounded parameter to the real line (logit of its position in range)."""

        def fwd(name, value):
            b = PARAMETER_BOUNDS[name]
            u = (value - b.low) / (b.high - b.low)
            u = jnp.clip(u, 1e-6, 1.0 - 1e-6)
            return jnp.log(u) - jnp.log1p(-u)

        return self._map(fwd)

    def from_unconstrained(self) -> Params:
        """Inverse of ``to_unconstrained``: sigmoid onto each parameter's physical range."""

        def inv(name, value):
            b = PARAMETER_BOUNDS[name]
            return b.low + (b.high - b.low) * jax.nn.sigmoid(value)

        return self._map(inv)

    def check_bounds(self) -> None:
        """Raise a ValueError naming every parameter outside its physical range (eager only)."""
        problems = []
        for f in dataclasses.fields(self):
            b = PARAMETER_BOUNDS[f.name]
            v = np.asarray(getattr(self, f.name))
            if not np.all(np.isfinite(v)):
                problems.append(f"{f.name} has non-finite values")
            elif np.any(v < b.low) or np.any(v > b.high):
                problems.append(
                    f"{f.name} spans [{v.min():g}, {v.max():g}] {b.units}, outside its range "
                    f"[{b.low:g}, {b.high:g}] ({b.description})"
                )
        if problems:
            raise ValueError("Parameters out of range: " + "; ".join(problems) + ".")

    def broadcast(self, n_columns: int) -> Params:
        """Every parameter as an array of shape ``[n_columns]``."""
        return self._map(lambda _, v: jnp.broadcast_to(v, (n_columns,)))

    def _map(self, fn) -> Params:
        return type(self)(**{f.name: fn(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)})
