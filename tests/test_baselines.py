"""Reference models of the climate-shift study: climatology and the pooled ridge ladder."""

import numpy as np
import pytest
from beartype import beartype
from jaxtyping import jaxtyped

from hybridland.study import baselines as B


def make_series(n_basin, n_time, n_attr=2, seed=0):
    rng = np.random.default_rng(seed)
    t_min = rng.normal(5.0, 6.0, (n_basin, n_time))
    series = {
        "precip": rng.exponential(3.0, (n_basin, n_time)) * (rng.random((n_basin, n_time)) < 0.4),
        "t_min": t_min,
        "t_max": t_min + rng.uniform(2.0, 12.0, (n_basin, n_time)),
        "pet": rng.gamma(2.0, 1.0, (n_basin, n_time)),
    }
    attributes = rng.normal(size=(n_basin, n_attr)) if n_attr else None
    return series, attributes


def lag(x, days):
    """x at t - days, NaN before the start (the test only fits later days)."""
    out = np.full_like(x, np.nan)
    out[:, days:] = x[:, :-days]
    return out


def doy_of(n_time):
    return np.arange(n_time) % 365 + 1


# ----------------------------------------------------------------------------------------------
# Climatology
# ----------------------------------------------------------------------------------------------


def seasonal_obs(n_basin=4, years=6, seed=1):
    rng = np.random.default_rng(seed)
    doy = doy_of(365 * years)
    level = rng.uniform(1.0, 3.0, (n_basin, 1))
    amplitude = rng.uniform(0.5, 1.5, (n_basin, 1))
    truth = level + amplitude * np.sin(2 * np.pi * doy / 365)[None, :]
    obs = truth + rng.normal(0.0, 0.1, truth.shape)
    obs[rng.random(obs.shape) < 0.3] = np.nan
    fit_mask = np.ones(obs.shape, bool)
    fit_mask[:, 365 * 2 : 365 * 3] = False  # a hidden year
    return doy, truth, obs, fit_mask


def test_climatology_recovers_seasonal_cycle():
    doy, truth, obs, fit_mask = seasonal_obs()
    ids = ["a", "b", "c", "d"]
    clim = B.fit_climatology(obs, doy, fit_mask, basins=ids)
    pred = clim.predict(doy[:365], basins=ids)
    assert pred.shape == (4, 365)
    # A 31-day mean damps a yearly sinusoid by < 3 %; the noise averages out over ~100 days.
    np.testing.assert_allclose(pred, truth[:, :365], atol=0.08)

    # Garbage on the hidden days changes nothing.
    spoiled = obs.copy()
    spoiled[~fit_mask] = 1e6
    again = B.fit_climatology(spoiled, doy, fit_mask, basins=ids)
    np.testing.assert_array_equal(again.table, clim.table)


def test_climatology_window_by_hand_and_day_366():
    doy, _, obs, fit_mask = seasonal_obs(n_basin=2, years=3)
    clim = B.fit_climatology(obs, doy, fit_mask)
    valid = fit_mask & np.isfinite(obs)
    for day in (1, 100, 365):
        distance = np.abs(doy - day)
        near = np.minimum(distance, 365 - distance) <= 15  # circular
        expected = obs[1][valid[1] & near].mean()
        np.testing.assert_allclose(clim.predict(np.array([day]), basins=[1])[0, 0], expected)
    np.testing.assert_array_equal(
        clim.predict(np.array([366]))[:, 0], clim.predict(np.array([365]))[:, 0]
    )


def test_climatology_unseen_basin_gets_regional_median():
    doy, _, obs, fit_mask = seasonal_obs(n_basin=5)
    clim = B.fit_climatology(obs, doy, fit_mask, basins=[10, 11, 12, 13, 14])
    days = doy[:400]
    own = clim.predict(days)  # the fitted basins, in fit order
    pred = clim.predict(days, basins=[12, 99, 7])
    np.testing.assert_array_equal(pred[0], own[2])
    np.testing.assert_allclose(pred[1], np.median(own, axis=0), rtol=1e-12)
    np.testing.assert_array_equal(pred[1], pred[2])
    np.testing.assert_array_equal(clim.known([12, 99]), [True, False])


def test_climatology_sparse_basin_filled_from_regional():
    doy, _, obs, fit_mask = seasonal_obs(n_basin=3, years=2)
    obs[0, doy > 60] = np.nan  # basin 0 only knows January and February
    clim = B.fit_climatology(obs, doy, fit_mask)
    assert np.isfinite(clim.table).all()
    np.testing.assert_array_equal(clim.table[0, 200], clim.regional[200])
    # The regional median of a day that basin 0 lacks is over the two other basins only.
    np.testing.assert_allclose(clim.regional[200], clim.table[1:, 200].mean())


# ----------------------------------------------------------------------------------------------
# Regression ladder
# ----------------------------------------------------------------------------------------------

WARMUP = 40  # longer than every lag, so edge padding never enters the synthetic targets


