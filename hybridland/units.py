"""Internal units of hybridland, stated once.

Inside the model every water store is a depth in **mm**, every water flux a rate in
**mm day-1** over a fixed daily step (``DT_DAYS = 1``), temperatures are **degC**, energy
fluxes are daily means in **W m-2**, latitude is in **degrees north**. Conversions happen only
at the I/O edge (readers and writers), using the constants below.
"""

DT_DAYS = 1.0
"""Model time step in days. Every flux in mm day-1 equals the depth moved in one step."""

SECONDS_PER_DAY = 86400.0

LATENT_HEAT_VAPORISATION = 2.45e6
"""lambda, J kg-1 (FAO-56 value at about 20 degC)."""

WATER_DENSITY = 1000.0
"""kg m-3: 1 mm of water over 1 m2 is 1 kg."""

W_M2_PER_MM_DAY = LATENT_HEAT_VAPORISATION / SECONDS_PER_DAY
"""Latent heat flux (W m-2) carried by an evaporation rate of 1 mm day-1 (about 28.36)."""

LATENT_HEAT_FUSION = 0.334e6
"""L_f, J kg-1: heat that melts 1 kg of ice at 0 degC."""

W_M2_PER_MM_DAY_MELT = LATENT_HEAT_FUSION / SECONDS_PER_DAY
"""Heat flux (W m-2) taken up by a snowmelt rate of 1 mm day-1 (about 3.87)."""

MJ_M2_DAY_PER_W_M2 = SECONDS_PER_DAY / 1e6
"""Daily energy (MJ m-2 day-1) carried by a mean flux of 1 W m-2 (0.0864)."""

MM_PER_M = 1000.0

SOLAR_CONSTANT = 0.0820
"""G_sc, MJ m-2 min-1 (FAO-56 eq. 21)."""
