"""Hydrological skill metrics: masked, jittable, batched over basins.

Every metric compares an observed series `obs` with a simulated series `sim` along the
**last axis (time)**, so `[basin, time]` inputs give `[basin]` outputs (any number of leading
batch axes works, and so does `jax.vmap`). Everything is pure `jax.numpy`: no Python control
flow on values, so the functions run under `jax.jit`, `jax.vmap` and `jax.grad` (gradients
with respect to `sim` are finite and zero on masked steps).

**Which steps count.** A time step is *valid* where `obs` is finite and, if given, the
boolean `mask` (same shape) is `True`. Missing observations are therefore simply NaN in `obs`.
A simulation that is not finite on a valid step makes every metric of that series NaN: a
diverged model is not scored on the days it got right. Invalid steps are replaced by harmless
values before any arithmetic (the "double where" pattern), so they never leak NaN into values
or gradients.

**Degenerate cases give NaN, never inf or a silent number.** Every metric is NaN when a series
has fewer than 2 valid steps or a non-finite `sim` on one of them. In addition a metric is NaN whenever its formula divides by
zero:

| metric | also NaN when |
|---|---|
| `nse` | valid `obs` constant (zero variance) |
| `log_nse` | mean valid `obs` <= 0 (no positive offset), or transformed `obs` constant |
| `pearson_r` | valid `obs` or valid `sim` constant |
| `kge` | `r` is NaN, or mean `obs` = 0 (`beta`); `alpha` is NaN if `obs` is constant |
| `kge_prime` | as `kge`, and `gamma` is NaN if mean `sim` = 0 |
| `pbias` | mean `obs` = 0 |
| `fhv` | the high segment is empty (`round(h n) = 0`) or sums to 0 |
| `flv` | the low segment has no spread above its minimum (e.g. all zero flows) |

Constancy is tested exactly (`max == min` over the valid steps) rather than through a
variance threshold, so a constant series is caught even when its rounded variance is a tiny
nonzero number.

**Units.** `rmse` and `bias` carry the units of the inputs (mm day-1 inside hybridland, see
`units.py`); `pbias`, `fhv`, `flv` are in percent; all other metrics are dimensionless.
Standard deviations are population (ddof = 0) ones; the ratios `alpha` and `gamma` do not
depend on this choice.

References:

- Nash, J. E., Sutcliffe, J. V. (1970). River flow forecasting through conceptual models
  part I. J. Hydrol. 10(3), 282-290. doi:10.1016/0022-1694(70)90255-6
- Gupta, H. V., Kling, H., Yilmaz, K. K., Martinez, G. F. (2009). Decomposition of the mean
  squared error and NSE performance criteria. J. Hydrol. 377, 80-91.
  doi:10.1016/j.jhydrol.2009.08.003
- Kling, H., Fuchs, M., Paulin, M. (2012). Runoff conditions in the upper Danube basin under
  an ensemble of climate change scenarios. J. Hydrol. 424-425, 264-277.
  doi:10.1016/j.jhydrol.2012.01.011
- Pushpalatha, R., Perrin, C., Le Moine, N., Andreassian, V. (2012). A review of efficiency
  criteria suitable for evaluating low-flow simulations. J. Hydrol. 420-421, 171-182.
  doi:10.1016/j.jhydrol.2011.11.055
- Yilmaz, K. K., Gupta, H. V., Wagener, T. (2008). A process-based diagnostic approach to
  model evaluation: application to the NWS distributed hydrologic model. Water Resour. Res.
  44, W09417. doi:10.1029/2007WR006716
"""

import math
from fractions import Fraction
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

Series = Float[Array, "*batch time"]
"""A time series per basin, time last: `[*batch, time]`."""

Mask = Bool[Array, "*batch time"]
"""`True` where a time step may count (it also needs finite `obs` and `sim`)."""

PerSeries = Float[Array, "*batch"]
"""One value per series: `[*batch]`."""

LOG_NSE_EPS_FRACTION = 0.01
"""Offset of `log_nse` as a fraction of the mean valid observation (Pushpalatha et al. 2012)."""

FDC_MIN_FLOW = 1e-6
"""Floor (units of the inputs) put under flows before the logarithm in `flv`."""


