"""Per-basin calibration of the physical bucket: many basins and several starts per basin in one
vmapped, gradient-based (optax adam) optimisation.

Every basin is calibrated on its own: its parameters see only its own loss. The columns of one
compiled program are ``starts x basins`` independent problems; the loss summed over them has a
gradient whose entries for one column depend only on that column, and adam scales each entry
separately, so summing changes nothing but the amount of work per compiled call.

- **Parameters** (``calibration.params``) are optimised as the logit of their position in their
  physical range (``Params.to_unconstrained``); every step lands inside ``PARAMETER_BOUNDS``.
  Parameters not listed stay at their defaults.
- **Multi-start**: start 0 begins at the defaults; starts 1.. begin at positions drawn uniformly in
  ``[0.05, 0.95]`` of each range (seeded). After the last step every start is scored on the whole
  calibration period and the best one per basin is reported (``best_start``).
- **Ensemble** (``calibration.ensemble``, on by default): the calibrated model of a basin is the
  mean of the simulations of all its starts (equal weights; a start whose calibration loss is
  not finite is left out), an ensemble of the parameter sets the starts settled on. Different
  starts settle in different optima of similar calibration skill (equifinality); their mean
  scored better on the validation years than the best start alone on 11 of 13 sets of 20
  MOPEX basins (median +0.011 NSE; docs/calibration.md). The mean of closed water balances
  closes.
- **Loss**: a masked loss of ``hybridland.train.losses`` (NSE*, MSE or KGE) per column, on the
  observed days of the calibration period (NaN gaps are masked); the ``warmup_days`` simulated
  before it from half-full soil are never scored.
- **Steps** score a random window of ``window_days`` (default two years) per basin and step, each
  preceded by its own warm-up, or the whole calibration period when it is not longer (or with
  ``window_days: null``). On MOPEX (docs/calibration.md) two-year windows halve the time of the
  whole-period steps and score the same on the validation years.

``calibrate(config)`` loads the data of a ``CalibrationConfig`` (YAML, see
``load_calibration_config`` and docs/calibration.md), fits, re-runs every basin over all loaded
days with its best parameters and returns a ``Calibration``: parameters, per-basin NSE and KGE on
the calibration and validation periods, closure residuals, wall time and the number of model
evaluations. ``Calibration.dataset()`` is the CF NetCDF the ``hybridland calibrate`` command
writes. ``calibrate_columns`` is the array-level fit, for forcing already in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from typing import ClassVar, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from . import metrics
from ._containers import Forcing
from ._params import BUCKET_PARAMETERS, PARAMETER_BOUNDS, Params
from .physics.pet import PET_LAWS
from .solvers import check_forcing, simulate, simulate_runoff
from .train.config import (
    MAX_SEED,
    ConfigError,
    DataConfig,
    _days,
    _fail,
    _plain,
    build_sections,
    load_with_base,
)
from .train.losses import LOSSES

NOT_CALIBRATED_BY_DEFAULT = ("theta_wp", "ground_heat_fraction")
DEFAULT_PARAMS = tuple(p for p in BUCKET_PARAMETERS if p not in NOT_CALIBRATED_BY_DEFAULT)
"""Calibrated by default: every parameter the basic bucket uses without net radiation, except
``ground_heat_fraction`` (used only with net radiation) and ``theta_wp``, which enters the model only through the capacity
``1000 (theta_cap - theta_wp) root_depth`` that ``theta_cap`` and ``root_depth`` already span."""

START_RANGE = (0.05, 0.95)
"""Random starts: position of each parameter inside its physical range, drawn uniformly here."""


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """How to calibrate: which parameters, how many starts and steps, which loss."""

    SECTION: ClassVar[str] = "calibration"
    params: tuple[str, ...] = DEFAULT_PARAMS
    """Names in ``PARAMETER_BOUNDS`` to calibrate per basin; the others stay at their defaults."""
    pet: str = "given"
    """PET law name in ``hybridland.physics.pet.PET_LAWS`` (``given``: the file's PE)."""
    starts: int = 8
    """Initial parameter sets per basin (start 0: the defaults; the others random)."""
    steps: int = 150
    """Optimiser steps; every start of every basin takes each of them. 8 starts x 150 steps
    validate better than 4 x 300 at about the same cost (docs/calibration.md)."""
    learning_rate: float = 0.1
    """Peak adam step size in the unconstrained (logit) space."""
    final_learning_rate: float = 0.005
    """Step size reached at the last step (cosine decay from ``learning_rate``)."""
    loss: Literal["nse", "mse", "kge"] = "nse"
    """Masked loss of ``hybridland.train.losses`` per basin and start."""
    window_days: int | None = 730
    """A random window this long per basin and step (each after ``data.warmup_days`` of its
    own); the whole calibration period when it is not longer, or when None."""
    holdout_fraction: float = 0.0
    """Fraction of the calibration period held back at its end: the steps fit the days before
    it, and each basin keeps the parameters (of any step and start) that score best, 1 - NSE,
    on the held-back days. 0: fit the whole period and keep the last step's parameters."""
    ensemble: bool = True
    """The calibrated model is the mean of every start's simulation (starts with a non-finite
    calibration loss left out); False: the best start's parameters alone."""
    trace_every: int = 25
    """With windows: score the whole calibration period every this many steps, for the
    objective trace (a forward run each); whole-period steps trace every step."""
    seed: int = 0
    """Seeds the random starts, the windows and a random basin selection."""

    def __post_init__(self):
        unknown = [p for p in self.params if p not in PARAMETER_BOUNDS]
        if unknown:
            _fail(self, "params", f"unknown {unknown}; known: {sorted(PARAMETER_BOUNDS)}")
        if not self.params:
            _fail(self, "params", "must list at least one parameter")
        unused = [p for p in self.params if p not in BUCKET_PARAMETERS]
        if unused:
            _fail(self, "params", f"lists {unused}, which the calibrated bucket (the basic "
                  f"physical bucket) does not use; choose from {list(BUCKET_PARAMETERS)}")
        if len(set(self.params)) != len(self.params):
            _fail(self, "params", "lists a parameter twice")
        if self.pet not in PET_LAWS:
            _fail(self, "pet", f"unknown PET law {self.pet!r}; known: {sorted(PET_LAWS)}")
        for name in ("starts", "steps", "trace_every"):
            if getattr(self, name) < 1:
                _fail(self, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "final_learning_rate"):
            if not 0 < getattr(self, name) < math.inf:
                _fail(self, name, f"must be a finite number > 0, got {getattr(self, name)}")
        if self.window_days is not None and self.window_days < 2:
            _fail(self, "window_days", f"must be >= 2 (or left out), got {self.window_days}")
        if not 0.0 <= self.holdout_fraction <= 0.5:
            _fail(self, "holdout_fraction", f"must be in [0, 0.5], got {self.holdout_fraction}")
        if not 0 <= self.seed <= MAX_SEED:
            _fail(self, "seed", f"must be an integer in [0, 2**63 - 1], got {self.seed}")


@dataclasses.dataclass(frozen=True)
class CalibrationRunConfig:
    """A calibration: ``data`` (a ``hybridland.train.DataConfig``; ``train_period`` is the
    calibration period) and ``calibration``."""

    data: DataConfig
    calibration: CalibrationConfig = dataclasses.field(default_factory=CalibrationConfig)

    def __post_init__(self):
        c = self.calibration
        if c.pet == "given" and self.data.pet != "given":
            _fail(c, "pet", f"'given' needs the file's PE, but data.pet is {self.data.pet!r}")
        self.data.refuse_overlapping_periods()
        days = _days(self.data.train_period)
        if c.holdout_fraction > 0 and c.window_days is not None and c.window_days < days:
            _fail(c, "holdout_fraction", "needs steps over the whole calibration period; "
                  "set window_days: null as well, or holdout_fraction to 0")
        held = holdout_days(days, c.holdout_fraction)
        if c.holdout_fraction > 0 and held < 30:
            _fail(c, "holdout_fraction", f"holds back only {held} of the calibration period's "
                  f"{days} days; hold back at least 30 days")

    def to_yaml(self) -> str:
        """The resolved configuration (every default spelled out) as YAML."""
        plain = {
            name: _plain(dataclasses.asdict(getattr(self, name))) for name in _SECTIONS
        }
        return yaml.safe_dump(plain, sort_keys=False, default_flow_style=None)


_SECTIONS = {"data": DataConfig, "calibration": CalibrationConfig}


def calibration_config_from_dict(raw) -> CalibrationRunConfig:
    """Build a ``CalibrationRunConfig`` from nested dicts; ``ConfigError`` names a bad key."""
    sections = build_sections(
        raw, _SECTIONS,
        "at least train_period, the calibration period, and validation_period",
        what="A calibration configuration",
    )
    return CalibrationRunConfig(**sections)


def load_calibration_config(path: str | os.PathLike) -> CalibrationRunConfig:
    """Read and validate a YAML calibration configuration; ``ConfigError`` names the problem.
    A top-level ``base: OTHER.yaml`` builds on another file, as for a run configuration
    (``hybridland.train.load_config``)."""
    return load_with_base(path, calibration_config_from_dict)


# ---------------------------------------------------------------------------------------------
# The fit


@dataclasses.dataclass
class ColumnFit:
    """Outcome of ``calibrate_columns`` for ``n`` basins (numpy arrays)."""

    params: Params
    """Best parameters per basin, ``[n]`` (uncalibrated ones at their defaults)."""
    loss: np.ndarray
    """Calibration loss of the best start, ``[n]``."""
    best_start: np.ndarray
    """Index of the start kept per basin, ``[n]`` (0: the one from the defaults)."""
    start_loss: np.ndarray
    """Calibration loss of every start's kept parameters, ``[starts, n]``."""
    members: Params
    """Every start's kept parameters, ``[starts, n]``: the members of the ensemble."""
    in_ensemble: np.ndarray
    """Whether each start enters the ensemble (its calibration loss is finite), ``[starts, n]``."""
    history: np.ndarray
    """Loss summed over starts and basins at each step (windows: of the step's windows)."""
    objective: np.ndarray
    """1 - NSE on all calibration days of every start before each step and after the last one,
    ``[steps + 1, starts, n]``; with windows only every ``trace_every`` steps (NaN between)."""
    holdout_objective: np.ndarray
    """1 - NSE on the held-back days, same shape (NaN without a hold-out)."""
    elapsed: np.ndarray
    """Seconds from the call to the moment each row of ``objective`` was known, ``[steps + 1]``
    (steps run in compiled chunks of ``trace_every``: a row of a chunk's steps is known when the
    chunk ends, a row traced with windows when its forward run before the chunk ends)."""
    evaluations: int
    """Model runs per basin: ``steps x starts`` gradients plus ``starts`` final scores."""
    seconds: float
    """Wall time of the fit, compilation included."""


def initial_unconstrained(names, n_basins: int, starts: int, seed: int, dtype) -> dict:
    """``{name: [starts, n_basins]}`` logits: start 0 the defaults, the others random."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        position = rng.uniform(*START_RANGE, size=(starts, n_basins))
        b = PARAMETER_BOUNDS[name]
        position[0] = (b.default - b.low) / (b.high - b.low)
        out[name] = jnp.asarray(np.log(position) - np.log1p(-position), dtype)
    return out


def bounded(u: dict, n: int, dtype) -> Params:
    """``Params`` ``[n]``: the sigmoid of each flattened logit, defaults for the others."""
    values = {}
    for name, v in u.items():
        b = PARAMETER_BOUNDS[name]
        values[name] = b.low + (b.high - b.low) * jax.nn.sigmoid(v.reshape(n))
    return Params.default(n, dtype=dtype, **values)


def member_columns(forcing: Forcing, members: Params) -> tuple[Forcing, Params]:
    """Forcing ``[basins]`` and parameters ``[members, basins]`` as one run of ``basins x
    members`` columns (basin-major: the members of a basin are neighbours, so any run of ``k x
    members`` columns from a multiple of ``members`` holds whole basins), for ``member_mean``
    to average."""
    m = np.shape(members.root_depth)[0]
    flat = jax.tree_util.tree_map(
        lambda a: np.reshape(np.swapaxes(np.asarray(a), 0, 1), (-1,) + np.shape(a)[2:]), members
    )
    forcing = _doy_per_column(forcing)
    return jax.tree_util.tree_map(lambda a: jnp.repeat(a, m, axis=0), forcing), flat


def member_mean(tree, weights: np.ndarray):
    """Weighted mean over members of every leaf ``[members x basins, ...]`` of ``tree`` (a
    run of ``member_columns``), with ``weights`` ``[members, basins]`` (a member of weight 0 is
    left out, whatever its values). A sum of closed water balances with weights summing to one
    closes: the mean's per-step residual is the weighted mean of the members'."""
    w = np.asarray(weights, np.float64)
    w = (w / w.sum(axis=0)).T  # [basins, members], as the columns

    def mean(a):
        a = np.asarray(a)
        a = a.reshape(w.shape + a.shape[1:])
        ww = w.reshape(w.shape + (1,) * (a.ndim - 2))
        return np.sum(np.where(ww > 0, a, 0.0) * ww, axis=1).astype(a.dtype)

    return jax.tree_util.tree_map(mean, tree)


def holdout_days(scored_days: int, fraction: float) -> int:
    """Days held back at the end of ``scored_days`` calibration days."""
    return int(round(scored_days * fraction))


def observation_scales(scored) -> tuple[np.ndarray, np.ndarray]:
    """Per basin, the standard deviation and mean of the observed runoff ``scored`` (``[basin,
    day]``, the days the loss fits) that the losses normalise by; 1 for a basin without
    observations (and for a mean that is not positive)."""
    scored = np.asarray(scored, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # basins without any observation
        obs_std = np.nan_to_num(np.nanstd(scored, axis=1), nan=1.0)
        obs_mean = np.nanmean(scored, axis=1)
    return obs_std, np.where(np.isfinite(obs_mean) & (obs_mean > 0), obs_mean, 1.0)


def _column_losses(model, u, forcing, observed, obs_std, obs_mean, warmup: int, loss: str,
                   fit_days: int):
    """Per column ``[starts x basins]`` of forcing tiled over starts (start-major: column
    ``s * n_basins + b``), on the days after the warm-up: the loss on the first ``fit_days`` of
    them (the one the steps descend), 1 - NSE on the days after those (held back; NaN when
    none) and 1 - NSE on all of them."""
    n = forcing.precip.shape[0]
    dtype = forcing.precip.dtype
    params = bounded(u, n, dtype)
    runoff = simulate_runoff(model, forcing, params)[:, warmup:]
    obs = observed[:, warmup:]
    fit = jnp.arange(obs.shape[1]) < fit_days

    def one(o, s, sd, mu):
        return LOSSES[loss](o[None], s[None], fit[None], obs_std=sd[None], obs_mean=mu[None])

    fit_loss = jax.vmap(one)(obs, runoff, obs_std, obs_mean)
    held = 1.0 - metrics.nse(obs, runoff, jnp.broadcast_to(~fit, obs.shape))
    whole = 1.0 - metrics.nse(obs, runoff)
    return fit_loss, held, whole


def _summed_loss(u, model, batch, warmup, loss, fit_days):
    fit_loss, held, whole = _column_losses(model, u, *batch, warmup, loss, fit_days)
    # Each column's gradient is its own; a basin without observations contributes nothing.
    return jnp.sum(jnp.where(jnp.isfinite(fit_loss), fit_loss, 0.0)), (held, whole)


def _keep_best(best, u, held):
    """Per column, the parameters with the lowest held-back 1 - NSE so far."""
    best_u, best_held = best
    shape = next(iter(u.values())).shape
    held = jnp.where(jnp.isfinite(held), held, jnp.inf).reshape(shape)
    better = held < best_held
    return ({k: jnp.where(better, u[k], best_u[k]) for k in u}, jnp.where(better, held, best_held))


def _step(u, opt_state, best, model, batch, optim, warmup, loss, fit_days):
    (value, (held, whole)), grads = eqx.filter_value_and_grad(_summed_loss, has_aux=True)(
        u, model, batch, warmup, loss, fit_days
    )
    best = _keep_best(best, u, held)
    updates, opt_state = optim.update(grads, opt_state, u)
    return optax.apply_updates(u, updates), opt_state, best, value, held, whole


@eqx.filter_jit
def _steps(u, opt_state, best, model, whole, firsts, optim, warmup, loss, step_days, n_steps):
    """``n_steps`` adam steps in one compiled call (``lax.scan``): each on the windows that
    start at a row of ``firsts`` (``[n_steps, columns]``, days after which a window of
    ``warmup + step_days`` days is cut from every column), or on the whole period when
    ``firsts`` is None. Returns the new state and, per step, the summed loss, the held-back
    and the whole-batch 1 - NSE of every column. One call per chunk instead of one per step:
    the dispatch and slicing around each step cost as much as a third of it on a CPU."""

    def body(carry, first):
        u_, opt_state_, best_ = carry
        batch = whole
        if first is not None:
            batch = (*_windows(whole[0], whole[1], first, warmup + step_days), *whole[2:])
        u_, opt_state_, best_, value, held, total = _step(
            u_, opt_state_, best_, model, batch, optim, warmup, loss, step_days
        )
        return (u_, opt_state_, best_), (value, held, total)

    (u, opt_state, best), per_step = jax.lax.scan(
        body, (u, opt_state, best), firsts, length=n_steps
    )
    return u, opt_state, best, *per_step


@eqx.filter_jit
def _score(u, model, batch, warmup, loss, fit_days):
    return _column_losses(model, u, *batch, warmup, loss, fit_days)


@functools.lru_cache(maxsize=8)
def _optimizer(learning_rate: float, final_learning_rate: float, steps: int):
    """Adam with a cosine decay from ``learning_rate`` to ``final_learning_rate`` over
    ``steps``. Cached: the optimiser is a static argument of the compiled step, so a new one
    would compile the step again in every calibration of a session."""
    schedule = optax.cosine_decay_schedule(
        learning_rate, steps, alpha=final_learning_rate / learning_rate
    )
    return optax.adam(schedule)


def _doy_per_column(forcing: Forcing) -> Forcing:
    """``forcing`` with its day of year ``[column, time]`` (a shared ``[time]`` broadcast), so
    that its columns can be repeated or reordered like every other series."""
    if forcing.doy.ndim == 1:
        forcing = eqx.tree_at(
            lambda f: f.doy, forcing, jnp.broadcast_to(forcing.doy, forcing.precip.shape)
        )
    return forcing


def _tile(forcing: Forcing, starts: int) -> Forcing:
    """Forcing of every basin repeated for every start (start-major), doy per column."""
    return jax.tree_util.tree_map(
        lambda a: jnp.tile(a, (starts,) + (1,) * (a.ndim - 1)), _doy_per_column(forcing)
    )


def _windows(forcing: Forcing, observed, first, length: int):
    """Days ``first[c] .. first[c] + length`` of every column."""

    def cut(a):
        if a.shape != observed.shape:  # per-column statics
            return a
        return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, length))(a, first)

    first = jnp.asarray(first)
    return jax.tree_util.tree_map(cut, forcing), cut(observed)


def calibrate_columns(
    model,
    forcing: Forcing,
    observed,
    *,
    warmup_days: int,
    params: tuple[str, ...] = DEFAULT_PARAMS,
    starts: int = CalibrationConfig.starts,
    steps: int = CalibrationConfig.steps,
    learning_rate: float = CalibrationConfig.learning_rate,
    final_learning_rate: float = CalibrationConfig.final_learning_rate,
    loss: str = CalibrationConfig.loss,
    window_days: int | None = None,
    holdout_fraction: float = CalibrationConfig.holdout_fraction,
    trace_every: int = CalibrationConfig.trace_every,
    seed: int = CalibrationConfig.seed,
    progress=None,
) -> ColumnFit:
    """Calibrate ``params`` of every basin of ``forcing`` (series ``[basin, time]``) against
    ``observed`` runoff (``[basin, time]``, mm day-1, NaN where missing).

    The first ``warmup_days`` of the series are simulated from ``model.init_state`` and never
    scored; the loss covers the days after them, except the last ``holdout_fraction`` of them,
    which choose the step whose parameters each basin keeps. A ``window_days`` at least as long
    as the days after the warm-up means whole-period steps. With windows, the whole-period
    objective is scored (a forward run) every ``trace_every`` steps for the trace; whole-period
    steps trace it at every step for free. The run's dtype is ``forcing.precip``'s.
    ``progress(step, summed_loss)`` is called for every step when given, after the compiled
    chunk of ``trace_every`` steps that holds it. See the module docstring for starts, windows
    and the choice of the best start.
    """
    t0 = time.perf_counter()
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; choose from {sorted(LOSSES)}.")
    # the checks of CalibrationConfig, for a caller that does not go through it
    if isinstance(params, str) or not params or len(set(params)) != len(params) or any(
            p not in PARAMETER_BOUNDS for p in params):
        raise ValueError(f"params must be a sequence of distinct names from "
                         f"{sorted(PARAMETER_BOUNDS)}, got {params!r}.")
    for name, value in (("starts", starts), ("steps", steps)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    for name, value in (("learning_rate", learning_rate),
                        ("final_learning_rate", final_learning_rate)):
        if not 0 < value < math.inf:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    check_forcing(model, forcing)
    n, n_days = forcing.precip.shape
    dtype = forcing.precip.dtype
    observed = jnp.asarray(observed, dtype)
    if observed.shape != (n, n_days):
        raise ValueError(f"observed has shape {observed.shape}; expected [basin, time] {(n, n_days)}.")
    if not 0 <= warmup_days < n_days - 1:
        raise ValueError(f"warmup_days is {warmup_days} but the series have {n_days} days: "
                         "at least two days must follow the warm-up (a longer period, or "
                         "fewer warm-up days).")
    if window_days is not None and window_days < 2:
        raise ValueError(f"window_days is {window_days}; it must be >= 2 (or None).")
    if trace_every < 1:
        raise ValueError(f"trace_every is {trace_every}; it must be >= 1.")
    if window_days is not None and window_days >= n_days - warmup_days:
        window_days = None  # the window would be the whole period
    if not 0.0 <= holdout_fraction <= 0.5:
        raise ValueError(f"holdout_fraction is {holdout_fraction}; it must be in [0, 0.5].")
    if holdout_fraction > 0 and window_days is not None:
        raise ValueError("holdout_fraction needs steps over the whole period (window_days=None).")
    scored_days = n_days - warmup_days
    fit_days = scored_days - holdout_days(scored_days, holdout_fraction)
    step_days = fit_days if window_days is None else window_days
    fitted = np.asarray(observed[:, warmup_days:warmup_days + fit_days])
    blind = np.flatnonzero(~np.isfinite(fitted).any(axis=1))
    if blind.size:  # its loss would be 0 whatever its parameters: "perfectly" calibrated
        raise ValueError(
            f"{blind.size} basin(s) (indices {blind[:10].tolist()}) have no observed runoff on "
            f"the {fit_days} days fitted (after the {warmup_days} warm-up days"
            + (f", before the {scored_days - fit_days} held-back days" if fit_days < scored_days
               else "") + "); leave them out or choose a period with observations.")
    obs_std, obs_mean = observation_scales(fitted)

    tiled = _tile(forcing, starts)
    rows = np.tile(np.arange(n), starts)
    whole = (
        tiled,
        jnp.tile(observed, (starts, 1)),
        jnp.asarray(obs_std[rows], dtype),
        jnp.asarray(obs_mean[rows], dtype),
    )
    u = initial_unconstrained(params, n, starts, seed, dtype)
    optim = _optimizer(learning_rate, final_learning_rate, steps)
    opt_state = optim.init(u)
    rng = np.random.default_rng([seed, 1])
    kept = (u, jnp.full((starts, n), jnp.inf, dtype))
    history, objective, held_back, elapsed = [], [], [], []
    # Steps run in compiled chunks of trace_every; with windows the whole-period objective is
    # scored (a forward run) before each chunk for the trace, and is NaN for the other steps.
    untraced = np.full((starts * n,), np.nan)
    for k0 in range(0, steps, trace_every):
        k1 = min(k0 + trace_every, steps)
        firsts = None
        if window_days is not None:
            first = rng.integers(
                0, n_days - warmup_days - window_days + 1, size=(k1 - k0, n)
            )
            firsts = jnp.asarray(first[:, rows])
            traced = np.asarray(_score(u, model, whole, warmup_days, loss, fit_days)[2])
            traced_at = time.perf_counter() - t0
        u, opt_state, kept, values, held, total = _steps(
            u, opt_state, kept, model, whole, firsts, optim, warmup_days, loss, step_days,
            k1 - k0,
        )
        values, held, total = np.asarray(values), np.asarray(held), np.asarray(total)
        if window_days is not None:
            # the windows' own 1 - NSE is not the calibration objective
            total = np.stack([traced] + [untraced] * (k1 - k0 - 1))
        done_at = time.perf_counter() - t0
        elapsed.extend([traced_at if window_days is not None and j == 0 else done_at
                        for j in range(k1 - k0)])
        for j in range(k1 - k0):
            if progress is not None:
                progress(k0 + j, float(values[j]))
            history.append(values[j])
            objective.append(total[j])
            held_back.append(held[j])
    fit_loss, held, total = _score(u, model, whole, warmup_days, loss, fit_days)
    objective.append(total)
    held_back.append(held)
    if holdout_fraction > 0:
        # Each start keeps its step best on the held-back days; starts compete on those days.
        kept, kept_held = _keep_best(kept, u, held)
        # A column whose held-back days never gave a finite 1 - NSE (no observed flow there, or
        # a constant one) kept its starting point: it keeps its last step instead and its
        # starts compete on the fit loss, as without a hold-out (warned).
        blind = ~np.isfinite(np.asarray(kept_held))
        kept = {k: jnp.where(blind, u[k], kept[k]) for k in u}
        fit_loss, choose, _ = _score(kept, model, whole, warmup_days, loss, fit_days)
        blind = blind.reshape(-1)
        choose = np.where(blind, np.asarray(fit_loss), np.asarray(choose))
        if blind.any():
            columns = sorted({int(i) % n for i in np.flatnonzero(blind)})
            warnings.warn(
                f"{len(columns)} column(s) (indices {columns[:10]}) have no usable held-back "
                "days (no observed flow there, or a constant one): their parameters are the "
                "last step's, chosen by the fit loss as without a hold-out. Lower "
                "holdout_fraction or choose a calibration period with observed flow at its end.",
                stacklevel=2)
    else:
        kept, choose = u, fit_loss
    start_loss = np.asarray(fit_loss).reshape(starts, n)
    choose = np.asarray(choose).reshape(starts, n)
    best = np.argmin(np.where(np.isfinite(choose), choose, np.inf), axis=0)
    # a basin whose every start failed keeps its best (non-finite) one, never an empty mean
    in_ensemble = np.isfinite(start_loss) | (np.arange(starts)[:, None] == best)
    every = jax.tree_util.tree_map(lambda a: np.asarray(a).reshape(starts, n),
                                   bounded(kept, starts * n, dtype))
    params = jax.tree_util.tree_map(lambda a: a[best, np.arange(n)], every)
    # a member left out carries the best start's parameters (its own may not be finite)
    members = jax.tree_util.tree_map(lambda a, b: np.where(in_ensemble, a, b[None]), every, params)
    elapsed.append(time.perf_counter() - t0)

    def trace(rows_):
        return np.stack([np.asarray(r, np.float64) for r in rows_]).reshape(len(rows_), starts, n)

    return ColumnFit(
        params=params,
        loss=start_loss[best, np.arange(n)],
        best_start=best,
        start_loss=start_loss,
        members=members,
        in_ensemble=in_ensemble,
        history=np.asarray(history, np.float64),
        objective=trace(objective),
        holdout_objective=trace(held_back) if holdout_fraction > 0
        else np.full((steps + 1, starts, n), np.nan),
        elapsed=np.asarray(elapsed, np.float64),
        evaluations=steps * starts + starts,
        seconds=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------------------------------
# calibrate


PERIODS = ("calibration", "validation")


@dataclasses.dataclass
class Calibration:
    """Outcome of ``calibrate``: per-basin parameters, skill and closure (numpy, ``[basin]``)."""

    config: CalibrationRunConfig
    basins: tuple[str, ...]
    coords: dict[str, np.ndarray]
    """Per-basin ``lat``, ``lon``, ``area_km2``, ``name`` for the output file."""
    fit: ColumnFit
    scores: dict[str, np.ndarray]
    """``nse_<period>``, ``kge_<period>``, ``n_obs_<period>`` for each of ``PERIODS``, and
    ``max_abs_step_water_residual``, ``max_abs_cumulative_water_residual`` (mm) of the run over
    every loaded day."""
    seconds: float
    """Wall time of ``calibrate`` (loading, fitting, scoring)."""

    @property
    def params(self) -> Params:
        return self.fit.params

    def dataset(self, *, history: str | None = None):
        """A CF-1.8 ``xarray.Dataset`` (dim ``basin``): one variable per physical parameter
        (units and long_name from ``PARAMETER_BOUNDS``; attribute ``calibrated`` says whether
        it was fitted or left at its default), the soil capacity, the calibration loss and
        best start, and the scores of ``scores``."""
        import xarray as xr

        from .io.output import package_version

        c = self.config.calibration
        # the ensemble's members (every start) or the best start's parameters alone
        params = self.fit.members if c.ensemble else self.params
        dims = ("member", "basin") if c.ensemble else ("basin",)
        data_vars = {}
        for name, b in PARAMETER_BOUNDS.items():
            data_vars[name] = (
                dims,
                np.asarray(getattr(params, name), np.float64),
                {
                    "long_name": b.description,
                    "units": b.units,
                    "valid_min": b.low,
                    "valid_max": b.high,
                    "calibrated": "yes" if name in c.params else "no (default)",
                },
            )
        data_vars["soil_capacity"] = (
            dims,
            np.asarray(params.soil_capacity, np.float64),
            {"long_name": "plant-available soil water capacity 1000 (theta_cap - theta_wp) "
             "root_depth", "units": "mm"},
        )
        # 1 - NSE and 1 - KGE are ratios; the mean squared error is in the flux's units squared
        loss_units = "kg2 m-4 day-2" if c.loss == "mse" else "1"
        if c.ensemble:
            data_vars["in_ensemble"] = (
                dims, self.fit.in_ensemble.astype(np.int8),
                {"long_name": "1: the member enters the basin's ensemble mean (equal weights); "
                 "0: left out (its calibration loss is not finite)", "units": "1"},
            )
            data_vars["member_loss"] = (
                dims, self.fit.start_loss.astype(np.float64),
                {"long_name": f"calibration loss ({c.loss}) of each member (start)",
                 "units": loss_units},
            )
        data_vars["calibration_loss"] = (
            ("basin",), self.fit.loss.astype(np.float64),
            {"long_name": f"calibration loss ({c.loss}) of the best start",
             "units": loss_units},
        )
        data_vars["best_start"] = (
            ("basin",), self.fit.best_start.astype(np.int32),
            {"long_name": "index of the start with the lowest calibration loss (0: from the "
             "default parameters)", "units": "1"},
        )
        period_text = {
            "calibration": self.config.data.train_period,
            "validation": self.config.data.validation_period,
        }
        for period in PERIODS:
            first, last = period_text[period]
            for metric, long in (("nse", "Nash-Sutcliffe efficiency"),
                                 ("kge", "Kling-Gupta efficiency")):
                data_vars[f"{metric}_{period}"] = (
                    ("basin",), self.scores[f"{metric}_{period}"].astype(np.float64),
                    {"long_name": f"{long} of daily streamflow, {period} period {first} .. "
                     f"{last}", "units": "1"},
                )
            data_vars[f"n_obs_{period}"] = (
                ("basin",), self.scores[f"n_obs_{period}"].astype(np.int32),
                {"long_name": f"observed days in the {period} period", "units": "1"},
            )
        for key, long in (
            ("max_abs_step_water_residual", "largest per-step |dS - (P - E - Q)|"),
            ("max_abs_cumulative_water_residual", "largest cumulative |S_t - S_0 - sum(P - E - Q)|"),
        ):
            data_vars[key] = (
                ("basin",), self.scores[key].astype(np.float64),
                {"long_name": f"{long} over the whole simulated span", "units": "mm"},
            )
        coords = {"basin": ("basin", np.asarray(self.basins, dtype=str))}
        for name, units in (("lat", "degrees_north"), ("lon", "degrees_east"),
                            ("area_km2", "km2"), ("name", None)):
            if name in self.coords:
                attrs = {"units": units} if units else {}
                coords[name] = ("basin", np.asarray(self.coords[name]), attrs)
        attrs = {
            "Conventions": "CF-1.8",
            "title": "hybridland per-basin calibration of the physical bucket",
            "source": f"hybridland {package_version()} (hybridland.calibrate)",
            "calibration_period": " .. ".join(self.config.data.train_period),
            "validation_period": " .. ".join(self.config.data.validation_period),
            "warmup_days": self.config.data.warmup_days,
            "optimizer": f"adam, cosine decay {c.learning_rate:g} -> {c.final_learning_rate:g}",
            "starts": c.starts,
            "steps": c.steps,
            "holdout_fraction": c.holdout_fraction,
            "calibrated_model": (
                "the mean of the simulations of the members with in_ensemble = 1 (equal "
                "weights)" if c.ensemble else "the parameters of the best start"),
            "model_evaluations_per_basin": self.fit.evaluations,
            "wall_time_s": round(self.seconds, 3),
            "configuration": self.config.to_yaml(),
        }
        if history:
            attrs["history"] = history
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def calibration_inputs(config: CalibrationRunConfig):
    """``(data, model, forcing, observed)`` as ``calibrate`` fits them: the ``RunData`` of
    ``config.data`` (periods ``train``, ``validation`` and ``test`` where given), the bucket
    with ``config.calibration.pet``, and the forcing and observed runoff ``[basin, time]`` of
    the calibration period with its warm-up days before it.

    Basins without any observed streamflow day in the calibration period are left out, with a
    ``DataAdjustmentWarning`` naming them (nothing could calibrate them). Raises
    ``ForcingDataError`` when the file has no streamflow variable or when no basin has an
    observed day in the calibration period, or none in the validation period
    (``hybridland.train.data.require_observed_runoff``)."""
    from .column import build_model
    from .train.data import (
        LOADERS,
        assemble,
        hide_dry_years,
        keep_basins,
        period_indices,
        require_observed_runoff,
    )

    cfg, c = config.data, config.calibration
    source = LOADERS[cfg.loader](cfg, c.seed)
    named = {"train": cfg.train_period, "validation": cfg.validation_period}
    if cfg.test_period is not None:
        named["test"] = cfg.test_period
    periods = period_indices(source.time, named, cfg.warmup_days)
    check = {"fit_label": "calibration", "partial": "drop"}
    # the driest years are hidden from the fit as from a training (the dry-extreme test)
    source = hide_dry_years(source, periods, cfg, "calibration", **check)
    # the days the steps fit: the calibration period less the held-back days at its end (a
    # basin observed only there was fitted to nothing, and written as calibrated, loss 0)
    first, last = periods["train"]
    held = holdout_days(last - first + 1, c.holdout_fraction)
    lacking = require_observed_runoff(
        source, {**periods, "train": (first, last - held)}, cfg, "calibration", **check,
        fit_note=(f" less its last {held} days (held back to choose the step, "
                  "calibration.holdout_fraction)") if held else "")
    if lacking:
        source = keep_basins(source, [b for b in source.basins if b not in lacking])
    n = len(source.basins)
    data = assemble(source, periods, (), np.zeros((n, 0)), None, "train")
    model = build_model("physics", pet=c.pet)
    start, length = data.period_window("train", cfg.warmup_days)
    rows = np.arange(n)
    forcing = data.forcing(rows, np.full(n, start), length)
    observed = data.observed(rows, np.full(n, start), length)
    return data, model, forcing, observed


def calibrate(config: CalibrationRunConfig, *, progress: bool = False) -> Calibration:
    """Calibrate every basin of ``config.data`` (see the module docstring).

    Raises ``ForcingDataError`` / ``FileNotFoundError`` for unusable data and ``ValueError``
    for periods the data do not cover, each naming the problem.
    """
    t0 = time.perf_counter()
    cfg, c = config.data, config.calibration
    data, model, forcing, observed = calibration_inputs(config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=c.steps, desc="calibrate", unit="step")
    fit = calibrate_columns(
        model,
        forcing,
        observed,
        warmup_days=cfg.warmup_days,
        params=c.params,
        starts=c.starts,
        steps=c.steps,
        learning_rate=c.learning_rate,
        final_learning_rate=c.final_learning_rate,
        loss=c.loss,
        window_days=c.window_days,
        holdout_fraction=c.holdout_fraction,
        trace_every=c.trace_every,
        seed=c.seed,
        progress=None if bar is None else (lambda k, v: bar.update(1)),
    )
    if bar is not None:
        bar.close()
    periods = {"calibration": "train", "validation": "validation"}
    if c.ensemble:
        scores = score_periods(model, data, fit.members, periods, weights=fit.in_ensemble)
    else:
        scores = score_periods(model, data, fit.params, periods)
    return Calibration(
        config=config,
        basins=data.basins,
        coords=data.coords,
        fit=fit,
        scores=scores,
        seconds=time.perf_counter() - t0,
    )


def score_periods(model, data, params: Params, periods: dict[str, str],
                  weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Simulate every basin of ``data`` (a ``RunData``) over all its days with ``params`` and
    score NSE and KGE on each period (``{output name: RunData period name}``); also the largest
    per-step and cumulative water residuals of the run. With ``weights`` ``[members, basins]``,
    ``params`` are ``[members, basins]`` and the scored run is their weighted mean
    (``member_mean``); its residuals are then the largest of any member (of weight > 0), as
    ``evaluate_ensemble`` reports them: residuals of opposite sign would cancel in the mean."""
    n = data.n_basins
    forcing = data.forcing(np.arange(n), np.zeros(n, int), len(data.time))
    if weights is not None:
        forcing, params = member_columns(forcing, params)
    sim = simulate(model, forcing, jax.tree_util.tree_map(jnp.asarray, params),
                   outputs=("runoff", "water_residual", "cumulative_water_residual"))
    step_residual, cumulative = (np.abs(np.asarray(x)).max(axis=-1)
                                 for x in (sim.fluxes.water_residual,
                                           sim.cumulative_water_residual))
    runoff = sim.fluxes.runoff
    if weights is not None:
        runoff = member_mean(runoff, weights)
        used = (np.asarray(weights) > 0).T  # [basins, members], as the columns
        step_residual, cumulative = (np.where(used, x.reshape(used.shape), 0.0).max(axis=1)
                                     for x in (step_residual, cumulative))
    runoff = np.asarray(runoff)
    out = {}
    for name, period in periods.items():
        first, last = data.periods[period]
        obs = data.obs[:, first : last + 1]
        sim_p = runoff[:, first : last + 1]
        out[f"nse_{name}"] = np.asarray(metrics.nse(obs, sim_p))
        out[f"kge_{name}"] = np.asarray(metrics.kge(obs, sim_p))
        out[f"n_obs_{name}"] = np.isfinite(obs).sum(axis=1)
    out["max_abs_step_water_residual"] = step_residual
    out["max_abs_cumulative_water_residual"] = cumulative
    return out


class CalibratedParameters(NamedTuple):
    """What ``load_calibrated`` reads: the calibrated model of each basin."""

    params: Params
    """``[members, basins]``: the ensemble's members (one member for a file of the best start
    alone, ``calibration.ensemble: false``)."""
    weights: np.ndarray
    """``[members, basins]``: 1 for a member of the basin's ensemble mean, 0 for one left out."""
    pet: str
    """The PET law the parameters were calibrated with."""
    basins: tuple[str, ...] = ()
    """The basin ids of the columns of ``params`` and ``weights``."""

    def select(self, basins, source: str = "The calibration") -> "CalibratedParameters":
        """The same calibration for ``basins`` (ids among ``self.basins``, in the order
        given); a ``ValueError`` names those it has no parameters for (``source``: what the
        message calls the calibration, e.g. its file) and the basins it has."""
        basins = [str(b) for b in basins]
        index = {b: i for i, b in enumerate(self.basins)}
        lacking = [b for b in basins if b not in index]
        if lacking:
            raise ValueError(
                f"{source} has no calibrated parameters for basin(s) "
                f"{', '.join(lacking[:10])}{' ...' if len(lacking) > 10 else ''}; simulate the "
                f"{len(self.basins)} basin(s) it has (--basins {','.join(self.basins[:3])}"
                f"{',...' if len(self.basins) > 3 else ''}).")
        rows = np.array([index[b] for b in basins], dtype=int)
        params = Params(**{k: v[:, rows] for k, v in vars(self.params).items()})
        return CalibratedParameters(params, self.weights[:, rows], self.pet, tuple(basins))


def load_calibrated(path: str | os.PathLike, basins=None) -> CalibratedParameters:
    """The calibrated model of ``basins`` (default: every basin of the file, in its order) in
    the file ``hybridland calibrate`` wrote: parameters and weights ``[members, len(basins)]``
    (simulate them with ``member_columns`` and average with ``member_mean``) and the name of
    the PET law they were calibrated with.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and the
    problem: a folder, not a calibration file, a parameter missing, or basins the file has no
    parameters for.
    """
    from .io._checks import open_netcdf

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"Parameter file {path} is a folder; give the NetCDF file that "
                         "`hybridland calibrate --out` wrote.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Parameter file {path} does not exist; give the NetCDF file "
                                "that `hybridland calibrate --out` wrote.")
    with open_netcdf(path, "the layout hybridland calibrate writes (dim basin)") as ds:
        ds = ds.load()
    # the basic bucket's parameters are required; a structure parameter added after the file
    # was written (unused by the basic bucket) takes its default
    missing = [n for n in BUCKET_PARAMETERS if n not in ds.data_vars]
    if "basin" not in ds.dims or missing or "configuration" not in ds.attrs:
        raise ValueError(
            f"{path} is not a parameter file of hybridland calibrate (it needs dim 'basin', one "
            f"variable per parameter and the 'configuration' attribute; missing: "
            f"{missing or 'configuration' if 'basin' in ds.dims else 'dim basin'})."
        )
    known = tuple(str(b) for b in ds["basin"].values)
    if "member" not in ds.dims:  # the best start alone: one member
        ds = ds.expand_dims("member")
    ds = ds.transpose("member", "basin", ...)
    shape = (ds.sizes["member"], len(known))
    params = Params(**{
        n: jnp.asarray(np.broadcast_to(ds[n].values, shape)) if n in ds.data_vars
        else jnp.asarray(np.full(shape, b.default, ds[BUCKET_PARAMETERS[0]].dtype))
        for n, b in PARAMETER_BOUNDS.items()
    })
    weights = (np.broadcast_to(ds["in_ensemble"].values, shape) > 0 if "in_ensemble" in ds
               else np.ones(shape, bool))
    config = yaml.safe_load(ds.attrs["configuration"]) or {}
    pet = (config.get("calibration") or {}).get("pet", "given")
    if pet not in PET_LAWS:
        raise ValueError(f"{path} names an unknown PET law {pet!r} in its 'configuration' "
                         f"attribute (known: {sorted(PET_LAWS)}); calibrate again.")
    calibrated = CalibratedParameters(params, weights, pet, known)
    if basins is not None:
        calibrated = calibrated.select(basins, source=path)
    calibrated.params.check_bounds()  # of the basins asked for: the others are not used
    if not calibrated.weights.any(axis=0).all():
        raise ValueError(f"{path} leaves every member of a basin out of its ensemble "
                         "(in_ensemble = 0); calibrate again.")
    return calibrated
