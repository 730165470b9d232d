"""The climate-shift study: dry-year hold-out, study configuration, and the --quick study end
to end through the command line (marked slow; CI runs it on the quick setting)."""

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from runs import BASINS, hold_lock, hold_lock_attempt, quiet_train, tiny

from hybridland import cli, metrics
from hybridland.column import BUCKET_KINDS
from hybridland.study import climate_shift, report
from hybridland.study.climate_shift import (Basins, Job, _seconds, budget_label, run_config,
                                           study_jobs)
from hybridland.study.config import load_study, seed_label
from hybridland.study.report import VARIANT, label
from hybridland.train import ConfigError, config_from_dict
from hybridland.train import checkpoint as ckpt
from hybridland.train.data import dry_years, load_data
from hybridland.train.evaluate import evaluate_run

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "experiments" / "climate_shift" / "study.yaml"


# ---------------------------------------------------------------------------------------------
# Dry years


def test_dry_years_marks_each_basins_driest_whole_years():
    time = pd.date_range("1999-07-01", "2010-12-31")
    rng = np.random.default_rng(0)
    precip = rng.uniform(1, 3, (3, len(time)))
    precip[0, time.year == 2003] *= 0.1
    precip[1, time.year == 2008] *= 0.2
    precip[2, time.year == 1999] *= 0.01  # partial year: never a candidate
    mask = dry_years(time, precip, 0.1, ("1999-01-01", "2010-12-31"))
    assert mask.shape == precip.shape
    years = [sorted(set(time.year[m])) for m in mask]  # 11 whole years: round(1.1) = 1 each
    assert years[0] == [2003] and years[1] == [2008]
    annual = {y: precip[2, time.year == y].sum() for y in range(2000, 2011)}
    assert years[2] == [min(annual, key=annual.get)]
    # a fifth of the years: the two driest
    two = dry_years(time, precip, 0.2, ("1999-01-01", "2010-12-31"))
    assert [len(set(time.year[m])) for m in two] == [2, 2, 2]
    assert set(time.year[mask[0]]) <= set(time.year[two[0]])


def test_dry_years_needs_a_whole_year():
    time = pd.date_range("2000-03-01", "2000-12-31")
    with pytest.raises(ValueError, match="no whole calendar year"):
        dry_years(time, np.ones((1, len(time))), 0.1, ("2000-01-01", "2000-12-31"))


def _config(hidden: float):
    return config_from_dict({
        "data": {"basins": BASINS, "swap_inverted_temperatures": True,
                 "train_period": ["1990-01-01", "1995-12-31"],
                 "validation_period": ["1996-01-01", "1997-12-31"],
                 "test_period": ["1998-01-01", "1999-12-31"], "warmup_days": 60,
                 "holdout_dry_years": hidden},
        "model": {"kind": "hybrid", "width": 4, "depth": 1},
        "training": {"window_days": 120},
    })


def test_holdout_hides_exactly_the_dry_years_from_training_data():
    full = load_data(_config(0.0))
    hidden = load_data(_config(0.2))
    mask = dry_years(full.time, full.series["precip"], 0.2, ("1990-01-01", "1999-12-31"))
    assert mask.any(axis=1).all()
    assert np.isnan(hidden.obs[mask]).all()
    keep = ~mask
    np.testing.assert_array_equal(hidden.obs[keep], full.obs[keep])
    assert [len(set(full.time.year[m])) for m in mask] == [2, 2, 2]  # 10 years x 0.2
    with pytest.raises(ConfigError, match="holdout_dry_years"):
        _config(1.0)


# ---------------------------------------------------------------------------------------------
# Study configuration


def test_study_file_loads_every_model_config():
    study = load_study(STUDY)
    assert {"physics", "physics_regional", "hybrid", "hybrid_mlp", "hybrid_regional",
            "lstm"} <= set(study.models)
    assert study.models["lstm"].model.kind == "lstm"
    assert study.models["hybrid"].model.kind == "sequence_hybrid"  # the regional one
    assert study.models["hybrid"].model.parameter_network
    assert study.models["hybrid_regional"].model.parameter_network


def test_plateau_study_differs_from_the_study_only_in_the_schedule_of_hybrid_and_lstm():
    """experiments/climate_shift/plateau/study.yaml (the study being retrained with the plateau
    schedule) resolves every other model to the study's own configuration, so the runs it shares
    with the study are reused, not trained again; it writes no page of the repository."""
    from hybridland.study.climate_shift import _resolved

    study, plateau = load_study(STUDY), load_study(STUDY.parent / "plateau" / "study.yaml")
    assert set(plateau.models) == set(study.models)
    for name, config in study.models.items():
        same = _resolved(plateau.models[name]) == _resolved(config)
        assert same == (name not in ("hybrid", "lstm")), name
    for name in ("hybrid", "lstm"):
        mine, theirs = plateau.models[name], study.models[name]
        assert mine.training.schedule == "plateau" and theirs.training.schedule != "plateau"
        assert dataclasses.replace(mine, training=theirs.training) == theirs, name
    for section in ("data", "budget_check", "ensemble", "fine_tuning", "extreme_weighting",
                    "targets", "untrained", "quick", "baselines"):
        assert getattr(plateau, section) == getattr(study, section), section
    assert plateau.report.docs != study.report.docs
    assert plateau.report.archive != study.report.archive

@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("data:\n  humid: [0, 2]\n  arid: [1.5, 100]\n", "data.arid"),
        ("extreme_weighting:\n  models: [nothing]\n", "extreme_weighting.models"),
        ("training:\n  epoch: 3\n", "training.epoch"),
        ("budget_check:\n  models: [nothing]\n", "budget_check.models"),
        ("budget_check:\n  factor: 1\n", "budget_check.factor"),
        ("budget_check:\n  split: dry_extremes\n", "budget_check.split"),
        ("baselines: [oracle]\n", "baselines"),
        ("ensemble:\n  models: [nothing]\n  seeds: [1]\n", "ensemble.models"),
        ("ensemble:\n  models: [hybrid]\n", "ensemble.seeds"),
        ("ensemble:\n  models: [hybrid]\n  seeds: [1, 1]\n", "ensemble.seeds"),
        ("ensemble:\n  models: [hybrid]\n  seeds: [0, 1]\n", "ensemble.seeds' holds 0"),
        ("ensemble:\n  split: dry_extremes\n", "ensemble.split"),
        ("ensemble:\n  models: [hybrid]\n  seeds: ['1']\n", "ensemble.seeds"),
        ("targets:\n  model: hybrid\n", "targets.peer"),
        ("targets:\n  model: hybrid\n  peer: hybrid\n", "targets.peer"),
        ("targets:\n  model: hybrid\n  peer: nothing\n", "'targets.peer' names"),
        ("targets:\n  model: hybrid\n  peer: lstm\n  et_correlation: 2\n",
         "targets.et_correlation"),
        ("targets:\n  model: hybrid\n  peer: lstm\n  closure_mm: 0\n", "targets.closure_mm"),
        ("targets:\n  model: hybrid\n  peer: lstm\n  study_minutes: 0\n",
         "targets.study_minutes"),
        ("targets:\n  model: hybrid\n  peer: lstm\n  et_site: nowhere\n",
         "targets.et_site"),
        # found only after every run was scored, and nothing was written
        ("untrained:\n  model: hybrid\n  sites: [US-AR1, US-AR2]\n", "untrained.sites"),
        ("untrained:\n  model: hybrid\n  sites: []\n", "untrained.sites"),
        ("untrained:\n  model: lstm\n  sites: [US-AR1]\n", "'untrained.model' is 'lstm'"),
    ],
)
def test_study_errors_name_the_key(tmp_path, change, message):
    text = STUDY.read_text()
    key = change.split(":")[0]
    lines, skip = [], False
    for line in text.splitlines():  # drop the section being replaced
        if line.startswith(f"{key}:"):
            skip = not line.strip().endswith("]")
            continue
        if skip and line.startswith("  "):
            continue
        skip = False
        lines.append(line)
    if key == "data":
        change += ('  train_period: ["1960-01-01", "1989-12-31"]\n'
                   '  validation_period: ["1990-01-01", "1995-12-31"]\n'
                   '  test_period: ["1996-01-01", "2003-12-31"]\n')
    # the experiments folder beside it: the model files' bases are relative (../mopex/)
    for config in STUDY.parents[1].glob("*/*.yaml"):
        (tmp_path / config.parent.name).mkdir(exist_ok=True)
        (tmp_path / config.parent.name / config.name).write_text(config.read_text())
    path = tmp_path / STUDY.parent.name / "study.yaml"
    path.write_text("\n".join(lines) + "\n" + change)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_study(path)


# ---------------------------------------------------------------------------------------------
# The quick study, end to end


QUICK_MODELS = ("physics", "hybrid", "lstm")
QUICK_BASELINES = ("climatology", "regression_memory")


def _reduced_study(path: Path) -> Path:
    """``study.yaml`` with three of its models (the process-based bucket, the sequence hybrid,
    the LSTM: one of each family) and two baselines, written to ``path``: every step of the
    study runs, in half the time of the whole ladder."""
    raw = yaml.safe_load(STUDY.read_text())
    raw["models"] = {m: str(STUDY.parent / raw["models"][m]) for m in QUICK_MODELS}
    raw["baselines"] = list(QUICK_BASELINES)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    out = work / "out"
    reduced = _reduced_study(work / "study.yaml")
    full, study = load_study(STUDY), load_study(reduced)
    assert {m: full.models[m] for m in QUICK_MODELS} == study.models
    assert set(QUICK_BASELINES) < set(full.baselines)
    here = os.getcwd()
    os.chdir(work)  # the report's docs/ paths are relative: a quick run must not write them
    try:
        code = cli.main(["study", "climate-shift", "--config", str(reduced), "--out", str(out),
                         "--quick", "--quiet"])
    finally:
        os.chdir(here)
    assert code == 0
    return work, out, study


