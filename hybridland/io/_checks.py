"""Structure checks and selection for NetCDF forcing laid out as ``(basin, time)``.

Shared by the readers: each check refuses bad input with a ``ForcingDataError`` that names the
variable (and the basins, where it is per basin) and says how to fix the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ._report import ForcingDataError


class PeriodError(ForcingDataError):
    """Asked-for days that the data do not cover (or an end before the start)."""


_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
"""First bytes of NetCDF-3 (classic, 64-bit offset, 64-bit data) and NetCDF-4 (HDF5) files."""


def open_netcdf(path: str | os.PathLike, layout: str) -> xr.Dataset:
    """Open a NetCDF file (lazily); ``FileNotFoundError`` for a missing file and
    ``ForcingDataError`` for one that is not readable NetCDF (``layout`` says what to give)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Forcing file {path} does not exist.")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(_NETCDF_SIGNATURES):
        what = "is empty (0 bytes)" if not head else f"starts with {head[:4]!r}"
        raise ForcingDataError(
            f"{path} is not a NetCDF file (it {what}; NetCDF files start with 'CDF' or, for "
            f"NetCDF-4, the HDF5 signature). Give a NetCDF file in {layout}."
        )
    try:
        return xr.open_dataset(path)
    except Exception as err:  # netCDF4/HDF5 raise many types; all mean "not a readable file".
        raise ForcingDataError(
            f"Cannot read {path} as NetCDF ({type(err).__name__}: {err}); it may be truncated "
            f"or damaged. Give a NetCDF file in {layout}."
        ) from err


def check_variable(
    ds: xr.Dataset,
    var: str,
    units: tuple[frozenset[str], str],
    source: str,
    missing_hint: str = "every run needs it. Add it to the file",
    dims: tuple[str, ...] = ("basin", "time"),
    layout: str = "the MOPEX layout",
) -> None:
    """Refuse a variable that is absent, not ``dims`` (any order), or in other units.

    ``units`` is ``(accepted spellings in lower case, canonical spelling)``; ``dims`` the
    dimensions it must have (default ``(basin, time)``) and ``layout`` names that layout in the
    message.
    """
    if var not in ds.data_vars:
        raise ForcingDataError(
            f"Variable '{var}' is missing from {source} (found: "
            f"{', '.join(map(str, ds.data_vars)) or 'none'}); {missing_hint}.",
            variable=var,
        )
    check_dims(ds, var, source, dims, layout)
    accepted, canonical = units
    found = ds[var].attrs.get("units")
    if found is None or " ".join(str(found).split()).lower() not in accepted:
        what = "no units attribute" if found is None else f"units '{found}'"
        raise ForcingDataError(
            f"Variable '{var}' in {source} has {what}; expected {canonical} (accepted: "
            f"{', '.join(sorted(accepted))}). Convert the values and set the units attribute.",
            variable=var,
        )


def check_dims(
    ds: xr.Dataset, var: str, source: str, dims: tuple[str, ...], layout: str
) -> None:
    """Refuse a variable whose dimensions are not ``dims`` (in any order)."""
    found_dims = ds[var].dims
    if set(found_dims) != set(dims) or len(found_dims) != len(dims):
        per = f"one series per {dims[0]}" if len(dims) > 1 else f"one value per {dims[0]}"
        raise ForcingDataError(
            f"Variable '{var}' in {source} has dimensions {found_dims}, but needs {dims}: "
            f"{per}. Rename or reshape it to {layout}.",
            variable=var,
        )


NEGATIVE_FLOW_FIX = (
    "a missing-value marker (such as -99 or -999) must be NaN in the file (or declared as the "
    "variable's _FillValue), and other values corrected; it would otherwise be trained on and "
    "scored as a flow"
)
"""What a reader says of negative observed streamflow (MOPEX ``Q``, canonical ``streamflow``)."""


