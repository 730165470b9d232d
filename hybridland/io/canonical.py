"""The canonical dataset every reader returns: one xarray layout for forcing, targets and statics.

Layout (``validate`` checks it):

- dimensions ``("column", "time")``; ``column`` holds string ids (gauge, site, station), ``time``
  is daily ``datetime64`` (midnight, strictly increasing, one day apart);
- per-column coordinates ``lat`` and ``lon`` (degrees), optional ``area_km2`` and ``name``;
- data variables named as in ``CANONICAL_VARIABLES``, each with CF attributes ``standard_name``,
  ``units`` (the canonical units of the registry) and ``long_name``, plus ``role``:
  ``forcing`` (drives the model), ``target`` (an observation to compare with; NaN where
  missing) or ``static`` (any ``(column,)`` attribute, e.g. aridity; with ``units`` and
  ``long_name``, no standard name needed).

Water fluxes are ``kg m-2 day-1``, numerically mm day-1 (1 mm of water over 1 m2 is 1 kg), so
``to_forcing`` passes them to the model unchanged. ``from_cf`` reads any CF dataset by its
``standard_name``s and converts units at this edge; ``mopex_to_canonical`` puts MOPEX into the
same layout.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from .._containers import Forcing
from ._checks import (
    NEGATIVE_FLOW_FIX,
    PLAUSIBLE_RANGES,
    basin_ids,
    check_dims,
    check_time,
    check_variable,
    iso_day,
)
from ._report import BasinNote, ForcingDataError, list_notes
from .mopex import PET_SOURCES, T_TOLERANCE, TEMPERATURE_UNITS, MopexForcing, load_mopex

DIMS = ("column", "time")
ROLES = ("forcing", "target", "static")
FLUX = "kg m-2 day-1"
LAYOUT = "the canonical layout (dims column, time; see hybridland.io.canonical)"


@dataclasses.dataclass(frozen=True)
class VariableSpec:
    """One canonical variable: CF standard name, canonical units, role, ``Forcing`` field."""

    standard_name: str
    units: str
    role: str
    long_name: str
    forcing_field: str | None = None


CANONICAL_VARIABLES: dict[str, VariableSpec] = {
    "precipitation": VariableSpec(
        "precipitation_flux", FLUX, "forcing", "precipitation (rain and snow)", "precip"
    ),
    "air_temperature_min": VariableSpec(
        "air_temperature", "degC", "forcing", "daily minimum air temperature", "t_min"
    ),
    "air_temperature_max": VariableSpec(
        "air_temperature", "degC", "forcing", "daily maximum air temperature", "t_max"
    ),
    "potential_evapotranspiration": VariableSpec(
        "water_potential_evaporation_flux", FLUX, "forcing", "potential evapotranspiration", "pet"
    ),
    "net_radiation": VariableSpec(
        "surface_net_downward_radiative_flux",
        "W m-2",
        "forcing",
        "daily mean net radiation at the surface",
        "net_radiation",
    ),
    "ground_heat_flux": VariableSpec(
        "downward_heat_flux_at_ground_level_in_soil",
        "W m-2",
        "forcing",
        "daily mean ground heat flux",
        "ground_heat",
    ),
    "streamflow": VariableSpec("runoff_flux", FLUX, "target", "observed streamflow per area"),
    "evapotranspiration": VariableSpec(
        "water_evapotranspiration_flux", FLUX, "target", "observed evapotranspiration"
    ),
    "latent_heat_flux": VariableSpec(
        "surface_upward_latent_heat_flux", "W m-2", "target", "observed latent heat flux"
    ),
    "sensible_heat_flux": VariableSpec(
        "surface_upward_sensible_heat_flux", "W m-2", "target", "observed sensible heat flux"
    ),
    "soil_moisture": VariableSpec(
        "volume_fraction_of_condensed_water_in_soil",
        "1",
        "target",
        "observed volumetric soil moisture (m3 m-3)",
    ),
}
"""Canonical name -> spec. Several datasets may add suffixed targets (``soil_moisture_10cm``):
a data variable ``<name>_<suffix>`` with role ``target`` follows the spec of ``<name>``."""

REQUIRED_FORCING = ("precipitation", "air_temperature_min", "air_temperature_max")
PET_VARIABLE = "potential_evapotranspiration"
ENERGY_VARIABLES = ("net_radiation", "ground_heat_flux")

# --- units: accepted spellings -> converter to the canonical units --------------------------


def _scale(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: a * k


UNIT_CONVERSIONS: dict[str, dict[str, Callable[[np.ndarray], np.ndarray]]] = {
    FLUX: {
        **dict.fromkeys(
            ["kg m-2 day-1", "kg m-2 d-1", "mm day-1", "mm d-1", "mm/day", "mm/d", "kg/m2/day"],
            _scale(1.0),
        ),
        **dict.fromkeys(["kg m-2 s-1", "mm s-1", "mm/s", "kg/m2/s"], _scale(86400.0)),
        **dict.fromkeys(["m s-1", "m/s"], _scale(86400.0 * 1000.0)),  # liquid water equivalent
        **dict.fromkeys(["mm h-1", "mm hr-1", "mm/h", "mm/hr"], _scale(24.0)),
        **dict.fromkeys(["m day-1", "m d-1", "m/day"], _scale(1000.0)),
    },
    "degC": {
        **dict.fromkeys([*sorted(TEMPERATURE_UNITS), "c"], _scale(1.0)),
        **dict.fromkeys(["k", "kelvin", "degk", "degree_kelvin"], lambda a: a - 273.15),
    },
    "W m-2": {
        **dict.fromkeys(["w m-2", "w/m2", "w m-2 s-0", "w/m^2"], _scale(1.0)),
        **dict.fromkeys(["mj m-2 day-1", "mj m-2 d-1", "mj/m2/day"], _scale(1e6 / 86400.0)),
    },
    "1": {
        **dict.fromkeys(["1", "m3 m-3", "m3/m3", "m3*m-3", "m m-1", "fraction", "-"], _scale(1.0)),
        **dict.fromkeys(["%", "percent", "% vol", "%vol"], _scale(0.01)),
    },
}
"""Canonical units -> {accepted spelling (normalised, see ``normalise_units``): converter}."""


def normalise_units(units: str) -> str:
    """Lower case, blanks collapsed, ``^`` and ``**`` dropped (``'kg m^-2'`` -> ``'kg m-2'``)."""
    u = " ".join(str(units).split()).lower()
    return u.replace("**", "").replace("^", "")


def converter(units: str | None, canonical: str, variable: str, source: str) -> Callable:
    """The function taking values in ``units`` to ``canonical``; refuse unknown units."""
    table = UNIT_CONVERSIONS[canonical]
    if units is not None and normalise_units(units) in table:
        return table[normalise_units(units)]
    what = "no units attribute" if units is None else f"units '{units}'"
    raise ForcingDataError(
        f"Variable '{variable}' in {source} has {what}, which hybridland cannot convert to "
        f"{canonical} (it knows: {', '.join(sorted(table))}). Set a units attribute it knows.",
        variable=variable,
    )


def _identity_spellings(canonical: str) -> frozenset[str]:
    table = UNIT_CONVERSIONS[canonical]
    probe = np.array([3.0])
    return frozenset(u for u, f in table.items() if np.array_equal(f(probe), probe))


def spec_of(name: str) -> VariableSpec | None:
    """The spec of a canonical name, or of ``<name>_<suffix>`` (e.g. ``soil_moisture_10cm``)."""
    if name in CANONICAL_VARIABLES:
        return CANONICAL_VARIABLES[name]
    for base, spec in CANONICAL_VARIABLES.items():
        if name.startswith(base + "_") and spec.role == "target":
            return spec
    return None


# --- building ---------------------------------------------------------------------------------


def make_dataset(
    ids: Sequence[str],
    time,
    lat,
    lon,
    series: Mapping[str, np.ndarray],
    *,
    statics: Mapping[str, tuple[np.ndarray, str, str]] | None = None,
    area_km2=None,
    name: Sequence[str] | None = None,
    attrs: Mapping[str, str] | None = None,
    comments: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """A canonical dataset from ``[column, time]`` arrays already in canonical units.

    ``statics`` maps a name to ``(values [column], units, long_name)``; ``comments`` adds a CF
    ``comment`` (e.g. how a value was derived) to named variables.
    """
    n = len(ids)
    data_vars = {}
    for var, values in series.items():
        spec = spec_of(var)
        if spec is None:
            known = ", ".join(CANONICAL_VARIABLES)
            raise ValueError(f"'{var}' is not a canonical variable ({known}).")
        a = np.asarray(values, dtype=np.float64).reshape(n, -1)
        var_attrs = {
            "standard_name": spec.standard_name,
            "units": spec.units,
            "long_name": spec.long_name,
            "role": spec.role,
        }
        if comments and var in comments:
            var_attrs["comment"] = comments[var]
        data_vars[var] = (DIMS, a, var_attrs)
    for var, (values, units, long_name) in (statics or {}).items():
        data_vars[var] = (
            ("column",),
            np.asarray(values, dtype=np.float64).reshape(n),
            {"units": units, "long_name": long_name, "role": "static"},
        )
    coords = {
        "column": np.asarray([str(i) for i in ids], dtype=str),
        "time": pd.DatetimeIndex(np.asarray(time)).normalize().astype("datetime64[ns]"),
        "lat": ("column", np.asarray(lat, np.float64).reshape(n),
                {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("column", np.asarray(lon, np.float64).reshape(n),
                {"standard_name": "longitude", "units": "degrees_east"}),
    }
    if area_km2 is not None:
        coords["area_km2"] = ("column", np.asarray(area_km2, np.float64).reshape(n),
                              {"units": "km2", "long_name": "catchment area"})
    if name is not None:
        coords["name"] = ("column", np.asarray([str(s) for s in name], dtype=str))
    ds = xr.Dataset(data_vars, coords=coords, attrs={"Conventions": "CF-1.8", **(attrs or {})})
    return ds


def climate_statics(
    precip: np.ndarray, t_mean: np.ndarray, time, pet: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray, str, str]]:
    """Per-column climate indices from ``[column, time]`` series (NaN days ignored).

    - ``p_mean``: mean precipitation, mm day-1;
    - ``aridity``: mean PET / mean P (only when ``pet`` is given);
    - ``p_t_correlation``: Pearson correlation between the 12 long-term monthly means of
      precipitation and of mean air temperature: +1 summer-wet, -1 winter-wet, near 0 uniform.
      (Temperature, not PET, so that it exists whatever the PET source; their seasonal cycles
      are nearly in phase.) Not CAMELS' ``p_seasonality`` (Addor et al. 2017, the signed
      amplitude of a sine fitted to the daily cycle, which ``load_camels`` passes through): a
      different index on another scale, so another name.
    - ``frac_snow``: share of precipitation falling on days with mean air temperature < 0 degC.
    """
    precip = np.asarray(precip, np.float64)
    t_mean = np.asarray(t_mean, np.float64)
    month = pd.DatetimeIndex(time).month.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p_mean = np.nanmean(precip, axis=1)
            pm = np.stack([np.nanmean(precip[:, month == m], axis=1) for m in range(1, 13)], 1)
            tm = np.stack([np.nanmean(t_mean[:, month == m], axis=1) for m in range(1, 13)], 1)
            pa, ta = pm - pm.mean(1, keepdims=True), tm - tm.mean(1, keepdims=True)
            season = (pa * ta).sum(1) / np.sqrt((pa**2).sum(1) * (ta**2).sum(1))
            both = np.isfinite(precip) & np.isfinite(t_mean)
            snow = np.where(both & (t_mean < 0.0), precip, 0.0).sum(1)
            frac_snow = snow / np.where(both, precip, 0.0).sum(1)
            out = {
                "p_mean": (p_mean, "kg m-2 day-1", "mean precipitation"),
                "p_t_correlation": (
                    season,
                    "1",
                    "correlation of monthly mean precipitation with monthly mean temperature",
                ),
                "frac_snow": (
                    frac_snow,
                    "1",
                    "fraction of precipitation on days with mean air temperature below 0 degC",
                ),
            }
            if pet is not None:
                out["aridity"] = (
                    aridity_index(precip, pet),
                    "1",
                    "aridity index: mean potential evapotranspiration / mean precipitation",
                )
    return out


def aridity_index(precip, pet) -> np.ndarray:
    """Mean PET / mean P per row of ``[column, time]`` series (NaN days ignored; NaN for a
    column without data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(pet, np.float64), axis=1) / np.nanmean(
            np.asarray(precip, np.float64), axis=1
        )


