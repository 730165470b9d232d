"""The bucket's structure options: routing store, fast and slow paths, capillary rise, parallel
components and day-varying parameters from a sequence network. Closure, non-negative stores,
finite gradients at empty and full stores, vmap against a loop, x32 against x64, and the
physical response of each new part."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hybridland as hl
from columns import (
    FULL,
    FULL_STRUCTURE,
    component_params,
    forcing_from_arrays,
    fractions,
    independent_residuals,
    make_model,
    matrix_products,
    scramble_weights,
    synthetic_climate,
)
from hybridland.column import build_model
from hybridland.emulator import StepEmulator
from hybridland.physics import reservoirs, routing
from hybridland.train import ConfigError, config_from_dict

COMPONENTS = FULL_STRUCTURE["components"]

# Per-step closure of this structure for arbitrary inputs, per-component parameters and
# weights: tests/test_closure.py (kind sequence_hybrid).

# ---------------------------------------------------------------------------------------------
# Stores


@settings(max_examples=10)
@given(
    fracs=fractions,
    soil_fraction=st.sampled_from([0.0, 1.0]),
    seed=st.integers(0, 2**16),
    wetness=st.sampled_from([0.05, 1.0, 20.0]),
)
def test_every_component_store_stays_in_range(fracs, soil_fraction, seed, wetness):
    """The day-to-day state (each component's stores, the routing queue) never goes below zero
    and no root zone holds more than its capacity, for every component's own parameters."""
    with jax.enable_x64(True):
        model = make_model("sequence_hybrid", seed)
        rng = np.random.default_rng(seed)
        precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 120, wetness=wetness)
        forcing = forcing_from_arrays(
            precip[0], t_mean[0], t_range[0], pet[0], attributes=np.zeros(3)
        )
        params = component_params(fracs, COMPONENTS, jnp.float64)
        daily = model.daily_parameters(forcing, params)
        series, static = forcing.split_static()

        def body(state, xs):
            f, d = xs
            state, _ = model.step(state, f.with_static(static), hl.solvers.with_daily(params, d))
            return state, state

        _, states = jax.lax.scan(body, model.init_state(params, soil_fraction), (series, daily))
        for name in model.store_names:
            assert np.all(np.asarray(getattr(states, name)) >= 0.0), name
        capacity = np.asarray(params.soil_capacity)
        assert np.all(np.asarray(states.soil) <= capacity * (1 + 1e-12))


def test_full_structure_fifty_years_float32_cumulative():
    rng = np.random.default_rng(8)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 3, 50 * 365, wetness=2.0)
    forcing = forcing_from_arrays(
        precip, t_mean, t_range, pet, attributes=np.zeros((3, 3)), dtype=jnp.float32
    )
    model = build_model("sequence_hybrid", key=jax.random.key(2), n_attributes=3, dynamic_width=8)
    assert model.components == 16 and model.routing_days == 15
    sim = hl.simulate(model, forcing)
    assert np.abs(np.asarray(sim.cumulative_water_residual)).max() <= 1e-3
    assert np.abs(np.cumsum(independent_residuals(sim), -1)).max() <= 1e-3
    assert min(float(getattr(sim.states, s).min()) for s in model.store_names) >= 0.0


# ---------------------------------------------------------------------------------------------
# Solver agreement


def _forcing_and_params(n=3, n_days=500, dtype=jnp.float32, seed=1):
    rng = np.random.default_rng(seed)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, n, n_days)
    forcing = forcing_from_arrays(
        precip, t_mean, t_range, pet, attributes=rng.normal(size=(n, 3)), dtype=dtype
    )
    fracs = rng.uniform(0.1, 0.9, (len(hl.PARAMETER_BOUNDS), n, COMPONENTS))
    values = {}
    for (name, b), f in zip(hl.PARAMETER_BOUNDS.items(), fracs):
        values[name] = jnp.asarray(
            b.low + (b.high - b.low) * (f[:, 0] if name.startswith("routing") else f), dtype
        )
    return forcing, hl.Params(**values)


