"""The command line under interrupts, corrupt run files and mistaken arguments: it stops
promptly with a message that names the file and the fix, and never loses what a user gave."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland.cli import main
from hybridland.io import mopex_path
from hybridland.train import ConfigError
from hybridland.train import checkpoint as ckpt
from runs import BASINS, mopex_subset, quiet_train, tiny

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


def _interruptible():
    """In the child: Ctrl-C (SIGINT) back to its default. A test run started in the
    background of a non-interactive shell (as CI may be) inherits SIGINT ignored, and the
    command rightly keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("extra, sig", [([], signal.SIGINT),
                                        (["--chunk-basins", "10"], signal.SIGINT),
                                        ([], signal.SIGTERM)],
                         ids=["whole", "chunked", "sigterm"])
def test_ctrl_c_during_the_netcdf_write_exits_promptly_and_leaves_nothing(
    forty_basins, tmp_path, extra, sig
):
    """Ctrl-C inside the write hung the process; SIGTERM (a scheduler ending a job) killed it
    and left the temporary file. Both now exit promptly, at 128 + the signal, leaving
    nothing."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    command = [*HYBRIDLAND, "simulate", "--data", str(forty_basins), "--model", "physics",
               "--drop-incomplete", "--swap-inverted-temperatures", "--compression", "1",
               "--out", str(out_dir / "sim.nc"), *extra]
    attempts = 5
    for attempt in range(attempts):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, preexec_fn=_interruptible)
        sent = None
        try:
            while not any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
                if process.poll() is not None:  # the whole write fell between two looks
                    break
                time.sleep(0.002)
            else:
                time.sleep(0.02)  # inside the write, where an interrupt used to hang the process
                process.send_signal(sig)
                sent = time.perf_counter()
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        # On a loaded machine this process may be descheduled until the write has finished, so
        # the signal comes too late (or is never sent) and tests nothing: try again. An
        # interrupt that is ignored every time still fails below.
        if process.returncode == 0 and attempt < attempts - 1:
            (out_dir / "sim.nc").unlink()
            continue
        break
    assert sent is not None, f"the write was never caught in progress in {attempts} attempts"
    assert process.returncode == 128 + sig, err
    what = "Ctrl-C" if sig == signal.SIGINT else "signal SIGTERM"
    assert f"hybridland simulate: interrupted ({what})" in err and "No partial file" in err
    assert "Traceback" not in err
    assert os.listdir(out_dir) == []


# ---------------------------------------------------------------------------------------------
# Damaged, foreign or missing run files


def _cli(*argv):
    """``hybridland ARGV`` in this process: ``(exit status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def paused_run(tmp_path_factory, mopex_file):
    """A physics run of 3 epochs stopped after 2 (checkpoints of epochs 0 and 1)."""
    run_dir = tmp_path_factory.mktemp("paused") / "run"
    quiet_train(tiny("physics", epochs=3), run_dir, max_epochs_this_call=2)
    return run_dir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mopex_file):
    """A finished physics run (1 epoch) with a test period, without its report."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    config = tiny("physics", epochs=1).replace("data", test_period=("1998-01-01", "1998-12-31"))
    quiet_train(config, run_dir, report=False)
    return run_dir


@pytest.fixture(scope="module")
def evaluation_file(tmp_path_factory, mopex_file):
    """The run's basins, 1997-1998, in the MOPEX layout."""
    path = tmp_path_factory.mktemp("evaluation") / "basins.nc"
    return mopex_subset(mopex_file, path, BASINS, "1997-01-01", "1998-12-31")


