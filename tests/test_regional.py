"""Regional parameter learning (a network of static attributes -> physical parameters) and
fine-tuning a run on other basins (``training.init_from``)."""

import json
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybridland.io._report import DataAdjustmentWarning
from hybridland.learned import ParameterNetwork
from hybridland.train import ConfigError, Normalisation, evaluate_run, load_run
from hybridland.train.loop import bounded_params, load_trainables
from runs import mopex_subset, quiet_train, tiny, trained

ATTRIBUTES = ["aridity", "mean_precip", "log_root_zone_storage"]
PRIOR = {"root_zone_prior": True,
         "trainable_params": ["runoff_shape", "baseflow_rate", "et_threshold", "root_depth"]}
OTHER = ["10312000", "11025500", "11138500"]  # complete forcing and Q in 1994-11 .. 1998
TEST = ("1998-01-01", "1998-12-31")


@pytest.fixture(scope="module")
def network_run(tmp_path_factory, mopex_file):
    config = tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True,
                  clip_attributes=True, **PRIOR)
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
    # load_run recomputes them from the saved attributes and network (and the storage prior
    # from the saved normalisation).
    _, params, _, _ = load_run(run_dir)
    np.testing.assert_allclose(params.runoff_shape, result.params.runoff_shape, rtol=1e-5)
    np.testing.assert_allclose(params.root_depth, result.params.root_depth, rtol=1e-5)


@pytest.mark.parametrize("components", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_root_zone_prior_ties_each_capacity_to_the_basins_own_storage(components, seed):
    """With the prior, the soil capacity of every component is the basin's mass-curve storage
    times a factor of the component that is the same in every basin, whatever the network's
    weights and the attributes (so it cannot be cancelled where the attributes extrapolate);
    without it the capacity is the network's own."""
    storage = np.array([40.0, 90.0, 206.0, 404.0])  # mm
    names = ("runoff_shape", "root_depth", "baseflow_rate")
    log_s = np.log(storage)
    mean, std = log_s.mean() + 0.3, 0.7 * log_s.std()  # any normalisation
    rng = np.random.default_rng(seed)
    attributes = jnp.stack([jnp.asarray(rng.normal(0, 3, 4)), (log_s - mean) / std], axis=1)
    key = jax.random.key(seed)
    prior = ParameterNetwork(names, 2, 8, 1, components, storage_prior=(1, mean, std), key=key)
    prior = eqx.tree_at(lambda n: n.log_capacity_factor, prior,
                        jnp.asarray(rng.normal(0, 0.3, components), jnp.float32))
    plain = ParameterNetwork(names, 2, 8, 1, components, key=key)
    with_prior = bounded_params(prior, None, 4, attributes)
    without = bounded_params(plain, None, 4, attributes)
    with_prior.check_bounds()

    def capacity(p):  # mm, [basin] or [basin, component]
        depth = np.asarray(p.root_depth)
        available = np.asarray(p.theta_cap) - np.asarray(p.theta_wp)
        return 1000.0 * available.reshape(4, *([1] * (depth.ndim - 1))) * depth

    shape = (4, components) if components > 1 else (4,)
    assert capacity(with_prior).shape == shape
    factor = np.exp(np.asarray(prior.log_capacity_factor))
    expect = storage[:, None] * factor[None, :] if components > 1 else storage * factor[0]
    np.testing.assert_allclose(capacity(with_prior), expect, rtol=1e-4)
    # the other parameters still come from the network and vary between basins
    assert np.ptp(np.asarray(with_prior.runoff_shape)) > 1e-4
    ratio = capacity(without) / storage.reshape(4, *([1] * (components > 1)))
    assert np.ptp(ratio, axis=0).min() > 0.05  # without the prior the ratio is the network's
    # the network has no root_depth output of its own
    assert prior.mlp.out_size == plain.mlp.out_size - components
    # gradients reach the factors
    def total(net):
        return jnp.sum(bounded_params(net, None, 4, attributes).root_depth)
    grad = eqx.filter_grad(total)(prior)
    assert np.all(np.isfinite(grad.log_capacity_factor)) and np.any(grad.log_capacity_factor != 0)


def test_root_zone_prior_needs_the_attribute_and_a_trainable_depth():
    with pytest.raises(ConfigError, match="root_zone_prior.*log_root_zone_storage"):
        tiny("physics", static_attributes=["aridity"], parameter_network=True, **PRIOR)
    with pytest.raises(ConfigError, match="root_zone_prior"):
        tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True,
             root_zone_prior=True)  # root_depth not trainable
    with pytest.raises(ConfigError, match="theta_cap and theta_wp not"):
        tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True,
             root_zone_prior=True, trainable_params=["root_depth", "theta_cap"])
    with pytest.raises(ValueError, match="theta_cap"):
        ParameterNetwork(("root_depth", "theta_wp"), 2, storage_prior=(1, 0.0, 1.0),
                         key=jax.random.key(0))


