"""Tests of the MOPEX reader: real shared data, and every bad-input case on synthetic files."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland.io import (
    DataAdjustmentWarning,
    ForcingDataError,
    data_dir,
    forcing_from_dataset,
    load_mopex,
    mopex_path,
)

# ---------------------------------------------------------------------------------------------
# Synthetic files in the MOPEX layout (also used by test_cli.py and test_output.py)

BASINS = ("01000001", "02000002", "03000003")
NAMES = ("ALPHA CREEK NR A", "BETA RIVER AT B", "GAMMA BROOK")


def synthetic_dataset(n_days: int = 120, start: str = "2000-01-01", seed: int = 0) -> xr.Dataset:
    """Three basins of plausible daily forcing with the units, dims and coords of MOPEX."""
    rng = np.random.default_rng(seed)
    n = len(BASINS)
    time = pd.date_range(start, periods=n_days, freq="D")
    season = np.sin(2 * np.pi * (time.day_of_year.to_numpy() - 110) / 365.0)
    precip = rng.gamma(0.4, 6.0, (n, n_days)).astype(np.float32)
    t_mean = (8.0 + 12.0 * season + rng.normal(0, 3, (n, n_days))).astype(np.float32)
    t_range = rng.uniform(4, 14, (n, n_days)).astype(np.float32)
    pe = np.clip(2.5 + 2.0 * season, 0.1, None) * np.ones((n, 1))
    q = rng.gamma(0.5, 1.0, (n, n_days)).astype(np.float32)
    flux = {"units": "mm day-1"}
    temp = {"units": "degC"}
    return xr.Dataset(
        {
            "P": (("basin", "time"), precip, dict(flux)),
            "PE": (("basin", "time"), pe.astype(np.float32), dict(flux)),
            "Q": (("basin", "time"), q, dict(flux)),
            "T_max": (("basin", "time"), t_mean + t_range / 2, dict(temp)),
            "T_min": (("basin", "time"), t_mean - t_range / 2, dict(temp)),
        },
        coords={
            "basin": list(BASINS),
            "time": time,
            "lat": ("basin", np.array([44.0, 38.5, 31.0], np.float32)),
            "lon": ("basin", np.array([-70.0, -90.0, -105.0], np.float32)),
            "area_km2": ("basin", np.array([500.0, 1200.0, 80.0], np.float32)),
            "name": ("basin", list(NAMES)),
            "state": ("basin", ["ME", "MO", "TX"]),
        },
    )


def write(ds: xr.Dataset, tmp_path, name: str = "forcing.nc") -> str:
    path = tmp_path / name
    ds.to_netcdf(path)
    return str(path)


def load_quiet(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return load_mopex(path, **kwargs)


@pytest.fixture
def x64_off():
    """Run a test with 64-bit JAX off, whatever the session set, and restore it after."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64_on():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


# ---------------------------------------------------------------------------------------------
# Data path


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLAND_DATA", str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    monkeypatch.setenv("HYBRIDLAND_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="HYBRIDLAND_DATA"):
        data_dir()
    with pytest.raises(FileNotFoundError, match="HYBRIDLAND_DATA"):
        mopex_path()


def test_relative_data_dir_does_not_follow_a_later_chdir(tmp_path, monkeypatch):
    """``make test`` exports ``HYBRIDLAND_DATA=../shared/data``; a test (or a study) that then
    changes directory must still find the data the relative path named at start-up."""
    import hybridland.io.paths as paths

    start = tmp_path / "repo"
    (tmp_path / "shared" / "data").mkdir(parents=True)
    start.mkdir()
    monkeypatch.setattr(paths, "_START_DIR", start)
    monkeypatch.setenv("HYBRIDLAND_DATA", "../shared/data")
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert data_dir() == (tmp_path / "shared" / "data").resolve()
    assert data_dir().is_absolute()


def test_data_dir_default_is_beside_the_repository(monkeypatch):
    import hybridland.io.paths as paths

    monkeypatch.delenv("HYBRIDLAND_DATA", raising=False)
    expected = (paths.repo_root().parent / "shared" / "data").resolve()
    assert data_dir(must_exist=False) == expected
    assert (paths.repo_root() / "hybridland" / "__init__.py").is_file()


# ---------------------------------------------------------------------------------------------
# Real shared MOPEX data (small subsets)