@pytest.mark.slow
def test_quick_study_writes_every_model_and_split(quick_study):
    work, out, study = quick_study
    results = pd.read_csv(out / "results.csv")
    check = study.budget_check
    models = set(study.models) | set(study.baselines) | {
        f"{m}_extreme" for m in study.extreme_weighting.models} | {
        f"{m}_finetuned" for m in study.fine_tuning.models} | {
        budget_label(m, check.factor) for m in check.models} | {
        seed_label(m, seed) for m in study.ensemble.models for seed in study.ensemble.seeds} | {
        f"{m}_ensemble" for m in study.ensemble.models}
    assert set(results["model"]) == models
    for model in set(study.models) | set(study.baselines):
        assert set(results.loc[results["model"] == model, "split"]) == {
            "temporal", "humid_to_arid", "diverse", "dry_extremes"}
    for name in ("scores.csv", "results.md", "climate_shift.md", "timing.csv", "untrained.csv",
                 "figures/skill_vs_aridity.png", "figures/skill_drop.png", "figures/budyko.png",
                 "figures/untrained_variables.png"):
        assert (out / name).is_file(), name
    assert not (work / "docs").exists()  # quick: the page stays in OUT
    page = (out / "climate_shift.md").read_text()
    assert "degrades least" in page and "Quick setting" in page
    assert "## Targets" in page and "| own run |" in page and (
        "| mean runoff of the trainings |" in page)
    assert "`--report-only`" in page and (
        f"--archive {study.report.archive} --out runs/climate-shift" in page)


def test_study_trains_every_model_to_its_own_budget():
    # the study imposes no budget: each model keeps its configuration's bound and patience
    study = load_study(STUDY)
    assert all(v is None for v in dataclasses.asdict(study.training).values())
    for name, split in (("hybrid", "humid_to_arid"), ("lstm", "temporal")):
        config = run_config(study, Job(name, split), _FakeBasins(), quick=False)
        own = study.models[name].training
        assert (config.training.epochs, config.training.patience) == (own.epochs, own.patience)
        assert config.training.patience is not None  # ended by early stopping


def test_budget_check_multiplies_epochs_and_patience():
    study = load_study(STUDY)
    assert study.budget_check.models == ("hybrid", "lstm") and study.budget_check.factor == 2
    own = run_config(study, Job("hybrid", "humid_to_arid"), _FakeBasins(), quick=False)
    more = run_config(study, Job("hybrid", "humid_to_arid", budget_factor=2.0), _FakeBasins(),
                      quick=False)
    assert more.training.epochs == 2 * own.training.epochs
    assert more.training.patience == 2 * own.training.patience
    assert more.run.name != own.run.name
    # nothing else differs: the same model, data and optimiser settings
    rest = {k: v for k, v in dataclasses.asdict(more.training).items()
            if k not in ("epochs", "patience")}
    assert rest == {k: v for k, v in dataclasses.asdict(own.training).items()
                    if k not in ("epochs", "patience")}
    assert more.model == own.model and more.data == own.data


def test_every_study_run_has_its_own_label_and_run_name():
    study = load_study(STUDY)
    jobs = study_jobs(study)
    assert jobs[0].split == "humid_to_arid"  # the central question first
    places = [(j.split, j.label) for j in jobs]
    assert len(set(places)) == len(places)
    names = [j.run_name for j in jobs]
    assert len(set(names)) == len(names)
    # variants keep their model's name and say which variant they are
    tuned = Job("hybrid", "diverse", fine_tuned=True)
    assert tuned.label == "hybrid_finetuned" and tuned.run_name == "diverse-hybrid-finetuned"
    wet = Job("lstm", "temporal", extreme_weight=1.0)
    assert wet.label == "lstm_extreme" and wet.run_name == "temporal-lstm-extreme"
    more = Job("hybrid", "humid_to_arid", budget_factor=2.0)
    assert more.label == budget_label("hybrid", 2.0) and more.run_name.endswith("-budget-x2")
    other = Job("lstm", "humid_to_arid", seed=2)
    assert other.label == "lstm_seed2" and other.run_name == "humid_to_arid-lstm-seed2"
    assert run_config(study, other, _FakeBasins(), quick=False).run.seed == 2
    assert {(j.model, j.seed) for j in jobs if j.seed is not None} == {
        (m, s) for m in study.ensemble.models for s in study.ensemble.seeds}
    assert VARIANT and all(
        pd.Series([j.label]).str.contains(VARIANT).item() == (j.label != j.model) for j in jobs)
    with pytest.raises(ValueError, match="at most one variant"):
        Job("hybrid", "temporal", extreme_weight=1.0, budget_factor=2.0)
    with pytest.raises(ValueError, match="at most one variant"):
        Job("hybrid", "temporal", seed=1, budget_factor=2.0)
    with pytest.raises(ValueError, match="needs init_from"):
        run_config(study, tuned, _FakeBasins(), quick=False)


def test_verdict_leaves_out_variants_of_ladder_models():
    from hybridland.study.report import label, verdict

    def row(model, nse_in, nse_shifted):
        return {"model": model, "split": "humid_to_arid", "nse_in": nse_in,
                "nse_shifted": nse_shifted, "nse_drop": nse_in - nse_shifted}

    results = pd.DataFrame([row("hybrid", 0.8, 0.2), row("lstm", 0.8, 0.0),
                            row("hybrid_budget_x2", 0.8, 0.7), row("lstm_extreme", 0.8, 0.75),
                            row("lstm_seed1", 0.8, 0.79), row("lstm_ensemble", 0.8, 0.78)])
    text = verdict(results)
    assert "x budget" not in text and "extreme" not in text
    assert "seed" not in text and "mean of its trainings" not in text
    assert text.startswith(f"Under the humid → arid shift, **{label('hybrid')}** degrades")


def _h2a(model, nse_in, nse_shifted, kge_shifted, split="humid_to_arid"):
    return {"model": model, "split": split, "nse_in": nse_in, "nse_shifted": nse_shifted,
            "nse_drop": nse_in - nse_shifted, "kge_in": nse_in, "kge_shifted": kge_shifted}


def _score(model, split, residual, basin="b1"):
    return {"model": model, "split": split, "test": "test", "basin": basin,
            "max_abs_cumulative_residual_mm": residual}


def test_targets_section_checks_each_pair_of_trainings():
    from hybridland.study.report import target_pairs, targets_section

    study = load_study(STUDY)
    assert (study.targets.model, study.targets.peer) == ("hybrid", "lstm")
    assert [p[0] for p in target_pairs(study)] == [
        "own run", "seed 1", "seed 2", "mean runoff of the trainings", "2x budget"]
    # seeds and budgets trained on another split are no humid -> arid pairs
    elsewhere = dataclasses.replace(
        study, ensemble=dataclasses.replace(study.ensemble, split="temporal"),
        budget_check=dataclasses.replace(study.budget_check, split="diverse"))
    assert [p[0] for p in target_pairs(elsewhere)] == ["own run"]
    results = pd.DataFrame([
        _h2a("hybrid", 0.80, 0.20, 0.10), _h2a("lstm", 0.82, 0.10, 0.05),
        # seed 1: every humid -> arid target fails
        _h2a("hybrid_seed1", 0.70, -0.50, -0.20), _h2a("lstm_seed1", 0.80, 0.30, 0.40),
        # seed 2: the peer's arid scores are missing: not measured, neither met nor failed
        _h2a("hybrid_seed2", 0.80, 0.20, 0.10), _h2a("lstm_seed2", 0.80, np.nan, np.nan),
        _h2a("hybrid_ensemble", 0.81, 0.30, 0.20), _h2a("lstm_ensemble", 0.82, 0.0, -1.0),
        # no larger-budget runs
        _h2a("hybrid", 0.8, 0.1, 0.09, split="diverse"), _h2a("lstm", 0.8, 0.1, 0.10,
                                                             split="diverse"),
    ])
    scores = pd.DataFrame([_score("hybrid", "humid_to_arid", 2e-4),
                           _score("hybrid", "humid_to_arid", 1e-4, basin="b2"),
                           _score("hybrid_seed1", "humid_to_arid", 1e-4),  # a variant: a bucket
                           _score("lstm", "humid_to_arid", np.nan),  # no water balance
                           _score("physics", "temporal", 1e-5),
                           _score("physics", "temporal", np.nan, basin="b2"),  # not closed
                           _score("physics", "diverse", 0.5)])  # beyond closure_mm
    timing = pd.DataFrame({"model": ["hybrid", "lstm_seed1", "physics"],
                           "train_s": [1800.0, 1900.0, np.nan], "evaluate_s": [10.0, 20.0, 0]})
    untrained = pd.DataFrame([{"site": "US-AR1", "variable": "evapotranspiration",
                               "correlation": 0.83, "anomaly_correlation": 0.71},
                              {"site": "US-AR1", "variable": "soil_water", "correlation": 0.1,
                               "anomaly_correlation": 0.0}])
    text = "\n".join(targets_section(results, scores, timing, untrained, study))
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines()
            if line.startswith("| ") and " | " in line}
    assert rows["own run"].count("not met") == 0 and rows["own run"].count("met") == 4
    assert rows["seed 1"].count("**not met**") == 4
    # KGE >= 0 and the humid NSE are measured; above the peer and the drop are not
    assert rows["seed 2"].count("not measured") == 2 and "not met" not in rows["seed 2"]
    assert "0.200 / -1.000" in rows["mean runoff of the trainings"]
    assert "not measured" in rows["2x budget"]
    assert "0.090 against 0.100: **not met**" in text
    assert "0.830 (anomaly correlation 0.710): met" in text
    # a run whose time is unknown: the total is not measured
    assert "not measured" in [line for line in text.splitlines()
                              if line.startswith("- The whole study")][0]
    timing["train_s"] = timing["train_s"].fillna(0.0)  # 3 700 s of training, 30 s of scoring
    text = "\n".join(targets_section(results, scores, timing, untrained, study))
    assert "62.2 min (" in text and "): **not met**" in text
    # where the time went: the model's runs and the peer's, their variants included
    assert f"the runs of {label('hybrid')}, its variants included, 30.2 min" in text
    assert f"the runs of {label('lstm')}, its variants included, 32.0 min" in text
    # a physics run has a basin without a residual, another one too large a residual
    closure = [line for line in text.splitlines() if line.startswith("- Closure")][0]
    assert "2 of 4 runs" in closure and closure.endswith("**not met**.")
    closed = scores[scores["max_abs_cumulative_residual_mm"].fillna(1.0) < 0.01]
    closure = [line for line in targets_section(results, closed, timing, untrained, study)
               if line.startswith("- Closure")][0]
    assert "3 of 3 runs" in closure and closure.endswith(": met.")
    # the ET site missing from the table: not measured
    text = "\n".join(targets_section(results, scores, timing, untrained.iloc[1:], study))
    assert "seasonal cycle included) ≥ 0.7: not measured" in text
    # a study without targets has no section
    none = dataclasses.replace(study, targets=dataclasses.replace(study.targets, model=None,
                                                                  peer=None))
    assert targets_section(results, scores, timing, untrained, none) == []


