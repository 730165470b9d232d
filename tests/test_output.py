"""Tests of the CF-NetCDF writer: metadata, the budget from the file alone, atomic writes."""

from __future__ import annotations

import json
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import ColumnModel, Forcing, MLPRunoff, MLPStressET, build_model, simulate
from hybridland.io import (
    OUTPUT_VARIABLES,
    DataAdjustmentWarning,
    load_mopex,
    simulation_to_dataset,
    water_budget_terms,
    write_netcdf,
)
from hybridland.physics import HargreavesPET

# CF standard names used, with their canonical units as given by the CF standard-name table
# (checked against the table and the CMIP data request), and the units we may write for each.
CF_CANONICAL = {
    "precipitation_flux": "kg m-2 s-1",
    "rainfall_flux": "kg m-2 s-1",
    "snowfall_flux": "kg m-2 s-1",
    "surface_snow_melt_flux": "kg m-2 s-1",
    "water_potential_evaporation_flux": "kg m-2 s-1",
    "water_evapotranspiration_flux": "kg m-2 s-1",
    "runoff_flux": "kg m-2 s-1",
    "surface_runoff_flux": "kg m-2 s-1",
    "subsurface_runoff_flux": "kg m-2 s-1",
    "surface_snow_amount": "kg m-2",
    "surface_upward_latent_heat_flux": "W m-2",
    "surface_upward_sensible_heat_flux": "W m-2",
    "downward_heat_flux_at_ground_level_in_soil": "W m-2",
    "surface_snow_melt_heat_flux": "W m-2",
}
CONVERTIBLE = {
    "kg m-2 s-1": {"kg m-2 s-1", "kg m-2 day-1"},
    "kg m-2": {"kg m-2"},
    "W m-2": {"W m-2"},
}
RESIDUALS = {"water_residual", "water_balance_residual", "energy_residual"}
# the soil store holds only plant-available water and the groundwater store has no depth: the
# names CF has for soil layers do not fit them
NO_CF_NAME = {"fast_reservoir", "water_in_transit", "percolation", "capillary_rise",
              "groundwater_loss", "infiltration_excess_runoff", "soil_water", "groundwater"}


