"""Fast and slow flow paths below the root zone, exactly integrated.

The HBV structure (Bergstrom 1995; HBV-light, Seibert 2005; the capillary-rise variant of
Beck et al. 2020 used by the differentiable HBV of Feng et al. 2022): water that does not stay
in the root zone feeds an upper, **fast** reservoir, which

- percolates at most ``percolation`` mm day-1 to the groundwater (slow) store,
- drains linearly at ``fast_rate`` (interflow), and
- above the threshold ``fast_threshold`` also at ``fast_threshold_rate`` (quick flow),

while the groundwater store releases baseflow linearly (``bucket.recession`` with
``baseflow_rate``) and, with **capillary rise**, returns water to a dry root zone at the rate
``capillary_rate x groundwater x (1 - S / Smax)``, never more than the root zone can hold.
With a **groundwater loss**, the groundwater store also loses water out of the column (deep
percolation below the aquifer that feeds the stream, export beyond the outlet, channel
transmission losses fed by it) at most ``loss_rate`` mm day-1: a sink of fixed capacity, as the
losses of dryland basins (Shanafield and Cook 2014), not a share of the store, so it takes most
of a small recharge and little of a large one.

Every outflow is a demand limited by its store before it is taken (``bucket.take``), so the
stores stay >= 0 and each flux equals the change of the store it leaves, exactly.
"""

import jax.numpy as jnp

from .._custom_types import FloatArray
from .._params import Params
from .bucket import recession, take


def drain_fast(
    store: FloatArray, params: Params, dt: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One step of the fast reservoir: ``(new_store, percolation, fast_runoff)``, mm.

    Percolation goes first (to the groundwater store), then the quick flow above the threshold,
    then the linear interflow from what is left.
    """
    store, percolation = take(store, params.percolation * dt)
    excess = jnp.maximum(store - params.fast_threshold, 0.0)
    store, quick = take(store, params.fast_threshold_rate * excess * dt)
    store, interflow = recession(store, params.fast_rate, dt)
    return store, percolation, quick + interflow


def capillary_rise(
    groundwater: FloatArray, soil: FloatArray, capacity: FloatArray, params: Params, dt: float
) -> tuple[FloatArray, FloatArray]:
    """Water lifted from the groundwater store into the root zone: ``(new_groundwater, rise)``.

    ``rise <= groundwater`` and ``rise <= capacity - soil``, so neither store leaves its range.
    """
    deficit = jnp.maximum(capacity - soil, 0.0)
    demand = params.capillary_rate * groundwater * (deficit / capacity) * dt
    return take(groundwater, jnp.minimum(demand, deficit))


def groundwater_loss(
    store: FloatArray, params: Params, dt: float
) -> tuple[FloatArray, FloatArray]:
    """Water leaving the column from the groundwater store: ``(new_store, loss)``, mm.

    The loss is ``c (1 - exp(-G / c))`` with ``c = loss_rate x dt``: ``loss_rate x dt`` from a
    store much larger than that, the whole store (``G``, to first order) from a much smaller
    one, never more than ``G``, smooth in both above ``c = 1e-6`` mm (finite gradients at
    ``G = 0`` and at ``loss_rate -> 0``). As every outflow, it is taken as ``G - (G - L)``, so a
    loss below half a unit in the last place of ``G`` rounds to 0.
    """
    capacity = params.loss_rate * dt
    # Below 1e-6 mm a day the loss is the capacity itself (G / c could overflow); the two
    # branches differ there by less than 1e-6 mm.
    safe = jnp.maximum(capacity, 1e-6)
    demand = jnp.where(capacity > 1e-6, safe * -jnp.expm1(-store / safe), capacity)
    return take(store, demand)
