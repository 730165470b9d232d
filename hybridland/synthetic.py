"""Synthetic twins: stochastic weather and a hybridland "truth" run, for experiments whose answer
is known (parameter recovery, learned laws against the physics they replace).

``synthetic_twin`` returns a canonical dataset (``hybridland.io.canonical``) in which

- the **weather** of each column is drawn from a seeded ``numpy`` generator:

  - precipitation: wet/dry occurrence from a two-state Markov chain whose wet-day
    probability follows a seasonal cycle (lag-one persistence 0.3), amounts from a gamma
    distribution (shape 0.7) scaled so the long-term mean is the column's climatological
    mean (drawn in 1.5-4 mm day-1) -- the Richardson (1981) weather-generator recipe;
  - air temperature: a seasonal sinusoid around a latitude-dependent annual mean
    (``38 - 0.6 |lat|`` degC, amplitude ``4 + 0.2 |lat|`` degC, warmest near 19 July in the
    northern hemisphere, 17 January in the southern) plus AR(1) day-to-day anomalies;
    the diurnal range is wider on dry days;
  - potential evapotranspiration: a seasonal cycle in phase with temperature, higher on warm
    days, scaled so that its mean over the generated days is ``aridity_i`` times the column's
    mean generated precipitation. The targets ``aridity_i`` are log-spaced over the requested
    range (``aridity_target``), so the ``aridity`` static equals them to rounding;

- the **targets** ``streamflow`` and ``evapotranspiration`` are the output of a hybridland model
  (``hybridland.simulate``, PET given) with parameters ``true_<name>`` (given, or drawn
  uniformly inside ``PARAMETER_BOUNDS`` per column). The stores are first spun up by running
  the first ``spinup_days`` of the same weather from half-full soil; the spun-up stores are the
  initial state of the recorded run and are stored as ``initial_<store>`` (mm), so
  ``simulate(model, to_forcing(ds), *twin_truth(ds))`` reproduces the targets.

They are model output, not observations: only ``noise`` (multiplicative lognormal error on
streamflow) makes them imperfect, and the noise-free series is then kept as
``streamflow_model``.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import xarray as xr

from ._containers import STORE_NAMES, Forcing, State
from ._params import PARAMETER_BOUNDS, Params
from ._random import seed_key
from .column import ColumnModel, build_model
from .physics.pet import PET_LAWS
from .solvers import simulate
from .io.canonical import climate_statics, make_dataset

YEAR = 365.25
WET_PERSISTENCE = 0.3
"""Lag-one autocorrelation of wet/dry occurrence (P(wet|wet) - P(wet|dry))."""
GAMMA_SHAPE = 0.7
"""Shape of the gamma distribution of wet-day amounts (typically 0.6-0.9 for daily rain)."""
MIN_PET_SHAPE = 0.05
"""Floor of the relative PET seasonal cycle, so winter PET stays positive."""


def _pair(name: str, value) -> tuple[float, float]:
    """``(low, high)`` of a range argument; a single number is the range ``(v, v)``."""
    try:
        if np.ndim(value) == 0:
            return float(value), float(value)
        low, high = (float(a) for a in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high) or one number, got {value!r}.") from None
    return low, high


def _check(
    n_columns, n_days, aridity, lat, noise, spinup_days, dtype
) -> tuple[tuple[float, float], tuple[float, float], np.dtype]:
    for name, value, least in (("n_columns", n_columns, 1), ("n_days", n_days, 1),
                               ("spinup_days", spinup_days, 0)):
        if int(value) != value or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
    low, high = _pair("aridity", aridity)
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or low > high:
        raise ValueError(
            "aridity must be (low, high) with 0 < low <= high (mean PET / mean P), got "
            f"{aridity!r}."
        )
    lat_low, lat_high = _pair("lat", lat)
    if not -90 <= lat_low <= lat_high <= 90:
        raise ValueError(
            f"lat must be (low, high) degrees with -90 <= low <= high <= 90, got {lat!r}."
        )
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}.")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    return (low, high), (lat_low, lat_high), dtype


def _seasonal(doy: np.ndarray, peak_doy) -> np.ndarray:
    """cos of the phase from the peak: ``[column, time]`` in [-1, 1], 1 on ``peak_doy``."""
    return np.cos(2.0 * np.pi * (doy[None, :] - np.asarray(peak_doy)[:, None]) / YEAR)


def _ar1(rng: np.random.Generator, shape, phi: float) -> np.ndarray:
    """Standard-normal AR(1) series along the last axis (unit stationary variance)."""
    eps = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = eps[:, 0]
    scale = np.sqrt(1.0 - phi**2)
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + scale * eps[:, t]
    return out


def weather(
    rng: np.random.Generator, lat: np.ndarray, target_aridity: np.ndarray, doy: np.ndarray
) -> dict[str, np.ndarray]:
    """Daily canonical forcing ``{name: [column, time]}`` for columns at ``lat`` (degrees) with
    the given aridity (see the module docstring for the recipe)."""
    n, n_days = lat.size, doy.size
    summer = np.where(lat >= 0, 200.0, 17.0)

    # Precipitation: seasonal Markov-chain occurrence and gamma amounts.
    p_mean = rng.uniform(1.5, 4.0, n)
    wet_mean = rng.uniform(0.25, 0.5, n)
    p_amplitude = rng.uniform(0.0, 0.5, n)
    p_peak = rng.uniform(0.0, YEAR, n)
    pi_wet = wet_mean[:, None] * (1.0 + p_amplitude[:, None] * _seasonal(doy, p_peak))
    u = rng.uniform(size=(n, n_days))
    wet = np.empty((n, n_days), bool)
    wet[:, 0] = u[:, 0] < pi_wet[:, 0]
    for t in range(1, n_days):
        # P(wet | yesterday) keeps the stationary wet fraction pi_wet with lag-one correlation r.
        p = pi_wet[:, t] * (1.0 - WET_PERSISTENCE) + WET_PERSISTENCE * wet[:, t - 1]
        wet[:, t] = u[:, t] < p
    amount = rng.gamma(GAMMA_SHAPE, 1.0, (n, n_days)) * (p_mean / wet_mean / GAMMA_SHAPE)[:, None]
    precip = np.where(wet, amount, 0.0)

    # Temperature: latitude-dependent seasonal sinusoid, AR(1) anomalies, wider range when dry.
    abs_lat = np.abs(lat)
    t_annual = 38.0 - 0.6 * abs_lat + rng.normal(0.0, 1.5, n)
    t_amplitude = 4.0 + 0.2 * abs_lat
    anomaly = _ar1(rng, (n, n_days), 0.7)
    t_mean = t_annual[:, None] + t_amplitude[:, None] * _seasonal(doy, summer) + 3.0 * anomaly
    t_range = np.clip(11.0 - 4.0 * wet + rng.normal(0.0, 1.5, (n, n_days)), 1.0, None)

    # PET: seasonal cycle in phase with temperature, warmer days higher; mean = aridity x mean P.
    pet_amplitude = np.clip(0.3 + 0.012 * abs_lat, 0.2, 0.9)
    shape = np.maximum(1.0 + pet_amplitude[:, None] * _seasonal(doy, summer), MIN_PET_SHAPE)
    shape = shape * np.exp(0.08 * anomaly)
    realised = precip.mean(axis=1)
    # A very short run can be dry throughout; then the climatological mean sets the scale.
    scale = np.where(realised > 0, realised, p_mean)
    pet = shape * (target_aridity * scale / shape.mean(axis=1))[:, None]
    return {
        "precipitation": precip,
        "air_temperature_min": t_mean - 0.5 * t_range,
        "air_temperature_max": t_mean + 0.5 * t_range,
        "potential_evapotranspiration": pet,
    }


TWIN_KINDS = ("physics", "hybrid")
"""Model kinds that can be the truth of a synthetic twin (one bucket, static parameters)."""


def draw_params(rng: np.random.Generator, n_columns: int) -> dict[str, np.ndarray]:
    """Parameters drawn uniformly inside ``PARAMETER_BOUNDS``: ``{name: [n_columns]}``."""
    return {name: rng.uniform(b.low, b.high, n_columns) for name, b in PARAMETER_BOUNDS.items()}


def twin_truth(ds: xr.Dataset, dtype=np.float64) -> tuple[Params, State]:
    """The true parameters (``true_<name>``) and spun-up initial state (``initial_<store>``)
    stored in a synthetic twin, as ``[column]`` arrays of ``dtype``: the ``params`` and
    ``state0`` with which ``simulate`` reproduces its targets."""
    import jax.numpy as jnp

    def get(var):
        return jnp.asarray(np.asarray(ds[var].values, dtype))

    # A twin written before a parameter existed holds none of it: its default, as it ran with.
    params = Params(**{
        name: get(f"true_{name}") if f"true_{name}" in ds
        else jnp.full(ds.sizes["column"], b.default, dtype)
        for name, b in PARAMETER_BOUNDS.items()
    })
    state = State(**{name: get(f"initial_{name}") for name in STORE_NAMES
                     if f"initial_{name}" in ds})
    return params, state


def _truth_run(model: ColumnModel, series: dict, doy, lat, params: dict, spinup_days: int):
    """Spin up on the first ``spinup_days``, then simulate every day from the spun-up stores."""
    import jax.numpy as jnp

    dtype = series["precipitation"].dtype

    def forcing(days: slice) -> Forcing:
        def get(var):
            return jnp.asarray(series[var][:, days])

        return Forcing(
            precip=get("precipitation"),
            t_min=get("air_temperature_min"),
            t_max=get("air_temperature_max"),
            pet=get("potential_evapotranspiration"),
            doy=jnp.asarray(doy[days].astype(dtype)),
            lat=jnp.asarray(lat.astype(dtype)),
        )

    p = Params(**{k: jnp.asarray(v.astype(dtype)) for k, v in params.items()})
    state0 = model.init_state(p)
    if spinup_days:
        state0 = simulate(model, forcing(slice(0, spinup_days)), p, state0, outputs=()).final_state
    return simulate(model, forcing(slice(None)), p, state0)


def synthetic_twin(
    n_columns: int,
    n_days: int,
    *,
    aridity: tuple[float, float] = (0.3, 3.0),
    lat: tuple[float, float] = (30.0, 50.0),
    start: str = "2000-01-01",
    seed: int = 0,
    kind: str | ColumnModel = "physics",
    params: Params | None = None,
    spinup_days: int = 365,
    noise: float = 0.0,
    dtype=np.float64,
) -> xr.Dataset:
    """A canonical dataset of synthetic weather and the targets of a known model.

    **Arguments:**

    - ``n_columns``, ``n_days``: size; days run from ``start`` (ISO date), one a day.
    - ``aridity``: ``(low, high)`` range of mean PET / mean P (one number: every column's);
      column ``i`` gets the ``i``-th of ``n_columns`` log-spaced values (``low`` for one
      column).
    - ``lat``: ``(low, high)`` latitude range, degrees north (or one number); latitudes are drawn uniformly in it
      (longitudes uniformly over the globe: nothing depends on them).
    - ``seed``: seeds weather, parameters, noise (independent streams) and, for
      ``kind='hybrid'``, the network weights (``build_model('hybrid',
      key=hybridland._random.seed_key(seed))``).
    - ``kind``: the truth model, a name in ``BUCKET_KINDS`` (with PET given) or a ``ColumnModel``
      (with its own PET law, which the comments of the targets name).
    - ``params``: true parameters (scalar or ``[n_columns]``, inside ``PARAMETER_BOUNDS``);
      ``None`` draws each uniformly in its range per column.
    - ``spinup_days``: days of the weather's start run once before the recorded run to fill the
      stores (at most ``n_days``; 0 starts from half-full soil, no snow or groundwater).
    - ``noise``: standard deviation of multiplicative, mean-one lognormal error on streamflow.
    - ``dtype``: precision of the truth run (float64 runs under ``jax.enable_x64``); the forcing
      is rounded to it, so re-running the stored forcing in ``dtype`` reproduces the targets.

    **Returns:** a canonical ``xarray.Dataset`` (dims ``column``, ``time``) with forcing
    ``precipitation``, ``air_temperature_min``/``max``, ``potential_evapotranspiration``;
    targets ``streamflow`` and ``evapotranspiration`` (mm day-1; ``streamflow_model`` too when
    ``noise > 0``); statics from ``climate_statics`` (``aridity``...), ``aridity_target``,
    ``true_<param>`` and ``initial_<store>``. Raises ``ValueError`` naming a bad argument.
    """
    (a_low, a_high), (lat_low, lat_high), dtype = _check(
        n_columns, n_days, aridity, lat, noise, spinup_days, dtype
    )
    n_columns, n_days, spinup_days = int(n_columns), int(n_days), min(int(spinup_days), int(n_days))
    if isinstance(kind, ColumnModel):
        model, kind_name = kind, f"custom {type(kind).__name__}"
    elif kind in TWIN_KINDS:
        model, kind_name = build_model(kind, key=seed_key(seed)), kind
    else:
        raise ValueError(
            f"kind must be one of {list(TWIN_KINDS)} or a ColumnModel, got {kind!r}."
        )
    if model.carries_components or model.daily is not None:
        raise ValueError(
            "A synthetic twin's truth is a single bucket with static parameters: a model with "
            "components, routing or daily parameters cannot be one."
        )
    try:
        time = pd.date_range(start, periods=n_days, freq="D")
    except (ValueError, TypeError) as err:
        raise ValueError(f"start must be an ISO date, got {start!r} ({err}).") from None

    weather_rng, param_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    lats = weather_rng.uniform(lat_low, lat_high, n_columns)
    lons = weather_rng.uniform(-180.0, 180.0, n_columns)
    target_aridity = np.geomspace(a_low, a_high, n_columns)
    doy = time.day_of_year.to_numpy().astype(np.float64)
    drawn = weather(weather_rng, lats, target_aridity, doy)
    series = {k: v.astype(dtype) for k, v in drawn.items()}

    if params is None:
        true = draw_params(param_rng, n_columns)
    else:
        params.check_bounds()
        true = {k: np.asarray(getattr(params.broadcast(n_columns), k), np.float64)
                for k in PARAMETER_BOUNDS}
    # Stored as run: the parameters the model saw, rounded to ``dtype``.
    true = {k: v.astype(dtype).astype(np.float64) for k, v in true.items()}
    with jax.enable_x64(dtype == np.float64):
        sim = _truth_run(model, series, doy, lats, true, spinup_days)
        runoff = np.asarray(sim.fluxes.runoff, np.float64)
        et = np.asarray(sim.fluxes.et, np.float64)
        initial = {k: np.asarray(getattr(sim.initial_state, k), np.float64)
                   for k in model.store_names}

    # a custom truth model runs its own PET law: then the stored PET series did not drive it
    law = next((name for name, cls in PET_LAWS.items() if type(model.pet) is cls),
               type(model.pet).__name__)
    pet_text = ("PET given" if law == "given" else
                f"PET from its {law} law, not the potential_evapotranspiration series")
    source = f"model output ({kind_name} hybridland model, {pet_text}), not an observation"
    comments = {"streamflow": source, "evapotranspiration": source}
    series = {k: v.astype(np.float64) for k, v in series.items()}
    series["evapotranspiration"] = et
    if noise > 0:
        z = noise_rng.standard_normal(runoff.shape)
        series["streamflow"] = runoff * np.exp(noise * z - 0.5 * noise**2)
        series["streamflow_model"] = runoff
        comments["streamflow"] = f"{source}, with mean-one lognormal noise (sigma {noise:g})"
    else:
        series["streamflow"] = runoff

    t_mean = 0.5 * (series["air_temperature_min"] + series["air_temperature_max"])
    statics = climate_statics(
        series["precipitation"], t_mean, time, series["potential_evapotranspiration"]
    )
    statics["aridity_target"] = (target_aridity, "1", "requested aridity (mean PET / mean P)")
    statics["latitude"] = (lats, "degrees_north", "latitude of the column")
    for name, b in PARAMETER_BOUNDS.items():
        statics[f"true_{name}"] = (true[name], b.units, f"true parameter: {b.description}")
    for name, value in initial.items():
        statics[f"initial_{name}"] = (value, "mm", f"spun-up initial {name} store of the truth run")

    attrs = {
        "title": "hybridland synthetic twin",
        "generator": "hybridland.synthetic.synthetic_twin",
        "seed": int(seed),
        "truth_model": kind_name,
        "spinup_days": spinup_days,
        "streamflow_noise_sigma": float(noise),
        "precision": str(dtype),
        "comment": (
            "Weather is synthetic (seeded stochastic generator). streamflow and "
            "evapotranspiration are output of a hybridland model run with the true_<param> "
            "statics from the initial_<store> statics (after a spin-up on the first "
            f"{spinup_days} days), not observations."
        ),
    }
    return make_dataset(
        [f"twin_{i:0{len(str(n_columns - 1))}d}" for i in range(n_columns)],
        time, lats, lons, series, statics=statics, attrs=attrs, comments=comments,
        name=[f"synthetic column {i} (aridity {a:.2f})" for i, a in enumerate(target_aridity)],
    )
