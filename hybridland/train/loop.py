"""The training loop: ``train(config, run_dir)`` and ``load_run(run_dir)``.

What is trained is one pytree, ``(model trainables, unconstrained physical parameters)``:
the network weights of the column model (``eqx.partition`` on inexact arrays; nothing for a
physical model) and, for each name in ``model.trainable_params``, the logit of the parameter's
position in its physical range (``Params.to_unconstrained``), per basin or shared. The other
parameters stay at their defaults. Optax updates that pytree, so every step lands on a
physically valid parameter set and, because closure is structural, on a closed water balance.
A ``model.kind: lstm`` run trains the same way: its trainables are the ``LSTMRunoff`` weights
and an empty parameter dict (its parameters, of which only the PET coefficient is used, stay at
their defaults), and its runoff comes from ``simulate_runoff`` like the buckets'.

**Mini-batches.** An epoch is ``batches_per_epoch`` batches of ``batch_basins`` basins, each
with its own window of ``window_days`` inside the training period, preceded by
``warmup_days`` that are simulated from ``model.init_state`` and left out of the loss. The
batches of epoch ``e`` are drawn from ``numpy.random.default_rng([seed, e])`` only, never from
consumed generator state, so a resumed run draws exactly the batches an uninterrupted run would.

**Run directory.** ``config.yaml`` (resolved), ``normalisation.json`` (static-attribute
statistics of the training basins and period), ``train.log``, ``metrics.csv`` (epoch,
train_loss, val_loss, val_median_nse, learning rate), ``checkpoints/`` (atomic, every epoch;
see ``checkpoint.py``), and at the end ``model.eqx`` (the best weights by validation loss) and
``run.json`` (basins, best epoch). ``train`` resumes from the newest intact checkpoint when the
saved configuration matches, and ends with bitwise the same weights as an uninterrupted run
(same machine and backend; XLA on CPU is deterministic).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import functools
import gc
import io
import json
import math
import numbers
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .. import metrics
from ..io._report import DataAdjustmentWarning
from .._containers import trainable as trainable_arrays
from .._params import ROUTING_PARAMETERS, Params, bounded, default_logit
from .._random import seed_key
from ..learned import LSTMRunoff, ParameterNetwork
from ..column import ColumnModel
from ..column import build_model as build_column_model
from ..solvers import check_forcing, simulate_runoff
from ..io._files import json_text
from . import checkpoint as ckpt
from .config import Config, TrainingConfig, config_from_yaml
from .data import DTYPE, Normalisation, RunData, basin_table, load_data, write_basin_table
from .losses import LOSSES

# ---------------------------------------------------------------------------------------------
# Model, parameters, optimiser


def build_model(config: Config, n_attributes: int) -> ColumnModel | LSTMRunoff:
    """The untrained model of ``config`` (weights seeded by ``run.seed``)."""
    key = seed_key(config.run.seed)
    m = config.model
    if m.kind == "lstm":
        return build_column_model(
            m.kind, pet=m.pet, key=key, n_attributes=n_attributes, width=m.width, depth=m.depth
        )
    return build_column_model(
        m.kind,
        pet=m.pet,
        key=key,
        n_attributes=n_attributes,
        width=m.width,
        depth=m.depth,
        dynamic_width=m.dynamic_width,
        dynamic_depth=m.dynamic_depth,
        **m.structure(),
    )


COMPONENT_JITTER = 0.5
"""Spread (standard deviation, unconstrained units) of the per-component starting values of
per-basin or shared parameters in a model of several components: identical components would
get identical gradients and stay identical."""


def init_trainables(
    config: Config, model: ColumnModel | LSTMRunoff, n_basins: int,
    normalisation: Normalisation | None = None,
):
    """``((model trainables, parameter trainables), model static part)``, parameters at their
    defaults: ``{param: unconstrained}`` per basin (``[basin]``, ``[basin, component]``) or
    shared (``[]``, ``[1, component]``), or a ``ParameterNetwork`` whose outputs are offsets
    from the defaults (seeded by ``run.seed``; with ``model.root_zone_prior`` or
    ``model.clip_attributes`` it needs the attribute ``normalisation``). With several components each component's starting value is
    the default plus a seeded offset (``COMPONENT_JITTER``)."""
    model_train, model_static = eqx.partition(model, eqx.is_inexact_array)
    m = config.model
    components = getattr(model, "components", 1)
    if m.parameter_network:
        key = jax.random.fold_in(seed_key(config.run.seed), 1)
        prior = None
        if m.root_zone_prior:
            if normalisation is None:
                raise ValueError("model.root_zone_prior needs the attribute normalisation.")
            j = normalisation.names.index("log_root_zone_storage")
            prior = (j, normalisation.mean[j], normalisation.std[j])
        bounds = None
        if m.clip_attributes:
            if normalisation is None or not normalisation.clips:
                raise ValueError("model.clip_attributes needs the attribute normalisation "
                                 "fitted with its training range.")
            bounds = (normalisation.lower, normalisation.upper)
        u = ParameterNetwork(
            m.trainable_params, len(m.static_attributes), m.parameter_width, m.parameter_depth,
            components, storage_prior=prior, attribute_bounds=bounds, key=key,
        )
        return (model_train, u), model_static
    rng = np.random.default_rng([config.run.seed, 1])
    u = {}
    for name in m.trainable_params:
        shape = (n_basins,) if m.per_basin_params else ()
        value = np.full(shape, default_logit(name))
        if components > 1 and name not in ROUTING_PARAMETERS:
            shape = (n_basins if m.per_basin_params else 1, components)
            value = default_logit(name) + COMPONENT_JITTER * rng.standard_normal(shape)
        u[name] = jnp.asarray(value, DTYPE)
    return (model_train, u), model_static


def bounded_params(u, basins, n: int, attributes=None) -> Params:
    """Physical ``Params`` ``[n]`` (``[n, component]`` where a parameter has components) from
    the parameter trainables (a sigmoid into each range).

    ``u`` is ``{param: unconstrained}`` (per basin, indexed by ``basins``, or shared: a scalar
    or a leading axis of 1) or a ``ParameterNetwork``, which needs the normalised
    ``attributes`` ``[n, n_attributes]`` of the ``n`` columns.
    """
    if isinstance(u, ParameterNetwork):
        if attributes is None:
            raise ValueError("A parameter network needs the columns' static attributes.")
        u = {name: default_logit(name) + v for name, v in u(attributes).items()}
        basins = None  # already one value per column
    values = {}
    for name, v in u.items():
        if v.ndim and basins is not None:
            v = v[basins] if v.shape[0] > 1 else jnp.broadcast_to(v, (n, *v.shape[1:]))
        values[name] = bounded(name, v)
    return Params.default(n, dtype=DTYPE, **values)


def fine_tuning_start(config: Config, start, n_basins: int):
    """The trainables of a run that starts from ``training.init_from``, whose
    ``load_trainables`` is ``start``: its network weights, parameter network or shared
    parameters, and for per-basin parameters the median of its calibrated values (the new
    basins are others). Raises ValueError if the model settings differ."""
    model, u, _, old = start
    if old.model != config.model:
        diffs = [
            f"{f.name}: {getattr(old.model, f.name)!r} -> {getattr(config.model, f.name)!r}"
            for f in dataclasses.fields(config.model)
            if getattr(old.model, f.name) != getattr(config.model, f.name)
        ]
        raise ValueError(
            f"training.init_from {config.training.init_from} has other model settings ("
            + "; ".join(diffs) + "); fine-tuning needs the same model section."
        )
    if isinstance(u, dict) and config.model.per_basin_params:
        u = {
            k: jnp.broadcast_to(jnp.median(v, axis=0), (n_basins, *v.shape[1:])).astype(DTYPE)
            for k, v in u.items()
        }
    return eqx.filter(model, eqx.is_inexact_array), u


def steps_per_epoch(config: Config, data: RunData) -> int:
    t = config.training
    if t.batches_per_epoch is not None:
        return t.batches_per_epoch
    first, last = data.periods["train"]
    per_basin = max(1, (last - first + 1) // t.window_days)
    return math.ceil(data.n_basins / min(t.batch_basins, data.n_basins)) * per_basin


def learning_rate_schedule(t: TrainingConfig, n_steps_epoch: int) -> optax.Schedule:
    """Linear warm-up from 0 over ``warmup_steps``, then constant, cosine or exponential
    (plateau: constant; the training loop lowers the factor that ``build_optimizer`` adds)."""
    lr, warm = t.learning_rate, t.warmup_steps
    total = t.epochs * n_steps_epoch
    if t.schedule in ("none", "plateau"):
        main = optax.constant_schedule(lr)
    elif t.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(total - warm, 1), alpha=t.decay_rate)
    else:
        main = optax.exponential_decay(lr, n_steps_epoch, t.decay_rate)
    if warm == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])


@functools.lru_cache(maxsize=8)
def build_optimizer(t: TrainingConfig, n_steps_epoch: int) -> optax.GradientTransformation:
    """The optax chain of ``t`` (cached so repeated runs reuse compiled steps)."""
    schedule = learning_rate_schedule(t, n_steps_epoch)
    if t.optimizer == "adam":
        opt = optax.adam(schedule)
    else:
        opt = optax.adamw(schedule, weight_decay=t.weight_decay)
    parts = [optax.clip_by_global_norm(t.clip_norm)] if t.clip_norm is not None else []
    if t.schedule == "plateau":  # a factor on the updates, in the state so checkpoints keep it
        return optax.chain(*parts, opt, optax.inject_hyperparams(optax.scale)(step_size=1.0))
    return optax.chain(*parts, opt)


def plateau_factor(opt_state) -> float:
    """The factor a plateau schedule's reductions have put on the learning rate so far."""
    return float(opt_state[-1].hyperparams["step_size"])


