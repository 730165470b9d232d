"""Run many columns in chunks through one compiled program, timed, with a progress bar.

``run_timed`` is how the command line and the benchmarks run a whole dataset: it compiles
``simulate`` ahead of time (so the compile time is reported apart from the run time), then runs
the columns in chunks of ``chunk_columns`` (bounded memory, a progress bar over the chunks), and
returns numpy results.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import equinox as eqx
import jax
import numpy as np
from tqdm.auto import tqdm

from .._containers import Forcing
from .._params import Params
from ..column import ColumnModel
from .scan import check_forcing, simulate


@dataclasses.dataclass
class TimedRun:
    """A simulation (numpy leaves, ``[column, time]``; or whatever ``run_timed``'s ``function``
    returns, e.g. a runoff array) with its compile and run wall times (s)."""

    sim: object
    compile_s: float
    run_s: float

    @property
    def max_abs_step_residual(self) -> float:
        return float(np.max(np.abs(self.sim.fluxes.water_residual)))

    @property
    def max_abs_cumulative_residual(self) -> float:
        return float(np.max(np.abs(self.sim.cumulative_water_residual)))


def column_slice(forcing: Forcing, columns: slice | np.ndarray) -> Forcing:
    """The forcing of some columns (a shared ``[time]`` ``doy`` stays whole)."""

    def take(a):
        return None if a is None else a[columns]

    return Forcing(
        precip=forcing.precip[columns],
        t_min=forcing.t_min[columns],
        t_max=forcing.t_max[columns],
        doy=forcing.doy if forcing.doy.ndim == 1 else forcing.doy[columns],
        lat=forcing.lat[columns],
        pet=take(forcing.pet),
        net_radiation=take(forcing.net_radiation),
        ground_heat=take(forcing.ground_heat),
        attributes=take(forcing.attributes),
    )


def run_timed(
    model,
    forcing: Forcing,
    params: Params | None = None,
    *,
    chunk_columns: int | None = None,
    progress: bool | None = None,
    description: str = "columns",
    function: Callable = simulate,
    reduce: Callable | None = None,
) -> TimedRun:
    """Compile ``function`` (``simulate``, or another ``(model, forcing, params)`` run such as
    ``simulate_runoff``) ahead of time, then run it; time the two separately.

    ``params`` are per column (``[column]`` leaves) or shared (scalars); default
    ``Params.default``. With ``chunk_columns`` the columns run in chunks of that size through one
    compiled program (the last chunk is padded by repeating its last column, then cut), with a
    progress bar over the chunks when there is more than one (``progress=None``: only when the
    output is a terminal). Without it all columns run in one call, the fastest on CPU
    when they fit in memory. ``reduce(piece, first)``, if given, maps each chunk's output
    (host arrays of the columns ``first .. first + len``) before the pieces are joined, so what
    is kept of every chunk is only what the caller needs (e.g. a mean over columns).
    """
    if chunk_columns is not None and (isinstance(chunk_columns, bool) or
                                      not isinstance(chunk_columns, (int, np.integer))
                                      or chunk_columns < 1):
        raise ValueError(f"chunk_columns must be a positive whole number of columns (or None: "
                         f"all at once), got {chunk_columns!r}.")
    if isinstance(model, ColumnModel):
        # here, where the arrays are concrete: inside the compiled run the values are unknown
        # (negative or NaN precipitation ran silently)
        check_forcing(model, forcing)
    n = forcing.precip.shape[0]
    dtype = forcing.precip.dtype
    if params is None:
        params = Params.default(dtype=dtype)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype), params).broadcast(n)
    if isinstance(params, Params):
        params.check_bounds()
    size = n if not chunk_columns or chunk_columns >= n else int(chunk_columns)
    starts = list(range(0, n, size))

    def chunk(start: int):
        if size == n:
            return forcing, params
        index = np.minimum(np.arange(start, start + size), n - 1)  # pad with the last column
        return column_slice(forcing, index), jax.tree_util.tree_map(lambda a: a[index], params)

    run = eqx.filter_jit(function)
    t0 = time.perf_counter()
    compiled = run.lower(model, *chunk(0)).compile()
    compile_s = time.perf_counter() - t0

    pieces, run_s = [], 0.0
    disable = len(starts) == 1 or (None if progress is None else not progress)
    for start in tqdm(starts, desc=description, unit="chunk", disable=disable):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(model, *chunk(start)))
        run_s += time.perf_counter() - t0
        keep = min(size, n - start)
        piece = jax.tree_util.tree_map(lambda a, keep=keep: np.asarray(a)[:keep], out)
        pieces.append(piece if reduce is None else reduce(piece, start))
    sim = (
        pieces[0]
        if len(pieces) == 1
        else jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *pieces)
    )
    return TimedRun(sim=sim, compile_s=compile_s, run_s=run_s)