# --- validation -------------------------------------------------------------------------------


def validate(
    ds: xr.Dataset,
    *,
    pet_source: str = "given",
    energy: bool = True,
    require_forcing: bool = True,
    source: str = "<dataset>",
) -> None:
    """Refuse a dataset that is not canonical, with a ``ForcingDataError`` naming the variable
    (and the columns where the problem is per column).

    - ``pet_source``: ``'given'`` needs ``potential_evapotranspiration``; ``'hargreaves'`` or
      ``'oudin'`` need only precipitation and temperature (and finite ``lat``).
    - ``energy``: also check ``net_radiation`` / ``ground_heat_flux`` when present (they go into
      the ``Forcing``); with ``False`` they are ignored.
    - ``require_forcing``: ``False`` for target-only datasets (e.g. ISMN soil moisture).
    """
    if pet_source not in PET_SOURCES:
        raise ValueError(f"pet_source must be one of {PET_SOURCES}, got {pet_source!r}.")
    for dim in DIMS:
        if dim not in ds.dims:
            raise ForcingDataError(
                f"{source} has no '{dim}' dimension (dims: {tuple(ds.dims)}); needs {LAYOUT}.",
                variable=dim,
            )
    time = check_time(ds, source)
    stamps = pd.DatetimeIndex(ds["time"].values)
    if (stamps != time).any():
        raise ForcingDataError(
            f"The 'time' coordinate of {source} is not at midnight (e.g. {stamps[0]}); give daily "
            "values stamped with their day.",
            variable="time",
        )
    ids = basin_ids(ds, "column")
    for coord in ("lat", "lon"):
        if coord not in ds.coords or ds[coord].dims != ("column",):
            raise ForcingDataError(
                f"Coordinate '{coord}' (degrees, per column) is missing from {source} or is not "
                "along 'column'; every column needs its position.",
                variable=coord,
            )
    lat = np.asarray(ds["lat"].values, np.float64)
    bad = ~np.isfinite(lat) | (np.abs(lat) > 90)
    if bad.any() and (require_forcing and pet_source != "given"):
        cols = [ids[i] for i in np.flatnonzero(bad)]
        raise ForcingDataError(
            f"Coordinate 'lat' is missing or outside [-90, 90] for column(s) {', '.join(cols)} "
            f"of {source}; PET law '{pet_source}' needs it.",
            variable="lat",
            basins=cols,
        )

    for var in ds.data_vars:
        role = ds[var].attrs.get("role")
        if role not in ROLES:
            raise ForcingDataError(
                f"Variable '{var}' in {source} has role {role!r}; set the attribute 'role' to one "
                f"of {ROLES}.",
                variable=str(var),
            )
        if role == "static":
            missing = [a for a in ("units", "long_name") if a not in ds[var].attrs]
            if ds[var].dims != ("column",) or missing:
                raise ForcingDataError(
                    f"Static variable '{var}' in {source} has dims {ds[var].dims} and lacks "
                    f"{missing or 'nothing'}; a static needs dims ('column',), units and "
                    "long_name.",
                    variable=str(var),
                )
            continue
        spec = spec_of(str(var))
        if spec is None:
            raise ForcingDataError(
                f"Variable '{var}' in {source} has role '{role}' but is not a canonical variable "
                f"({', '.join(CANONICAL_VARIABLES)}); rename it or make it static.",
                variable=str(var),
            )
        if role != spec.role or ds[var].attrs.get("standard_name") != spec.standard_name:
            raise ForcingDataError(
                f"Variable '{var}' in {source} has role {role!r} and standard_name "
                f"{ds[var].attrs.get('standard_name')!r}; expected {spec.role!r} and "
                f"{spec.standard_name!r}.",
                variable=str(var),
            )
        check_variable(
            ds,
            str(var),
            (_identity_spellings(spec.units), spec.units),
            source,
            dims=DIMS,
            layout=LAYOUT,
        )

    if "streamflow" in ds.data_vars:  # a target: gaps are NaN, never a negative marker
        _refuse(np.asarray(ds["streamflow"].transpose(*DIMS).values, np.float64) < 0,
                "streamflow", ids, time, source, "negative",
                "Streamflow cannot be negative: " + NEGATIVE_FLOW_FIX)
    if not require_forcing:
        return
    needed = list(REQUIRED_FORCING) + ([PET_VARIABLE] if pet_source == "given" else [])
    if energy:
        needed += [v for v in ENERGY_VARIABLES if v in ds.data_vars]
    for var in needed:
        hint = (
            "pet_source='given' needs it. Add it, or derive PET with pet_source='hargreaves' "
            "or 'oudin'"
            if var == PET_VARIABLE
            else "every run needs it. Add it to the dataset"
        )
        check_variable(
            ds, var, (_identity_spellings(CANONICAL_VARIABLES[var].units),
                      CANONICAL_VARIABLES[var].units), source, hint, dims=DIMS, layout=LAYOUT,
        )
        a = np.asarray(ds[var].transpose(*DIMS).values, np.float64)
        _refuse(~np.isfinite(a), var, ids, time, source, "missing (NaN or inf)",
                "Forcing cannot have gaps: fill them or choose a period without gaps")
        if var == "precipitation":
            _refuse(a < 0, var, ids, time, source, "negative",
                    "Precipitation cannot be negative: correct these values")
        if var == PET_VARIABLE:
            _refuse(a < 0, var, ids, time, source, "negative",
                    "Potential evapotranspiration cannot be negative: correct these values, "
                    "or derive PET from temperature (pet_source='hargreaves' or 'oudin')")
        if var in PLAUSIBLE_RANGES:
            _, low, high, units, fix = PLAUSIBLE_RANGES[var]
            _refuse((a < low) | (a > high), var, ids, time, source,
                    f"outside [{low:g}, {high:g}] {units}, beyond any climate on Earth,",
                    fix.rstrip("."))
    t_min, t_max = (np.asarray(ds[v].transpose(*DIMS).values, np.float64)
                    for v in ("air_temperature_min", "air_temperature_max"))
    _refuse(t_min - t_max > T_TOLERANCE, "air_temperature_min", ids, time, source,
            f"above 'air_temperature_max' by more than {T_TOLERANCE:g} degC",
            "The two are probably swapped (check which variable is the minimum: its "
            "cell_methods 'time: minimum', or its name); swap them on those days, as "
            "load_mopex(inverted_temperature='swap') does, or correct the values. Otherwise "
            "the temperature range of a PET law is zero and PET with it")
    if pet_source == "hargreaves":
        # a file with only the daily mean has it as both (from_cf, load_fluxnet): the range,
        # and with it Hargreaves PET, would be zero on every day
        flat = np.all(np.abs(t_max - t_min) < 1e-6, axis=1)
        if flat.any():
            cols = [ids[i] for i in np.flatnonzero(flat)]
            raise ForcingDataError(
                f"'air_temperature_min' equals 'air_temperature_max' on every day for column(s) "
                f"{', '.join(cols)} of {source}: the data hold only the daily mean, and "
                "Hargreaves PET, which scales with the daily range, would be zero throughout. "
                "Use pet_source='oudin' (PET from the mean temperature and latitude), give PET "
                "(pet_source='given'), or give the daily minimum and maximum.",
                variable="air_temperature_min",
                basins=cols,
            )


