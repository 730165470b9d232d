"""Per-basin calibration of the physical bucket: hybridland's gradient calibration against
spotpy's SCE-UA on the same basins, parameters, periods and objective.

Both calibrate the same ``DEFAULT_PARAMS`` of the same bucket (PET given) inside the same
``PARAMETER_BOUNDS`` on the same calibration period after the same warm-up, and both are scored
with ``hybridland.calibrate.score_periods`` (one continuous run over every loaded day; NSE and
KGE on the calibration and validation periods). SCE-UA minimises 1 - NSE of one basin at a time
through a spotpy setup class whose model is a jit-compiled ``hybridland.simulate`` of that basin
(compiled once, reused for every basin); hybridland fits every basin and start in one vmapped
program (``hybridland.calibrate.calibrate``).

Wall times include each method's own compilation, not the data loading they share. Model
evaluations: SCE-UA, the model runs spotpy made; gradient, ``steps x starts + starts`` per basin,
counting one gradient (a forward and a backward pass through the whole period) as one.

    python benchmarks/calibration_vs_sceua.py --basins 20 --json benchmarks/results/calibration.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hybridland import Params, simulate
from hybridland._params import PARAMETER_BOUNDS
from hybridland.calibrate import (
    CalibrationConfig,
    CalibrationRunConfig,
    calibrate,
    score_periods,
)
from hybridland.column import build_model
from hybridland.train.config import DataConfig
from hybridland.train.data import LOADERS, assemble, period_indices

CALIBRATION = ("1981-01-01", "1983-12-31")
VALIDATION = ("1984-01-01", "1986-12-31")
WARMUP_DAYS = 365


def complete_basins(path: str, n: int) -> list[str]:
    """The first ``n`` basins of a MOPEX-layout file with no missing forcing or streamflow from
    the first warm-up day to the end of validation."""
    import xarray as xr

    first = np.datetime64(CALIBRATION[0]) - np.timedelta64(WARMUP_DAYS, "D")
    with xr.open_dataset(path) as ds:
        span = ds.sel(time=slice(str(first), VALIDATION[1]))
        ok = np.ones(span.sizes["basin"], bool)
        for var in ("P", "PE", "T_max", "T_min", "Q"):
            ok &= np.isfinite(span[var].values).all(axis=1)
        ok &= np.isfinite(span["lat"].values)
        ids = [str(b) for b in span["basin"].values[ok]]
    if len(ids) < n:
        raise SystemExit(f"{path} has only {len(ids)} complete basins; asked for {n}.")
    return ids[:n]


class BucketSetup:
    """spotpy setup: one basin, the calibrated parameters uniform in their physical ranges,
    objective 1 - NSE on the calibration days after the warm-up (minimised by SCE-UA). It keeps
    the best parameter vector it has scored itself (spotpy's database skips some runs)."""

    def __init__(self, run, forcing, observed, names):
        import spotpy

        self.run, self.forcing, self.names = run, forcing, names
        self.observed = np.asarray(observed[WARMUP_DAYS:], np.float64)
        self.params = [
            spotpy.parameter.Uniform(
                name, PARAMETER_BOUNDS[name].low, PARAMETER_BOUNDS[name].high,
                optguess=PARAMETER_BOUNDS[name].default,
            )
            for name in names
        ]
        self.runs, self.best, self.best_objective, self._last = 0, None, np.inf, None

    def parameters(self):
        import spotpy

        return spotpy.parameter.generate(self.params)

    def simulation(self, vector):
        self.runs += 1
        self._last = np.array(vector, np.float64)
        return np.asarray(self.run(jnp.asarray(np.asarray(vector), jnp.float32), self.forcing))

    def evaluation(self):
        return self.observed

    def objectivefunction(self, simulation, evaluation):
        ok = np.isfinite(evaluation)
        o, s = evaluation[ok], np.asarray(simulation, np.float64)[ok]
        objective = float(np.sum((s - o) ** 2) / np.sum((o - o.mean()) ** 2))  # 1 - NSE
        if objective < self.best_objective:
            self.best_objective, self.best = objective, self._last
        return objective


def sceua_calibration(config: CalibrationRunConfig, data, repetitions: int, ngs: int):
    """SCE-UA per basin: best parameters ``Params [basin]``, evaluations, wall time (s)."""
    import spotpy

    names = config.calibration.params
    model = build_model("physics", pet=config.calibration.pet)

    @jax.jit
    def run(vector, forcing):
        params = Params.default(1, dtype=jnp.float32, **{n: vector[i:i + 1] for i, n in
                                                         enumerate(names)})
        sim = simulate(model, forcing, params, outputs=("runoff",))
        return sim.fluxes.runoff[0, WARMUP_DAYS:]

    t0 = time.perf_counter()
    start, length = data.period_window("train", WARMUP_DAYS)
    best, evaluations = [], []
    for b in range(data.n_basins):
        forcing = data.forcing(np.array([b]), np.array([start]), length)
        observed = data.observed(np.array([b]), np.array([start]), length)[0]
        setup = BucketSetup(run, forcing, observed, names)
        sampler = spotpy.algorithms.sceua(
            setup, dbname=f"sceua_{b}", dbformat="ram", save_sim=False,
            random_state=config.calibration.seed + b,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # spotpy prints every loop
            sampler.sample(repetitions, ngs=ngs)
        best.append(setup.best)
        evaluations.append(setup.runs)
    seconds = time.perf_counter() - t0
    best = np.asarray(best)
    params = Params.default(
        data.n_basins, dtype=jnp.float32, **{n: best[:, i] for i, n in enumerate(names)}
    )
    return params, int(np.median(evaluations)), seconds


def main(argv=None) -> int:
    from hybridland.io import mopex_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="MOPEX-layout file (default: shared)")
    parser.add_argument("--basins", type=int, default=20, help="basins with complete data")
    parser.add_argument("--repetitions", type=int, default=2000,
                        help="SCE-UA model-evaluation budget per basin")
    parser.add_argument("--ngs", type=int, default=None,
                        help="SCE-UA complexes (default: the number of parameters)")
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    path = args.data or str(mopex_path())
    basins = complete_basins(path, args.basins)
    config = CalibrationRunConfig(
        data=DataConfig(
            loader="mopex", path=path, basins=tuple(basins), train_period=CALIBRATION,
            validation_period=VALIDATION, warmup_days=WARMUP_DAYS,
            swap_inverted_temperatures=True,
        ),
        calibration=CalibrationConfig(starts=args.starts, steps=args.steps),
    )

    # The data both methods use (loading is not timed).
    source = LOADERS["mopex"](config.data, 0)
    periods = period_indices(
        source.time, {"train": CALIBRATION, "validation": VALIDATION}, WARMUP_DAYS
    )
    data = assemble(source, periods, (), np.zeros((len(basins), 0)), None, "train")
    periods_out = {"calibration": "train", "validation": "validation"}
    model = build_model("physics", pet=config.calibration.pet)

    result = calibrate(config)
    load_s = result.seconds - result.fit.seconds
    gradient_s = result.fit.seconds
    gradient = result.scores

    ngs = args.ngs or len(config.calibration.params)
    sceua_params, sceua_evaluations, sceua_s = sceua_calibration(
        config, data, args.repetitions, ngs
    )
    sceua = score_periods(model, data, sceua_params, periods_out)

    def med(x):
        return float(np.nanmedian(x))

    figures = {
        "basins": len(basins),
        "basin_ids": basins,
        "calibration_period": list(CALIBRATION),
        "validation_period": list(VALIDATION),
        "warmup_days": WARMUP_DAYS,
        "params": list(config.calibration.params),
        "median_nse_gradient": med(gradient["nse_calibration"]),
        "median_nse_sceua": med(sceua["nse_calibration"]),
        "median_nse_validation_gradient": med(gradient["nse_validation"]),
        "median_nse_validation_sceua": med(sceua["nse_validation"]),
        "median_kge_gradient": med(gradient["kge_calibration"]),
        "median_kge_sceua": med(sceua["kge_calibration"]),
        "median_kge_validation_gradient": med(gradient["kge_validation"]),
        "median_kge_validation_sceua": med(sceua["kge_validation"]),
        "nse_calibration_gradient": gradient["nse_calibration"].tolist(),
        "nse_calibration_sceua": sceua["nse_calibration"].tolist(),
        "nse_validation_gradient": gradient["nse_validation"].tolist(),
        "nse_validation_sceua": sceua["nse_validation"].tolist(),
        "wall_s_gradient": gradient_s,
        "wall_s_sceua": sceua_s,
        "wall_time_ratio_sceua_over_gradient": sceua_s / gradient_s,
        "evaluations_gradient": result.fit.evaluations,
        "evaluations_sceua": sceua_evaluations,
        "evaluations_note": "per basin; gradient: steps x starts + starts, one gradient counted "
        "as one evaluation; sceua: median over basins of the model runs spotpy made (its stopping rules may end a basin before the budget or some runs after it)",
        "gradient_settings": {"starts": args.starts, "steps": args.steps,
                              "learning_rate": config.calibration.learning_rate,
                              "final_learning_rate": config.calibration.final_learning_rate},
        "sceua_settings": {"repetitions": args.repetitions, "ngs": ngs},
        "load_s": load_s,
        "platform": f"{platform.machine()} {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s), python {platform.python_version()}",
    }
    for key in ("median_nse_gradient", "median_nse_sceua", "median_nse_validation_gradient",
                "median_nse_validation_sceua", "wall_s_gradient", "wall_s_sceua",
                "wall_time_ratio_sceua_over_gradient", "evaluations_gradient",
                "evaluations_sceua"):
        value = figures[key]
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
