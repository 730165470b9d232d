"""Learned laws whose physical shape holds by construction, outside the training climate too.

A partially monotone MLP (after Sill 1998 and Daniels & Velikova 2010): the *monotone* inputs
(soil wetness, water input) enter through weights kept non-negative by a softplus, every hidden
layer has non-negative weights and a monotone activation (tanh), and the *free* inputs
(temperature, PET, static attributes) enter only the first layer, additively. The output is then
non-decreasing in every monotone input, for any weights and any free inputs: a property of the
architecture, not of the data it was trained on, so it holds in a climate it never saw.

- ``MonotoneStressET``: ``stress(s) = (z(s) - z(0) + r s) / (z(1) - z(0) + r)`` with ``z``
  monotone in the relative storage ``s`` and a tiny ramp ``r`` (at least a few thousand
  roundings of ``z``): exactly 0 at an empty store, 1 at a full one, and never falling as the
  soil wets (in float32, where the network is nearly flat, by at most about 1e-4: rounding).
- ``MonotoneRunoff``: ``sigmoid(z(s, input))``: a surface-runoff fraction that never falls as
  the soil wets or the water input grows.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from ..physics.evaporation import AbstractET
from ..physics.runoff import AbstractRunoff
from .networks import FEATURE_SCALES
from ._precision import full_precision


RAMP = 1e-6
"""Weight of the linear ramp added to the monotone stress curve (see ``MonotoneStressET``)."""

RAMP_ROUNDINGS = 4096.0
"""The ramp's weight is also at least this many roundings (``eps``) of ``|z(0)| + |z(1)|``."""


class MonotoneMLP(eqx.Module):
    """``z(m, u)``: non-decreasing in each of the ``n_monotone`` inputs ``m``, for any weights
    and any of the ``n_free`` inputs ``u``."""

    monotone_in: jax.Array
    free_in: jax.Array
    bias_in: jax.Array
    hidden: tuple[tuple[jax.Array, jax.Array], ...]
    out: jax.Array
    out_bias: jax.Array

    def __init__(self, n_monotone: int, n_free: int, width: int = 16, depth: int = 2, *, key):
        keys = jax.random.split(key, depth + 2)
        scale = 1.0 / jnp.sqrt(n_monotone + n_free)
        # Raw weights: the effective (monotone) ones are softplus(raw) >= 0.
        self.monotone_in = jax.random.normal(keys[0], (width, n_monotone)) * 0.5 - 1.0
        self.free_in = jax.random.normal(keys[1], (width, n_free)) * scale
        self.bias_in = jnp.zeros((width,))
        self.hidden = tuple(
            (jax.random.normal(k, (width, width)) * 0.5 - 2.5, jnp.zeros((width,)))
            for k in keys[2 : depth + 1]
        )
        self.out = jax.random.normal(keys[-1], (width,)) * 0.5 - 1.0
        self.out_bias = jnp.zeros(())

    @full_precision
    def __call__(self, monotone: FloatArray, free: FloatArray) -> FloatArray:
        h = jnp.tanh(
            jax.nn.softplus(self.monotone_in) @ monotone + self.free_in @ free + self.bias_in
        )
        for weight, bias in self.hidden:
            h = jnp.tanh(jax.nn.softplus(weight) @ h + bias)
        return jax.nn.softplus(self.out) @ h + self.out_bias


class _MonotoneLaw(eqx.Module):
    net: MonotoneMLP
    n_attributes: int = eqx.field(static=True)

    def _free(self, forcing: Forcing, pet) -> FloatArray:
        n = 0 if forcing.attributes is None else forcing.attributes.shape[-1]
        if n != self.n_attributes:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_attributes} static attributes but "
                f"the forcing carries {n}; build it with n_attributes={n}."
            )
        dtype = self.net.bias_in.dtype
        dynamic = jnp.stack(
            [forcing.t_mean / FEATURE_SCALES["t_mean"], pet / FEATURE_SCALES["pet"]]
        ).astype(dtype)
        if forcing.attributes is None:
            return dynamic
        return jnp.concatenate([dynamic, jnp.asarray(forcing.attributes, dtype)])


class MonotoneStressET(_MonotoneLaw, AbstractET):
    """ET stress in [0, 1]: 0 at an empty store, 1 at a full one, non-decreasing in between, its
    shape learned from temperature, PET and static attributes."""

    def __init__(self, n_attributes: int = 0, width: int = 16, depth: int = 2, *, key):
        self.n_attributes = n_attributes
        self.net = MonotoneMLP(1, 2 + n_attributes, width, depth, key=key)

    def stress(self, soil_rel, forcing, pet, params):
        free = self._free(forcing, pet)
        dtype = self.net.bias_in.dtype
        s = jnp.clip(soil_rel, 0.0, 1.0).astype(dtype)
        # z at 0, s and 1 in one batched evaluation: the three take the same path through the
        # network (separate ones, or a constant-folded z(1), round differently, which made the
        # curve fall and miss 1 where the network is nearly flat)
        z0, z, z1 = jax.vmap(lambda x: self.net(x[None], free))(
            jnp.stack([jnp.zeros_like(s), s, jnp.ones_like(s)]))
        # A linear part keeps the curve defined (a straight ramp) where the network is flat;
        # it is at least RAMP_ROUNDINGS roundings of z, so that rounding noise in z - z0 cannot
        # make the curve fall noticeably where z(1) - z(0) is itself a few roundings.
        weight = RAMP + RAMP_ROUNDINGS * jnp.finfo(dtype).eps * (jnp.abs(z0) + jnp.abs(z1))
        stress = jnp.clip((z - z0 + weight * s) / (z1 - z0 + weight), 0.0, 1.0)
        # exactly 0 at an empty store and 1 at a full one
        stress = jnp.where(s > 0.0, jnp.where(s < 1.0, stress, 1.0), 0.0)
        return stress.astype(jnp.result_type(soil_rel))


class MonotoneRunoff(_MonotoneLaw, AbstractRunoff):
    """Surface-runoff fraction in (0, 1), non-decreasing in soil wetness and in water input."""

    def __init__(self, n_attributes: int = 0, width: int = 16, depth: int = 2, *, key):
        self.n_attributes = n_attributes
        self.net = MonotoneMLP(2, 2 + n_attributes, width, depth, key=key)

    def surface_fraction(self, soil_rel, water_input, forcing, pet, params):
        free = self._free(forcing, pet)
        dtype = self.net.bias_in.dtype
        monotone = jnp.stack(
            [jnp.clip(soil_rel, 0.0, 1.0), water_input / FEATURE_SCALES["precip"]]
        ).astype(dtype)
        return jax.nn.sigmoid(self.net(monotone, free)).astype(jnp.result_type(soil_rel))
