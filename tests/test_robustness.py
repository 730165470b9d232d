"""The command line under interrupts, corrupt run files and mistaken arguments: it stops
promptly with a message that names the file and the fix, and never loses what a user gave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from runs import mopex_subset

HYBRIDLAND = [sys.executable, "-m", "hybridland.cli"]


# ---------------------------------------------------------------------------------------------
# Ctrl-C while simulate writes its NetCDF


@pytest.fixture(scope="module")
def forty_basins(tmp_path_factory, mopex_file):
    """40 MOPEX basins, 1950-2003: an output of ~45 MB, written in a fraction of a second."""
    with xr.open_dataset(mopex_file) as ds:
        basins = [str(b) for b in ds["basin"].values[20:60]]
    path = tmp_path_factory.mktemp("forty") / "forty.nc"
    return mopex_subset(mopex_file, path, basins, "1950-01-01", "2003-12-31")


@pytest.mark.parametrize("extra", [[], ["--chunk-basins", "10"]], ids=["whole", "chunked"])
def test_ctrl_c_during_the_netcdf_write_exits_promptly_and_leaves_nothing(
    forty_basins, tmp_path, extra
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    command = [*HYBRIDLAND, "simulate", "--data", str(forty_basins), "--model", "physics",
               "--drop-incomplete", "--swap-inverted-temperatures", "--compression", "1",
               "--out", str(out_dir / "sim.nc"), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        while not any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
            assert process.poll() is None, process.communicate()
            time.sleep(0.002)
        time.sleep(0.02)  # inside the write, where an interrupt used to hang the process
        process.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert time.perf_counter() - sent < 10
    assert "hybridland simulate: interrupted (Ctrl-C)" in err and "No partial file" in err
    assert "Traceback" not in err
    assert os.listdir(out_dir) == []
