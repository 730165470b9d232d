"""``hybridland study climate-shift --config STUDY.yaml --out DIR [--quick]
[--train-only RUN... | --report-only]``.

``add_parser(subparsers)`` registers the ``study`` command on the ``hybridland`` parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _cmd_climate_shift(args: argparse.Namespace) -> int:
    from ..train import use_compilation_cache
    from ..train.config import ConfigError
    from .climate_shift import only_jobs, rewrite_report, run_study
    from .config import load_study
    from .report import verdict

    from ..io._files import folder_problem

    try:
        study = load_study(args.config)
        if not args.report_only:  # --report-only reads it (and says so if it is not a study's)
            problem = folder_problem(args.out, "--out", "the study (its runs, tables and "
                                     "figures)")
            if problem is not None:
                raise ConfigError(problem)
        if args.report_only:
            if args.quick:
                raise ConfigError("--report-only keeps the setting of the scoring it rewrites; "
                                  "leave out --quick.")
            result = rewrite_report(study, args.out, log=print)
            print(verdict(result["results"]).replace("**", ""))
            return EXIT_OK
        if args.train_only is not None:  # before anything is written
            only_jobs(study, args.train_only, args.out)
        # The same programs recur across models and splits, and in a continued study.
        use_compilation_cache(Path(args.out) / ".jax_cache")
        result = run_study(study, args.out, quick=args.quick, progress=not args.quiet,
                           only=args.train_only)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        # ValueError: ConfigError, ForcingDataError, a run directory that is damaged or was
        # trained with another configuration (RunFileError), too few basins in a group.
        print(f"hybridland study climate-shift: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.train_only is not None:
        for row in result["timing"].itertuples():
            # counted from 1, as the page's table of epochs (best_epoch is an index)
            print(f"{row.split}/{row.model}: {row.epochs_completed} epochs (best "
                  f"{row.best_epoch + 1}), {row.train_s:.0f} s")
        return EXIT_OK
    print(f"results: {args.out}/results.md, {args.out}/climate_shift.md, "
          f"figures in {args.out}/figures ({result['wall_s'] / 60:.1f} min)")
    print(verdict(result["results"]).replace("**", ""))
    return EXIT_OK


def add_parser(subparsers) -> None:
    study = subparsers.add_parser(
        "study",
        help="benchmark studies (climate-shift)",
        description="Benchmark studies that train, score and report many models.",
    )
    which = study.add_subparsers(dest="study", metavar="STUDY", required=True)
    cs = which.add_parser(
        "climate-shift",
        help="robustness from humid to arid basins (docs/climate_shift.md)",
        description=(
            "Train every model of the study file on the temporal, humid-to-arid and diverse "
            "splits, fit the baselines, score all of them (also on hidden dry years) and write "
            "OUT/results.{csv,md}, OUT/scores.csv, OUT/figures and the report page. Finished "
            "runs in OUT are reused; compiled programs are kept in OUT/.jax_cache (or "
            "JAX_COMPILATION_CACHE_DIR) for later models and invocations."
        ),
    )
    cs.add_argument("--config", required=True, help="study YAML (experiments/climate_shift/"
                    "study.yaml)")
    cs.add_argument("--out", required=True, help="output folder (run directories, tables, "
                    "figures)")
    cs.add_argument("--quick", action="store_true",
                    help="a few basins and optimiser steps (a smoke test; the report page stays "
                    "in OUT)")
    cs.add_argument("--quiet", action="store_true", help="no progress bars")
    only = cs.add_mutually_exclusive_group()
    only.add_argument("--report-only", action="store_true",
                      help="write the tables, figures and page again from the scores the study "
                      "last wrote to OUT, without training or scoring (after a change to the "
                      "study file's targets or report sections)")
    only.add_argument("--train-only", nargs="+", metavar="SPLIT/MODEL",
                    help="train only these runs (e.g. temporal/hybrid_extreme), in this order, "
                    "and stop without scoring. Started beside the whole study on the same OUT, "
                    "it trains runs in parallel: a run is locked while one process trains it, "
                    "and the study waits for it and reuses it")
    cs.set_defaults(func=_cmd_climate_shift)
