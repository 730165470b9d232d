"""Command-line interface: ``hybridland simulate | evaluate | train | calibrate | emulate |
study | demo``.

``simulate`` reads MOPEX-layout forcing (validated, see ``hybridland.io.mopex``; known defects
repaired by default, refused with ``--strict``), runs a physical or an (untrained) hybrid
column model over every basin and day, writes a CF-NetCDF file whose water budget can be
recomputed from the file alone, and prints what was read, dropped, swapped or trimmed (by
basin name), the timings and the closure figures. With ``--run-dir`` it simulates
with a trained run instead. ``train`` trains a run from a YAML configuration; ``evaluate``
scores a trained run on any dataset of its layout (one CSV row per basin); ``demo`` trains and
tests a physical and a hybrid model on the Fulda river data shipped with ``spotpy``;
``calibrate`` fits the physical parameters of every basin (``hybridland.calibrate``) and writes
them with per-basin scores to a CF NetCDF file; ``emulate`` trains or evaluates an MLP emulator
of the physics (``hybridland.emulator``). Bad input (a damaged run file, an unwritable folder,
an ``--out`` that names an input) stops with exit code 2 and one paragraph naming the file or
variable and the fix; Ctrl-C stops with exit code 130, leaving no partial file; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .column import BUCKET_KINDS

EXIT_BAD_INPUT = 2
"""Exit status for unusable input or arguments (as argparse uses for usage errors)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""
EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of the output went away (128 + SIGPIPE)."""
_INTERRUPTED = (
    "No partial file is left: outputs are written to a temporary name and renamed only once "
    "complete, so an earlier output is unchanged."
)


# ---------------------------------------------------------------------------------------------
# Models


def _untrained_model(kind: str, pet: str, seed: int):
    """The untrained model of a CLI run (network weights seeded by ``seed``)."""
    from ._random import seed_key
    from .column import build_model

    return build_model(kind, pet=pet, key=seed_key(seed))


# ---------------------------------------------------------------------------------------------
# simulate


def _cmd_simulate(args: argparse.Namespace) -> int:
    given = [name for name in ("model", "run_dir", "params") if getattr(args, name) is not None]
    if len(given) > 1:
        options = " and ".join("--" + n.replace("_", "-") for n in given)
        return _fail("simulate", f"Give one of --model, --run-dir and --params, not {options}.")
    if args.data is None and args.run_dir is None:  # a trained run knows its data; others not
        return _fail("simulate", "Give --data FILE.nc (the forcing, MOPEX layout), or --run-dir "
                     "RUN to simulate a trained run on its own data.")
    if args.data is not None and Path(args.data).is_dir():
        return _fail("simulate", f"--data {args.data} is a folder; give a NetCDF file (the "
                     "forcing in the MOPEX layout, or the layout of --run-dir's run).")
    if args.run_dir is not None:
        ignored = _ignored_by_run_dir(args)
        if ignored:
            return _fail("simulate", f"--run-dir simulates with the run's own model and data "
                         f"settings (its config.yaml), so {', '.join(ignored)} would be "
                         "ignored; leave "
                         f"{'it' if len(ignored) == 1 else 'them'} out (with --run-dir: --data, "
                         "--start, --end, --basins, --out and --compression).")
        return _simulate_trained(args)
    if args.model is None and args.params is None:
        return _fail("simulate", "Give --model physics|hybrid|sequence_hybrid, --run-dir of a "
                     "trained run, or --params of a calibration.")
    if args.seed is not None and (args.params is not None or args.model == "physics"):
        which = "--params (a calibration's parameters)" if args.params is not None \
            else "--model physics"
        return _fail("simulate", f"--seed seeds the network weights of --model hybrid and "
                     f"sequence_hybrid; {which} has no networks, so it would be ignored; "
                     "leave --seed out.")
    if args.x64:
        import jax

        # Before any array exists: arrays made earlier would stay 32-bit.
        jax.config.update("jax_enable_x64", True)
    from .io import ForcingDataError, load_mopex, simulation_to_dataset, write_netcdf
    from .io._report import DataAdjustmentWarning

    out = Path(args.out)
    inputs = [Path(args.data)] + ([Path(args.params)] if args.params is not None else [])
    problem = _output_path(out, "out.nc", inputs, kind="netcdf")
    if problem:
        return _fail("simulate", problem)
    if args.strict and (args.trim or args.drop_incomplete or args.swap_inverted_temperatures):
        return _fail("simulate", "--strict refuses every repair of the forcing; leave out "
                     "--trim, --drop-incomplete and --swap-inverted-temperatures, or --strict.")
    basins = args.basins
    pet = args.pet or "given"
    calibrated = None
    if args.params is not None:
        from .calibrate import load_calibrated

        try:
            # the file (read once) and the basins checked before any work; the PET law is the
            # calibration's; by default, the basins the calibration has parameters for
            calibrated = load_calibrated(args.params, basins)
        except (ValueError, FileNotFoundError) as err:
            return _fail("simulate", str(err))
        pet, basins = calibrated.pet, list(calibrated.basins)
        if args.pet is not None and args.pet != pet:
            return _fail("simulate", f"--pet {args.pet} differs from the PET law "
                         f"'{pet}' that the parameters in {args.params} were calibrated with; "
                         "leave --pet out (the calibration's law is used), or calibrate again "
                         f"with calibration.pet: {args.pet}.")
    from .io.mopex import PET_SOURCES, T_TOLERANCE

    # a law that derives PET from temperature needs no PE in the file
    data_pet = pet if pet in PET_SOURCES else "given"
    seed = 0 if args.seed is None else args.seed
    t_tolerance = T_TOLERANCE if args.t_tolerance is None else args.t_tolerance
    dtype = np.float64 if args.x64 else np.float32
    for flag, value in (("--start", args.start), ("--end", args.end)):
        try:  # '1995' was read as 1995-01-01 (even as --end), '...T12:00' as the next day
            if value is not None:
                _iso_day(flag, value)
        except ValueError as err:
            return _fail("simulate", str(err))

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
                pet=data_pet,
                trim=args.trim,
                drop_incomplete=not args.strict,
                inverted_temperature="error" if args.strict else "swap",
                implausible="error" if args.strict else "interpolate",
                t_tolerance=t_tolerance,
                dtype=dtype,
            )
    except (ForcingDataError, FileNotFoundError) as err:
        return _fail("simulate", str(err))
    read_s = time.perf_counter() - t0

    from .solvers import run_timed

    params = None
    if args.params is not None:  # a calibration's parameters, in the physical bucket
        from ._params import Params
        from .calibrate import member_columns, member_mean
        from .column import ColumnModel
        from .physics.pet import PET_LAWS

        calibrated = calibrated.select(data.basins)  # those the forcing kept, in its order
        params = Params(**{k: v.astype(dtype) for k, v in vars(calibrated.params).items()})
        model = ColumnModel(pet=PET_LAWS[calibrated.pet]())
        # every member of each basin's ensemble in one run, then their mean; the members of
        # a basin are neighbouring columns, so a chunk of members x N columns is N basins,
        # averaged as soon as it has run (only the mean of each basin is kept)
        forcing, params = member_columns(data.forcing, params)
        columns_per_basin = calibrated.weights.shape[0]

        def reduce(piece, first):
            import jax

            columns = len(jax.tree_util.tree_leaves(piece)[0])
            basins = slice(first // columns_per_basin, (first + columns) // columns_per_basin)
            return member_mean(piece, calibrated.weights[:, basins])
    else:
        model = _untrained_model(args.model, pet, seed)
        forcing = data.forcing
        columns_per_basin, reduce = 1, None
    chunk = None if args.chunk_basins is None else args.chunk_basins * columns_per_basin
    result = run_timed(model, forcing, params, chunk_columns=chunk, description="basin chunks",
                       reduce=reduce)

    ds = simulation_to_dataset(
        result.sim,
        data.basins,
        data.time,
        coords=data.basin_coords(),
        model=model,
        title=f"hybridland {args.model or 'calibrated physics'} simulation of MOPEX basins",
        history="hybridland " + " ".join(shlex.quote(a) for a in args.argv),
        attrs={
            "input_file": str(Path(args.data).resolve()),
            "input_adjustments": str(data.report),
            "pet": _pet_description(pet),
            "parameters": (
                f"calibrated, from {Path(args.params).resolve()}"
                + (f" (mean of up to {calibrated.weights.shape[0]} members per basin)"
                   if calibrated.weights.shape[0] > 1 else "")
                if args.params is not None
                else "Params.default for every basin (untrained)"
            ),
            **({"seed": str(seed)} if args.model in ("hybrid", "sequence_hybrid") else {}),
            "float_precision": "float64" if args.x64 else "float32",
        },
    )
    t0 = time.perf_counter()
    write_netcdf(ds, out, dtype=dtype, compression=args.compression)
    write_s = time.perf_counter() - t0

    print(
        f"hybridland simulate: {args.model or 'calibrated physics'} model, "
        f"{_pet_description(pet)}, "
        f"{'float64' if args.x64 else 'float32'}"
    )
    print(
        f"  data     {args.data}: {data.n_basins} basins x {data.n_days} days "
        f"({data.time[0]:%Y-%m-%d} .. {data.time[-1]:%Y-%m-%d})"
    )
    _print_report(data.report, out)
    if data.report.messages():
        print("           (repairs of known defects are the default; --strict refuses them)")
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


def _output_path(out: Path, example: str, inputs: Sequence[Path] = (), *,
                 kind: str | None = None) -> str | None:
    """Why ``out`` cannot be written (None if it can): a missing or read-only folder, a
    folder, or one of the command's ``inputs``, which are never overwritten. With ``kind``
    (``OUTPUT_KINDS``: what the command writes), an existing file is replaced only when it is
    an earlier output of that kind; anything else a user keeps there is not."""
    if not out.parent.is_dir():
        return f"Output folder {out.parent} does not exist; create it first."
    if out.is_dir():
        return f"Output {out} is a folder; give a file name such as {example}."
    given = next((p for p in inputs if _same_file(out, p)), None)
    if given is not None:
        return (f"--out {out} names an input of this command ({given}), which is never "
                f"overwritten; give another file name such as {example}.")
    run = _run_holding(out)
    if run is not None:
        return (f"--out {out} is a file that the training in {run} wrote, which no other "
                f"command replaces; give another file name such as {example}.")
    if not os.access(out.parent, os.W_OK):
        return f"Output folder {out.parent} is not writable; choose another --out."
    from .io.replaceable import foreign

    what = None if kind is None else foreign(out, kind)
    if what:
        return (f"--out {out} exists and is not {what}, so it is not replaced; give another "
                f"file name such as {example}, or remove it first.")
    return None


def _run_holding(path: Path) -> Path | None:
    """The run directory whose training wrote ``path`` (one of its ``run_outputs``, in it or in
    its ``plots/``), or None: any run's, not only the one a command reads, so that a table
    or figure written beside another run never replaces that run's own."""
    from .train.loop import is_run_directory, run_outputs

    for folder in (path.parent, path.parent.parent):
        if folder.is_dir() and is_run_directory(folder):
            if any(_same_file(path, p) for p in run_outputs(folder)):
                return folder
    return None


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file (links and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return a.resolve() == b.resolve()


def _run_inputs(run_dir: Path, data: str | None) -> list[Path]:
    """What a command on a trained run must leave as it is: every file the training wrote
    (``hybridland.train.loop.run_outputs``: its configuration, model, history, checkpoints,
    metric tables and figures) and the data file (``data``, else the one in the run's
    configuration)."""
    from .train.loop import run_outputs

    inputs = run_outputs(run_dir)
    if data is None:
        try:
            import yaml

            data = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {})["data"]["path"]
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            data = None  # an unreadable run is reported when it is loaded
    return inputs + ([Path(data)] if data else [])


