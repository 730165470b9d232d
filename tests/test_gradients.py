"""Gradients through the column model are finite (also at empty and full stores) and match
central finite differences in float64, for physical parameters and network weights."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import hybridland as hl
from columns import forcing_from_arrays, make_model, synthetic_climate


def _loss_fn(model, forcing, soil_fraction):
    def loss(unconstrained, net):
        params = unconstrained.from_unconstrained()
        m = eqx.combine(net, model_static)
        sim = hl.run_column(m, forcing, params, m.init_state(params, soil_fraction))
        return (
            jnp.mean(sim.fluxes.runoff**2)
            + jnp.mean(sim.fluxes.et)
            + 1e-3 * jnp.mean(sim.states.soil)
            + 1e-3 * jnp.mean(sim.states.swe)
        )

    net, model_static = eqx.partition(model, eqx.is_inexact_array)
    return loss, net


SCENARIOS = {
    # Drizzle on an empty store: ET and drainage limited by the water present, day after day.
    "empty_store": dict(soil_fraction=0.0, precip_scale=0.1, t_shift=5.0),
    # Storm on a full store: saturation excess at capacity.
    "full_store": dict(soil_fraction=1.0, precip_scale=20.0, t_shift=5.0),
    # Cold: snow accumulation and melt.
    "snow": dict(soil_fraction=0.5, precip_scale=1.0, t_shift=-12.0),
}


def _forcing(scenario, n_days=60, dtype=jnp.float64):
    s = SCENARIOS[scenario]
    rng = np.random.default_rng(11)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, n_days)
    return forcing_from_arrays(
        precip[0] * s["precip_scale"], t_mean[0] + s["t_shift"], t_range[0], pet[0], dtype=dtype
    )


@pytest.mark.parametrize("kind", ["physics", "hybrid"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_gradients_finite_and_match_finite_differences(kind, scenario):
    with jax.enable_x64(True):
        forcing = _forcing(scenario)
        model = make_model(kind, seed=4)
        loss, net = _loss_fn(model, forcing, SCENARIOS[scenario]["soil_fraction"])
        u0 = hl.Params.default(dtype=jnp.float64).to_unconstrained()
        value, (g_params, g_net) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(u0, net)
        leaves = jax.tree_util.tree_leaves((g_params, g_net))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
        assert any(float(jnp.max(jnp.abs(x))) > 0 for x in jax.tree_util.tree_leaves(g_params))

        # Directional derivative along a random direction in (parameters, weights) space.
        key = jax.random.key(7)
        flat, unravel = jax.flatten_util.ravel_pytree((u0, net))
        direction = jax.random.normal(key, flat.shape, flat.dtype)
        direction = direction / jnp.linalg.norm(direction)
        grad_flat, _ = jax.flatten_util.ravel_pytree((g_params, g_net))
        analytic = float(grad_flat @ direction)
        h = 1e-6
        f = jax.jit(lambda x: loss(*unravel(x)))
        numeric = float((f(flat + h * direction) - f(flat - h * direction)) / (2 * h))
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("kind", ["physics", "hybrid", "sequence_hybrid"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_gradients_are_finite_in_float32_at_the_store_boundaries(kind, scenario):
    # float32 is the training precision: empty and full stores, snow, for every model kind
    s = SCENARIOS[scenario]
    rng = np.random.default_rng(11)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 60)
    attributes = np.linspace(-1.0, 1.0, 3) if kind == "sequence_hybrid" else None
    forcing = forcing_from_arrays(precip[0] * s["precip_scale"], t_mean[0] + s["t_shift"],
                                  t_range[0], pet[0], attributes=attributes, dtype=jnp.float32)
    loss, net = _loss_fn(make_model(kind, seed=4), forcing, s["soil_fraction"])
    u0 = hl.Params.default(dtype=jnp.float32).to_unconstrained()
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(u0, net)
    leaves = jax.tree_util.tree_leaves(grads)
    assert np.isfinite(float(value)) and all(x.dtype == jnp.float32 for x in leaves)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert any(float(jnp.max(jnp.abs(x))) > 0 for x in jax.tree_util.tree_leaves(grads[0]))


def test_gradient_of_bounded_transform_is_finite_at_range_edges():
    with jax.enable_x64(True):
        lows = hl.Params(**{n: jnp.asarray(b.low) for n, b in hl.PARAMETER_BOUNDS.items()})
        highs = hl.Params(**{n: jnp.asarray(b.high) for n, b in hl.PARAMETER_BOUNDS.items()})
        for p in (lows, highs):
            # a parameter at its bound has a finite unconstrained value (not +-inf, which an
            # optimiser could never leave) and comes back to the bound
            u = p.to_unconstrained()
            assert all(bool(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(u))
            back = u.from_unconstrained()
            for name, bound in hl.PARAMETER_BOUNDS.items():  # within the clamp at the bound
                assert float(getattr(back, name)) == pytest.approx(
                    float(getattr(p, name)), rel=0, abs=2e-6 * (bound.high - bound.low)), name
            # and the optimiser's gradient there is finite and not zero
            g = jax.grad(lambda v: sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(
                v.from_unconstrained())))(u)
            leaves = jax.tree_util.tree_leaves(g)
            assert all(bool(jnp.isfinite(x)) for x in leaves)
            assert any(float(x) != 0.0 for x in leaves)
