"""Per-basin calibration of the physical bucket: hybridland's gradient calibration against
spotpy's SCE-UA on the same basins, parameters, periods and objective.

Both calibrate the same ``DEFAULT_PARAMS`` of the same bucket (PET given) inside the same
``PARAMETER_BOUNDS`` on the same calibration period after the same warm-up, and both are scored
with ``hybridland.calibrate.score_periods`` (one continuous run over every loaded day; NSE and
KGE on the calibration and validation periods): eight calibration years and five validation
years after a warm-up year. SCE-UA minimises 1 - NSE of one basin at a time through a spotpy
setup class whose model is a jit-compiled ``hybridland.simulate`` of that basin (compiled once,
reused for every basin), up to the largest of ``--budgets`` model runs; the best objective it
had reached after each smaller budget is recorded too, so one run shows whether more runs still
help. hybridland fits every basin and start in one vmapped program
(``hybridland.calibrate.calibrate`` with ``CalibrationConfig``'s defaults unless overridden:
its calibrated model is the mean of every start's run, ``calibration.ensemble``; the best start
alone is scored by the same run too, ``*_best_start``, while SCE-UA's model is its best point);
``--compare-holdout`` adds gradient runs that differ only in ``holdout_fraction`` (with
whole-period steps), ``--compare-window-days`` runs that differ only in ``window_days`` (0: the
whole period at every step).

The time the gradient method needs to reach SCE-UA's final calibration objective is read basin
by basin from its trace (``ColumnFit.objective``: 1 - NSE over the calibration days of every
start before each step, or every ``trace_every`` steps with windows; ``ColumnFit.elapsed``: when
it was known).

Wall times include each method's own compilation, not the data loading they share. Model
evaluations: SCE-UA, the model runs spotpy made; gradient, ``steps x starts + starts`` per basin,
counting one gradient (a forward and a backward pass through the whole period) as one.

    python benchmarks/calibration_vs_sceua.py --basins 20 --json benchmarks/results/calibration_vs_sceua.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from hybridland.io._files import atomic_write_text
from hybridland import Params, simulate
from hybridland._params import PARAMETER_BOUNDS
from hybridland.calibrate import (
    CalibrationConfig,
    CalibrationRunConfig,
    calibrate,
    calibration_inputs,
    score_periods,
)
from hybridland.column import build_model
from hybridland.train.config import DataConfig

CALIBRATION = ("1971-01-01", "1978-12-31")
VALIDATION = ("1979-01-01", "1983-12-31")
WARMUP_DAYS = 365
SCORED = {"calibration": "train", "validation": "validation"}
"""The periods ``score_periods`` scores: output name -> period of the calibration data."""


def benchmark_config(path: str, basins, **calibration) -> CalibrationRunConfig:
    """The benchmark's periods and data repairs for ``basins`` of ``path``; ``calibration``:
    settings of ``CalibrationConfig`` that differ from its defaults."""
    return CalibrationRunConfig(
        data=DataConfig(
            loader="mopex", path=path, basins=tuple(basins), train_period=CALIBRATION,
            validation_period=VALIDATION, warmup_days=WARMUP_DAYS,
            swap_inverted_temperatures=True,
        ),
        calibration=CalibrationConfig(**calibration),
    )


def medians(scores: dict) -> dict:
    """Median calibration NSE, validation NSE and validation KGE of ``score_periods`` output."""
    return {k: float(np.nanmedian(scores[k]))
            for k in ("nse_calibration", "nse_validation", "kge_validation")}


def scored_medians(model, data, params) -> dict:
    """``medians`` of the scores of ``params`` (one set per basin of ``data``)."""
    scores = score_periods(model, data, jax.tree_util.tree_map(np.asarray, params), SCORED)
    return medians(scores)


def complete_basins(path: str, n: int, skip: int = 0) -> list[str]:
    """``n`` basins of a MOPEX-layout file with no missing forcing or streamflow from the first
    warm-up day to the end of validation and no unit error (a forcing variable beyond any
    climate on Earth on more than ``MAX_IMPLAUSIBLE_DAYS`` days; isolated days are repaired by
    the loader): the first ones after skipping ``skip`` of them."""
    import xarray as xr

    from hybridland.io.mopex import MAX_IMPLAUSIBLE_DAYS, beyond_any_climate

    first = np.datetime64(CALIBRATION[0]) - np.timedelta64(WARMUP_DAYS, "D")
    with xr.open_dataset(path) as ds:
        span = ds.sel(time=slice(str(first), VALIDATION[1]))
        ok = np.ones(span.sizes["basin"], bool)
        for var in ("P", "PE", "T_max", "T_min", "Q"):
            ok &= np.isfinite(span[var].values).all(axis=1)
        ok &= np.isfinite(span["lat"].values)
        forcing = {v: span[v].transpose("basin", "time").values for v in ("P", "PE", "T_max",
                                                                          "T_min")}
        for _, _, outside in beyond_any_climate(forcing):
            ok &= outside.sum(axis=1) <= MAX_IMPLAUSIBLE_DAYS
        ids = [str(b) for b in span["basin"].values[ok]]
    if len(ids) < skip + n:
        raise SystemExit(f"{path} has only {len(ids)} complete basins; asked for {n} after "
                         f"skipping {skip}.")
    return ids[skip:skip + n]


class BucketSetup:
    """spotpy setup: one basin, the calibrated parameters uniform in their physical ranges,
    objective 1 - NSE on the calibration days after the warm-up (minimised by SCE-UA). It keeps
    the best parameter vector it has scored itself (spotpy's database skips some runs)."""

    def __init__(self, run, forcing, observed, names, budgets=()):
        import spotpy

        self.run, self.forcing, self.names = run, forcing, names
        self.budgets, self.best_at = tuple(budgets), {}
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
        if self.runs in self.budgets:
            self.best_at[self.runs] = self.best_objective
        return objective

    def objective_at(self, budget: int) -> float:
        """Best objective after ``budget`` runs (the final one if spotpy stopped earlier)."""
        return self.best_at.get(budget, self.best_objective)


def sceua_calibration(config: CalibrationRunConfig, data, budgets, ngs: int):
    """SCE-UA per basin with ``max(budgets)`` runs: best parameters ``Params [basin]``, runs per
    basin, wall time (s), best objective per basin after each budget ``{budget: [basin]}`` and
    the best objective of all its runs ``[basin]`` (it may run past the largest budget: that of
    its best parameters, the final one)."""
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
    best, evaluations, final = [], [], []
    at = {budget: [] for budget in budgets}
    for b in tqdm(range(data.n_basins), desc="SCE-UA", unit="basin"):
        forcing = data.forcing(np.array([b]), np.array([start]), length)
        observed = data.observed(np.array([b]), np.array([start]), length)[0]
        setup = BucketSetup(run, forcing, observed, names, budgets)
        sampler = spotpy.algorithms.sceua(
            setup, dbname=f"sceua_{b}", dbformat="ram", save_sim=False,
            random_state=1000 * config.calibration.seed + b,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # spotpy prints every loop
            sampler.sample(max(budgets), ngs=ngs)
        best.append(setup.best)
        final.append(setup.best_objective)
        evaluations.append(setup.runs)
        for budget in budgets:
            at[budget].append(setup.objective_at(budget))
    seconds = time.perf_counter() - t0
    best = np.asarray(best)
    params = Params.default(
        data.n_basins, dtype=jnp.float32, **{n: best[:, i] for i, n in enumerate(names)}
    )
    return (params, evaluations, seconds, {k: np.asarray(v) for k, v in at.items()},
            np.asarray(final))


def seconds_to_reach(fit, target) -> np.ndarray:
    """Per basin, the wall time (s, from the start of the fit) at which some start of the
    gradient calibration first scored 1 - NSE <= ``target[basin]`` on the calibration days;
    inf where it never did."""
    traced = np.where(np.isfinite(fit.objective), fit.objective, np.inf)  # NaN: not traced
    best = traced.min(axis=1)  # [steps + 1, basin]: best start at each step
    reached = best <= np.asarray(target)[None, :]
    first = np.argmax(reached, axis=0)
    return np.where(reached.any(axis=0), fit.elapsed[first], np.inf)


def json_text(figures: dict) -> str:
    """``figures`` as strict JSON: a non-finite number (a basin that never reached SCE-UA's
    objective: inf) is written as null, which every JSON reader accepts (``Infinity`` is not
    JSON)."""

    def finite(value):
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(finite(figures), indent=1, allow_nan=False)


def budget_label(budget: int, runs) -> str:
    """Legend of SCE-UA's objective after ``budget`` runs, given the runs it made per basin:
    spotpy's convergence criteria may have stopped every basin before the budget."""
    runs = np.asarray(runs)
    if runs.max() < budget:
        return f"SCE-UA, converged (stopped at {runs.min()}-{runs.max()} runs)"
    return f"SCE-UA after {budget} runs"


def draw(path, fit, gradient, sceua, sceua_s, objective_by_budget, sceua_runs) -> Path:
    """Left: validation NSE per basin, gradient against SCE-UA. Right: median over basins of the
    gradient's best calibration objective against wall time, and SCE-UA's after each budget at
    its full wall time."""
    from hybridland.io.plots import _figure, _save, model_style
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    a, b = np.asarray(sceua["nse_validation"]), np.asarray(gradient["nse_validation"])
    low = max(-1.0, float(np.nanmin(np.r_[a, b])) - 0.05)
    left.plot([low, 1], [low, 1], color="0.6", lw=0.8)
    left.scatter(np.maximum(a, low), np.maximum(b, low), s=18, color=model_style(0)["color"])
    left.set_xlabel("SCE-UA validation NSE")
    left.set_ylabel("gradient validation NSE (its calibrated model)")
    left.set_title(f"{len(a)} basins (values below {low:.2f} drawn at it)", fontsize=9)
    rows = np.isfinite(fit.objective).all(axis=(1, 2))  # with windows: the traced steps
    curve = np.median(fit.objective[rows].min(axis=1), axis=1)
    right.plot(fit.elapsed[rows], curve, label="gradient (best start)", marker=".",
               **model_style(0))
    for i, (budget, values) in enumerate(sorted(objective_by_budget.items())):
        right.axhline(np.nanmedian(values), lw=0.9, label=budget_label(budget, sceua_runs),
                      **model_style(i + 1))
    right.axvline(sceua_s, color="0.4", lw=0.8, linestyle=":", label="SCE-UA wall time")
    right.set_xscale("log")
    right.xaxis.set_major_formatter(ScalarFormatter())
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_ylim(0, min(1.0, float(np.nanmax(curve))))
    right.set_xlabel("wall time, s (log)")
    right.set_ylabel("median calibration 1 - NSE")
    right.legend(fontsize=8)
    return _save(fig, path)


def main(argv=None) -> int:
    from hybridland.io import mopex_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="MOPEX-layout file (default: shared)")
    parser.add_argument("--basins", type=int, default=20, help="basins with complete data")
    parser.add_argument("--skip", type=int, default=0,
                        help="skip this many complete basins first (another set of basins)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[2000, 10000],
                        help="SCE-UA model-run budgets per basin: it runs up to the largest and "
                        "records its best objective after each")
    parser.add_argument("--ngs", type=int, default=None,
                        help="SCE-UA complexes (default: the number of parameters)")
    parser.add_argument("--starts", type=int, default=None,
                        help="gradient starts (default: CalibrationConfig's)")
    parser.add_argument("--steps", type=int, default=None,
                        help="gradient steps (default: CalibrationConfig's)")
    parser.add_argument("--window-days", type=int, default=None,
                        help="window_days of the gradient calibration, 0: the whole period "
                        "(default: CalibrationConfig's)")
    parser.add_argument("--compare-holdout", type=float, nargs="*", default=[],
                        help="also run the gradient calibration with these holdout_fraction "
                        "values and whole-period steps (figures under 'gradient_variants')")
    parser.add_argument("--compare-window-days", type=int, nargs="*", default=[],
                        help="also run it with these window_days (0: the whole period)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds both methods: the gradient's starts and windows "
                        "(calibration.seed) and SCE-UA's sampler (1000 x seed + basin index)")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--figure", default=None, help="draw the comparison here (PNG)")
    args = parser.parse_args(argv)

    path = args.data or str(mopex_path())
    basins = complete_basins(path, args.basins, args.skip)
    chosen = {k: v for k, v in (("starts", args.starts), ("steps", args.steps)) if v is not None}
    chosen["seed"] = args.seed
    if args.window_days is not None:
        chosen["window_days"] = args.window_days or None
    config = benchmark_config(path, basins, **chosen)

    # The data both methods use (loading is not timed).
    data, model, _, _ = calibration_inputs(config)

    result = calibrate(config, progress=True)
    load_and_score_s = result.seconds - result.fit.seconds  # calibrate() loads and scores too
    gradient_s = result.fit.seconds
    gradient = result.scores
    # the best start alone (calibration.ensemble: false), scored by the same run
    best_start = (score_periods(model, data, result.fit.params, SCORED)
                  if config.calibration.ensemble else gradient)

    def med(x):
        return float(np.nanmedian(x))

    variants = {}
    changes = [(f"holdout_fraction={f:g}", dict(holdout_fraction=f, window_days=None))
               for f in args.compare_holdout]
    changes += [(f"window_days={w or None}", dict(window_days=w or None))
                for w in args.compare_window_days]
    for label, change in changes:
        other = dataclasses.replace(
            config, calibration=dataclasses.replace(config.calibration, **change)
        )
        run = calibrate(other, progress=True)
        variants[label] = {
            "median_nse_calibration": med(run.scores["nse_calibration"]),
            "median_nse_validation": med(run.scores["nse_validation"]),
            "median_kge_validation": med(run.scores["kge_validation"]),
            "wall_s": run.fit.seconds,
        }

    budgets = sorted(set(args.budgets))
    ngs = args.ngs or len(config.calibration.params)
    sceua_params, sceua_runs, sceua_s, sceua_at, sceua_final = sceua_calibration(
        config, data, budgets, ngs)
    sceua = score_periods(model, data, sceua_params, SCORED)
    # SCE-UA's final objective, that of the parameters scored (it may run past the budget)
    reach = seconds_to_reach(result.fit, sceua_final)
    c = config.calibration

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
        "median_nse_gradient_best_start": med(best_start["nse_calibration"]),
        "median_nse_validation_gradient_best_start": med(best_start["nse_validation"]),
        "median_kge_validation_gradient_best_start": med(best_start["kge_validation"]),
        "nse_calibration_gradient": gradient["nse_calibration"].tolist(),
        "nse_calibration_sceua": sceua["nse_calibration"].tolist(),
        "nse_validation_gradient": gradient["nse_validation"].tolist(),
        "nse_validation_sceua": sceua["nse_validation"].tolist(),
        "nse_validation_gradient_best_start": best_start["nse_validation"].tolist(),
        "wall_s_gradient": gradient_s,
        "wall_s_sceua": sceua_s,
        "wall_time_ratio_sceua_over_gradient": sceua_s / gradient_s,
        "median_objective_sceua_by_budget": {str(k): med(v) for k, v in sceua_at.items()},
        "median_objective_gradient": med(np.nanmin(result.fit.objective[-1], axis=0)),
        "seconds_to_reach_sceua_objective_gradient": reach.tolist(),
        "median_seconds_to_reach_sceua_objective_gradient": float(np.median(reach)),
        "basins_reaching_sceua_objective_gradient": int(np.isfinite(reach).sum()),
        "target_validation_met": med(gradient["nse_validation"])
        >= med(sceua["nse_validation"]) - 0.01,
        "target_speed_met": sceua_s >= 10.0 * gradient_s,
        "evaluations_gradient": result.fit.evaluations,
        "evaluations_sceua": int(np.median(sceua_runs)),
        "evaluations_sceua_per_basin": [int(r) for r in sceua_runs],
        "evaluations_note": "per basin; gradient: steps x starts + starts, one gradient counted "
        "as one evaluation; sceua: median over basins of the model runs spotpy made (its stopping rules may end a basin before the budget or some runs after it)",
        "objective_note": "1 - NSE on the calibration days (the gradient's best start after its "
        "last step; SCE-UA's best run after each budget), medians over basins",
        "gradient_settings": {"starts": c.starts, "steps": c.steps,
                              "learning_rate": c.learning_rate,
                              "final_learning_rate": c.final_learning_rate,
                              "window_days": c.window_days, "trace_every": c.trace_every,
                              "holdout_fraction": c.holdout_fraction, "loss": c.loss,
                              "ensemble": c.ensemble},
        "gradient_variants": variants,
        "sceua_settings": {"budgets": budgets, "ngs": ngs},
        "seed": args.seed,
        "load_and_score_s": load_and_score_s,
        "platform": f"{platform.machine()} {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s), python {platform.python_version()}",
    }
    for key in ("median_nse_gradient", "median_nse_sceua", "median_nse_validation_gradient",
                "median_nse_validation_sceua", "median_nse_validation_gradient_best_start",
                "wall_s_gradient", "wall_s_sceua",
                "wall_time_ratio_sceua_over_gradient", "evaluations_gradient",
                "evaluations_sceua", "median_objective_sceua_by_budget",
                "median_objective_gradient", "median_seconds_to_reach_sceua_objective_gradient",
                "basins_reaching_sceua_objective_gradient", "gradient_variants",
                "target_validation_met", "target_speed_met"):
        value = figures[key]
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json_text(figures))
    if args.figure:
        drawn = draw(args.figure, result.fit, gradient, sceua, sceua_s, sceua_at, sceua_runs)
        print(f"wrote {drawn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