@pytest.fixture(scope="module")
def real_forcing(mopex_file):
    """A humid, a snowy and a semi-arid basin, three years (snow, drought and floods)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return load_mopex(
            mopex_file,
            basins=["01055500", "12358500", "11224500"],
            start="1995-01-01",
            end="1997-12-31",
            pet="hargreaves",
            inverted_temperature="swap",
        )


def _models():
    k1, k2 = jax.random.split(jax.random.key(3))
    return {
        "physics": ColumnModel(pet=HargreavesPET()),
        "hybrid": ColumnModel(
            pet=HargreavesPET(), et=MLPStressET(key=k1), runoff=MLPRunoff(key=k2)
        ),
        # fast and slow paths, capillary rise, routing, 16 components, daily parameters, a
        # groundwater loss (a third water output) and infiltration excess (a diagnostic part
        # of the runoff, no budget term of its own)
        "sequence_hybrid": build_model("sequence_hybrid", pet="hargreaves", key=k1,
                                       dynamic_width=8, groundwater_loss=True,
                                       infiltration_excess=True),
    }


STORES = {
    "physics": ["groundwater", "snow_water_equivalent", "soil_water"],
    "hybrid": ["groundwater", "snow_water_equivalent", "soil_water"],
    "sequence_hybrid": ["fast_reservoir", "groundwater", "snow_water_equivalent", "soil_water",
                        "water_in_transit"],
}


@pytest.fixture(scope="module", params=sorted(STORES))
def written(request, real_forcing, tmp_path_factory):
    model = _models()[request.param]
    sim = simulate(model, real_forcing.forcing)
    ds = simulation_to_dataset(
        sim, real_forcing.basins, real_forcing.time, coords=real_forcing.basin_coords(), model=model
    )
    path = write_netcdf(ds, tmp_path_factory.mktemp(request.param) / "out.nc")
    return request.param, sim, path


def test_every_variable_has_cf_attributes(written):
    label, _, path = written
    with xr.open_dataset(path, decode_coords="all") as ds:  # time_bnds: a coordinate then
        # a fast reservoir's outflow (quick flow and interflow) is not surface runoff
        fast = label == "sequence_hybrid"
        assert ("standard_name" in ds["surface_runoff"].attrs) != fast
        assert ("fast reservoir" in ds["surface_runoff"].attrs["long_name"]) == fast
        assert ds.attrs["Conventions"] == "CF-1.8"
        for key in ("title", "history", "source", "model"):
            assert ds.attrs[key].strip()
        assert "hybridland" in ds.attrs["source"]
        assert ds["time"].attrs["standard_name"] == "time"
        assert ds["lat"].attrs["standard_name"] == "latitude"
        assert ds.attrs["featureType"] == "timeSeries"  # a station's position is given
        assert len(ds.data_vars) >= 15
        for name, var in ds.data_vars.items():
            assert var.attrs.get("units"), name
            assert var.attrs.get("long_name"), name
            if name in RESIDUALS or "standard_name" not in var.attrs:
                # No CF standard name exists for a closure residual (nor for the fast reservoir,
                # the water in transit and the transfers between stores); say so, not invent.
                assert "no name" in var.attrs["comment"], name
                assert (name in RESIDUALS or name.removesuffix("_initial") in NO_CF_NAME
                        or fast and name == "surface_runoff"), name
                continue
            standard = var.attrs["standard_name"]
            assert standard in CF_CANONICAL, f"{name}: unverified standard name {standard}"
            assert var.attrs["units"] in CONVERTIBLE[CF_CANONICAL[standard]], name


def test_days_have_bounds_and_stores_are_end_of_day_values(written):
    """Each time step is a day stamped at its start, with CF bounds from that instant to the
    next day's; fluxes are means over those bounds, stores instantaneous at their end."""
    _, _, path = written
    with xr.open_dataset(path) as ds:
        assert ds["time"].attrs["bounds"] == "time_bnds"
        bounds = ds["time_bnds"].values
        np.testing.assert_array_equal(bounds[:, 0], ds["time"].values)
        np.testing.assert_array_equal(bounds[:, 1] - bounds[:, 0], np.timedelta64(1, "D"))
        roles = {n: v.attrs.get("water_budget") for n, v in ds.data_vars.items()}
        for name in [n for n, r in roles.items() if r in ("input", "output")]:
            assert ds[name].attrs["cell_methods"] == "time: mean", name
        for name in [n for n, r in roles.items() if r == "storage"] + ["water_balance_residual"]:
            method = ds[name].attrs["cell_methods"]
            assert method.startswith("time: point") and "end of the day" in method, name


def test_time_and_its_bounds_are_written_in_one_unit(tmp_path):
    """Even from a dataset that lost the encoding (built by hand, or by operations that drop
    it), write_netcdf writes time and time_bnds in the same units, as CF requires."""
    from hybridland.io.output import with_daily_bounds

    ds = with_daily_bounds(_small_dataset().assign_coords(
        time=pd.date_range("2001-03-01 06:00", periods=3))).drop_encoding()
    assert "units" not in ds["time"].encoding
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray warns when it would choose the units apart
        path = write_netcdf(ds, tmp_path / "t.nc")
    with xr.open_dataset(path, decode_times=False) as raw:
        assert raw["time"].attrs["units"].replace("T", " ") == "days since 2001-03-01 06:00:00"
        assert "units" not in raw["time_bnds"].attrs  # CF: a bounds variable inherits them
        np.testing.assert_array_equal(raw["time_bnds"].values, [[0, 1], [1, 2], [2, 3]])