def _refuse(bad: np.ndarray, var, ids, time, source, what: str, fix: str) -> None:
    if not bad.any():
        return
    notes = []
    for i in np.flatnonzero(bad.any(axis=1)):
        days = np.flatnonzero(bad[i])
        notes.append(BasinNote(ids[i], "", f"{days.size} day(s), first {iso_day(time[days[0]])}"))
    raise ForcingDataError(
        f"Variable '{var}' is {what} in {len(notes)} column(s) of {source}: "
        f"{list_notes(notes)}. {fix}.",
        variable=var,
        basins=[n.basin for n in notes],
    )


# --- to the model -----------------------------------------------------------------------------


def to_forcing(
    ds: xr.Dataset,
    *,
    dtype=np.float32,
    attributes: Sequence[str] | None = None,
    pet_source: str | None = None,
    energy: bool = True,
) -> Forcing:
    """A batched ``Forcing`` (series ``[column, time]``, ``doy`` shared ``[time]``, ``lat``
    ``[column]``) from a validated canonical dataset.

    ``pet_source`` defaults to ``'given'`` when the dataset has potential evapotranspiration,
    else ``'hargreaves'`` (then ``forcing.pet`` is ``None`` and the model's PET law derives
    it). ``attributes`` names static variables stacked into ``forcing.attributes``
    ``[column, n_attributes]`` **as they are**: normalising them (with statistics of the
    training columns only) belongs to training, not to reading.
    """
    if pet_source is None:
        pet_source = "given" if PET_VARIABLE in ds.data_vars else "hargreaves"
    validate(ds, pet_source=pet_source, energy=energy)
    ds = ds.transpose(*DIMS, ...)
    dtype = np.dtype(dtype)

    def arr(var):
        return jnp.asarray(np.asarray(ds[var].values, dtype=dtype))

    optional = {}
    if pet_source == "given":
        optional["pet"] = arr(PET_VARIABLE)
    if energy:
        for var in ENERGY_VARIABLES:
            if var in ds.data_vars:
                optional[CANONICAL_VARIABLES[var].forcing_field] = arr(var)
    attrs = None
    if attributes is not None:
        missing = [a for a in attributes if a not in ds.data_vars
                   or ds[a].attrs.get("role") != "static"]
        if missing:
            statics = [str(v) for v in ds.data_vars if ds[v].attrs.get("role") == "static"]
            raise ForcingDataError(
                f"Static attribute(s) {', '.join(missing)} are not in the dataset (statics: "
                f"{', '.join(statics) or 'none'}).",
                variable=missing[0],
            )
        stack = np.stack([np.asarray(ds[a].values, np.float64) for a in attributes], axis=-1)
        if not np.isfinite(stack).all():
            i, j = np.argwhere(~np.isfinite(stack))[0]
            col = str(ds["column"].values[i])
            raise ForcingDataError(
                f"Static attribute '{attributes[j]}' is missing (NaN) for column {col}.",
                variable=attributes[j],
                basins=[col],
            )
        attrs = jnp.asarray(stack.astype(dtype))
    time = pd.DatetimeIndex(ds["time"].values)
    return Forcing(
        precip=arr("precipitation"),
        t_min=arr("air_temperature_min"),
        t_max=arr("air_temperature_max"),
        doy=jnp.asarray(time.day_of_year.to_numpy().astype(dtype)),
        lat=jnp.asarray(np.asarray(ds["lat"].values, dtype=dtype)),
        attributes=attrs,
        **optional,
    )