def test_a_median_of_minus_inf_is_a_failed_score_not_a_missing_one():
    """Where most basins of a group score metrics.WORST_WHEN_UNDEFINED (a simulation that is
    not finite or constant), the median is -inf: the page printed 'n/a', its targets said 'not
    measured' and the verdict named the model that failed in distribution as degrading least."""
    from hybridland.study.report import budget_table, label, targets_section, verdict

    study = load_study(STUDY)
    inf = -np.inf
    results = pd.DataFrame([
        _h2a("hybrid", 0.80, inf, inf), _h2a("lstm", 0.82, 0.10, 0.05),
        _h2a("physics", inf, 0.0, 0.0), _h2a("hybrid_regional", 0.5, 0.3, 0.2),
        _h2a("hybrid_budget_x2", 0.80, 0.20, 0.10), _h2a("lstm_budget_x2", 0.82, 0.1, 0.05),
    ])
    scores = pd.DataFrame([_score("hybrid", "humid_to_arid", 1e-4)])
    timing = pd.DataFrame({"model": ["hybrid"], "train_s": [60.0], "evaluate_s": [1.0]})
    untrained = pd.DataFrame(columns=["site", "variable", "correlation", "anomaly_correlation"])
    text = "\n".join(targets_section(results, scores, timing, untrained, study))
    own = next(line for line in text.splitlines() if line.startswith("| own run"))
    assert "-inf / 0.050" in own
    # arid KGE >= 0, above the peer's and the smaller drop all fail; the humid NSE is met
    assert own.count("**not met**") == 3 and "not measured" not in own
    assert "n/a" not in own
    least = verdict(results)
    assert least.startswith(f"Under the humid → arid shift, **{label('hybrid_regional')}**")
    # the budget's change from -inf to a score is a change, and not small
    hybrid = next(line for line in budget_table(results, study)
                  if line.startswith(f"| {label('hybrid')} |"))
    assert "-inf → 0.100" in hybrid and "| inf | **no** |" in hybrid


@pytest.mark.parametrize("share", [0.01, 0.2, 0.5, 0.8, 0.99])
@pytest.mark.parametrize("n", [2, 3, 4, 38])
def test_diverse_split_trains_on_some_arid_basins_and_leaves_some_unseen(share, n):
    # a share that rounded to none of 2-4 arid basins made the diverse split humid -> arid
    # again (and its fine-tuning fail late); one that rounded to all left none to test on
    from hybridland.study.climate_shift import arid_training_basins

    arid = [f"b{i:02d}" for i in range(n)]
    train = arid_training_basins(arid, share, seed=0)
    assert 1 <= len(train) <= n - 1 and set(train) <= set(arid)
    assert train == sorted(set(train))
    if 1 <= round(share * n) <= n - 1:  # the share as given
        assert len(train) == round(share * n)
    assert arid_training_basins(arid, share, seed=0) == train  # the seed decides


def test_extreme_table_names_the_days_its_in_columns_score():
    # the dry_extremes rows' "in" scores are the test years outside the dry years; the table
    # called them the test period, whose NSE (the temporal table's) differs
    from hybridland.study.report import _extreme_table

    rows = [dict(_h2a(m, 0.7, 0.2, 0.1, split="dry_extremes"), log_nse_in=0.6,
                 log_nse_shifted=0.1, flv_shifted=-30.0) for m in ("lstm", "lstm_extreme")]
    rows.append(dict(_h2a("lstm", 0.75, 0.0, 0.0, split="temporal")))
    table = _extreme_table(pd.DataFrame(rows))
    head = table.splitlines()[0]
    assert "NSE test years outside the dry years" in head and "test period" not in head
    assert table.count("| 0.70 |") == 2 and "0.75" not in table


def test_budget_check_compares_the_change_with_the_spread_of_the_seeds():
    from hybridland.study.report import budget_table

    study = load_study(STUDY)
    assert study.budget_check.split == study.ensemble.split == "humid_to_arid"
    results = pd.DataFrame([
        # the hybrid's budget moves its arid KGE by 0.04, its seeds by up to 0.10; every change
        # lies well inside the seeds' range
        _h2a("hybrid", 0.80, 0.10, 0.06), _h2a("hybrid_budget_x2", 0.805, 0.11, 0.02),
        _h2a("hybrid_seed1", 0.82, 0.15, 0.03), _h2a("hybrid_seed2", 0.79, 0.18, -0.04),
        # the LSTM's budget moves it by 10, far beyond its seeds
        _h2a("lstm", 0.82, -0.2, -0.45), _h2a("lstm_budget_x2", 0.80, -11.0, -6.5),
        _h2a("lstm_seed1", 0.79, 0.0, -0.37), _h2a("lstm_seed2", 0.82, 0.06, -0.18),
    ])
    rows = {line.split(" | ")[0].removeprefix("| "): line
            for line in budget_table(results, study) if line.startswith("| ") and "→" in line}
    from hybridland.study.report import label
    assert rows[label("hybrid")].endswith("| 0.040 | **no** | yes (3 trainings) |")
    assert rows[label("lstm")].endswith("| 10.800 | **no** | **no** (3 trainings) |")

    def hybrid_row(frame):
        return [line for line in budget_table(frame, study)
                if line.startswith(f"| {label('hybrid')} |")][0]

    # a seed's median missing (NaN) or its run missing: the spread cannot be measured
    nan_seed = results.copy()
    nan_seed.loc[nan_seed["model"] == "hybrid_seed2", "kge_shifted"] = np.nan
    assert hybrid_row(nan_seed).endswith("| **no** | not measured |")
    missing = results[results["model"] != "hybrid_seed2"]
    assert hybrid_row(missing).endswith("| n/a (trainings missing) |")
    # the doubled budget's median missing: neither the change nor "unmoved" is measured
    nan_budget = results.copy()
    nan_budget.loc[nan_budget["model"] == "hybrid_budget_x2", "nse_in"] = np.nan
    assert hybrid_row(nan_budget).endswith("| n/a | not measured | not measured |")
    # without the seeds: nothing to compare with
    alone = results[~results["model"].str.contains("_seed")]
    no_seeds = dataclasses.replace(study, ensemble=dataclasses.replace(
        study.ensemble, models=(), seeds=()))
    rows = [line for line in budget_table(alone, no_seeds)
            if line.startswith("| ") and "→" in line]
    assert len(rows) == 2 and all(line.endswith("| n/a (one training) |") for line in rows)


class _FakeBasins:
    arid_train = ["a"]

    def training(self, split):
        return ["a", "b"]


@pytest.mark.slow
def test_quick_study_states_the_epochs_of_every_run(quick_study):
    _, out, study = quick_study
    timing = pd.read_csv(out / "timing.csv")
    trained = timing.dropna(subset=["epochs_completed"])
    runs = sorted((out / "runs").glob("*/*/run.json"))
    assert len(trained) == len(runs) > 0
    page = (out / "climate_shift.md").read_text()
    for r in trained.itertuples():
        run = json.loads((out / "runs" / r.split / r.model / "run.json").read_text())
        assert (r.epochs_completed, r.best_epoch) == (run["epochs_completed"], run["best_epoch"])
        factor = study.budget_check.factor if "_budget_x" in r.model else 1
        assert r.epochs_bound == math.ceil(factor * study.quick.epochs)
        assert f"| {r.split} | {run['epochs_completed']} | {run['best_epoch'] + 1} |" in page


@pytest.mark.slow
def test_quick_study_reports_the_budget_check(quick_study):
    _, out, study = quick_study
    check = study.budget_check
    results = pd.read_csv(out / "results.csv")
    part = results[results["split"] == check.split].set_index("model")
    page = (out / "climate_shift.md").read_text()
    assert "## Budget check" in page
    for name in check.models:
        more = budget_label(name, check.factor)
        assert more in part.index and name in part.index
        own, doubled = part.at[name, "nse_shifted"], part.at[more, "nse_shifted"]
        assert f"{own:.3f} → {doubled:.3f}" in page


