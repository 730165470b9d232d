"""The climate-shift study: do models that close the water balance stay skilful from humid
(energy-limited) to arid (water-limited) basins? ``hybridland study climate-shift``.

**Basin groups.** Aridity is mean PE / mean P over the training period of each basin of the
MOPEX-layout file; *humid* basins lie in ``data.humid`` (default ``[0, 1)``), *arid* ones in
``data.arid`` (``[1.5, 100)``), the rest are *intermediate*. Basins the loader drops (gaps,
with the models' ``drop_incomplete``) are left out of every split.

**Splits** (every model is trained on the same basins and days of a split, and every
training run hides each basin's driest years, ``data.dry_years``, from its loss):

- ``temporal``: all basins; trained on the training period, scored on the test period;
- ``humid_to_arid``: trained on the humid basins; scored on the humid basins (in
  distribution) and on the arid basins (shifted), test period;
- ``diverse``: trained on the humid basins plus a seeded share of the arid ones; scored on the
  humid basins and on the *other* arid basins;
- ``dry_extremes``: the temporal models scored on each basin's hidden driest years
  (``hybridland.train.data.dry_years`` over the training-to-test span) against their
  temporal test score.

**Models.** Every entry of ``models`` (a training configuration: physics per basin or with a
parameter network, hybrid with or without one, LSTM) is trained by ``hybridland.train.train``
into ``OUT/runs/<split>/<model>``, a run directory that ``hybridland evaluate`` reads; basins
a run never saw get the run's regional parameters (network or median). The closed-form
``baselines`` (``hybridland.study.baselines``) are fitted on the same basins and days;
the state-augmented regression sees the soil water and snow of the physics bucket run with
default parameters. Models in ``extreme_weighting`` are trained again on the temporal split
with the low-flow weighted loss (``training.extreme_weight``). Models in ``fine_tuning`` start
from their humid-to-arid run and continue training on the diverse split's arid training
basins only (``training.init_from``); they are scored like the diverse split. Models in
``budget_check`` are trained again on its split with ``factor`` times their epochs and patience
(label ``<model>_budget_x<factor>``); the page's budget check says whether their medians moved
by more than its ``tolerance``, i.e. whether the verdict rests on converged models, and whether
they moved more than the model's trainings with different seeds differ (``ensemble``). Models in
``ensemble`` are trained again on its split with each of its ``seeds`` (label
``<model>_seed<seed>``) and scored alone and as the mean of all their trainings there
(``<model>_ensemble``).

**Scores** per basin: NSE, KGE, log-NSE, PBIAS and FLV (the low-flow volume bias of the
lowest 30 % of the flow duration curve, %), the error of the evaporative index 1 - Q/P (Budyko
consistency: simulated against observed, over the scored days), with the largest cumulative
water residual of every
bucket run, from the model's own stores and fluxes (``n/a`` for models without a water
balance). ``OUT/scores.csv`` holds them all; ``OUT/results.csv`` / ``results.md`` the medians
per model, split and test set with the skill drop; ``OUT/figures`` the skill against aridity,
the skill drops and a Budyko plot; ``OUT/climate_shift.md`` the page generated from them.
A finished run directory is reused when the study is run again with the same settings, and an
interrupted one resumes from its last epoch's checkpoint, so a study with converged budgets (hours
on a laptop CPU) can be stopped and continued by running the same command again.

**Targets.** The study file's ``targets`` (a model, its peer and thresholds) become a section
of the page that states each target with its measured value: met, not met, or not measured.
``rewrite_report`` (``--report-only``) writes the tables, figures and page again from what the
last scoring left in ``OUT`` (``scores.csv``, ``timing.csv``, ``basins.csv``,
``untrained.csv``, ``invocation.json``) without training or scoring.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from .._params import Params
from ..solvers import run_timed
from ..io._report import DataAdjustmentWarning
from ..column import build_model
from ..train import checkpoint as ckpt
from ..train.config import Config, ConfigError
from ..train.data import RunData, dry_years, load_data
from ..train.evaluate import Evaluation, evaluate_ensemble, evaluate_run, mean_on_days
from ..train.loop import (CONTINUABLE_SCHEDULES, CONTINUED_FROM, _continuation, _resolved,
                          release_compiled, train)
from .config import (
    ENSEMBLE_SUFFIX,
    TRAINED_SPLITS,
    Study,
    budget_label,
    scaled_budget,
    seed_label,
)

SPLITS = ("temporal", "humid_to_arid", "diverse", "dry_extremes")
SCORES = ("nse", "kge", "log_nse", "pbias", "flv")
SHIFT = {
    # split: (scores of, in-distribution set, shifted set)
    "temporal": ("temporal", "all", None),
    "humid_to_arid": ("humid_to_arid", "humid", "arid"),
    "diverse": ("diverse", "humid", "arid_unseen"),
    # against the test years outside each basin's dry years: the two share no day
    "dry_extremes": ("temporal", "test_outside_dry", "dry_years"),
}
"""How each split's result rows are formed from the per-basin scores."""


