"""Exact, leak-free store updates: the arithmetic behind closure by construction.

A store never goes negative because every outflow is limited *before* it is taken (never
clipped afterwards). ``take`` removes ``min(demand, store)`` and returns the flux that was
actually removed, recomputed as ``store - new``: for an outflow no larger than its store this
difference is exact in IEEE arithmetic (Dekker's Fast2Sum), so the reported flux and the change
of the store agree to the last bit and no rounding leaks from step to step.
"""

import jax
import jax.numpy as jnp

from .._custom_types import FloatArray


def take(store: FloatArray, demand: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Remove up to ``demand`` (>= 0) from ``store`` (>= 0).

    Returns ``(new_store, flux)`` with ``0 <= flux <= store``, ``new_store >= 0`` and
    ``store - new_store == flux`` exactly. Gradients are finite at ``store == 0``.
    """
    flux = jnp.clip(demand, 0.0, store)
    new_store = store - flux
    return new_store, store - new_store


def spill(store: FloatArray, capacity: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Remove what exceeds ``capacity`` from ``store``: returns ``(new_store, excess)``."""
    return take(store, store - capacity)


def recession(store: FloatArray, rate: FloatArray, dt: float) -> tuple[FloatArray, FloatArray]:
    """Linear reservoir over one step, exactly integrated: outflow = S (1 - exp(-k dt))."""
    return take(store, store * -jnp.expm1(-rate * dt))


def power_recession(
    store: FloatArray, capacity: FloatArray, rate: FloatArray, shape: FloatArray, dt: float
) -> tuple[FloatArray, FloatArray]:
    """Non-linear reservoir over one step, exactly integrated: the outflow rate is
    ``rate x store x (store / capacity) ** shape``, so it equals the linear ``recession`` at a
    full store and vanishes faster than the store as it dries (``shape`` > 0; ``shape`` -> 0
    is the linear reservoir).

    With ``s = store / capacity`` the solution of ``ds/dt = -rate s ** (1 + shape)`` over ``dt``
    is ``s (1 + shape rate dt s ** shape) ** (-1 / shape)``; the outflow is the water it
    removes, taken with ``take`` so that it never exceeds the store. Gradients are finite at an
    empty or nearly empty store and at ``shape`` -> 0.
    """
    relative = store / capacity
    # Below a millionth of the capacity the soil does not drain (it would drain at most
    # 1e-6 rate Smax a day): the power and its gradients stay finite where float32 flushes a
    # tiny ratio to zero.
    wet = relative > 1e-6
    power = jnp.where(wet, jnp.where(wet, relative, 1.0) ** shape, 0.0)
    x = rate * dt * power
    # log1p(b x) / b; near b = 0 its series x (1 - b x / 2 + (b x)**2 / 3) (error < (b x)**3 x / 4,
    # < 2e-10 x here), so that the value and its derivative in b stay exact there
    small = shape < 1e-3
    b = jnp.where(small, 1.0, shape)
    bx = shape * x
    decay = jnp.where(small, x * (1.0 - bx / 2.0 + bx * bx / 3.0), jnp.log1p(b * x) / b)
    return take(store, store * -jnp.expm1(-decay))


def accumulate(store: FloatArray, inflow: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Add ``inflow`` (>= 0) to ``store`` (>= 0) without losing the rounding error.

    Returns ``(new_store, remainder)`` with ``new_store + remainder == store + inflow`` exactly
    (the error of the rounded sum, found by Knuth's TwoSum, rounded towards zero so that
    ``remainder >= 0``). The caller routes ``remainder`` (at most one ulp of the store) to an
    outflow, so no water is created or destroyed by rounding, step after step. The derivative
    of ``new_store`` is that of ``store + inflow``.
    """
    total = store + inflow
    lower, error = _round_down_error(
        jax.lax.stop_gradient(store), jax.lax.stop_gradient(inflow), jax.lax.stop_gradient(total)
    )
    return total + (lower - jax.lax.stop_gradient(total)), error


def _round_down_error(store, inflow, total):
    """The float just at or below ``store + inflow`` and the exact, non-negative rest."""
    inflow_part = total - store
    error = (store - (total - inflow_part)) + (inflow - inflow_part)
    rounded_up = error < 0.0
    lower = jnp.where(rounded_up, jnp.nextafter(total, jnp.zeros_like(total)), total)
    return lower, jnp.where(rounded_up, error + (total - lower), error)
