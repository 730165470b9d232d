"""Tests of the canonical dataset and its readers, on the real shared data and spotpy's data.

Conversions are checked against values recomputed by hand from one raw line of each file.
"""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hybridland
from hybridland.io import (
    CANONICAL_VARIABLES,
    DataAdjustmentWarning,
    ForcingDataError,
    data_dir,
    from_cf,
    load_camels,
    load_fluxnet,
    load_fulda,
    load_hymod_catchment,
    load_ismn,
    load_schwingbach,
    mopex_path,
    mopex_to_canonical,
    target,
    to_forcing,
    validate,
)
from hybridland.io.canonical import ROLES, make_dataset
from hybridland.io.spotpy_data import spotpy_file
from hybridland.units import W_M2_PER_MM_DAY

FT3_M3 = 0.3048**3


def check_canonical(ds: xr.Dataset, **kwargs) -> None:
    """Layout, CF attributes on every variable, and validation."""
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds["column"].dtype.kind == "U"
    assert set(ds["lat"].dims) == {"column"} and set(ds["lon"].dims) == {"column"}
    for var in ds.data_vars:
        a = ds[var].attrs
        assert a["role"] in ROLES, var
        assert a["units"] and a["long_name"], var
        if a["role"] == "static":
            assert ds[var].dims == ("column",), var
        else:
            assert ds[var].dims == ("column", "time"), var
            assert a["standard_name"], var
    validate(ds, **kwargs)
    if "precipitation" in ds:
        assert float(ds["precipitation"].min()) >= 0.0


def simulate_finite(ds: xr.Dataset, n_days: int = 60, pet: str = "hargreaves", **kwargs) -> None:
    forcing = to_forcing(ds.isel(time=slice(0, n_days)), pet_source=pet, **kwargs)
    law = {"hargreaves": hybridland.HargreavesPET, "oudin": hybridland.OudinPET}[pet]
    sim = hybridland.simulate(hybridland.ColumnModel(pet=law()), forcing)
    assert np.isfinite(np.asarray(sim.fluxes.runoff)).all()
    assert np.isfinite(np.asarray(sim.fluxes.et)).all()


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_is_cf():
    for name, spec in CANONICAL_VARIABLES.items():
        assert spec.role in ("forcing", "target"), name
        assert spec.standard_name and spec.units and spec.long_name, name
        if spec.role == "forcing":
            assert spec.forcing_field in hybridland.Forcing.__dataclass_fields__, name


# ---------------------------------------------------------------------------------------------
# Readers on real data


@pytest.fixture(scope="module")
def fulda():
    return load_fulda()


def test_fulda(fulda):
    check_canonical(fulda, pet_source="hargreaves")
    assert fulda.sizes["column"] == 1 and fulda.sizes["time"] == 3653
    first = spotpy_file("cmf_data/fulda_climate.csv").read_text(encoding="utf-8").splitlines()[2]
    date, tmax, tmin, _, prec, q = first.split(",")
    assert pd.Timestamp(fulda.time.values[0]) == pd.Timestamp("1979-01-01") and date == "01.01.1979"
    assert target(fulda, "streamflow")[0, 0] == pytest.approx(
        float(q) * 86400 / 2976.41e6 * 1000, rel=1e-12
    )
    assert fulda.precipitation.values[0, 0] == float(prec)
    assert fulda.air_temperature_min.values[0, 0] == float(tmin)
    assert (fulda.air_temperature_min <= fulda.air_temperature_max).all()
    simulate_finite(fulda)


def test_hymod_catchment():
    ds = load_hymod_catchment()
    check_canonical(ds, require_forcing=False)
    q = target(ds, "streamflow")
    assert np.isnan(q[0, :366]).all() and np.isfinite(q[0, 366:]).all()  # missing in 2012
    line = next(
        ln for ln in spotpy_file("hymod_python/hymod_input.csv").read_text().splitlines()
        if ln.startswith("01.01.2013")
    )
    litres = float(line.split(";")[3])
    assert q[0, 366] == pytest.approx(litres / 1000 * 86400 / 1.783e6 * 1000, rel=1e-12)
    # No temperature in the file: not a complete forcing, and the error names the variable.
    with pytest.raises(ForcingDataError, match="air_temperature_min") as err:
        validate(ds)
    assert err.value.variable == "air_temperature_min"


