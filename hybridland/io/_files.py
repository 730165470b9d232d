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
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600; the file should look like any other
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
