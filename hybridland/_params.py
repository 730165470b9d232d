"""Bounded physical parameters of a column.

Every parameter has a documented physical range. Optimisers never see the bounded value:
``Params.to_unconstrained`` maps each one through a logit onto the real line and
``Params.from_unconstrained`` maps it back through a sigmoid, so any optimiser step lands on a
physically valid parameter set.
"""

from __future__ import annotations

import abc
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
    # Structure parameters: used only by a ColumnModel with the matching option (see
    # ``ColumnModel.parameter_names``); ranges as in HBV-light (Seibert 2005) and the
    # differentiable HBV of Feng et al. (2022).
    "et_shape": Bound(
        0.3, 5.0, 1.0, "1", "exponent of the ET stress curve (S / (et_threshold Smax)) ** et_shape"
    ),
    "fast_threshold": Bound(
        0.0, 100.0, 20.0, "mm", "storage of the fast reservoir above which quick flow starts"
    ),
    "fast_threshold_rate": Bound(
        0.05, 0.9, 0.3, "day-1", "recession rate of the fast reservoir above its threshold"
    ),
    "fast_rate": Bound(0.01, 0.5, 0.1, "day-1", "linear recession rate of the fast reservoir"),
    "percolation": Bound(
        0.0, 10.0, 2.0, "mm day-1", "largest percolation from the fast reservoir to groundwater"
    ),
    "capillary_rate": Bound(
        0.0, 1.0, 0.05, "day-1", "capillary rise from groundwater into an empty root zone, per day"
    ),
    "drainage_shape": Bound(
        0.0, 6.0, 2.0, "1",
        "exponent of the soil drainage soil_drainage S (S/Smax)**drainage_shape",
    ),
    "routing_shape": Bound(1.0, 6.0, 2.0, "1", "shape of the gamma unit hydrograph"),
    "routing_scale": Bound(0.05, 5.0, 1.0, "day", "scale of the gamma unit hydrograph"),
    "infiltration_capacity": Bound(
        2.0, 200.0, 50.0, "mm day-1",
        "largest daily infiltration into the root zone; water input beyond it runs off "
        "(infiltration excess)",
    ),
    "loss_rate": Bound(
        0.0, 2.0, 0.05, "mm day-1",
        "largest daily loss of groundwater out of the column (deep percolation, export "
        "beyond the outlet)",
    ),
}

BUCKET_PARAMETERS = tuple(PARAMETER_BOUNDS)[:12]
"""The parameters of the basic bucket (snow, soil, groundwater, PET, energy)."""

FAST_PARAMETERS = ("fast_threshold", "fast_threshold_rate", "fast_rate", "percolation")
"""Parameters of the fast reservoir (``ColumnModel(fast_reservoir=True)``)."""

CAPILLARY_PARAMETERS = ("capillary_rate",)
"""Parameters of capillary rise (``ColumnModel(capillary_rise=True)``)."""

DRAINAGE_PARAMETERS = ("drainage_shape",)
"""Parameters of the non-linear soil drainage (``ColumnModel(nonlinear_drainage=True)``)."""

ROUTING_PARAMETERS = ("routing_shape", "routing_scale")
"""Parameters of the unit-hydrograph routing; one value per column, never per component."""

CAPACITY_PARAMETERS = ("theta_cap", "theta_wp", "root_depth")
"""Parameters of the soil capacity ``1000 (theta_cap - theta_wp) root_depth``; static: the
soil store holds water in mm, so a capacity that fell from one day to the next would spill
water no input brought (and the initial store is filled from the static capacity)."""

INFILTRATION_PARAMETERS = ("infiltration_capacity",)
"""Parameters of infiltration excess (``ColumnModel(infiltration_excess=True)``)."""

LOSS_PARAMETERS = ("loss_rate",)
"""Parameters of the groundwater loss out of the column (``ColumnModel(groundwater_loss=True)``)."""


def default_logit(name: str) -> float:
    """The unconstrained value (logit of the position in range) of a parameter's default."""
    b = PARAMETER_BOUNDS[name]
    u = min(max((b.default - b.low) / (b.high - b.low), 1e-6), 1.0 - 1e-6)
    return float(np.log(u) - np.log1p(-u))


def unconstrained(name: str, value: ArrayLike) -> FloatArray:
    """Inverse of ``bounded``: the logit of a value's position in its range. Positions within
    1e-6 of the range from a bound, or beyond it, map to the logit of 1e-6 from that bound (a
    finite start for an optimiser), so such a value comes back moved by up to 1e-6 of its
    range."""
    b = PARAMETER_BOUNDS[name]
    u = jnp.clip((jnp.asarray(value) - b.low) / (b.high - b.low), 1e-6, 1.0 - 1e-6)
    return jnp.log(u) - jnp.log1p(-u)


def bounded(name: str, unconstrained: ArrayLike) -> FloatArray:
    """A parameter from its unconstrained value: a sigmoid onto its physical range."""
    b = PARAMETER_BOUNDS[name]
    return b.low + (b.high - b.low) * jax.nn.sigmoid(unconstrained)