class KGEComponents(NamedTuple):
    """Kling-Gupta efficiency (Gupta et al. 2009) and its three components, each `[*batch]`."""

    kge: PerSeries
    """`1 - sqrt((r - 1)^2 + (alpha - 1)^2 + (beta - 1)^2)`, dimensionless, <= 1."""
    r: PerSeries
    """Pearson correlation of `sim` with `obs`."""
    alpha: PerSeries
    """Variability ratio `sigma_sim / sigma_obs`."""
    beta: PerSeries
    """Bias ratio `mu_sim / mu_obs`."""


class KGEPrimeComponents(NamedTuple):
    """Modified Kling-Gupta efficiency KGE' (Kling et al. 2012) and its components, `[*batch]`."""

    kge_prime: PerSeries
    """`1 - sqrt((r - 1)^2 + (gamma - 1)^2 + (beta - 1)^2)`, dimensionless, <= 1."""
    r: PerSeries
    """Pearson correlation of `sim` with `obs`."""
    gamma: PerSeries
    """Ratio of coefficients of variation `(sigma_sim / mu_sim) / (sigma_obs / mu_obs)`."""
    beta: PerSeries
    """Bias ratio `mu_sim / mu_obs`."""


# --------------------------------------------------------------------------- internals


class _Valid(NamedTuple):
    obs: Array  # invalid steps set to 0
    sim: Array  # invalid steps set to 0
    valid: Array  # bool, [*batch, time]
    n: Array  # valid-step count as a float of the data dtype, [*batch]
    count: Array  # the same count as an integer, [*batch]
    enough: Array  # n >= 2 and sim finite on every valid step, [*batch]


class _Moments(NamedTuple):
    mean_obs: Array
    mean_sim: Array
    var_obs: Array  # population variance
    var_sim: Array
    cov: Array
    obs_constant: Array  # bool: all valid obs equal
    sim_constant: Array


def _prepare(obs: ArrayLike, sim: ArrayLike, mask: ArrayLike | None) -> _Valid:
    obs = jnp.asarray(obs)
    sim = jnp.asarray(sim)
    if obs.shape != sim.shape:
        raise ValueError(f"obs and sim must have the same shape, got {obs.shape} and {sim.shape}")
    if obs.ndim == 0:
        raise ValueError("obs and sim need a time axis (the last axis)")
    dtype = jnp.result_type(obs, sim)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    obs = obs.astype(dtype)
    sim = sim.astype(dtype)
    valid = jnp.isfinite(obs)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must be boolean, got dtype {mask.dtype}")
        valid = valid & jnp.broadcast_to(mask, obs.shape)
    finite_sim = jnp.isfinite(sim)
    count = jnp.sum(valid, axis=-1)
    n = count.astype(dtype)
    return _Valid(
        obs=jnp.where(valid, obs, 0.0),
        sim=jnp.where(valid & finite_sim, sim, 0.0),
        valid=valid,
        n=n,
        count=count,
        enough=(n >= 2) & jnp.all(finite_sim | ~valid, axis=-1),
    )


def _check_option(name: str, value, low: float, high: float, example: str) -> None:
    """Refuse an option outside ``(low, high]`` (``high`` = inf: any finite number above
    ``low``): a fraction given in percent gave a number, not an error."""
    if not (low < value <= high and math.isfinite(value)):
        upper = "" if high == math.inf else f" and at most {high:g}"
        raise ValueError(f"{name} must be a number above {low:g}{upper} ({example}); got "
                         f"{value!r}.")


def _nan_unless(ok: Array, value: Array) -> Array:
    return jnp.where(ok, value, jnp.nan)


def _div(num: Array, den: Array, ok: Array) -> Array:
    """`num / den` where `ok` and `den != 0`, NaN elsewhere, with clean gradients."""
    ok = ok & (den != 0)
    return _nan_unless(ok, num / jnp.where(ok, den, 1.0))


def _sqrt(x: Array) -> Array:
    """sqrt with a finite gradient at 0 (perfect fits); NaN still propagates."""
    zero = x == 0
    return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, x)))


def _masked_mean(x: Array, v: _Valid) -> Array:
    return jnp.sum(jnp.where(v.valid, x, 0.0), axis=-1) / jnp.maximum(v.n, 1.0)


def _is_constant(x: Array, valid: Array) -> Array:
    hi = jnp.max(jnp.where(valid, x, -jnp.inf), axis=-1)
    lo = jnp.min(jnp.where(valid, x, jnp.inf), axis=-1)
    return hi == lo


