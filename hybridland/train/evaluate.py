"""Evaluate a trained run on any dataset of the layout it was trained on.

``evaluate_run(run_dir, data=FILE, period=(START, END))`` loads the basins of ``FILE`` (all of
them, or ``basins``) over ``period`` plus the run's warm-up days, simulates them with the run's
best model and writes nothing; the returned ``Evaluation`` holds the simulation, the observed
runoff, a per-basin table of metrics and closure residuals, and turns into a CF dataset.

**An lstm run** (``model.kind: lstm``, a pure data-driven ``LSTMRunoff``) gives runoff only: it
has no stores and no water balance, so ``Evaluation.simulation`` is ``None``, the closure and ET
columns of the table are NaN, and the dataset holds simulated and observed runoff only.

**Basins the run has not seen.** A basin trained in the run keeps its calibrated parameters and
the static attributes it was trained with (``basins.csv`` in the run directory). Any other
basin gets static attributes computed from its own forcing over the evaluated days (warm-up and
period), normalised with the run's training statistics, and parameters from the run's
parameter network if it has one, else the median of each calibrated parameter over the trained
basins (a regional default; parameters shared by all basins are used as they are). The
``parameters`` column of the table says which applies.
"""

from __future__ import annotations

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import metrics, units
from .._containers import STORE_NAMES
from .._params import Params
from ..io import CANONICAL_VARIABLES, DataAdjustmentWarning, ForcingDataError
from ..io._checks import PeriodError
from ..learned import LSTMRunoff
from ..column import ColumnModel
from ..solvers import Simulation, check_forcing, run_timed, simulate, simulate_runoff
from .config import Config, iso_date
from .data import LOADERS, RunData, assemble, basin_table, period_indices, static_attributes
from .loop import bounded_params, load_trainables

EVALUATION = "evaluation"
CHUNK_BASINS = 64
"""Basins per compiled call when evaluating (bounded memory; a progress bar over chunks)."""


@dataclasses.dataclass
class Evaluation:
    """A trained run on some basins and days (series ``[basin, time]``, evaluated days only)."""

    config: Config
    model: ColumnModel | LSTMRunoff
    data: RunData
    period: tuple[str, str]
    time: pd.DatetimeIndex
    simulation: Simulation | None
    """Stores, fluxes and closure residuals (numpy leaves, warm-up days cut); ``None`` for an
    lstm run, which has no stores and no water balance."""
    runoff: np.ndarray
    """Simulated runoff ``[basin, time]``, mm day-1, every kind (for a bucket model the same
    array as ``simulation.fluxes.runoff``); what the metric table scores."""
    observed: np.ndarray
    params: Params
    """The physical parameters each basin ran with ``[basin]`` (of an ensemble: its first
    member's)."""
    table: pd.DataFrame
    compile_s: float
    run_s: float
    adjustments: list[str]
    """What the reader repaired, as the run's data options asked (dropped basins, swaps...)."""
    members: tuple[str, ...] = ()
    """The run directories of an ensemble (``evaluate_ensemble``); empty for one run, whose
    ``config`` and ``model`` these are (for an ensemble: those of its first member)."""

    def dataset(self, *, title: str = "hybridland evaluation", history: str | None = None):
        """The simulation as a CF dataset (``hybridland.io.simulation_to_dataset``) with the
        observed streamflow added as ``observed_runoff``; for an lstm run, which has no water
        balance, ``runoff`` and ``observed_runoff`` only."""
        from ..io import simulation_to_dataset

        if self.simulation is None:
            ds = _runoff_dataset(self, title, history)
        else:
            ds = simulation_to_dataset(
                self.simulation,
                self.data.basins,
                self.time,
                coords=self.data.coords,
                model=self.model,
                title=title,
                history=history,
                attrs={"evaluation_period": f"{self.period[0]} .. {self.period[1]}"},
            )
        if self.members:
            ds.attrs["ensemble_members"] = ", ".join(self.members)
            if self.simulation is not None:  # described by its first member's model
                ds.attrs["model"] = (f"mean of an ensemble of {len(self.members)} runs, the "
                                     "first: " + ds.attrs.get("model", self.config.model.kind))
        spec = CANONICAL_VARIABLES["streamflow"]
        ds["observed_runoff"] = (
            ("basin", "time"),
            self.observed.astype(np.float32),
            {"standard_name": spec.standard_name, "units": spec.units, "long_name": spec.long_name},
        )
        return ds