def test_reads_real_mopex_subset(mopex_file):
    ids = ["01055500", "12358500", "11224500"]
    got = load_quiet(
        mopex_file,
        basins=ids,
        start="1990-01-01",
        end="1990-12-31",
        pet="given",
        inverted_temperature="swap",
    )
    with xr.open_dataset(mopex_file) as ds:
        ref = ds.sel(basin=ids, time=slice("1990-01-01", "1990-12-31")).load()
    assert got.basins == tuple(ids)
    assert got.names == tuple(str(n).strip() for n in ref["name"].values)
    assert got.n_days == ref.sizes["time"] == 365
    f = got.forcing
    assert f.precip.shape == f.t_min.shape == f.pet.shape == (3, 365)
    assert f.doy.shape == (365,) and f.lat.shape == (3,)
    assert f.precip.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(f.precip), ref["P"].values)
    np.testing.assert_array_equal(np.asarray(f.pet), ref["PE"].values)
    np.testing.assert_array_equal(np.asarray(f.lat), ref["lat"].values)
    np.testing.assert_array_equal(np.asarray(f.doy), np.arange(1, 366))
    # The temperatures are the file's, swapped exactly where T_min > T_max + tolerance.
    tn, tx = ref["T_min"].values, ref["T_max"].values
    inverted = (tn.astype(np.float64) - tx) > 0.1
    np.testing.assert_array_equal(np.asarray(f.t_min), np.where(inverted, tx, tn))
    np.testing.assert_array_equal(np.asarray(f.t_max), np.where(inverted, tn, tx))
    assert [n.basin for n in got.report.swapped] == [
        b for b, r in zip(ids, inverted, strict=True) if r.any()
    ]
    np.testing.assert_array_equal(got.observed_runoff, ref["Q"].values)


def test_real_mopex_float64(mopex_file, x64_on):
    got = load_quiet(
        mopex_file,
        basins=["01055500"],
        start="1995-01-01",
        end="1995-01-31",
        dtype=np.float64,
        inverted_temperature="swap",
    )
    assert got.forcing.precip.dtype == np.float64
    assert got.forcing.doy.dtype == np.float64


def test_real_mopex_gaps_are_refused_then_trimmed_or_dropped(mopex_file):
    gap = "10296500"  # W Walker River: P missing in early 1948 (leading gap)
    full = "01055500"
    period = dict(start="1948-01-01", end="1948-12-31", inverted_temperature="swap")
    with xr.open_dataset(mopex_file) as ds:
        p = ds["P"].sel(basin=gap, time=slice("1948-01-01", "1948-12-31")).values
        name = str(ds["name"].sel(basin=gap).values).strip()
    leading = int(np.argmax(~np.isnan(p)))
    assert leading > 0, "the test needs this basin's leading gap"

    with pytest.raises(ForcingDataError) as err:
        load_quiet(mopex_file, basins=[gap, full], **period)
    assert err.value.variable == "P" and err.value.basins == (gap,)
    assert gap in str(err.value) and name in str(err.value) and "--trim" in str(err.value)

    trimmed = load_quiet(mopex_file, basins=[gap, full], trim=True, **period)
    assert trimmed.n_days == len(p) - leading
    assert trimmed.report.trimmed_start[2] == leading
    assert any(name in line for line in trimmed.report.messages())

    dropped = load_quiet(mopex_file, basins=[gap, full], drop_incomplete=True, **period)
    assert dropped.basins == (full,) and dropped.report.dropped_basins == (gap,)


def test_real_mopex_missing_pe_matters_only_for_given_pet(mopex_file):
    no_pe = "01060000"  # Royal River: no PE at all
    kwargs = dict(basins=[no_pe], start="1990-01-01", end="1990-03-31", inverted_temperature="swap")
    with pytest.raises(ForcingDataError) as err:
        load_quiet(mopex_file, pet="given", **kwargs)
    assert err.value.variable == "PE" and no_pe in str(err.value)
    derived = load_quiet(mopex_file, pet="hargreaves", **kwargs)
    assert derived.forcing.pet is None and derived.n_days == 90


# ---------------------------------------------------------------------------------------------
# Bad input, one case at a time (synthetic files)


def _nan(var, basin):
    def edit(ds):
        ds[var][basin, 10:13] = np.nan
        return ds

    return edit


