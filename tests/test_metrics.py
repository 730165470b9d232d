"""Skill metrics: hand-computed values, masking, batching, jit, degenerate cases, references."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

from hybridland import metrics as M

FLOAT_KEYS = [
    "nse", "log_nse", "kge", "r", "alpha", "beta", "kge_prime", "gamma",
    "rmse", "bias", "pbias", "fhv", "flv",
]  # fmt: skip


def f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


def as_numpy(metrics):
    return {k: np.asarray(v) for k, v in metrics.items()}


def assert_metrics_close(actual, expected, rtol=1e-5, atol=1e-5):
    assert actual.keys() == expected.keys()
    for key in actual:
        np.testing.assert_allclose(
            actual[key], expected[key], rtol=rtol, atol=atol, equal_nan=True, err_msg=key
        )


def flows(rng, shape):
    """Positive, skewed, streamflow-like series with a simulation of varying skill."""
    obs = rng.lognormal(0.0, 1.0, shape)
    sim = obs * rng.lognormal(0.1, 0.3, shape) + rng.uniform(0.0, 0.5, shape)
    return obs, sim


# Compiling is most of this file's run time, so most tests share one compiled evaluate_all on
# series of N_TIME steps, built at XLA backend optimisation level 0 (half the compile time,
# same results to rounding); the by-hand tests run eagerly, with XLA's default settings.
N_TIME = 200
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
evaluate = fast_jit(M.evaluate_all)


def padded(x, n=N_TIME):
    """Append missing (NaN) steps up to n: a no-op for masked metrics, one compiled shape."""
    x = np.asarray(x, np.float32)
    return f32(np.concatenate([x, np.full(n - x.size, np.nan, np.float32)]))


# ------------------------------------------------------------------ values computed by hand


def test_nse_by_hand():
    # mean obs 2.5; SST = 2.25 + 0.25 + 0.25 + 2.25 = 5; SSE = (5 - 4)^2 = 1.
    assert float(M.nse(f32([1, 2, 3, 4]), f32([1, 2, 3, 5]))) == pytest.approx(1 - 1 / 5)
    # SSE = 1 + 1 + 1 + 1 = 4 -> 1 - 4/5.
    assert float(M.nse(f32([1, 2, 3, 4]), f32([2, 3, 4, 5]))) == pytest.approx(0.2)


def test_rmse_bias_pbias_by_hand():
    obs, sim = f32([1, 2, 3, 4]), f32([1, 2, 3, 5])
    assert float(M.rmse(obs, sim)) == pytest.approx(math.sqrt(1 / 4))
    # mean sim 11/4 = 2.75, mean obs 2.5.
    assert float(M.bias(obs, sim)) == pytest.approx(0.25)
    assert float(M.pbias(obs, sim)) == pytest.approx(100 * 0.25 / 2.5)
    # Underestimation is negative: sim = obs / 2 -> -50 %.
    assert float(M.pbias(obs, obs / 2)) == pytest.approx(-50.0)


def test_pearson_r_by_hand():
    # deviations obs (-1, 0, 1), sim (-1, 1, 0): cov sum 1, squares 2 and 2 -> r = 1/2.
    assert float(M.pearson_r(f32([1, 2, 3]), f32([1, 3, 2]))) == pytest.approx(0.5)
    assert float(M.pearson_r(f32([1, 2, 3]), f32([3, 2, 1]))) == pytest.approx(-1.0)


def test_kge_by_hand():
    obs = f32([1, 2, 3, 4])
    # sim = 2 obs: r = 1, alpha = 2, beta = 2 -> 1 - sqrt(0 + 1 + 1).
    k = M.kge_components(obs, 2 * obs)
    assert (float(k.r), float(k.alpha), float(k.beta)) == pytest.approx((1.0, 2.0, 2.0))
    assert float(k.kge) == pytest.approx(1 - math.sqrt(2))
    # sim = obs + 1: r = 1, alpha = 1, beta = 3.5 / 2.5 = 1.4 -> 1 - 0.4.
    assert float(M.kge(obs, obs + 1)) == pytest.approx(0.6)
    # sim = (1, 2, 3, 5): deviations obs (-1.5, -.5, .5, 1.5), sim (-1.75, -.75, .25, 2.25);
    # sum products 2.625 + .375 + .125 + 3.375 = 6.5, squares 5 and 8.75.
    r = 6.5 / math.sqrt(5 * 8.75)
    alpha = math.sqrt(8.75 / 5)
    beta = 2.75 / 2.5
    k = M.kge_components(obs, f32([1, 2, 3, 5]))
    assert (float(k.r), float(k.alpha), float(k.beta)) == pytest.approx((r, alpha, beta))
    expected = 1 - math.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)
    assert float(k.kge) == pytest.approx(expected)


def test_kge_prime_by_hand():
    obs = f32([1, 2, 3, 4])
    # sim = 2 obs: CVs equal -> gamma = 1; beta = 2 -> 1 - sqrt(0 + 0 + 1) = 0.
    k = M.kge_prime_components(obs, 2 * obs)
    assert (float(k.r), float(k.gamma), float(k.beta)) == pytest.approx((1.0, 1.0, 2.0))
    assert float(k.kge_prime) == pytest.approx(0.0, abs=1e-6)
    # sim = obs + 1: same sigma, means 3.5 and 2.5 -> gamma = 2.5 / 3.5, beta = 1.4.
    gamma, beta = 2.5 / 3.5, 1.4
    assert float(M.kge_prime(obs, obs + 1)) == pytest.approx(
        1 - math.sqrt((gamma - 1) ** 2 + (beta - 1) ** 2)
    )


def test_log_nse_by_hand():
    obs, sim = [1.0, 10.0, 100.0], [2.0, 10.0, 50.0]
    eps = 0.01 * (1 + 10 + 100) / 3  # 1 % of the mean observation
    lo = [math.log(x + eps) for x in obs]
    ls = [math.log(x + eps) for x in sim]
    mean_lo = sum(lo) / 3
    sse = sum((s - o) ** 2 for s, o in zip(ls, lo))
    sst = sum((o - mean_lo) ** 2 for o in lo)
    assert float(M.log_nse(f32(obs), f32(sim))) == pytest.approx(1 - sse / sst, rel=1e-5)
    # A negative simulated flow is clipped to 0 before the log: log(0 + eps), not NaN.
    ls[0] = math.log(eps)
    sse = sum((s - o) ** 2 for s, o in zip(ls, lo))
    sim[0] = -3.0
    assert float(M.log_nse(f32(obs), f32(sim))) == pytest.approx(1 - sse / sst, rel=1e-5)


def test_fhv_by_hand():
    obs, sim = f32([1, 2, 3, 4]), f32([1, 2, 3, 5])
    # top 25 % of 4 = 1 flow: (5 - 4) / 4.
    assert float(M.fhv(obs, sim, high_fraction=0.25)) == pytest.approx(25.0)
    # top 50 % = 2 flows: ((3 + 5) - (3 + 4)) / (3 + 4).
    assert float(M.fhv(obs, sim, high_fraction=0.5)) == pytest.approx(100 / 7)
    # Flow duration curves ignore timing: a reversed series has the same FDC.
    assert float(M.fhv(obs, obs[::-1], high_fraction=0.5)) == pytest.approx(0.0)
    # Default 2 % of 50 steps = 1 flow: peak 50 simulated as 100 -> +100 %.
    obs50 = f32(np.arange(1.0, 51.0))
    assert float(M.fhv(obs50, obs50.at[-1].set(100.0))) == pytest.approx(100.0)


def test_flv_by_hand():
    obs = f32(2.0 ** np.arange(10))  # 1, 2, 4, ..., 512
    # lowest 30 % of 10 = 3 flows. obs 1, 2, 4: log above the min 0, ln2, 2 ln2 -> 3 ln2.
    # sim = obs^2: 1, 4, 16 -> 0, 2 ln2, 4 ln2 -> 6 ln2.  FLV = -(6 - 3) / 3 = -100 %.
    assert float(M.flv(obs, obs**2)) == pytest.approx(-100.0, rel=1e-5)
    # sim = sqrt(obs): 0, ln2/2, ln2 -> 1.5 ln2.  FLV = -(1.5 - 3) / 3 = +50 %.
    assert float(M.flv(obs, jnp.sqrt(obs))) == pytest.approx(50.0, rel=1e-5)
    # A constant factor shifts log flows and leaves FLV at 0.
    assert float(M.flv(obs, 10 * obs)) == pytest.approx(0.0, abs=1e-3)
    # Zero flows are floored at 1e-6: sim (0, 2, 4) -> log 1e-6, ln2, 2ln2 above log 1e-6.
    expected_sim = 2 * -math.log(1e-6) + 3 * math.log(2)
    expected = -100 * (expected_sim - 3 * math.log(2)) / (3 * math.log(2))
    assert float(M.flv(obs, obs.at[0].set(0.0))) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ reference points


def test_perfect_simulation():
    obs, _ = flows(np.random.default_rng(0), N_TIME)
    m = as_numpy(evaluate(f32(obs), f32(obs)))
    for key, value in [("nse", 1), ("log_nse", 1), ("kge", 1), ("kge_prime", 1), ("r", 1),
                       ("alpha", 1), ("beta", 1), ("gamma", 1), ("rmse", 0), ("bias", 0),
                       ("pbias", 0), ("fhv", 0), ("flv", 0)]:  # fmt: skip
        assert m[key] == pytest.approx(value, abs=1e-5), key


def test_mean_of_obs_gives_zero_nse():
    obs, _ = flows(np.random.default_rng(1), N_TIME)
    sim = np.full_like(obs, obs.mean())
    assert float(evaluate(f32(obs), f32(sim))["nse"]) == pytest.approx(0.0, abs=1e-5)


# ------------------------------------------------------------------ masking, batching, jit


def test_nan_masking_equals_filtering():
    rng = np.random.default_rng(2)
    obs, sim = flows(rng, N_TIME)
    missing_obs = rng.random(N_TIME) < 0.2
    expected = as_numpy(evaluate(f32(obs[~missing_obs]), f32(sim[~missing_obs])))
    assert expected["n_valid"] == (~missing_obs).sum() and np.isfinite(expected["fhv"])
    # Missing observations are NaN; where they are missing the simulation may be anything.
    obs_gappy = np.where(missing_obs, np.nan, obs)
    sim_broken_there = np.where(missing_obs & (rng.random(N_TIME) < 0.5), np.inf, sim)
    assert_metrics_close(as_numpy(evaluate(f32(obs_gappy), f32(sim_broken_there))), expected)
    # An explicit mask on complete series selects the same steps.
    keep = jnp.asarray(~missing_obs)
    assert_metrics_close(as_numpy(evaluate(f32(obs), f32(sim), keep)), expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_simulation_not_finite_on_an_observed_day_is_not_scored(bad):
    """A simulation that fails (NaN or inf) on a day with an observation gives NaN for every
    metric of that series: before, the failed days were left out and the series was scored on
    the others (NSE 0.96 for a simulation that was NaN on 4 of its 6 days)."""
    obs, sim = flows(np.random.default_rng(3), (2, 100))
    failed = np.arange(100) >= 30  # basin 0 fails from day 30 on
    sim[0, failed] = bad
    got = as_numpy(evaluate(f32(obs), f32(sim)))
    for key in FLOAT_KEYS:
        assert np.isnan(got[key][0]), key
        assert np.isfinite(got[key][1]), key  # the other basin of the batch is scored
    assert list(got["n_valid"]) == [100, 100]  # valid steps are those with an observation
    # failed days count only where there is an observation that the mask keeps
    some_failed = jnp.asarray(np.broadcast_to(np.arange(100) >= 20, (2, 100)) & (np.arange(100) < 40))
    masked = as_numpy(evaluate(f32(obs), f32(sim), some_failed))
    assert np.isnan(masked["nse"][0]) and masked["n_valid"][0] == 20
    none_failed = jnp.asarray(np.broadcast_to(np.arange(100) < 30, (2, 100)))
    masked = as_numpy(evaluate(f32(obs), f32(sim), none_failed))
    assert np.isfinite(masked["nse"][0]) and masked["n_valid"][0] == 30
    obs_gone = np.where(failed, np.nan, obs)  # or where the observation is missing
    kept = as_numpy(evaluate(f32(obs_gone), f32(sim)))
    assert_metrics_close({k: v[0] for k, v in kept.items()},
                         {k: v[0] for k, v in as_numpy(evaluate(f32(obs[:, :30]),
                                                                f32(sim[:, :30]))).items()})


@pytest.mark.parametrize("n", [95, 175, 195, 335])
def test_flow_duration_segments_round_the_exact_product(n):
    """The low segment holds round(0.3 n) flows, half to even, of the exact product: n = 95
    gives 28 (28.5 rounds to even) where float32's 0.3 * 95 = 28.500002 gave 29."""
    rng = np.random.default_rng(n)
    obs, sim = flows(rng, n)
    low = int(np.round(0.3 * n))
    assert 0.3 * n % 1 == 0.5 and low % 2 == 0  # the half-way case of these n
    lo, ls = np.log(np.sort(obs)[:low]), np.log(np.sort(sim)[:low])
    qo, qs = np.sum(lo - lo.min()), np.sum(ls - ls.min())
    assert float(M.flv(f32(obs), f32(sim))) == pytest.approx(-100 * (qs - qo) / qo, rel=1e-4)


