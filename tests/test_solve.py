"""The solver: vmap over columns equals a loop, jit equals no-jit, float32 agrees with float64,
and bad forcing shapes raise clear errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybridland as hl
from columns import forcing_from_arrays, make_model, synthetic_climate


def _tree_allclose(a, b, rtol, atol):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        # Absolute tolerance relative to the variable's scale (H = Rn - G - lambda E cancels).
        scale = max(float(np.abs(y).max()), 1.0)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("kind", ["physics", "hybrid_attributes"])
def test_vmap_over_columns_equals_loop(kind):
    rng = np.random.default_rng(0)
    precip, t_mean, t_range, pet, rn = synthetic_climate(rng, 5, 400)
    attributes = rng.normal(size=(5, 3)) if kind == "hybrid_attributes" else None
    forcing = forcing_from_arrays(precip, t_mean, t_range, pet, rn, attributes=attributes,
                                  dtype=jnp.float32)
    assert forcing.doy.shape == (400,)  # one day-of-year axis shared by all columns
    model = make_model(kind, seed=1)
    params = hl.Params.default(5, dtype=jnp.float32, theta_cap=jnp.linspace(0.2, 0.5, 5))
    batched = hl.simulate(model, forcing, params)
    for i in range(5):
        column = jax.tree_util.tree_map(lambda x: x[i], params)
        f_i = hl.Forcing(**{k: (v if k == "doy" or v is None else v[i]) for k, v in vars(forcing).items()})
        single = hl.run_column(model, f_i, column, model.init_state(column))
        one = jax.tree_util.tree_map(lambda x: x[i], batched)
        _tree_allclose(one.fluxes, single.fluxes, rtol=1e-5, atol=1e-5)
        _tree_allclose(one.states, single.states, rtol=1e-5, atol=1e-5)


def test_jit_equals_no_jit():
    rng = np.random.default_rng(1)
    precip, t_mean, t_range, pet, rn = synthetic_climate(rng, 1, 60)
    forcing = forcing_from_arrays(precip[0], t_mean[0], t_range[0], pet[0], rn[0], dtype=jnp.float32)
    model = make_model("hybrid", seed=2)
    params = hl.Params.default(dtype=jnp.float32)
    state0 = model.init_state(params)
    jitted = eqx.filter_jit(hl.run_column)(model, forcing, params, state0)
    with jax.disable_jit():
        eager = hl.run_column(model, forcing, params, state0)
    _tree_allclose(jitted, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["physics", "hybrid"])
def test_float32_agrees_with_float64(kind):
    rng = np.random.default_rng(2)
    arrays = synthetic_climate(rng, 3, 3 * 365)
    model32 = make_model(kind, seed=3)
    sim32 = hl.simulate(model32, forcing_from_arrays(*arrays, dtype=jnp.float32))
    with jax.enable_x64(True):
        # Same weights, promoted to float64.
        model64 = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if isinstance(x, jax.Array) else x, model32
        )
        sim64 = hl.simulate(model64, forcing_from_arrays(*arrays, dtype=jnp.float64))
        assert sim64.fluxes.runoff.dtype == jnp.float64
        for name in ("et", "runoff"):
            a = np.asarray(getattr(sim32.fluxes, name), np.float64)
            b = np.asarray(getattr(sim64.fluxes, name))
            np.testing.assert_allclose(a.sum(-1), b.sum(-1), rtol=1e-4)
        np.testing.assert_allclose(
            np.asarray(sim32.states.soil, np.float64), np.asarray(sim64.states.soil), rtol=1e-3, atol=1e-3
        )


def _forcing(n_columns=2, n_days=10, **over):
    rng = np.random.default_rng(0)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, n_columns, n_days)
    f = forcing_from_arrays(precip, t_mean, t_range, pet, dtype=jnp.float32)
    return hl.Forcing(**{**vars(f), **over})


def test_misaligned_series_named():
    f = _forcing()
    bad = hl.Forcing(**{**vars(f), "pet": f.pet[:, :-1]})
    with pytest.raises(ValueError, match=r"forcing\.pet .*same time axis"):
        hl.simulate(hl.ColumnModel(), bad)


@pytest.mark.parametrize("name, value, words", [
    ("precip", -100.0, "negative or not a number"),  # ran as negative runoff, closed
    ("precip", np.nan, "negative or not a number"),  # made every store NaN
    ("pet", -1.0, "negative or not a number"),
    ("t_max", np.inf, "not a finite number"),
])
def test_values_no_run_can_use_are_named(name, value, words):
    f = _forcing()
    series = np.array(getattr(f, name))
    series[1, 4] = value
    bad = hl.Forcing(**{**vars(f), name: jnp.asarray(series)})
    with pytest.raises(ValueError, match=rf"forcing\.{name} is {words} on 1 value\(s\), first "
                                         r"at column 1, day 4"):
        hl.simulate(hl.ColumnModel(), bad)
    # inside jit the values are unknown: not checked, and the function still traces
    jax.jit(lambda f: hl.simulate(hl.ColumnModel(), f).fluxes.runoff)(bad)


def test_forcing_of_another_dtype_is_named():
    # integer precipitation cast the parameters to int32 (theta_cap 0) and ended in a scan
    # carry TypeError; float64 PET beside float32 precipitation likewise
    f = _forcing()
    whole = hl.Forcing(**{**vars(f), "precip": jnp.asarray(np.round(f.precip), jnp.int32)})
    with pytest.raises(ValueError, match=r"forcing\.precip has dtype int32.*floating point"):
        hl.simulate(hl.ColumnModel(), whole)
    with jax.enable_x64(True):
        mixed = hl.Forcing(**{**vars(f), "pet": jnp.asarray(f.pet, jnp.float64)})
        with pytest.raises(ValueError, match=r"forcing\.pet has dtype float64 but "
                                             r"forcing\.precip has float32"):
            hl.simulate(hl.ColumnModel(), mixed)


@pytest.mark.parametrize("start", ["theta_cap", "soil_fraction", "state"])
def test_a_start_outside_the_physics_is_refused_not_run(start):
    """theta_cap below theta_wp (a negative capacity), a negative soil_fraction or a negative
    store ran as negative runoff (-45 mm on day 1) while the water residual read 0."""
    f = _forcing()
    model = hl.ColumnModel()
    kwargs, words = {
        "theta_cap": (dict(params=hl.Params.default(theta_cap=0.08)), "theta_cap spans"),
        "soil_fraction": (dict(soil_fraction=-0.5), "soil store spans"),
        "state": (dict(state0=hl.State(swe=jnp.zeros(2), soil=jnp.asarray([10.0, -50.0]),
                                       groundwater=jnp.zeros(2))), "soil store spans"),
    }[start]
    with pytest.raises(ValueError, match=words):
        hl.simulate(model, f, **kwargs)
    if "params" in kwargs:  # the chunked runner checks them too
        with pytest.raises(ValueError, match=words):
            hl.solvers.run_timed(model, f, kwargs["params"])


def test_run_timed_checks_the_forcing_values():
    """run_timed compiles simulate ahead of time, where the values are traced: -20 mm of
    precipitation ran as negative snowfall and melt, silently."""
    f = _forcing()
    precip = np.array(f.precip)
    precip[0, 3] = -20.0
    bad = hl.Forcing(**{**vars(f), "precip": jnp.asarray(precip)})
    with pytest.raises(ValueError, match=r"forcing\.precip is negative or not a number on 1 "
                                         r"value\(s\), first at column 0, day 3"):
        hl.solvers.run_timed(hl.ColumnModel(), bad)


def test_missing_pet_input_named():
    f = _forcing(pet=None)
    with pytest.raises(ValueError, match=r"GivenPET needs forcing\.pet"):
        hl.simulate(hl.ColumnModel(), f)
    with pytest.raises(ValueError, match=r"PriestleyTaylorPET needs forcing\.net_radiation"):
        hl.simulate(hl.ColumnModel(pet=hl.PriestleyTaylorPET()), f)
    sim = hl.simulate(hl.ColumnModel(pet=hl.HargreavesPET()), f)
    assert float(sim.fluxes.pet.max()) > 0.0


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_a_chunk_size_that_is_not_a_count_of_columns_is_named(chunk):
    # -1 ended in a TypeError from inside tree_map
    with pytest.raises(ValueError, match=r"chunk_columns must be a positive whole number"):
        hl.solvers.run_timed(hl.ColumnModel(), _forcing(), chunk_columns=chunk)


def test_one_dimensional_forcing_rejected():
    f = _forcing()
    one = jax.tree_util.tree_map(lambda x: x[0] if x.ndim else x, f)
    with pytest.raises(ValueError, match=r"\[column, time\]"):
        hl.simulate(hl.ColumnModel(), one)


def test_wrong_attribute_count_named():
    rng = np.random.default_rng(0)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 2, 10)
    f = forcing_from_arrays(precip, t_mean, t_range, pet, attributes=np.zeros((2, 2)),
                            dtype=jnp.float32)
    with pytest.raises(ValueError, match="built for 3 static attributes"):
        hl.simulate(make_model("hybrid_attributes"), f)
