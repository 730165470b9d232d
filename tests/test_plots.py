"""Figures that overlay models: each model has its own colour and line style (or marker), so a
reader can tell them apart, also in grey print."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_rgba

from hybridland.io import plots
from hybridland.study import report as study_report


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save (nothing is written)."""
    saved = []

    def keep(fig, path):
        saved.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(study_report, "_save", keep)
    return saved


def _line_styles(ax, skip_black=True):
    styles = []
    for line in ax.get_lines():
        if not line.get_label().startswith("_") and not (
            skip_black and to_rgba(line.get_color()) == to_rgba("k")
        ):
            styles.append((to_rgba(line.get_color()), line.get_linestyle()))
    return styles


def _all_differ(styles):
    """Each line its own (colour, style); up to 10 lines each its own colour, and up to 4 also
    each its own style."""
    assert len(set(styles)) == len(styles), styles
    for (c1, s1), (c2, s2) in itertools.combinations(styles[:10], 2):
        assert c1 != c2, styles
    for (c1, s1), (c2, s2) in itertools.combinations(styles[:4], 2):
        assert s1 != s2, styles


def test_hydrograph_models_differ_in_colour_and_style(figures):
    time = pd.date_range("1987-01-01", periods=30)
    rng = np.random.default_rng(0)
    series = {k: (("basin", "time"), rng.random((2, 30))) for k in
              ("observed_runoff", "runoff", "runoff_physics", "runoff_lstm")}
    ds = xr.Dataset(series, coords={"basin": ["a", "b"], "time": time})
    plots.plot_hydrographs(ds, "h.png", label="hybrid",
                           extra={"physics": "runoff_physics", "lstm": "runoff_lstm"})
    for ax in figures[0].axes:
        styles = _line_styles(ax)
        assert len(styles) == 3
        _all_differ(styles)
        observed = [line for line in ax.get_lines() if line.get_label() == "observed"]
        assert to_rgba(observed[0].get_color()) == to_rgba("k")


def test_metric_cdf_and_training_curves_differ(figures):
    rng = np.random.default_rng(1)
    tables = {name: {"nse": rng.random(9), "kge": rng.random(9)}
              for name in ("validation", "test", "dry years")}
    plots.plot_metric_cdf(tables, "c.png")
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1),
                "val_median_nse": 0.1 * e} for e in range(4)]
    plots.plot_training_curves(history, "t.png")
    for ax in figures[0].axes:
        _all_differ(_line_styles(ax))
    _all_differ(_line_styles(figures[1].axes[0]))


def test_model_style_pairs_are_distinct():
    styles = [tuple(plots.model_style(i).values()) for i in range(20)]
    assert len(set(styles)) == 20
    for a, b in zip(styles, styles[1:]):
        assert a[0] != b[0] and a[1] != b[1]


def _study_scores(models, rng):
    rows = []
    for model in models:
        for basin in range(8):
            rows.append({"split": "humid_to_arid", "test": "test", "model": model,
                         "basin": f"b{basin}", "aridity": 0.3 + 0.4 * basin,
                         "nse": rng.normal(0.3, 0.4), "mean_precip_mm_day": 3.0,
                         "mean_observed_mm_day": 1.0, "mean_simulated_mm_day": rng.random()})
    return pd.DataFrame(rows)


def test_study_figures_tell_every_model_apart(figures):
    models = ["physics", "hybrid", "regional", "lstm", "climatology", "linear",
              "physics_extreme", "hybrid_extreme", "lstm_extreme", "regional_finetuned",
              "hybrid_finetuned", "ridge"]  # more models than colours
    scores = _study_scores(models, np.random.default_rng(2))
    study_report.plot_skill_vs_aridity(scores, "s.png")
    ax = figures[-1].axes[0]
    _all_differ(_line_styles(ax))
    markers = [(tuple(c.get_facecolor()[0][:3]), c.get_paths()[0].vertices.tobytes())
               for c in ax.collections]
    assert len(set(markers)) == len(models)

    study_report.plot_budyko(scores, "b.png")
    ax = figures[-1].axes[0]
    points = [(tuple(c.get_facecolor()[0][:3]), c.get_paths()[0].vertices.tobytes())
              for c in ax.collections if c.get_label() != "observed"]
    assert len(set(points)) == len(models)

    results = pd.DataFrame([{"split": s, "model": m, "nse_drop": 0.1}
                            for s in ("humid_to_arid", "diverse", "dry_extremes")
                            for m in models[:3]])
    study_report.plot_skill_drop(results, "d.png")
    bars = figures[-1].axes[0].containers
    looks = {(to_rgba(c[0].get_facecolor()), c[0].get_hatch()) for c in bars}
    assert len(looks) == 3


def test_an_interrupted_figure_leaves_the_earlier_one_whole(tmp_path):
    """A Ctrl-C while a figure is written left a truncated PNG in its place: now the earlier
    figure stays, and no temporary file is left beside it."""
    path = tmp_path / "figure.png"
    fig = plots._figure(3, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    plots._save(fig, path)
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"

    def cut_short(f, **kwargs):
        f.write(b"\x89PNG\r\n\x1a\n partial")
        raise KeyboardInterrupt

    fig.savefig = cut_short
    with pytest.raises(KeyboardInterrupt):
        plots._save(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_a_metric_cdf_rises_from_zero_and_draws_one_basin():
    # one basin drew a single point and no line (a blank figure); no curve rose from 0
    from hybridland.io.plots import cdf_steps

    x, y = cdf_steps(np.array([0.62]), -1.0)
    np.testing.assert_array_equal(x, [-1.0, 0.62, 1.0])
    np.testing.assert_array_equal(y, [0.0, 1.0, 1.0])
    x, y = cdf_steps(np.array([-3.0, 0.2, 0.5, 0.9]), -1.0)
    np.testing.assert_array_equal(x, [-1.0, -1.0, 0.2, 0.5, 0.9, 1.0])
    np.testing.assert_array_equal(y, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0])


def test_figures_name_hybridland_so_that_only_they_are_replaced(tmp_path):
    # evaluate --plots and the demo replaced any file at a figure's name
    import matplotlib.pyplot as plt

    from hybridland.io.plots import hybridland_figure

    ours = plots.plot_metric_cdf({"test": {"nse": [0.5, 0.7], "kge": [0.4, 0.6]}},
                                 tmp_path / "cdf.png")
    assert hybridland_figure(ours)
    fig = plt.figure()
    fig.savefig(tmp_path / "theirs.png")  # another matplotlib figure
    plt.close(fig)
    (tmp_path / "notes.png").write_text("not even a PNG")
    assert not hybridland_figure(tmp_path / "theirs.png")
    assert not hybridland_figure(tmp_path / "notes.png")
    assert not hybridland_figure(tmp_path / "missing.png")


def test_the_demo_refuses_to_replace_files_it_did_not_write(tmp_path):
    from hybridland.demo import run_demo
    from hybridland.train.checkpoint import RunFileError

    (tmp_path / "fulda_test_hydrograph.png").write_text("my figure")
    with pytest.raises(RunFileError, match=r"fulda_test_hydrograph\.png exists and is not a "
                                           "figure of hybridland"):
        run_demo(tmp_path, progress=False)  # refused before any work
    assert (tmp_path / "fulda_test_hydrograph.png").read_text() == "my figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fulda_test_hydrograph.png"]
