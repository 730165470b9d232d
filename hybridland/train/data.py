"""The data of a run: loaders by config name, static attributes, normalisation, ``RunData``.

A loader turns ``(DataConfig, seed)`` into a *source*: an object with ``forcing`` (a batched
``Forcing`` ``[basin, time]``), ``observed_runoff`` (``[basin, time]`` mm day-1, NaN gaps),
``time`` (``pandas.DatetimeIndex``), ``basins`` (ids), ``names``, ``lat``, ``lon`` and
``area_km2`` (``[basin]``). ``hybridland.io.MopexForcing`` is one; ``Source`` wraps any
canonical dataset (``hybridland.io.canonical``). Loaders:

- ``mopex``: a MOPEX-layout NetCDF file (``data.path``, default the shared MOPEX file);
- ``netcdf``: any canonical or CF NetCDF file (``data.path``) with a ``streamflow`` target;
- ``fulda``: the Fulda river data shipped inside the ``spotpy`` package (one basin,
  1979-1988), available on any machine after ``pip install``.

``RunData`` holds the days of a run from the first warm-up day to the last day of any period,
as numpy arrays, with the static attributes normalised by statistics of the training basins.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._containers import Forcing
from .._params import Params
from ..io._report import DataAdjustmentWarning, ForcingDataError
from ..physics.root_zone import mass_curve_storage
from . import checkpoint as ckpt
from .config import Config, DataConfig

DTYPE = np.float32


# ---------------------------------------------------------------------------------------------
# Sources


@dataclasses.dataclass(frozen=True)
class Source:
    """Forcing and observed runoff of some basins, in the layout every loader returns."""

    forcing: Forcing
    observed_runoff: np.ndarray
    time: pd.DatetimeIndex
    basins: tuple[str, ...]
    names: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    area_km2: np.ndarray

    @classmethod
    def from_canonical(cls, ds, pet: str, source: str) -> Source:
        """A source from a canonical dataset with a ``streamflow`` target."""
        from ..io import ForcingDataError, target, to_forcing

        if "streamflow" not in ds.data_vars:
            raise ForcingDataError(
                f"{source} has no observed streamflow (CF standard name 'runoff_flux'); a "
                "training or evaluation dataset needs it.",
                variable="streamflow",
            )
        n = ds.sizes["column"]
        ids = tuple(str(c) for c in ds["column"].values)
        area = ds["area_km2"].values if "area_km2" in ds.coords else np.full(n, np.nan)
        names = ds["name"].values if "name" in ds.coords else ids
        return cls(
            forcing=to_forcing(ds, dtype=DTYPE, pet_source=pet, energy=False),
            observed_runoff=target(ds, "streamflow").astype(DTYPE),
            time=pd.DatetimeIndex(ds["time"].values),
            basins=ids,
            names=tuple(str(s) for s in names),
            lat=np.asarray(ds["lat"].values, float),
            lon=np.asarray(ds["lon"].values, float),
            area_km2=np.asarray(area, float),
        )


def _select_basins(
    cfg: DataConfig, seed: int, ids: list[str], source: str, aridity=None,
    exclude_known: bool = True,
) -> list[str] | None:
    """The basin ids ``cfg`` asks for (None: all), checked against the ids of the file.

    ``aridity`` (per id, over the training period) is needed when ``cfg.aridity_range`` is set.
    ``exclude_known``: ``cfg.exclude_basins`` must name basins of the file (a configuration's
    list; an evaluation leaving out a run's basins passes False, its file may lack some).
    """
    chosen = _chosen_basins(cfg, seed, ids, source, aridity)
    if not cfg.exclude_basins:
        return chosen
    in_file, excluded = set(ids), set(cfg.exclude_basins)
    unknown = [b for b in cfg.exclude_basins if b not in in_file]
    if unknown and exclude_known:  # a typo would leave the basin meant to be held out in training
        raise ValueError(
            f"data.exclude_basins names {', '.join(unknown)}, which {source} does not have "
            f"(it has {len(ids)} basins, e.g. {', '.join(ids[:3])}; ids keep their leading "
            "zeros). Correct or remove them."
        )
    kept = [b for b in (ids if chosen is None else chosen) if b not in excluded]
    if not kept:
        raise ValueError(f"Every selected basin of {source} is in data.exclude_basins.")
    return kept


def _chosen_basins(cfg: DataConfig, seed: int, ids: list[str], source: str, aridity=None):
    if cfg.basins is not None:
        return list(cfg.basins)
    if cfg.aridity_range is None and cfg.n_basins is None:
        return None
    if cfg.aridity_range is not None:
        low, high = cfg.aridity_range
        ids = [b for b, a in zip(ids, aridity) if low <= a < high]
        if not ids:
            raise ValueError(
                f"No basin of {source} has an aridity in data.aridity_range [{low}, {high})."
            )
    if cfg.n_basins is None:
        return ids
    if cfg.n_basins > len(ids):
        raise ValueError(f"data.n_basins is {cfg.n_basins} but {source} has {len(ids)} basins"
                         + (" in data.aridity_range." if cfg.aridity_range else "."))
    if cfg.selection == "first":
        return ids[: cfg.n_basins]
    pick = np.random.default_rng(seed).choice(len(ids), cfg.n_basins, replace=False)
    return [ids[i] for i in np.sort(pick)]


def _load_mopex(cfg: DataConfig, seed: int, exclude_known: bool = True):
    from ..io import forcing_from_dataset, mopex_path
    from ..io._checks import (
        basin_ids,
        check_time,
        check_variable,
        open_netcdf,
        select_period,
        series_values,
    )
    from ..io.canonical import aridity_index
    from ..io.mopex import PET_VAR, PRECIP_VAR, UNITS

    path = cfg.path or str(mopex_path())
    first, last = cfg.span
    with open_netcdf(path, "the MOPEX layout (dims basin, time)") as ds:
        aridity = None
        if cfg.aridity_range is not None:  # PE is needed whatever the PET source
            check_variable(ds, PRECIP_VAR, UNITS[PRECIP_VAR], path)
            check_variable(ds, PET_VAR, UNITS[PET_VAR], path,
                           "data.aridity_range needs it (aridity is mean PE / mean P over the "
                           "training period). Add it, or choose the basins with data.basins or "
                           "data.n_basins instead")
            t0, t1 = select_period(check_time(ds, path), *cfg.train_period, path)
            train = ds.isel(time=slice(t0, t1))
            aridity = aridity_index(series_values(train, PRECIP_VAR),
                                    series_values(train, PET_VAR))
        basins = _select_basins(cfg, seed, basin_ids(ds), path, aridity, exclude_known)
        return forcing_from_dataset(
            ds,
            basins=basins,
            start=first.isoformat(),
            end=last.isoformat(),
            pet=cfg.pet,
            trim=cfg.trim,
            drop_incomplete=cfg.drop_incomplete,
            inverted_temperature="swap" if cfg.swap_inverted_temperatures else "error",
            implausible="interpolate" if cfg.replace_implausible else "error",
            dtype=DTYPE,
            source=path,
        )


def _from_dataset(ds, cfg: DataConfig, seed: int, source: str, exclude_known: bool) -> Source:
    from ..io import ForcingDataError
    from ..io._checks import check_time, select_period
    from ..io.canonical import PET_VARIABLE, aridity_index

    time = check_time(ds, source)  # before any selection by date
    ids = [str(c) for c in ds["column"].values]
    aridity = None
    if cfg.aridity_range is not None:
        if PET_VARIABLE not in ds.data_vars:
            raise ForcingDataError(
                f"data.aridity_range needs potential evapotranspiration, which {source} lacks.",
                variable=PET_VARIABLE,
            )
        train = ds.sel(time=slice(*cfg.train_period))
        aridity = aridity_index(*(train[v].transpose("column", "time").values
                                  for v in ("precipitation", PET_VARIABLE)))
    basins = _select_basins(cfg, seed, ids, source, aridity, exclude_known)
    if basins is not None:
        unknown = [b for b in basins if b not in ids]
        if unknown:
            raise ForcingDataError(
                f"Basin(s) {', '.join(unknown)} are not in {source} (it has {len(ids)} columns).",
                variable="column",
                basins=unknown,
            )
        ds = ds.sel(column=basins)
    first, last = cfg.span  # outside the data: a message naming the file and its days, as
    # for MOPEX (an empty selection said only "The 'time' axis of <dataset> is empty")
    t0, t1 = select_period(time, first.isoformat(), last.isoformat(), source)
    return Source.from_canonical(ds.isel(time=slice(t0, t1)), cfg.pet, source)


def _load_netcdf(cfg: DataConfig, seed: int, exclude_known: bool = True) -> Source:
    from ..io import from_cf
    from ..io._checks import open_netcdf

    if cfg.path is None:
        raise ValueError("data.loader 'netcdf' needs data.path (a canonical or CF NetCDF file).")
    with open_netcdf(cfg.path, "the canonical layout or with CF standard names") as ds:
        canonical = "column" in ds.dims and all(
            "role" in ds[v].attrs for v in ds.data_vars
        )
        ds = (ds if canonical else from_cf(ds, source=cfg.path)).load()
    return _from_dataset(ds, cfg, seed, cfg.path, exclude_known)


def _load_fulda(cfg: DataConfig, seed: int, exclude_known: bool = True) -> Source:
    from ..io import load_fulda

    return _from_dataset(load_fulda(), cfg, seed, "the spotpy Fulda example data",
                         exclude_known)


LOADERS: dict[str, Callable] = {"mopex": _load_mopex, "netcdf": _load_netcdf, "fulda": _load_fulda}
"""Data loaders by config name: ``(DataConfig, seed, exclude_known=True) -> source`` (see the
module docstring and ``_select_basins``)."""


# ---------------------------------------------------------------------------------------------
# Static attributes


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Mean and standard deviation of each static attribute over the training basins (fitted on
    the training period); ``apply`` maps raw attributes ``[basin, n]`` to z-scores.

    With ``lower``/``upper`` (the z-scores' range over the training basins, fitted with
    ``clip=True``: ``model.clip_attributes``) ``network_view`` clips z-scores into that range:
    what the networks see of a basin whose climate lies outside the training basins' is what
    they saw of the nearest training climate, so they never extrapolate in an attribute. The
    z-scores themselves stay unclipped (the root-zone prior reads the basin's own storage).
    """

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @classmethod
    def fit(cls, names, raw: np.ndarray, clip: bool = False) -> Normalisation:
        raw = np.asarray(raw, np.float64)
        mean = raw.mean(0) if raw.shape[0] else np.zeros(len(names))
        std = raw.std(0) if raw.shape[0] else np.ones(len(names))
        std = np.where(std > 0, std, 1.0)  # one basin, or a constant attribute
        plain = cls(tuple(names), mean, std)
        if not clip:
            return plain
        if not raw.shape[0]:
            raise ValueError("clip_attributes needs at least one training basin.")
        z = plain.apply(raw)  # the training basins' z-scores as the networks get them
        return dataclasses.replace(plain, lower=z.min(0), upper=z.max(0))

    @property
    def clips(self) -> bool:
        return self.lower is not None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, np.float64) - self.mean) / self.std).astype(DTYPE)

    def network_view(self, z):
        """Normalised attributes as the networks see them: clipped into the training range
        with ``clip``, else unchanged (numpy or JAX arrays, ``[..., n]``)."""
        if not self.clips:
            return z
        return jnp.clip(z, jnp.asarray(self.lower, z.dtype), jnp.asarray(self.upper, z.dtype))

    def to_dict(self) -> dict:
        d = {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.clips:
            d["lower"], d["upper"] = self.lower.tolist(), self.upper.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        bounds = [np.asarray(d[k], float) if k in d else None for k in ("lower", "upper")]
        if (bounds[0] is None) != (bounds[1] is None):
            raise KeyError("lower and upper must be both present or both absent")
        return cls(
            tuple(d["names"]), np.asarray(d["mean"], float), np.asarray(d["std"], float), *bounds
        )

    def save(self, path) -> None:
        ckpt.atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> Normalisation:
        return cls.from_dict(json.loads(Path(path).read_text()))


def static_attributes(names, source, days: slice) -> np.ndarray:
    """Raw static attributes ``[basin, len(names)]`` of a source over ``days``.

    Climate attributes are forcing statistics over ``days`` (the training period in training,
    so nothing of validation or test days is seen): ``mean_precip``, ``mean_pet`` (mm day-1),
    ``aridity`` (mean PE / mean P), ``mean_temp`` (degC), ``snow_fraction`` (share of P on days
    with mean T < 0 degC), ``root_zone_storage`` (mm: the mass-curve estimate from P and PE,
    ``hybridland.physics.root_zone``), and the natural logs ``log_aridity``,
    ``log_mean_precip``, ``log_mean_pet``, ``log_root_zone_storage``; the others are geography:
    ``lat``, ``lon`` (degrees), ``log_area`` (log10 km2).
    """
    f = source.forcing
    p = np.asarray(f.precip)[:, days]
    t = 0.5 * (np.asarray(f.t_min) + np.asarray(f.t_max))[:, days]

    @functools.cache  # the PE series are read once, whichever attributes need them
    def pet_days():
        if f.pet is None:
            raise ValueError("Attributes mean_pet, aridity and root_zone_storage need the file's "
                             "PE (data.pet: given).")
        return np.asarray(f.pet)[:, days]

    def pet():
        return pet_days().mean(1)

    @functools.cache  # one mass curve, whether one or both of its attributes are asked for
    def storage():
        return mass_curve_storage(p, pet_days())

    table = {
        "lat": lambda: np.asarray(source.lat, float),
        "lon": lambda: np.asarray(source.lon, float),
        "log_area": lambda: np.log10(np.maximum(np.asarray(source.area_km2, float), 1e-3)),
        "mean_precip": lambda: p.mean(1),
        "mean_pet": pet,
        "aridity": lambda: pet() / np.maximum(p.mean(1), 1e-6),
        "mean_temp": lambda: t.mean(1),
        "snow_fraction": lambda: (p * (t < 0)).sum(1) / np.maximum(p.sum(1), 1e-6),
        "log_aridity": lambda: np.log(table["aridity"]()),
        "log_mean_precip": lambda: np.log(np.maximum(p.mean(1), 1e-3)),
        "log_mean_pet": lambda: np.log(np.maximum(pet(), 1e-3)),
        "root_zone_storage": storage,
        "log_root_zone_storage": lambda: np.log(np.maximum(storage(), 1.0)),
    }
    cols = []
    for name in names:
        values = np.asarray(table[name](), np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            from ..io import ForcingDataError

            ids = [source.basins[i] for i in bad]
            raise ForcingDataError(
                f"Static attribute '{name}' is undefined (NaN) for {bad.size} basin(s): "
                f"{', '.join(ids[:10])}{' ...' if bad.size > 10 else ''}. Leave '{name}' out of "
                "model.static_attributes, or select basins that have it (data.basins).",
                variable=name,
                basins=ids,
            )
        cols.append(values)
    return np.stack(cols, 1) if cols else np.zeros((p.shape[0], 0))


# ---------------------------------------------------------------------------------------------
# RunData


@dataclasses.dataclass(frozen=True)
class RunData:
    """Host-side (numpy) data of a run: series ``[basin, time]`` from the first warm-up day
    to the last day of any period, observed runoff with NaN gaps, period index ranges."""

    basins: tuple[str, ...]
    names: tuple[str, ...]
    time: Any  # pandas.DatetimeIndex
    series: dict[str, np.ndarray]  # precip, t_min, t_max, (pet): [basin, time]
    doy: np.ndarray  # [time]
    lat: np.ndarray  # [basin]
    coords: dict[str, np.ndarray]  # per-basin lat, lon, area_km2, name for output files
    raw_attributes: np.ndarray  # [basin, n] as computed, before normalisation
    attributes: np.ndarray | None  # normalised, [basin, n] or None
    obs: np.ndarray  # [basin, time]
    periods: dict[str, tuple[int, int]]  # name -> (first, last) day index, inclusive
    obs_std: np.ndarray  # [basin] over the training period (1 where undefined)
    obs_mean: np.ndarray  # [basin] over the training period (1 where undefined)
    normalisation: Normalisation

    @property
    def n_basins(self) -> int:
        return len(self.basins)

    def forcing(self, basins: np.ndarray, starts: np.ndarray, length: int) -> Forcing:
        """Forcing ``[len(basins), length]`` of windows beginning at day indices ``starts``."""
        days = np.asarray(starts)[:, None] + np.arange(length)
        rows = np.asarray(basins)[:, None]
        take = {k: jnp.asarray(v[rows, days]) for k, v in self.series.items()}
        return Forcing(
            precip=take["precip"],
            t_min=take["t_min"],
            t_max=take["t_max"],
            doy=jnp.asarray(self.doy[days]),
            lat=jnp.asarray(self.lat[np.asarray(basins)]),
            pet=take.get("pet"),
            attributes=None
            if self.attributes is None
            else self.normalisation.network_view(
                jnp.asarray(self.attributes[np.asarray(basins)])
            ),
        )

    def column_attributes(self, basins: np.ndarray):
        """Normalised attributes ``[len(basins), n]`` as they are (None without attributes):
        what the parameter network is given (it clips its MLP input itself, and its storage
        prior reads the basin's own storage); ``forcing`` carries the networks' clipped view."""
        if self.attributes is None:
            return None
        return jnp.asarray(self.attributes[np.asarray(basins)])

    def observed(self, basins: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        days = np.asarray(starts)[:, None] + np.arange(length)
        return self.obs[np.asarray(basins)[:, None], days]

    def period_window(self, name: str, warmup_days: int) -> tuple[int, int]:
        """(start index including warm-up, length) of a whole period."""
        first, last = self.periods[name]
        return first - warmup_days, last - first + 1 + warmup_days


def period_indices(
    time_index: pd.DatetimeIndex, periods: Mapping[str, tuple[str, str]], warmup_days: int
) -> dict[str, tuple[int, int]]:
    """``{name: (first, last)}`` day indices of inclusive ISO periods in ``time_index``; raise a
    ValueError naming the period if a period is not covered or has no room for the warm-up."""
    out = {}
    for name, period in periods.items():
        first = time_index.searchsorted(np.datetime64(period[0]))
        last = time_index.searchsorted(np.datetime64(period[1]), side="right") - 1
        if (
            first >= len(time_index)
            or last < first
            or time_index[first].date() != _dt.date.fromisoformat(period[0])
            or time_index[last].date() != _dt.date.fromisoformat(period[1])
        ):
            span = (
                f"{time_index[0]:%Y-%m-%d} .. {time_index[-1]:%Y-%m-%d}"
                if len(time_index)
                else "none"
            )
            raise ValueError(
                f"The {name} period {period[0]} .. {period[1]} is not covered by the loaded days "
                f"{span} (file range or trimming)."
            )
        if first < warmup_days:
            raise ValueError(
                f"The {name} period starts {first} days after the first loaded day but "
                f"data.warmup_days is {warmup_days}; start the period later or shorten the "
                "warm-up."
            )
        out[name] = (int(first), int(last))
    return out


def require_observed_runoff(
    source,
    periods: Mapping[str, tuple[int, int]],
    cfg: DataConfig,
    task: str,
    fit: str = "train",
    checked: tuple[str, ...] = ("validation",),
    fit_label: str = "training",
    partial: str = "warn",
    fit_note: str = "",
) -> list[str]:
    """Refuse a ``source`` whose observed streamflow cannot drive a fit (``task``, e.g.
    ``'training'``; ``fit_label`` names the ``fit`` period in messages) with a
    ``ForcingDataError`` naming the file, the variable, the period and the fix:

    - no streamflow variable at all (``Q`` in the MOPEX layout, ``streamflow`` in the
      canonical one): refused, naming the file;
    - no basin with an observed day in the ``fit`` period (``periods[fit]``, day indices):
      refused, naming the period;
    - *some* basins without any observed day in the ``fit`` period: a
      ``DataAdjustmentWarning`` names them, and they are returned. With ``partial='warn'``
      (training) they stay: the loss skips them, a regional model still gives them its
      parameters and they are scored where they have observations, as basins never seen. With
      ``partial='drop'`` (per-basin calibration) the caller leaves them out: nothing could
      calibrate their parameters, which would otherwise be written as calibrated;
    - no basin with an observed day in any ``checked`` period (the validation period, on which
      early stopping and the split-sample scores rest): refused. Some basins without
      validation days are accepted: the validation loss and scores are over the others.

    ``fit_note`` follows the ``fit`` period's dates in messages (the part of it that is fitted,
    where ``periods[fit]`` is less than the period the configuration names).
    """
    variable = "Q" if cfg.loader == "mopex" else "streamflow"
    name = getattr(source, "source", None) or cfg.path or f"the {cfg.loader} data"
    obs = source.observed_runoff
    if obs is None or np.ndim(obs) != 2:
        layout = "MOPEX" if cfg.loader == "mopex" else "canonical"
        raise ForcingDataError(
            f"{name} has no observed streamflow, variable '{variable}' ({layout} layout), in "
            f"mm day-1; {task} fits the model to it. Add it to the file, NaN on days without "
            "observations, or use a file that has it (data.path).",
            variable=variable,
        )
    period_text = {"train": cfg.train_period, "validation": cfg.validation_period,
                   "test": cfg.test_period}
    label = {"train": "training", "validation": "validation", "test": "test", fit: fit_label}

    def counts(period: str) -> np.ndarray:
        first, last = periods[period]
        return np.isfinite(np.asarray(obs)[:, first : last + 1]).sum(axis=1)

    def span(period: str) -> str:
        days = period_text.get(period)
        return f"{label.get(period, period)} period" + (
            f" {days[0]} .. {days[1]}" if days else "") + (fit_note if period == fit else "")

    n_fit = counts(fit)
    ids = list(source.basins)
    if not n_fit.any():
        raise ForcingDataError(
            f"No basin of {name} has an observed streamflow day ('{variable}' is NaN on every "
            f"day) in the {span(fit)}, so {task} has nothing to fit. Choose a period with "
            f"observations (data.{fit}_period) or other basins.",
            variable=variable,
            basins=ids,
        )
    lacking = [b for b, k in zip(ids, n_fit) if k == 0]
    if lacking:
        done = (f"they are left out of the {task} (data.exclude_basins: "
                f"[{', '.join(repr(b) for b in lacking)}] leaves them out in the "
                "configuration itself)"
                if partial == "drop" else
                f"{task} skips them in its loss (they are scored where they have observations)")
        warnings.warn(
            f"{len(lacking)} of {len(ids)} basin(s) of {name} have no observed streamflow day "
            f"in the {span(fit)}: {', '.join(lacking)}; {done}.",
            DataAdjustmentWarning,
            stacklevel=2,
        )
    for period in checked:
        if period in periods and not counts(period).any():
            raise ForcingDataError(
                f"No basin of {name} has an observed streamflow day ('{variable}' is NaN on "
                f"every day) in the {span(period)}, so the {task} cannot be validated "
                "(split-sample scores; in training also the best epoch and early stopping). "
                f"Choose a {label.get(period, period)} period with observations "
                f"(data.{period}_period).",
                variable=variable,
                basins=ids,
            )
    return lacking


def keep_basins(source, keep: Sequence[str]):
    """``source`` with only the basins ``keep`` (in its own order)."""
    keep = set(keep)
    rows = np.array([i for i, b in enumerate(source.basins) if b in keep], dtype=int)
    forcing = jax.tree_util.tree_map(
        lambda a, axis: a if axis is None else np.asarray(a)[rows],
        source.forcing, source.forcing.column_axes(), is_leaf=lambda x: x is None)
    return dataclasses.replace(
        source, forcing=forcing, observed_runoff=np.asarray(source.observed_runoff)[rows],
        basins=tuple(source.basins[i] for i in rows), names=tuple(source.names[i] for i in rows),
        lat=np.asarray(source.lat)[rows], lon=np.asarray(source.lon)[rows],
        area_km2=np.asarray(source.area_km2)[rows])


def assemble(
    source,
    periods: dict[str, tuple[int, int]],
    attribute_names,
    raw_attributes: np.ndarray,
    normalisation: Normalisation | None,
    statistics_period: str,
    clip: bool = False,
) -> RunData:
    """``RunData`` of a loaded ``source``; ``normalisation`` is fitted on ``raw_attributes``
    when None (with the training range for ``Normalisation.network_view`` when ``clip``). Observed-runoff mean and spread per basin come from ``statistics_period``."""
    f = source.forcing
    series = {k: np.asarray(getattr(f, k), DTYPE) for k in ("precip", "t_min", "t_max")}
    if f.pet is not None:
        series["pet"] = np.asarray(f.pet, DTYPE)
    obs = np.asarray(source.observed_runoff, DTYPE)
    first, last = periods[statistics_period]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # basins without observations
        obs_std = np.nanstd(obs[:, first : last + 1], axis=1)
        obs_mean = np.nanmean(obs[:, first : last + 1], axis=1)
    obs_std = np.where(np.isfinite(obs_std), obs_std, 1.0).astype(DTYPE)
    obs_mean = np.where(np.isfinite(obs_mean) & (obs_mean > 0), obs_mean, 1.0).astype(DTYPE)
    if normalisation is None:
        normalisation = Normalisation.fit(attribute_names, raw_attributes, clip)
    elif normalisation.names != tuple(attribute_names):
        raise ValueError(
            f"The normalisation is for attributes {normalisation.names}, the model uses "
            f"{tuple(attribute_names)}."
        )
    names = tuple(getattr(source, "names", source.basins))
    return RunData(
        basins=tuple(source.basins),
        names=names,
        time=source.time,
        series=series,
        doy=np.asarray(f.doy, DTYPE),
        lat=np.asarray(f.lat, DTYPE),
        coords={
            "lat": np.asarray(source.lat, float),
            "lon": np.asarray(source.lon, float),
            "area_km2": np.asarray(source.area_km2, float),
            "name": np.asarray(names, dtype=str),
        },
        raw_attributes=np.asarray(raw_attributes, np.float64),
        attributes=normalisation.apply(raw_attributes) if len(attribute_names) else None,
        obs=obs,
        periods=periods,
        obs_std=obs_std,
        obs_mean=obs_mean,
        normalisation=normalisation,
    )


def load_data(config: Config, normalisation: Normalisation | None = None) -> RunData:
    """Load the run's basins and days; fit the attribute normalisation unless one is given."""
    cfg = config.data
    source = LOADERS[cfg.loader](cfg, config.run.seed)
    named = {
        "train": cfg.train_period,
        "validation": cfg.validation_period,
        "test": cfg.test_period,
    }
    periods = period_indices(
        source.time, {k: v for k, v in named.items() if v is not None}, cfg.warmup_days
    )
    source = hide_dry_years(source, periods, cfg, "training")
    require_observed_runoff(source, periods, cfg, "training")
    first, last = periods["train"]
    names = config.model.static_attributes
    raw = static_attributes(names, source, slice(first, last + 1))
    return assemble(
        source, periods, names, raw, normalisation, "train", config.model.clip_attributes
    )


def hide_dry_years(source: Source, periods, cfg: DataConfig, what: str, **check) -> Source:
    """``source`` with the observed runoff of each basin's driest years (``dry_years`` over the
    training period's start to the last configured period's end, ``cfg.holdout_dry_years`` of
    them) set to NaN; unchanged when nothing is held out. The data are first checked as given
    (``require_observed_runoff(..., what, **check)``), so that a file without streamflow is
    named before the dry years are looked for."""
    if not cfg.holdout_dry_years:
        return source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        require_observed_runoff(source, periods, cfg, what, **check)
    ends = [p[1] for p in (cfg.train_period, cfg.validation_period, cfg.test_period)
            if p is not None]
    hidden = dry_years(source.time, source.forcing.precip, cfg.holdout_dry_years,
                       (cfg.train_period[0], max(ends)))
    observed = np.where(hidden, np.nan, source.observed_runoff).astype(DTYPE)
    return dataclasses.replace(source, observed_runoff=observed)


def dry_years(time, precip, fraction: float, span: tuple[str, str]) -> np.ndarray:
    """``[basin, time]`` True on the days of each basin's driest calendar years.

    The candidate years are the calendar years lying wholly inside ``span`` (inclusive ISO
    dates); of these, each basin's ``max(1, round(fraction * n_years))`` years with the least
    precipitation (``precip`` ``[basin, time]`` on ``time``) are marked, e.g. the driest decile
    for ``fraction = 0.1``. Ties go to the earlier year. Raises ValueError if ``span`` holds no
    whole calendar year.
    """
    time = pd.DatetimeIndex(time)
    precip = np.asarray(precip, np.float64)
    start, end = (pd.Timestamp(d) for d in span)
    inside = (time >= start) & (time <= end)
    years = np.unique(time.year[inside])
    whole = [
        y for y in years
        if np.sum(inside & (time.year == y)) == pd.Timestamp(y, 12, 31).day_of_year
    ]
    if not whole:
        raise ValueError(
            f"The span {span[0]} .. {span[1]} holds no whole calendar year of data; dry years "
            "need at least one."
        )
    annual = np.stack([precip[:, time.year == y].sum(axis=1) for y in whole], axis=1)
    n_dry = max(1, int(round(fraction * len(whole))))
    driest = np.argsort(annual, axis=1, kind="stable")[:, :n_dry]  # [basin, n_dry]
    year_of_day = np.asarray(time.year)
    chosen = np.asarray(whole)[driest]
    return (year_of_day[None, :, None] == chosen[:, None, :]).any(axis=-1)


def basin_table(run_dir) -> pd.DataFrame:
    """``basins.csv`` of a finished run: per trained basin its raw static attributes and
    physical parameters, indexed by basin id."""
    return pd.read_csv(Path(run_dir) / "basins.csv", dtype={"basin": str}).set_index("basin")


def write_basin_table(path, data: RunData, params: Params, config: Config) -> None:
    """Write ``basins.csv``: id, name, raw attributes, trainable physical parameters (for a
    model of several components, the mean over its components)."""
    table = pd.DataFrame({"basin": list(data.basins), "name": list(data.names)})
    for j, name in enumerate(config.model.static_attributes):
        table[name] = data.raw_attributes[:, j]
    for name in config.model.trainable_params:
        value = np.asarray(getattr(params, name))
        if value.ndim == 2:  # one value per component: the column's mean is written
            value = value.mean(axis=1)
        table[name] = np.broadcast_to(value, (data.n_basins,))
    ckpt.atomic_write_text(path, table.to_csv(index=False, float_format="%.9g"))