def evaluate_run(
    run_dir,
    data: str | None = None,
    *,
    period: tuple[str, str] | None = None,
    basins: list[str] | None = None,
    aridity_range: tuple[float, float] | None = None,
    unseen: bool = False,
    progress: bool | None = None,
) -> Evaluation:
    """Simulate ``basins`` of ``data`` over ``period`` with the run's best model.

    Defaults: ``data`` the run's own data (then ``basins`` the run's basins; with a file, every
    basin in it), ``period`` the run's test period, else its validation period.
    ``aridity_range`` ``(low, high)`` instead keeps the basins of ``data`` whose aridity (mean
    PET / mean P over the evaluated ``period``) lies in ``[low, high)``. ``unseen`` leaves out
    the basins the run was trained on (with the run's own data: every other basin of its
    file).

    Raises ``FileNotFoundError`` for a missing run or file, ``ForcingDataError`` for unusable
    data and ``ValueError`` for a period the data do not cover (each naming the problem).
    """
    model, trained_u, normalisation, config = load_trainables(run_dir)
    trained = basin_table(run_dir)
    cfg = config.data
    if unseen and basins:  # they were dropped without a word
        seen = [str(b) for b in basins if str(b) in trained.index]
        if seen:
            raise ValueError(
                f"Basin(s) {', '.join(seen)} were trained in the run, and unseen=True (--unseen) "
                "leaves out the basins the run was trained on: list only basins it never saw, "
                "or leave out --unseen to score these."
            )
    if period is None:
        period = cfg.test_period or cfg.validation_period
    period = _checked_period(period)
    loader = cfg.loader
    if data is not None and loader == "fulda":
        loader = "netcdf"  # a file in the canonical layout, like the built-in example
    eval_cfg = dataclasses.replace(
        cfg,
        loader=loader,
        path=str(data) if data is not None else cfg.path,
        basins=tuple(basins) if basins else (
            None if data is not None or aridity_range is not None or unseen
            else tuple(trained.index)
        ),
        exclude_basins=tuple(trained.index) if unseen else None,
        aridity_range=None if aridity_range is None else tuple(map(float, aridity_range)),
        n_basins=None,
        train_period=period,
        validation_period=period,
        test_period=None,
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataAdjustmentWarning)
            # the run's basins need not all be in another file
            source = LOADERS[loader](eval_cfg, config.run.seed, exclude_known=False)
    except PeriodError as err:  # the loaded days include the warm-up: say so
        first = eval_cfg.span[0].isoformat()
        raise PeriodError(
            f"Evaluating {period[0]} .. {period[1]} needs the run's {cfg.warmup_days} warm-up "
            f"days before it (data from {first}). {err}",
            variable=err.variable,
            basins=err.basins,
        ) from err
    if np.ndim(source.observed_runoff) != 2:
        name = {"mopex": "'Q' (MOPEX layout)"}.get(loader, "'streamflow' (canonical layout)")
        raise ForcingDataError(
            f"{eval_cfg.path or 'The data'} has no observed streamflow, variable {name}, in "
            "mm day-1; a trained run is scored (and simulated) against it. Add it to the file, "
            "NaN on days without observations.",
            variable="Q" if loader == "mopex" else "streamflow",
        )
    adjustments = []
    for w in caught:  # repairs the run's configuration asked for: kept with the result
        if issubclass(w.category, DataAdjustmentWarning):
            adjustments.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    periods = period_indices(source.time, {EVALUATION: period}, cfg.warmup_days)
    names = config.model.static_attributes
    ids = list(source.basins)
    known = np.array([b in trained.index for b in ids])
    raw = static_attributes(names, source, slice(None))
    if names and known.any():
        raw[known] = trained.loc[[b for b, k in zip(ids, known) if k], list(names)].to_numpy()
    if names and not known.all():  # as the run's own basins got them: over its training period
        unknown = [b for b, k in zip(ids, known) if not k]
        values, note = _training_period_attributes(loader, eval_cfg, cfg, config, unknown)
        for i, b in enumerate(ids):
            if b in values:
                raw[i] = values[b]
        if note:
            adjustments.append(note)
    run_data = assemble(source, periods, names, raw, normalisation, EVALUATION)

    params = column_params(trained_u, trained, ids, run_data.attributes, config)
    start, length = run_data.period_window(EVALUATION, cfg.warmup_days)
    forcing = run_data.forcing(np.arange(len(ids)), np.full(len(ids), start), length)
    check_forcing(model, forcing)
    bucket = isinstance(model, ColumnModel)
    result = run_timed(
        model, forcing, params, chunk_columns=CHUNK_BASINS, progress=progress,
        description="evaluate", function=simulate if bucket else simulate_runoff,
    )
    if bucket:
        sim = drop_warmup(result.sim, cfg.warmup_days)
        runoff, precip = sim.fluxes.runoff, sim.fluxes.precip
    else:  # no stores: runoff only
        sim = None
        runoff = result.sim[:, cfg.warmup_days :]
        precip = np.asarray(forcing.precip)[:, cfg.warmup_days :]
    first, last = periods[EVALUATION]
    observed = run_data.obs[:, first : last + 1]
    table = _metric_table(ids, run_data.names, known, observed, runoff, precip, sim, config)
    return Evaluation(
        config=config,
        model=model,
        data=run_data,
        period=period,
        time=source.time[first : last + 1],
        simulation=sim,
        runoff=runoff,
        observed=observed,
        params=params,
        table=table,
        compile_s=result.compile_s,
        run_s=result.run_s,
        adjustments=adjustments,
    )