def _iso_day(flag: str, value: str):
    """The day ``value`` of option ``flag``; a ValueError naming both unless it is a whole ISO
    day (YYYY-MM-DD)."""
    from .train.config import iso_date

    try:
        return iso_date(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not an ISO date (YYYY-MM-DD); give a whole day, "
                         "e.g. 1995-12-31.") from None


def _period(text: str | None, start: str | None = None, end: str | None = None):
    """``START:END`` (or separate start and end) as an ISO period; None when neither is given."""
    if text is not None:
        first, sep, last = text.partition(":")
        if not sep or not first or not last:
            raise ValueError(f"--period must be START:END (ISO dates), got {text!r}.")
        start, end = first, last
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValueError("Give both --start and --end (or neither).")
    flags = ("--period",) * 2 if text is not None else ("--start", "--end")
    days = [_iso_day(flag, value) for flag, value in zip(flags, (start, end))]
    if days[1] < days[0]:
        given = f"--period {text}" if text is not None else f"--start {start} --end {end}"
        raise ValueError(f"{given} ends ({end}) before it starts ({start}); give the first day "
                         "first.")
    return (start, end)


_EVALUATION_ERRORS = (FileNotFoundError, ValueError)
"""What a bad run directory, data file or period raises (ForcingDataError is a ValueError)."""