def _moments(obs: Array, sim: Array, v: _Valid) -> _Moments:
    # Two passes (mean, then deviations) for accuracy in float32.
    mean_obs = _masked_mean(obs, v)
    mean_sim = _masked_mean(sim, v)
    d_obs = jnp.where(v.valid, obs - mean_obs[..., None], 0.0)
    d_sim = jnp.where(v.valid, sim - mean_sim[..., None], 0.0)
    return _Moments(
        mean_obs=mean_obs,
        mean_sim=mean_sim,
        var_obs=_masked_mean(d_obs**2, v),
        var_sim=_masked_mean(d_sim**2, v),
        cov=_masked_mean(d_obs * d_sim, v),
        obs_constant=_is_constant(obs, v.valid),
        sim_constant=_is_constant(sim, v.valid),
    )


def _nse(obs: Array, sim: Array, v: _Valid) -> Array:
    mean_obs = _masked_mean(obs, v)
    var_obs = _masked_mean(jnp.where(v.valid, obs - mean_obs[..., None], 0.0) ** 2, v)
    mse = _masked_mean((sim - obs) ** 2, v)
    return 1.0 - _div(mse, var_obs, v.enough & ~_is_constant(obs, v.valid))


def _pearson_r(m: _Moments, v: _Valid) -> Array:
    ok = v.enough & ~m.obs_constant & ~m.sim_constant
    r = _div(m.cov, _sqrt(m.var_obs) * _sqrt(m.var_sim), ok)
    # Rounding can push |r| a hair above 1.
    return jnp.clip(r, -1.0, 1.0)


def _one_minus_distance(*components: Array) -> Array:
    """``1 - sqrt(sum((c - 1)^2))``, NaN where any component is NaN, with a finite gradient
    there too: a NaN component is replaced by 1 before the arithmetic (the double-where
    pattern), so it cannot send NaN back through the finite ones (a loss that leaves a NaN
    series out must not have its gradient poisoned by it)."""
    ok = jnp.all(jnp.stack([jnp.isfinite(c) for c in components]), axis=0)
    distance = _sqrt(sum((jnp.where(ok, c, 1.0) - 1.0) ** 2 for c in components))
    return _nan_unless(ok, 1.0 - distance)


def _kge_components(v: _Valid, m: _Moments) -> KGEComponents:
    r = _pearson_r(m, v)
    alpha = _div(_sqrt(m.var_sim), _sqrt(m.var_obs), v.enough & ~m.obs_constant)
    beta = _div(m.mean_sim, m.mean_obs, v.enough)
    return KGEComponents(kge=_one_minus_distance(r, alpha, beta), r=r, alpha=alpha, beta=beta)


def _kge_prime_components(v: _Valid, m: _Moments) -> KGEPrimeComponents:
    r = _pearson_r(m, v)
    beta = _div(m.mean_sim, m.mean_obs, v.enough)
    # gamma = (sigma_s / mu_s) / (sigma_o / mu_o), written as one division.
    gamma = _div(
        _sqrt(m.var_sim) * m.mean_obs,
        m.mean_sim * _sqrt(m.var_obs),
        v.enough & ~m.obs_constant & (m.mean_obs != 0),
    )
    return KGEPrimeComponents(
        kge_prime=_one_minus_distance(r, gamma, beta), r=r, gamma=gamma, beta=beta
    )


def _log_nse(v: _Valid, eps_fraction: float) -> Array:
    eps = eps_fraction * _masked_mean(v.obs, v)
    positive = eps > 0
    eps = jnp.where(positive, eps, 1.0)[..., None]
    log_obs = jnp.log(jnp.maximum(v.obs, 0.0) + eps)
    log_sim = jnp.log(jnp.maximum(v.sim, 0.0) + eps)
    return _nan_unless(positive, _nse(log_obs, log_sim, v))


def _rmse(v: _Valid) -> Array:
    return _nan_unless(v.enough, _sqrt(_masked_mean((v.sim - v.obs) ** 2, v)))


def _bias(v: _Valid) -> Array:
    return _nan_unless(v.enough, _masked_mean(v.sim - v.obs, v))


def _pbias(v: _Valid) -> Array:
    mean_obs = _masked_mean(v.obs, v)
    return 100.0 * _div(_masked_mean(v.sim, v) - mean_obs, mean_obs, v.enough)


def _sorted_valid(x: Array, v: _Valid) -> tuple[Array, Array, Array]:
    """Ascending sort of the valid values, invalid ones pushed to the end and set to 1.

    Returns the sorted values, the position index along time and the integer count n.
    """
    # Valid values are finite, so +inf sorts every invalid step after all of them.
    x_sorted = jnp.sort(jnp.where(v.valid, x, jnp.inf), axis=-1)
    position = jnp.arange(x.shape[-1])
    n = jnp.sum(v.valid, axis=-1)[..., None]
    return jnp.where(position < n, x_sorted, 1.0), position, n


