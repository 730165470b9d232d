"""Reference implementations of the hybridland column model for ``throughput.py``.

Each reference implements the same equations as ``hybridland.ColumnModel.step`` with PET given
in the forcing, groundwater on and no net radiation: logistic rain/snow partition, degree-day
melt, surface partition (power law or MLP), saturation excess, ET = stress x PET limited to the
water present (stress from the piecewise-linear law or an MLP), exactly integrated linear
drainage and baseflow, and the round-towards-zero store additions whose remainder joins the
quick flow (``hybridland.physics.bucket``). The hybrid references run the same MLP weights,
exported from the Equinox model by ``export_networks``.

- ``numpy_forward``: vectorised over columns, a Python loop over days.
- ``numba_forward``: ``@njit(parallel=True)``, ``prange`` over columns, scalar code per day
  (numba promotes float32 scalars mixed with Python constants to float64, so in a float32
  run it agrees with the others to about 1e-4, and to rounding in float64).
- ``torch_forward`` / ``torch_gradient``: eager PyTorch vectorised over columns; the gradient
  uses autograd with ``torch.utils.checkpoint`` over blocks of days (like hybridland's
  ``checkpoint_every``), so its memory stays bounded. Single-threaded (see ``_torch_ops``).

Every forward returns ``{"runoff", "et", "soil"}`` as ``[column, time]`` arrays (mm day-1, mm);
gradients are of ``sum(runoff + et)`` over columns and days with respect to the physical
parameters and the network weights. Forcing is a dict of ``[column, time]`` arrays
(``precip``, ``t_min``, ``t_max``, ``pet``), parameters a dict of ``[column]`` arrays named as
in ``hybridland.PARAMETER_BOUNDS``.
"""

from __future__ import annotations

import math
import types

import numpy as np

FEATURE_SCALES = (10.0, 20.0, 5.0)
"""Divisors of precipitation (or water input), mean temperature and PET (as in hybridland)."""
SNOW_TRANSITION_WIDTH = 1.0
OUTPUTS = ("runoff", "et", "soil")
PARAM_NAMES = (
    "theta_cap", "theta_wp", "root_depth", "et_threshold", "runoff_shape", "soil_drainage",
    "baseflow_rate", "ddf", "t_snow", "t_melt", "pet_coefficient",
)


def export_networks(model) -> dict | None:
    """The ET and runoff MLP weights of a hybridland model as numpy ``[(W, b), ...]`` per
    network (``W`` is ``[out, in]``), or ``None`` for the physical laws."""
    if not hasattr(model.et, "mlp"):
        return None

    def layers(net):
        return [(np.asarray(l.weight), np.asarray(l.bias).reshape(-1)) for l in net.mlp.layers]

    return {"et": layers(model.et), "runoff": layers(model.runoff)}


# --- NumPy and PyTorch: one vectorised step over an array namespace -----------------------

def _numpy_ops():
    return types.SimpleNamespace(
        minimum=np.minimum, maximum=np.maximum, where=np.where, exp=np.exp, log=np.log,
        expm1=np.expm1, tanh=np.tanh, nextafter=lambda x: np.nextafter(x, np.zeros_like(x)),
        sigmoid=lambda x: 1.0 / (1.0 + np.exp(-x)), stop=lambda x: x,
        stack=np.stack, matmul=np.matmul,
    )


def _torch_ops():
    import torch

    # On this 2-core VM torch's 2-thread pool spent ~23 ms per small op (wake-up latency)
    # against ~12 us on one thread, so the eager references run single-threaded.
    torch.set_num_threads(1)

    return types.SimpleNamespace(
        minimum=torch.minimum, maximum=torch.maximum, where=torch.where, exp=torch.exp,
        log=torch.log, expm1=torch.expm1, tanh=torch.tanh, sigmoid=torch.sigmoid,
        nextafter=lambda x: torch.nextafter(x, torch.zeros_like(x)),
        stop=lambda x: x.detach(), stack=torch.stack, matmul=torch.matmul,
    )


def _take(ops, store, demand):
    flux = ops.minimum(ops.maximum(demand, 0.0 * demand), store)
    new = store - flux
    return new, store - new