@pytest.mark.slow
def test_quick_study_scores_the_mean_of_each_models_trainings(quick_study):
    _, out, study = quick_study
    ens = study.ensemble
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    page = (out / "climate_shift.md").read_text()
    assert "## Trainings and their mean" in page
    for name in ens.models:
        members = climate_shift.ensemble_members(study, out, name)
        split = out / "runs" / ens.split
        assert members == [split / name] + [split / seed_label(name, s) for s in ens.seeds]
        evs = [evaluate_run(d, period=study.data.test_period, progress=False,
                            basins=list(scores["basin"].unique())) for d in members]
        assert not np.allclose(evs[0].runoff, evs[1].runoff)  # the seeds train other models
        mean = np.mean([ev.runoff for ev in evs], axis=0)
        mine = scores[(scores["model"] == f"{name}_ensemble") & (scores["test"] == "test")]
        assert mine["split"].eq(ens.split).all()
        expected = dict(zip(evs[0].data.basins, np.asarray(metrics.nse(evs[0].observed, mean))))
        np.testing.assert_allclose(mine["nse"], mine["basin"].map(expected), rtol=1e-4,
                                   atol=1e-5)
        assert f"{report.label(name)}, mean of the {len(members)}" in page


@pytest.mark.slow
def test_quick_study_reports_closure_of_every_bucket_run(quick_study):
    _, out, study = quick_study
    results = pd.read_csv(out / "results.csv")
    kinds = {m: c.model.kind for m, c in study.models.items()}
    base = results["model"].str.replace(VARIANT, "", regex=True)
    bucket = base.map(kinds).isin(BUCKET_KINDS)
    # the bucket models (physics, the sequence hybrid) in every split, and the hybrid's variants
    assert {"physics", "hybrid", "hybrid_finetuned", budget_label("hybrid", 2.0)} <= set(
        results.loc[bucket, "model"])
    assert bucket.sum() >= 2 * 4 + 1
    closed = results.loc[bucket, "max_abs_cumulative_residual_mm"]
    assert closed.notna().all() and (closed < 1e-3).all()
    others = results.loc[~bucket, "max_abs_cumulative_residual_mm"]
    assert others.isna().all()  # the LSTM and the baselines have no water balance: n/a


@pytest.mark.slow
def test_quick_study_groups_and_splits(quick_study):
    _, out, study = quick_study
    basins = pd.read_csv(out / "basins.csv", dtype={"basin": str})
    humid = basins[basins["group"] == "humid"]
    arid = basins[basins["group"] == "arid"]
    assert (humid["aridity"] < 1).all() and (arid["aridity"] >= 1.5).all()
    assert len(humid) == study.quick.basins_per_group
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    # the humid -> arid runs never saw an arid basin; the diverse runs saw the training share
    trained = pd.read_csv(out / "runs" / "humid_to_arid" / "hybrid" / "basins.csv",
                          dtype={"basin": str})
    assert set(trained["basin"]) == set(humid["basin"])
    diverse = pd.read_csv(out / "runs" / "diverse" / "hybrid" / "basins.csv",
                          dtype={"basin": str})
    share = basins.loc[basins["arid_training_share"], "basin"]
    assert set(diverse["basin"]) == set(humid["basin"]) | set(share)
    tuned = pd.read_csv(out / "runs" / "diverse" / "hybrid_finetuned" / "basins.csv",
                        dtype={"basin": str})
    assert set(tuned["basin"]) == set(share)  # fine-tuned on the arid training share only
    results = pd.read_csv(out / "results.csv").set_index(["model", "split"])
    # n_shifted counts the shifted basins with a score (observed flow in the test period)
    test = scores[(scores["model"] == "hybrid") & (scores["test"] == "test")]

    def scored(split, which):
        part = test[(test["split"] == split) & test["basin"].isin(which)]
        return int(part["nse"].notna().sum())

    unseen = set(arid["basin"]) - set(share)
    assert results.loc[("hybrid", "diverse"), "n_shifted"] == scored("diverse", unseen)
    assert results.loc[("hybrid", "humid_to_arid"), "n_shifted"] == scored(
        "humid_to_arid", set(arid["basin"]))
    assert 0 < scored("diverse", unseen) <= len(unseen)
    # dry-year scores cover only the hidden years
    dry = scores[(scores["model"] == "hybrid") & (scores["test"] == "dry_years")]
    assert len(dry) == len(basins) and (dry["n_valid"] <= 5 * 366).all()


