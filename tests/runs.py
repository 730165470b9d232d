"""Tiny training runs shared by the training and evaluation tests.

3 real MOPEX basins (2 years train, 1 year validation, 120-day windows after 60 warm-up days,
width 8), float32 on CPU.
"""

import warnings

import xarray as xr

from hybridland.io._report import DataAdjustmentWarning
from hybridland.train import config_from_dict, train

BASINS = ["10296500", "10309000", "01064500"]


def tiny(kind="hybrid", epochs=4, **model):
    model = {"kind": kind, "width": 8, "depth": 1, **model}
    if kind == "physics":
        model.setdefault("trainable_params", ["runoff_shape", "baseflow_rate", "et_threshold"])
    return config_from_dict(
        {
            "run": {"name": f"tiny-{kind}", "seed": 3},
            "data": {
                "basins": BASINS,
                "swap_inverted_temperatures": True,
                "train_period": ["1995-01-01", "1996-12-31"],
                "validation_period": ["1997-01-01", "1997-12-31"],
                "warmup_days": 60,
            },
            "model": model,
            "training": {
                "epochs": epochs,
                "batch_basins": 3,
                "window_days": 120,
                "learning_rate": 0.02,
                "schedule": "cosine",
                "warmup_steps": 2,
                "decay_rate": 0.2,
            },
        }
    )


def quiet_train(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return train(*args, progress=False, **kwargs)


def mopex_subset(mopex_file, path, basins, start, end):
    """Copy some basins and days of the shared MOPEX file to ``path`` (MOPEX layout)."""
    with xr.open_dataset(mopex_file) as ds:
        ds.sel(basin=list(basins), time=slice(start, end)).load().to_netcdf(path)
    return path


def trained(tmp_path_factory, config, name):
    """``(config, run_dir, TrainResult)`` of ``config`` trained in a fresh folder ``name``."""
    run_dir = tmp_path_factory.mktemp(name)
    return config, run_dir, quiet_train(config, run_dir)


def fresh_python(code, *args, env=None, timeout=300):
    """``code`` run by a new interpreter (``python -c code *args``): what a user's fresh process
    sees (imports, environment). Fails the test with the end of its stderr unless it exits 0;
    returns its ``subprocess.CompletedProcess`` (text stdout and stderr)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def hold_lock(run_dir, seconds):
    """A process that holds the lock of ``run_dir`` (``checkpoint.hold_run``) for ``seconds``,
    as a training in it would; returned once the lock is taken."""
    import subprocess
    import sys

    script = ("import sys, time\n"
              "from hybridland.train import checkpoint\n"
              "with checkpoint.hold_run(sys.argv[1]):\n"
              "    print('held', flush=True)\n"
              "    time.sleep(float(sys.argv[2]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def hold_lock_attempts(*run_dirs) -> list[int]:
    """Another process trying ``hold_run`` once on each of ``run_dirs`` in turn (one process:
    importing hybridland is most of its time): 0 for each it got, 3 for each locked."""
    script = ("import sys\n"
              "from hybridland.train import checkpoint\n"
              "for run_dir in sys.argv[1:]:\n"
              "    try:\n"
              "        with checkpoint.hold_run(run_dir):\n"
              "            print(0)\n"
              "    except checkpoint.RunLockedError:\n"
              "        print(3)\n")
    return [int(line) for line in fresh_python(script, *run_dirs).stdout.split()]


def hold_lock_attempt(run_dir) -> int:
    """``hold_lock_attempts`` of one run directory: 0 if the other process got it, 3 if locked."""
    return hold_lock_attempts(run_dir)[0]