def _accumulate(ops, store, inflow):
    """``store + inflow`` rounded towards zero and the exact non-negative remainder."""
    total = store + inflow
    s, i, t = ops.stop(store), ops.stop(inflow), ops.stop(total)
    inflow_part = t - s
    error = (s - (t - inflow_part)) + (i - inflow_part)
    up = error < 0.0
    lower = ops.where(up, ops.nextafter(t), t)
    return total + (lower - t), ops.where(up, error + (t - lower), error)


def _mlp(ops, layers, features):
    """Columns-last MLP: ``features`` ``[in, column]`` -> ``[column]`` in (0, 1)."""
    x = features
    for k, (w, b) in enumerate(layers):
        x = ops.matmul(w, x) + b[:, None]
        x = ops.tanh(x) if k < len(layers) - 1 else ops.sigmoid(x)
    return x[0]


def _step(ops, state, day, p, nets):
    """One day for all columns: ``state`` = (swe, soil, gw), ``day`` = (P, Tmin, Tmax, PET)."""
    swe, soil, gw = state
    precip, t_min, t_max, pet_in = day
    capacity = 1000.0 * (p["theta_cap"] - p["theta_wp"]) * p["root_depth"]
    t_mean = 0.5 * (t_min + t_max)
    pet = ops.maximum(p["pet_coefficient"] * pet_in, 0.0 * pet_in)
    _, snowfall = _take(ops, precip, precip * ops.sigmoid((p["t_snow"] - t_mean) / SNOW_TRANSITION_WIDTH))
    rainfall = precip - snowfall
    swe, swe_rem = _accumulate(ops, swe, snowfall)
    swe, melt = _take(ops, swe, p["ddf"] * ops.maximum(t_mean - p["t_melt"], 0.0 * t_mean))
    water, input_rem = _accumulate(ops, rainfall, melt)
    soil_rel0 = soil / capacity
    if nets is None:
        x = ops.minimum(ops.maximum(soil_rel0, 0.0 * soil_rel0), 1.0 + 0.0 * soil_rel0)
        positive = x > 0.0
        safe = ops.where(positive, x, 1.0 + 0.0 * x)
        fraction = ops.where(positive, ops.exp(p["runoff_shape"] * ops.log(safe)), 0.0 * x)
    else:
        scaled = (water / FEATURE_SCALES[0], t_mean / FEATURE_SCALES[1], pet / FEATURE_SCALES[2])
        fraction = _mlp(ops, nets["runoff"], ops.stack((soil_rel0,) + scaled))
    quick, infiltration = _take(ops, water, water * (1.0 - fraction))
    soil, soil_rem = _accumulate(ops, soil, infiltration)
    quick = quick + (swe_rem + input_rem + soil_rem)
    soil, excess = _take(ops, soil, soil - capacity)
    soil_rel = soil / capacity
    if nets is None:
        stress = ops.minimum(ops.maximum(soil_rel / p["et_threshold"], 0.0 * soil_rel), 1.0 + 0.0 * soil_rel)
    else:
        scaled = (precip / FEATURE_SCALES[0], t_mean / FEATURE_SCALES[1], pet / FEATURE_SCALES[2])
        stress = _mlp(ops, nets["et"], ops.stack((soil_rel,) + scaled))
    soil, et = _take(ops, soil, stress * pet)
    soil, drainage = _take(ops, soil, soil * -ops.expm1(-p["soil_drainage"]))
    gw, gw_rem = _accumulate(ops, gw, drainage)
    gw, baseflow = _take(ops, gw, gw * -ops.expm1(-p["baseflow_rate"]))
    runoff = (quick + excess) + (baseflow + gw_rem)
    return (swe, soil, gw), (runoff, et, soil)


def numpy_forward(forcing, params, state0, nets=None):
    """NumPy reference: all columns per day, outputs ``[column, time]``."""
    ops = _numpy_ops()
    series = [np.ascontiguousarray(forcing[k].T) for k in ("precip", "t_min", "t_max", "pet")]
    n_time, n_columns = series[0].shape
    out = np.empty((3, n_time, n_columns), series[0].dtype)
    state = tuple(state0)
    for t in range(n_time):
        state, kept = _step(ops, state, [x[t] for x in series], params, nets)
        for k, x in enumerate(kept):
            out[k, t] = x
    return {name: out[k].T for k, name in enumerate(OUTPUTS)}