@pytest.mark.parametrize("seed", [0, 1])
def test_clipped_attributes_give_an_unseen_climate_the_nearest_training_climate(seed):
    """With attribute bounds the network's parameters for a basin beyond the training range
    are those of the basin clipped onto its edge, whatever the weights; within the range
    nothing changes; the storage prior still follows the basin's own (unclipped) storage."""
    rng = np.random.default_rng(seed)
    names = ("runoff_shape", "root_depth", "baseflow_rate")
    storage_z = np.array([-1.0, 0.5, 1.5, 2.5])  # the last two beyond the training range
    inside = np.array([0.3, -0.8, 4.0, -5.0])
    attributes = jnp.asarray(np.stack([inside, storage_z], 1), jnp.float32)
    bounds = ((-1.0, -1.0), (1.0, 1.0))
    key = jax.random.key(seed)
    kwargs = dict(storage_prior=(1, 5.0, 0.3), key=key)
    clipped = ParameterNetwork(names, 2, 8, 1, 3, attribute_bounds=bounds, **kwargs)
    plain = ParameterNetwork(names, 2, 8, 1, 3, **kwargs)
    clipped = eqx.tree_at(lambda n: n.mlp, clipped, jax.tree_util.tree_map(
        lambda x: x + jnp.asarray(rng.normal(0, 0.5, x.shape), x.dtype)
        if eqx.is_array(x) else x, clipped.mlp))
    plain = eqx.tree_at(lambda n: n.mlp, plain, clipped.mlp)
    at_edge = jnp.clip(attributes, -1.0, 1.0)
    out, edge, free = clipped(attributes), plain(at_edge), plain(attributes)
    for name in ("runoff_shape", "baseflow_rate"):
        np.testing.assert_allclose(out[name], edge[name], rtol=1e-6)
        np.testing.assert_allclose(out[name][:2], free[name][:2], rtol=1e-6)  # inside: same
        assert np.abs(np.asarray(out[name][2:]) - np.asarray(free[name][2:])).max() > 1e-4
    # the capacity prior reads the storage beyond the range: larger store, deeper roots
    np.testing.assert_allclose(out["root_depth"], free["root_depth"], rtol=1e-6)
    depth = np.asarray(bounded_params(clipped, None, 4, attributes).root_depth)
    assert np.all(np.diff(depth, axis=0) > 0)
    with pytest.raises(ValueError, match="attribute_bounds"):
        ParameterNetwork(names, 2, attribute_bounds=((1.0, 0.0), (0.0, 0.0)), key=key)


def test_normalisation_keeps_the_training_range_for_the_networks(tmp_path):
    raw = np.array([[0.5, 10.0], [0.9, 30.0], [0.7, 20.0]])
    norm = Normalisation.fit(("aridity", "mean_precip"), raw, clip=True)
    far = np.array([[3.0, 1.0], [0.6, 25.0]])  # an arid basin beyond both edges, one inside
    z = norm.apply(far)
    seen = np.asarray(norm.network_view(jnp.asarray(z)))
    edge = norm.apply(raw)
    np.testing.assert_allclose(seen[0], [edge[1, 0], edge[0, 1]], rtol=1e-6)
    np.testing.assert_allclose(seen[1], z[1], rtol=1e-6)
    assert z[0, 0] > seen[0, 0]  # apply itself does not clip (the storage prior reads it)
    norm.save(tmp_path / "n.json")
    again = Normalisation.load(tmp_path / "n.json")
    np.testing.assert_allclose(again.network_view(jnp.asarray(z)), seen)
    # without clip, and files written before the option: no clipping
    old = Normalisation.fit(("aridity", "mean_precip"), raw)
    old.save(tmp_path / "old.json")
    assert "lower" not in (tmp_path / "old.json").read_text()
    np.testing.assert_allclose(Normalisation.load(tmp_path / "old.json").network_view(z), z)


def test_clip_attributes_needs_attributes():
    with pytest.raises(ConfigError, match="clip_attributes"):
        tiny("physics", clip_attributes=True)


def test_clipped_run_feeds_unseen_basins_the_training_range(network_run, other_basins):
    """A run with clip_attributes evaluates unseen basins with attributes clipped into the
    training basins' range (what every network sees), from the saved normalisation."""
    _, run_dir, _ = network_run
    _, _, normalisation, _ = load_trainables(run_dir)
    assert normalisation.clips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        evaluation = evaluate_run(run_dir, str(other_basins), period=TEST, progress=False)
    z = evaluation.data.attributes
    beyond = (z < normalisation.lower - 1e-6) | (z > normalisation.upper + 1e-6)
    assert beyond.any()  # the other basins lie partly outside the training range
    seen = evaluation.data.forcing(np.arange(len(OTHER)), np.zeros(len(OTHER), int), 1)
    np.testing.assert_allclose(
        seen.attributes, np.clip(z, normalisation.lower, normalisation.upper), rtol=1e-6)
    _, u, _, _ = load_trainables(run_dir)
    np.testing.assert_allclose(
        evaluation.params.baseflow_rate,
        bounded_params(u, None, len(OTHER), jnp.asarray(z)).baseflow_rate, rtol=1e-5)


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


