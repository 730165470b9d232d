"""Run a column model over time and columns: ``lax.scan`` over days, ``vmap`` over columns.

``simulate`` is the one entry point; it jit-compiles the whole run and returns a
``Simulation`` with the end-of-step states, the fluxes and the closure diagnostics. Arrays
are column-major at the edges (``[column, time]``), float32 unless float64 is asked for.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._containers import Fluxes, Forcing, State
from ._params import Params
from .model import ColumnModel


class Simulation(eqx.Module):
    """Result of ``simulate``; every series is ``[column, time]`` (``[time]`` for one column).

    - ``states``: end-of-step stores (mm).
    - ``fluxes``: per-step fluxes (mm day-1, W m-2) including per-step residuals.
    - ``initial_state``, ``final_state``: stores before the first and after the last step.
    - ``cumulative_water_residual``: sum over steps k <= t of the per-step residual, i.e.
      (S_t - S_0) - sum_{k<=t} (P - E - Q), mm, accumulated by compensated (Kahan) summation
      so the figure measures the model, not the bookkeeping.
    """

    states: State
    fluxes: Fluxes
    initial_state: State
    final_state: State
    cumulative_water_residual: jax.Array

    @property
    def max_abs_water_residual(self) -> jax.Array:
        """Largest per-step |Delta S - (P - E - Q)|, mm."""
        return jnp.max(jnp.abs(self.fluxes.water_residual))

    @property
    def max_abs_energy_residual(self) -> jax.Array | None:
        """Largest per-step |Rn - lambda E - H - G|, W m-2 (None without net radiation)."""
        if self.fluxes.energy_residual is None:
            return None
        return jnp.max(jnp.abs(self.fluxes.energy_residual))


def _kahan_add(total, compensation, value):
    y = value - compensation
    t = total + y
    return t, (t - total) - y


def integrate_days(advance, forcing: Forcing, state0: State) -> Simulation:
    """Scan ``advance(state, forcing_t) -> (state, fluxes)`` over one column's days.

    The one time loop of every solver: it slices the forcing day by day (static per-column
    parts re-attached), stacks states and fluxes, and accumulates the closure residual.
    """
    series, static = forcing.split_static()
    zero = jnp.zeros_like(state0.soil)

    def body(carry, forcing_t):
        state, cumulative, compensation = carry
        state, fluxes = advance(state, forcing_t.with_static(static))
        cumulative, compensation = _kahan_add(cumulative, compensation, fluxes.water_residual)
        return (state, cumulative, compensation), (state, fluxes, cumulative - compensation)

    (final, _, _), (states, fluxes, cumulative) = jax.lax.scan(body, (state0, zero, zero), series)
    return Simulation(
        states=states,
        fluxes=fluxes,
        initial_state=state0,
        final_state=final,
        cumulative_water_residual=cumulative,
    )


def run_column(
    model: ColumnModel, forcing: Forcing, params: Params, state0: State
) -> Simulation:
    """Simulate one column: ``forcing`` series ``[time]``, scalar params and state."""
    return integrate_days(lambda state, f: model.step(state, f, params), forcing, state0)


def _forcing_axes(forcing: Forcing) -> Forcing:
    """vmap axes for a batched forcing: columns lead every array except a shared ``[time]`` doy."""
    axes = jax.tree_util.tree_map(lambda _: 0, forcing)
    if forcing.doy.ndim == 1 and forcing.precip.ndim == 2:
        axes = eqx.tree_at(lambda f: f.doy, axes, None)
    return axes


def vmap_columns(run_one, model, forcing: Forcing, params: Params, state0: State):
    """Map ``run_one(model, forcing, params, state0)`` over the leading column axis."""
    return eqx.filter_vmap(run_one, in_axes=(None, _forcing_axes(forcing), 0, 0))(
        model, forcing, params, state0
    )


@eqx.filter_jit
def _simulate_batched(model, forcing, params, state0):
    return vmap_columns(run_column, model, forcing, params, state0)


_SERIES = ("precip", "t_min", "t_max", "pet", "net_radiation", "ground_heat")


def check_forcing(model: ColumnModel, forcing: Forcing) -> None:
    """Raise a ValueError naming the field if ``forcing`` cannot drive ``model`` (shapes, inputs).

    Values (NaN, negative precipitation) are checked by the readers at the I/O edge, where the
    column names are known.
    """
    shape = forcing.precip.shape
    if len(shape) != 2:
        raise ValueError(
            f"forcing.precip must be [column, time], got shape {shape}; "
            "use run_column for a single column."
        )
    for name in _SERIES:
        value = getattr(forcing, name)
        if value is not None and value.shape != shape:
            raise ValueError(
                f"forcing.{name} has shape {value.shape} but forcing.precip has {shape}: every "
                "series must be [column, time] on the same time axis; align or trim the inputs."
            )
    if forcing.doy.shape not in (shape, shape[-1:]):
        raise ValueError(
            f"forcing.doy has shape {forcing.doy.shape}; expected [time] = {shape[-1:]} or {shape}."
        )
    if forcing.lat.shape != shape[:1]:
        raise ValueError(f"forcing.lat has shape {forcing.lat.shape}; expected [column] = {shape[:1]}.")
    if forcing.attributes is not None and forcing.attributes.shape[:1] != shape[:1]:
        raise ValueError(
            f"forcing.attributes has shape {forcing.attributes.shape}; expected "
            f"[column, n_attributes] with {shape[0]} columns."
        )
    for name in type(model.pet).requires:
        if getattr(forcing, name) is None:
            raise ValueError(
                f"The model's PET law {type(model.pet).__name__} needs forcing.{name}, which is "
                "missing; provide it or choose a PET law that derives PET from temperature "
                "(HargreavesPET, OudinPET)."
            )


def simulate(
    model: ColumnModel,
    forcing: Forcing,
    params: Params | None = None,
    state0: State | None = None,
    *,
    soil_fraction: float = 0.5,
) -> Simulation:
    """Simulate many columns (``forcing`` series ``[column, time]``) under ``jit``.

    ``params`` defaults to ``Params.default`` for every column; a scalar parameter is shared by
    all columns. ``state0`` defaults to ``model.init_state(params, soil_fraction)``. The dtype
    of the run is the dtype of ``forcing.precip`` (float64 needs ``jax_enable_x64``).
    """
    params, state0 = prepare_run(model, forcing, params, state0, soil_fraction)
    return _simulate_batched(model, forcing, params, state0)


def prepare_run(
    model: ColumnModel,
    forcing: Forcing,
    params: Params | None,
    state0: State | None,
    soil_fraction: float,
) -> tuple[Params, State]:
    """Check the forcing and give every column parameters and an initial state in the run's
    dtype (that of ``forcing.precip``)."""
    check_forcing(model, forcing)
    n_columns = forcing.precip.shape[0]
    dtype = forcing.precip.dtype
    if params is None:
        params = Params.default(n_columns, dtype=dtype)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params).broadcast(n_columns)
    if state0 is None:
        state0 = model.init_state(params, soil_fraction)
    state0 = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(jnp.asarray(x, dtype), (n_columns,)), state0
    )
    return params, state0