def target(ds: xr.Dataset, name: str) -> np.ndarray:
    """An observed target as a float64 ``[column, time]`` array, NaN where missing."""
    if name not in ds.data_vars or ds[name].attrs.get("role") != "target":
        targets = [str(v) for v in ds.data_vars if ds[v].attrs.get("role") == "target"]
        raise ForcingDataError(
            f"Target '{name}' is not in the dataset (targets: {', '.join(targets) or 'none'}).",
            variable=name,
        )
    return np.asarray(ds[name].transpose(*DIMS).values, dtype=np.float64)


# --- from other layouts ---------------------------------------------------------------------


def _canonical_name(da: xr.DataArray, var: str) -> list[str]:
    """Canonical names a CF variable fills, from its standard name (air temperature by
    ``cell_methods``, its name or its ``long_name``)."""
    sn = da.attrs.get("standard_name", "")
    if sn == "lwe_precipitation_rate":
        return ["precipitation"]
    if sn == "air_temperature":
        methods = str(da.attrs.get("cell_methods", "")).lower()
        low = var.lower()
        long_name = str(da.attrs.get("long_name", "")).lower()
        if "minimum" in methods or "min" in low or "minimum" in long_name:
            return ["air_temperature_min"]
        if "maximum" in methods or "max" in low or "maximum" in long_name:
            return ["air_temperature_max"]
        return ["air_temperature_mean"]
    return [n for n, s in CANONICAL_VARIABLES.items() if s.standard_name == sn]


