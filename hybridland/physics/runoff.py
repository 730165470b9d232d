"""Surface runoff partition: the runoff interface and the physical partition law.

A runoff law returns the fraction in [0, 1] of the day's water input (rain + melt) that runs
off at the surface; the rest infiltrates. Saturation excess above capacity and drainage are
handled by the bucket (``ColumnModel.step``). The physical law is the HBV / Xinanjiang-type
contributing-area curve ``(S / Smax) ** shape`` (Bergstrom 1995).
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params


class AbstractRunoff(eqx.Module):
    """A runoff partition law: ``(storage, input, forcing, PET, params) -> [0, 1]``.

    ``parameters`` names the ``PARAMETER_BOUNDS`` entries it reads beyond the basic bucket's.
    """

    parameters = ()

    @abc.abstractmethod
    def surface_fraction(
        self,
        soil_rel: FloatArray,
        water_input: FloatArray,
        forcing: Forcing,
        pet: FloatArray,
        params: Params,
    ) -> FloatArray:
        """Fraction of the water input (rain + melt) that becomes surface runoff, in [0, 1]."""


def safe_power(x: FloatArray, exponent: FloatArray) -> FloatArray:
    """x ** exponent for x in [0, 1], exponent > 0, with finite gradients at x = 0 (the
    derivative in x is taken as 0 there, the limit for exponents above 1)."""
    positive = x > 0.0
    safe_x = jnp.where(positive, x, 1.0)
    return jnp.where(positive, jnp.exp(exponent * jnp.log(safe_x)), 0.0)


class PowerLawRunoff(AbstractRunoff):
    """fraction = (S / Smax) ** runoff_shape."""

    def surface_fraction(self, soil_rel, water_input, forcing, pet, params):
        return safe_power(jnp.clip(soil_rel, 0.0, 1.0), params.runoff_shape)
