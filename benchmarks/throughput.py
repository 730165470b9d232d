"""Column-steps per second of hybridland against NumPy, numba and PyTorch references.

For each implementation (``hybridland``, ``numpy``, ``numba``, ``torch``), model (``physics``:
the bucket with physical laws; ``hybrid``: MLP ET stress and runoff partition), mode
(``forward``; ``gradient`` of ``sum(runoff + et)`` w.r.t. the per-column physical parameters
and the network weights) and column count, a fresh subprocess builds float32 synthetic forcing
(1024 distinct columns tiled), times the first call and the steady calls, and reports
``colsteps_per_s`` (columns x days / best steady time), ``compile_s`` (first minus steady) and
``peak_rss_mb`` (``ru_maxrss`` of that subprocess: forcing, outputs and working memory).
Each record names where its case ran (``backend``, ``device``: hybridland on JAX's default
device, so ``JAX_PLATFORMS=cuda`` times it on a GPU; the references always on the CPU, with
``cpus`` cores) and the host's memory bound is given for CPU physics-forward cases only.

Forward runs store ``runoff``, ``et`` and ``soil`` as ``[column, time]`` in every
implementation; ``hybridland-full`` is hybridland's default run storing every series.
Gradients store no series: hybridland uses ``simulate(outputs=(), totals=("runoff", "et"),
checkpoint_every=...)``, torch autograd with ``torch.utils.checkpoint`` over the same blocks;
``hybridland-nockpt`` is the same gradient without checkpointing (no numpy/numba gradients).

Allocation regime: glibc defaults; every call allocates its outputs afresh, so first-touch
page faults are part of every implementation's time (``--reuse-pages`` instead sets
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2**40`` in the subprocesses so freed pages are
reused). The record says which.

    .venv/bin/python benchmarks/throughput.py --columns 1000 10000 --days 3650 \\
        --json benchmarks/results/cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

IMPLS = ("hybridland", "hybridland-full", "hybridland-nockpt", "numpy", "numba", "torch")
MODES = {
    "forward": ("hybridland", "hybridland-full", "numpy", "numba", "torch"),
    "gradient": ("hybridland", "hybridland-nockpt", "torch"),
}
REFERENCES = ("numpy", "numba", "torch")
BYTES_PER_COLSTEP = 4 * (4 + 3)
"""Physics forward in float32: read P, Tmin, Tmax, PET; write runoff, ET, soil."""
BASE_COLUMNS = 1024


def synthetic_forcing(n_columns: int, n_days: int, tile):
    """float32 ``{precip, t_min, t_max, pet}`` ``[column, time]``: 1024 random columns tiled
    by ``tile(block, reps)`` (np.tile or jnp.tile, so only the final arrays are full size)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = min(n_columns, BASE_COLUMNS)
    season = np.sin(2 * np.pi * (np.arange(n_days) - 100) / 365.25).astype(np.float32)
    wet = rng.random((n, n_days), dtype=np.float32) < 0.45
    base = {
        "precip": wet * rng.gamma(0.7, 6.0, (n, n_days)).astype(np.float32),
        "t_mean": 8.0 + 14.0 * season + rng.normal(0, 3, (n, n_days)).astype(np.float32),
        "pet": np.clip(2.5 + 2.0 * season + rng.normal(0, 0.5, (n, n_days)), 0, None),
    }
    reps = -(-n_columns // n)
    out = {}
    for name, src in (("precip", "precip"), ("t_min", "t_mean"), ("t_max", "t_mean"), ("pet", "pet")):
        block = base[src] + {"t_min": -5.0, "t_max": 5.0}.get(name, 0.0)
        out[name] = tile(block.astype(np.float32), (reps, 1))[:n_columns]
    return out


def _hybridland_case(model_kind, mode, n_columns, n_days, impl, checkpoint_every):
    """A no-argument callable running one hybridland case."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import hybridland as hl
    from hybridland.column import build_model

    f = synthetic_forcing(n_columns, n_days, jnp.tile)
    forcing = hl.Forcing(
        precip=f["precip"], t_min=f["t_min"], t_max=f["t_max"], pet=f["pet"],
        doy=jnp.arange(n_days, dtype=jnp.float32) % 365 + 1, lat=jnp.full(n_columns, 40.0),
    )
    model = build_model(model_kind, pet="given", key=jax.random.key(0))
    params = hl.Params.default(n_columns, dtype=jnp.float32)
    if mode == "forward":
        outputs = None if impl == "hybridland-full" else ("runoff", "et", "soil")
        return lambda: hl.simulate(model, forcing, params, outputs=outputs)
    net, static = eqx.partition(model, eqx.is_inexact_array)
    every = None if impl == "hybridland-nockpt" else checkpoint_every

    def loss(params, net, forcing):  # forcing an argument: a closed-over array is a constant
        sim = hl.simulate(eqx.combine(net, static), forcing, params, outputs=(),
                          totals=("runoff", "et"), chunk_days=365, checkpoint_every=every)
        return jnp.sum(sim.totals["runoff"]) + jnp.sum(sim.totals["et"])

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return lambda: grad(params, net, forcing)


def _reference_case(impl, model_kind, mode, n_columns, n_days, checkpoint_every):
    import jax
    import numpy as np

    import _references as ref
    from hybridland.column import build_model

    forcing = synthetic_forcing(n_columns, n_days, np.tile)
    params = {name: np.full(n_columns, b, np.float32) for name, b in _defaults().items()}
    capacity = 1000.0 * (params["theta_cap"] - params["theta_wp"]) * params["root_depth"]
    state0 = [np.zeros(n_columns, np.float32), 0.5 * capacity, np.zeros(n_columns, np.float32)]
    nets = ref.export_networks(build_model(model_kind, pet="given", key=jax.random.key(0)))
    if mode == "gradient":
        return lambda: ref.torch_gradient(forcing, params, state0, nets, checkpoint_every)
    run = {"numpy": ref.numpy_forward, "numba": ref.numba_forward, "torch": ref.torch_forward}[impl]
    return lambda: run(forcing, params, state0, nets)


def _defaults():
    from hybridland import PARAMETER_BOUNDS

    import _references as ref

    return {name: PARAMETER_BOUNDS[name].default for name in ref.PARAM_NAMES}


VERIFY_SIZE = (16, 400)
"""Columns x days on which every reference is checked against hybridland before it is timed."""
VERIFY_RTOL = 1e-3


def verify_reference(impl: str, model_kind: str) -> float:
    """Largest relative difference of a reference's runoff, ET and soil from hybridland's on a
    small case with the benchmark's forcing and parameters; raise if above ``VERIFY_RTOL``."""
    import numpy as np

    n, days = VERIFY_SIZE
    expected = _hybridland_case(model_kind, "forward", n, days, "hybridland", None)()
    got = _reference_case(impl, model_kind, "forward", n, days, None)()
    worst = 0.0
    for name, field in (("runoff", "fluxes"), ("et", "fluxes"), ("soil", "states")):
        want = np.asarray(getattr(getattr(expected, field), name))
        have = np.asarray(got[name])
        scale = max(float(np.abs(want).max()), 1.0)
        worst = max(worst, float(np.abs(have - want).max()) / scale)
    if worst > VERIFY_RTOL:
        raise AssertionError(
            f"The {impl} reference of the {model_kind} model differs from hybridland by "
            f"{worst:.2e} (relative) on {n} columns x {days} days; it is not the same model."
        )
    return worst


def run_child(spec: dict) -> dict:
    """Time one case in this (fresh) process and return its record."""
    import resource

    import jax

    sys.path.insert(0, str(Path(__file__).parent))
    impl, kind, mode = spec["impl"], spec["model"], spec["mode"]
    n, days = spec["columns"], spec["days"]
    verified = None
    if impl.startswith("hybridland"):
        call = _hybridland_case(kind, mode, n, days, impl, spec["checkpoint_every"])
    else:
        verified = verify_reference(impl, kind)
        call = _reference_case(impl, kind, mode, n, days, spec["checkpoint_every"])
    start = time.perf_counter()
    result = jax.block_until_ready(call())
    first = time.perf_counter() - start
    del result
    steady = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        result = jax.block_until_ready(call())
        steady.append(time.perf_counter() - start)
        del result
    best = min(steady)
    # where the case ran: hybridland on JAX's default device, the references on the CPU (which
    # JAX may not list: JAX_PLATFORMS=cuda hides it)
    device = jax.devices()[0]
    on_jax = impl.startswith("hybridland")
    return dict(
        spec,
        backend=device.platform if on_jax else "cpu",
        device=device.device_kind if on_jax else "cpu",
        cpus=len(os.sched_getaffinity(0)),
        jax_version=jax.__version__,
        dtype="float32",
        first_s=first,
        run_s=best,
        colsteps_per_s=n * days / best,
        compile_s=max(first - best, 0.0),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        verified_max_rel_diff=verified,
    )


def copy_bandwidth(n_bytes: int = 2**30, repeats: int = 5) -> float:
    """Bytes per second moved (read + write) by a large numpy copy into a reused buffer."""
    import numpy as np

    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def add_ratios(records: list[dict]) -> None:
    """Give each hybridland record ``ratio_vs_<ref>`` = its throughput / the reference's."""
    by_key = {(r["impl"], r["model"], r["mode"], r["columns"]): r for r in records if "error" not in r}
    for r in by_key.values():
        if not r["impl"].startswith("hybridland"):
            continue
        for ref in REFERENCES:
            other = by_key.get((ref, r["model"], r["mode"], r["columns"]))
            if other:
                r[f"ratio_vs_{ref}"] = r["colsteps_per_s"] / other["colsteps_per_s"]


HEADER = (f"{'impl':18} {'model':8} {'mode':9} {'columns':>8} {'colsteps/s':>11} "
          f"{'compile_s':>9} {'peak_MB':>8}  hybridland/reference")


def format_record(r: dict) -> str:
    """One table line."""
    case = f"{r['impl']:18} {r['model']:8} {r['mode']:9} {r['columns']:8d}"
    if "error" in r:
        return f"{case}  FAILED: {r['error']}"
    ratios = " ".join(f"{k[9:]}={v:.2f}" for k, v in r.items() if k.startswith("ratio_vs_"))
    return (f"{case} {r['colsteps_per_s']:11.3g} {r['compile_s']:9.2f} "
            f"{r['peak_rss_mb']:8.0f}  {ratios}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--days", type=int, default=3650)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--models", nargs="+", default=["physics", "hybrid"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=2, help="steady calls after the first")
    parser.add_argument("--checkpoint-every", type=int, default=365, help="days per remat block")
    parser.add_argument("--reuse-pages", action="store_true", help="see the allocation regime")
    parser.add_argument("--json", default=None, help="write (or append to) this JSON list")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bandwidth:
        print(copy_bandwidth())
        return 0
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0

    env = dict(os.environ)
    regime = "glibc defaults, outputs allocated per call"
    if args.reuse_pages:
        env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(2**40))
        regime = "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2**40 (freed pages reused)"
    # In a subprocess: Linux keeps ru_maxrss across fork and exec, so the parent stays small.
    proc = subprocess.run([sys.executable, __file__, "--bandwidth"], capture_output=True,
                          text=True, env=env, check=True)
    bandwidth = float(proc.stdout.split()[-1])
    bound = bandwidth / BYTES_PER_COLSTEP
    print(f"allocation regime: {regime}")
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s -> physics-forward bound "
          f"{bound:.3g} colsteps/s ({BYTES_PER_COLSTEP} B per column-step)")

    path = Path(args.json) if args.json else None
    old = json.loads(path.read_text()) if path and path.exists() else []

    def write(all_records):  # not hybridland's atomic_write_text: importing JAX here would
        # raise the peak RSS that every case's process inherits
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(all_records, indent=2))
        os.replace(tmp, path)

    records = []
    print(HEADER)
    for n in args.columns:
        for kind in args.models:
            for mode in args.modes:
                for impl in (i for i in args.impls if i in MODES[mode]):
                    spec = dict(impl=impl, model=kind, mode=mode, columns=n, days=args.days,
                                repeats=args.repeats, checkpoint_every=args.checkpoint_every,
                                allocation=regime)
                    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                          capture_output=True, text=True, env=env)
                    if proc.returncode != 0:
                        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                        record = dict(spec, error=f"exit {proc.returncode}: {tail[:200]}")
                    else:
                        record = json.loads(proc.stdout.strip().splitlines()[-1])
                    on_host = record.get("backend", "cpu") == "cpu"  # the bandwidth's machine
                    if on_host:
                        record["copy_bandwidth_bytes_per_s"] = bandwidth
                    if (kind == "physics" and mode == "forward" and "error" not in record
                            and on_host):
                        record["bandwidth_bound_colsteps_per_s"] = bound
                        record["fraction_of_bound"] = record["colsteps_per_s"] / bound
                    records.append(record)
                    print(format_record(record), flush=True)
                    add_ratios(records)
                    if args.json:  # after every case: a run stopped part-way keeps its cases
                        write(old + records)
    print("\n" + HEADER)
    for record in records:
        print(format_record(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
