"""The pure data-driven LSTM (``model.kind: lstm``): the module, its config rules, and a tiny run
through the same training loop, report, evaluation and CLI as the bucket models.

Tiny runs on 3 real MOPEX basins (2 years train, 1 year validation, 1 year test, 120-day
windows after 60 warm-up days, width 8, one layer), float32 on CPU.
"""

import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import Forcing, Params, write_netcdf
from hybridland.cli import main
from hybridland.io._report import DataAdjustmentWarning
from hybridland.learned import LSTMRunoff
from hybridland.learned.lstm import FORGET_BIAS
from hybridland.physics.pet import HargreavesPET
from hybridland.solvers import check_forcing, simulate_runoff
from hybridland.train import ConfigError, evaluate_run, load_config, load_run
from hybridland.train.losses import nse_star
from runs import BASINS, quiet_train, tiny, trained

TEST = ("1998-01-01", "1998-12-31")
PNG = b"\x89PNG\r\n\x1a\n"


def forcing(n=3, days=40, n_attributes=2, seed=0):
    rng = np.random.default_rng(seed)
    t_min = rng.normal(5.0, 6.0, (n, days))
    return Forcing(
        precip=jnp.asarray(rng.gamma(0.4, 8.0, (n, days)) * (rng.random((n, days)) < 0.5),
                           jnp.float32),
        t_min=jnp.asarray(t_min, jnp.float32),
        t_max=jnp.asarray(t_min + rng.uniform(2, 15, (n, days)), jnp.float32),
        doy=jnp.asarray(np.arange(1, days + 1), jnp.float32),  # shared [time]
        lat=jnp.asarray(rng.uniform(30, 50, n), jnp.float32),
        pet=jnp.asarray(rng.uniform(0, 6, (n, days)), jnp.float32),
        attributes=None if n_attributes == 0
        else jnp.asarray(rng.normal(size=(n, n_attributes)), jnp.float32),
    )


def one_column(f: Forcing, c: int) -> Forcing:
    return jax.tree_util.tree_map(lambda a: a if a.ndim == 1 and a is f.doy else a[c], f)


# ---------------------------------------------------------------------------------------------
# The module


def test_runoff_is_positive_column_time_and_equals_a_loop_over_columns():
    model = LSTMRunoff(2, width=8, depth=2, key=jax.random.key(0))
    f = forcing()
    q = model.runoff(f)
    assert q.shape == (3, 40) and q.dtype == jnp.float32
    assert bool(jnp.all(q > 0)) and bool(jnp.all(jnp.isfinite(q)))
    params = Params.default(dtype=jnp.float32)
    for c in range(3):
        np.testing.assert_allclose(
            q[c], model.column_runoff(one_column(f, c), params), rtol=1e-6, atol=1e-7
        )
    # The training loss path gives the same numbers.
    np.testing.assert_array_equal(simulate_runoff(model, f, Params.default(3)), q)
    # Standard initialisation: the forget gates start open (remembering).
    for cell in model.cells:
        h = cell.hidden_size
        np.testing.assert_array_equal(cell.bias[h : 2 * h], FORGET_BIAS)
        assert not np.allclose(cell.bias[:h], FORGET_BIAS)


def test_runoff_is_causal_and_sees_the_attributes():
    model = LSTMRunoff(2, width=8, key=jax.random.key(1))
    f = forcing()
    q = model.runoff(f)
    later = eqx.tree_at(lambda x: x.precip, f, f.precip.at[:, 25].add(30.0))
    q2 = model.runoff(later)
    np.testing.assert_array_equal(q2[:, :25], q[:, :25])  # the future does not leak back
    assert not np.allclose(q2[:, 25:], q[:, 25:])
    other = eqx.tree_at(lambda x: x.attributes, f, f.attributes + 1.0)
    assert not np.allclose(model.runoff(other), q)
    with pytest.raises(ValueError, match="n_attributes=0"):
        model.runoff(eqx.tree_at(lambda x: x.attributes, f, None, is_leaf=lambda x: x is None))