BAD_CASES = {
    "missing T_min": (lambda ds: ds.drop_vars("T_min"), "T_min", None, {}),
    "missing P": (lambda ds: ds.drop_vars("P"), "P", None, {}),
    "missing PE for given PET": (lambda ds: ds.drop_vars("PE"), "PE", None, {}),
    "wrong dims": (
        lambda ds: ds.assign(P=(("basin", "day"), ds["P"].values, {"units": "mm day-1"})),
        "P",
        None,
        {},
    ),
    "NaN P": (_nan("P", 1), "P", 1, {}),
    "NaN T_max": (_nan("T_max", 2), "T_max", 2, {}),
    "NaN T_min": (_nan("T_min", 0), "T_min", 0, {}),
    "NaN PE": (_nan("PE", 1), "PE", 1, {}),
    "negative P": (lambda ds: ds["P"].__setitem__((2, 5), -1.0) or ds, "P", 2, {}),
    "negative PE": (lambda ds: ds["PE"].__setitem__((1, 5), -1.0) or ds, "PE", 1, {}),
    # a missing-value marker in the observations was trained on and scored as a flow
    "Q of -99 (a missing-value marker)": (
        lambda ds: ds["Q"].__setitem__((2, slice(3, 9)), -99.0) or ds, "Q", 2, {}),
    # beyond every climate on Earth on more days than recording errors: unit errors, once
    # simulated as weather
    "P of 5 m/day on 11 days": (lambda ds: ds["P"].__setitem__((0, slice(0, 11)), 5000.0) or ds,
                                "P", 0, {}),
    "PE of 45 mm/day on 20 days": (
        lambda ds: ds["PE"].__setitem__((2, slice(4, 24)), 45.0) or ds, "PE", 2, {}),
    "T_max in kelvin": (
        lambda ds: ds["T_max"].__setitem__((1, slice(None)), ds["T_max"][1] + 273.15) or ds,
        "T_max",
        1,
        {},
    ),
    "one T_min below -90 degC, strict": (
        lambda ds: ds["T_min"].__setitem__((2, 3), -120.0) or ds, "T_min", 2,
        {"implausible": "error"}),
    "T_min above T_max": (
        lambda ds: ds["T_min"].__setitem__((1, 7), float(ds["T_max"][1, 7]) + 2.0) or ds,
        "T_min",
        1,
        {},
    ),
    "wrong P units": (lambda ds: ds["P"].attrs.update(units="mm") or ds, "P", None, {}),
    "wrong T_max units": (lambda ds: ds["T_max"].attrs.update(units="K") or ds, "T_max", None, {}),
    "no units on PE": (lambda ds: ds["PE"].attrs.pop("units") and ds, "PE", None, {}),
    "non-daily time": (
        lambda ds: ds.assign_coords(
            time=pd.date_range("2000-01-01", periods=ds.sizes["time"], freq="2D")
        ),
        "time",
        None,
        {},
    ),
    "non-monotonic time": (
        lambda ds: ds.assign_coords(
            time=ds["time"].values[[0, 2, 1] + list(range(3, ds.sizes["time"]))]
        ),
        "time",
        None,
        {},
    ),
    "NaN latitude with derived PET": (
        lambda ds: ds["lat"].__setitem__(0, np.nan) or ds,
        "lat",
        0,
        {"pet": "oudin"},
    ),
}


def test_isolated_values_beyond_any_climate_are_interpolated_and_reported(tmp_path):
    # the MOPEX file's T_max of 281 degC on 1982-05-22 was simulated as weather (and its T_min
    # of 87 degC on 1981-09-04 swapped into T_max by the inversion repair)
    ds = synthetic_dataset()
    spikes = {("T_max", 1, 40): 280.8, ("T_min", 2, 41): 87.0, ("P", 0, 0): 9000.0,
              ("PE", 2, 119): 31.85}
    for (var, i, d), value in spikes.items():
        ds[var][i, d] = value
    path = write(ds, tmp_path)
    with pytest.warns(DataAdjustmentWarning, match="beyond any climate") as caught:
        loaded = load_mopex(path, inverted_temperature="swap")
    report = " ".join(str(w.message) for w in caught)
    clean = synthetic_dataset()
    names = {"T_max": "t_max", "T_min": "t_min", "P": "precip", "PE": "pet"}
    for (var, i, d), value in spikes.items():
        assert f"{value:g}" in report and BASINS[i] in report
        got = np.asarray(getattr(loaded.forcing, names[var]))[i, d]
        series = clean[var].values[i]
        # the linear interpolation between the neighbouring days (the nearest one at an end)
        want = series[1] if d == 0 else series[-2] if d == len(series) - 1 \
            else 0.5 * (series[d - 1] + series[d + 1])
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # nothing else changes: the other days, the other variables, the streamflow, the calendar
    np.testing.assert_allclose(np.asarray(loaded.observed_runoff), clean["Q"].values, rtol=1e-6)
    assert len(loaded.time) == clean.sizes["time"]
    assert len(loaded.report.replaced) == 4 and loaded.report.changed
    assert not loaded.report.swapped  # the T_min spike no longer reads as an inversion
    with pytest.raises(ForcingDataError, match="leave out --strict") as err:
        load_quiet(path, implausible="error", inverted_temperature="swap")
    assert err.value.variable == "P"


