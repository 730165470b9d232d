"""Untrained variables: the ET and soil water of a model trained only on streamflow, checked
against point observations it never saw (step 5 of the climate-shift study).

``untrained_variables(run_dir)`` runs a finished run's best model (kind ``physics`` or
``hybrid``; per-basin, shared or network parameters) at each site on that site's own forcing
and returns one row per (site, variable) with the Pearson correlation and the anomaly
correlation of simulated against observed series. ``plot_untrained`` draws the series.

**Sites** (what forcing each really has):

- ``US-AR1``, FLUXNET2015 SUBSET daily, 2009-01-01 .. 2012-12-31 (1461 days, ``load_fluxnet``;
  Pastorello et al., 2020, CC-BY-4.0). Forcing: ``P_F`` precipitation and ``TA_F`` daily
  *mean* air temperature (gap-filled, complete; the file has no minimum or maximum, so both
  are ``TA_F``). ``NETRAD`` is missing on 169 days, so Priestley-Taylor PET is not used.
  Targets: ET = ``LE_F_MDS`` / 28.36 W m-2 per mm day-1 (1230 days with QC >= 0.5) and
  ``SWC_F_MDS_1`` volumetric soil water at the shallowest sensor (1337 days with QC >= 0.5).
- ``schwingbach``, Schwingbach near Rechtenbach (Hesse), spotpy example data, 2014-01-01 ..
  2016-12-31 (1096 days, ``load_schwingbach``). Forcing: hourly rain and air temperature,
  every day has 24 hours, aggregated to daily rain and minimum/maximum temperature. The
  file's stamps of the 1st-12th of each month are day/month swapped (fixed in the reader).
  Hourly rain includes a 2-hour burst of about 160 mm on 2014-07-24, kept as it is. Incoming
  solar radiation exists but not net radiation (left out). No ET observation. Target: soil
  water = mean of the three sensors at 10, 25 and 40 cm of a nearby site (m3 m-3; all 1096
  days).
- ISMN (``/work/shared/data/ismn``): soil moisture only, no collocated forcing, so it is
  not simulated here. Asking for it raises ``ValueError``.

**PET.** The MOPEX runs use the file's PE (``pet: given``), which these sites lack. Each site
gets PET from **Oudin** (extraterrestrial radiation from latitude and day of year, with daily
mean air temperature; ``hybridland.physics.pet.OudinPET``, unscaled). The series becomes the
forcing's ``pet`` and the model's PET law is replaced by ``GivenPET``. The run's trained
``pet_coefficient`` still scales it. A run trained with a derived law gets the same Oudin
series. ``pet="hargreaves"`` is accepted where the site has a diurnal temperature range
(Schwingbach only). ``pet="priestley_taylor"`` (US-AR1) uses the site's net radiation and
ground heat flux instead, their missing days filled with the day-of-year climatology of the
measured ones; the forcing then carries them, so the bucket also caps ET by the available
energy ``Rn - G`` (energy-limited ET).

**Parameters and attributes** are chosen as ``evaluate_run`` chooses them for a basin the run
has not seen. Static attributes are computed from the site's forcing over its record, with the
Oudin PET as PE, then normalised with the run's training statistics. Parameters come from the
run's parameter network, else the median of each calibrated per-basin parameter ("regional
median"), else the shared calibrated values. A run using ``log_area`` cannot go to a point
site: ``ForcingDataError``.

**Warm-up.** The first 365 days of the site record (or more, cycling them, if the run's
``data.warmup_days`` is longer) are simulated once before the record, starting from
``init_state``, and left out. The whole record is then simulated and compared, its first
year included.

**Scores**, on days where both series are finite:

- ``correlation``: Pearson r.
- ``anomaly_correlation``: Pearson r of anomalies. Each series' own day-of-year climatology
  is the mean over the compared days within +/- 15 days of the day of year (a 31-day circular
  window) and is subtracted. Fewer than 730 common days (two years) give NaN: a climatology
  from one year would be the series smoothed, not a seasonal cycle.

Model soil water (mm of plant-available water) is compared with volumetric soil moisture as
it is. Both correlations are scale-free, so nothing is rescaled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._containers import Forcing
from .._params import Params
from ..io import ForcingDataError, load_fluxnet, load_schwingbach, to_forcing
from ..io.paths import data_dir
from ..column import ColumnModel
from ..physics.pet import PET_LAWS, GivenPET
from ..solvers import check_forcing, run_timed
from ..train.data import DTYPE, Source, basin_table, static_attributes
from ..train.evaluate import _parameter_source, column_params, drop_warmup
from ..train.loop import load_trainables
from ..units import W_M2_PER_MM_DAY
from .config import UNTRAINED_SITES as SITES


FLUXNET_FILE = Path("fluxnet") / "FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"
"""The US-AR1 daily file, relative to ``hybridland.io.data_dir()``."""

SPINUP_DAYS = 365
CLIMATOLOGY_WINDOW = 31
"""Days of the circular day-of-year window that smooths each climatology."""
MIN_ANOMALY_DAYS = 730
"""Fewest common days (two years) for an anomaly correlation; fewer give NaN."""
PET_CHOICES = ("oudin", "hargreaves", "priestley_taylor")
SCHWINGBACH_DEPTHS = (10, 25, 40)

VARIABLES = ("evapotranspiration", "soil_water")
SIMULATED = {
    "evapotranspiration": ("fluxes.et (actual evapotranspiration)", "mm day-1"),
    "soil_water": ("states.soil (plant-available soil water, end of day)", "mm"),
}


@dataclasses.dataclass(frozen=True)
class Observation:
    """One observed series of a site, ``[time]``, NaN where missing or of poor quality."""

    values: np.ndarray
    name: str
    units: str


@dataclasses.dataclass(frozen=True)
class SiteData:
    """A site's forcing (canonical dataset, one column) and its observed untrained variables."""

    site: str
    dataset: object  # xarray.Dataset with precipitation and air temperature
    observed: dict[str, Observation]  # variable (VARIABLES) -> observation
    forcing_note: str


