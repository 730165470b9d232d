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
