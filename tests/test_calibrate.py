"""Per-basin calibration (``hybridland.calibrate``): twin experiments, identifiability, config,
command line.

Twin experiments: ``synthetic_twin`` runs the physical bucket with known parameters on three
humid, warm columns (aridity 0.5-0.8, latitude 30-33 degN: almost no snow) for three years in
float64; the calibration simulates the first year as warm-up from half-full soil and fits the
ten ``DEFAULT_PARAMS`` on the last two. Tolerances are on the identifiable parameters only:

| parameter | noise-free | 10 % noise |
|---|---|---|
| soil_drainage, baseflow_rate | 10 % relative | 15 % relative |
| soil_capacity = 1000 (theta_cap - theta_wp) root_depth | 5 % relative | 20 % relative |
| pet_coefficient | 0.25 | 0.25 |
| runoff_shape | 0.25 | 0.3 |
| et_threshold | 0.12 | 0.2 |

(2 starts x 600 adam steps, learning rate 0.2 -> 0.005.) ``pet_coefficient`` and
``et_threshold`` are only weakly identifiable: both scale the ET of a drying soil, and two years
leave errors of up to 0.18 and 0.13 that the other parameters compensate (NSE > 0.9997).

Not identifiable, and tested as such: the snow parameters (``ddf``, ``t_melt``) of a warm
column (latitude 15-20 degN), whose runoff barely depends on them (at 30-33 degN a few cold days
already make them matter: NSE 0.996 between their extremes in one column), and ``theta_cap``, ``theta_wp`` and ``root_depth``
one by one: the model sees them only through the capacity product, so two sets with one
capacity give the same run to rounding.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from hybridland import Params, metrics, simulate
from hybridland.calibrate import (
    DEFAULT_PARAMS,
    ConfigError,
    calibrate_columns,
    calibration_config_from_dict,
    load_calibration_config,
)
from hybridland.cli import EXIT_BAD_INPUT, main
from hybridland.io import target, to_forcing
from hybridland.synthetic import synthetic_twin, twin_truth
from hybridland.column import build_model

WARMUP = 365
TRUTH = {
    "pet_coefficient": [0.8, 1.0, 1.2],
    "runoff_shape": [1.5, 2.5, 3.0],
    "soil_drainage": [0.01, 0.03, 0.06],
    "baseflow_rate": [0.02, 0.05, 0.1],
    "et_threshold": [0.3, 0.5, 0.6],
    "root_depth": [0.5, 1.0, 0.8],
}
RELATIVE = ("soil_drainage", "baseflow_rate", "soil_capacity")
TOLERANCE = {  # (noise-free, 10 % noise): relative for RELATIVE, absolute otherwise
    "soil_drainage": (0.10, 0.15),
    "baseflow_rate": (0.10, 0.15),
    "soil_capacity": (0.05, 0.20),
    "pet_coefficient": (0.25, 0.25),
    "runoff_shape": (0.25, 0.3),
    "et_threshold": (0.12, 0.2),
}


def _twin(noise: float = 0.0, n_days: int = 3 * 365, lat=(30.0, 33.0)) -> xr.Dataset:
    truth = Params.default(3, dtype=np.float64, **{k: np.array(v) for k, v in TRUTH.items()})
    return synthetic_twin(
        3, n_days, aridity=(0.5, 0.8), lat=lat, params=truth, noise=noise, seed=3,
        dtype=np.float64,
    )


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_twin_recovers_identifiable_parameters(x64, noise):
    ds = _twin(noise)
    forcing = to_forcing(ds, dtype=np.float64)
    model = build_model("physics")
    fit = calibrate_columns(
        model, forcing, target(ds, "streamflow"), warmup_days=WARMUP, starts=2, steps=600,
        learning_rate=0.2, seed=1,
    )
    truth, state0 = twin_truth(ds)
    column = 1 if noise else 0
    for name, tolerances in TOLERANCE.items():
        got = np.asarray(getattr(fit.params, name))
        want = np.asarray(getattr(truth, name))
        error = np.abs(got - want) / (want if name in RELATIVE else 1.0)
        assert np.all(error <= tolerances[column]), (name, got, want)
    # pet_coefficient trades off against et_threshold (its tolerance alone would pass the
    # untouched default 1.0): the calibration must at least rank the basins as the truth does
    pet = np.asarray(fit.params.pet_coefficient)
    assert np.all(np.diff(pet) > 0.05), pet

    # The recovered run reproduces the noise-free truth after the warm-up.
    sim = simulate(model, forcing, fit.params, outputs=("runoff",))
    clean = target(ds, "streamflow_model" if noise else "streamflow")
    nse = np.asarray(metrics.nse(clean[:, WARMUP:], np.asarray(sim.fluxes.runoff)[:, WARMUP:]))
    assert np.all(nse > (0.995 if noise else 0.9995)), nse
    assert fit.evaluations == 600 * 2 + 2
    assert fit.start_loss.shape == (2, 3)
    np.testing.assert_allclose(fit.loss, fit.start_loss.min(axis=0))


def test_snow_parameters_are_not_identifiable_in_a_warm_climate(x64):
    ds = _twin(lat=(15.0, 20.0))  # winter mean temperatures of about 20 degC
    forcing = to_forcing(ds, dtype=np.float64)
    model = build_model("physics")
    truth, state0 = twin_truth(ds)
    reference = target(ds, "streamflow")
    for ddf, t_melt in ((0.5, 3.0), (8.0, -3.0)):
        other = simulate(model, forcing, dataclasses.replace(
            truth, ddf=np.full(3, ddf), t_melt=np.full(3, t_melt)
        ), state0)
        nse = np.asarray(metrics.nse(reference, np.asarray(other.fluxes.runoff)))
        assert np.all(nse > 0.9999), nse  # the whole range of both changes almost nothing


def test_soil_parameters_act_only_through_the_capacity(x64):
    ds = _twin(n_days=400)
    forcing = to_forcing(ds, dtype=np.float64)
    model = build_model("physics")
    truth, state0 = twin_truth(ds)
    capacity = np.asarray(truth.soil_capacity)
    # Another split of the same capacity: wider range, shallower roots.
    theta_cap, theta_wp = np.full(3, 0.5), np.full(3, 0.05)
    root_depth = capacity / (1000.0 * (theta_cap - theta_wp))
    other = dataclasses.replace(
        truth, theta_cap=theta_cap, theta_wp=theta_wp, root_depth=root_depth
    )
    a = simulate(model, forcing, truth, state0).fluxes.runoff
    b = simulate(model, forcing, other, state0).fluxes.runoff
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_default_start_is_kept_when_it_is_the_truth(x64):
    truth = Params.default(3, dtype=np.float64)
    ds = synthetic_twin(3, 2 * 365, aridity=(0.5, 0.8), lat=(30.0, 33.0), params=truth, seed=3)
    fit = calibrate_columns(
        build_model("physics"), to_forcing(ds, dtype=np.float64), target(ds, "streamflow"),
        warmup_days=WARMUP, starts=2, steps=2, learning_rate=1e-6, final_learning_rate=1e-7,
    )
    # From half-full soil the warm-up does not reproduce the spun-up stores exactly, so the
    # loss is small, not zero; a random start is far worse.
    np.testing.assert_array_equal(fit.best_start, 0)
    assert np.all(fit.loss < 1e-3)


def test_ensemble_is_the_mean_of_the_starts_and_closes(x64):
    """The calibrated model is the mean of every start's run: ``score_periods`` with the
    members' weights scores the mean of the members' own runoff, and the mean closes its water
    balance; a member left out (weight 0) does not enter it, whatever its values."""
    from hybridland.calibrate import member_columns, member_mean

    ds = _twin(0.1)
    forcing = to_forcing(ds, dtype=np.float64)
    model = build_model("physics")
    fit = calibrate_columns(model, forcing, target(ds, "streamflow"), warmup_days=WARMUP,
                            starts=3, steps=20, seed=1)
    assert fit.in_ensemble.shape == (3, 3) and fit.in_ensemble.all()
    best = jax.tree_util.tree_map(lambda a: a[fit.best_start, np.arange(3)], fit.members)
    np.testing.assert_array_equal(best.root_depth, fit.params.root_depth)
    own = np.stack([
        np.asarray(simulate(model, forcing, jax.tree_util.tree_map(lambda a, s=s: a[s],
                                                                   fit.members)).fluxes.runoff)
        for s in range(3)
    ])
    tiled, flat = member_columns(forcing, fit.members)
    sim = simulate(model, tiled, flat)
    weights = np.array([[1, 0, 1], [1, 1, 0], [1, 1, 1]], bool)
    # a member left out may hold anything: its values never reach the mean
    runoff = np.asarray(sim.fluxes.runoff).copy()
    runoff[1 * 3 + 0] = np.nan  # member 0 of basin 1, left out (basin-major columns)
    mean = member_mean(runoff, weights)
    expected = (own * weights[..., None]).sum(0) / weights.sum(0)[:, None]
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    assert np.all(np.isfinite(mean))
    # the mean of closed balances closes: its per-step residual is the mean of theirs
    residual = member_mean((np.asarray(sim.fluxes.water_residual),
                            np.asarray(sim.cumulative_water_residual)), weights)
    assert np.max(np.abs(residual[0])) < 1e-9 and np.max(np.abs(residual[1])) < 1e-9


def test_an_ensembles_residuals_are_the_largest_of_its_members(monkeypatch):
    """``score_periods`` reported the residual of the members' mean, where residuals of
    opposite sign cancel; ``evaluate_ensemble`` reports the largest of any member."""
    from types import SimpleNamespace

    import hybridland.calibrate as cal

    days = 5
    residual = np.zeros((2, days))  # one basin, two members (basin-major columns)
    residual[0, 2], residual[1, 2] = 1e-3, -1e-3
    residual = np.concatenate([residual, np.zeros((2, days))])  # a second basin, closed
    residual[3, 4] = 5e-3  # ... except in a member left out (weight 0)
    sim = SimpleNamespace(fluxes=SimpleNamespace(runoff=np.ones((4, days)),
                                                 water_residual=residual),
                          cumulative_water_residual=np.cumsum(residual, axis=1))
    monkeypatch.setattr(cal, "simulate", lambda *args, **kwargs: sim)
    monkeypatch.setattr(cal, "member_columns", lambda forcing, params: (forcing, params))
    data = SimpleNamespace(n_basins=2, forcing=lambda *args: None, time=range(days),
                           periods={"test": (0, days - 1)}, obs=np.ones((2, days)))
    out = cal.score_periods(None, data, None, {"test": "test"},
                            weights=np.array([[1.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(out["max_abs_step_water_residual"], [1e-3, 0.0])
    np.testing.assert_allclose(out["max_abs_cumulative_water_residual"], [1e-3, 0.0])


def test_holdout_keeps_the_parameters_best_on_the_held_back_days(x64):
    ds = _twin(0.3)  # noisy observations: later steps may fit the noise
    forcing = to_forcing(ds, dtype=np.float64)
    observed = target(ds, "streamflow")
    model = build_model("physics")
    steps, starts = 40, 2
    fit = calibrate_columns(model, forcing, observed, warmup_days=WARMUP, starts=starts,
                            steps=steps, learning_rate=0.2, holdout_fraction=0.25, seed=2)
    scored = observed.shape[1] - WARMUP
    held = scored - int(round(0.25 * scored))
    assert fit.objective.shape == fit.holdout_objective.shape == (steps + 1, starts, 3)
    assert fit.elapsed.shape == (steps + 1,) and np.all(np.diff(fit.elapsed) >= 0)
    # Recomputed from a plain simulation: each basin keeps the best held-back score of the trace.
    sim = np.asarray(simulate(model, forcing, fit.params, outputs=("runoff",)).fluxes.runoff)
    got = 1.0 - np.asarray(metrics.nse(observed[:, WARMUP + held:], sim[:, WARMUP + held:]))
    np.testing.assert_allclose(got, np.nanmin(fit.holdout_objective, axis=(0, 1)), rtol=1e-9)
    whole = 1.0 - np.asarray(metrics.nse(observed[:, WARMUP:], sim[:, WARMUP:]))
    assert np.all(whole >= np.nanmin(fit.objective, axis=(0, 1)) - 1e-12)
    # Without a hold-out the last step's parameters are kept: its whole-period score is the
    # last row of the trace.
    plain = calibrate_columns(model, forcing, observed, warmup_days=WARMUP, starts=starts,
                              steps=steps, learning_rate=0.2, seed=2)
    sim = np.asarray(simulate(model, forcing, plain.params, outputs=("runoff",)).fluxes.runoff)
    got = 1.0 - np.asarray(metrics.nse(observed[:, WARMUP:], sim[:, WARMUP:]))
    np.testing.assert_allclose(got, plain.objective[-1][plain.best_start, np.arange(3)], rtol=1e-9)
    assert np.all(np.isnan(plain.holdout_objective))
    with pytest.raises(ValueError, match="holdout_fraction"):
        calibrate_columns(model, forcing, observed, warmup_days=WARMUP, holdout_fraction=0.7)


@pytest.mark.parametrize("kwargs, words", [
    (dict(starts=0), "starts must be an integer >= 1"),  # an IndexError
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(params=("foo",)), "params must be a sequence"),  # a KeyError 'foo'
    (dict(params="ddf"), "params must be a sequence"),  # its letters were parameter names
    (dict(params=()), "params must be a sequence"),
    (dict(params=("ddf", "ddf")), "params must be a sequence"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number"),  # ZeroDivisionError
    (dict(final_learning_rate=float("nan")), "final_learning_rate must be"),
])
def test_calibrate_columns_refuses_bad_settings_by_name(kwargs, words):
    ds = _twin(0.1)
    forcing = to_forcing(ds, dtype=np.float32)
    observed = target(ds, "streamflow")
    with pytest.raises(ValueError, match=words):
        calibrate_columns(build_model("physics"), forcing, observed, warmup_days=WARMUP,
                          **kwargs)


def test_a_basin_without_observed_flow_in_the_holdout_is_still_calibrated(x64):
    """A basin whose held-back days have no observed flow never scored a finite held-back
    1 - NSE, so it kept its starting (default) parameters, silently. It now keeps its last
    step, chosen by the fit loss as without a hold-out (the same parameters: its loss sees the
    same days), with a warning."""
    ds = _twin(0.1)
    forcing = to_forcing(ds, dtype=np.float64)
    observed = target(ds, "streamflow").copy()
    scored = observed.shape[1] - WARMUP
    fit_days = scored - int(round(0.25 * scored))
    observed[0, WARMUP + fit_days:] = np.nan  # nothing observed in basin 0's hold-out
    model = build_model("physics")
    common = dict(warmup_days=WARMUP, starts=2, steps=6, learning_rate=0.2, seed=2)
    with pytest.warns(UserWarning, match=r"1 column\(s\) \(indices \[0\]\).*holdout_fraction"):
        held = calibrate_columns(model, forcing, observed, holdout_fraction=0.25, **common)
    plain = calibrate_columns(model, forcing, observed, **common)
    first = lambda p: [np.asarray(a).reshape(-1)[0] for a in jax.tree_util.tree_leaves(p)]
    assert not np.allclose(first(held.params), first(Params.default(3, dtype=np.float64))), \
        "basin 0 kept its default parameters"
    np.testing.assert_allclose(first(held.params), first(plain.params), rtol=1e-9)


def test_windowed_steps_trace_the_whole_period_objective(x64):
    """With windows each step sees a random part of the calibration period; the trace still
    holds 1 - NSE over the whole period, every ``trace_every`` steps and after the last, and a
    window as long as the period is the whole-period fit."""
    ds = _twin(0.1)
    forcing = to_forcing(ds, dtype=np.float64)
    observed = target(ds, "streamflow")
    model = build_model("physics")
    scored = observed.shape[1] - WARMUP
    steps, every = 12, 5
    common = dict(warmup_days=WARMUP, starts=2, steps=steps, learning_rate=0.2, seed=4)
    fit = calibrate_columns(model, forcing, observed, window_days=200, trace_every=every,
                            **common)
    whole = calibrate_columns(model, forcing, observed, **common)
    traced = np.isfinite(fit.objective).all(axis=(1, 2))
    assert traced.tolist() == [k % every == 0 or k == steps for k in range(steps + 1)]
    assert np.isnan(fit.objective[~traced]).all()
    # Steps run in compiled chunks of trace_every: the chunking leaves the path unchanged.
    one_by_one = calibrate_columns(model, forcing, observed, window_days=200, trace_every=1,
                                   **common)
    np.testing.assert_allclose(one_by_one.history, fit.history, rtol=1e-9)
    np.testing.assert_allclose(one_by_one.objective[traced], fit.objective[traced], rtol=1e-9)
    for name in DEFAULT_PARAMS:
        np.testing.assert_allclose(getattr(one_by_one.params, name), getattr(fit.params, name),
                                   rtol=1e-9)
    # Same starts: the objective before the first step is the same, window or not.
    np.testing.assert_allclose(fit.objective[0], whole.objective[0], rtol=1e-9)
    # The last row is the kept parameters' score over the whole period.
    sim = np.asarray(simulate(model, forcing, fit.params, outputs=("runoff",)).fluxes.runoff)
    got = 1.0 - np.asarray(metrics.nse(observed[:, WARMUP:], sim[:, WARMUP:]))
    np.testing.assert_allclose(got, fit.objective[-1][fit.best_start, np.arange(3)], rtol=1e-9)
    assert not np.allclose(fit.objective[-1], whole.objective[-1])  # the windows changed the path
    as_long = calibrate_columns(model, forcing, observed, window_days=scored, **common)
    np.testing.assert_array_equal(as_long.objective, whole.objective)
    with pytest.raises(ValueError, match="trace_every"):
        calibrate_columns(model, forcing, observed, window_days=200, trace_every=0, **common)


def test_a_second_calibration_compiles_nothing_again(x64, caplog):
    """The compiled step and scoring are reused by every calibration of a session with the
    same shapes and settings (a new optimiser object per call once compiled them anew)."""
    import logging

    ds = _twin()
    forcing = to_forcing(ds, dtype=np.float64)
    observed = target(ds, "streamflow")
    model = build_model("physics")
    settings = dict(warmup_days=WARMUP, starts=2, steps=3, window_days=200, trace_every=2,
                    learning_rate=0.2)
    first = calibrate_columns(model, forcing, observed, seed=1, **settings)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        caplog.clear()
        again = calibrate_columns(model, forcing, observed, seed=2, **settings)
    compiled = [r.getMessage() for r in caplog.records if "compilation of" in r.getMessage()]
    assert not [m for m in compiled if "_step" in m or "_score" in m], compiled
    assert not np.array_equal(first.objective[0], again.objective[0])  # other starts, same program


# ---------------------------------------------------------------------------------------------
# Configuration and command line

DATA = {
    "loader": "netcdf",
    "path": "twin.nc",
    "train_period": ["2001-01-01", "2001-12-31"],
    "validation_period": ["2002-01-01", "2002-06-30"],
    "warmup_days": 365,
}


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"calibration\.step'"):
        calibration_config_from_dict({"data": DATA, "calibration": {"step": 3}})
    with pytest.raises(ConfigError, match=r"calibration\.params.*unknown \['ddff'\]"):
        calibration_config_from_dict({"data": DATA, "calibration": {"params": ["ddff"]}})
    # a parameter of a structure the calibrated basic bucket does not have would get no
    # gradient and be written as if calibrated
    with pytest.raises(ConfigError, match=r"calibration\.params.*\['loss_rate'\].*does not use"):
        calibration_config_from_dict({"data": DATA, "calibration": {"params": ["loss_rate"]}})
    for name in ("learning_rate", "final_learning_rate"):  # inf ran to NaN parameters
        with pytest.raises(ConfigError, match=rf"calibration\.{name}' must be a finite number"):
            calibration_config_from_dict({"data": DATA, "calibration": {name: float("inf")}})
    with pytest.raises(ConfigError, match=r"calibration\.starts' must be >= 1"):
        calibration_config_from_dict({"data": DATA, "calibration": {"starts": 0}})
    with pytest.raises(ConfigError, match=r"calibration\.window_days' must be >= 2"):
        calibration_config_from_dict({"data": DATA, "calibration": {"window_days": 1}})
    with pytest.raises(ConfigError, match=r"Unknown section"):
        calibration_config_from_dict({"data": DATA, "training": {}})
    with pytest.raises(ConfigError, match=r"calibration\.holdout_fraction' must be in"):
        calibration_config_from_dict({"data": DATA, "calibration": {"holdout_fraction": 0.8}})
    with pytest.raises(ConfigError, match=r"holdout_fraction' needs steps over the whole"):
        calibration_config_from_dict({"data": DATA, "calibration": {"holdout_fraction": 0.2,
                                                                    "window_days": 100}})
    with pytest.raises(ConfigError, match=r"holds back only 4 of the calibration period's 365"):
        calibration_config_from_dict({"data": DATA, "calibration": {"holdout_fraction": 0.01}})
    # The default two-year window is longer than this one-year period: whole-period steps, so
    # a hold-out needs no window_days: null here.
    assert calibration_config_from_dict(
        {"data": DATA, "calibration": {"holdout_fraction": 0.2}}
    ).calibration.window_days == 730
    overlapping = {**DATA, "validation_period": ["2001-07-01", "2002-06-30"]}
    with pytest.raises(ConfigError, match=r"'data\.validation_period' 2001-07-01 \.\. 2002-06-30 "
                       r"overlaps data\.train_period .*2001-07-01 \.\. 2001-12-31.*disjoint"):
        calibration_config_from_dict({"data": overlapping})
    config = calibration_config_from_dict({"data": DATA})
    assert config.calibration.params == DEFAULT_PARAMS
    assert calibration_config_from_dict(yaml.safe_load(config.to_yaml())) == config


def test_calibration_config_builds_on_a_base(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(
        {"data": DATA, "calibration": {"starts": 3, "steps": 40}}))
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\ncalibration: {steps: 20}\n")
    config = load_calibration_config(child)
    assert (config.calibration.starts, config.calibration.steps) == (3, 20)
    assert config.data == calibration_config_from_dict({"data": DATA}).data
    child.write_text("base: base.yaml\ncalibration: {starts: 0}\n")
    with pytest.raises(ConfigError, match=r"child\.yaml \(with its base .*base\.yaml\): "
                                          r".*calibration\.starts' must be >= 1"):
        load_calibration_config(child)


def test_cli_calibrate_writes_cf_parameters(tmp_path, capsys):
    ds = synthetic_twin(2, 3 * 365, start="2000-01-01", aridity=(0.5, 0.8), lat=(30.0, 33.0),
                        seed=5, dtype=np.float32)
    ds.to_netcdf(tmp_path / "twin.nc")
    cfg = tmp_path / "cal.yaml"
    data = {**DATA, "path": str(tmp_path / "twin.nc")}
    cfg.write_text(yaml.safe_dump(
        {"data": data, "calibration": {"starts": 2, "steps": 4, "window_days": 200}}
    ))
    out = tmp_path / "params.nc"
    assert main(["calibrate", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    with xr.open_dataset(out) as result:
        assert result.sizes["basin"] == 2
        assert result["root_depth"].attrs["units"] == "m"
        assert result["theta_wp"].attrs["calibrated"] == "no (default)"
        assert result["baseflow_rate"].attrs["calibrated"] == "yes"
        for name in ("nse_calibration", "kge_validation", "max_abs_cumulative_water_residual"):
            assert np.all(np.isfinite(result[name].values)), name
        assert result["max_abs_step_water_residual"].max() < 1e-3
        assert result.attrs["Conventions"] == "CF-1.8"
        loaded = load_calibration_config(cfg)
        assert result.attrs["configuration"] == loaded.to_yaml()
    assert "median NSE" in capsys.readouterr().out
    with xr.open_dataset(out) as result:  # the ensemble of the two starts
        assert result["root_depth"].dims == ("member", "basin") and result.sizes["member"] == 2
        assert result["in_ensemble"].values.all()
        assert "mean" in result.attrs["calibrated_model"]
    # the best start alone: dim basin only, as files written before the ensemble, read as one
    # member
    from hybridland.calibrate import load_calibrated

    cfg.write_text(yaml.safe_dump(
        {"data": data, "calibration": {"starts": 2, "steps": 4, "window_days": 200,
                                       "ensemble": False}}
    ))
    single = tmp_path / "single.nc"
    assert main(["calibrate", "--config", str(cfg), "--out", str(single), "--no-progress"]) == 0
    with xr.open_dataset(single) as result, xr.open_dataset(out) as members:
        assert result["root_depth"].dims == ("basin",)
        best = members["root_depth"].isel(member=members["best_start"])
        np.testing.assert_allclose(result["root_depth"].values, best.values, rtol=1e-6)
    loaded = load_calibrated(single)
    assert loaded.params.root_depth.shape == (1, 2) and loaded.weights.all()
    # the loss's units: 1 - NSE is a ratio, the mean squared error a squared flux (it was "1")
    with xr.open_dataset(out) as members:
        assert members["calibration_loss"].attrs["units"] == "1"
        assert members["member_loss"].attrs["units"] == "1"
    cfg.write_text(yaml.safe_dump(
        {"data": data, "calibration": {"starts": 1, "steps": 2, "window_days": 200,
                                       "loss": "mse"}}))
    assert main(["calibrate", "--config", str(cfg), "--out", str(single), "--no-progress"]) == 0
    with xr.open_dataset(single) as result:
        assert result["calibration_loss"].attrs["units"] == "kg2 m-4 day-2"
        assert result["member_loss"].attrs["units"] == "kg2 m-4 day-2"

    cfg.write_text(yaml.safe_dump({"data": data, "calibration": {"lerning_rate": 0.1}}))
    assert main(["calibrate", "--config", str(cfg), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "calibration.lerning_rate" in capsys.readouterr().err
    missing = {**data, "path": str(tmp_path / "none.nc")}
    cfg.write_text(yaml.safe_dump({"data": missing}))
    assert main(["calibrate", "--config", str(cfg), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "none.nc" in capsys.readouterr().err


def test_calibration_leaves_out_basins_without_observed_streamflow(tmp_path):
    """A basin with no observed day in the calibration period was 'calibrated' (loss 0, marked
    calibrated=yes); it is left out, named in a warning. A validation period without any
    observation, and a file without streamflow, are refused."""
    from hybridland.calibrate import calibration_inputs
    from hybridland.io import DataAdjustmentWarning, ForcingDataError

    ds = synthetic_twin(2, 3 * 365, start="2000-01-01", aridity=(0.5, 0.8), lat=(30.0, 33.0),
                        seed=5, dtype=np.float32)
    config = calibration_config_from_dict({"data": {**DATA, "path": str(tmp_path / "twin.nc")}})
    second = str(ds["column"].values[1])
    ds.to_netcdf(tmp_path / "twin.nc")
    _, _, both, _ = calibration_inputs(config)

    gap = ds.copy(deep=True)
    gap["streamflow"].loc[{"column": second, "time": slice("2001-01-01", "2001-12-31")}] = np.nan
    gap.to_netcdf(tmp_path / "twin.nc")
    with pytest.warns(DataAdjustmentWarning, match=rf"1 of 2 basin\(s\).*calibration period "
                      rf"2001-01-01 \.\. 2001-12-31: {second}; they are left out"):
        data, _, forcing, observed = calibration_inputs(config)
    first = str(ds["column"].values[0])
    assert data.basins == (first,) and forcing.precip.shape[0] == observed.shape[0] == 1
    for name in ("precip", "t_min", "t_max", "pet", "lat"):  # the basin kept is as it was
        np.testing.assert_array_equal(np.asarray(getattr(forcing, name))[0],
                                      np.asarray(getattr(both, name))[0])
    gap["streamflow"][:] = np.nan
    gap.to_netcdf(tmp_path / "twin.nc")
    with pytest.raises(ForcingDataError, match=r"No basin.*calibration period 2001-01-01"):
        calibration_inputs(config)

    late = ds.copy(deep=True)
    late["streamflow"].loc[{"time": slice("2002-01-01", "2002-06-30")}] = np.nan
    late.to_netcdf(tmp_path / "twin.nc")
    with pytest.raises(ForcingDataError, match=r"No basin.*validation period 2002-01-01"):
        calibration_inputs(config)

    ds.drop_vars("streamflow").to_netcdf(tmp_path / "twin.nc")
    with pytest.raises(ForcingDataError, match=r"twin\.nc has no observed streamflow"):
        calibration_inputs(config)


def test_a_basin_observed_only_on_the_held_back_days_is_not_calibrated(tmp_path):
    """The drop above looked at the whole calibration period, but the steps fit only its first
    1 - holdout_fraction: a basin observed only on the held-back days passed, was fitted to
    nothing (loss 0, gradient 0) and written as calibrated, its model the mean of its untouched
    random starts. It is left out, named; calibrate_columns refuses such a basin itself."""
    from hybridland.calibrate import calibration_inputs
    from hybridland.io import DataAdjustmentWarning

    ds = synthetic_twin(2, 3 * 365, start="2000-01-01", aridity=(0.5, 0.8), lat=(30.0, 33.0),
                        seed=5, dtype=np.float32)
    second = str(ds["column"].values[1])
    ds["streamflow"].loc[{"column": second, "time": slice("2001-01-01", "2001-10-01")}] = np.nan
    ds.to_netcdf(tmp_path / "twin.nc")
    config = calibration_config_from_dict({
        "data": {**DATA, "path": str(tmp_path / "twin.nc")},
        "calibration": {"holdout_fraction": 0.25}})  # 274 days fitted, to 2001-10-01
    with pytest.warns(DataAdjustmentWarning, match=rf"1 of 2 basin\(s\).*2001-12-31 less its "
                      rf"last 91 days \(held back.*: {second}; they are left out"):
        data, model, forcing, observed = calibration_inputs(config)
    assert data.basins == (str(ds["column"].values[0]),)
    # the same basin given to calibrate_columns directly
    _, _, forcing, observed = calibration_inputs(calibration_config_from_dict(
        {"data": {**DATA, "path": str(tmp_path / "twin.nc")}}))
    with pytest.raises(ValueError, match=r"1 basin\(s\) \(indices \[1\]\) have no observed "
                       r"runoff on the 274 days fitted .*91 held-back days"):
        calibrate_columns(model, forcing, observed, warmup_days=365, holdout_fraction=0.25,
                          steps=1, starts=1)


def test_calibration_hides_the_dry_years_held_out(tmp_path):
    """data.holdout_dry_years was ignored by calibrate: the dry-extreme test's streamflow was
    fitted while the output's configuration said it was held out."""
    from hybridland.calibrate import calibration_inputs
    from hybridland.train.data import dry_years

    ds = synthetic_twin(2, 4 * 365 + 1, start="2000-01-01", aridity=(0.5, 0.8),
                        lat=(30.0, 33.0), seed=5, dtype=np.float32)
    ds.to_netcdf(tmp_path / "twin.nc")
    data = {**DATA, "path": str(tmp_path / "twin.nc"), "train_period": ["2001-01-01", "2002-12-31"],
            "validation_period": ["2003-01-01", "2003-06-30"]}
    _, _, _, seen = calibration_inputs(calibration_config_from_dict({"data": data}))
    assert np.isfinite(seen).all()
    config = calibration_config_from_dict({"data": {**data, "holdout_dry_years": 0.5}})
    _, _, _, observed = calibration_inputs(config)
    # the candidate years are 2001 and 2002 (whole years from the training start to the last
    # period's end): the drier of the two is hidden in each basin, the warm-up year is not
    time = pd.DatetimeIndex(ds["time"].values)
    hidden = dry_years(time, ds["precipitation"].values, 0.5, ("2001-01-01", "2003-06-30"))
    first = time.get_loc(pd.Timestamp("2001-01-01")) - DATA["warmup_days"]
    hidden = hidden[:, first:first + observed.shape[1]]
    assert (hidden.sum(axis=1) == 365).all()
    np.testing.assert_array_equal(np.isnan(observed), hidden)
    np.testing.assert_array_equal(observed[~hidden], seen[~hidden])


