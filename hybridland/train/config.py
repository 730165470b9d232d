"""Typed, validated configuration of a training run, loaded from YAML.

A run is described by four sections, each a frozen dataclass:

```yaml
run:      {name: demo, seed: 0}
data:     {loader: mopex, basins: ["01064500", ...], pet: given,
           swap_inverted_temperatures: true,
           train_period: [1995-01-01, 1996-12-31], validation_period: [1997-01-01, 1997-12-31],
           warmup_days: 60}
model:    {kind: hybrid, pet: given, width: 8, depth: 2,
           trainable_params: [runoff_shape, baseflow_rate], per_basin_params: true,
           static_attributes: [aridity, mean_precip]}
training: {optimizer: adam, learning_rate: 0.01, schedule: cosine, warmup_steps: 5,
           epochs: 10, batch_basins: 8, window_days: 365, loss: nse, extreme_weight: 0.0,
           patience: 5, clip_norm: 1.0}
```

``load_config(path)`` raises ``ConfigError`` naming the offending key (``training.learnin_rate``:
unknown, with the list of valid keys) or field (``training.learning_rate``: must be > 0).
``Config.to_yaml()`` writes the fully resolved configuration (every default spelled out), which
the training loop saves in the run directory and compares on resume.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
import os
import re
import types
import typing
from typing import ClassVar, Literal

import yaml

from .._params import CAPACITY_PARAMETERS, PARAMETER_BOUNDS, ROUTING_PARAMETERS
from ..physics.pet import PET_LAWS

LOSSES = ("nse", "mse", "kge")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("none", "cosine", "exponential", "plateau")
DATA_PET_SOURCES = ("given", "hargreaves", "oudin")

STATIC_ATTRIBUTES = (
    "lat",
    "lon",
    "log_area",
    "mean_precip",
    "mean_pet",
    "aridity",
    "mean_temp",
    "snow_fraction",
    "log_aridity",
    "log_mean_precip",
    "log_mean_pet",
    "root_zone_storage",
    "log_root_zone_storage",
)
"""Static basin attributes the networks may see (computed on the training period; see
``hybridland.train.data.static_attributes``). The log forms keep a basin of another climate
closer to the training range once normalised (an arid basin's aridity is many standard
deviations above that of humid training basins, its log far fewer)."""


class ConfigError(ValueError):
    """A configuration that cannot describe a run; the message names the key or field."""


Period = tuple[str, str]


# ---------------------------------------------------------------------------------------------
# Sections


MAX_SEED = 2**63 - 1
"""The largest seed: seeds are 64-bit signed integers where JAX and numpy take them."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Identity of the run."""

    SECTION: ClassVar[str] = "run"
    name: str = "run"
    seed: int = 0
    """Seeds the network weights and the mini-batch draws (batches of epoch e derive from
    (seed, e) only, so a resumed run draws the same batches)."""

    def __post_init__(self):
        if not self.name:
            _fail(self, "name", "must be a non-empty string")
        if not 0 <= self.seed <= MAX_SEED:
            _fail(self, "seed", f"must be an integer in [0, 2**63 - 1], got {self.seed}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which basins and days; periods are inclusive ISO date ranges ``[first, last]``."""

    SECTION: ClassVar[str] = "data"
    train_period: Period
    validation_period: Period
    test_period: Period | None = None
    loader: str = "mopex"
    """Name in ``hybridland.train.data.LOADERS``."""
    path: str | None = None
    """Forcing file; None: the shared MOPEX file (``hybridland.io.mopex_path()``)."""
    basins: tuple[str, ...] | None = None
    """Basin ids; None: ``n_basins`` chosen by ``selection`` (None too: every basin)."""
    n_basins: int | None = None
    exclude_basins: tuple[str, ...] | None = None
    """Basin ids left out of whatever the other settings select (e.g. the basins a run was
    trained on, to evaluate it on the others)."""
    selection: Literal["first", "random"] = "first"
    """How ``n_basins`` are picked from the file: the first ones, or a seeded random draw."""
    aridity_range: tuple[float, float] | None = None
    """Keep only basins whose aridity (mean PET / mean P over ``train_period``) lies in
    ``[low, high)`` before ``n_basins`` is applied, e.g. ``[0, 1]`` humid, ``[1.5, 100]`` arid;
    needs PET in the file."""
    pet: Literal["given", "hargreaves", "oudin"] = "given"
    """PET source read by the loader: the file's PE, or left to the model's PET law."""
    trim: bool = False
    drop_incomplete: bool = False
    swap_inverted_temperatures: bool = False
    replace_implausible: bool = True
    """MOPEX loader: replace values beyond every climate on Earth on isolated days (recording
    errors such as the shared file's T_max of 281 degC) by interpolation between the
    neighbouring days, reported; false refuses them (``hybridland.io.load_mopex``)."""
    warmup_days: int = 365
    """Days simulated before every loss window (and before validation) and excluded from the
    loss, so the stores forget the arbitrary initial state."""
    holdout_dry_years: float = 0.0
    """Fraction of each basin's calendar years, the driest by annual precipitation, whose
    observed runoff is hidden from training and validation (``hybridland.train.data.dry_years``
    over the years from ``train_period`` to the last period), so that they can serve as an
    unseen dry-extreme test; e.g. 0.1, the driest decile. 0 hides nothing."""

    def __post_init__(self):
        if self.loader not in _loader_names():
            _fail(self, "loader", f"unknown loader {self.loader!r}; known: {_loader_names()}")
        for name in ("train_period", "validation_period", "test_period"):
            period = getattr(self, name)
            if period is not None:
                _check_period(self, name, period)
        if self.basins is not None and self.n_basins is not None:
            _fail(self, "n_basins", "give either 'basins' or 'n_basins', not both")
        if self.basins is not None and len(self.basins) == 0:
            _fail(self, "basins", "must list at least one basin id (or be left out)")
        if self.aridity_range is not None:
            low, high = self.aridity_range
            if not 0 <= low < high:
                _fail(self, "aridity_range", f"must be [low, high] with 0 <= low < high, got "
                      f"{list(self.aridity_range)}")
            if self.basins is not None:
                _fail(self, "aridity_range", "give either 'basins' or 'aridity_range', not both")
        if self.n_basins is not None and self.n_basins < 1:
            _fail(self, "n_basins", f"must be >= 1, got {self.n_basins}")
        if self.warmup_days < 0:
            _fail(self, "warmup_days", f"must be >= 0, got {self.warmup_days}")
        if not 0 <= self.holdout_dry_years < 1:
            _fail(self, "holdout_dry_years", f"must be in [0, 1), got {self.holdout_dry_years}")

    def overlapping_periods(self) -> tuple[str, str] | None:
        """The first pair of periods (field names) that share a day, or None: the days scored
        for validation (early stopping) or test must be days the model never trained on."""
        named = [(n, [_dt.date.fromisoformat(str(d)) for d in getattr(self, n)])
                 for n in ("train_period", "validation_period", "test_period")
                 if getattr(self, n)]
        for i, (a, pa) in enumerate(named):
            for b, pb in named[i + 1 :]:
                if max(pa[0], pb[0]) <= min(pa[1], pb[1]):
                    return a, b
        return None

    def refuse_overlapping_periods(self) -> None:
        """``ConfigError`` naming the two periods and their shared days when a day is in more
        than one of them (training or calibration, validation, test)."""
        overlap = self.overlapping_periods()
        if overlap is None:
            return
        a, b = ([_dt.date.fromisoformat(str(d)) for d in getattr(self, n)] for n in overlap)
        _fail(self, overlap[1], f"{b[0]} .. {b[1]} overlaps data.{overlap[0]} {a[0]} .. "
              f"{a[1]} (shared days {max(a[0], b[0])} .. {min(a[1], b[1])}), so the model "
              "would be scored on days it was trained or selected on; make the training, "
              "validation and test periods disjoint")

    @property
    def span(self) -> tuple[_dt.date, _dt.date]:
        """First day to load (earliest period start minus warm-up) and last day to load."""
        periods = [p for p in (self.train_period, self.validation_period, self.test_period) if p]
        first = min(_dt.date.fromisoformat(p[0]) for p in periods)
        last = max(_dt.date.fromisoformat(p[1]) for p in periods)
        return first - _dt.timedelta(days=self.warmup_days), last


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which column model, which of its parts learn, what the networks see."""

    SECTION: ClassVar[str] = "model"
    kind: str = "hybrid"
    """Name in ``hybridland.column.MODEL_KINDS``: physics, hybrid (both the closure-exact bucket)
    or lstm (a pure data-driven ``LSTMRunoff``: no stores, no physical parameters)."""
    pet: str = "given"
    """PET law name in ``hybridland.physics.pet.PET_LAWS`` (for lstm: its PET input)."""
    width: int = 16
    """Hidden units of each network layer (lstm: of each LSTM layer)."""
    depth: int = 2
    """Hidden layers of each MLP (lstm: stacked LSTM layers, >= 1)."""
    trainable_params: tuple[str, ...] = ()
    """Physical parameters (``PARAMETER_BOUNDS`` names) the optimiser calibrates; the others
    stay at their defaults."""
    per_basin_params: bool = True
    """True: one value of each trainable parameter per basin; False: one shared value."""
    parameter_network: bool = False
    """True: the trainable parameters come from a network of the static attributes
    (``ParameterNetwork``, regional learning that transfers to unseen basins) instead of
    per-basin or shared values."""
    parameter_width: int = 32
    parameter_depth: int = 2
    root_zone_prior: bool = False
    """True: each component's soil capacity is the basin's mass-curve root-zone storage
    (``log_root_zone_storage``, which must be a static attribute) times a factor learned per
    component and shared by all basins; the parameter network no longer predicts
    ``root_depth``, and ``theta_cap``/``theta_wp`` stay at their defaults
    (``ParameterNetwork``'s ``storage_prior``)."""
    static_attributes: tuple[str, ...] = ()
    """Static basin attributes fed to the networks (normalised on the training basins; for
    lstm: concatenated to the dynamic inputs every day)."""
    clip_attributes: bool = False
    """True: every network sees each static attribute clipped into the range it spans over
    the training basins, so a basin of a climate never trained on gets what the nearest
    training climate gets, not an extrapolation (the root-zone prior still uses the basin's
    own storage)."""
    # The bucket's laws and structure; None: the kind's default (hybridland.column
    # KIND_STRUCTURES), spelled out in the resolved configuration.
    et_law: str | None = None
    """ET stress law: threshold, shaped (to the power et_shape) or mlp."""
    runoff_law: str | None = None
    """Runoff partition law: power or mlp."""
    fast_reservoir: bool | None = None
    """A fast reservoir (quick flow, interflow, percolation to groundwater)."""
    capillary_rise: bool | None = None
    """Capillary rise from groundwater into the root zone."""
    nonlinear_drainage: bool | None = None
    """Soil drainage soil_drainage x S x (S / Smax) ** drainage_shape, vanishing as the soil
    dries (false: linear in the store)."""
    infiltration_excess: bool | None = None
    """Infiltration capped at infiltration_capacity mm day-1, the rest of the water input
    running off at the surface (Horton's infiltration excess)."""
    groundwater_loss: bool | None = None
    """Groundwater also leaves the column other than by the outlet, at most loss_rate mm
    day-1 (deep percolation, export): a water output of its own in the budget."""
    routing_days: int | None = None
    """0: no routing; else the length in days of the gamma unit-hydrograph routing store."""
    components: int | None = None
    """Parallel buckets per column, each with its own parameters, averaged."""
    dynamic_params: tuple[str, ...] | None = None
    """Parameters given a new value every day by a sequence network of the forcing and the
    static attributes (``DailyParameterLSTM``); they are not in ``trainable_params``."""
    dynamic_width: int = 64
    """Hidden units of the sequence network of the dynamic parameters."""
    dynamic_depth: int = 1
    """LSTM layers of the sequence network of the dynamic parameters."""

    def __post_init__(self):
        if self.kind not in _model_kinds():
            _fail(self, "kind", f"unknown model kind {self.kind!r}; known: {_model_kinds()}")
        self._resolve_structure()
        if self.pet not in PET_LAWS:
            _fail(self, "pet", f"unknown PET law {self.pet!r}; known: {sorted(PET_LAWS)}")
        if self.width < 1:
            _fail(self, "width", f"must be >= 1, got {self.width}")
        if self.depth < 0:
            _fail(self, "depth", f"must be >= 0, got {self.depth}")
        unknown = [p for p in self.trainable_params if p not in PARAMETER_BOUNDS]
        if unknown:
            _fail(self, "trainable_params", f"unknown {unknown}; known: {sorted(PARAMETER_BOUNDS)}")
        if len(set(self.trainable_params)) != len(self.trainable_params):
            _fail(self, "trainable_params", "lists a parameter twice")
        unknown = [a for a in self.static_attributes if a not in STATIC_ATTRIBUTES]
        if unknown:
            _fail(self, "static_attributes", f"unknown {unknown}; known: {list(STATIC_ATTRIBUTES)}")
        if len(set(self.static_attributes)) != len(self.static_attributes):
            _fail(self, "static_attributes", "lists an attribute twice")
        if self.kind == "lstm":
            from ..column import Structure

            given = [f.name for f in dataclasses.fields(Structure) if getattr(self, f.name)
                     is not None]
            if given:
                _fail(self, given[0], "is a setting of the bucket and must be left out for kind "
                      "lstm")
            if self.trainable_params:
                _fail(self, "trainable_params", "must be empty for kind lstm: a pure data-driven "
                      "LSTM has no physical parameters; remove it, or use kind: hybrid")
            if self.parameter_network:
                _fail(self, "parameter_network", "must be false for kind lstm: a pure "
                      "data-driven LSTM has no physical parameters; remove it, or use kind: "
                      "hybrid")
            if self.depth < 1:
                _fail(self, "depth", f"is the number of stacked LSTM layers for kind lstm and "
                      f"must be >= 1, got {self.depth}")
        if self.kind != "lstm":
            self._check_structure()
        if self.clip_attributes and not self.static_attributes:
            _fail(self, "clip_attributes", "needs static_attributes (there is nothing to clip)")
        if self.parameter_network and not (self.static_attributes and self.trainable_params):
            _fail(self, "parameter_network", "needs static_attributes and trainable_params")
        if self.root_zone_prior and not (
            self.parameter_network
            and "root_depth" in self.trainable_params
            and "log_root_zone_storage" in self.static_attributes
            and not {"theta_cap", "theta_wp"} & set(self.trainable_params)
        ):
            _fail(self, "root_zone_prior", "needs parameter_network: true, root_depth in "
                  "trainable_params (theta_cap and theta_wp not: the prior sets the "
                  "capacity) and log_root_zone_storage in static_attributes")
        if self.parameter_width < 1 or self.parameter_depth < 0:
            _fail(self, "parameter_width", "width must be >= 1 and parameter_depth >= 0")


    def _resolve_structure(self) -> None:
        """Fill the structure fields left None with the kind's defaults (none for lstm)."""
        from ..column import KIND_STRUCTURES

        default = KIND_STRUCTURES.get(self.kind)
        for f in dataclasses.fields(default) if default is not None else ():
            if getattr(self, f.name) is None:
                object.__setattr__(self, f.name, getattr(default, f.name))

    def _check_structure(self) -> None:
        from ..column import ET_LAWS, RUNOFF_LAWS

        if self.et_law not in ET_LAWS:
            _fail(self, "et_law", f"unknown ET law {self.et_law!r}; known: {list(ET_LAWS)}")
        if self.runoff_law not in RUNOFF_LAWS:
            _fail(self, "runoff_law", f"unknown runoff law {self.runoff_law!r}; known: "
                  f"{list(RUNOFF_LAWS)}")
        if self.routing_days < 0 or self.routing_days == 1:
            _fail(self, "routing_days", f"must be 0 (no routing) or >= 2 days, got "
                  f"{self.routing_days}")
        if self.components < 1:
            _fail(self, "components", f"must be >= 1, got {self.components}")
        unknown = [p for p in self.dynamic_params if p not in PARAMETER_BOUNDS]
        if unknown:
            _fail(self, "dynamic_params", f"unknown {unknown}; known: {sorted(PARAMETER_BOUNDS)}")
        routed = [p for p in self.dynamic_params if p in ROUTING_PARAMETERS]
        if routed:
            _fail(self, "dynamic_params", f"lists {routed}: a column routes its runoff through "
                  "one unit hydrograph for the whole run, so they cannot vary by day; move them "
                  "to trainable_params")
        capacity = [p for p in self.dynamic_params if p in CAPACITY_PARAMETERS]
        if capacity:
            _fail(self, "dynamic_params", f"lists {capacity}: the soil capacity cannot vary by "
                  "day (a capacity that falls spills soil water that no input brought); move "
                  "them to trainable_params")
        both = sorted(set(self.dynamic_params) & set(self.trainable_params))
        if both:
            _fail(self, "dynamic_params", f"{both} are also in trainable_params; a parameter is "
                  "either static (trainable_params) or day-varying (dynamic_params)")
        if self.dynamic_width < 1 or self.dynamic_depth < 1:
            _fail(self, "dynamic_width", "dynamic_width and dynamic_depth must be >= 1")
        used = _parameter_names(self.kind, tuple(self.structure().items()))
        for name in ("trainable_params", "dynamic_params"):
            unused = [p for p in getattr(self, name) if p not in used]
            if unused:
                _fail(self, name, f"lists {unused}, which this model's laws and structure do not "
                      "use (a fast reservoir, capillary rise, non-linear drainage, infiltration "
                      "excess, a groundwater loss, routing or the shaped ET law bring their own "
                      f"parameters){self._switches_for(unused)}")

    def _switches_for(self, unused: list[str]) -> str:
        """Which boolean structure switch of this kind would bring each unused parameter
        ("; set model.infiltration_excess: true for infiltration_capacity"), or nothing."""
        structure = self.structure()
        hints = []
        for switch, value in structure.items():
            if value is not False:  # only the off boolean switches
                continue
            brought = set(_parameter_names(self.kind, tuple({**structure, switch: True}.items())))
            named = [p for p in unused if p in brought]
            if named:
                hints.append(f"set model.{switch}: true for {', '.join(named)}")
        return "; " + "; ".join(hints) if hints else ""

    def structure(self) -> dict:
        """The laws and structure of the bucket, as ``hybridland.column.build_model`` keywords."""
        from ..column import Structure

        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Structure)}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimiser, schedule, mini-batches, loss, stopping."""

    SECTION: ClassVar[str] = "training"
    epochs: int = 10
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    """Decoupled weight decay of adamw (ignored by adam)."""
    schedule: Literal["none", "cosine", "exponential", "plateau"] = "none"
    """cosine and exponential decay with the optimiser's steps (cosine over the ``epochs``
    bound, so a larger bound changes the rate of every epoch); plateau keeps the rate until
    the validation loss stalls (``plateau_patience``) and then multiplies it by ``decay_rate``:
    it does not depend on the bound, so a run given more epochs and patience repeats the
    shorter run's epochs exactly and only goes on from where that one stopped."""
    warmup_steps: int = 0
    """Optimiser steps of linear learning-rate warm-up from 0 (any schedule)."""
    decay_rate: float = 0.5
    """exponential: learning-rate factor per epoch; cosine: final fraction of the peak rate;
    plateau: factor at each reduction."""
    plateau_patience: int = 10
    """plateau: epochs without a better validation loss (since the best or the last reduction)
    after which the learning rate is multiplied by ``decay_rate``."""
    batch_basins: int = 8
    """Basins per mini-batch (capped at the number of basins)."""
    window_days: int = 365
    """Length of each mini-batch time window in the loss (after ``data.warmup_days``)."""
    batches_per_epoch: int | None = None
    """None: ceil(basins / batch_basins) x max(1, training days // window_days)."""
    loss: Literal["nse", "mse", "kge"] = "nse"
    extreme_weight: float = 0.0
    """lambda of the low-flow weighting; see ``hybridland.train.losses``. 0 disables it."""
    patience: int | None = None
    """Stop after this many epochs without a better validation loss; None: never."""
    validate_every: int = 1
    """Score the validation period after every this many epochs (and after the last): the
    best weights are chosen among those epochs. The optimiser's path does not depend on it."""
    clip_norm: float | None = 1.0
    """Clip gradients to this global norm; None: no clipping."""
    init_from: str | None = None
    """Fine-tuning: a finished run directory whose weights (networks, parameter network, shared
    parameters; per-basin parameters start at that run's median) and attribute normalisation
    this run starts from. Model settings must match."""

    def __post_init__(self):
        if self.epochs < 1:
            _fail(self, "epochs", f"must be >= 1, got {self.epochs}")
        if not 0 < self.learning_rate < math.inf:
            _fail(self, "learning_rate", f"must be a finite number > 0, got {self.learning_rate}")
        if not 0 <= self.weight_decay < math.inf:
            _fail(self, "weight_decay", f"must be a finite number >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            _fail(self, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        if not 0 < self.decay_rate <= 1:
            _fail(self, "decay_rate", f"must be in (0, 1], got {self.decay_rate}")
        if self.plateau_patience < 1:
            _fail(self, "plateau_patience", f"must be >= 1, got {self.plateau_patience}")
        # both count epochs without a better validation loss, but only at validations (every
        # validate_every epochs): the rate must fall at an earlier validation than the stop
        every = max(self.validate_every, 1)
        if (self.schedule == "plateau" and self.patience is not None
                and -(-self.plateau_patience // every) >= -(-self.patience // every)):
            at = (f" (counted at validations, every {every} epochs: the rate would fall at the "
                  "validation that stops the run)" if every > 1 else "")
            _fail(self, "plateau_patience",
                  f"is {self.plateau_patience}, not below patience ({self.patience}){at}: the run "
                  "would stop before it ever trains at a reduced learning rate; make it smaller "
                  "than patience by at least validate_every epochs (for instance a third of it)")
        if self.batch_basins < 1:
            _fail(self, "batch_basins", f"must be >= 1, got {self.batch_basins}")
        if self.window_days < 2:
            _fail(self, "window_days", f"must be >= 2, got {self.window_days}")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            _fail(self, "batches_per_epoch", f"must be >= 1, got {self.batches_per_epoch}")
        if not 0 <= self.extreme_weight < math.inf:
            _fail(self, "extreme_weight",
                  f"must be a finite number >= 0, got {self.extreme_weight}")
        if self.validate_every < 1:
            _fail(self, "validate_every", f"must be >= 1, got {self.validate_every}")
        if self.patience is not None and self.patience < 1:
            _fail(self, "patience", f"must be >= 1, got {self.patience}")
        if self.clip_norm is not None and not 0 < self.clip_norm < math.inf:
            _fail(self, "clip_norm", f"must be a finite number > 0 (or null: no clipping), got "
                  f"{self.clip_norm}")


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole training run."""

    data: DataConfig
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def __post_init__(self):
        if self.model.pet == "given" and self.data.pet != "given":
            _fail(
                self.model,
                "pet",
                f"PET law 'given' needs the file's PE, but data.pet is {self.data.pet!r}; set "
                "data.pet: given or choose a derived law (hargreaves, oudin)",
            )
        needs_pe = {"mean_pet", "aridity", "log_mean_pet", "log_aridity", "root_zone_storage",
                    "log_root_zone_storage"} & set(self.model.static_attributes)
        if needs_pe and self.data.pet != "given":
            _fail(
                self.model,
                "static_attributes",
                f"{sorted(needs_pe)} need the file's PE; set data.pet: given",
            )
        if self.model.kind == "physics" and not self.model.trainable_params:
            _fail(
                self.model,
                "trainable_params",
                "a physics model has nothing to train unless some parameters are trainable",
            )
        if (
            self.model.kind == "physics"
            and self.model.static_attributes
            and not self.model.parameter_network
        ):
            _fail(
                self.model,
                "static_attributes",
                "only networks use them (kind: hybrid, or parameter_network: true)",
            )
        self.data.refuse_overlapping_periods()
        train_days = _days(self.data.train_period)
        if self.training.window_days > train_days:
            _fail(
                self.training,
                "window_days",
                f"is {self.training.window_days} but the training period has {train_days} days",
            )

    def to_dict(self) -> dict:
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in _SECTIONS}

    def to_yaml(self) -> str:
        """The resolved configuration (every field, defaults included) as YAML, which
        ``config_from_yaml`` reads back to this configuration (``_ConfigDumper``)."""
        return yaml.dump(self.to_dict(), Dumper=_ConfigDumper, sort_keys=False,
                         default_flow_style=None)

    def replace(self, section: str, **changes) -> Config:
        """A copy with ``changes`` to one section (validated again)."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)}
        )


_SECTIONS = {"run": RunConfig, "data": DataConfig, "model": ModelConfig, "training": TrainingConfig}


# ---------------------------------------------------------------------------------------------
# Loading


class _TextDates(yaml.SafeLoader):
    """YAML as configuration files are read: an unquoted date stays the text it was written
    as, so a day that does not exist (``1981-02-29``) reaches the period checks, which name the
    key, instead of failing inside the parser with a message that names neither key nor file."""

    def construct_mapping(self, node, deep=False):
        # A key given twice in one mapping is refused: plain YAML keeps the last one silently,
        # so a setting the user believes in (the first) would not be the one used.
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} twice (first on line {seen[key] + 1}, again on line "
                    f"{key_node.start_mark.line + 1}); keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# Numbers as a configuration means them. YAML 1.1 (PyYAML's default) reads a leading zero as
# octal, so a gauge id written without quotes changed silently (01064500 became 289088, while
# 01098500, not octal, stayed text), reads 1:30 as 90, and reads 1e-3 as text (a float needs a
# dot there). Here a plain scalar is an integer only in decimal without a leading zero (0 itself
# excepted), a leading zero keeps the text as written (an id), and a float needs a dot or an
# exponent.
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
_TextDates.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _NUMBERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "-+0123456789.":
    _TextDates.yaml_implicit_resolvers[_first] = (
        [("tag:yaml.org,2002:int", _INT)] * (_first != ".")
        + [("tag:yaml.org,2002:float", _FLOAT)]
        + _TextDates.yaml_implicit_resolvers.get(_first, [])
    )


class _ConfigDumper(yaml.SafeDumper):
    """``yaml.safe_dump`` that quotes a text the configuration loader (``_TextDates``) would
    read as a number: PyYAML's own rules wrote ``run.name: 1e-3`` or a basin ``1e5`` plain
    (text in YAML 1.1), which the loader reads as a float, and the run's config.yaml could not
    be read again (every evaluation of the finished run failed)."""


_READ_AS = _TextDates("")  # resolves a plain scalar as configuration files are read


def _represent_text(dumper: _ConfigDumper, value: str):
    node = dumper.represent_str(value)
    text = "tag:yaml.org,2002:str"
    # quoted here only where PyYAML would not quote it itself (a style set on the node also
    # turns a list that holds it from [a, b] into one item per line): the text of every other
    # configuration stays as it was written before
    if (_READ_AS.resolve(yaml.ScalarNode, value, (True, False)) != text
            and dumper.resolve(yaml.ScalarNode, value, (True, False)) == text):
        node.style = "'"
    return node


_ConfigDumper.add_representer(str, _represent_text)


def load_yaml(stream):
    """``yaml.safe_load`` of a configuration, dates kept as text (``_TextDates``)."""
    return yaml.load(stream, Loader=_TextDates)  # noqa: S506 - a SafeLoader subclass


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a YAML run configuration; raises ``ConfigError`` naming the problem.

    A top-level ``base: OTHER.yaml`` (relative to this file) starts from that configuration:
    each section given here updates the base's section key by key (a key set here replaces the
    base's value whole; an empty section changes nothing), sections not given are the base's.
    Bases may have bases of their own.
    """
    return load_with_base(path, config_from_dict)


def load_with_base(path: str | os.PathLike, build):
    """``build`` (a function of the parsed mapping) of the file ``path`` with its ``base:``
    chain merged in; a ``ConfigError`` from ``build`` is raised again naming the file and its
    bases."""
    path = os.fspath(path)
    chain: list[str] = []
    raw = read_with_base(path, files=chain)
    try:
        return build(raw)
    except ConfigError as err:
        bases = f" (with its base {' -> '.join(chain[1:])})" if len(chain) > 1 else ""
        raise ConfigError(f"{path}{bases}: {err}") from None


def read_yaml_file(path: str | os.PathLike, what: str):
    """The parsed YAML of the file ``path``; ``ConfigError`` starting with ``what`` (the file,
    as the message names it) for a file that is missing, a folder, unreadable, not UTF-8 text
    (a binary file given by mistake) or not valid YAML."""
    try:
        with open(path, encoding="utf-8") as f:
            return load_yaml(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a folder; give a YAML file.") from None
    except OSError as err:
        raise ConfigError(f"{what} cannot be read: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} is not a YAML text file (byte {err.start} is not UTF-8 "
                          "text); give the YAML configuration, not a binary file.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} is not valid YAML: {err}") from None


def read_with_base(path: str | os.PathLike, *, files: list[str] | None = None):
    """The YAML mapping of a configuration file with its ``base:`` chain merged in (see
    ``load_config``); ``files`` (when given) receives the files read, this one first.
    ``ConfigError`` for a file that is missing or unreadable, a ``base`` that is not a file
    name, or a chain that comes back to a file already in it."""
    files = [] if files is None else files
    path = os.fspath(path)
    here = os.path.realpath(path)  # a base is relative to the file itself, not to a link to it
    where = f" (the base of {files[-1]})" if files else ""
    raw = read_yaml_file(path, f"Configuration file {path}{where}")
    files.append(here)
    if not isinstance(raw, dict) or "base" not in raw:
        return raw
    raw = dict(raw)
    base = raw.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: 'base' must name another configuration file (relative to "
                          f"this one), got {base!r}.")
    base_path = os.path.normpath(os.path.join(os.path.dirname(here), base))
    if os.path.realpath(base_path) in files:
        raise ConfigError(f"{path}: 'base: {base}' comes back to a file already in its chain "
                          f"({' -> '.join(files)}); remove one of the 'base' keys.")
    merged = read_with_base(base_path, files=files)
    if not isinstance(merged, dict):
        raise ConfigError(f"{base_path} (the base of {path}) is not a mapping of sections.")
    merged = dict(merged)
    for section, value in raw.items():
        below = merged.get(section)
        if value is None:  # an empty section (every key commented out) changes nothing
            continue
        if isinstance(value, dict) and isinstance(below, dict):
            merged[section] = {**below, **value}
        else:
            merged[section] = value
    return merged


def config_from_yaml(text: str) -> Config:
    """``load_config`` for YAML text."""
    return config_from_dict(load_yaml(text))


def config_from_dict(raw) -> Config:
    """Build a ``Config`` from nested dicts (as parsed from YAML), validating every field."""
    return Config(**build_sections(raw, _SECTIONS, "at least train_period, validation_period"))


def build_sections(raw, sections: dict, data_keys: str, what: str = "A configuration") -> dict:
    """``{name: section}`` of a configuration mapping with the section classes ``sections``
    (each a dataclass with ``SECTION``); ``data`` is required (``data_keys`` says what it needs).
    Raises ``ConfigError`` naming the unknown section, key or bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{what} is a mapping with sections {sorted(sections)}; got {type(raw).__name__}."
        )
    unknown = sorted(set(map(str, raw)) - set(sections))
    if unknown:
        raise ConfigError(f"Unknown section(s) {unknown}; valid sections: {sorted(sections)}.")
    if "data" not in raw:
        raise ConfigError(f"Section 'data' is required ({data_keys}).")
    # a section written with nothing under it (None) changes nothing; anything else that is
    # not a mapping (a list, false, 0) is refused by _build, naming the section
    return {name: _build(cls, {} if raw.get(name) is None else raw[name])
            for name, cls in sections.items()}


def _build(cls, raw):
    section = cls.SECTION
    if not isinstance(raw, dict):
        raise ConfigError(f"Section '{section}' must be a mapping, got {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(
            f"Unknown key '{section}.{unknown[0]}'"
            + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
            + f"; valid keys of '{section}': {sorted(fields)}."
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"Missing required key(s) {[f'{section}.{m}' for m in missing]}.")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in raw.items()}
    return cls(**values)


