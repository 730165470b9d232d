"""The column model: one daily step of the water (and energy) balance of one column.

``ColumnModel`` holds its process laws as fields (``pet``, ``et``, ``runoff``), each either a
physical law or a learned network behind the same interface, and composes them in a fixed
order inside a bucket that makes the water balance close by construction:

1. PET demand (law), capped by available energy where net radiation is known;
2. precipitation phase and degree-day melt of the snowpack;
3. rain + melt split into surface runoff (law's fraction) and infiltration, optionally with
   infiltration beyond a daily capacity running off as well (infiltration excess);
4. saturation excess above the soil capacity;
5. actual ET = stress (law) x demand, limited to the soil water present;
6. optionally, capillary rise from groundwater into the root zone;
7. soil drainage to groundwater and baseflow (linear reservoirs, or a soil drainage that
   vanishes as the soil dries, all exactly integrated), optionally less a loss of groundwater
   out of the column (a fourth water output, L);
8. optionally, a fast reservoir that takes the surface runoff and saturation excess and drains
   by quick flow, interflow and percolation to groundwater (the HBV upper zone);
9. optionally, several such buckets in parallel (components, averaged) and a unit-hydrograph
   routing store between the column and its outlet.

Every flux is limited by the water available *before* it is taken, so stores stay >= 0 and
Delta S = P - E - Q (- L) holds to rounding for any inputs and any network weights. Parameters may
vary by day (``daily``, e.g. a sequence network): they stay inside their physical ranges.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import units
from .._containers import Fluxes, Forcing, State, storage_change
from .._params import (
    BUCKET_PARAMETERS,
    CAPILLARY_PARAMETERS,
    DRAINAGE_PARAMETERS,
    FAST_PARAMETERS,
    INFILTRATION_PARAMETERS,
    LOSS_PARAMETERS,
    ROUTING_PARAMETERS,
    AbstractDailyParameters,
    Params,
)
from ..physics import bucket, energy, reservoirs, routing, snow
from ..physics.evaporation import AbstractET, SoilMoistureStressET
from ..physics.pet import AbstractPET, GivenPET
from ..physics.runoff import AbstractRunoff, PowerLawRunoff


class ColumnModel(eqx.Module):
    """A closure-exact bucket column with pluggable PET, ET and runoff laws.

    **Fields:**

    - ``pet``: an ``AbstractPET`` (default: PET given in the forcing).
    - ``et``: an ``AbstractET`` stress law (physical or ``MLPStressET``).
    - ``runoff``: an ``AbstractRunoff`` partition law (physical or ``MLPRunoff``).
    - ``groundwater``: whether soil drainage feeds a groundwater store (baseflow via a second
      linear reservoir) or leaves the column directly as subsurface runoff.
    - ``fast_reservoir``: whether surface runoff and saturation excess feed a fast reservoir
      (quick flow above a threshold, interflow, percolation to groundwater;
      ``physics.reservoirs``) instead of leaving the column the same day.
    - ``capillary_rise``: whether groundwater rises back into a dry root zone (needs
      ``groundwater``).
    - ``nonlinear_drainage``: whether the soil drains at ``soil_drainage x S x (S / Smax) **
      drainage_shape`` (``bucket.power_recession``: as fast as the linear reservoir when full,
      much slower when dry, as HBV's recharge) instead of ``soil_drainage x S``.
    - ``infiltration_excess``: whether the unsaturated share of the basin takes in at most
      ``infiltration_capacity`` mm a day, the rest of its water input running off at the
      surface (Horton's mechanism, which makes the runoff of a dry soil under an intense
      storm; the partition law alone gives a dry soil almost none): infiltration is
      ``(1 - f) min(W, capacity)`` for input W and partition fraction f.
    - ``groundwater_loss``: whether the groundwater store also loses water out of the column
      (at most ``loss_rate`` mm day-1, ``reservoirs.groundwater_loss``; needs ``groundwater``),
      a water output of its own beside E and Q (``Fluxes.groundwater_loss``).
    - ``routing_days``: 0 (runoff reaches the outlet the day it is generated) or the length
      in days (>= 2) of a gamma unit hydrograph whose water in transit is a store
      (``physics.routing``).
    - ``components``: number of parallel buckets per column, each with its own parameters
      where a parameter has a component axis, combined with equal weights (their mean), so
      that each closes its own balance and so does the column.
    - ``daily``: ``None``, or an ``AbstractDailyParameters`` (e.g. a sequence network) that
      gives some parameters a new value every day from the forcing and static attributes;
      ``simulate`` runs it over the series before the time loop.
    """

    pet: AbstractPET = GivenPET()
    et: AbstractET = SoilMoistureStressET()
    runoff: AbstractRunoff = PowerLawRunoff()
    groundwater: bool = eqx.field(static=True, default=True)
    fast_reservoir: bool = eqx.field(static=True, default=False)
    capillary_rise: bool = eqx.field(static=True, default=False)
    nonlinear_drainage: bool = eqx.field(static=True, default=False)
    infiltration_excess: bool = eqx.field(static=True, default=False)
    groundwater_loss: bool = eqx.field(static=True, default=False)
    routing_days: int = eqx.field(static=True, default=0)
    components: int = eqx.field(static=True, default=1)
    daily: AbstractDailyParameters | None = None

    STRUCTURE_OPTIONS: ClassVar[tuple[str, ...]] = (
        "fast_reservoir", "capillary_rise", "nonlinear_drainage", "infiltration_excess",
        "groundwater_loss", "routing_days", "components",
    )
    """The structure switches beyond the basic bucket (those of ``column.Structure``), named
    once for whatever lists them (``io.describe_model``, the ODE solver's refusal)."""

    def __check_init__(self):
        if self.components < 1:
            raise ValueError(f"ColumnModel needs components >= 1, got {self.components}.")
        if self.routing_days == 1 or self.routing_days < 0:
            raise ValueError(
                f"ColumnModel routing_days is 0 (no routing) or >= 2 days, got {self.routing_days}."
            )
        if self.capillary_rise and not self.groundwater:
            raise ValueError("ColumnModel capillary_rise needs a groundwater store (groundwater=True).")
        if self.groundwater_loss and not self.groundwater:
            raise ValueError(
                "ColumnModel groundwater_loss needs a groundwater store (groundwater=True)."
            )

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The ``PARAMETER_BOUNDS`` names this model's laws and structure use."""
        names = list(BUCKET_PARAMETERS)
        for law in (self.et, self.runoff):
            names += [n for n in getattr(law, "parameters", ()) if n not in names]
        if self.fast_reservoir:
            names += FAST_PARAMETERS
        if self.capillary_rise:
            names += CAPILLARY_PARAMETERS
        if self.nonlinear_drainage:
            names += DRAINAGE_PARAMETERS
        if self.infiltration_excess:
            names += INFILTRATION_PARAMETERS
        if self.groundwater_loss:
            names += LOSS_PARAMETERS
        if self.routing_days:
            names += ROUTING_PARAMETERS
        return tuple(names)

    @property
    def store_names(self) -> tuple[str, ...]:
        """The ``State`` fields this model has (the others are None)."""
        return (
            ("swe", "soil", "groundwater")
            + ("fast",) * self.fast_reservoir
            + ("routing",) * bool(self.routing_days)
        )

    @property
    def flux_names(self) -> tuple[str, ...]:
        """The structure-dependent ``Fluxes`` fields this model has (percolation from a fast
        reservoir, capillary rise, groundwater loss, infiltration-excess runoff); the others are
        always there, the energy fluxes wherever net radiation is known."""
        return (
            ("percolation",) * self.fast_reservoir
            + ("capillary_rise",) * self.capillary_rise
            + ("groundwater_loss",) * self.groundwater_loss
            + ("infiltration_excess_runoff",) * self.infiltration_excess
        )

    @property
    def carries_components(self) -> bool:
        """Whether the day-to-day state differs from the column's stores (components or a
        routing queue), so that ``column_state`` is needed to report it."""
        return self.components > 1 or self.routing_days > 0

    def init_state(self, params: Params, soil_fraction: float = 0.5) -> State:
        """The state of one column (scalar ``params``, or ``[component]`` where a parameter
        has a component axis) before its first day: no snow, the soil ``soil_fraction`` full,
        the other stores empty. Columns: map it with ``jax.vmap`` (``simulate`` does)."""
        soil = soil_fraction * params.soil_capacity
        if self.components > 1:
            soil = jnp.broadcast_to(soil, (self.components,))
        zero = jnp.zeros_like(soil)
        return State(
            swe=zero,
            soil=soil,
            groundwater=zero,
            fast=zero if self.fast_reservoir else None,
            routing=(
                jnp.zeros((self.routing_days - 1,), soil.dtype) if self.routing_days else None
            ),
        )

    def column_state(self, state: State) -> State:
        """The column's stores (mm, one number each) of one column's day-to-day ``state``: the
        mean of the components' stores and the sum of the water in transit."""
        if not self.carries_components:
            return state
        mean = _component_mean if self.components > 1 else (lambda x: x)
        return State(
            swe=mean(state.swe),
            soil=mean(state.soil),
            groundwater=mean(state.groundwater),
            fast=None if state.fast is None else mean(state.fast),
            routing=None if state.routing is None else jnp.sum(state.routing, axis=-1),
        )

    def daily_parameters(self, forcing: Forcing, params: Params) -> dict | None:
        """The day-varying parameters of one column, ``{name: [time]}`` (``[time, component]``
        with components), from ``daily`` over the column's whole series; None without one."""
        if self.daily is None:
            return None
        return self.daily(forcing, self.pet(forcing, _defaults_like(params)))

    def step(self, state: State, forcing: Forcing, params: Params) -> tuple[State, Fluxes]:
        """Advance one column by one day.

        **Arguments:** the column's ``state`` (``init_state``), ``forcing`` for one day (every
        series a scalar), the day's ``params`` (scalars, or ``[component]``).
        **Returns:** ``(new_state, fluxes)``, fluxes of the column.
        """
        if not self.carries_components:
            return self._bucket(state, forcing, params)
        dt = units.DT_DAYS
        stores = eqx.tree_at(lambda s: s.routing, state, None, is_leaf=lambda x: x is None)
        if self.components > 1:
            axes = jax.tree_util.tree_map(lambda p: 0 if jnp.ndim(p) else None, params)
            new, fluxes = jax.vmap(self._bucket, in_axes=(0, None, axes))(stores, forcing, params)
            mean = _component_mean
        else:
            new, fluxes = self._bucket(stores, forcing, params)
            mean = lambda x: x  # noqa: E731
        column = jax.tree_util.tree_map(mean, fluxes)
        if self.routing_days:
            shares = routing.gamma_shares(
                params.routing_shape, params.routing_scale, self.routing_days
            )
            queue, outflow = routing.route(state.routing, column.runoff * dt, shares)
        else:
            queue, outflow = None, column.runoff * dt
        # The column's residual from its own stores and fluxes: each component's store change
        # (exact day to day) averaged, plus the change of the water in transit.
        change = mean(storage_change(stores, new))
        if queue is not None:
            change = change + (jnp.sum(queue) - jnp.sum(state.routing))
        losses = 0.0 if column.groundwater_loss is None else column.groundwater_loss * dt
        residual = change - (forcing.precip * dt - column.et * dt - outflow - losses)
        column = eqx.tree_at(
            lambda f: (f.runoff, f.water_residual), column, (outflow / dt, residual)
        )
        new = eqx.tree_at(lambda s: s.routing, new, queue, is_leaf=lambda x: x is None)
        return new, column

    def _bucket(self, state: State, forcing: Forcing, params: Params) -> tuple[State, Fluxes]:
        """One day of one bucket (one component) with this model's laws and structure."""
        dt = units.DT_DAYS
        pet = self.pet(forcing, params)
        soil_rel0 = state.soil / params.soil_capacity
        return bucket_day(
            state,
            forcing,
            params,
            pet,
            partition=lambda: snow.partition_precipitation(forcing, params),
            melt=lambda swe: snow.melt(swe, forcing.t_mean, params, dt),
            # The surface partition sees the start-of-day storage.
            surface_fraction=lambda water_input: self.runoff.surface_fraction(
                soil_rel0, water_input / dt, forcing, pet, params
            ),
            stress=lambda soil_rel: self.et.stress(soil_rel, forcing, pet, params),
            drain=(
                lambda soil: bucket.power_recession(
                    soil, params.soil_capacity, params.soil_drainage, params.drainage_shape, dt
                )
            )
            if self.nonlinear_drainage
            else lambda soil: bucket.recession(soil, params.soil_drainage, dt),
            release=lambda store: bucket.recession(store, params.baseflow_rate, dt),
            groundwater=self.groundwater,
            fast=(lambda store: reservoirs.drain_fast(store, params, dt))
            if self.fast_reservoir
            else None,
            capillary=(
                lambda store, soil: reservoirs.capillary_rise(
                    store, soil, params.soil_capacity, params, dt
                )
            )
            if self.capillary_rise
            else None,
            infiltrate=(lambda water: jnp.minimum(water, params.infiltration_capacity * dt))
            if self.infiltration_excess
            else None,
            loss=(lambda store: reservoirs.groundwater_loss(store, params, dt))
            if self.groundwater_loss
            else None,
        )


def _component_mean(x):
    """The column value of a per-component quantity ``[..., component]`` (equal weights)."""
    return jnp.mean(x, axis=-1)


def _defaults_like(params: Params) -> Params:
    """Default parameters in the dtype of ``params`` (the inputs of a daily-parameter network
    are a fixed transform of the forcing, whatever the parameters are)."""
    return Params.default(dtype=jnp.result_type(params.theta_cap))


def bucket_day(
    state: State,
    forcing: Forcing,
    params: Params,
    pet,
    *,
    partition,
    melt,
    surface_fraction,
    stress,
    drain,
    release,
    groundwater: bool = True,
    fast=None,
    capillary=None,
    infiltrate=None,
    loss=None,
) -> tuple[State, Fluxes]:
    """One day of the closure-exact bucket, given the day's process decisions as callables.

    ``partition() -> (rainfall, snowfall)`` (rates, summing to precipitation);
    ``melt(swe) -> (swe, melt)`` and ``drain(soil) -> (soil, drainage)`` and
    ``release(groundwater) -> (groundwater, baseflow)`` take water from a store (``bucket.take``
    or ``bucket.recession``); ``surface_fraction(water_input)`` and ``stress(soil_rel)`` are in
    [0, 1]. Optional: ``fast(store) -> (store, percolation, outflow)`` drains a fast reservoir
    that then receives the surface runoff and saturation excess (``state.fast``), and
    ``capillary(groundwater, soil) -> (groundwater, rise)`` lifts groundwater into the root
    zone, ``infiltrate(water) -> water`` caps the day's input the unsaturated share of the
    basin can take in (the rest runs off at the surface), and
    ``loss(groundwater) -> (groundwater, loss)`` takes water out of the column from the
    recharged groundwater store before baseflow. The physical laws
    (``ColumnModel.step``) and the emulator (``hybridland.emulator``) are two sets of decisions
    for this one bucket, so both close the water balance the same way: every flux is limited
    before it is taken, additions round towards zero and their exact remainder joins an
    outflow of the same day.
    """
    dt = units.DT_DAYS
    capacity = params.soil_capacity

    # Snow: phase partition, accumulation, melt limited to the pack.
    rainfall, snowfall = partition()
    # Additions to stores round towards zero; the exact remainder joins the liquid path.
    swe, swe_remainder = bucket.accumulate(state.swe, snowfall * dt)
    swe, snowmelt = melt(swe)
    water_input, input_remainder = bucket.accumulate(rainfall * dt, snowmelt)

    # What does not infiltrate runs off: quick + infiltration == water_input exactly.
    fraction = surface_fraction(water_input)
    # Infiltration excess: the unsaturated share of the basin takes in no more than the
    # capacity; what falls on the saturated share runs off whatever the capacity.
    reaching = water_input if infiltrate is None else infiltrate(water_input)
    quick, infiltration = bucket.take(water_input, reaching * (1.0 - fraction))
    horton = None if infiltrate is None else (water_input - reaching) * (1.0 - fraction)
    soil, soil_remainder = bucket.accumulate(state.soil, infiltration)
    quick = quick + (swe_remainder + input_remainder + soil_remainder)
    soil, saturation_excess = bucket.spill(soil, capacity)

    # ET: stress from the post-infiltration storage, limited by energy and by the water.
    et_demand = stress(soil / capacity) * pet
    if forcing.net_radiation is not None:
        et_demand = jnp.minimum(et_demand, energy.energy_limit(forcing, params))
    soil, et = bucket.take(soil, et_demand * dt)

    store, rise, late_remainder = state.groundwater, None, 0.0
    if capillary is not None:  # from the start-of-day groundwater into the root zone
        store, rise = capillary(store, soil)
        soil, late_remainder = bucket.accumulate(soil, rise)

    soil, drainage = drain(soil)
    percolation = None
    if fast is not None:
        reservoir, r1 = bucket.accumulate(state.fast, quick)
        reservoir, r2 = bucket.accumulate(reservoir, saturation_excess)
        reservoir, percolation, surface = fast(reservoir)
        surface = surface + (r1 + r2)
    else:
        reservoir, surface = state.fast, quick + saturation_excess
    lost = None
    if groundwater:
        if percolation is None:
            store, gw_remainder = bucket.accumulate(store, drainage)
        else:
            store, r1 = bucket.accumulate(store, drainage)
            store, r2 = bucket.accumulate(store, percolation)
            gw_remainder = r1 + r2
        if loss is not None:
            store, lost = loss(store)
        store, baseflow = release(store)
        baseflow = baseflow + (gw_remainder + late_remainder)
    else:
        baseflow = drainage if percolation is None else drainage + percolation

    new_state = State(swe=swe, soil=soil, groundwater=store, fast=reservoir)
    return new_state, day_fluxes(
        state,
        new_state,
        forcing,
        params,
        rainfall=rainfall,
        snowfall=snowfall,
        melt=snowmelt,
        pet=pet,
        et=et,
        surface=surface,
        subsurface=baseflow,
        drainage=drainage,
        percolation=percolation,
        capillary_rise=rise,
        groundwater_loss=lost,
        infiltration_excess=horton,
    )


def day_fluxes(
    state: State,
    new_state: State,
    forcing: Forcing,
    params: Params,
    *,
    rainfall,
    snowfall,
    melt,
    pet,
    et,
    surface,
    subsurface,
    drainage,
    percolation=None,
    capillary_rise=None,
    groundwater_loss=None,
    infiltration_excess=None,
) -> Fluxes:
    """Fluxes of one step (rates; depths over the step are divided by ``DT_DAYS``) with the
    water residual and, where net radiation is known, the energy partition and its residual.

    Shared by every solver so that closure is always diagnosed the same way.
    """
    dt = units.DT_DAYS
    runoff = surface + subsurface
    lost = 0.0 if groundwater_loss is None else groundwater_loss
    residual = storage_change(state, new_state) - (forcing.precip * dt - et - runoff - lost)
    energy_fluxes = {}
    if forcing.net_radiation is not None:
        le, h, g, qm, e_res = energy.partition(forcing, params, et / dt, melt / dt)
        energy_fluxes = dict(
            latent_heat=le, sensible_heat=h, ground_heat=g, melt_heat=qm, energy_residual=e_res
        )
    return Fluxes(
        precip=forcing.precip,
        rainfall=rainfall,
        snowfall=snowfall,
        snowmelt=melt / dt,
        pet=pet,
        et=et / dt,
        runoff=runoff / dt,
        surface_runoff=surface / dt,
        subsurface_runoff=subsurface / dt,
        drainage=drainage / dt,
        water_residual=residual,
        percolation=None if percolation is None else percolation / dt,
        capillary_rise=None if capillary_rise is None else capillary_rise / dt,
        groundwater_loss=None if groundwater_loss is None else groundwater_loss / dt,
        infiltration_excess_runoff=None if infiltration_excess is None
        else infiltration_excess / dt,
        **energy_fluxes,
    )