def test_schwingbach():
    ds = load_schwingbach()
    check_canonical(ds, pet_source="hargreaves")
    lines = [
        ln for ln in spotpy_file("cmf_data/driver_data_site24.csv").read_text().splitlines()
        if ln.startswith("2014-01-01 ")
    ]
    assert len(lines) == 24
    rain = np.mean([float(ln.split(",")[1]) for ln in lines])  # hourly rates in mm day-1
    t = [float(ln.split(",")[5]) for ln in lines]
    assert ds.precipitation.values[0, 0] == pytest.approx(rain, rel=1e-12)
    assert ds.air_temperature_max.values[0, 0] == pytest.approx(max(t))
    sm = target(ds, "soil_moisture_10cm")
    assert np.nanmin(sm) > 0.05 and np.nanmax(sm) < 0.6
    simulate_finite(ds)


@pytest.fixture(scope="module")
def camels():
    return load_camels(start="2000-01-01", end="2000-12-31")


def test_camels(camels):
    check_canonical(camels, pet_source="hargreaves")
    root = data_dir() / "camels_us_sample"
    gauge = "01022500"
    topo = (root / "camels_attributes_v2.0" / "camels_topo.txt").read_text().splitlines()
    header = topo[0].split(";")
    row = next(ln.split(";") for ln in topo if ln.startswith(gauge))
    area = float(row[header.index("area_gages2")])
    flow = (root / "usgs_streamflow" / f"{gauge}_streamflow_qc.txt").read_text().splitlines()
    q_cfs = float(flow[0].split()[4])
    assert flow[0].split()[1:4] == ["2000", "01", "01"]
    q = target(camels, "streamflow")[list(camels.column.values).index(gauge), 0]
    assert q == pytest.approx(q_cfs * FT3_M3 * 86400 / (area * 1e6) * 1000, rel=1e-12)
    assert camels.area_km2.sel(column=gauge) == area
    assert camels.aridity.attrs["role"] == "static" and (camels.aridity > 0).all()
    assert float(camels.lat.sel(column=gauge)) == pytest.approx(44.82, abs=0.01)
    forcing = to_forcing(camels, attributes=["aridity", "elev_mean"])
    assert forcing.attributes.shape == (camels.sizes["column"], 2)
    simulate_finite(camels)


def test_camels_unknown_gauge():
    with pytest.raises(ForcingDataError, match="99999999"):
        load_camels(gauges=["99999999"])
    # one id as a string is that gauge, not eight one-character ids
    one = load_camels(gauges="01022500", start="2000-01-01", end="2000-01-31")
    assert list(one.column.values) == ["01022500"]


def test_camels_gauge_without_a_streamflow_file_is_reported(tmp_path):
    """A gauge whose streamflow file is missing got an all-NaN target without a word."""
    import shutil

    root = tmp_path / "camels"
    shutil.copytree(data_dir() / "camels_us_sample", root)
    (root / "usgs_streamflow" / "01547700_streamflow_qc.txt").unlink()
    with pytest.warns(DataAdjustmentWarning, match=r"01547700 have forcing but no streamflow "
                      r"file \(expected .*01547700_streamflow_qc.txt\)"):
        ds = load_camels(root, start="2000-01-01", end="2000-01-31")
    q = ds.streamflow.sel(column="01547700").values
    assert np.isnan(q).all() and np.isfinite(ds.streamflow.sel(column="01022500").values).all()
    assert "no streamflow file for 01547700" in ds.streamflow.attrs["comment"]


def test_camels_zero_flow_frequency_is_a_fraction(camels):
    # labelled percent, its values are fractions of days (at most 0.965 in CAMELS)
    assert camels["zero_q_freq"].attrs["units"] == "1"
    assert float(camels["zero_q_freq"].max()) <= 1.0