@dataclasses.dataclass
class Basins:
    """The study's basins with their aridity and group."""

    ids: list[str]
    aridity: np.ndarray
    group: np.ndarray  # humid | intermediate | arid
    arid_train: list[str]

    def of(self, group: str) -> list[str]:
        return [b for b, g in zip(self.ids, self.group) if g == group]

    def training(self, split: str) -> list[str]:
        if split == "temporal":
            return list(self.ids)
        if split == "humid_to_arid":
            return self.of("humid")
        if split == "diverse":
            return self.of("humid") + self.arid_train
        raise ValueError(f"split {split!r} is not trained")


# ---------------------------------------------------------------------------------------------
# Data


def _data_config(study: Study, base: Config, basins: list[str] | None,
                 hide_dry_years: bool = True) -> Config:
    d = study.data
    return base.replace(
        "data",
        path=d.path,
        basins=None if basins is None else tuple(basins),
        n_basins=None,
        aridity_range=None,
        train_period=d.train_period,
        validation_period=d.validation_period,
        test_period=d.test_period,
        holdout_dry_years=d.dry_years if hide_dry_years else 0.0,
    )


def _load_all(study: Study, quick: bool, log) -> tuple[RunData, Basins, Config]:
    """Every basin of the file the models' data options keep (or a few per group with
    ``quick``), with aridity groups; the RunData has every observation (the baselines hide
    the dry years themselves, ``_dry_mask``)."""
    base = next(iter(study.models.values()))
    base = base.replace("model", kind="hybrid", trainable_params=(),
                        static_attributes=("aridity", "mean_precip", "mean_pet", "snow_fraction",
                                           "mean_temp"),
                        parameter_network=False, root_zone_prior=False, clip_attributes=False)
    config = _data_config(study, base, None, hide_dry_years=False)
    if quick:
        everything = _load_quiet(config)
        groups = _groups(study, everything.raw_attributes[:, 0])
        ids = np.asarray(everything.basins)
        k = study.quick.basins_per_group
        pick = [*ids[groups == "humid"][:k], *ids[groups == "intermediate"][:1],
                *ids[groups == "arid"][: 2 * k]]
        config = _data_config(study, base, pick, hide_dry_years=False)
        data = _load_quiet(config)
    else:
        data = _load_quiet(config)
    aridity = data.raw_attributes[:, 0]
    group = _groups(study, aridity)
    arid = [b for b, g in zip(data.basins, group) if g == "arid"]
    arid_train = arid_training_basins(arid, study.data.arid_training_share, study.data.seed)
    basins = Basins(list(data.basins), aridity, group, arid_train)
    for name in ("humid", "intermediate", "arid"):
        log(f"{name}: {len(basins.of(name))} basins")
    if not basins.of("humid") or len(arid) < 2:
        raise ValueError(
            "The study needs humid basins and at least two arid ones; widen data.humid / "
            f"data.arid (found {len(basins.of('humid'))} humid, {len(arid)} arid)."
        )
    return data, basins, config


def arid_training_basins(arid: list[str], share: float, seed: int) -> list[str]:
    """The arid basins the diverse split trains on: ``share`` of ``arid`` drawn with ``seed``,
    sorted; at least one, and at least one left unseen where there are two or more (the split
    compares the two): a share that rounds to none or to all of a few basins takes one or
    leaves one."""
    if not arid:
        return []
    n_train = min(max(int(round(share * len(arid))), 1), max(len(arid) - 1, 1))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(arid, n_train, replace=False).tolist())


def _load_quiet(config: Config) -> RunData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)  # the runs' logs keep them
        return load_data(config)


def _groups(study: Study, aridity: np.ndarray) -> np.ndarray:
    d = study.data
    return np.where(
        (aridity >= d.humid[0]) & (aridity < d.humid[1]),
        "humid",
        np.where((aridity >= d.arid[0]) & (aridity < d.arid[1]), "arid", "intermediate"),
    )


# ---------------------------------------------------------------------------------------------
# Training


