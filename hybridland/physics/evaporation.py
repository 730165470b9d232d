"""Actual evapotranspiration: the ET interface and the physical water-stress law.

Actual ET = stress x demand, where the stress factor in [0, 1] comes from an ``AbstractET``
(a physical law here, or a network in ``hybridland.learned``) and the bucket then limits the
result to the water in the store (``ColumnModel.step``). The physical law is the classic
piecewise-linear soil-moisture stress (e.g. Laio et al. 2001; the HBV "LP" parameter):
stress = min(S / (p Smax), 1) with p = ``et_threshold``, optionally raised to the power
``et_shape`` (the HBV "BETAET" curve of the differentiable HBV, Feng et al. 2022).
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params
from .runoff import safe_power


STRESS_FLOOR = 1e-6
"""Relative storage below which the shaped stress curve is flat (see ``stress``)."""


class AbstractET(eqx.Module):
    """An ET stress law: ``(relative soil storage, forcing, PET, params) -> stress in [0, 1]``.

    ``parameters`` names the ``PARAMETER_BOUNDS`` entries the law reads beyond those of the
    basic bucket (so that ``ColumnModel.parameter_names`` lists them).
    """

    parameters = ()

    @abc.abstractmethod
    def stress(
        self, soil_rel: FloatArray, forcing: Forcing, pet: FloatArray, params: Params
    ) -> FloatArray:
        """Water-stress factor in [0, 1] multiplying PET."""


class SoilMoistureStressET(AbstractET):
    """stress = clip(S / (et_threshold * Smax), 0, 1), to the power ``et_shape`` if ``shaped``."""

    shaped: bool = eqx.field(static=True, default=False)

    @property
    def parameters(self):
        return ("et_shape",) if self.shaped else ()

    def stress(self, soil_rel, forcing, pet, params):
        linear = jnp.clip(soil_rel / params.et_threshold, 0.0, 1.0)
        if not self.shaped:
            return linear
        # An exponent below 1 has an unbounded slope at 0: below STRESS_FLOOR the curve is
        # held at its value there (at most 0.016 for the smallest exponent, 0.3), which keeps
        # gradients finite; an empty store still gives 0.
        return jnp.where(
            linear > 0.0, safe_power(jnp.maximum(linear, STRESS_FLOOR), params.et_shape), 0.0
        )
