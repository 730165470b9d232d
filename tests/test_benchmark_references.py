"""The benchmark references (``benchmarks/_references.py``) reproduce hybridland's outputs, so
``benchmarks/throughput.py`` compares implementations of the same model. NumPy is always
checked here; numba and PyTorch (the optional ``bench`` extra) are checked by the benchmark
itself against hybridland before each of their cases is timed (``verify_reference``)."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybridland as hl
from columns import forcing_from_arrays, make_model, synthetic_climate

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import _references as ref  # noqa: E402


def _case(kind, dtype):
    """hybridland's runoff, ET and soil on 8 columns x 200 days, and the reference inputs."""
    arrays = synthetic_climate(np.random.default_rng(0), 8, 200)
    forcing = forcing_from_arrays(*arrays[:4], dtype=dtype)
    params = hl.Params.default(8, dtype=dtype, theta_cap=jnp.linspace(0.2, 0.5, 8))
    model = make_model(kind, seed=1)
    sim = hl.simulate(model, forcing, params)
    s0 = model.init_state(params)
    inputs = (
        {k: np.asarray(getattr(forcing, k)) for k in ("precip", "t_min", "t_max", "pet")},
        {k: np.asarray(getattr(params, k)) for k in ref.PARAM_NAMES},
        [np.asarray(x) for x in (s0.swe, s0.soil, s0.groundwater)],
        ref.export_networks(model),
    )
    expected = {"runoff": sim.fluxes.runoff, "et": sim.fluxes.et, "soil": sim.states.soil}
    return inputs, {k: np.asarray(v) for k, v in expected.items()}


def _check(forward, kind, dtype, rtol):
    inputs, expected = _case(kind, dtype)
    got = forward(*inputs)
    for name, value in expected.items():
        scale = max(float(np.abs(value).max()), 1.0)
        np.testing.assert_allclose(got[name], value, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("kind", ["physics", "hybrid"])
def test_numpy_reference_matches(kind):
    with jax.enable_x64(True):
        _check(ref.numpy_forward, kind, jnp.float64, 1e-9)
    _check(ref.numpy_forward, kind, jnp.float32, 1e-4)


def test_throughput_records_where_each_case_ran_and_keeps_earlier_records(tmp_path):
    # benchmarks/throughput.py on a tiny case: each record names its backend and device
    # (hybridland on JAX's default device, the references on the CPU), the ratio is to the
    # reference of the same run, and a JSON that already holds records keeps them
    import throughput

    out = tmp_path / "records.json"
    out.write_text('[{"impl": "earlier"}]')
    argv = ["--columns", "8", "--days", "30", "--repeats", "1", "--models", "physics",
            "--modes", "forward", "--impls", "hybridland", "numpy", "--json", str(out)]
    assert throughput.main(argv) == 0
    earlier, ours, ref_record = json.loads(out.read_text())
    assert earlier == {"impl": "earlier"}
    assert (ours["impl"], ref_record["impl"]) == ("hybridland", "numpy")
    assert ours["backend"] == jax.default_backend()
    assert ours["device"] == jax.devices()[0].device_kind
    assert ref_record["backend"] == "cpu" and ref_record["verified_max_rel_diff"] < 1e-3
    # the host's copy bandwidth (and the memory bound from it) only beside CPU figures
    assert ("copy_bandwidth_bytes_per_s" in ours) == (ours["backend"] == "cpu")
    assert ours["ratio_vs_numpy"] == pytest.approx(
        ours["colsteps_per_s"] / ref_record["colsteps_per_s"])