def evaluate_ensemble(run_dirs, data: str | None = None, **options) -> Evaluation:
    """The mean of several runs (trainings with other seeds, other models) on the same basins
    and days: ``evaluate_run`` of each, then their mean simulated runoff, scored as one model.

    The mean of water balances that close is a water balance that closes: storage change,
    precipitation and every flux enter the budget linearly. When every member is a bucket with
    the same stores and fluxes, ``simulation`` is the mean of the members' simulations and its
    water residuals are recomputed from its own mean stores and fluxes (``budget_residual``);
    otherwise ``simulation`` is None. The closure columns of the table hold the largest
    residual of the mean and of any member (so that no member's fault is averaged away), NaN
    when a member has no water balance (an LSTM). ``config``, ``model`` and ``params`` are
    those of the first member; the ``parameters`` column says ``ensemble``. ``options`` as
    ``evaluate_run``; the members must evaluate the same basins, days and observations (a
    ValueError names the first that does not)."""
    run_dirs = [str(d) for d in run_dirs]
    if len(run_dirs) < 2:
        raise ValueError(f"An ensemble needs at least two run directories, got {run_dirs}.")
    if len(set(run_dirs)) < len(run_dirs):
        raise ValueError(f"An ensemble names a run directory twice: {run_dirs}.")
    members = [evaluate_run(d, data, **options) for d in run_dirs]
    first = members[0]
    for d, ev in zip(run_dirs[1:], members[1:]):
        if (list(ev.data.basins) != list(first.data.basins) or not ev.time.equals(first.time)
                or not np.array_equal(ev.observed, first.observed, equal_nan=True)):
            raise ValueError(
                f"The ensemble member {d} evaluates other basins or days than {run_dirs[0]} "
                f"({len(ev.data.basins)} basins, {ev.period[0]} .. {ev.period[1]} against "
                f"{len(first.data.basins)}, {first.period[0]} .. {first.period[1]}): give the "
                "members the same data file, period (--period) and basins (with --unseen: "
                "train them on the same basins).")
    runoff = np.mean([ev.runoff for ev in members], axis=0)
    sims = [ev.simulation for ev in members]
    sim = None
    if all(s is not None for s in sims) and len(
            {jax.tree_util.tree_structure(s) for s in sims}) == 1:
        sim = jax.tree_util.tree_map(lambda *xs: np.mean(xs, axis=0), *sims)
        residual = budget_residual(sim)
        sim = eqx.tree_at(
            lambda m: (m.fluxes.water_residual, m.cumulative_water_residual), sim,
            (residual.astype(runoff.dtype), np.cumsum(residual, axis=1).astype(runoff.dtype)))
    t0, t1 = first.data.periods[EVALUATION]
    precip = np.asarray(first.data.series["precip"])[:, t0 : t1 + 1]  # every member's forcing
    ids = list(first.data.basins)
    table = _metric_table(ids, first.data.names, np.ones(len(ids), bool), first.observed,
                          runoff, precip, sim, first.config)
    table["parameters"] = "ensemble"
    for column in ("max_abs_step_residual_mm", "max_abs_cumulative_residual_mm"):
        largest = np.max([ev.table[column].to_numpy() for ev in members], axis=0)
        table[column] = largest if sim is None else np.maximum(table[column], largest)
    if sim is None:  # the mean of the members' fluxes (NaN where one has none: an LSTM)
        for column in ("mean_et_mm_day", "mean_groundwater_loss_mm_day",
                       "mean_infiltration_excess_mm_day"):
            table[column] = np.mean([ev.table[column].to_numpy() for ev in members], axis=0)
    return dataclasses.replace(
        first, simulation=sim, runoff=runoff, table=table, members=tuple(run_dirs),
        compile_s=sum(ev.compile_s for ev in members), run_s=sum(ev.run_s for ev in members),
        adjustments=list(dict.fromkeys(a for ev in members for a in ev.adjustments)))