def test_vmap_equals_a_loop_over_columns():
    model = make_model("sequence_hybrid", seed=3)
    forcing, params = _forcing_and_params()
    batched = hl.simulate(model, forcing, params)
    chunked = hl.simulate(model, forcing, params, outputs=("runoff", "fast", "routing"),
                          chunk_days=100)
    for i in range(3):
        column = jax.tree_util.tree_map(lambda x: x[i], params)
        f_i = hl.Forcing(
            **{k: (v if k == "doy" or v is None else v[i]) for k, v in vars(forcing).items()}
        )
        single = hl.run_column(model, f_i, column, model.init_state(column))
        # float32 rounding of vectorised and scalar transcendentals (the drainage power, the
        # groundwater loss's exponential): a few ulps, on a 15-day sum for the routing store
        np.testing.assert_allclose(batched.fluxes.runoff[i], single.fluxes.runoff, rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(batched.states.routing[i], single.states.routing, rtol=1e-5,
                                   atol=1e-5)
    # The blocked loop batches the sequence network's matrix products over columns: equal to
    # rounding (float32), not bitwise as for a model without a network in its time loop.
    np.testing.assert_allclose(chunked.fluxes.runoff, batched.fluxes.runoff, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunked.states.fast, batched.states.fast, rtol=1e-5, atol=1e-5)


def test_every_network_matrix_product_runs_in_full_precision():
    # On a GPU, JAX's default float32 matrix product is TensorFloat-32 for matrices but full
    # float32 for one column's vector, so a vmapped run and a loop over its columns round
    # differently (test_vmap_equals_a_loop_over_columns failed on an H200). Every network's
    # products (forward and gradient) carry the arrays' own precision on every backend (the
    # Flax adapter: tests/test_flax.py).
    forcing, params = _forcing_and_params()
    keys = jax.random.split(jax.random.key(0), 6)
    models = {
        "sequence_hybrid": make_model("sequence_hybrid", seed=3),
        "hybrid_attributes": make_model("hybrid_attributes", seed=3),
        "monotone": hl.ColumnModel(et=hl.learned.MonotoneStressET(3, key=keys[0]),
                                   runoff=hl.learned.MonotoneRunoff(3, key=keys[1])),
        "emulator": StepEmulator(key=keys[2]),
    }

    def runoff_sum(model, forcing, params):
        return hl.simulate(model, forcing, params).fluxes.runoff.sum()

    plain = hl.Params.default(forcing.precip.shape[0])  # one bucket per column
    for name, model in models.items():
        p = params if name == "sequence_hybrid" else plain
        jaxpr = eqx.filter_make_jaxpr(eqx.filter_grad(runoff_sum))(model, forcing, p)[0].jaxpr
        products = matrix_products(jaxpr)
        assert products and all(p == FULL for p in products), (name, products)
    lstm = hl.learned.LSTMRunoff(n_attributes=3, width=8, key=keys[3])
    network = hl.learned.ParameterNetwork(["theta_cap", "ddf"], n_attributes=3, key=keys[4])
    for name, fn, args in (
        ("lstm", lambda m, f: m.runoff(f).sum(), (lstm, forcing)),
        ("parameter network", lambda m, a: sum(v.sum() for v in m(a).values()),
         (network, forcing.attributes)),
    ):
        products = matrix_products(eqx.filter_make_jaxpr(eqx.filter_grad(fn))(*args)[0].jaxpr)
        assert products and all(p == FULL for p in products), (name, products)


def test_float32_and_float64_agree():
    model = make_model("sequence_hybrid", seed=5)
    forcing32, params32 = _forcing_and_params(dtype=jnp.float32)
    sim32 = hl.simulate(model, forcing32, params32)
    with jax.enable_x64(True):
        model64 = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, model
        )
        forcing64, params64 = _forcing_and_params(dtype=jnp.float64)
        sim64 = hl.simulate(model64, forcing64, params64)
        q64 = np.asarray(sim64.fluxes.runoff)
    q32 = np.asarray(sim32.fluxes.runoff)
    assert np.abs(q32 - q64).max() <= 1e-3 * max(1.0, np.abs(q64).max())
    assert np.abs(q32.sum(-1) - q64.sum(-1)).max() <= 1e-3 * q64.sum(-1).max()
    # every other flux and every store too, not the runoff alone
    for group, names in (("fluxes", ("et", "surface_runoff", "subsurface_runoff", "snowmelt",
                                     *model.flux_names)),
                         ("states", model.store_names)):
        for name in names:
            a32 = np.asarray(getattr(getattr(sim32, group), name), np.float64)
            a64 = np.asarray(getattr(getattr(sim64, group), name))
            assert np.abs(a32 - a64).max() <= 1e-3 * max(1.0, np.abs(a64).max()), name


