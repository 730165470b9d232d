"""Regional parameter learning (a network of static attributes -> physical parameters) and
fine-tuning a run on other basins (``training.init_from``)."""

import warnings

import equinox as eqx
import jax
import numpy as np
import pytest

from hybridland.io._report import DataAdjustmentWarning
from hybridland.train import evaluate_run, load_run
from hybridland.train.loop import load_trainables
from runs import mopex_subset, quiet_train, tiny, trained

ATTRIBUTES = ["aridity", "mean_precip"]
OTHER = ["10312000", "11025500", "11138500"]  # complete forcing and Q in 1994-11 .. 1998
TEST = ("1998-01-01", "1998-12-31")


@pytest.fixture(scope="module")
def network_run(tmp_path_factory, mopex_file):
    config = tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True)
    return trained(tmp_path_factory, config, "network")


@pytest.fixture(scope="module")
def other_basins(tmp_path_factory, mopex_file):
    path = tmp_path_factory.mktemp("data") / "other.nc"
    return mopex_subset(mopex_file, path, OTHER, "1997-01-01", "1998-12-31")


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def test_parameter_network_learns(network_run):
    _, run_dir, result = network_run
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.9 * losses[0], losses
    result.params.check_bounds()
    # Parameters differ between basins because their attributes differ.
    assert np.ptp(np.asarray(result.params.runoff_shape)) > 1e-4
    # load_run recomputes them from the saved attributes and network.
    _, params, _, _ = load_run(run_dir)
    np.testing.assert_allclose(params.runoff_shape, result.params.runoff_shape, rtol=1e-5)


def test_parameter_network_gives_parameters_to_unseen_basins(network_run, other_basins):
    _, run_dir, _ = network_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        evaluation = evaluate_run(run_dir, str(other_basins), period=TEST, progress=False)
    assert (evaluation.table["parameters"] == "network").all()
    assert list(evaluation.table["basin"]) == OTHER
    evaluation.params.check_bounds()
    assert np.ptp(np.asarray(evaluation.params.baseflow_rate)) > 1e-5
    assert np.isfinite(evaluation.table["nse"]).all()
    assert (evaluation.table["max_abs_cumulative_residual_mm"] < 1e-3).all()


def test_fine_tuning_starts_from_the_run(network_run, tmp_path):
    """A hybrid trained on some basins, fine-tuned on others with a vanishing learning rate,
    keeps the first run's weights; its per-basin parameters start at the first run's median."""
    first = tiny("hybrid", epochs=2, trainable_params=["baseflow_rate"])
    quiet_train(first, tmp_path / "first")
    model_a, u_a, _, _ = load_trainables(tmp_path / "first")
    second = first.replace("data", basins=tuple(OTHER)).replace(
        "training", init_from=str(tmp_path / "first"), learning_rate=1e-12, epochs=1
    )
    result = quiet_train(second, tmp_path / "second")
    for a, b in zip(leaves(model_a), leaves(result.model)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    median = np.median(np.asarray(load_run(tmp_path / "first")[1].baseflow_rate))
    np.testing.assert_allclose(result.params.baseflow_rate, median, rtol=1e-4)
    assert "fine-tuning from" in (tmp_path / "second" / "train.log").read_text()


def test_fine_tuning_refuses_another_model(network_run, tmp_path):
    _, run_dir, _ = network_run
    config = tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True,
                  parameter_width=4).replace("training", init_from=str(run_dir))
    with pytest.raises(ValueError, match="parameter_width"):
        quiet_train(config, tmp_path / "other")
