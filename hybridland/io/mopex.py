"""Read MOPEX-layout NetCDF forcing into a batched ``hybridland.Forcing``, validated.

The layout is that of ``mopex/mopex_dev.nc`` (Schaake et al. 2006; Duan et al. 2006): dimensions
``(basin, time)``, daily; ``P`` precipitation and ``PE`` potential evaporation in mm day-1,
``T_max`` and ``T_min`` in degC, ``Q`` observed streamflow in mm day-1; per-basin coordinates
``lat, lon, area_km2, name, state``.

``load_mopex`` checks everything the model relies on and refuses bad input with a
``ForcingDataError`` naming the variable, the basins (id and name) and the fix. Real files have
gaps, so three repairs can be asked for; each is reported by basin name in ``MopexForcing.report``
and as a ``DataAdjustmentWarning``:

- ``trim``: cut leading/trailing days on which any kept basin misses forcing. The kept span runs
  from the latest first-complete day to the earliest last-complete day of the basins; gaps
  inside it stay an error;
- ``drop_incomplete``: drop basins with missing forcing. With ``trim`` too, only the basins whose
  gaps trimming cannot remove are dropped (no complete day, or gaps inside the kept span), then
  the ends are trimmed;
- ``inverted_temperature='swap'``: swap ``T_min`` and ``T_max`` on days where the minimum
  exceeds the maximum by more than ``t_tolerance``. This keeps the daily mean (all that snow and
  Oudin PET use) and gives Hargreaves PET the magnitude of the range instead of zero. (The MOPEX
  file has such days in most basins, by up to tens of degC.)

A value beyond every climate on Earth (``PLAUSIBLE_RANGES``: rain above 2 000 mm day-1, PE above
30 mm day-1, temperatures outside -90..60 degC) on a few isolated days is a recording error: with
``implausible='interpolate'`` (the default) it is replaced by linear interpolation between the
nearest plausible days of the same basin and reported like the repairs above (the MOPEX file has
five: T_max of 105-281 degC in three basins on 1982-05-22, T_min of 87 degC in 11281000 on
1981-09-04, PE of 31.85 mm in 02236000 on 1959-02-28); ``'error'`` refuses it. More than
``MAX_IMPLAUSIBLE_DAYS`` such days of one variable in one basin is a unit error (kelvin, tenths
of mm): refused, or the basin dropped with ``drop_incomplete``.

With a derived PET (``pet='hargreaves'`` or ``'oudin'``) the ``PE`` variable is not read at all,
so its gaps do not matter, but every basin needs a finite latitude.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from .._containers import Forcing
from ._checks import (
    NEGATIVE_FLOW_FIX,
    PLAUSIBLE_RANGES,
    basin_float,
    basin_ids,
    basin_strings,
    check_time,
    check_variable,
    iso_day,
    open_netcdf,
    select_basins,
    select_period,
    series_values,
)
from ._report import BasinNote, ForcingDataError, LoadReport, list_notes

PetSource = Literal["given", "hargreaves", "oudin"]
PET_SOURCES: tuple[str, ...] = ("given", "hargreaves", "oudin")

PRECIP_VAR, PET_VAR, TMAX_VAR, TMIN_VAR, RUNOFF_VAR = "P", "PE", "T_max", "T_min", "Q"

MAX_IMPLAUSIBLE_DAYS = 10
"""Days beyond ``PLAUSIBLE_RANGES`` in one variable of one basin up to which they are taken for
isolated recording errors (replaced with ``implausible='interpolate'``); more is a unit error."""

CANONICAL_NAMES = {PRECIP_VAR: "precipitation", PET_VAR: "potential_evapotranspiration",
                   TMAX_VAR: "air_temperature_max", TMIN_VAR: "air_temperature_min"}
"""The canonical name (``hybridland.io.canonical``) of each MOPEX forcing variable."""

WATER_FLUX_UNITS = frozenset({"mm day-1", "mm/day", "mm d-1"})
"""Accepted spellings of mm per day (compared case-insensitively, blanks collapsed)."""
TEMPERATURE_UNITS = frozenset({"degc", "degree_c", "degrees_c", "deg_c", "degree_celsius",
                               "degrees_celsius", "celsius", "°c"})
"""Accepted spellings of degrees Celsius (compared case-insensitively)."""

UNITS = {
    PRECIP_VAR: (WATER_FLUX_UNITS, "mm day-1"),
    PET_VAR: (WATER_FLUX_UNITS, "mm day-1"),
    RUNOFF_VAR: (WATER_FLUX_UNITS, "mm day-1"),
    TMAX_VAR: (TEMPERATURE_UNITS, "degC"),
    TMIN_VAR: (TEMPERATURE_UNITS, "degC"),
}
"""Per MOPEX variable: (accepted units, canonical spelling), as ``check_variable`` takes them."""

_NEEDED = "every run needs it. Add it to the file"
_MISSING_HINTS = {
    PET_VAR: "it is needed for pet='given'. Add it, or derive PET from temperature with "
    "--pet hargreaves or --pet oudin (then PE is not read)",
}

_FIX_GAPS = (
    "Choose a complete period with --start/--end, cut incomplete days at the ends with --trim "
    "(trim=True), or drop these basins with --drop-incomplete (drop_incomplete=True)."
)


@dataclasses.dataclass(frozen=True)
class MopexForcing:
    """Validated forcing of many basins, ready for ``hybridland.simulate``.

    ``forcing`` holds ``[basin, time]`` series (``doy`` is a shared ``[time]`` array, ``lat`` is
    ``[basin]``, ``pet`` is ``None`` when PET is derived by the model). Per-basin metadata are
    numpy arrays in the same basin order; ``observed_runoff`` is ``Q`` in mm day-1 with NaN gaps
    (it is an observation, never a model input), or ``None`` when the file has no ``Q``.
    """

    forcing: Forcing
    basins: tuple[str, ...]
    names: tuple[str, ...]
    states: tuple[str, ...]
    time: pd.DatetimeIndex
    lat: np.ndarray
    lon: np.ndarray
    area_km2: np.ndarray
    observed_runoff: np.ndarray | None
    pet: str
    source: str
    report: LoadReport

    @property
    def n_basins(self) -> int:
        return len(self.basins)

    @property
    def n_days(self) -> int:
        return len(self.time)

    def basin_coords(self) -> dict[str, np.ndarray]:
        """Per-basin coordinates for an output dataset: lat, lon, area_km2, name, state."""
        return {
            "lat": self.lat,
            "lon": self.lon,
            "area_km2": self.area_km2,
            "name": np.asarray(self.names, dtype=str),
            "state": np.asarray(self.states, dtype=str),
        }


T_TOLERANCE = 0.1
"""degC by which a day's minimum temperature may exceed its maximum (rounding in the source)
before the two count as inverted."""


def load_mopex(
    path: str | os.PathLike,
    *,
    basins: Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    pet: PetSource = "given",
    trim: bool = False,
    drop_incomplete: bool = False,
    inverted_temperature: Literal["error", "swap"] = "error",
    t_tolerance: float = T_TOLERANCE,
    implausible: Literal["interpolate", "error"] = "interpolate",
    dtype=np.float32,
) -> MopexForcing:
    """Read and validate a MOPEX-layout NetCDF file; see the module docstring.

    **Arguments:**

    - ``basins``: basin ids to keep, in this order (default: all).
    - ``start``, ``end``: first and last day to keep (inclusive, ISO dates).
    - ``pet``: ``'given'`` uses ``PE``; ``'hargreaves'`` or ``'oudin'`` leave ``forcing.pet``
      ``None`` for the model's PET law to derive (then ``PE`` is not needed).
    - ``trim``, ``drop_incomplete``, ``inverted_temperature``: repairs (see module docstring).
    - ``t_tolerance``: degC by which ``T_min`` may exceed ``T_max`` before it counts as inverted
      (rounding in the source data).
    - ``implausible``: isolated values beyond every climate on Earth are replaced by
      interpolation (``'interpolate'``) or refused (``'error'``); see the module docstring.
    - ``dtype``: float32 (default) or float64 (needs ``jax_enable_x64``).

    Raises ``ForcingDataError`` for bad input and ``FileNotFoundError`` for a missing file.
    """
    path = os.fspath(path)
    with open_netcdf(path, "the MOPEX layout (dims basin, time)") as ds:
        return forcing_from_dataset(
            ds,
            basins=basins,
            start=start,
            end=end,
            pet=pet,
            trim=trim,
            drop_incomplete=drop_incomplete,
            inverted_temperature=inverted_temperature,
            t_tolerance=t_tolerance,
            implausible=implausible,
            dtype=dtype,
            source=path,
        )


def forcing_from_dataset(
    ds: xr.Dataset,
    *,
    basins: Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    pet: PetSource = "given",
    trim: bool = False,
    drop_incomplete: bool = False,
    inverted_temperature: Literal["error", "swap"] = "error",
    t_tolerance: float = T_TOLERANCE,
    implausible: Literal["interpolate", "error"] = "interpolate",
    dtype=np.float32,
    source: str = "<dataset>",
) -> MopexForcing:
    """``load_mopex`` for a dataset already open (same arguments; ``source`` names it)."""
    dtype = np.dtype(dtype)
    _check_options(pet, inverted_temperature, t_tolerance, dtype)
    if implausible not in ("interpolate", "error"):
        raise ValueError(f"implausible must be 'interpolate' or 'error', got {implausible!r}.")
    needed = [PRECIP_VAR, TMAX_VAR, TMIN_VAR] + ([PET_VAR] if pet == "given" else [])

    # --- structure: variables, dimensions, units, time axis (on the whole file) -------------
    for var in needed:
        check_variable(ds, var, UNITS[var], source, _MISSING_HINTS.get(var, _NEEDED))
    has_q = RUNOFF_VAR in ds.data_vars
    if has_q:
        check_variable(ds, RUNOFF_VAR, UNITS[RUNOFF_VAR], source)
    time = check_time(ds, source)

    # --- selection: basins, then period ------------------------------------------------------
    all_ids = basin_ids(ds)
    index = select_basins(all_ids, basins, source)
    t0, t1 = select_period(time, start, end, source)
    sub = ds.isel(basin=index, time=slice(t0, t1))
    ids = [all_ids[i] for i in index]
    names = basin_strings(sub, "name", len(ids))
    states = basin_strings(sub, "state", len(ids))
    time = time[t0:t1]
    lat = basin_float(sub, "lat", len(ids))
    if pet != "given" and "lat" not in sub.coords and "lat" not in sub.data_vars:
        raise ForcingDataError(
            f"Coordinate 'lat' (latitude, degrees north, per basin) is missing from {source}; "
            f"PET law '{pet}' needs it. Add it, or use pet='given' with a PE variable.",
            variable="lat",
        )

    data = {var: series_values(sub, var) for var in needed}

    def note(i: int, detail: str) -> BasinNote:
        return BasinNote(ids[i], names[i], detail)

    # --- gaps: drop basins and/or trim days, else refuse -------------------------------------
    missing = {var: ~np.isfinite(a) for var, a in data.items()}  # NaN, and inf as corrupt
    any_missing = np.logical_or.reduce(list(missing.values()))
    bad_lat = ~np.isfinite(lat) | (np.abs(lat) > 90.0)
    if pet == "given":  # the latitude is only used by the derived PET laws
        bad_lat[:] = False
    keep = np.ones(len(ids), bool)
    dropped: list[BasinNote] = []

    def drop(rows: np.ndarray, why) -> None:
        for i in rows:
            keep[i] = False
            dropped.append(note(i, why(i)))

    if drop_incomplete:
        drop(np.flatnonzero(bad_lat), lambda i: f"latitude is {lat[i]}, needed by PET '{pet}'")

    # --- unit errors: a variable beyond every climate on Earth on many days ------------------
    for var, (what, low, high, units, fix), outside in beyond_any_climate(data):
        many = keep & (outside.sum(axis=1) > MAX_IMPLAUSIBLE_DAYS)
        if not many.any():
            continue

        def beyond(i, var=var, outside=outside, units=units):
            return (f"'{var}' beyond any climate on Earth on {outside[i].sum()} days, from "
                    f"{np.nanmin(data[var][i]):g} to {np.nanmax(data[var][i]):g} {units} "
                    "(a unit error?)")

        if drop_incomplete:
            drop(np.flatnonzero(many), beyond)
            continue
        notes = [note(i, beyond(i)) for i in np.flatnonzero(many)]
        raise ForcingDataError(
            f"Variable '{var}' ({what}) is outside [{low:g}, {high:g}] {units}, beyond any "
            f"climate on Earth, on more than {MAX_IMPLAUSIBLE_DAYS} days in {len(notes)} "
            f"basin(s) of {source}: {list_notes(notes)}. {fix} (Or drop these basins: "
            "--drop-incomplete, or leave them out of --basins.)",
            variable=var,
            basins=[n.basin for n in notes],
        )
    if bad_lat[keep].any():
        rows = [note(i, f"lat = {lat[i]}") for i in np.flatnonzero(bad_lat & keep)]
        raise ForcingDataError(
            f"Coordinate 'lat' is missing or outside [-90, 90] for {len(rows)} basin(s) in "
            f"{source}: {list_notes(rows)}. PET law '{pet}' needs the latitude. Fix the file, "
            "drop these basins (--drop-incomplete, or leave them out of --basins), or use "
            "pet='given'.",
            variable="lat",
            basins=[r.basin for r in rows],
        )

    days = np.ones(len(time), bool)
    trimmed_start = trimmed_end = None
    trim_causes: tuple[BasinNote, ...] = ()
    if trim:
        # Cut the ends of the period to the span in which every kept basin has forcing; gaps
        # inside that span cannot be trimmed away: such basins are dropped or refused.
        hopeless = keep & any_missing.all(axis=1)
        if drop_incomplete:
            drop(np.flatnonzero(hopeless), lambda i: _gap_detail(i, missing, time))
        elif hopeless.any():
            _raise_gaps(
                missing,
                hopeless,
                ids,
                names,
                time,
                source,
                "these basins have no day with complete forcing, so --trim cannot help",
            )
        if keep.any():
            first, last = _common_span(any_missing, keep, ids, names, time, source)
            inside = np.zeros(len(time), bool)
            inside[first : last + 1] = True
            gappy = keep & (any_missing & inside).any(axis=1)
            if gappy.any() and drop_incomplete:
                drop(
                    np.flatnonzero(gappy),
                    lambda i: (
                        _gap_detail(i, missing, time, inside) + " (inside the trimmed period)"
                    ),
                )
                # A dropped basin may have set an end of the span: the rest may allow a longer one.
                if keep.any():
                    wider = _common_span(any_missing, keep, ids, names, time, source)
                    if not any_missing[keep, wider[0] : wider[1] + 1].any():
                        first, last = wider
            elif gappy.any():
                _raise_gaps(
                    {v: m & inside for v, m in missing.items()},
                    gappy,
                    ids,
                    names,
                    time,
                    source,
                    f"there are gaps inside {iso_day(time[first])} .. {iso_day(time[last])}, "
                    "the period left after trimming the ends, and --trim only cuts the ends",
                    fix="Drop these basins with --drop-incomplete (drop_incomplete=True), or "
                    "choose a period without gaps with --start/--end.",
                )
            # No wider span is complete: the basin that sets `first` misses every day before it,
            # and the one that sets `last` every day after it.
            days[:] = False
            days[first : last + 1] = True
            causes = np.flatnonzero(keep & (any_missing & ~days).any(axis=1))
            trim_causes = tuple(note(i, _gap_detail(i, missing, time, ~days)) for i in causes)
            if first > 0:
                trimmed_start = (iso_day(time[0]), iso_day(time[first - 1]), first)
            if last < len(time) - 1:
                trimmed_end = (iso_day(time[last + 1]), iso_day(time[-1]), len(time) - 1 - last)
    elif drop_incomplete:
        drop(np.flatnonzero(any_missing.any(axis=1)), lambda i: _gap_detail(i, missing, time))
    if not keep.any():
        raise ForcingDataError(
            f"Every selected basin in {source} has incomplete forcing, so drop_incomplete "
            f"(--drop-incomplete) dropped them all: {list_notes(dropped)}. Choose another "
            "period (--start/--end) or other basins.",
            basins=[n.basin for n in dropped],
        )
    if any_missing[np.ix_(keep, days)].any():
        _raise_gaps(missing, keep, ids, names, time, source, "forcing is missing (NaN or inf)")
    days = np.flatnonzero(days)

    rows = np.flatnonzero(keep)
    data = {var: a[np.ix_(rows, days)] for var, a in data.items()}
    time = time[days]
    ids = [ids[i] for i in rows]
    names = [names[i] for i in rows]
    states = [states[i] for i in rows]
    lat = lat[rows]
    kept = [int(index[i]) for i in rows]

    observed = None
    if has_q:
        observed = np.asarray(
            sub[RUNOFF_VAR].transpose("basin", "time").values[np.ix_(rows, days)], dtype=dtype
        )

    def kept_note(i: int, detail: str) -> BasinNote:
        return BasinNote(ids[i], names[i], detail)

    # --- values: the sign of precipitation, given PE and observed flow; temperature order ---
    correct = "correct these values or mark them missing (NaN) in the file"
    for var, values, what, fix in (
        (PRECIP_VAR, data.get(PRECIP_VAR), "precipitation", correct + "."),
        (PET_VAR, data.get(PET_VAR), "potential evapotranspiration",  # only with pet='given'
         correct + ", or derive PET from temperature (pet='hargreaves' or 'oudin')."),
        (RUNOFF_VAR, observed, "observed streamflow", NEGATIVE_FLOW_FIX + "."),
    ):
        if values is None:
            continue
        negative = values < 0.0  # NaN (missing) is not negative
        if not negative.any():
            continue
        notes = [
            kept_note(
                i,
                f"{negative[i].sum()} day(s), min {np.nanmin(values[i]):g} "
                f"mm day-1 on {iso_day(time[int(np.argmax(negative[i]))])}",
            )
            for i in np.flatnonzero(negative.any(axis=1))
        ]
        raise ForcingDataError(
            f"Variable '{var}' ({what}) is negative in {len(notes)} basin(s) of "
            f"{source}: {list_notes(notes)}. {what.capitalize()} cannot be negative; {fix}",
            variable=var,
            basins=[n.basin for n in notes],
        )

    # --- values: beyond every climate on Earth (recording or unit errors, not weather) -----
    replaced: list[BasinNote] = []
    for var, (what, low, high, units, fix), outside in beyond_any_climate(data):
        if not outside.any():
            continue
        rows_out = np.flatnonzero(outside.any(axis=1))  # isolated days: unit errors are out
        if implausible == "error":
            notes = [
                kept_note(
                    i,
                    f"{outside[i].sum()} day(s), from {np.nanmin(data[var][i]):g} to "
                    f"{np.nanmax(data[var][i]):g} {units}, first on "
                    f"{iso_day(time[int(np.argmax(outside[i]))])}",
                )
                for i in rows_out
            ]
            raise ForcingDataError(
                f"Variable '{var}' ({what}) is outside [{low:g}, {high:g}] {units}, beyond any "
                f"climate on Earth, in {len(notes)} basin(s) of {source}: {list_notes(notes)}. "
                f"{fix} Isolated days (at most {MAX_IMPLAUSIBLE_DAYS} per basin) can instead "
                "be replaced by interpolation between their neighbours: leave out --strict "
                "(implausible='interpolate').",
                variable=var,
                basins=[n.basin for n in notes],
            )
        repaired = data[var].copy()
        for i in rows_out:
            plausible = np.flatnonzero(~outside[i] & np.isfinite(repaired[i]))
            spikes = np.flatnonzero(outside[i])
            between = (np.interp(spikes, plausible, repaired[i, plausible]) if plausible.size
                       else np.full(spikes.size, np.nan))
            detail = ", ".join(
                f"{repaired[i, d]:g} -> {v:.3g} {units} on {iso_day(time[d])}"
                for d, v in zip(spikes, between)
            )
            repaired[i, spikes] = between
            replaced.append(kept_note(i, f"{var} {detail}"))
        data[var] = repaired

    t_max, t_min = data[TMAX_VAR], data[TMIN_VAR]
    inverted = (t_min.astype(np.float64) - t_max) > t_tolerance
    swapped: tuple[BasinNote, ...] = ()
    if inverted.any():
        bad = np.flatnonzero(inverted.any(axis=1))
        notes = [
            kept_note(
                i,
                f"{inverted[i].sum()} day(s), up to "
                f"{np.max(t_min[i] - t_max[i]):.2f} degC, first on "
                f"{iso_day(time[int(np.argmax(inverted[i]))])}",
            )
            for i in bad
        ]
        if inverted_temperature == "error":
            raise ForcingDataError(
                f"Variable '{TMIN_VAR}' exceeds '{TMAX_VAR}' by more than {t_tolerance:g} degC "
                f"in {len(notes)} basin(s) of {source}: {list_notes(notes)}. Fix the file, "
                "raise the tolerance (--t-tolerance), or swap the two on those days with "
                "--swap-inverted-temperatures (inverted_temperature='swap'); swapping keeps the "
                "daily mean temperature.",
                variable=TMIN_VAR,
                basins=[n.basin for n in notes],
            )
        # Swap exactly the days reported; inversions within the tolerance stay as they are
        # (the PET laws read a negative range as zero).
        data[TMIN_VAR] = np.where(inverted, t_max, t_min)
        data[TMAX_VAR] = np.where(inverted, t_min, t_max)
        swapped = tuple(notes)

    report = LoadReport(
        dropped=tuple(dropped),
        trimmed_start=trimmed_start,
        trimmed_end=trimmed_end,
        trim_causes=trim_causes,
        swapped=swapped,
        replaced=tuple(replaced),
    )
    report.warn()

    def device(a: np.ndarray) -> jax.Array:
        return jnp.asarray(np.asarray(a, dtype=dtype))

    forcing = Forcing(
        precip=device(data[PRECIP_VAR]),
        t_min=device(data[TMIN_VAR]),
        t_max=device(data[TMAX_VAR]),
        doy=device(time.day_of_year.to_numpy()),
        lat=device(lat),
        pet=device(data[PET_VAR]) if pet == "given" else None,
    )
    return MopexForcing(
        forcing=forcing,
        basins=tuple(ids),
        names=tuple(names),
        states=tuple(states),
        time=time,
        lat=np.asarray(lat, dtype=np.float64),
        lon=basin_float(ds.isel(basin=kept), "lon", len(ids)),
        area_km2=basin_float(ds.isel(basin=kept), "area_km2", len(ids)),
        observed_runoff=observed,
        pet=pet,
        source=source,
        report=report,
    )


# ---------------------------------------------------------------------------------------------
# Checks


def beyond_any_climate(data: dict):
    """Per MOPEX forcing variable in ``data`` (``{name: [basin, day] array}``): its name, its
    ``PLAUSIBLE_RANGES`` entry and the mask ``[basin, day]`` of values outside that range (NaN
    is not outside). More than ``MAX_IMPLAUSIBLE_DAYS`` in a basin is a unit error."""
    for var, canonical in CANONICAL_NAMES.items():
        if var in data:
            spec = PLAUSIBLE_RANGES[canonical]
            with np.errstate(invalid="ignore"):
                yield var, spec, (data[var] < spec[1]) | (data[var] > spec[2])


def _check_options(pet: str, inverted_temperature: str, t_tolerance: float, dtype: np.dtype):
    if pet not in PET_SOURCES:
        raise ValueError(f"pet must be one of {PET_SOURCES}, got {pet!r}.")
    if inverted_temperature not in ("error", "swap"):
        raise ValueError(
            f"inverted_temperature must be 'error' or 'swap', got {inverted_temperature!r}."
        )
    if not (np.isfinite(t_tolerance) and t_tolerance >= 0):
        raise ValueError(f"t_tolerance must be a finite number >= 0 degC, got {t_tolerance!r}.")
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "before creating any array (the CLI flag --x64 does this)."
        )


# ---------------------------------------------------------------------------------------------
# Helpers


def _gap_detail(
    i: int, missing: dict[str, np.ndarray], time: pd.DatetimeIndex, where: np.ndarray | None = None
) -> str:
    """E.g. ``'P missing on 182 day(s), 1948-01-01 .. 1948-06-30'`` for each variable."""
    parts = []
    for var, m in missing.items():
        row = m[i] if where is None else m[i] & where
        if row.any():
            days = np.flatnonzero(row)
            n = days.size
            span = f"{iso_day(time[days[0]])} .. {iso_day(time[days[-1]])}"
            every = " (every day)" if n == len(time) else ""
            parts.append(f"{var} missing on {n} day(s){every}, {span}")
    return "; ".join(parts)


def _common_span(
    any_missing: np.ndarray, keep: np.ndarray, ids, names, time: pd.DatetimeIndex, source: str
) -> tuple[int, int]:
    """First and last day index between which every kept basin has forcing at the ends.

    That is, from the latest first-complete day to the earliest last-complete day of the kept
    basins (each has at least one complete day).
    """
    rows = np.flatnonzero(keep)
    complete = ~any_missing[rows]
    firsts = complete.argmax(axis=1)
    lasts = complete.shape[1] - 1 - complete[:, ::-1].argmax(axis=1)
    first, last = int(firsts.max()), int(lasts.min())
    if first > last:
        a, b = rows[int(firsts.argmax())], rows[int(lasts.argmin())]
        raise ForcingDataError(
            f"No period of {source} has forcing in every basin: "
            f"{BasinNote(ids[a], names[a], '').label} has none before {iso_day(time[first])} and "
            f"{BasinNote(ids[b], names[b], '').label} none after {iso_day(time[last])}. Select "
            "basins that overlap in time (--basins) or drop incomplete ones (--drop-incomplete).",
            basins=[ids[a], ids[b]],
        )
    return first, last


def _raise_gaps(
    missing: dict[str, np.ndarray],
    keep: np.ndarray,
    ids: list[str],
    names: list[str],
    time: pd.DatetimeIndex,
    source: str,
    what: str,
    fix: str = _FIX_GAPS,
) -> None:
    """Raise one error naming each variable with gaps and its basins."""
    parts, variables, basins = [], [], []
    for var, m in missing.items():
        rows = np.flatnonzero(keep & m.any(axis=1))
        if rows.size == 0:
            continue
        notes = [
            BasinNote(ids[i], names[i], _gap_detail(i, {var: m}, time).split(" missing ", 1)[1])
            for i in rows
        ]
        variables.append(var)
        basins.extend(n.basin for n in notes)
        parts.append(f"Variable '{var}' is missing in {len(notes)} basin(s): {list_notes(notes)}")
    raise ForcingDataError(
        f"Cannot use the forcing of {source}: {what}. " + ". ".join(parts) + f". {fix}",
        variable=variables[0] if variables else None,
        basins=list(dict.fromkeys(basins)),
    )
