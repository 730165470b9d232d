"""Figures of runs and simulations: hydrographs, cumulative water budget, training curves,
metric CDFs across basins.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend change), so
it works headless and leaves a caller's matplotlib state alone. Simulations are read from
datasets in the layout of ``hybridland.io.output`` (the budget via ``water_budget_terms``);
observed runoff is the dataset's ``observed_runoff`` when present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._files import atomic_write_bytes
from .output import water_budget_terms


_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
_DASHES = ("-", "--", "-.", ":")


def model_style(i: int) -> dict[str, str]:
    """Colour and line style of the ``i``-th model (or series) in a figure that overlays
    several: every pair differs in colour, and the first 20 also in their (colour, dash)
    pair, so lines stay apart in grey print and for colour-blind readers. Observations are
    drawn black, outside this cycle."""
    return {"color": _COLOURS[i % len(_COLOURS)], "linestyle": _DASHES[i % len(_DASHES)]}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    """Write ``fig`` to ``path`` atomically (its format from the suffix): a Ctrl-C while it is
    written leaves the earlier figure, never a truncated one. A PNG names hybridland as its
    ``Software`` (``hybridland_figure``), so a later run knows it may replace it."""
    from .output import package_version

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    form = path.suffix.lstrip(".") or "png"
    metadata = {"Software": f"hybridland {package_version()}"} if form == "png" else None
    atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=110, format=form, metadata=metadata))
    return path


def hybridland_figure(path) -> bool:
    """Whether ``path`` is a PNG that hybridland drew (its ``Software`` text chunk names
    hybridland): an earlier figure of a run, replaced by a new one; any other file is not."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00hybridland" in head


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _title(ds: xr.Dataset, b: int, extra: str = "") -> str:
    name = str(ds["name"].values[b]) if "name" in ds.coords else ""
    return f"{ds['basin'].values[b]} {name} {extra}".strip()


