"""CAMELS-US text files (Newman et al., 2015; Addor et al., 2017) as a canonical dataset.

Layout of the CAMELS-US release (``root`` defaults to ``data_dir()/camels_us_sample``):

- ``basin_mean_forcing/daymet/<gauge>_lump_cida_forcing_leap.txt``: three header lines
  (gauge latitude, elevation m, area m2), a column header, then
  ``Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)``;
- ``usgs_streamflow/<gauge>_streamflow_qc.txt``: ``gauge year month day Q QC`` with Q in
  ft3 s-1 and -999 for missing; converted to mm day-1 with ``area_gages2`` (km2) from
  ``camels_attributes_v2.0/camels_topo.txt``;
- ``camels_attributes_v2.0/camels_*.txt``: ``;``-separated tables, one row per gauge; every
  numeric column becomes a static variable (text columns such as ``geol_1st_class`` are left
  out; ``gauge_name`` becomes the ``name`` coordinate).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._checks import select_basins, select_period
from ._report import DataAdjustmentWarning, ForcingDataError
from .canonical import make_dataset
from .paths import data_dir

CUBIC_FEET_M3 = 0.3048**3
FORCING_GLOB = "basin_mean_forcing/daymet/{gauge}_lump_cida_forcing_leap.txt"
FLOW_GLOB = "usgs_streamflow/{gauge}_streamflow_qc.txt"
ATTRIBUTES = "camels_attributes_v2.0"

STATIC_UNITS = {
    "p_mean": "mm day-1", "pet_mean": "mm day-1", "q_mean": "mm day-1", "q5": "mm day-1",
    "q95": "mm day-1", "high_prec_freq": "day yr-1", "low_prec_freq": "day yr-1",
    "high_q_freq": "day yr-1", "low_q_freq": "day yr-1", "high_prec_dur": "day",
    "low_prec_dur": "day", "high_q_dur": "day", "low_q_dur": "day", "hfd_mean": "day of year",
    "zero_q_freq": "1", "gauge_lat": "degrees_north", "gauge_lon": "degrees_east",
    "elev_mean": "m", "slope_mean": "m km-1", "area_gages2": "km2", "area_geospa_fabric": "km2",
    "soil_depth_pelletier": "m", "soil_depth_statsgo": "m", "soil_conductivity": "cm h-1",
    "max_water_content": "m", "sand_frac": "percent", "silt_frac": "percent",
    "clay_frac": "percent", "water_frac": "percent", "organic_frac": "percent",
    "other_frac": "percent", "lai_max": "m2 m-2", "lai_diff": "m2 m-2", "root_depth_50": "m",
    "root_depth_99": "m", "geol_permeability": "log10(m2)",
}
"""Units of the CAMELS attributes (Addor et al., 2017, Table 1-5); others are fractions, '1'."""


def camels_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else data_dir() / "camels_us_sample"


def read_attributes(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """All ``camels_*.txt`` tables joined on ``gauge_id`` (a string keeping leading zeros)."""
    folder = camels_root(root) / ATTRIBUTES
    tables = sorted(folder.glob("camels_*.txt"))
    if not tables:
        raise FileNotFoundError(f"No camels_*.txt attribute tables in {folder}.")
    frames = [
        pd.read_csv(t, sep=";", dtype={"gauge_id": str}).set_index("gauge_id") for t in tables
    ]
    table = pd.concat(frames, axis=1)
    table.index = table.index.str.strip()
    return table


def read_forcing(path: Path) -> tuple[pd.DataFrame, float]:
    """Daymet forcing of one gauge and its latitude (first header line)."""
    with open(path) as f:
        lat = float(f.readline())
    df = pd.read_csv(path, sep=r"\s+", skiprows=3)
    df.index = pd.to_datetime(
        dict(year=df["Year"], month=df["Mnth"], day=df["Day"])
    )
    return df, lat


def read_streamflow(path: Path, area_km2: float) -> pd.Series:
    """USGS discharge in mm day-1 (ft3 s-1 -> m3 s-1 -> depth over ``area_km2``), NaN missing."""
    df = pd.read_csv(path, sep=r"\s+", header=None,
                     names=["gauge", "year", "month", "day", "q", "flag"], dtype={"gauge": str})
    q = df["q"].where(df["q"] >= 0)  # -999 marks missing
    mm_day = q * CUBIC_FEET_M3 * 86400.0 / (area_km2 * 1e6) * 1000.0
    mm_day.index = pd.to_datetime(dict(year=df["year"], month=df["month"], day=df["day"]))
    return mm_day


def load_camels(
    root: str | os.PathLike | None = None,
    gauges: Sequence[str] | None = None,
    start=None,
    end=None,
) -> xr.Dataset:
    """Canonical dataset of CAMELS-US gauges (default: every gauge with a forcing file).

    Forcing: ``precipitation`` (prcp), ``air_temperature_min``/``max`` (tmin, tmax); target
    ``streamflow``; statics from the attribute tables. ``start``/``end`` (inclusive ISO dates)
    must lie inside the common forcing period.
    """
    root = camels_root(root)
    found = sorted(p.name.split("_")[0] for p in (root / "basin_mean_forcing" / "daymet").glob(
        "*_lump_cida_forcing_leap.txt"))
    if not found:
        raise FileNotFoundError(f"No Daymet forcing files under {root}/basin_mean_forcing/daymet.")
    ids = [found[i] for i in select_basins(found, gauges, str(root))]
    attrs = read_attributes(root)
    missing = [g for g in ids if g not in attrs.index]
    if missing:
        raise ForcingDataError(
            f"Gauge(s) {', '.join(missing)} have forcing but no row in {ATTRIBUTES}.",
            variable="area_gages2", basins=missing,
        )
    frames, lats = [], []
    for g in ids:
        df, lat = read_forcing(root / FORCING_GLOB.format(gauge=g))
        frames.append(df)
        lats.append(lat)
    first = max(f.index[0] for f in frames)
    last = min(f.index[-1] for f in frames)
    time = pd.date_range(first, last, freq="D")
    t0, t1 = select_period(time, start, end, str(root))
    time = time[t0:t1]

    def col(name):
        return np.stack([f[name].reindex(time).to_numpy(np.float64) for f in frames])

    area = attrs.loc[ids, "area_gages2"].to_numpy(np.float64)
    flow, no_flow = [], []
    for g, a in zip(ids, area):
        path = root / FLOW_GLOB.format(gauge=g)
        if path.is_file():
            flow.append(read_streamflow(path, a).reindex(time).to_numpy())
        else:  # forcing without a record: simulated, but never scored against nothing
            flow.append(np.full(len(time), np.nan))
            no_flow.append(g)
    flow_comment = "USGS discharge (ft3 s-1) / area_gages2; -999 -> NaN"
    if no_flow:
        listed = ", ".join(no_flow)
        warnings.warn(DataAdjustmentWarning(
            f"CAMELS gauge(s) {listed} have forcing but no streamflow file (expected "
            f"{root / FLOW_GLOB.format(gauge=no_flow[0])}): their streamflow is NaN (missing) "
            "throughout. Add the file, or leave the gauge(s) out to train or score."),
            stacklevel=2)
        flow_comment += f"; no streamflow file for {listed}: NaN throughout"
    series = {
        "precipitation": col("prcp(mm/day)"),
        "air_temperature_min": col("tmin(C)"),
        "air_temperature_max": col("tmax(C)"),
        "streamflow": np.stack(flow),
    }
    numeric = attrs.loc[ids].apply(pd.to_numeric, errors="coerce")
    statics = {
        c: (numeric[c].to_numpy(np.float64), STATIC_UNITS.get(c, "1"), c.replace("_", " "))
        for c in attrs.columns
        if numeric[c].notna().any() and c != "huc_02"
    }
    names = attrs.loc[ids, "gauge_name"].astype(str).tolist() if "gauge_name" in attrs else None
    return make_dataset(
        ids, time, np.asarray(lats), attrs.loc[ids, "gauge_lon"].to_numpy(np.float64), series,
        statics=statics, area_km2=area, name=names,
        attrs={"source": str(root), "dataset": "CAMELS-US (Newman et al., 2015; Addor et al., "
               "2017); forcing Daymet"},
        comments={"streamflow": flow_comment},
    )