def _ragged_basins(seed, n_basins=4):
    """Basins with growing missing fractions; the last one has a single valid step."""
    rng = np.random.default_rng(seed)
    obs, sim = flows(rng, (n_basins, N_TIME))
    missing = rng.random((n_basins, N_TIME)) < np.linspace(0.0, 0.6, n_basins)[:, None]
    missing[-1, 1:] = True
    return np.where(missing, np.nan, obs), sim


def test_vmap_and_batch_axes_equal_loop_over_basins():
    obs, sim = _ragged_basins(3)
    loop = [as_numpy(evaluate(f32(o), f32(s))) for o, s in zip(obs, sim)]
    expected = {k: np.stack([m[k] for m in loop]) for k in loop[0]}
    assert np.isnan(expected["nse"][-1]) and np.isfinite(expected["nse"][:-1]).all()
    vmapped = fast_jit(jax.vmap(M.evaluate_all))(f32(obs), f32(sim))
    assert_metrics_close(as_numpy(vmapped), expected)
    # Leading axes batch without vmap too: [basin, time] -> [basin].
    batched = as_numpy(evaluate(f32(obs), f32(sim)))
    assert batched["kge"].shape == (obs.shape[0],)
    assert_metrics_close(batched, expected)


def test_single_metric_functions_under_jit_match_evaluate_all():
    obs, sim = _ragged_basins(4)

    @fast_jit
    def each(obs, sim):
        k, kp = M.kge_components(obs, sim), M.kge_prime_components(obs, sim)
        return {
            "nse": M.nse(obs, sim), "log_nse": M.log_nse(obs, sim), "kge": M.kge(obs, sim),
            "r": M.pearson_r(obs, sim), "alpha": k.alpha, "beta": k.beta,
            "kge_prime": M.kge_prime(obs, sim), "gamma": kp.gamma, "rmse": M.rmse(obs, sim),
            "bias": M.bias(obs, sim), "pbias": M.pbias(obs, sim), "fhv": M.fhv(obs, sim),
            "flv": M.flv(obs, sim), "n_valid": M.n_valid(obs, sim),
        }  # fmt: skip

    assert_metrics_close(as_numpy(each(f32(obs), f32(sim))), as_numpy(evaluate(f32(obs), f32(sim))))


