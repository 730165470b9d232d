"""An MLP emulator of one day of a physics column model, closed by the same bucket arithmetic.

The emulator does not predict new stores. One MLP call per column and day maps

- the start-of-day stores (snow water equivalent, soil water relative to its capacity,
  groundwater; stores on a log scale),
- the day's forcing (precipitation, minimum and maximum air temperature, PET from the physics
  model's own PET law, day of year as sine and cosine),
- the physical parameters, each as its position in ``PARAMETER_BOUNDS`` (and, for the rate-like
  ones spanning more than a decade, also the position of its logarithm),

onto six **decisions**, each a fraction in [0, 1] through a sigmoid (``Decisions``): the snow
fraction of precipitation, the melted fraction of the pack, the surface-runoff fraction of the
water input, the ET stress factor (actual ET demand = stress x PET), and the drained fractions of
the soil and groundwater stores. ``apply_decisions`` turns them into fluxes with the exact,
leak-free store updates of ``physics/bucket.py`` (``take``, ``accumulate``, ``spill``), in the
order of ``ColumnModel.step``. So, like the physics and the hybrids, the emulator closes the
water balance at every step for any weights, and its stores never go negative.

``StepEmulator`` has the ``init_state`` / ``step`` / ``pet`` of a ``ColumnModel``, so
``simulate``, ``run_column`` and the closure diagnostics run it unchanged. It is trained
(``train_emulator``) on physics runs of synthetic twins (``hybridland.synthetic``: stochastic weather
over an aridity range, parameters uniform in their bounds) with a rollout loss: windows of
``window_days`` days are stepped by the emulator from the true start state and compared with
the physics on runoff, ET, relative soil water and (log) snow and groundwater stores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._containers import Fluxes, Forcing, State
from ._custom_types import FloatArray
from ._params import BUCKET_PARAMETERS, PARAMETER_BOUNDS, Params
from ._random import seed_key
from .learned._precision import full_precision
from .learned.networks import FEATURE_SCALES
from .column import ColumnModel, bucket_day
from .physics import bucket
from .physics.pet import PET_LAWS
from .solvers import Simulation, run_column, simulate, vmap_columns

DECISIONS = ("snow", "melt", "surface", "stress", "drainage", "baseflow")
"""Names of the emulator's outputs, in the order of the MLP's output vector."""

PRIOR_DECISIONS = (0.5, 0.1, 0.1, 0.5, 0.01, 0.02)
"""Fractions the untrained emulator starts near (output biases are their logits)."""

LOG_PARAMETERS = tuple(
    name for name in BUCKET_PARAMETERS
    if PARAMETER_BOUNDS[name].low > 0 and PARAMETER_BOUNDS[name].high >= 10 * PARAMETER_BOUNDS[name].low
)
"""Parameters spanning more than a decade: they are also fed as the position of their logarithm."""

N_FEATURES = 3 + 6 + 1 + len(BUCKET_PARAMETERS) + len(LOG_PARAMETERS)
"""Stores (3), forcing (P, Tmin, Tmax, PET, sin and cos of day of year), soil capacity, parameters."""

STORE_LOG_SCALE = 7.0
"""Divisor of log1p(store in mm): about one for a 1000 mm store."""


class Decisions(eqx.Module):
    """The process decisions of one step, each a fraction in [0, 1] (dimensionless)."""

    snow: FloatArray
    """Fraction of precipitation falling as snow."""
    melt: FloatArray
    """Fraction of the snowpack (after the day's snowfall) that melts."""
    surface: FloatArray
    """Fraction of the water input (rain + melt) that runs off at the surface."""
    stress: FloatArray
    """ET stress factor: ET demand = stress x PET (then limited by the soil water)."""
    drainage: FloatArray
    """Fraction of the soil water (after ET) draining to groundwater."""
    baseflow: FloatArray
    """Fraction of the groundwater (after drainage) leaving as baseflow."""


def apply_decisions(
    state: State,
    forcing: Forcing,
    params: Params,
    pet: FloatArray,
    decisions: Decisions,
    *,
    groundwater: bool = True,
) -> tuple[State, Fluxes]:
    """One day of the bucket driven by given decisions: ``(new_state, fluxes)``.

    The bucket of ``ColumnModel.step`` (``model.bucket_day``) with the decisions as its
    process laws: every outflow is a fraction of the water present when it is taken, additions
    keep their rounding remainder (routed to surface runoff), so Delta S = P - E - Q to rounding
    and stores stay >= 0 for any decisions in [0, 1]. Scalars per column; PET in mm day-1.
    """
    d = decisions
    precip = forcing.precip

    def partition():
        _, snowfall = bucket.take(precip, precip * d.snow)
        return precip - snowfall, snowfall  # exact: snowfall <= precip

    return bucket_day(
        state,
        forcing,
        params,
        pet,
        partition=partition,
        melt=lambda swe: bucket.take(swe, swe * d.melt),
        surface_fraction=lambda water_input: d.surface,
        stress=lambda soil_rel: d.stress,
        drain=lambda soil: bucket.take(soil, soil * d.drainage),
        release=lambda store: bucket.take(store, store * d.baseflow),
        groundwater=groundwater,
    )


def parameter_features(params: Params) -> FloatArray:
    """Each parameter's position in its range, then the log positions of ``LOG_PARAMETERS``."""
    # The emulated bucket is the basic one: the parameters of other structures play no part.
    linear = [
        (getattr(params, n) - PARAMETER_BOUNDS[n].low)
        / (PARAMETER_BOUNDS[n].high - PARAMETER_BOUNDS[n].low)
        for n in BUCKET_PARAMETERS
    ]
    logs = [
        jnp.log(getattr(params, n) / PARAMETER_BOUNDS[n].low)
        / math.log(PARAMETER_BOUNDS[n].high / PARAMETER_BOUNDS[n].low)
        for n in LOG_PARAMETERS
    ]
    return jnp.stack(linear + logs)


def features(state: State, forcing: Forcing, pet: FloatArray, params: Params) -> FloatArray:
    """The emulator's input vector ``[N_FEATURES]`` for one column and day (order one)."""
    capacity = params.soil_capacity
    phase = 2.0 * jnp.pi * forcing.doy / 365.25
    dynamic = jnp.stack(
        [
            jnp.log1p(state.swe) / STORE_LOG_SCALE,
            state.soil / capacity,
            jnp.log1p(state.groundwater) / STORE_LOG_SCALE,
            forcing.precip / FEATURE_SCALES["precip"],
            forcing.t_min / FEATURE_SCALES["t_mean"],
            forcing.t_max / FEATURE_SCALES["t_mean"],
            pet / FEATURE_SCALES["pet"],
            jnp.sin(phase),
            jnp.cos(phase),
            jnp.log1p(capacity) / STORE_LOG_SCALE,
        ]
    )
    return jnp.concatenate([dynamic, parameter_features(params)])


class StepEmulator(eqx.Module):
    """An MLP that emulates the decisions of ``physics`` for one column and day.

    Duck-compatible with ``ColumnModel`` (``pet``, ``init_state``, ``step``): pass it to
    ``simulate`` or ``run_column``. PET comes from the physics model's own PET law.

    **Fields:** ``mlp`` (``N_FEATURES -> len(DECISIONS)``, tanh hidden layers, sigmoid
    output), ``physics`` (the emulated ``ColumnModel``: PET law, groundwater switch, initial
    state).
    """

    mlp: eqx.nn.MLP
    physics: ColumnModel

    def __init__(self, physics: ColumnModel | None = None, width: int = 64, depth: int = 2, *, key):
        self.physics = ColumnModel() if physics is None else physics
        fields = ColumnModel.__dataclass_fields__
        extra = [n for n in ColumnModel.STRUCTURE_OPTIONS
                 if getattr(self.physics, n) != fields[n].default]
        if extra:
            raise ValueError(
                f"StepEmulator emulates the basic bucket; the physics model has {extra} "
                "switched on, which it cannot represent. Emulate ColumnModel(pet=..., "
                "groundwater=...) without them."
            )
        mlp = eqx.nn.MLP(
            N_FEATURES, len(DECISIONS), width, depth,
            activation=jnp.tanh, final_activation=jax.nn.sigmoid, key=key,
        )  # fmt: skip
        prior = jnp.asarray(PRIOR_DECISIONS)
        self.mlp = eqx.tree_at(lambda m: m.layers[-1].bias, mlp, jnp.log(prior / (1.0 - prior)))

    @property
    def pet(self):
        return self.physics.pet

    def init_state(self, params: Params, soil_fraction: float = 0.5) -> State:
        return self.physics.init_state(params, soil_fraction)

    # The emulated bucket is the basic one: its state is the column's, parameters are fixed.
    store_names = ("swe", "soil", "groundwater")
    flux_names = ()
    carries_components = False

    def column_state(self, state: State) -> State:
        return state

    def daily_parameters(self, forcing: Forcing, params: Params) -> None:
        return None

    @full_precision
    def decide(self, state: State, forcing: Forcing, pet: FloatArray, params: Params) -> Decisions:
        """The six fractions for one column and day (in the run's dtype)."""
        x = features(state, forcing, pet, params)
        weight_dtype = self.mlp.layers[0].weight.dtype
        out = self.mlp(x.astype(weight_dtype)).astype(jnp.result_type(state.soil))
        return Decisions(**dict(zip(DECISIONS, out)))

    def step(self, state: State, forcing: Forcing, params: Params) -> tuple[State, Fluxes]:
        """Advance one column by one day through ``apply_decisions``."""
        pet = self.physics.pet(forcing, params)
        decisions = self.decide(state, forcing, pet, params)
        return apply_decisions(
            state, forcing, params, pet, decisions, groundwater=self.physics.groundwater
        )


# ---------------------------------------------------------------------------------------------
# Training data: physics runs of synthetic twins


class PhysicsRuns(NamedTuple):
    """Physics runs to learn from or test against: ``forcing`` ``[column, time]``, ``params``
    and ``initial_state`` ``[column]``, and the physics ``simulation`` from that state."""

    forcing: Forcing
    params: Params
    initial_state: State
    simulation: Simulation


def physics_runs(
    physics: ColumnModel,
    n_columns: int,
    n_days: int,
    *,
    aridity: tuple[float, float],
    lat: tuple[float, float] = (30.0, 60.0),
    seed: int = 0,
    spinup_days: int = 365,
    params: Params | None = None,
) -> PhysicsRuns:
    """Float32 physics runs on ``synthetic_twin`` weather (parameters uniform in their bounds
    unless ``params`` is given), from the twin's spun-up stores."""
    from .io.canonical import to_forcing
    from .synthetic import synthetic_twin, twin_truth

    ds = synthetic_twin(
        n_columns, n_days, aridity=aridity, lat=lat, seed=seed, kind=physics, params=params,
        spinup_days=spinup_days, dtype=np.float32,
    )  # fmt: skip
    forcing = to_forcing(ds, dtype=np.float32, pet_source="given")
    true_params, state0 = twin_truth(ds, np.float32)
    return PhysicsRuns(forcing, true_params, state0, simulate(physics, forcing, true_params, state0))


# ---------------------------------------------------------------------------------------------
# Rollout loss and training


def range_problem(name: str, value: tuple[float, float]) -> str | None:
    """Why ``value`` is not a usable ``aridity`` or ``lat`` range ``(low, high)`` of the
    synthetic twins (None if it is)."""
    low, high = value
    if name == "aridity":
        if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or low > high:
            return (f"the aridity range (mean PET / mean P) must be LOW:HIGH with "
                    f"0 < LOW <= HIGH, got {low:g}:{high:g}; give e.g. 0.3:1.")
        return None
    if not -90 <= low <= high <= 90:
        return (f"the latitude range must be LOW:HIGH degrees north with "
                f"-90 <= LOW <= HIGH <= 90, got {low:g}:{high:g}; give e.g. 30:60.")
    return None


EMULATOR_PET_LAWS: tuple[str, ...] = tuple(
    sorted(name for name, law in PET_LAWS.items() if "net_radiation" not in law.requires))
"""PET laws an emulator can be trained with: its training runs are synthetic twins, whose
forcing has no net radiation."""

@dataclasses.dataclass(frozen=True)
class EmulatorSettings:
    """Architecture and training of an emulator (saved beside its weights as JSON)."""

    width: int = 64
    depth: int = 2
    pet: str = "given"
    groundwater: bool = True
    n_columns: int = 64
    """Training climates/parameter sets (synthetic twin columns)."""
    n_days: int = 1095
    """Days of each training run (after the twin's spin-up year)."""
    aridity: tuple[float, float] = (0.3, 1.0)
    lat: tuple[float, float] = (30.0, 60.0)
    window_days: int = 60
    """Length of each rollout of the loss, days."""
    batch: int = 64
    """Rollout windows per optimiser step."""
    steps: int = 2000
    learning_rate: float = 3e-3
    seed: int = 0

    def __post_init__(self):
        for name in ("width", "depth", "n_columns", "n_days", "window_days", "batch", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"EmulatorSettings.{name} must be >= 1, got {getattr(self, name)}.")
        if self.window_days >= self.n_days:
            raise ValueError(
                f"window_days ({self.window_days}) must be shorter than n_days ({self.n_days})."
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.pet not in EMULATOR_PET_LAWS:
            raise ValueError(
                f"PET law {self.pet!r} cannot drive the emulator's training runs (synthetic "
                f"twins, without net radiation); choose from {list(EMULATOR_PET_LAWS)}.")
        object.__setattr__(self, "aridity", tuple(float(a) for a in self.aridity))
        object.__setattr__(self, "lat", tuple(float(a) for a in self.lat))
        for name in ("aridity", "lat"):  # checked here, not after the physics runs
            problem = range_problem(name, getattr(self, name))
            if problem:
                raise ValueError(f"EmulatorSettings.{name}: {problem}")

    def physics(self) -> ColumnModel:
        """The emulated model: physical laws, PET by ``pet``, groundwater store or not."""
        return ColumnModel(pet=PET_LAWS[self.pet](), groundwater=self.groundwater)


LOSS_TERMS = ("runoff", "et", "soil_rel", "log_swe", "log_groundwater")
"""Series compared by the rollout loss, each divided by its standard deviation in the data."""


def _loss_series(sim: Simulation, params: Params) -> dict[str, FloatArray]:
    """``{term: [window, day]}`` for ``LOSS_TERMS`` (``params`` ``[window]``)."""
    return {
        "runoff": sim.fluxes.runoff,
        "et": sim.fluxes.et,
        "soil_rel": sim.states.soil / params.soil_capacity[:, None],
        "log_swe": jnp.log1p(sim.states.swe),
        "log_groundwater": jnp.log1p(sim.states.groundwater),
    }


class _Windows(NamedTuple):
    forcing: Forcing
    params: Params
    state0: State
    targets: dict


def _start_states(runs: PhysicsRuns) -> State:
    """The store at the start of every day, ``[column, time]``."""
    return jax.tree_util.tree_map(
        lambda s0, s: jnp.concatenate([s0[:, None], s[:, :-1]], axis=1),
        runs.initial_state, runs.simulation.states,
    )  # fmt: skip


def _cut_windows(runs: PhysicsRuns, starts: State, targets, columns, first_days, length: int):
    """Rollout windows of ``length`` days beginning on ``first_days`` of ``columns``."""
    days = first_days[:, None] + jnp.arange(length)
    series, static = runs.forcing.split_static()
    forcing = jax.tree_util.tree_map(
        lambda x: x[days] if x.ndim == 1 else x[columns[:, None], days], series
    )
    static = jax.tree_util.tree_map(lambda x: x[columns], static)
    return _Windows(
        forcing.with_static(static),
        jax.tree_util.tree_map(lambda x: x[columns], runs.params),
        jax.tree_util.tree_map(lambda x: x[columns, first_days], starts),
        {k: v[columns[:, None], days] for k, v in targets.items()},
    )


def rollout(emulator, forcing: Forcing, params: Params, state0: State) -> Simulation:
    """Step ``emulator`` over windows ``[window, day]`` from ``state0`` ``[window]`` (no jit)."""
    return vmap_columns(run_column, emulator, forcing, params, state0)


def rollout_loss(emulator, windows: _Windows, scales: dict) -> FloatArray:
    """Mean squared, scale-normalised error of the emulator's rollouts against the physics."""
    sim = rollout(emulator, windows.forcing, windows.params, windows.state0)
    series = _loss_series(sim, windows.params)
    return sum(jnp.mean(((series[k] - windows.targets[k]) / scales[k]) ** 2) for k in LOSS_TERMS)


def train_emulator(
    settings: EmulatorSettings,
    runs: PhysicsRuns | None = None,
    *,
    log: Callable[[str], None] | None = print,
    log_every: int = 200,
) -> tuple[StepEmulator, list[dict]]:
    """Train an emulator of ``settings.physics()``; returns ``(emulator, history)``.

    ``runs`` defaults to ``physics_runs`` of the settings' columns, days, aridity and latitude
    (seed ``settings.seed``). Each optimiser step (Adam, cosine-decayed learning rate, gradient
    norm clipped at 1) draws ``batch`` windows (column and first day uniform, from
    ``numpy.random.default_rng(seed)``) and rolls the emulator out from the physics state.
    ``history`` has the loss every ``log_every`` steps.
    """
    s = settings
    physics = s.physics()
    if runs is None:
        runs = physics_runs(
            physics, s.n_columns, s.n_days, aridity=s.aridity, lat=s.lat, seed=s.seed
        )
    n_columns, n_days = runs.forcing.precip.shape
    if s.window_days >= n_days:
        raise ValueError(f"window_days ({s.window_days}) must be shorter than the runs ({n_days} days).")
    targets = _loss_series(runs.simulation, runs.params)
    scales = {k: jnp.maximum(jnp.std(v), 1e-3) for k, v in targets.items()}
    starts = _start_states(runs)

    key_model, _ = jax.random.split(seed_key(s.seed))
    emulator = StepEmulator(physics, s.width, s.depth, key=key_model)
    schedule = optax.cosine_decay_schedule(s.learning_rate, s.steps, alpha=0.05)
    optim = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    opt_state = optim.init(eqx.filter(emulator.mlp, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(emulator, opt_state, data, columns, first_days):
        windows = _cut_windows(*data, columns, first_days, s.window_days)

        def loss_of(mlp):
            return rollout_loss(eqx.tree_at(lambda e: e.mlp, emulator, mlp), windows, scales)

        loss, grads = eqx.filter_value_and_grad(loss_of)(emulator.mlp)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(emulator.mlp, eqx.is_array))
        mlp = eqx.apply_updates(emulator.mlp, updates)
        return eqx.tree_at(lambda e: e.mlp, emulator, mlp), opt_state, loss

    rng = np.random.default_rng(s.seed)
    history, running, t0 = [], [], time.perf_counter()
    for step in range(1, s.steps + 1):
        columns = rng.integers(0, n_columns, s.batch)
        first_days = rng.integers(0, n_days - s.window_days + 1, s.batch)
        emulator, opt_state, loss = train_step(
            emulator, opt_state, (runs, starts, targets), columns, first_days
        )
        running.append(float(loss))
        if step % log_every == 0 or step == s.steps:
            entry = {"step": step, "loss": float(np.mean(running)), "seconds": time.perf_counter() - t0}
            history.append(entry)
            running = []
            if log is not None:
                log(f"step {step:5d}  rollout loss {entry['loss']:.4f}  ({entry['seconds']:.0f} s)")
    return emulator, history


# ---------------------------------------------------------------------------------------------
# Evaluation


SKILL_SERIES = ("runoff", "et", "soil")


def skill(model, runs: PhysicsRuns, sim: Simulation | None = None) -> dict[str, np.ndarray]:
    """NSE per column of ``model`` (an emulator, or any column model) against the physics
    runs, for runoff, ET and soil water, simulated from the same initial state (or of the
    given ``sim`` of that model)."""
    from .metrics import nse

    if sim is None:
        sim = simulate(model, runs.forcing, runs.params, runs.initial_state)
    truth = runs.simulation
    pairs = {
        "runoff": (truth.fluxes.runoff, sim.fluxes.runoff),
        "et": (truth.fluxes.et, sim.fluxes.et),
        "soil": (truth.states.soil, sim.states.soil),
    }
    return {k: np.asarray(nse(obs, est)) for k, (obs, est) in pairs.items()}


def evaluate_emulator(emulator, runs: PhysicsRuns) -> dict[str, float]:
    """Summary of ``emulator`` against physics runs: median (and minimum) NSE over columns of
    runoff, ET and soil water, and the largest per-step and cumulative water residual (mm)."""
    sim = simulate(emulator, runs.forcing, runs.params, runs.initial_state)
    scores = skill(emulator, runs, sim)
    summary = {}
    for name, values in scores.items():
        summary[f"median_nse_{name}"] = float(np.median(values))
        summary[f"min_nse_{name}"] = float(np.min(values))
    summary["max_abs_water_residual_mm"] = float(sim.max_abs_water_residual)
    summary["max_abs_cumulative_residual_mm"] = float(jnp.max(jnp.abs(sim.cumulative_water_residual)))
    summary["n_columns"], summary["n_days"] = (int(n) for n in runs.forcing.precip.shape)
    return summary


def field_capacity_response(
    model, forcing: Forcing, params: Params, state0: State, theta_caps
) -> np.ndarray:
    """Mean soil water (mm) over the run and columns for each ``theta_cap`` in ``theta_caps``,
    all other parameters and the initial state as given: ``[len(theta_caps)]``."""
    means = []
    for theta_cap in theta_caps:
        p = eqx.tree_at(lambda q: q.theta_cap, params, jnp.full_like(params.theta_cap, theta_cap))
        sim = simulate(model, forcing, p, state0, outputs=("soil",))
        means.append(float(jnp.mean(sim.states.soil)))
    return np.asarray(means)


# ---------------------------------------------------------------------------------------------
# Saving and loading

WEIGHTS_FILE = "emulator.eqx"
SETTINGS_FILE = "emulator.json"
WEIGHTS_CHECKSUM = "weights_sha256"
"""Key of ``SETTINGS_FILE`` holding the SHA-256 of the ``WEIGHTS_FILE`` saved with it."""


def save_emulator(
    folder: str | os.PathLike, emulator: StepEmulator, settings: EmulatorSettings, **extra
) -> Path:
    """Write ``emulator.eqx`` (weights, ``eqx.tree_serialise_leaves``) and ``emulator.json``
    (the settings, the weights' SHA-256 and any JSON-able ``extra``, e.g. the training
    history) into ``folder``. Each file is written atomically, the settings last: a save cut
    short between the two leaves new weights beside the earlier settings, which the checksum
    lets ``load_emulator`` refuse instead of reading them with settings they were not
    trained with."""
    from .io._files import json_text
    from .train.checkpoint import atomic_write_text, file_sha256, save_tree

    _check_matches(emulator, settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tree(folder / WEIGHTS_FILE, emulator)
    document = {"settings": dataclasses.asdict(settings),
                WEIGHTS_CHECKSUM: file_sha256(folder / WEIGHTS_FILE), **extra}
    atomic_write_text(folder / SETTINGS_FILE, json_text(document, indent=2) + "\n")
    return folder


def _check_matches(emulator: StepEmulator, settings: EmulatorSettings) -> None:
    """Refuse to save ``emulator`` with ``settings`` that describe another one (its physics'
    PET law or groundwater, its network's width or depth): the folder would load as a
    different model, or be called damaged."""
    like = StepEmulator(settings.physics(), settings.width, settings.depth, key=jax.random.key(0))
    got, want = emulator.physics, like.physics
    differences = [
        f"{name}: the emulator's {a} against the settings' {b}"
        for name, a, b in (("PET law", type(got.pet).__name__, type(want.pet).__name__),
                           ("groundwater", got.groundwater, want.groundwater))
        if a != b
    ]
    shapes = [tuple(jnp.shape(x)) for x in jax.tree_util.tree_leaves(eqx.filter(emulator,
                                                                              eqx.is_array))]
    wanted = [tuple(jnp.shape(x)) for x in jax.tree_util.tree_leaves(eqx.filter(like,
                                                                               eqx.is_array))]
    if shapes != wanted:
        differences.append(f"network: the emulator's weights have shapes {shapes[:4]}... "
                           f"against {wanted[:4]}... for width {settings.width} and depth "
                           f"{settings.depth}")
    if differences:
        raise ValueError("save_emulator: the settings do not describe this emulator ("
                         + "; ".join(differences) + "). Pass the settings it was built with.")


def load_emulator(folder: str | os.PathLike) -> tuple[StepEmulator, EmulatorSettings, dict]:
    """Inverse of ``save_emulator``: ``(emulator, settings, the whole JSON document)``.
    Folders written before the settings held the weights' checksum load without the check."""
    from .train.checkpoint import ChecksumError, load_tree

    folder = Path(folder)
    for name in (WEIGHTS_FILE, SETTINGS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: not an emulator folder (see save_emulator).")
    fix = (f"Train the emulator again (`hybridland emulate train --out {folder}`) or restore "
           "the folder from a backup.")
    try:
        document = json.loads((folder / SETTINGS_FILE).read_text())
        settings = EmulatorSettings(**document["settings"])
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(f"{folder / SETTINGS_FILE} is damaged: it cannot be read as an "
                         f"emulator's settings ({type(err).__name__}: {err}). {fix}") from None
    like = StepEmulator(settings.physics(), settings.width, settings.depth, key=jax.random.key(0))
    try:  # read once: the weights loaded are the bytes checked
        emulator = load_tree(folder / WEIGHTS_FILE, like, document.get(WEIGHTS_CHECKSUM))
    except ChecksumError:
        raise ValueError(f"{folder / WEIGHTS_FILE} is damaged or is not the file "
                         f"{folder / SETTINGS_FILE} was written with (its SHA-256 differs: a "
                         f"save cut short, or one of the two files replaced by hand). {fix}"
                         ) from None
    except Exception as err:  # noqa: BLE001 - equinox reports a short file as TreePathError
        raise ValueError(f"{folder / WEIGHTS_FILE} is damaged: it cannot be read as the weights "
                         f"of the emulator {folder / SETTINGS_FILE} describes (truncated, or "
                         f"written for other settings; {type(err).__name__}). {fix}") from None
    return emulator, settings, document
