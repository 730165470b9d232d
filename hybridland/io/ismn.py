"""In-situ soil moisture from ISMN download zips (Dorigo et al., 2021) as canonical targets.

Two ISMN file formats are read straight from the zip (no ``ismn`` package needed):

- **header+values** ``.stm``: one header line ``network network station lat lon elevation
  depth_from depth_to sensor`` then lines ``YYYY/MM/DD HH:MM value flag provider_flag``;
- **CEOP** ``.stm``: every line ``YYYY/MM/DD HH:MM YYYY/MM/DD HH:MM network network station lat
  lon elevation depth_from depth_to value flag provider_flag`` (nominal and actual UTC time).

Lines end in CR, LF or CRLF. Values (m3 m-3) whose ISMN quality flag is in ``flags`` are
averaged per UTC day; a day with no such value is NaN. ISMN flags: ``G`` good, ``C0x``
outside the plausible range, ``D0x`` dubious, ``U`` unchecked, ``M`` missing. Older downloads
(the SCAN/SOILSCAPE/MAQU zip) carry no ``G`` at all, only ``U`` and ``C``/``D``: read them with
``flags=("G", "U")``. Each sensor file becomes one column with id
``network/station/depth_from-depth_to/sensor`` and the header's lat/lon.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._report import ForcingDataError
from .canonical import make_dataset


def _parse_stm(name: str, text: str) -> tuple[dict, pd.DataFrame]:
    lines = text.splitlines()
    first = lines[0].split()
    if len(first) >= 13 and "/" in first[0] and "/" in first[2]:  # CEOP: every line is full
        rows = [ln.split() for ln in lines if ln.strip()]
        meta = dict(network=first[4], station=first[6], lat=float(first[7]), lon=float(first[8]),
                    depth_from=float(first[10]), depth_to=float(first[11]),
                    sensor=Path(name).stem.split("_")[-3] if name.count("_") >= 3 else "",
                    format="ceop")
        stamps = [r[0] + " " + r[1] for r in rows]
        values = [r[12] for r in rows]
        flags = [r[13] for r in rows]
    elif len(first) >= 8 and "/" not in first[0]:  # header+values
        meta = dict(network=first[0], station=first[2], lat=float(first[3]), lon=float(first[4]),
                    depth_from=float(first[6]), depth_to=float(first[7]),
                    sensor=" ".join(first[8:]), format="header+values")
        rows = [ln.split() for ln in lines[1:] if ln.strip()]
        stamps = [r[0] + " " + r[1] for r in rows]
        values = [r[2] for r in rows]
        flags = [r[3] for r in rows]
    else:
        raise NotImplementedError(
            f"{name}: not an ISMN 'header+values' or 'CEOP' .stm file (first line "
            f"{lines[0][:80]!r}); other ISMN formats (e.g. 'CSV') are not supported."
        )
    df = pd.DataFrame({
        "time": pd.to_datetime(stamps, format="%Y/%m/%d %H:%M"),
        "value": pd.to_numeric(values, errors="coerce"),
        "flag": flags,
    })
    return meta, df


def load_ismn(
    zip_path: str | os.PathLike,
    depth: tuple[float, float] | None = None,
    *,
    flags: Sequence[str] = ("G",),
    variable: str = "sm",
) -> xr.Dataset:
    """Daily soil moisture of every sensor in an ISMN zip, as a target-only canonical dataset.

    - ``depth``: ``(depth_from, depth_to)`` in m to keep (e.g. ``(0.05, 0.05)``); matched to
      0.1 mm. ``None`` keeps all depths.
    - ``flags``: ISMN quality flags accepted (a value flagged ``D02,D03`` is accepted only if
      the whole flag string is listed).

    The time axis runs from the first to the last day with data in any column. Raises
    ``ForcingDataError`` if a kept sensor has no accepted value, naming the flags it has.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"ISMN zip {zip_path} does not exist.")
    accepted = set(flags)
    columns, metas = [], []
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist()
                       if n.endswith(".stm") and f"_{variable}_" in Path(n).name)
        for name in names:
            meta, df = _parse_stm(name, zf.read(name).decode("latin-1"))
            # The header rounds depths to cm (5.08 cm reads 0.05); the file name has them to um.
            exact = re.search(rf"_{variable}_(\d+\.\d+)_(\d+\.\d+)_", Path(name).name)
            if exact:
                meta["depth_from"], meta["depth_to"] = map(float, exact.groups())
            if depth is not None and not (abs(meta["depth_from"] - depth[0]) < 1e-4
                                          and abs(meta["depth_to"] - depth[1]) < 1e-4):
                continue
            good = df["flag"].isin(accepted) & df["value"].notna()
            if not good.any():
                found = df["flag"].value_counts().head(5).to_dict()
                col_id = f"{meta['network']}/{meta['station']}"
                raise ForcingDataError(
                    f"Sensor {col_id} in {zip_path.name} has no value flagged "
                    f"{sorted(accepted)} (flags found: {found}). Accept more flags, e.g. "
                    "flags=('G', 'U') for downloads without ISMN quality control.",
                    variable="soil_moisture",
                    basins=[col_id],
                )
            daily = df.loc[good].set_index("time")["value"].resample("D").mean()
            columns.append(daily)
            metas.append(meta)
    if not columns:
        raise ForcingDataError(
            f"No soil moisture file in {zip_path.name} matches depth {depth} (files: "
            f"{len(names)}).",
            variable="soil_moisture",
        )
    time = pd.date_range(min(c.index[0] for c in columns), max(c.index[-1] for c in columns))
    values = np.stack([c.reindex(time).to_numpy(np.float64) for c in columns])
    ids = [f"{m['network']}/{m['station']}/{m['depth_from']:g}-{m['depth_to']:g}/"
           f"{m['sensor']}" for m in metas]
    return make_dataset(
        ids, time, [m["lat"] for m in metas], [m["lon"] for m in metas],
        {"soil_moisture": values},
        name=[m["station"] for m in metas],
        comments={"soil_moisture": f"daily mean of values flagged {sorted(accepted)}, UTC days"},
        attrs={"source": str(zip_path), "dataset": "ISMN (Dorigo et al., 2021); format "
               + ", ".join(sorted({m["format"] for m in metas}))},
    )