# ------------------------------------------------------------------ degenerate cases

_ALL_NAN = set(FLOAT_KEYS)
_VARIANCE_BASED = {"nse", "log_nse", "kge", "r", "alpha", "kge_prime", "gamma"}


@pytest.mark.parametrize(
    "obs, sim, nan_keys",
    [
        pytest.param([1.0, np.nan, np.nan], [1.0, 2.0, 3.0], _ALL_NAN, id="one_valid_step"),
        pytest.param([np.nan] * 4, [1.0, 2.0, 3.0, 4.0], _ALL_NAN, id="no_valid_step"),
        pytest.param([2.0] * 30, np.linspace(1, 3, 30), _VARIANCE_BASED | {"flv"},
                     id="constant_obs"),  # fmt: skip
        # 0.1 is inexact in binary: the float32 variance of a constant 0.1 series may round to
        # a tiny nonzero number; the metrics must still be NaN, not huge finite values.
        pytest.param([0.1] * 30, np.linspace(0.1, 0.3, 30), _VARIANCE_BASED | {"flv"},
                     id="constant_obs_inexact"),  # fmt: skip
        pytest.param(np.linspace(1, 3, 30), [2.0] * 30, {"r", "kge", "kge_prime"},
                     id="constant_sim"),  # fmt: skip
        pytest.param([-1.0, 1.0], [0.0, 2.0], {"beta", "pbias", "kge", "kge_prime", "gamma",
                     "log_nse", "fhv", "flv"}, id="zero_mean_obs"),  # fmt: skip
        pytest.param([0.0] * 20 + list(range(1, 11)), np.linspace(0.1, 5, 30), {"flv"},
                     id="flat_low_flows"),  # fmt: skip
        pytest.param([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], {"fhv", "flv"},
                     id="fdc_segments_empty_or_single"),  # fmt: skip
    ],
)
def test_degenerate_cases_give_nan(obs, sim, nan_keys):
    # Padding with missing steps also checks that the fill never enters the degeneracy tests.
    m = as_numpy(evaluate(padded(obs), padded(sim)))
    got_nan = {k for k in FLOAT_KEYS if np.isnan(m[k])}
    assert got_nan == nan_keys
    assert not any(np.isinf(m[k]) for k in FLOAT_KEYS)