def _read_twice(
    ds: xr.Dataset, name: str, variables: list[str], source: str
) -> ForcingDataError:
    """The error for several CF variables filling one canonical variable."""
    if name == "air_temperature_mean":
        listed = ", ".join(f"'{v}'" for v in variables)
        return ForcingDataError(
            f"Variables {listed} in {source} are all air temperature (standard_name "
            "'air_temperature') and do not say which is the daily minimum and which the maximum. "
            "Set cell_methods 'time: minimum' on the minimum and 'time: maximum' on the maximum "
            "(keep at most one daily mean).",
            variable=variables[0],
        )
    listed = ", ".join(f"'{v}' (standard_name '{ds[v].attrs.get('standard_name')}')"
                       for v in variables)
    return ForcingDataError(
        f"Variables {listed} in {source} all give the canonical '{name}', and hybridland reads "
        "only one. Drop the others from the dataset (or remove their standard_name).",
        variable=variables[0],
    )


def _days_from_time_bounds(ds: xr.Dataset, source: str) -> xr.Dataset:
    """``ds`` with each step's day taken from the lower of its CF time bounds, where the time
    coordinate has them: a model output that stamps each day at its end (midnight of the next
    day, bounds ``[day, day + 1]``) is that day's, not the next. Bounds that are not one day
    long are refused (the model steps one day at a time)."""
    name = ds["time"].attrs.get("bounds") if "time" in ds.variables else None
    if name not in ds.variables:
        return ds
    b = ds[name]
    if b.ndim != 2 or "time" not in b.dims or not np.issubdtype(b.dtype, np.datetime64):
        return ds  # not decoded as dates: the time coordinate alone says the days
    nv = next(d for d in b.dims if d != "time")
    lower, upper = (np.asarray(b.transpose("time", nv).values)[:, k] for k in (0, -1))
    length = upper - lower
    if (length != np.timedelta64(1, "D")).any():
        i = int(np.flatnonzero(length != np.timedelta64(1, "D"))[0])
        raise ForcingDataError(
            f"The time bounds '{name}' of {source} span {pd.Timedelta(length[i])} at position "
            f"{i} ({pd.Timestamp(lower[i])} to {pd.Timestamp(upper[i])}), not one day. The "
            "model steps one day at a time: resample to daily values, each with bounds from "
            "the start of its day to the start of the next.",
            variable="time",
        )
    return ds.assign_coords(time=("time", lower, ds["time"].attrs))


