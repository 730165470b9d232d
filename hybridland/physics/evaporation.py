"""Actual evapotranspiration: the ET interface and the physical water-stress law.

Actual ET = stress x demand, where the stress factor in [0, 1] comes from an ``AbstractET``
(a physical law here, or a network in ``hybridland.learned``) and the bucket then limits the
result to the water in the store (``ColumnModel.step``). The physical law is the classic
piecewise-linear soil-moisture stress (e.g. Laio et al. 2001; the HBV "LP" parameter):
stress = min(S / (p Smax), 1) with p = ``et_threshold``.
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params


class AbstractET(eqx.Module):
    """An ET stress law: ``(relative soil storage, forcing, PET, params) -> stress in [0, 1]``."""

    @abc.abstractmethod
    def stress(
        self, soil_rel: FloatArray, forcing: Forcing, pet: FloatArray, params: Params
    ) -> FloatArray:
        """Water-stress factor in [0, 1] multiplying PET."""


class SoilMoistureStressET(AbstractET):
    """stress = clip(S / (et_threshold * Smax), 0, 1)."""

    def stress(self, soil_rel, forcing, pet, params):
        return jnp.clip(soil_rel / params.et_threshold, 0.0, 1.0)