# ---------------------------------------------------------------------------------------------
# Gradients at empty and full stores


@pytest.mark.parametrize("scenario", ["empty", "full"])
def test_gradients_finite_and_match_finite_differences(scenario):
    with jax.enable_x64(True):
        rng = np.random.default_rng(11)
        precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 60)
        scale, soil_fraction = (0.05, 0.0) if scenario == "empty" else (25.0, 1.0)
        forcing = forcing_from_arrays(
            precip[0] * scale, t_mean[0] + 5, t_range[0], pet[0], attributes=np.ones(3)
        )
        model = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x,
            make_model("sequence_hybrid", seed=4),
        )
        net, static = eqx.partition(model, eqx.is_inexact_array)
        u0 = hl.Params.default(dtype=jnp.float64).to_unconstrained()

        def loss(u, net):
            m = eqx.combine(net, static)
            params = u.from_unconstrained()
            sim = hl.run_column(m, forcing, params, m.init_state(params, soil_fraction))
            return (jnp.mean(sim.fluxes.runoff**2) + jnp.mean(sim.fluxes.et)
                    + 1e-3 * jnp.mean(sim.states.fast + sim.states.routing))

        g_u, g_net = jax.jit(jax.grad(loss, argnums=(0, 1)))(u0, net)
        leaves = jax.tree_util.tree_leaves((g_u, g_net))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
        # fast_rate varies by day (the network's), the others are static; drizzle never lifts
        # the fast reservoir above its threshold and the reservoir percolates all it holds
        live = ("capillary_rate", "routing_scale")
        wet = ("fast_threshold_rate", "percolation", "loss_rate")
        for name in live + (wet if scenario == "full" else ()):
            assert float(jnp.abs(getattr(g_u, name))) > 0, name
        assert float(jnp.abs(g_u.fast_rate)) == 0.0

        flat, unravel = jax.flatten_util.ravel_pytree((u0, net))
        direction = jax.random.normal(jax.random.key(3), flat.shape, flat.dtype)
        direction = direction / jnp.linalg.norm(direction)
        analytic = float(jax.flatten_util.ravel_pytree((g_u, g_net))[0] @ direction)
        f = jax.jit(lambda x: loss(*unravel(x)))
        h = 1e-6
        numeric = float((f(flat + h * direction) - f(flat - h * direction)) / (2 * h))
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# The new processes


@given(
    shape=st.floats(1.0, 6.0), scale=st.floats(0.05, 5.0),
    queue=st.lists(st.floats(0.0, 500.0), min_size=9, max_size=9),
    inflow=st.one_of(st.just(0.0), st.floats(0.0, 500.0)),
)
def test_routing_conserves_water_exactly(shape, scale, queue, inflow):
    with jax.enable_x64(True):
        weights = routing.gamma_weights(jnp.float64(shape), jnp.float64(scale), 10)
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
        assert float(weights.min()) >= 0.0
        shares = routing.gamma_shares(jnp.float64(shape), jnp.float64(scale), 10)
        assert float(shares[-1]) == pytest.approx(1.0)
        queue = jnp.asarray(queue, jnp.float64)
        new, out = routing.route(queue, jnp.float64(inflow), shares)
        assert float(new.min()) >= 0.0 and float(out) >= 0.0
        change = float(jnp.sum(new) - jnp.sum(queue))
        assert change == pytest.approx(inflow - float(out), abs=1e-9)


def test_routing_of_a_pulse_follows_the_unit_hydrograph_and_empties():
    with jax.enable_x64(True):
        weights = routing.gamma_weights(jnp.float64(3.0), jnp.float64(1.5), 12)
        shares = routing.gamma_shares(jnp.float64(3.0), jnp.float64(1.5), 12)
        queue = jnp.zeros(11)
        outflows = []
        for day in range(15):
            queue, out = routing.route(queue, jnp.float64(10.0 if day == 0 else 0.0), shares)
            outflows.append(float(out))
        np.testing.assert_allclose(outflows[:12], 10.0 * np.asarray(weights), rtol=1e-12,
                                   atol=1e-12)
        assert float(queue.sum()) == 0.0 and sum(outflows) == pytest.approx(10.0, abs=1e-12)
        # the peak comes later and the hydrograph is smoother than the inflow
        assert 1 <= int(np.argmax(outflows)) <= 5