def test_budget_recomputed_from_file_alone(written):
    """sum(storage)_t - sum(storage)_{t-1} = input - sum(output), from attributes only."""
    label, sim, path = written
    with xr.open_dataset(path) as ds:
        role = {n: v.attrs.get("water_budget") for n, v in ds.data_vars.items()}
        stores = [n for n, r in role.items() if r == "storage"]
        inputs = [n for n, r in role.items() if r == "input"]
        outputs = [n for n, r in role.items() if r == "output"]
        assert sorted(stores) == STORES[label]
        assert inputs == ["precipitation"]
        assert sorted(outputs) == sorted(["evapotranspiration", "runoff"] + (
            ["groundwater_loss"] if label == "sequence_hybrid" else []))

        def f64(name):
            return ds[name].values.astype(np.float64)

        storage = sum(f64(n) for n in stores)
        initial = sum(f64(ds[n].attrs["initial_value"]) for n in stores)
        previous = np.concatenate([initial[:, None], storage[:, :-1]], axis=1)
        residual = (storage - previous) - (
            sum(f64(n) for n in inputs) - sum(f64(n) for n in outputs)
        )
        cumulative = np.cumsum(residual, axis=1)
        # The budget is not trivially closed: water moves through every store.
        assert np.all(np.ptp(storage, axis=1) > 10.0)
        assert np.all(f64("precipitation").sum(1) > 100.0)
        assert np.max(np.abs(cumulative)) < 1e-3, label
        if "groundwater_loss" in outputs:  # the loss is water that left: not closed without it
            assert f64("groundwater_loss").sum(1).max() > 1e-2
        if label == "sequence_hybrid":  # in the file, part of the runoff, not a budget term
            assert "water_budget" not in ds["infiltration_excess_runoff"].attrs
            assert np.all(f64("infiltration_excess_runoff") >= 0.0)
        # The helper computes the same from the same attributes.
        terms = water_budget_terms(ds)
        np.testing.assert_allclose(terms["cumulative_residual"].values, cumulative, atol=1e-9)
        # The model's own cumulative residual is in the file too and agrees.
        assert np.max(np.abs(ds["water_balance_residual"].values)) < 1e-3
        np.testing.assert_allclose(ds["runoff"].values, np.asarray(sim.fluxes.runoff))


def test_budget_check_detects_a_leak(written, tmp_path):
    """The recomputation can fail: one day's runoff off by 0.01 mm shows up."""
    _, _, path = written
    with xr.open_dataset(path) as ds:
        leaky = ds.load()
    leaky["runoff"][1, 100] += 0.01
    terms = water_budget_terms(leaky)
    assert np.max(np.abs(terms["cumulative_residual"].values)) > 5e-3


@pytest.mark.parametrize("left_out", ["soil", "runoff", "groundwater_loss"])
def test_a_file_without_every_budget_series_claims_no_budget(left_out):
    """A series of the budget left out by simulate(outputs=...) leaves the file without a
    budget claim, and water_budget_terms says why (before: the other stores' terms were used
    and the budget recomputed from the file was 31 mm off, without a word)."""
    n, t = 2, 40
    rng = np.random.default_rng(2)
    forcing = Forcing(precip=jnp.asarray(rng.gamma(0.5, 8.0, (n, t)), jnp.float32),
                      t_min=jnp.full((n, t), 2.0, jnp.float32),
                      t_max=jnp.full((n, t), 12.0, jnp.float32),
                      doy=jnp.arange(1, t + 1, dtype=jnp.float32),
                      lat=jnp.array([40.0, 50.0], jnp.float32),
                      pet=jnp.full((n, t), 2.0, jnp.float32))
    model = build_model("sequence_hybrid", pet="given", key=jax.random.key(0), dynamic_width=4,
                        groundwater_loss=True)
    time = np.arange("2001-01-01", "2001-02-10", dtype="datetime64[D]")
    every = ("swe", "soil", "groundwater", "fast", "routing", "precip", "et", "runoff",
             "groundwater_loss")
    whole = simulation_to_dataset(simulate(model, forcing, outputs=every), ["a", "b"],
                                  time, model=model)
    terms = water_budget_terms(whole)  # every series: the budget closes from the file
    assert np.max(np.abs(terms["cumulative_residual"].values)) < 1e-3
    outputs = tuple(o for o in every if o != left_out)
    part = simulation_to_dataset(simulate(model, forcing, outputs=outputs), ["a", "b"],
                                 time, model=model)
    assert "water_budget_equation" not in part.attrs
    assert not [v for v in part.data_vars if "water_budget" in part[v].attrs]
    with pytest.raises(ValueError, match="left out of this file"):
        water_budget_terms(part)