@pytest.fixture(scope="module")
def fluxnet_path():
    return next((data_dir() / "fluxnet").glob("FLX_US-AR1_*.csv"))


def test_fluxnet(fluxnet_path):
    ds = load_fluxnet(fluxnet_path)
    check_canonical(ds, pet_source="oudin", energy=False)
    # the site has only the daily mean temperature: Hargreaves PET would be zero on every day
    np.testing.assert_array_equal(ds.air_temperature_min.values, ds.air_temperature_max.values)
    with pytest.raises(ForcingDataError, match=r"(?s)equals 'air_temperature_max' on every day "
                       r"for column\(s\) US-AR1.*pet_source='oudin'") as err:
        validate(ds, pet_source="hargreaves", energy=False)
    assert err.value.variable == "air_temperature_min" and err.value.basins == ("US-AR1",)
    assert ds.lat.item() == pytest.approx(36.43, abs=0.01)
    raw = pd.read_csv(fluxnet_path)
    day = 400
    le = raw["LE_F_MDS"].iloc[day]
    assert le != -9999
    assert target(ds, "evapotranspiration")[0, day] == pytest.approx(le / W_M2_PER_MM_DAY)
    swc = raw["SWC_F_MDS_1"].to_numpy()
    assert np.isnan(target(ds, "soil_moisture")[0, swc == -9999]).all()
    ok = swc != -9999
    np.testing.assert_allclose(target(ds, "soil_moisture")[0, ok], swc[ok] / 100)
    # Gaps in net radiation make the energy forcing invalid; the error names it.
    with pytest.raises(ForcingDataError, match="net_radiation"):
        validate(ds, pet_source="oudin")
    simulate_finite(ds, pet="oudin", energy=False)


def test_fluxnet_qc_and_site(fluxnet_path, tmp_path):
    raw = pd.read_csv(fluxnet_path)
    masked = load_fluxnet(fluxnet_path, min_qc=0.8)
    low = (raw["LE_F_MDS_QC"] < 0.8).to_numpy()
    assert low.any()
    assert np.isnan(target(masked, "latent_heat_flux")[0, low]).all()
    assert np.isfinite(target(masked, "latent_heat_flux")[0, ~low]).all()
    np.testing.assert_array_equal(masked.precipitation.values[0], raw["P_F"].to_numpy())
    renamed = tmp_path / "site_without_name.csv"
    renamed.write_bytes(fluxnet_path.read_bytes())
    with pytest.raises(ForcingDataError, match="lat= and lon="):
        load_fluxnet(renamed)
    ds = load_fluxnet(renamed, site="XX-New", lat=10.0, lon=20.0)
    assert ds.column.values[0] == "XX-New" and ds.lon.item() == 20.0


ISMN_MULTI = "ISMN_multinetwork_SCAN_SOILSCAPE_MAQU_2007-2013.zip"
ISMN_CEOP = "ISMN_COSMOS_FRAqui_ceop.zip"


def test_ismn_header_values():
    path = data_dir() / "ismn" / ISMN_MULTI
    with pytest.raises(ForcingDataError, match="flags found"):
        load_ismn(path)  # this download has no 'G' flags at all
    ds = load_ismn(path, depth=(0.05, 0.05), flags=("G", "U"))
    check_canonical(ds, require_forcing=False)
    assert ds.sizes["column"] == 5  # MAQU x2, SOILSCAPE x3 at 5 cm; SCAN is at 5.08 cm
    sm = target(ds, "soil_moisture")
    assert np.nanmin(sm) >= 0 and np.nanmax(sm) <= 0.6
    # Recompute one daily mean by hand from the raw text.
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if "CST-01" in n and n.endswith(".stm"))
        lines = zf.read(name).decode("latin-1").splitlines()
    header = lines[0].split()
    day = [ln.split() for ln in lines[1:] if ln.startswith("2008/07/03")]
    expected = np.mean([float(p[2]) for p in day if p[3] in ("G", "U")])
    col = "MAQU/CST_01/0.05-0.05/" + header[8]
    assert ds.soil_moisture.sel(column=col, time="2008-07-03").item() == pytest.approx(expected)
    assert float(ds.lat.sel(column=col)) == float(header[3])