def _slack(b: Bound) -> float:
    return 1e-6 * max(abs(b.low), abs(b.high))


class Params(eqx.Module):
    """Physical parameters of one column (scalars) or many columns (shape ``[column]``).

    In a model of several parallel components a parameter may also carry a trailing component
    axis (``[component]`` for one column, ``[column, component]`` for many); the routing
    parameters never do. Units and ranges are in ``PARAMETER_BOUNDS``. The soil store holds plant-available water,
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
    et_shape: FloatArray
    fast_threshold: FloatArray
    fast_threshold_rate: FloatArray
    fast_rate: FloatArray
    percolation: FloatArray
    capillary_rate: FloatArray
    drainage_shape: FloatArray
    routing_shape: FloatArray
    routing_scale: FloatArray
    infiltration_capacity: FloatArray
    loss_rate: FloatArray

    @classmethod
    def default(cls, n_columns: int | None = None, dtype=None, **overrides: ArrayLike) -> Params:
        """Default parameters, scalar or broadcast to ``[n_columns]``; keywords override (an
        override ``[n_columns, component]`` keeps its component axis)."""
        unknown = set(overrides) - set(PARAMETER_BOUNDS)
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {sorted(unknown)}; known: {sorted(PARAMETER_BOUNDS)}."
            )
        values = {}
        for name, bound in PARAMETER_BOUNDS.items():
            value = jnp.asarray(overrides.get(name, bound.default), dtype=dtype)
            if n_columns is not None:
                # a column axis first; an override's trailing (component) axes are kept
                if value.ndim and value.shape[0] not in (1, n_columns):
                    raise ValueError(
                        f"Parameter {name!r} has {value.shape[0]} values along its first axis "
                        f"for {n_columns} columns; give one value, or one per column.")
                value = jnp.broadcast_to(value, (n_columns, *value.shape[1:]))
            values[name] = value
        return cls(**values)

    @property
    def soil_capacity(self) -> FloatArray:
        """Plant-available water capacity Smax, mm."""
        return 1000.0 * (self.theta_cap - self.theta_wp) * self.root_depth

    def to_unconstrained(self) -> Params:
        """Map every bounded parameter to the real line (logit of its position in range)."""

        return self._map(unconstrained)

    def from_unconstrained(self) -> Params:
        """Inverse of ``to_unconstrained``: sigmoid onto each parameter's physical range."""
        return self._map(bounded)

    def check_bounds(self) -> None:
        """Raise a ValueError naming every parameter outside its physical range (eager only)."""
        problems = []
        for f in dataclasses.fields(self):
            b = PARAMETER_BOUNDS[f.name]
            v = np.asarray(getattr(self, f.name))
            if not np.all(np.isfinite(v)):
                problems.append(f"{f.name} has non-finite values")
            # a float32 sigmoid map may land an ulp outside a bound written in decimal
            elif np.any(v < b.low - _slack(b)) or np.any(v > b.high + _slack(b)):
                problems.append(
                    f"{f.name} spans [{v.min():g}, {v.max():g}] {b.units}, outside its range "
                    f"[{b.low:g}, {b.high:g}] ({b.description})"
                )
        if problems:
            raise ValueError("Parameters out of range: " + "; ".join(problems) + ".")

    def broadcast(self, n_columns: int) -> Params:
        """Every parameter with a leading column axis: a scalar becomes ``[n_columns]``, an
        array keeps its trailing (component) axes."""

        def expand(name, v):
            v = jnp.asarray(v)
            if v.ndim == 0:
                return jnp.broadcast_to(v, (n_columns,))
            if v.shape[0] != n_columns:
                raise ValueError(
                    f"Parameter {name} has shape {v.shape}; expected a scalar or a leading axis "
                    f"of {n_columns} columns."
                )
            return v

        return self._map(expand)

    def _map(self, fn) -> Params:
        return type(self)(**{f.name: fn(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)})


class AbstractDailyParameters(eqx.Module):
    """Parameters that take a new value every day, from the forcing of one column.

    ``__call__(forcing, pet) -> {name: [time]}`` (``[time, component]`` for a model of several
    components) gives bounded physical values (each inside its ``PARAMETER_BOUNDS`` range) for
    the parameters in ``names``; ``forcing`` holds one column's series ``[time]`` (and its
    static ``attributes``) and ``pet`` its PET series ``[time]``, mm day-1. ``ColumnModel``
    holds one as its ``daily`` field and ``simulate`` runs it over the whole series before the
    time loop (``hybridland.learned.DailyParameterLSTM`` is the sequence-network one).
    """

    names: eqx.AbstractVar[tuple[str, ...]]

    @abc.abstractmethod
    def __call__(self, forcing, pet) -> dict[str, FloatArray]:
        """Bounded values ``{name: [time]}`` or ``{name: [time, component]}``."""