def from_cf(ds: xr.Dataset, *, source: str = "<dataset>") -> xr.Dataset:
    """Read any CF dataset by ``standard_name`` into the canonical layout, converting units.

    The time dimension must be called ``time``; the other dimension (if any) becomes
    ``column`` (a dataset with only ``time`` is one column). Latitude and longitude are the
    coordinates with standard name ``latitude``/``longitude`` (or named ``lat``/``lon``).
    Air temperature is told apart by ``cell_methods`` (``time: minimum``/``maximum``), by
    ``min``/``max`` in the variable name or by ``minimum``/``maximum`` in its ``long_name``; a
    daily mean alone fills both minimum and maximum (noted in a ``comment``; Hargreaves PET then
    sees no range, and ``validate`` refuses it). Each step's day is the lower of its time
    bounds where ``time`` has them (an end-of-day stamp is its day's, not the next); bounds
    variables (named by a coordinate's ``bounds``, e.g. ``time_bnds``) are then left out, and
    variables without a known standard name skipped; known ones in unknown
    units, without the column dimension or filling the same canonical variable as another
    raise ``ForcingDataError``.
    """
    if "time" not in ds.dims:
        raise ForcingDataError(f"{source} has no 'time' dimension.", variable="time")
    bounds = {ds[v].attrs.get("bounds") for v in ds.variables} & set(ds.variables)
    ds = _days_from_time_bounds(ds, source).drop_vars(list(bounds))
    others = [d for d in ds.dims if d != "time"]
    if len(others) > 1:
        others = [d for d in others if any(d in ds[v].dims for v in ds.data_vars)]
    if len(others) > 1:
        raise ForcingDataError(
            f"{source} has dimensions {tuple(ds.dims)}; a column dataset has 'time' and at most "
            "one other (the column) dimension.",
        )
    if not others:
        ds = ds.expand_dims(column=[str(ds.attrs.get("site", ds.attrs.get("id", "0")))])
        col = "column"
    else:
        col = others[0]
    ids = basin_ids(ds, col)

    def coord(std, names):
        for c in list(ds.coords) + list(ds.data_vars):
            if ds[c].attrs.get("standard_name") == std or str(c).lower() in names:
                return np.broadcast_to(np.asarray(ds[c].values, np.float64).reshape(-1),
                                       (len(ids),))
        raise ForcingDataError(f"{source} has no {std} coordinate.", variable=std)

    lat = coord("latitude", ("lat", "latitude"))
    lon = coord("longitude", ("lon", "longitude"))
    found: dict[str, list[str]] = {}
    for var in ds.data_vars:
        if "time" in ds[var].dims:
            for name in _canonical_name(ds[var], str(var)):
                found.setdefault(name, []).append(str(var))
    for name, variables in found.items():
        if len(variables) > 1:
            raise _read_twice(ds, name, variables, source)

    def read(var: str, name: str) -> np.ndarray:
        check_dims(ds, var, source, (col, "time"),
                   f"({col}, time); a series shared by every {col} must be repeated for each")
        values = np.asarray(ds[var].transpose(col, "time").values, np.float64)
        units = CANONICAL_VARIABLES[name].units
        return converter(ds[var].attrs.get("units"), units, var, source)(values)

    mean = found.pop("air_temperature_mean", None)
    series = {name: read(var, name) for name, (var,) in found.items()}
    comments = {}
    for name in ("air_temperature_min", "air_temperature_max"):
        if mean and name not in series:
            series[name] = read(mean[0], name)
            comments[name] = f"daily mean air temperature '{mean[0]}' (no min/max)"
    time = check_time(ds, source)
    area = None
    if "area_km2" in ds.coords or "area_km2" in ds.data_vars:
        area = np.asarray(ds["area_km2"].values, np.float64)
    return make_dataset(ids, time, lat, lon, series, area_km2=area, comments=comments,
                        attrs={"source": source})