def test_fine_tuning_trains_the_parameters_it_is_scored_with(network_run, mopex_file):
    """A fine-tuning run normalises its basins with the start run's statistics and range; one
    outside that range had its training parameters from the clipped attributes (the storage
    prior read the range's edge, not the basin's storage) and its evaluated ones from its own:
    up to 0.34 m of root depth apart in the study's fine-tuned run. The batches now give the
    parameter network what evaluation gives it."""
    from hybridland.train.data import load_data
    from hybridland.train.evaluate import column_params
    from hybridland import simulate
    from hybridland.train.loop import _batch, _simulate_runoff

    _, run_dir, _ = network_run
    model, u, normalisation, config = load_trainables(run_dir)
    many = [*OTHER, "01348000", "01634000", "03065000", "05592500", "07147070", "09431500"]
    data = load_data(config.replace("data", basins=tuple(many)), normalisation)
    z = np.asarray(data.attributes)
    outside = (z < normalisation.lower) | (z > normalisation.upper)
    assert outside.any()  # the check below can fail
    rows = np.arange(data.n_basins)
    forcing, _, _, _, basins, *given = _batch(data, rows, np.full(data.n_basins, 0), 200)
    model_train, static = eqx.partition(model, eqx.is_inexact_array)
    # the runoff the training loss compares with the observations
    trained = _simulate_runoff((model_train, u), static, forcing, basins, *given, 0)
    scored = column_params(u, None, list(data.basins), data.attributes, config)
    np.testing.assert_allclose(trained, simulate(model, forcing, scored).fluxes.runoff,
                               rtol=1e-5, atol=1e-6)


def test_load_run_without_its_basin_table_names_the_file(network_run, tmp_path):
    # a TypeError ('NoneType' object is not subscriptable) for a network run's missing table
    import shutil

    from hybridland.train.checkpoint import RunFileError

    _, run_dir, _ = network_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "basins.csv").unlink()
    with pytest.raises(RunFileError, match=r"basins\.csv is missing.*hybridland train"):
        load_run(copy)


def test_a_fine_tuning_resumes_as_it_would_have_gone_on_without_its_start(network_run,
                                                                          tmp_path):
    """A resumed fine-tuning rebuilt its normalisation (and its network's range and storage
    scale) from the start run's files as they were then: a start run trained again meanwhile
    changed the rest of the run silently, and a start run moved away stopped it. It resumes
    from its own record and its checkpoint, as an uninterrupted run goes on."""
    import shutil

    config, run_dir, _ = network_run
    shutil.copytree(run_dir, tmp_path / "first")
    second = config.replace("data", basins=tuple(OTHER)).replace(
        "training", init_from=str(tmp_path / "first"), epochs=2)
    whole = quiet_train(second, tmp_path / "whole")
    quiet_train(second, tmp_path / "part", max_epochs_this_call=1)
    shutil.move(tmp_path / "first", tmp_path / "moved")
    resumed = quiet_train(second, tmp_path / "part")
    assert resumed.epochs_completed == whole.epochs_completed == 2
    for a, b in zip(leaves(whole.model), leaves(resumed.model)):
        np.testing.assert_array_equal(a, b)
    for name in ("root_depth", "runoff_shape"):
        np.testing.assert_array_equal(getattr(whole.params, name),
                                      getattr(resumed.params, name))
    assert "resumed with its own record" in (tmp_path / "part" / "train.log").read_text()


def test_fine_tuning_refuses_another_model(network_run, tmp_path):
    _, run_dir, _ = network_run
    config = tiny("physics", static_attributes=ATTRIBUTES, parameter_network=True,
                  parameter_width=4).replace("training", init_from=str(run_dir))
    with pytest.raises(ValueError, match="parameter_width"):
        quiet_train(config, tmp_path / "other")


def _network(bounds, scale, seed=0):
    names = ("runoff_shape", "root_depth", "baseflow_rate")
    return ParameterNetwork(names, 2, 8, 1, 2, storage_prior=(1, *scale),
                            attribute_bounds=bounds, key=jax.random.key(seed))


