"""Builders of forcing, parameters and models for the core tests (no I/O)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import hybridland as hl

MODEL_KINDS = ("physics", "hybrid", "physics_no_gw", "physics_fast_no_gw", "hybrid_attributes",
               "sequence_hybrid", "sequence_hybrid_one")

FULL_STRUCTURE = dict(
    fast_reservoir=True, capillary_rise=True, nonlinear_drainage=True, infiltration_excess=True,
    groundwater_loss=True, routing_days=6, components=4,
    dynamic_params=("runoff_shape", "et_shape", "fast_rate"),
)
"""Every structure option at once, small enough for property tests (``make_model``)."""


def make_model(kind: str, seed: int = 0, pet: hl.AbstractPET | None = None) -> hl.ColumnModel:
    """A column model of the given kind; hybrids get seeded random network weights."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    pet = pet if pet is not None else hl.GivenPET()
    if kind == "physics":
        return hl.ColumnModel(pet=pet)
    if kind == "physics_no_gw":
        return hl.ColumnModel(pet=pet, groundwater=False)
    if kind == "physics_fast_no_gw":  # percolation from the fast reservoir has nowhere below
        return hl.ColumnModel(pet=pet, groundwater=False, fast_reservoir=True)
    if kind in ("sequence_hybrid", "sequence_hybrid_one"):
        from hybridland.column import build_model

        # one component: routing and daily parameters on the column itself, [time] per column
        structure = FULL_STRUCTURE if kind == "sequence_hybrid" else {
            **FULL_STRUCTURE, "components": 1}
        return build_model(
            "sequence_hybrid", key=jax.random.key(seed), n_attributes=3, dynamic_width=8,
            **structure,
        )
    n_attr = 3 if kind == "hybrid_attributes" else 0
    return hl.ColumnModel(
        pet=pet,
        et=hl.MLPStressET(n_attributes=n_attr, key=k1),
        runoff=hl.MLPRunoff(n_attributes=n_attr, key=k2),
    )


def scramble_weights(model: hl.ColumnModel, seed: int, scale: float) -> hl.ColumnModel:
    """Replace every array leaf of the model by random values of the given scale."""
    leaves, treedef = jax.tree_util.tree_flatten(model)
    keys = jax.random.split(jax.random.key(seed), max(len(leaves), 1))
    new = [
        scale * jax.random.normal(k, x.shape, x.dtype) if isinstance(x, jax.Array) else x
        for k, x in zip(keys, leaves)
    ]
    return jax.tree_util.tree_unflatten(treedef, new)


def params_from_fractions(fractions, dtype) -> hl.Params:
    """Parameters at the given relative positions (0..1) in their physical ranges."""
    values = {
        name: jnp.asarray(b.low + (b.high - b.low) * f, dtype)
        for (name, b), f in zip(hl.PARAMETER_BOUNDS.items(), fractions)
    }
    return hl.Params(**values)


def component_params(fracs, components: int, dtype) -> hl.Params:
    """Parameters that differ between the ``components`` of a column: component ``c`` at the
    relative position ``fracs + c / components`` of the ranges, reflected back into [0, 1]
    (a triangle wave, so ``fracs`` = 1 puts component 0 at the upper bound; wrapping put it at
    the lower one) (routing parameters, one per column, at ``fracs``)."""
    values = {}
    for (name, b), f in zip(hl.PARAMETER_BOUNDS.items(), fracs):
        f = np.asarray(f, np.float64)
        if name not in ("routing_shape", "routing_scale"):
            f = np.mod(f + np.arange(components) / components, 2.0)
            f = np.where(f > 1.0, 2.0 - f, f)
        values[name] = jnp.asarray(b.low + (b.high - b.low) * f, dtype)
    return hl.Params(**values)


def independent_residuals(sim: hl.Simulation) -> np.ndarray:
    """Delta S - (P - E - Q - L) per step, recomputed in float64 from the reported stores and
    fluxes alone (L: the groundwater loss, where the model has one)."""
    d = lambda x: np.asarray(x, np.float64)  # noqa: E731
    residual = -(d(sim.fluxes.precip) - d(sim.fluxes.et) - d(sim.fluxes.runoff))
    if sim.fluxes.groundwater_loss is not None:
        residual = residual + d(sim.fluxes.groundwater_loss)
    for name in hl.STORE_NAMES:
        if getattr(sim.states, name) is None:
            continue
        series = d(getattr(sim.states, name))
        before = np.concatenate(
            [d(getattr(sim.initial_state, name))[..., None], series[..., :-1]], -1
        )
        residual = residual + (series - before)
    return residual


def forcing_from_arrays(
    precip, t_mean, t_range, pet, net_radiation=None, attributes=None, lat=40.0, dtype=jnp.float64
) -> hl.Forcing:
    """A forcing for columns ``[column, time]`` (or one column ``[time]``)."""
    precip = np.asarray(precip)
    t_mean = np.asarray(t_mean)
    n_time = precip.shape[-1]
    lat_arr = np.full(precip.shape[:-1], lat)
    return hl.Forcing(
        precip=jnp.asarray(precip, dtype),
        t_min=jnp.asarray(t_mean - 0.5 * np.asarray(t_range), dtype),
        t_max=jnp.asarray(t_mean + 0.5 * np.asarray(t_range), dtype),
        doy=jnp.asarray(np.arange(n_time) % 365 + 1.0, dtype),
        lat=jnp.asarray(lat_arr, dtype),
        pet=None if pet is None else jnp.asarray(pet, dtype),
        net_radiation=None if net_radiation is None else jnp.asarray(net_radiation, dtype),
        attributes=None if attributes is None else jnp.asarray(attributes, dtype),
    )


def synthetic_climate(rng: np.random.Generator, n_columns: int, n_days: int, wetness=1.0):
    """Stochastic daily weather: intermittent gamma rain, seasonal temperature and PET."""
    day = np.arange(n_days)
    season = np.sin(2 * np.pi * (day - 100) / 365.25)
    wet = rng.random((n_columns, n_days)) < 0.45
    precip = wet * rng.gamma(0.7, 6.0 * wetness, (n_columns, n_days))
    t_mean = 8.0 + 14.0 * season + rng.normal(0.0, 3.0, (n_columns, n_days))
    pet = np.clip(2.5 + 2.0 * season + rng.normal(0.0, 0.5, (n_columns, n_days)), 0.0, None)
    rn = 90.0 + 80.0 * season + rng.normal(0.0, 30.0, (n_columns, n_days))
    return precip, t_mean, np.full_like(t_mean, 10.0), pet, rn


# Hypothesis strategies: extremes on purpose (no rain and 500 mm/day, -40 to +45 degC,
# negative net radiation at night-dominated winter days).
precip_values = st.one_of(
    st.just(0.0), st.just(500.0), st.floats(0.0, 500.0), st.floats(0.0, 5.0)
)
temperature_values = st.one_of(st.just(-40.0), st.just(45.0), st.floats(-40.0, 45.0))
fractions = st.lists(st.floats(0.0, 1.0), min_size=len(hl.PARAMETER_BOUNDS),
                     max_size=len(hl.PARAMETER_BOUNDS))


FULL = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
"""The ``precision`` of a matrix product in the arrays' own precision (``matrix_products``)."""


def matrix_products(jaxpr) -> list:
    """The ``precision`` of every matrix product in a jaxpr and in the jaxprs inside it."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's, or a Jaxpr itself
                if hasattr(inner, "eqns"):
                    found.extend(matrix_products(inner))
    return found
