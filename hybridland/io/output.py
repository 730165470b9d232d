"""Write a ``Simulation`` as a CF-1.8 NetCDF file whose water budget can be checked from the file.

Every data variable carries ``units`` and ``long_name``, and a CF ``standard_name`` where the CF
standard-name table has one (the closure residuals have none, so they carry a ``comment``
instead; an invented name would make the file non-compliant). Water amounts are written in
``kg m-2`` and water fluxes in ``kg m-2 day-1``: numerically equal to the model's mm and
mm day-1 (1 mm of water over 1 m2 is 1 kg), and convertible to the canonical units of the
standard names (``kg m-2``, ``kg m-2 s-1``).

**The budget from the file alone.** Each water variable has an attribute ``water_budget``:
``input`` (precipitation), ``output`` (evapotranspiration, total runoff and, where the model
has one, the groundwater loss; their components have none) or ``storage`` (each store,
end-of-day value). Each store names its value before the first day in the attribute
``initial_value``, which points at a ``[basin]`` variable ``<store>_initial``. Then, for every
basin and day t (S_0 from the ``*_initial`` variables)::

    sum(storage)_t - sum(storage)_{t-1} = sum(input)_t - sum(output)_t   (kg m-2 per day)

up to the per-step residual, which is written too (``water_residual``), with its running sum
(``water_balance_residual``). ``water_budget_terms`` recomputes the terms from any such file.

**Time.** Each step is a day stamped at its start, with CF bounds ``time_bnds`` over the whole
day: fluxes are means over those bounds (``time: mean``); stores and the running residual are
values at the day's end, the upper bound (``cell_methods`` says so in its comment).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import os
import signal
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._checks import check_time
from ._files import replaced_file, sync_directory

CONVENTIONS = "CF-1.8"
FLUX_UNITS = "kg m-2 day-1"
AMOUNT_UNITS = "kg m-2"
END_OF_DAY = "time: point (comment: the value at the end of the day, the upper bound of time_bnds)"
"""``cell_methods`` of the stores and the running residual: instantaneous values at the end of
each day, whose time coordinate names the day (its start, with ``time_bnds`` the whole day)."""


@dataclasses.dataclass(frozen=True)
class OutputVariable:
    """How one model quantity is written: source field, CF metadata, budget role."""

    name: str
    field: str
    """Dotted path in ``Simulation``, e.g. ``'fluxes.et'``."""
    standard_name: str | None
    units: str
    long_name: str
    water_budget: str | None = None
    """``'input'``, ``'output'``, ``'storage'`` or ``None`` (not a budget term)."""
    cell_methods: str = "time: mean"
    comment: str | None = None


_NO_CF_NAME = "The CF standard-name table has no name for a closure residual, so none is given."

OUTPUT_VARIABLES: tuple[OutputVariable, ...] = (
    OutputVariable(
        "precipitation",
        "fluxes.precip",
        "precipitation_flux",
        FLUX_UNITS,
        "precipitation (rain and snow)",
        "input",
        "time: mean",
    ),
    OutputVariable(
        "rainfall",
        "fluxes.rainfall",
        "rainfall_flux",
        FLUX_UNITS,
        "liquid part of precipitation",
        None,
        "time: mean",
    ),
    OutputVariable(
        "snowfall",
        "fluxes.snowfall",
        "snowfall_flux",
        FLUX_UNITS,
        "solid part of precipitation",
        None,
        "time: mean",
    ),
    OutputVariable(
        "snowmelt",
        "fluxes.snowmelt",
        "surface_snow_melt_flux",
        FLUX_UNITS,
        "melt leaving the snowpack",
        None,
        "time: mean",
    ),
    OutputVariable(
        "potential_evapotranspiration",
        "fluxes.pet",
        "water_potential_evaporation_flux",
        FLUX_UNITS,
        "potential evapotranspiration (demand before water and energy limits)",
        None,
        "time: mean",
    ),
    OutputVariable(
        "evapotranspiration",
        "fluxes.et",
        "water_evapotranspiration_flux",
        FLUX_UNITS,
        "actual evapotranspiration",
        "output",
        "time: mean",
    ),
    OutputVariable(
        "runoff",
        "fluxes.runoff",
        "runoff_flux",
        FLUX_UNITS,
        "total runoff at the outlet (surface + subsurface, after routing where there is routing)",
        "output",
        "time: mean",
    ),
    OutputVariable(
        "surface_runoff",
        "fluxes.surface_runoff",
        "surface_runoff_flux",
        FLUX_UNITS,
        "surface runoff (infiltration partition and saturation excess)",
        None,
        "time: mean",
        "component of runoff",
    ),
    OutputVariable(
        "subsurface_runoff",
        "fluxes.subsurface_runoff",
        "subsurface_runoff_flux",
        FLUX_UNITS,
        "subsurface runoff (baseflow)",
        None,
        "time: mean",
        "component of runoff",
    ),
    OutputVariable(
        "snow_water_equivalent",
        "states.swe",
        "surface_snow_amount",
        AMOUNT_UNITS,
        "snow water equivalent at the end of the day",
        "storage",
        END_OF_DAY,
    ),
    OutputVariable(
        "soil_water",
        "states.soil",
        None,
        AMOUNT_UNITS,
        "plant-available root-zone soil water at the end of the day",
        "storage",
        END_OF_DAY,
        "water above the wilting point only. The CF standard-name table has no name for it "
        "(mass_content_of_water_in_soil_layer_defined_by_root_depth counts all the water of "
        "the root zone, the wilting-point water included).",
    ),
    OutputVariable(
        "groundwater",
        "states.groundwater",
        None,
        AMOUNT_UNITS,
        "groundwater store (below the root zone) at the end of the day",
        "storage",
        END_OF_DAY,
        "linear reservoir feeding baseflow. The CF standard-name table has no name for it "
        "(mass_content_of_water_in_soil_layer needs the layer's depth, which this store does "
        "not have).",
    ),
    OutputVariable(
        "fast_reservoir",
        "states.fast",
        None,
        AMOUNT_UNITS,
        "fast (upper) reservoir below the root zone at the end of the day",
        "storage",
        END_OF_DAY,
        "receives surface runoff and saturation excess; drains by quick flow above a threshold, "
        "interflow and percolation to groundwater. The CF standard-name table has no name for "
        "it.",
    ),
    OutputVariable(
        "water_in_transit",
        "states.routing",
        None,
        AMOUNT_UNITS,
        "runoff generated but not yet at the outlet (routing store) at the end of the day",
        "storage",
        END_OF_DAY,
        "unit-hydrograph routing whose water on its way is a store. The CF standard-name table "
        "has no name for it.",
    ),
    OutputVariable(
        "percolation",
        "fluxes.percolation",
        None,
        FLUX_UNITS,
        "percolation from the fast reservoir to groundwater",
        None,
        "time: mean",
        "internal transfer between stores. The CF standard-name table has no name for it.",
    ),
    OutputVariable(
        "capillary_rise",
        "fluxes.capillary_rise",
        None,
        FLUX_UNITS,
        "capillary rise from groundwater into the root zone",
        None,
        "time: mean",
        "internal transfer between stores. The CF standard-name table has no name for it.",
    ),
    OutputVariable(
        "groundwater_loss",
        "fluxes.groundwater_loss",
        None,
        FLUX_UNITS,
        "water leaving the column from the groundwater store other than by the outlet",
        "output",
        "time: mean",
        "deep percolation or export beyond the outlet: a water output beside "
        "evapotranspiration and runoff, in the water balance. The CF standard-name table has "
        "no name for it.",
    ),
    OutputVariable(
        "infiltration_excess_runoff",
        "fluxes.infiltration_excess_runoff",
        None,
        FLUX_UNITS,
        "surface runoff made by the infiltration capacity (infiltration excess)",
        None,
        "time: mean",
        "the water input that the unsaturated ground could not take in (Horton's "
        "mechanism), which runs off at the surface or, in a model with a fast reservoir, fills "
        "that reservoir: a diagnostic already counted in the runoff, not a separate output. "
        "The CF standard-name table has no name for it.",
    ),
    OutputVariable(
        "latent_heat",
        "fluxes.latent_heat",
        "surface_upward_latent_heat_flux",
        "W m-2",
        "latent heat flux",
        None,
    ),
    OutputVariable(
        "sensible_heat",
        "fluxes.sensible_heat",
        "surface_upward_sensible_heat_flux",
        "W m-2",
        "sensible heat flux",
        None,
    ),
    OutputVariable(
        "ground_heat",
        "fluxes.ground_heat",
        "downward_heat_flux_at_ground_level_in_soil",
        "W m-2",
        "ground heat flux",
        None,
    ),
    OutputVariable(
        "melt_heat",
        "fluxes.melt_heat",
        "surface_snow_melt_heat_flux",
        "W m-2",
        "heat taken up by snowmelt (latent heat of fusion x melt)",
        None,
        "time: mean",
        "the fourth term of the energy balance: net radiation = latent_heat + sensible_heat + "
        "ground_heat + melt_heat",
    ),
    OutputVariable(
        "water_residual",
        "fluxes.water_residual",
        None,
        AMOUNT_UNITS,
        "water balance residual of the day: delta storage - (input - outputs)",
        None,
        "time: sum",
        _NO_CF_NAME,
    ),
    OutputVariable(
        "water_balance_residual",
        "cumulative_water_residual",
        None,
        AMOUNT_UNITS,
        "cumulative water balance residual since the start of the run",
        None,
        END_OF_DAY,
        _NO_CF_NAME + " Compensated (Kahan) sum of water_residual.",
    ),
    OutputVariable(
        "energy_residual",
        "fluxes.energy_residual",
        None,
        "W m-2",
        "surface energy balance residual: Rn - LE - H - G - melt heat",
        None,
        "time: mean",
        _NO_CF_NAME,
    ),
)
"""Every variable ``simulation_to_dataset`` can write (those that are ``None`` are skipped)."""

FAST_OUTFLOW = {
    "long_name": "outflow of the fast reservoir (quick flow and interflow)",
    "comment": "component of runoff. In a model with a fast reservoir, the water that did not "
               "infiltrate (and the saturation excess) fills that reservoir, which drains as "
               "quick flow and interflow, partly below the surface: not surface_runoff_flux, "
               "and the CF standard-name table has no name for it.",
}
"""Attributes of ``surface_runoff`` for a model with a fast reservoir (no standard name)."""

STORES: dict[str, str] = {
    "snow_water_equivalent": "swe",
    "soil_water": "soil",
    "groundwater": "groundwater",
    "fast_reservoir": "fast",
    "water_in_transit": "routing",
}
"""Storage variable -> field of ``State`` (for the ``*_initial`` variables)."""


def initial_store_attrs(spec: OutputVariable) -> dict[str, str]:
    """CF attributes of the ``<store>_initial`` variable that a storage variable's
    ``initial_value`` names (its store before the first day)."""
    return {
        **(
            {"standard_name": spec.standard_name}
            if spec.standard_name is not None
            else {"comment": spec.comment}
        ),
        "long_name": f"{spec.long_name.replace(' at the end of the day', '')} "
        "before the first day",
        "units": spec.units,
        "water_budget": "initial_storage",
        "initial_value_of": spec.name,
    }


def package_version() -> str:
    try:
        return importlib.metadata.version("hybridland")
    except importlib.metadata.PackageNotFoundError:  # running from a bare source tree
        return "unknown"


def describe_model(model) -> str:
    """One line naming the laws of a ``ColumnModel`` (types only, not weights)."""
    if model is None:
        return "unknown model"
    laws = ", ".join(
        f"{name}={type(getattr(model, name)).__name__}"
        for name in ("pet", "et", "runoff")
        if hasattr(model, name)
    )
    groundwater = getattr(model, "groundwater", None)
    structure = "".join(
        f", {name}={getattr(model, name)}"
        for name in getattr(model, "STRUCTURE_OPTIONS", ())
        if getattr(model, name, None)
    )
    daily = getattr(model, "daily", None)
    if daily is not None:
        structure += f", daily={type(daily).__name__}({', '.join(daily.names)})"
    stores = ", ".join(getattr(model, "store_names", ("swe", "soil", "groundwater")))
    return (
        f"hybridland.ColumnModel({laws}, groundwater={groundwater}{structure}): daily "
        f"closure-exact bucket (stores: {stores}); water fluxes limited by available water."
    )


def variable_attrs(spec: OutputVariable, model=None, budget: bool = True) -> dict[str, str]:
    """CF attributes (and the ``water_budget`` role, unless ``budget`` is False: a file
    without every series of the budget) of one output variable of ``model`` (None: any)."""
    attrs = {"long_name": spec.long_name, "units": spec.units, "cell_methods": spec.cell_methods}
    if spec.standard_name is not None:
        attrs["standard_name"] = spec.standard_name
    if spec.water_budget is not None and budget:
        attrs["water_budget"] = spec.water_budget
    if spec.comment is not None:
        attrs["comment"] = spec.comment
    if spec.water_budget == "storage" and budget:
        attrs["initial_value"] = f"{spec.name}_initial"
    if spec.name == "surface_runoff" and getattr(model, "fast_reservoir", False):
        attrs = {k: v for k, v in attrs.items() if k != "standard_name"} | FAST_OUTFLOW
    return attrs


def budget_variables(model=None, sim=None) -> list[str]:
    """The output names of the water-budget terms of ``model`` (a ``ColumnModel``), or, with
    ``model`` None, of the model that made ``sim``: precipitation, ET, runoff, its stores and,
    where it has one, its groundwater loss (a structure's flux is known only from ``model``)."""
    names = []
    for spec in OUTPUT_VARIABLES:
        if spec.water_budget is None:
            continue
        part, field = spec.field.split(".")
        if field in ("precip", "et", "runoff"):
            has = True
        elif model is not None:
            has = field in (model.store_names if part == "states" else model.flux_names)
        else:  # a store's initial value is there whatever the outputs asked for
            has = part == "states" and getattr(sim.initial_state, field) is not None
        if has:
            names.append(spec.name)
    return names


def budget_claim(left_out: Sequence[str]) -> dict[str, str]:
    """The dataset attribute on its water budget: the equation, or why there is none."""
    if left_out:
        return {"water_budget_incomplete": (
            f"the series {', '.join(left_out)} of the water budget were left out of this file, "
            "so the budget cannot be recomputed from it (water_balance_residual still holds "
            "the model's own residual where written)")}
    return {"water_budget_equation": (
        "For each basin and day t: sum(storage)_t - sum(storage)_(t-1) = sum(input)_t - "
        "sum(output)_t + water_residual_t, with the variables whose attribute water_budget is "
        "'storage' (end of day), 'input' and 'output' (per day); sum(storage)_0 from the "
        "variables named by each store's initial_value attribute.")}


def simulation_to_dataset(
    sim,
    columns: Sequence[str],
    time,
    *,
    column_dim: str = "basin",
    coords: Mapping[str, Sequence] | None = None,
    model=None,
    title: str = "hybridland column simulation",
    history: str | None = None,
    attrs: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Turn a ``Simulation`` of ``[column, time]`` series into a CF-annotated ``xr.Dataset``.

    **Arguments:**

    - ``sim``: a ``hybridland.Simulation`` (jax or numpy leaves).
    - ``columns``: column ids, length ``n_columns`` (e.g. basin ids).
    - ``time``: the days, length ``n_time`` (anything ``pandas.DatetimeIndex`` accepts).
    - ``column_dim``: name of the column dimension (``'basin'``, ``'column'``...).
    - ``coords``: extra per-column coordinates (``lat``, ``lon``, ``area_km2``, ``name``...).
    - ``model``: the ``ColumnModel`` run, for the ``model`` description attribute.
    - ``title``, ``history``, ``attrs``: global attributes (``history`` gets a timestamp).

    Variables that are ``None`` in the simulation (e.g. energy fluxes without net radiation)
    are left out. Values keep the simulation's dtype; ``write_netcdf`` chooses the file dtype.
    """
    import pandas as pd

    time_index = pd.DatetimeIndex(time)
    columns = [str(c) for c in columns]
    n_col, n_time = len(columns), len(time_index)
    data_vars: dict[str, xr.DataArray] = {}
    for spec in OUTPUT_VARIABLES:
        value = simulation_field(sim, spec.field)
        if value is None:
            continue
        array = np.asarray(value)
        if array.shape != (n_col, n_time):
            raise ValueError(
                f"Simulation field {spec.field} has shape {array.shape}, expected "
                f"({n_col}, {n_time}) = (len(columns), len(time))."
            )
        data_vars[spec.name] = array, spec
    left_out = budget_terms_left_out(sim, model)  # then the file claims no budget
    data_vars = {name: xr.DataArray(array, dims=(column_dim, "time"),
                                    attrs=variable_attrs(spec, model, budget=not left_out))
                 for name, (array, spec) in data_vars.items()}

    by_name = {s.name: s for s in OUTPUT_VARIABLES}
    for name, state_field in STORES.items():
        spec = by_name[name]
        if getattr(sim.initial_state, state_field) is None or left_out:  # a store it lacks
            continue
        initial = np.asarray(getattr(sim.initial_state, state_field))
        if initial.shape != (n_col,):
            raise ValueError(
                f"initial_state.{state_field} has shape {initial.shape}, expected ({n_col},)."
            )
        data_vars[f"{name}_initial"] = xr.DataArray(
            initial, dims=(column_dim,), attrs=initial_store_attrs(spec)
        )

    return timeseries_dataset(
        data_vars,
        columns,
        time_index,
        column_dim=column_dim,
        coords=coords,
        title=title,
        history=history or "hybridland.io.output.simulation_to_dataset",
        attrs={
            "model": describe_model(model),
            **budget_claim(left_out),
            **(attrs or {}),
        },
    )


def with_daily_bounds(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the CF bounds of its daily steps, stamped at their start: ``time_bnds``
    ``[time, nv]`` from each day's time to the same time a day later, named by ``time``'s
    ``bounds`` attribute, and one encoding of both (``time_units``). ``time_bnds`` is a
    coordinate, so that it is not taken for a data variable (xarray leaves it out of the
    ``coordinates`` attributes when it writes)."""
    start = np.asarray(ds["time"].values)
    # cftime dates (a noleap or 360_day calendar: object arrays) take a datetime.timedelta
    day = _dt.timedelta(days=1) if start.dtype == object else np.timedelta64(1, "D")
    bounds = xr.DataArray(np.stack([start, start + day], axis=1),
                          dims=("time", "nv"), attrs={"long_name": "start and end of each day"})
    time = ds["time"].assign_attrs(bounds="time_bnds")
    time.encoding = {**ds["time"].encoding, **time_units(start)}
    return ds.assign_coords(time=time, time_bnds=bounds)


def time_units(time) -> dict[str, str]:
    """The CF encoding of datetimes ``time`` (not empty): days since the first, in their
    calendar (cftime dates keep theirs: noleap, 360_day...)."""
    time = np.asarray(time)
    if time.dtype == object:
        first = min(time)
        return {"units": f"days since {first.strftime('%Y-%m-%d %H:%M:%S')}",
                "calendar": first.calendar}
    first = np.datetime_as_string(np.min(time), unit="s").replace("T", " ")
    return {"units": f"days since {first}", "calendar": "proleptic_gregorian"}


def timeseries_dataset(
    data_vars: Mapping[str, xr.DataArray | tuple],
    columns: Sequence[str],
    time,
    *,
    column_dim: str = "basin",
    coords: Mapping[str, Sequence] | None = None,
    title: str,
    history: str,
    attrs: Mapping[str, str] | None = None,
    time_long_name: str = ("day (fluxes are totals over the day, time_bnds; stores are values at "
                           "its end)"),
) -> xr.Dataset:
    """A CF ``timeSeries`` dataset of ``data_vars`` on ``columns`` x ``time``: the column id and
    time coordinates (daily steps stamped at their start, with their ``time_bnds``), the
    per-column ``coords`` (``lat``, ``lon``, ``area_km2``, ``name``...) and the global
    attributes (``Conventions``, ``title``, ``history`` with a timestamp, ``source``, then
    ``attrs``). ``featureType: timeSeries`` is declared only where ``coords``
    holds ``lat`` and ``lon``: CF's discrete sampling geometries require a station's position,
    and a file that declared the feature type without one would not comply."""
    import pandas as pd

    # the file declares daily steps (time_bnds, daily totals): refuse any other axis, as
    # the readers do (a day stamped at noon is that day's)
    time_index = check_time(xr.Dataset(coords={"time": pd.DatetimeIndex(time).values}),
                            "the days given for the output")
    columns = [str(c) for c in columns]
    n_col = len(columns)
    coord_vars: dict[str, xr.DataArray] = {
        column_dim: xr.DataArray(
            np.asarray(columns, dtype=str),
            dims=(column_dim,),
            attrs={"long_name": f"{column_dim} identifier", "cf_role": "timeseries_id"},
        ),
        "time": xr.DataArray(
            time_index.values,
            dims=("time",),
            attrs={"standard_name": "time", "long_name": time_long_name, "axis": "T"},
        ),
    }
    for name, values in (coords or {}).items():
        values = np.asarray(values)
        if values.shape != (n_col,):
            raise ValueError(f"Coordinate {name!r} has shape {values.shape}, expected ({n_col},).")
        coord_vars[name] = xr.DataArray(
            values, dims=(column_dim,), attrs=_COORD_ATTRS.get(name, {})
        )

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    global_attrs = {
        "Conventions": CONVENTIONS,
        **({"featureType": "timeSeries"} if {"lat", "lon"} <= set(coord_vars) else {}),
        "title": title,
        "history": f"{stamp}: {history}",
        "source": f"hybridland {package_version()}",
    }
    global_attrs.update(attrs or {})
    return with_daily_bounds(xr.Dataset(dict(data_vars), coords=coord_vars, attrs=global_attrs))


_COORD_ATTRS: dict[str, dict[str, str]] = {
    "lat": {"standard_name": "latitude", "long_name": "basin latitude", "units": "degrees_north"},
    "lon": {"standard_name": "longitude", "long_name": "basin longitude", "units": "degrees_east"},
    "area_km2": {"long_name": "basin drainage area", "units": "km2"},
    "name": {"long_name": "basin name"},
    "state": {"long_name": "US state of the basin outlet"},
}


def budget_terms_left_out(sim, model=None) -> list[str]:
    """The output names of the water-budget series that ``sim`` lacks (left out by
    ``simulate(outputs=...)``) though the model has them (``budget_variables``)."""
    fields = {spec.name: spec.field for spec in OUTPUT_VARIABLES}
    model = model if hasattr(model, "store_names") else None
    return [name for name in budget_variables(model, sim)
            if simulation_field(sim, fields[name]) is None]


def simulation_field(obj, dotted: str):
    """The field at a dotted path of a ``Simulation`` (``None`` where a part is ``None``)."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return obj


def water_budget_terms(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """Recompute the water budget from a dataset alone, in float64 (kg m-2 per day).

    Uses only the ``water_budget`` and ``initial_value`` attributes. Returns ``storage_change``,
    ``input``, ``output`` and ``residual = storage_change - (input - output)`` per column and day,
    and ``cumulative_residual`` (its running sum).
    """
    roles: dict[str, list[str]] = {"input": [], "output": [], "storage": []}
    for name, var in ds.data_vars.items():
        role = var.attrs.get("water_budget")
        if role in roles:
            roles[role].append(str(name))
    if not (roles["input"] and roles["output"] and roles["storage"]):
        why = ds.attrs.get("water_budget_incomplete")
        raise ValueError(f"Dataset lacks water_budget terms: found {roles}"
                         + (f"; {why}." if why else "."))
    absent = [f"{n} (initial value of {ds[n].attrs.get('initial_value_of')})"
              for n in ds.data_vars if ds[n].attrs.get("water_budget") == "initial_storage"
              and ds[n].attrs.get("initial_value_of") not in ds.data_vars]
    if absent:
        raise ValueError(f"The dataset holds {', '.join(absent)} without the store's series, so "
                         "its water budget cannot be recomputed; write every store (simulate "
                         "without outputs=..., or with all of them).")

    def total(names: list[str]) -> xr.DataArray:
        return sum(ds[n].astype(np.float64) for n in names)

    storage = total(roles["storage"])
    initial = sum(ds[ds[n].attrs["initial_value"]].astype(np.float64) for n in roles["storage"])
    previous = xr.concat(
        [initial.expand_dims(time=[ds.time.values[0]]), storage.isel(time=slice(None, -1))],
        dim="time",
    )
    storage_change = storage - previous.assign_coords(time=storage.time)
    inputs, outputs = total(roles["input"]), total(roles["output"])
    residual = storage_change - (inputs - outputs)
    return {
        "storage_change": storage_change,
        "input": inputs,
        "output": outputs,
        "residual": residual,
        "cumulative_residual": residual.cumsum("time"),
    }


def _write_pieces(ds: xr.Dataset):
    """``(dataset, mode)`` pieces that together write ``ds``: everything but the series first
    (``"w"``), then one ``[basin, time]`` series at a time (``"a"``), so that an interrupt waits
    for one variable at most."""
    series = [name for name, var in ds.data_vars.items() if var.ndim >= 2]
    yield ds.drop_vars(series), "w"
    for name in series:
        yield ds[[name]], "a"


_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                      if hasattr(signal, name))
"""Signals held like Ctrl-C where Python handles them (the ``hybridland`` command raises an
interrupt for them: ``cli.entry``)."""


class _InterruptsBetweenSteps:
    """Hold back Ctrl-C (SIGINT), and SIGTERM / SIGHUP where a Python handler takes them, while
    xarray and HDF5 write, and raise them between steps.

    A ``KeyboardInterrupt`` raised inside ``Dataset.to_netcdf`` can leave xarray's HDF5 lock
    held, and its own cleanup then waits for that lock forever (the process hangs with a
    partial file). Here a signal only sets a flag; ``check()`` raises it between steps (Ctrl-C
    as ``KeyboardInterrupt``, the others through their handler), where the caller can remove
    its temporary file. Outside the main thread (where Python delivers no signal) it does
    nothing; an ignored SIGINT stays ignored, and a signal without a Python handler keeps its
    default action.
    """

    def __enter__(self):
        self.pending = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._hold)
            for sig in _HELD_SIGNALS:
                if callable(signal.getsignal(sig)):
                    self.previous[sig] = signal.signal(sig, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        self.pending = signum

    def check(self) -> None:
        signum, self.pending = self.pending, None
        if signum is None:
            return
        handler = self.previous.get(signum)
        if signum == signal.SIGINT and handler is not signal.SIG_IGN:
            raise KeyboardInterrupt
        if callable(handler):
            handler(signum, None)

    def __exit__(self, kind, value, traceback) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if kind is None:
            self.check()


def _time_encoding(ds: xr.Dataset) -> dict[str, dict]:
    """One encoding of each datetime coordinate that has bounds and of its bounds, where the
    dataset lost it (``with_daily_bounds`` sets it): CF wants a coordinate and its bounds in
    the same units, and left alone xarray chooses each one's units apart."""
    encoding = {}
    for name, var in ds.coords.items():
        bounds = var.attrs.get("bounds")
        if (bounds in ds.variables and np.issubdtype(var.dtype, np.datetime64) and var.size
                and "units" not in var.encoding):
            encoding[name] = encoding[bounds] = time_units(var.values)
    return encoding


def write_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    dtype=np.float32,
    compression: int | None = None,
) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file beside it, then ``os.replace``.

    A failure (full disk, interrupted run, bad value) leaves any earlier file at ``path``
    untouched and no partial file behind; Ctrl-C stops the write after the variable being
    written (``KeyboardInterrupt``), never inside HDF5. Float variables are stored as ``dtype``
    (float32 by default: ample for mm-scale budgets, half the size; ``None`` keeps each
    variable's dtype).
    ``compression`` is a zlib level (1-9, with byte shuffling) or ``None`` for none: for daily
    multi-basin output zlib costs several times the write time for about a halving of the size,
    so it is off by default.
    """
    given = Path(path)
    path, file_mode = replaced_file(given)  # a link's target; the replaced file's mode
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"Output folder {directory} does not exist.")
    if compression is not None and not 1 <= compression <= 9:
        raise ValueError(f"compression must be a zlib level 1..9 or None, got {compression}.")
    encoding = {}
    for name, var in ds.variables.items():
        if not np.issubdtype(var.dtype, np.floating):
            continue
        enc: dict = {}
        if dtype is not None and name in ds.data_vars:
            enc["dtype"] = np.dtype(dtype).name
        if compression is not None and var.ndim == 2:
            enc.update(zlib=True, complevel=compression, shuffle=True)
        encoding[name] = enc
    encoding.update(_time_encoding(ds))
    # A hidden name in the same directory: os.replace is atomic only within one file system.
    tmp = directory / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with _InterruptsBetweenSteps() as interrupts:
            for piece, mode in _write_pieces(ds):
                piece.to_netcdf(tmp, mode=mode, engine="netcdf4", format="NETCDF4",
                                encoding={k: v for k, v in encoding.items() if k in piece})
                interrupts.check()
            os.chmod(tmp, file_mode)
            with open(tmp, "rb+") as f:  # flush to disk before the rename makes it visible
                os.fsync(f.fileno())
            interrupts.check()
            os.replace(tmp, path)
            sync_directory(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return given
