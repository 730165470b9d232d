"""Tests of the ODE solver path (``hybridland.solvers.ode``).

float64 runs happen inside ``jax.enable_x64(True)`` blocks only, so the module does not change
the global precision of other tests.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybridland as hl
from hybridland.physics import energy
from hybridland.solvers import simulate_ode
from runs import fresh_python


def _seasonal(t, phase):
    return np.sin(2.0 * np.pi * (t - phase) / 365.0)


def rough_forcing(n_columns, n_days, dtype, *, seed=0, n_attributes=0):
    """Intermittent storms, a snowy winter and a warm summer, with net radiation."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days)
    shape = (n_columns, n_days)
    wet = rng.random(shape) < 0.4
    precip = np.where(wet, rng.gamma(0.8, 12.0, shape), 0.0)
    t_mean = -5.0 + 15.0 * _seasonal(t, 110) + rng.normal(0.0, 4.0, shape)
    pet = np.maximum(0.0, 2.5 + 2.5 * _seasonal(t, 110) + rng.normal(0.0, 0.5, shape))
    rn = 60.0 + 80.0 * _seasonal(t, 110) + rng.normal(0.0, 30.0, shape)
    attributes = rng.normal(size=(n_columns, n_attributes)) if n_attributes else None
    arr = lambda x: None if x is None else jnp.asarray(x, dtype)
    return hl.Forcing(
        precip=arr(precip),
        t_min=arr(t_mean - 5.0),
        t_max=arr(t_mean + 5.0),
        doy=arr(np.broadcast_to(t % 365 + 1, shape)),
        lat=arr(np.full(n_columns, 45.0)),
        pet=arr(pet),
        net_radiation=arr(rn),
        attributes=arr(attributes),
    )


def smooth_forcing(n_columns, n_days, dtype, substeps=1):
    """Steady 3 mm day-1 drizzle, PET 2.5 +- 1.5 mm day-1 sinusoidal, 15 degC (no snow).

    With ``substeps = N`` every day is repeated N times with its rates divided by N, so a
    model whose rate constants are divided by N runs the same processes with a step of 1/N day.
    """
    t = np.arange(n_days)
    shape = (n_columns, n_days)

    def series(x):
        return jnp.asarray(np.repeat(np.broadcast_to(x, shape), substeps, axis=-1), dtype)

    return hl.Forcing(
        precip=series(np.full(n_days, 3.0)) / substeps,
        t_min=series(np.full(n_days, 10.0)),
        t_max=series(np.full(n_days, 20.0)),
        doy=series(t % 365 + 1),
        lat=jnp.full((n_columns,), 45.0, dtype),
        pet=series(2.5 + 1.5 * _seasonal(t, 80)) / substeps,
    )


def hybrid_model(n_attributes):
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return hl.ColumnModel(
        et=hl.MLPStressET(n_attributes, key=k1), runoff=hl.MLPRunoff(n_attributes, key=k2)
    )


