"""hybridland: closure-exact hybrid physics-ML land column models in JAX."""

from . import io as io, learned as learned, metrics as metrics, physics as physics, units as units
from ._containers import (
    STORE_NAMES as STORE_NAMES,
    Fluxes as Fluxes,
    Forcing as Forcing,
    State as State,
)
from ._params import PARAMETER_BOUNDS as PARAMETER_BOUNDS, Bound as Bound, Params as Params
from .io import (
    ForcingDataError as ForcingDataError,
    load_mopex as load_mopex,
    simulation_to_dataset as simulation_to_dataset,
    write_netcdf as write_netcdf,
)
from .learned import (
    DailyParameterLSTM as DailyParameterLSTM,
    MLPRunoff as MLPRunoff,
    MLPStressET as MLPStressET,
)
from .column import ColumnModel as ColumnModel, build_model as build_model
from .physics import (
    AbstractET as AbstractET,
    AbstractPET as AbstractPET,
    AbstractRunoff as AbstractRunoff,
    GivenPET as GivenPET,
    HargreavesPET as HargreavesPET,
    OudinPET as OudinPET,
    PowerLawRunoff as PowerLawRunoff,
    PriestleyTaylorPET as PriestleyTaylorPET,
    SoilMoistureStressET as SoilMoistureStressET,
)
from .solvers import (
    Simulation as Simulation,
    column_mesh as column_mesh,
    run_column as run_column,
    simulate as simulate,
    simulate_grid as simulate_grid,
    simulate_sharded as simulate_sharded,
)
from .synthetic import synthetic_twin as synthetic_twin

__version__ = "0.1.0"


def __getattr__(name: str):
    from . import solvers

    if name in solvers._ODE:  # the ODE path, imported on first use (see hybridland.solvers)
        return getattr(solvers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    from . import solvers

    return sorted([*globals(), *solvers._ODE])