def test_ismn_ceop():
    ds = load_ismn(data_dir() / "ismn" / ISMN_CEOP)
    check_canonical(ds, require_forcing=False)
    assert ds.sizes["column"] == 3
    assert float(ds.lat.sel(column="COSMOS/Barrow-ARM/0-0.21/Cosmic-ray-Probe")) == 71.3298


def test_mopex_to_canonical():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        ds = mopex_to_canonical(
            mopex_path(), start="1990-01-01", end="1991-12-31",
            basins=["01055500", "06868000", "10296500"], inverted_temperature="swap",
        )
    check_canonical(ds)
    ar = ds.aridity.values
    expected = ds.potential_evapotranspiration.mean("time") / ds.precipitation.mean("time")
    np.testing.assert_allclose(ar, expected.values)
    # Maine humid; Kansas semi-arid and summer-wet; Sierra Nevada winter-wet and snowy.
    assert ar[0] < 1 < ar[1]
    snow, season = ds.frac_snow.values, ds.p_t_correlation.values
    assert snow[2] > snow[0] > snow[1]
    assert season[1] > 0 > season[2] and np.all(np.abs(season) <= 1)
    forcing = to_forcing(ds)
    assert forcing.pet is not None and forcing.precip.shape == (3, ds.sizes["time"])


# ---------------------------------------------------------------------------------------------
# Bad input


def small(n_days: int = 10, **series) -> xr.Dataset:
    time = pd.date_range("2001-03-01", periods=n_days, freq="D")
    base = {
        "precipitation": np.ones((2, n_days)),
        "air_temperature_min": np.zeros((2, n_days)),
        "air_temperature_max": np.full((2, n_days), 10.0),
        "potential_evapotranspiration": np.full((2, n_days), 2.0),
    }
    base.update(series)
    return make_dataset(["a", "b"], time, [45.0, 50.0], [5.0, 6.0], base)


def test_small_is_valid():
    validate(small())
    simulate_finite(small())


def test_nan_forcing_names_variable_and_column():
    p = np.ones((2, 10))
    p[1, 4] = np.nan
    with pytest.raises(ForcingDataError, match=r"'precipitation'.*\bb\b.*2001-03-05") as err:
        validate(small(precipitation=p))
    assert err.value.variable == "precipitation" and err.value.basins == ("b",)


def test_negative_precipitation():
    p = np.ones((2, 10))
    p[0, 2] = -0.5
    with pytest.raises(ForcingDataError, match="negative") as err:
        validate(small(precipitation=p))
    assert err.value.basins == ("a",)


def test_negative_potential_evapotranspiration():
    pet = np.full((2, 10), 2.0)
    pet[1, 3] = -1.0
    with pytest.raises(ForcingDataError, match="negative") as err:
        validate(small(potential_evapotranspiration=pet), pet_source="given")
    assert err.value.variable == "potential_evapotranspiration" and err.value.basins == ("b",)


def test_negative_streamflow_is_a_missing_value_marker_refused():
    q = np.full((2, 10), 1.5)
    q[1, 4:] = -999.0  # CAMELS' and USGS exports' marker, read as a flow before
    with pytest.raises(ForcingDataError, match=r"'streamflow'.*negative.*\bb\b.*6 day.*NaN") as err:
        validate(small(streamflow=q))
    assert err.value.variable == "streamflow" and err.value.basins == ("b",)
    q[1, 4:] = np.nan  # the same gap, marked as missing: valid
    validate(small(streamflow=q))


