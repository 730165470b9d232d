"""Sharding the column axis over 4 host CPU devices gives the same results as one device, to
float32 rounding: each device compiles a program for its own number of columns, which XLA may
vectorise differently (with jax 0.10 on some CPUs a few values differ in their last bits, and
a year of daily steps carries such differences to ~1e-6 relative).

The device count must be set before JAX starts, so the check runs in a fresh interpreter.
"""

import os
import textwrap
from pathlib import Path

from runs import fresh_python

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, {tests!r})
    import hybridland as hl
    from hybridland.solvers import column_mesh, simulate_sharded
    from columns import forcing_from_arrays, make_model, synthetic_climate

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    for n_columns in (8, 7):  # divisible, and padded
        arrays = synthetic_climate(rng, n_columns, 365)
        forcing = forcing_from_arrays(*arrays, dtype=jnp.float32)
        model = make_model("hybrid", seed=1)
        params = hl.Params.default(n_columns, theta_cap=jnp.linspace(0.2, 0.5, n_columns))
        one = hl.simulate(model, forcing, params)
        sharded = simulate_sharded(model, forcing, params, mesh=column_mesh())
        assert sharded.fluxes.runoff.shape == (n_columns, 365)
        devices = {{d for s in sharded.fluxes.runoff.addressable_shards for d in [s.device]}}
        leaves = jax.tree_util.tree_leaves
        for a, b in zip(leaves(one), leaves(sharded), strict=True):
            # atol: the closure residuals are themselves float32 rounding noise (~1e-5 mm)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=5e-5)
        # The performance keywords pass through: only runoff kept, totals per column.
        few = simulate_sharded(model, forcing, params, mesh=column_mesh(), outputs=("runoff",),
                               totals=("et",), chunk_days=100)
        np.testing.assert_allclose(np.asarray(few.fluxes.runoff), np.asarray(one.fluxes.runoff),
                                   rtol=1e-5, atol=1e-5)
        assert few.fluxes.et is None and few.totals["et"].shape == (n_columns,)
        print("columns", n_columns, "devices used", len(devices))
    """
)


def test_four_host_devices_match_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    tests = str(Path(__file__).parent)
    result = fresh_python(SCRIPT.format(tests=tests), env=env)
    assert "columns 8 devices used 4" in result.stdout, result.stdout
    assert "columns 7 devices used 4" in result.stdout, result.stdout
