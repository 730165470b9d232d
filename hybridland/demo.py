"""The demo: train a hybrid on the Fulda river data shipped with ``spotpy``, test it on later years.

Fulda (Germany, 2976 km2), daily precipitation, minimum and maximum air temperature and
discharge, 1979-1988 (``hybridland.io.load_fulda``). PET is Hargreaves-Samani (the file has no
PET). Three models are trained by the same pipeline on 1980-1985 (1979 is warm-up), validated
on 1986 (best epoch) and tested on 1987-1988: a calibrated physical bucket, a hybrid (learned ET
stress and runoff partition, plus the same physical parameters) and a sequence hybrid (fast and
slow flow paths, capillary rise, routing and 16 parallel components, whose runoff and ET shapes
an LSTM of the forcing sets every day). Everything is on a single basin, so no static
attributes are used. Both runs are ordinary run directories
(``hybridland evaluate`` works on them); the figures and NetCDF of the test period are written
next to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .train import Config, config_from_dict, train
from .train.evaluate import evaluate_run

TRAIN = ("1980-01-01", "1985-12-31")
VALIDATION = ("1986-01-01", "1986-12-31")
TEST = ("1987-01-01", "1988-12-31")
TRAINABLE = (
    "theta_cap",
    "root_depth",
    "et_threshold",
    "runoff_shape",
    "soil_drainage",
    "baseflow_rate",
    "ddf",
    "t_snow",
    "t_melt",
    "pet_coefficient",
)
SEQUENCE_TRAINABLE = tuple(p for p in TRAINABLE if p != "runoff_shape") + (
    "fast_threshold",
    "fast_threshold_rate",
    "fast_rate",
    "percolation",
    "capillary_rate",
    "routing_shape",
    "routing_scale",
)
"""The sequence hybrid's static parameters (its runoff and ET shapes vary by day)."""
KINDS = ("physics", "hybrid", "sequence_hybrid")
EPOCHS = 60
LEARNING_RATES = {"physics": 0.1, "hybrid": 0.02, "sequence_hybrid": 0.01}


def demo_config(kind: str, epochs: int = EPOCHS) -> Config:
    """The training configuration of the demo's ``kind`` model (one of ``KINDS``)."""
    model = {"kind": kind, "pet": "hargreaves", "trainable_params": list(TRAINABLE)}
    if kind == "hybrid":
        model.update(width=16, depth=2)
    if kind == "sequence_hybrid":
        model.update(trainable_params=list(SEQUENCE_TRAINABLE), dynamic_width=32)
    return config_from_dict(
        {
            "run": {"name": f"fulda-{kind}", "seed": 0},
            "data": {
                "loader": "fulda",
                "pet": "hargreaves",
                "train_period": list(TRAIN),
                "validation_period": list(VALIDATION),
                "test_period": list(TEST),
                "warmup_days": 365,
            },
            "model": model,
            "training": {
                "epochs": epochs,
                "learning_rate": LEARNING_RATES[kind],
                "schedule": "cosine",
                "warmup_steps": 10,
                "batch_basins": 1,
                "window_days": 365,
                "batches_per_epoch": 20,
                "loss": "nse",
                "clip_norm": 1.0,
            },
        }
    )


OUTPUTS = ("fulda_test.nc", "fulda_test_hydrograph.png", "fulda_test_water_budget.png")
"""The files the demo writes in its output folder, beside its run directories."""


def _check_outputs(out: Path) -> None:
    """Refuse (``RunFileError``, which ``hybridland demo`` reports) to replace a file in ``out``
    that the demo did not write: checked before any training, so nothing is lost. A figure of
    an earlier demo is one hybridland drew, or one beside the demo's run directories (written
    before figures named their software)."""
    from .io.replaceable import foreign
    from .train.checkpoint import RunFileError
    from .train.loop import is_run_directory

    earlier_demo = any(is_run_directory(out / kind) for kind in KINDS)
    for name in OUTPUTS:
        kind = "netcdf" if name.endswith(".nc") else "figure"
        what = foreign(out / name, kind)
        if what and not (kind == "figure" and earlier_demo):
            raise RunFileError(f"{out / name} exists and is not {what}, so the demo does not "
                               "replace it; give another --out folder, or remove it first.")


def run_demo(
    out: str | Path,
    *,
    epochs: int = EPOCHS,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train both demo models into ``out/<kind>/``, test them, write figures and NetCDF.

    Returns ``{kind: Evaluation}`` of the test period. Re-running resumes or reuses finished
    runs (same configuration).
    """
    from .io import write_netcdf
    from .io.plots import plot_hydrographs, plot_water_budget

    out = Path(out)
    _check_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    echo(
        "hybridland demo: Fulda river (spotpy example data), Hargreaves PET; train "
        f"{TRAIN[0]} .. {TRAIN[1]}, validate {VALIDATION[0][:4]}, test {TEST[0]} .. {TEST[1]}"
    )
    results = {}
    for kind in KINDS:
        run_dir = out / kind
        result = train(demo_config(kind, epochs), run_dir, progress=progress)
        evaluation = evaluate_run(run_dir, period=TEST, progress=False)
        results[kind] = evaluation
        row = evaluation.table.iloc[0]
        echo(
            f"  {kind:15s} {result.epochs_completed} epochs (best {result.best_epoch}); test NSE "
            f"{row['nse']:.3f}, KGE {row['kge']:.3f} (r {row['r']:.2f}, alpha "
            f"{row['alpha']:.2f}, beta {row['beta']:.2f}); max |water residual| per step "
            f"{row['max_abs_step_residual_mm']:.2g} mm, cumulative "
            f"{row['max_abs_cumulative_residual_mm']:.2g} mm"
        )
    best = results["sequence_hybrid"]
    ds = best.dataset(title="hybridland demo: sequence hybrid, Fulda test period",
                      history="hybridland demo")
    for kind, long_name in (("physics", "runoff of the calibrated physical bucket"),
                            ("hybrid", "runoff of the hybrid with learned ET and runoff laws")):
        ds[f"runoff_{kind}"] = (
            ("basin", "time"),
            results[kind].simulation.fluxes.runoff,
            {"units": "kg m-2 day-1", "long_name": long_name, "standard_name": "runoff_flux"},
        )
    files = [write_netcdf(ds, out / "fulda_test.nc")]
    scores = {"nse": best.table["nse"].to_numpy(), "kge": best.table["kge"].to_numpy()}
    files.append(plot_hydrographs(ds, out / "fulda_test_hydrograph.png", scores=scores,
                                  label="sequence hybrid",
                                  extra={"hybrid": "runoff_hybrid", "physics": "runoff_physics"}))
    files.append(plot_water_budget(ds, out / "fulda_test_water_budget.png"))
    for file in files:
        echo(f"  wrote    {file}")
    runs = ", ".join(str(out / kind) for kind in KINDS)
    echo(f"  runs     {runs} (plots/, metrics_*.csv, train.log)")
    return results
