"""Training core: configs, losses, the resumable loop, atomic checkpoints, closure after training.

Tiny runs on 3 real MOPEX basins (2 years train, 1 year validation, 120-day windows after 60
warm-up days, width 8), float32 on CPU.
"""

import json
import math
import os
import sys
import textwrap
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybridland import metrics, simulate
from hybridland.io import mopex_path
from hybridland.io._report import DataAdjustmentWarning
from hybridland.train import (
    ConfigError,
    config_from_dict,
    config_from_yaml,
    kge_loss,
    latest_checkpoint,
    load_checkpoint,
    load_config,
    load_data,
    load_run,
    mse,
    nse_star,
    save_checkpoint,
    train,
)
from hybridland.train import checkpoint as ckpt
from hybridland.train import use_compilation_cache

from runs import (BASINS, fresh_python, hold_lock, hold_lock_attempt, hold_lock_attempts, quiet_train,
                  tiny)

@pytest.fixture(scope="module", autouse=True)
def _needs_mopex(mopex_file):
    """Every test here trains on the shared MOPEX file (the fixture fails if it is absent)."""


def quiet_load_data(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        return load_data(*args)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def assert_bitwise_equal(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb) and la
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype and np.array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# Config


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
data:
  train_period: [1995-01-01, 1996-12-31]
  validation_period: [1997-01-01, 1997-12-31]
"""


@pytest.mark.parametrize("name, basin", [("1e-3", "1e5"), ("2E5", "+1_0"), (".5", "0x1F"),
                                         ("lr-1e-3", "1.0")])
def test_text_that_reads_as_a_number_is_written_quoted(name, basin):
    # run.name: 1e-3 was written plain (text to PyYAML) and read back as a float: the finished
    # run's config.yaml could not be read again, and every evaluation of the run failed
    config = tiny("physics", epochs=1).replace("run", name=name).replace(
        "data", basins=(basin, "01064500"))
    back = config_from_yaml(config.to_yaml())
    assert back == config and back.run.name == name and back.data.basins[0] == basin


def test_config_loads_and_round_trips(tmp_path):
    config = load_config(write(tmp_path, BASE + "training: {loss: kge, extreme_weight: 0.5}\n"))
    assert config.training.loss == "kge" and config.training.extreme_weight == 0.5
    assert config.data.train_period == ("1995-01-01", "1996-12-31")
    assert config_from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize(
    "extra, match",
    [
        ("training: {learnin_rate: 0.1}\n", r"training\.learnin_rate.*learning_rate"),
        ("trainig: {epochs: 1}\n", r"trainig.*valid sections"),
        ("training: {learning_rate: -1}\n", r"training\.learning_rate' must be a finite number > 0"),
        # non-finite numbers went through: a NaN loss after the run directory was made, or a
        # run that "finished" with NaN weights
        ("training: {learning_rate: .inf}\n", r"training\.learning_rate' must be a finite"),
        ("training: {extreme_weight: .nan}\n", r"training\.extreme_weight' must be a number"),
        ("training: {weight_decay: .inf}\n", r"training\.weight_decay' must be a finite"),
        ("training: {clip_norm: .inf}\n", r"training\.clip_norm' must be a finite"),
        # a seed beyond 64 bits ended in a raw OverflowError, the run directory half made
        ("run: {seed: 99999999999999999999}\n", r"run\.seed' must be an integer in \[0, 2\*\*63"),
        ("training: {epochs: 2.5}\n", r"training\.epochs' must be an integer"),
        ("training: {loss: rmse}\n", r"training\.loss' must be one of"),
        ("model: {width: '8'}\n", r"model\.width' must be an integer"),
        ("model: {kind: transformer}\n", r"model\.kind' unknown model kind 'transformer'"),
        ("model: {trainable_params: [ddf, nope]}\n", r"model\.trainable_params' unknown \['nope'\]"),
        ("model: {kind: physics}\n", r"model\.trainable_params"),
        ("training: {window_days: 1000}\n", r"training\.window_days"),
        ("training: {plateau_patience: 0}\n", r"training\.plateau_patience' must be >= 1"),
        # the run would stop before its first reduction
        ("training: {schedule: plateau, patience: 10, plateau_patience: 10}\n",
         r"training\.plateau_patience' is 10, not below patience \(10\)"),
        # counted at validations, the rate fell at the validation that stopped the run: it
        # never trained at a reduced rate
        ("training: {schedule: plateau, patience: 20, plateau_patience: 15, validate_every: 10}\n",
         r"plateau_patience' is 15, not below patience \(20\) \(counted at validations, every 10"),
        # a section that is not a mapping became all defaults
        ("training: []\n", r"Section 'training' must be a mapping, got list"),
        ("model: false\n", r"Section 'model' must be a mapping, got bool"),
    ],
)
def test_config_errors_name_the_field(tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, BASE + extra))


def test_config_numbers_and_ids_are_read_as_written(tmp_path):
    """YAML 1.1 read an unquoted gauge id with a leading zero as octal (01064500 became the
    basin '289088', while 01098500, not octal, stayed text) and 1e-3 as text (refused as not a
    number); 1:30 became 90. Ids keep their text, numbers in exponent form are numbers."""
    text = (BASE.replace("data:", "data:\n  basins: [01064500, 01098500, '01055500']", 1)
            + "training: {learning_rate: 1e-3, weight_decay: 2E-5, epochs: 3}\n"
            + "run: {name: 1:30, seed: 7}\n")
    config = load_config(write(tmp_path, text))
    assert config.data.basins == ("01064500", "01098500", "01055500")
    assert config.training.learning_rate == 1e-3 and config.training.weight_decay == 2e-5
    assert config.training.epochs == 3 and config.run.seed == 7 and config.run.name == "1:30"
    assert config_from_yaml(config.to_yaml()) == config
    with pytest.raises(ConfigError, match=r"training\.epochs' must be an integer, got '010'"):
        load_config(write(tmp_path, BASE + "training: {epochs: 010}\n"))


def test_a_period_outside_a_canonical_file_names_the_file_and_its_days():
    """The Fulda and NetCDF loaders selected an empty axis for a period outside their data:
    'The 'time' axis of <dataset> is empty', naming neither file nor days."""
    from hybridland.io._checks import PeriodError
    from hybridland.train.data import LOADERS

    config = config_from_dict({"data": {"loader": "fulda",
                                        "train_period": ["1990-01-01", "1991-12-31"],
                                        "validation_period": ["1992-01-01", "1992-12-31"],
                                        "warmup_days": 30}})
    with pytest.raises(PeriodError, match=r"not inside the data of the spotpy Fulda example "
                       r"data \(1979-01-01 \.\. 1988-12-31\); choose days within it"):
        LOADERS["fulda"](config.data, 0)


def test_seeds_beyond_32_bits_seed_other_weights_in_both_precisions():
    """``jax.random.key`` keeps the low 32 bits of a seed in float32 mode: seed 2**32 + 5
    gave the weights of seed 5 there (and others in float64 mode)."""
    from hybridland._random import seed_key

    def data(seed):
        return np.asarray(jax.random.key_data(seed_key(seed)))

    np.testing.assert_array_equal(data(5), jax.random.key_data(jax.random.key(5)))
    seeds = [0, 5, 2**32 - 1, 2**32, 2**32 + 5, 2**63 - 1, -1, -(2**63)]
    keys = [tuple(data(s).tolist()) for s in seeds]
    assert len(set(keys)) == len(seeds)
    with jax.enable_x64(True):
        assert [tuple(data(s).tolist()) for s in seeds] == keys
    # the training's networks: different weights
    from hybridland.train.loop import build_model

    a, b = (leaves(build_model(tiny("hybrid").replace("run", seed=s), 5)) for s in (5, 2**32 + 5))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_config_errors_in_data_section(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.validation_period"):
        load_config(write(tmp_path, "data: {train_period: [1995-01-01, 1996-12-31]}\n"))
    # date.fromisoformat takes these too; the readers of periods downstream failed on them
    # with messages naming no key
    for first in ("19950101", "1995-W01-1"):
        with pytest.raises(ConfigError, match=r"data\.train_period.*YYYY-MM-DD"):
            load_config(write(tmp_path, BASE.replace("1995-01-01", first)))
    bad = BASE.replace("1996-12-31", "1994-12-31")
    with pytest.raises(ConfigError, match=r"data\.train_period' ends"):
        load_config(write(tmp_path, bad))


def test_config_base_updates_the_base_section_by_section(tmp_path):
    (tmp_path / "parent").mkdir()
    grand = tmp_path / "parent" / "grand.yaml"
    grand.write_text(BASE + "training: {epochs: 7, learning_rate: 0.02}\nrun: {name: g}\n")
    mid = tmp_path / "parent" / "mid.yaml"
    mid.write_text("base: grand.yaml\ntraining: {epochs: 9}\n")
    child = write(tmp_path, "base: parent/mid.yaml\nrun: {name: c}\n"
                            "data: {validation_period: [1998-01-01, 1998-12-31]}\n")
    config = load_config(child)
    # keys set below replace the base's; keys not set are the base's, two levels down
    assert config.run.name == "c" and config.training.epochs == 9
    assert config.training.learning_rate == 0.02
    assert config.data.train_period == ("1995-01-01", "1996-12-31")
    assert config.data.validation_period == ("1998-01-01", "1998-12-31")
    assert load_config(mid).training.epochs == 9 and load_config(mid).run.name == "g"
    assert "base" not in config.to_yaml()  # a run directory's copy stands alone
    assert config_from_yaml(config.to_yaml()) == config
    # a section left empty (its keys commented out) changes nothing
    empty = write(tmp_path, "base: parent/mid.yaml\ntraining:\n#  epochs: 3\n")
    assert load_config(empty).training == load_config(mid).training
    # a link to a file elsewhere: its base is found beside the file, not beside the link
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "link.yaml").symlink_to(mid)
    assert load_config(tmp_path / "runs" / "link.yaml") == load_config(mid)


@pytest.mark.parametrize(
    "text, match",
    [
        ("base: missing.yaml\n", r"missing\.yaml \(the base of .*run\.yaml\) does not exist"),
        ("base: [a.yaml]\n", r"'base' must name another configuration file"),
        ("base: run.yaml\n", r"comes back to a file already in its chain"),
        ("base: other.yaml\n", r"comes back to a file already in its chain"),
        ("base: list.yaml\n", r"list\.yaml \(the base of .*\) is not a mapping"),
        ("base: good.yaml\ntraining: {epochs: 0}\n",
         r"run\.yaml \(with its base .*good\.yaml\): .*training\.epochs"),
        ("base: bad.yaml\n", r"run\.yaml \(with its base .*bad\.yaml\): .*training\.epochs"),
        ("base: .\n", r"Configuration file .* is a folder; give a YAML file"),
    ],
)
def test_config_base_errors_name_the_file(tmp_path, text, match):
    (tmp_path / "other.yaml").write_text("base: run.yaml\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "good.yaml").write_text(BASE)
    (tmp_path / "bad.yaml").write_text(BASE + "training: {epochs: -1}\n")
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


# ---------------------------------------------------------------------------------------------
# Losses


OBS = np.array([[1.0, 2.0, np.nan, 3.0], [0.0, 4.0, 2.0, np.nan]], np.float32)
SIM = np.array([[1.5, 2.0, 7.0, 2.0], [1.0, 3.0, 2.0, 9.0]], np.float32)


def test_nse_star_by_hand():
    # basin 0: valid 1,2,3 vs 1.5,2,2 -> MSE (0.25+0+1)/3; std of [1,2,3] = sqrt(2/3)
    # basin 1: valid 0,4,2 vs 1,3,2 -> MSE (1+1+0)/3; std of [0,4,2] = sqrt(8/3)
    b0 = (1.25 / 3) / (math.sqrt(2 / 3) + 0.1) ** 2
    b1 = (2.0 / 3) / (math.sqrt(8 / 3) + 0.1) ** 2
    assert float(nse_star(OBS, SIM)) == pytest.approx((b0 + b1) / 2, rel=1e-6)
    # Given training-period std (Kratzert et al.), eps = 0: 1 - NSE averaged over basins.
    std = np.array([math.sqrt(2 / 3), math.sqrt(8 / 3)], np.float32)
    expected = 1.0 - np.mean(np.asarray(metrics.nse(OBS, SIM)))
    assert float(nse_star(OBS, SIM, obs_std=std, eps=0.0)) == pytest.approx(expected, rel=1e-6)


def test_mse_and_extreme_weights_by_hand():
    assert float(mse(OBS, SIM)) == pytest.approx((0.25 + 0 + 1 + 1 + 1 + 0) / 6, rel=1e-6)
    lam = 2.0
    mu = np.array([2.0, 2.0])  # mean valid obs of each basin
    w, err = [], []
    for b in range(2):
        for t in range(4):
            if np.isfinite(OBS[b, t]):
                w.append(1 + lam * math.exp(-OBS[b, t] / mu[b]))
                err.append((SIM[b, t] - OBS[b, t]) ** 2)
    expected = np.dot(w, err) / np.sum(w)
    assert float(mse(OBS, SIM, extreme_weight=lam)) == pytest.approx(expected, rel=1e-6)
    # Low flows count more: an error on the dry day weighs more than the same on a wet day.
    dry = SIM.copy()
    dry[1, 0] += 1.0
    wet = SIM.copy()
    wet[1, 1] += 1.0
    assert float(mse(OBS, dry, extreme_weight=lam)) > float(mse(OBS, wet, extreme_weight=lam))


def test_kge_loss_matches_metrics():
    expected = np.mean(1.0 - np.asarray(metrics.kge(OBS, SIM)))
    assert float(kge_loss(OBS, SIM)) == pytest.approx(expected, rel=1e-6)
    assert float(kge_loss(OBS, SIM, extreme_weight=1.0)) > float(kge_loss(OBS, SIM))


def test_kge_loss_gradient_stays_finite_when_a_basin_scores_nan():
    # One basin's simulation is constant (an all-zero runoff head): its KGE is NaN and the
    # loss leaves it out; the gradient must be finite so that training goes on.
    sim = np.stack([OBS[0] * 0.8 + 0.1, np.zeros_like(OBS[0])])
    obs = np.stack([OBS[0], OBS[0]])
    sim, obs = np.nan_to_num(sim, nan=1.0), np.nan_to_num(obs, nan=1.0)
    grad = jax.grad(lambda a: kge_loss(obs, a * sim))(jnp.float32(1.0))
    assert np.isfinite(float(grad)) and float(grad) != 0.0


@pytest.mark.parametrize("loss", [nse_star, mse, kge_loss])
def test_a_simulation_that_is_not_finite_makes_the_loss_nan(loss):
    # A diverged model (NaN runoff) must not score as perfect: kge_loss left the basin out and
    # returned 0, so the training loop's NaN guard never fired.
    sim = SIM.copy()
    sim[1, 1] = np.nan
    assert np.isnan(float(loss(OBS, sim)))
    sim = SIM.copy()
    sim[0, 2] = np.nan  # where obs is missing: does not count
    assert np.isfinite(float(loss(OBS, sim)))


@pytest.mark.parametrize("loss", [nse_star, mse, kge_loss])
def test_losses_ignore_gaps_and_mask_and_jit(loss):
    base = float(loss(OBS, SIM))
    other = SIM.copy()
    other[0, 2] = -50.0  # where obs is NaN
    assert float(loss(OBS, other)) == base
    grad = jax.grad(lambda s: loss(jnp.asarray(OBS), s))(jnp.asarray(SIM))
    assert np.all(np.isfinite(grad)) and grad[0, 2] == 0 and grad[1, 3] == 0
    assert float(jax.jit(loss)(OBS, SIM)) == pytest.approx(base, rel=1e-6)
    # A masked (warm-up) step does not count.
    mask = np.ones(OBS.shape, bool)
    mask[:, 0] = False
    moved = SIM.copy()
    moved[:, 0] += 5.0
    assert float(loss(OBS, moved, mask)) == float(loss(OBS, SIM, mask))
    assert float(loss(OBS, moved)) != base


# ---------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory):
    config = tiny("hybrid", static_attributes=["aridity", "mean_precip"],
                  trainable_params=["baseflow_rate"])
    run_dir = tmp_path_factory.mktemp("hybrid")
    return config, run_dir, quiet_train(config, run_dir)


def test_physics_training_loss_decreases(tmp_path):
    result = quiet_train(tiny("physics"), tmp_path)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    # Parameters moved away from their defaults and stayed in range.
    result.params.check_bounds()
    assert not np.allclose(np.asarray(result.params.runoff_shape), 2.0)


def test_hybrid_training_loss_decreases_and_writes_run_dir(hybrid_run):
    config, run_dir, result = hybrid_run
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.9 * losses[0], losses
    for name in ("config.yaml", "train.log", "metrics.csv", "model.eqx", "run.json",
                 "normalisation.json"):
        assert (run_dir / name).is_file(), name
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_loss,val_median_nse") and len(rows) == 5
    assert json.loads((run_dir / "run.json").read_text())["basins"] == BASINS
    assert result.best_epoch == int(np.argmin([r["val_loss"] for r in result.history]))


def test_normalisation_fitted_on_training_period(hybrid_run):
    config, run_dir, result = hybrid_run
    norm = result.normalisation
    assert norm.names == ("aridity", "mean_precip")
    data = quiet_load_data(config, norm)
    first, last = data.periods["train"]
    p = data.series["precip"][:, first : last + 1].mean(1)
    pe = data.series["pet"][:, first : last + 1].mean(1)
    np.testing.assert_allclose(norm.mean, [np.mean(pe / p), np.mean(p)], rtol=1e-5)
    np.testing.assert_allclose(norm.std, [np.std(pe / p), np.std(p)], rtol=1e-5)
    np.testing.assert_allclose(data.attributes.mean(0), 0.0, atol=1e-5)
    # Saved with the run and read back by load_run.
    _, _, loaded, _ = load_run(run_dir)
    np.testing.assert_array_equal(loaded.mean, norm.mean)


def test_trained_hybrid_still_closes(hybrid_run):
    config, run_dir, result = hybrid_run
    model, params, norm, loaded_config = load_run(run_dir)
    assert loaded_config == config.replace("data", path=str(mopex_path()))
    assert_bitwise_equal((model, params), (result.model, result.params))
    # The weights did train (they differ from the initial network).
    from hybridland.train.loop import build_model

    assert not all(
        np.array_equal(a, b) for a, b in zip(leaves(model), leaves(build_model(config, 2)))
    )
    data = quiet_load_data(loaded_config, norm)
    n = data.n_basins
    forcing = data.forcing(np.arange(n), np.zeros(n, int), len(data.time))
    sim = simulate(model, forcing, params)
    assert sim.fluxes.runoff.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(sim.cumulative_water_residual))) < 1e-3
    assert float(jnp.max(jnp.abs(sim.fluxes.water_residual))) < 1e-3


class Killed(Exception):
    pass


def test_resume_gives_bitwise_identical_weights(tmp_path):
    config = tiny("hybrid", epochs=4, trainable_params=["runoff_shape", "baseflow_rate"])
    a = quiet_train(config, tmp_path / "a")

    def kill_after_epoch_1(epoch, row):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        quiet_train(config, tmp_path / "b", callback=kill_after_epoch_1)
    assert not (tmp_path / "b" / "model.eqx").exists()
    assert not ckpt.lock_path(tmp_path / "b").exists()  # released, however the training ended
    partial = quiet_train(config, tmp_path / "b", max_epochs_this_call=1)  # epoch 2 only
    assert not partial.finished and partial.epochs_completed == 3
    b = quiet_train(config, tmp_path / "b")
    assert b.finished and b.epochs_completed == 4
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert_bitwise_equal(a.model, b.model)
    assert_bitwise_equal(a.params, b.params)
    ma, mb = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    assert_bitwise_equal(ma[:2], mb[:2])
    # The last checkpoints (current weights, optimiser state) agree too, not only the best.
    ta = (tmp_path / "a" / "checkpoints" / "epoch_00003.eqx").read_bytes()
    tb = (tmp_path / "b" / "checkpoints" / "epoch_00003.eqx").read_bytes()
    assert ta == tb
    log = (tmp_path / "b" / "train.log").read_text()
    assert "resumed from epoch_00001.json" in log and "resumed from epoch_00002.json" in log


def _strict_json(text):
    """``json.loads`` refusing NaN / Infinity, which standard JSON has no words for."""
    def refuse(word):
        raise ValueError(f"non-standard JSON constant {word}")

    return json.loads(text, parse_constant=refuse)


def test_checkpoints_and_run_record_are_standard_json_and_resume_unvalidated_epochs(tmp_path):
    config = tiny("hybrid", epochs=3, trainable_params=["runoff_shape", "baseflow_rate"])
    config = config.replace("training", validate_every=2)  # epoch 0 has no validation scores

    def kill_after_epoch_0(epoch, row):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        quiet_train(config, tmp_path / "b", callback=kill_after_epoch_0)
    marker = tmp_path / "b" / "checkpoints" / "epoch_00000.json"
    record = _strict_json(marker.read_text())  # failed before: NaN for the missing scores
    assert record["history"][0]["val_loss"] is None and record["best_val_loss"] is None
    b = quiet_train(config, tmp_path / "b")
    a = quiet_train(config, tmp_path / "a")
    for run in (a, b):
        assert math.isnan(run.history[0]["val_loss"])  # NaN again once read back
        assert math.isfinite(run.history[1]["val_loss"])
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert_bitwise_equal(a.model, b.model)
    for run_dir in (tmp_path / "a", tmp_path / "b"):
        _strict_json((run_dir / "run.json").read_text())
        for path in (run_dir / "checkpoints").glob("*.json"):
            _strict_json(path.read_text())


def test_a_non_finite_validation_loss_stops_the_training_with_a_clear_error(tmp_path, monkeypatch):
    from hybridland.train import loop

    real = loop._evaluate

    def diverged(*args):
        loss, nse = real(*args)
        return loss * jnp.nan, nse

    monkeypatch.setattr(loop, "_evaluate", diverged)
    config = tiny("hybrid", epochs=2, trainable_params=["runoff_shape"])
    with pytest.raises(FloatingPointError, match="Validation loss is nan in epoch 0"):
        quiet_train(config, tmp_path / "run")  # before: NaN became the best loss, silently


def _zombie(proc) -> bool:
    """Whether ``proc`` has ended without having been reaped by its parent (this process)."""
    return Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_one_process_at_a_time_trains_in_a_run_directory(tmp_path):
    run_dir, config = tmp_path / "run", tiny("physics", epochs=1)
    holder = hold_lock(run_dir, 120)
    try:
        with pytest.raises(ckpt.RunLockedError, match=rf"process {holder.pid} on ") as err:
            quiet_train(config, run_dir)
        assert err.value.pid == holder.pid and not run_dir.exists()
        # killed, and not even reaped yet (a zombie keeps its PID): its lock ends with it, once
        # its last thread has exited (the main thread shows as a zombie a little before)
        holder.kill()
        assert ckpt.lock_path(run_dir).is_file()  # left behind: its holder could not remove it
        for _ in range(600):
            try:
                with ckpt.hold_run(run_dir):
                    break
            except ckpt.RunLockedError:
                time.sleep(0.05)
        assert _zombie(holder)  # free while its holder still awaits reaping
        assert quiet_train(config, run_dir).finished
    finally:
        holder.kill()
        holder.wait()
    assert not ckpt.lock_path(run_dir).exists()
    # a refused training releases it too
    with pytest.raises(ckpt.RunFileError, match="another configuration"):
        quiet_train(config.replace("training", learning_rate=0.5), run_dir)
    assert not ckpt.lock_path(run_dir).exists()


def test_the_lock_is_one_per_directory_whatever_its_spelling(tmp_path):
    run_dir = tmp_path / "run"
    with ckpt.hold_run(run_dir) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        spellings = (run_dir, tmp_path / "run" / "sub" / "..", tmp_path / "." / "run")
        for other in spellings:
            with ckpt.hold_run(other):  # its holder holds it again, whatever the spelling
                pass
            assert lock.is_file()
        # still locked for another process, whatever the spelling; others are free
        assert hold_lock_attempts(*spellings, tmp_path / "another") == [3, 3, 3, 0]
    assert hold_lock_attempt(run_dir / "sub" / "..") == 0  # free again


def test_a_lock_file_left_behind_does_not_stop_a_training(tmp_path):
    # only a live process holds a lock; the file's content is for the message
    run_dir = tmp_path / "run"
    ckpt.lock_path(run_dir).write_text('{"pid": 1, "host": "elsewhere"}')
    assert quiet_train(tiny("physics", epochs=1), run_dir).finished
    assert not ckpt.lock_path(run_dir).exists()


def test_run_json_is_written_after_the_files_a_finished_run_is_read_from(tmp_path, monkeypatch):
    # another process takes a run with run.json as finished: what it reads must be there
    seen, write = {}, ckpt.atomic_write_text

    def recording(path, text):
        if Path(path).name == "run.json":
            seen.update({n: (Path(path).parent / n).is_file()
                         for n in ("model.eqx", "basins.csv", "normalisation.json")})
        write(path, text)

    monkeypatch.setattr(ckpt, "atomic_write_text", recording)
    quiet_train(tiny("physics", epochs=1), tmp_path / "run")
    assert seen == {"model.eqx": True, "basins.csv": True, "normalisation.json": True}


def test_resume_refuses_another_config(tmp_path):
    config = tiny("physics", epochs=2)
    quiet_train(config, tmp_path, max_epochs_this_call=1)
    other = config.replace("training", learning_rate=0.5)
    with pytest.raises(ValueError, match=r"training\.learning_rate: 0\.02 -> 0\.5"):
        quiet_train(other, tmp_path)


def test_train_refuses_a_folder_of_the_users_files(tmp_path, capsys):
    from hybridland.cli import main

    folder = tmp_path / "userdir"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ckpt.RunFileError, match=r"userdir is not empty \(metrics\.csv, notes"
                       r"\.txt\).*give a new or empty folder"):
        quiet_train(tiny("physics", epochs=1), folder)
    config = tmp_path / "tr.yaml"
    config.write_text(tiny("physics", epochs=1).to_yaml())
    assert main(["train", "--config", str(config), "--run-dir", str(folder),
                 "--no-progress"]) == 2
    assert f"Run directory {folder} is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.csv", "notes.txt"]
    assert (folder / "metrics.csv").read_text() == "a,b\n1,2\n"
    assert not ckpt.lock_path(folder).exists()


def test_a_folder_with_files_named_like_a_runs_is_not_taken_for_one(tmp_path):
    """A folder holding the user's train.log (or a normalisation.json, run.json or checkpoints
    folder of their own) counted as a run directory: training replaced the files there."""
    folder = tmp_path / "userdir"
    (folder / "plots").mkdir(parents=True)
    (folder / "train.log").write_text("my notes on the training\n")
    (folder / "plots" / "metric_cdf.png").write_bytes(b"my figure")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "model_v1.pt").write_bytes(b"weights of another tool")
    (folder / "run.json").write_text('{"job": 7}')
    with pytest.raises(ckpt.RunFileError, match=r"userdir is not empty.*not a run directory"):
        quiet_train(tiny("physics", epochs=1), folder)
    assert (folder / "plots" / "metric_cdf.png").read_bytes() == b"my figure"
    assert (folder / "train.log").read_text() == "my notes on the training\n"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "plots", "run.json",
                                                        "train.log"]
    # a training's own folder, stopped at any point, is still one
    from hybridland.train.loop import is_run_directory

    run = tmp_path / "run"
    quiet_train(tiny("physics", epochs=2), run, max_epochs_this_call=1)
    assert is_run_directory(run)
    (run / "run.json").unlink(missing_ok=True)
    (run / "normalisation.json").rename(run / "kept.json")
    assert is_run_directory(run)  # its checkpoints
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    # an empty checkpoints folder is no sign of a run (a user's empty folder of that name):
    # what a training leaves before its first checkpoint is taken up by check_run_directory
    # (test_a_folder_with_an_empty_checkpoints_folder_is_not_taken_for_a_run)
    assert not is_run_directory(run)


def test_train_keeps_the_users_config_yaml_in_the_run_directory(tmp_path, capsys):
    """`train --config exp/config.yaml --run-dir exp` replaced the user's own file (comments,
    base:) with the resolved dump: a lone config.yaml counted as a run's. Now it is refused
    unless it is exactly what the training writes (a training stopped right after writing
    it), and that one still starts."""
    from hybridland.cli import main
    from hybridland.train.loop import _resolved

    folder = tmp_path / "exp"
    folder.mkdir()
    mine = "# my experiment\n" + tiny("physics", epochs=1).to_yaml()
    (folder / "config.yaml").write_text(mine)
    assert main(["train", "--config", str(folder / "config.yaml"), "--run-dir", str(folder),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'config.yaml'} is not a configuration written by a training" in err
    assert "keep your configuration outside the run directory" in err
    assert [p.name for p in folder.iterdir()] == ["config.yaml"]
    assert (folder / "config.yaml").read_text() == mine
    # the file an interrupted training left: the same training starts over it
    config = tiny("physics", epochs=1)
    (folder / "config.yaml").write_text(_resolved(config).to_yaml())
    assert quiet_train(config, folder).epochs_completed == 1


def test_a_folder_with_an_empty_checkpoints_folder_is_not_taken_for_a_run(tmp_path):
    """An empty ``checkpoints/`` made a user's folder a run directory (``all`` of nothing is
    true): training then replaced its config.yaml and wrote beside its files. Now it is
    refused, unchanged; the folder a continued run leaves when stopped before the checkpoint
    it takes over (its own config.yaml, continued_from.json, an empty checkpoints/) is still
    taken up again."""
    from hybridland.train.loop import _resolved, is_run_directory

    config = _resolved(tiny("physics", epochs=1))
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    mine = "# my experiment\nbase: ../other.yaml\n"
    (folder / "config.yaml").write_text(mine)
    (folder / "notes.md").write_text("my notes")
    assert not is_run_directory(folder)
    with pytest.raises(ckpt.RunFileError, match="is not a run directory of hybridland"):
        quiet_train(config, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "config.yaml", "notes.md"]
    assert (folder / "config.yaml").read_text() == mine

    stopped = tmp_path / "stopped"
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "config.yaml").write_text(config.to_yaml())
    (stopped / "continued_from.json").write_text('{"run": "elsewhere", "epochs": 1}')
    assert quiet_train(config, stopped).epochs_completed == 1
    assert not (stopped / "continued_from.json").exists()  # started afresh: it took none over
    (stopped / "run.json").unlink()  # ... and its config.yaml must still be the training's
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "config.yaml").write_text(mine)
    (tmp_path / "again" / "continued_from.json").write_text("{}")
    with pytest.raises(ckpt.RunFileError, match="is not a configuration written by a training"):
        quiet_train(config, tmp_path / "again")


def test_max_epochs_this_call_below_one_is_refused_before_anything_is_written(tmp_path):
    """``max_epochs_this_call=0`` trained one epoch (the limit was checked after it)."""
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_epochs_this_call must be a positive integer"):
            train(tiny("physics", epochs=2), tmp_path / "run", max_epochs_this_call=bad,
                  progress=False)
    assert not (tmp_path / "run").exists()


def test_resume_accepts_a_config_saved_before_an_option_existed(tmp_path):
    """A run interrupted under an earlier version of the code, whose saved config.yaml lacks
    an option added since (here the groundwater loss, at its default: the behaviour it had),
    resumes; any real difference is still refused."""
    from hybridland.train.loop import _resolved, same_configuration

    config = _resolved(tiny("physics", epochs=2))
    quiet_train(config, tmp_path, max_epochs_this_call=1)
    saved = tmp_path / "config.yaml"
    text = saved.read_text()
    assert "groundwater_loss: false" in text
    older = "".join(line for line in text.splitlines(keepends=True)
                    if "groundwater_loss" not in line)
    saved.write_text(older)
    assert same_configuration(older, config)
    assert not same_configuration(older, config.replace("model", groundwater_loss=True))
    assert not same_configuration(older.replace("seed: 3", "seed: 4"), config)
    assert not same_configuration("not: [a, config", config)
    quiet_train(config, tmp_path)
    assert "resumed from epoch_00000.json" in (tmp_path / "train.log").read_text()


def test_a_relative_data_path_is_saved_absolute(tmp_path, monkeypatch):
    """A relative data.path was saved as given: evaluating or resuming the run from another
    folder read another file (or none)."""
    from hybridland.train import evaluate_run
    from hybridland.train.loop import _resolved, same_configuration

    data = Path(mopex_path())
    monkeypatch.chdir(data.parent)
    config = tiny("physics", epochs=2).replace("data", path=data.name)
    run = tmp_path / "run"
    quiet_train(config, run, max_epochs_this_call=1)
    saved = (run / "config.yaml").read_text()
    assert f"path: {data}" in saved
    # a run saved with the relative path (before) resumes from the folder it was made in
    relative = saved.replace(f"path: {data}", f"path: {data.name}")
    assert same_configuration(relative, _resolved(config))
    (run / "config.yaml").write_text(relative)
    quiet_train(config, run)
    monkeypatch.chdir(tmp_path)  # elsewhere, the finished run reads its own file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        assert len(evaluate_run(run, progress=False).table) == len(BASINS)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    tree = {"w": jnp.arange(5.0), "b": jnp.ones(3)}
    save_checkpoint(tmp_path, 0, tree, {"best_val_loss": 1.0})
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}

    real = eqx.tree_serialise_leaves

    def dies_half_way(f, t, *spec):
        f.write(b"partial bytes")
        raise KeyboardInterrupt  # e.g. the job is killed while writing

    monkeypatch.setattr(ckpt.eqx, "tree_serialise_leaves", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 1, {"w": jnp.zeros(5), "b": jnp.zeros(3)}, {})
    monkeypatch.setattr(ckpt.eqx, "tree_serialise_leaves", real)

    after = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    assert after == before  # no temp file, nothing half-written, old checkpoint intact
    marker = latest_checkpoint(tmp_path)
    assert marker.name == "epoch_00000.json"
    loaded, meta = load_checkpoint(marker, tree)
    assert meta["best_val_loss"] == 1.0
    assert_bitwise_equal(loaded, tree)


def test_checkpoint_without_commit_mark_or_corrupt_is_ignored(tmp_path):
    tree = {"w": jnp.arange(5.0)}
    save_checkpoint(tmp_path, 0, tree, {})
    save_checkpoint(tmp_path, 1, {"w": jnp.zeros(5)}, {})
    # Killed between the .eqx and its .json of epoch 2: no mark, so epoch 1 is the latest.
    ckpt.save_tree(tmp_path / "checkpoints" / "epoch_00002.eqx", {"w": jnp.ones(5)})
    assert latest_checkpoint(tmp_path).name == "epoch_00001.json"
    # A damaged .eqx (hash mismatch) is skipped in favour of the older one.
    path = tmp_path / "checkpoints" / "epoch_00001.eqx"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert latest_checkpoint(tmp_path).name == "epoch_00000.json"


def test_a_checkpoint_without_a_recorded_hash_is_neither_found_nor_loaded(tmp_path):
    """find_checkpoint, load_checkpoint and read_checkpoint check a checkpoint one way (before:
    load_checkpoint loaded the weights of a record without ``sha256`` unchecked), and each
    skipped checkpoint is named with its reason."""
    tree = {"w": jnp.arange(5.0)}
    save_checkpoint(tmp_path, 0, tree, {})
    marker = save_checkpoint(tmp_path, 1, {"w": jnp.zeros(5)}, {})
    record = json.loads(marker.read_text())
    del record["sha256"]
    marker.write_text(json.dumps(record))
    found, skipped = ckpt.find_checkpoint(tmp_path)
    assert found.name == "epoch_00000.json"
    assert skipped == ["epoch_00001.json: unreadable (KeyError: 'sha256')"]
    with pytest.raises(ckpt.RunFileError, match="epoch_00001.json: unreadable .*cannot be resumed"):
        load_checkpoint(marker, tree)
    (tmp_path / "checkpoints" / "epoch_00000.eqx").unlink()
    assert ckpt.find_checkpoint(tmp_path) == (None, [
        "epoch_00001.json: unreadable (KeyError: 'sha256')",
        "epoch_00000.json: its weights epoch_00000.eqx are missing or unreadable"])


def test_weights_are_read_once_and_the_bytes_loaded_are_the_bytes_checked(tmp_path, monkeypatch):
    """load_model and load_checkpoint read a weights file once and check those bytes against
    the recorded SHA-256 (before: the hash from one read, the weights from another, so a file
    replaced in between loaded unchecked; load_checkpoint did not check at all)."""
    tree = {"w": jnp.arange(5.0), "b": jnp.ones(3)}
    sha = ckpt.save_model(tmp_path / "model.eqx", tree)
    opened = []
    real_open = open

    def counted(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(ckpt, "open", counted, raising=False)
    loaded = ckpt.load_model(tmp_path / "model.eqx", tree, sha, "fix")
    assert opened == ["model.eqx"]
    assert_bitwise_equal(loaded, tree)
    monkeypatch.undo()
    # a checkpoint whose weights change after find_checkpoint chose it is refused, named
    marker = save_checkpoint(tmp_path, 0, tree, {})
    assert latest_checkpoint(tmp_path) == marker
    ckpt.save_tree(marker.with_suffix(".eqx"), {"w": jnp.zeros(5), "b": jnp.ones(3)})
    with pytest.raises(ckpt.RunFileError, match="epoch_00000.eqx: its SHA-256 differs"):
        load_checkpoint(marker, tree)


def test_atomic_overwrite_keeps_old_content_when_interrupted(tmp_path):
    path = tmp_path / "model.eqx"
    ckpt.save_tree(path, {"w": jnp.arange(3.0)})
    old = path.read_bytes()

    def dies(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_write_bytes(path, dies)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["model.eqx"]


def test_log_attributes_are_the_logs_of_the_climate_attributes(mopex_file):
    names = ("aridity", "mean_precip", "mean_pet", "root_zone_storage", "log_aridity",
             "log_mean_precip", "log_mean_pet", "log_root_zone_storage")
    config = config_from_dict({
        "data": {"basins": BASINS, "swap_inverted_temperatures": True,
                 "train_period": ["1990-01-01", "1991-12-31"],
                 "validation_period": ["1992-01-01", "1992-12-31"], "warmup_days": 30},
        "model": {"kind": "hybrid", "static_attributes": list(names)},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        data = load_data(config)
    raw = data.raw_attributes
    np.testing.assert_allclose(raw[:, 4:], np.log(raw[:, :4]), rtol=1e-6)
    # the root-zone storage is the mass curve of the training days' own P and PE
    first, last = data.periods["train"]
    days = slice(first, last + 1)
    from hybridland.physics.root_zone import mass_curve_storage
    expected = mass_curve_storage(data.series["precip"][:, days], data.series["pet"][:, days])
    np.testing.assert_allclose(raw[:, 3], expected, rtol=1e-6)
    assert np.all((raw[:, 3] > 5.0) & (raw[:, 3] < 1000.0)), raw[:, 3]  # mm, a plausible range
    with pytest.raises(ConfigError, match="log_aridity"):
        config_from_dict({
            "data": {**config.to_dict()["data"], "pet": "hargreaves"},
            "model": {"kind": "hybrid", "pet": "hargreaves", "static_attributes": ["log_aridity"]},
        })


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_release_compiled_frees_the_mappings_of_compiled_programs():
    from hybridland.train import release_compiled

    def mappings():
        return len(Path("/proc/self/maps").read_text().splitlines())

    release_compiled()
    before = mappings()
    for i in range(60):  # 60 distinct programs
        jax.jit(lambda x, i=i: jnp.cumsum(jnp.sin(x) * i))(jnp.ones(7 + i)).block_until_ready()
    grown = mappings() - before
    # with room left (below the share given of vm.max_map_count) the programs are kept
    assert release_compiled(above=0.99) is False
    assert mappings() - before >= 0.9 * grown
    assert release_compiled(above=0.0) is True  # any mapping at all is above no room
    left = mappings() - before
    assert grown > 60, grown  # each program holds mappings of its own
    assert left < 0.4 * grown, (grown, left)


def test_compilation_cache_reads_back_a_program_freed_by_release_compiled(tmp_path):
    # In a fresh process: the first folder chosen is used and kept; a program compiled again
    # after release_compiled is read from it (a cache hit), with the same result.
    script = """
