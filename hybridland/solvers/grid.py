"""Grids larger than memory: run the model over an xarray dataset chunked along columns.

``simulate_grid`` maps the jitted model over column chunks with
``xr.apply_ufunc(..., dask="parallelized")``, time being the core dimension, so a dataset
backed by dask (opened lazily from NetCDF or zarr, chunked along ``column``) is simulated
chunk by chunk on whatever scheduler is active — threads, processes or a
``dask.distributed`` cluster — and can be written back without ever being whole in memory.
Every chunk of the same size reuses one compiled program.

The input is a dataset in the canonical layout (dims ``column, time``): ``precipitation``,
``air_temperature_min``, ``air_temperature_max`` and, if present, ``potential_evapotranspiration``,
``net_radiation``, ``ground_heat_flux`` (every canonical variable with a ``Forcing`` field); a ``lat`` coordinate per column. Any ``(column,)`` variable named like a
physical parameter (``theta_cap``, ``root_depth``…, see ``PARAMETER_BOUNDS``) sets that
parameter per column; other parameters take ``params`` (scalars) or their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._containers import Forcing
from .._params import PARAMETER_BOUNDS, Params
from ..io.canonical import CANONICAL_VARIABLES
from ..io.output import (
    OUTPUT_VARIABLES,
    STORES,
    budget_claim,
    budget_variables,
    initial_store_attrs,
    simulation_field,
    variable_attrs,
    with_daily_bounds,
)
from ..column import ColumnModel
from .scan import _ENERGY_NAMES, _lacking, simulate


def _check_available(model: ColumnModel, outputs, specs, energy: bool) -> None:
    """Refuse outputs this model or these data do not have (a store or flux of another
    structure; energy fluxes without net radiation): they came back as None and failed inside
    ``apply_ufunc`` (with dask only at compute time, maybe half way through writing a file)."""
    for o in outputs:
        name = specs[o].field.split(".")[1]
        if _lacking(model, [name]):
            raise ValueError(f"Output {o!r} is a store or flux this model does not have (another "
                             "structure); leave it out of outputs.")
        if name in _ENERGY_NAMES and not energy:
            raise ValueError(f"Output {o!r} needs net_radiation in the dataset, which it lacks; "
                             "add it or leave the output out.")


GRID_FORCING = {
    name: spec.forcing_field
    for name, spec in CANONICAL_VARIABLES.items()
    if spec.forcing_field is not None
}
"""Canonical variable -> ``Forcing`` field read by ``simulate_grid``."""

DEFAULT_OUTPUTS = ("runoff", "evapotranspiration", "soil_water", "snow_water_equivalent")


def simulate_grid(
    ds: xr.Dataset,
    model: ColumnModel,
    params: Params | None = None,
    *,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    dtype=np.float32,
) -> xr.Dataset:
    """Simulate every column of ``ds``; lazy (dask) in, lazy out when ``ds`` is chunked.

    Returns a dataset of the requested ``outputs`` (names of ``hybridland.io.output``'s
    ``OUTPUT_VARIABLES``) with CF attributes, dims ``(column, time)``; each store among them
    comes with its ``<store>_initial`` (dim ``column``, the store before the first day), which
    its ``initial_value`` attribute names, so the water budget can be recomputed from the
    output (``hybridland.io.water_budget_terms``) as from ``simulation_to_dataset``'s.
    """
    specs = {s.name: s for s in OUTPUT_VARIABLES}
    unknown = [o for o in outputs if o not in specs]
    if unknown:
        raise ValueError(f"Unknown output(s) {unknown}; choose from {sorted(specs)}.")
    present = [v for v in GRID_FORCING if v in ds]
    missing = [v for v in ("precipitation", "air_temperature_min", "air_temperature_max")
               if v not in ds]
    if missing or "lat" not in ds.coords:
        raise ValueError(
            f"simulate_grid needs {missing + ([] if 'lat' in ds.coords else ['lat'])} in the "
            "dataset (canonical names, dims column, time)."
        )
    _check_available(model, outputs, specs, "net_radiation" in ds)
    param_vars = [p for p in PARAMETER_BOUNDS if p in ds]
    shaped = [p for p in param_vars if ds[p].dims != ("column",)]
    if shaped:  # they were left out without a word, the defaults used instead
        raise ValueError(
            f"Parameter variable(s) {shaped} of the dataset have dims "
            f"{[ds[p].dims for p in shaped]}; simulate_grid takes one value per column, dims "
            "('column',). Give them per column (or pass params= for values shared by all)."
        )
    n_attributes = max(getattr(part, "n_attributes", 0) or 0
                       for part in (model.et, model.runoff, model.daily))
    if n_attributes:
        raise ValueError(
            f"The model's learned laws read {n_attributes} static attributes, which "
            "simulate_grid does not pass; run it with hybridland.simulate and a Forcing whose "
            "attributes are set, or use a model without attributes."
        )
    stores = [o for o in outputs if specs[o].water_budget == "storage"]
    if not hasattr(ds["time"], "dt"):  # numbers, not dates: every day was day of year 1
        raise ValueError(
            f"The dataset's time axis holds {ds['time'].dtype} values, not dates; decode it "
            "(xarray.open_dataset(..., decode_times=True), with units such as 'days since "
            "1990-01-01') so that the day of year of each step is known.")
    # .dt works for numpy dates and cftime calendars (noleap, 360_day) alike
    doy = np.asarray(ds["time"].dt.dayofyear.values, dtype)
    base = Params.default(dtype=dtype) if params is None else params

    def run_block(lat, *arrays):
        series = dict(zip(present, arrays[: len(present)]))
        per_column = dict(zip(param_vars, arrays[len(present):]))
        forcing = Forcing(
            lat=jnp.asarray(lat, dtype),
            doy=jnp.asarray(doy),
            **{GRID_FORCING[k]: jnp.asarray(v, dtype) for k, v in series.items()},
        )
        block_params = Params(**{
            name: jnp.asarray(per_column.get(name, getattr(base, name)), dtype)
            for name in PARAMETER_BOUNDS
        })
        sim = simulate(model, forcing, block_params)
        result = (
            tuple(np.asarray(simulation_field(sim, specs[o].field), dtype) for o in outputs)
            + tuple(np.asarray(getattr(sim.initial_state, STORES[o]), dtype) for o in stores))
        return result[0] if len(result) == 1 else result  # apply_ufunc wants one array alone

    inputs = [ds["lat"]] + [ds[v] for v in present] + [ds[p] for p in param_vars]
    core = [[]] + [["time"]] * len(present) + [[]] * len(param_vars)
    if ds.chunks:
        inputs = [x.chunk({"time": -1}) if "time" in x.dims else x for x in inputs]
    results = xr.apply_ufunc(
        run_block,
        *inputs,
        input_core_dims=core,
        output_core_dims=[["time"]] * len(outputs) + [[]] * len(stores),
        dask="parallelized",
        output_dtypes=[dtype] * (len(outputs) + len(stores)),
    )
    results = results if isinstance(results, tuple) else (results,)
    # a file without every series of the model's water budget claims no budget
    left_out = [o for o in budget_variables(model) if o not in outputs]
    out = xr.Dataset(
        {o: r.transpose("column", "time").assign_attrs(
            variable_attrs(specs[o], model, budget=not left_out))
         for o, r in zip(outputs, results)}
        | ({} if left_out else
           {f"{o}_initial": r.assign_attrs(initial_store_attrs(specs[o]))
            for o, r in zip(stores, results[len(outputs):])})
    )
    out = with_daily_bounds(out)
    out.attrs["Conventions"] = "CF-1.8"
    out.attrs.update(budget_claim(left_out))
    return out

