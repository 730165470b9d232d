"""Where a training epoch's time goes: the cost of one training step of a run configuration and
of the same configuration with parts of the model taken out, measured in one process.

For the configuration given (default: the climate-shift study's regional hybrid) and each
variant, the script loads the run's data once, builds the model and its optimiser exactly as
``hybridland train`` does, and times ``--repeats`` training steps (a loss, its gradient and an
optimiser update on ``training.batch_basins`` basins x the warm-up plus ``training.window_days``
days, random windows as in training) after a first, compiling, step; then one validation pass
(every basin, the validation period with its warm-up). Variants (``--variants``):

- ``full``: the configuration as written;
- ``one_component``: ``model.components: 1`` (the bucket without its parallel components);
- ``no_daily_network``: ``model.dynamic_params: []`` (no daily-parameter LSTM);
- ``core``: both removed (one bucket, its routing and the parameter network);
- ``lstm``: the study's data-driven peer (``--peer``, default ``experiments/climate_shift/lstm.yaml``)
  on its own data and batch.

It prints, per variant, the compile time, the steady step (median of the repeats), its ratio to
``full`` measured in the same run, the validation pass and the implied epoch
(``batches_per_epoch`` steps plus one validation every ``validate_every`` epochs); ``--batch``
also times the full configuration at other batch sizes (the step cost per basin shows whether
a step is compute or per-day overhead). The machine is shared and noisy: compare ratios.

    .venv/bin/python benchmarks/training_step.py --json benchmarks/results/training_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "full": {},
    "one_component": {"components": 1},
    "no_daily_network": {"dynamic_params": ()},
    "core": {"components": 1, "dynamic_params": ()},
}


def time_config(config, repeats: int, batch_basins: int | None = None, seed: int = 0) -> dict:
    """Compile and steady step times (s) of ``config``'s training step, and one validation."""
    import jax
    import numpy as np

    from hybridland.io import DataAdjustmentWarning
    from hybridland.train import loop
    from hybridland.train.data import load_data

    config = loop._resolved(config)
    if batch_basins is not None:
        config = config.replace("training", batch_basins=batch_basins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        data = load_data(config)
    model = loop.build_model(config, len(config.model.static_attributes))
    trainable, static = loop.init_trainables(config, model, data.n_basins, data.normalisation)
    n_steps = loop.steps_per_epoch(config, data)
    optim = loop.build_optimizer(config.training, n_steps)
    spec = loop.LossSpec(config.data.warmup_days, config.training.loss,
                         config.training.extreme_weight)
    opt_state = loop._initial_state(trainable, optim)["opt_state"]
    t = config.training
    window = config.data.warmup_days + t.window_days
    size = min(t.batch_basins, data.n_basins)
    first, last = data.periods["train"]
    rng = np.random.default_rng(seed)

    def batch():
        basins = np.sort(rng.choice(data.n_basins, size, replace=False))
        starts = rng.integers(first, last - t.window_days + 2, size=size)
        return loop._batch(data, basins, starts - config.data.warmup_days, window)

    times = []
    for i in range(repeats + 1):
        b = batch()
        t0 = time.perf_counter()
        trainable, opt_state, loss = loop._train_step(trainable, static, opt_state, optim, b, spec)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t0)
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"training loss {float(loss)} at step {i}")
    v_start, v_len = data.period_window("validation", config.data.warmup_days)
    everyone = np.arange(data.n_basins)
    val = loop._batch(data, everyone, np.full(data.n_basins, v_start), v_len)
    val_times = []
    for _ in range(2):  # the first compiles
        t0 = time.perf_counter()
        jax.block_until_ready(loop._evaluate(trainable, static, val, spec))
        val_times.append(time.perf_counter() - t0)
    step = statistics.median(times[1:])
    validation = val_times[-1]
    return {
        "components": config.model.components,
        "dynamic_params": list(config.model.dynamic_params or ()),
        "basins": data.n_basins,
        "batch_basins": size,
        "days_per_step": window,
        "batches_per_epoch": n_steps,
        "validate_every": t.validate_every,
        "compile_s": times[0] - step,
        "step_s": step,
        "step_s_all": times[1:],
        "ms_per_basin_step": 1000 * step / size,
        "validation_s": validation,
        "validation_compile_s": val_times[0] - validation,
        "epoch_s": n_steps * step + validation / t.validate_every,
    }


def variant_config(config, name: str, peer: str):
    """The configuration timed as variant ``name`` of ``config`` (``lstm``: the file ``peer``)."""
    from hybridland.train.config import load_config

    if name == "lstm":
        return load_config(peer)
    return config.replace("model", **VARIANTS[name]) if VARIANTS[name] else config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "experiments/climate_shift/hybrid.yaml"))
    parser.add_argument("--peer", default=str(ROOT / "experiments/climate_shift/lstm.yaml"),
                        help="configuration of the 'lstm' variant")
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, "lstm"],
                        choices=[*VARIANTS, "lstm"])
    parser.add_argument("--batch", nargs="*", type=int, default=[],
                        help="also time the full configuration with these batch_basins")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--json", default=None, help="write the records here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    from hybridland.train.config import load_config

    import jax

    from hybridland.train.checkpoint import atomic_write_text

    config = load_config(args.config)
    records = []
    machine = {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
               "python": sys.version.split()[0], "jax": jax.__version__,
               "jax_backend": jax.default_backend(), "device": jax.devices()[0].device_kind}
    # a file that holds records already keeps them (each record names its machine)
    earlier = (json.loads(Path(args.json).read_text())["records"]
               if args.json and Path(args.json).exists() else [])

    def write():  # after every record, so a run stopped part-way keeps what it measured
        out = {"machine": machine, "repeats": args.repeats, "records": earlier + records}
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")

    rows = [(name, None) for name in args.variants] + [("full", b) for b in args.batch]
    print(f"{'variant':18} {'batch':>5} {'compile_s':>9} {'step_s':>7} {'x full':>6} "
          f"{'ms/basin':>8} {'valid_s':>7} {'epoch_s':>7}", flush=True)
    full_step = None
    for name, batch_basins in rows:
        cfg = variant_config(config, name, args.peer)
        r = time_config(cfg, args.repeats, batch_basins)
        r.update(variant=name, config=args.peer if name == "lstm" else args.config,
                 machine=machine, repeats=args.repeats)
        if name == "full" and batch_basins is None:
            full_step = r["step_s"]
        r["ratio_to_full"] = None if full_step is None else r["step_s"] / full_step
        records.append(r)
        ratio = "" if r["ratio_to_full"] is None else f"{r['ratio_to_full']:.2f}"
        print(f"{name:18} {r['batch_basins']:5d} {r['compile_s']:9.1f} {r['step_s']:7.3f} "
              f"{ratio:>6} {r['ms_per_basin_step']:8.2f} {r['validation_s']:7.2f} "
              f"{r['epoch_s']:7.1f}", flush=True)
        if args.json:
            write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