def test_routing_delays_and_smooths_the_column_runoff():
    forcing, params = _forcing_and_params(n=1, n_days=400)
    fast = build_model("physics", fast_reservoir=True)
    routed = build_model("physics", fast_reservoir=True, routing_days=15)
    p = jax.tree_util.tree_map(lambda x: x[:, 0] if x.ndim == 2 else x, params)
    p = eqx.tree_at(lambda q: q.routing_scale, p, jnp.full((1,), 2.0, jnp.float32))
    q0 = np.asarray(hl.simulate(fast, forcing, p).fluxes.runoff[0])
    q1 = np.asarray(hl.simulate(routed, forcing, p).fluxes.runoff[0])
    assert np.abs(np.diff(q1)).mean() < 0.7 * np.abs(np.diff(q0)).mean()
    assert abs(q1[30:].sum() - q0[30:].sum()) < 0.05 * q0[30:].sum()
    lag = np.argmax([np.corrcoef(q0[: -k or None], q1[k:])[0, 1] for k in range(6)])
    assert lag >= 1


def test_fast_reservoir_quick_flow_starts_above_its_threshold():
    p = hl.Params.default(dtype=jnp.float32, fast_threshold=20.0, fast_threshold_rate=0.5,
                          fast_rate=0.1, percolation=0.0)
    below = reservoirs.drain_fast(jnp.float32(15.0), p, 1.0)
    above = reservoirs.drain_fast(jnp.float32(40.0), p, 1.0)
    assert float(below[2]) == pytest.approx(15.0 * (1 - np.exp(-0.1)), rel=1e-5)
    # 10 mm of quick flow (half the 20 mm above the threshold) plus interflow of the rest
    assert float(above[2]) == pytest.approx(10.0 + 30.0 * (1 - np.exp(-0.1)), rel=1e-5)


@given(groundwater=st.floats(0.0, 1000.0), soil_rel=st.floats(0.0, 1.0),
       rate=st.floats(0.0, 1.0))
def test_capillary_rise_never_overfills_the_root_zone(groundwater, soil_rel, rate):
    with jax.enable_x64(True):
        p = hl.Params.default(dtype=jnp.float64, capillary_rate=rate)
        capacity = p.soil_capacity
        soil = soil_rel * capacity
        new_gw, rise = reservoirs.capillary_rise(jnp.float64(groundwater), soil, capacity, p, 1.0)
        assert 0.0 <= float(rise) <= groundwater
        assert float(soil + rise) <= float(capacity) * (1 + 1e-12)
        assert float(new_gw) == pytest.approx(groundwater - float(rise), abs=1e-12)


def test_capillary_rise_keeps_a_dry_root_zone_wetter():
    rng = np.random.default_rng(2)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 3 * 365, wetness=0.4)
    forcing = forcing_from_arrays(precip, t_mean, t_range, pet * 1.5, dtype=jnp.float32)
    params = hl.Params.default(1, dtype=jnp.float32, capillary_rate=0.5)
    soils = [
        np.asarray(hl.simulate(build_model("physics", capillary_rise=c), forcing, params,
                               soil_fraction=0.5).states.soil).mean()
        for c in (False, True)
    ]
    assert soils[1] > soils[0]


def test_nonlinear_drainage_keeps_a_drying_soil_for_et():
    forcing, _ = _forcing_and_params(n=1, n_days=3 * 365)
    params = hl.Params.default(1, dtype=jnp.float32, soil_drainage=0.05, drainage_shape=3.0)
    linear, nonlinear = (
        hl.simulate(build_model("physics", nonlinear_drainage=n), forcing, params)
        for n in (False, True)
    )
    total = lambda sim, name: float(np.asarray(getattr(sim.fluxes, name)).sum())  # noqa: E731
    # less drainage to groundwater, more water left for ET, a wetter root zone on average
    assert total(nonlinear, "drainage") < 0.8 * total(linear, "drainage")
    assert total(nonlinear, "et") > total(linear, "et")
    assert np.asarray(nonlinear.states.soil).mean() > np.asarray(linear.states.soil).mean()
    assert np.abs(np.asarray(nonlinear.fluxes.water_residual)).max() < 1e-3
    # the shape is a parameter of this structure only
    assert "drainage_shape" in build_model("physics", nonlinear_drainage=True).parameter_names
    assert "drainage_shape" not in build_model("physics").parameter_names


@given(store=st.one_of(st.just(0.0), st.floats(0.0, 1e4)),
       rate=st.one_of(st.just(0.0), st.just(1e-9), st.floats(0.0, 2.0)))