def budget_residual(sim: Simulation) -> np.ndarray:
    """The water residual of every step ``[basin, time]`` (mm, float64) recomputed from the
    simulation's own stores and fluxes: the change of each store (the stores of an evaluation:
    one number each, the water in transit summed) less P - E - Q - L over the step. For a
    simulation of a model it equals ``fluxes.water_residual`` up to rounding."""
    def stores(state):
        return [np.asarray(getattr(state, n), np.float64) for n in STORE_NAMES
                if getattr(state, n) is not None]

    after = stores(sim.states)
    before = [np.concatenate([first[:, None], s[:, :-1]], axis=1)
              for first, s in zip(stores(sim.initial_state), after)]
    change = sum(a - b for a, b in zip(after, before))
    f = sim.fluxes
    loss = 0.0 if f.groundwater_loss is None else np.asarray(f.groundwater_loss, np.float64)
    water = (np.asarray(f.precip, np.float64) - np.asarray(f.et, np.float64)
             - np.asarray(f.runoff, np.float64) - loss)
    return change - water * units.DT_DAYS


def _runoff_dataset(evaluation: Evaluation, title: str, history: str | None):
    """CF dataset of an lstm evaluation, or of an ensemble without a joint water balance:
    simulated runoff (no ``water_budget`` role: there is no budget to check) on the coordinates
    ``simulation_to_dataset`` writes."""
    from ..io.output import OUTPUT_VARIABLES, timeseries_dataset, variable_attrs

    spec = next(v for v in OUTPUT_VARIABLES if v.name == "runoff")
    attrs = variable_attrs(spec, budget=False)
    if evaluation.members:  # an ensemble of models of which one at least has no stores
        attrs.update(long_name="total runoff, mean of an ensemble of runs",
                     cell_methods="realization: mean")
        model = (f"mean of {len(evaluation.members)} runs, without a joint water balance "
                 "(their stores differ, or a member has none)")
    else:
        attrs["long_name"] = "total runoff predicted by the LSTM"
        lstm = evaluation.model
        model = (f"hybridland.learned.LSTMRunoff(pet={type(lstm.pet).__name__}, "
                 f"layers={len(lstm.cells)}, width={lstm.width}): pure data-driven LSTM, "
                 "no stores and no water balance.")
    return timeseries_dataset(
        {"runoff": (("basin", "time"), np.asarray(evaluation.runoff), attrs)},
        evaluation.data.basins,
        evaluation.time,
        coords=evaluation.data.coords,
        title=title,
        history=history or "hybridland.train.evaluate",
        time_long_name="day (fluxes are totals over the day, time_bnds)",
        attrs={"model": model,
               "evaluation_period": f"{evaluation.period[0]} .. {evaluation.period[1]}"},
    )


