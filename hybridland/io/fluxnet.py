"""FLUXNET2015 SUBSET daily files (``FLX_<site>_FLUXNET2015_SUBSET_DD_*.csv``), canonical.

Columns used (Pastorello et al., 2020; missing = -9999):

- forcing: ``P_F`` precipitation (mm day-1); ``TA_F`` daily *mean* air temperature (degC): the
  daily SUBSET file has no minimum or maximum, so both ``air_temperature_min`` and
  ``air_temperature_max`` are set to ``TA_F`` (marked in their ``comment``; Hargreaves PET then
  sees no diurnal range, so prefer Oudin or Priestley-Taylor PET for this data);
  ``NETRAD`` net radiation and ``G_F_MDS`` ground heat flux (W m-2);
- targets: ``LE_F_MDS`` (or ``LE_CORR``, energy-balance corrected) latent heat, ``H_F_MDS``
  (or ``H_CORR``) sensible heat (W m-2); ``evapotranspiration`` = LE / lambda with the
  project's lambda (``hybridland.units.W_M2_PER_MM_DAY``, lambda = 2.45 MJ kg-1, 28.36 W m-2
  per mm day-1; the data README's 28.94 uses 2.5 MJ kg-1, 2 % less ET); ``SWC_F_MDS_1`` soil
  water content (% -> m3 m-3).

Daily ``_QC`` columns hold the fraction (0-1) of half-hours that were measured or gap-filled
with good quality. ``min_qc`` masks (NaN) target days whose QC is below it; forcing is never
masked (gap-filled forcing is still the best forcing there is). The corrected ``LE_CORR`` and
``H_CORR`` have no QC column of their own and use those of ``LE_F_MDS`` and ``H_F_MDS``.

The CSV has no coordinates: ``lat``/``lon`` are arguments, with a small table of known sites.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..units import W_M2_PER_MM_DAY
from ._report import ForcingDataError
from .canonical import make_dataset

MISSING = -9999.0

KNOWN_SITES: dict[str, tuple[float, float, str]] = {
    "US-AR1": (36.4267, -99.4200, "ARM USDA UNL OSU Woodward Switchgrass 1"),
}
"""Site id -> (lat degrees north, lon degrees east, name) from the FLUXNET2015 site list."""


def site_from_filename(path: str | os.PathLike) -> str | None:
    """``'US-AR1'`` from ``FLX_US-AR1_FLUXNET2015_SUBSET_DD_...csv``, else ``None``."""
    m = re.match(r"FLX_([A-Za-z]{2}-[A-Za-z0-9]{3})_", Path(path).name)
    return m.group(1) if m else None


def load_fluxnet(
    path: str | os.PathLike,
    site: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    min_qc: float | None = None,
    corrected: bool = False,
) -> xr.Dataset:
    """Read one FLUXNET2015 SUBSET daily CSV (see the module docstring).

    - ``site``: site id (default: from the file name); ``lat``/``lon`` override
      ``KNOWN_SITES`` and are required for a site not in it.
    - ``min_qc``: mask target days with QC fraction below this (0-1); ``None`` keeps all.
    - ``corrected``: use ``LE_CORR``/``H_CORR`` (energy balance closed by Bowen-ratio scaling)
      instead of ``LE_F_MDS``/``H_F_MDS`` for the latent/sensible heat and ET targets.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FLUXNET file {path} does not exist.")
    site = site or site_from_filename(path)
    if lat is None or lon is None:
        if site not in KNOWN_SITES:
            raise ForcingDataError(
                f"Site {site!r} of {path.name} is not in the table of known sites "
                f"({', '.join(KNOWN_SITES)}); the CSV has no coordinates, so give lat= and lon=.",
                variable="lat",
            )
        lat = KNOWN_SITES[site][0] if lat is None else lat
        lon = KNOWN_SITES[site][1] if lon is None else lon
    if min_qc is not None and not 0.0 <= min_qc <= 1.0:
        raise ValueError(f"min_qc is a fraction of good data in [0, 1], got {min_qc!r}.")
    df = pd.read_csv(path, na_values=[MISSING, int(MISSING)])
    needed = ["TIMESTAMP", "P_F", "TA_F"]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise ForcingDataError(
            f"Column(s) {', '.join(absent)} are missing from {path.name}; a FLUXNET2015 daily "
            "(DD) file has them.",
            variable=absent[0],
        )
    time = pd.to_datetime(df["TIMESTAMP"].astype(str), format="%Y%m%d")

    def column(name):
        return df[name].to_numpy(np.float64) if name in df.columns else None

    def qc_masked(values, qc_name):
        if values is None or min_qc is None or qc_name not in df.columns:
            return values
        return np.where(df[qc_name].to_numpy(np.float64) >= min_qc, values, np.nan)

    le_name, h_name = ("LE_CORR", "H_CORR") if corrected else ("LE_F_MDS", "H_F_MDS")
    le = qc_masked(column(le_name), "LE_F_MDS_QC")
    h = qc_masked(column(h_name), "H_F_MDS_QC")
    swc = qc_masked(column("SWC_F_MDS_1"), "SWC_F_MDS_1_QC")
    series = {
        "precipitation": column("P_F"),
        "air_temperature_min": column("TA_F"),
        "air_temperature_max": column("TA_F"),
    }
    optional = {
        "net_radiation": column("NETRAD"),
        "ground_heat_flux": column("G_F_MDS"),
        "latent_heat_flux": le,
        "sensible_heat_flux": h,
        "evapotranspiration": None if le is None else le / W_M2_PER_MM_DAY,
        "soil_moisture": None if swc is None else swc / 100.0,
    }
    series.update({k: v for k, v in optional.items() if v is not None})
    mean_t = "daily mean air temperature TA_F: the daily file has no minimum or maximum"
    comments = {
        "air_temperature_min": mean_t,
        "air_temperature_max": mean_t,
        "evapotranspiration": f"{le_name} / {W_M2_PER_MM_DAY:.4f} W m-2 per mm day-1 "
        "(lambda 2.45 MJ kg-1, hybridland.units)",
        "soil_moisture": "SWC_F_MDS_1 (%) / 100, shallowest sensor",
        "latent_heat_flux": le_name,
        "sensible_heat_flux": h_name,
    }
    name = KNOWN_SITES.get(site, (None, None, site or path.stem))[2]
    return make_dataset(
        [site or path.stem], time, lat, lon, series, name=[name], comments=comments,
        attrs={"source": str(path), "dataset": "FLUXNET2015 SUBSET (Pastorello et al., 2020), "
               "CC-BY-4.0", "min_qc": "none" if min_qc is None else str(min_qc)},
    )
