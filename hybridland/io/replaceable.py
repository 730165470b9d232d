"""Which existing files a command may replace: only an earlier output of the same kind.

Every command that writes a file at a name the user gives (``--out``, ``--plots``, the demo's
folder) replaces a file already there only when hybridland wrote it, as that kind of output;
anything else a user keeps there is left as it is and the command refuses, naming it.
"""

from __future__ import annotations

import json
from pathlib import Path


def netcdf_output(path: Path) -> bool:
    """Whether ``path`` is a NetCDF file that hybridland wrote (its ``source`` attribute)."""
    import xarray as xr

    try:
        with xr.open_dataset(path, decode_cf=False, decode_times=False) as ds:
            return str(ds.attrs.get("source", "")).startswith("hybridland")
    except Exception:  # noqa: BLE001 - not NetCDF, damaged, unreadable: not ours to replace
        return False


def metric_table(path: Path) -> bool:
    """Whether ``path`` is a per-basin metric table that ``evaluate`` wrote."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline(65536).strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return header[:1] == ["basin"] and {"nse", "kge", "parameters"} <= set(header)


def emulator_summary(path: Path) -> bool:
    """Whether ``path`` is the JSON summary that ``emulate evaluate`` wrote."""
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(summary, dict) and {"emulator", "aridity", "seed"} <= set(summary)


def figure(path: Path) -> bool:
    """Whether ``path`` is a PNG that hybridland drew (``plots.hybridland_figure``)."""
    from .plots import hybridland_figure

    return hybridland_figure(path)


OUTPUT_KINDS = {
    "netcdf": (netcdf_output, "an output of hybridland (a NetCDF file whose 'source' attribute "
               "names hybridland)"),
    "table": (metric_table, "a metric table of hybridland evaluate (a CSV whose header starts "
              "with 'basin' and holds nse, kge and parameters)"),
    "summary": (emulator_summary, "a summary of hybridland emulate evaluate (JSON with "
                "emulator, aridity and seed)"),
    "figure": (figure, "a figure of hybridland (a PNG whose Software is hybridland)"),
}
"""Each kind of output: whether an existing file is an earlier one (replaced), and how the
refusal describes it."""


def foreign(path, kind: str) -> str | None:
    """How a refusal describes ``kind`` (``OUTPUT_KINDS``) when ``path`` holds a file that is
    not an earlier output of that kind, so that writing there would replace a file of the
    user's; None when ``path`` is free or may be replaced."""
    ours, what = OUTPUT_KINDS[kind]
    return what if Path(path).exists() and not ours(Path(path)) else None
