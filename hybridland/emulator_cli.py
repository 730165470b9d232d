"""``hybridland emulate train|evaluate``: a thin command line over ``hybridland.emulator``.

``add_parser(subparsers)`` registers the ``emulate`` command on the ``hybridland`` parser;
``main(argv)`` runs it on its own (``python -m hybridland.emulator_cli train --out DIR``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_INPUT = 2
"""Exit status of a bad argument or input (as ``hybridland.cli``)."""


def _cmd_train(args: argparse.Namespace) -> int:
    from .emulator import EmulatorSettings, save_emulator, train_emulator

    if args.window_days >= args.days:  # said with the options, not the settings' names
        print(f"hybridland emulate train: --window-days {args.window_days} must be shorter "
              f"than --days {args.days} (each rollout of the loss is a window of the physics "
              "runs); lower --window-days or raise --days.", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        settings = EmulatorSettings(
            width=args.width, depth=args.depth, pet=args.pet, n_columns=args.columns,
            n_days=args.days, aridity=args.aridity, lat=args.lat, window_days=args.window_days,
            batch=args.batch, steps=args.steps, learning_rate=args.learning_rate, seed=args.seed,
        )  # fmt: skip
    except ValueError as err:
        print(f"hybridland emulate train: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _out_folder_problem(Path(args.out))
    if problem:  # before training, not after it
        print(f"hybridland emulate train: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    emulator, history = train_emulator(settings, log=None if args.quiet else print)
    folder = save_emulator(args.out, emulator, settings, history=history)
    print(f"emulator saved to {folder} (final rollout loss {history[-1]['loss']:.4f})")
    return EXIT_OK


def _out_folder_problem(out: Path) -> str | None:
    """Why the folder ``out`` cannot receive an emulator (None if it can): it, or a folder it
    would be created in, is an existing file (never overwritten), or cannot be written, or it
    holds an ``emulator.eqx`` / ``emulator.json`` that is not an earlier emulator (a user's
    file of that name was replaced)."""
    from .emulator import SETTINGS_FILE, WEIGHTS_FILE, load_emulator

    from .io._files import folder_problem

    problem = folder_problem(out, "--out", "the emulator (emulator.eqx, emulator.json)")
    if problem is not None:
        return problem
    present = [name for name in (WEIGHTS_FILE, SETTINGS_FILE) if (out / name).exists()]
    if present:
        try:
            load_emulator(out)
        except Exception as err:  # noqa: BLE001 - anything unreadable is not ours to replace
            return (f"--out {out} holds {' and '.join(present)}, which is not an emulator this "
                    f"command wrote ({err}), so it is not replaced; give another folder, or "
                    "remove the file(s) first.")
    return None


def _range_type(option: str, name: str):
    """An argparse type for ``option`` (``LOW:HIGH``) whose range ``name`` (``aridity`` or
    ``lat``) the synthetic twins can use: a bad one exits 2 naming the option, before any
    training."""
    def parse(text: str) -> tuple[float, float]:
        from .cli import _number_range
        from .emulator import range_problem

        value = _number_range(text)
        problem = range_problem(name, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = option  # argparse names the type in some messages
    return parse


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .cli import _output_path
    from .emulator import evaluate_emulator, load_emulator, physics_runs
    from .io._files import atomic_write_text, json_text

    if args.out is not None:
        folder = Path(args.emulator)
        inputs = sorted(folder.iterdir()) if folder.is_dir() else []
        problem = _output_path(Path(args.out), "summary.json", inputs, kind="summary")
        if problem:
            print(f"hybridland emulate evaluate: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        emulator, settings, _ = load_emulator(args.emulator)
        aridity = settings.aridity if args.aridity is None else args.aridity
        runs = physics_runs(
            emulator.physics, args.columns, args.days, aridity=aridity, lat=settings.lat,
            seed=args.seed,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        print(f"hybridland emulate evaluate: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = {
        "emulator": str(args.emulator),
        "aridity": list(aridity),
        "seed": args.seed,
        **evaluate_emulator(emulator, runs),
    }
    text = json_text(summary, indent=2)
    if args.out is not None:  # written before it is printed: what is printed was kept
        atomic_write_text(args.out, text + "\n")
    print(text)
    return EXIT_OK


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``emulate`` (with ``train`` and ``evaluate``) on a ``add_subparsers`` object."""
    # Imported here, not at the top, so that cli.py can import this module.
    from .cli import _integer_in, _positive_int, _positive_number
    from .emulator import EMULATOR_PET_LAWS, EmulatorSettings

    # numpy's SeedSequence (the synthetic climates) takes no negative seed
    seed = _integer_in(0, 2**63 - 1, "a non-negative 64-bit integer", "give a seed such as 0")

    d = EmulatorSettings()
    emulate = subparsers.add_parser(
        "emulate",
        help="train or evaluate an MLP emulator of the physics column model",
        description="An MLP emulator of one day of the physics column model: it predicts the "
        "process fractions (snow, melt, surface runoff, ET stress, drainage, baseflow) and the "
        "same exact bucket arithmetic turns them into fluxes, so the water balance closes.",
    )
    sub = emulate.add_subparsers(dest="emulate_command", metavar="ACTION", required=True)

    tr = sub.add_parser(
        "train",
        help="train on physics runs of synthetic twins and save the emulator",
        description="Simulate the physics on synthetic-twin weather (parameters uniform in "
        "their bounds), train the emulator with a rollout loss, and write emulator.eqx and "
        "emulator.json (settings, loss history) into --out.",
    )
    tr.add_argument("--out", required=True, metavar="DIR", help="output folder")
    tr.add_argument("--columns", type=_positive_int, default=d.n_columns, metavar="N",
                    help=f"training columns (default {d.n_columns})")
    tr.add_argument("--days", type=_positive_int, default=d.n_days, metavar="N",
                    help=f"days per training run (default {d.n_days})")
    tr.add_argument("--aridity", type=_range_type("--aridity", "aridity"),
                    default=d.aridity, metavar="LOW:HIGH",
                    help="aridity range of the training climates (default %(default)s)")
    tr.add_argument("--lat", type=_range_type("--lat", "lat"),
                    default=d.lat, metavar="LOW:HIGH",
                    help="latitude range, degrees north (default %(default)s)")
    tr.add_argument("--steps", type=_positive_int, default=d.steps, metavar="N",
                    help=f"optimiser steps (default {d.steps})")
    tr.add_argument("--window-days", type=_positive_int, default=d.window_days, metavar="N",
                    help=f"rollout length of the loss (default {d.window_days})")
    tr.add_argument("--batch", type=_positive_int, default=d.batch, metavar="N",
                    help=f"rollout windows per step (default {d.batch})")
    tr.add_argument("--width", type=_positive_int, default=d.width, metavar="N")
    tr.add_argument("--depth", type=_positive_int, default=d.depth, metavar="N")
    tr.add_argument("--learning-rate", type=_positive_number, default=d.learning_rate,
                    metavar="LR")
    tr.add_argument("--pet", choices=EMULATOR_PET_LAWS, default=d.pet,
                    help="PET law of the emulated physics model (default %(default)s)")
    tr.add_argument("--seed", type=seed, default=d.seed, help="seed of data, weights, batches")
    tr.add_argument("--quiet", action="store_true", help="no loss log")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="NSE of a saved emulator against the physics on new synthetic climates",
        description="Simulate new synthetic-twin climates and parameters (seed --seed) with "
        "the physics and with the emulator from the same spun-up state; print (and write) "
        "median and minimum NSE of runoff, ET and soil water and the closure residuals.",
    )
    ev.add_argument("--emulator", required=True, metavar="DIR", help="folder of emulate train")
    ev.add_argument("--columns", type=_positive_int, default=16, metavar="N")
    ev.add_argument("--days", type=_positive_int, default=1095, metavar="N")
    ev.add_argument("--aridity", type=_range_type("--aridity", "aridity"),
                    default=None, metavar="LOW:HIGH",
                    help="aridity range (default: the training range)")
    ev.add_argument("--seed", type=seed, default=1, help="seed of the test climates (default 1)")
    ev.add_argument("--out", metavar="FILE.json",
                    help="also write the summary here (an existing file is replaced atomically; "
                    "never the emulator's own files)")
    ev.set_defaults(func=_cmd_evaluate)
    return emulate


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``emulate ACTION ...`` (``argv`` without the leading ``emulate``); exit status."""
    parser = argparse.ArgumentParser(prog="hybridland")
    add_parser(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(["emulate", *argv])
    except SystemExit as stop:  # --help (0) or a usage error (2): argparse has printed it
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