def _coerce(value, tp, where: str):
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"'{where}' must be one of {list(args)}, got {value!r}.")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"'{where}' must be a list of {len(args)} items, got {value!r}.")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is str:
        if isinstance(value, (_dt.date, int)) and not isinstance(value, bool):
            return value.isoformat() if isinstance(value, _dt.date) else str(value)
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{where}' must be an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ConfigError(f"'{where}' must be a number, got {value!r}.")
        return float(value)
    raise TypeError(f"unsupported annotation {tp} for {where}")  # a bug here, not in the YAML


# ---------------------------------------------------------------------------------------------
# Helpers


def _fail(section, field: str, message: str):
    raise ConfigError(f"'{section.SECTION}.{field}' {message}.")


def iso_date(text) -> _dt.date:
    """The day ``text`` names as ``YYYY-MM-DD``; ValueError otherwise, also for the other forms
    that ``date.fromisoformat`` takes (``19950101``, ``1995-W01-1``), which the readers of
    periods downstream cannot."""
    text = str(text)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD")
    return _dt.date.fromisoformat(text)


def _check_period(section, name: str, period) -> None:
    try:
        first, last = (iso_date(d) for d in period)
    except (ValueError, TypeError):
        days = [] if isinstance(period, str) else list(period)
        shaped = [d for d in days if len(str(d).split("-")) == 3 and str(d)[:4].isdigit()]
        if len(days) == 2 and shaped:
            # YYYY-MM-DD in form, but no day of the calendar (1981-02-29, 1981-13-01)
            bad = next(d for d in days if not _is_day(d))
            _fail(section, name, f"holds {bad}, which is not a valid date; give a real day as "
                  "YYYY-MM-DD (e.g. 1981-02-28)")
        _fail(section, name, f"must be two ISO dates [YYYY-MM-DD, YYYY-MM-DD], got {period!r}")
    if last < first:
        _fail(section, name, f"ends ({last}) before it starts ({first})")


def _is_day(text) -> bool:
    try:
        iso_date(text)
    except ValueError:
        return False
    return True


def _days(period: Period) -> int:
    first, last = (_dt.date.fromisoformat(d) for d in period)
    return (last - first).days + 1


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _loader_names() -> list[str]:
    from .data import LOADERS

    return sorted(LOADERS)


@functools.lru_cache(maxsize=64)
def _parameter_names(kind: str, structure_items) -> tuple[str, ...]:
    from ..column import build_model

    return build_model(kind, width=1, depth=1, dynamic_width=1, **dict(structure_items)).parameter_names


def _model_kinds() -> list[str]:
    from ..column import MODEL_KINDS

    return sorted(MODEL_KINDS)
