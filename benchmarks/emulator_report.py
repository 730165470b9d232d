"""Skill, speed, parameter response, calibration and transfer of the step emulator.

One command trains an emulator (``hybridland.emulator``) on physics runs of synthetic twins
with aridity 0.3-1 and measures, against the physics it emulates:

- skill over multi-year rollouts (from the physics' spun-up state, never reset) on held-out
  climates and parameters of the training aridity range, and on drier climates it never saw
  (aridity 1.5-3): NSE of runoff, ET and soil water per column;
- speed: ``simulate`` of the physics and of the emulator on the same forcing, jit-compiled,
  median of repeated steady-state calls;
- field-capacity response: mean soil water against ``theta_cap`` (other parameters default);
- calibration of ``theta_cap``, ``et_threshold`` and ``runoff_shape`` per column (the other
  parameters at their true values) by Adam on the NSE of runoff of a synthetic twin, through
  the emulator and directly through the physics; the recovered parameters are then run in the
  physics and scored against the twin.

    .venv/bin/python benchmarks/emulator_report.py \\
        --json benchmarks/results/emulator.json --figures docs/figures

(``--quick`` for a smoke run with small settings.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import hybridland as hl  # noqa: E402
from hybridland import emulator as em  # noqa: E402
from hybridland.io._files import atomic_write_bytes, atomic_write_text  # noqa: E402
from hybridland.metrics import nse  # noqa: E402

CALIBRATED = ("theta_cap", "et_threshold", "runoff_shape")


def _median_skill(model, runs) -> dict[str, float]:
    return {k: round(float(np.median(v)), 3) for k, v in em.skill(model, runs).items()}


def _steady_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def speed(emulator, runs, repeats: int) -> dict:
    """Steady-state seconds of ``simulate`` for the physics and the emulator, same shapes."""
    def run(model):
        return lambda: hl.simulate(model, runs.forcing, runs.params, runs.initial_state).fluxes.runoff

    physics_s = _steady_seconds(run(emulator.physics), repeats)
    emulator_s = _steady_seconds(run(emulator), repeats)
    n_columns, n_days = runs.forcing.precip.shape
    return {
        "columns": n_columns,
        "days": n_days,
        "physics_s": round(physics_s, 4),
        "emulator_s": round(emulator_s, 4),
        "emulator_over_physics_time": round(emulator_s / physics_s, 1),
        "device": str(jax.devices()[0].device_kind),
    }


def calibrate(model, runs, observed, steps: int, learning_rate: float) -> hl.Params:
    """Per-column ``CALIBRATED`` parameters maximising the NSE of runoff against ``observed``,
    from their defaults; the other parameters stay at ``runs.params``."""
    n = runs.forcing.precip.shape[0]
    start = hl.Params.default(n).to_unconstrained()
    u0 = {name: getattr(start, name) for name in CALIBRATED}

    def params_of(u):
        unconstrained = runs.params.to_unconstrained()
        unconstrained = eqx.tree_at(
            lambda p: tuple(getattr(p, k) for k in CALIBRATED), unconstrained,
            tuple(u[k] for k in CALIBRATED),
        )  # fmt: skip
        return unconstrained.from_unconstrained()

    @eqx.filter_jit
    def loss_fn(u):
        sim = hl.simulate(model, runs.forcing, params_of(u), runs.initial_state, outputs=("runoff",))
        return jnp.mean(1.0 - nse(observed, sim.fluxes.runoff))

    optim = optax.adam(learning_rate)
    state = optim.init(u0)

    @eqx.filter_jit
    def update(u, state):
        loss, grads = jax.value_and_grad(loss_fn)(u)
        updates, state = optim.update(grads, state)
        return optax.apply_updates(u, updates), state, loss

    u = u0
    for _ in range(steps):
        u, state, _ = update(u, state)
    return params_of(u)


def calibration_study(emulator, runs, steps: int, learning_rate: float) -> tuple[dict, dict]:
    observed = runs.simulation.fluxes.runoff
    result, recovered = {}, {}
    for label, model in (("physics", emulator.physics), ("emulator", emulator)):
        t0 = time.perf_counter()
        params = calibrate(model, runs, observed, steps, learning_rate)
        seconds = time.perf_counter() - t0
        check = hl.simulate(emulator.physics, runs.forcing, params, runs.initial_state)
        recovered[label] = params
        result[label] = {
            "seconds": round(seconds, 1),
            "physics_nse_runoff_median": round(float(np.median(nse(observed, check.fluxes.runoff))), 3),
            "physics_nse_soil_median": round(
                float(np.median(nse(runs.simulation.states.soil, check.states.soil))), 3
            ),
            **{
                f"{name}_median_abs_error": round(
                    float(np.median(np.abs(getattr(params, name) - getattr(runs.params, name)))), 3
                )
                for name in CALIBRATED
            },
        }
    return result, recovered


# ---------------------------------------------------------------------------------------------
# Figures


def _save(fig, path: Path, dpi: int) -> None:
    """Write ``fig`` as a PNG atomically: an interrupted report leaves the earlier figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=dpi, format="png"))


