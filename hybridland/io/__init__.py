"""Input and output at the edge of hybridland: validated readers, CF-NetCDF writers, data paths.

Inside the model everything is mm, mm day-1, degC and W m-2 (``hybridland.units``); this package
is where files in other layouts and units meet it.
"""

from ._report import (
    BasinNote as BasinNote,
    DataAdjustmentWarning as DataAdjustmentWarning,
    ForcingDataError as ForcingDataError,
    LoadReport as LoadReport,
)
from .camels import load_camels as load_camels
from .canonical import (
    CANONICAL_VARIABLES as CANONICAL_VARIABLES,
    VariableSpec as VariableSpec,
    from_cf as from_cf,
    mopex_to_canonical as mopex_to_canonical,
    target as target,
    to_forcing as to_forcing,
    validate as validate,
)
from .fluxnet import load_fluxnet as load_fluxnet
from .ismn import load_ismn as load_ismn
from .mopex import (
    PET_SOURCES as PET_SOURCES,
    MopexForcing as MopexForcing,
    forcing_from_dataset as forcing_from_dataset,
    load_mopex as load_mopex,
)
from .output import (
    OUTPUT_VARIABLES as OUTPUT_VARIABLES,
    simulation_to_dataset as simulation_to_dataset,
    water_budget_terms as water_budget_terms,
    write_netcdf as write_netcdf,
)
from .paths import data_dir as data_dir, mopex_path as mopex_path
from .spotpy_data import (
    load_fulda as load_fulda,
    load_hymod_catchment as load_hymod_catchment,
    load_schwingbach as load_schwingbach,
)