def drop_warmup(sim: Simulation, days: int) -> Simulation:
    """The simulation from day ``days`` on, as if it had started there: the initial stores are
    those at the end of the warm-up and the cumulative residual restarts from zero."""
    if days == 0:
        return sim

    def cut(a):
        return np.asarray(a)[:, days:]

    def at_end_of_warmup(a):
        return np.asarray(a)[:, days - 1]

    cumulative = np.asarray(sim.cumulative_water_residual)
    return Simulation(
        states=jax.tree_util.tree_map(cut, sim.states),
        fluxes=jax.tree_util.tree_map(cut, sim.fluxes),
        initial_state=jax.tree_util.tree_map(at_end_of_warmup, sim.states),
        final_state=sim.final_state,
        cumulative_water_residual=cumulative[:, days:] - cumulative[:, days - 1 : days],
    )


def _checked_period(period) -> tuple[str, str]:
    """``period`` as two ISO days, start <= end; a ValueError naming ``period`` otherwise (the
    run's data settings, which take it, named their own 'data.train_period')."""
    try:
        first, last = (iso_date(day) for day in period)
    except (TypeError, ValueError):
        raise ValueError(f"period must be two days (start, end) as YYYY-MM-DD, got "
                         f"{period!r}.") from None
    if last < first:
        raise ValueError(f"period {first} .. {last} ends before it starts; give (start, end).")
    return first.isoformat(), last.isoformat()


def column_params(trained_u, trained: pd.DataFrame, ids: list[str], attributes,
                  config: Config) -> Params:
    """The physical parameters ``[len(ids)]`` a finished run gives the columns ``ids``:
    from its parameter network (``attributes``, normalised, ``[len(ids), n]``) if it has one,
    else calibrated for the basins of its ``basins.csv`` table ``trained`` and the trained
    median for the others (see the module docstring). ``trained_u`` as ``load_trainables``."""
    if config.model.parameter_network:
        return bounded_params(trained_u, None, len(ids), jnp.asarray(attributes))
    n_trained = len(trained)
    trained_params = bounded_params(trained_u, jnp.arange(n_trained), n_trained)
    return _evaluation_params(trained_params, trained.index, ids, config)


def _evaluation_params(trained: Params, trained_ids, ids: list[str], config: Config) -> Params:
    """Per-basin parameters: calibrated for trained basins, the trained median for others."""
    position = {b: i for i, b in enumerate(trained_ids)}
    rows = np.array([position.get(b, -1) for b in ids])

    def pick(name, values):
        values = np.asarray(values)  # [trained basin] or [trained basin, component]
        shared = name not in config.model.trainable_params or not config.model.per_basin_params
        if shared or values.ndim == 0:  # one value (per component) for every basin
            first = values if values.ndim == 0 else values[0]
            return jnp.asarray(np.broadcast_to(first, (len(ids), *np.shape(first))))
        median = np.median(values, axis=0)
        known = (rows >= 0).reshape(-1, *([1] * (values.ndim - 1)))
        return jnp.asarray(np.where(known, values[np.maximum(rows, 0)], median))

    return Params(
        **{f.name: pick(f.name, getattr(trained, f.name)) for f in dataclasses.fields(trained)}
    )


