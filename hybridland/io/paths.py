"""Where hybridland finds its shared (never vendored) observation data.

The observed data sets live beside the repository, not in it (they are other people's
measurements and far larger than the code). Their folder is taken from the environment variable
``HYBRIDLAND_DATA`` and defaults to ``../shared/data`` relative to the repository root. A
relative ``HYBRIDLAND_DATA`` is resolved once, against the working directory of the process when
hybridland is first imported, so a later ``os.chdir`` (a test's temporary folder, a study's
output folder) never changes which folder it names.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "HYBRIDLAND_DATA"
"""Environment variable naming the shared data folder."""

MOPEX_FILE = Path("mopex") / "mopex_dev.nc"
"""The MOPEX development file, relative to ``data_dir()``."""

_START_DIR = Path.cwd()
"""Working directory at import: the base of a relative ``HYBRIDLAND_DATA``."""


def repo_root() -> Path:
    """The repository root of this (editable) checkout: the folder holding ``hybridland/``."""
    return Path(__file__).resolve().parents[2]


def data_dir(*, must_exist: bool = True) -> Path:
    """The shared data folder, an absolute path: ``$HYBRIDLAND_DATA`` (a relative value taken
    from the working directory at import), else ``<repo root>/../shared/data``.

    With ``must_exist`` (the default) a missing folder raises ``FileNotFoundError`` that says
    which path was tried and how to point hybridland elsewhere.
    """
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        path = _START_DIR / Path(configured).expanduser()
        origin = f"${DATA_ENV_VAR}"
    else:
        path = repo_root().parent / "shared" / "data"
        origin = f"the default (../shared/data beside the repository; ${DATA_ENV_VAR} is unset)"
    path = path.resolve()
    if must_exist and not path.is_dir():
        raise FileNotFoundError(
            f"Shared data folder {path} (from {origin}) does not exist. Set the environment "
            f"variable {DATA_ENV_VAR} to the folder that holds mopex/mopex_dev.nc."
        )
    return path


def mopex_path() -> Path:
    """Path of the MOPEX development file under ``data_dir()`` (raises if it is missing)."""
    path = data_dir() / MOPEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"MOPEX file {path} not found. Set {DATA_ENV_VAR} to the folder holding "
            f"{MOPEX_FILE.as_posix()}."
        )
    return path