def test_groundwater_loss_is_a_sink_of_fixed_capacity(store, rate):
    """At most loss_rate a day and at most the store; what it takes leaves the store exactly;
    a small store loses a larger share than a large one; finite gradients everywhere."""
    with jax.enable_x64(True):
        p = hl.Params.default(dtype=jnp.float64, loss_rate=rate)
        new, lost = reservoirs.groundwater_loss(jnp.float64(store), p, 1.0)
        ulp = 4 * np.finfo(np.float64).eps * store  # the flux is store - new store, exactly
        assert 0.0 <= float(lost) <= min(store, rate) * (1 + 1e-12) + ulp
        assert float(new) == store - float(lost)
        if rate > 1e-3 and store > 1e-3:
            _, lost_double = reservoirs.groundwater_loss(jnp.float64(2 * store), p, 1.0)
            assert float(lost_double) / (2 * store) <= float(lost) / store * (1 + 1e-9)

        def taken(s, r):
            return reservoirs.groundwater_loss(s, eqx.tree_at(lambda q: q.loss_rate, p, r), 1.0)[1]

        grads = jax.grad(taken, argnums=(0, 1))(jnp.float64(store), jnp.float64(rate))
        assert all(np.isfinite(float(g)) for g in grads)


def test_groundwater_loss_lowers_baseflow_and_closes_with_its_own_term():
    """The loss is a fourth water output: baseflow falls by about what is lost, the budget
    closes only with L in it (the residual is not where the water went), and a dry climate
    loses a larger share of its recharge than a wet one, the shape that carries to basins
    drier than those trained on."""
    shares = []
    for wetness in (0.3, 3.0):
        rng = np.random.default_rng(5)
        precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 4 * 365, wetness=wetness)
        with jax.enable_x64(True):
            forcing = forcing_from_arrays(precip, t_mean, t_range, pet, dtype=jnp.float64)
            params = hl.Params.default(1, dtype=jnp.float64, loss_rate=0.3)
            plain, lossy = (hl.simulate(build_model("physics", groundwater_loss=g), forcing, params)
                            for g in (False, True))
        total = lambda sim, name: float(np.asarray(getattr(sim.fluxes, name)).sum())  # noqa: E731
        assert plain.fluxes.groundwater_loss is None
        lost = total(lossy, "groundwater_loss")
        assert lost > 0.0
        assert total(lossy, "subsurface_runoff") < total(plain, "subsurface_runoff")
        assert np.abs(np.asarray(lossy.fluxes.water_residual)).max() < 1e-9
        assert np.abs(independent_residuals(lossy)).max() < 1e-9
        # without L the budget would be off by what was lost
        change = float(np.asarray(lossy.final_state.total - lossy.initial_state.total).sum())
        outputs = total(lossy, "et") + total(lossy, "runoff")
        unexplained = change - (total(lossy, "precip") - outputs)
        assert unexplained == pytest.approx(-lost, rel=1e-9)
        shares.append(lost / total(lossy, "drainage"))
    assert shares[0] > shares[1]
    assert "loss_rate" in build_model("physics", groundwater_loss=True).parameter_names
    assert "loss_rate" not in build_model("physics").parameter_names
    with pytest.raises(ValueError, match="groundwater_loss needs a groundwater store"):
        hl.ColumnModel(groundwater=False, groundwater_loss=True)


