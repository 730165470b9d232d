"""Keep the trained runs of the climate-shift study in a small folder that can be versioned or
shared, and put them back into a study's output folder, so that the study (about a day of
training on a 2-core CPU) continues or is re-scored on another machine without training again.

    # after (part of) a study: its runs' defining files, with checksums
    .venv/bin/python experiments/climate_shift/trained_runs.py save \\
        --out runs/climate-shift --archive experiments/climate_shift/trained
    # on another machine: the runs back in place, then the study reuses or resumes them
    .venv/bin/python experiments/climate_shift/trained_runs.py restore \\
        --archive experiments/climate_shift/trained --out runs/climate-shift
    hybridland study climate-shift --config experiments/climate_shift/study.yaml \\
        --out runs/climate-shift

A finished run keeps what the study needs to reuse and score it (``config.yaml``,
``run.json``, ``model.eqx``, ``normalisation.json``, ``metrics.csv``, ``basins.csv``,
``study_seconds.json``, ``train.log``) and its newest intact checkpoint (its last epoch, for
``checkpoint_scores.py``); an unfinished one keeps its history and newest intact checkpoint, so
the study resumes it at the next epoch. Plots and metric tables are left out (the study
writes them again). ``MANIFEST.json`` holds every kept file's SHA-256; ``restore`` checks them
all before it writes anything, and never replaces a run directory that already exists.

The saved ``config.yaml`` names the machine's data file and, for a fine-tuned run, the run it
started from; ``restore`` points them at the restoring machine's MOPEX file and output folder,
so that the study recognises the runs as its own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from hybridland.io.paths import MOPEX_FILE, mopex_path
from hybridland.train import checkpoint as ckpt
from hybridland.train.config import config_from_yaml

FINISHED = ("config.yaml", "run.json", "model.eqx", "normalisation.json", "metrics.csv",
            "basins.csv", "study_seconds.json", "train.log")
UNFINISHED = ("config.yaml", "normalisation.json", "metrics.csv", "train.log")
WHERE_WRITTEN = ("continued_from.json",)  # a run that continued another (the epochs taken over)
MANIFEST = "MANIFEST.json"


class ArchiveError(ValueError):
    """An archive or output folder that cannot be used; the message says why and what to do."""


def _run_dirs(runs: Path) -> list[Path]:
    """Run directories ``runs/<split>/<model>`` (those holding a ``config.yaml``; not hidden
    folders such as one an interrupted restore left)."""
    return sorted(p.parent for p in runs.glob("*/*/config.yaml")
                  if not any(part.startswith(".") for part in p.relative_to(runs).parts))


def kept_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` an archive keeps, relative to it, and their newest intact
    checkpoint (of a finished run: the last epoch trained, which checkpoint_scores.py scores):
    every file of a finished run the study needs, or, for a run still training or one the study
    is still finishing (``run.json`` written, not yet ``study_seconds.json``), its history, from
    which training resumes (``[]``: no checkpoint yet)."""
    marker = ckpt.latest_checkpoint(run_dir)
    folder = Path(ckpt.CHECKPOINT_DIR)
    newest = [] if marker is None else [
        folder / marker.name, folder / json.loads(marker.read_text())["leaves"]]
    extra = [Path(n) for n in WHERE_WRITTEN if (run_dir / n).is_file()]
    if all((run_dir / n).is_file() for n in FINISHED):
        return [Path(n) for n in FINISHED] + extra + newest
    if not newest:
        return []
    return [Path(n) for n in UNFINISHED if (run_dir / n).is_file()] + extra + newest