def test_a_basin_with_a_unit_error_is_dropped_with_drop_incomplete(tmp_path):
    # a whole file failed for one basin whose T_max is in kelvin
    ds = synthetic_dataset()
    ds["T_max"][1] = ds["T_max"][1] + 273.15
    path = write(ds, tmp_path)
    with pytest.warns(DataAdjustmentWarning, match="unit error"):
        loaded = load_mopex(path, drop_incomplete=True)
    assert loaded.basins == (BASINS[0], BASINS[2])
    assert loaded.report.dropped_basins == (BASINS[1],)
    assert "'T_max' beyond any climate on Earth on 120 days" in str(loaded.report)


def test_run_configuration_chooses_to_replace_or_refuse_implausible_values(tmp_path):
    from hybridland.train.config import DataConfig
    from hybridland.train.data import LOADERS

    ds = synthetic_dataset()
    ds["T_max"][1, 40] = 280.8
    path = write(ds, tmp_path)
    periods = dict(train_period=("2000-01-01", "2000-02-29"),
                   validation_period=("2000-03-01", "2000-04-29"), warmup_days=0)
    with pytest.warns(DataAdjustmentWarning, match="280.8 -> "):
        LOADERS["mopex"](DataConfig(path=path, **periods), 0)
    with pytest.raises(ForcingDataError, match="T_max.*beyond any climate"):
        LOADERS["mopex"](DataConfig(path=path, replace_implausible=False, **periods), 0)


def test_daily_values_stamped_at_noon_are_read_as_their_days(tmp_path):
    """A file stamping each day at 12:00 lost the last day of a requested period (the end,
    midnight, came before its noon stamp) and gave noon stamps back: its days are its days."""
    ds = synthetic_dataset()
    noon = ds.assign_coords(time=ds["time"].values + np.timedelta64(12, "h"))
    period = dict(start="2000-02-01", end="2000-02-29")
    midnight = load_quiet(write(ds, tmp_path, "midnight.nc"), **period)
    shifted = load_quiet(write(noon, tmp_path, "noon.nc"), **period)
    assert len(shifted.time) == len(midnight.time) == 29
    assert (shifted.time == midnight.time).all() and shifted.time[-1] == pd.Timestamp(period["end"])
    np.testing.assert_array_equal(np.asarray(shifted.forcing.precip),
                                  np.asarray(midnight.forcing.precip))
    np.testing.assert_array_equal(shifted.observed_runoff, midnight.observed_runoff)


def test_daily_values_stamped_at_another_hour_are_refused(tmp_path):
    """Time units 'days since 2000-01-01 00:00:00 +06:00' decode to 18:00 of the day before,
    which was read as that day: every value moved one day earlier, silently."""
    ds = synthetic_dataset()
    ds = ds.assign_coords(time=("time", np.arange(ds.sizes["time"]),
                                {"units": "days since 2000-01-01 00:00:00 +06:00"}))
    with pytest.raises(ForcingDataError, match=r"18:00.*\+06:00.*\(00:00\) or noon \(12:00\)"
                       r".*offset") as err:
        load_quiet(write(ds, tmp_path))
    assert err.value.variable == "time"


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_variable_and_basin(case, tmp_path):
    edit, variable, basin, kwargs = BAD_CASES[case]
    path = write(edit(synthetic_dataset()), tmp_path)
    with pytest.raises(ForcingDataError) as err:
        load_quiet(path, **kwargs)
    message = str(err.value)
    assert err.value.variable == variable
    assert f"'{variable}'" in message
    if basin is not None:
        assert err.value.basins == (BASINS[basin],)
        assert BASINS[basin] in message and NAMES[basin] in message
        for other in set(range(3)) - {basin}:
            assert BASINS[other] not in message
    assert "\n" not in message  # one paragraph


