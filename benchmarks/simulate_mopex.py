"""Time ``hybridland simulate`` on the full shared MOPEX file and report its closure.

Reads the 291-basin, 56-year file (trimming the incomplete start, dropping basins whose
forcing cannot be completed, swapping inverted temperatures — all reported by name), then for
the physics bucket and the untrained hybrid: compile time, run time (after compile),
column-steps per second and the largest per-step and cumulative water residuals.

    .venv/bin/python benchmarks/simulate_mopex.py [--data FILE] [--x64] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MOPEX-layout NetCDF (default: shared file)")
    parser.add_argument("--x64", action="store_true", help="run in float64")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model")
    parser.add_argument("--json", default=None, help="write the records to this JSON file")
    args = parser.parse_args(argv)

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    from hybridland.solvers import run_timed
    from hybridland.io import DataAdjustmentWarning, load_mopex
    from hybridland.column import build_model
    from hybridland.io._files import atomic_write_text, json_text
    from hybridland.io.paths import mopex_path

    path = args.data or mopex_path()
    # The adjustments are summarised below; the full per-basin report is in data.report.
    warnings.simplefilter("ignore", DataAdjustmentWarning)
    t0 = time.perf_counter()
    data = load_mopex(
        path,
        trim=True,
        drop_incomplete=True,
        inverted_temperature="swap",
        dtype=np.float64 if args.x64 else np.float32,
    )
    read_s = time.perf_counter() - t0
    n, days = data.forcing.precip.shape
    print(f"{path}: {n} basins x {days} days, read and checked in {read_s:.2f} s")
    for line in str(data.report).splitlines()[:3]:
        print("  " + line[:160])

    records = []
    print(f"{'model':8} {'compile_s':>9} {'run_s (min of %d)' % args.repeats:>18} "
          f"{'colsteps/s':>11} {'max|step| mm':>13} {'max|cum| mm':>12}")
    for kind in ("physics", "hybrid"):
        model = build_model(kind, key=jax.random.key(0))
        runs = [run_timed(model, data.forcing) for _ in range(args.repeats)]
        best = min(r.run_s for r in runs)
        rec = {
            "model": kind,
            "basins": n,
            "days": days,
            "dtype": "float64" if args.x64 else "float32",
            "compile_s": runs[0].compile_s,
            "run_s": best,
            "colsteps_per_s": n * days / best,
            "max_abs_step_residual_mm": runs[-1].max_abs_step_residual,
            "max_abs_cumulative_residual_mm": runs[-1].max_abs_cumulative_residual,
        }
        records.append(rec)
        print(f"{kind:8} {rec['compile_s']:9.2f} {best:18.2f} {rec['colsteps_per_s']:11.3g} "
              f"{rec['max_abs_step_residual_mm']:13.2e} {rec['max_abs_cumulative_residual_mm']:12.2e}")
    if args.json:
        atomic_write_text(args.json, json_text(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