def _evaluate(command: str, args: argparse.Namespace, example: str, period):
    """Run ``evaluate_run`` for a command: the ``Evaluation``, or the exit status of a refusal
    (unwritable ``--out``, bad period, missing run or file, unusable data)."""
    from .io import ForcingDataError
    from .train import evaluate_ensemble, evaluate_run

    run_dirs = args.run_dir if isinstance(args.run_dir, list) else [args.run_dir]
    if args.data is not None and Path(args.data).is_dir():
        return _fail(command, f"--data {args.data} is a folder; give a NetCDF file in the "
                     "layout the run was trained on.")
    if getattr(args, "aridity", None) is not None and getattr(args, "basins", None):
        return _fail(command, "Give either --basins or --aridity, not both (--aridity keeps "
                     "the basins of --data whose aridity is in its range).")
    inputs = [path for d in run_dirs for path in _run_inputs(Path(d), args.data)]
    problem = _output_path(Path(args.out), example, inputs,
                           kind="netcdf" if command == "simulate" else "table")
    plots = getattr(args, "plots", None)
    if not problem and plots is not None:
        from .io._files import folder_problem

        problem = folder_problem(plots, "--plots", "each figure (created if needed)")
    if not problem and plots is not None:
        from .io.replaceable import foreign
        from .train.report import evaluation_figures

        for figure in evaluation_figures(plots, Path(args.out).stem):
            if any(_same_file(figure, p) for p in inputs) or _run_holding(figure):
                problem = (f"--plots {plots} with --out {args.out} would replace {figure}, a "
                           "file of the run, which is never overwritten; give another --plots "
                           "folder or --out name.")
                break
            what = foreign(figure, "figure")
            if what:
                problem = (f"--plots {plots} with --out {args.out} would replace {figure}, "
                           f"which is not {what}; give another --plots folder or --out name, "
                           "or remove it first.")
                break
    if problem:
        return _fail(command, problem)
    basins = getattr(args, "basins", None)
    try:  # a malformed --period is a ValueError too
        options = dict(period=period(), basins=basins,
                       aridity_range=getattr(args, "aridity", None),
                       unseen=getattr(args, "unseen", False))
        if len(run_dirs) > 1:  # an ensemble: the mean of the runs
            return evaluate_ensemble(run_dirs, args.data, **options)
        return evaluate_run(run_dirs[0], args.data, **options)
    except _EVALUATION_ERRORS as err:
        message = str(err)
        if isinstance(err, ForcingDataError) and " --" in message:
            # a reader's hint names options of `simulate` without --run-dir
            days = "--period" if command == "evaluate" else "--start/--end"
            message += (f" (Here the data are read with the run's own data settings, in "
                        f"{Path(run_dirs[0]) / 'config.yaml'}; choose the days with {days} "
                        "and the basins with --basins.)")
        return _fail(command, message)