@pytest.mark.parametrize(
    "var, units",
    [
        ("P", "mm/day"),
        ("P", "mm d-1"),
        ("PE", "MM DAY-1"),
        ("T_max", "degree_Celsius"),
        ("T_min", "celsius"),
        ("T_max", "degree_C"),  # UDUNITS' spellings were refused as "convert the values"
        ("T_min", "degrees_C"),
    ],
)
def test_accepted_unit_spellings(var, units, tmp_path):
    ds = synthetic_dataset()
    ds[var].attrs["units"] = units
    assert load_quiet(write(ds, tmp_path)).n_basins == 3


def test_small_inversion_within_tolerance_is_accepted(tmp_path):
    ds = synthetic_dataset()
    ds["T_min"][0, 3] = ds["T_max"][0, 3] + 0.05
    got = load_quiet(write(ds, tmp_path))
    assert not got.report.changed


def test_swap_inverted_temperatures_is_reported(tmp_path):
    ds = synthetic_dataset()
    tx, tn = float(ds["T_max"][1, 7]), float(ds["T_max"][1, 7]) + 3.0
    ds["T_min"][1, 7] = tn
    with pytest.warns(DataAdjustmentWarning, match=BASINS[1]):
        got = load_mopex(write(ds, tmp_path), inverted_temperature="swap")
    assert float(got.forcing.t_max[1, 7]) == pytest.approx(tn)
    assert float(got.forcing.t_min[1, 7]) == pytest.approx(tx)
    assert [n.basin for n in got.report.swapped] == [BASINS[1]]
    assert NAMES[1] in "\n".join(got.report.messages())


def test_negative_pe_is_refused_not_clipped(tmp_path):
    """PE = -1 everywhere was silently read as PET = ET = 0; it is refused like negative P,
    and ignored when PET is derived from temperature."""
    ds = synthetic_dataset()
    ds["PE"][:] = -1.0
    path = write(ds, tmp_path)
    with pytest.raises(ForcingDataError, match=r"'PE'.*negative.*hargreaves") as err:
        load_quiet(path)
    assert err.value.variable == "PE" and err.value.basins == tuple(BASINS)
    assert load_quiet(path, pet="hargreaves").forcing.pet is None


def test_nan_pe_is_ignored_with_derived_pet(tmp_path):
    ds = synthetic_dataset()
    ds["PE"][:] = np.nan
    got = load_quiet(write(ds, tmp_path), pet="hargreaves")
    assert got.forcing.pet is None and not got.report.changed
    assert load_quiet(write(ds.drop_vars("PE"), tmp_path, "nope.nc"), pet="oudin").n_basins == 3


def test_selection_errors(tmp_path):
    path = write(synthetic_dataset(), tmp_path)
    with pytest.raises(ForcingDataError, match="99999999"):
        load_quiet(path, basins=["99999999"])
    with pytest.raises(ForcingDataError, match="not inside"):
        load_quiet(path, start="1999-01-01")
    with pytest.raises(ForcingDataError, match="after the end"):
        load_quiet(path, start="2000-02-01", end="2000-01-15")
    with pytest.raises(FileNotFoundError):
        load_quiet(tmp_path / "missing.nc")


def test_selection_keeps_order_and_period(tmp_path):
    got = load_quiet(
        write(synthetic_dataset(), tmp_path),
        basins=[BASINS[2], BASINS[0]],
        start="2000-01-10",
        end="2000-02-09",
    )
    assert got.basins == (BASINS[2], BASINS[0]) and got.names == (NAMES[2], NAMES[0])
    assert got.n_days == 31 and got.time[0] == pd.Timestamp("2000-01-10")
    np.testing.assert_array_equal(np.asarray(got.forcing.doy), np.arange(10, 41))


def test_byte_string_ids_and_names_are_read_as_text(tmp_path):
    """NetCDF char arrays decode as bytes: ids and names read "b'01000001'", and a basin asked
    for by its id was not found."""
    ds = synthetic_dataset().assign_coords(basin=np.array(BASINS, dtype="S"),
                                           name=("basin", np.array(NAMES, dtype="S")))
    path = write(ds, tmp_path)
    with xr.open_dataset(path) as raw:
        assert raw["basin"].dtype.kind == "S"
    got = load_quiet(path, basins=[BASINS[2], BASINS[0]])
    assert got.basins == (BASINS[2], BASINS[0]) and got.names == (NAMES[2], NAMES[0])


def _hourly_pe(ds):
    ds["PE"] = (ds["PE"].dims, ds["PE"].values / 24.0, {"units": "mm h-1"})
    return ds


