"""Precipitation phase and degree-day snowmelt.

Phase: a smooth logistic partition of precipitation by daily mean air temperature around
``t_snow`` (half snow, half rain there), of width ``SNOW_TRANSITION_WIDTH`` (e.g. the
logistic form used in many conceptual models; Kienzle 2008 gives a review of such curves).
Melt: the degree-day method, potential melt ``ddf * max(T - t_melt, 0)``, limited to the
snow actually present (Hock 2003).
"""

import jax
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params
from .bucket import take

SNOW_TRANSITION_WIDTH = 1.0
"""degC: scale of the logistic rain-snow transition (90 % snow at t_snow - 2.2 degC)."""


def snow_fraction(t_mean: FloatArray, params: Params) -> FloatArray:
    """Fraction of precipitation falling as snow, in [0, 1]."""
    return jax.nn.sigmoid((params.t_snow - t_mean) / SNOW_TRANSITION_WIDTH)


def partition_precipitation(forcing: Forcing, params: Params) -> tuple[FloatArray, FloatArray]:
    """Split precipitation (mm day-1) into ``(rainfall, snowfall)``; they sum exactly to P."""
    precip = forcing.precip
    # snowfall <= precip, so rain = precip - snowfall and snowfall = precip - rain are exact.
    _, snowfall = take(precip, precip * snow_fraction(forcing.t_mean, params))
    rainfall = precip - snowfall
    return rainfall, snowfall


def potential_melt(t_mean: FloatArray, params: Params) -> FloatArray:
    """Degree-day melt potential, mm day-1."""
    return params.ddf * jnp.maximum(t_mean - params.t_melt, 0.0)


def melt(swe: FloatArray, t_mean: FloatArray, params: Params, dt: float):
    """Melt the snowpack: returns ``(new_swe, melt_depth)``, melt <= swe."""
    return take(swe, potential_melt(t_mean, params) * dt)