@pytest.mark.parametrize("var, value, words", [
    ("precipitation", 2500.0, ("2000", "mm day-1", "another unit")),
    ("potential_evapotranspiration", 31.0, ("30", "mm day-1", "hargreaves")),
    ("air_temperature_max", 300.0, ("60", "kelvin", "273.15")),
    ("air_temperature_min", -95.0, ("-90", "degC")),
])
def test_values_beyond_any_climate_are_refused(var, value, words):
    # a unit error (kelvin, micrometres) was simulated as weather without a word
    ds = small(potential_evapotranspiration=np.full((2, 10), 2.0))
    a = ds[var].values.copy()
    a[1, 6] = value
    ds[var] = (ds[var].dims, a, ds[var].attrs)
    with pytest.raises(ForcingDataError, match="beyond any climate") as err:
        validate(ds, pet_source="given")
    assert err.value.variable == var and err.value.basins == ("b",)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_a_minimum_temperature_above_the_maximum_is_refused():
    # Swapped minimum and maximum went through: the Hargreaves range was zero, and PET with it.
    ds = small(potential_evapotranspiration=np.full((2, 10), 2.0))
    t_min, t_max = ds["air_temperature_min"].values.copy(), ds["air_temperature_max"].values
    t_min[1, 3:5] = t_max[1, 3:5] + 5.0
    ds["air_temperature_min"] = (ds["air_temperature_min"].dims, t_min,
                                 ds["air_temperature_min"].attrs)
    with pytest.raises(ForcingDataError, match=r"'air_temperature_min' is above "
                       r"'air_temperature_max'.*\bb\b.*2 day.*swap") as err:
        validate(ds, pet_source="hargreaves")
    assert err.value.variable == "air_temperature_min" and err.value.basins == ("b",)
    t_min[1, 3:5] = t_max[1, 3:5] + 0.05  # a rounding difference in the source: accepted
    ds["air_temperature_min"] = (ds["air_temperature_min"].dims, t_min,
                                 ds["air_temperature_min"].attrs)
    validate(ds, pet_source="hargreaves")


def test_unknown_units():
    ds = small()
    ds["air_temperature_max"].attrs["units"] = "degF"
    with pytest.raises(ForcingDataError, match="air_temperature_max.*degF"):
        validate(ds)


def test_missing_variable_and_pet_source():
    ds = small().drop_vars("potential_evapotranspiration")
    with pytest.raises(ForcingDataError, match="potential_evapotranspiration"):
        validate(ds)
    validate(ds, pet_source="oudin")
    with pytest.raises(ForcingDataError, match="air_temperature_max"):
        validate(ds.drop_vars("air_temperature_max"), pet_source="oudin")