def test_infiltration_excess_makes_a_dry_soil_run_off_under_an_intense_storm():
    """With a dry root zone the partition law lets almost all water in; with infiltration
    excess, what exceeds the capacity runs off the same day, never more infiltrates than the
    capacity, surface runoff never falls as the input grows, and the budget still closes."""
    with jax.enable_x64(True):
        days = 6
        precip = np.array([0.0, 5.0, 80.0, 150.0, 0.0, 30.0])
        forcing = forcing_from_arrays(precip[None], np.full((1, days), 20.0),
                                      np.full((1, days), 8.0), np.full((1, days), 1.0),
                                      dtype=jnp.float64)
        params = hl.Params.default(1, dtype=jnp.float64, infiltration_capacity=40.0,
                                   root_depth=3.0)
        plain, horton = (
            hl.simulate(build_model("physics", infiltration_excess=i), forcing, params,
                        soil_fraction=0.0)
            for i in (False, True)
        )
        surface = np.asarray(horton.fluxes.surface_runoff)[0]
        assert np.asarray(plain.fluxes.surface_runoff)[0, 2] < 2.0  # a dry soil: little
        assert surface[2] >= 80.0 - 40.0 - 1e-9 and surface[3] >= 150.0 - 40.0 - 1e-9
        gained = np.diff(np.concatenate([[0.0], np.asarray(horton.states.soil)[0]]))
        infiltrated = gained + np.asarray(horton.fluxes.et)[0] + np.asarray(
            horton.fluxes.drainage)[0]
        assert np.all(infiltrated <= 40.0 + 1e-9)
        assert np.abs(independent_residuals(horton)).max() < 1e-9
        assert "infiltration_capacity" in build_model(
            "physics", infiltration_excess=True).parameter_names

        def first_day(p, capacity=40.0, excess=True):
            f = forcing_from_arrays(jnp.array([[p]]), np.array([[20.0]]), np.array([[8.0]]),
                                    np.array([[1.0]]), dtype=jnp.float64)
            model = build_model("physics", infiltration_excess=excess)
            sim = hl.simulate(model, f, hl.Params.default(1, dtype=jnp.float64,
                                                           infiltration_capacity=capacity))
            return sim.fluxes

        def first_day_surface(p, capacity=40.0, excess=True):
            return first_day(p, capacity, excess).surface_runoff[0, 0]

        runoff = [float(first_day_surface(p)) for p in (0.0, 20.0, 39.0, 41.0, 100.0, 400.0)]
        assert runoff == sorted(runoff) and runoff[-1] > runoff[3] > runoff[2]
        # A half-full soil (the default start): the partition's share f runs off on saturated
        # ground; the unsaturated rest takes in at most the capacity, (1 - f) min(W, capacity)
        share = float(first_day_surface(100.0, excess=False)) / 100.0
        assert 0.05 < share < 0.95
        assert float(first_day_surface(39.0)) == pytest.approx(39.0 * share, rel=1e-12)
        assert float(first_day_surface(100.0)) == pytest.approx(100.0 - (1 - share) * 40.0,
                                                                rel=1e-12)
        slope = jax.grad(lambda c: first_day_surface(100.0, capacity=c))(40.0)
        assert float(slope) == pytest.approx(-(1 - share), rel=1e-9)
        # the diagnostic: what the capacity made, (1 - f)(W - capacity), 0 below the capacity
        made = first_day(100.0).infiltration_excess_runoff[0, 0]
        assert float(made) == pytest.approx((1 - share) * 60.0, rel=1e-12)
        assert float(first_day(39.0).infiltration_excess_runoff[0, 0]) == 0.0
        assert first_day(100.0, excess=False).infiltration_excess_runoff is None
        assert np.all(np.asarray(horton.fluxes.infiltration_excess_runoff)
                      <= np.asarray(horton.fluxes.surface_runoff) + 1e-9)


def test_identical_components_give_the_single_bucket():
    with jax.enable_x64(True):  # in float32 vectorised and scalar exp/log differ in the last bit
        forcing, _ = _forcing_and_params(n=2, n_days=300, dtype=jnp.float64)
        one = build_model("physics", fast_reservoir=True, capillary_rise=True)
        four = build_model("physics", fast_reservoir=True, capillary_rise=True, components=4)
        params = hl.Params.default(2, dtype=jnp.float64)
        a = hl.simulate(one, forcing, params)
        b = hl.simulate(four, forcing, params)
        np.testing.assert_allclose(a.fluxes.runoff, b.fluxes.runoff, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.states.fast, b.states.fast, rtol=1e-10, atol=1e-12)


def test_daily_parameters_vary_and_stay_in_their_ranges():
    forcing, params = _forcing_and_params(n=2, n_days=200)
    model = scramble_weights(make_model("sequence_hybrid", seed=9), 9, 5.0)
    daily = hl.solvers.daily_series(model, forcing, params)
    for name in FULL_STRUCTURE["dynamic_params"]:
        b = hl.PARAMETER_BOUNDS[name]
        values = np.asarray(daily[name])
        assert values.shape == (2, 200, COMPONENTS)
        assert values.min() >= b.low and values.max() <= b.high
        assert values.std(axis=1).max() > 0  # changes from day to day


