"""Learned laws that keep their physical shape by construction: for random weights (of any
scale) and random free inputs, the monotone ET stress is 0 at an empty store, 1 at a full one and
never falls as the soil wets; the monotone runoff fraction never falls as the soil wets or the
water input grows. An ordinary MLP law has no such guarantee (the test says so, so that it can
fail). Checked in float64, where rounding cannot hide a fall (in float32, saturated layers
round differences of the network's output to about 1e-5)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hybridland as hl
from columns import forcing_from_arrays, scramble_weights, synthetic_climate
from hybridland.learned import MLPStressET, MonotoneRunoff, MonotoneStressET

GRID = np.linspace(0.0, 1.0, 41)


def _day(t_mean, pet, attributes):
    """One column's forcing of one day (scalars), as a law sees it inside the bucket."""
    f64 = jnp.float64
    return hl.Forcing(precip=f64(3.0), t_min=f64(t_mean - 4.0), t_max=f64(t_mean + 4.0),
                      doy=f64(180.0), lat=f64(40.0), pet=f64(pet),
                      attributes=jnp.asarray(attributes, f64))


def _random_law(cls, seed, scale):
    law = cls(3, key=jax.random.key(seed))
    law = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x)
                                 else x, law)
    return scramble_weights(law, seed, scale)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _stress_curve(law, forcing, pet):
    p = hl.Params.default(dtype=jnp.float64)
    return jax.vmap(lambda s: law.stress(s, forcing, pet, p))(jnp.asarray(GRID))


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 10.0]),
       t_mean=st.floats(-30.0, 45.0), pet=st.floats(0.0, 15.0),
       attributes=st.lists(st.floats(-50.0, 50.0), min_size=3, max_size=3))
def test_monotone_stress_is_zero_when_empty_and_never_falls(seed, scale, t_mean, pet,
                                                             attributes):
    law = _random_law(MonotoneStressET, seed, scale)
    curve = np.asarray(_stress_curve(law, _day(t_mean, pet, attributes), jnp.float64(pet)))
    assert curve[0] == 0.0 and curve[-1] == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(curve) >= -1e-12), curve
    assert np.all((curve >= 0.0) & (curve <= 1.0))


@pytest.mark.parametrize("raw", [-6.0, -12.0, -16.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_monotone_stress_in_float32_where_the_network_is_nearly_flat(raw, seed):
    # Tiny (but non-negative) monotone weights make z(1) - z(0) a few roundings of z. In float32,
    # the training precision, the curve evaluated under vmap fell by up to 0.03 and ended at
    # 0.966 instead of 1 (z(0), z(s), z(1) took different rounding paths).
    with jax.enable_x64(False):  # as a float32 training runs
        law = MonotoneStressET(key=jax.random.key(seed))
        law = eqx.tree_at(lambda e: e.net.monotone_in, law,
                          jnp.full_like(law.net.monotone_in, raw))
        f32 = jnp.float32
        day = hl.Forcing(precip=f32(1.0), t_min=f32(5.0), t_max=f32(15.0), doy=f32(100.0),
                         lat=f32(40.0))
        grid = jnp.linspace(0.0, 1.0, 2001, dtype=f32)
        curve = np.asarray(jax.vmap(lambda s: law.stress(s, day, f32(3.0), None))(grid))
        one_by_one = np.asarray([law.stress(s, day, f32(3.0), None) for s in grid[::250]])
    assert curve.dtype == np.float32
    assert curve[0] == 0.0 and curve[-1] == 1.0
    assert np.diff(curve).min() >= -1e-4, np.diff(curve).min()
    np.testing.assert_allclose(one_by_one, curve[::250], atol=5e-4)  # rounding, amplified


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 10.0]),
       t_mean=st.floats(-30.0, 45.0), pet=st.floats(0.0, 15.0),
       attributes=st.lists(st.floats(-50.0, 50.0), min_size=3, max_size=3),
       water=st.floats(0.0, 300.0))
def test_monotone_runoff_never_falls_with_wetness_or_input(seed, scale, t_mean, pet, attributes,
                                                            water):
    law = _random_law(MonotoneRunoff, seed, scale)
    forcing = _day(t_mean, pet, attributes)
    p = hl.Params.default(dtype=jnp.float64)

    def fraction(s, w):
        return law.surface_fraction(s, w, forcing, jnp.float64(pet), p)

    grid = jnp.asarray(GRID)
    by_soil = np.asarray(jax.vmap(lambda s: fraction(s, jnp.float64(water)))(grid))
    by_input = np.asarray(jax.vmap(lambda w: fraction(jnp.float64(0.5), w))(grid * 300.0))
    assert np.all(np.diff(by_soil) >= -1e-12) and np.all(np.diff(by_input) >= -1e-12)
    assert np.all((by_soil >= 0.0) & (by_soil <= 1.0))


def test_an_ordinary_mlp_law_has_no_such_guarantee():
    """The same check finds a falling stress curve in some unconstrained MLP."""
    falls = 0
    for seed in range(20):
        law = _random_law(MLPStressET, seed, 3.0)
        curve = np.asarray(_stress_curve(law, _day(10.0, 3.0, [0.0, 1.0, -1.0]), 3.0))
        falls += bool(np.any(np.diff(curve) < -1e-12)) or curve[0] > 1e-3
    assert falls > 0


@pytest.mark.parametrize("_x64", [None], indirect=False)
def test_monotone_laws_in_the_bucket_close_and_train(_x64):
    """As the laws of a column model (``et_law: monotone``, ``runoff_law: monotone``): the
    budget closes and gradients reach their weights."""
    from hybridland.column import build_model

    rng = np.random.default_rng(1)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 2, 200)
    forcing = forcing_from_arrays(precip, t_mean, t_range, pet, attributes=np.zeros((2, 3)),
                                  dtype=jnp.float32)
    model = build_model("hybrid", et_law="monotone", runoff_law="monotone", n_attributes=3,
                        key=jax.random.key(0))
    sim = hl.simulate(model, forcing)
    assert float(jnp.abs(sim.cumulative_water_residual).max()) < 1e-3
    net, static = eqx.partition(model, eqx.is_inexact_array)
    grads = jax.grad(lambda n: jnp.mean(
        hl.simulate(eqx.combine(n, static), forcing).fluxes.runoff))(net)
    norms = [float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0
    assert sim.fluxes.runoff.dtype == jnp.float32