import jax, jax.numpy as jnp, os, sys
from jax._src import monitoring
from hybridland.train import release_compiled, use_compilation_cache
hits = []
monitoring.register_event_listener(lambda e, **kw: hits.append(e) if e.endswith("cache_hits") else None)
first = use_compilation_cache(sys.argv[1])
assert use_compilation_cache(sys.argv[2]) == first and not os.path.exists(sys.argv[2])
f = lambda x: jnp.cumsum(jnp.sin(x) * 1.25)
a = jax.jit(f)(jnp.arange(9.0)).block_until_ready()
written = len(os.listdir(first))
release_compiled()
b = jax.jit(f)(jnp.arange(9.0)).block_until_ready()
print(written, len(hits), bool((a == b).all()))
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = fresh_python(script, tmp_path / "cache", tmp_path / "other", env=env).stdout.split()
    written, hits, same = int(out[0]), int(out[1]), out[2]
    assert written >= 1 and hits >= 1 and same == "True", out
    # the suite itself runs with a cache (tests/conftest.py): asking for another keeps it
    assert use_compilation_cache(tmp_path / "mine") == jax.config.jax_compilation_cache_dir
    assert not (tmp_path / "mine").exists()


def test_a_plateau_schedule_lowers_the_rate_when_validation_stalls_and_resumes_with_it(
        tmp_path, monkeypatch):
    from hybridland.train import loop

    real = loop._evaluate

    def stalled(*args):  # the first validation is the best; none after it is better
        loss, nse = real(*args)
        return loss * 0.0 + 1.0, nse

    monkeypatch.setattr(loop, "_evaluate", stalled)
    base = tiny("physics", epochs=7).replace("training", warmup_steps=0)
    plateau = base.replace("training", schedule="plateau", plateau_patience=2, decay_rate=0.5)
    a = quiet_train(plateau, tmp_path / "a")
    lr = base.training.learning_rate
    # reduced after epochs 2, 4 and 6 (two epochs each without a better loss), from the next on
    np.testing.assert_allclose([r["learning_rate"] for r in a.history],
                               [lr, lr, lr, lr / 2, lr / 2, lr / 4, lr / 4], rtol=1e-6)
    assert (tmp_path / "a" / "train.log").read_text().count("learning rate x 0.5") == 3
    # the factor acts on the steps: a constant rate walks the same path until the reduction
    constant = quiet_train(base.replace("training", schedule="none"), tmp_path / "c")
    same = [r["train_loss"] for r in constant.history]
    assert [r["train_loss"] for r in a.history][:3] == same[:3]
    assert all(r["train_loss"] != c for r, c in zip(a.history[3:], same[3:], strict=True))

    def kill_after_epoch_3(epoch, row):  # after the first reduction
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        quiet_train(plateau, tmp_path / "b", callback=kill_after_epoch_3)
    b = quiet_train(plateau, tmp_path / "b")  # the checkpoint keeps the reduced rate
    assert [r["learning_rate"] for r in b.history] == [r["learning_rate"] for r in a.history]
    assert [r["train_loss"] for r in b.history] == [r["train_loss"] for r in a.history]
    assert_bitwise_equal(a.params, b.params)  # a physics model: its parameters are its weights