def plot_field_capacity(theta_caps, physics, emulated, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(theta_caps, physics, "o-", label="physics")
    ax.plot(theta_caps, emulated, "s--", label="emulator")
    ax.set_xlabel("theta_cap (m3 m-3)")
    ax.set_ylabel("mean soil water (mm)")
    ax.set_title("Field-capacity response (held-out climates)")
    ax.legend()
    fig.tight_layout()
    _save(fig, path, 120)
    plt.close(fig)


def plot_rollouts(emulator, cases: dict, path: Path, days: int = 730) -> None:
    fig, axes = plt.subplots(3, len(cases), figsize=(5 * len(cases), 7), sharex=True)
    for col, (title, runs) in enumerate(cases.items()):
        sim = hl.simulate(emulator, runs.forcing, runs.params, runs.initial_state)
        truth = runs.simulation
        pairs = (
            ("runoff (mm/day)", truth.fluxes.runoff, sim.fluxes.runoff),
            ("ET (mm/day)", truth.fluxes.et, sim.fluxes.et),
            ("soil water (mm)", truth.states.soil, sim.states.soil),
        )
        for row, (label, a, b) in enumerate(pairs):
            ax = axes[row, col]
            ax.plot(np.asarray(a[0, -days:]), lw=0.8, label="physics")
            ax.plot(np.asarray(b[0, -days:]), lw=0.8, ls="--", label="emulator")
            ax.set_ylabel(label)
        axes[0, col].set_title(title)
    axes[0, 0].legend()
    for ax in axes[-1]:
        ax.set_xlabel(f"day (last {days} of the rollout)")
    fig.tight_layout()
    _save(fig, path, 110)
    plt.close(fig)


def plot_calibration(truth: hl.Params, recovered: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(CALIBRATED), figsize=(4 * len(CALIBRATED), 3.6))
    for ax, name in zip(axes, CALIBRATED):
        b = hl.PARAMETER_BOUNDS[name]
        for label, params in recovered.items():
            ax.scatter(np.asarray(getattr(truth, name)), np.asarray(getattr(params, name)),
                       label=f"through {label}", marker="o" if label == "physics" else "x")
        ax.plot([b.low, b.high], [b.low, b.high], "k:", lw=0.8)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"recovered {name}")
    axes[0].legend()
    fig.tight_layout()
    _save(fig, path, 110)
    plt.close(fig)