def test_pet_law_is_checked_and_used():
    model = LSTMRunoff(0, width=4, pet=HargreavesPET(), key=jax.random.key(2))
    f = forcing(n_attributes=0)
    check_forcing(model, f)  # Hargreaves needs temperatures, doy and lat, all present
    given = LSTMRunoff(0, width=4, key=jax.random.key(2))
    no_pet = eqx.tree_at(lambda x: x.pet, f, None, is_leaf=lambda x: x is None)
    with pytest.raises(ValueError, match="forcing.pet"):
        check_forcing(given, no_pet)
    assert bool(jnp.all(jnp.isfinite(model.runoff(no_pet))))


def test_gradients_are_finite_and_reach_every_weight():
    model = LSTMRunoff(2, width=8, depth=2, key=jax.random.key(3))
    f = forcing(days=60)
    f = eqx.tree_at(lambda x: x.precip, f, f.precip.at[0].set(0.0))  # a rainless column
    obs = jnp.asarray(np.random.default_rng(4).gamma(1.0, 1.0, (3, 60)), jnp.float32)

    def loss(m):
        return nse_star(obs[:, 20:], simulate_runoff(m, f, Params.default(3))[:, 20:])

    grads = eqx.filter_grad(loss)(model)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


# ---------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    "model, match",
    [
        ({"trainable_params": ["ddf"]}, r"model\.trainable_params' must be empty for kind lstm"),
        ({"parameter_network": True, "static_attributes": ["aridity"]},
         r"model\.parameter_network' must be false for kind lstm"),
        ({"depth": 0}, r"model\.depth' is the number of stacked LSTM layers"),
    ],
)
def test_config_refuses_what_an_lstm_does_not_have(model, match):
    with pytest.raises(ConfigError, match=match):
        tiny("lstm", **model)


def test_climate_shift_lstm_config_loads():
    root = Path(__file__).resolve().parents[1] / "experiments" / "climate_shift"
    config = load_config(root / "lstm.yaml")
    hybrid = load_config(root / "hybrid.yaml")
    assert config.model.kind == "lstm" and config.model.width == 64
    # the hybrid's attributes, less the storage its root-zone prior reads (given to the LSTM
    # as an input it lowered its arid KGE, docs/training.md)
    assert set(hybrid.model.static_attributes) - set(config.model.static_attributes) == {
        "log_root_zone_storage"} and hybrid.model.root_zone_prior
    assert set(config.model.static_attributes) < set(hybrid.model.static_attributes)
    assert config.data == hybrid.data and config.data.aridity_range == (0.0, 1.0)
    # trained as the MOPEX peer is (experiments/mopex/lstm.yaml), on the humid basins
    mopex = load_config(root.parent / "mopex" / "lstm.yaml")
    assert config.training == mopex.training and config.model == mopex.model


# ---------------------------------------------------------------------------------------------
# A tiny run through the training pipeline


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory, mopex_file):
    config = tiny("lstm", static_attributes=["aridity", "mean_precip"]).replace(
        "data", test_period=TEST
    )
    return trained(tmp_path_factory, config, "lstm")


def test_lstm_trains_and_writes_the_run_directory(lstm_run):
    config, run_dir, result = lstm_run
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    assert min(r["val_loss"] for r in result.history) < result.history[0]["val_loss"]
    for name in ("config.yaml", "train.log", "metrics.csv", "model.eqx", "run.json",
                 "normalisation.json", "basins.csv", "metrics_validation.csv",
                 "metrics_test.csv"):
        assert (run_dir / name).is_file(), name
    for name in ("training_curves", "hydrographs_validation", "hydrographs_test", "metric_cdf"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:8] == PNG, name
    assert not list((run_dir / "plots").glob("water_budget_*"))
    assert "no water balance" in (run_dir / "train.log").read_text()
    # basins.csv: attributes, no parameter columns; the loaded run equals the trained one.
    basins = pd.read_csv(run_dir / "basins.csv", dtype={"basin": str})
    assert list(basins.columns) == ["basin", "name", "aridity", "mean_precip"]
    model, params, _, _ = load_run(run_dir)
    assert isinstance(model, LSTMRunoff)
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(result.model, eqx.is_array))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(params.pet_coefficient, 1.0)


