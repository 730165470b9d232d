"""A user's Flax module (NNX or linen) as an ET stress law or a runoff partition law.

``FlaxStressET`` and ``FlaxRunoff`` are thin ``AbstractET`` / ``AbstractRunoff`` implementations
around any Flax module that maps a feature vector ``[n_features(n_attributes)]`` (relative
soil storage, scaled precipitation or water input, mean air temperature and PET, then the
column's static attributes: ``hybridland.learned.networks.features``) to one number. That
number is squashed into [0, 1] (a sigmoid of a logit, or a clip of a fraction), so, as with
``MLPStressET``, the bucket turns it into fluxes limited by the water available and the water
balance closes whatever the module or its weights are.

The module's weights are ordinary array leaves of the law (an NNX ``State`` or linen
``variables``; the module's structure is a static field), so ``eqx.partition``, ``jax.grad``
and ``hybridland.train`` see and train them like an Equinox network's.

Flax is an optional extra (``pip install hybridland[flax]``); it is imported only when an
adapter is built or run, so ``hybridland`` works without it.
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import FloatArray
from ..physics.evaporation import AbstractET
from ..physics.runoff import AbstractRunoff
from .networks import N_DYNAMIC_FEATURES, features
from ._precision import full_precision

Squash = Literal["sigmoid", "clip"]


def n_features(n_attributes: int = 0) -> int:
    """Length of the feature vector a Flax law receives (its module's input size)."""
    return N_DYNAMIC_FEATURES + n_attributes


def _flax(kind: str):
    try:
        if kind == "nnx":
            from flax import nnx

            return nnx
        from flax import linen

        return linen
    except ImportError as err:
        raise ImportError(
            "A Flax law needs flax: pip install 'hybridland[flax]' (or pip install flax)."
        ) from err


class FlaxFunction(eqx.Module):
    """A Flax module as a function ``[n_features] -> scalar in [0, 1]``.

    **Fields:** ``weights`` (NNX ``State`` or linen ``variables``: the arrays), ``structure``
    (NNX ``GraphDef`` or the linen module itself; static), ``kind`` (``"nnx"`` or
    ``"linen"``), ``squash`` (``"sigmoid"``: the module returns a logit; ``"clip"``: it returns
    a fraction, clipped into [0, 1]).
    """

    weights: Any
    structure: Any = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    squash: str = eqx.field(static=True, default="sigmoid")

    def __check_init__(self):
        if self.kind not in ("nnx", "linen"):
            raise ValueError(f"kind must be 'nnx' or 'linen', got {self.kind!r}.")
        if self.squash not in ("sigmoid", "clip"):
            raise ValueError(f"squash must be 'sigmoid' or 'clip', got {self.squash!r}.")

    @classmethod
    def from_nnx(cls, module, squash: Squash = "sigmoid") -> FlaxFunction:
        """Wrap an ``flax.nnx.Module`` (its current weights are copied into the law)."""
        graphdef, state = _flax("nnx").split(module)
        return cls(weights=state, structure=graphdef, kind="nnx", squash=squash)

    @classmethod
    def from_linen(cls, module, variables, squash: Squash = "sigmoid") -> FlaxFunction:
        """Wrap an ``flax.linen.Module`` and its ``variables`` (from ``module.init``)."""
        _flax("linen")
        return cls(weights=variables, structure=module, kind="linen", squash=squash)

    @full_precision
    def __call__(self, x: FloatArray, like: FloatArray) -> FloatArray:
        """The module's output for features ``x``, in [0, 1], in the dtype of ``like``."""
        arrays = [w for w in jax.tree_util.tree_leaves(self.weights) if eqx.is_inexact_array(w)]
        # Weights may be float32 inside a float64 run (or the reverse): compute in the
        # weights' dtype, return in the run's, so the scan carry keeps one dtype.
        x = x.astype(arrays[0].dtype) if arrays else x
        if self.kind == "nnx":
            y = _flax("nnx").merge(self.structure, self.weights)(x)
        else:
            y = self.structure.apply(self.weights, x)
        y = jnp.reshape(y, ())  # one number per column and day
        y = jax.nn.sigmoid(y) if self.squash == "sigmoid" else jnp.clip(y, 0.0, 1.0)
        return y.astype(jnp.result_type(like))


class _FlaxLaw(eqx.Module):
    function: FlaxFunction
    n_attributes: int = eqx.field(static=True, default=0)

    @classmethod
    def from_nnx(cls, module, n_attributes: int = 0, squash: Squash = "sigmoid"):
        """The law of an ``flax.nnx.Module`` of input size ``n_features(n_attributes)``."""
        return cls(FlaxFunction.from_nnx(module, squash), n_attributes)

    @classmethod
    def from_linen(cls, module, variables, n_attributes: int = 0, squash: Squash = "sigmoid"):
        """The law of an ``flax.linen.Module`` and its ``variables`` (``module.init`` on a
        vector of ``n_features(n_attributes)``)."""
        return cls(FlaxFunction.from_linen(module, variables, squash), n_attributes)

    def _apply(self, x: FloatArray, forcing, like: FloatArray) -> FloatArray:
        n = 0 if forcing.attributes is None else forcing.attributes.shape[-1]
        if n != self.n_attributes:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_attributes} static attributes but "
                f"the forcing carries {n}; build it with n_attributes={n} and a module of input "
                f"size {n_features(n)}."
            )
        return self.function(x, like)


class FlaxStressET(_FlaxLaw, AbstractET):
    """ET stress factor in [0, 1] from a user's Flax module of storage, forcing and static
    attributes (``features``). Build with ``from_nnx`` or ``from_linen``."""

    def stress(self, soil_rel, forcing, pet, params):
        return self._apply(features(soil_rel, forcing, pet), forcing, soil_rel)


class FlaxRunoff(_FlaxLaw, AbstractRunoff):
    """Surface-runoff fraction in [0, 1] from a user's Flax module of storage, water input,
    forcing and static attributes (``features``). Build with ``from_nnx`` or ``from_linen``."""

    def surface_fraction(self, soil_rel, water_input, forcing, pet, params):
        x = features(soil_rel, forcing, pet, water_input=water_input)
        return self._apply(x, forcing, soil_rel)