def check_closure_and_ranges(sim, forcing, params):
    dtype = forcing.precip.dtype
    eps = float(jnp.finfo(dtype).eps)
    states, fluxes = sim.states, sim.fluxes
    for leaf in jax.tree_util.tree_leaves((states, fluxes)):
        assert leaf.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(leaf)))

    # Rounding level: a few ulp of the water moved or held that day. A truncation error
    # would be of the order of atol = 1e-6 mm, far above this bound in float64.
    total = states.total
    previous = jnp.concatenate([sim.initial_state.total[:, None], total[:, :-1]], axis=1)
    scale = jnp.maximum(total, previous) + forcing.precip + fluxes.et + fluxes.runoff
    bound = 16.0 * eps * scale
    excess = jnp.abs(fluxes.water_residual) - bound
    assert float(excess.max()) <= 0.0, f"residual exceeds its rounding bound by {excess.max()} mm"
    # Over the whole run, from the reported stores and fluxes alone (summed in float64 so
    # the check adds no rounding of its own): (S_t - S_0) - sum(P - E - Q) stays at rounding.
    f64 = lambda x: np.asarray(x, np.float64)
    budget = np.cumsum(f64(forcing.precip) - f64(fluxes.et) - f64(fluxes.runoff), axis=1)
    drift = (f64(total) - f64(sim.initial_state.total)[:, None]) - budget
    cumulative_bound = np.cumsum(f64(bound), axis=1)
    assert np.all(np.abs(drift) <= cumulative_bound)
    assert np.all(np.abs(drift - f64(sim.cumulative_water_residual)) <= cumulative_bound)

    # Stores in range at every day's end: no negative value at all, not even a rounding one.
    assert float(states.swe.min()) >= 0.0
    assert float(states.soil.min()) >= 0.0
    assert float(states.groundwater.min()) >= 0.0
    assert bool(jnp.all(states.soil <= params.soil_capacity[:, None]))

    for name in ("snowmelt", "et", "surface_runoff", "subsurface_runoff", "drainage"):
        assert float(getattr(fluxes, name).min()) >= 0.0, name
    np.testing.assert_allclose(
        fluxes.runoff, fluxes.surface_runoff + fluxes.subsurface_runoff, rtol=4 * eps, atol=0
    )
    # lambda E never exceeds the available energy, and the energy partition closes.
    cap = jax.vmap(energy.energy_limit)(forcing, params)
    assert bool(jnp.all(fluxes.et <= cap * (1 + 8 * eps) + 8 * eps))
    assert float(sim.max_abs_energy_residual) <= 64 * eps * 500.0


MODELS = {
    "physics": lambda n: hl.ColumnModel(),
    "no_groundwater": lambda n: hl.ColumnModel(groundwater=False),
    "hybrid": hybrid_model,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_closure_and_store_ranges_float64(name):
    n_attributes = 2
    with jax.enable_x64(True):
        forcing = rough_forcing(3, 365, jnp.float64, n_attributes=n_attributes)
        params = hl.Params.default(3, dtype=jnp.float64, root_depth=jnp.array([0.3, 1.0, 2.0]))
        # Start from an empty soil so the limiters at S = 0 are exercised.
        sim = simulate_ode(MODELS[name](n_attributes), forcing, params, soil_fraction=0.0)
        check_closure_and_ranges(sim, forcing, params)
        # The run does what it is meant to exercise: a snowpack that melts out.
        swe = sim.states.swe
        peak = int(jnp.argmax(swe[0]))
        assert float(swe[0, peak]) > 50.0
        assert float(swe[0, peak:].min()) < 1e-3


def test_closure_and_store_ranges_float32_hybrid():
    forcing = rough_forcing(3, 365, jnp.float32, seed=1, n_attributes=2)
    params = hl.Params.default(3, root_depth=jnp.array([0.3, 1.0, 2.0]))
    sim = simulate_ode(hybrid_model(2), forcing, params, soil_fraction=0.0)
    check_closure_and_ranges(sim, forcing, params)


def test_vmap_over_columns_equals_a_loop_and_float32_agrees_with_float64():
    with jax.enable_x64(True):
        forcing = rough_forcing(3, 120, jnp.float64, seed=4)
        params = hl.Params.default(3, dtype=jnp.float64, root_depth=jnp.array([0.3, 1.0, 2.0]))
        together = simulate_ode(hl.ColumnModel(), forcing, params)
        for c in range(3):
            one = jax.tree_util.tree_map(lambda x: x[c:c + 1] if x.ndim and x.shape[0] == 3
                                         else x, (forcing, params))
            alone = simulate_ode(hl.ColumnModel(), *one)
            np.testing.assert_allclose(np.asarray(alone.fluxes.runoff[0]),
                                       np.asarray(together.fluxes.runoff[c]), rtol=1e-6,
                                       atol=1e-9)
    f32 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), (forcing, params))
    single = simulate_ode(hl.ColumnModel(), *f32)
    for name in ("runoff", "et"):
        a32 = np.asarray(getattr(single.fluxes, name), np.float64)
        a64 = np.asarray(getattr(together.fluxes, name))
        assert np.abs(a32 - a64).max() <= 1e-3 * max(1.0, np.abs(a64).max()), name