def _segment_length(fraction: float, v: _Valid) -> Array:
    """``round(fraction * n)``, half to even (numpy's rounding), in exact integer arithmetic:
    in float32 ``0.3 * 95`` is 28.500002, which rounds to 29 where the exact 28.5 gives 28."""
    ratio = Fraction(fraction).limit_denominator(10_000)
    whole, rest = jnp.divmod(ratio.numerator * v.count, ratio.denominator)
    twice = 2 * rest
    up = (twice > ratio.denominator) | ((twice == ratio.denominator) & (whole % 2 == 1))
    return (whole + up).astype(jnp.int32)[..., None]


def _fhv(v: _Valid, high_fraction: float) -> Array:
    obs_fdc, position, n = _sorted_valid(v.obs, v)
    sim_fdc, _, _ = _sorted_valid(v.sim, v)
    top = (position >= n - _segment_length(high_fraction, v)) & (position < n)
    top_obs = jnp.sum(jnp.where(top, obs_fdc, 0.0), axis=-1)
    top_sim = jnp.sum(jnp.where(top, sim_fdc, 0.0), axis=-1)
    return 100.0 * _div(top_sim - top_obs, top_obs, v.enough)


def _flv(v: _Valid, low_fraction: float, min_flow: float) -> Array:
    obs_fdc, position, _ = _sorted_valid(v.obs, v)
    sim_fdc, _, _ = _sorted_valid(v.sim, v)
    low = position < _segment_length(low_fraction, v)

    def low_flow_volume(fdc):
        log_q = jnp.log(jnp.maximum(fdc, min_flow))
        # Position 0 holds the minimum valid flow.
        return jnp.sum(jnp.where(low, log_q - log_q[..., :1], 0.0), axis=-1)

    low_obs = low_flow_volume(obs_fdc)
    low_sim = low_flow_volume(sim_fdc)
    return -100.0 * _div(low_sim - low_obs, low_obs, v.enough)


# --------------------------------------------------------------------------- public API