def test_energy_variables_only_when_present():
    n, t = 2, 30
    rng = np.random.default_rng(1)
    base = dict(
        precip=jnp.asarray(rng.gamma(0.5, 5.0, (n, t)), jnp.float32),
        t_min=jnp.full((n, t), 5.0, jnp.float32),
        t_max=jnp.full((n, t), 15.0, jnp.float32),
        doy=jnp.arange(1, t + 1, dtype=jnp.float32),
        lat=jnp.array([40.0, 50.0], jnp.float32),
        pet=jnp.full((n, t), 3.0, jnp.float32),
    )
    time = np.arange("2001-01-01", "2001-01-31", dtype="datetime64[D]")
    plain = simulation_to_dataset(simulate(ColumnModel(), Forcing(**base)), ["a", "b"], time)
    # no lat / lon given: no CF discrete-sampling feature type claimed (it requires them)
    assert "featureType" not in plain.attrs and plain.attrs["Conventions"] == "CF-1.8"
    energy = ("latent_heat", "sensible_heat", "ground_heat", "melt_heat", "energy_residual")
    assert not set(energy) & set(plain)
    radiation = jnp.asarray(rng.uniform(50, 200, (n, t)), jnp.float32)
    ds = simulation_to_dataset(
        simulate(ColumnModel(), Forcing(**base, net_radiation=radiation)), ["a", "b"], time
    )
    for name in energy:
        assert ds[name].attrs["units"] == "W m-2"
    total = (ds["latent_heat"] + ds["sensible_heat"] + ds["ground_heat"] + ds["melt_heat"]).values
    np.testing.assert_allclose(total, np.asarray(radiation), rtol=1e-5, atol=1e-3)


def test_shape_mismatch_is_refused(written):
    _, sim, _ = written
    with pytest.raises(ValueError, match="len\\(columns\\)"):
        simulation_to_dataset(sim, ["only-one"], pd.date_range("2000-01-01", periods=3))


@pytest.mark.parametrize("bad, what", [
    (lambda t: t[::-1], "not strictly increasing"),
    (lambda t: t[:1].append(t[:-1]), "not strictly increasing"),  # a day twice
    (lambda t: pd.date_range(t[0], periods=len(t), freq="6h"), "not daily"),
    (lambda t: t + pd.Timedelta(hours=3), "stamps a day at 03:00"),
])
def test_a_time_axis_that_is_not_daily_is_refused(written, bad, what):
    """Any axis of the right length was written as daily steps, its bounds one day each:
    reversed, repeated or 6-hourly stamps made a file that claims daily totals."""
    _, sim, _ = written
    days = pd.date_range("1995-01-01", periods=np.asarray(sim.fluxes.runoff).shape[1])
    with pytest.raises(ValueError, match=what):
        simulation_to_dataset(sim, ["a", "b", "c"], bad(days))
    noon = simulation_to_dataset(sim, ["a", "b", "c"], days + pd.Timedelta(hours=12))
    assert (pd.DatetimeIndex(noon["time"].values) == days).all()  # a noon stamp is its day's


def test_written_file_is_float32_and_complete(written):
    _, _, path = written
    with xr.open_dataset(path, decode_coords="all") as ds:
        assert "time_bnds" in ds.coords
        assert all(v.dtype == np.float32 for v in ds.data_vars.values())
    assert [p for p in os.listdir(path.parent) if p != path.name] == []