@dataclasses.dataclass
class SiteRun:
    """A run's model at one site: observed and simulated series over the record ``time``."""

    site: str
    time: pd.DatetimeIndex
    observed: dict[str, Observation]
    simulated: dict[str, np.ndarray]  # variable -> [time]
    pet_law: str
    parameters: str
    warmup: str
    forcing_note: str
    mean_pet: float


def site_data(site: str, *, min_qc: float = 0.5) -> SiteData:
    """The forcing and observations of ``site`` (see the module docstring).

    ``min_qc``: FLUXNET target days whose QC fraction is below it are NaN (forcing is never
    masked). Raises ``ValueError`` for an unknown site or ISMN, which has no forcing.
    """
    if site == "US-AR1":
        ds = load_fluxnet(data_dir() / FLUXNET_FILE, min_qc=min_qc)
        le = "LE_F_MDS"
        observed = {
            "evapotranspiration": Observation(
                ds["evapotranspiration"].values[0],
                f"{le} / {W_M2_PER_MM_DAY:.2f} W m-2 per mm day-1 (QC >= {min_qc})",
                "mm day-1",
            ),
            "soil_water": Observation(
                ds["soil_moisture"].values[0], f"SWC_F_MDS_1 / 100 (QC >= {min_qc})", "m3 m-3"
            ),
        }
        note = "P_F; TA_F daily mean as min = max"
        return SiteData(site, ds, observed, note)
    if site == "schwingbach":
        ds = load_schwingbach()
        layers = np.stack([ds[f"soil_moisture_{d}cm"].values[0] for d in SCHWINGBACH_DEPTHS])
        depths = ", ".join(f"{d}" for d in SCHWINGBACH_DEPTHS)
        observed = {
            "soil_water": Observation(
                layers.mean(axis=0),  # NaN unless all three depths were measured
                f"mean of soil_moisture at {depths} cm",
                "m3 m-3",
            )
        }
        note = "hourly rain (daily mean rate) and air temperature (daily min/max)"
        return SiteData(site, ds, observed, note)
    if site.lower() == "ismn":
        raise ValueError(
            "ISMN data hold soil moisture only, with no collocated forcing, so the model "
            "cannot be run there."
        )
    raise ValueError(f"Unknown site {site!r}; choose from {list(SITES)}.")