def test_routing_parameters_cannot_vary_by_day():
    # A daily routing_scale got one value per component and day where the router takes one
    # per column: a broadcasting TypeError, or, with as many components as routing days, a
    # unit hydrograph mixed from the components' shapes (closed, silently wrong).
    with pytest.raises(ValueError, match=r"cannot vary \['routing_scale'\] by day.*one unit "
                                         "hydrograph"):
        build_model("physics", routing_days=4, components=4,
                    dynamic_params=("routing_scale", "runoff_shape"), key=jax.random.key(0))
    data = {"train_period": ["1990-01-01", "1995-12-31"],
            "validation_period": ["1996-01-01", "1997-12-31"]}
    with pytest.raises(ConfigError, match=r"model\.dynamic_params' lists \['routing_shape'\].*"
                                          "trainable_params"):
        config_from_dict({"data": data, "model": {
            "kind": "sequence_hybrid", "dynamic_params": ["runoff_shape", "routing_shape"]}})


@pytest.mark.parametrize("name", ["root_depth", "theta_cap", "theta_wp"])
def test_the_soil_capacity_cannot_vary_by_day(name):
    """A daily root_depth filled the initial store from the static capacity and spilled what
    day 1's smaller capacity did not hold: 99 mm of runoff on a day without rain (closed,
    silently wrong); any day-to-day fall in capacity did the same."""
    with pytest.raises(ValueError, match=rf"cannot vary \['{name}'\] by day.*spill"):
        build_model("physics", dynamic_params=(name, "runoff_shape"), key=jax.random.key(0))
    data = {"train_period": ["1990-01-01", "1995-12-31"],
            "validation_period": ["1996-01-01", "1997-12-31"]}
    with pytest.raises(ConfigError, match=rf"model\.dynamic_params' lists \['{name}'\].*"
                                          "trainable_params"):
        config_from_dict({"data": data, "model": {
            "kind": "sequence_hybrid", "dynamic_params": ["runoff_shape", name]}})


def test_configuration_refuses_parameters_the_structure_does_not_use():
    data = {"train_period": ["1990-01-01", "1995-12-31"],
            "validation_period": ["1996-01-01", "1997-12-31"]}
    with pytest.raises(ConfigError, match="routing_scale"):
        config_from_dict({"data": data, "model": {"kind": "hybrid",
                                                  "trainable_params": ["routing_scale"]}})
    with pytest.raises(ConfigError, match="either static"):
        config_from_dict({"data": data, "model": {"kind": "sequence_hybrid",
                                                  "trainable_params": ["et_shape"]}})
    with pytest.raises(ConfigError, match="routing_days"):
        config_from_dict({"data": data, "model": {"kind": "sequence_hybrid", "routing_days": 1}})
    with pytest.raises(ConfigError, match="lstm"):
        config_from_dict({"data": data, "model": {"kind": "lstm", "components": 4}})
    with pytest.raises(ConfigError, match="drainage_shape.*non-linear drainage"):
        config_from_dict({"data": data, "model": {"kind": "sequence_hybrid",
                                                  "trainable_params": ["drainage_shape"]}})
    with pytest.raises(ConfigError, match="nonlinear_drainage.*lstm"):
        config_from_dict({"data": data, "model": {"kind": "lstm", "nonlinear_drainage": True}})
    with pytest.raises(ConfigError, match="loss_rate.*groundwater loss.*"
                       "set model.groundwater_loss: true for loss_rate"):
        config_from_dict({"data": data, "model": {"kind": "sequence_hybrid",
                                                  "trainable_params": ["loss_rate"]}})
    with pytest.raises(ConfigError, match="set model.infiltration_excess: true for "
                                          "infiltration_capacity\\.$"):
        config_from_dict({"data": data, "model": {"kind": "physics", "trainable_params": [
            "root_depth", "infiltration_capacity"]}})
    with pytest.raises(ConfigError, match="dynamic_params.*infiltration_capacity"):
        config_from_dict({"data": data, "model": {"kind": "sequence_hybrid", "dynamic_params": [
            "infiltration_capacity"]}})
    lossy = config_from_dict({"data": data, "model": {
        "kind": "sequence_hybrid", "groundwater_loss": True, "trainable_params": ["loss_rate"]}})
    assert lossy.model.structure()["groundwater_loss"]
    drained = config_from_dict({"data": data, "model": {
        "kind": "sequence_hybrid", "nonlinear_drainage": True,
        "trainable_params": ["drainage_shape"]}})
    assert drained.model.structure()["nonlinear_drainage"]
    config = config_from_dict({"data": data, "model": {"kind": "sequence_hybrid"}})
    assert config.model.components == 16 and config.model.fast_reservoir
    assert "routing_days: 15" in config.to_yaml()


