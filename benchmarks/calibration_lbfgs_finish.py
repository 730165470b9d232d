"""Does a quasi-Newton finish help the gradient calibration? L-BFGS after the adam steps.

The same basins, periods and defaults as ``calibration_vs_sceua.py`` (no SCE-UA): ``calibrate``
runs its adam steps, then each basin's kept parameters are refined by L-BFGS (``optax.lbfgs``
with its zoom line search; one optimiser per basin under ``vmap``, so no basin's curvature
mixes with another's) on the whole calibration period, and the medians of calibration and
validation NSE / KGE are printed after each requested number of iterations.

    .venv/bin/python benchmarks/calibration_lbfgs_finish.py --basins 20 --skip 20 \\
        --iterations 10 30 60

The result (docs/calibration.md): a better calibration fit, a worse validation score; not kept
in ``hybridland.calibrate``.
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

from calibration_vs_sceua import (
    benchmark_config, complete_basins, medians, scored_medians,
)
from hybridland._params import PARAMETER_BOUNDS
from hybridland.io._files import atomic_write_text, json_text
from hybridland.calibrate import (
    _column_losses,
    _tile,
    bounded,
    calibrate,
    calibration_inputs,
    observation_scales,
)


def logits(params, names) -> jnp.ndarray:
    """``[basin, parameter]`` logits of each parameter's position in its range, 1e-5 from a
    bound at most (``hybridland._params.unconstrained`` stops at 1e-6, which moves the figures of
    docs/calibration.md in their third decimal)."""
    columns = []
    for name in names:
        b = PARAMETER_BOUNDS[name]
        x = np.clip((np.asarray(getattr(params, name)) - b.low) / (b.high - b.low), 1e-5, 1 - 1e-5)
        columns.append(np.log(x) - np.log1p(-x))
    return jnp.asarray(np.stack(columns, 1), jnp.float32)


def main(argv=None) -> int:
    from hybridland.io import mopex_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="MOPEX-layout file (default: shared)")
    parser.add_argument("--basins", type=int, default=20)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, nargs="+", default=[10, 30, 60],
                        help="cumulative L-BFGS iterations after which to score")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    path = args.data or str(mopex_path())
    basins = complete_basins(path, args.basins, args.skip)
    config = benchmark_config(path, basins, starts=4, seed=args.seed)
    names = list(config.calibration.params)
    result = calibrate(config)

    cfg = config.data
    data, model, forcing, observed = calibration_inputs(config)
    # L-BFGS refines the best start, so that is the baseline; the default calibration's score
    # (the mean of every start's simulation) is kept beside it
    figures = {"basins": basins, "seed": args.seed,
               "adam": scored_medians(model, data, result.fit.params),
               "adam_ensemble": medians(result.scores), "adam_s": result.fit.seconds,
               "lbfgs": {}}
    print("adam, best start", figures["adam"], f"{result.fit.seconds:.1f} s", flush=True)
    print("adam, mean of the starts (the default calibration)", figures["adam_ensemble"],
          flush=True)
    # one start: every leaf one row per basin (doy too), as vmap over basins needs
    forcing = _tile(forcing, 1)
    observed = jnp.asarray(observed, jnp.float32)
    n, length = observed.shape
    std, mean = (jnp.asarray(v, jnp.float32)
                 for v in observation_scales(observed[:, cfg.warmup_days:]))
    fit_days = length - cfg.warmup_days
    optim = optax.lbfgs()

    def basin_loss(x, f, o, s, m):
        u = {name: x[i][None] for i, name in enumerate(names)}
        one = jax.tree_util.tree_map(lambda a: a[None], f)
        return _column_losses(model, u, one, o[None], s[None], m[None], cfg.warmup_days, "nse",
                              fit_days)[0][0]

    @eqx.filter_jit
    def iterate(x, state, k: int):
        def one_basin(x, state, f, o, s, m):
            loss = lambda y: basin_loss(y, f, o, s, m)  # noqa: E731
            value_and_grad = optax.value_and_grad_from_state(loss)

            def body(carry, _):
                y, st = carry
                value, grad = value_and_grad(y, state=st)
                update, st = optim.update(grad, st, y, value=value, grad=grad, value_fn=loss)
                return (optax.apply_updates(y, update), st), value

            (x, state), _ = jax.lax.scan(body, (x, state), None, length=k)
            return x, state

        return jax.vmap(one_basin)(x, state, forcing, observed, std, mean)

    x = logits(result.fit.params, names)
    state = jax.vmap(optim.init)(x)
    done, t0 = 0, time.perf_counter()
    for total in sorted(set(args.iterations)):
        x, state = iterate(x, state, total - done)
        done = total
        jax.block_until_ready(x)
        params = bounded({name: x[:, i] for i, name in enumerate(names)}, n, jnp.float32)
        figures["lbfgs"][str(total)] = {**scored_medians(model, data, params),
                                        "seconds": time.perf_counter() - t0}
        print(f"+ {total} L-BFGS", figures["lbfgs"][str(total)], flush=True)
    if args.json:
        atomic_write_text(args.json, json_text(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