def _small_dataset():
    return xr.Dataset(
        {"x": (("basin", "time"), np.ones((2, 3), np.float32))},
        coords={"basin": ["a", "b"], "time": np.arange(3)},
    )


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.nc"
    target.write_bytes(b"previous result")

    def broken_to_netcdf(self, path, *args, **kwargs):
        with open(path, "wb") as f:  # a partial file, then the failure
            f.write(b"\x89HDF half written")
        raise OSError("No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken_to_netcdf)
    with pytest.raises(OSError, match="No space"):
        write_netcdf(_small_dataset(), target)
    assert target.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["out.nc"]


def test_atomic_write_leaves_nothing_when_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "new.nc"

    def no_replace(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(PermissionError):
        write_netcdf(_small_dataset(), target)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("writer", ["netcdf", "bytes"])
def test_atomic_write_syncs_the_folder_after_the_rename(tmp_path, monkeypatch, writer):
    """The rename is durable only once the folder's entry is on disk: after ``os.replace``
    the folder holding the file is fsynced (a power cut then cannot lose the new name)."""
    import stat

    from hybridland.io._files import atomic_write_bytes

    events, fsync, replace = [], os.fsync, os.replace

    def recording_fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def recording_replace(src, dst):
        events.append("replace")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    target = tmp_path / "out.bin"
    if writer == "netcdf":
        write_netcdf(_small_dataset(), target)
    else:
        atomic_write_bytes(target, lambda f: f.write(b"result"))
    assert events[-3:] == ["fsync file", "replace", "fsync folder"], events
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


@pytest.mark.parametrize("writer", ["netcdf", "bytes"])
def test_atomic_write_through_a_link_keeps_the_link_and_the_mode(tmp_path, writer):
    """Replacing a file through a symbolic link made the link a plain file (the target kept
    its old content), and the new file dropped the mode the user had set."""
    from hybridland.io._files import atomic_write_bytes

    target = tmp_path / "data" / "result.nc"
    target.parent.mkdir()
    write_netcdf(_small_dataset(), target)
    os.chmod(target, 0o640)
    link = tmp_path / "latest.nc"
    link.symlink_to(target)
    if writer == "netcdf":
        write_netcdf(_small_dataset().assign(x=lambda d: d.x * 2), link)
        with xr.open_dataset(target) as ds:
            assert float(ds.x.max()) == 2.0
    else:
        atomic_write_bytes(link, lambda f: f.write(b"new"))
        assert target.read_bytes() == b"new"
    assert link.is_symlink() and os.path.samefile(link, target)
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert sorted(os.listdir(target.parent)) == ["result.nc"]


def test_write_options(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_netcdf(_small_dataset(), tmp_path / "missing" / "out.nc")
    with pytest.raises(ValueError, match="zlib"):
        write_netcdf(_small_dataset(), tmp_path / "out.nc", compression=12)
    path = write_netcdf(_small_dataset(), tmp_path / "z.nc", compression=1)
    with xr.open_dataset(path) as ds:
        assert ds["x"].encoding["zlib"] is True
        np.testing.assert_array_equal(ds["x"].values, 1.0)


def test_output_variables_table_is_consistent():
    names = [v.name for v in OUTPUT_VARIABLES]
    assert len(names) == len(set(names))
    roles = {v.water_budget for v in OUTPUT_VARIABLES}
    assert roles == {None, "input", "output", "storage"}


def test_json_text_writes_standard_json_whatever_the_floats():
    from hybridland.io._files import json_text

    document = {"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": (2, "x"), "e": None}
    text = json_text(document)

    def refuse(word):
        raise ValueError(word)

    assert json.loads(text, parse_constant=refuse) == {
        "a": None, "b": [1.5, None, {"c": None}], "d": [2, "x"], "e": None}
    assert json.loads(json_text({"f": np.float64("nan"), "g": np.float64(0.25)})) == {
        "f": None, "g": 0.25}