def test_lstm_evaluation_has_runoff_and_no_water_balance(lstm_run, tmp_path):
    _, run_dir, result = lstm_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        evaluation = evaluate_run(run_dir, progress=False)
    assert evaluation.simulation is None and evaluation.runoff.shape == (3, 365)
    assert (evaluation.runoff > 0).all()
    table = evaluation.table
    assert list(table["basin"]) == BASINS and (table["parameters"] == "none").all()
    assert np.isfinite(table["nse"]).all() and np.isfinite(table["kge"]).all()
    for column in ("max_abs_step_residual_mm", "max_abs_cumulative_residual_mm",
                   "mean_et_mm_day", "mean_groundwater_loss_mm_day",
                   "mean_infiltration_excess_mm_day"):
        assert table[column].isna().all(), column
    np.testing.assert_allclose(table["mean_runoff_mm_day"], evaluation.runoff.mean(1), rtol=1e-6)
    assert (table["mean_precip_mm_day"] > 0).all()
    ds = evaluation.dataset()
    assert set(ds.data_vars) == {"runoff", "observed_runoff"}
    assert ds["runoff"].attrs["standard_name"] == "runoff_flux"
    assert "water_budget" not in ds["runoff"].attrs
    with xr.open_dataset(write_netcdf(ds, tmp_path / "lstm.nc")) as back:
        np.testing.assert_allclose(back["runoff"].values, evaluation.runoff, rtol=1e-6)
    # The report's validation table agrees with the training loop's own validation score.
    validation = pd.read_csv(run_dir / "metrics_validation.csv")
    best = result.history[result.best_epoch]
    np.testing.assert_allclose(validation["nse"].median(), best["val_median_nse"], rtol=1e-4)


def test_cli_evaluates_an_lstm_run(lstm_run, tmp_path, capsys):
    _, run_dir, _ = lstm_run
    out = tmp_path / "x.csv"
    code = main(["evaluate", "--run-dir", str(run_dir), "--out", str(out),
                 "--plots", str(tmp_path / "plots")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "(lstm model)" in printed and "no water balance" in printed
    table = pd.read_csv(out, dtype={"basin": str})
    assert list(table["basin"]) == BASINS and np.isfinite(table["nse"]).all()
    assert (tmp_path / "plots" / "hydrographs_x.png").read_bytes()[:8] == PNG


class Killed(Exception):
    pass


def test_resumed_lstm_run_gives_bitwise_identical_weights(tmp_path, mopex_file):
    config = tiny("lstm", epochs=3, static_attributes=["aridity"])
    a = quiet_train(config, tmp_path / "a", report=False)

    def kill_after_epoch_0(epoch, row):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        quiet_train(config, tmp_path / "b", callback=kill_after_epoch_0, report=False)
    assert not (tmp_path / "b" / "model.eqx").exists()
    b = quiet_train(config, tmp_path / "b", report=False)
    assert b.finished and b.epochs_completed == 3
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    ta = (tmp_path / "a" / "checkpoints" / "epoch_00002.eqx").read_bytes()
    tb = (tmp_path / "b" / "checkpoints" / "epoch_00002.eqx").read_bytes()
    assert ta == tb
    model_a, model_b = (tmp_path / "a" / "model.eqx"), (tmp_path / "b" / "model.eqx")
    assert model_a.read_bytes() == model_b.read_bytes()
    assert "resumed from epoch_00000.json" in (tmp_path / "b" / "train.log").read_text()
