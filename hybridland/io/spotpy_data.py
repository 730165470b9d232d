"""Real example data shipped with the ``spotpy`` package, as canonical datasets (one column each).

Files are found with ``importlib.resources`` inside ``spotpy/examples/`` (spotpy, MIT licence):

- ``load_fulda``: Fulda river, Germany, daily 1979-1988 (``cmf_data/fulda_climate.csv``). Area
  2976.41 km2 as in spotpy's ``spot_setup_cmf_lumped.py``; position of the town of Fulda
  (50.55 N, 9.68 E, approximate: the file has no coordinates; latitude only matters for
  radiation-based PET, to well under 1 % per 0.5 degree here).
- ``load_hymod_catchment``: a 1.783 km2 German catchment, daily 2012-2016
  (``hymod_python/hymod_input.csv``; the area is spotpy's ``spot_setup_hymod_python.py``
  factor). Discharge is missing (NaN) in 2012. Position unknown: the file and spotpy give none;
  we use central Germany (50.5 N, 9.0 E), an assumption to override with ``lat``/``lon``.
- ``load_schwingbach``: hourly weather at the Schwingbach near Rechtenbach, Hesse
  (``cmf_data/driver_data_site24.csv``, 2014-2016) aggregated to days, with daily mean soil
  moisture at 10, 25 and 40 cm (``soilmoisture_site24.csv``, a nearby site) as targets.
  The weather file stamps the 1st-12th of each month as ``YYYY-DD-MM``; the reader swaps
  them back (its rows are hour by hour in time order), which aligns weather and soil moisture.
  Position about 50.50 N, 8.60 E (Rechtenbach, approximate).
"""

from __future__ import annotations

import importlib.resources

import numpy as np
import pandas as pd
import xarray as xr

from ._report import ForcingDataError
from .canonical import make_dataset

FULDA_AREA_KM2 = 2976.41
HYMOD_AREA_KM2 = 1.783
FULDA_LAT_LON = (50.55, 9.68)
HYMOD_LAT_LON = (50.5, 9.0)
SCHWINGBACH_LAT_LON = (50.50, 8.60)

_CITE = "spotpy example data (Houska et al., 2015), spotpy/examples/"


def spotpy_file(relative: str):
    """Path of a file inside the installed ``spotpy/examples`` folder."""
    try:
        root = importlib.resources.files("spotpy") / "examples"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "These readers use the example data of the 'spotpy' package: pip install spotpy."
        ) from err
    path = root.joinpath(*relative.split("/"))
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is not in the installed spotpy ({root}).")
    return path


def discharge_to_mm_day(q_m3_s, area_km2: float):
    """Discharge in m3 s-1 over ``area_km2`` -> mm day-1 (m3 s-1 * 86400 s / m2 * 1000 mm/m)."""
    return np.asarray(q_m3_s, np.float64) * 86400.0 / (area_km2 * 1e6) * 1000.0


def load_fulda() -> xr.Dataset:
    """Fulda: precipitation, daily min/max temperature, streamflow (from m3 s-1)."""
    path = spotpy_file("cmf_data/fulda_climate.csv")
    df = pd.read_csv(path, skiprows=[1])  # second line holds the units
    time = pd.to_datetime(df["date"], format="%d.%m.%Y")
    series = {
        "precipitation": df["Prec"].to_numpy(),
        "air_temperature_min": df["tmin"].to_numpy(),
        "air_temperature_max": df["tmax"].to_numpy(),
        "streamflow": discharge_to_mm_day(df["Q"].to_numpy(), FULDA_AREA_KM2),
    }
    return make_dataset(
        ["fulda"], time, FULDA_LAT_LON[0], FULDA_LAT_LON[1], series,
        area_km2=FULDA_AREA_KM2, name=["Fulda"],
        attrs={"source": str(path), "dataset": _CITE + "cmf_data/fulda_climate.csv"},
    )


def load_hymod_catchment(
    lat: float = HYMOD_LAT_LON[0], lon: float = HYMOD_LAT_LON[1]
) -> xr.Dataset:
    """HYMOD example catchment: rainfall, TURC PET (given), streamflow (from l s-1).

    The file has no temperature, so ``air_temperature_min``/``max`` are absent and the dataset
    is not a complete forcing; it carries precipitation, PET and streamflow.
    """
    path = spotpy_file("hymod_python/hymod_input.csv")
    df = pd.read_csv(path, sep=";")
    df.columns = ["date", "rain", "pet", "q"]
    time = pd.to_datetime(df["date"], format="%d.%m.%Y")
    q_l_s = pd.to_numeric(df["q"], errors="coerce").to_numpy()
    series = {
        "precipitation": df["rain"].to_numpy(),
        "potential_evapotranspiration": df["pet"].to_numpy(),
        "streamflow": discharge_to_mm_day(q_l_s / 1000.0, HYMOD_AREA_KM2),
    }
    return make_dataset(
        ["hymod"], time, lat, lon, series, area_km2=HYMOD_AREA_KM2, name=["HYMOD example"],
        attrs={"source": str(path), "dataset": _CITE + "hymod_python/hymod_input.csv"},
        comments={"potential_evapotranspiration": "TURC formula, from the file"},
    )


