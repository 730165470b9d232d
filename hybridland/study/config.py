"""Configuration of the climate-shift study (``experiments/climate_shift/study.yaml``).

```yaml
data:        {train_period: [1960-01-01, 1989-12-31], validation_period: [...],
              test_period: [...], humid: [0, 1], arid: [1.5, 100], arid_training_share: 0.5,
              dry_years: 0.1, seed: 0}
models:      {physics: physics.yaml, hybrid: hybrid.yaml, lstm: lstm.yaml, ...}
baselines:   [climatology, regression_forcing, regression_memory, regression_state]
training:    {}            # or {epochs: 30, patience: 5, batches_per_epoch: 40}: one budget
extreme_weighting: {models: [hybrid], extreme_weight: 2.0}
fine_tuning: {models: [hybrid]}
budget_check: {models: [hybrid, lstm], split: humid_to_arid, factor: 2}
ensemble:    {models: [hybrid, lstm], split: humid_to_arid, seeds: [1, 2]}
untrained:   {model: hybrid, sites: [US-AR1, schwingbach]}
quick:       {basins_per_group: 3, epochs: 2, batches_per_epoch: 2, batch_basins: 3}
report:      {docs: docs/climate_shift.md, figures: docs/figures/climate_shift,
              archive: experiments/climate_shift/trained}
targets:     {model: hybrid, peer: lstm, humid_nse_margin: 0.03, closure_mm: 0.01,
              et_site: US-AR1, et_correlation: 0.7, study_minutes: 60}
```

``models`` maps a model name to a training configuration (paths relative to the study file);
each is trained by ``hybridland.train.train`` once per split with the split's basins, the
study's periods and data file, and the ``training`` overrides. ``load_study(path)`` raises
``ConfigError`` naming the offending key.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from pathlib import Path
from typing import ClassVar

from ..train.config import (
    Config,
    ConfigError,
    Period,
    _check_period,
    _fail,
    build_sections,
    read_yaml_file,
)
from ..train.config import load_config as load_training_config

UNTRAINED_SITES = ("US-AR1", "schwingbach")
"""Sites with forcing and an observed untrained variable (``hybridland.study.untrained``), in
table order."""

BASELINES = ("climatology", "regression_forcing", "regression_memory", "regression_state")
"""Reference models fitted in closed form by the study (``hybridland.study.baselines``)."""


@dataclasses.dataclass(frozen=True)
class StudyData:
    """Basins, periods and groups; aridity = mean PE / mean P over ``train_period``."""

    SECTION: ClassVar[str] = "data"
    train_period: Period
    validation_period: Period
    test_period: Period
    path: str | None = None
    """MOPEX-layout file; None: the shared MOPEX development file."""
    humid: tuple[float, float] = (0.0, 1.0)
    """Aridity range ``[low, high)`` of the humid (energy-limited) basins."""
    arid: tuple[float, float] = (1.5, 100.0)
    """Aridity range ``[low, high)`` of the arid (water-limited) basins."""
    arid_training_share: float = 0.5
    """Diverse split: share of the arid basins added to the humid training basins (a seeded
    draw); the other arid basins are its shifted test."""
    dry_years: float = 0.1
    """Share of each basin's years, the driest by annual precipitation, hidden from every
    training run and scored as the dry-extreme test."""
    seed: int = 0

    def __post_init__(self):
        for name in ("train_period", "validation_period", "test_period"):
            _check_period(self, name, getattr(self, name))
        # the temporal test is on later years, and the dry years are looked for from the
        # training's start to the test's end (the span every training run hides them in)
        order = ("train_period", "validation_period", "test_period")
        for earlier, later in zip(order, order[1:]):
            end, start = (_dt.date.fromisoformat(str(getattr(self, name)[i]))
                          for name, i in ((earlier, 1), (later, 0)))
            if not end < start:
                _fail(self, later, f"must start after {earlier} ends (train, validation and test "
                      f"in that order, without overlap), got {getattr(self, earlier)} and "
                      f"{getattr(self, later)}")
        for name in ("humid", "arid"):
            low, high = getattr(self, name)
            if not 0 <= low < high:
                _fail(self, name, f"must be [low, high) with 0 <= low < high, got {[low, high]}")
        if self.humid[1] > self.arid[0]:
            _fail(self, "arid", "must start at or above the end of the humid range")
        if not 0 < self.arid_training_share < 1:
            _fail(self, "arid_training_share", f"must be in (0, 1), got {self.arid_training_share}")
        if not 0 < self.dry_years < 1:
            _fail(self, "dry_years", f"must be in (0, 1), got {self.dry_years}")


@dataclasses.dataclass(frozen=True)
class StudyTraining:
    """Overrides applied to every model's training section (the study's compute budget)."""

    SECTION: ClassVar[str] = "training"
    epochs: int | None = None
    patience: int | None = None
    batches_per_epoch: int | None = None


@dataclasses.dataclass(frozen=True)
class ExtremeWeighting:
    """Models trained again (temporal split) with the low-flow weighted loss."""

    SECTION: ClassVar[str] = "extreme_weighting"
    models: tuple[str, ...] = ()
    extreme_weight: float = 2.0

    def __post_init__(self):
        if not self.extreme_weight > 0:
            _fail(self, "extreme_weight", f"must be > 0, got {self.extreme_weight}")


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """Models whose humid-to-arid run is trained on (fine-tuned to) the arid training basins
    of the diverse split and scored on its other arid basins."""

    SECTION: ClassVar[str] = "fine_tuning"
    models: tuple[str, ...] = ()


TRAINED_SPLITS = ("temporal", "humid_to_arid", "diverse")
"""The splits a model is trained on (``hybridland.study.climate_shift``)."""


BUDGET_SUFFIX = r"_budget_x[0-9.]+$"
"""Suffix of the result label of a model trained by the budget check (``budget_label``)."""


def budget_label(name: str, factor: float) -> str:
    """The result label of model ``name`` trained with ``factor`` times its budget."""
    return f"{name}_budget_x{factor:g}"


def scaled_budget(factor: float, n: int) -> int:
    """``factor`` times ``n`` epochs (or patience), rounded up: the budget check's runs."""
    return math.ceil(factor * n)


