"""The column model: one daily step of the water (and energy) balance of one column.

``ColumnModel`` holds its process laws as fields (``pet``, ``et``, ``runoff``), each either a
physical law or a learned network behind the same interface, and composes them in a fixed
order inside a bucket that makes the water balance close by construction:

1. PET demand (law), capped by available energy where net radiation is known;
2. precipitation phase and degree-day melt of the snowpack;
3. rain + melt split into surface runoff (law's fraction) and infiltration;
4. saturation excess above the soil capacity;
5. actual ET = stress (law) x demand, limited to the soil water present;
6. soil drainage to groundwater and baseflow (linear reservoirs, exactly integrated).

Every flux is limited by the water available *before* it is taken, so stores stay >= 0 and
Delta S = P - E - Q holds to rounding for any inputs and any network weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp

from . import units
from ._containers import Fluxes, Forcing, State
from ._params import Params
from .physics import bucket, energy, snow
from .physics.evaporation import AbstractET, SoilMoistureStressET
from .physics.pet import PET_LAWS, AbstractPET, GivenPET
from .physics.runoff import AbstractRunoff, PowerLawRunoff

if TYPE_CHECKING:
    from .learned import LSTMRunoff


class ColumnModel(eqx.Module):
    """A closure-exact bucket column with pluggable PET, ET and runoff laws.

    **Fields:**

    - ``pet``: an ``AbstractPET`` (default: PET given in the forcing).
    - ``et``: an ``AbstractET`` stress law (physical or ``MLPStressET``).
    - ``runoff``: an ``AbstractRunoff`` partition law (physical or ``MLPRunoff``).
    - ``groundwater``: whether soil drainage feeds a groundwater store (baseflow via a second
      linear reservoir) or leaves the column directly as subsurface runoff.
    """

    pet: AbstractPET = GivenPET()
    et: AbstractET = SoilMoistureStressET()
    runoff: AbstractRunoff = PowerLawRunoff()
    groundwater: bool = eqx.field(static=True, default=True)

    def init_state(self, params: Params, soil_fraction: float = 0.5) -> State:
        """A snow-free state with the soil ``soil_fraction`` full and empty groundwater."""
        soil = soil_fraction * params.soil_capacity
        zero = jnp.zeros_like(soil)
        return State(swe=zero, soil=soil, groundwater=zero)

    def step(self, state: State, forcing: Forcing, params: Params) -> tuple[State, Fluxes]:
        """Advance one column by one day.

        **Arguments:** scalar ``state`` (mm), ``forcing`` for one day (every series a scalar),
        scalar ``params``. **Returns:** ``(new_state, fluxes)``.
        """
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
            drain=lambda soil: bucket.recession(soil, params.soil_drainage, dt),
            release=lambda store: bucket.recession(store, params.baseflow_rate, dt),
            groundwater=self.groundwater,
        )


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
) -> tuple[State, Fluxes]:
    """One day of the closure-exact bucket, given the day's process decisions as callables.

    ``partition() -> (rainfall, snowfall)`` (rates, summing to precipitation);
    ``melt(swe) -> (swe, melt)`` and ``drain(soil) -> (soil, drainage)`` and
    ``release(groundwater) -> (groundwater, baseflow)`` take water from a store (``bucket.take``
    or ``bucket.recession``); ``surface_fraction(water_input)`` and ``stress(soil_rel)`` are in
    [0, 1]. The physical laws (``ColumnModel.step``) and the emulator
    (``hybridland.emulator``) are two sets of decisions for this one bucket, so both close the
    water balance the same way: every flux is limited before it is taken, additions round
    towards zero and their exact remainder joins surface runoff.
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
    quick, infiltration = bucket.take(water_input, water_input * (1.0 - fraction))
    soil, soil_remainder = bucket.accumulate(state.soil, infiltration)
    quick = quick + (swe_remainder + input_remainder + soil_remainder)
    soil, saturation_excess = bucket.spill(soil, capacity)

    # ET: stress from the post-infiltration storage, limited by energy and by the water.
    et_demand = stress(soil / capacity) * pet
    if forcing.net_radiation is not None:
        et_demand = jnp.minimum(et_demand, energy.energy_limit(forcing, params))
    soil, et = bucket.take(soil, et_demand * dt)

    soil, drainage = drain(soil)
    if groundwater:
        store, gw_remainder = bucket.accumulate(state.groundwater, drainage)
        store, baseflow = release(store)
        baseflow = baseflow + gw_remainder
    else:
        store, baseflow = state.groundwater, drainage

    new_state = State(swe=swe, soil=soil, groundwater=store)
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
        surface=quick + saturation_excess,
        subsurface=baseflow,
        drainage=drainage,
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
) -> Fluxes:
    """Fluxes of one step (rates; depths over the step are divided by ``DT_DAYS``) with the
    water residual and, where net radiation is known, the energy partition and its residual.

    Shared by every solver so that closure is always diagnosed the same way.
    """
    dt = units.DT_DAYS
    runoff = surface + subsurface
    # Difference each store first (exact for day-to-day changes), then the budget terms:
    # the residual then shows the model's rounding, not that of summing large stores.
    storage_change = (
        (new_state.swe - state.swe)
        + (new_state.soil - state.soil)
        + (new_state.groundwater - state.groundwater)
    )
    residual = storage_change - (forcing.precip * dt - et - runoff)
    energy_fluxes = {}
    if forcing.net_radiation is not None:
        le, h, g, e_res = energy.partition(forcing, params, et / dt)
        energy_fluxes = dict(
            latent_heat=le, sensible_heat=h, ground_heat=g, energy_residual=e_res
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
        **energy_fluxes,
    )


def _physics(pet_law, key, n_attributes, width, depth) -> ColumnModel:
    return ColumnModel(pet=pet_law)


def _hybrid(pet_law, key, n_attributes, width, depth) -> ColumnModel:
    import jax

    from .learned import MLPRunoff, MLPStressET

    k_et, k_runoff = jax.random.split(key)
    return ColumnModel(
        pet=pet_law,
        et=MLPStressET(n_attributes, width, depth, key=k_et),
        runoff=MLPRunoff(n_attributes, width, depth, key=k_runoff),
    )


def _lstm(pet_law, key, n_attributes, width, depth) -> LSTMRunoff:
    from .learned import LSTMRunoff

    return LSTMRunoff(n_attributes, width, depth, pet=pet_law, key=key)


_BUILDERS = {"physics": _physics, "hybrid": _hybrid, "lstm": _lstm}

MODEL_KINDS = tuple(_BUILDERS)
"""Kinds of untrained model that ``build_model`` makes (the names used by the CLI and configs)."""

BUCKET_KINDS = ("physics", "hybrid")
"""The kinds that are a ``ColumnModel`` (closure-exact bucket with stores and fluxes, run by
``simulate``); ``lstm`` is a pure data-driven runoff model without a water balance."""


def build_model(
    kind: str,
    *,
    pet: str = "given",
    key=None,
    n_attributes: int = 0,
    width: int = 16,
    depth: int = 2,
) -> ColumnModel | LSTMRunoff:
    """An untrained model: ``physics`` (a ``ColumnModel`` of physical laws), ``hybrid`` (a
    ``ColumnModel`` with MLP ET stress and runoff partition) or ``lstm`` (an ``LSTMRunoff`` of
    ``depth`` layers of ``width`` units); networks get weights drawn from ``key`` and are fed
    ``n_attributes`` static attributes; PET by the law named ``pet`` in ``PET_LAWS``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; choose from {list(MODEL_KINDS)}.")
    return _BUILDERS[kind](PET_LAWS[pet](), key, n_attributes, width, depth)
