"""A user's Flax module (NNX and linen) as ET stress and runoff law: closure holds whatever its
weights, gradients reach its weights, and hybridland works without flax installed."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

import hybridland as hl
from columns import FULL, forcing_from_arrays, matrix_products, scramble_weights, synthetic_climate
from runs import fresh_python
from hybridland.learned import FlaxRunoff, FlaxStressET
from hybridland.learned.flax_adapter import FlaxFunction, n_features

N_ATTRIBUTES = 2


class NNXNet(nnx.Module):
    """A user's NNX module: features -> one logit."""

    def __init__(self, n_in: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(n_in, 8, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))[..., 0]


class LinenNet(linen.Module):
    """A user's linen module: features -> one logit."""

    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(jnp.tanh(linen.Dense(8)(x)))[..., 0]


def flax_model() -> hl.ColumnModel:
    """ET from an NNX module, runoff from a linen one (float32 weights, as Flax makes them)."""
    n_in = n_features(N_ATTRIBUTES)
    et = FlaxStressET.from_nnx(NNXNet(n_in, nnx.Rngs(0)), n_attributes=N_ATTRIBUTES)
    net = LinenNet()
    variables = net.init(jax.random.key(1), jnp.ones(n_in))
    runoff = FlaxRunoff.from_linen(net, variables, n_attributes=N_ATTRIBUTES)
    return hl.ColumnModel(et=et, runoff=runoff)


def forcing(dtype=jnp.float64, n_columns=3, n_days=400):
    precip, t_mean, t_range, pet, _ = synthetic_climate(np.random.default_rng(0), n_columns,
                                                        n_days)
    attributes = np.random.default_rng(1).normal(size=(n_columns, N_ATTRIBUTES))
    return forcing_from_arrays(precip, t_mean, t_range, pet, attributes=attributes, dtype=dtype)


def _stores(sim: hl.Simulation) -> list[str]:
    return [f.name for f in dataclasses.fields(sim.states)
            if getattr(sim.states, f.name) is not None]


def budget_error(sim: hl.Simulation) -> float:
    """max |sum(P - E - Q) - (S_end - S_0)| over columns, in float64 from the outputs."""
    d = lambda x: np.asarray(x, np.float64)  # noqa: E731
    change = sum(d(getattr(sim.states, n))[:, -1] - d(getattr(sim.initial_state, n))
                 for n in _stores(sim))
    net = (d(sim.fluxes.precip) - d(sim.fluxes.et) - d(sim.fluxes.runoff)).sum(axis=1)
    return float(np.max(np.abs(net - change)))


@pytest.mark.parametrize("scale", [None, 30.0], ids=["initial", "wild-weights"])
def test_closure_holds_with_flax_laws(scale):
    with jax.enable_x64(True):
        model = flax_model()
        if scale is not None:  # weights far from any trained network: outputs saturate
            model = scramble_weights(model, seed=2, scale=scale)
        sim = hl.simulate(model, forcing())
        assert float(sim.max_abs_water_residual) < 1e-9
        assert budget_error(sim) < 1e-8
        et, pet = np.asarray(sim.fluxes.et), np.asarray(sim.fluxes.pet)
        assert (et >= 0).all() and (et <= pet + 1e-9).all()  # a stress factor in [0, 1]
        for store in _stores(sim):
            assert float(jnp.min(getattr(sim.states, store))) >= 0.0, store


def test_gradients_reach_the_flax_weights():
    model = flax_model()
    drivers = forcing(jnp.float32, n_days=120)

    @eqx.filter_grad
    def grad(model):
        return jnp.mean(hl.simulate(model, drivers).fluxes.runoff)

    g = grad(model)
    for law in (g.et, g.runoff):
        leaves = jax.tree_util.tree_leaves(eqx.filter(law.function.weights, eqx.is_array))
        assert leaves and all(bool(jnp.isfinite(x).all()) for x in leaves)
        assert sum(float(jnp.abs(x).sum()) for x in leaves) > 0


def test_clip_squash_and_attribute_check():
    n_in = n_features(0)
    net = LinenNet()
    variables = net.init(jax.random.key(0), jnp.ones(n_in))
    law = FlaxFunction.from_linen(net, variables, squash="clip")
    big = jax.tree_util.tree_map(lambda w: 100.0 * w, variables)
    wild = FlaxFunction.from_linen(net, big, squash="clip")
    for f in (law, wild):
        y = jax.vmap(lambda x: f(x, x[0]))(jax.random.normal(jax.random.key(3), (50, n_in)))
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    model = hl.ColumnModel(et=FlaxStressET.from_nnx(NNXNet(n_features(1), nnx.Rngs(0)), 1))
    with pytest.raises(ValueError, match="built for 1 static attributes but the forcing carries 2"):
        hl.simulate(model, forcing(jnp.float32, n_days=10))


def test_hybridland_does_not_need_flax():
    code = (
        "import sys; sys.modules['flax'] = None\n"  # as if flax were not installed
        "import hybridland, hybridland.learned as learned\n"
        "try:\n"
        "    learned.FlaxStressET.from_nnx(object())\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    assert "hybridland[flax]" in fresh_python(code).stdout


def test_flax_modules_multiply_in_full_precision():
    # as every hybridland network (tests/test_structure.py): the products of a user's NNX and
    # linen modules, forward and gradient, are not TensorFloat-32 on a GPU
    model, f = flax_model(), forcing(jnp.float32, n_days=30)
    params = hl.Params.default(3)

    def runoff_sum(model):
        return hl.simulate(model, f, params).fluxes.runoff.sum()

    products = matrix_products(eqx.filter_make_jaxpr(eqx.filter_grad(runoff_sum))(model)[0].jaxpr)
    assert products and all(p == FULL for p in products), products