def _reduced(opt_state, factor: float):
    """``opt_state`` (of a plateau schedule's optimiser) with its learning-rate factor set."""
    last = opt_state[-1]
    size = last.hyperparams["step_size"]
    hyper = dict(last.hyperparams, step_size=jnp.asarray(factor, dtype=size.dtype))
    return (*opt_state[:-1], last._replace(hyperparams=hyper))


# ---------------------------------------------------------------------------------------------
# Steps


class LossSpec(NamedTuple):
    warmup: int
    loss: str
    extreme_weight: float


def _simulate_runoff(trainable, static, forcing, basins, attributes, warmup: int):
    """``attributes``: the columns' normalised attributes as they are, not ``forcing``'s view
    clipped into the training range: the parameter network clips its own MLP input, and its
    storage prior reads the basin's own storage, in training as in evaluation (``column_params``;
    a fine-tuning basin outside the start run's range was trained with one storage and scored
    with another)."""
    model_train, u = trainable
    model = eqx.combine(model_train, static)
    n = forcing.precip.shape[0]
    params = bounded_params(u, basins, n, attributes)
    # The loss leaves out the warm-up days: no gradient flows back through the bucket's spin-up.
    return simulate_runoff(model, forcing, params, warmup=warmup)


def _batch_loss(trainable, static, forcing, obs, obs_std, obs_mean, basins, attributes,
                spec: LossSpec):
    runoff = _simulate_runoff(trainable, static, forcing, basins, attributes, spec.warmup)
    return LOSSES[spec.loss](
        obs[:, spec.warmup :],
        runoff[:, spec.warmup :],
        obs_std=obs_std,
        obs_mean=obs_mean,
        extreme_weight=spec.extreme_weight,
    )