def test_a_plateau_run_given_more_epochs_and_patience_repeats_the_shorter_run(tmp_path):
    """The budget check's premise: twice the epochs and patience change nothing of what the
    shorter run did under a plateau schedule; under cosine (decay over the bound) every epoch's
    rate changes, so the runs part from the first step after warm-up."""
    def pair(schedule):
        short = tiny("physics", epochs=4).replace(
            "training", schedule=schedule, patience=3, plateau_patience=1)
        long = short.replace("training", epochs=8, patience=6)
        a = quiet_train(short, tmp_path / f"{schedule}-short")
        b = quiet_train(long, tmp_path / f"{schedule}-long")
        return ([r["train_loss"] for r in a.history],
                [r["train_loss"] for r in b.history][: len(a.history)])

    short, long = pair("plateau")
    assert short == long
    rates = {r["learning_rate"] for r in quiet_train(
        tiny("physics", epochs=4).replace("training", schedule="plateau", patience=3,
                                          plateau_patience=1), tmp_path / "plateau-short").history}
    assert len(rates) > 1  # the rate was lowered within the shared epochs
    short, long = pair("cosine")
    assert short != long


def test_a_run_continued_from_a_shorter_one_ends_as_if_trained_from_the_start(tmp_path):
    short = tiny("physics", epochs=4).replace(
        "training", schedule="plateau", patience=2, plateau_patience=1, validate_every=1)
    long = short.replace("training", epochs=9, patience=4).replace("run", name="longer")
    a = quiet_train(short, tmp_path / "short")
    whole = quiet_train(long, tmp_path / "whole")
    assert a.epochs_completed < whole.epochs_completed  # the longer run trained on
    b = quiet_train(long, tmp_path / "continued", continue_from=tmp_path / "short")
    assert [r["train_loss"] for r in b.history] == [r["train_loss"] for r in whole.history]
    assert (b.best_epoch, b.epochs_completed) == (whole.best_epoch, whole.epochs_completed)
    assert_bitwise_equal(b.params, whole.params)
    record = json.loads((tmp_path / "continued" / "continued_from.json").read_text())
    assert record == {"run": str(tmp_path / "short"), "epochs": a.epochs_completed}
    assert "continues" in (tmp_path / "continued" / "train.log").read_text()
    # the source is read, never written
    assert quiet_train(short, tmp_path / "short").epochs_completed == a.epochs_completed
    # the same budget: nothing to train, a finished run with every file a run has (there was
    # no metrics.csv: the continued run had trained no epoch of its own to write it)
    same = quiet_train(short.replace("run", name="same"), tmp_path / "same",
                       continue_from=tmp_path / "short")
    assert same.finished and same.epochs_completed == a.epochs_completed
    assert_bitwise_equal(same.params, a.params)
    assert (tmp_path / "same" / "metrics.csv").read_text() == (
        tmp_path / "short" / "metrics.csv").read_text()