def plot_hydrographs(
    ds: xr.Dataset,
    path,
    *,
    basins: Sequence[int] | None = None,
    scores: Mapping[str, Sequence[float]] | None = None,
    extra: Mapping[str, str] | None = None,
    label: str = "simulated",
    n_basins: int = 4,
) -> Path:
    """Observed (``observed_runoff``) and simulated runoff of a few basins, daily.

    ``basins`` are row indices (default: ``n_basins`` spread over the dataset); ``scores`` maps a
    metric name to per-basin values shown in the panel titles; ``extra`` maps a label to the
    name of another runoff variable of ``ds`` to draw (e.g. a second model); ``label`` names
    ``runoff`` in the legend. Observations are black; each model has its own colour and line
    style (``model_style``).
    """
    n = ds.sizes["basin"]
    if basins is None:
        basins = np.unique(np.linspace(0, n - 1, min(n_basins, n)).round().astype(int))
    time = ds["time"].to_index()
    fig = _figure(12, 2.6 * len(basins) + 0.4)
    axes = fig.subplots(len(basins), 1, squeeze=False)[:, 0]
    for ax, b in zip(axes, basins, strict=True):
        if "observed_runoff" in ds:
            ax.plot(time, ds["observed_runoff"].values[b], color="k", lw=0.9, label="observed")
        ax.plot(time, ds["runoff"].values[b], lw=0.9, label=label, **model_style(0))
        for i, (name, var) in enumerate((extra or {}).items(), start=1):
            ax.plot(time, ds[var].values[b], lw=0.9, label=name, **model_style(i))
        text = ", ".join(f"{k.upper()} {v[b]:.2f}" for k, v in (scores or {}).items())
        # the scores are those of the main series; with other models drawn, say whose
        whose = f"{label}: " if text and extra else ""
        ax.set_title(_title(ds, b, f"({whose}{text})" if text else ""), fontsize=9)
        ax.set_ylabel("runoff, mm day-1")
        _date_axis(ax)
    axes[0].legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def plot_water_budget(ds: xr.Dataset, path) -> Path:
    """Cumulative basin-mean water budget (P, E, Q, the groundwater loss L where the file has
    one, storage change) recomputed from the file,
    and the largest |cumulative residual| over basins (the model's and the recomputed one)."""
    terms = water_budget_terms(ds)
    time = ds["time"].to_index()
    fig = _figure(12, 4.2)
    budget, residual = fig.subplots(1, 2)
    mean = {k: v.mean("basin") for k, v in terms.items()}
    series = (
        ("precipitation (P)", mean["input"], "tab:blue"),
        ("evapotranspiration (E)", ds["evapotranspiration"].astype(np.float64).mean("basin"),
         "tab:orange"),
        ("runoff (Q)", ds["runoff"].astype(np.float64).mean("basin"), "tab:purple"),
        ("storage change (dS)", mean["storage_change"], "tab:green"),
    )
    if "groundwater_loss" in ds:
        series += (("groundwater loss (L)", ds["groundwater_loss"].astype(np.float64).mean("basin"),
                    "tab:brown"),)
    for label, values, color in series:
        budget.plot(time, values.cumsum("time"), color=color, label=label)
    budget.plot(time, (mean["storage_change"] - mean["input"] + mean["output"]).cumsum("time"),
                "k:",
                label="dS - (P - E - Q - L)" if "groundwater_loss" in ds else "dS - (P - E - Q)")
    budget.set_title("cumulative water budget, mean over basins", fontsize=9)
    budget.set_ylabel("mm since the first day")
    budget.legend(fontsize=8)
    residual.plot(time, np.abs(terms["cumulative_residual"]).max("basin"),
                  label="recomputed from the file (float64)", **model_style(0))
    residual.plot(time, np.abs(ds["water_balance_residual"]).max("basin"),
                  label="model's running sum", **model_style(1))
    for ax in (budget, residual):
        _date_axis(ax)
    residual.set_title("largest |cumulative water balance residual| over basins", fontsize=9)
    residual.set_ylabel("mm")
    residual.legend(fontsize=8)
    return _save(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, float]], path) -> Path:
    """Training and validation loss per epoch, and the validation median NSE."""
    epochs = [row["epoch"] for row in history]
    fig = _figure(11, 3.8)
    loss, nse = fig.subplots(1, 2)
    loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="training",
              **model_style(0))
    # validated epochs only (``training.validate_every``): the others have no scores
    scored = [row for row in history if math.isfinite(row["val_loss"])]
    loss.plot([row["epoch"] for row in scored], [row["val_loss"] for row in scored], marker="s",
              label="validation", **model_style(1))
    loss.set_xlabel("epoch")
    loss.set_ylabel("loss")
    loss.set_title("loss", fontsize=9)
    loss.legend(fontsize=8)
    nse.plot([row["epoch"] for row in scored], [row["val_median_nse"] for row in scored], "s-",
             color="tab:green")
    nse.set_xlabel("epoch")
    nse.set_ylabel("median NSE over basins")
    nse.set_title("validation median NSE", fontsize=9)
    return _save(fig, path)


def cdf_steps(values: np.ndarray, lower: float) -> tuple[np.ndarray, np.ndarray]:
    """The points of an empirical CDF drawn as steps (``where="post"``) over ``[lower, 1]``:
    0 from ``lower`` up to the smallest of the sorted finite ``values`` (drawn at ``lower`` if
    below it), ``k / n`` from the ``k``-th, 1 from the largest to 1. Without the two ends a
    single basin drew one point and no line, and no curve rose from 0."""
    x = np.maximum(values, lower)
    share = np.arange(1, x.size + 1) / x.size
    return np.concatenate([[lower], x, [1.0]]), np.concatenate([[0.0], share, [1.0]])


def plot_metric_cdf(
    tables: Mapping[str, Mapping[str, Sequence[float]]],
    path,
    *,
    metrics: Sequence[str] = ("nse", "kge"),
    lower: float = -1.0,
) -> Path:
    """Empirical CDF across basins of each metric, one line per labelled table (a mapping or
    DataFrame with a column per metric; each its own ``model_style``). Values below ``lower``
    are drawn at ``lower``."""
    fig = _figure(5.2 * len(metrics), 3.8)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, table) in enumerate(tables.items()):
            values = np.sort(np.asarray(table[metric], float))
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            median = np.median(values)
            ax.step(*cdf_steps(values, lower), where="post",
                    label=f"{label} (median {median:.2f}, n={values.size})", **model_style(i))
        ax.set_xlim(lower, 1)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(metric.upper())
        ax.set_ylabel("fraction of basins")
        ax.set_title(f"{metric.upper()} across basins", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
