"""Surface energy partition where net radiation is known.

Available energy ``Rn - G`` is shared between latent heat ``lambda E`` (set by the water
balance), the heat that melts snow ``Q_M = L_f M`` (set by the degree-day melt ``M``) and
sensible heat ``H``, which takes the remainder: ``H = Rn - G - lambda E - Q_M``. So
``Rn = lambda E + H + G + Q_M`` holds by construction; the residual is still computed and
reported. Evaporation demand is capped by the available energy (``energy_limit``), so lambda E
never exceeds ``max(Rn - G, 0)``; melt is not (a degree-day melt is driven by air
temperature, and on a warm day with little radiation the air supplies its heat: ``H < 0``).
"""

import jax.numpy as jnp

from .. import units
from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params


def ground_heat_flux(forcing: Forcing, params: Params) -> FloatArray:
    """G, W m-2: measured when the forcing has it, else a fraction of net radiation."""
    if forcing.ground_heat is not None:
        return forcing.ground_heat
    return params.ground_heat_fraction * forcing.net_radiation


def energy_limit(forcing: Forcing, params: Params) -> FloatArray:
    """Largest evaporation (mm day-1) that the available energy can supply (>= 0)."""
    available = forcing.net_radiation - ground_heat_flux(forcing, params)
    return jnp.maximum(available, 0.0) / units.W_M2_PER_MM_DAY


def partition(forcing: Forcing, params: Params, et: FloatArray, melt: FloatArray):
    """Energy fluxes (W m-2) for an actual ET and a snowmelt (both mm day-1).

    Returns ``(latent_heat, sensible_heat, ground_heat, melt_heat, residual)`` with
    ``residual = Rn - lambda E - H - G - Q_M``.
    """
    rn = forcing.net_radiation
    g = ground_heat_flux(forcing, params)
    le = et * units.W_M2_PER_MM_DAY
    qm = melt * units.W_M2_PER_MM_DAY_MELT
    h = rn - g - le - qm
    return le, h, g, qm, rn - le - h - g - qm
