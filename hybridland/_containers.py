"""The pytrees that flow through a column model: forcing, state and fluxes.

All water amounts are mm, water fluxes mm day-1, energy fluxes W m-2 (see ``units.py``).
Optional fields are ``None`` when a run has no such input (for example no net radiation);
whether a field is ``None`` is part of the pytree structure, so it is fixed at trace time.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, FloatArray


class State(eqx.Module):
    """Water stores of a column, mm (all >= 0 by construction).

    A store the model does not have is ``None`` (fixed at trace time). The state that a model
    of several parallel components, or with routing, carries from day to day holds each
    component's stores (``[component]`` per column) and the water in transit day by day
    (``routing``, ``[routing_days - 1]``); ``ColumnModel.column_state`` turns it into the
    column's stores, one number per store, which is what ``simulate`` reports.
    """

    swe: FloatArray
    """Snow water equivalent, mm."""
    soil: FloatArray
    """Plant-available soil water in the root zone (above wilting point), mm."""
    groundwater: FloatArray
    """Groundwater (slow) store feeding baseflow, mm (stays 0 when the model has no groundwater)."""
    fast: FloatArray | None = None
    """Upper, fast reservoir fed by the water the root zone does not keep, mm."""
    routing: FloatArray | None = None
    """Water in transit between the column and its outlet (unit-hydrograph routing), mm."""

    @property
    def total(self) -> FloatArray:
        """All water held by the column, mm (of the column's stores, one number each)."""
        return storage_total(self)


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

    def column_axes(self) -> Forcing:
        """``vmap`` axes of a batched forcing ``[column, time]``: columns lead every array
        except a ``[time]`` day of year shared by all columns."""
        axes = jax.tree_util.tree_map(lambda _: 0, self)
        if self.doy.ndim == 1 and self.precip.ndim == 2:
            axes = eqx.tree_at(lambda f: f.doy, axes, None)
        return axes


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
    """Total runoff at the outlet, mm day-1 (water output): surface + subsurface, or, with
    routing, what the routing store releases that day."""
    surface_runoff: FloatArray
    """Runoff generated at the surface: infiltration-partition runoff plus saturation excess,
    or the outflow of the fast reservoir when the model has one, mm day-1 (before routing)."""
    subsurface_runoff: FloatArray
    """Baseflow (or soil drainage when there is no groundwater store), mm day-1 (before
    routing)."""
    drainage: FloatArray
    """Percolation from the soil store, mm day-1 (internal transfer)."""
    water_residual: FloatArray
    """Delta S - (P - E - Q - L) over the step, mm (rounding only, by construction); L is
    ``groundwater_loss`` where the model has one, else 0."""
    percolation: FloatArray | None = None
    """Percolation from the fast reservoir to groundwater, mm day-1 (internal transfer; with a
    fast reservoir)."""
    capillary_rise: FloatArray | None = None
    """Capillary rise from groundwater into the root zone, mm day-1 (internal transfer)."""
    groundwater_loss: FloatArray | None = None
    """Water leaving the column from the groundwater store other than by the outlet (deep
    percolation, export), mm day-1 (water output L, beside E and Q; with a groundwater loss)."""
    infiltration_excess_runoff: FloatArray | None = None
    """The part of the surface runoff that the infiltration capacity made (Horton's mechanism:
    input the unsaturated ground could not take in), mm day-1 before the fast reservoir and
    routing; a diagnostic already counted in ``surface_runoff``, not a separate output (with
    infiltration excess)."""
    latent_heat: FloatArray | None = None
    """Latent heat flux lambda E, W m-2 (when net radiation is known)."""
    sensible_heat: FloatArray | None = None
    """Sensible heat flux H = Rn - G - lambda E - Q_M, W m-2."""
    ground_heat: FloatArray | None = None
    """Ground heat flux G, W m-2."""
    melt_heat: FloatArray | None = None
    """Heat taken up by snowmelt Q_M = L_f x melt, W m-2."""
    energy_residual: FloatArray | None = None
    """Rn - lambda E - H - G - Q_M, W m-2 (rounding only, by construction)."""


STORE_NAMES = ("swe", "soil", "groundwater", "fast", "routing")
"""Every store a column may have, in the order budgets are summed."""


def storage_total(state: State) -> FloatArray:
    """Sum of the stores present in ``state``, mm."""
    total = state.swe + state.soil + state.groundwater
    for name in STORE_NAMES[3:]:
        value = getattr(state, name)
        if value is not None:
            total = total + value
    return total


def storage_change(old: State, new: State) -> FloatArray:
    """Change of the stores from ``old`` to ``new``, mm: each store differenced first (exact for
    day-to-day changes), then summed, so a budget residual shows the model's rounding and not
    that of summing large stores. A routing queue (``[..., days]``) counts as its sum."""
    change = (new.swe - old.swe) + (new.soil - old.soil) + (new.groundwater - old.groundwater)
    if old.fast is not None:
        change = change + (new.fast - old.fast)
    if old.routing is not None:
        change = change + (jnp.sum(new.routing, axis=-1) - jnp.sum(old.routing, axis=-1))
    return change


def zeros_like_state(template: FloatArray) -> State:
    z = jnp.zeros_like(template)
    return State(swe=z, soil=z, groundwater=z)


class Fixed(eqx.Module):
    """Numbers a model reads but never learns (for example the training range of its inputs).

    They are traced like weights, so one compiled program serves every value (a model trained
    on other basins reuses the program), but training leaves them alone (``trainable``) and
    the files of a run's weights do not hold them (``hybridland.train.checkpoint``): the run
    rebuilds them from its own records. A model reads them through ``read``, which also stops
    gradients.
    """

    value: FloatArray

    def read(self) -> FloatArray:
        return jax.lax.stop_gradient(self.value)


def is_fixed(x) -> bool:
    return isinstance(x, Fixed)


def trainable(tree):
    """The inexact arrays of ``tree`` that training changes: all but those held in ``Fixed``
    (which become ``None``), in the structure ``eqx.filter`` gives."""
    spec = jax.tree_util.tree_map(
        lambda x: not is_fixed(x) and eqx.is_inexact_array(x), tree, is_leaf=is_fixed
    )
    return eqx.filter(tree, spec)