def _metric_table(
    ids, names, known, observed, runoff, precip, sim: Simulation | None, config: Config
) -> pd.DataFrame:
    """One row per basin: scores of ``runoff``, mean fluxes (P = E + Q + L + storage change,
    L the groundwater loss, 0 for a bucket without one) and the closure residuals (NaN, as ET
    and L, for a model without a water balance, ``sim`` None); the runoff the infiltration
    capacity made, a diagnostic part of Q (0 for a bucket without infiltration excess).

    The budget means (``mean_runoff``, ``mean_et``, ..., ``mean_precip``) are over every day
    of the period; ``mean_observed`` and the ``*_observed_days`` means over the days with an
    observation, the days the scores compare, so that observed and simulated runoff ratios
    (or evaporative indices 1 - Q/P) are taken over the same days."""
    scores = {k: np.asarray(v) for k, v in metrics.evaluate_all(observed, runoff).items()}
    seen = np.isfinite(observed)
    if sim is None:
        nan = np.full(len(ids), np.nan)
        et, loss, horton, step_residual, cumulative_residual = nan, nan, nan, nan, nan
    else:
        def mean_or_zero(flux):  # a structure's flux: 0 for a bucket without that structure
            return np.zeros(len(ids)) if flux is None else np.mean(flux, axis=1)

        et = np.mean(sim.fluxes.et, axis=1)
        loss = mean_or_zero(sim.fluxes.groundwater_loss)  # the fourth water output
        horton = mean_or_zero(sim.fluxes.infiltration_excess_runoff)
        step_residual = np.max(np.abs(sim.fluxes.water_residual), axis=1)
        cumulative_residual = np.max(np.abs(np.asarray(sim.cumulative_water_residual)), axis=1)
    table = pd.DataFrame(
        {
            "basin": ids,
            "name": list(names),
            "parameters": _parameter_source(known, config),
            **{k: scores[k] for k in ("nse", "kge", "r", "alpha", "beta", "log_nse", "rmse",
                                      "bias", "pbias", "fhv", "flv", "n_valid")},
            "mean_observed_mm_day": _nanmean_rows(observed),
            "mean_runoff_mm_day": np.mean(runoff, axis=1),
            "mean_et_mm_day": et,
            "mean_groundwater_loss_mm_day": loss,
            "mean_infiltration_excess_mm_day": horton,
            "mean_precip_mm_day": np.mean(precip, axis=1),
            "mean_runoff_observed_days_mm_day": mean_on_days(np.asarray(runoff), seen),
            "mean_precip_observed_days_mm_day": mean_on_days(np.asarray(precip), seen),
            "max_abs_step_residual_mm": step_residual,
            "max_abs_cumulative_residual_mm": cumulative_residual,
        }
    )
    return table


def _parameter_source(known: np.ndarray, config: Config) -> np.ndarray:
    if config.model.kind == "lstm":  # no physical parameters
        return np.full(known.shape, "none")
    if config.model.parameter_network:
        return np.full(known.shape, "network")
    if not config.model.per_basin_params:
        return np.full(known.shape, "calibrated")
    return np.where(known, "calibrated", "regional median")


def _training_period_attributes(loader, eval_cfg, cfg, config, basins) -> tuple[dict, str]:
    """``({basin: raw static attributes}, note)`` of ``basins`` (ones the run did not train on)
    over the run's training period, as its own basins got them in training: a basin's climate
    attributes then do not depend on the days evaluated (the test years' climate is not the
    training years'). Basins the data do not cover over that period keep the attributes of the
    evaluated days, and ``note`` says which (empty when none)."""
    attr_cfg = dataclasses.replace(
        eval_cfg, basins=tuple(basins), exclude_basins=None, aridity_range=None,
        train_period=cfg.train_period, validation_period=cfg.train_period, test_period=None,
    )
    values = {}
    reason = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            source = LOADERS[loader](attr_cfg, config.run.seed, exclude_known=False)
        first, last = period_indices(source.time, {"train": cfg.train_period}, 0)["train"]
        table = static_attributes(config.model.static_attributes, source,
                                  slice(first, last + 1))
        values = {b: row for b, row in zip(source.basins, table) if np.isfinite(row).all()}
    except (ForcingDataError, ValueError) as err:  # PeriodError is a ValueError
        reason = f" ({err})"
    missing = [b for b in basins if b not in values]
    note = ""
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                           else "")
        note = (f"static attributes of {shown} (basins the run did not train on) are from the "
                f"evaluated days: the data do not cover them over the run's training period "
                f"{cfg.train_period[0]} .. {cfg.train_period[1]}{reason}")
    return values, note


def mean_on_days(values: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per row of ``[basin, day]`` ``values``, their mean over the ``days`` (boolean, same
    shape) it has; NaN for a row without such a day, and for one whose ``values`` are not finite
    on one of them (not the mean of the others: a mean over fewer days than another series'
    would mix periods)."""
    count = days.sum(axis=1)
    total = np.sum(np.where(days, values, 0.0), axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # basins without any observation
        return np.nanmean(x, axis=1)
