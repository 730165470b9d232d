"""End-to-end tests of the ``hybridland`` command (in-process, and --x64 in a subprocess)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hybridland.cli import main
from hybridland.io import water_budget_terms

GAP_BASIN = "10296500"  # W Walker River: no precipitation in the first half of 1948
BASINS = ["01055500", "12358500", GAP_BASIN]


@pytest.fixture(scope="module")
def subset_file(tmp_path_factory, mopex_file):
    """Three real MOPEX basins, 1948, copied to a small file in the MOPEX layout."""
    source = mopex_file
    path = tmp_path_factory.mktemp("data") / "mopex_subset.nc"
    with xr.open_dataset(source) as ds:
        ds.sel(basin=BASINS, time=slice("1948-01-01", "1948-12-31")).load().to_netcdf(path)
    return path


def _simulate(subset_file, out, *extra):
    return main(
        [
            "simulate",
            "--data",
            str(subset_file),
            "--out",
            str(out),
            "--swap-inverted-temperatures",
            *extra,
        ]
    )


@pytest.mark.parametrize("model", ["physics", "hybrid"])
def test_simulate_end_to_end(model, subset_file, tmp_path, capsys):
    out = tmp_path / f"{model}.nc"
    seed = ["--seed", "7"] if model == "hybrid" else []  # the bucket has no weights to seed
    status = _simulate(subset_file, out, "--model", model, "--trim", *seed)
    printed = capsys.readouterr().out
    assert status == 0, printed
    with xr.open_dataset(subset_file) as ds:
        p = ds["P"].sel(basin=GAP_BASIN).values
        name = str(ds["name"].sel(basin=GAP_BASIN).values).strip()
    leading = int(np.argmax(~np.isnan(p)))
    assert f"3 basins x {len(p) - leading} days" in printed
    assert "trimmed" in printed and name in printed  # what was trimmed, by name
    for word in ("compile", "run", "write", "per-step water residual", "cumulative", str(out)):
        assert word in printed
    with xr.open_dataset(out) as ds:
        assert list(ds["basin"].values) == BASINS
        assert ds.sizes["time"] == len(p) - leading
        assert model in ds.attrs["title"] and name in ds.attrs["input_adjustments"]
        assert "hybridland simulate" in ds.attrs["history"]
        cumulative = water_budget_terms(ds)["cumulative_residual"]
        assert float(np.abs(cumulative).max()) < 1e-3


def test_hybrid_seed_changes_the_network(subset_file, tmp_path, capsys):
    runs = {}
    for seed in ("1", "2"):
        out = tmp_path / f"s{seed}.nc"
        assert _simulate(subset_file, out, "--model", "hybrid", "--trim", "--seed", seed) == 0
        with xr.open_dataset(out) as ds:
            runs[seed] = ds["evapotranspiration"].values
    assert not np.allclose(runs["1"], runs["2"])
    capsys.readouterr()


def test_bad_input_exits_2_naming_variable_and_basin(subset_file, tmp_path, capsys):
    out = tmp_path / "never.nc"
    status = main(["simulate", "--data", str(subset_file), "--out", str(out), "--model",
                   "physics", "--strict"])
    captured = capsys.readouterr()
    assert status == 2
    assert "'P'" in captured.err and GAP_BASIN in captured.err and "--trim" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.count("\n") == 1  # one paragraph
    assert not out.exists()


def test_bad_file_and_arguments_exit_2(subset_file, tmp_path, capsys):
    broken = tmp_path / "broken.nc"
    with xr.open_dataset(subset_file) as ds:
        bad = ds.load()
    bad["T_max"].attrs["units"] = "K"
    bad.to_netcdf(broken)
    assert _simulate(broken, tmp_path / "o.nc", "--model", "physics", "--trim") == 2
    assert "'T_max'" in capsys.readouterr().err
    assert _simulate(tmp_path / "absent.nc", tmp_path / "o.nc", "--model", "physics") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _simulate(subset_file, tmp_path / "no" / "o.nc", "--model", "physics") == 2
    assert "Output folder" in capsys.readouterr().err
    assert (
        _simulate(
            subset_file, tmp_path / "o.nc", "--model", "physics", "--basins", "00000000", "--trim"
        )
        == 2
    )
    assert "00000000" in capsys.readouterr().err
    assert main(["simulate", "--data", str(subset_file)]) == 2  # usage error from argparse
    assert "required" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.parametrize("command", [[], ["simulate"], ["demo"], ["evaluate"], ["train"]])
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: hybridland" in text
    if command == ["simulate"]:
        for flag in ("--x64", "--trim", "--drop-incomplete", "--pet", "--basins", "--start"):
            assert flag in text


def test_chunked_run_matches_single_batch(subset_file, tmp_path, capsys):
    """Chunks of 2 basins give the single batch's answer to float32 rounding: XLA compiles
    another program for another number of columns and may vectorise it differently (on some
    CPUs and JAX versions the last bit of a few values differs), so equality is to a few ulps,
    far below any physical difference (1e-6 mm day-1)."""
    whole, chunked = tmp_path / "whole.nc", tmp_path / "chunked.nc"
    assert _simulate(subset_file, whole, "--model", "hybrid", "--trim") == 0
    assert (
        _simulate(subset_file, chunked, "--model", "hybrid", "--trim", "--chunk-basins", "2") == 0
    )
    capsys.readouterr()
    with xr.open_dataset(whole) as a, xr.open_dataset(chunked) as b:
        for name in ("runoff", "evapotranspiration", "soil_water", "water_balance_residual"):
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=4e-6, atol=1e-6)


def test_simulate_x64_in_subprocess(subset_file, tmp_path):
    out = tmp_path / "x64.nc"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridland.cli",
            "simulate",
            "--data",
            str(subset_file),
            "--model",
            "hybrid",
            "--x64",
            "--trim",
            "--swap-inverted-temperatures",
            "--pet",
            "hargreaves",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert run.returncode == 0, run.stderr
    assert "float64" in run.stdout
    with xr.open_dataset(out) as ds:
        assert ds["runoff"].dtype == np.float64
        assert ds.attrs["float_precision"] == "float64"
        # float64 closes the budget to ~1e-12 mm, far below float32 rounding.
        assert float(np.abs(water_budget_terms(ds)["cumulative_residual"]).max()) < 1e-9


def test_demo(tmp_path, capsys):
    """The README's main job, on the Fulda data shipped with spotpy (2 epochs here)."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Fulda" in printed and printed.count("test NSE") == 3 and "water residual" in printed
    for name in ("fulda_test_hydrograph.png", "fulda_test_water_budget.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with xr.open_dataset(out / "fulda_test.nc") as ds:
        assert str(ds["time"].values[0])[:10] == "1987-01-01" and ds.sizes["time"] == 731
        assert {"runoff", "runoff_physics", "runoff_hybrid", "observed_runoff",
                "water_in_transit", "fast_reservoir"} <= set(ds.data_vars)
        assert float(np.abs(water_budget_terms(ds)["cumulative_residual"]).max()) < 1e-3
    for kind in ("physics", "hybrid", "sequence_hybrid"):
        assert (out / kind / "metrics_test.csv").is_file()
        assert (out / kind / "plots" / "training_curves.png").is_file()


def test_train_configs_in_experiments_are_valid():
    from hybridland.train import load_config

    root = Path(__file__).resolve().parents[1] / "experiments" / "mopex"
    assert load_config(root / "physics.yaml").model.kind == "physics"
    for name in ("hybrid", "hybrid_half"):  # the regional sequence hybrid
        config = load_config(root / f"{name}.yaml")
        assert config.model.kind == "sequence_hybrid" and config.model.parameter_network
        assert config.model.components == 16 and config.model.routing_days == 15
    for name in ("lstm", "lstm_half"):  # its peer, by the same rules
        config = load_config(root / f"{name}.yaml")
        peer = load_config(root / f"{name.replace('lstm', 'hybrid')}.yaml")
        assert config.model.kind == "lstm"
        # the same batches, loss, schedule and early stopping; the learning rate and the
        # number of epochs each model needs to converge are its own (docs/training.md)
        own = dataclasses.replace(peer.training, learning_rate=config.training.learning_rate,
                                  epochs=config.training.epochs)
        assert config.data == peer.data and config.training == own
        assert config.training.epochs >= peer.training.epochs  # the peer is never cut short
    half, whole = (load_config(root / f"{name}.yaml") for name in ("lstm_half", "lstm"))
    assert half.training == whole.training  # the unseen-basin peer has the converged budget
    # hybrid_half is hybrid on a seeded random half of the basins, and nothing else
    half, whole = (load_config(root / f"{name}.yaml") for name in ("hybrid_half", "hybrid"))
    assert half.data.selection == "random" and half.data.n_basins == 144
    assert dataclasses.replace(half.data, n_basins=whole.data.n_basins,
                               selection=whole.data.selection) == whole.data
    assert (half.model, half.training) == (whole.model, whole.training)
    # with the two dry-climate runoff processes
    assert whole.model.groundwater_loss and whole.model.infiltration_excess
    assert {"loss_rate", "infiltration_capacity"} <= set(whole.model.trainable_params)
    regional = load_config(root / "regional.yaml")
    assert regional.model.parameter_network and regional.data.n_basins == 144
    for name, kind in (("hybrid", "sequence_hybrid"), ("hybrid_mlp", "hybrid"),
                       ("physics", "physics"), ("lstm", "lstm")):
        shift = load_config(root.parent / "climate_shift" / f"{name}.yaml")
        assert shift.model.kind == kind and shift.data.aridity_range == (0.0, 1.0)
    # the humid-trained sequence hybrid is experiments/mopex/hybrid.yaml on the humid basins
    # with the constraints that keep its laws physical outside the training climate (and a
    # budget that early stopping ends)
    hybrid = load_config(root / "hybrid.yaml")
    shift = load_config(root.parent / "climate_shift" / "hybrid.yaml")
    m = shift.model
    assert m.root_zone_prior and m.nonlinear_drainage and m.clip_attributes
    assert m.groundwater_loss and m.infiltration_excess
    assert dataclasses.replace(
        m, root_zone_prior=False, nonlinear_drainage=hybrid.model.nonlinear_drainage,
        clip_attributes=False, static_attributes=hybrid.model.static_attributes,
        trainable_params=hybrid.model.trainable_params,
    ) == hybrid.model
    assert set(m.static_attributes) == {*hybrid.model.static_attributes, "log_root_zone_storage"}
    assert set(m.trainable_params) == {*hybrid.model.trainable_params, "drainage_shape"} - {
        "theta_cap"}  # the prior sets the capacity
    assert dataclasses.replace(shift.training, epochs=hybrid.training.epochs) == hybrid.training
    assert shift.training.epochs >= hybrid.training.epochs
    shift = load_config(root.parent / "climate_shift" / "regional.yaml")
    assert shift.model.parameter_network and shift.data.aridity_range == (0.0, 1.0)


def test_train_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "data:\n  train_period: ['1995-01-01', '1996-12-31']\n"
        "  validation_period: ['1997-01-01', '1997-12-31']\n"
        "training:\n  learnin_rate: 0.1\n"
    )
    code = main(["train", "--config", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert "learnin_rate" in capsys.readouterr().err


def test_mopex_hybrid_config_trains_end_to_end_on_real_data(tmp_path, capsys, mopex_file):
    """experiments/mopex/hybrid.yaml with its model section as written (the full sequence
    hybrid), on 3 MOPEX basins and 2 short epochs: it trains, reports its closure and scores
    basins it never saw."""
    import yaml

    from tests.runs import BASINS as TRAINED

    root = Path(__file__).resolve().parents[1] / "experiments" / "mopex"
    raw = yaml.safe_load((root / "hybrid.yaml").read_text())
    raw["data"].update(basins=TRAINED, train_period=["1994-01-01", "1995-12-31"],
                       validation_period=["1996-01-01", "1996-12-31"],
                       test_period=["1997-01-01", "1997-12-31"], warmup_days=90)
    raw["training"].update(epochs=2, batches_per_epoch=2, batch_basins=3, window_days=180,
                           warmup_steps=1)
    config = tmp_path / "hybrid.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--run-dir", str(run), "--no-progress"]) == 0
    log = (run / "train.log").read_text()
    assert "sequence_hybrid model, 3 basins" in log and "water residual" in log
    assert (run / "metrics_test.csv").is_file()
    out = tmp_path / "unseen.csv"
    assert main(["evaluate", "--run-dir", str(run), "--data", str(mopex_file),
                 "--basins", "01055500,12358500", "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out, dtype={"basin": str})
    assert list(table["basin"]) == ["01055500", "12358500"]
    scored = table["n_valid"] > 0  # 01055500 has no streamflow in 1997: a NaN row, named
    assert scored.any() and np.isfinite(table["nse"][scored]).all()
    assert table["nse"][~scored].isna().all()
    assert "01055500" in capsys.readouterr().out
    # more epochs for it cannot continue it: its cosine schedule decays over its bound
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "more"),
                 "--continue-from", str(run)]) == 2
    assert "which decays over the epochs bound" in capsys.readouterr().err
    assert not (tmp_path / "more").exists()


