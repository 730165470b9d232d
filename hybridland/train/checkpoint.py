"""Atomic checkpoints of a training run.

A checkpoint of epoch ``e`` is two files in ``<run_dir>/checkpoints/``:
``epoch_<e>.eqx`` (``eqx.tree_serialise_leaves`` of the training state pytree) and
``epoch_<e>.json`` (epoch, seed, best validation loss, early-stopping counter, history, and the
SHA-256 of the ``.eqx`` file). Each file is written to a temporary name, flushed, fsynced and
``os.replace``d into place, and the JSON is written *last*: it is the commit mark. A checkpoint
counts only when its JSON exists and the hash of its ``.eqx`` matches, so a process killed at
any moment leaves the previous checkpoint usable. The two newest checkpoints are kept.
``find_checkpoint`` also names the checkpoints it had to skip, so that a caller can say so and
refuse to start again from nothing when every one is damaged.

The final weights (``model.eqx``) get the same protection: ``save_model`` returns their SHA-256,
which the run records, and ``load_model`` refuses a file whose hash differs or which cannot be
read, naming it. Files are created with the mode ``0666`` less the umask (as ``open`` would),
not the ``0600`` of a bare temporary file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from .._containers import is_fixed
from ..io._files import _file_mode, atomic_write_bytes, atomic_write_text, json_text

CHECKPOINT_DIR = "checkpoints"
KEEP = 2
_NAME = re.compile(r"^epoch_(\d+)\.json$")
CHECKPOINT_FILE = re.compile(r"^epoch_(\d+)\.(json|eqx)$")
"""Names of the two files of an epoch's checkpoint (its marker and its leaves)."""
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")
"""Names of the temporary files of ``atomic_write_bytes`` and ``io.write_netcdf``."""


class RunFileError(ValueError):
    """A file of a run directory that is damaged or does not belong to the run; the message
    names the file and what to do."""


class ChecksumError(ValueError):
    """The bytes of a file are not those whose SHA-256 was recorded when it was written."""


class RunLockedError(RunFileError):
    """Another process is training in the run directory (``hold_run``); ``pid`` names it
    (None when it has not yet recorded itself)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped (an older one is used)."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock of a run directory being trained: a hidden file beside it (not in it, so a
    run directory is still written only once its configuration and data have loaded), named
    after the resolved path, so that every spelling of one directory shares one lock."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


def _holder(fd: int) -> tuple[int | None, str]:
    """The process recorded in a held lock file, and its description for a message."""
    try:
        found = json.loads(os.pread(fd, 4096, 0).decode())
        pid = int(found["pid"])
        return pid, f"process {pid} on {found['host']} (since {found['since']})"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is still writing it
        return None, "another process"


_HELD: dict[Path, int] = {}
"""Locks this process holds (``hold_run``), with how deeply each is nested."""


@contextlib.contextmanager
def hold_run(run_dir: str | os.PathLike):
    """Hold the lock of ``run_dir`` while the block runs, so that two processes (two study
    invocations sharing runs, or two ``hybridland train`` calls) never train in one run
    directory at once: the second gets ``RunLockedError`` naming the first.

    The lock is the operating system's (``flock``) on ``lock_path(run_dir)``: it ends with the
    process that holds it, however that process ends (killed, crashed), so a lock is never left
    behind. The file records the holder's PID and host, for the message; it is removed by its
    holder on exit, and a process that locked a file just removed by its holder tries again.
    A process already holding the lock holds it again (nested blocks: the lock ends with the
    outermost), so a caller can keep a run locked across ``train`` and what follows it."""
    lock = lock_path(run_dir)
    if lock in _HELD:
        _HELD[lock] += 1
        try:
            yield lock
        finally:
            _HELD[lock] -= 1
        return
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, _file_mode())
        except PermissionError as err:  # the lock sits beside the run, in its parent folder
            raise RunFileError(
                f"The lock of {run_dir} cannot be created: {lock.parent} is not writable "
                f"({err.strerror}). The lock file {lock.name} is kept beside the run directory; "
                "make that folder writable or choose a run directory in a writable folder."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, who = _holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{run_dir} is being trained by {who}: wait for that training to end, or use "
                "another run directory.", pid) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # locked a file its holder removed meanwhile: lock the current one
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _HELD[lock] = 1
        yield lock
    finally:
        _HELD.pop(lock, None)
        lock.unlink(missing_ok=True)  # while still held: no other process has it
        os.close(fd)


def _leaves_spec(tree, default, fixed):
    """``filter_spec`` of ``tree`` for equinox's (de)serialisation: ``fixed`` for every
    ``Fixed`` part, ``default`` for the other leaves."""
    return jax.tree_util.tree_map(
        lambda x: fixed if is_fixed(x) else default, tree, is_leaf=is_fixed
    )


def save_tree(path: str | os.PathLike, tree) -> None:
    """``eqx.tree_serialise_leaves`` to ``path``, atomically. ``Fixed`` parts are not written:
    the code that reads the file rebuilds them (so a file does not depend on them, and files
    written before a model held them still load)."""
    spec = _leaves_spec(tree, eqx.default_serialise_filter_spec, lambda f, x: None)
    atomic_write_bytes(path, lambda f: eqx.tree_serialise_leaves(f, tree, spec))


def load_tree(path: str | os.PathLike, like, sha256: str | None = None):
    """``eqx.tree_deserialise_leaves`` of ``path`` into the structure of ``like``, whose
    ``Fixed`` parts are kept as they are. With ``sha256``, the bytes read are checked against
    it first (``ChecksumError`` when they differ): the file is read once, so the weights
    loaded are the bytes checked even if the file is replaced meanwhile."""
    with open(path, "rb") as f:
        data = f.read()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ChecksumError(f"{path}: its SHA-256 differs from the one recorded when it was "
                            "written (damaged, cut short or replaced).")
    return _tree_from_bytes(data, like)


def _tree_from_bytes(data: bytes, like):
    import io

    spec = _leaves_spec(like, eqx.default_deserialise_filter_spec, lambda f, x: x)
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like, spec)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
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
    record = dict(meta, epoch=epoch, leaves=leaves.name, sha256=file_sha256(leaves))
    marker = folder / f"epoch_{epoch:05d}.json"
    atomic_write_text(marker, json_text(record))
    _prune(run_dir)
    return marker


def find_checkpoint(run_dir: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """``(JSON of the newest complete, intact checkpoint or None, [why each newer one was
    skipped])``."""
    skipped = []
    for marker in checkpoint_markers(run_dir):
        try:
            read_checkpoint(marker)
        except RunFileError as err:
            skipped.append(str(err))
        else:
            return marker, skipped
    return None, skipped


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The JSON of the newest complete, intact checkpoint in ``run_dir``, or None."""
    return find_checkpoint(run_dir)[0]


