r"""Non-physical reference models of the climate-shift study: a climatology and a regression ladder.

They answer "how much of the skill needs a model at all?". Everything is numpy and closed form;
arrays are basin first, time last (``[basin, time]``), runoff in mm day-1, temperature in degC.
A day is used for fitting where ``fit_mask`` is true and ``obs`` is finite (gaps are NaN);
whatever ``obs`` holds elsewhere is never read into a fit.

**Climatology** (``fit_climatology``). For basin ``b`` and day of year ``d`` (day 366 counted as
day 365), with ``V_b`` the fit days of basin ``b`` and ``W(d)`` the 31 days ``d-15 .. d+15``
taken circularly over the 365-day year:
$$c_b(d) = \frac{\sum_{t\in V_b,\ \mathrm{doy}_t\in W(d)} o_{bt}}
{|\{t\in V_b : \mathrm{doy}_t\in W(d)\}|},$$
a moving-window mean that weighs days by their count, so sparse or gappy records are fine.
The regional climatology is the median over the fitted basins,
``r(d) = median_b c_b(d)`` (basins whose window ``W(d)`` holds no fit day left out); it also
fills the days of year for which a fitted basin has no fit day in its window. A prediction for
a fitted basin is its own ``c_b(doy_t)``; for a basin never seen in the fit it is ``r(doy_t)``,
which is the fair reference for ungauged (spatially held-out) basins.

**Regression ladder** (``fit_regression``), after the forcing-only / memory / state-augmented
ladders of observation-based soil-moisture benchmarks. One ridge regression is pooled over all
fit days of all basins, so it transfers to basins it never saw. The rungs add features:

- ``forcing``: same-day ``precip``, ``pet``, ``t_mean = (t_min + t_max) / 2``, the static
  attributes (constant in time) and a constant;
- ``memory``: ``forcing`` plus ``precip`` and ``pet`` at lags 1..7 days and the 30-day
  antecedent precipitation mean ``(1/30) sum_{l=1}^{30} P_{t-l}`` (the slow wetness memory that
  a week of lags misses). Days before the start of the series take the first value of the
  series (edge padding); nothing is excluded, the caller's warm-up normally hides those days;
- ``state``: ``memory`` plus the given model-state series of the same day (e.g. ``soil``,
  ``snow`` in mm from a physics run), in the sorted order of their names.

Features ``x`` other than the constant are standardised with the mean ``m`` and standard
deviation ``s`` over the fit days, ``z = (x - m) / s`` (a feature that is constant on the fit
days keeps ``s = 1``, so it centres to zero and gets no weight). With ``Z`` the fit rows of
``[z, 1]`` and ``P = diag(1, ..., 1, 0)`` (the intercept is not penalised):
$$\theta = (Z^\top Z + \lambda P)^{-1} Z^\top o, \qquad
\hat q = \max\!\big(0,\ z^\top\theta_{1:k-1} + \theta_k\big),$$
with ``lambda = ridge`` an absolute penalty (not divided by the number of days). The
prediction is clipped at zero because runoff cannot be negative; the fit itself is unclipped
least squares. ``Z'Z`` and ``Z'o`` are accumulated a few basins at a time, so no
``[basins * days, features]`` matrix is ever built: memory is bounded by ``chunk_elements``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Float, Int

RUNGS = ("forcing", "memory", "state")
"""The rungs of the regression ladder, from forcing only to state-augmented."""

FORCING_KEYS = ("precip", "t_min", "t_max", "pet")
"""Series the regression reads from ``series``: mm day-1 (precip, pet) and degC (t_min, t_max)."""

N_LAGS = 7
"""Days of precip and pet history in the memory rung (lags 1..N_LAGS)."""

ANTECEDENT_DAYS = 30
"""Window of the antecedent precipitation mean of the memory rung, days (t-30 .. t-1)."""

CLIMATOLOGY_HALF_WINDOW = 15
"""Half-width of the circular day-of-year window of the climatology: 31 days in all."""

CHUNK_ELEMENTS = 2**22
"""Default bound on the elements of one chunk of features ``[basins, time, k]`` (32 MiB float64)."""

_YEAR = 365

BasinTime = Float[np.ndarray, "basin time"]


# ----------------------------------------------------------------------------------------------
# Climatology
# ----------------------------------------------------------------------------------------------


def _doy_index(doy, n_time: int, name: str = "doy") -> np.ndarray:
    doy = np.asarray(doy)
    if doy.shape != (n_time,):
        raise ValueError(f"{name} must be [time] = ({n_time},) like the series; got {doy.shape}")
    if doy.size and (doy.min() < 1 or doy.max() > 366):
        raise ValueError(f"{name} must hold days of year 1..366; got {doy.min()}..{doy.max()}")
    return np.minimum(doy.astype(np.int64), _YEAR) - 1


def _basin_ids(basins, n_basin: int, name: str = "basins") -> list:
    if basins is None:
        return list(range(n_basin))
    ids = list(basins)
    if len(ids) != n_basin:
        raise ValueError(f"{name} must give one id per basin ({n_basin}); got {len(ids)} ids")
    return ids


@dataclasses.dataclass(frozen=True)
class Climatology:
    """Day-of-year climatology of observed runoff; build it with ``fit_climatology``.

    Fields:
        basins: the ids of the fitted basins, in fit order.
        table: ``[basin, 366]`` smoothed climatology, mm day-1; column ``d - 1`` is day of year
            ``d`` (column 366 repeats 365).
        regional: ``[366]`` median over the fitted basins, mm day-1: the prediction for a basin
            that was not fitted.
    """

    basins: tuple[Hashable, ...]
    table: Float[np.ndarray, "basin 366"]
    regional: Float[np.ndarray, " 366"]

    def known(self, basins: Sequence[Hashable]) -> Bool[np.ndarray, " basin"]:
        """Whether each id of ``basins`` was fitted (else it gets the regional climatology)."""
        index = {b: i for i, b in enumerate(self.basins)}
        return np.array([b in index for b in basins], bool)

    def predict(
        self, doy: Int[np.ndarray, " time"], basins: Sequence[Hashable] | None = None
    ) -> BasinTime:
        """Climatological runoff ``[basin, time]``, mm day-1, for the days of year ``doy``.

        ``basins`` are ids as given to ``fit_climatology`` (default: the fitted basins, in fit
        order). A fitted id gets its own climatology, any other id the regional one.
        """
        ids = list(self.basins) if basins is None else list(basins)
        doy = np.asarray(doy)
        if doy.ndim != 1:
            raise ValueError(f"doy must be [time]; got shape {doy.shape}")
        column = _doy_index(doy, doy.shape[0])
        index = {b: i for i, b in enumerate(self.basins)}
        rows = [self.table[index[b]] if b in index else self.regional for b in ids]
        return np.stack(rows)[:, column] if rows else np.zeros((0, column.size))


def _circular_window_sum(x: np.ndarray, half: int) -> np.ndarray:
    """Sum over the circular window ``d-half .. d+half`` along the last axis of ``[..., 365]``."""
    padded = np.concatenate([x[..., -half:], x, x[..., :half]], axis=-1)
    cum = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(padded, axis=-1)], axis=-1)
    return cum[..., 2 * half + 1 :] - cum[..., : -(2 * half + 1)]


def fit_climatology(
    obs: BasinTime,
    doy: Int[np.ndarray, " time"],
    fit_mask: Bool[np.ndarray, "basin time"],
    basins: Sequence[Hashable] | None = None,
) -> Climatology:
    """Fit the per-basin and regional day-of-year climatology (see the module docstring).

    Args:
        obs: observed runoff ``[basin, time]``, mm day-1, NaN in gaps.
        doy: day of year ``[time]``, 1..366.
        fit_mask: ``[basin, time]``, the days that may be used; only those with finite ``obs``
            count.
        basins: one id per row of ``obs`` (ints, strings; default ``0 .. basin-1``), the ids
            that ``Climatology.predict`` is later called with.

    Raises:
        ValueError: on mismatched shapes, days of year outside 1..366, repeated basin ids, or a
            day of year whose 31-day window holds no fit day in any basin.
    """
    obs = np.asarray(obs, np.float64)
    if obs.ndim != 2:
        raise ValueError(f"obs must be [basin, time]; got shape {obs.shape}")
    fit_mask = np.asarray(fit_mask, bool)
    if fit_mask.shape != obs.shape:
        raise ValueError(f"fit_mask must have the shape of obs {obs.shape}; got {fit_mask.shape}")
    n_basin, n_time = obs.shape
    column = _doy_index(doy, n_time)
    ids = _basin_ids(basins, n_basin)
    if len(set(ids)) != len(ids):
        raise ValueError("basins must not repeat an id")

    valid = fit_mask & np.isfinite(obs)
    bins = (np.arange(n_basin)[:, None] * _YEAR + column[None, :])[valid]
    total = np.bincount(bins, weights=obs[valid], minlength=n_basin * _YEAR)
    count = np.bincount(bins, minlength=n_basin * _YEAR).astype(np.float64)
    total = _circular_window_sum(total.reshape(n_basin, _YEAR), CLIMATOLOGY_HALF_WINDOW)
    count = _circular_window_sum(count.reshape(n_basin, _YEAR), CLIMATOLOGY_HALF_WINDOW)
    empty = np.flatnonzero(count.sum(axis=0) == 0)
    if empty.size:
        raise ValueError(
            f"no fit day within {CLIMATOLOGY_HALF_WINDOW} days of day of year {empty[0] + 1} in "
            "any basin: widen fit_mask or check that obs is not all NaN there"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(count > 0, total / count, np.nan)
    regional = np.nanmedian(table, axis=0)
    table = np.where(count > 0, table, regional[None, :])
    table = np.concatenate([table, table[:, -1:]], axis=1)
    regional = np.append(regional, regional[-1])
    return Climatology(basins=tuple(ids), table=table, regional=regional)


# ----------------------------------------------------------------------------------------------
# Regression ladder
# ----------------------------------------------------------------------------------------------


def _check_rung(rung: str) -> None:
    if rung not in RUNGS:
        raise ValueError(f"rung must be one of {RUNGS}; got {rung!r}")


def _state_keys(rung: str, state) -> tuple[str, ...]:
    if rung != "state":
        return ()
    if not state:
        raise ValueError(
            "rung 'state' needs state={'soil': ..., ...}, a non-empty dict of [basin, time] "
            "model-state series; got " + ("None" if state is None else "an empty dict")
        )
    return tuple(sorted(state))


def feature_names(
    rung: str, n_attr: int = 0, state_keys: Sequence[str] = ()
) -> tuple[str, ...]:
    """Names of the columns of ``regression_features`` for a rung; ``const`` is always last."""
    _check_rung(rung)
    names = ["precip", "pet", "t_mean"]
    if rung in ("memory", "state"):
        names += [f"precip_lag{lag}" for lag in range(1, N_LAGS + 1)]
        names += [f"pet_lag{lag}" for lag in range(1, N_LAGS + 1)]
        names += [f"precip_mean{ANTECEDENT_DAYS}"]
    if rung == "state":
        names += [f"state_{key}" for key in sorted(state_keys)]
    names += [f"attr{i}" for i in range(n_attr)]
    return tuple(names) + ("const",)


def _check_inputs(series, attributes, state, rung):
    """Validate shapes; return ``(n_basin, n_time, n_attr, state_keys)``."""
    _check_rung(rung)
    if not isinstance(series, Mapping):
        raise ValueError(f"series must be a dict with keys {FORCING_KEYS}; got {type(series)}")
    missing = [k for k in FORCING_KEYS if k not in series]
    if missing:
        raise ValueError(f"series is missing {missing}: give {FORCING_KEYS}, each [basin, time]")
    shape = np.shape(series["precip"])
    if len(shape) != 2:
        raise ValueError(f"series['precip'] must be [basin, time]; got shape {shape}")
    for key in FORCING_KEYS:
        if np.shape(series[key]) != shape:
            raise ValueError(
                f"series[{key!r}] must have the shape of series['precip'] {shape}; "
                f"got {np.shape(series[key])}"
            )
    keys = _state_keys(rung, state)
    for key in keys:
        if np.shape(state[key]) != shape:
            raise ValueError(
                f"state[{key!r}] must be [basin, time] = {shape} like the series; "
                f"got {np.shape(state[key])}"
            )
    n_attr = 0
    if attributes is not None:
        a_shape = np.shape(attributes)
        if len(a_shape) != 2 or a_shape[0] != shape[0]:
            raise ValueError(
                f"attributes must be [basin, n_attr] with basin = {shape[0]} (or None); "
                f"got shape {a_shape}"
            )
        n_attr = a_shape[1]
    return shape[0], shape[1], n_attr, keys


def _lags(x: np.ndarray, n_lags: int) -> np.ndarray:
    """``[basin, time, n_lags]``: ``x`` at lags 1..n_lags, edge-padded with the first value."""
    n_time = x.shape[1]
    padded = np.concatenate([np.repeat(x[:, :1], n_lags, axis=1), x], axis=1)
    lagged = [padded[:, n_lags - lag : n_lags - lag + n_time] for lag in range(1, n_lags + 1)]
    return np.stack(lagged, axis=-1)


def _antecedent_mean(x: np.ndarray, days: int) -> np.ndarray:
    """``[basin, time]``: mean of ``x`` over days t-days .. t-1, first value repeated before t=0."""
    n_time = x.shape[1]
    padded = np.concatenate([np.repeat(x[:, :1], days, axis=1), x], axis=1)
    cum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(padded, axis=1)], axis=1)
    return (cum[:, days : days + n_time] - cum[:, :n_time]) / days


def _features(rung, series, attributes, state, keys, rows: slice) -> np.ndarray:
    def get(x):
        return np.asarray(x[rows], np.float64)

    precip, pet = get(series["precip"]), get(series["pet"])
    t_mean = 0.5 * (get(series["t_min"]) + get(series["t_max"]))
    columns = [precip[..., None], pet[..., None], t_mean[..., None]]
    if rung in ("memory", "state"):
        columns += [_lags(precip, N_LAGS), _lags(pet, N_LAGS)]
        columns += [_antecedent_mean(precip, ANTECEDENT_DAYS)[..., None]]
    columns += [get(state[key])[..., None] for key in keys]
    if attributes is not None:
        attrs = get(attributes)
        columns += [np.broadcast_to(attrs[:, None, :], precip.shape + attrs.shape[-1:])]
    columns += [np.ones(precip.shape + (1,))]
    return np.concatenate(columns, axis=-1)


def regression_features(
    rung: str,
    series: Mapping[str, BasinTime],
    attributes: Float[np.ndarray, "basin attr"] | None = None,
    state: Mapping[str, BasinTime] | None = None,
) -> Float[np.ndarray, "basin time feature"]:
    """Raw (unstandardised) features ``[basin, time, k]`` of a rung, columns as ``feature_names``.

    Materialises the whole array: for large inputs ``fit_regression`` and
    ``RegressionFit.predict`` build it a few basins at a time instead. ``state`` is read by the
    ``state`` rung only.
    """
    n_basin, _, _, keys = _check_inputs(series, attributes, state, rung)
    return _features(rung, series, attributes, state, keys, slice(0, n_basin))


def _chunks(n_basin: int, n_time: int, k: int, chunk_elements: int):
    step = max(1, chunk_elements // max(1, n_time * k))
    return [slice(i, min(i + step, n_basin)) for i in range(0, n_basin, step)]


@dataclasses.dataclass(frozen=True)
class RegressionFit:
    """A fitted rung of the regression ladder; build it with ``fit_regression``.

    Fields:
        rung: one of ``RUNGS``.
        names: feature names, ``const`` last (see ``feature_names``).
        mean: ``[k - 1]`` mean of each non-constant feature over the fit days.
        std: ``[k - 1]`` standard deviation over the fit days (1 where the feature is constant).
        coef: ``[k]`` ridge coefficients of the standardised features, intercept last.
        state_keys: names of the state series the ``state`` rung reads (empty otherwise).
        n_fit: number of fit days (rows) used.
    """

    rung: str
    names: tuple[str, ...]
    mean: Float[np.ndarray, " k1"]
    std: Float[np.ndarray, " k1"]
    coef: Float[np.ndarray, " k"]
    state_keys: tuple[str, ...]
    n_fit: int

    @property
    def weights(self) -> Float[np.ndarray, " k1"]:
        """Coefficients of the raw (unstandardised) non-constant features, in ``names`` order."""
        return self.coef[:-1] / self.std

    @property
    def intercept(self) -> float:
        """Intercept in raw feature units, mm day-1."""
        return float(self.coef[-1] - self.weights @ self.mean)

    def predict(
        self,
        series: Mapping[str, BasinTime],
        attributes: Float[np.ndarray, "basin attr"] | None = None,
        state: Mapping[str, BasinTime] | None = None,
        chunk_elements: int = CHUNK_ELEMENTS,
    ) -> BasinTime:
        """Runoff ``[basin, time]``, mm day-1, clipped at 0, for any basins and period.

        ``attributes`` must have as many columns as in the fit, and ``state`` (``state`` rung)
        the same series names.
        """
        n_basin, n_time, n_attr, keys = _check_inputs(series, attributes, state, self.rung)
        if feature_names(self.rung, n_attr, keys) != self.names:
            raise ValueError(
                f"the features {feature_names(self.rung, n_attr, keys)} differ from the fit's "
                f"{self.names}: pass attributes with the same columns and state with the same keys"
            )
        weights, intercept = self.weights, self.intercept
        out = np.empty((n_basin, n_time))
        for rows in _chunks(n_basin, n_time, len(self.names), chunk_elements):
            x = _features(self.rung, series, attributes, state, keys, rows)
            out[rows] = x[..., :-1] @ weights + intercept
        return np.maximum(out, 0.0)


def fit_regression(
    rung: str,
    series: Mapping[str, BasinTime],
    attributes: Float[np.ndarray, "basin attr"] | None,
    obs: BasinTime,
    fit_mask: Bool[np.ndarray, "basin time"],
    state: Mapping[str, BasinTime] | None = None,
    ridge: float = 1e-3,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> RegressionFit:
    """Fit one rung of the pooled ridge regression ladder (see the module docstring).

    Args:
        rung: ``"forcing"``, ``"memory"`` or ``"state"``.
        series: ``precip``, ``t_min``, ``t_max``, ``pet``, each ``[basin, time]`` without NaN.
        attributes: ``[basin, n_attr]`` normalised static attributes, or None.
        obs: observed runoff ``[basin, time]``, mm day-1, NaN in gaps.
        fit_mask: ``[basin, time]``; a day is fitted where it is true and ``obs`` is finite.
        state: dict of ``[basin, time]`` model-state series, needed by (and only read by)
            the ``state`` rung.
        ridge: penalty ``lambda >= 0`` on the standardised coefficients (not the intercept).
        chunk_elements: bound on the elements of one chunk of features; only memory and speed
            depend on it, not the result.

    Raises:
        ValueError: on an unknown rung, a ``state`` rung without state, mismatched shapes, a
            negative ridge, no fit day at all, or non-finite features on a fit day.
    """
    n_basin, n_time, n_attr, keys = _check_inputs(series, attributes, state, rung)
    obs = np.asarray(obs, np.float64)
    if obs.shape != (n_basin, n_time):
        raise ValueError(f"obs must be [basin, time] = {(n_basin, n_time)}; got {obs.shape}")
    fit_mask = np.asarray(fit_mask, bool)
    if fit_mask.shape != obs.shape:
        raise ValueError(f"fit_mask must have the shape of obs {obs.shape}; got {fit_mask.shape}")
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0; got {ridge}")
    valid = fit_mask & np.isfinite(obs)
    n_fit = int(valid.sum())
    if n_fit == 0:
        raise ValueError("no fit day: fit_mask & isfinite(obs) is false everywhere")

    names = feature_names(rung, n_attr, keys)
    k = len(names)
    chunks = [rows for rows in _chunks(n_basin, n_time, k, chunk_elements) if valid[rows].any()]

    def fit_rows(rows):
        x = _features(rung, series, attributes, state, keys, rows)[valid[rows]]
        if not np.isfinite(x).all():
            raise ValueError("series, attributes and state must be finite on the fit days")
        return x, obs[rows][valid[rows]]

    # Two passes: the mean first, then centred cross products, which keeps the sums of squares
    # free of the cancellation that raw moments suffer for features far from zero.
    total = np.zeros(k)
    for rows in chunks:
        total += fit_rows(rows)[0].sum(axis=0)
    mean = total[:-1] / n_fit
    gram, xty = np.zeros((k, k)), np.zeros(k)
    for rows in chunks:
        x, y = fit_rows(rows)
        x[:, :-1] -= mean
        gram += x.T @ x
        xty += x.T @ y
    std = np.sqrt(np.diag(gram)[:-1] / n_fit)
    # A feature constant on the fit days (an attribute when one basin is fitted) centres to
    # rounding noise; drop that noise so that the feature gets a weight of exactly zero.
    flat = np.append(std <= 1e-9 * np.maximum(1.0, np.abs(mean)), False)
    gram[flat, :], gram[:, flat], xty[flat] = 0.0, 0.0, 0.0
    std = np.where(flat[:-1], 1.0, std)
    scale = np.append(1.0 / std, 1.0)
    penalty = np.append(np.full(k - 1, float(ridge)), 0.0)
    lhs = scale[:, None] * gram * scale[None, :] + np.diag(penalty)
    coef = np.linalg.lstsq(lhs, scale * xty, rcond=None)[0]
    return RegressionFit(
        rung=rung, names=names, mean=mean, std=std, coef=coef, state_keys=keys, n_fit=n_fit
    )


__all__ = [
    "ANTECEDENT_DAYS",
    "CHUNK_ELEMENTS",
    "CLIMATOLOGY_HALF_WINDOW",
    "FORCING_KEYS",
    "N_LAGS",
    "RUNGS",
    "Climatology",
    "RegressionFit",
    "feature_names",
    "fit_climatology",
    "fit_regression",
    "regression_features",
]