def check_time(ds: xr.Dataset, source: str) -> pd.DatetimeIndex:
    """The days of the file, each at midnight (a daily value stamped at noon, as CF files
    often stamp a day's mean, is that day's); refuse a missing, non-date, non-increasing or
    non-daily axis, and stamps at other hours (a time-zone offset in the units, an end-of-day
    stamp), whose day is ambiguous."""
    if "time" not in ds.coords:
        raise ForcingDataError(
            f"{source} has no 'time' coordinate; give the days as a CF time coordinate "
            "(e.g. units 'days since 1948-01-01').",
            variable="time",
        )
    values = ds["time"].values
    if not np.issubdtype(values.dtype, np.datetime64):
        raise ForcingDataError(
            f"The 'time' coordinate of {source} is not a date (dtype {values.dtype}); give it "
            "CF units such as 'days since 1948-01-01' and a standard calendar.",
            variable="time",
        )
    time = pd.DatetimeIndex(values)
    if len(time) < 1:
        raise ForcingDataError(f"The 'time' axis of {source} is empty.", variable="time")
    step = np.diff(time.values)  # timedelta64 in the index's own unit (ns, us, s...)
    one_day = np.timedelta64(1, "D")
    if (step <= np.timedelta64(0)).any():
        i = int(np.flatnonzero(step <= np.timedelta64(0))[0])
        raise ForcingDataError(
            f"The 'time' coordinate of {source} is not strictly increasing: {time[i]} is "
            f"followed by {time[i + 1]} (position {i + 1}). Sort the file by time and remove "
            "duplicate days.",
            variable="time",
        )
    if (step != one_day).any():
        i = int(np.flatnonzero(step != one_day)[0])
        raise ForcingDataError(
            f"The 'time' coordinate of {source} is not daily: {time[i]} is followed by "
            f"{time[i + 1]} ({pd.Timedelta(step[i])}). The model steps one day at a time; "
            "resample to daily values and fill or mark missing days (NaN).",
            variable="time",
        )
    day = time.normalize()
    odd = ((time - day) != pd.Timedelta(0)) & ((time - day) != pd.Timedelta(hours=12))
    if odd.any():
        i = int(np.flatnonzero(odd)[0])
        units = ds["time"].encoding.get("units", ds["time"].attrs.get("units"))
        read = f", from units {units!r}" if units else ""
        raise ForcingDataError(
            f"The 'time' coordinate of {source} stamps a day at {time[i]:%H:%M} ({time[i]}"
            f"{read}), so which day it holds is unclear. Daily values must be stamped with "
            "their day's date at midnight (00:00) or noon (12:00) and time units without a "
            "time-zone offset (an offset is read as UTC and moves each stamp, often into the day "
            "before): stamp each value with its own day, e.g. units 'days since 2000-01-01'.",
            variable="time",
        )
    return day