@dataclasses.dataclass(frozen=True)
class BudgetCheck:
    """Models trained again on ``split`` with ``factor`` times their epochs and patience: do
    their medians move when the budget grows (are they converged)? The page compares each
    change with ``tolerance`` and, for a model the ``ensemble`` trains on the same split, with
    the range of that median over its trainings with different seeds."""

    SECTION: ClassVar[str] = "budget_check"
    models: tuple[str, ...] = ()
    split: str = "humid_to_arid"
    factor: float = 2.0
    tolerance: float = 0.02
    """Largest change of a median (NSE, KGE; in distribution and shifted) called 'unmoved'."""

    def __post_init__(self):
        if self.split not in TRAINED_SPLITS:
            _fail(self, "split", f"must be one of {list(TRAINED_SPLITS)}, got {self.split!r}")
        if not self.factor > 1:
            _fail(self, "factor", f"must be > 1, got {self.factor}")
        if not self.tolerance > 0:
            _fail(self, "tolerance", f"must be > 0, got {self.tolerance}")


SEED_SUFFIX = r"_seed[0-9]+$"
"""Suffix of the result label of a model trained again with another seed (``seed_label``)."""
ENSEMBLE_SUFFIX = "_ensemble"
"""Suffix of the result label of the mean of a model's trainings (``Ensemble``)."""


