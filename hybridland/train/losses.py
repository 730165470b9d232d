r"""Masked training losses for observed runoff with gaps; jittable, differentiable.

Every loss takes ``obs`` and ``sim`` of shape ``[basin, time]`` (time last). A step counts where
``obs`` is finite and the optional boolean ``mask`` is true; gaps are NaN in ``obs``. Invalid
steps are replaced before any arithmetic, so they leak NaN into neither values nor gradients.
Warm-up days are excluded by the caller (the training loop slices them off, or masks them).
A basin without a valid step adds nothing; a batch without any gives a loss of 0.

**Losses** (``o`` observed, ``s`` simulated, ``V_b`` the valid steps of basin ``b``,
``B`` the basins with at least one valid step, ``w`` the extreme weights below):

- ``nse`` — NSE* of Kratzert et al. (2019), per-basin normalised squared error:
  $$L = \frac{1}{|B|}\sum_{b\in B} \frac{\sum_{t\in V_b} w_{bt}(s_{bt}-o_{bt})^2}
  {\sum_{t\in V_b} w_{bt}}\;\frac{1}{(\sigma_b + \epsilon)^2}$$
  with ``sigma_b`` the standard deviation of basin ``b``'s observations (pass the one of the
  whole training period as ``obs_std``, as Kratzert et al. do; by default the one of the
  valid steps given) and ``epsilon = 0.1`` mm day-1 so that near-constant basins do not blow up.
  Equal to ``1 - NSE`` averaged over basins when ``w = 1``, ``epsilon = 0`` and ``sigma_b`` is
  that of the same steps.
- ``mse`` — weighted mean squared error over all valid steps of all basins, (mm day-1)^2:
  $$L = \sum_{b,t} w_{bt}(s_{bt}-o_{bt})^2 \Big/ \sum_{b,t} w_{bt}.$$
- ``kge`` — mean over basins of ``1 - KGE`` (Gupta et al. 2009, ``hybridland.metrics.kge``);
  with extreme weighting, ``lambda (1 - KGE)`` of log flows ``log(max(q, 0) + 0.01 mu_b)`` is
  added per basin (``mu_b`` the mean observed flow), which stresses the low-flow regime.
  Basins whose KGE is undefined (fewer than 2 valid steps, constant obs or a constant
  simulation) are left out; a simulation that is not finite on a valid step makes it NaN.

**Extreme (low-flow / dry) weighting** with ``lambda = extreme_weight >= 0``:
$$w_{bt} = 1 + \lambda\,\exp(-o_{bt} / \mu_b)$$
with ``mu_b`` the mean observed flow of basin ``b`` (``obs_mean``, default: of the valid steps
given). A dry day (``o = 0``) weighs ``1 + lambda``, a day at the mean flow ``1 + lambda/e``,
floods tend to 1, so a squared-error loss no longer ignores the dry extremes that it otherwise
barely sees. ``lambda = 0`` gives the plain losses.

Kratzert, F. et al. (2019). Towards learning universal, regional, and local hydrological
behaviors via machine learning applied to large-sample datasets. HESS 23, 5089-5110.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .. import metrics

Series = Float[Array, "basin time"]
PerBasin = Float[Array, " basin"]

NSE_EPS = 0.1
"""epsilon of NSE*, mm day-1 (Kratzert et al. 2019)."""

LOG_EPS_FRACTION = 0.01
"""Offset of the log flows in the extreme-weighted KGE, as a fraction of the mean flow."""


def _valid(obs, sim, mask):
    obs = jnp.asarray(obs)
    sim = jnp.asarray(sim)
    if obs.shape != sim.shape or obs.ndim != 2:
        raise ValueError(f"obs and sim must both be [basin, time]; got {obs.shape}, {sim.shape}")
    valid = jnp.isfinite(obs)
    if mask is not None:
        valid = valid & jnp.asarray(mask, bool)
    return jnp.where(valid, obs, 0.0), jnp.where(valid, sim, 0.0), valid


def _basin_mean(x, valid):
    n = jnp.sum(valid, axis=-1)
    return jnp.sum(jnp.where(valid, x, 0.0), -1) / jnp.maximum(n, 1), n


def extreme_weights(
    obs: Series, valid: Bool[Array, "basin time"], extreme_weight: float, obs_mean=None
) -> Series:
    """``w = 1 + lambda exp(-obs / mu_b)`` (see the module docstring); 0 on invalid steps."""
    if obs_mean is None:
        obs_mean, _ = _basin_mean(obs, valid)
    mu = jnp.maximum(jnp.asarray(obs_mean, obs.dtype), 1e-6)[:, None]
    w = 1.0 + extreme_weight * jnp.exp(-jnp.maximum(obs, 0.0) / mu)
    return jnp.where(valid, w, 0.0)


def nse_star(
    obs: ArrayLike,
    sim: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    obs_std: ArrayLike | None = None,
    obs_mean: ArrayLike | None = None,
    extreme_weight: float = 0.0,
    eps: float = NSE_EPS,
) -> Float[Array, ""]:
    """NSE* (Kratzert et al. 2019), optionally extreme-weighted; see the module docstring."""
    obs, sim, valid = _valid(obs, sim, mask)
    w = extreme_weights(obs, valid, extreme_weight, obs_mean)
    if obs_std is None:
        mean, n = _basin_mean(obs, valid)
        var, _ = _basin_mean((obs - mean[:, None]) ** 2, valid)
        obs_std = jnp.sqrt(var + 1e-30)
    sq = w * (sim - obs) ** 2
    per_basin = jnp.sum(sq, -1) / jnp.maximum(jnp.sum(w, -1), 1e-30)
    per_basin = per_basin / (jnp.asarray(obs_std, obs.dtype) + eps) ** 2
    has = jnp.any(valid, -1)
    return jnp.sum(jnp.where(has, per_basin, 0.0)) / jnp.maximum(jnp.sum(has), 1)


def mse(
    obs: ArrayLike,
    sim: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    obs_mean: ArrayLike | None = None,
    extreme_weight: float = 0.0,
    **_,
) -> Float[Array, ""]:
    """Weighted mean squared error over all valid steps, (mm day-1)^2."""
    obs, sim, valid = _valid(obs, sim, mask)
    w = extreme_weights(obs, valid, extreme_weight, obs_mean)
    return jnp.sum(w * (sim - obs) ** 2) / jnp.maximum(jnp.sum(w), 1e-30)


def kge_loss(
    obs: ArrayLike,
    sim: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    obs_mean: ArrayLike | None = None,
    extreme_weight: float = 0.0,
    **_,
) -> Float[Array, ""]:
    """Mean over basins of ``1 - KGE`` (+ ``lambda (1 - KGE)`` of log flows); see the module."""
    obs, sim, valid = _valid(obs, sim, mask)
    per_basin = 1.0 - metrics.kge(obs, sim, valid)
    if extreme_weight:
        if obs_mean is None:
            obs_mean, _ = _basin_mean(obs, valid)
        eps = LOG_EPS_FRACTION * jnp.maximum(jnp.asarray(obs_mean, obs.dtype), 1e-6)[:, None]
        log_o = jnp.log(jnp.maximum(obs, 0.0) + eps)
        log_s = jnp.log(jnp.maximum(sim, 0.0) + eps)
        per_basin = per_basin + extreme_weight * (1.0 - metrics.kge(log_o, log_s, valid))
    ok = jnp.isfinite(per_basin)
    loss = jnp.sum(jnp.where(ok, per_basin, 0.0)) / jnp.maximum(jnp.sum(ok), 1)
    # A basin is left out for its observations (too few, constant) or a constant simulation,
    # never for a simulation that is not finite: that is a diverged model, and its loss is NaN
    # (as with the other losses) so that the training loop's guard stops it.
    diverged = jnp.any(valid & ~jnp.isfinite(sim))
    return jnp.where(diverged, jnp.nan, loss)


LOSSES: dict[str, Callable[..., Array]] = {"nse": nse_star, "mse": mse, "kge": kge_loss}
"""Loss functions by config name: ``(obs, sim, mask=None, *, obs_std, obs_mean,
extreme_weight) -> scalar``."""