@pytest.mark.parametrize("edit, variable, words", [
    (lambda ds: ds.drop_vars("PE"), "PE", "data.aridity_range needs it"),
    (_hourly_pe, "PE", "'mm h-1'; expected mm day-1"),
    (lambda ds: ds.isel(time=[0, 2, 1, *range(3, ds.sizes["time"])]), "time",
     "not strictly increasing"),
], ids=["no PE", "PE per hour", "unsorted days"])
def test_aridity_range_checks_p_and_pe_before_reading_them(edit, variable, words, tmp_path):
    """With a derived PET, a run selecting basins by aridity read PE unchecked: a KeyError
    without PE, the wrong basins with PE per hour, a pandas KeyError for unsorted days."""
    from hybridland.train.config import DataConfig
    from hybridland.train.data import LOADERS

    def run(path):
        config = DataConfig(path=path, pet="hargreaves", aridity_range=(0.0, 100.0),
                            train_period=("2000-01-01", "2000-02-29"),
                            validation_period=("2000-03-01", "2000-04-29"), warmup_days=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            return LOADERS["mopex"](config, 0)

    assert run(write(synthetic_dataset(), tmp_path, "good.nc")).basins == BASINS
    with pytest.raises(ForcingDataError, match=words) as err:
        run(write(edit(synthetic_dataset()), tmp_path))
    assert err.value.variable == variable


def test_float64_requires_x64(tmp_path, x64_off):
    with pytest.raises(ValueError, match="jax_enable_x64"):
        load_quiet(write(synthetic_dataset(), tmp_path), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Repairs: trim, drop, both; every one reported by basin name


def _gappy(tmp_path):
    """Basin 0: gap at the start; basin 1: gap at the end; basin 2: gap in the middle."""
    ds = synthetic_dataset(n_days=100)
    ds["P"][0, :5] = np.nan
    ds["T_max"][1, -3:] = np.nan
    ds["T_min"][2, 50] = np.nan
    return write(ds, tmp_path)


def test_trim_refuses_gaps_inside_the_period(tmp_path):
    with pytest.raises(ForcingDataError) as err:
        load_quiet(_gappy(tmp_path), trim=True)
    assert err.value.variable == "T_min" and err.value.basins == (BASINS[2],)
    assert NAMES[2] in str(err.value) and "--drop-incomplete" in str(err.value)


def test_trim_and_drop_together(tmp_path):
    with pytest.warns(DataAdjustmentWarning) as record:
        got = load_mopex(_gappy(tmp_path), trim=True, drop_incomplete=True)
    assert got.basins == BASINS[:2]
    assert got.report.dropped_basins == (BASINS[2],)
    assert got.report.trimmed_start[2] == 5 and got.report.trimmed_end[2] == 3
    assert got.n_days == 92 and got.time[0] == pd.Timestamp("2000-01-06")
    assert {n.basin for n in got.report.trim_causes} == set(BASINS[:2])
    text = "\n".join(str(w.message) for w in record)
    for name in NAMES:
        assert name in text
    assert not np.isnan(np.asarray(got.forcing.precip)).any()


def test_dropping_a_basin_can_lengthen_the_trimmed_period(tmp_path):
    ds = synthetic_dataset(n_days=100)
    ds["P"][0, :20] = np.nan  # starts late *and* has a gap: dropped, so it must not trim others
    ds["P"][0, 50] = np.nan
    ds["T_max"][1, :5] = np.nan
    got = load_quiet(write(ds, tmp_path), trim=True, drop_incomplete=True)
    assert got.report.dropped_basins == (BASINS[0],)
    assert got.report.trimmed_start == ("2000-01-01", "2000-01-05", 5)
    assert got.n_days == 95 and [n.basin for n in got.report.trim_causes] == [BASINS[1]]


def test_drop_incomplete_refuses_to_drop_everything(tmp_path):
    with pytest.raises(ForcingDataError) as err:
        load_quiet(_gappy(tmp_path), drop_incomplete=True)
    assert set(err.value.basins) == set(BASINS)
    for name in NAMES:
        assert name in str(err.value)


def test_drop_incomplete_keeps_complete_basins(tmp_path):
    ds = synthetic_dataset()
    ds["PE"][1, 40] = np.nan
    got = load_quiet(write(ds, tmp_path), drop_incomplete=True)
    assert got.basins == (BASINS[0], BASINS[2])
    assert got.report.dropped[0].basin == BASINS[1] and "PE" in got.report.dropped[0].detail
    assert NAMES[1] in got.report.messages()[0]


def test_forcing_from_open_dataset():
    got = forcing_from_dataset(synthetic_dataset(), source="memory")
    assert got.source == "memory" and got.forcing.precip.shape == (3, 120)