@eqx.filter_jit
def _train_step(trainable, static, opt_state, optim, batch, spec):
    loss, grads = eqx.filter_value_and_grad(_batch_loss)(trainable, static, *batch, spec)
    updates, opt_state = optim.update(
        trainable_arrays(grads), opt_state, trainable_arrays(trainable))
    return eqx.apply_updates(trainable, updates), opt_state, loss


@eqx.filter_jit
def _evaluate(trainable, static, batch, spec):
    forcing, obs, obs_std, obs_mean, basins, attributes = batch
    runoff = _simulate_runoff(trainable, static, forcing, basins, attributes, spec.warmup)
    loss = LOSSES[spec.loss](
        obs[:, spec.warmup :],
        runoff[:, spec.warmup :],
        obs_std=obs_std,
        obs_mean=obs_mean,
        extreme_weight=spec.extreme_weight,
    )
    return loss, metrics.nse(obs[:, spec.warmup :], runoff[:, spec.warmup :])


def epoch_batches(config: Config, data: RunData, epoch: int, n_batches: int):
    """``[(basins, window starts incl. warm-up)]`` of ``epoch``, from ``(seed, epoch)`` only."""
    rng = np.random.default_rng([config.run.seed, epoch])
    t = config.training
    first, last = data.periods["train"]
    size = min(t.batch_basins, data.n_basins)
    out = []
    for _ in range(n_batches):
        basins = np.sort(rng.choice(data.n_basins, size, replace=False))
        starts = rng.integers(first, last - t.window_days + 2, size=size)
        out.append((basins, starts - config.data.warmup_days))
    return out


def _batch(data: RunData, basins, starts, length):
    return (
        data.forcing(basins, starts, length),
        jnp.asarray(data.observed(basins, starts, length)),
        jnp.asarray(data.obs_std[basins]),
        jnp.asarray(data.obs_mean[basins]),
        jnp.asarray(basins),
        data.column_attributes(basins),
    )


# ---------------------------------------------------------------------------------------------
# train


@dataclasses.dataclass
class TrainResult:
    """Outcome of ``train``: the best model and parameters by validation loss, and history."""

    model: ColumnModel | LSTMRunoff
    params: Params
    """Physical parameters ``[basin]`` (all at their defaults for an lstm run)."""
    normalisation: Normalisation
    history: list[dict]
    best_epoch: int | None
    best_val_loss: float | None
    epochs_completed: int
    stopped_early: bool
    finished: bool
    """False when ``max_epochs_this_call`` ended the call before the run was done."""
    run_dir: Path
    basins: tuple[str, ...]


class _Logger:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self, message: str) -> None:
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        with open(self.path, "a") as f:
            f.write(f"{stamp} {message}\n")


_CSV_FIELDS = ("epoch", "train_loss", "val_loss", "val_median_nse", "learning_rate", "seconds")