def test_bad_time_axis():
    ds = small()
    gap = ds.assign_coords(time=ds.time.values + np.r_[[np.timedelta64(0, "D")] * 5,
                                                      [np.timedelta64(2, "D")] * 5])
    with pytest.raises(ForcingDataError, match="not daily"):
        validate(gap)
    shuffled = ds.isel(time=[0, 2, 1, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ForcingDataError, match="not strictly increasing"):
        validate(shuffled)
    hourly = ds.assign_coords(time=ds.time.values + np.timedelta64(6, "h"))
    with pytest.raises(ForcingDataError, match="midnight"):
        validate(hourly)


def test_netcdf_loader_checks_the_time_axis_before_selecting_days(tmp_path):
    """Two swapped days in a canonical file gave a pandas KeyError from the period selection."""
    from hybridland.train.config import DataConfig
    from hybridland.train.data import LOADERS

    ds = small(n_days=40, streamflow=np.ones((2, 40)))
    path = tmp_path / "canonical.nc"
    ds.isel(time=[0, 1, 2, 4, 3, *range(5, 40)]).to_netcdf(path)
    config = DataConfig(loader="netcdf", path=str(path), warmup_days=3,
                        train_period=("2001-03-05", "2001-03-20"),
                        validation_period=("2001-03-21", "2001-04-09"))
    with pytest.raises(ForcingDataError, match="not strictly increasing") as err:
        LOADERS["netcdf"](config, 0)
    assert err.value.variable == "time"


def test_wrong_dims():
    ds = small()
    ds["precipitation"] = ds["precipitation"].isel(column=0, drop=True).expand_dims(x=2)
    with pytest.raises(ForcingDataError, match="precipitation.*dimensions"):
        validate(ds)


# ---------------------------------------------------------------------------------------------
# from_cf


def cf_dataset(t_units="K", p_units="kg m-2 s-1") -> xr.Dataset:
    time = pd.date_range("2000-06-01", periods=5, freq="D")
    shape = (2, 5)
    return xr.Dataset(
        {
            "pr": (("station", "time"), np.full(shape, 2.0 / 86400.0),
                   {"standard_name": "precipitation_flux", "units": p_units}),
            "tasmin": (("station", "time"), np.full(shape, 283.15),
                       {"standard_name": "air_temperature", "units": t_units,
                        "cell_methods": "time: minimum"}),
            "tasmax": (("station", "time"), np.full(shape, 298.15),
                       {"standard_name": "air_temperature", "units": t_units,
                        "cell_methods": "time: maximum"}),
            "mrsos": (("station", "time"), np.full(shape, 25.0),
                      {"standard_name": "volume_fraction_of_condensed_water_in_soil",
                       "units": "%"}),
            "other": (("station", "time"), np.zeros(shape), {"units": "1"}),
        },
        coords={"station": ["s1", "s2"], "time": time,
                "latitude": ("station", [40.0, 41.0], {"standard_name": "latitude"}),
                "longitude": ("station", [-3.0, -4.0], {"standard_name": "longitude"})},
    )


def test_from_cf_converts_units():
    ds = from_cf(cf_dataset())
    check_canonical(ds, pet_source="hargreaves")
    np.testing.assert_allclose(ds.precipitation.values, 2.0)
    np.testing.assert_allclose(ds.air_temperature_min.values, 10.0, atol=1e-9)
    np.testing.assert_allclose(ds.air_temperature_max.values, 25.0, atol=1e-9)
    np.testing.assert_allclose(target(ds, "soil_moisture"), 0.25)
    assert list(ds.column.values) == ["s1", "s2"] and list(ds.lat.values) == [40.0, 41.0]
    assert "other" not in ds


@pytest.mark.parametrize("units", ["degree_C", "degrees_C", "degC", "Celsius"])
def test_from_cf_reads_the_spellings_of_celsius(units):
    ds = cf_dataset()
    for var in ("tasmin", "tasmax"):
        ds[var] = ds[var].copy(data=ds[var].values - 273.15)
        ds[var].attrs["units"] = units
    got = from_cf(ds)
    np.testing.assert_allclose(got.air_temperature_max.values, 25.0, atol=1e-9)


def test_from_cf_unknown_units():
    with pytest.raises(ForcingDataError, match="'pr'.*furlongs"):
        from_cf(cf_dataset(p_units="furlongs per fortnight"))


def test_from_cf_tells_minimum_and_maximum_apart_by_long_name():
    """E-OBS names its temperatures tn/tx, long names 'minimum/maximum temperature', without
    cell_methods: both were read as daily means and the maximum silently became the minimum."""
    ds = cf_dataset().rename(tasmin="tn", tasmax="tx")
    for var, long_name in (("tn", "minimum temperature"), ("tx", "maximum temperature")):
        del ds[var].attrs["cell_methods"]
        ds[var].attrs["long_name"] = long_name
    got = from_cf(ds)
    np.testing.assert_allclose(got.air_temperature_min.values, 10.0, atol=1e-9)
    np.testing.assert_allclose(got.air_temperature_max.values, 25.0, atol=1e-9)
    for var in ("tn", "tx"):  # nothing tells them apart: refused, not merged
        del ds[var].attrs["long_name"]
    with pytest.raises(ForcingDataError, match=r"'tn', 'tx'.*'time: minimum'.*'time: maximum'"
                       ) as err:
        from_cf(ds)
    assert err.value.variable == "tn"


def test_from_cf_refuses_two_variables_for_one():
    """Two variables with one standard name (pr and a corrected pr): the last one was read."""
    ds = cf_dataset()
    ds["pr_corrected"] = ds["pr"].copy(data=ds["pr"].values * 1.2)
    with pytest.raises(ForcingDataError, match=r"'pr'.*'pr_corrected'.*'precipitation'.*Drop"
                       ) as err:
        from_cf(ds)
    assert err.value.variable == "pr"


def _from_cf_file_with_day_bounds(ds, start, tmp_path):
    """``from_cf`` of ``ds`` written to a file with CF ``time_bnds`` of one day from each of
    ``start`` and read back (the bounds then decoded as dates, as from any file)."""
    ds["time_bnds"] = (("time", "bnds"), np.stack([start, start + pd.Timedelta("1D")], axis=1))
    ds["time"].attrs["bounds"] = "time_bnds"
    ds["time"].encoding["units"] = ds["time_bnds"].encoding["units"] = "days since 2000-01-01"
    ds.to_netcdf(tmp_path / "bounds.nc")
    with xr.open_dataset(tmp_path / "bounds.nc") as raw:
        return from_cf(raw)


@pytest.mark.parametrize("stations", [2, 1])
def test_from_cf_leaves_out_time_bounds(stations, tmp_path):
    """A CF time_bnds (dims time, bnds) was taken for a second column dimension: refused
    without a fix for several stations, a raw xarray error for one."""
    ds = cf_dataset().isel(station=slice(stations))
    if stations == 1:  # a single-site file: no station dimension
        ds = ds.isel(station=0).drop_vars("station")
    got = _from_cf_file_with_day_bounds(ds, pd.DatetimeIndex(ds.time.values), tmp_path)
    assert got.sizes == {"column": stations, "time": 5} and "time_bnds" not in got
    np.testing.assert_allclose(got.precipitation.values, 2.0)


def test_from_cf_reads_each_day_from_its_time_bounds(tmp_path):
    """A file that stamps each day at its end (midnight of the next day, bounds [day, day+1],
    as some model outputs do) was read a day late: the bounds were dropped unread."""
    ds = cf_dataset()
    start = pd.DatetimeIndex(ds.time.values)
    ds["pr"][:, 0] = 10.0 / 86400.0  # 10 mm on the first day, 2 mm on the others
    ds = ds.assign_coords(time=start + pd.Timedelta("1D"))
    got = _from_cf_file_with_day_bounds(ds, start, tmp_path)
    assert (pd.DatetimeIndex(got.time.values) == start).all()
    np.testing.assert_allclose(got.precipitation.values[:, 0], 10.0)
    # bounds of other than one day: refused, naming the step
    hours = ds.assign(time_bnds=(("time", "bnds"),
                                 np.stack([start, start + pd.Timedelta("6h")], axis=1)))
    with pytest.raises(ForcingDataError, match=r"time bounds 'time_bnds'.*0 days 06:00:00 at "
                       r"position 0.*not one day") as err:
        from_cf(hours)
    assert err.value.variable == "time"


def test_from_cf_takes_station_ids_from_the_timeseries_id_variable():
    """CF station files name their stations by a variable with cf_role timeseries_id, the
    station dimension having no coordinate: the ids came back as 0, 1."""
    ds = cf_dataset().drop_vars("station")
    ds["station_id"] = ("station", ["01022500", "01547700"], {"cf_role": "timeseries_id"})
    got = from_cf(ds)
    assert list(got.column.values) == ["01022500", "01547700"]
    np.testing.assert_allclose(got.lat.values, [40.0, 41.0])


def test_from_cf_series_without_the_column_dimension():
    """One air temperature series for every station (dims (time,)) gave a raw xarray error."""
    ds = cf_dataset()
    ds["tasmax"] = ds["tasmax"].isel(station=0, drop=True)
    with pytest.raises(ForcingDataError, match=r"'tasmax'.*\('time',\).*\('station', 'time'\)"
                       r".*repeated") as err:
        from_cf(ds)
    assert err.value.variable == "tasmax"
