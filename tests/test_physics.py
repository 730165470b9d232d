"""Physical response of the processes and of the whole column."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import hybridland as hl
from columns import (
    forcing_from_arrays,
    fractions,
    make_model,
    params_from_fractions,
    synthetic_climate,
)
from hybridland.physics import pet as pet_laws, snow


@pytest.mark.parametrize("kind", ["physics", "sequence_hybrid"])
def test_raising_field_capacity_raises_mean_soil_water(kind):
    rng = np.random.default_rng(5)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 5 * 365)
    theta = np.linspace(0.16, 0.54, 8)
    n = theta.size
    forcing = forcing_from_arrays(
        np.repeat(precip, n, 0), np.repeat(t_mean, n, 0), np.repeat(t_range, n, 0),
        np.repeat(pet, n, 0), attributes=np.zeros((n, 3)) if kind != "physics" else None,
        dtype=jnp.float32,
    )
    params = hl.Params.default(n, dtype=jnp.float32, theta_cap=jnp.asarray(theta, jnp.float32))
    # sequence_hybrid: fast and slow paths, routing, components, daily parameters
    sim = hl.simulate(make_model(kind), forcing, params, soil_fraction=0.0)
    mean_soil = np.asarray(sim.states.soil).mean(-1)
    assert np.all(np.diff(mean_soil) > 0), mean_soil


@settings(max_examples=10)
@given(fracs=fractions, seed=st.integers(0, 1000), extra=st.floats(0.1, 200.0),
       day=st.integers(0, 99))
def test_more_rain_never_lowers_runoff(fracs, seed, extra, day):
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 100)
        wetter = precip.copy()
        wetter[0, day:] += extra * (rng.random(100 - day) < 0.5)
        both = forcing_from_arrays(
            np.concatenate([precip, wetter]), np.repeat(t_mean, 2, 0), np.repeat(t_range, 2, 0),
            np.repeat(pet, 2, 0),
        )
        params = jax.tree_util.tree_map(
            lambda x: jnp.stack([x, x]), params_from_fractions(fracs, jnp.float64)
        )
        sim = hl.simulate(hl.ColumnModel(), both, params)
        q = np.asarray(sim.fluxes.runoff)
        assert np.all(q[1] >= q[0] - 1e-9)
        assert q[1].sum() > q[0].sum() - 1e-9


def test_snow_partition_is_monotone_and_bounded():
    params = hl.Params.default()
    t = jnp.linspace(-30.0, 30.0, 200)
    frac = snow.snow_fraction(t, params)
    assert float(frac.max()) <= 1.0 and float(frac.min()) >= 0.0
    assert bool(jnp.all(jnp.diff(frac) <= 0))
    assert float(snow.snow_fraction(params.t_snow, params)) == pytest.approx(0.5)


def test_melt_never_exceeds_snowpack():
    params = hl.Params.default(ddf=8.0)
    swe = jnp.asarray([0.0, 1.0, 50.0])
    new, melt = snow.melt(swe, jnp.asarray(20.0), params, 1.0)
    # Potential melt is 8 * 20 = 160 mm: every pack melts out completely, and no more.
    np.testing.assert_allclose(np.asarray(melt), [0.0, 1.0, 50.0])
    assert bool(jnp.all(new >= 0))


def test_extraterrestrial_radiation_against_fao56_example():
    # FAO-56 example 8: 20 deg S on 3 September (doy 246): Ra = 32.2 MJ m-2 day-1.
    ra = pet_laws.extraterrestrial_radiation(jnp.asarray(-20.0), jnp.asarray(246.0))
    assert float(ra) == pytest.approx(32.2, abs=0.1)
    # Polar night and polar day stay finite.
    assert bool(jnp.isfinite(pet_laws.extraterrestrial_radiation(jnp.asarray(85.0), jnp.asarray(355.0))))


def _one_day(t_min, t_max, doy=196.0, lat=45.0, rn=None):
    return hl.Forcing(
        precip=jnp.asarray(0.0), t_min=jnp.asarray(t_min), t_max=jnp.asarray(t_max),
        doy=jnp.asarray(doy), lat=jnp.asarray(lat),
        net_radiation=None if rn is None else jnp.asarray(rn),
    )


@pytest.mark.parametrize("law", [hl.HargreavesPET(), hl.OudinPET()])
def test_temperature_pet_rises_with_temperature_and_is_non_negative(law):
    params = hl.Params.default()
    values = [float(law(_one_day(t - 5, t + 5), params)) for t in (-20.0, 0.0, 10.0, 25.0)]
    assert values[0] == 0.0 or values[0] >= 0.0
    assert all(b >= a for a, b in zip(values, values[1:]))
    # A mid-latitude summer day gives a few mm/day.
    assert 2.0 < values[-1] < 10.0


def test_priestley_taylor_scales_with_available_energy_and_is_zero_without_it():
    law = hl.PriestleyTaylorPET()
    params = hl.Params.default(ground_heat_fraction=0.0)
    low = float(law(_one_day(15, 25, rn=50.0), params))
    high = float(law(_one_day(15, 25, rn=150.0), params))
    assert high == pytest.approx(3 * low, rel=1e-5)
    assert float(law(_one_day(15, 25, rn=-80.0), params)) == 0.0


def test_energy_cap_limits_et_on_dark_days():
    rng = np.random.default_rng(9)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 50)
    rn = np.full_like(pet, -20.0)  # no available energy at all
    forcing = forcing_from_arrays(precip, t_mean, t_range, pet + 3.0, rn, dtype=jnp.float32)
    sim = hl.simulate(hl.ColumnModel(), forcing)
    assert float(sim.fluxes.et.max()) == 0.0
    f = sim.fluxes
    np.testing.assert_allclose(
        np.asarray(f.sensible_heat), np.asarray(rn - f.ground_heat - f.melt_heat), rtol=1e-6
    )


def test_melt_takes_its_heat_from_the_energy_balance():
    """Degree-day melt took no energy: the heat of fusion ended up in the sensible heat (a
    100 mm snowpack melting 30 mm on a warm, dull day gave H = +52 W m-2 where the air must
    supply about 64). Now Rn = lambda E + H + G + Q_M with Q_M = L_f M."""
    days = 5
    forcing = hl.Forcing(
        precip=jnp.zeros((1, days)), t_min=jnp.full((1, days), 7.0),
        t_max=jnp.full((1, days), 13.0), doy=jnp.arange(100.0, 100.0 + days),
        lat=jnp.array([45.0]), net_radiation=jnp.full((1, days), 100.0),
    )
    model = hl.ColumnModel(pet=hl.PriestleyTaylorPET())
    params = hl.Params.default()
    start = hl.State(swe=jnp.array([100.0]), soil=jnp.array([50.0]),
                     groundwater=jnp.array([0.0]))
    f = hl.simulate(model, forcing, params, start).fluxes
    melt = np.asarray(f.snowmelt)
    assert melt[0, 0] > 10.0
    np.testing.assert_allclose(np.asarray(f.melt_heat), melt * 334000.0 / 86400.0, rtol=1e-5)
    total = f.latent_heat + f.sensible_heat + f.ground_heat + f.melt_heat
    np.testing.assert_allclose(np.asarray(total), 100.0, rtol=1e-5)
    assert float(f.sensible_heat[0, 0]) < 0.0  # the warm air supplies the melt heat
    assert float(jnp.max(jnp.abs(f.energy_residual))) <= 1e-4


@settings(max_examples=30, deadline=None)
@given(store_fraction=st.one_of(st.floats(0.0, 1.0, allow_subnormal=False),
                                st.floats(0.0, 1e-5, allow_subnormal=False)),
       rate=st.floats(1e-4, 0.5),
       shape=st.floats(0.0, 6.0))
@example(store_fraction=1.0, rate=0.5, shape=0.0)  # the linear limit, fastest drainage
@example(store_fraction=1.0, rate=0.5, shape=1e-3)  # either side of the series' switch
@example(store_fraction=1.0, rate=0.5, shape=0.00099)
@example(store_fraction=1e-7, rate=0.5, shape=0.0)  # below the threshold: no drainage
@example(store_fraction=2e-6, rate=0.5, shape=0.0)  # just above it: the ODE's solution
def test_power_recession_is_the_exact_solution_of_its_ode(store_fraction, rate, shape):
    from hybridland.physics import bucket

    with jax.enable_x64(True):
        capacity = 150.0
        store = jnp.float64(store_fraction * capacity)
        new, outflow = bucket.power_recession(store, capacity, rate, shape, 1.0)
        assert 0.0 <= float(outflow) <= float(store) and float(new) >= 0.0
        assert float(store) - float(new) == float(outflow)
        if store_fraction <= 1e-6:  # a store below a millionth of its capacity does not drain
            assert float(outflow) == 0.0
            return
        # classical RK4 on dS/dt = -rate S (S/Smax)**shape over one day
        f = lambda s: -rate * s * (max(s, 0.0) / capacity) ** shape  # noqa: E731
        s, h = float(store), 1.0 / 2000
        for _ in range(2000):
            k1 = f(s); k2 = f(s + h * k1 / 2); k3 = f(s + h * k2 / 2); k4 = f(s + h * k3)  # noqa: E702
            s += h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        np.testing.assert_allclose(float(new), s, rtol=1e-7, atol=1e-9)


def test_power_recession_is_linear_at_shape_zero_and_slower_when_the_soil_is_drier():
    from hybridland.physics import bucket

    store, capacity, rate = jnp.float32(80.0), jnp.float32(100.0), jnp.float32(0.05)
    linear = bucket.recession(store, rate, 1.0)[1]
    np.testing.assert_allclose(bucket.power_recession(store, capacity, rate, 0.0, 1.0)[1],
                               linear, rtol=1e-5)
    # at a full store the power law starts at the linear one's rate; below it, it drains
    # less, the more so the larger the shape and the drier the soil
    slow = jnp.float32(1e-3)
    full = bucket.power_recession(capacity, capacity, slow, 3.0, 1.0)[1]
    np.testing.assert_allclose(full, bucket.recession(capacity, slow, 1.0)[1], rtol=5e-3)
    shapes = jnp.asarray([0.0, 1.0, 2.0, 4.0])
    out = jax.vmap(lambda b: bucket.power_recession(store, capacity, rate, b, 1.0)[1])(shapes)
    assert np.all(np.diff(np.asarray(out)) < 0), out
    stores = jnp.asarray([10.0, 30.0, 60.0, 90.0])
    per_mm = bucket.power_recession(stores, capacity, rate, 2.0, 1.0)[1] / stores
    assert np.all(np.diff(np.asarray(per_mm)) > 0), per_mm


@pytest.mark.parametrize("shape", [0.0, 0.3, 2.0])
def test_power_recession_gradients_are_finite_at_an_empty_store(shape):
    from hybridland.physics import bucket

    def outflow(store, rate, b):
        return bucket.power_recession(store, jnp.float32(100.0), rate, b, 1.0)[1]

    # 1e-36 mm: the ratio to the capacity is below float32's smallest normal number
    for store in (0.0, 1e-44, 1e-36, 1e-30, 1e-4, 1e-3):
        grads = jax.grad(outflow, argnums=(0, 1, 2))(
            jnp.float32(store), jnp.float32(0.1), jnp.float32(shape)
        )
        assert all(np.isfinite(np.asarray(g)) for g in grads), (store, grads)
        assert np.isfinite(np.asarray(jax.grad(outflow)(jnp.float32(store), 0.1, shape))), store