def nse(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    r"""Nash-Sutcliffe efficiency (Nash and Sutcliffe 1970), dimensionless, in (-inf, 1].

    $$\mathrm{NSE} = 1 - \frac{\sum_t (s_t - o_t)^2}{\sum_t (o_t - \bar o)^2}$$

    over the valid steps. 1 is a perfect fit, 0 the skill of the mean observation.

    **Arguments:** `obs`, `sim` of shape `[*batch, time]`; optional boolean `mask` of the same
    shape. **Returns** `[*batch]`; NaN with fewer than 2 valid steps or constant `obs`.
    """
    v = _prepare(obs, sim, mask)
    return _nse(v.obs, v.sim, v)


def log_nse(
    obs: Series,
    sim: Series,
    mask: Mask | None = None,
    *,
    eps_fraction: float = LOG_NSE_EPS_FRACTION,
) -> PerSeries:
    r"""NSE of log-transformed flows, weighting low flows; dimensionless, in (-inf, 1].

    $$\mathrm{logNSE} = \mathrm{NSE}\big(\log(\max(o, 0) + \varepsilon),
      \log(\max(s, 0) + \varepsilon)\big), \qquad \varepsilon = f\,\bar o$$

    with $\bar o$ the mean valid observation of each series and $f$ = `eps_fraction`
    (default 0.01, i.e. 1 % of the mean flow, as recommended by Pushpalatha et al. 2012).
    The offset keeps zero flows finite and makes the metric independent of the flow units;
    negative values (a model's rounding below zero) are clipped to 0 first.

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps, mean `obs` <= 0, or constant
    `obs`.
    """
    _check_option("eps_fraction", eps_fraction, 0.0, math.inf, "0.01 is 1 % of the mean flow")
    return _log_nse(_prepare(obs, sim, mask), eps_fraction)


def pearson_r(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    r"""Pearson correlation coefficient of `sim` with `obs`, dimensionless, in [-1, 1].

    $$r = \frac{\sum_t (o_t - \bar o)(s_t - \bar s)}
      {\sqrt{\sum_t (o_t - \bar o)^2}\,\sqrt{\sum_t (s_t - \bar s)^2}}$$

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps or a constant series (0/0).
    """
    v = _prepare(obs, sim, mask)
    return _pearson_r(_moments(v.obs, v.sim, v), v)


def kge_components(obs: Series, sim: Series, mask: Mask | None = None) -> KGEComponents:
    r"""Kling-Gupta efficiency and its components (Gupta et al. 2009).

    $$\mathrm{KGE} = 1 - \sqrt{(r - 1)^2 + (\alpha - 1)^2 + (\beta - 1)^2},\qquad
      \alpha = \frac{\sigma_s}{\sigma_o},\qquad \beta = \frac{\mu_s}{\mu_o}$$

    with `r` the Pearson correlation, $\sigma$ population standard deviations and $\mu$ means
    over the valid steps.

    **Returns** a `KGEComponents(kge, r, alpha, beta)`, each `[*batch]`. NaN with fewer than
    2 valid steps; `r` is NaN for a constant series, `alpha` for constant `obs`, `beta` for
    zero mean `obs`; `kge` is NaN if any component is.
    """
    v = _prepare(obs, sim, mask)
    return _kge_components(v, _moments(v.obs, v.sim, v))


def kge(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    """Kling-Gupta efficiency (Gupta et al. 2009), dimensionless, in (-inf, 1].

    The `kge` field of `kge_components`; see there for the formula and the NaN cases.
    """
    return kge_components(obs, sim, mask).kge


def kge_prime_components(
    obs: Series, sim: Series, mask: Mask | None = None
) -> KGEPrimeComponents:
    r"""Modified Kling-Gupta efficiency KGE' and its components (Kling et al. 2012).

    $$\mathrm{KGE'} = 1 - \sqrt{(r - 1)^2 + (\gamma - 1)^2 + (\beta - 1)^2},\qquad
      \gamma = \frac{\sigma_s / \mu_s}{\sigma_o / \mu_o},\qquad \beta = \frac{\mu_s}{\mu_o}$$

    The coefficient-of-variation ratio $\gamma$ replaces $\alpha$ so that bias and
    variability errors are not cross-correlated.

    **Returns** a `KGEPrimeComponents(kge_prime, r, gamma, beta)`, each `[*batch]`; as
    `kge_components`, and `gamma` is also NaN for zero mean `sim` or `obs`.
    """
    v = _prepare(obs, sim, mask)
    return _kge_prime_components(v, _moments(v.obs, v.sim, v))


def kge_prime(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    """Modified Kling-Gupta efficiency KGE' (Kling et al. 2012), dimensionless, in (-inf, 1].

    The `kge_prime` field of `kge_prime_components`; see there.
    """
    return kge_prime_components(obs, sim, mask).kge_prime


def rmse(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    r"""Root mean squared error, in the units of the inputs (mm day-1 in hybridland).

    $$\mathrm{RMSE} = \sqrt{\tfrac{1}{n}\sum_t (s_t - o_t)^2}$$

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps.
    """
    return _rmse(_prepare(obs, sim, mask))


def bias(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    r"""Mean error $\bar s - \bar o$, in the units of the inputs; positive = overestimation.

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps.
    """
    return _bias(_prepare(obs, sim, mask))


def pbias(obs: Series, sim: Series, mask: Mask | None = None) -> PerSeries:
    r"""Percent bias, %; positive = overestimation.

    $$\mathrm{PBIAS} = 100\,\frac{\sum_t (s_t - o_t)}{\sum_t o_t} = 100\,(\beta - 1)$$

    (The same sign as hydroGOF's `pbias`; Moriasi et al. 2007 and SWAT-CUP use the opposite,
    $\sum (o_t - s_t) / \sum o_t$.)

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps or zero mean `obs`.
    """
    return _pbias(_prepare(obs, sim, mask))


def fhv(
    obs: Series, sim: Series, mask: Mask | None = None, *, high_fraction: float = 0.02
) -> PerSeries:
    r"""Percent bias of the high-flow segment of the flow duration curve (Yilmaz et al. 2008), %.

    The valid `obs` and `sim` are each sorted in descending order (two separate flow
    duration curves, so timing errors do not count) and the $H = \mathrm{round}(h\,n)$
    largest values of each are compared, $h$ = `high_fraction` (default 0.02, the top 2 %):

    $$\mathrm{FHV} = 100\,\frac{\sum_{k=1}^{H} (s_{(k)} - o_{(k)})}{\sum_{k=1}^{H} o_{(k)}}$$

    Positive = peak flows overestimated. Rounding is half-to-even, as numpy's and
    neuralhydrology's `fdc_fhv`, whose definition this follows.

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps, an empty segment
    (`round(h n) = 0`, e.g. fewer than 26 valid steps at `h = 0.02`) or zero peak flows.
    """
    _check_option("high_fraction", high_fraction, 0.0, 1.0, "0.02 is the top 2 %")
    return _fhv(_prepare(obs, sim, mask), high_fraction)


def flv(
    obs: Series,
    sim: Series,
    mask: Mask | None = None,
    *,
    low_fraction: float = 0.3,
    min_flow: float = FDC_MIN_FLOW,
) -> PerSeries:
    r"""Percent bias of the low-flow segment of the flow duration curve (Yilmaz et al. 2008), %.

    The valid `obs` and `sim` are each sorted (separate flow duration curves) and the
    $L = \mathrm{round}(l\,n)$ smallest values of each are kept, $l$ = `low_fraction`
    (default 0.3, the lowest 30 %). Flows are floored at `min_flow` (default 1e-6, units of
    the inputs) so that zero flows have a logarithm. With $q_{(k)}$ the log flows of the
    segment and $q_{(\min)}$ its minimum (the minimum flow of the series):

    $$\mathrm{FLV} = -100\,\frac{\sum_{k=1}^{L} (q^s_{(k)} - q^s_{(\min)})
      - \sum_{k=1}^{L} (q^o_{(k)} - q^o_{(\min)})}{\sum_{k=1}^{L} (q^o_{(k)} - q^o_{(\min)})}$$

    i.e. the bias of the low-flow "volume" above the minimum, in log space. It is invariant
    to scaling `sim` by a constant. This follows Yilmaz et al. (2008) and
    neuralhydrology's `fdc_flv`, except that a zero denominator gives NaN here instead of
    being regularised by adding 1e-6, and that both series (not only `sim`) are floored.

    **Returns** `[*batch]`; NaN with fewer than 2 valid steps or a low segment with no spread
    above its minimum (e.g. an ephemeral river with more than 30 % zero flows).
    """
    _check_option("low_fraction", low_fraction, 0.0, 1.0, "0.3 is the lowest 30 %")
    _check_option("min_flow", min_flow, 0.0, math.inf, "e.g. 1e-6, in the units of the flows")
    return _flv(_prepare(obs, sim, mask), low_fraction, min_flow)


def n_valid(obs: Series, sim: Series, mask: Mask | None = None) -> Int[Array, "*batch"]:
    """Number of valid steps per series (finite `obs`, and `mask` if given); `sim` does not
    change it (a non-finite `sim` on a valid step makes the metrics NaN instead)."""
    return jnp.sum(_prepare(obs, sim, mask).valid, axis=-1)


def evaluate_all(obs: Series, sim: Series, mask: Mask | None = None) -> dict[str, Array]:
    """Every metric of this module with its default settings, as a dict of `[*batch]` arrays.

    Keys: `nse`, `log_nse`, `kge`, `r`, `alpha`, `beta`, `kge_prime`, `gamma`, `rmse`,
    `bias`, `pbias`, `fhv`, `flv` (floats, see the functions of the same names and the
    `KGEComponents` / `KGEPrimeComponents` fields) and `n_valid` (integer count).
    """
    v = _prepare(obs, sim, mask)
    m = _moments(v.obs, v.sim, v)
    k = _kge_components(v, m)
    kp = _kge_prime_components(v, m)
    return {
        "nse": _nse(v.obs, v.sim, v),
        "log_nse": _log_nse(v, LOG_NSE_EPS_FRACTION),
        "kge": k.kge,
        "r": k.r,
        "alpha": k.alpha,
        "beta": k.beta,
        "kge_prime": kp.kge_prime,
        "gamma": kp.gamma,
        "rmse": _rmse(v),
        "bias": _bias(v),
        "pbias": _pbias(v),
        "fhv": _fhv(v, 0.02),
        "flv": _flv(v, 0.3, FDC_MIN_FLOW),
        "n_valid": jnp.sum(v.valid, axis=-1),
    }


__all__ = [
    "KGEComponents",
    "KGEPrimeComponents",
    "bias",
    "evaluate_all",
    "fhv",
    "flv",
    "kge",
    "kge_components",
    "kge_prime",
    "kge_prime_components",
    "log_nse",
    "n_valid",
    "nse",
    "pbias",
    "pearson_r",
    "rmse",
]
