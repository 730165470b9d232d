"""The blocked time loop of ``simulate``: selected outputs, run totals and block-checkpointed
gradients give the same numbers as the default run."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybridland as hl
from columns import forcing_from_arrays, make_model, synthetic_climate


def _forcing(n_columns=4, n_days=100, dtype=jnp.float32, energy=False):
    precip, t_mean, t_range, pet, rn = synthetic_climate(np.random.default_rng(5), n_columns, n_days)
    return forcing_from_arrays(precip, t_mean, t_range, pet, rn if energy else None, dtype=dtype)


@pytest.mark.parametrize("kind", ["physics", "hybrid_attributes"])
@pytest.mark.parametrize("chunk_days", [1, 30, 100, 365])
def test_blocked_loop_is_bitwise_equal_to_default(kind, chunk_days):
    forcing = _forcing(energy=True)
    if kind == "hybrid_attributes":
        forcing = eqx.tree_at(lambda f: f.attributes, forcing, jnp.ones((4, 3), jnp.float32),
                              is_leaf=lambda x: x is None)
    model = make_model(kind, seed=3)
    default = hl.simulate(model, forcing)
    blocked = hl.simulate(model, forcing, chunk_days=chunk_days)
    assert blocked.totals is None
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(default), leaves(blocked), strict=True):  # no series left out
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_selected_outputs_and_totals():
    forcing = _forcing()
    model = make_model("hybrid", seed=1)
    full = hl.simulate(model, forcing)
    some = hl.simulate(model, forcing, outputs=("runoff", "soil"), totals=("runoff", "et"))
    np.testing.assert_array_equal(np.asarray(some.fluxes.runoff), np.asarray(full.fluxes.runoff))
    np.testing.assert_array_equal(np.asarray(some.states.soil), np.asarray(full.states.soil))
    assert some.fluxes.et is None and some.states.swe is None
    assert some.cumulative_water_residual is None
    np.testing.assert_array_equal(np.asarray(some.final_state.soil), np.asarray(full.final_state.soil))
    for name in ("runoff", "et"):
        expected = np.asarray(getattr(full.fluxes, name), np.float64).sum(axis=1)
        np.testing.assert_allclose(np.asarray(some.totals[name]), expected, rtol=1e-5)


def test_unknown_or_unavailable_outputs_named():
    forcing = _forcing()
    model = make_model("physics")
    with pytest.raises(ValueError, match="runof"):
        hl.simulate(model, forcing, outputs=("runof",))
    with pytest.raises(ValueError, match="soil"):
        hl.simulate(model, forcing, totals=("soil",))
    with pytest.raises(ValueError, match="net_radiation"):
        hl.simulate(model, forcing, outputs=("latent_heat",))
    with pytest.raises(ValueError, match=">= 1"):
        hl.simulate(model, forcing, chunk_days=0)


@pytest.mark.parametrize("kind", ["physics", "hybrid"])
@pytest.mark.parametrize("checkpoint_every", [7, 50])
def test_checkpointed_gradients_equal_plain_gradients(kind, checkpoint_every):
    with jax.enable_x64(True):
        forcing = _forcing(n_columns=3, n_days=100, dtype=jnp.float64)
        model = make_model(kind, seed=2)
        net, static = eqx.partition(model, eqx.is_inexact_array)
        params = hl.Params.default(3, dtype=jnp.float64)

        def loss(params, net, every):
            m = eqx.combine(net, static)
            if every is None:  # the default run, loss over the stored series
                sim = hl.simulate(m, forcing, params)
                return jnp.sum(sim.fluxes.runoff) + jnp.sum(sim.fluxes.et)
            sim = hl.simulate(m, forcing, params, outputs=(), totals=("runoff", "et"),
                              checkpoint_every=every)
            return jnp.sum(sim.totals["runoff"]) + jnp.sum(sim.totals["et"])

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
        plain_value, plain = grad(params, net, None)
        value, checkpointed = grad(params, net, checkpoint_every)
        assert float(value) == pytest.approx(float(plain_value), rel=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(checkpointed), jax.tree_util.tree_leaves(plain),
                        strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
