"""Does a regional prior help the gradient calibration? A prior learned with the calibration.

The same basins, periods and defaults as ``calibration_vs_sceua.py`` (no SCE-UA). Every basin's
logits ``u[start, basin, parameter]`` are pulled toward a regional estimate
``g_p(a_b) = c_p + w_p . a_b``, linear in five standardised climate attributes of the basin's
calibration years (log mean P, log mean PET, log aridity, mean temperature, snow fraction of
P); ``c`` and ``w`` are fitted jointly with the logits by the same adam, so the prior is the
regression of the basins' own parameters on their climate (a parameter network of the simplest
kind, trained in the same program). The loss is the default's (NSE* on a random two-year window
per basin and step) plus ``weight x`` the mean squared logit distance to ``g`` per column.
Weight 0 is ``calibrate`` keeping its best start (``ensemble: false``: the same starts, windows
and medians; the default when the figures of docs/calibration.md were measured), not today's
default, which scores the mean of every start's simulation.

    .venv/bin/python benchmarks/calibration_regional_prior.py --basins 20 --skip 20 \\
        --weights 0 0.003 0.01 0.03

The result (docs/calibration.md): every weight > 0 validates worse; not kept in
``hybridland.calibrate``.
"""

from __future__ import annotations

import argparse
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from calibration_vs_sceua import benchmark_config, complete_basins, scored_medians
from hybridland.io._files import atomic_write_text, json_text
from hybridland.calibrate import (
    _column_losses,
    _tile,
    _windows,
    bounded,
    calibration_inputs,
    initial_unconstrained,
    observation_scales,
)


def climate_attributes(forcing, warmup: int) -> np.ndarray:
    """``[basin, 5]`` standardised attributes of the days after ``warmup``."""
    p = np.asarray(forcing.precip)[:, warmup:]
    e = np.asarray(forcing.pet)[:, warmup:]
    t = 0.5 * (np.asarray(forcing.t_min) + np.asarray(forcing.t_max))[:, warmup:]
    a = np.stack([np.log(p.mean(1)), np.log(e.mean(1)), np.log(e.mean(1) / p.mean(1)),
                  t.mean(1), (p * (t < 0)).sum(1) / p.sum(1)], 1)
    return (a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)


def main(argv=None) -> int:
    from hybridland.io import mopex_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="MOPEX-layout file (default: shared)")
    parser.add_argument("--basins", type=int, default=20)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.003, 0.01, 0.03])
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    path = args.data or str(mopex_path())
    basins = complete_basins(path, args.basins, args.skip)
    config = benchmark_config(path, basins, starts=4, seed=args.seed)
    cfg, c = config.data, config.calibration
    data, model, forcing, observed = calibration_inputs(config)
    observed = jnp.asarray(observed, jnp.float32)
    n, length = observed.shape
    rows = np.arange(n)
    warm, window, names = cfg.warmup_days, c.window_days, tuple(c.params)
    attributes = jnp.asarray(climate_attributes(forcing, warm), jnp.float32)
    std, mean = observation_scales(observed[:, warm:])
    tiled = _tile(forcing, c.starts)
    columns = np.tile(rows, c.starts)
    whole = (tiled, jnp.tile(observed, (c.starts, 1)), jnp.asarray(std[columns], jnp.float32),
             jnp.asarray(mean[columns], jnp.float32))

    def calibrate_with_prior(weight: float):
        u = initial_unconstrained(names, n, c.starts, args.seed, jnp.float32)
        state = {"u": u, "c": jnp.stack([u[k][0].mean() for k in names]),
                 "w": jnp.zeros((len(names), attributes.shape[1]), jnp.float32)}
        optim = optax.adam(optax.cosine_decay_schedule(
            c.learning_rate, c.steps, alpha=c.final_learning_rate / c.learning_rate))
        opt_state = optim.init(state)

        def loss(state, batch):
            fit = _column_losses(model, state["u"], *batch, warm, c.loss, window)[0]
            fit = jnp.sum(jnp.where(jnp.isfinite(fit), fit, 0.0))
            regional = state["c"][None, :] + attributes @ state["w"].T  # [basin, parameter]
            logits = jnp.stack([state["u"][k] for k in names], -1)  # [start, basin, parameter]
            return fit + weight * jnp.sum(jnp.mean((logits - regional[None]) ** 2, -1))

        @eqx.filter_jit
        def step(state, opt_state, batch):
            grads = jax.grad(loss)(state, batch)
            updates, opt_state = optim.update(grads, opt_state, state)
            return optax.apply_updates(state, updates), opt_state

        rng = np.random.default_rng([args.seed, 1])  # the windows of calibrate_columns
        t0 = time.perf_counter()
        for _ in range(c.steps):
            first = rng.integers(0, length - warm - window + 1, size=n)
            cut = _windows(tiled, whole[1], jnp.asarray(first[columns]), warm + window)
            state, opt_state = step(state, opt_state, (*cut, *whole[2:]))
        fit = _column_losses(model, state["u"], *whole, warm, c.loss, length - warm)[0]
        fit = np.asarray(fit).reshape(c.starts, n)
        best = np.argmin(np.where(np.isfinite(fit), fit, np.inf), 0) * n + rows
        params = bounded({k: v.reshape(-1)[best] for k, v in state["u"].items()}, n,
                         jnp.float32)
        seconds = time.perf_counter() - t0
        return {**scored_medians(model, data, params), "wall_s": seconds}

    figures = {"basins": basins, "seed": args.seed, "weights": {}}
    for weight in args.weights:
        figures["weights"][str(weight)] = calibrate_with_prior(weight)
        print(f"weight {weight}:", figures["weights"][str(weight)], flush=True)
    if args.json:
        atomic_write_text(args.json, json_text(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