@dataclasses.dataclass(frozen=True)
class Job:
    """One trained run of the study: ``model`` on ``split``, as configured or as one variant
    (low-flow weighted loss, fine-tuned from the humid-to-arid run, or a multiple of its budget).
    Says once how such a run is labelled in the results and named on disk."""

    model: str
    split: str
    extreme_weight: float = 0.0
    fine_tuned: bool = False
    budget_factor: float = 1.0
    seed: int | None = None
    """Another ``run.seed`` than the model's own (a member of its ensemble)."""

    def __post_init__(self):
        variants = [bool(self.extreme_weight), self.fine_tuned, self.budget_factor != 1.0,
                    self.seed is not None]
        if sum(variants) > 1:
            raise ValueError(f"a study run is at most one variant of its model, got {self}")

    @property
    def label(self) -> str:
        """The model's name in the result tables and in ``runs/<split>/``."""
        if self.budget_factor != 1.0:
            return budget_label(self.model, self.budget_factor)
        if self.seed is not None:
            return seed_label(self.model, self.seed)
        return self.model + ("_extreme" if self.extreme_weight else "") + (
            "_finetuned" if self.fine_tuned else "")

    @property
    def run_name(self) -> str:
        """``run.name`` of its training configuration: ``<split>-<model>``, then the label's
        variant suffix with hyphens (``-extreme``, ``-finetuned``, ``-budget-x2``,
        ``-seed1``)."""
        variant = self.label.removeprefix(self.model).replace("_", "-")
        return f"{self.split}-{self.model}{variant}"


def study_jobs(study: Study) -> list[Job]:
    """Every trained run, in training order: the central question first (humid -> arid and
    whether more budget moves it), then the other splits, so that a study continued over several
    invocations (finished runs are reused, interrupted ones resume) has its main answer soonest."""
    check = study.budget_check
    jobs = [Job(name, "humid_to_arid") for name in study.models]
    jobs += [Job(name, check.split, budget_factor=check.factor) for name in check.models]
    jobs += [Job(name, "diverse") for name in study.models]
    jobs += [Job(name, "diverse", fine_tuned=True) for name in study.fine_tuning.models]
    jobs += [Job(name, "temporal") for name in study.models]
    jobs += [Job(name, "temporal", extreme_weight=study.extreme_weighting.extreme_weight)
             for name in study.extreme_weighting.models]
    ensemble = study.ensemble
    jobs += [Job(name, ensemble.split, seed=seed) for seed in ensemble.seeds
             for name in ensemble.models]
    return jobs


def ensemble_members(study: Study, out: Path, model: str) -> list[Path]:
    """The run directories whose mean is ``model``'s ensemble: its own run on the ensemble's
    split, then one per extra seed."""
    split = out / "runs" / study.ensemble.split
    return [split / label for label in study.ensemble.trainings(model)]


def run_config(study: Study, job: Job, basins: Basins, quick: bool,
               init_from: Path | None = None) -> Config:
    """The training configuration of ``job``: a fine-tuned job starts from ``init_from`` (its
    model's humid-to-arid run) and trains on the diverse split's arid training basins only; a
    ``budget_factor`` above 1 multiplies the epochs and patience (rounded up)."""
    if job.fine_tuned and init_from is None:
        raise ValueError(f"{job.label}: a fine-tuned run needs init_from (the run it starts from)")
    train_ids = basins.arid_train if job.fine_tuned else basins.training(job.split)
    config = _data_config(study, study.models[job.model], train_ids)
    overrides = {k: v for k, v in dataclasses.asdict(study.training).items() if v is not None}
    if quick:
        q = study.quick
        overrides.update(epochs=q.epochs, batches_per_epoch=q.batches_per_epoch,
                         batch_basins=q.batch_basins, patience=None)
    if job.extreme_weight:
        overrides["extreme_weight"] = job.extreme_weight
    if job.fine_tuned:
        overrides["init_from"] = str(init_from)
    config = config.replace("training", **overrides)
    if job.seed is not None:
        config = config.replace("run", seed=job.seed)
    if job.budget_factor != 1.0:
        t = config.training
        config = config.replace(
            "training", epochs=scaled_budget(job.budget_factor, t.epochs),
            patience=None if t.patience is None else scaled_budget(job.budget_factor, t.patience))
    return config.replace("run", name=job.run_name)


LOCK_POLL_S = 30.0
"""Seconds between looks at a run another invocation is training (``_train``)."""


def _pause() -> None:
    time.sleep(LOCK_POLL_S)


def _continued_run(out: Path, job: Job, config: Config, log) -> Path | None:
    """The run a budget check's job continues (``hybridland.train.train``'s ``continue_from``):
    its model's run on the same split when the schedule does not depend on the epochs bound, so
    the longer run repeats it and only its further epochs are trained; None (trained from the
    start) for other jobs and schedules, or while that run has no checkpoint to continue."""
    if job.budget_factor == 1.0 or config.training.schedule not in CONTINUABLE_SCHEDULES:
        return None
    source = out.resolve() / "runs" / job.split / job.model
    if ckpt.latest_checkpoint(source) is None:
        return None
    try:
        _continuation(source, _resolved(config))
    except ckpt.RunFileError as err:
        log(f"{job.split}/{job.label}: trained from the start, not continued ({err})")
        return None
    return source