def _copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def _damage(path: Path) -> None:
    """Overwrite a few bytes in the middle of ``path`` (its length unchanged)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4] = b"\xff\xfe\xfd\xfc"
    path.write_bytes(bytes(data))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_every_checkpoint_damaged_refuses_to_start_again(paused_run, tmp_path):
    run_dir = _copy(paused_run, tmp_path)
    for leaves in (run_dir / "checkpoints").glob("*.eqx"):
        _damage(leaves)
    before = _snapshot(run_dir)
    status, out, err = _cli("train", "--config", run_dir / "config.yaml", "--run-dir", run_dir,
                            "--no-progress")
    assert status == 2, out + err
    assert "Every checkpoint in" in err and "epoch_00001.eqx" in err and "new run" in err
    assert "paused" not in out and "Traceback" not in err
    assert _snapshot(run_dir) == before  # metrics.csv, checkpoints and log untouched


def test_history_without_checkpoint_refuses_to_start_again(paused_run, tmp_path):
    run_dir = _copy(paused_run, tmp_path)
    shutil.rmtree(run_dir / "checkpoints")
    metrics = (run_dir / "metrics.csv").read_text()
    status, _, err = _cli("train", "--config", run_dir / "config.yaml", "--run-dir", run_dir,
                          "--no-progress")
    assert status == 2 and "history of 2 epoch(s)" in err and "metrics.csv" in err
    assert (run_dir / "metrics.csv").read_text() == metrics


def test_damaged_newest_checkpoint_is_reported_and_set_aside(paused_run, tmp_path):
    run_dir = _copy(paused_run, tmp_path)
    _damage(run_dir / "checkpoints" / "epoch_00001.eqx")
    stale = run_dir / "checkpoints" / ".epoch_00002.eqx.k2j4l5mz.tmp"  # a killed write
    stale.write_bytes(b"partial")
    status, out, err = _cli("train", "--config", run_dir / "config.yaml", "--run-dir", run_dir,
                            "--max-epochs", "1", "--no-progress")
    assert status == 0, err
    assert "warning: Skipped damaged checkpoint(s)" in err and "epoch_00001.eqx" in err
    assert "Resuming from epoch_00000.json" in err and "paused" in out
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["epoch_00000.eqx", "epoch_00000.json", "epoch_00001.eqx",
                     "epoch_00001.eqx.damaged", "epoch_00001.json", "epoch_00001.json.damaged"]
    assert ckpt.latest_checkpoint(run_dir).name == "epoch_00001.json"  # the new, intact one
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "0", "1"]
    log = (run_dir / "train.log").read_text()
    assert "skipped damaged checkpoint" in log and stale.name in log


def _evaluate(run_dir, tmp_path, *extra):
    return _cli("evaluate", "--run-dir", run_dir, "--out", tmp_path / "metrics.csv", *extra)


@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_damaged_model_is_refused_naming_the_file(finished_run, tmp_path, damage):
    run_dir = _copy(finished_run, tmp_path)
    model = run_dir / "model.eqx"
    if damage == "overwritten":
        _damage(model)
    else:
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    status, out, err = _evaluate(run_dir, tmp_path)
    assert status == 2, out
    assert f"{model} is damaged" in err and "SHA-256" in err and "Traceback" not in err
    assert not (tmp_path / "metrics.csv").exists()
    # The advice holds: training again rewrites model.eqx from the last checkpoint.
    fix = err[err.index("`hybridland ") + 12 : err.rindex("`")].split()
    assert _cli(*fix, "--no-progress")[0] == 0
    status, out, err = _evaluate(run_dir, tmp_path)
    assert status == 0, err
    assert "median NSE" in out


def test_damaged_model_of_a_run_without_hash_is_refused(finished_run, tmp_path):
    """Runs written before model.eqx had a hash: a short file or NaN weights are caught."""
    run_dir = _copy(finished_run, tmp_path)
    record = json.loads((run_dir / "run.json").read_text())
    del record["model_sha256"]
    (run_dir / "run.json").write_text(json.dumps(record))
    model = run_dir / "model.eqx"
    intact = model.read_bytes()
    model.write_bytes(intact[:40])
    status, _, err = _evaluate(run_dir, tmp_path)
    assert status == 2 and f"{model} cannot be read" in err and "Traceback" not in err
    floats = np.frombuffer(intact, np.uint8).copy()
    floats[-4:] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)  # the last weight
    model.write_bytes(floats.tobytes())
    status, _, err = _evaluate(run_dir, tmp_path)
    assert status == 2 and "non-finite weights" in err


# ---------------------------------------------------------------------------------------------
# Outputs never replace inputs; read-only folders


def test_out_naming_an_input_is_refused(finished_run, evaluation_file, tmp_path):
    data = Path(shutil.copy(evaluation_file, tmp_path / "data.nc"))
    before = data.read_bytes()
    run_dir = _copy(finished_run, tmp_path)
    model = (run_dir / "model.eqx").read_bytes()
    cases = [
        ["simulate", "--data", data, "--model", "physics", "--out", data],
        ["simulate", "--data", data, "--model", "physics", "--out", tmp_path / "." / "data.nc"],
        ["simulate", "--run-dir", run_dir, "--data", data, "--out", data],
        ["evaluate", "--run-dir", run_dir, "--data", data, "--out", data],
        ["evaluate", "--run-dir", run_dir, "--out", run_dir / "model.eqx"],
        ["evaluate", "--run-dir", run_dir, "--out", mopex_path()],  # the run's own data
    ]
    for argv in cases:
        status, _, err = _cli(*argv)
        assert status == 2 and "names an input of this command" in err, (argv, err)
    assert data.read_bytes() == before and (run_dir / "model.eqx").read_bytes() == model


def test_out_naming_another_runs_file_is_refused(finished_run, evaluation_file, tmp_path):
    """Only the evaluated run's own files were protected: `evaluate --run-dir A --out
    B/metrics_test.csv` replaced run B's test table with run A's scores (exit 0)."""
    a = Path(shutil.copytree(finished_run, tmp_path / "a"))
    b = Path(shutil.copytree(finished_run, tmp_path / "b"))
    status, _, err = _cli("evaluate", "--run-dir", b, "--data", evaluation_file,
                          "--out", b / "metrics_test.csv")
    assert status == 2 and "names an input of this command" in err, err  # its own: refused
    table = tmp_path / "table.csv"
    assert _cli("evaluate", "--run-dir", b, "--data", evaluation_file, "--out", table)[0] == 0
    shutil.copy(table, b / "metrics_test.csv")  # the table B's report would hold
    before = (b / "metrics_test.csv").read_bytes()
    status, _, err = _cli("evaluate", "--run-dir", a, "--data", evaluation_file,
                          "--out", b / "metrics_test.csv")
    assert status == 2, err
    assert f"is a file that the training in {b} wrote, which no other command replaces" in err
    assert (b / "metrics_test.csv").read_bytes() == before


def test_calibrate_never_writes_over_its_configuration_or_data(evaluation_file, tmp_path):
    data = Path(shutil.copy(evaluation_file, tmp_path / "data.nc"))
    config = tmp_path / "calibration.yaml"
    config.write_text(f"data:\n  path: {data}\n  train_period: [1997-03-01, 1997-12-31]\n"
                      "  validation_period: [1998-01-01, 1998-12-31]\n  warmup_days: 30\n")
    before = config.read_text(), data.read_bytes()
    for out in (config, data):
        status, _, err = _cli("calibrate", "--config", config, "--out", out)
        assert status == 2 and "names an input of this command" in err, err
    assert (config.read_text(), data.read_bytes()) == before


def test_emulator_summary_never_replaces_the_emulator(tmp_path):
    folder = tmp_path / "emulator"
    folder.mkdir()
    (folder / "emulator.json").write_text("{}")
    status, _, err = _cli("emulate", "evaluate", "--emulator", folder,
                          "--out", folder / "emulator.json")
    assert status == 2 and "names an input of this command" in err
    assert (folder / "emulator.json").read_text() == "{}"


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: its mode, and for root (whom modes do not stop) the answer
    of ``os.access``, as a read-only file system would give it."""
    folders = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        folders.append(folder)
        return folder

    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and any(Path(path).resolve() == f.resolve() for f in folders):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_read_only_output_folder_gives_a_message(finished_run, evaluation_file, tmp_path,
                                                  read_only):
    folder = read_only(tmp_path / "locked")
    for argv in (
        ["simulate", "--data", evaluation_file, "--model", "physics", "--out", folder / "s.nc"],
        ["evaluate", "--run-dir", finished_run, "--out", folder / "m.csv"],
        ["train", "--config", finished_run / "config.yaml", "--run-dir", folder / "run"],
    ):
        status, _, err = _cli(*argv)
        assert status == 2 and "Traceback" not in err, (argv, err)
        assert str(folder) in err and ("not writable" in err or "read-only" in err), err
    assert list(folder.iterdir()) == []


def test_file_system_error_while_writing_gives_a_message(evaluation_file, tmp_path, monkeypatch):
    """A folder that turns read-only (or a full disk) during the write."""

    def refuse(self, path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", refuse)
    status, _, err = _cli("simulate", "--data", evaluation_file, "--model", "physics",
                          "--out", tmp_path / "s.nc")
    assert status == 2 and "Permission denied" in err and str(tmp_path) in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Messages that fit the error


def test_evaluate_without_streamflow_names_q(finished_run, evaluation_file, tmp_path):
    with xr.open_dataset(evaluation_file) as ds:
        ds.drop_vars("Q").load().to_netcdf(tmp_path / "no_q.nc")
    status, _, err = _evaluate(finished_run, tmp_path, "--data", tmp_path / "no_q.nc")
    assert status == 2 and "no observed streamflow" in err and "'Q'" in err
    assert "warm-up" not in err and "Traceback" not in err


def test_evaluate_reports_basins_without_observations(finished_run, evaluation_file, tmp_path):
    with xr.open_dataset(evaluation_file) as ds:
        ds = ds.load()
    ds["Q"].loc[{"basin": BASINS[1]}] = np.nan
    ds["Q"].loc[{"basin": BASINS[2]}] = 0.0  # observed, but no flow: no NSE or KGE
    ds["Q"].loc[{"basin": BASINS[0], "time": slice("1998-07-01", "1998-12-31")}] = np.nan
    ds.to_netcdf(tmp_path / "gap.nc")
    status, out, err = _evaluate(finished_run, tmp_path, "--data", tmp_path / "gap.nc",
                                 "--period", "1998-01-01:1998-12-31")
    assert status == 0, err
    line = next(line for line in out.splitlines() if line.strip().startswith("missing"))
    assert "1 basin(s) have no observed streamflow" in line and BASINS[1] in line
    # a basin with observations but no score is named too (it is left out of the medians)
    line = next(line for line in out.splitlines() if line.strip().startswith("unscored"))
    assert "1 basin(s) with observed streamflow have no NSE or KGE" in line
    assert BASINS[2] in line and BASINS[0] not in line
    # the observed and simulated means of the half-observed basin cover the same days
    table = pd.read_csv(tmp_path / "metrics.csv", dtype={"basin": str}).set_index("basin")
    with xr.open_dataset(tmp_path / "gap.nc") as data:
        precip = data["P"].sel(basin=BASINS[0], time=slice("1998-01-01", "1998-06-30"))
        assert table.loc[BASINS[0], "mean_precip_observed_days_mm_day"] == pytest.approx(
            float(precip.mean()), rel=1e-4)
    assert table.loc[BASINS[0], "mean_precip_observed_days_mm_day"] != pytest.approx(
        table.loc[BASINS[0], "mean_precip_mm_day"], rel=1e-3)


def test_run_report_names_basins_without_observations(tmp_path, mopex_file):
    path = mopex_subset(mopex_file, tmp_path / "gap.nc", BASINS, "1994-01-01", "1997-12-31")
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds["Q"].loc[{"basin": BASINS[1], "time": slice("1997-01-01", "1997-12-31")}] = np.nan
    ds.to_netcdf(path)
    run_dir = tmp_path / "run"
    quiet_train(tiny("physics", epochs=1).replace("data", path=str(path)), run_dir)
    line = next(line for line in (run_dir / "train.log").read_text().splitlines()
                if " validation 1997-01-01" in line)
    assert "over 2 basins (1 without observations left out: 10309000)" in line


@pytest.fixture(scope="module")
def training_file(tmp_path_factory, mopex_file):
    """The tiny run's basins, 1994-1997 (warm-up, training, validation), MOPEX layout."""
    path = tmp_path_factory.mktemp("training") / "basins.nc"
    return mopex_subset(mopex_file, path, BASINS, "1994-01-01", "1997-12-31")


def _edited_q(training_file, tmp_path, edit) -> Path:
    with xr.open_dataset(training_file) as ds:
        ds = ds.load()
    path = tmp_path / "edited.nc"
    edit(ds).to_netcdf(path)
    return path


def _train_and_calibrate(path, tmp_path):
    """``(status, stderr)`` of ``train`` and of ``calibrate`` of the tiny run on ``path``."""
    config = tiny("physics", epochs=1).replace("data", path=str(path))
    (tmp_path / "t.yaml").write_text(config.to_yaml())
    (tmp_path / "c.yaml").write_text(
        f"data:\n  path: {path}\n  train_period: [1995-01-01, 1996-12-31]\n"
        "  validation_period: [1997-01-01, 1997-12-31]\n  warmup_days: 60\n"
        "  swap_inverted_temperatures: true\ncalibration:\n  steps: 1\n  starts: 1\n")
    results = [
        _cli("train", "--config", tmp_path / "t.yaml", "--run-dir", tmp_path / "run",
             "--no-progress"),
        _cli("calibrate", "--config", tmp_path / "c.yaml", "--out", tmp_path / "p.nc",
             "--no-progress"),
    ]
    assert not (tmp_path / "run").exists() and not (tmp_path / "p.nc").exists()
    return [(status, err) for status, _, err in results]


def test_train_and_calibrate_without_streamflow_name_q_and_the_file(training_file, tmp_path):
    # was an IndexError traceback in train.data.assemble
    path = _edited_q(training_file, tmp_path, lambda ds: ds.drop_vars("Q"))
    for status, err in _train_and_calibrate(path, tmp_path):
        assert status == 2 and "Traceback" not in err, err
        assert "no observed streamflow, variable 'Q'" in err and str(path) in err


def test_train_and_calibrate_refuse_streamflow_missing_in_the_period(training_file, tmp_path):
    # was exit 0: 'best validation loss 0.0000', parameters marked calibrated with 0 observations
    def no_q(ds):
        ds["Q"][:] = np.nan
        return ds

    path = _edited_q(training_file, tmp_path, no_q)
    (train_status, train_err), (cal_status, cal_err) = _train_and_calibrate(path, tmp_path)
    assert train_status == 2 and "training period 1995-01-01 .. 1996-12-31" in train_err
    assert cal_status == 2 and "calibration period 1995-01-01 .. 1996-12-31" in cal_err
    for err in (train_err, cal_err):
        assert "No basin" in err and "'Q' is NaN on every day" in err and "Traceback" not in err


def test_basins_without_training_streamflow_are_named_and_kept_by_training(
    training_file, tmp_path
):
    # A regional model still gives such basins parameters (7 of the 288 MOPEX dev basins have
    # no streamflow in 1960-1989): training keeps them, says so, and its loss skips them;
    # per-basin calibration refuses them (test_calibrate.py).
    from hybridland.io import DataAdjustmentWarning
    from hybridland.train.data import load_data

    def gap(ds):
        ds["Q"].loc[{"basin": BASINS[1], "time": slice("1995-01-01", "1996-12-31")}] = np.nan
        return ds

    config = tiny("physics").replace("data", path=str(_edited_q(training_file, tmp_path, gap)))
    with pytest.warns(DataAdjustmentWarning, match=rf"1 of 3 basin\(s\).*training period "
                      rf"1995-01-01 \.\. 1996-12-31: {BASINS[1]}; training skips them"):
        data = load_data(config)
    assert data.basins == tuple(BASINS)


def test_training_refuses_a_validation_period_without_streamflow(training_file, tmp_path):
    from hybridland.io import ForcingDataError
    from hybridland.train.data import load_data

    def no_validation(ds):
        ds["Q"].loc[{"time": slice("1997-01-01", "1997-12-31")}] = np.nan
        return ds

    path = _edited_q(training_file, tmp_path, no_validation)
    with pytest.raises(ForcingDataError, match=r"validation period 1997-01-01 \.\. 1997-12-31.*"
                       r"early stopping.*data\.validation_period"):
        load_data(tiny("physics").replace("data", path=str(path)))


def test_messages_fit_the_error(finished_run, evaluation_file, tmp_path):
    # A period outside the data: the warm-up is explained; no option evaluate lacks.
    status, _, err = _evaluate(finished_run, tmp_path, "--data", evaluation_file,
                               "--period", "1997-01-01:1997-12-31")
    assert status == 2 and "60 warm-up days" in err and "--start" not in err
    # Not a NetCDF file (empty, or text): said so, without xarray's list of backends.
    for name, content in (("empty.nc", b""), ("notes.nc", b"not a netcdf file\n")):
        (tmp_path / name).write_bytes(content)
        status, _, err = _evaluate(finished_run, tmp_path, "--data", tmp_path / name)
        assert status == 2 and "is not a NetCDF file" in err, err
        assert "warm-up" not in err and "backends" not in err
        status, _, err = _cli("simulate", "--data", tmp_path / name, "--model", "physics",
                              "--out", tmp_path / "s.nc")
        assert status == 2 and "is not a NetCDF file" in err


def test_strict_refuses_repair_options(evaluation_file, tmp_path):
    status, _, err = _cli("simulate", "--data", evaluation_file, "--model", "physics",
                          "--strict", "--trim", "--out", tmp_path / "s.nc")
    assert status == 2 and "--strict refuses every repair" in err


def test_training_period_outside_the_data(tmp_path, mopex_file):
    config = tiny("physics", epochs=1).replace(
        "data", train_period=("2004-01-01", "2004-12-31"),
        validation_period=("2005-01-01", "2005-12-31"))
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    run_dir = tmp_path / "run"
    status, _, err = _cli("train", "--config", tmp_path / "c.yaml", "--run-dir", run_dir)
    assert status == 2 and "Traceback" not in err
    assert "is not inside the data" in err and "data.warmup_days (60)" in err
    assert not run_dir.exists()  # nothing written for a run that cannot start


def test_overlapping_periods_are_refused():
    with pytest.raises(ConfigError, match=r"'data\.validation_period' 1996-06-01 \.\. 1997-12-31 "
                       r"overlaps data\.train_period .*1996-06-01 \.\. 1996-12-31.*disjoint"):
        tiny().replace("data", validation_period=("1996-06-01", "1997-12-31"))
    with pytest.raises(ConfigError, match=r"'data\.test_period' .* overlaps data\.validation"):
        tiny().replace("data", test_period=("1997-12-31", "1998-12-31"))
    tiny().replace("data", test_period=("1998-01-01", "1998-12-31"))  # disjoint: accepted


# ---------------------------------------------------------------------------------------------
# Leftovers and file modes


def test_config_error_while_loading_data_leaves_no_run_directory(tmp_path, mopex_file):
    config = tiny("physics").replace("data", basins=("00000000", *BASINS[1:]))
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    status, _, err = _cli("train", "--config", tmp_path / "c.yaml", "--run-dir", tmp_path / "run")
    assert status == 2 and "00000000" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        ckpt.save_checkpoint(tmp_path, 0, {"w": np.ones(3)}, {"history": []})
        ckpt.atomic_write_text(tmp_path / "metrics.csv", "epoch\n")
        ckpt.save_model(tmp_path / "model.eqx", {"w": np.ones(3)})
    finally:
        os.umask(previous)
    files = [tmp_path / "metrics.csv", tmp_path / "model.eqx",
             *sorted((tmp_path / "checkpoints").iterdir())]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_evaluate_never_replaces_the_runs_own_tables_and_figures(
    finished_run, evaluation_file, tmp_path
):
    # evaluate --out RUN/metrics_test.csv, or --plots RUN/plots with --out test.csv, replaced
    # the run's own test table and figures
    run_dir = _copy(finished_run, tmp_path)
    (run_dir / "plots").mkdir(exist_ok=True)
    figure = run_dir / "plots" / "hydrographs_test.png"
    figure.write_bytes(b"the run's figure")
    table = run_dir / "metrics_test.csv"
    table.write_text("the run's table")
    status, _, err = _cli("evaluate", "--run-dir", run_dir, "--data", evaluation_file,
                          "--out", table)
    assert status == 2 and "never overwritten" in err, err
    assert table.read_text() == "the run's table"
    out = tmp_path / "test.csv"
    status, _, err = _cli("evaluate", "--run-dir", run_dir, "--data", evaluation_file,
                          "--out", out, "--plots", run_dir / "plots")
    assert status == 2 and str(figure) in err and "never overwritten" in err, err
    assert figure.read_bytes() == b"the run's figure" and not out.exists()
    status, _, err = _cli("evaluate", "--run-dir", run_dir, "--data", evaluation_file,
                          "--out", out, "--plots", tmp_path / "figures")
    assert status == 0, err  # the same figures in a folder of the user's are written
    assert (tmp_path / "figures" / "hydrographs_test.png").is_file()


def test_calibrate_names_its_own_keys_for_a_readers_hint(training_file, tmp_path):
    # the reader's message about inverted temperatures offered --t-tolerance and
    # --swap-inverted-temperatures, options calibrate does not have
    (tmp_path / "c.yaml").write_text(
        f"data:\n  path: {training_file}\n  train_period: [1995-01-01, 1996-12-31]\n"
        "  validation_period: [1997-01-01, 1997-12-31]\n  warmup_days: 60\n"
        "calibration:\n  steps: 1\n  starts: 1\n")
    status, _, err = _cli("calibrate", "--config", tmp_path / "c.yaml", "--out",
                          tmp_path / "p.nc", "--no-progress")
    assert status == 2 and "T_min" in err, err
    assert "In `calibrate` these are keys" in err and "data.swap_inverted_temperatures" in err
    assert not (tmp_path / "p.nc").exists()