@pytest.mark.parametrize("change, match", [
    ({"schedule": "cosine"}, r"schedule is 'cosine', which decays over the epochs bound"),
    ({"learning_rate": 0.5}, r"another configuration.*Differences: training\.learning_rate: "
                             r"0\.02 -> 0\.5\.$"),  # only the difference that matters
    ({"epochs": 3}, r"needs at least as many, got training\.epochs 3"),
    ({"patience": 2}, r"training\.patience 3, this run with 2"),
    ({"patience": None}, r"training\.patience 3, this run with None"),
])
def test_a_run_continues_only_a_shorter_run_of_its_configuration(tmp_path, change, match):
    short = tiny("physics", epochs=4).replace(
        "training", schedule="plateau", patience=3, plateau_patience=1)
    quiet_train(short, tmp_path / "short", max_epochs_this_call=1)
    other = short.replace("training", **change)
    with pytest.raises(ckpt.RunFileError, match=match):
        quiet_train(other, tmp_path / "new", continue_from=tmp_path / "short")
    assert not (tmp_path / "new").exists()  # nothing written


def test_continuing_refuses_what_it_cannot_continue_without_writing(tmp_path):
    short = tiny("physics", epochs=3).replace(
        "training", schedule="plateau", patience=None, plateau_patience=1, validate_every=2)
    new = tmp_path / "new"
    with pytest.raises(ckpt.RunFileError, match="not a run to continue"):
        quiet_train(short, new, continue_from=tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.yaml").write_text("data: [\n")  # was a YAML traceback
    with pytest.raises(ckpt.RunFileError, match="not a run to continue.*YAMLError|Parser"):
        quiet_train(short, new, continue_from=tmp_path / "broken")
    # a source with only its last epoch, validated for being its last: nothing shared
    quiet_train(short.replace("training", epochs=1), tmp_path / "one")
    with pytest.raises(ckpt.RunFileError, match="no intact checkpoint of an epoch this run shares"):
        quiet_train(short.replace("training", epochs=2), new, continue_from=tmp_path / "one")
    assert not new.exists()


def test_continuing_a_run_whose_last_epoch_was_validated_for_being_last_is_exact(tmp_path):
    """validate_every 2 and an odd bound: the shorter run validates its last epoch, a longer run
    does not (its best, stale count and plateau reductions would differ from there), so the
    continued run starts from the epoch before it."""
    def stalled(**change):
        return tiny("physics", epochs=3).replace(
            "training", schedule="plateau", patience=None, plateau_patience=1,
            validate_every=2, **change)

    quiet_train(stalled(), tmp_path / "short")
    whole = quiet_train(stalled(epochs=6), tmp_path / "whole")
    b = quiet_train(stalled(epochs=6), tmp_path / "continued", continue_from=tmp_path / "short")
    assert [r["learning_rate"] for r in b.history] == [r["learning_rate"] for r in whole.history]
    assert [r["train_loss"] for r in b.history] == [r["train_loss"] for r in whole.history]
    assert_bitwise_equal(b.params, whole.params)
    assert json.loads((tmp_path / "continued" / "continued_from.json").read_text())["epochs"] == 2
    # resumed later, the run uses its own checkpoint (and says so); afresh, it takes nothing over
    quiet_train(stalled(epochs=6), tmp_path / "continued", continue_from=tmp_path / "short")
    assert "--continue-from" in (tmp_path / "continued" / "train.log").read_text()


def test_validating_every_other_epoch_keeps_the_optimiser_path(tmp_path):
    every = tiny("physics", epochs=5)
    other = every.replace("training", validate_every=2)
    a = quiet_train(every, tmp_path / "every")
    b = quiet_train(other, tmp_path / "other")
    # the same steps, the same training losses; validation only after epochs 2, 4 and the last
    np.testing.assert_allclose([r["train_loss"] for r in b.history],
                               [r["train_loss"] for r in a.history], rtol=1e-6)
    scored = [r["epoch"] for r in b.history if math.isfinite(r["val_loss"])]
    assert scored == [1, 3, 4]
    for r in b.history:
        if r["epoch"] in scored:
            assert r["val_loss"] == pytest.approx(a.history[r["epoch"]]["val_loss"], rel=1e-6)
    assert b.best_epoch in scored
    assert b.best_val_loss == pytest.approx(min(a.history[e]["val_loss"] for e in scored))
    assert (tmp_path / "other" / "plots" / "training_curves.png").is_file()
    with pytest.raises(ConfigError, match="validate_every"):
        every.replace("training", validate_every=0)


def test_training_step_benchmark_times_each_variant_of_the_model(tmp_path):
    # benchmarks/training_step.py: each variant is the configuration with parts of the model
    # taken out (a variant that left the model as it was would time the same program), timed
    # by the training step itself; its ratio is to the full step of the same run
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import training_step

    config = tiny("sequence_hybrid", epochs=1, components=2, dynamic_params=["runoff_shape"],
                  dynamic_width=4, trainable_params=["baseflow_rate"])
    want = {"full": (2, ("runoff_shape",)), "one_component": (1, ("runoff_shape",)),
            "no_daily_network": (2, ()), "core": (1, ())}
    assert set(want) == set(training_step.VARIANTS)
    for name, (components, dynamic) in want.items():
        m = training_step.variant_config(config, name, "unused.yaml").model
        assert (m.components, m.dynamic_params or ()) == (components, dynamic), name
        assert m.routing_days == config.model.routing_days  # nothing else changes
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    out = tmp_path / "steps.json"
    out.write_text(json.dumps({"machine": {}, "records": [{"variant": "earlier"}]}))
    argv = ["--config", str(path), "--variants", "core", "--repeats", "1", "--json", str(out)]
    assert training_step.main(argv) == 0
    record = json.loads(out.read_text())
    earlier, r = record["records"]  # a file's earlier records are kept
    assert earlier == {"variant": "earlier"}
    assert r["machine"] == record["machine"]  # where it was timed
    assert record["machine"]["jax_backend"] == jax.default_backend()
    assert record["machine"]["device"] == jax.devices()[0].device_kind
    assert (r["variant"], r["components"], r["dynamic_params"]) == ("core", 1, [])
    assert r["batch_basins"] == 3 and r["days_per_step"] == 60 + 120
    assert r["step_s"] > 0 and r["validation_s"] > 0
    assert r["epoch_s"] == pytest.approx(
        r["batches_per_epoch"] * r["step_s"] + r["validation_s"] / r["validate_every"])
    assert r["ratio_to_full"] is None  # no full step in this run to compare with


def test_a_lock_that_cannot_be_created_names_the_folder(tmp_path, monkeypatch):
    # the lock lies beside the run, in its parent: a run folder that is writable inside a
    # read-only parent ended in a PermissionError traceback from os.open
    run_dir = tmp_path / "shared" / "run"
    run_dir.mkdir(parents=True)
    real_open = os.open

    def read_only_parent(path, *args, **kwargs):
        if Path(path).parent == run_dir.parent and Path(path).name.endswith(".lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_parent)
    with pytest.raises(ckpt.RunFileError, match=rf"lock of {run_dir} cannot be created: "
                                                rf"{run_dir.parent} is not writable"):
        with ckpt.hold_run(run_dir):
            pass