def _copy(src: Path, dest: Path) -> None:
    """``src`` to ``dest`` (its folders created), written atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    ckpt.atomic_write_bytes(dest, lambda f: f.write(data))


def _write_manifest(path: Path, manifest: dict) -> None:
    ckpt.atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def save(out: Path, archive: Path) -> list[str]:
    """Copy the kept files of every run under ``out/runs`` into ``archive`` (each file written
    atomically, then the run's manifest entry); a run's earlier entry is replaced by its current
    state.
    Returns one line per run."""
    runs = Path(out) / "runs"
    if not runs.is_dir():
        raise ArchiveError(f"{runs} does not exist: --out must be the output folder of "
                           "`hybridland study climate-shift` (it holds runs/<split>/<model>).")
    archive = Path(archive)
    archive.mkdir(parents=True, exist_ok=True)
    manifest_path = archive / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    lines = []
    for run_dir in _run_dirs(runs):
        name = run_dir.relative_to(runs).as_posix()
        files = kept_files(run_dir)
        if not files:
            lines.append(f"{name}: no checkpoint yet, not kept")
            continue
        target = archive / name
        if manifest.pop(name, None) is not None:  # out of the manifest while its files change
            _write_manifest(manifest_path, manifest)
        stale = [p for p in target.rglob("*") if p.is_file()] if target.is_dir() else []
        entry = {}
        for rel in files:
            _copy(run_dir / rel, target / rel)
            entry[rel.as_posix()] = ckpt.file_sha256(target / rel)
        for p in stale:
            if p.relative_to(target).as_posix() not in entry:
                p.unlink()
        manifest[name] = entry
        # after every run: a save interrupted later leaves every other run restorable
        _write_manifest(manifest_path, manifest)
        state = "finished" if "run.json" in entry else f"resumes after {files[-1].stem}"
        lines.append(f"{name}: {state} ({len(entry)} files)")
    return lines


def _localised(text: str, out: Path) -> str:
    """``config.yaml`` text pointed at this machine: the MOPEX file of ``HYBRIDLAND_DATA``
    (when the saved path names a file of that name) and, for a fine-tuned run, the restored
    run it starts from (``.../runs/<split>/<model>`` under ``out``)."""
    config = config_from_yaml(text)
    if config.data.path is not None and Path(config.data.path).name == MOPEX_FILE.name:
        try:
            config = config.replace("data", path=str(mopex_path()))
        except FileNotFoundError:
            pass  # no MOPEX file here: the run is restored as saved (the study will say so)
    start = config.training.init_from
    if start is not None and Path(start).parts[-3:-2] == ("runs",):
        # as the study names it: the absolute path of its output folder
        config = config.replace("training", init_from=str(
            Path(out).resolve() / "runs" / Path(*Path(start).parts[-2:])))
    return config.to_yaml()


def restore(archive: Path, out: Path) -> list[str]:
    """Put the archived runs back under ``out/runs`` after checking every file's SHA-256;
    run directories that exist already are left as they are. Returns one line per run."""
    archive, out = Path(archive), Path(out)
    manifest_path = archive / MANIFEST
    if not manifest_path.is_file():
        raise ArchiveError(f"{manifest_path} is missing: --archive must be a folder written by "
                           "`trained_runs.py save`.")
    manifest = json.loads(manifest_path.read_text())
    damaged = [f"{name}/{rel}" for name, entry in manifest.items() for rel, digest in entry.items()
               if not (archive / name / rel).is_file()
               or ckpt.file_sha256(archive / name / rel) != digest]
    if damaged:
        raise ArchiveError(f"archived file(s) missing or changed since they were saved: "
                           f"{', '.join(damaged)} (SHA-256 differs from {manifest_path}). "
                           "Nothing was restored: save the runs again or fetch the archive anew.")
    lines = []
    for name, entry in sorted(manifest.items()):
        run_dir = out / "runs" / name
        if run_dir.exists():
            lines.append(f"{name}: {run_dir} exists, left as it is")
            continue
        staging = run_dir.with_name(f".{run_dir.name}.restoring")
        shutil.rmtree(staging, ignore_errors=True)
        for rel in entry:
            _copy(archive / name / rel, staging / rel)
        config = staging / "config.yaml"
        ckpt.atomic_write_text(config, _localised(config.read_text(), out))
        staging.rename(run_dir)  # the run appears whole or not at all
        lines.append(f"{name}: restored ({len(entry)} files)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="keep the runs of a study's output folder in an archive")
    s.add_argument("--out", required=True, type=Path, help="the study's output folder")
    s.add_argument("--archive", required=True, type=Path, help="archive folder (created)")
    r = sub.add_parser("restore", help="put archived runs back into a study's output folder")
    r.add_argument("--archive", required=True, type=Path, help="folder written by save")
    r.add_argument("--out", required=True, type=Path, help="the study's output folder")
    args = parser.parse_args(argv)
    try:
        lines = save(args.out, args.archive) if args.command == "save" else restore(
            args.archive, args.out)
    except (ValueError, OSError) as err:  # ArchiveError, damaged JSON, unreadable files
        print(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: every file written so far is whole; run `{args.command}` again "
              "to finish (restore: a run interrupted while restored is in a hidden "
              "'.<model>.restoring' folder, replaced next time)")
        return 130
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