def plot_training(history: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.semilogy([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("rollout loss")
    fig.tight_layout()
    _save(fig, path, 110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None,
                        help="the report (default benchmarks/results/emulator.json; with --quick "
                        "required, so that a smoke run never replaces the committed report)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="folder of the figures (default docs/figures; with --quick "
                        "required)")
    parser.add_argument("--emulator-dir", type=Path, default=None,
                        help="also save the trained emulator here")
    parser.add_argument("--quick", action="store_true", help="small settings (smoke run)")
    args = parser.parse_args(argv)
    quick = args.quick
    if quick and (args.json is None or args.figures is None):
        parser.error("--quick needs --json and --figures (a smoke run must not replace the "
                     "committed report and figures); e.g. --json /tmp/emulator.json --figures "
                     "/tmp/emulator-figures")
    args.json = args.json or Path("benchmarks/results/emulator.json")
    args.figures = args.figures or Path("docs/figures")
    settings = em.EmulatorSettings(
        n_columns=16 if quick else 128, n_days=400 if quick else 1095,
        steps=100 if quick else 6000, window_days=30 if quick else 60, seed=0,
    )  # fmt: skip
    test_days = 365 if quick else 1825
    n_test = 8 if quick else 32
    physics = settings.physics()
    report: dict = {"settings": {k: v for k, v in vars(settings).items()}}

    t0 = time.perf_counter()
    emulator, history = em.train_emulator(settings, log_every=500 if not quick else 50)
    report["training_seconds"] = round(time.perf_counter() - t0, 1)
    report["final_rollout_loss"] = round(history[-1]["loss"], 4)
    if args.emulator_dir is not None:
        em.save_emulator(args.emulator_dir, emulator, settings, history=history)

    held_out = em.physics_runs(physics, n_test, test_days, aridity=settings.aridity, seed=101)
    transfer = em.physics_runs(physics, n_test, test_days, aridity=(1.5, 3.0), seed=102)
    report["skill_held_out"] = {"aridity": list(settings.aridity), "days": test_days,
                                "columns": n_test, "median_nse": _median_skill(emulator, held_out)}
    report["skill_transfer"] = {"aridity": [1.5, 3.0], "days": test_days, "columns": n_test,
                                "median_nse": _median_skill(emulator, transfer)}
    report["closure_held_out"] = {
        k: v for k, v in em.evaluate_emulator(emulator, held_out).items() if "residual" in k
    }

    speed_runs = em.physics_runs(physics, 32 if quick else 256, 3650, aridity=settings.aridity,
                                 seed=104, spinup_days=0)
    report["speed"] = speed(emulator, speed_runs, repeats=3 if quick else 5)

    theta_caps = np.linspace(0.15, 0.55, 9)
    n = held_out.forcing.precip.shape[0]
    defaults = hl.Params.default(n)
    state0 = physics.init_state(defaults)
    response = {
        label: em.field_capacity_response(model, held_out.forcing, defaults, state0, theta_caps)
        for label, model in (("physics", physics), ("emulator", emulator))
    }
    slope = {k: float(np.polyfit(theta_caps, v, 1)[0]) for k, v in response.items()}
    report["field_capacity_response"] = {
        "theta_cap": theta_caps.round(3).tolist(),
        **{f"mean_soil_mm_{k}": np.round(v, 1).tolist() for k, v in response.items()},
        "slope_ratio_emulator_over_physics": round(slope["emulator"] / slope["physics"], 3),
        "emulator_monotone": bool(np.all(np.diff(response["emulator"]) > 0)),
    }

    twin = em.physics_runs(physics, 8, 365 if quick else 1095, aridity=settings.aridity, seed=103)
    report["calibration"], recovered = calibration_study(
        emulator, twin, steps=20 if quick else 300, learning_rate=0.05
    )

    args.figures.mkdir(parents=True, exist_ok=True)
    plot_field_capacity(theta_caps, response["physics"], response["emulator"],
                        args.figures / "emulator_field_capacity.png")
    plot_rollouts(emulator, {"held-out climate (aridity 0.3-1)": held_out,
                             "unseen drier climate (aridity 1.5-3)": transfer},
                  args.figures / "emulator_rollouts.png")
    plot_calibration(twin.params, recovered, args.figures / "emulator_calibration.png")
    plot_training(history, args.figures / "emulator_training.png")

    text = json.dumps(report, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, text + "\n")
    return report


if __name__ == "__main__":
    main()