def test_degenerate_cases_eagerly_without_padding():
    assert np.isnan(float(M.nse(f32([2, 2, 2]), f32([1, 2, 3]))))
    assert np.isnan(float(M.kge(f32([1, 2, 3]), f32([2, 2, 2]))))
    assert np.isnan(float(M.rmse(f32([1, np.nan, np.nan]), f32([1, 2, 3]))))
    assert np.isnan(float(M.fhv(f32([1, 2, 3, 4]), f32([1, 2, 3, 5]))))


# ------------------------------------------------------------------ independent references


def _np_reference(obs, sim):
    """Metrics on complete float64 NumPy series, written from the published formulas."""
    r = scipy.stats.pearsonr(obs, sim).statistic
    alpha, beta = sim.std() / obs.std(), sim.mean() / obs.mean()
    gamma = (sim.std() / sim.mean()) / (obs.std() / obs.mean())
    eps = 0.01 * obs.mean()
    lo, ls = np.log(obs + eps), np.log(sim + eps)
    obs_desc, sim_desc = np.sort(obs)[::-1], np.sort(sim)[::-1]
    top = int(np.round(0.02 * obs.size))
    low = int(np.round(0.3 * obs.size))
    lo_low, ls_low = np.log(np.sort(obs)[:low]), np.log(np.sort(sim)[:low])
    qo, qs = np.sum(lo_low - lo_low.min()), np.sum(ls_low - ls_low.min())
    return {
        "nse": 1 - np.sum((sim - obs) ** 2) / np.sum((obs - obs.mean()) ** 2),
        "log_nse": 1 - np.sum((ls - lo) ** 2) / np.sum((lo - lo.mean()) ** 2),
        "r": r,
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "kge": 1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2),
        "kge_prime": 1 - np.sqrt((r - 1) ** 2 + (gamma - 1) ** 2 + (beta - 1) ** 2),
        "rmse": np.sqrt(np.mean((sim - obs) ** 2)),
        "bias": sim.mean() - obs.mean(),
        "pbias": 100 * (sim.sum() - obs.sum()) / obs.sum(),
        "fhv": 100 * (sim_desc[:top].sum() - obs_desc[:top].sum()) / obs_desc[:top].sum(),
        "flv": -100 * (qs - qo) / qo,
    }


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_against_numpy_scipy(x64):
    rng = np.random.default_rng(5)
    obs, sim = flows(rng, (4, N_TIME))
    obs[rng.random((4, N_TIME)) < 0.1] = np.nan
    dtype, tol = (np.float64, 1e-10) if x64 else (np.float32, 2e-5)
    with jax.enable_x64(x64):
        got = evaluate(jnp.asarray(obs.astype(dtype)), jnp.asarray(sim.astype(dtype)))
        assert all(got[k].dtype == dtype for k in FLOAT_KEYS)
    got = as_numpy(got)
    for b in range(obs.shape[0]):
        keep = np.isfinite(obs[b])
        for key, value in _np_reference(obs[b, keep], sim[b, keep]).items():
            assert got[key][b] == pytest.approx(value, rel=tol, abs=tol), (key, b)


