"""The pytrees that flow through a column model: forcing, state and fluxes.

All water amounts are mm, water fluxes mm day-1, energy fluxes W m-2 (see ``units.py``).
Optional fields are ``None`` when a run has no such input (for example no net radiation);
whether a field is ``None`` is part of the pytree structure, so it is fixed at trace time.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ._custom_types import Array, FloatArray


class State(eqx.Module):
    """Water stores of a column, mm (all >= 0 by construction)."""

    swe: FloatArray
    """Snow water equivalent, mm."""
    soil: FloatArray
    """Plant-available soil water in the root zone (above wilting point), mm."""
    groundwater: FloatArray
    """Groundwater store feeding baseflow, mm (stays 0 when the model has no groundwater)."""

    @property
    def total(self) -> FloatArray:
        """All water held by the column, mm."""
        return self.swe + self.soil + self.groundwater


class Forcing(eqx.Module):
    """Meteorological drivers.

    Time series have a trailing time axis (``[time]`` for one column, ``[column, time]`` for
    many); ``lat`` and ``attributes`` are per column and constant in time. Inside
    ``ColumnModel.step`` each series is a scalar (one day).
    """

    precip: FloatArray
    """Precipitation (rain and snow), mm day-1, >= 0."""
    t_min: FloatArray
    """Daily minimum air temperature, degC."""
    t_max: FloatArray
    """Daily maximum air temperature, degC."""
    doy: FloatArray
    """Day of year, 1..366 (used by radiation-based PET)."""
    lat: FloatArray
    """Latitude, degrees north."""
    pet: FloatArray | None = None
    """Potential evapotranspiration, mm day-1 (when given rather than derived)."""
    net_radiation: FloatArray | None = None
    """Daily mean net radiation at the surface, W m-2 (enables the energy balance)."""
    ground_heat: FloatArray | None = None
    """Daily mean ground heat flux, W m-2 (when measured; else a fraction of net radiation)."""
    attributes: Array | None = None
    """Static attributes of the column for learned submodels, ``[n_attributes]`` (normalised)."""

    @property
    def t_mean(self) -> FloatArray:
        """Daily mean air temperature, degC, as the mean of minimum and maximum."""
        return 0.5 * (self.t_min + self.t_max)

    def split_static(self) -> tuple[Forcing, tuple]:
        """Split into (time series only, static per-column parts) for scanning over time."""
        series = eqx.tree_at(
            lambda f: (f.lat, f.attributes), self, (None, None), is_leaf=lambda x: x is None
        )
        return series, (self.lat, self.attributes)

    def with_static(self, static: tuple) -> Forcing:
        """Inverse of ``split_static``: put per-column parts back on a (sliced) series."""
        lat, attributes = static
        return eqx.tree_at(
            lambda f: (f.lat, f.attributes), self, (lat, attributes), is_leaf=lambda x: x is None
        )

    @property
    def n_time(self) -> int:
        return self.precip.shape[-1]


class Fluxes(eqx.Module):
    """Water and energy fluxes of one step (mm day-1, W m-2), with closure residuals."""

    precip: FloatArray
    """Precipitation, mm day-1 (the only water input)."""
    rainfall: FloatArray
    """Liquid part of precipitation, mm day-1."""
    snowfall: FloatArray
    """Solid part of precipitation, mm day-1."""
    snowmelt: FloatArray
    """Melt leaving the snowpack, mm day-1."""
    pet: FloatArray
    """Potential evapotranspiration (demand before water and energy limits), mm day-1."""
    et: FloatArray
    """Actual evapotranspiration, mm day-1 (water output)."""
    runoff: FloatArray
    """Total runoff, surface + subsurface, mm day-1 (water output)."""
    surface_runoff: FloatArray
    """Infiltration-partition runoff plus saturation excess, mm day-1."""
    subsurface_runoff: FloatArray
    """Baseflow (or soil drainage when there is no groundwater store), mm day-1."""
    drainage: FloatArray
    """Percolation from the soil store, mm day-1 (internal transfer)."""
    water_residual: FloatArray
    """Delta S - (P - E - Q) over the step, mm (rounding only, by construction)."""
    latent_heat: FloatArray | None = None
    """Latent heat flux lambda E, W m-2 (when net radiation is known)."""
    sensible_heat: FloatArray | None = None
    """Sensible heat flux H = Rn - G - lambda E, W m-2."""
    ground_heat: FloatArray | None = None
    """Ground heat flux G, W m-2."""
    energy_residual: FloatArray | None = None
    """Rn - lambda E - H - G, W m-2 (rounding only, by construction)."""


def zeros_like_state(template: FloatArray) -> State:
    z = jnp.zeros_like(template)
    return State(swe=z, soil=z, groundwater=z)
