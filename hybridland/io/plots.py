"""Figures from written simulations: observed vs simulated runoff and the water budget.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend change), so
it works headless and leaves a caller's matplotlib state alone. Everything plotted is read from
datasets in the layout of ``hybridland.io.output`` (the budget via ``water_budget_terms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .output import water_budget_terms

_STYLES = {"physics": "-", "hybrid": "--"}


def plot_demo(
    datasets: Mapping[str, xr.Dataset],
    observed_runoff: np.ndarray | None,
    path: str | Path,
    *,
    n_hydrographs: int = 4,
) -> Path:
    """Write a PNG: monthly runoff of a few basins (observed and each model), the cumulative
    basin-mean budget terms, and the largest cumulative residual over basins.

    ``datasets`` maps a model label to its output dataset (same basins and days in each);
    ``observed_runoff`` is ``[basin, time]`` in mm day-1 with NaN gaps, or ``None``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = next(iter(datasets.values()))
    n_basins = first.sizes["basin"]
    time = first["time"].to_index()
    picks = np.unique(
        np.linspace(0, n_basins - 1, min(n_hydrographs, n_basins)).round().astype(int)
    )

    fig = Figure(figsize=(13, 4 + 2.6 * ((len(picks) + 1) // 2)), layout="constrained")
    FigureCanvasAgg(fig)
    rows = (len(picks) + 1) // 2 + 1
    axes = fig.subplots(rows, 2, squeeze=False)

    def monthly(values: np.ndarray) -> xr.DataArray:
        return xr.DataArray(values, coords={"time": time}, dims="time").resample(time="MS").mean()

    for ax, b in zip(axes[:-1].ravel(), picks, strict=False):
        if observed_runoff is not None:
            obs = monthly(observed_runoff[b])
            ax.plot(obs["time"], obs, color="k", lw=1.2, label="observed Q")
        for label, ds in datasets.items():
            sim = monthly(ds["runoff"].values[b])
            ax.plot(sim["time"], sim, _STYLES.get(label, "-"), lw=1, label=f"{label} runoff")
        name = str(ds["name"].values[b]) if "name" in ds.coords else ""
        ax.set_title(f"{ds['basin'].values[b]} {name}".strip(), fontsize=9)
        ax.set_ylabel("runoff, mm day-1 (monthly mean)")
    for ax in axes[:-1].ravel()[len(picks) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)

    budget, residual = axes[-1]
    for label, ds in datasets.items():
        terms = water_budget_terms(ds)
        style = _STYLES.get(label, "-")
        mean = {k: v.mean("basin") for k, v in terms.items()}
        for key, color, text in (
            ("input", "tab:blue", "precipitation"),
            ("storage_change", "tab:green", "storage change"),
        ):
            budget.plot(
                time, mean[key].cumsum("time"), style, color=color, label=f"{text} ({label})"
            )
        for var, color in (("evapotranspiration", "tab:orange"), ("runoff", "tab:purple")):
            budget.plot(
                time,
                ds[var].astype(np.float64).mean("basin").cumsum("time"),
                style,
                color=color,
                label=f"{var} ({label})",
            )
        worst = np.abs(terms["cumulative_residual"]).max("basin")
        residual.plot(time, worst, style, label=f"recomputed from file ({label})")
        residual.plot(
            time,
            np.abs(ds["water_balance_residual"]).max("basin"),
            style,
            alpha=0.6,
            label=f"model's running sum ({label})",
        )
    budget.set_title("cumulative water budget, mean over basins", fontsize=9)
    budget.set_ylabel("mm since start")
    budget.legend(fontsize=7, ncol=2)
    residual.set_title("largest |cumulative water balance residual| over basins", fontsize=9)
    residual.set_ylabel("mm")
    residual.legend(fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