def _print_evaluation(command: str, evaluation, out: Path) -> None:
    t = evaluation.table
    # "none": an lstm has no parameters; "ensemble": the mean of runs (named below)
    other = ~t["parameters"].isin(["calibrated", "none", "ensemble"])
    sources = t["parameters"][other].unique()
    new = int(other.sum())
    what = (f"run {evaluation.config.run.name} ({evaluation.config.model.kind} model)"
            if not evaluation.members else
            f"mean of {len(evaluation.members)} runs ({', '.join(evaluation.members)})")
    print(
        f"hybridland {command}: {what} on {len(t)} basins"
        + (f" ({new} with {', '.join(sources)} parameters)" if new else "")
        + f", {evaluation.period[0]} .. {evaluation.period[1]}"
    )
    print(
        f"  metrics  median NSE {t['nse'].median():.3f}, median KGE {t['kge'].median():.3f}; "
        f"compile {evaluation.compile_s:.2f} s, run {evaluation.run_s:.2f} s"
    )
    unobserved = t[t["n_valid"] == 0]
    if len(unobserved):
        listed = "; ".join(f"{b} ({n})" if n else b
                           for b, n in zip(unobserved["basin"], unobserved["name"]))
        print(f"  missing  {len(unobserved)} basin(s) have no observed streamflow in the period, "
              f"so no scores (NaN rows, left out of the medians): {listed}")
    unscored = t[(t["n_valid"] > 0) & (t["nse"].isna() | t["kge"].isna())]
    if len(unscored):
        listed = "; ".join(f"{b} (NSE {n:.3g}, KGE {k:.3g})" for b, n, k in
                           zip(unscored["basin"], unscored["nse"], unscored["kge"]))
        print(f"  unscored {len(unscored)} basin(s) with observed streamflow have no NSE or KGE "
              "(left out of those medians): a simulation not finite on an observed day, a "
              f"constant simulation, or constant or zero observations: {listed}")
    if evaluation.simulation is None and not evaluation.members:
        print("  closure  none: a pure data-driven LSTM has no water balance")
    elif evaluation.members and t["max_abs_step_residual_mm"].isna().all():
        print("  closure  none: a member of the ensemble (an LSTM) has no water balance")
    else:
        print(
            f"  closure  max |per-step water residual| "
            f"{t['max_abs_step_residual_mm'].max():.3g} mm; "
            f"max |cumulative| {t['max_abs_cumulative_residual_mm'].max():.3g} mm"
            + (" (the mean's and every member's)" if evaluation.members else "")
        )
    for text in evaluation.adjustments:
        print(f"  input    {text if len(text) < 300 else text[:297] + '...'}")
    print(f"  output   {out}")


