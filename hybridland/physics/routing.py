"""Channel routing with a gamma unit hydrograph whose water in transit is a store.

Runoff generated on a day reaches the outlet spread over the next ``n_days`` days with the
weights of a gamma unit hydrograph (Nash 1957; the two-parameter gamma routing of the
differentiable HBV, Feng et al. 2022): day ``i`` (``i = 0 .. n_days - 1``) gets

    w_i ∝ t_i ** (shape - 1) exp(-t_i / scale),   t_i = i + 1/2 days,

normalised to sum to one over the window. Instead of a convolution over a window of past
inputs (which loses the tail that falls outside the window), the water still on its way is a
store, ``queue[j]`` (mm) = water that leaves the outlet ``j + 1`` days from now. Each day's
runoff is split into ``n_days`` exact portions (``bucket.take`` of each weight's share of what
is left, ``gamma_shares``, the last portion taking the rest), the first portion and ``queue[0]`` leave today,
and the rest of the queue moves one day closer. So ``sum(queue)`` changes by exactly
inflow - outflow, to rounding, and the routing store enters the water budget like any other.
"""

import jax
import jax.numpy as jnp

from .._custom_types import Array, FloatArray
from .bucket import accumulate, take


def _log_weights(shape: FloatArray, scale: FloatArray, n_days: int) -> Array:
    t = jnp.arange(n_days, dtype=jnp.result_type(shape)) + 0.5
    return (shape - 1.0) * jnp.log(t) - t / scale


def gamma_weights(shape: FloatArray, scale: FloatArray, n_days: int) -> Array:
    """Unit-hydrograph weights ``[n_days]`` (>= 0, summing to one) of a gamma distribution of
    ``shape`` (>= 1) and ``scale`` (days) at the day midpoints."""
    return jax.nn.softmax(_log_weights(shape, scale, n_days))


def gamma_shares(shape: FloatArray, scale: FloatArray, n_days: int) -> Array:
    """``[n_days]``: the share ``w_i / sum_{j >= i} w_j`` of the water not yet assigned that
    day ``i`` of the unit hydrograph takes (the last is 1). Computed from log weights, so that
    neither values nor gradients overflow when the tail weights underflow."""
    log_w = _log_weights(shape, scale, n_days)
    return jnp.exp(log_w - jax.lax.cumlogsumexp(log_w, reverse=True))


def route(queue: Array, inflow: FloatArray, shares: Array) -> tuple[Array, FloatArray]:
    """Route ``inflow`` (mm this step) through the in-transit store ``queue`` ``[n_days - 1]``,
    each day ``i`` of the unit hydrograph taking ``shares[i]`` (``gamma_shares``) of what is
    still unassigned.

    Returns ``(new_queue, outflow)`` with ``sum(new_queue) - sum(queue) == inflow - outflow``
    to rounding, ``new_queue >= 0`` and ``outflow >= 0``.
    """
    n_days = shares.shape[-1]
    share = shares
    left = inflow
    portions = []
    for i in range(n_days - 1):
        left, portion = take(left, left * share[i])
        portions.append(portion)
    portions.append(left)  # the last portion takes the rest: the portions sum to inflow exactly
    portions = jnp.stack(portions)
    if n_days == 1:
        return queue, portions[0]
    # Water arriving j + 1 days from now: what was queued for j + 2 days plus today's share.
    later, remainder = accumulate(
        jnp.concatenate([queue[1:], jnp.zeros_like(queue[:1])]), portions[1:]
    )
    outflow = queue[0] + portions[0] + jnp.sum(remainder)
    return later, outflow