def _read_hourly(path) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8").splitlines()
    header = text[0].lstrip("# ").split(",")
    df = pd.read_csv(path, comment="#", header=None, names=header, skiprows=1)
    df.index = _chronological(pd.DatetimeIndex(pd.to_datetime(df.pop("time"))), path.name)
    return df


def _chronological(time: pd.DatetimeIndex, name: str) -> pd.DatetimeIndex:
    """The stamps of a file whose rows are in time order, with month and day swapped back on
    the 1st to 12th of a month where the file wrote them as ``YYYY-DD-MM``.

    ``driver_data_site24.csv`` does this: its rows run hour by hour, but 2 January 2014 is
    stamped ``2014-02-01`` (and 1 February ``2014-01-02``), so read as written 40 % of the days
    land in the wrong month. Stamps that already increase are kept; swapped ones are used only
    if they then increase strictly, else ``ForcingDataError``.
    """
    if time.is_monotonic_increasing and time.is_unique:
        return time
    swap = time.day <= 12
    fixed = pd.DatetimeIndex(pd.to_datetime(pd.DataFrame({
        "year": time.year,
        "month": np.where(swap, time.day, time.month),
        "day": np.where(swap, time.month, time.day),
        "hour": time.hour,
        "minute": time.minute,
    })))
    if not (fixed.is_monotonic_increasing and fixed.is_unique):
        raise ForcingDataError(
            f"The time stamps of {name} are not in order, even with month and day swapped on "
            "days 1-12; cannot tell which day each row belongs to.",
            variable="time",
        )
    return fixed


def load_schwingbach(min_hours: int = 24) -> xr.Dataset:
    """Schwingbach: daily rain sum, T min/max, net-radiation-free forcing, soil moisture targets.

    Hourly rain is given as a rate in mm day-1 (column ``rain_mmday``), so the daily total is
    the mean of the hourly rates. A day with fewer than ``min_hours`` hourly records is NaN.
    Solar radiation (incoming, not net) is not a canonical forcing and is left out.
    """
    weather = _read_hourly(spotpy_file("cmf_data/driver_data_site24.csv"))
    soil = _read_hourly(spotpy_file("cmf_data/soilmoisture_site24.csv"))
    day_w = weather.resample("D")
    count = day_w["airtemp_degC"].count()
    ok = (count >= min_hours).to_numpy()
    rain = np.where(ok, day_w["rain_mmday"].mean().to_numpy(), np.nan)
    if np.nanmin(rain) < 0:
        raise ForcingDataError("Schwingbach rain has negative values.", variable="precipitation")
    day_s = soil.resample("D").mean().reindex(count.index)
    n_soil = soil.resample("D").count().reindex(count.index).min(axis=1).fillna(0).to_numpy()
    series = {
        "precipitation": rain,
        "air_temperature_min": np.where(ok, day_w["airtemp_degC"].min().to_numpy(), np.nan),
        "air_temperature_max": np.where(ok, day_w["airtemp_degC"].max().to_numpy(), np.nan),
    }
    for depth in (10, 25, 40):
        values = day_s[f"soil_moisture_{depth}cm"].to_numpy()
        series[f"soil_moisture_{depth}cm"] = np.where(n_soil >= min_hours, values, np.nan)
    comments = {
        "precipitation": "daily mean of hourly rates (rain_mmday)",
        "air_temperature_min": "minimum of hourly air temperature",
        "air_temperature_max": "maximum of hourly air temperature",
    }
    comments.update({f"soil_moisture_{d}cm": f"daily mean at {d} cm depth, Vollnkirchener Bach"
                     for d in (10, 25, 40)})
    return make_dataset(
        ["schwingbach"], count.index, SCHWINGBACH_LAT_LON[0], SCHWINGBACH_LAT_LON[1], series,
        name=["Schwingbach site 24"], comments=comments,
        attrs={"dataset": _CITE + "cmf_data/driver_data_site24.csv, soilmoisture_site24.csv"},
    )
