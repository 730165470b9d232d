"""Where hybridland finds its shared (never vendored) observation data.

The observed data sets live beside the repository, not in it (they are other people's
measurements and far larger than the code). Their folder is taken from the environment variable
``HYBRIDLAND_DATA`` and defaults to ``../shared/data`` relative to the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "HYBRIDLAND_DATA"
"""Environment variable naming the shared data folder."""

MOPEX_FILE = Path("mopex") / "mopex_dev.nc"
"""The MOPEX development file, relative to ``data_dir()``."""


def repo_root() -> Path:
    """The repository root of this (editable) checkout: the folder holding ``hybridland/``."""
    return Path(__file__).resolve().parents[2]


def data_dir(*, must_exist: bool = True) -> Path:
    """The shared data folder: ``$HYBRIDLAND_DATA``, else ``<repo root>/../shared/data``.

    With ``must_exist`` (the default) a missing folder raises ``FileNotFoundError`` that says
    which path was tried and how to point hybridland elsewhere.
    """
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
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
