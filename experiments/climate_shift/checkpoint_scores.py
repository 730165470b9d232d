"""How much do a run's scores on basins of another climate move between epochs that its own
validation hardly separates? Scores a finished run's best model and its last kept checkpoint
(``checkpoints/epoch_<e>``, the weights of the last epoch trained) on humid and arid basins,
grouped by the aridity (mean PE / mean P) of a reference period as the climate-shift study
groups them, and prints the medians beside each epoch's validation median NSE. Example, the
humid-to-arid runs of the study and their doubled budgets:

    .venv/bin/python experiments/climate_shift/checkpoint_scores.py \\
        --run-dir OUT/runs/humid_to_arid/hybrid OUT/runs/humid_to_arid/hybrid_budget_x2 \\
        --data ../shared/data/mopex/mopex_dev.nc --out checkpoint_scores.csv

Each checkpoint is scored through a copy of the run directory (in a temporary folder) whose
``model.eqx`` holds that epoch's weights, so ``hybridland.train.evaluate_run`` scores it exactly
as it scores the best model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.train import checkpoint as ckpt
from hybridland.train.evaluate import evaluate_run
from hybridland.train.loop import checkpoint_trainables

RUN_FILES = ("config.yaml", "normalisation.json", "basins.csv", "metrics.csv")


def checkpoint_run(run_dir, out, marker=None) -> Path:
    """A copy of the finished run ``run_dir`` in ``out`` (replaced) whose ``model.eqx`` holds
    the weights of checkpoint ``marker`` (its ``epoch_<e>.json``; default the newest intact
    one). ``run.json`` records the epoch as ``weights_epoch``."""
    run_dir, out = Path(run_dir), Path(out)
    model, u, epoch = checkpoint_trainables(run_dir, marker)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    record = json.loads((run_dir / "run.json").read_text())
    record["model_sha256"] = ckpt.save_model(out / "model.eqx", (model, u))
    record["weights_epoch"] = epoch
    (out / "run.json").write_text(json.dumps(record, indent=1))
    return out


def aridity_groups(data, period, groups: dict[str, tuple[float, float]]) -> dict[str, list]:
    """Basin ids of ``data`` per named aridity range ``[low, high)`` over ``period``."""
    with xr.open_dataset(data) as ds:  # closed before the loaders open the file again
        ds = ds.sel(time=slice(*period))
        aridity = (ds["PE"].mean("time") / ds["P"].mean("time")).to_series()
    return {name: sorted(aridity[(aridity >= lo) & (aridity < hi)].index)
            for name, (lo, hi) in groups.items()}


def _medians(run_dir, data, groups) -> dict:
    row = {}
    for name, ids in groups.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = evaluate_run(run_dir, data, basins=ids, progress=False).table
        row.update({f"{name}_nse": float(np.nanmedian(table["nse"])),
                    f"{name}_kge": float(np.nanmedian(table["kge"])),
                    f"{name}_scored": int(table["nse"].notna().sum())})
    return row


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = map(float, text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, e.g. 1.5:100, got {text!r}")
    return low, high


def _period(text: str) -> list[str]:
    parts = text.split(":")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected START:END dates, got {text!r}")
    return parts


def _scores(run_dirs, data, groups, tmp) -> list[dict]:
    rows = []
    for run_dir in run_dirs:
        validation = pd.read_csv(run_dir / "metrics.csv").set_index("epoch")
        best = int(json.loads((run_dir / "run.json").read_text())["best_epoch"])
        last = checkpoint_run(run_dir, Path(tmp) / run_dir.name)
        epoch = json.loads((last / "run.json").read_text())["weights_epoch"]
        for label, e, scored in (("best", best, run_dir), ("last checkpoint", epoch, last)):
            rows.append({"run": str(run_dir), "weights": label, "epoch": e,
                         "val_median_nse": float(validation.loc[e, "val_median_nse"]),
                         **_medians(scored, data, groups)})
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", nargs="+", required=True, type=Path)
    p.add_argument("--data", required=True, help="MOPEX-layout file")
    p.add_argument("--aridity-period", default="1960-01-01:1989-12-31", type=_period)
    p.add_argument("--humid", default="0:1", type=_range, help="aridity range LOW:HIGH")
    p.add_argument("--arid", default="1.5:100", type=_range, help="aridity range LOW:HIGH")
    p.add_argument("--out", required=True, help="CSV, one row per run and epoch")
    args = p.parse_args(argv)
    for run_dir in args.run_dir:
        if not (run_dir / "metrics.csv").is_file() or not (run_dir / "run.json").is_file():
            print(f"checkpoint_scores: {run_dir} is not a finished training run (no metrics.csv "
                  "or run.json); give the run directories of `hybridland train`.")
            return 2
    try:
        groups = aridity_groups(args.data, args.aridity_period,
                                {"humid": args.humid, "arid": args.arid})
        with tempfile.TemporaryDirectory() as tmp:
            rows = _scores(args.run_dir, args.data, groups, tmp)
    except (OSError, ValueError, KeyError) as err:  # RunFileError is a ValueError
        print(f"checkpoint_scores: {type(err).__name__}: {err}")
        return 2
    ckpt.atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
