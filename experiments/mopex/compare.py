"""Compare finished MOPEX runs: the tables and the hydrograph figure of docs/training.md.

    .venv/bin/python experiments/mopex/compare.py --runs hybrid=runs/mopex-hybrid \
        lstm=runs/mopex-lstm [--unseen hybrid=runs/mopex-hybrid-half ...] \
        [--figure docs/figures/training/hydrographs.png]

For each run it prints (markdown) the epochs run and the best epoch, the wall time of the
training (from the first to the last line of ``train.log``: loading, compilation, every epoch
and the final report), and the median NSE and KGE of ``metrics_validation.csv`` and
``metrics_test.csv`` over the basins with observations. ``--unseen NAME=RUN_DIR`` runs score the
basins of the MOPEX file their run never saw (``evaluate_run(unseen=True)``, test period) and
print the same medians. ``--figure`` draws observed and simulated test-period runoff of a few
basins for every ``--runs`` run (the basins at the 10th, 50th and 90th percentile of the first
run's test NSE), one year each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _pairs(items):
    out = {}
    for item in items or ():
        name, _, path = item.partition("=")
        out[name] = Path(path)
    return out


def wall_minutes(run_dir: Path) -> float:
    """Minutes from the first to the last line of the run's ``train.log``."""
    lines = [line for line in (run_dir / "train.log").read_text().splitlines() if line[:4].isdigit()]
    first, last = (dt.datetime.fromisoformat(line.split(" ", 1)[0]) for line in (lines[0], lines[-1]))
    return (last - first).total_seconds() / 60.0


def run_row(name: str, run_dir: Path) -> dict:
    info = json.loads((run_dir / "run.json").read_text())
    row = {"run": name, "epochs": info["epochs_completed"], "best epoch": info["best_epoch"],
           "wall min": wall_minutes(run_dir)}
    for period in ("validation", "test"):
        table = pd.read_csv(run_dir / f"metrics_{period}.csv", dtype={"basin": str})
        table = table[table["n_valid"] > 0]
        row[f"{period} NSE"] = table["nse"].median()
        row[f"{period} KGE"] = table["kge"].median()
        row[f"{period} basins"] = len(table)
    return row


def unseen_row(name: str, run_dir: Path) -> dict:
    from hybridland.io._report import DataAdjustmentWarning
    from hybridland.train.evaluate import evaluate_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        evaluation = evaluate_run(run_dir, unseen=True, progress=False)
    table = evaluation.table[evaluation.table["n_valid"] > 0]
    return {"run": name, "unseen basins": len(table), "test NSE": table["nse"].median(),
            "test KGE": table["kge"].median()}


def markdown(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = []
    for _, r in frame.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) and c.endswith(("NSE", "KGE"))
                 else f"{v:.1f}" if isinstance(v, float) else str(v) for c, v in r.items()]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def figure(runs: dict[str, Path], path: Path) -> Path:
    from hybridland.io._report import DataAdjustmentWarning
    from hybridland.io.plots import _figure, _save, model_style
    from hybridland.train.evaluate import evaluate_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        evaluations = {name: evaluate_run(d, progress=False) for name, d in runs.items()}
    first = next(iter(evaluations.values()))
    nse = first.table["nse"].to_numpy()
    order = np.argsort(np.where(np.isfinite(nse), nse, np.inf))
    n = np.isfinite(nse).sum()
    picks = [order[int(q * (n - 1))] for q in (0.1, 0.5, 0.9)]
    time = first.time
    year = (time >= pd.Timestamp("2001-01-01")) & (time <= pd.Timestamp("2001-12-31"))
    fig = _figure(12, 2.7 * len(picks) + 0.4)
    axes = fig.subplots(len(picks), 1, squeeze=False)[:, 0]
    for ax, b in zip(axes, picks, strict=True):
        ax.plot(time[year], first.observed[b][year], color="k", lw=1.0, label="observed")
        scores = []
        for i, (name, ev) in enumerate(evaluations.items()):
            row = ev.table.iloc[b]
            ax.plot(time[year], ev.runoff[b][year], lw=0.9, label=name, **model_style(i))
            scores.append(f"{name} NSE {row['nse']:.2f}")
        ax.set_title(f"{first.table['basin'].iloc[b]} {first.table['name'].iloc[b]}: "
                     + ", ".join(scores), fontsize=9)
        ax.set_ylabel("runoff, mm day-1")
        ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--unseen", nargs="*", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    runs, unseen = _pairs(args.runs), _pairs(args.unseen)
    if runs:
        print(markdown([run_row(n, d) for n, d in runs.items()]))
    if unseen:
        print()
        print(markdown([unseen_row(n, d) for n, d in unseen.items()]))
    if args.figure is not None and runs:
        print(f"\nwrote {figure(runs, args.figure)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