def test_float32_forcing_runs_with_float64_enabled():
    # the solver's times were Python floats, float64 under x64, and turned the float32 stores
    # into float64 ones: the daily loop's carry changed type (a TypeError)
    forcing = rough_forcing(2, 30, jnp.float32, seed=2)
    with jax.enable_x64(True):
        sim = simulate_ode(hl.ColumnModel(), forcing)
    assert sim.fluxes.runoff.dtype == jnp.float32 and sim.states.soil.dtype == jnp.float32
    assert float(sim.max_abs_water_residual) < 1e-3


def test_forcing_without_days_is_refused():
    forcing = jax.tree_util.tree_map(
        lambda x: x[..., :0] if x.ndim == 2 or x.shape == (3,) else x,
        rough_forcing(2, 3, jnp.float32))
    for run in (hl.simulate, simulate_ode,
                lambda m, f: hl.solvers.simulate_runoff(m, f, hl.Params.default(2))):
        with pytest.raises(ValueError, match="no days"):
            run(hl.ColumnModel(), forcing)


# --- Agreement with the daily bucket on smooth forcing ------------------------------------

N_DAYS = 730


def smooth_params(dtype, substeps=1):
    params = hl.Params.default(
        2,
        dtype=dtype,
        root_depth=jnp.array([1.0, 0.6]),
        soil_drainage=jnp.array([0.05, 0.02]),
        runoff_shape=jnp.array([2.0, 3.0]),
    )
    # Rate constants per (1 / substeps) day.
    return eqx.tree_at(
        lambda p: (p.soil_drainage, p.baseflow_rate, p.ddf),
        params,
        (
            params.soil_drainage / substeps,
            params.baseflow_rate / substeps,
            params.ddf / substeps,
        ),
    )


def summary(sim, substeps=1):
    """(mean soil storage at the end of each day mm, cumulative ET mm, cumulative runoff mm)."""
    soil = sim.states.soil[:, substeps - 1 :: substeps]
    return {
        "soil": np.asarray(soil.mean(axis=1)),
        "et": np.asarray(sim.fluxes.et.sum(axis=1)),
        "runoff": np.asarray(sim.fluxes.runoff.sum(axis=1)),
    }


@pytest.fixture(scope="module")
def smooth_ode():
    forcing = smooth_forcing(2, N_DAYS, jnp.float32)
    params = smooth_params(jnp.float32)
    sim = simulate_ode(hl.ColumnModel(), forcing, params)
    # The regime the comparison is meant for: no snow, soil well inside (0, Smax).
    assert float(sim.states.swe.max()) < 1e-3
    assert float(sim.states.soil.min()) > 0.15 * float(params.soil_capacity.max())
    assert bool(jnp.all(sim.states.soil.max(axis=1) < 0.6 * params.soil_capacity))
    return summary(sim)


def relative_discrepancy(substeps, reference):
    forcing = smooth_forcing(2, N_DAYS, jnp.float32, substeps)
    sim = hl.simulate(hl.ColumnModel(), forcing, smooth_params(jnp.float32, substeps))
    got = summary(sim, substeps)
    return {k: got[k] / reference[k] - 1.0 for k in reference}


def test_agrees_with_daily_bucket_on_smooth_forcing(smooth_ode):
    """Measured (scan / ODE - 1, two columns): mean soil -3.3 %, -2.9 %; cumulative ET +3.7 %,
    +2.4 %; cumulative runoff -1.3 %, -3.0 %. The daily bucket infiltrates the whole day's
    input before ET and reads the stress from that wetter storage, so it evaporates more and
    keeps less water than the continuous solution. Tolerance: 5 % on each figure."""
    d = relative_discrepancy(1, smooth_ode)
    for name, value in d.items():
        assert np.all(np.abs(value) < 0.05), (name, value)
    # The measured signs: a sign flip would mean a different process order, not rounding.
    assert np.all(d["et"] > 0.0) and np.all(d["soil"] < 0.0) and np.all(d["runoff"] < 0.0)