def _simulate_trained(args: argparse.Namespace) -> int:
    from .io import write_netcdf

    out = Path(args.out)
    evaluation = _evaluate("simulate", args, "out.nc", lambda: _period(None, args.start, args.end))
    if isinstance(evaluation, int):
        return evaluation
    ds = evaluation.dataset(
        title=f"hybridland simulation with trained run {evaluation.config.run.name}",
        history="hybridland " + " ".join(shlex.quote(a) for a in args.argv),
    )
    data, loader = args.data, evaluation.config.data.loader
    if data is None:  # the run's own data
        from .io import mopex_path

        data = evaluation.config.data.path or (mopex_path() if loader == "mopex" else None)
    ds.attrs["input_file"] = (str(Path(data).resolve()) if data is not None
                              else f"the built-in data of the '{loader}' loader")
    ds.attrs["run_directory"] = str(Path(args.run_dir).resolve())
    write_netcdf(ds, out, compression=args.compression)
    _print_evaluation("simulate", evaluation, out)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .train.report import plot_evaluation, write_table

    out = Path(args.out)
    evaluation = _evaluate("evaluate", args, "metrics.csv", lambda: _period(args.period))
    if isinstance(evaluation, int):
        return evaluation
    write_table(evaluation.table, out)
    _print_evaluation("evaluate", evaluation, out)
    if args.plots is not None:
        for figure in plot_evaluation(evaluation, args.plots, out.stem):
            print(f"  figure   {figure}")
    return 0


def _pet_description(pet: str) -> str:
    """How the printout and the output's ``pet`` attribute name the PET law ``pet``."""
    if pet == "given":
        return "PET given (input PE)"
    return f"{pet.replace('_', '-').title()} PET"  # Hargreaves PET, Priestley-Taylor PET


_RUN_DIR_IGNORES = {
    "pet": "--pet", "x64": "--x64", "strict": "--strict", "trim": "--trim",
    "drop_incomplete": "--drop-incomplete",
    "swap_inverted_temperatures": "--swap-inverted-temperatures",
    "t_tolerance": "--t-tolerance", "seed": "--seed", "chunk_basins": "--chunk-basins",
}
"""Options of ``simulate`` that ``--run-dir`` has no use for: the run's configuration sets the
PET law, the precision, the repairs of the data and the weights; evaluation chunks itself."""


def _ignored_by_run_dir(args: argparse.Namespace) -> list[str]:
    """The options given to ``simulate --run-dir`` that it would ignore."""
    return [flag for name, flag in _RUN_DIR_IGNORES.items()  # `is`: --seed 0 is given too
            if getattr(args, name) is not None and getattr(args, name) is not False]


def _print_report(report, out: Path | None) -> None:
    lines = report.messages()
    for i, line in enumerate(lines):
        print(f"  {'adjusted' if i == 0 else '        '} {line}")
    if lines and report.messages(limit=None) != lines and out is not None:
        print(f"           (full lists: attribute 'input_adjustments' of {out})")


