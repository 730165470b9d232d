"""Potential evapotranspiration (PET) laws, mm day-1.

Each law is a final ``eqx.Module`` implementing ``AbstractPET``; all are scaled by the bounded
``pet_coefficient`` parameter and are never negative.

- ``GivenPET``: the ``pet`` series of the forcing (e.g. MOPEX's climatological PE).
- ``PriestleyTaylorPET``: alpha * Delta / (Delta + gamma) * (Rn - G) / lambda
  (Priestley & Taylor 1972; Delta and gamma as in FAO-56, Allen et al. 1998).
- ``HargreavesPET``: 0.0023 Ra (T + 17.8) sqrt(Tmax - Tmin) (Hargreaves & Samani 1985).
- ``OudinPET``: Ra / (lambda rho) (T + 5) / 100 where T > -5 degC (Oudin et al. 2005).

Ra is the extraterrestrial radiation from latitude and day of year (FAO-56 eqs. 21-25).
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import Params
from .energy import ground_heat_flux


class AbstractPET(eqx.Module):
    """A PET law: ``(forcing_t, params) -> PET`` in mm day-1, >= 0."""

    @abc.abstractmethod
    def demand(self, forcing: Forcing, params: Params) -> FloatArray:
        """Unscaled PET, mm day-1."""

    requires: eqx.AbstractClassVar[tuple[str, ...]]
    """Forcing fields this law needs (checked before a run starts)."""

    def __call__(self, forcing: Forcing, params: Params) -> FloatArray:
        return jnp.maximum(params.pet_coefficient * self.demand(forcing, params), 0.0)


def extraterrestrial_radiation(lat_deg: FloatArray, doy: FloatArray) -> FloatArray:
    """Daily extraterrestrial radiation Ra, MJ m-2 day-1 (FAO-56 eq. 21)."""
    phi = jnp.deg2rad(lat_deg)
    dr = 1.0 + 0.033 * jnp.cos(2.0 * jnp.pi * doy / 365.0)
    decl = 0.409 * jnp.sin(2.0 * jnp.pi * doy / 365.0 - 1.39)
    # Clip the argument so polar day/night give ws = pi or 0 instead of NaN.
    ws = jnp.arccos(jnp.clip(-jnp.tan(phi) * jnp.tan(decl), -1.0, 1.0))
    return (
        (24.0 * 60.0 / jnp.pi)
        * units.SOLAR_CONSTANT
        * dr
        * (ws * jnp.sin(phi) * jnp.sin(decl) + jnp.cos(phi) * jnp.cos(decl) * jnp.sin(ws))
    )


def _mj_to_mm(energy_mj: FloatArray) -> FloatArray:
    """Equivalent evaporation (mm day-1) of an energy (MJ m-2 day-1)."""
    return energy_mj / (units.LATENT_HEAT_VAPORISATION / 1e6)


def _safe_sqrt(x: FloatArray) -> FloatArray:
    """sqrt(max(x, 0)) with a finite gradient at 0."""
    positive = x > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


class GivenPET(AbstractPET):
    """PET read from the forcing (``forcing.pet``)."""

    requires = ("pet",)

    def demand(self, forcing, params):
        return forcing.pet


class HargreavesPET(AbstractPET):
    """Hargreaves-Samani PET from daily minimum/maximum temperature, latitude and day of year."""

    requires = ("t_min", "t_max", "doy", "lat")

    def demand(self, forcing, params):
        ra = extraterrestrial_radiation(forcing.lat, forcing.doy)
        trange = _safe_sqrt(forcing.t_max - forcing.t_min)
        return 0.0023 * _mj_to_mm(ra) * jnp.maximum(forcing.t_mean + 17.8, 0.0) * trange


class OudinPET(AbstractPET):
    """Oudin PET from daily mean temperature, latitude and day of year."""

    requires = ("t_min", "t_max", "doy", "lat")

    def demand(self, forcing, params):
        ra = extraterrestrial_radiation(forcing.lat, forcing.doy)
        return _mj_to_mm(ra) * jnp.maximum(forcing.t_mean + 5.0, 0.0) / 100.0


class PriestleyTaylorPET(AbstractPET):
    """Priestley-Taylor PET from net radiation, ground heat and mean air temperature."""

    alpha: float = eqx.field(static=True, default=1.26)
    psychrometric_constant: float = eqx.field(static=True, default=0.066)
    """gamma, kPa degC-1 (FAO-56 at about sea level)."""

    requires = ("net_radiation",)

    def demand(self, forcing, params):
        t = forcing.t_mean
        es = 0.6108 * jnp.exp(17.27 * t / (t + 237.3))
        delta = 4098.0 * es / (t + 237.3) ** 2
        available = forcing.net_radiation - ground_heat_flux(forcing, params)
        weight = delta / (delta + self.psychrometric_constant)
        return self.alpha * weight * available / units.W_M2_PER_MM_DAY


PET_LAWS: dict[str, type[AbstractPET]] = {
    "given": GivenPET,
    "hargreaves": HargreavesPET,
    "oudin": OudinPET,
    "priestley_taylor": PriestleyTaylorPET,
}
"""Registry of PET laws by configuration name."""