def _write_metrics(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, _CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    ckpt.atomic_write_text(path, buf.getvalue())


def train(
    config: Config,
    run_dir: str | os.PathLike,
    *,
    max_epochs_this_call: int | None = None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    report: bool = True,
    continue_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``config`` in ``run_dir`` (created if needed), resuming from its last checkpoint.

    ``continue_from``: a run directory of the same configuration with no more epochs and
    patience than ``config``'s, whose newest checkpoint (weights, optimiser state, history and
    early-stopping count) this run starts from when ``run_dir`` has none of its own: with a
    schedule that does not depend on the epochs bound (``CONTINUABLE_SCHEDULES``) a longer run
    repeats the shorter one's epochs exactly, so it ends as if trained from the start, without
    training those epochs again (``continued_from.json`` in ``run_dir`` names them).

    ``max_epochs_this_call`` stops after that many epochs (the run can be continued by calling
    ``train`` again); ``callback(epoch, metrics_row)`` runs after each epoch's checkpoint. When
    the run finishes, ``basins.csv`` (calibrated parameters, raw attributes) is written and,
    with ``report``, the validation/test metric tables and figures (``report.write_report``).
    Raises ``ckpt.RunFileError`` (a ``ValueError``) if ``run_dir`` holds a checkpoint of a
    different configuration, or a history that cannot be resumed (every checkpoint damaged):
    a run is never silently started again from epoch 0; also if ``run_dir`` is a non-empty
    folder that is not a run directory (``check_run_directory``); and ``ckpt.RunLockedError``
    (also a ``RunFileError``) while another process trains in ``run_dir`` (``ckpt.hold_run``).
    The run directory is written only once the configuration and the data have loaded.
    """
    if max_epochs_this_call is not None and (
        isinstance(max_epochs_this_call, bool)
        or not isinstance(max_epochs_this_call, numbers.Integral)
        or max_epochs_this_call < 1
    ):
        raise ValueError(
            f"max_epochs_this_call must be a positive integer or None, got "
            f"{max_epochs_this_call!r}; leave it out to train the run to its end.")
    run_dir = Path(run_dir)
    with ckpt.hold_run(run_dir):  # one training per run directory at a time
        return _train_held(config, run_dir, max_epochs_this_call, callback, progress, report,
                           continue_from)


CONTINUABLE_SCHEDULES = ("none", "exponential", "plateau")
"""Schedules whose learning rate does not depend on ``training.epochs``: a run with a larger
bound takes the same steps as a shorter one (``train``'s ``continue_from``)."""

CONTINUED_FROM = "continued_from.json"
"""A continued run's record of the run and epochs it started from (``train``)."""


def _continuation(source: Path, config: Config) -> tuple[dict, bytes]:
    """The checkpoint (record, weights' bytes) a run of ``config`` continues from: the newest
    intact one of ``source`` that a run of ``config`` trained from the start would share,
    ``source`` checked to be a run of ``config`` with no more epochs and patience."""
    t = config.training
    if t.schedule not in CONTINUABLE_SCHEDULES:
        raise ckpt.RunFileError(
            f"training.schedule is {t.schedule!r}, which decays over the epochs bound: a run "
            f"with another bound takes other steps from the start, so it cannot continue "
            f"{source}. Train it from the start, or use a schedule among "
            f"{', '.join(CONTINUABLE_SCHEDULES)}.")
    saved = source / "config.yaml"
    try:
        src = _resolved(config_from_yaml(saved.read_text()))
    except Exception as err:  # noqa: BLE001 - missing, a YAML syntax error, a ConfigError
        raise ckpt.RunFileError(f"{source} is not a run to continue ({saved}: "
                                f"{type(err).__name__}: {err}).") from None
    s = src.training
    same = src.replace("training", epochs=t.epochs, patience=t.patience).replace(
        "run", name=config.run.name)
    if same != config:
        raise ckpt.RunFileError(
            f"{source} was trained with another configuration: a run continues one whose "
            "settings are its own but for training.epochs, training.patience and run.name."
            + _config_diff(same.to_yaml(), config))
    if t.epochs < s.epochs:
        raise ckpt.RunFileError(
            f"{source} trained with up to {s.epochs} epochs; a run that continues it needs at "
            f"least as many, got training.epochs {t.epochs}.")
    if (s.patience is None) != (t.patience is None) or (
            t.patience is not None and t.patience < s.patience):
        raise ckpt.RunFileError(
            f"{source} trained with training.patience {s.patience}, this run with {t.patience}: "
            "a run continues one with early stopping only with as much patience or more, and "
            "one without early stopping only without.")
    every, last = t.validate_every, s.epochs - 1

    def shared(epoch: int) -> bool:  # a run's last epoch is validated for being its last
        return not (epoch == last and (epoch + 1) % every and t.epochs > s.epochs)

    for marker in ckpt.checkpoint_markers(source):
        try:
            record, data = ckpt.read_checkpoint(marker)
        except ckpt.RunFileError:
            continue
        if shared(record["epoch"]):
            return record, data
    raise ckpt.RunFileError(
        f"{source} has no intact checkpoint of an epoch this run shares with it (its last epoch "
        "was validated because it was its last, which a longer run does not do): train it "
        "first, or train this run without --continue-from.")


RUN_MARKERS = ("run.json", ckpt.CHECKPOINT_DIR, "normalisation.json")
"""What makes a folder a run directory of this project, each as this project writes it
(``is_run_directory``): ``train`` writes ``config.yaml`` before anything else of its own
(``train.log`` when it has something to log first), then ``normalisation.json``,
``checkpoints/`` every epoch and ``run.json`` at the end. A ``config.yaml`` (with a
``train.log``, and for a run continuing another a ``continued_from.json`` and an empty
``checkpoints/``) alone is a run's only while the folder holds nothing else and the file is the
one the training writes (a training stopped before its first checkpoint): otherwise it may be
the user's own."""


def is_run_directory(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds one of ``RUN_MARKERS`` as a training writes it: ``run.json``
    or ``normalisation.json`` with their keys, or a ``checkpoints/`` folder of epoch
    checkpoints and nothing else (temporary files aside). A file of that name that a user keeps
    is not, nor is an empty folder of that name."""

    def json_keys(name: str) -> set:
        try:
            document = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return set()
        return set(document) if isinstance(document, dict) else set()

    if {"model_sha256", "epochs_completed"} & json_keys("run.json"):
        return True
    if {"names", "mean", "std"} <= json_keys("normalisation.json"):
        return True
    folder = run_dir / ckpt.CHECKPOINT_DIR
    if not folder.is_dir():
        return False
    names = [p for p in folder.iterdir() if not ckpt.is_temporary(p)]
    return bool(names) and all(ckpt.CHECKPOINT_FILE.match(p.name) for p in names)


# What a training leaves before its first checkpoint (or a run continuing another one, before
# the checkpoint it takes over): its configuration, its log, the record of the continued run and
# an empty checkpoints folder. Such a folder is taken up again as a run directory when its
# config.yaml is the one the training writes.
_STARTED = {"config.yaml", "train.log", CONTINUED_FROM, ckpt.CHECKPOINT_DIR}


RUN_OUTPUTS = (
    "config.yaml", "normalisation.json", "train.log", "metrics.csv", ckpt.CHECKPOINT_DIR,
    CONTINUED_FROM,
    "model.eqx", "basins.csv", "run.json", "metrics_validation.csv", "metrics_test.csv",
    "plots/training_curves.png", "plots/metric_cdf.png",
    "plots/hydrographs_validation.png", "plots/hydrographs_test.png",
    "plots/water_budget_validation.png", "plots/water_budget_test.png",
)
"""Every file (and the ``checkpoints/`` folder) a training writes in its run directory: the
run's own files, which no other command may replace (``run_outputs``). The metric tables and
figures are those of ``report.write_report``."""


def run_outputs(run_dir: str | os.PathLike) -> list[Path]:
    """The paths of ``RUN_OUTPUTS`` in ``run_dir``, with the files now in its ``checkpoints/``
    and ``plots/`` folders: what a command writing beside a run must never overwrite."""
    run_dir = Path(run_dir)
    paths = [run_dir / name for name in RUN_OUTPUTS]
    for folder in (ckpt.CHECKPOINT_DIR, "plots"):
        if (run_dir / folder).is_dir():
            paths += sorted(p for p in (run_dir / folder).iterdir() if p not in paths)
    return paths


def check_run_directory(run_dir: Path, config: Config | None = None) -> None:
    """Refuse (``ckpt.RunFileError``) a ``run_dir`` that exists, holds files and is not a run
    directory of this project (none of ``RUN_MARKERS``): training would overwrite files there
    (its ``metrics.csv``, its ``plots/``...) that belong to someone else. With ``config`` (the
    resolved configuration about to be trained), also a lone ``config.yaml`` other than the
    one that training writes: a user's own file (often the ``--config`` given), which the
    training's resolved dump would replace."""
    if not run_dir.is_dir() or is_run_directory(run_dir):
        return
    found = sorted(p.name for p in run_dir.iterdir() if not ckpt.is_temporary(p))
    folder = run_dir / ckpt.CHECKPOINT_DIR
    started = ("config.yaml" in found and set(found) <= _STARTED
               and (not folder.exists() or folder.is_dir()
                    and all(ckpt.is_temporary(p) for p in folder.iterdir())))
    if found and not started:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise ckpt.RunFileError(
            f"Run directory {run_dir} is not empty ({shown}) and is not a run directory of "
            f"hybridland (it has no {', '.join(RUN_MARKERS)} as a training writes them): "
            "training would overwrite files there. Nothing was changed: give a new or empty "
            "folder as the run directory.")
    own = run_dir / "config.yaml"
    # the exact text a training writes: a user's own file of the same settings (comments,
    # base:) is not a training's, and is never replaced
    if found and config is not None and own.read_text() != config.to_yaml():
        raise ckpt.RunFileError(
            f"{own} is not a configuration written by a training in {run_dir} (it holds no "
            f"{', '.join(RUN_MARKERS)} of a training): it may be yours, and training writes its "
            "resolved configuration (every setting, without comments or base:) to that name. "
            "Nothing was changed: keep your configuration outside the run directory, or give a "
            "new or empty folder as the run directory (or delete that file if a training "
            "stopped before its first epoch left it).")


def _train_held(config, run_dir: Path, max_epochs_this_call, callback, progress, report,
                continue_from=None):
    config = _resolved(config)
    check_run_directory(run_dir, config)
    log = _Logger(run_dir / "train.log")
    config_file = run_dir / "config.yaml"
    marker, skipped = ckpt.resume_checkpoint(run_dir)
    source = None  # the checkpoint of another run this one continues
    if marker is None and continue_from is not None:
        source = Path(continue_from).resolve()
        taken = _continuation(source, config)  # read now: the source may train on meanwhile
    if marker is not None:
        saved = config_file.read_text() if config_file.is_file() else None
        if not same_configuration(saved, config):
            raise ckpt.RunFileError(
                f"{run_dir} holds a checkpoint of another configuration ({config_file}); "
                "use a new run directory or the same configuration to resume."
                + _config_diff(saved, config)
            )

    start = None  # fine-tuning: the run this one starts from
    normalisation = None  # fitted to the training basins unless a fine-tuning gives its own
    own = run_dir / "normalisation.json"
    if config.training.init_from is not None and marker is not None and own.is_file():
        # a fine-tuning resumed: its own record of the start run's statistics and range (the
        # start run may have been trained again, or moved, since), its weights in the checkpoint
        try:
            normalisation = Normalisation.load(own)
        except (ValueError, KeyError, TypeError) as err:
            raise ckpt.RunFileError(f"{own} is damaged ({type(err).__name__}: {err}); restore "
                                    "it, or train the run again in a new folder.") from None
    elif config.training.init_from is not None:
        start = load_trainables(config.training.init_from)
        normalisation = start[2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataAdjustmentWarning)
        data = load_data(config, normalisation)
    # Only now, with configuration and data known to be usable, is the run directory written.
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt.remove_stale_temporaries(run_dir, run_dir / ckpt.CHECKPOINT_DIR):
        log(f"removed {stale.name}, left by an interrupted write")
    for text in skipped:
        log(f"skipped damaged checkpoint: {text}")
    ckpt.atomic_write_text(config_file, config.to_yaml())
    if source is not None:
        record, weights = taken
        patience = config.training.patience  # stopped by this run's patience, not the source's
        record = dict(record, stopped_early=patience is not None
                      and record["bad_epochs"] >= patience)
        # the record of the epochs taken over before the checkpoint that holds them: a run
        # stopped in between starts afresh and writes it again
        ckpt.atomic_write_text(run_dir / CONTINUED_FROM, json_text(
            {"run": str(source), "epochs": record["epoch"] + 1}))
        marker = ckpt.write_checkpoint(run_dir, record, weights)
        log(f"continues {source}: its epochs 0-{record['epoch']} are this run's")
    elif marker is None:  # a run started afresh takes no epochs over
        (run_dir / CONTINUED_FROM).unlink(missing_ok=True)
    elif continue_from is not None:
        log(f"resumes its own checkpoint {marker.name}; --continue-from {continue_from} not used")
    for w in caught:  # the loader's repairs (opted into by the config) go to the log
        if issubclass(w.category, DataAdjustmentWarning):
            log(f"input adjustment: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    data.normalisation.save(run_dir / "normalisation.json")
    n_attr = len(config.model.static_attributes)
    model = build_model(config, n_attr)
    trainable, static = init_trainables(config, model, data.n_basins, data.normalisation)
    if start is not None:
        trainable = fine_tuning_start(config, start, data.n_basins)
        log(f"fine-tuning from {config.training.init_from}")
    elif config.training.init_from is not None:
        log(f"fine-tuning from {config.training.init_from}: resumed with its own record of "
            "that run's normalisation")
    n_steps = steps_per_epoch(config, data)
    optim = build_optimizer(config.training, n_steps)
    schedule = learning_rate_schedule(config.training, n_steps)
    spec = LossSpec(config.data.warmup_days, config.training.loss, config.training.extreme_weight)

    state = _initial_state(trainable, optim)
    meta = {"history": [], "best_val_loss": None, "best_epoch": None, "bad_epochs": 0,
            "plateau_epochs": 0, "stopped_early": False}
    plateau = config.training.schedule == "plateau"
    start_epoch = 0
    if marker is not None:
        state, meta = ckpt.load_checkpoint(marker, state)
        meta.setdefault("plateau_epochs", 0)  # checkpoints written before plateau schedules
        start_epoch = meta["epoch"] + 1
        log(f"resumed from {marker.name} (epoch {meta['epoch']})")
    else:
        log(
            f"start run '{config.run.name}': {config.model.kind} model, {data.n_basins} basins, "
            f"{n_steps} batches/epoch, {config.training.epochs} epochs"
        )

    v_start, v_len = data.period_window("validation", config.data.warmup_days)
    all_basins = np.arange(data.n_basins)
    val_batch = _batch(data, all_basins, np.full(data.n_basins, v_start), v_len)
    check_forcing(eqx.combine(state["trainable"][0], static), val_batch[0])

    window = config.data.warmup_days + config.training.window_days
    done_this_call = 0
    epochs = config.training.epochs
    bar = tqdm(
        total=epochs, initial=start_epoch, desc=config.run.name, unit="epoch", disable=not progress
    )
    try:
        for epoch in range(start_epoch, epochs):
            if meta["stopped_early"]:
                break
            t0 = time.perf_counter()
            trainable, opt_state = state["trainable"], state["opt_state"]
            factor = plateau_factor(opt_state) if plateau else 1.0
            losses = []
            for basins, starts in epoch_batches(config, data, epoch, n_steps):
                batch = _batch(data, basins, starts, window)
                trainable, opt_state, loss = _train_step(
                    trainable, static, opt_state, optim, batch, spec
                )
                losses.append(loss)
            train_loss = float(np.mean(np.asarray(jnp.stack(losses))))
            if not np.isfinite(train_loss):
                raise FloatingPointError(
                    f"Training loss is {train_loss} in epoch {epoch}; lower the learning rate "
                    "or check the observations."
                )
            every = config.training.validate_every
            best = state["best"]
            if (epoch + 1) % every == 0 or epoch == epochs - 1:
                val_loss, val_nse = _evaluate(trainable, static, val_batch, spec)
                val_loss = float(val_loss)
                if not math.isfinite(val_loss):  # load_data refuses a period without flow
                    raise FloatingPointError(
                        f"Validation loss is {val_loss} in epoch {epoch}; lower the learning "
                        "rate or check the forcing of the validation period."
                    )
                val_nse = np.asarray(val_nse)
                median_nse = (float(np.nanmedian(val_nse)) if np.isfinite(val_nse).any()
                              else math.nan)
                if meta["best_val_loss"] is None or val_loss < meta["best_val_loss"]:
                    meta["best_val_loss"], meta["best_epoch"] = val_loss, epoch
                    meta["bad_epochs"] = meta["plateau_epochs"] = 0
                    best = trainable
                else:  # counted in epochs (those since the last validation)
                    meta["bad_epochs"] += epoch % every + 1
                    meta["plateau_epochs"] += epoch % every + 1
            else:  # not validated: a row without validation scores
                val_loss = median_nse = math.nan
            patience = config.training.patience
            meta["stopped_early"] = patience is not None and meta["bad_epochs"] >= patience
            # also at a run's last epoch: its checkpoint is then the state a run with more
            # epochs and patience has there (``continue_from``)
            reduce = plateau and meta["plateau_epochs"] >= config.training.plateau_patience
            if reduce:  # from the next epoch on
                opt_state = _reduced(opt_state, factor * config.training.decay_rate)
                meta["plateau_epochs"] = 0
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_median_nse": median_nse,
                "learning_rate": factor * float(schedule((epoch + 1) * n_steps - 1)),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            meta["history"].append(row)
            state = {"trainable": trainable, "opt_state": opt_state, "best": best}
            ckpt.save_checkpoint(
                run_dir,
                epoch,
                state,
                dict(meta, rng={"seed": config.run.seed, "next_epoch": epoch + 1}),
            )
            _write_metrics(run_dir / "metrics.csv", meta["history"])
            log(
                f"epoch {epoch}: train_loss {train_loss:.5g} val_loss {val_loss:.5g} "
                f"val_median_nse {median_nse:.4g} ({row['seconds']:.1f} s)"
                + (" *" if meta["best_epoch"] == epoch else "")
            )
            if reduce:
                log(f"learning rate x {config.training.decay_rate:g}: no better validation loss "
                    f"for {config.training.plateau_patience} epochs")
            bar.update(1)
            best_val = meta["best_val_loss"]  # None until the first validation
            bar.set_postfix(train=f"{train_loss:.4g}",
                            best_val="-" if best_val is None else f"{best_val:.4g}")
            if callback is not None:
                callback(epoch, row)
            if meta["stopped_early"]:
                log(f"early stop: no better validation loss for {patience} epochs")
                break
            done_this_call += 1
            if max_epochs_this_call is not None and done_this_call >= max_epochs_this_call:
                break
    finally:
        bar.close()

    history = meta["history"]
    completed = len(history)
    finished = meta["stopped_early"] or completed >= epochs
    best_model_train, best_u = state["best"]
    best_model = eqx.combine(best_model_train, static)
    if finished:  # run.json after the files a finished run is read from: once it exists, the
        # run can be used (by another process too) while its report is still being written
        # (metrics.csv too: a run that continued a stopped one, or resumed one stopped before
        # its files were written, trains no epoch of its own here)
        _write_metrics(run_dir / "metrics.csv", meta["history"])
        model_sha256 = ckpt.save_model(run_dir / "model.eqx", (best_model, best_u))
        params = bounded_params(best_u, jnp.arange(data.n_basins), data.n_basins,
                                _attributes(data))
        write_basin_table(run_dir / "basins.csv", data, params, config)
        ckpt.atomic_write_text(
            run_dir / "run.json",
            json_text(
                {
                    "model_sha256": model_sha256,
                    "basins": list(data.basins),
                    "best_epoch": meta["best_epoch"],
                    "best_val_loss": meta["best_val_loss"],
                    "epochs_completed": completed,
                    "stopped_early": meta["stopped_early"],
                }
            ),
        )
        log(f"done: best epoch {meta['best_epoch']}, val_loss {meta['best_val_loss']:.5g}")
        if report:
            from .report import write_report

            write_report(run_dir, config, history, log=log, progress=progress)
    return TrainResult(
        model=best_model,
        params=bounded_params(best_u, jnp.arange(data.n_basins), data.n_basins,
                              _attributes(data)),
        normalisation=data.normalisation,
        history=history,
        best_epoch=meta["best_epoch"],
        best_val_loss=meta["best_val_loss"],
        epochs_completed=completed,
        stopped_early=meta["stopped_early"],
        finished=finished,
        run_dir=run_dir,
        basins=data.basins,
    )


def _mapping_share() -> float | None:
    """This process's memory mappings as a share of the kernel's limit on them; None where
    they cannot be counted (no Linux ``/proc``)."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            used = sum(1 for _ in maps)
    except (OSError, ValueError):
        return None
    return used / limit if limit > 0 else None


def release_compiled(*, above: float | None = None) -> bool:
    """Free every compiled computation JAX holds (``jax.clear_caches``), and collect garbage;
    with ``above``, only once this process's memory mappings exceed that share of the kernel's
    limit (or cannot be counted). Returns whether it freed them.

    On CPU each compiled program keeps memory mappings of its machine code until it is freed;
    a process that builds many different models (a study, a sweep, a test suite) reaches the
    kernel's limit on mappings (``vm.max_map_count``, 65 530 by default) after a few thousand
    compilations and then dies inside the compiler. Call this between models that share no
    compiled code; later calls recompile what they need. Between runs that may share programs
    (the same model on another seed, split or budget), ``above=0.5`` keeps them while there is
    room: a program kept is called again without being traced, where one freed is traced and
    lowered again (seconds for the sequence hybrid) even when the compilation cache holds it.
    """
    if above is not None:
        share = _mapping_share()
        if share is not None and share <= above:
            return False
    jax.clear_caches()
    gc.collect()
    return True


def use_compilation_cache(directory: str | os.PathLike) -> str:
    """Keep the machine code of every compiled program in ``directory`` (JAX's persistent
    compilation cache), so that a program compiled again, after ``release_compiled`` or in a
    later process, is read back instead of being compiled anew. Returns the directory in use:
    one chosen earlier (``JAX_COMPILATION_CACHE_DIR``, or an earlier call) is kept.

    Models differ, but a study or a test suite builds the same programs many times (the same
    model on another split, the same evaluation): on the 2-core CPU the quick climate-shift study
    takes 0.59 of its time with the cache (466 s against 786 s, identical scores). A folder
    chosen here caches programs whatever their compile time (JAX's own default, for a folder
    chosen by ``JAX_COMPILATION_CACHE_DIR``, skips those compiled in under a second); the cache
    only grows (~11 MB for the quick study).
    """
    chosen = jax.config.jax_compilation_cache_dir
    if chosen:
        return chosen
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory


def _initial_state(trainable, optim: optax.GradientTransformation) -> dict:
    """The pytree a checkpoint holds, at the start of training: the trainables, the optimiser
    state of their trainable arrays, and the best trainables so far."""
    return {"trainable": trainable, "opt_state": optim.init(trainable_arrays(trainable)),
            "best": trainable}


def _run_skeleton(run_dir: Path):
    """``(config, normalisation, record, (model trainables, parameter trainables), model
    static part, fix)`` of a finished run, the trainables freshly initialised: the structure
    its weight files load into. ``fix`` says how to restore a damaged file."""
    for name in ("config.yaml", "normalisation.json", "run.json", "model.eqx"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing: is {run_dir} a finished run?")
    try:
        config = config_from_yaml((run_dir / "config.yaml").read_text())
    except Exception as err:  # noqa: BLE001 - a YAML syntax error, a ConfigError, bad bytes...
        raise ckpt.RunFileError(
            f"{run_dir / 'config.yaml'} is damaged: it cannot be read as the run's "
            f"configuration ({type(err).__name__}: {_first_line(err)}). Restore it from a backup "
            f"or from the configuration file the run was trained with.") from None
    fix = (f"Restore it, or rewrite the run's final files from its last checkpoint with "
           f"`hybridland train --config {run_dir / 'config.yaml'} --run-dir {run_dir}`.")
    try:
        normalisation = Normalisation.load(run_dir / "normalisation.json")
        record = json.loads((run_dir / "run.json").read_text())
        n_basins = len(record["basins"])
    except (ValueError, KeyError, TypeError) as err:
        raise ckpt.RunFileError(f"{run_dir / 'run.json'} or {run_dir / 'normalisation.json'} "
                                f"is damaged ({type(err).__name__}: {err}). {fix}") from None
    model = build_model(config, len(normalisation.names))
    trainable, static = init_trainables(config, model, n_basins, normalisation)
    return config, normalisation, record, trainable, static, fix


def load_trainables(run_dir: str | os.PathLike):
    """``(model, parameter trainables, normalisation, config)`` of a finished run's best epoch
    (the parameter trainables as in ``init_trainables``)."""
    run_dir = Path(run_dir)
    config, normalisation, record, (model_train, u), static, fix = _run_skeleton(run_dir)
    model, u = ckpt.load_model(run_dir / "model.eqx", (eqx.combine(model_train, static), u),
                               record.get("model_sha256"), fix)
    return model, u, normalisation, config


def checkpoint_trainables(run_dir: str | os.PathLike, marker=None):
    """``(model, parameter trainables, epoch)`` of a finished run at one of its kept
    checkpoints: the weights of the last epoch trained up to it (not the best ones), from the
    checkpoint whose JSON is ``marker`` (default: the newest intact one)."""
    run_dir = Path(run_dir)
    config, _, _, trainable, static, _ = _run_skeleton(run_dir)
    if marker is None:
        marker, _ = ckpt.find_checkpoint(run_dir)
        if marker is None:
            raise FileNotFoundError(f"{run_dir} keeps no intact checkpoint.")
    # the optimiser's state only gives the file's structure: any number of steps will do
    like = _initial_state(trainable, build_optimizer(config.training, 1))
    state, meta = ckpt.load_checkpoint(marker, like)
    model_train, u = state["trainable"]
    return eqx.combine(model_train, static), u, int(meta["epoch"])


def load_run(
    run_dir: str | os.PathLike,
) -> tuple[ColumnModel | LSTMRunoff, Params, Normalisation, Config]:
    """The best model, its ``Params`` ``[basin]`` (basins in ``run.json`` order), the attribute
    normalisation and the configuration of a finished run.

    Evaluate with ``load_data(config, normalisation)`` (attributes normalised with the saved
    training statistics) and ``hybridland.simulate`` (an lstm run: ``model.runoff``), or with
    ``evaluate_run``.
    """
    model, u, normalisation, config = load_trainables(run_dir)
    table = basin_table(run_dir) if (Path(run_dir) / "basins.csv").is_file() else None
    n_basins = len(json.loads((Path(run_dir) / "run.json").read_text())["basins"])
    attributes = None
    if isinstance(u, ParameterNetwork):
        if table is None:  # the attributes of its basins, which the network maps
            raise ckpt.RunFileError(
                f"{Path(run_dir) / 'basins.csv'} is missing: the run's parameter network needs "
                "its basins' attributes. Rewrite the run's final files from its last checkpoint "
                f"with `hybridland train --config {Path(run_dir) / 'config.yaml'} --run-dir "
                f"{run_dir}`.")
        raw = table[list(normalisation.names)].to_numpy()
        attributes = jnp.asarray(normalisation.apply(raw))
    params = bounded_params(u, jnp.arange(n_basins), n_basins, attributes)
    return model, params, normalisation, config


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def _attributes(data: RunData):
    return None if data.attributes is None else jnp.asarray(data.attributes)


# ---------------------------------------------------------------------------------------------
# Helpers


def _resolved(config: Config) -> Config:
    """Spell out what depends on the machine and the working directory: the default data
    file, and the data file and ``training.init_from`` as absolute paths (a relative one saved
    in the run's ``config.yaml`` would name another file, or none, when the run is resumed or
    evaluated from another directory)."""
    if config.data.loader == "mopex" and config.data.path is None:
        from ..io import mopex_path

        config = config.replace("data", path=str(mopex_path()))
    if config.data.path is not None and not os.path.isabs(config.data.path):
        config = config.replace("data", path=os.path.abspath(config.data.path))
    init_from = config.training.init_from
    if init_from is not None and not os.path.isabs(init_from):
        config = config.replace("training", init_from=os.path.abspath(init_from))
    return config


def same_configuration(saved: str | None, config: Config) -> bool:
    """Whether a run directory's saved ``config.yaml`` text means the resolved ``config``: read
    by this version of the code, so that an option added since then, at its default (the
    behaviour the run had), is not a change; any other difference is."""
    if saved is None:
        return False
    if saved == config.to_yaml():
        return True
    try:
        # resolved as the run was: a relative path saved before paths were made absolute
        return _resolved(config_from_yaml(saved)).to_yaml() == config.to_yaml()
    except Exception:  # noqa: BLE001 - an unreadable file is not the same configuration
        return False


def _config_diff(saved: str | None, config: Config) -> str:
    if saved is None:
        return " (its config.yaml is missing)"
    try:
        old = config_from_yaml(saved).to_dict()
    except Exception:  # noqa: BLE001 - any unreadable file is reported as such
        return " (its config.yaml cannot be read)"
    new = config.to_dict()
    diffs = [
        f"{s}.{k}: {old[s].get(k)!r} -> {new[s].get(k)!r}"
        for s in new
        for k in new[s]
        if old.get(s, {}).get(k) != new[s].get(k)
    ]
    return " Differences: " + "; ".join(diffs) + "."