def mopex_to_canonical(data: str | os.PathLike | MopexForcing, **load_kwargs) -> xr.Dataset:
    """MOPEX in the canonical layout: forcing, ``streamflow`` from ``Q``, climate statics.

    ``data`` is a path (read with ``load_mopex(path, **load_kwargs)``) or a ``MopexForcing``.
    Statics (``climate_statics``): ``p_mean``, ``p_t_correlation``, ``frac_snow``, ``aridity``
    (when PE was read; MOPEX PE is a climatology, which is what an aridity index needs) and
    ``latitude``.
    """
    mf = data if isinstance(data, MopexForcing) else load_mopex(data, **load_kwargs)
    f = mf.forcing
    precip = np.asarray(f.precip, np.float64)
    t_min, t_max = np.asarray(f.t_min, np.float64), np.asarray(f.t_max, np.float64)
    series = {"precipitation": precip, "air_temperature_min": t_min, "air_temperature_max": t_max}
    pet = None if f.pet is None else np.asarray(f.pet, np.float64)
    if pet is not None:
        series[PET_VARIABLE] = pet
    if mf.observed_runoff is not None:
        series["streamflow"] = np.asarray(mf.observed_runoff, np.float64)
    statics = climate_statics(precip, 0.5 * (t_min + t_max), mf.time, pet)
    statics["latitude"] = (mf.lat, "degrees_north", "latitude of the basin")
    return make_dataset(
        mf.basins, mf.time, mf.lat, mf.lon, series, statics=statics, area_km2=mf.area_km2,
        name=mf.names, attrs={"source": mf.source, "dataset": "MOPEX (Schaake et al., 2006)"},
    )