def as_text(value) -> str:
    """A stored id or name as blank-stripped text (NetCDF char arrays decode to bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


def basin_ids(ds: xr.Dataset, dim: str = "basin") -> list[str]:
    """Ids along ``dim`` (default ``basin``) as strings (leading zeros kept); refuse duplicates.

    The ids are ``dim``'s coordinate, else the variable along ``dim`` alone with ``cf_role:
    timeseries_id`` (how CF station files name their stations, the dimension then having no
    coordinate), else the positions 0, 1, ...
    """
    named = [v for v in ds.variables
             if ds[v].dims == (dim,) and ds[v].attrs.get("cf_role") == "timeseries_id"]
    if dim in ds.coords:
        ids = [as_text(b) for b in ds[dim].values]
    elif named:
        ids = [as_text(b) for b in ds[named[0]].values]
    else:
        ids = [str(i) for i in range(ds.sizes[dim])]
    seen: set[str] = set()
    duplicates = sorted({b for b in ids if b in seen or seen.add(b)})
    if duplicates:
        raise ForcingDataError(
            f"{dim.capitalize()} ids are not unique: {', '.join(duplicates)} occur more than "
            f"once. Give each {dim} one id.",
            variable=dim,
            basins=duplicates,
        )
    return ids


def select_basins(all_ids: list[str], wanted: Sequence[str] | None, source: str) -> np.ndarray:
    """Positions of the wanted basins, in the order asked; refuse unknown or repeated ids. One
    id given as a string is that basin (not its characters)."""
    if wanted is None:
        return np.arange(len(all_ids))
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = [str(b).strip() for b in wanted]
    if not wanted:
        raise ForcingDataError("The list of basins to keep is empty.", variable="basin")
    position = {b: i for i, b in enumerate(all_ids)}
    unknown = [b for b in wanted if b not in position]
    if unknown:
        examples = ", ".join(all_ids[:3])
        raise ForcingDataError(
            f"Basin(s) {', '.join(unknown)} are not in {source} (it has {len(all_ids)} basins, "
            f"e.g. {examples}; ids keep their leading zeros).",
            variable="basin",
            basins=unknown,
        )
    if len(set(wanted)) != len(wanted):
        raise ForcingDataError(
            f"Basin list {', '.join(wanted)} names a basin twice.", variable="basin"
        )
    return np.array([position[b] for b in wanted])


def select_period(time: pd.DatetimeIndex, start, end, source: str) -> tuple[int, int]:
    """Index range ``[t0, t1)`` of the days from ``start`` to ``end`` (inclusive, ISO dates)."""

    def parse(value, what):
        try:
            return pd.Timestamp(value)
        except (ValueError, TypeError) as err:
            raise ForcingDataError(
                f"Cannot read the {what} date {value!r} ({err}); use an ISO date like 1990-01-01."
            ) from err

    first, last = time[0], time[-1]
    t_start = first if start is None else parse(start, "start")
    t_end = last if end is None else parse(end, "end")
    if t_start > t_end:
        raise PeriodError(
            f"The start date {t_start:%Y-%m-%d} is after the end date {t_end:%Y-%m-%d}.",
            variable="time",
        )
    if t_start < first or t_end > last:
        raise PeriodError(
            f"The period {t_start:%Y-%m-%d} .. {t_end:%Y-%m-%d} is not inside the data of "
            f"{source} ({first:%Y-%m-%d} .. {last:%Y-%m-%d}); choose days within it.",
            variable="time",
        )
    t0 = int(time.searchsorted(t_start, side="left"))
    t1 = int(time.searchsorted(t_end, side="right"))
    return t0, t1


def series_values(ds: xr.Dataset, var: str) -> np.ndarray:
    """A [basin, time] float array (at least float32) of a variable."""
    a = ds[var].transpose("basin", "time").values
    return np.asarray(a, dtype=np.promote_types(a.dtype, np.float32))


def basin_strings(ds: xr.Dataset, name: str, n: int) -> list[str]:
    """A per-basin text coordinate (blank-stripped), or empty strings when absent."""
    if name not in ds.coords and name not in ds.data_vars:
        return [""] * n
    return [as_text(v) for v in np.asarray(ds[name].values).reshape(n)]


def basin_float(ds: xr.Dataset, name: str, n: int) -> np.ndarray:
    """A per-basin numeric coordinate as float64, or NaN when absent."""
    if name not in ds.coords and name not in ds.data_vars:
        return np.full(n, np.nan)
    return np.asarray(ds[name].values, dtype=np.float64).reshape(n)


def iso_day(t: pd.Timestamp) -> str:
    """``YYYY-MM-DD``."""
    return f"{t:%Y-%m-%d}"


_KELVIN = ("Temperatures must be in degC: values near 250-310 are kelvin (subtract 273.15); "
           "correct the file or mark the values missing (NaN).")
PLAUSIBLE_RANGES = {
    "precipitation": (
        "precipitation", 0.0, 2000.0, "mm day-1",
        "The largest daily rainfall ever measured is about 1 830 mm: the file is probably in "
        "another unit (tenths of mm, micrometres, a rate per hour or second) or mislabelled; "
        "convert it to mm day-1 or mark the values missing (NaN)."),
    "potential_evapotranspiration": (
        "potential evapotranspiration", 0.0, 30.0, "mm day-1",
        "Potential evapotranspiration above 30 mm day-1 is not known anywhere: the file is "
        "probably in another unit or mislabelled; convert it to mm day-1, or derive PET from "
        "temperature (pet='hargreaves' or 'oudin')."),
    "air_temperature_max": ("daily maximum temperature", -90.0, 60.0, "degC", _KELVIN),
    "air_temperature_min": ("daily minimum temperature", -90.0, 60.0, "degC", _KELVIN),
}
"""Per forcing variable (canonical name): what it is, the range every observed climate stays in
(records: about 1 830 mm of rain in a day, -89.2 and 56.7 degC), its units and the likely fix
for values outside it, so that no unit or recording error is simulated as weather: the
canonical layout refuses any value outside (``ForcingDataError``); the MOPEX loader replaces
isolated days by interpolation (reported) and refuses a unit error (``hybridland.io.mopex``)."""
