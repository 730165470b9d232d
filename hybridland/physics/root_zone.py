"""Climate-derived root-zone storage: the water a vegetation needs to bridge its dry spells.

The mass-curve method (Gao et al. 2014, GRL 41, doi:10.1002/2014GL061668) sizes the root zone
from the largest cumulative deficit between the vegetation's water use and the water it
receives. Here the water use needs no streamflow: its long-term mean is the Budyko estimate of
actual evaporation (Fu's curve), spread over the days in proportion to potential evaporation,

    E_a = P_mean * F(PET_mean / P_mean),  F(phi) = 1 + phi - (1 + phi**w) ** (1 / w)
    e_t = E_a * PET_t / PET_mean,
    D_t = max(0, D_{t-1} + e_t - P_t),     S_r = mean over years of max_t D_t

so a basin with a long dry season (or an arid one) gets a large storage and a basin whose
rain keeps pace with its evaporation a small one, from its own forcing alone. These are plain
numpy statistics of a basin's forcing (used as static attributes), not part of a simulation.
"""

from __future__ import annotations

import numpy as np

FU_OMEGA = 2.6
"""Fu's parameter w of the Budyko curve (2.6: the curve Budyko drew through world basins)."""


def budyko_fu(aridity, omega: float = FU_OMEGA):
    """Evaporative index E/P of Fu's Budyko curve for aridity PET/P (in [0, min(1, PET/P)])."""
    phi = np.asarray(aridity, np.float64)
    return 1.0 + phi - (1.0 + phi**omega) ** (1.0 / omega)


def mass_curve_storage(precip, pet, days_per_year: int = 365, omega: float = FU_OMEGA):
    """Root-zone storage capacity ``S_r`` (mm) of each basin from daily ``precip`` and ``pet``
    (mm day-1, ``[basin, time]`` or ``[time]``): the mean over consecutive ``days_per_year``
    blocks of the largest cumulative deficit of Budyko water use against precipitation (see
    the module docstring). A series shorter than a year counts as one block. NaN days are
    left out of the means and add nothing to the deficit."""
    p = np.atleast_2d(np.asarray(precip, np.float64))
    e = np.atleast_2d(np.asarray(pet, np.float64))
    if p.shape != e.shape:
        raise ValueError(f"precip {p.shape} and pet {e.shape} must have the same shape.")
    p_mean, e_mean = np.nanmean(p, axis=1), np.nanmean(e, axis=1)
    use = p_mean * budyko_fu(e_mean / np.maximum(p_mean, 1e-9), omega)
    demand = use[:, None] * e / np.maximum(e_mean, 1e-9)[:, None]
    step = np.nan_to_num(demand - p)
    deficit = np.zeros_like(step)
    d = np.zeros(step.shape[0])
    for t in range(step.shape[1]):
        d = np.maximum(0.0, d + step[:, t])
        deficit[:, t] = d
    years = step.shape[1] // days_per_year
    if years == 0:
        storage = deficit.max(axis=1)
    else:
        blocks = deficit[:, : years * days_per_year].reshape(len(deficit), years, days_per_year)
        storage = blocks.max(axis=2).mean(axis=1)
    return storage if np.ndim(precip) > 1 else storage[0]