@pytest.mark.slow
def test_quick_study_runs_are_evaluable_and_scores_recompute(quick_study):
    work, out, _ = quick_study
    run = out / "runs" / "humid_to_arid" / "hybrid"
    csv = work / "metrics.csv"
    assert cli.main(["evaluate", "--run-dir", str(run), "--out", str(csv)]) == 0
    ev = evaluate_run(run, basins=list(pd.read_csv(out / "basins.csv", dtype={"basin": str})
                                       ["basin"]), period=("1996-01-01", "2003-12-31"))
    nse = np.asarray(metrics.nse(ev.observed, ev.simulation.fluxes.runoff))
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    mine = scores[(scores["model"] == "hybrid") & (scores["split"] == "humid_to_arid")
                  & (scores["test"] == "test")].set_index("basin").loc[list(ev.data.basins)]
    np.testing.assert_allclose(mine["nse"], nse, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_quick_study_reports_budyko_consistency(quick_study):
    """The evaporative index 1 - Q/P, simulated against observed: its median absolute error per
    model and split, recomputed here from the per-basin scores."""
    from hybridland.study.climate_shift import evaporative_index_error

    _, out, _ = quick_study
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    results = pd.read_csv(out / "results.csv").set_index(["model", "split"])
    part = scores[(scores["model"] == "lstm") & (scores["split"] == "temporal")
                  & (scores["test"] == "test")]
    ei_obs = 1 - part["mean_observed_mm_day"] / part["mean_precip_mm_day"]
    ei_sim = 1 - part["mean_simulated_mm_day"] / part["mean_precip_mm_day"]
    np.testing.assert_allclose(evaporative_index_error(part), ei_sim - ei_obs, rtol=1e-9)
    expected = np.nanmedian(np.abs(ei_sim - ei_obs))
    # both CSV files hold 6 significant digits (float_format "%.6g"), so agree to about 1e-6
    assert results.loc[("lstm", "temporal"), "budyko_error_in"] == pytest.approx(expected,
                                                                                  abs=1e-5)
    assert np.isfinite(results.loc[("hybrid", "humid_to_arid"), "budyko_error_shifted"])
    assert "Budyko error" in (out / "results.md").read_text()


def test_resumed_run_counts_the_epochs_of_earlier_invocations(tmp_path, monkeypatch):
    # a study continued after an interruption resumes the run: its training time is that of
    # all its epochs, not only of those trained by the last invocation
    from hybridland.study import climate_shift

    def resumed(config, run_dir, **_):  # two epochs of 100 s each, trained by an earlier call
        run_dir.mkdir(parents=True)
        pd.DataFrame({"epoch": [0, 1], "seconds": [100.0, 100.0]}).to_csv(
            run_dir / "metrics.csv", index=False)

    monkeypatch.setattr(climate_shift, "train", resumed)
    monkeypatch.setattr(climate_shift, "release_compiled", lambda **_: None)
    config = run_config(load_study(STUDY), Job("physics", "temporal"), _FakeBasins(), quick=True)
    seconds = climate_shift._train(config, tmp_path / "run", print, progress=False, report=False)
    assert seconds >= 200.0
    saved = json.loads((tmp_path / "run" / "study_seconds.json").read_text())["seconds"]
    assert saved == seconds


def test_the_study_waits_for_a_run_another_process_is_training(tmp_path, monkeypatch):
    # two invocations on one OUT (the study and a --train-only one): the study does not train
    # the run a second time at once, it waits, then trains what is left (here: all of it)
    monkeypatch.setattr(climate_shift, "_pause", lambda: time.sleep(0.1))
    run_dir, said = tmp_path / "run", []
    holder = hold_lock(run_dir, 2.0)
    climate_shift._train(tiny("physics", epochs=1), run_dir, said.append, progress=False,
                         report=False)
    assert holder.wait() == 0  # it held the lock to its end
    assert said[0] == f"{run_dir}: waiting for process {holder.pid}, which is training it"
    assert said[-1].startswith(f"{run_dir}: trained in") and (run_dir / "run.json").is_file()


def test_the_study_reuses_a_run_finished_while_it_waited(tmp_path, monkeypatch):
    run_dir, elsewhere, said = tmp_path / "run", tmp_path / "elsewhere", []
    config = tiny("physics", epochs=1)
    quiet_train(config, elsewhere)
    holder = hold_lock(run_dir, 120)

    def finished_meanwhile():  # the other process finishes the run, then ends
        shutil.copytree(elsewhere, run_dir)
        holder.kill()
        holder.wait()

    monkeypatch.setattr(climate_shift, "_pause", finished_meanwhile)
    try:
        climate_shift._train(config, run_dir, said.append, progress=False, report=False)
    finally:
        holder.kill()
        holder.wait()
    assert said == [f"{run_dir}: waiting for process {holder.pid}, which is training it",
                    f"{run_dir}: finished run reused"]


def test_a_waiting_study_takes_the_seconds_the_other_invocation_records(tmp_path,
                                                                         monkeypatch):
    # the other invocation has finished training (run.json written) but still holds the run
    # while it records its training time: the study waits for that record, it does not take
    # the run for finished and time it from its metrics meanwhile
    run_dir, elsewhere, said = tmp_path / "run", tmp_path / "elsewhere", []
    config = tiny("physics", epochs=1)
    quiet_train(config, elsewhere)
    shutil.copytree(elsewhere, run_dir)
    holder = hold_lock(run_dir, 120)

    def recorded_meanwhile():
        (run_dir / "study_seconds.json").write_text(json.dumps({"seconds": 123.0}))
        holder.kill()
        holder.wait()

    monkeypatch.setattr(climate_shift, "_pause", recorded_meanwhile)
    try:
        seconds = climate_shift._train(config, run_dir, said.append, progress=False,
                                       report=False)
    finally:
        holder.kill()
        holder.wait()
    assert seconds == 123.0
    assert said[-1] == f"{run_dir}: finished run reused"


def test_a_held_run_can_be_held_again_by_its_holder(tmp_path):
    run_dir = tmp_path / "run"
    with ckpt.hold_run(run_dir) as lock:
        with ckpt.hold_run(run_dir):  # nested: no RunLockedError from itself
            assert lock.is_file()
        assert lock.is_file()  # still held by the outer block
        assert hold_lock_attempt(run_dir) == 3  # another process cannot take it
    assert not lock.exists()
    assert hold_lock_attempt(run_dir) == 0


@pytest.mark.slow
def test_report_only_rewrites_the_page_from_the_scores(quick_study, tmp_path, capsys):
    work, out, _ = quick_study
    copy = tmp_path / "out"
    copy.mkdir()
    for name in ("scores.csv", "timing.csv", "basins.csv", "untrained.csv",
                 climate_shift.INVOCATION, "figures/untrained_variables.png"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copy(out / name, copy / name)
    reduced = work / "study.yaml"

    def report_only(folder, *more):
        here = os.getcwd()
        os.chdir(work)  # as the scoring ran: docs/ paths are relative
        try:
            return cli.main(["study", "climate-shift", "--config", str(reduced), "--out",
                             str(folder), "--report-only", *more])
        finally:
            os.chdir(here)

    assert report_only(copy) == 0
    assert "degrades least" in capsys.readouterr().out
    # the medians recomputed from the scores, and the same page: a quick one, not in docs/
    pd.testing.assert_frame_equal(pd.read_csv(copy / "results.csv"),
                                  pd.read_csv(out / "results.csv"), rtol=1e-5)
    assert (copy / "climate_shift.md").read_text() == (out / "climate_shift.md").read_text()
    assert (copy / "figures" / "budyko.png").is_file()
    assert not (work / "docs").exists()
    # without the site figure (drawn only by the scoring) the page does not link it
    (copy / "figures" / "untrained_variables.png").unlink()
    assert report_only(copy) == 0
    page = (copy / "climate_shift.md").read_text()
    assert "## Untrained variables" in page and "untrained_variables.png" not in page
    capsys.readouterr()
    # nothing to rewrite from, basins of another invocation, --quick: clear errors, exit 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_only(empty) == 2
    err = capsys.readouterr().err
    assert "scores.csv" in err and "without --report-only first" in err
    table = pd.read_csv(copy / "basins.csv", dtype={"basin": str})
    scored = min(pd.read_csv(copy / "scores.csv", dtype={"basin": str})["basin"])
    table[table["basin"] != scored].to_csv(copy / "basins.csv", index=False)
    assert report_only(copy) == 2
    assert f"differ in 1 basins (first {scored})" in capsys.readouterr().err
    extra = pd.concat([table, table.iloc[:1].assign(basin="99999999")])  # one basin too many
    extra.to_csv(copy / "basins.csv", index=False)
    assert report_only(copy) == 2
    assert "differ in 1 basins (first 99999999)" in capsys.readouterr().err
    assert report_only(copy, "--quick") == 2
    assert "leave out --quick" in capsys.readouterr().err
    assert report_only(copy, "--train-only", "temporal/hybrid") == 2  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_invocation_that_does_not_score_leaves_the_scorings_basins(tmp_path, monkeypatch,
                                                                     mopex_file):
    # basins.csv was written at the start of every invocation: a --train-only one (or one
    # interrupted before scoring) with another data.seed regrouped the last scoring's basins,
    # which --report-only then summarised with the wrong unseen arid basins
    study = load_study(STUDY)
    study = dataclasses.replace(study, data=dataclasses.replace(study.data, seed=7))
    monkeypatch.setattr(climate_shift, "_train", lambda *a, **k: 0.0)
    monkeypatch.setattr(climate_shift, "_epochs", lambda *a, **k: {})
    out = tmp_path / "out"
    out.mkdir()
    (out / "basins.csv").write_text("the last scoring's\n")
    climate_shift.run_study(study, out, quick=True, progress=False, log=lambda *_: None,
                            only=["temporal/physics"])
    assert (out / "basins.csv").read_text() == "the last scoring's\n"


def test_a_scoring_without_untrained_sites_removes_an_earlier_scorings_site_table(tmp_path):
    # kept, --report-only and the page showed the earlier scoring's ET target as this one's
    study = load_study(STUDY)
    study = dataclasses.replace(study, untrained=dataclasses.replace(study.untrained,
                                                                     model=None))
    (tmp_path / "figures").mkdir()
    for name in ("untrained.csv", "figures/untrained_variables.png"):
        (tmp_path / name).write_text("earlier")
    assert climate_shift._untrained(study, tmp_path, log=lambda *_: None) is None
    assert not (tmp_path / "untrained.csv").exists()
    assert not (tmp_path / "figures" / "untrained_variables.png").exists()


@pytest.mark.slow
def test_report_only_writes_the_page_the_scoring_wrote_whatever_the_seconds(quick_study,
                                                                              tmp_path):
    """The page showed a run's seconds unrounded and --report-only showed them as timing.csv
    keeps them (3 decimals): a run of 3.4996 s was '3' on one page and '4' on the other."""
    work, out, study = quick_study
    copy = tmp_path / "out"
    shutil.copytree(out / "figures", copy / "figures")
    shutil.copy(out / "basins.csv", copy / "basins.csv")
    scores = pd.read_csv(out / "scores.csv", dtype={"basin": str})
    timing = pd.read_csv(out / "timing.csv")
    timing.loc[timing["model"] == "lstm", "train_s"] = 3.4996  # "%.3f" writes 3.500
    basins = _study_basins(out)
    here = os.getcwd()
    os.chdir(work)  # docs/ paths are relative; a quick page stays in OUT anyway
    try:
        climate_shift._write(copy, scores, climate_shift.summarise(scores, basins), timing,
                             None, study, basins, 60.0, True)
        first = (copy / "climate_shift.md").read_text()
        climate_shift.rewrite_report(study, copy, log=lambda *_: None)
    finally:
        os.chdir(here)
    assert (copy / "climate_shift.md").read_text() == first


def test_train_only_names_the_runs_of_the_study(tmp_path, capsys):
    code = cli.main(["study", "climate-shift", "--config", str(STUDY), "--out",
                     str(tmp_path / "out"), "--train-only", "temporal/hybrid", "arid/lstm"])
    err = capsys.readouterr().err
    assert code == 2 and "--train-only: arid/lstm is not a run of this study" in err
    assert "humid_to_arid/hybrid_budget_x2" in err and "diverse/hybrid_finetuned" in err
    assert not (tmp_path / "out").exists()
    # a fine-tuned run needs the run it starts from, finished or trained first
    args = ["study", "climate-shift", "--config", str(STUDY), "--out", str(tmp_path / "out"),
            "--train-only"]
    assert cli.main(args + ["diverse/hybrid_finetuned", "humid_to_arid/hybrid"]) == 2
    err = capsys.readouterr().err
    assert "diverse/hybrid_finetuned starts from the finished run humid_to_arid/hybrid" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_only_trains_the_named_runs_and_scores_nothing(quick_study, tmp_path, capsys):
    work, _, _ = quick_study
    out = tmp_path / "out"
    capsys.readouterr()
    code = cli.main(["study", "climate-shift", "--config", str(work / "study.yaml"), "--out",
                     str(out), "--quick", "--quiet", "--train-only", "temporal/physics"])
    assert code == 0
    run = json.loads((out / "runs" / "temporal" / "physics" / "run.json").read_text())
    best = run["best_epoch"] + 1  # counted from 1, as on the page (it printed the index)
    assert f"temporal/physics: 2 epochs (best {best})" in capsys.readouterr().out
    assert [p.name for p in (out / "runs").iterdir()] == ["temporal"]
    assert [p.name for p in (out / "runs" / "temporal").iterdir()] == ["physics"]
    assert not (out / "results.csv").exists() and not (out / "scores.csv").exists()


def test_the_page_says_which_budget_check_runs_continued_their_models_run():
    from hybridland.study.report import _budget_check_runs

    study = load_study(STUDY)
    rows = [{"model": "hybrid_budget_x2", "split": "humid_to_arid", "epochs_taken_over": 0},
            {"model": "lstm_budget_x2", "split": "humid_to_arid", "epochs_taken_over": 120},
            {"model": "lstm_budget_x2", "split": "temporal", "epochs_taken_over": 7}]
    text = _budget_check_runs(study, None, None, True, pd.DataFrame(rows))
    assert ("trained and timed: LSTM (Equinox, static attributes): its first 120 epochs)"
            in text)
    assert "sequence hybrid, regional: its first" not in text and "first 7" not in text
    both = [dict(rows[0], epochs_taken_over=176)] + rows[1:]  # each run names its epochs
    text = _budget_check_runs(study, None, None, True, pd.DataFrame(both))
    assert ("timed: sequence hybrid, regional: its first 176 epochs; LSTM (Equinox, static "
            "attributes): its first 120 epochs)") in text
    # a timing table of runs trained from the start (or written before the column existed)
    for timing in (pd.DataFrame(rows[:1]), pd.DataFrame({"model": ["x"], "split": ["y"]})):
        assert "taken over" not in _budget_check_runs(study, None, None, True, timing)


@pytest.mark.slow
def test_a_budget_check_run_continues_its_models_run_under_a_plateau_schedule(tmp_path, capsys):
    """With a schedule that does not depend on the bound, the budget check's run starts from its
    model's run (the epochs both would train alike) and the study counts only its own epochs."""
    (tmp_path / "physics.yaml").write_text(
        f"base: {STUDY.parent / 'physics.yaml'}\n"
        "training: {schedule: plateau, plateau_patience: 1}\n")
    raw = yaml.safe_load(STUDY.read_text())
    raw["models"] = {"physics": str(tmp_path / "physics.yaml"),
                     "hybrid": str(STUDY.parent / raw["models"]["hybrid"]),
                     "lstm": str(STUDY.parent / raw["models"]["lstm"])}
    raw["budget_check"]["models"] = ["physics"]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    code = cli.main(["study", "climate-shift", "--config", str(study), "--out", str(out),
                     "--quick", "--quiet", "--train-only", "humid_to_arid/physics",
                     "humid_to_arid/physics_budget_x2"])
    assert code == 0, capsys.readouterr().err
    own, more = (out / "runs" / "humid_to_arid" / name for name in ("physics", "physics_budget_x2"))
    taken = json.loads((more / "continued_from.json").read_text())
    assert taken == {"run": str(own.resolve()), "epochs": 2}  # --quick: 2 epochs, then 4
    a, b = (pd.read_csv(run / "metrics.csv") for run in (own, more))
    assert list(b["epoch"]) == [0, 1, 2, 3]
    assert list(b["train_loss"][:2]) == list(a["train_loss"])
    # the two epochs taken over are not counted again (a resumed run's floor)
    assert _seconds(more, epochs_only=True) == pytest.approx(b["seconds"][2:].sum())
    assert _seconds(own, epochs_only=True) == pytest.approx(a["seconds"].sum())
    # an archive keeps the record, so a restored run is still timed by its own epochs
    assert Path("continued_from.json") in _trained_runs_script().kept_files(more)
    assert Path("continued_from.json") not in _trained_runs_script().kept_files(own)


# ---------------------------------------------------------------------------------------------
# experiments/climate_shift/trained_runs.py: the study's runs kept and put back elsewhere


def _trained_runs_script():
    import importlib.util

    path = ROOT / "experiments" / "climate_shift" / "trained_runs.py"
    spec = importlib.util.spec_from_file_location("trained_runs", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.mark.parametrize("study_file", ["study.yaml", "plateau/study.yaml"])
def test_the_archives_in_the_repository_restore_and_hold_their_studys_runs(study_file,
                                                                          tmp_path):
    """The runs kept in the repository (the page's, and the plateau retraining's so far) pass
    their checksums and are runs of their study file: the hybrid and LSTM runs of the plateau
    archive were trained with the plateau schedule, those of the page's with the study's own."""
    from hybridland.train.config import config_from_yaml

    study = load_study(STUDY.parent / study_file)
    archive = ROOT / study.report.archive
    if not (archive / "MANIFEST.json").is_file():
        pytest.fail(f"{archive} holds no archive: {study_file} names it in report.archive")
    script = _trained_runs_script()
    lines = script.restore(archive, tmp_path)
    assert lines and all("restored" in line for line in lines), lines
    for config_file in sorted((tmp_path / "runs").glob("*/*/config.yaml")):
        config = config_from_yaml(config_file.read_text())
        label = config_file.parent.name
        model = next(m for m in sorted(study.models, key=len, reverse=True)
                     if label == m or label.startswith(m + "_"))
        own = study.models[model]
        assert config.model == own.model, label
        assert config.training.schedule == own.training.schedule, label


def _study_basins(out: Path) -> Basins:
    table = pd.read_csv(out / "basins.csv", dtype={"basin": str})
    return Basins(ids=list(table["basin"]), aridity=table["aridity"].to_numpy(),
                  group=table["group"].to_numpy(),
                  arid_train=list(table["basin"][table["arid_training_share"]]))


@pytest.mark.slow
def test_restored_runs_are_the_runs_the_study_would_reuse(quick_study, tmp_path, capsys):
    # saved, then restored into another output folder: every run of the study is there with
    # its weights, under a configuration the study takes as its own (so it is reused, not
    # trained again), the fine-tuned run pointing at the restored run it started from
    _, out, study = quick_study
    script = _trained_runs_script()
    archive, moved = tmp_path / "archive", tmp_path / "elsewhere"
    assert script.main(["save", "--out", str(out), "--archive", str(archive)]) == 0
    assert script.main(["restore", "--archive", str(archive), "--out", str(moved)]) == 0
    jobs = study_jobs(study)
    manifest = json.loads((archive / "MANIFEST.json").read_text())
    assert sorted(manifest) == sorted(f"{j.split}/{j.label}" for j in jobs)
    assert not list(archive.rglob("*.png"))
    basins, said = _study_basins(out), []
    for job in jobs:
        start = (moved.resolve() / "runs" / "humid_to_arid" / job.model if job.fine_tuned
                 else None)
        config = run_config(study, job, basins, quick=True, init_from=start)
        here, there = out / "runs" / job.split / job.label, moved / "runs" / job.split / job.label
        # the study's own step: a run it did not take as its own would be trained again here
        climate_shift._train(config, there, said.append, progress=False, report=False)
        assert said[-1] == f"{there}: finished run reused", job
        assert (there / "model.eqx").read_bytes() == (here / "model.eqx").read_bytes()
        assert (there / "run.json").read_bytes() == (here / "run.json").read_bytes()
        assert ckpt.latest_checkpoint(there).name == ckpt.latest_checkpoint(here).name
    # a second restore leaves existing runs alone
    before = (moved / "runs" / "temporal" / "lstm" / "config.yaml").stat().st_mtime_ns
    capsys.readouterr()
    assert script.main(["restore", "--archive", str(archive), "--out", str(moved)]) == 0
    assert "exists, left as it is" in capsys.readouterr().out
    assert (moved / "runs" / "temporal" / "lstm" / "config.yaml").stat().st_mtime_ns == before


@pytest.mark.slow
def test_an_unfinished_run_is_kept_with_its_newest_checkpoint(quick_study, tmp_path):
    _, out, _ = quick_study
    script = _trained_runs_script()
    assert ckpt.latest_checkpoint(out / "runs" / "temporal" / "lstm") is not None
    partial = tmp_path / "partial"
    run = partial / "runs" / "temporal" / "lstm"
    shutil.copytree(out / "runs" / "temporal" / "lstm", run)
    for name in ("run.json", "model.eqx", "study_seconds.json"):
        (run / name).unlink()  # as if killed before its last epoch
    newest = ckpt.latest_checkpoint(run)
    archive = tmp_path / "archive"
    assert script.main(["save", "--out", str(partial), "--archive", str(archive)]) == 0
    kept = sorted(p.name for p in (archive / "temporal" / "lstm" / "checkpoints").iterdir())
    assert kept == sorted([newest.name, json.loads(newest.read_text())["leaves"]])
    restored = tmp_path / "restored"
    assert script.main(["restore", "--archive", str(archive), "--out", str(restored)]) == 0
    marker, skipped = ckpt.resume_checkpoint(restored / "runs" / "temporal" / "lstm")
    assert marker.name == newest.name and not skipped
    # once the run has finished, saving again keeps its finished files
    shutil.rmtree(run)
    shutil.copytree(out / "runs" / "temporal" / "lstm", run)
    assert script.main(["save", "--out", str(partial), "--archive", str(archive)]) == 0
    assert (archive / "temporal" / "lstm" / "model.eqx").is_file()
    # a run the study is still finishing (run.json written, not its timing yet) is kept as
    # unfinished: restored, it resumes from its checkpoint (and training just ends it)
    (run / "study_seconds.json").unlink()
    hidden = run.with_name(".lstm.restoring")  # left by an interrupted restore: not a run
    hidden.mkdir()
    shutil.copyfile(run / "config.yaml", hidden / "config.yaml")
    assert script.main(["save", "--out", str(partial), "--archive", str(archive)]) == 0
    kept = {p.relative_to(archive / "temporal" / "lstm").as_posix()
            for p in (archive / "temporal" / "lstm").rglob("*") if p.is_file()}
    assert "run.json" not in kept and "model.eqx" not in kept
    assert f"checkpoints/{newest.name}" in kept
    assert sorted(json.loads((archive / "MANIFEST.json").read_text())) == ["temporal/lstm"]


@pytest.mark.slow
def test_a_changed_archive_restores_nothing(quick_study, tmp_path, capsys):
    _, out, _ = quick_study
    script = _trained_runs_script()
    archive = tmp_path / "archive"
    assert script.main(["save", "--out", str(out), "--archive", str(archive)]) == 0
    weights = archive / "humid_to_arid" / "hybrid" / "model.eqx"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert script.main(["restore", "--archive", str(archive), "--out",
                        str(tmp_path / "new")]) == 2
    message = capsys.readouterr().out
    assert "humid_to_arid/hybrid/model.eqx" in message and "Nothing was restored" in message
    assert not (tmp_path / "new").exists()


def test_trained_runs_refuses_a_folder_that_is_not_a_study(tmp_path, capsys):
    script = _trained_runs_script()
    assert script.main(["save", "--out", str(tmp_path), "--archive",
                        str(tmp_path / "a")]) == 2
    assert "runs does not exist" in capsys.readouterr().out
    assert script.main(["restore", "--archive", str(tmp_path), "--out",
                        str(tmp_path / "o")]) == 2
    assert "MANIFEST.json is missing" in capsys.readouterr().out


def test_a_restored_configuration_names_this_machines_data_and_runs(tmp_path):
    # a run saved on another machine: its data file and the run it was fine-tuned from are
    # renamed to this machine's MOPEX file and the restoring output folder; nothing else changes
    from hybridland.io.paths import mopex_path

    script = _trained_runs_script()
    job = Job("hybrid", "diverse", fine_tuned=True)
    config = run_config(load_study(STUDY), job, _FakeBasins(), quick=True,
                        init_from=Path("/elsewhere/out/runs/humid_to_arid/hybrid"))
    saved = config.replace("data", path="/elsewhere/data/mopex/" + mopex_path().name).to_yaml()
    text = script._localised(saved, tmp_path / "out")
    restored_start = tmp_path.resolve() / "out" / "runs" / "humid_to_arid" / "hybrid"
    expected = config.replace("data", path=str(mopex_path())).replace(
        "training", init_from=str(restored_start))
    assert text == expected.to_yaml()
    other = config.replace("data", path="/elsewhere/data/other.nc").replace(
        "training", init_from="/elsewhere/weights")
    assert script._localised(other.to_yaml(), tmp_path / "out") == other.to_yaml()


@pytest.mark.slow
def test_an_interrupted_save_leaves_every_other_run_restorable(quick_study, tmp_path,
                                                               monkeypatch, capsys):
    _, out, _ = quick_study
    script = _trained_runs_script()
    archive = tmp_path / "archive"
    assert script.main(["save", "--out", str(out), "--archive", str(archive)]) == 0
    real, calls = ckpt.atomic_write_bytes, []

    def killed_on_the_third_file(path, write):  # Ctrl-C while the first run's files are copied
        if Path(path).name != "MANIFEST.json":
            calls.append(Path(path))
            if len(calls) == 3:
                raise KeyboardInterrupt
        real(path, write)

    monkeypatch.setattr(script.ckpt, "atomic_write_bytes", killed_on_the_third_file)
    assert script.main(["save", "--out", str(out), "--archive", str(archive)]) == 130
    assert "interrupted" in capsys.readouterr().out
    monkeypatch.undo()
    manifest = json.loads((archive / "MANIFEST.json").read_text())
    interrupted = calls[0].parent.relative_to(archive).as_posix()  # its config.yaml
    jobs = {f"{j.split}/{j.label}" for j in study_jobs(quick_study[2])}
    assert interrupted in jobs and set(manifest) == jobs - {interrupted}
    new = tmp_path / "new"
    assert script.main(["restore", "--archive", str(archive), "--out", str(new)]) == 0
    assert {p.parent.relative_to(new / "runs").as_posix()
            for p in (new / "runs").glob("*/*/run.json")} == jobs - {interrupted}


def test_a_foreign_folder_in_the_way_of_a_run_is_refused_without_a_traceback(tmp_path, capsys):
    """A run the study would train lands in a folder holding someone's files: the command
    exits 2 naming the folder (a RunFileError, which the study let through as a traceback
    before), and the files are left as they were."""
    mine = tmp_path / "out" / "runs" / "temporal" / "physics"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    code = cli.main(["study", "climate-shift", "--config", str(STUDY), "--out",
                     str(tmp_path / "out"), "--quick", "--quiet", "--train-only",
                     "temporal/physics"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("hybridland study climate-shift: ") and str(mine) in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "mine"


def test_study_periods_must_be_in_order():
    """Train, validation and test in that order: the dry years are looked for from the
    training's start to the test's end, which is the span the training runs hide them in only
    when the test comes last (before: a later validation period made the scored dry years
    differ from the hidden ones, and a test before the training failed after training)."""
    from hybridland.study.config import StudyData

    ok = StudyData(["1960-01-01", "1985-12-31"], ["1986-01-01", "1990-12-31"],
                   ["1991-01-01", "1995-12-31"])
    assert ok.test_period[0] == "1991-01-01"
    for periods, key in [
        ((["1960-01-01", "1985-12-31"], ["1996-01-01", "2003-12-31"],
          ["1986-01-01", "1995-12-31"]), "data.test_period"),
        ((["1975-01-01", "1985-12-31"], ["1986-01-01", "1990-12-31"],
          ["1960-01-01", "1974-12-31"]), "data.test_period"),
        ((["1960-01-01", "1985-12-31"], ["1985-12-31", "1990-12-31"],
          ["1991-01-01", "1995-12-31"]), "data.validation_period"),
    ]:
        with pytest.raises(ConfigError, match=rf"'{key}' must start after"):
            StudyData(*periods)


def test_medians_of_the_same_basins_compare_the_basins_scored_in_both():
    """The dry-year and test-year medians of a model are over the basins scored in both (the
    drop compares like with like), and n counts the basins with a score: before, a basin
    without a dry-year score left the dry-year median only, and n counted it."""
    from hybridland.study.climate_shift import Basins, summarise

    ids = ["a", "b", "c"]
    basins = Basins(ids, np.array([0.5, 0.6, 2.0]), np.array(["humid", "humid", "arid"]), [])
    scores = _dry_year_scores([0.9, 0.5, 0.1], [0.8, np.nan, 0.0], ids)
    summary = summarise(scores, basins).set_index("split")
    dry = summary.loc["dry_extremes"]
    assert dry["n_in"] == 3 and dry["n_shifted"] == 2
    assert dry["nse_in"] == pytest.approx(0.5)  # median of a and c: 0.9, 0.1
    assert dry["nse_shifted"] == pytest.approx(0.4)  # median of a and c: 0.8, 0.0
    assert dry["nse_drop"] == pytest.approx(0.1)


def test_budyko_precipitation_is_averaged_over_the_scored_days():
    """The evaporative index 1 - Q/P of a score row takes P over the days its Q is averaged
    over: the dry-year rows took the test period's P before (an index of the dry years' flow
    over another period's rain) and every row took P over days without observed flow too."""
    from hybridland.study.climate_shift import _score_rows, evaporative_index_error

    half = 400  # each half a year and more: MIN_OBSERVED_DAYS
    days = 2 * half
    precip = np.tile(np.where(np.arange(days) < half, 1.0, 5.0), (2, 1))  # wet second half
    obs = np.full((2, days), 0.5) + 0.1 * np.sin(np.arange(days))
    obs[1, half : half + 10] = np.nan  # ten wet days without an observed flow in basin b
    sim = 0.6 * obs
    dry = np.zeros((2, days), bool)
    dry[:, :half] = True  # the first, dry, half scored alone
    rows = _score_rows("m", "temporal", "dry_years", ["a", "b"], obs, sim, precip,
                       np.zeros(2), dry)
    np.testing.assert_allclose(rows["mean_precip_mm_day"], [1.0, 1.0])
    q = obs[:, :half].mean(axis=1)
    np.testing.assert_allclose(evaporative_index_error(rows), 0.4 * q / 1.0)
    rows = _score_rows("m", "temporal", "test", ["a", "b"], obs, sim, precip, np.zeros(2))
    np.testing.assert_allclose(rows["mean_precip_mm_day"],
                               [3.0, (half * 1.0 + (half - 10) * 5.0) / (days - 10)])
    # a simulation not finite on a scored day has no index, and the worst NSE (before: the
    # mean of its other days, against the observed mean of all of them)
    sim[0, 5] = np.nan
    rows = _score_rows("m", "temporal", "test", ["a", "b"], obs, sim, precip, np.zeros(2))
    assert rows["nse"][0] == -np.inf and np.isnan(evaporative_index_error(rows)[0])
    assert np.isfinite(evaporative_index_error(rows)[1])


def test_a_basin_is_scored_on_a_year_of_record_and_an_undefined_simulation_scores_worst():
    """Two arid basins with 274 observed test days (under one seasonal cycle) counted as much
    as the others in the medians; a model whose flow is constant on a basin (KGE undefined:
    no correlation) had that basin left out of its median, which raised it."""
    from hybridland.study.climate_shift import MIN_OBSERVED_DAYS, _score_rows, summarise

    days = 400
    rng = np.random.default_rng(0)
    obs = rng.gamma(1.0, 1.0, (3, days))
    obs[2, MIN_OBSERVED_DAYS - 1 :] = np.nan  # a record one day short of a year
    sim = 0.8 * obs + 0.1
    sim[1] = 0.5  # one flow every day
    rows = _score_rows("m", "temporal", "test", ["a", "b", "c"], obs, sim, np.ones((3, days)),
                       np.zeros(3))
    assert np.isfinite(rows["kge"][0]) and rows["kge"][1] == -np.inf
    assert np.isfinite(rows["nse"][1])  # NSE is defined for a constant simulation
    assert rows.loc[2, ["nse", "kge", "log_nse", "pbias", "flv"]].isna().all()
    assert np.isnan(rows["mean_precip_mm_day"][2])
    basins = Basins(["a", "b", "c"], np.zeros(3), np.array(["humid"] * 3), [])
    summary = summarise(rows, basins)
    row = summary[summary["split"] == "temporal"].iloc[0]
    assert row["n_in"] == 2
    assert row["kge_in"] == pytest.approx(np.median([rows["kge"][0], -np.inf]))


def _dry_year_scores(test_nse, dry_nse, ids):
    """Score rows of model ``m`` on the temporal split: its test-period (the same outside the
    dry years) and dry-year NSE (and KGE, log-NSE) per basin of ``ids``."""
    rows = []
    for test, nse in (("test", test_nse), ("test_outside_dry_years", test_nse),
                      ("dry_years", dry_nse)):
        for b, value in zip(ids, nse):
            rows.append({"model": "m", "split": "temporal", "test": test, "basin": b,
                         "nse": value, "kge": value, "log_nse": value, "pbias": 0.0,
                         "flv": 0.0, "n_valid": 10, "mean_observed_mm_day": 1.0,
                         "mean_simulated_mm_day": 1.0, "mean_precip_mm_day": 2.0,
                         "max_abs_cumulative_residual_mm": 0.0})
    return pd.DataFrame(rows)


def test_the_dry_extremes_header_counts_the_basins_its_medians_are_over():
    """The dry-year and test-year medians are over the basins scored in both; the header
    counted each set on its own ('3 in-distribution and 3 shifted basin scores') and never
    said over how many basins the medians were."""
    from hybridland.study.climate_shift import summarise

    ids = ["a", "b", "c", "d"]
    basins = Basins(ids, np.array([0.5, 0.6, 2.0, 0.7]),
                    np.array(["humid", "humid", "arid", "humid"]), [])
    # b has no dry-year score, d no test-period one: both medians are over a and c
    scores = _dry_year_scores([0.9, 0.5, 0.1, np.nan], [0.8, np.nan, 0.0, 0.3], ids)
    results = summarise(scores, basins)
    dry = results.set_index("split").loc["dry_extremes"]
    assert (dry["n_in"], dry["n_shifted"], dry["n_paired"]) == (3, 3, 2)
    assert dry["nse_in"] == pytest.approx(0.5) and dry["nse_shifted"] == pytest.approx(0.4)
    text = report.results_markdown(results)
    assert ("(medians over the 2 basins scored in both, of 3 in-distribution and 3 shifted "
            "basin scores)") in text
    # models scored on different basins: the range of the counts, not the first model's
    other = _dry_year_scores([0.9, 0.5, 0.1, 0.2], [0.8, 0.4, 0.0, 0.3], ids).assign(model="o")
    text = report.results_markdown(summarise(pd.concat([scores, other]), basins))
    assert "(medians over the 2–4 basins scored in both, of 3–4 in-distribution and" in text


def test_dry_extremes_compare_with_the_test_years_outside_the_dry_years():
    """The dry years' scores were set against the whole test period's, which holds some of
    the dry days (about 6 % of the scored test days on the MOPEX dev basins): the two sets
    shared days, and the drop looked smaller than it is."""
    from hybridland.study.climate_shift import summarise

    ids = ["a", "b", "c"]
    basins = Basins(ids, np.array([0.5, 0.6, 0.7]), np.array(["humid"] * 3), [])
    scores = _dry_year_scores([0.9, 0.8, 0.7], [0.1, 0.2, 0.3], ids)
    outside = scores["test"] == "test_outside_dry_years"
    scores.loc[outside, ["nse", "kge", "log_nse"]] = 0.6  # the test years without dry days
    results = summarise(scores, basins).set_index("split")
    assert results.loc["temporal", "nse_in"] == pytest.approx(0.8)
    assert results.loc["dry_extremes", "nse_in"] == pytest.approx(0.6)
    assert results.loc["dry_extremes", "nse_drop"] == pytest.approx(0.4)


def test_the_budget_sentence_names_the_budget_checks_runs():
    """The page said 'every trained model gets the same 2 epochs' (--quick) while the budget
    check's runs got twice that, and 'the configured basins' though --quick sets the batch's
    basins."""
    study = load_study(STUDY)
    check = study.budget_check
    assert check.models and check.factor == 2 and study.quick.epochs == 2
    text = report._budget(study, quick=True, timing=pd.DataFrame())
    assert "the same 2 epochs of 2 mini-batches per epoch (each mini-batch: 3 basins and " in text
    assert ("except the budget check's runs (humid_to_arid, \"2x budget\" in the tables), "
            "which get 2 times the epochs: 4 epochs.") in text
    imposed = dataclasses.replace(study, training=dataclasses.replace(
        study.training, epochs=30, patience=5))
    text = report._budget(imposed, quick=False, timing=pd.DataFrame())
    assert "the same 30 epochs with early stopping after 5 epochs" in text
    assert ("(its own configuration's mini-batches per epoch; each mini-batch: the "
            "configured") in text
    assert "which get 2 times the epochs and patience: 60 epochs, early stopping after 10." in text
    # the models' own budgets: the budget check's runs still get twice theirs
    assert "except the budget check's runs" in report._budget(study, quick=False,
                                                              timing=pd.DataFrame())
    unchecked = dataclasses.replace(study, budget_check=dataclasses.replace(check, models=()))
    assert "except" not in report._budget(unchecked, quick=True, timing=pd.DataFrame())


def test_the_study_time_counts_every_step_that_runs_a_model(tmp_path, monkeypatch):
    """The ensembles' evaluations, the default-parameter physics run behind the state
    regression and the untrained site runs took time no row of timing.csv held, so the study
    time the targets check left them out."""
    study = load_study(STUDY)
    assert study.ensemble.models and "regression_state" in study.baselines
    step = 0.05
    basins = Basins(["a"], np.array([0.5]), np.array(["humid"]), [])
    row = pd.DataFrame({"basin": ["a"]})

    def evaluate(study, model, split, run_dir, basins, progress):
        if isinstance(run_dir, list):  # the mean of a model's trainings
            time.sleep(step)
        return [row]

    def states(data):
        time.sleep(step)
        return {}

    def sites(study, out, log):
        time.sleep(step)
        return pd.DataFrame({"site": ["US-AR1"]})

    written = {}
    for name, fake in (("_load_all", lambda *_: (None, basins, None)),
                       ("run_config", lambda *_, **__: None), ("_train", lambda *_, **__: 1.0),
                       ("_continued_run", lambda *_: None),
                       ("_epochs", lambda *_: {"epochs_completed": 1, "best_epoch": 0,
                                               "epochs_bound": 1, "stopped_early": False}),
                       ("_evaluate_trained", evaluate), ("_default_states", states),
                       ("_dry_mask", lambda *_: None), ("_baseline_rows", lambda *_: [row]),
                       ("summarise", lambda *_: pd.DataFrame()), ("_untrained", sites),
                       ("_write", lambda *args, **kw: written.update(args=args, **kw))):
        monkeypatch.setattr(climate_shift, name, fake)
    climate_shift.run_study(study, tmp_path, progress=False, log=lambda *_: None)
    timing = written["args"][3].set_index(["model", "split"])
    for name in study.ensemble.models:
        assert timing.at[(f"{name}_ensemble", study.ensemble.split), "evaluate_s"] >= step
    assert timing.at[("regression_state", "all"), "train_s"] >= step
    assert timing.at[(study.untrained.model, "sites"), "evaluate_s"] >= step
    jobs = len(study_jobs(study))
    total = (timing["train_s"] + timing["evaluate_s"]).sum()
    assert total >= jobs * 1.0 + (len(study.ensemble.models) + 2) * step
    assert written["machine"] == climate_shift._machine()  # recorded with the scoring


def test_a_study_without_an_untrained_section_checks_no_untrained_variables(tmp_path):
    """A study without a model named 'hybrid' and without an 'untrained' section did not
    load: the section's model defaulted to 'hybrid'."""
    raw = yaml.safe_load(STUDY.read_text())
    raw["models"] = {"physics": str(STUDY.parent / raw["models"]["physics"])}
    for section in ("extreme_weighting", "fine_tuning", "budget_check", "ensemble",
                    "untrained", "targets"):  # the sections that name other models
        del raw[section]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    study = load_study(path)
    assert study.untrained.model is None
    assert climate_shift._untrained(study, tmp_path, print) is None
    assert not (tmp_path / "untrained.csv").exists()
    # an untrained model the study does not train is still an error
    path.write_text(yaml.safe_dump({**raw, "untrained": {"model": "hybrid"}}))
    with pytest.raises(ConfigError, match=r"'untrained\.model' names \['hybrid'\], not in"):
        load_study(path)


def test_the_page_states_the_machine_the_scoring_recorded(tmp_path):
    """The page said '(2 CPU cores)' whatever machine ran the study; now the scoring records
    its machine in invocation.json, --report-only keeps it, and a folder scored before it was
    recorded is rewritten without cores."""
    import jax

    study = load_study(STUDY)
    ids = ["a", "b", "c"]
    basins = Basins(ids, np.array([0.5, 2.0, 3.0]), np.array(["humid", "arid", "arid"]), ["b"])
    scores = pd.concat([_dry_year_scores([0.9, 0.5, 0.1], [0.8, 0.4, 0.0], ids)]
                       + [_dry_year_scores([0.7, 0.2, 0.1], [], ids).assign(split=split)
                          for split in ("humid_to_arid", "diverse")], ignore_index=True)
    scores = scores.assign(model="hybrid", aridity=scores["basin"].map(
        dict(zip(ids, basins.aridity))))
    pd.DataFrame({"basin": ids, "aridity": basins.aridity, "group": basins.group,
                  "arid_training_share": [b in basins.arid_train for b in ids]}).to_csv(
        tmp_path / "basins.csv", index=False)
    timing = pd.DataFrame({"model": ["hybrid"], "split": ["temporal"], "train_s": [60.0],
                           "evaluate_s": [1.0]})
    gpu = {"cpu_count": 16, "usable_cpus": 16, "jax_backend": "gpu",
           "device_kind": "NVIDIA H200", "device_count": 1}
    climate_shift._write(tmp_path, scores, climate_shift.summarise(scores, basins), timing,
                         None, study, basins, 60.0, True, machine=gpu)
    page = (tmp_path / "climate_shift.md").read_text()
    assert "Training time of all runs on this machine (16 CPU cores, JAX on gpu: NVIDIA " \
           "H200): **1.0 min**" in page
    assert json.loads((tmp_path / climate_shift.INVOCATION).read_text())["machine"] == gpu
    climate_shift.rewrite_report(study, tmp_path, log=lambda *_: None)  # on another machine
    assert (tmp_path / "climate_shift.md").read_text() == page
    # a folder scored before the machine was recorded: rewritten as it is, without cores
    (tmp_path / climate_shift.INVOCATION).write_text(json.dumps({"wall_s": 60.0,
                                                                 "quick": True}))
    climate_shift.rewrite_report(study, tmp_path, log=lambda *_: None)
    page = (tmp_path / "climate_shift.md").read_text()
    assert "Training time of all runs (machine not recorded): **1.0 min**" in page
    assert "CPU cores" not in page
    assert "machine" not in json.loads((tmp_path / climate_shift.INVOCATION).read_text())
    here = climate_shift._machine()
    assert (here["cpu_count"], here["jax_backend"]) == (os.cpu_count(), jax.default_backend())
    assert report.machine_text({**gpu, "usable_cpus": 2, "jax_backend": "cpu"}) == (
        "on this machine (2 of its 16 CPU cores, JAX on cpu)")