# --- scores ------------------------------------------------------------------------------------


def correlation(a, b) -> tuple[float, int]:
    """Pearson r of two series on the days where both are finite, and that number of days
    (NaN for fewer than 3 days or a constant series)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    n = int(both.sum())
    if n < 3:
        return float("nan"), n
    x, y = a[both] - a[both].mean(), b[both] - b[both].mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return (float((x * y).sum() / denominator) if denominator > 0 else float("nan")), n


def climatology(values, time, window: int = CLIMATOLOGY_WINDOW) -> np.ndarray:
    """Each day's climatological value ``[time]``: the mean of the finite values whose day of
    year lies within ``window // 2`` days of the day's (circularly, over 366 days of year)."""
    values = np.asarray(values, np.float64)
    doy = pd.DatetimeIndex(time).day_of_year.to_numpy() - 1
    finite = np.isfinite(values)
    sums = np.bincount(doy[finite], values[finite], minlength=366)
    counts = np.bincount(doy[finite], minlength=366).astype(np.float64)
    half = window // 2
    kernel = np.ones(2 * half + 1)

    def circular(x):
        padded = np.concatenate([x[-half:], x, x[:half]])
        return np.convolve(padded, kernel, mode="valid")

    with np.errstate(invalid="ignore", divide="ignore"):
        clim = circular(sums) / circular(counts)
    return clim[doy]


def anomaly_correlation(a, b, time, window: int = CLIMATOLOGY_WINDOW) -> float:
    """Pearson r of the anomalies of two series from their own day-of-year climatologies
    (``climatology``), both computed on the days where both series are finite; NaN with fewer
    than ``MIN_ANOMALY_DAYS`` such days."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < MIN_ANOMALY_DAYS:
        return float("nan")
    a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
    return correlation(a - climatology(a, time, window), b - climatology(b, time, window))[0]


# --- simulation --------------------------------------------------------------------------------


def _column_model(model, config) -> ColumnModel:
    if not isinstance(model, ColumnModel):
        # ValueError, not TypeError: the caller passed a run directory; its content is unsuited.
        raise ValueError(  # noqa: TRY004
            f"The run's model (kind {config.model.kind!r}, {type(model).__name__}) is not a "
            "column water-balance model: it has no evapotranspiration or soil store to "
            "compare with observations."
        )
    return eqx.tree_at(lambda m: m.pet, model, GivenPET())


def _site_forcing(ds, pet: str) -> tuple[Forcing, np.ndarray]:
    """The site's forcing ``[1, time]`` with ``pet`` the unscaled demand of the PET law; for
    ``priestley_taylor`` also the net radiation and ground heat flux, so that the bucket caps
    ET by the available energy."""
    if pet == "priestley_taylor":
        return _energy_forcing(ds)
    # validated for its law: Hargreaves refuses a site with only the daily mean temperature
    forcing = to_forcing(ds, dtype=DTYPE, pet_source=pet, energy=False)
    as_column = eqx.tree_at(lambda f: f.lat, forcing, forcing.lat[:, None])
    demand = jnp.broadcast_to(PET_LAWS[pet]().demand(as_column, None), forcing.precip.shape)
    forcing = eqx.tree_at(lambda f: f.pet, forcing, demand.astype(DTYPE),
                          is_leaf=lambda x: x is None)
    return forcing, np.asarray(demand)


def _energy_forcing(ds) -> tuple[Forcing, np.ndarray]:
    """Forcing with measured net radiation and ground heat flux, their missing days filled
    with the day-of-year climatology of the measured ones (``climatology``), and
    Priestley-Taylor PET from them."""
    site = str(ds["column"].values[0])
    if "net_radiation" not in ds.data_vars:
        raise ForcingDataError(
            f"Priestley-Taylor PET needs net radiation, which {site} lacks; use pet='oudin'.",
            variable="net_radiation",
        )
    time = pd.DatetimeIndex(ds["time"].values)
    filled = ds.copy()
    for name in ("net_radiation", "ground_heat_flux"):
        if name in ds.data_vars:
            values = ds[name].values[0].astype(np.float64)
            values = np.where(np.isfinite(values), values, climatology(values, time))
            filled[name] = (ds[name].dims, values[None, :].astype(ds[name].dtype),
                            ds[name].attrs)
    # validated as for a derived PET law that needs no temperature range (PET from energy)
    forcing = to_forcing(filled, dtype=DTYPE, pet_source="oudin", energy=True)
    demand = PET_LAWS["priestley_taylor"]().demand(forcing, Params.default(dtype=DTYPE))
    demand = jnp.maximum(demand, 0.0)
    forcing = eqx.tree_at(lambda f: f.pet, forcing, demand.astype(DTYPE),
                          is_leaf=lambda x: x is None)
    return forcing, np.asarray(demand)


def _with_spinup(forcing: Forcing, days: int) -> Forcing:
    """``days`` of the record's first year (cycled) before the record."""
    year = min(SPINUP_DAYS, forcing.n_time)
    index = np.arange(-days, forcing.n_time) % year
    index[days:] = np.arange(forcing.n_time)

    def take(a):
        return None if a is None else a[..., index]

    return dataclasses.replace(
        forcing, precip=take(forcing.precip), t_min=take(forcing.t_min),
        t_max=take(forcing.t_max), doy=take(forcing.doy), pet=take(forcing.pet),
        net_radiation=take(forcing.net_radiation), ground_heat=take(forcing.ground_heat),
    )


