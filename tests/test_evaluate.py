"""Evaluating trained runs: the run report, ``evaluate_run``, ``hybridland evaluate`` and
``hybridland simulate --run-dir`` on data the run has seen and on a MOPEX-layout file it has not.
"""

import dataclasses
import csv
import json
import warnings

import equinox as eqx
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import metrics, simulate
from hybridland.cli import main
from hybridland.io import ForcingDataError, water_budget_terms
from hybridland.io._report import DataAdjustmentWarning
from hybridland.train import (ConfigError, evaluate_ensemble, evaluate_run, load_data,
                              load_run)
from hybridland.train.evaluate import budget_residual
from runs import BASINS, mopex_subset, tiny, trained

TEST = ("1998-01-01", "1998-12-31")
UNSEEN = ["10312000", "11025500", "01055500"]  # the last has no Q in 1998
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory, mopex_file):
    config = tiny(
        "hybrid", static_attributes=["aridity", "mean_precip"],
        trainable_params=["baseflow_rate", "runoff_shape"],
    ).replace("data", test_period=TEST)
    return trained(tmp_path_factory, config, "run")


@pytest.fixture(scope="module")
def unseen_file(tmp_path_factory, mopex_file):
    """Three MOPEX basins the run has not seen, 1997-1998, in the MOPEX layout."""
    path = tmp_path_factory.mktemp("data") / "unseen.nc"
    return mopex_subset(mopex_file, path, UNSEEN, "1997-01-01", "1998-12-31")