def test_ode_solver_refuses_the_structure_it_does_not_integrate():
    forcing, params = _forcing_and_params(n=1, n_days=10)
    with pytest.raises(ValueError, match="basic bucket.*routing_days"):
        hl.simulate_ode(build_model("physics", routing_days=5), forcing)
    with pytest.raises(ValueError, match="components"):
        hl.simulate_ode(build_model("physics", components=2), forcing)
    with pytest.raises(ValueError, match="nonlinear_drainage"):
        hl.simulate_ode(build_model("physics", nonlinear_drainage=True), forcing)


def test_cf_output_of_the_full_structure_closes_from_the_file(tmp_path):
    import xarray as xr

    forcing, params = _forcing_and_params(n=2, n_days=400)
    model = make_model("sequence_hybrid", seed=1)
    sim = hl.simulate(model, forcing, params)
    time = np.datetime64("2000-01-01") + np.arange(400)
    ds = hl.simulation_to_dataset(sim, ["a", "b"], time, model=model)
    path = hl.write_netcdf(ds, tmp_path / "full.nc")
    with xr.open_dataset(path) as back:
        roles = {n: v.attrs.get("water_budget") for n, v in back.data_vars.items()}
        assert {"fast_reservoir", "water_in_transit"} <= {n for n, r in roles.items()
                                                          if r == "storage"}
        terms = hl.io.water_budget_terms(back)
        assert float(np.abs(terms["cumulative_residual"]).max()) < 1e-3
        assert float(back["water_in_transit"].max()) > 0.0
        assert "components=4" in back.attrs["model"]


@pytest.mark.parametrize("kind", ["physics", "sequence_hybrid"])
def test_warmup_without_gradient_keeps_the_values(kind):
    """``simulate_runoff(warmup=w)``: the same runoff; the gradient of a loss on the days after
    the warm-up no longer flows through the spin-up of the stores."""
    forcing, _ = _forcing_and_params(n=2, n_days=400)
    model = make_model(kind, seed=2)
    u0 = hl.Params.default(2, dtype=jnp.float32).to_unconstrained()
    plain = hl.solvers.simulate_runoff(model, forcing, u0.from_unconstrained())
    cut = hl.solvers.simulate_runoff(model, forcing, u0.from_unconstrained(), warmup=150)
    np.testing.assert_allclose(cut, plain, rtol=1e-6, atol=1e-6)

    def loss(u, warmup):
        q = hl.solvers.simulate_runoff(model, forcing, u.from_unconstrained(), warmup=warmup)
        return jnp.mean(q[:, 150:] ** 2)

    g_plain = jax.grad(loss)(u0, 0)
    g_cut = jax.grad(loss)(u0, 150)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(g_cut))
    # Parameters still act on the days after the warm-up...
    assert float(jnp.abs(g_cut.baseflow_rate).max()) > 0
    # ...but the slow store's spin-up no longer contributes: the gradients differ.
    assert not np.allclose(np.asarray(g_cut.baseflow_rate), np.asarray(g_plain.baseflow_rate))


def test_every_structure_switch_is_named_once_for_its_listers():
    """``ColumnModel.STRUCTURE_OPTIONS`` (what describe_model prints and the ODE solver
    refuses) are exactly the switches of ``Structure`` beyond the laws and daily parameters, and
    each one set shows in the description and in the ODE solver's refusal."""
    import dataclasses

    from hybridland.column import ColumnModel, Structure
    from hybridland.io.output import describe_model
    from hybridland.solvers.ode import simulate_ode

    switches = {f.name for f in dataclasses.fields(Structure)} - {
        "et_law", "runoff_law", "dynamic_params"}
    assert set(ColumnModel.STRUCTURE_OPTIONS) == switches
    on = {"routing_days": 3, "components": 2}
    for name in ColumnModel.STRUCTURE_OPTIONS:
        model = build_model("physics", **{name: on.get(name, True)})
        assert f"{name}=" in describe_model(model)
        forcing = hl.Forcing(
            precip=jnp.ones((1, 3)), t_min=jnp.zeros((1, 3)), t_max=jnp.ones((1, 3)),
            doy=jnp.arange(1, 4), lat=jnp.zeros(1), pet=jnp.ones((1, 3)))
        with pytest.raises(ValueError, match=name):
            simulate_ode(model, forcing)
