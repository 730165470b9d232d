"""A column-chunked dataset run with dask on a dask.distributed LocalCluster matches the
in-memory simulation, and the result writes to NetCDF."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask import distributed

import hybridland as hl
from columns import forcing_from_arrays, make_model, synthetic_climate
from hybridland.io import water_budget_terms
from hybridland.io.output import STORES
from hybridland.solvers import simulate_grid

N_COLUMNS, N_DAYS = 6, 300


@pytest.fixture(scope="module")
def grid_dataset():
    rng = np.random.default_rng(4)
    precip, t_mean, t_range, pet, rn = synthetic_climate(rng, N_COLUMNS, N_DAYS)
    time = pd.date_range("2001-01-01", periods=N_DAYS, freq="D")
    dims = ("column", "time")
    return xr.Dataset(
        {
            "precipitation": (dims, precip.astype(np.float32)),
            "air_temperature_min": (dims, (t_mean - 0.5 * t_range).astype(np.float32)),
            "air_temperature_max": (dims, (t_mean + 0.5 * t_range).astype(np.float32)),
            "potential_evapotranspiration": (dims, pet.astype(np.float32)),
            "theta_cap": (("column",), np.linspace(0.2, 0.5, N_COLUMNS).astype(np.float32)),
        },
        coords={
            "column": [f"c{i}" for i in range(N_COLUMNS)],
            "time": time,
            "lat": ("column", np.linspace(30, 60, N_COLUMNS).astype(np.float32)),
        },
    )


def _in_memory(ds, model):
    forcing = hl.Forcing(
        precip=jnp.asarray(ds.precipitation.values),
        t_min=jnp.asarray(ds.air_temperature_min.values),
        t_max=jnp.asarray(ds.air_temperature_max.values),
        pet=jnp.asarray(ds.potential_evapotranspiration.values),
        lat=jnp.asarray(ds.lat.values),
        doy=jnp.asarray(pd.DatetimeIndex(ds.time.values).day_of_year.values, jnp.float32),
    )
    params = hl.Params.default(N_COLUMNS, theta_cap=jnp.asarray(ds.theta_cap.values))
    return hl.simulate(model, forcing, params)


@pytest.mark.parametrize("kind", ["physics", "hybrid"])
def test_local_cluster_matches_in_memory(grid_dataset, kind, tmp_path):
    model = make_model(kind, seed=2)
    expected = _in_memory(grid_dataset, model)
    # every term of the water budget: the fluxes in and out and each store the model has
    stores = [n for n, f in STORES.items() if getattr(expected.initial_state, f) is not None]
    outputs = ["precipitation", "evapotranspiration", "runoff", *stores]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        lazy = simulate_grid(grid_dataset.chunk({"column": 2}), model, outputs=outputs)
        assert lazy["runoff"].chunks is not None  # still lazy: computed chunk by chunk
        path = tmp_path / "grid.nc"
        lazy.to_netcdf(path)
    result = xr.open_dataset(path)
    # to float32 rounding: chunks are other array shapes, which XLA may vectorise differently
    # (a few values differ in their last bits and carry ~1e-6 relative through the days)
    np.testing.assert_allclose(result.runoff.values, np.asarray(expected.fluxes.runoff),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.soil_water.values, np.asarray(expected.states.soil),
                               rtol=1e-5, atol=1e-5)
    assert result.runoff.attrs["standard_name"] == "runoff_flux"
    assert result.soil_water.attrs["water_budget"] == "storage"
    # each store's initial_value names a variable of the file (there was none before), holding
    # the store before the first day, so the budget closes from the file alone
    for name in stores:
        initial = result[result[name].attrs["initial_value"]]
        assert initial.dims == ("column",) and initial.attrs["initial_value_of"] == name
        np.testing.assert_allclose(
            initial.values, np.asarray(getattr(expected.initial_state, STORES[name])), rtol=1e-6)
    budget = water_budget_terms(result)
    assert float(np.abs(budget["cumulative_residual"]).max()) < 1e-3


def test_a_grid_file_without_a_store_claims_no_budget(grid_dataset):
    """Outputs without one of the model's stores (here groundwater) make a file without a
    budget claim, which water_budget_terms refuses naming the series (before: it recomputed
    a budget without that store, wrong, without a word)."""
    model = make_model("physics", seed=2)
    outputs = ["precipitation", "evapotranspiration", "runoff", "soil_water",
               "snow_water_equivalent"]
    result = simulate_grid(grid_dataset, model, outputs=outputs)
    assert "groundwater" in result.attrs["water_budget_incomplete"]
    assert not [v for v in result.data_vars if "water_budget" in result[v].attrs]
    with pytest.raises(ValueError, match="groundwater of the water budget were left out"):
        water_budget_terms(result)


def test_missing_variable_named(grid_dataset):
    with pytest.raises(ValueError, match="air_temperature_min"):
        simulate_grid(grid_dataset.drop_vars("air_temperature_min"), hl.ColumnModel())


@pytest.mark.parametrize("chunked", [False, True])
def test_one_output_alone(grid_dataset, chunked):
    # the most common request, outputs=("runoff",), failed inside apply_ufunc
    ds = grid_dataset.chunk({"column": 2}) if chunked else grid_dataset
    model = make_model("physics", seed=2)
    result = simulate_grid(ds, model, outputs=("runoff",)).compute()
    expected = np.asarray(_in_memory(grid_dataset, model).fluxes.runoff)
    np.testing.assert_array_equal(result["runoff"].values, expected)


def test_outputs_and_parameters_the_run_cannot_use_are_named(grid_dataset):
    model = make_model("physics", seed=2)
    with pytest.raises(ValueError, match="'fast_reservoir' is a store or flux this model does "
                                         "not have"):
        simulate_grid(grid_dataset, model, outputs=("runoff", "fast_reservoir"))
    with pytest.raises(ValueError, match="'latent_heat' needs net_radiation"):
        simulate_grid(grid_dataset, model, outputs=("runoff", "latent_heat"))
    # a parameter on other dims was dropped without a word, the default used instead
    shaped = grid_dataset.assign(ddf=("time", np.full(N_DAYS, 3.0, np.float32)))
    with pytest.raises(ValueError, match=r"\['ddf'\].*one value per column"):
        simulate_grid(shaped, model, outputs=("runoff",))
    attributes = make_model("hybrid_attributes", seed=2)  # reads static attributes
    with pytest.raises(ValueError, match="read 3 static attributes"):
        simulate_grid(grid_dataset, attributes, outputs=("runoff",))



def test_a_cftime_calendar_runs_and_numeric_time_is_refused(grid_dataset, tmp_path):
    """A noleap or 360_day axis (climate-model output) raised a TypeError from pandas; a time
    axis of plain numbers gave every day day-of-year 1 (wrong Hargreaves PET, silently)."""
    import cftime

    model = hl.ColumnModel(pet=hl.HargreavesPET())
    days = grid_dataset.sizes["time"]
    noleap = grid_dataset.assign_coords(time=xr.date_range(
        "2001-01-01", periods=days, freq="D", calendar="noleap", use_cftime=True))
    result = simulate_grid(noleap, model, outputs=("potential_evapotranspiration",))
    expected = simulate_grid(grid_dataset, model, outputs=("potential_evapotranspiration",))  # 2001 has no 29 Feb
    np.testing.assert_array_equal(result["potential_evapotranspiration"].values,
                                  expected["potential_evapotranspiration"].values)
    assert isinstance(noleap["time"].values[0], cftime.DatetimeNoLeap)
    assert result["time_bnds"].values[0, 1] == noleap["time"].values[1]
    assert result["time"].encoding["calendar"] == "noleap"
    result.to_netcdf(tmp_path / "noleap.nc")
    with xr.open_dataset(tmp_path / "noleap.nc", use_cftime=True) as back:
        assert back["time"].values[-1] == noleap["time"].values[-1]
        assert back["time"].encoding["calendar"] == "noleap"
    numbers = grid_dataset.assign_coords(time=np.arange(days, dtype=float))
    with pytest.raises(ValueError, match="not dates; decode it"):
        simulate_grid(numbers, model, outputs=("potential_evapotranspiration",))