# ------------------------------------------------------------------ gradients, types, errors


@fast_jit
@jax.grad
def _grad_of_metrics(sim, obs):
    metrics = M.evaluate_all(obs, sim)
    return sum(metrics[k] for k in ("nse", "log_nse", "kge", "kge_prime", "rmse", "fhv", "flv"))


def test_gradients_finite_and_zero_on_missing_steps():
    rng = np.random.default_rng(6)
    obs, sim = flows(rng, N_TIME)
    missing = rng.random(N_TIME) < 0.3
    obs_gappy = f32(np.where(missing, np.nan, obs))
    grad = np.asarray(_grad_of_metrics(f32(sim), obs_gappy))
    assert np.isfinite(grad).all()
    assert (grad[missing] == 0).all() and (grad[~missing] != 0).any()
    # A perfect fit puts sqrt(0) inside KGE and RMSE: still a finite gradient.
    assert np.isfinite(np.asarray(_grad_of_metrics(f32(obs), obs_gappy))).all()


@pytest.mark.parametrize("metric", [M.kge, M.kge_prime])
def test_a_nan_score_leaves_the_gradient_finite(metric):
    # A constant simulation has no correlation: its KGE is NaN, but the NaN must not flow back
    # through the finite bias ratio into the gradient (a loss that leaves the series out of
    # its value must not have its gradient poisoned by it).
    rng = np.random.default_rng(7)
    obs, sim = flows(rng, N_TIME)
    obs2 = f32(np.stack([obs, obs]))
    base = f32(np.stack([sim, np.full_like(sim, 0.5)]))
    assert np.isnan(np.asarray(metric(obs2, base))[1])
    grad = np.asarray(jax.grad(lambda s: jnp.nansum(metric(obs2, s)))(base))
    assert np.isfinite(grad).all()
    assert (grad[0] != 0).any()


