"""What a finished run writes besides its weights: per-basin metric tables and figures.

``write_report(run_dir, config, history)`` evaluates the best model on the run's validation
and test periods (``evaluate_run``) and writes ``metrics_<period>.csv`` (one row per basin:
NSE, KGE with r, alpha, beta, the other metrics, and the closure residuals), and in
``plots/``: the training curves, the hydrographs and the cumulative water budget of each
period, and the CDF of NSE and KGE across basins. An lstm run has no water balance: its tables
carry NaN closure columns and it gets no water-budget figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..io.plots import plot_hydrographs, plot_metric_cdf, plot_training_curves, plot_water_budget
from .checkpoint import atomic_write_text
from .config import Config
from .evaluate import Evaluation, evaluate_run


def write_table(table: pd.DataFrame, path) -> Path:
    """Write a per-basin metric table as CSV (atomically)."""
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6g"))
    return Path(path)


def evaluation_figures(folder, label: str) -> tuple[Path, Path]:
    """The files ``plot_evaluation`` draws in ``folder`` for ``label``: the hydrographs and
    the cumulative water budget (drawn for a model with a water balance)."""
    folder = Path(folder)
    return folder / f"hydrographs_{label}.png", folder / f"water_budget_{label}.png"


def plot_evaluation(evaluation: Evaluation, folder, label: str) -> list[Path]:
    """Hydrographs and (for a model with a water balance) the cumulative water budget of an
    evaluation, named after ``label`` (``evaluation_figures``)."""
    ds = evaluation.dataset()
    table = evaluation.table
    scores = {"nse": table["nse"].to_numpy(), "kge": table["kge"].to_numpy()}
    hydrographs, budget = evaluation_figures(folder, label)
    figures = [plot_hydrographs(ds, hydrographs, scores=scores)]
    if evaluation.simulation is not None:
        figures.append(plot_water_budget(ds, budget))
    return figures


def write_report(
    run_dir,
    config: Config,
    history: Sequence[Mapping[str, float]],
    *,
    log: Callable[[str], None] = print,
    progress: bool | None = None,
) -> dict[str, pd.DataFrame]:
    """Evaluate a finished run (of configuration ``config``) on its validation and test
    periods; write tables and figures.

    Returns ``{period: metric table}``.
    """
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plot_training_curves(history, plots / "training_curves.png")
    tables = {}
    for label, period in (
        ("validation", config.data.validation_period),
        ("test", config.data.test_period),
    ):
        if period is None:
            continue
        evaluation = evaluate_run(run_dir, period=period, progress=progress)
        for text in evaluation.adjustments:
            log(f"{label} input adjustment: {text}")
        tables[label] = evaluation.table
        write_table(evaluation.table, run_dir / f"metrics_{label}.csv")
        plot_evaluation(evaluation, plots, label)
        t = evaluation.table
        closure = "no water balance (lstm)"
        if evaluation.simulation is not None:
            worst = t["max_abs_cumulative_residual_mm"].max()
            closure = f"max |cumulative water residual| {worst:.3g} mm"
        unobserved = t["basin"][t["n_valid"] == 0].tolist()
        log(
            f"{label} {period[0]} .. {period[1]}: median NSE {t['nse'].median():.3f}, median "
            f"KGE {t['kge'].median():.3f} over {len(t) - len(unobserved)} basins"
            + (f" ({len(unobserved)} without observations left out: {', '.join(unobserved)})"
               if unobserved else "")
            + f"; {closure}"
        )
    plot_metric_cdf(tables, plots / "metric_cdf.png")
    return tables