def quiet_evaluate(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return evaluate_run(*args, progress=False, **kwargs)


def test_finished_run_writes_tables_and_figures(run):
    _, run_dir, result = run
    for name in ("basins.csv", "metrics_validation.csv", "metrics_test.csv"):
        assert (run_dir / name).is_file(), name
    for name in ("training_curves", "hydrographs_validation", "water_budget_validation",
                 "hydrographs_test", "water_budget_test", "metric_cdf"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:8] == PNG, name
    table = pd.read_csv(run_dir / "metrics_test.csv", dtype={"basin": str})
    assert list(table["basin"]) == BASINS
    assert (table["parameters"] == "calibrated").all()
    assert (table["max_abs_cumulative_residual_mm"] < 1e-3).all()
    basins = pd.read_csv(run_dir / "basins.csv", dtype={"basin": str}).set_index("basin")
    np.testing.assert_allclose(basins["baseflow_rate"], np.asarray(result.params.baseflow_rate),
                               rtol=1e-6)


def test_report_validation_matches_the_training_loop(run):
    _, run_dir, result = run
    table = pd.read_csv(run_dir / "metrics_validation.csv")
    best = result.history[result.best_epoch]
    np.testing.assert_allclose(table["nse"].median(), best["val_median_nse"], rtol=1e-4)


def test_evaluation_equals_a_direct_simulation(run):
    config, run_dir, _ = run
    evaluation = quiet_evaluate(run_dir)  # default: the run's basins and test period
    assert evaluation.period == TEST
    model, params, norm, loaded = load_run(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        data = load_data(loaded, norm)
    warm = config.data.warmup_days
    start, length = data.period_window("test", warm)
    forcing = data.forcing(np.arange(3), np.full(3, start), length)
    runoff = np.asarray(simulate(model, forcing, params).fluxes.runoff)[:, warm:]
    np.testing.assert_allclose(evaluation.simulation.fluxes.runoff, runoff, rtol=1e-5, atol=1e-6)
    first, last = data.periods["test"]
    observed = data.obs[:, first : last + 1]
    np.testing.assert_allclose(evaluation.table["nse"], metrics.nse(observed, runoff), rtol=1e-4)
    assert evaluation.time[0] == pd.Timestamp(TEST[0]) and len(evaluation.time) == 365


def test_evaluation_dataset_closes_from_the_period_start(run):
    """Cutting the warm-up keeps the file's own budget exact: its initial stores are those at
    the end of the warm-up and its running residual restarts at zero."""
    _, run_dir, _ = run
    ds = quiet_evaluate(run_dir).dataset()
    assert float(np.abs(water_budget_terms(ds)["cumulative_residual"]).max()) < 1e-3
    assert float(np.abs(ds["water_balance_residual"].isel(time=0)).max()) < 1e-4
    assert ds["observed_runoff"].attrs["standard_name"] == "runoff_flux"


def test_evaluate_a_file_the_run_has_never_seen(run, unseen_file):
    _, run_dir, result = run
    evaluation = quiet_evaluate(run_dir, str(unseen_file), period=TEST)
    table = evaluation.table
    assert list(table["basin"]) == UNSEEN
    assert (table["parameters"] == "regional median").all()
    scored = table.iloc[:2]
    assert np.isfinite(scored["nse"]).all() and np.isfinite(scored["kge"]).all()
    assert (scored["n_valid"] == 365).all()
    # No observation at all: no score (never a made-up number), but still a closed budget.
    assert np.isnan(table["nse"].iloc[2]) and table["n_valid"].iloc[2] == 0
    assert (table["max_abs_cumulative_residual_mm"] < 1e-3).all()
    # Unseen basins run with the median of the calibrated parameters.
    trained = np.asarray(result.params.baseflow_rate)
    ds = evaluation.dataset()
    assert ds.sizes["basin"] == 3
    basins = pd.read_csv(run_dir / "basins.csv")
    np.testing.assert_allclose(np.median(basins["baseflow_rate"]), np.median(trained), rtol=1e-6)


def test_basins_the_run_did_not_train_on_get_attributes_of_its_training_period(
        run, mopex_file, unseen_file):
    """A basin the run never saw got climate attributes from the evaluated days (the test
    years) while the run's own basins had them from its training period: the arid basins of the
    climate-shift study were fed test-year climate. Now both come from the training period
    where the data cover it; otherwise the evaluated days, and the evaluation says so."""
    from hybridland.train.data import LOADERS, static_attributes

    _, run_dir, _ = run
    ev = quiet_evaluate(run_dir, str(mopex_file), basins=UNSEEN[:2], period=TEST)
    assert not any("evaluated days" in a for a in ev.adjustments)
    cfg = ev.config.data
    train_cfg = dataclasses.replace(cfg, path=str(mopex_file), basins=tuple(UNSEEN[:2]),
                                    n_basins=None, aridity_range=None, exclude_basins=None)
    source = LOADERS[cfg.loader](train_cfg, 0, exclude_known=False)
    days = source.time.slice_indexer(*cfg.train_period)
    expected = static_attributes(ev.config.model.static_attributes, source, days)
    np.testing.assert_allclose(ev.data.raw_attributes, expected, rtol=1e-6)
    # the test year alone gives other values: what the basins were fed before
    test_days = source.time.slice_indexer(*TEST)
    assert not np.allclose(static_attributes(ev.config.model.static_attributes, source,
                                             test_days), expected, rtol=1e-3)
    # a file without the training period: the evaluated days, named in the adjustments
    ev = quiet_evaluate(run_dir, str(unseen_file), period=TEST)
    assert any(f"static attributes of {', '.join(UNSEEN)} (basins the run did not train on) "
               "are from the evaluated days" in a for a in ev.adjustments)


def test_cli_evaluate_on_an_unseen_file(run, unseen_file, tmp_path, capsys):
    _, run_dir, _ = run
    out = tmp_path / "metrics.csv"
    code = main(["evaluate", "--run-dir", str(run_dir), "--data", str(unseen_file),
                 "--period", f"{TEST[0]}:{TEST[1]}", "--out", str(out),
                 "--plots", str(tmp_path / "plots")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "median NSE" in printed and "regional median" in printed
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["basin"] for r in rows] == UNSEEN
    for key in ("nse", "kge", "r", "alpha", "beta", "max_abs_cumulative_residual_mm"):
        assert np.isfinite(float(rows[0][key])), key
    assert (tmp_path / "plots" / "hydrographs_metrics.png").read_bytes()[:8] == PNG
    # an earlier metric table is replaced; any other file is kept (it was overwritten)
    first = out.stat().st_mtime_ns
    again = ["evaluate", "--run-dir", str(run_dir), "--data", str(unseen_file), "--period",
             f"{TEST[0]}:{TEST[1]}"]
    assert main([*again, "--out", str(out)]) == 0 and out.stat().st_mtime_ns != first
    mine = tmp_path / "keep.csv"
    mine.write_text("site,value\na,1\n")
    capsys.readouterr()
    assert main([*again, "--out", str(mine)]) == 2
    assert "not a metric table" in capsys.readouterr().err
    assert mine.read_text() == "site,value\na,1\n"
    # a figure of the user's at a figure's name is not replaced either
    theirs = tmp_path / "plots" / "hydrographs_again.png"
    theirs.write_bytes(b"my own figure")
    assert main([*again, "--out", str(tmp_path / "again.csv"), "--plots",
                 str(tmp_path / "plots")]) == 2
    assert "not a figure of hybridland" in capsys.readouterr().err
    assert theirs.read_bytes() == b"my own figure" and not (tmp_path / "again.csv").exists()


def test_cli_simulate_with_a_trained_run(run, unseen_file, tmp_path, capsys):
    _, run_dir, _ = run
    out = tmp_path / "sim.nc"
    code = main(["simulate", "--run-dir", str(run_dir), "--data", str(unseen_file),
                 "--start", TEST[0], "--end", TEST[1], "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with xr.open_dataset(out) as ds:
        assert list(ds["basin"].values) == UNSEEN
        assert str(ds["time"].values[0])[:10] == TEST[0]
        assert {"runoff", "evapotranspiration", "observed_runoff"} <= set(ds.data_vars)
        assert float(np.abs(water_budget_terms(ds)["cumulative_residual"]).max()) < 1e-3
    # without --data: the run's own data, as `evaluate --run-dir` reads it (--data was
    # required, so a run whose data file has no other copy could not be simulated)
    own = tmp_path / "own.nc"
    code = main(["simulate", "--run-dir", str(run_dir), "--out", str(own)])
    assert code == 0, capsys.readouterr().err
    with xr.open_dataset(own) as ds:
        assert list(ds["basin"].values) == list(BASINS)
    # ... which only a trained run has
    assert main(["simulate", "--model", "physics", "--out", str(tmp_path / "x.nc")]) == 2
    assert "Give --data FILE.nc" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--period", "1998-01-01"], "START:END"),
        (["--period", "2010-01-01:2010-12-31"], "not inside the data"),
        (["--period", "1997-01-01:1997-12-31"], "warm-up"),  # no warm-up room in the file
    ],
)
def test_cli_evaluate_bad_input_exits_2(run, unseen_file, tmp_path, capsys, args, message):
    _, run_dir, _ = run
    code = main(["evaluate", "--run-dir", str(run_dir), "--data", str(unseen_file),
                 "--out", str(tmp_path / "m.csv"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_evaluate_missing_run(tmp_path, capsys):
    code = main(["evaluate", "--run-dir", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "m.csv")])
    assert code == 2
    assert "missing" in capsys.readouterr().err


def test_undefined_static_attribute_names_the_basins(mopex_file):
    with xr.open_dataset(mopex_file) as ds:
        no_lat = [str(b) for b in ds["basin"].values[np.isnan(ds["lat"].values)]]
    assert no_lat, "the shared MOPEX file has basins without coordinates"
    config = tiny("hybrid", static_attributes=["lat"]).replace(
        "data", basins=(BASINS[0], no_lat[0]), drop_incomplete=True
    )
    with pytest.raises(ForcingDataError, match=f"'lat'.*{no_lat[0]}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            load_data(config)


def test_run_json_lists_the_trained_basins(run):
    _, run_dir, _ = run
    assert json.loads((run_dir / "run.json").read_text())["basins"] == BASINS


def _file_aridity(path, period):
    with xr.open_dataset(path) as ds, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # basins without PE: NaN
        part = ds.sel(time=slice(*period))
        aridity = np.nanmean(part["PE"].values, 1) / np.nanmean(part["P"].values, 1)
        return dict(zip([str(b) for b in ds["basin"].values], aridity))


def test_training_basins_by_aridity(mopex_file):
    config = tiny("hybrid").replace(
        "data", basins=None, n_basins=3, aridity_range=(1.5, 100.0), drop_incomplete=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        data = load_data(config)
    aridity = _file_aridity(mopex_file, config.data.train_period)
    assert data.n_basins == 3 and all(aridity[b] >= 1.5 for b in data.basins)
    with pytest.raises(ConfigError, match="aridity_range"):
        tiny("hybrid").replace("data", aridity_range=(0.0, 1.0))  # basins given as well
    with pytest.raises(ConfigError, match="aridity_range"):
        tiny("hybrid").replace("data", basins=None, aridity_range=(2.0, 1.0))


def test_aridity_selection_does_not_depend_on_the_files_dimension_order(mopex_file, tmp_path):
    """The same basins are selected by aridity whether the file stores its series as (basin,
    time) or as (time, basin): before, the second gave one 'aridity' per day, paired with the
    basin ids in order, and the selection was silently wrong."""
    days = ("1994-10-01", "1997-12-31")
    plain = mopex_subset(mopex_file, tmp_path / "plain.nc", BASINS + UNSEEN[:2], *days)
    with xr.open_dataset(plain) as ds:
        flipped = ds.load().transpose("time", "basin")
    assert flipped["P"].dims == ("time", "basin")
    flipped.to_netcdf(tmp_path / "flipped.nc")
    aridity = _file_aridity(plain, ("1995-01-01", "1996-12-31"))
    humid = [b for b in BASINS + UNSEEN[:2] if aridity[b] < 1.0]
    assert 0 < len(humid) < len(aridity), aridity  # the selection is not trivial
    for name in ("plain.nc", "flipped.nc"):
        config = tiny("hybrid").replace("data", basins=None, aridity_range=(0.0, 1.0),
                                        path=str(tmp_path / name), drop_incomplete=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            assert sorted(load_data(config).basins) == sorted(humid), name


def test_evaluate_basins_by_aridity(run, unseen_file, tmp_path, capsys):
    _, run_dir, _ = run
    aridity = _file_aridity(unseen_file, TEST)
    humid = [b for b in UNSEEN if aridity[b] < 1.0]
    assert 0 < len(humid) < len(UNSEEN), aridity  # the split is not trivial
    evaluation = quiet_evaluate(run_dir, str(unseen_file), period=TEST, aridity_range=(0, 1))
    assert list(evaluation.table["basin"]) == humid
    out = tmp_path / "humid.csv"
    code = main(["evaluate", "--run-dir", str(run_dir), "--data", str(unseen_file), "--period",
                 f"{TEST[0]}:{TEST[1]}", "--aridity", "0:1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert pd.read_csv(out, dtype={"basin": str})["basin"].tolist() == humid
    assert main(["evaluate", "--run-dir", str(run_dir), "--aridity", "dry", "--out",
                 str(out)]) == 2
    assert "LOW:HIGH" in capsys.readouterr().err


def test_unseen_leaves_out_the_basins_the_run_trained_on(run, tmp_path, mopex_file, capsys):
    _, run_dir, _ = run
    both = mopex_subset(mopex_file, tmp_path / "both.nc", BASINS + UNSEEN[:2], "1997-01-01",
                        "1998-12-31")
    evaluation = quiet_evaluate(run_dir, str(both), period=TEST, unseen=True)
    assert list(evaluation.table["basin"]) == UNSEEN[:2]
    assert (evaluation.table["parameters"] == "regional median").all()
    out = tmp_path / "unseen.csv"
    code = main(["evaluate", "--run-dir", str(run_dir), "--data", str(both), "--unseen",
                 "--period", f"{TEST[0]}:{TEST[1]}", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert list(pd.read_csv(out, dtype={"basin": str})["basin"]) == UNSEEN[:2]
    # without unseen: every basin of the file
    everything = quiet_evaluate(run_dir, str(both), period=TEST)
    assert sorted(everything.table["basin"]) == sorted(BASINS + UNSEEN[:2])
    # a file without the run's basins: nothing to leave out, every basin scored
    others = mopex_subset(mopex_file, tmp_path / "others.nc", UNSEEN[:2], "1997-01-01",
                          "1998-12-31")
    alone = quiet_evaluate(run_dir, str(others), period=TEST, unseen=True)
    assert list(alone.table["basin"]) == UNSEEN[:2]
    # a trained basin named with unseen was dropped without a word
    with pytest.raises(ValueError, match=rf"{BASINS[0]} were trained.*--unseen"):
        quiet_evaluate(run_dir, str(both), period=TEST, unseen=True,
                       basins=[UNSEEN[0], BASINS[0]])


def test_a_basin_to_exclude_that_the_file_lacks_is_refused():
    # a typo (a lost leading zero) left the basin meant to be held out in training
    from hybridland.train import load_data

    config = tiny().replace("data", exclude_basins=(BASINS[2].lstrip("0"),))
    with pytest.raises(ValueError, match=rf"data\.exclude_basins names {BASINS[2].lstrip('0')}"):
        load_data(config)


# ---------------------------------------------------------------------------------------------
# Ensembles: the mean of several runs


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory, run):
    config, _, _ = run
    return trained(tmp_path_factory, config.replace("run", seed=4), "other_seed")


def quiet_ensemble(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return evaluate_ensemble(*args, progress=False, **kwargs)


def test_an_ensemble_is_the_mean_of_its_members_and_still_closes(run, other_seed):
    members = [quiet_evaluate(run[1]), quiet_evaluate(other_seed[1])]
    assert not np.allclose(members[0].runoff, members[1].runoff)  # two different trainings
    ensemble = quiet_ensemble([run[1], other_seed[1]])
    mean = (members[0].runoff + members[1].runoff) / 2
    np.testing.assert_allclose(ensemble.runoff, mean, rtol=1e-6)
    np.testing.assert_allclose(ensemble.table["nse"], metrics.nse(members[0].observed, mean),
                               rtol=1e-5)
    np.testing.assert_allclose(ensemble.table["mean_precip_mm_day"],
                               members[0].table["mean_precip_mm_day"], rtol=1e-6)
    # the budget of the mean, recomputed from its own stores and fluxes, closes
    assert np.abs(budget_residual(ensemble.simulation)).max() < 1e-3
    ds = ensemble.dataset()
    assert float(np.abs(water_budget_terms(ds)["cumulative_residual"]).max()) < 1e-3
    assert (ensemble.table["max_abs_cumulative_residual_mm"] < 1e-3).all()
    assert ds.attrs["ensemble_members"] == f"{run[1]}, {other_seed[1]}"


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory, mopex_file):
    """An LSTM on the same basins, without a test period (its default days: validation)."""
    return trained(tmp_path_factory, tiny("lstm"), "lstm")


def test_budget_residual_recomputes_a_runs_own_residual(run):
    sim = quiet_evaluate(run[1]).simulation
    recomputed = budget_residual(sim)
    np.testing.assert_allclose(recomputed, sim.fluxes.water_residual, atol=2e-4)
    # it sees a store that moved without a flux
    moved = eqx.tree_at(lambda s: s.states.soil, sim, np.asarray(sim.states.soil) + 1.0)
    assert np.abs(budget_residual(moved)[:, 0] - recomputed[:, 0] - 1.0).max() < 1e-4


def test_an_ensemble_with_an_lstm_has_no_joint_budget(run, lstm_run, tmp_path, capsys):
    for order in ([run[1], lstm_run[1]], [lstm_run[1], run[1]]):
        ensemble = quiet_ensemble(order, period=TEST)
        assert ensemble.simulation is None
        assert ensemble.table["max_abs_cumulative_residual_mm"].isna().all()
        ds = ensemble.dataset()  # runoff only, said to be a mean
        assert list(ds.data_vars) == ["runoff", "observed_runoff"]
        assert ds["runoff"].attrs["cell_methods"] == "realization: mean"
        assert "LSTM" not in ds["runoff"].attrs["long_name"]
        assert ds.attrs["model"].startswith("mean of 2 runs, without a joint water balance")
        assert ds.attrs["ensemble_members"] == ", ".join(map(str, order))
    members = [quiet_evaluate(d, period=TEST) for d in (run[1], lstm_run[1])]
    np.testing.assert_allclose(ensemble.runoff, (members[0].runoff + members[1].runoff) / 2,
                               rtol=1e-6)
    plots = tmp_path / "plots"
    assert main(["evaluate", "--run-dir", str(run[1]), str(lstm_run[1]), "--period",
                 f"{TEST[0]}:{TEST[1]}", "--out", str(tmp_path / "m.csv"), "--plots",
                 str(plots)]) == 0
    said = capsys.readouterr().out
    assert "a member of the ensemble (an LSTM) has no water balance" in said
    assert list(plots.glob("*.png"))


def test_ensemble_members_must_share_basins_and_days(run, other_seed, lstm_run, tmp_path,
                                                     capsys):
    with pytest.raises(ValueError, match="at least two"):
        evaluate_ensemble([run[1]])
    with pytest.raises(ValueError, match="twice"):
        evaluate_ensemble([run[1], run[1]])
    with pytest.raises(ValueError, match=f"member {lstm_run[1]} evaluates other basins or days"):
        quiet_ensemble([run[1], lstm_run[1]])  # each run's own default days differ
    out = tmp_path / "m.csv"
    assert main(["evaluate", "--run-dir", str(run[1]), str(other_seed[1]), "--out",
                 str(out)]) == 0
    said = capsys.readouterr().out
    assert f"mean of 2 runs ({run[1]}, {other_seed[1]})" in said and "closure  max" in said
    table = pd.read_csv(out, dtype={"basin": str})
    np.testing.assert_allclose(table["nse"], quiet_ensemble([run[1], other_seed[1]]).table["nse"],
                               rtol=1e-5)
    assert main(["evaluate", "--run-dir", str(run[1]), str(lstm_run[1]), "--out",
                 str(out)]) == 2
    assert "evaluates other basins or days" in capsys.readouterr().err


def test_run_outputs_lists_every_file_a_training_writes(run):
    # what `evaluate --out/--plots` must never replace (see cli._run_inputs)
    from hybridland.train.loop import run_outputs

    _, run_dir, _ = run
    listed = set(run_outputs(run_dir))
    written = {p for p in run_dir.rglob("*") if p.is_file()}
    assert written - listed == set()
    for name in ("metrics_test.csv", "metrics_validation.csv", "plots/hydrographs_test.png",
                 "plots/water_budget_test.png", "plots/metric_cdf.png"):
        assert run_dir / name in listed, name


def test_cli_evaluate_names_a_damaged_config_yaml(run, tmp_path, capsys):
    import shutil

    _, run_dir, _ = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "config.yaml").write_text("data: [\n")
    assert main(["evaluate", "--run-dir", str(copy), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{copy / 'config.yaml'} is damaged" in err and "Restore it" in err
    assert "Traceback" not in err and not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("period, words", [
    (("2000-12-31", "2000-01-01"), "period 2000-12-31 .. 2000-01-01 ends before it starts"),
    (("2000-01-01",), "period must be two days"),
    (("2000-02-30", "2000-03-31"), "period must be two days"),
])
def test_a_bad_evaluation_period_is_named_as_the_period(run, period, words):
    # it was refused as "'data.train_period' ends ... before it starts", a setting the caller
    # never gave
    _, run_dir, _ = run
    with pytest.raises(ValueError, match=words) as err:
        evaluate_run(run_dir, period=period, progress=False)
    assert "train_period" not in str(err.value)