def site_runs(
    run_dir,
    *,
    sites: Sequence[str] = SITES,
    pet: str = "oudin",
    min_qc: float = 0.5,
    progress: bool = False,
) -> list[SiteRun]:
    """Simulate each site with the run's best model (see the module docstring)."""
    if pet not in PET_CHOICES:
        raise ValueError(f"pet must be one of {PET_CHOICES}, got {pet!r}.")
    sites = (sites,) if isinstance(sites, str) else tuple(sites)
    model, u, normalisation, config = load_trainables(run_dir)
    model = _column_model(model, config)
    names = config.model.static_attributes
    spinup = max(SPINUP_DAYS, config.data.warmup_days)
    trained = basin_table(run_dir)
    out = []
    for site in sites:
        data = site_data(site, min_qc=min_qc)
        ds = data.dataset
        forcing, demand = _site_forcing(ds, pet)
        time = pd.DatetimeIndex(ds["time"].values)
        source = Source(
            forcing=forcing, observed_runoff=np.full(forcing.precip.shape, np.nan, DTYPE),
            time=time, basins=(site,), names=(site,), lat=np.asarray(ds["lat"].values, float),
            lon=np.asarray(ds["lon"].values, float), area_km2=np.full(1, np.nan),
        )
        raw = static_attributes(names, source, slice(None))
        attributes = jnp.asarray(normalisation.apply(raw)) if names else None
        params = column_params(u, trained, [site], attributes, config)
        seen = None if attributes is None else normalisation.network_view(attributes)
        forcing = dataclasses.replace(_with_spinup(forcing, spinup), attributes=seen)
        check_forcing(model, forcing)
        sim = run_timed(model, forcing, params, progress=progress, description=site).sim
        sim = drop_warmup(sim, spinup)
        simulated = {"evapotranspiration": np.asarray(sim.fluxes.et)[0],
                     "soil_water": np.asarray(sim.states.soil)[0]}
        warmup = (f"{spinup} days: the first {min(SPINUP_DAYS, len(time))} days of the record "
                  "cycled before it, from init_state, not compared")
        out.append(SiteRun(
            site=site, time=time, observed=data.observed,
            simulated={k: simulated[k] for k in data.observed}, pet_law=pet,
            parameters=str(_parameter_source(np.array([False]), config)[0]), warmup=warmup,
            forcing_note=f"{data.forcing_note}; " + (
                "Priestley-Taylor PET from net radiation (gaps: its day-of-year climatology), "
                "ET capped by the available energy" if pet == "priestley_taylor"
                else f"{pet.capitalize()} PET from temperature and latitude"
            ), mean_pet=float(np.mean(demand)),
        ))
    return out