def test_shape_annotations_hold():
    # Traced abstractly (no compilation): the jaxtyping annotations match what comes out.
    obs = jax.ShapeDtypeStruct((3, 5, 40), jnp.float32)
    mask = jax.ShapeDtypeStruct((3, 5, 40), jnp.bool_)
    for metric in (M.nse, M.kge, M.fhv, M.flv, M.n_valid):
        out = jax.eval_shape(jaxtyped(typechecker=beartype)(metric), obs, obs, mask)
        assert out.shape == (3, 5)
    checked = jaxtyped(typechecker=beartype)(M.kge_components)
    assert jax.eval_shape(checked, obs, obs).alpha.shape == (3, 5)
    short = jax.ShapeDtypeStruct((3, 5, 39), jnp.float32)
    with pytest.raises(TypeCheckError, match="parameter 'sim'"):
        jax.eval_shape(jaxtyped(typechecker=beartype)(M.nse), obs, short)
    with pytest.raises(TypeCheckError, match="parameter 'mask'"):
        jax.eval_shape(jaxtyped(typechecker=beartype)(M.nse), obs, obs, obs)


def test_options_out_of_range_raise():
    # high_fraction=2 (meant as 2 %) gave the percent bias of the whole series, FLV with
    # low_fraction=30 a number
    obs, sim = f32([1.0, 2.0, 3.0, 4.0]), f32([1.0, 2.0, 3.0, 5.0])
    for metric, option, value in ((M.fhv, "high_fraction", 2.0), (M.flv, "low_fraction", 30.0),
                                  (M.fhv, "high_fraction", 0.0), (M.flv, "min_flow", 0.0),
                                  (M.log_nse, "eps_fraction", -0.01),
                                  (M.flv, "low_fraction", float("nan"))):
        with pytest.raises(ValueError, match=rf"{option} must be a number above 0"):
            metric(obs, sim, **{option: value})
    assert np.isfinite(float(M.fhv(obs, sim, high_fraction=1.0)))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        M.nse(f32([1, 2, 3]), f32([1, 2]))
    with pytest.raises(TypeError, match="boolean"):
        M.nse(f32([1, 2, 3]), f32([1, 2, 3]), jnp.ones(3))