def torch_forward(forcing, params, state0, nets=None):
    """PyTorch eager reference (no autograd), outputs ``[column, time]`` numpy arrays."""
    import torch

    with torch.no_grad():
        kept = _torch_run(_to_torch(forcing), _to_torch(params), _to_torch(state0),
                          _nets_to_torch(nets), keep=True)
    return {name: kept[k].T.numpy() for k, name in enumerate(OUTPUTS)}


def torch_gradient(forcing, params, state0, nets=None, checkpoint_every=365):
    """``sum(runoff + et)`` and its gradient w.r.t. the parameters and network weights.

    Returns ``(loss, {"params": {name: [column]}, "nets": same structure as nets})``.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    f = _to_torch(forcing)
    p = {k: v.clone().requires_grad_(True) for k, v in _to_torch(params).items()}
    n = _nets_to_torch(nets, requires_grad=True)
    state = tuple(_to_torch(state0))
    ops = _torch_ops()
    series = [f[k] for k in ("precip", "t_min", "t_max", "pet")]
    n_time = series[0].shape[1]

    def block(start, stop, p, n, *state):
        loss = torch.zeros((), dtype=state[0].dtype)
        for t in range(start, stop):
            state, (runoff, et, _) = _step(ops, state, [x[:, t] for x in series], p, n)
            loss = loss + (runoff + et).sum()
        return (loss, *state)

    loss = torch.zeros((), dtype=series[0].dtype)
    for start in range(0, n_time, checkpoint_every):
        stop = min(start + checkpoint_every, n_time)
        part, *state = checkpoint(block, start, stop, p, n, *state, use_reentrant=False)
        loss = loss + part
    leaves = list(p.values()) + ([x for net in n.values() for wb in net for x in wb] if n else [])
    grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
    g_params = dict(zip(p, (g.numpy() for g in grads[: len(p)])))
    g_nets = None
    if n:
        it = iter(g.numpy() for g in grads[len(p):])
        g_nets = {k: [(next(it), next(it)) for _ in net] for k, net in n.items()}
    return float(loss), {"params": g_params, "nets": g_nets}


def _torch_run(f, p, state0, nets, keep):
    import torch

    ops = _torch_ops()
    series = [f[k].T.contiguous() for k in ("precip", "t_min", "t_max", "pet")]
    n_time, n_columns = series[0].shape
    out = torch.empty((3, n_time, n_columns), dtype=series[0].dtype) if keep else None
    state = tuple(state0)
    for t in range(n_time):
        state, kept = _step(ops, state, [x[t] for x in series], p, nets)
        if keep:
            for k, x in enumerate(kept):
                out[k, t] = x
    return out


def _to_torch(tree):
    import torch

    if isinstance(tree, dict):
        return {k: torch.from_numpy(np.require(v, requirements="W")) for k, v in tree.items()}
    return [torch.from_numpy(np.require(v, requirements="W")) for v in tree]


def _nets_to_torch(nets, requires_grad=False):
    if nets is None:
        return None
    import torch

    return {
        k: [tuple(torch.from_numpy(np.array(a)).requires_grad_(requires_grad) for a in wb)
            for wb in net]
        for k, net in nets.items()
    }


# --- numba: scalar code per column, prange over columns -----------------------------------

def numba_forward(forcing, params, state0, nets=None):
    """numba reference: ``prange`` over columns, days in order; outputs ``[column, time]``."""
    kernel = _numba_kernel()
    dtype = forcing["precip"].dtype
    p = np.stack([np.asarray(params[k], dtype) for k in PARAM_NAMES])
    hybrid = nets is not None
    layers = [wb for k in ("runoff", "et") for wb in nets[k]] if hybrid else None
    w = [np.asarray(a, dtype) for wb in layers for a in wb] if hybrid else [np.zeros((1, 1), dtype), np.zeros(1, dtype)] * 6
    out = np.empty((3,) + forcing["precip"].shape, dtype)
    kernel(forcing["precip"], forcing["t_min"], forcing["t_max"], forcing["pet"], p,
           *[np.asarray(s, dtype) for s in state0], hybrid, *w, out)
    return {name: out[k] for k, name in enumerate(OUTPUTS)}


_KERNEL = None


def _numba_kernel():
    """Compile (once per process) and return the numba kernel."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba
    from numba import njit, prange

    @njit(inline="always")
    def take(store, demand):
        flux = min(max(demand, 0.0), store)
        new = store - flux
        return new, store - new

    @njit(inline="always")
    def accumulate(store, inflow):
        total = store + inflow
        inflow_part = total - store
        error = (store - (total - inflow_part)) + (inflow - inflow_part)
        if error < 0.0:
            lower = np.nextafter(total, total * 0.0)
            return lower, error + (total - lower)
        return total, error

    @njit(inline="always")
    def mlp(x, w1, b1, w2, b2, w3, b3, h1, h2):
        for i in range(w1.shape[0]):
            acc = b1[i]
            for j in range(w1.shape[1]):
                acc += w1[i, j] * x[j]
            h1[i] = math.tanh(acc)
        for i in range(w2.shape[0]):
            acc = b2[i]
            for j in range(w2.shape[1]):
                acc += w2[i, j] * h1[j]
            h2[i] = math.tanh(acc)
        acc = b3[0]
        for j in range(w3.shape[1]):
            acc += w3[0, j] * h2[j]
        return 1.0 / (1.0 + math.exp(-acc))

    @njit(parallel=True, fastmath=False)
    def kernel(precip, t_min, t_max, pet_in, p, swe0, soil0, gw0, hybrid,
               rw1, rb1, rw2, rb2, rw3, rb3, ew1, eb1, ew2, eb2, ew3, eb3, out):
        n_columns, n_time = precip.shape
        dtype = precip.dtype
        for c in prange(n_columns):
            capacity = 1000.0 * (p[0, c] - p[1, c]) * p[2, c]
            et_threshold, shape, k_soil, k_gw = p[3, c], p[4, c], p[5, c], p[6, c]
            ddf, t_snow, t_melt, pet_coef = p[7, c], p[8, c], p[9, c], p[10, c]
            swe, soil, gw = swe0[c], soil0[c], gw0[c]
            x = np.empty(4, dtype)
            h1 = np.empty(rw1.shape[0], dtype)
            h2 = np.empty(rw2.shape[0], dtype)
            for t in range(n_time):
                pr = precip[c, t]
                t_mean = 0.5 * (t_min[c, t] + t_max[c, t])
                pet = max(pet_coef * pet_in[c, t], 0.0)
                sf = 1.0 / (1.0 + math.exp(-(t_snow - t_mean) / SNOW_TRANSITION_WIDTH))
                _, snowfall = take(pr, pr * sf)
                rainfall = pr - snowfall
                swe, swe_rem = accumulate(swe, snowfall)
                swe, melt = take(swe, ddf * max(t_mean - t_melt, 0.0))
                water, input_rem = accumulate(rainfall, melt)
                rel0 = soil / capacity
                if hybrid:
                    x[0] = rel0
                    x[1] = water / FEATURE_SCALES[0]
                    x[2] = t_mean / FEATURE_SCALES[1]
                    x[3] = pet / FEATURE_SCALES[2]
                    fraction = mlp(x, rw1, rb1, rw2, rb2, rw3, rb3, h1, h2)
                else:
                    r = min(max(rel0, 0.0), 1.0)
                    fraction = math.exp(shape * math.log(r)) if r > 0.0 else 0.0
                quick, infiltration = take(water, water * (1.0 - fraction))
                soil, soil_rem = accumulate(soil, infiltration)
                quick = quick + (swe_rem + input_rem + soil_rem)
                soil, excess = take(soil, soil - capacity)
                if hybrid:
                    x[0] = soil / capacity
                    x[1] = pr / FEATURE_SCALES[0]
                    stress = mlp(x, ew1, eb1, ew2, eb2, ew3, eb3, h1, h2)
                else:
                    stress = min(max(soil / capacity / et_threshold, 0.0), 1.0)
                soil, et = take(soil, stress * pet)
                soil, drainage = take(soil, soil * -math.expm1(-k_soil))
                gw, gw_rem = accumulate(gw, drainage)
                gw, baseflow = take(gw, gw * -math.expm1(-k_gw))
                out[0, c, t] = (quick + excess) + (baseflow + gw_rem)
                out[1, c, t] = et
                out[2, c, t] = soil

    del numba
    _KERNEL = kernel
    return kernel