def test_daily_bucket_converges_to_ode_when_its_step_is_refined(smooth_ode):
    """Same processes, two discretisations: the bucket's splitting error is first order, so
    halving its step halves the discrepancy (measured ratios 1.99-2.01)."""
    d1, d2, d4 = (relative_discrepancy(n, smooth_ode) for n in (1, 2, 4))
    for name in d1:
        np.testing.assert_allclose(d1[name] / d2[name], 2.0, rtol=0.1, err_msg=name)
        np.testing.assert_allclose(d2[name] / d4[name], 2.0, rtol=0.1, err_msg=name)
        assert np.all(np.abs(d4[name]) < 0.01), (name, d4[name])


# --- Differentiability --------------------------------------------------------------------


def test_gradient_of_runoff_is_finite_and_matches_finite_differences():
    with jax.enable_x64(True):
        forcing = rough_forcing(2, 150, jnp.float64, seed=3, n_attributes=1)
        model = hl.ColumnModel(runoff=hl.MLPRunoff(1, key=jax.random.PRNGKey(1)))
        # Empty soil at the start: gradients must stay finite at S = 0.
        state0 = model.init_state(hl.Params.default(2, dtype=jnp.float64), 0.0)
        u0 = hl.Params.default(2, dtype=jnp.float64).to_unconstrained()

        def loss(u, model):
            params = u.from_unconstrained()
            sim = simulate_ode(model, forcing, params, state0, rtol=1e-10, atol=1e-10)
            return sim.fluxes.runoff.sum()

        grad_u, grad_model = eqx.filter_jit(eqx.filter_grad(lambda a: loss(*a)))((u0, model))
        for leaf in jax.tree_util.tree_leaves((grad_u, eqx.filter(grad_model, eqx.is_array))):
            assert bool(jnp.all(jnp.isfinite(leaf)))
        assert float(jnp.abs(grad_model.runoff.mlp.layers[-1].weight).sum()) > 0.0

        h = 1e-5
        for name in ("soil_drainage", "baseflow_rate", "ddf", "t_melt", "root_depth"):
            g = float(getattr(grad_u, name).sum())
            shift = lambda d: eqx.tree_at(lambda p: getattr(p, name), u0, getattr(u0, name) + d)
            fd = float((loss(shift(h), model) - loss(shift(-h), model)) / (2 * h))
            assert abs(g) > 0.1, name
            # What is differentiated is the discretised solution, whose steps depend on the
            # rounding of the compiled program: jit-compiled and eager gradients differ by
            # ~1e-4 (the vector field has kinks: stress clip, melt threshold, energy cap),
            # and the difference quotient adds ~2e-5. A wrong derivative is off by O(1).
            assert abs(g - fd) <= 1e-3 * abs(fd), (name, g, fd)


def test_rejects_single_column_forcing():
    forcing = smooth_forcing(1, 5, jnp.float32)
    one = jax.tree_util.tree_map(lambda x: x[0], forcing)
    with pytest.raises(ValueError, match="column, time"):
        simulate_ode(hl.ColumnModel(), one)


def test_the_ode_path_is_imported_on_first_use_only():
    """``import hybridland`` and its command line do not import diffrax (about a second); the
    ODE functions are still reached from the package and from ``hybridland.solvers``."""
    code = (
        "import sys, hybridland, hybridland.cli\n"
        "assert 'diffrax' not in sys.modules, 'diffrax imported'\n"
        "assert 'simulate_ode' in dir(hybridland) and 'run_column_ode' in dir(hybridland.solvers)\n"
        "from hybridland.solvers import ode\n"
        "assert hybridland.simulate_ode is ode.simulate_ode\n"
        "assert hybridland.solvers.run_column_ode is ode.run_column_ode\n"
        "try:\n"
        "    hybridland.no_such_name\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    fresh_python(code)