def seed_label(name: str, seed: int) -> str:
    """The result label of model ``name`` trained with ``run.seed`` = ``seed``."""
    return f"{name}_seed{seed}"


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Models trained again on ``split`` with other seeds (``run.seed``: other initial weights
    and mini-batches). Each training is scored alone (``<model>_seed<seed>``) and, with the
    model's own run, as their mean (``<model>_ensemble``, ``train.evaluate_ensemble``):
    two trainings the validation years cannot tell apart can differ widely on basins of
    another climate, and their mean is the steadier model."""

    SECTION: ClassVar[str] = "ensemble"
    models: tuple[str, ...] = ()
    split: str = "humid_to_arid"
    seeds: tuple[int, ...] = ()

    def __post_init__(self):
        if self.split not in TRAINED_SPLITS:
            _fail(self, "split", f"must be one of {list(TRAINED_SPLITS)}, got {self.split!r}")
        if (not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
                or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds)):
            _fail(self, "seeds", f"must be distinct non-negative integers, got {list(self.seeds)}")
        if self.models and not self.seeds:
            _fail(self, "seeds", "must name at least one seed for the models to train again")

    def trainings(self, name: str) -> list[str]:
        """Result labels of model ``name``'s trainings on ``split``: its own run, then one per
        seed (their runs are ``OUT/runs/<split>/<label>``)."""
        return [name] + [seed_label(name, s) for s in self.seeds]


@dataclasses.dataclass(frozen=True)
class Untrained:
    """The model (temporal split) whose ET and soil water are compared with site data."""

    SECTION: ClassVar[str] = "untrained"
    model: str | None = None
    """None (a study file without it): no untrained check, as with every other optional
    section; a name must be one of ``models``, a model with stores (not the LSTM)."""
    sites: tuple[str, ...] = ("US-AR1", "schwingbach")

    def __post_init__(self):
        unknown = [s for s in self.sites if s not in UNTRAINED_SITES]
        if unknown or not self.sites:
            _fail(self, "sites", f"must name sites from {list(UNTRAINED_SITES)}, got "
                  f"{list(self.sites)}")


@dataclasses.dataclass(frozen=True)
class Quick:
    """The ``--quick`` setting: a few basins per group, a few optimiser steps."""

    SECTION: ClassVar[str] = "quick"
    basins_per_group: int = 3
    epochs: int = 2
    batches_per_epoch: int = 2
    batch_basins: int = 3

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                _fail(self, f.name, f"must be >= 1, got {getattr(self, f.name)}")
        if self.basins_per_group < 2:
            _fail(self, "basins_per_group", "must be >= 2 (the diverse split halves the arid)")


@dataclasses.dataclass(frozen=True)
class Report:
    """Where a full (not ``--quick``) study also writes its page and figures."""

    SECTION: ClassVar[str] = "report"
    docs: str | None = None
    figures: str | None = None
    archive: str | None = None
    """Where the study's trained runs are kept (``experiments/climate_shift/trained_runs.py``):
    the page says how to restore them and score them again without training."""


@dataclasses.dataclass(frozen=True)
class Targets:
    """What the page checks, target by target: ``model`` against its ``peer`` under the
    humid-to-arid shift (arid median KGE >= 0 and above the peer's, humid median NSE within
    ``humid_nse_margin`` of the peer's, a smaller NSE drop) for each of their trainings and
    their means; on the diverse split (unseen-arid median KGE at least the peer's); the closure
    of every bucket run; the untrained ET correlation at ``et_site`` (one of
    ``untrained.sites``); the compute time of the whole study (training and scoring of every
    run, over all the invocations that made it)."""

    SECTION: ClassVar[str] = "targets"
    model: str | None = None
    """None: no targets section."""
    peer: str | None = None
    humid_nse_margin: float = 0.03
    closure_mm: float = 0.01
    """Largest cumulative water residual (mm, any basin and day) a bucket run may have."""
    et_site: str = "US-AR1"
    et_correlation: float = 0.7
    study_minutes: float = 60.0

    def __post_init__(self):
        if (self.model is None) != (self.peer is None):
            _fail(self, "peer" if self.peer is None else "model",
                  "must be given with the other (a model and the peer it is held against)")
        if self.model is not None and self.model == self.peer:
            _fail(self, "peer", f"must differ from the model, both are {self.model!r}")
        if not self.closure_mm > 0:
            _fail(self, "closure_mm", f"must be > 0, got {self.closure_mm}")
        if not self.humid_nse_margin >= 0:
            _fail(self, "humid_nse_margin", f"must be >= 0, got {self.humid_nse_margin}")
        if not -1 <= self.et_correlation <= 1:
            _fail(self, "et_correlation", f"must be in [-1, 1], got {self.et_correlation}")
        if not self.study_minutes > 0:
            _fail(self, "study_minutes", f"must be > 0, got {self.study_minutes}")


_SECTIONS = {
    "data": StudyData,
    "training": StudyTraining,
    "extreme_weighting": ExtremeWeighting,
    "fine_tuning": FineTuning,
    "budget_check": BudgetCheck,
    "ensemble": Ensemble,
    "untrained": Untrained,
    "quick": Quick,
    "report": Report,
    "targets": Targets,
}


@dataclasses.dataclass(frozen=True)
class Study:
    data: StudyData
    models: dict[str, Config]
    model_files: dict[str, str]
    baselines: tuple[str, ...]
    training: StudyTraining
    extreme_weighting: ExtremeWeighting
    fine_tuning: FineTuning
    budget_check: BudgetCheck
    untrained: Untrained
    quick: Quick
    report: Report
    ensemble: Ensemble = Ensemble()
    targets: Targets = Targets()


def load_study(path: str | os.PathLike) -> Study:
    """Read and validate a study file (see the module docstring)."""
    path = Path(path)
    raw = read_yaml_file(path, f"Study file {path}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study is a mapping of sections.")
    raw = dict(raw)
    models = raw.pop("models", None)
    baselines = raw.pop("baselines", list(BASELINES))
    try:
        sections = build_sections(raw, _SECTIONS, "the periods and aridity groups", "A study")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err} (plus 'models' and 'baselines')") from None
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{path}: 'models' must map model names to training config files.")
    if not isinstance(baselines, list) or [b for b in baselines if b not in BASELINES]:
        raise ConfigError(f"{path}: 'baselines' must be a list drawn from {list(BASELINES)}.")
    files = {str(k): str((path.parent / str(v)).resolve()) for k, v in models.items()}
    configs = {name: load_training_config(f) for name, f in files.items()}
    for section, names in (
        ("extreme_weighting.models", sections["extreme_weighting"].models),
        ("fine_tuning.models", sections["fine_tuning"].models),
        ("budget_check.models", sections["budget_check"].models),
        ("ensemble.models", sections["ensemble"].models),
        ("targets.model", tuple(n for n in (sections["targets"].model,) if n is not None)),
        ("targets.peer", tuple(n for n in (sections["targets"].peer,) if n is not None)),
        ("untrained.model", () if sections["untrained"].model is None
         else (sections["untrained"].model,)),
    ):
        unknown = [n for n in names if n not in configs]
        if unknown:
            raise ConfigError(f"{path}: '{section}' names {unknown}, not in 'models' "
                              f"{sorted(configs)}.")
    u = sections["untrained"]
    if u.model is not None and configs[u.model].model.kind == "lstm":
        raise ConfigError(f"{path}: 'untrained.model' is {u.model!r}, an LSTM: it has no "
                          "evapotranspiration or soil store to compare with the sites; name a "
                          "model with a water balance (e.g. hybrid).")
    t = sections["targets"]
    if t.model is not None and t.et_site not in sections["untrained"].sites:
        raise ConfigError(f"{path}: 'targets.et_site' is {t.et_site!r}, not one of "
                          f"'untrained.sites' {list(sections['untrained'].sites)}; name one of "
                          "them or add it there.")
    for name in sections["ensemble"].models:
        own = configs[name].run.seed
        if own in sections["ensemble"].seeds:
            raise ConfigError(f"{path}: 'ensemble.seeds' holds {own}, the seed of the "
                              f"'{name}' run itself; name other seeds.")
    return Study(models=configs, model_files=files, baselines=tuple(baselines), **sections)
