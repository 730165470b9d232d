"""Untrained variables: ET and soil water of streamflow-trained runs at US-AR1 and Schwingbach
(``hybridland.study.untrained``), and the anomaly correlation it reports."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from runs import tiny, trained

from hybridland import simulate
from hybridland.io import ForcingDataError, load_fluxnet, load_schwingbach, to_forcing
from hybridland.io.paths import data_dir
from hybridland.io.spotpy_data import _chronological, spotpy_file
from hybridland.physics.pet import OudinPET, extraterrestrial_radiation
from hybridland.study import untrained
from hybridland.study.untrained import (
    anomaly_correlation,
    correlation,
    plot_untrained,
    site_runs,
    untrained_table,
    untrained_variables,
)
from hybridland.train.loop import bounded_params, load_trainables

PNG = b"\x89PNG\r\n\x1a\n"
ROWS = [("US-AR1", "evapotranspiration"), ("US-AR1", "soil_water"), ("schwingbach", "soil_water")]
MIN_DAYS = {("US-AR1", "evapotranspiration"): 1200, ("US-AR1", "soil_water"): 1300,
            ("schwingbach", "soil_water"): 1096}


@pytest.fixture(scope="module")
def network_run(tmp_path_factory, mopex_file):
    """A tiny hybrid whose parameters come from a network of aridity and mean precipitation."""
    config = tiny("hybrid", epochs=2, static_attributes=["aridity", "mean_precip"],
                  trainable_params=["baseflow_rate", "runoff_shape"], parameter_network=True)
    _, run_dir, _ = trained(tmp_path_factory, config, "network")
    runs = site_runs(run_dir)
    return run_dir, runs, untrained_table(runs)


@pytest.fixture(scope="module")
def physics_run(tmp_path_factory, mopex_file):
    _, run_dir, _ = trained(tmp_path_factory, tiny("physics", epochs=1), "physics")
    return run_dir


def test_table_has_the_promised_rows_and_scores(network_run):
    _, _, table = network_run
    assert list(zip(table["site"], table["variable"])) == ROWS
    for column in ("observed", "observed_units", "n_days", "correlation", "anomaly_correlation",
                   "mean_observed", "mean_simulated", "pet_law", "parameters", "warmup"):
        assert column in table.columns, column
    for row in table.itertuples():
        assert row.n_days >= MIN_DAYS[(row.site, row.variable)], row
        for r in (row.correlation, row.anomaly_correlation):
            assert np.isfinite(r) and -1.0 <= r <= 1.0, row
    assert (table["pet_law"] == "oudin").all()
    assert (table["parameters"] == "network").all()
    assert list(table["observed_units"]) == ["mm day-1", "m3 m-3", "m3 m-3"]
    # Observed means in their own units: ET about P at a semi-arid site, soil water a fraction.
    assert 0.5 < table["mean_observed"].iloc[0] < 3.0
    assert (table["mean_observed"].iloc[1:].between(0.05, 0.5)).all()


def test_us_ar1_et_is_the_models_et(network_run):
    """Rebuild the US-AR1 run by hand (Oudin PET law in the model, attributes from the site's
    forcing, a year of spin-up) and recompute the table's ET correlation."""
    run_dir, runs, table = network_run
    model, u, normalisation, _ = load_trainables(run_dir)
    ds = load_fluxnet(data_dir() / untrained.FLUXNET_FILE, min_qc=0.5)
    forcing = to_forcing(ds, pet_source="oudin", energy=False)
    t_mean = ds["air_temperature_min"].values[0]  # TA_F, the daily mean
    ra = np.asarray(extraterrestrial_radiation(float(ds["lat"][0]), forcing.doy))  # MJ m-2 d-1
    pet = ra / 2.45 * np.maximum(t_mean + 5.0, 0.0) / 100.0  # Oudin et al. (2005), mm day-1
    precip = ds["precipitation"].values[0]
    raw = np.array([[pet.mean() / precip.mean(), precip.mean()]])  # aridity, mean_precip
    attributes = jnp.asarray(normalisation.apply(raw))
    params = bounded_params(u, None, 1, attributes)
    model = eqx.tree_at(lambda m: m.pet, model, OudinPET())
    forcing = eqx.tree_at(lambda f: f.attributes, forcing, attributes,
                          is_leaf=lambda x: x is None)
    year = eqx.tree_at(lambda f: (f.precip, f.t_min, f.t_max, f.doy), forcing,
                       (forcing.precip[:, :365], forcing.t_min[:, :365], forcing.t_max[:, :365],
                        forcing.doy[:365]))
    spun = simulate(model, year, params)
    sim = simulate(model, forcing, params, spun.final_state)
    et = np.asarray(sim.fluxes.et)[0]
    np.testing.assert_allclose(et, runs[0].simulated["evapotranspiration"], rtol=1e-4, atol=1e-5)
    observed = ds["evapotranspiration"].values[0]
    both = np.isfinite(observed)
    assert table["n_days"].iloc[0] == both.sum()
    r = np.corrcoef(observed[both], et[both])[0, 1]
    assert table["correlation"].iloc[0] == pytest.approx(r, abs=1e-4)
    assert table["mean_simulated"].iloc[0] == pytest.approx(et[both].mean(), rel=1e-4)