def memory_target(series, attributes):
    p, pet = series["precip"], series["pet"]
    p_mean30 = np.mean([lag(p, d) for d in range(1, 31)], axis=0)
    true = {"precip": 0.3, "pet": -0.2, "precip_lag1": 0.1, "pet_lag3": 0.05,
            "precip_mean30": 0.4, "attr0": 0.5}  # fmt: skip
    obs = (
        true["precip"] * p + true["pet"] * pet + true["precip_lag1"] * lag(p, 1)
        + true["pet_lag3"] * lag(pet, 3) + true["precip_mean30"] * p_mean30
        + true["attr0"] * attributes[:, :1] - 0.4
    )  # fmt: skip
    return obs, true, -0.4


def test_memory_rung_recovers_coefficients_and_clips():
    series, attributes = make_series(4, 600)
    obs, true, intercept = memory_target(series, attributes)
    fit_mask = np.zeros(obs.shape, bool)
    fit_mask[:, WARMUP:] = True
    fit = B.fit_regression("memory", series, attributes, obs, fit_mask, ridge=1e-8)
    expected = np.array([true.get(name, 0.0) for name in fit.names[:-1]])
    np.testing.assert_allclose(fit.weights, expected, atol=1e-6)
    np.testing.assert_allclose(fit.intercept, intercept, atol=1e-6)

    pred = fit.predict(series, attributes)
    linear = obs[:, WARMUP:]
    assert (linear < 0).any(), "the synthetic target must go negative to test the clip"
    np.testing.assert_array_equal(pred[:, WARMUP:][linear < 0], 0.0)
    np.testing.assert_allclose(pred[:, WARMUP:], np.maximum(linear, 0.0), atol=1e-6)


def test_fit_ignores_gaps_and_masked_days():
    series, attributes = make_series(3, 400, seed=3)
    rng = np.random.default_rng(4)
    obs = rng.gamma(1.5, 1.0, (3, 400))
    fit_mask = rng.random(obs.shape) < 0.7
    gaps = rng.random(obs.shape) < 0.2
    clean = B.fit_regression("memory", series, attributes, obs, fit_mask & ~gaps)
    spoiled = obs.copy()
    spoiled[gaps] = np.nan
    spoiled[~fit_mask] = 1e9
    spoiled[~fit_mask & (rng.random(obs.shape) < 0.5)] = np.inf
    fit = B.fit_regression("memory", series, attributes, spoiled, fit_mask)
    assert fit.n_fit == clean.n_fit == int((fit_mask & ~gaps).sum())
    np.testing.assert_allclose(fit.coef, clean.coef, rtol=1e-12, atol=1e-12)


def test_state_rung_uses_the_state():
    series, attributes = make_series(3, 500, seed=5)
    rng = np.random.default_rng(6)
    soil = np.empty((3, 500))
    soil[:, 0] = 0.0
    for t in range(1, 500):  # an AR(1) series unrelated to the forcing
        soil[:, t] = 0.95 * soil[:, t - 1] + rng.normal(size=3)
    state = {"soil": soil + 50.0, "snow": rng.uniform(0, 5, (3, 500))}
    obs = 0.1 * state["soil"]
    fit_mask = np.ones(obs.shape, bool)
    with_state = B.fit_regression("state", series, attributes, obs, fit_mask, state, ridge=1e-8)
    assert with_state.names[-5:-3] == ("state_snow", "state_soil")
    residual = with_state.predict(series, attributes, state) - obs
    assert np.abs(residual).max() < 1e-6
    forcing = B.fit_regression("forcing", series, attributes, obs, fit_mask, state)
    r2 = 1 - np.var(forcing.predict(series, attributes) - obs) / np.var(obs)
    assert r2 < 0.5


def test_features_lags_and_antecedent_mean():
    series, attributes = make_series(2, 80, n_attr=1)
    x = B.regression_features("memory", series, attributes)
    names = B.feature_names("memory", n_attr=1)
    assert x.shape == (2, 80, len(names)) and names[-1] == "const"
    col = {name: x[..., i] for i, name in enumerate(names)}
    p = series["precip"]
    np.testing.assert_array_equal(col["precip_lag1"][:, 1:], p[:, :-1])
    np.testing.assert_array_equal(col["precip_lag7"][:, :8], np.repeat(p[:, :1], 8, axis=1))
    np.testing.assert_allclose(col["precip_mean30"][:, 50], p[:, 20:50].mean(axis=1))
    np.testing.assert_allclose(col["t_mean"], 0.5 * (series["t_min"] + series["t_max"]))
    np.testing.assert_array_equal(col["attr0"], np.repeat(attributes, 80, axis=1))


