"""Bounded parameters: ranges, transforms and clear errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import hybridland as hl
from columns import fractions, params_from_fractions


@given(fracs=fractions)
def test_unconstrained_round_trip(fracs):
    p = params_from_fractions([0.001 + 0.998 * f for f in fracs], jnp.float32)
    back = p.to_unconstrained().from_unconstrained()
    for name, bound in hl.PARAMETER_BOUNDS.items():
        np.testing.assert_allclose(
            float(getattr(back, name)), float(getattr(p, name)), atol=1e-4 * (bound.high - bound.low)
        )


def test_any_unconstrained_value_maps_into_range():
    u = hl.Params(**{n: jnp.asarray([-1e4, -3.0, 0.0, 3.0, 1e4]) for n in hl.PARAMETER_BOUNDS})
    p = u.from_unconstrained()
    p.check_bounds()
    assert float(p.soil_capacity.min()) > 0.0


def test_check_bounds_names_parameter_and_range():
    p = hl.Params.default(3, theta_cap=jnp.asarray([0.3, 0.9, 0.2]))
    with pytest.raises(ValueError, match=r"theta_cap spans .* outside its range \[0.15, 0.55\]"):
        p.check_bounds()


def test_unknown_override_is_an_error():
    with pytest.raises(ValueError, match="Unknown parameter"):
        hl.Params.default(field_capacity=0.3)
    # values for another number of columns: a broadcasting error that named no parameter
    with pytest.raises(ValueError, match=r"'theta_cap' has 3 values .* for 5 columns"):
        hl.Params.default(5, theta_cap=jnp.asarray([0.3, 0.4, 0.5]))
    assert hl.Params.default(5, theta_cap=jnp.asarray([0.3])).theta_cap.shape == (5,)


def test_defaults_inside_ranges_and_capacity():
    p = hl.Params.default()
    p.check_bounds()
    assert float(p.soil_capacity) == pytest.approx(1000 * (0.30 - 0.10) * 1.0)