def _flow_paths_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "experiments" / "climate_shift" / "flow_paths.py"
    spec = importlib.util.spec_from_file_location("flow_paths", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseflow_filter_splits_a_hydrograph_into_slow_and_quick():
    """The Lyne-Hollick filter of experiments/climate_shift/flow_paths.py: 0 <= slow <= q, a
    steady flow is all slow, the peak of a storm hydrograph is mostly quick and its recession
    tail ends slow."""
    baseflow = _flow_paths_script().baseflow
    steady = np.full((1, 200), 2.0)
    np.testing.assert_allclose(baseflow(steady), steady)
    t = np.arange(200.0)
    storm = 1.0 + np.where(t >= 50, 20.0 * np.exp(-(t - 50) / 3.0), 0.0)[None, :]
    slow = baseflow(storm)
    assert np.all(slow >= 0.0) and np.all(slow <= storm + 1e-12)
    assert slow[0, 50] < 0.2 * storm[0, 50]
    assert slow[0, -1] == pytest.approx(storm[0, -1], rel=0.05)


def test_baseflow_filter_by_hand():
    """One forward pass by hand (alpha 0.925), and the three passes (forward, backward,
    forward) against a plain scalar loop."""
    script = _flow_paths_script()
    q = np.array([[1.0, 5.0, 3.0, 2.0]])
    np.testing.assert_allclose(script._forward(q, 0.925),
                               [[1.0, 1.15, 1.36375, 1.44896875]], rtol=1e-12)

    def one_pass(x, alpha=0.925):
        quick, out = 0.0, [x[0]]
        for t in range(1, len(x)):
            quick = min(max(alpha * quick + (1 + alpha) / 2 * (x[t] - x[t - 1]), 0.0), x[t])
            out.append(x[t] - quick)
        return np.array(out)

    rng = np.random.default_rng(0)
    series = rng.gamma(0.5, 4.0, 60)
    expected = one_pass(one_pass(one_pass(series)[::-1])[::-1])
    np.testing.assert_allclose(script.baseflow(series[None, :])[0], expected, rtol=1e-12)
