"""Files replaced whole: written beside their place, then moved onto it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """``0666`` less the process umask: the mode ``open`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def replaced_file(path: str | os.PathLike) -> tuple[Path, int]:
    """Where a whole-file replacement of ``path`` goes and the mode it gets: a symbolic link's
    target (the link stays a link), and the mode of the file it replaces (a new file: the one
    ``open`` gives). Writing at the link's own name would turn it into a plain file, and a
    fresh temporary file's mode would drop the one the user set."""
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = _file_mode()
    return target, mode


def sync_directory(path: str | os.PathLike) -> None:
    """Flush the folder holding ``path`` to disk: a rename is durable only once its folder's
    entry is (POSIX; after a power cut the new name could otherwise be missing). A system
    whose folders cannot be opened or synced (Windows, some network file systems) is left
    as it is: the rename is still atomic there."""
    try:
        fd = os.open(Path(path).parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``.

    If ``write`` raises (or the process dies) ``path`` keeps its previous content.
    """
    path, mode = replaced_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; the file should look like the one it replaces
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_directory(path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def json_text(document, indent: int | None = 1) -> str:
    """Standard JSON of ``document``: a non-finite float (NaN, inf), which JSON cannot hold and
    Python would write as the non-standard ``NaN`` / ``Infinity``, is written as ``null``."""
    return json.dumps(_finite_or_none(document), indent=indent, allow_nan=False)


def folder_problem(folder: str | os.PathLike, option: str, holds: str) -> str | None:
    """Why the output folder ``folder`` (given as ``option``, e.g. ``--out``) cannot be created
    or written (None if it can): it, or a folder it would be created in, is an existing file
    (never replaced by a folder), or the nearest existing folder is read-only. ``holds`` says
    what the command writes there, for the message."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        what = f"{option} {folder}" if existing == folder else f"{option} {folder}: {existing}"
        return (f"{what} is an existing file, not a folder; {holds} is written into a folder. "
                f"Give a new or existing folder as {option}.")
    if not os.access(existing, os.W_OK):
        return f"{option} {folder}: folder {existing} is not writable; choose another {option}."
    return None