def test_networks_fitted_to_other_basins_share_one_compiled_program():
    """The training range and the storage scale are traced, not baked into the program: a
    network built for other basins (other bounds, other scale) reuses the compiled program
    and still uses its own numbers."""
    traces = []

    @eqx.filter_jit
    def parameters(network, attributes):
        traces.append(1)
        return network(attributes)

    attributes = jnp.asarray([[0.3, -0.5], [2.0, 1.5], [-3.0, 0.2]], jnp.float32)
    first = _network(((-1.0, -1.0), (1.0, 1.0)), (5.0, 0.3))
    other = eqx.tree_at(lambda n: n.mlp, _network(((-0.5, -2.0), (0.5, 2.0)), (4.0, 0.5)),
                        first.mlp)
    for network in (first, other):
        got = parameters(network, attributes)
        with jax.disable_jit():
            expected = network(attributes)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)
    assert len(traces) == 1
    a, b = parameters(first, attributes), parameters(other, attributes)
    assert np.abs(np.asarray(a["root_depth"]) - np.asarray(b["root_depth"])).max() > 1e-3
    assert np.abs(np.asarray(a["runoff_shape"]) - np.asarray(b["runoff_shape"])).max() > 1e-4


def test_training_and_weight_files_leave_the_fixed_numbers_alone(tmp_path):
    """adamw's weight decay (and any gradient) changes the weights but not the training range
    or storage scale; a weight file does not hold them, loads into a network built for other
    basins with that network's numbers, and a file written before they were traced (no such
    leaves) loads the same."""
    import optax

    from hybridland._containers import trainable
    from hybridland.train.checkpoint import load_tree, save_tree

    network = _network(((-1.0, -1.0), (1.0, 1.0)), (5.0, 0.3))
    attributes = jnp.asarray([[0.3, -0.5], [2.0, 1.5]], jnp.float32)
    optim = optax.adamw(0.1, weight_decay=0.5)
    state = optim.init(trainable(network))
    for _ in range(3):
        grads = eqx.filter_grad(
            lambda n: sum(jnp.sum(v ** 2) for v in n(attributes).values()))(network)
        updates, state = optim.update(trainable(grads), state, trainable(network))
        network = eqx.apply_updates(network, updates)
    np.testing.assert_array_equal(network.attribute_bounds.value, [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(network.storage_scale.value, np.float32([5.0, 0.3]))
    assert np.abs(np.asarray(network.mlp.layers[0].weight)
                  - np.asarray(_network(((-1.0, -1.0), (1.0, 1.0)), (5.0, 0.3)).mlp.layers[0]
                               .weight)).max() > 1e-3  # the weights did train

    other = _network(((-0.5, -2.0), (0.5, 2.0)), (4.0, 0.5), seed=1)
    save_tree(tmp_path / "new.eqx", network)
    older = eqx.tree_at(lambda n: (n.attribute_bounds, n.storage_scale), network, (None, None),
                        is_leaf=lambda x: x is None)
    eqx.tree_serialise_leaves(tmp_path / "old.eqx", older)
    assert (tmp_path / "new.eqx").read_bytes() == (tmp_path / "old.eqx").read_bytes()
    loaded = load_tree(tmp_path / "new.eqx", other)
    np.testing.assert_array_equal(loaded.mlp.layers[0].weight, network.mlp.layers[0].weight)
    np.testing.assert_array_equal(loaded.log_capacity_factor, network.log_capacity_factor)
    np.testing.assert_array_equal(loaded.attribute_bounds.value, other.attribute_bounds.value)
    np.testing.assert_array_equal(loaded.storage_scale.value, other.storage_scale.value)


def _checkpoint_scores_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "experiments" / "climate_shift" / "checkpoint_scores.py"
    spec = importlib.util.spec_from_file_location("checkpoint_scores", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_a_checkpoint_is_scored_as_the_training_loop_validated_it(network_run, tmp_path):
    """experiments/climate_shift/checkpoint_scores.py: a copy of the run holding the last
    checkpoint's weights (not the best epoch's) scores the validation year as the training
    loop did at that epoch."""
    script = _checkpoint_scores_script()
    config, run_dir, result = network_run
    copy = script.checkpoint_run(run_dir, tmp_path / "last")
    epoch = json.loads((copy / "run.json").read_text())["weights_epoch"]
    assert epoch == len(result.history) - 1
    assert result.best_epoch != epoch  # so the scores below tell the two weights apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)
        table = evaluate_run(copy, period=config.data.validation_period, progress=False).table
    np.testing.assert_allclose(np.nanmedian(table["nse"]),
                               result.history[epoch]["val_median_nse"], rtol=1e-4)


def test_checkpoint_scores_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    script = _checkpoint_scores_script()
    code = script.main(["--run-dir", str(tmp_path), "--data", str(tmp_path / "x.nc"),
                        "--out", str(tmp_path / "out.csv")])
    assert code == 2
    assert "is not a finished training run" in capsys.readouterr().out
    assert not (tmp_path / "out.csv").exists()