def untrained_table(runs: Sequence[SiteRun]) -> pd.DataFrame:
    """One row per (site, variable): scores and means of the simulated against observed."""
    rows = []
    for run in runs:
        for variable in VARIABLES:
            if variable not in run.observed:
                continue
            obs, sim = run.observed[variable], run.simulated[variable]
            r, n = correlation(obs.values, sim)
            both = np.isfinite(obs.values) & np.isfinite(sim)
            days = run.time[both]
            rows.append({
                "site": run.site,
                "variable": variable,
                "observed": obs.name,
                "observed_units": obs.units,
                "simulated": SIMULATED[variable][0],
                "simulated_units": SIMULATED[variable][1],
                "first_day": f"{days[0]:%Y-%m-%d}" if n else "",
                "last_day": f"{days[-1]:%Y-%m-%d}" if n else "",
                "n_days": n,
                "correlation": r,
                "anomaly_correlation": anomaly_correlation(obs.values, sim, run.time),
                "mean_observed": float(np.mean(obs.values[both])) if n else float("nan"),
                "mean_simulated": float(np.mean(sim[both])) if n else float("nan"),
                "pet_law": run.pet_law,
                "mean_pet_mm_day": run.mean_pet,
                "forcing": run.forcing_note,
                "parameters": run.parameters,
                "warmup": run.warmup,
            })
    return pd.DataFrame(rows)


def untrained_variables(run_dir, **options) -> pd.DataFrame:
    """The table of ``untrained_table`` for a finished run; ``options`` as ``site_runs``
    (``sites``, ``pet``, ``min_qc``, ``progress``).

    Raises ``ValueError`` for a run whose model has no ET or soil store (not a
    ``ColumnModel``), an unknown site or ISMN, and ``ForcingDataError`` for static attributes
    a point site lacks (``log_area``).
    """
    return untrained_table(site_runs(run_dir, **options))


# --- figure ------------------------------------------------------------------------------------


def _standardised(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - np.nanmean(x)) / np.nanstd(x)


def plot_untrained(run_dir_or_runs, path, **kwargs) -> Path:
    """Observed and simulated series of every (site, variable), each standardised (z-score
    over the compared days), with r and anomaly r in the panel titles.

    ``run_dir_or_runs`` is a run directory (simulated with ``site_runs(**kwargs)``) or the
    ``SiteRun`` list ``site_runs`` returned.
    """
    import matplotlib.dates as mdates

    from ..io.plots import _figure, _save

    runs = (
        site_runs(run_dir_or_runs, **kwargs)
        if isinstance(run_dir_or_runs, (str, Path))
        else list(run_dir_or_runs)
    )
    panels = [(run, v) for run in runs for v in VARIABLES if v in run.observed]
    fig = _figure(10, 2.4 * max(len(panels), 1))
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)[:, 0]
    for ax, (run, variable) in zip(axes, panels):
        obs, sim = run.observed[variable], run.simulated[variable]
        both = np.isfinite(obs.values) & np.isfinite(sim)
        r, n = correlation(obs.values, sim)
        r_anom = anomaly_correlation(obs.values, sim, run.time)
        ax.plot(run.time, _standardised(np.where(both, obs.values, np.nan)), lw=0.7,
                color="k", label=f"observed ({obs.units})")
        ax.plot(run.time, _standardised(np.where(both, sim, np.nan)), lw=0.7, color="C3",
                label=f"simulated ({SIMULATED[variable][1]})")
        ax.set_title(f"{run.site} {variable}: r = {r:.2f}, anomaly r = {r_anom:.2f}, "
                     f"{n} days", fontsize=9)
        ax.set_ylabel("z-score")
        ax.legend(fontsize=7, loc="upper right")
        locator = mdates.AutoDateLocator()  # plots._date_axis's 8 ticks warn over years
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return _save(fig, path)
