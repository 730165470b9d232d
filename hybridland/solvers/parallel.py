"""Run many columns across several devices: the column axis sharded over a 1-D mesh.

Columns are independent, so sharding them needs no communication: each device runs the
scan over time for its own block of columns. ``simulate_sharded`` pads the column count to a
multiple of the number of devices (repeating the last column), places every per-column array
with a ``NamedSharding`` over the mesh axis ``"column"`` and lets ``jit`` partition the run.

Several hosts: start every process with ``jax.distributed.initialize()`` (coordinator
address, number of processes and process id from the cluster's environment, e.g. SLURM or
the ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` variables),
then build the mesh over ``jax.devices()`` (all hosts' devices) exactly as here; each process
passes the same global arrays (or uses ``jax.make_array_from_process_local_data``).
On one CPU host, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before JAX is
imported) gives N devices for testing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._containers import Forcing, State
from .._params import Params
from ..column import ColumnModel
from .scan import Simulation, prepare_run, simulate

COLUMN_AXIS = "column"


def column_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"column"`` over the given devices (default: all devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (COLUMN_AXIS,))


def _pad_columns(tree, n_columns: int, n_padded: int, shared_time: jax.Array | None):
    """Repeat the last column so the column axis has ``n_padded`` entries."""
    index = np.minimum(np.arange(n_padded), n_columns - 1)

    def pad(x):
        if x is shared_time:
            return x
        return jnp.take(x, index, axis=0)

    return jax.tree_util.tree_map(pad, tree)


def simulate_sharded(
    model: ColumnModel,
    forcing: Forcing,
    params: Params | None = None,
    state0: State | None = None,
    *,
    mesh: Mesh | None = None,
    soil_fraction: float = 0.5,
    **options,
) -> Simulation:
    """``hybridland.simulate`` with the column axis sharded over ``mesh`` (default: all devices).

    ``options`` are ``simulate``'s performance keywords (``outputs``, ``totals``,
    ``chunk_days``, ``checkpoint_every``). Results equal those of ``simulate`` on one device,
    column for column.
    """
    mesh = column_mesh() if mesh is None else mesh
    n_devices = mesh.devices.size
    params, state0 = prepare_run(model, forcing, params, state0, soil_fraction)
    n_columns = forcing.precip.shape[0]
    n_padded = -(-n_columns // n_devices) * n_devices
    shared_doy = forcing.doy if forcing.doy.ndim == 1 else None
    forcing, params, state0 = _pad_columns(
        (forcing, params, state0), n_columns, n_padded, shared_doy
    )

    by_column = NamedSharding(mesh, PartitionSpec(COLUMN_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(x):
        if shared_doy is not None and x is forcing.doy:
            return jax.device_put(x, replicated)
        return jax.device_put(x, by_column)

    forcing, params, state0 = jax.tree_util.tree_map(place, (forcing, params, state0))
    sim = simulate(model, forcing, params, state0, **options)
    if n_padded == n_columns:
        return sim
    return jax.tree_util.tree_map(lambda x: x[:n_columns], sim)
