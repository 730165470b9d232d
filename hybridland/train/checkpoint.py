"""Atomic checkpoints of a training run.

A checkpoint of epoch ``e`` is two files in ``<run_dir>/checkpoints/``:
``epoch_<e>.eqx`` (``eqx.tree_serialise_leaves`` of the training state pytree) and
``epoch_<e>.json`` (epoch, seed, best validation loss, early-stopping counter, history, and the
SHA-256 of the ``.eqx`` file). Each file is written to a temporary name, flushed, fsynced and
``os.replace``d into place, and the JSON is written *last*: it is the commit mark. A checkpoint
counts only when its JSON exists and the hash of its ``.eqx`` matches, so a process killed at
any moment leaves the previous checkpoint usable. The two newest checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

CHECKPOINT_DIR = "checkpoints"
KEEP = 2
_NAME = re.compile(r"^epoch_(\d+)\.json$")


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``.

    If ``write`` raises (or the process dies) ``path`` keeps its previous content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_tree(path: str | os.PathLike, tree) -> None:
    """``eqx.tree_serialise_leaves`` to ``path``, atomically."""
    atomic_write_bytes(path, lambda f: eqx.tree_serialise_leaves(f, tree))


def load_tree(path: str | os.PathLike, like):
    """``eqx.tree_deserialise_leaves`` of ``path`` into the structure of ``like``."""
    with open(path, "rb") as f:
        return eqx.tree_deserialise_leaves(f, like)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, epoch: int, tree, meta: dict[str, Any]) -> Path:
    """Write the checkpoint of ``epoch`` (``tree``: a pytree of arrays; ``meta``: JSON-able)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    leaves = folder / f"epoch_{epoch:05d}.eqx"
    save_tree(leaves, tree)
    record = dict(meta, epoch=epoch, leaves=leaves.name, sha256=_sha256(leaves))
    marker = folder / f"epoch_{epoch:05d}.json"
    atomic_write_text(marker, json.dumps(record, indent=1))
    _prune(folder)
    return marker


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The JSON of the newest complete, intact checkpoint in ``run_dir``, or None."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    markers = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))
    )
    for _, marker in reversed(markers):
        try:
            record = json.loads(marker.read_text())
            leaves = folder / record["leaves"]
            if leaves.is_file() and _sha256(leaves) == record["sha256"]:
                return marker
        except (OSError, ValueError, KeyError):
            continue
    return None


def load_checkpoint(marker: str | os.PathLike, like) -> tuple[Any, dict[str, Any]]:
    """``(tree, meta)`` of the checkpoint whose JSON is ``marker``; ``like`` gives the structure."""
    marker = Path(marker)
    record = json.loads(marker.read_text())
    return load_tree(marker.parent / record["leaves"], like), record


def _prune(folder: Path) -> None:
    markers = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))
    )
    for _, marker in markers[:-KEEP]:
        for p in (marker.with_suffix(".eqx"), marker):  # the mark last: never a mark alone
            p.unlink(missing_ok=True)