def resume_checkpoint(run_dir: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """``(checkpoint to resume from or None, [why each newer one was skipped])`` of a run
    directory.

    Refuses (``RunFileError``) to let a run with a history start again from epoch 0, which
    would overwrite its ``metrics.csv``: when every checkpoint is damaged, or when
    ``metrics.csv`` has rows but no checkpoint exists. Damaged checkpoints newer than the one
    returned are renamed ``*.damaged`` (see ``set_aside_newer``) and reported in a
    ``CheckpointWarning``.
    """
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINT_DIR
    marker, skipped = find_checkpoint(run_dir)
    fresh = (f"train into a new run directory, or move {folder} and {run_dir / 'metrics.csv'} "
             "away to start this run again from epoch 0")
    if marker is None and skipped:
        raise RunFileError(f"Every checkpoint in {folder} is damaged ({'; '.join(skipped)}), so "
                           f"the run cannot resume. Nothing was changed: {fresh}.")
    metrics = run_dir / "metrics.csv"
    if marker is None and metrics.is_file():
        epochs = max(len(metrics.read_text().splitlines()) - 1, 0)
        if epochs:
            raise RunFileError(f"{run_dir} holds the history of {epochs} epoch(s) ({metrics}) "
                               f"but no checkpoint to resume from in {folder}. Nothing was "
                               f"changed: {fresh}.")
    if skipped:
        moved = set_aside_newer(marker)
        warnings.warn(f"Skipped damaged checkpoint(s) in {folder}: {'; '.join(skipped)}. "
                      f"Resuming from {marker.name}; the damaged files are kept as "
                      f"{', '.join(p.name for p in moved)}.", CheckpointWarning, stacklevel=2)
    return marker, skipped


def set_aside_newer(marker: Path) -> list[Path]:
    """Rename the checkpoints newer than ``marker`` (skipped as damaged) to ``*.damaged`` so
    that neither resuming nor pruning mistakes them for the newest; returns the new names."""
    epoch = int(_NAME.match(marker.name).group(1))
    moved = []
    for p in sorted(marker.parent.iterdir()):
        m = CHECKPOINT_FILE.match(p.name)
        if m and int(m.group(1)) > epoch:
            moved.append(p.rename(p.with_name(p.name + ".damaged")))
    return moved


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of ``atomic_write_bytes`` or ``io.write_netcdf``."""
    return bool(_TEMPORARY.match(path.name)) and path.is_file()


def remove_stale_temporaries(*folders: Path) -> list[Path]:
    """Delete the temporary files a killed process left in ``folders`` (hidden ``.*.tmp``
    names of ``atomic_write_bytes`` and ``io.write_netcdf``); returns them."""
    removed = []
    for folder in folders:
        if folder.is_dir():
            for p in folder.iterdir():
                if is_temporary(p):
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def save_model(path: str | os.PathLike, tree) -> str:
    """``save_tree`` of the final weights; returns the SHA-256 of the file (for ``load_model``)."""
    save_tree(path, tree)
    return file_sha256(path)


def load_model(path: str | os.PathLike, like, sha256: str | None, fix: str):
    """``load_tree`` of weights saved by ``save_model``, refusing (``RunFileError``, the file
    named, ``fix`` appended) a file whose SHA-256 is not ``sha256`` (None: not recorded), that
    cannot be read into the structure of ``like``, or that holds non-finite weights."""
    import numpy as np

    path = Path(path)
    try:
        tree = load_tree(path, like, sha256)
    except ChecksumError:
        raise RunFileError(f"{path} is damaged: its SHA-256 differs from the one recorded when "
                           f"it was written. {fix}") from None
    except Exception as err:  # equinox reports a short or foreign file as TreePathError
        raise RunFileError(f"{path} cannot be read as this run's weights (truncated, damaged or "
                           f"written for another model; {type(err).__name__}). {fix}") from None
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)]
    if not all(bool(np.isfinite(np.asarray(x)).all()) for x in leaves):
        raise RunFileError(f"{path} holds non-finite weights (NaN or inf): it is damaged. {fix}")
    return tree


def load_checkpoint(marker: str | os.PathLike, like) -> tuple[Any, dict[str, Any]]:
    """``(tree, meta)`` of the checkpoint whose JSON is ``marker``; ``like`` gives the structure.
    The weights loaded are the bytes ``read_checkpoint`` checked (find_checkpoint checked the
    file before; it may have changed since)."""
    marker = Path(marker)
    try:
        record, data = read_checkpoint(marker)
    except RunFileError as err:
        raise RunFileError(f"{err}. Its checkpoint {marker.name} cannot be resumed; run the "
                           "command again to resume from the newest intact one.") from None
    # a score never computed (an epoch without validation) is written as null: NaN again here
    record["history"] = [{k: math.nan if v is None else v for k, v in row.items()}
                         for row in record.get("history", [])]
    return _tree_from_bytes(data, like), record


def checkpoint_markers(run_dir: str | os.PathLike) -> list[Path]:
    """The JSON of every checkpoint in ``run_dir``, newest first (intact or not)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return [p for _, p in reversed(found)]


def read_checkpoint(marker: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """The record of the checkpoint whose JSON is ``marker`` and its weights' bytes, checked
    against the recorded SHA-256; ``RunFileError`` saying why (unreadable, weights missing,
    bytes differ) otherwise. The bytes returned are the bytes checked."""
    marker = Path(marker)
    try:
        record = json.loads(marker.read_text())
        leaves, recorded = marker.parent / record["leaves"], record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunFileError(f"{marker.name}: unreadable ({type(err).__name__}: {err})") from None
    try:
        data = leaves.read_bytes()
    except OSError:
        raise RunFileError(f"{marker.name}: its weights {leaves.name} are missing or "
                           "unreadable") from None
    if hashlib.sha256(data).hexdigest() != recorded:
        raise RunFileError(f"{leaves.name}: its SHA-256 differs from {marker.name} (damaged "
                           "or changed)")
    return record, data


def write_checkpoint(run_dir: str | os.PathLike, record: dict[str, Any], data: bytes) -> Path:
    """A checkpoint in ``run_dir`` from a record and its weights' bytes (``read_checkpoint``),
    each written atomically, the JSON last (as ``save_checkpoint``); returns the JSON."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / record["leaves"], lambda f: f.write(data))
    marker = folder / f"epoch_{record['epoch']:05d}.json"
    atomic_write_text(marker, json_text(record))
    return marker


def _prune(run_dir: str | os.PathLike) -> None:
    """Delete all but the ``KEEP`` newest checkpoints of ``run_dir``."""
    for marker in checkpoint_markers(run_dir)[KEEP:]:
        for p in (marker.with_suffix(".eqx"), marker):  # the mark last: never a mark alone
            p.unlink(missing_ok=True)
