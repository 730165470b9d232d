"""Command-line interface: ``hybridland simulate`` and ``hybridland demo``.

``simulate`` reads MOPEX-layout forcing (validated, see ``hybridland.io.mopex``), runs a
physical or an (untrained) hybrid column model over every basin and day, writes a CF-NetCDF file
whose water budget can be recomputed from the file alone, and prints what was read, dropped or
trimmed (by basin name), the timings and the closure figures. Bad input stops with exit code 2
and one paragraph naming the variable and the basins; no traceback.

``demo`` does the same for about 20 MOPEX basins (1990-2003, Hargreaves PET) with both models and
draws observed against simulated runoff and the cumulative water budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .model import MODEL_KINDS

EXIT_BAD_INPUT = 2
"""Exit status for unusable input or arguments (as argparse uses for usage errors)."""


# ---------------------------------------------------------------------------------------------
# Models


def _untrained_model(kind: str, pet: str, seed: int):
    """The untrained model of a CLI run (network weights seeded by ``seed``)."""
    import jax

    from .model import build_model

    return build_model(kind, pet=pet, key=jax.random.key(seed))


# ---------------------------------------------------------------------------------------------
# Timed run


@dataclasses.dataclass
class TimedRun:
    """A simulation (numpy leaves, ``[column, time]``) with its compile and run wall times (s)."""

    sim: object
    compile_s: float
    run_s: float

    @property
    def max_abs_step_residual(self) -> float:
        return float(np.max(np.abs(self.sim.fluxes.water_residual)))

    @property
    def max_abs_cumulative_residual(self) -> float:
        return float(np.max(np.abs(self.sim.cumulative_water_residual)))


def _column_slice(forcing, columns: slice | np.ndarray):
    """The forcing of some columns (``doy`` is shared by all columns and stays whole)."""
    from ._containers import Forcing

    def take(a):
        return None if a is None else a[columns]

    return Forcing(
        precip=forcing.precip[columns],
        t_min=forcing.t_min[columns],
        t_max=forcing.t_max[columns],
        doy=forcing.doy,
        lat=forcing.lat[columns],
        pet=take(forcing.pet),
        net_radiation=take(forcing.net_radiation),
        ground_heat=take(forcing.ground_heat),
        attributes=take(forcing.attributes),
    )


def run_timed(model, forcing, *, chunk_columns: int | None = None) -> TimedRun:
    """Compile ``simulate`` ahead of time, then run it; time the two separately.

    With ``chunk_columns`` the columns are run in chunks of that size through one compiled
    program (the last chunk is padded by repeating its last column, then cut), with a progress
    bar over the chunks: this bounds memory for very many columns. Without it all columns run
    in one call, which on CPU is the fastest for the MOPEX set, and there is nothing to show
    progress of.
    """
    import equinox as eqx
    import jax
    from tqdm.auto import tqdm

    from .solve import simulate

    n = forcing.precip.shape[0]
    size = n if not chunk_columns or chunk_columns >= n else int(chunk_columns)
    starts = list(range(0, n, size))

    def chunk(start: int):
        index = np.minimum(np.arange(start, start + size), n - 1)  # pad with the last column
        return _column_slice(forcing, index) if size < n else forcing

    run = eqx.filter_jit(simulate)
    t0 = time.perf_counter()
    compiled = run.lower(model, chunk(0)).compile()
    compile_s = time.perf_counter() - t0

    pieces, run_s = [], 0.0
    for start in tqdm(starts, desc="basin chunks", unit="chunk", disable=len(starts) == 1 or None):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(model, chunk(start)))
        run_s += time.perf_counter() - t0
        keep = min(size, n - start)
        pieces.append(jax.tree_util.tree_map(lambda a, keep=keep: np.asarray(a)[:keep], out))
    sim = (
        pieces[0]
        if len(pieces) == 1
        else jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *pieces)
    )
    return TimedRun(sim=sim, compile_s=compile_s, run_s=run_s)


# ---------------------------------------------------------------------------------------------
# simulate


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.x64:
        import jax

        # Before any array exists: arrays made earlier would stay 32-bit.
        jax.config.update("jax_enable_x64", True)
    from .io import ForcingDataError, load_mopex, simulation_to_dataset, write_netcdf
    from .io._report import DataAdjustmentWarning

    out = Path(args.out)
    if not out.parent.is_dir():
        return _fail("simulate", f"Output folder {out.parent} does not exist; create it first.")
    if out.is_dir():
        return _fail("simulate", f"Output {out} is a folder; give a file name such as out.nc.")
    basins = None
    if args.basins is not None:
        basins = [b.strip() for b in args.basins.split(",") if b.strip()]
    dtype = np.float64 if args.x64 else np.float32

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # The report is printed below; the same lines as warnings would be noise here.
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            data = load_mopex(
                args.data,
                basins=basins,
                start=args.start,
                end=args.end,
                pet=args.pet,
                trim=args.trim,
                drop_incomplete=args.drop_incomplete,
                inverted_temperature="swap" if args.swap_inverted_temperatures else "error",
                t_tolerance=args.t_tolerance,
                dtype=dtype,
            )
    except (ForcingDataError, FileNotFoundError) as err:
        return _fail("simulate", str(err))
    read_s = time.perf_counter() - t0

    model = _untrained_model(args.model, args.pet, args.seed)
    result = run_timed(model, data.forcing, chunk_columns=args.chunk_basins)

    ds = simulation_to_dataset(
        result.sim,
        data.basins,
        data.time,
        coords=data.basin_coords(),
        model=model,
        title=f"hybridland {args.model} simulation of MOPEX basins",
        history="hybridland " + " ".join(shlex.quote(a) for a in args.argv),
        attrs={
            "input_file": str(Path(args.data).resolve()),
            "input_adjustments": str(data.report),
            "pet": _pet_description(args.pet),
            "parameters": "Params.default for every basin (untrained)",
            **({"seed": str(args.seed)} if args.model == "hybrid" else {}),
            "float_precision": "float64" if args.x64 else "float32",
        },
    )
    t0 = time.perf_counter()
    write_netcdf(ds, out, dtype=dtype, compression=args.compression)
    write_s = time.perf_counter() - t0

    print(
        f"hybridland simulate: {args.model} model, {_pet_description(args.pet)}, "
        f"{'float64' if args.x64 else 'float32'}"
    )
    print(
        f"  data     {args.data}: {data.n_basins} basins x {data.n_days} days "
        f"({data.time[0]:%Y-%m-%d} .. {data.time[-1]:%Y-%m-%d})"
    )
    _print_report(data.report, out)
    print(
        f"  time     read {read_s:.2f} s | compile {result.compile_s:.2f} s | run "
        f"{result.run_s:.2f} s | compile+run {result.compile_s + result.run_s:.2f} s | write "
        f"{write_s:.2f} s"
    )
    print(
        f"  closure  max |per-step water residual| {result.max_abs_step_residual:.3g} mm; "
        f"max |cumulative water residual| {result.max_abs_cumulative_residual:.3g} mm"
    )
    print(f"  output   {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _pet_description(pet: str) -> str:
    return {"given": "PET given (input PE)", "hargreaves": "Hargreaves PET", "oudin": "Oudin PET"}[
        pet
    ]


def _print_report(report, out: Path | None) -> None:
    lines = report.messages()
    for i, line in enumerate(lines):
        print(f"  {'adjusted' if i == 0 else '        '} {line}")
    if lines and report.messages(limit=None) != lines and out is not None:
        print(f"           (full lists: attribute 'input_adjustments' of {out})")


def _fail(command: str, message: str) -> int:
    print(f"hybridland {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


# ---------------------------------------------------------------------------------------------
# train


def _cmd_train(args: argparse.Namespace) -> int:
    from .io import ForcingDataError
    from .train import ConfigError, load_config, train

    try:
        config = load_config(args.config)
        result = train(
            config, args.run_dir, max_epochs_this_call=args.max_epochs,
            progress=not args.no_progress,
        )
    except (ConfigError, ForcingDataError, FileNotFoundError) as err:
        return _fail("train", str(err))
    state = "finished" if result.finished else "paused (resume with the same command)"
    best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    print(
        f"hybridland train: {state} after {result.epochs_completed} epoch(s), "
        f"{len(result.basins)} basins; best validation loss {best} at epoch {result.best_epoch}"
        f"{' (early stop)' if result.stopped_early else ''}"
    )
    print(f"  run directory: {Path(args.run_dir).resolve()}")
    return 0


# ---------------------------------------------------------------------------------------------
# demo


DEMO_PERIOD = ("1990-01-01", "2003-12-31")
DEMO_PET = "hargreaves"


def _demo_basins(path: Path, n: int, start: str, end: str) -> list[str]:
    """``n`` basins evenly spread over the aridity (mean PE / mean P) ranking.

    Only basins with complete P and temperature, a latitude and at least 90 % of days with
    observed Q in the period are candidates, so that every plotted basin has observations.
    """
    import xarray as xr

    from .io import ForcingDataError

    with xr.open_dataset(path) as ds:
        ds = ds.sel(time=slice(start, end))
        p, pe = ds["P"].values, ds["PE"].values
        complete = ~np.isnan(p).any(1) & ~np.isnan(ds["T_max"].values).any(1)
        complete &= ~np.isnan(ds["T_min"].values).any(1) & np.isfinite(ds["lat"].values)
        complete &= np.isfinite(ds["Q"].values).mean(1) >= 0.9
        with warnings.catch_warnings():  # basins without PE give an all-NaN mean: excluded
            warnings.simplefilter("ignore", RuntimeWarning)
            aridity = np.nanmean(pe, 1) / np.nanmean(p, 1)
        candidates = np.flatnonzero(complete & np.isfinite(aridity))
        ranked = candidates[np.argsort(aridity[candidates])]
        if ranked.size < n:
            raise ForcingDataError(
                f"Only {ranked.size} basins of {path} have complete forcing, a latitude and "
                f"observed Q in {start} .. {end}; ask for at most that many (--basins)."
            )
        picks = ranked[np.unique(np.linspace(0, ranked.size - 1, n).round().astype(int))]
        return [str(b) for b in ds["basin"].values[picks]]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .io import ForcingDataError, load_mopex, mopex_path, simulation_to_dataset, write_netcdf
    from .io._report import DataAdjustmentWarning
    from .io.plots import plot_demo

    start, end = DEMO_PERIOD
    try:
        path = mopex_path()
        ids = _demo_basins(path, args.basins, start, end)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            data = load_mopex(
                path, basins=ids, start=start, end=end, pet=DEMO_PET, inverted_temperature="swap"
            )
    except (ForcingDataError, FileNotFoundError) as err:
        return _fail("demo", str(err))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"hybridland demo: {data.n_basins} MOPEX basins spread over the aridity range, "
        f"{data.n_days} days ({start} .. {end}), {_pet_description(DEMO_PET)}"
    )
    _print_report(data.report, None)

    datasets = {}
    for kind in ("physics", "hybrid"):
        model = _untrained_model(kind, DEMO_PET, 0)
        result = run_timed(model, data.forcing)
        ds = simulation_to_dataset(
            result.sim,
            data.basins,
            data.time,
            coords=data.basin_coords(),
            model=model,
            title=f"hybridland demo: {kind} model on MOPEX basins",
            history="hybridland demo",
            attrs={"input_adjustments": str(data.report)},
        )
        file = write_netcdf(ds, out_dir / f"demo_{kind}.nc")
        datasets[kind] = ds
        fluxes = result.sim.fluxes
        print(
            f"  {kind:8s} compile {result.compile_s:.2f} s, run {result.run_s:.2f} s; max "
            f"|per-step water residual| {result.max_abs_step_residual:.3g} mm, max "
            f"|cumulative| {result.max_abs_cumulative_residual:.3g} mm -> {file}\n"
            f"           basin means, mm day-1: P {np.mean(fluxes.precip):.2f}, ET "
            f"{np.mean(fluxes.et):.2f}, runoff {np.mean(fluxes.runoff):.2f} (observed Q "
            f"{np.nanmean(data.observed_runoff):.2f})"
        )
    figure = plot_demo(datasets, data.observed_runoff, out_dir / "demo.png")
    print(f"  figure   {figure}")
    return 0


# ---------------------------------------------------------------------------------------------
# Parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .io.mopex import PET_SOURCES

    parser = argparse.ArgumentParser(
        prog="hybridland",
        description="Closure-exact hybrid physics-ML land column models in JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="simulate MOPEX-layout forcing and write CF-NetCDF output",
        description="Run a column model over every basin and day of a MOPEX-layout NetCDF file "
        "(dims basin, time; P, PE in mm day-1; T_max, T_min in degC) and write a CF-1.8 NetCDF "
        "file. Bad input stops with exit code 2 and a message naming the variable and basins.",
    )
    sim.add_argument("--data", required=True, metavar="FILE.nc", help="input forcing file")
    sim.add_argument(
        "--model",
        required=True,
        choices=sorted(MODEL_KINDS),
        help="physics: physical laws; hybrid: untrained MLP ET stress and runoff "
        "partition inside the same closure-exact bucket",
    )
    sim.add_argument(
        "--out", required=True, metavar="OUT.nc", help="output NetCDF file (written atomically)"
    )
    sim.add_argument(
        "--seed", type=int, default=0, help="seed of the hybrid model's weights (default 0)"
    )
    sim.add_argument("--x64", action="store_true", help="run and write in float64")
    sim.add_argument(
        "--pet",
        choices=PET_SOURCES,
        default="given",
        help="PET source: the file's PE (default) or derived from temperature and "
        "latitude (then PE is not read)",
    )
    sim.add_argument(
        "--trim",
        action="store_true",
        help="cut days at the start/end of the "
        "period on which any basin misses forcing (reported by basin)",
    )
    sim.add_argument(
        "--drop-incomplete",
        action="store_true",
        help="drop basins with missing "
        "forcing (with --trim: only those trimming cannot fix; reported by basin)",
    )
    sim.add_argument(
        "--swap-inverted-temperatures",
        action="store_true",
        help="swap T_min and T_max on days where T_min > T_max + tolerance "
        "(reported by basin) instead of stopping",
    )
    sim.add_argument(
        "--t-tolerance",
        type=float,
        default=0.1,
        metavar="DEGC",
        help="how far T_min may exceed T_max before it counts (default 0.1 degC)",
    )
    sim.add_argument("--start", metavar="DATE", help="first day (ISO date, default: first in file)")
    sim.add_argument("--end", metavar="DATE", help="last day (ISO date, default: last in file)")
    sim.add_argument("--basins", metavar="ID,ID,...", help="basin ids to simulate (default all)")
    sim.add_argument(
        "--chunk-basins",
        type=_positive_int,
        default=None,
        metavar="N",
        help="run N basins at a time with a progress bar (bounds memory for very "
        "many basins; default: all at once)",
    )
    sim.add_argument(
        "--compression",
        type=int,
        default=None,
        metavar="LEVEL",
        help="zlib level 1-9 for the output (default: none, fastest)",
    )
    sim.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser(
        "demo",
        help="simulate ~20 MOPEX basins with both models and plot the results",
        description="Simulate about 20 MOPEX basins spanning the aridity range (1990-2003, "
        "Hargreaves PET) with the physical and the untrained hybrid model; write both NetCDF "
        "files and a PNG of observed vs simulated runoff and the water budget. Reads the MOPEX "
        "file from $HYBRIDLAND_DATA (default ../shared/data).",
    )
    demo.add_argument(
        "--out",
        default="hybridland_demo",
        metavar="DIR",
        help="output folder (created if needed; default ./hybridland_demo)",
    )
    demo.add_argument(
        "--basins",
        type=_positive_int,
        default=20,
        metavar="N",
        help="number of basins (default 20)",
    )
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser(
        "train",
        help="train a physics or hybrid model from a YAML configuration",
        description=(
            "Train the model described by a YAML configuration into a run directory (resolved "
            "config, log, per-epoch atomic checkpoints, metrics.csv, best weights). A run that "
            "was stopped resumes from its last checkpoint and ends with the same weights."
        ),
    )
    tr.add_argument("--config", required=True, help="YAML configuration (see experiments/)")
    tr.add_argument("--run-dir", required=True, help="run directory (created or resumed)")
    tr.add_argument("--max-epochs", type=_positive_int, default=None,
                    help="stop after this many epochs in this call (resume later)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hybridland`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2): argparse has printed it
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