def _train(config: Config, run_dir: Path, log, progress: bool, report: bool,
           continue_from: Path | None = None) -> float:
    """Train (or reuse a finished identical run); the seconds spent (for a run resumed from an
    interrupted invocation, at least the sum of all its epochs' seconds). ``report``: the run's
    own metric tables and figures (``hybridland.train.report``). A run that another process is
    training (``hybridland.train.checkpoint.hold_run``) is waited for, then reused or resumed:
    several invocations on one OUT share its runs (``run_study(..., only=...)``). A run that
    ``continue_from`` another counts only the epochs it trained itself."""
    from ..train.loop import same_configuration

    saved = run_dir / "config.yaml"
    waiting_for = ()
    while True:
        try:
            # Decided and recorded under the run's lock: a run another invocation is training
            # is neither taken for finished nor timed before that invocation has recorded it.
            with ckpt.hold_run(run_dir):
                if (run_dir / "run.json").is_file() and saved.is_file() and same_configuration(
                    saved.read_text(), _resolved(config)
                ):
                    log(f"{run_dir}: finished run reused")
                    return _seconds(run_dir)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DataAdjustmentWarning)
                    train(config, run_dir, progress=progress, report=report,
                          continue_from=continue_from)
                # A run resumed from an earlier, interrupted invocation: its epochs count.
                seconds = max(time.perf_counter() - t0, _seconds(run_dir, epochs_only=True))
                ckpt.atomic_write_text(run_dir / "study_seconds.json",
                                       json.dumps({"seconds": seconds}))
            break
        except ckpt.RunLockedError as err:  # another invocation trains it: wait, then reuse
            if err.pid != waiting_for:  # said once per process waited for
                who = "another process" if err.pid is None else f"process {err.pid}"
                log(f"{run_dir}: waiting for {who}, which is training it")
                waiting_for = err.pid
            _pause()
    # the next run may be the same model (another seed, split or budget): its programs are
    # kept while the process has room for them
    release_compiled(above=0.5)
    log(f"{run_dir}: trained in {seconds:.0f} s")
    return seconds


def _seconds(run_dir: Path, epochs_only: bool = False) -> float:
    """The training seconds the study recorded for a finished run, or (``epochs_only``, or a run
    not trained by the study, or one whose training process is still writing its report) the
    sum of its epochs' seconds (of its own epochs: not those a continued run took over)."""
    recorded = run_dir / "study_seconds.json"
    if not epochs_only and recorded.is_file():
        return float(json.loads(recorded.read_text())["seconds"])
    inherited = run_dir / CONTINUED_FROM
    skip = json.loads(inherited.read_text())["epochs"] if inherited.is_file() else 0
    epochs = pd.read_csv(run_dir / "metrics.csv")
    return float(epochs.loc[epochs["epoch"] >= skip, "seconds"].sum())


def _epochs(config: Config, run_dir: Path) -> dict:
    """How far a finished run trained: epochs completed, best epoch (0-based), the bound,
    whether early stopping ended it, and the epochs it took over from a run it continued."""
    run = json.loads((run_dir / "run.json").read_text())
    taken = run_dir / CONTINUED_FROM  # epochs taken over from the run it continued
    return {"epochs_completed": int(run["epochs_completed"]), "best_epoch": int(run["best_epoch"]),
            "epochs_bound": int(config.training.epochs),
            "stopped_early": bool(run.get("stopped_early", False)),
            "epochs_taken_over": json.loads(taken.read_text())["epochs"] if taken.is_file()
            else 0}


# ---------------------------------------------------------------------------------------------
# Scores


def _residual(ev: Evaluation) -> np.ndarray:
    """Largest cumulative water residual per basin (NaN for a model without a balance)."""
    return ev.table["max_abs_cumulative_residual_mm"].to_numpy()


MIN_OBSERVED_DAYS = 365
"""Observed days a basin needs in a test to be scored on it: a shorter record holds no whole
seasonal cycle, and its evaporative index 1 - Q / P is not the annual one of Budyko's curve."""

WORST_WHEN_UNDEFINED = ("nse", "kge", "log_nse")
"""Scores that count as -inf where the observations define them but the simulation does not
(not finite, or constant: a model that gives one flow every day has no correlation, r): left
out, such a basin would raise the model's median."""