def test_physics_run_uses_the_regional_median(physics_run):
    table = untrained_variables(physics_run, sites=("schwingbach",))
    assert list(table["variable"]) == ["soil_water"]
    assert table["parameters"].iloc[0] == "regional median"
    assert np.isfinite(table["correlation"].iloc[0])


def test_anomaly_correlation_ignores_a_seasonal_cycle():
    time = pd.date_range("2001-01-01", "2004-12-31", freq="D")
    rng = np.random.default_rng(0)
    a = rng.normal(size=time.size)
    cycle = 3.0 + 5.0 * np.sin(2 * np.pi * time.day_of_year.to_numpy() / 365.25)
    b = a + cycle
    assert correlation(a, b)[0] < 0.5  # the cycle dominates the plain correlation
    assert anomaly_correlation(a, b, time) > 0.998
    assert anomaly_correlation(a, cycle - 2.0 * a, time) < -0.998
    b[::3] = np.nan  # gaps: both series are scored on their common days
    assert anomaly_correlation(a, b, time) > 0.998
    one_year = slice(0, 365)
    assert np.isnan(anomaly_correlation(a[one_year], b[one_year], time[one_year]))


def test_a_model_without_et_is_refused(network_run, monkeypatch):
    run_dir, _, _ = network_run

    class RunoffOnly(eqx.Module):  # like a sequence network that predicts runoff only
        weight: jnp.ndarray

    _, u, normalisation, config = load_trainables(run_dir)
    monkeypatch.setattr(untrained, "load_trainables",
                        lambda _: (RunoffOnly(jnp.ones(2)), u, normalisation, config))
    with pytest.raises(ValueError, match="no evapotranspiration or soil store"):
        untrained_variables(run_dir)


def test_ismn_and_unknown_sites_are_refused(network_run):
    run_dir, _, _ = network_run
    with pytest.raises(ValueError, match="no collocated forcing"):
        untrained_variables(run_dir, sites=("ismn",))
    with pytest.raises(ValueError, match="Unknown site"):
        untrained_variables(run_dir, sites=("US-XXX",))
    with pytest.raises(ForcingDataError, match="minimum and maximum"):
        untrained_variables(run_dir, sites=("US-AR1",), pet="hargreaves")


def test_plot(network_run, tmp_path):
    _, runs, _ = network_run
    path = plot_untrained(runs, tmp_path / "untrained.png")
    assert path.read_bytes()[:8] == PNG


def test_schwingbach_days_1_to_12_are_dated_right():
    """The weather file stamps 2 January 2014 as 2014-02-01: its rows must land on 2 January."""
    ds = load_schwingbach()
    lines = spotpy_file("cmf_data/driver_data_site24.csv").read_text().splitlines()
    rows = [ln.split(",") for ln in lines if ln.startswith("2014-02-01 ")]
    assert len(rows) == 24
    day = ds.sel(time="2014-01-02")
    assert float(day["precipitation"].values[0]) == pytest.approx(
        np.mean([float(r[1]) for r in rows]), rel=1e-12)
    assert float(day["air_temperature_max"].values[0]) == pytest.approx(
        max(float(r[5]) for r in rows))
    with pytest.raises(ForcingDataError, match="not in order"):
        _chronological(pd.DatetimeIndex(["2014-01-13", "2014-01-14", "2014-01-13"]), "x.csv")


def test_priestley_taylor_at_us_ar1_caps_et_by_the_available_energy(network_run):
    """``pet="priestley_taylor"``: PET from the site's net radiation (gaps filled with its
    day-of-year climatology) and ET never above the available energy (Rn - G) / lambda."""
    run_dir, _, _ = network_run
    (run,) = site_runs(run_dir, sites=("US-AR1",), pet="priestley_taylor")
    assert run.pet_law == "priestley_taylor" and "Priestley-Taylor" in run.forcing_note
    ds = load_fluxnet(data_dir() / untrained.FLUXNET_FILE, min_qc=0.5)
    forcing, demand = untrained._site_forcing(ds, "priestley_taylor")
    rn = np.asarray(forcing.net_radiation)[0]
    g = np.asarray(forcing.ground_heat)[0]
    measured = ds["net_radiation"].values[0]
    assert np.isnan(measured).sum() > 100 and np.isfinite(rn).all()
    np.testing.assert_allclose(rn[np.isfinite(measured)], measured[np.isfinite(measured)],
                               rtol=1e-6)  # the model's float32
    available = np.maximum(rn - g, 0.0) / 28.36  # mm day-1
    et = run.simulated["evapotranspiration"]
    assert np.all(et <= available * (1 + 1e-4) + 1e-5)
    assert np.all(demand >= 0.0) and demand.mean() > 0.5
    observed = run.observed["evapotranspiration"].values
    seen = np.isfinite(observed)
    assert np.corrcoef(observed[seen], et[seen])[0, 1] > 0.3
