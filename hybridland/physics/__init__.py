"""Physical process laws, one process per module, each a pure JAX function or final module."""

from .bucket import recession as recession, spill as spill, take as take
from .energy import (
    energy_limit as energy_limit,
    ground_heat_flux as ground_heat_flux,
    partition as energy_partition,
)
from .evaporation import AbstractET as AbstractET, SoilMoistureStressET as SoilMoistureStressET
from .pet import (
    PET_LAWS as PET_LAWS,
    AbstractPET as AbstractPET,
    GivenPET as GivenPET,
    HargreavesPET as HargreavesPET,
    OudinPET as OudinPET,
    PriestleyTaylorPET as PriestleyTaylorPET,
    extraterrestrial_radiation as extraterrestrial_radiation,
)
from .runoff import AbstractRunoff as AbstractRunoff, PowerLawRunoff as PowerLawRunoff
from .snow import (
    melt as melt,
    partition_precipitation as partition_precipitation,
    snow_fraction as snow_fraction,
)
