"""Solvers and scale-out: run a column model over days and columns.

``scan`` (``simulate``: ``lax.scan`` over days, ``vmap`` over columns, jit), ``ode`` (the basic
bucket as an ODE with diffrax), ``chunked`` (many columns through one compiled program, timed,
with a progress bar), ``parallel`` (columns sharded over devices) and ``grid`` (xarray/dask
datasets larger than memory).
"""

from .chunked import column_slice as column_slice, run_timed as run_timed
from .grid import simulate_grid as simulate_grid
from .parallel import column_mesh as column_mesh, simulate_sharded as simulate_sharded
from .scan import (
    Simulation as Simulation,
    check_forcing as check_forcing,
    daily_series as daily_series,
    integrate_days as integrate_days,
    prepare_run as prepare_run,
    run_column as run_column,
    simulate as simulate,
    simulate_runoff as simulate_runoff,
    vmap_columns as vmap_columns,
    with_daily as with_daily,
)


_ODE = ("run_column_ode", "simulate_ode")
"""Imported on first use: the ODE path needs diffrax, whose import costs about a second that
every daily-scan run and every command line would otherwise pay for nothing."""


def __getattr__(name: str):
    if name in _ODE:
        from . import ode

        return getattr(ode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ODE])