def _score_rows(model, split, test, ids, obs, sim, precip, residual, mask=None) -> pd.DataFrame:
    """Scores per basin of ``sim`` against ``obs`` ``[basin, day]`` on the days ``mask`` keeps
    (all by default) where a flow was observed; the mean observed and simulated flow and the
    mean precipitation over exactly those days (the evaporative index 1 - Q / P of each).
    A basin with fewer than ``MIN_OBSERVED_DAYS`` such days gets no scores (NaN); a score the
    observations define but the simulation leaves undefined is -inf
    (``WORST_WHEN_UNDEFINED``)."""
    if mask is not None:
        obs = np.where(mask, obs, np.nan)
    scores = {k: np.asarray(v) for k, v in metrics.evaluate_all(obs, sim).items()}
    # what the observations alone allow: a perfect simulation's scores are finite there
    defined = {k: np.isfinite(np.asarray(v)) for k, v in metrics.evaluate_all(obs, obs).items()}
    scored = np.isfinite(obs)
    short = scored.sum(axis=1) < MIN_OBSERVED_DAYS
    for k in SCORES:
        if k in WORST_WHEN_UNDEFINED:
            scores[k] = np.where(defined[k] & ~np.isfinite(scores[k]), -np.inf, scores[k])
        scores[k] = np.where(short, np.nan, scores[k])
    scored &= ~short[:, None]
    obs_mean, sim_mean, precip_mean = (mean_on_days(np.asarray(x, np.float64), scored)
                                       for x in (np.where(scored, obs, 0.0), sim, precip))
    return pd.DataFrame({
        "model": model, "split": split, "test": test, "basin": list(ids),
        **{k: scores[k] for k in SCORES}, "n_valid": scores["n_valid"],
        "mean_observed_mm_day": obs_mean, "mean_simulated_mm_day": sim_mean,
        "mean_precip_mm_day": precip_mean, "max_abs_cumulative_residual_mm": residual,
    })


def _period(study: Study, name: str) -> tuple[str, str]:
    d = study.data
    if name == "test":
        return d.test_period
    return d.train_period[0], d.test_period[1]  # the span of the dry years


def _evaluate_trained(study, model, split, run_dir, basins: Basins, progress) -> list:
    """Score rows of a trained run (or of the mean of several, ``run_dir`` a list): test
    period on every basin; for temporal also the dry years and the test period without them."""
    def evaluate(period):
        if isinstance(run_dir, list):
            return evaluate_ensemble(run_dir, basins=basins.ids, period=period,
                                     progress=progress)
        return evaluate_run(run_dir, basins=basins.ids, period=period, progress=progress)

    def precip(ev):  # the evaluated days' precipitation, day for day with ev.observed
        first, last = ev.data.periods["evaluation"]
        return ev.data.series["precip"][:, first : last + 1]

    rows = []
    ev = evaluate(study.data.test_period)
    rows.append(_score_rows(model, split, "test", ev.data.basins, ev.observed, ev.runoff,
                            precip(ev), _residual(ev)))
    if split == "temporal":
        span = _period(study, "span")
        ev = evaluate(span)
        rain = precip(ev)
        dry = dry_years(ev.time, rain, study.data.dry_years, span)
        rows.append(_score_rows(model, split, "dry_years", ev.data.basins, ev.observed,
                                ev.runoff, rain, _residual(ev), dry))
        test = np.asarray((ev.time >= study.data.test_period[0])
                          & (ev.time <= study.data.test_period[1]))
        rows.append(_score_rows(model, split, "test_outside_dry_years", ev.data.basins,
                                ev.observed, ev.runoff, rain, _residual(ev),
                                test[None, :] & ~dry))
    return rows


def _default_states(data: RunData) -> dict[str, np.ndarray]:
    """Soil water and snow ``[basin, time]`` of the physics bucket with default parameters."""
    model = build_model("physics", pet="given")
    n, length = data.obs.shape
    forcing = data.forcing(np.arange(n), np.zeros(n, int), length)
    result = run_timed(model, forcing, Params.default(n, dtype=data.obs.dtype),
                       chunk_columns=64, progress=False)
    return {"soil": np.asarray(result.sim.states.soil), "snow": np.asarray(result.sim.states.swe)}


def _dry_mask(study: Study, data: RunData) -> np.ndarray:
    """``[basin, time]`` the dry years of ``data`` (the ones training runs hide)."""
    return dry_years(data.time, data.series["precip"], study.data.dry_years,
                     _period(study, "span"))


def _baseline_rows(study, name, split, data: RunData, basins: Basins, states, dry) -> list:
    from . import baselines as bl

    train_ids = set(basins.training(split))
    in_train = np.array([b in train_ids for b in data.basins])
    first, last = data.periods["train"]
    days = np.zeros(data.obs.shape[1], bool)
    days[first : last + 1] = True
    fit_mask = in_train[:, None] & days[None, :] & ~dry
    ids = list(data.basins)
    if name == "climatology":
        doy = np.asarray(data.doy).astype(int)
        fit = bl.fit_climatology(data.obs[in_train], doy, fit_mask[in_train],
                                 basins=[b for b, t in zip(ids, in_train) if t])
        pred = fit.predict(doy, basins=ids)  # unseen basins: the regional climatology
    else:
        rung = name.removeprefix("regression_")
        state = states if rung == "state" else None
        fit = bl.fit_regression(rung, data.series, data.raw_attributes, data.obs, fit_mask,
                                state=state)
        pred = fit.predict(data.series, data.raw_attributes, state=state)
    residual = np.full(len(ids), np.nan)
    t0, t1 = data.periods["test"]
    precip = data.series["precip"]
    rows = [_score_rows(name, split, "test", ids, data.obs[:, t0 : t1 + 1],
                        pred[:, t0 : t1 + 1], precip[:, t0 : t1 + 1], residual)]
    if split == "temporal":
        start = data.periods["train"][0]
        rows.append(_score_rows(name, split, "dry_years", ids, data.obs[:, start : t1 + 1],
                                pred[:, start : t1 + 1], precip[:, start : t1 + 1], residual,
                                dry[:, start : t1 + 1]))
        rows.append(_score_rows(name, split, "test_outside_dry_years", ids,
                                data.obs[:, t0 : t1 + 1], pred[:, t0 : t1 + 1],
                                precip[:, t0 : t1 + 1], residual, ~dry[:, t0 : t1 + 1]))
    return rows


