"""Closure by construction: property tests over random forcing, parameters and weights."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hybridland as hl
from columns import (
    FULL_STRUCTURE,
    MODEL_KINDS,
    component_params,
    independent_residuals,
    forcing_from_arrays,
    fractions,
    make_model,
    params_from_fractions,
    precip_values,
    scramble_weights,
    synthetic_climate,
    temperature_values,
)

N_DAYS = 40


@eqx.filter_jit
def _run(model, forcing, params, soil_fraction):
    return hl.run_column(model, forcing, params, model.init_state(params, soil_fraction))


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("energy", [False, True])
@given(
    precip=st.lists(precip_values, min_size=N_DAYS, max_size=N_DAYS),
    temps=st.lists(temperature_values, min_size=N_DAYS, max_size=N_DAYS),
    pet=st.lists(st.floats(0.0, 15.0), min_size=N_DAYS, max_size=N_DAYS),
    rn=st.lists(st.floats(-200.0, 400.0), min_size=N_DAYS, max_size=N_DAYS),
    fracs=fractions,
    soil_fraction=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**16),
    weight_scale=st.sampled_from([0.0, 1.0, 10.0]),
)
def test_step_closure_float64(kind, energy, precip, temps, pet, rn, fracs, soil_fraction, seed,
                              weight_scale):
    with jax.enable_x64(True):
        model = make_model(kind, seed)
        if "hybrid" in kind and weight_scale != 1.0:
            model = scramble_weights(model, seed, weight_scale)
        attributes = np.linspace(-1, 1, 3) if kind in (
            "hybrid_attributes", "sequence_hybrid", "sequence_hybrid_one") else None
        forcing = forcing_from_arrays(
            precip, temps, 8.0, pet, rn if energy else None, attributes=attributes
        )
        if kind == "sequence_hybrid":  # every component with parameters of its own
            params = component_params(fracs, FULL_STRUCTURE["components"], jnp.float64)
        else:
            params = params_from_fractions(fracs, jnp.float64)
        sim = _run(model, forcing, params, soil_fraction)

        own = np.asarray(sim.fluxes.water_residual)
        recomputed = independent_residuals(sim)
        assert np.all(np.abs(own) <= 1e-9), np.abs(own).max()
        assert np.all(np.abs(recomputed) <= 1e-9), np.abs(recomputed).max()
        for store in model.store_names:
            assert np.all(np.asarray(getattr(sim.states, store)) >= 0.0), store
        for flux in ("et", "runoff", "surface_runoff", "subsurface_runoff", "snowmelt", "drainage",
                     *model.flux_names):
            assert np.all(np.asarray(getattr(sim.fluxes, flux)) >= 0.0), flux
        capacity = float(np.max(params.soil_capacity))
        assert np.all(np.asarray(sim.states.soil) <= capacity * (1 + 1e-12))
        if energy:
            f = sim.fluxes
            assert np.all(np.abs(np.asarray(f.energy_residual)) <= 1e-9)
            # lambda E never exceeds the available energy Rn - G (when positive).
            available = np.maximum(np.asarray(rn) - np.asarray(f.ground_heat), 0.0)
            assert np.all(np.asarray(f.latent_heat) <= available * (1 + 1e-12) + 1e-9)
        else:
            assert sim.fluxes.energy_residual is None


class _Adversarial(hl.AbstractET, hl.AbstractRunoff):
    """A user's module breaking the [0, 1] contract on purpose: the bucket must still close."""

    value: float

    def stress(self, soil_rel, forcing, pet, params):
        return jnp.full_like(soil_rel, self.value)

    def surface_fraction(self, soil_rel, water_input, forcing, pet, params):
        return jnp.full_like(soil_rel, self.value)


@pytest.mark.parametrize("value", [-3.0, 0.0, 1.0, 7.5])
def test_closure_with_out_of_contract_user_module(value):
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 1, 200)
        forcing = forcing_from_arrays(precip[0], t_mean[0], t_range[0], pet[0])
        model = hl.ColumnModel(et=_Adversarial(value), runoff=_Adversarial(value))
        sim = _run(model, forcing, hl.Params.default(dtype=jnp.float64), 0.5)
        assert np.abs(independent_residuals(sim)).max() <= 1e-9
        assert float(sim.states.soil.min()) >= 0.0
        assert float(sim.fluxes.et.min()) >= 0.0 and float(sim.fluxes.runoff.min()) >= 0.0


@settings(max_examples=4)
@given(fracs=fractions, seed=st.integers(0, 2**16), wetness=st.sampled_from([0.3, 1.0, 4.0]),
       kind=st.sampled_from(["physics", "hybrid", "sequence_hybrid"]))
def test_fifty_year_cumulative_closure_float32(fracs, seed, wetness, kind):
    n_days = 50 * 365
    rng = np.random.default_rng(seed)
    precip, t_mean, t_range, pet, _ = synthetic_climate(rng, 2, n_days, wetness=wetness)
    attributes = np.zeros((2, 3)) if kind == "sequence_hybrid" else None
    forcing = forcing_from_arrays(
        precip, t_mean, t_range, pet, attributes=attributes, dtype=jnp.float32
    )
    params = params_from_fractions(fracs, jnp.float32)
    sim = hl.simulate(make_model(kind, seed), forcing, params)
    assert sim.fluxes.et.dtype == jnp.float32
    cumulative = np.asarray(sim.cumulative_water_residual)
    assert np.abs(cumulative).max() <= 1e-3, np.abs(cumulative).max()
    # The same figure recomputed in float64 from the float32 outputs alone.
    recomputed = np.cumsum(independent_residuals(sim), axis=-1)
    assert np.abs(recomputed).max() <= 1e-3, np.abs(recomputed).max()
    assert float(sim.states.soil.min()) >= 0.0