# ---------------------------------------------------------------------------------------------
# Refusals of bad options and input: exit 2, one message naming the option, no traceback


def _refused(capsys, argv, *words, absent=()):
    """``main(argv)`` exits 2 with one message holding every one of ``words``."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    for word in absent:
        assert word not in err, (word, err)
    return err


def _calibration_file(path, basins, pet):
    """A parameter file in the layout `hybridland calibrate` writes: default parameters,
    calibrated with the PET law ``pet``."""
    import yaml

    from hybridland import PARAMETER_BOUNDS

    xr.Dataset(
        {n: ("basin", np.full(len(basins), b.default, np.float32))
         for n, b in PARAMETER_BOUNDS.items()},
        coords={"basin": basins},
        attrs={"configuration": yaml.safe_dump({"calibration": {"pet": pet}})},
    ).to_netcdf(path)
    return path


JULY = ["--start", "1948-07-01", "--end", "1948-07-31"]


def test_simulate_params_uses_and_names_the_calibrations_pet_law(subset_file, tmp_path, capsys):
    params = _calibration_file(tmp_path / "p_h.nc", BASINS[:2], "hargreaves")
    out = tmp_path / "cal.nc"
    base = ["simulate", "--data", subset_file, "--params", params, *JULY, "--out", out]
    # a --pet other than the calibration's law is refused, naming both
    _refused(capsys, [*base, "--pet", "oudin"], "--pet oudin", "'hargreaves'")
    assert not out.exists()
    assert main([str(a) for a in base]) == 0
    assert "Hargreaves PET" in capsys.readouterr().out
    physics = tmp_path / "physics.nc"  # the same default parameters, Hargreaves PET
    assert main([str(a) for a in ["simulate", "--data", subset_file, "--model", "physics",
                                  "--pet", "hargreaves", "--basins", ",".join(BASINS[:2]),
                                  *JULY, "--out", physics]]) == 0
    capsys.readouterr()
    with xr.open_dataset(out) as a, xr.open_dataset(physics) as b:
        assert a.attrs["pet"] == "Hargreaves PET"
        np.testing.assert_allclose(a["evapotranspiration"].values,
                                   b["evapotranspiration"].values, rtol=1e-6)
    # the same --pet as the calibration's law is accepted
    assert main([str(a) for a in [*base, "--pet", "hargreaves"]]) == 0
    capsys.readouterr()


def test_simulate_params_reads_the_calibration_once(subset_file, tmp_path, capsys, monkeypatch):
    """The parameter file is read once (before: three times, the basins and the law checked
    from one read, the parameters taken from another, which a file replaced in between would
    have mixed), and the basins it has are simulated."""
    from hybridland.io import _checks

    params = _calibration_file(tmp_path / "p_once.nc", BASINS[:2][::-1], "given")
    real, reads = _checks.open_netcdf, []

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_checks, "open_netcdf", counted)
    out = tmp_path / "once.nc"
    assert main([str(a) for a in ["simulate", "--data", subset_file, "--params", params,
                                  *JULY, "--out", out]]) == 0
    capsys.readouterr()
    assert reads.count(str(params)) == 1, reads
    with xr.open_dataset(out) as ds:
        assert sorted(str(b) for b in ds["basin"].values) == sorted(BASINS[:2])
    from hybridland.calibrate import load_calibrated

    calibrated = load_calibrated(params)
    assert calibrated.basins == tuple(BASINS[:2][::-1])
    one = calibrated.select([BASINS[0]])
    assert one.basins == (BASINS[0],) and one.weights.shape == (1, 1)
    assert one.params.theta_cap.shape == (1, 1)
    with pytest.raises(ValueError, match="no calibrated parameters for basin.*nowhere"):
        calibrated.select(["nowhere"])


def test_simulate_params_given_pet_refuses_another_pet(subset_file, tmp_path, capsys):
    params = _calibration_file(tmp_path / "p_g.nc", BASINS[:2], "given")
    _refused(capsys, ["simulate", "--data", subset_file, "--params", params, *JULY,
                      "--pet", "hargreaves", "--out", tmp_path / "o.nc"],
             "--pet hargreaves", "'given'", "calibrated")


def test_simulate_run_dir_refuses_the_options_it_ignores(subset_file, tmp_path, capsys):
    err = _refused(capsys, ["simulate", "--run-dir", tmp_path, "--data", subset_file,
                            "--pet", "oudin", "--x64", "--strict", "--trim", "--t-tolerance",
                            "0.5", "--seed", "7", "--chunk-basins", "2", "--basins", BASINS[0],
                            *JULY, "--compression", "3", "--out", tmp_path / "o.nc"],
                   "--pet, --x64, --strict, --trim, --t-tolerance, --seed, --chunk-basins "
                   "would be ignored")
    assert "--swap-inverted-temperatures" not in err.split("would be ignored")[0]
    _refused(capsys, ["simulate", "--run-dir", tmp_path, "--data", subset_file,
                      "--swap-inverted-temperatures", "--out", tmp_path / "o.nc"],
             "--swap-inverted-temperatures would be ignored")
    # --seed 0 (the default's value), given explicitly, is still refused
    _refused(capsys, ["simulate", "--run-dir", tmp_path, "--data", subset_file, "--seed", "0",
                      "--out", tmp_path / "o.nc"], "--seed would be ignored")


def test_simulate_seed_without_networks_is_refused(subset_file, tmp_path, capsys):
    # --seed was ignored without a word for the physics bucket and a calibration's parameters
    params = _calibration_file(tmp_path / "p_g.nc", BASINS[:2], "given")
    for source in (["--model", "physics"], ["--params", params]):
        _refused(capsys, ["simulate", "--data", subset_file, *source, *JULY, "--seed", "3",
                          "--out", tmp_path / "o.nc"], "--seed", "no networks", "leave --seed out")
        assert not (tmp_path / "o.nc").exists()


def test_an_output_replaces_only_an_earlier_output(subset_file, tmp_path, capsys):
    # simulate/calibrate --out replaced whatever file was there: a user's notes, another
    # NetCDF; only an earlier output of hybridland (its 'source' names it) is replaced now
    notes, foreign, out = tmp_path / "notes.txt", tmp_path / "other.nc", tmp_path / "o.nc"
    notes.write_text("mine")
    xr.Dataset({"x": ("t", [1.0])}, attrs={"source": "a field campaign"}).to_netcdf(foreign)
    kept = foreign.read_bytes()
    run = ["simulate", "--data", subset_file, "--model", "physics", *JULY, "--trim"]
    for target in (notes, foreign):
        _refused(capsys, [*run, "--out", target], str(target), "not an output of hybridland",
                 "remove it first")
    assert notes.read_text() == "mine" and foreign.read_bytes() == kept
    calibration = tmp_path / "c.yaml"
    calibration.write_text(f"data:\n  path: {subset_file}\n"
                           "  train_period: ['1948-03-01', '1948-08-31']\n"
                           "  validation_period: ['1948-09-01', '1948-12-31']\n")
    _refused(capsys, ["calibrate", "--config", calibration, "--out", foreign],
             "not an output of hybridland")
    assert foreign.read_bytes() == kept
    assert main([str(a) for a in [*run, "--out", out]]) == 0
    first = out.stat().st_mtime_ns
    assert main([str(a) for a in [*run, "--out", out]]) == 0  # an earlier output: replaced
    assert out.stat().st_mtime_ns != first
    capsys.readouterr()


@pytest.mark.parametrize("option, value, words", [
    ("--t-tolerance", "-5", ("--t-tolerance", ">= 0")),
    ("--t-tolerance", "nan", ("--t-tolerance", "finite")),
    ("--compression", "0", ("--compression", "1", "9")),
    ("--compression", "10", ("--compression", "1", "9")),
    ("--compression", "-3", ("--compression", "1", "9")),
    ("--seed", "99999999999999999999", ("--seed", "9223372036854775807")),
])
def test_simulate_bad_numbers_are_refused_at_parsing(option, value, words, subset_file,
                                                      tmp_path, capsys):
    out = tmp_path / "o.nc"
    _refused(capsys, ["simulate", "--data", subset_file, "--model", "hybrid", *JULY,
                      "--basins", BASINS[0], option, value, "--out", out], *words)
    assert not out.exists()


@pytest.mark.parametrize("below", [False, True])
def test_evaluate_refuses_a_plots_file_before_any_work(below, tmp_path, capsys):
    # a folder below a file (notes.txt/figures) was found only after the evaluation
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    out = tmp_path / "ev.csv"
    plots = notes / "figures" if below else notes
    _refused(capsys, ["evaluate", "--run-dir", tmp_path / "run", "--out", out, "--plots", plots],
             f"--plots {plots}", "existing file, not a folder")
    assert not out.exists() and notes.read_text() == "mine"


def test_evaluate_period_and_aridity_errors_name_the_options(tmp_path, capsys, mopex_file):
    base = ["evaluate", "--run-dir", tmp_path / "run", "--out", tmp_path / "ev.csv"]
    _refused(capsys, [*base, "--period", "1982-12-01:1982-07-01"], "--period", "before it starts",
             absent=("data.train_period",))
    _refused(capsys, ["simulate", "--run-dir", tmp_path / "run", "--data", tmp_path / "d.nc",
                      "--start", "1982-12-01", "--end", "1982-07-01", "--out", tmp_path / "o.nc"],
             "--start 1982-12-01 --end 1982-07-01", "before it starts")
    # without --run-dir, '1995' was read as 1995-01-01 (as --end too) and '...T12:00' as the
    # day after, where --run-dir refused both
    for flag, bad in (("--end", "1995"), ("--start", "1995-01-01T12:00")):
        _refused(capsys, ["simulate", "--data", mopex_file, "--model", "physics", flag, bad,
                          "--out", tmp_path / "o.nc"], f"{flag} {bad!r} is not an ISO date")
    assert not (tmp_path / "o.nc").exists()
    # a count that is not an integer: the message named an internal function
    for bad in ("x", "1.5"):
        err = _refused(capsys, ["train", "--config", tmp_path / "c.yaml", "--max-epochs", bad],
                       "--max-epochs", f"must be a positive integer, got {bad!r}")
        assert "_positive_int" not in err
    # forms date.fromisoformat takes but the period readers do not (a raw numpy message)
    for bad in ("19821201:19830101", "1982-W48-1:1983-01-01"):
        _refused(capsys, [*base, "--period", bad], "YYYY-MM-DD")
    # an empty list selected the default basins without a word
    _refused(capsys, [*base, "--basins", " , "], "--basins", "at least one basin id")
    for bad in ("5:1", "-1:2", "nan:1"):
        _refused(capsys, [*base, f"--aridity={bad}"], "--aridity", "0 <= LOW < HIGH",
                 absent=("data.aridity_range",))
    _refused(capsys, [*base, "--aridity", "0:1", "--basins", "01055500"], "--basins",
             "--aridity", absent=("data.aridity_range",))


@pytest.mark.parametrize("command", ["train", "calibrate", "study"])
def test_impossible_yaml_date_names_the_file_and_key(command, tmp_path, capsys):
    # an unquoted day that does not exist failed inside the YAML parser: a traceback (study)
    # or 'day is out of range for month' with neither file nor key (train, calibrate)
    config = tmp_path / f"{command}.yaml"
    study = Path(__file__).parents[1] / "experiments" / "climate_shift" / "study.yaml"
    if command == "study":
        text = study.read_text().replace('train_period: ["1960-01-01"',
                                          "train_period: [1960-02-30")
        assert "[1960-02-30" in text
        config.write_text(text)
        day = "1960-02-30"
    else:
        config.write_text("data:\n  train_period: [1981-02-29, 1981-12-31]\n"
                          "  validation_period: ['1982-01-01', '1982-06-30']\n")
        day = "1981-02-29"
    argv = {"train": ["train", "--config", config, "--run-dir", tmp_path / "run"],
            "calibrate": ["calibrate", "--config", config, "--out", tmp_path / "p.nc"],
            "study": ["study", "climate-shift", "--config", config, "--out", tmp_path / "s"]}
    _refused(capsys, argv[command], str(config), "data.train_period", day, "not a valid date")


@pytest.mark.parametrize("command", ["train", "calibrate", "study"])
def test_a_key_given_twice_is_refused(command, tmp_path, capsys):
    # plain YAML keeps the last of two equal keys: the setting a user reads first was not used
    config = tmp_path / f"{command}.yaml"
    if command == "study":
        study = Path(__file__).parents[1] / "experiments" / "climate_shift" / "study.yaml"
        text = study.read_text().replace("  seed: 0\n", "  seed: 0\n  arid_training_share: 0.3\n", 1)
        assert text.count("arid_training_share") == 2
        config.write_text(text)
        key = "arid_training_share"
    else:
        config.write_text("data:\n  warmup_days: 30\n  n_basins: 2\n  warmup_days: 365\n")
        key = "warmup_days"
    argv = {"train": ["train", "--config", config, "--run-dir", tmp_path / "run"],
            "calibrate": ["calibrate", "--config", config, "--out", tmp_path / "p.nc"],
            "study": ["study", "climate-shift", "--config", config, "--out", tmp_path / "s"]}
    _refused(capsys, argv[command], str(config), repr(key), "twice", "keep one of them")
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", ["train", "calibrate", "study"])
@pytest.mark.parametrize("kind", ["binary", "folder"])
def test_a_config_that_is_no_yaml_text_file_is_named(command, kind, tmp_path, capsys):
    # a binary file given as --config ended in "'utf-8' codec can't decode byte 0xff", naming
    # neither the file nor the fix; a folder, in study, in a traceback
    config = tmp_path / f"{command}.yaml"
    if kind == "binary":
        config.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe\x00data")
        words = ("not a YAML text file", "not a binary file")
    else:
        config.mkdir()
        words = ("is a folder", "give a YAML file")
    argv = {"train": ["train", "--config", config, "--run-dir", tmp_path / "run"],
            "calibrate": ["calibrate", "--config", config, "--out", tmp_path / "p.nc"],
            "study": ["study", "climate-shift", "--config", config, "--out", tmp_path / "s"]}
    _refused(capsys, argv[command], str(config), *words)
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", ["train", "demo", "study"])
@pytest.mark.parametrize("below", [False, True])
def test_an_output_folder_that_is_a_file_is_refused_first(command, below, tmp_path, capsys):
    # demo and study said "File exists (afile)" / "Not a directory (afile/.jax_cache)",
    # naming neither the option nor the fix; the user's file is kept
    afile = tmp_path / "afile"
    afile.write_text("mine")
    folder = afile / "sub" if below else afile
    study = Path(__file__).parents[1] / "experiments" / "climate_shift" / "study.yaml"
    train = Path(__file__).parents[1] / "experiments" / "mopex" / "hybrid.yaml"
    argv, option = {
        "train": (["train", "--config", train, "--run-dir", folder], "--run-dir"),
        "demo": (["demo", "--out", folder, "--epochs", "1", "--no-progress"], "--out"),
        "study": (["study", "climate-shift", "--config", study, "--out", folder, "--quick"],
                  "--out"),
    }[command]
    _refused(capsys, argv, f"{option} {folder}", "existing file, not a folder",
             f"Give a new or existing folder as {option}")
    assert afile.read_text() == "mine"


def test_demo_into_a_foreign_folder_exits_2(tmp_path, capsys):
    (tmp_path / "demo" / "physics").mkdir(parents=True)
    (tmp_path / "demo" / "physics" / "notes.txt").write_text("mine")
    _refused(capsys, ["demo", "--out", tmp_path / "demo", "--epochs", "1", "--no-progress"],
             "physics", "notes.txt")
    assert (tmp_path / "demo" / "physics" / "notes.txt").read_text() == "mine"


def test_simulate_input_file_messages(subset_file, tmp_path, capsys):
    folder = tmp_path / "adir.nc"
    folder.mkdir()
    out = ["--out", tmp_path / "o.nc"]
    _refused(capsys, ["simulate", "--data", folder, "--model", "physics", *out],
             "--data", "is a folder", absent=("does not exist",))
    _refused(capsys, ["simulate", "--data", subset_file, "--params", tmp_path / "nope.nc", *out],
             "Parameter file", "nope.nc", "does not exist", "hybridland calibrate",
             absent=("Forcing file",))
    _refused(capsys, ["simulate", "--data", subset_file, "--params", folder, *out],
             "Parameter file", "is a folder", absent=("Forcing file",))
    damaged = tmp_path / "damaged.nc"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 60)  # a truncated NetCDF-4
    _refused(capsys, ["simulate", "--data", subset_file, "--params", damaged, *out],
             "damaged.nc", "layout hybridland calibrate writes", absent=("in written by",))