# ---------------------------------------------------------------------------------------------
# Summary


def evaporative_index_error(scores: pd.DataFrame) -> pd.Series:
    """Per basin, simulated minus observed evaporative index ``1 - Q / P`` over the scored days
    (Budyko space): ``(Q_obs - Q_sim) / P``, positive where the model keeps too much water back
    from the outlet (as evapotranspiration, or as groundwater loss where it has one)."""
    return (scores["mean_observed_mm_day"] - scores["mean_simulated_mm_day"]) / scores[
        "mean_precip_mm_day"
    ]


def budyko_error(scores: pd.DataFrame) -> float:
    """Median absolute error of the evaporative index over the basins of ``scores``."""
    if scores.empty or "mean_precip_mm_day" not in scores:
        return np.nan
    error = np.abs(evaporative_index_error(scores).to_numpy(float))
    return float(np.nanmedian(error)) if np.isfinite(error).any() else np.nan


def summarise(scores: pd.DataFrame, basins: Basins) -> pd.DataFrame:
    """Medians per model and split: in-distribution and shifted scores, the skill drop and the
    median absolute error of the evaporative index (``budyko_error``)."""
    group = dict(zip(basins.ids, basins.group))
    unseen_arid = {b for b in basins.of("arid") if b not in set(basins.arid_train)}
    select = {
        "all": lambda s: s["test"] == "test",
        "humid": lambda s: (s["test"] == "test") & (s["basin"].map(group) == "humid"),
        "arid": lambda s: (s["test"] == "test") & (s["basin"].map(group) == "arid"),
        "arid_unseen": lambda s: (s["test"] == "test") & s["basin"].isin(unseen_arid),
        "dry_years": lambda s: s["test"] == "dry_years",
        "test_outside_dry": lambda s: s["test"] == "test_outside_dry_years",
    }
    rows = []
    for model in scores["model"].unique():
        for split, (source, ref, shifted) in SHIFT.items():
            s = scores[(scores["model"] == model) & (scores["split"] == source)]
            if s.empty:
                continue
            row = {"model": model, "split": split}
            parts = {label: s[select[which](s)].set_index("basin")
                     for label, which in (("in", ref), ("shifted", shifted)) if which is not None}
            # the same basins in both (the dry years against the test years): each median over
            # the basins scored in both, so that the drop compares like with like
            paired = len(parts) == 2 and set(parts["in"].index) == set(parts["shifted"].index)
            if paired:  # the basins the NSE medians (and the drop) are taken over
                scored = parts["shifted"]["nse"].reindex(parts["in"].index).notna()
                both = parts["in"]["nse"].notna() & scored
                row["n_paired"] = int(both.sum())
            for label, part in parts.items():
                row[f"n_{label}"] = int(part["nse"].notna().sum())  # basins with a score
                for k in SCORES:
                    values = part[k]
                    if paired:
                        other = parts["shifted" if label == "in" else "in"][k]
                        values = values[other.reindex(values.index).notna()]
                    finite = values.dropna()
                    row[f"{k}_{label}"] = float(np.median(finite)) if len(finite) else np.nan
                # over the same basins as the medians (in both, where paired)
                row[f"budyko_error_{label}"] = budyko_error(
                    part.loc[both[both].index] if paired else part)
            if shifted is not None:
                row["nse_drop"] = row["nse_in"] - row["nse_shifted"]
                row["kge_drop"] = row["kge_in"] - row["kge_shifted"]
            res = s["max_abs_cumulative_residual_mm"]
            row["max_abs_cumulative_residual_mm"] = (
                float(res.max()) if res.notna().any() else np.nan
            )
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The study


def _fine_tuning_start(out: Path, job: Job) -> Path | None:
    """The run a fine-tuned job starts from (absolute: the fine-tuned run's configuration does
    not depend on how ``out`` is spelled); None for other jobs."""
    if not job.fine_tuned:
        return None
    return out.resolve() / "runs" / "humid_to_arid" / job.model