@pytest.mark.parametrize("rung", ["forcing", "memory"])
def test_chunked_accumulation_equals_direct_lstsq(rung):
    series, attributes = make_series(5, 150, seed=7)
    rng = np.random.default_rng(8)
    obs = rng.gamma(1.5, 1.0, (5, 150))
    obs[rng.random(obs.shape) < 0.1] = np.nan
    fit_mask = rng.random(obs.shape) < 0.8
    valid = fit_mask & np.isfinite(obs)
    x = B.regression_features(rung, series, attributes)[valid]
    y = obs[valid]
    ridge = 3.0

    one_basin = B.fit_regression(rung, series, attributes, obs, fit_mask, ridge=ridge,
                                 chunk_elements=1)  # fmt: skip
    whole = B.fit_regression(rung, series, attributes, obs, fit_mask, ridge=ridge,
                             chunk_elements=10**9)  # fmt: skip

    # Ridge on standardised features as an augmented least-squares problem, intercept free.
    z = np.column_stack([(x[:, :-1] - x[:, :-1].mean(0)) / x[:, :-1].std(0), np.ones(len(y))])
    k = z.shape[1]
    penalty = np.sqrt(ridge) * np.eye(k)[:-1]
    theta = np.linalg.lstsq(np.vstack([z, penalty]), np.append(y, np.zeros(k - 1)), rcond=None)[0]
    np.testing.assert_allclose(one_basin.coef, theta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(whole.coef, theta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        one_basin.predict(series, attributes, chunk_elements=1),
        whole.predict(series, attributes),
        rtol=1e-10,
        atol=1e-12,
    )

    # Without a penalty it is ordinary least squares on the raw features.
    ols = B.fit_regression(rung, series, attributes, obs, fit_mask, ridge=0.0, chunk_elements=1)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(ols.weights, beta[:-1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ols.intercept, beta[-1], rtol=1e-8, atol=1e-10)


def test_constant_attribute_gets_no_weight():
    series, attributes = make_series(1, 300)  # one basin: its attributes are constant
    obs = 0.5 * series["precip"] + 1.0
    fit = B.fit_regression("forcing", series, attributes, obs, np.ones(obs.shape, bool))
    np.testing.assert_array_equal(fit.weights[-2:], 0.0)
    np.testing.assert_allclose(fit.predict(series, attributes), obs, atol=1e-4)


def test_typed_signatures():
    series, attributes = make_series(2, 60)
    obs = series["precip"].copy()
    mask = np.ones(obs.shape, bool)
    fit = jaxtyped(typechecker=beartype)(B.fit_regression)("forcing", series, attributes, obs, mask)
    assert jaxtyped(typechecker=beartype)(fit.predict)(series, attributes).shape == (2, 60)
    x = jaxtyped(typechecker=beartype)(B.regression_features)("memory", series, attributes)
    assert x.shape == (2, 60, len(B.feature_names("memory", 2)))
    doy, _, clim_obs, clim_mask = seasonal_obs(n_basin=2, years=1)
    clim = jaxtyped(typechecker=beartype)(B.fit_climatology)(clim_obs, doy, clim_mask)
    assert jaxtyped(typechecker=beartype)(clim.predict)(doy).shape == (2, 365)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def test_errors_name_the_problem():
    series, attributes = make_series(2, 50)
    obs = series["precip"].copy()
    mask = np.ones(obs.shape, bool)
    with pytest.raises(ValueError, match=r"rung must be one of \('forcing', 'memory', 'state'\)"):
        B.fit_regression("lagged", series, attributes, obs, mask)
    with pytest.raises(ValueError, match="rung 'state' needs state="):
        B.fit_regression("state", series, attributes, obs, mask)
    with pytest.raises(ValueError, match="rung 'state' needs state="):
        B.regression_features("state", series, attributes, state={})
    with pytest.raises(ValueError, match=r"obs must be \[basin, time\] = \(2, 50\)"):
        B.fit_regression("forcing", series, attributes, obs[:, :-1], mask)
    with pytest.raises(ValueError, match="fit_mask must have the shape of obs"):
        B.fit_regression("forcing", series, attributes, obs, mask[:1])
    with pytest.raises(ValueError, match=r"series\['pet'\] must have the shape"):
        B.fit_regression("forcing", {**series, "pet": series["pet"][:, :10]}, None, obs, mask)
    with pytest.raises(ValueError, match=r"series is missing \['t_min'\]"):
        B.regression_features("forcing", {k: v for k, v in series.items() if k != "t_min"})
    with pytest.raises(ValueError, match=r"state\['soil'\] must be \[basin, time\]"):
        B.fit_regression("state", series, None, obs, mask, state={"soil": obs[:1]})
    with pytest.raises(ValueError, match=r"attributes must be \[basin, n_attr\] with basin = 2"):
        B.fit_regression("forcing", series, attributes[:1], obs, mask)
    with pytest.raises(ValueError, match="no fit day"):
        B.fit_regression("forcing", series, attributes, obs, ~mask)

    fit = B.fit_regression("forcing", series, attributes, obs, mask)
    with pytest.raises(ValueError, match="differ from the fit's"):
        fit.predict(series, None)

    doy = doy_of(50)
    with pytest.raises(ValueError, match=r"doy must be \[time\] = \(50,\)"):
        B.fit_climatology(obs, doy[:-1], mask)
    with pytest.raises(ValueError, match=r"doy must hold days of year 1..366"):
        B.fit_climatology(obs, doy + 400, mask)
    with pytest.raises(ValueError, match="no fit day within 15 days of day of year"):
        B.fit_climatology(obs, doy, mask)  # 50 days leave most of the year empty