def test_simulate_with_calibrated_parameters_reproduces_the_validation_nse(
    tmp_path, capsys, mopex_file, monkeypatch
):
    """``hybridland simulate --params PARAMS.nc`` runs the calibrated bucket: from the first
    day the calibration loaded, its runoff scores the validation NSE stored in the file."""
    from runs import mopex_subset

    basins = ["01055500", "03346000"]
    data = mopex_subset(mopex_file, tmp_path / "mopex.nc", basins + ["11025500"], "1989-01-01",
                        "1993-12-31")
    cfg = tmp_path / "cal.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"loader": "mopex", "path": str(data), "swap_inverted_temperatures": True,
                 "basins": basins,
                 "train_period": ["1991-01-01", "1992-12-31"],
                 "validation_period": ["1993-01-01", "1993-12-31"], "warmup_days": 365},
        "calibration": {"starts": 2, "steps": 30, "params": ["baseflow_rate", "theta_cap",
                                                            "runoff_shape", "ddf"]},
    }))
    params = tmp_path / "params.nc"
    assert main(["calibrate", "--config", str(cfg), "--out", str(params), "--no-progress"]) == 0
    out = tmp_path / "sim.nc"
    code = main(["simulate", "--data", str(data), "--params", str(params),  # its two basins
                 "--start", "1990-01-01", "--end", "1993-12-31", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    with xr.open_dataset(params) as p, xr.open_dataset(out) as sim, xr.open_dataset(data) as obs:
        assert "calibrated" in sim.attrs["parameters"]
        assert [str(b) for b in sim["basin"].values] == basins
        days = slice("1993-01-01", "1993-12-31")
        q_sim = sim["runoff"].sel(time=days).values
        q_obs = obs["Q"].sel(basin=basins, time=days).values
        nse = np.asarray(metrics.nse(q_obs, q_sim))
        np.testing.assert_allclose(nse, p["nse_validation"].values, rtol=1e-4, atol=1e-4)
        assert np.all(p["baseflow_rate"].values != p["baseflow_rate"].attrs["valid_min"])
        whole = sim["runoff"].values
    # --chunk-basins counts basins: a chunk holds every member of its basins (2 starts here)
    import hybridland.solvers

    seen, run_timed = [], hybridland.solvers.run_timed

    def spy(model, forcing, params, **kwargs):
        seen.append((forcing.precip.shape[0], kwargs["chunk_columns"]))
        return run_timed(model, forcing, params, **kwargs)

    monkeypatch.setattr(hybridland.solvers, "run_timed", spy)
    chunked = tmp_path / "chunked.nc"
    assert main(["simulate", "--data", str(data), "--params", str(params), "--start",
                 "1990-01-01", "--end", "1993-12-31", "--chunk-basins", "1", "--out",
                 str(chunked)]) == 0
    monkeypatch.undo()
    assert seen == [(4, 2)]  # 2 basins x 2 members, one basin (2 columns) per chunk
    with xr.open_dataset(chunked) as sim:
        np.testing.assert_allclose(sim["runoff"].values, whole, rtol=1e-6, atol=1e-7)
    # Refusals: a basin the file has no parameters for; --params with --model.
    assert main(["simulate", "--data", str(data), "--params", str(params), "--out",
                 str(tmp_path / "x.nc"), "--basins", "01055500,11025500"]) == EXIT_BAD_INPUT
    assert "no calibrated parameters for basin(s) 11025500" in capsys.readouterr().err
    assert main(["simulate", "--data", str(data), "--params", str(params), "--model", "physics",
                 "--out", str(tmp_path / "y.nc")]) == EXIT_BAD_INPUT
    assert "one of --model, --run-dir and --params" in capsys.readouterr().err
    # A file written before a structure parameter existed (the basic bucket does not use it)
    # loads with that parameter at its default; one without a bucket parameter is refused.
    from hybridland import PARAMETER_BOUNDS
    from hybridland.calibrate import load_calibrated

    full = load_calibrated(params, basins).params
    with xr.open_dataset(params) as p:
        older, damaged = p.drop_vars("drainage_shape"), p.drop_vars("theta_cap")
        older.to_netcdf(tmp_path / "older.nc")
        damaged.to_netcdf(tmp_path / "damaged.nc")
    loaded = load_calibrated(tmp_path / "older.nc", basins).params
    np.testing.assert_array_equal(loaded.theta_cap, full.theta_cap)
    np.testing.assert_array_equal(loaded.drainage_shape,
                                  PARAMETER_BOUNDS["drainage_shape"].default)
    with pytest.raises(ValueError, match="missing: \\['theta_cap'\\]"):
        load_calibrated(tmp_path / "damaged.nc", basins)


def test_benchmark_leaves_out_basins_with_a_unit_error(mopex_file, tmp_path):
    # a basin whose T_max is in kelvin made the loader refuse the whole benchmark
    import xarray as xr

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from calibration_vs_sceua import complete_basins

    chosen = complete_basins(str(mopex_file), 3)
    with xr.open_dataset(mopex_file) as ds:
        part = ds.sel(basin=chosen, time=slice("1969-06-01", "1984-06-30")).load()
    part["T_max"].loc[{"basin": chosen[1]}] = part["T_max"].sel(basin=chosen[1]) + 273.15
    path = tmp_path / "kelvin.nc"
    part.to_netcdf(path)
    assert complete_basins(str(path), 2) == [chosen[0], chosen[2]]


def test_benchmark_json_is_strict_json():
    # a basin that never reached SCE-UA's objective (inf seconds) was written as Infinity,
    # which is not JSON: strict readers (jq, JavaScript, most JSON libraries) refuse the file
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from calibration_vs_sceua import json_text

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    figures = {"seconds": [9.8, float("inf")], "median": float("inf"), "nse": float("nan"),
               "nested": {"a": (1, float("-inf"))}, "met": True, "name": "x"}
    parsed = json.loads(json_text(figures), parse_constant=refuse)
    assert parsed == {"seconds": [9.8, None], "median": None, "nse": None,
                      "nested": {"a": [1, None]}, "met": True, "name": "x"}
    for stored in (Path(__file__).parents[1] / "benchmarks" / "results").glob(
            "calibration_vs_sceua*.json"):
        json.loads(stored.read_text(), parse_constant=refuse)


def test_benchmark_legend_says_when_sceua_stopped_before_its_budget():
    # the figure once labelled SCE-UA's converged objective "after 10000 runs" although
    # spotpy's convergence criteria had stopped every basin at 6 264-6 927 runs
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from calibration_vs_sceua import budget_label

    runs = [6927, 6264, 6500]
    assert budget_label(10000, runs) == "SCE-UA, converged (stopped at 6264-6927 runs)"
    assert budget_label(2000, runs) == "SCE-UA after 2000 runs"
    assert budget_label(6500, runs) == "SCE-UA after 6500 runs"  # some basins ran this far