def only_jobs(study: Study, only, out) -> list[Job]:
    """The jobs named ``SPLIT/MODEL`` (their result labels) in ``only``, in that order; a
    fine-tuned job needs its start finished in ``out`` or named before it."""
    jobs = {f"{job.split}/{job.label}": job for job in study_jobs(study)}
    unknown = [name for name in only if name not in jobs]
    if unknown:
        raise ConfigError(
            f"--train-only: {', '.join(unknown)} is not a run of this study; its runs are "
            + ", ".join(jobs))
    for i, name in enumerate(only):
        start = _fine_tuning_start(Path(out), jobs[name])
        first = f"humid_to_arid/{jobs[name].model}"
        if start is not None and not (start / "run.json").is_file() and first not in only[:i]:
            raise ConfigError(
                f"--train-only: {name} starts from the finished run {first}, which {start} "
                f"does not hold yet: name {first} before it, or train it first.")
    return [jobs[name] for name in only]


def run_study(study: Study, out, *, quick: bool = False, progress: bool = True,
              log=print, only=None) -> dict:
    """Run the whole study into ``out``; return ``{"scores", "results", "timing", ...}``.

    ``only``: names ``SPLIT/MODEL`` of some of its runs (``temporal/hybrid_extreme``): train
    just those, in that order, and return ``{"timing"}`` without scoring. Another invocation on
    the same ``out`` (the whole study) waits for a run being trained here and then reuses it,
    so independent runs train side by side (on a CPU whose cores one training does not fill,
    or on machines that share ``out``)."""
    out = Path(out)
    jobs = study_jobs(study) if only is None else only_jobs(study, only, out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, basins, _ = _load_all(study, quick, log)
    timing, rows = [], []
    for job in jobs:
        config = run_config(study, job, basins, quick, _fine_tuning_start(out, job))
        run_dir = out / "runs" / job.split / job.label
        seconds = _train(config, run_dir, log, progress, report=not quick,
                         continue_from=_continued_run(out, job, config, log))
        if only is not None:
            timing.append({"model": job.label, "split": job.split, "train_s": seconds,
                           **_epochs(config, run_dir)})
            continue
        t0 = time.perf_counter()
        rows += _evaluate_trained(study, job.label, job.split, run_dir, basins, progress=False)
        timing.append({"model": job.label, "split": job.split, "train_s": seconds,
                       "evaluate_s": time.perf_counter() - t0, **_epochs(config, run_dir)})
    if only is not None:
        return {"timing": pd.DataFrame(timing), "wall_s": time.perf_counter() - t_start}
    for name in study.ensemble.models:  # the mean of each model's trainings
        t0 = time.perf_counter()
        rows += _evaluate_trained(study, name + ENSEMBLE_SUFFIX, study.ensemble.split,
                                  ensemble_members(study, out, name), basins, progress=False)
        timing.append({"model": name + ENSEMBLE_SUFFIX, "split": study.ensemble.split,
                       "train_s": 0.0, "evaluate_s": time.perf_counter() - t0})
    states = None
    if "regression_state" in study.baselines:
        # the state regression's inputs, one run on every basin for all its splits: part of
        # fitting it (split "all")
        t0 = time.perf_counter()
        states = _default_states(data)
        timing.append({"model": "regression_state", "split": "all",
                       "train_s": time.perf_counter() - t0, "evaluate_s": 0.0})
    dry = _dry_mask(study, data)
    for name in study.baselines:
        for split in TRAINED_SPLITS:
            t0 = time.perf_counter()
            rows += _baseline_rows(study, name, split, data, basins, states, dry)
            timing.append({"model": name, "split": split, "train_s": time.perf_counter() - t0,
                           "evaluate_s": 0.0})
    scores = pd.concat(rows, ignore_index=True)
    scores["aridity"] = scores["basin"].map(dict(zip(basins.ids, basins.aridity)))
    results = summarise(scores, basins)
    t0 = time.perf_counter()
    untrained = _untrained(study, out, log)
    if untrained is not None:  # the temporal run's site runs: scoring (split "sites")
        timing.append({"model": study.untrained.model, "split": "sites", "train_s": 0.0,
                       "evaluate_s": time.perf_counter() - t0})
    timing = pd.DataFrame(timing)
    wall = time.perf_counter() - t_start
    _write(out, scores, results, timing, untrained, study, basins, wall, quick,
           machine=_machine())
    return {"scores": scores, "results": results, "timing": timing, "untrained": untrained,
            "wall_s": wall, "basins": basins}


def _untrained(study: Study, out: Path, log):
    u = study.untrained
    if u.model is None:  # an earlier scoring's table and figure are not this one's
        (out / "untrained.csv").unlink(missing_ok=True)
        (out / "figures" / "untrained_variables.png").unlink(missing_ok=True)
        return None
    from .untrained import plot_untrained, site_runs, untrained_table

    runs = site_runs(out / "runs" / "temporal" / u.model, sites=u.sites)
    table = untrained_table(runs)
    ckpt.atomic_write_text(out / "untrained.csv", table.to_csv(index=False, float_format="%.6g"))
    plot_untrained(runs, out / "figures" / "untrained_variables.png")
    log(f"untrained variables of {u.model}: written to {out / 'untrained.csv'}")
    return table


INVOCATION = "invocation.json"
"""What the report of a study's last scoring needs besides its tables: its wall time, whether
it was ``--quick`` and the machine it ran on (``machine``; absent in folders scored before it
was recorded) (``rewrite_report`` reads it)."""


def _machine() -> dict:
    """The machine this process runs on, as the page states it: the CPU cores it may use and
    the machine's (``os.cpu_count``), and JAX's backend with its first device's kind."""
    import jax

    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count(),
            "usable_cpus": len(usable) if usable is not None else os.cpu_count(),
            "jax_backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count()}


def _write(out, scores, results, timing, untrained, study, basins, wall, quick, machine=None):
    from .report import write_outputs

    invocation = {"wall_s": wall, "quick": quick}
    if machine is not None:  # None: not recorded (a folder scored before it was)
        invocation["machine"] = machine
    ckpt.atomic_write_text(Path(out) / INVOCATION, json.dumps(invocation))
    # with the scores, by a scoring only: rewrite_report groups the scores by it (written at
    # the start of every invocation, an interrupted one with other data settings regrouped
    # the last scoring's basins)
    table = pd.DataFrame({"basin": basins.ids, "aridity": basins.aridity, "group": basins.group,
                          "arid_training_share": [b in basins.arid_train for b in basins.ids]})
    ckpt.atomic_write_text(Path(out) / "basins.csv", table.to_csv(index=False))
    # the page shows the seconds timing.csv keeps (3 decimals), so that --report-only, which
    # reads them back, writes the same page (a run of 3.4996 s was "3" here and "4" there)
    timing = timing.round(3)
    write_outputs(out, scores=scores, results=results, timing=timing, untrained=untrained,
                  study=study, basins=basins, wall_s=wall, quick=quick, machine=machine)


def rewrite_report(study: Study, out, *, log=print) -> dict:
    """The tables, figures and page again from what the study last wrote to ``out`` (its
    per-basin scores, timing, basins and untrained variables), without training or scoring:
    after a change to the report or to the study file's ``targets`` or ``report`` sections.
    The medians are recomputed from ``scores.csv``; the page is written where the scoring
    wrote it (into ``report.docs`` only if that scoring was not ``--quick``). The periods,
    budget check, ensemble and targets described on the page are the study file's as it is
    now: rewrite only after changes to its ``targets`` or ``report`` sections."""
    out = Path(out)
    need = ["scores.csv", "timing.csv", "basins.csv", INVOCATION]
    missing = [n for n in need if not (out / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"--report-only: {out} holds no finished study ({', '.join(missing)} missing); run "
            "the study without --report-only first.")
    table = pd.read_csv(out / "basins.csv", dtype={"basin": str})
    basins = Basins(ids=list(table["basin"]), aridity=table["aridity"].to_numpy(float),
                    group=table["group"].to_numpy(str),
                    arid_train=list(table.loc[table["arid_training_share"], "basin"]))
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    differ = sorted(set(scores["basin"]) ^ set(basins.ids))
    if differ:  # written by another scoring than scores.csv (one interrupted between them)
        raise FileNotFoundError(
            f"--report-only: {out / 'basins.csv'} and {out / 'scores.csv'} differ in "
            f"{len(differ)} basins (first {differ[0]}): the basins were written by another "
            "invocation than the scoring; run the study without --report-only to score again.")
    timing = pd.read_csv(out / "timing.csv")
    untrained = None
    if (out / "untrained.csv").is_file():
        try:
            untrained = pd.read_csv(out / "untrained.csv")
        except pd.errors.EmptyDataError:  # no site had its variables
            pass
    invocation = json.loads((out / INVOCATION).read_text())
    results = summarise(scores, basins)
    # the scoring's machine, not this one's: the times on the page were measured there
    _write(out, scores, results, timing, untrained, study, basins, invocation["wall_s"],
           invocation["quick"], machine=invocation.get("machine"))
    log(f"rewritten from {out / 'scores.csv'}: {out / 'results.md'}, {out / 'climate_shift.md'}"
        + ("" if invocation["quick"] or not study.report.docs else f", {study.report.docs}"))
    return {"scores": scores, "results": results, "timing": timing, "untrained": untrained,
            "wall_s": invocation["wall_s"], "basins": basins}