def _fail(command: str, message: str) -> int:
    print(f"hybridland {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _reader_hint(command: str, message: str) -> str:
    """What ``command`` (which reads its data through a configuration file) adds to a data
    reader's message that names options of ``simulate`` (``--t-tolerance``...): the keys that
    do the same in its configuration."""
    if " --" not in message:
        return ""
    return (f" (In `{command}` these are keys of the data section of the configuration: "
            "data.trim, data.drop_incomplete, data.swap_inverted_temperatures, "
            "data.replace_implausible, data.pet and the periods; there is no tolerance for "
            "inverted temperatures: swap them or drop the basins.)")


def _show_warning(command: str, category: type[Warning], other):
    """A ``warnings.showwarning`` that prints ``category`` as one line of ``command`` (and
    hands any other warning to ``other``)."""

    def show(message, kind, *rest, **kwargs):
        if issubclass(kind, category):
            print(f"hybridland {command}: warning: {message}", file=sys.stderr)
        else:
            other(message, kind, *rest, **kwargs)

    return show


# ---------------------------------------------------------------------------------------------
# train


def _cmd_train(args: argparse.Namespace) -> int:
    from .io import ForcingDataError
    from .io._checks import PeriodError
    from .train import load_config, train
    from .train.checkpoint import CheckpointWarning

    from .io._files import folder_problem

    run_dir = Path(args.run_dir)
    problem = folder_problem(run_dir, "--run-dir", "a run (its configuration, checkpoints, "
                             "model and metrics)")
    if problem is not None:
        return _fail("train", problem)
    config = None
    try:
        config = load_config(args.config)
        with warnings.catch_warnings():
            warnings.simplefilter("always", CheckpointWarning)
            warnings.showwarning = _show_warning("train", CheckpointWarning,
                                                 warnings.showwarning)
            result = train(
                config, run_dir, max_epochs_this_call=args.max_epochs,
                progress=not args.no_progress, continue_from=args.continue_from,
            )
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        # ValueError: ConfigError, ForcingDataError, a damaged or foreign run directory.
        message = str(err)
        if isinstance(err, PeriodError) and config is not None:
            message += (f" (A run also loads the data.warmup_days ({config.data.warmup_days}) "
                        "days before its first period.)")
        elif isinstance(err, ForcingDataError):
            message += _reader_hint("train", message)
        return _fail("train", message)
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
# calibrate


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate, load_calibration_config
    from .io import DataAdjustmentWarning, ForcingDataError, write_netcdf
    from .train import ConfigError

    out = Path(args.out)
    try:
        config = load_calibration_config(args.config)
        problem = _output_path(out, "params.nc", [Path(args.config)] + (
            [Path(config.data.path)] if config.data.path else []), kind="netcdf")
        if problem:
            return _fail("calibrate", problem)
        with warnings.catch_warnings():  # the data's repairs, one line each
            warnings.simplefilter("always", DataAdjustmentWarning)
            warnings.showwarning = _show_warning("calibrate", DataAdjustmentWarning,
                                                 warnings.showwarning)
            result = calibrate(config, progress=not args.no_progress)
    except (ConfigError, ForcingDataError, FileNotFoundError, ValueError) as err:
        message = str(err)
        if isinstance(err, ForcingDataError):
            message += _reader_hint("calibrate", message)
        return _fail("calibrate", message)
    ds = result.dataset(history="hybridland " + " ".join(shlex.quote(a) for a in args.argv))
    write_netcdf(ds, out, dtype=None)
    c, s = config.calibration, result.scores
    print(
        f"hybridland calibrate: {len(result.basins)} basins, {len(c.params)} parameters, "
        f"{c.starts} starts x {c.steps} steps in {result.fit.seconds:.1f} s "
        f"({result.seconds:.1f} s with loading and scoring); the calibrated model: "
        f"{'the mean of every start' if c.ensemble else 'the best start'}"
    )
    print(
        f"  metrics  median NSE calibration {np.nanmedian(s['nse_calibration']):.3f}, "
        f"validation {np.nanmedian(s['nse_validation']):.3f}; median KGE calibration "
        f"{np.nanmedian(s['kge_calibration']):.3f}, validation "
        f"{np.nanmedian(s['kge_validation']):.3f}"
    )
    print(
        f"  closure  max |per-step water residual| "
        f"{s['max_abs_step_water_residual'].max():.3g} mm; max |cumulative| "
        f"{s['max_abs_cumulative_water_residual'].max():.3g} mm"
    )
    print(f"  output   {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .io import ForcingDataError
    from .train.checkpoint import RunFileError

    from .io._files import folder_problem

    problem = folder_problem(args.out, "--out", "the demo (its runs, tables and figures)")
    if problem is not None:
        return _fail("demo", problem)
    try:
        kwargs = {} if args.epochs is None else {"epochs": args.epochs}
        run_demo(args.out, progress=not args.no_progress, **kwargs)
    except (ForcingDataError, RunFileError, ModuleNotFoundError, FileNotFoundError) as err:
        # RunFileError: --out holds run directories of another run
        return _fail("demo", str(err))
    return 0


# ---------------------------------------------------------------------------------------------
# Parser


def _number_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` as two numbers (an argparse type)."""
    try:
        low, high = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, got {text!r}") from None
    return low, high


def _aridity_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` with ``0 <= LOW < HIGH`` (an argparse type for ``--aridity``)."""
    low, high = _number_range(text)
    if not 0 <= low < high:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"must be LOW:HIGH with 0 <= LOW < HIGH (mean PET / mean P), got {text!r}; e.g. "
            "0:1 for humid basins or 1.5:inf for arid ones")
    return low, high


def _basin_list(text: str) -> list[str]:
    """Comma-separated basin ids (an argparse type); an empty list is refused (it selected
    the default basins without a word)."""
    ids = [b.strip() for b in text.split(",") if b.strip()]
    if not ids:
        raise argparse.ArgumentTypeError(f"must name at least one basin id (e.g. 01055500,"
                                         f"12358500), got {text!r}")
    return ids


def _positive_int(text: str) -> int:
    """An integer >= 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:  # argparse then said "invalid _positive_int value"
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_number(text: str) -> float:
    """A finite number > 0 (an argparse type; nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _integer_in(low: int, high: int, what: str, hint: str):
    """An argparse type: an integer from ``low`` to ``high`` (``what`` it is; ``hint``: the
    fix offered when it is out of range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be {what} from {low} to {high}, got {text}; {hint}")
        return value

    return parse


SEED_RANGE = (-(2**63), 2**63 - 1)
"""Seeds the CLI accepts (a 64-bit integer; ``_random.seed_key``)."""
_seed = _integer_in(*SEED_RANGE, "a 64-bit integer", "give a smaller seed such as 0")
_zlib_level = _integer_in(  # what write_netcdf (netCDF4's zlib complevel) accepts
    1, 9, "a zlib level (1 fastest, 9 smallest)", "leave --compression out for no compression")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number >= 0, got {text}; e.g. 0.1 (the default)")
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
        "file. Known defects of the forcing are repaired and reported by basin (basins with "
        "missing forcing dropped, T_min > T_max swapped); --strict refuses them instead. Bad "
        "input stops with exit code 2 and a message naming the variable and basins.",
    )
    sim.add_argument("--data", metavar="FILE.nc",
                     help="input forcing file (with --run-dir: default the run's own data)")
    sim.add_argument(
        "--model",
        choices=sorted(BUCKET_KINDS),
        help="physics: physical laws; hybrid: untrained MLP ET stress and runoff "
        "partition inside the same closure-exact bucket; sequence_hybrid: fast and slow "
        "flow paths, capillary rise, routing and 16 parallel components whose runoff and ET "
        "shapes an untrained sequence network sets every day (or give --run-dir)",
    )
    sim.add_argument(
        "--run-dir",
        metavar="DIR",
        help="simulate with the trained model of this run instead (data in the run's layout; "
        "days --start .. --end after the run's warm-up, default the run's test period; "
        "basins the run has not seen get parameters from its parameter network, else the "
        "median of its calibrated per-basin parameters)",
    )
    sim.add_argument(
        "--params",
        metavar="PARAMS.nc",
        help="simulate the physical bucket with the per-basin parameters (and PET law) of a "
        "calibration (the file `hybridland calibrate` writes; an ensemble of starts: the mean "
        "of their runs): its basins, or --basins among them. Its validation scores are "
        "reproduced when the days start at its calibration period minus its warm-up",
    )
    sim.add_argument(
        "--out", required=True, metavar="OUT.nc",
        help="output NetCDF file; an earlier output of hybridland there is replaced "
        "atomically (never an input file, nor any other file)",
    )
    sim.add_argument(
        "--seed", type=_seed, default=None,
        help="seed of the hybrid model's weights (a 64-bit integer; default 0)",
    )
    sim.add_argument("--x64", action="store_true", help="run and write in float64")
    sim.add_argument(
        "--pet",
        choices=PET_SOURCES,
        default=None,
        help="PET source: the file's PE (default) or derived from temperature and "
        "latitude (then PE is not read); with --params the calibration's PET law is used "
        "(a different --pet is refused)",
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
        "forcing (with --trim: only those trimming cannot fix; reported by basin); the default "
        "unless --strict",
    )
    sim.add_argument(
        "--swap-inverted-temperatures",
        action="store_true",
        help="swap T_min and T_max on days where T_min > T_max + tolerance "
        "(reported by basin) instead of stopping; the default unless --strict",
    )
    sim.add_argument(
        "--strict",
        action="store_true",
        help="repair nothing: stop on missing forcing or inverted temperatures",
    )
    sim.add_argument(
        "--t-tolerance",
        type=_non_negative_float,
        default=None,
        metavar="DEGC",
        help="how far T_min may exceed T_max before it counts (default 0.1 degC)",
    )
    sim.add_argument("--start", metavar="DATE", help="first day (ISO date, default: first in file)")
    sim.add_argument("--end", metavar="DATE", help="last day (ISO date, default: last in file)")
    sim.add_argument("--basins", type=_basin_list, metavar="ID,ID,...",
                     help="basin ids to simulate (default all)")
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
        type=_zlib_level,
        default=None,
        metavar="LEVEL",
        help="zlib level 1-9 for the output (default: none, fastest)",
    )
    sim.set_defaults(func=_cmd_simulate)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a trained run on any dataset of its layout; one CSV row per basin",
        description="Simulate the basins of a dataset in the layout the run was trained on "
        "(other basins, other years) with the run's best model, after the run's warm-up days, "
        "and write one row per basin: NSE, KGE (r, alpha, beta), log-NSE, RMSE, bias, FHV, FLV "
        "and the water-balance closure residuals. Basins the run has not seen get parameters "
        "from its parameter network, else the median of its calibrated per-basin parameters "
        "(column 'parameters').",
    )
    ev.add_argument("--run-dir", required=True, nargs="+", metavar="DIR",
                    help="a finished training run; several: their ensemble mean (e.g. one "
                    "model trained with several seeds), scored as one model")
    ev.add_argument("--data", metavar="FILE.nc",
                    help="dataset to evaluate on (default: the run's own data and basins)")
    ev.add_argument("--period", metavar="START:END",
                    help="evaluated days, ISO dates (default: the run's test period)")
    ev.add_argument("--basins", type=_basin_list, metavar="ID,ID,...",
                    help="basin ids (default: all in --data)")
    ev.add_argument("--aridity", type=_aridity_range, metavar="LOW:HIGH",
                    help="only basins with mean PET / mean P over the period in [LOW, HIGH)")
    ev.add_argument("--unseen", action="store_true",
                    help="leave out the basins the run was trained on (e.g. the other half of "
                    "a file whose seeded random half trained the run)")
    ev.add_argument("--out", required=True, metavar="METRICS.csv",
                    help="output CSV table; an existing one is replaced atomically (never an "
                    "input file)")
    ev.add_argument("--plots", metavar="DIR", help="also write hydrographs and budget figures")
    ev.set_defaults(func=_cmd_evaluate)

    demo = sub.add_parser(
        "demo",
        help="train and test a hybrid on the Fulda river data shipped with spotpy",
        description="Calibrate a physical bucket and train a hybrid (learned ET stress and "
        "runoff partition) on the Fulda river, Germany (spotpy example data; 1980-1985 "
        "training, 1986 validation, 1987-1988 test; Hargreaves PET). Prints test NSE, KGE and "
        "the water-balance closure residuals; writes both run directories, the test-period "
        "NetCDF and figures. Needs no other data.",
    )
    demo.add_argument(
        "--out",
        default="hybridland_demo",
        metavar="DIR",
        help="output folder (created if needed; default ./hybridland_demo)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="training epochs of each model (default: the demo's setting)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    tr.add_argument("--run-dir", required=True,
                    help="run directory (created or resumed; its files are replaced atomically)")
    tr.add_argument("--max-epochs", type=_positive_int, default=None,
                    help="stop after this many epochs in this call (resume later)")
    tr.add_argument("--continue-from", metavar="RUN_DIR", default=None,
                    help="start from this run's newest checkpoint: a run of the same "
                         "configuration with fewer (or as many) epochs and patience, trained "
                         "with a schedule that does not depend on the epochs bound (plateau, "
                         "exponential, none); the run ends as if trained from the start")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    cal = sub.add_parser(
        "calibrate",
        help="calibrate the physical parameters of every basin; write them to CF NetCDF",
        description=(
            "Fit the bounded physical parameters of the bucket for every basin of a dataset "
            "at once (adam on logits, several starts per basin, the best kept; masked loss "
            "after warm-up days) from a YAML configuration (see docs/calibration.md), and "
            "write one variable per parameter with per-basin calibration and validation "
            "NSE and KGE and the closure residuals."
        ),
    )
    cal.add_argument("--config", required=True, help="YAML calibration configuration")
    cal.add_argument("--out", required=True, metavar="PARAMS.nc",
                     help="output NetCDF file; an earlier output of hybridland there is "
                     "replaced atomically (never an input file, nor any other file)")
    cal.add_argument("--no-progress", action="store_true", help="no progress bar")
    cal.set_defaults(func=_cmd_calibrate)

    from .emulator_cli import add_parser as add_emulate_parser

    add_emulate_parser(sub)
    from .study.cli import add_parser as add_study_parser

    add_study_parser(sub)
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
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`)
        with contextlib.suppress(OSError, ValueError):  # no more writes to the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as err:  # a folder that turned read-only, a full disk...
        where = f" ({err.filename})" if err.filename else ""
        return _fail(args.command, f"{err.strerror or err}{where}. Check that the file or folder "
                     "exists and can be read, and that output folders can be written, then run "
                     "the command again (nothing half-written is left).")
    except KeyboardInterrupt as stop:
        resume = " Run the same command to resume." if args.command == "train" else ""
        signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
        what = ("Ctrl-C" if signum == signal.SIGINT
                else f"signal {signal.Signals(signum).name}")
        print(f"hybridland {args.command}: interrupted ({what}). {_INTERRUPTED}{resume}",
              file=sys.stderr)
        return 128 + int(signum)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a job scheduler, a closed terminal), raised where Python is, as
    Ctrl-C is: the same clean-up runs (no temporary file is left) and the exit status is
    128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def entry() -> None:
    """The ``hybridland`` command: ``main`` with SIGTERM and SIGHUP handled as Ctrl-C is, then
    an exit that does not wait for the threads JAX may still run. After an interrupt those can
    be in the middle of a compilation, and the interpreter's own shutdown then crashed
    (segmentation fault, status 139) instead of exiting with 130."""
    from .io.output import _HELD_SIGNALS  # the ones a write holds back, as Ctrl-C

    for sig in _HELD_SIGNALS:  # an ignored one (SIGHUP under nohup) stays ignored
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _terminate)
    code = main()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    if code > 128:  # interrupted: leave without the interpreter's shutdown
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
