"""Tables, figures and the generated page of the climate-shift study."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.plots import _figure, _save, model_style
from ..train.checkpoint import atomic_write_bytes, atomic_write_text
from .climate_shift import MIN_OBSERVED_DAYS, SHIFT
from .config import (
    BUDGET_SUFFIX,
    ENSEMBLE_SUFFIX,
    SEED_SUFFIX,
    budget_label,
    scaled_budget,
    seed_label,
)

LABELS = {
    "climatology": "climatology (day-of-year mean)",
    "regression_forcing": "regression: same-day forcing",
    "regression_memory": "regression: forcing + memory",
    "regression_state": "regression: + simulated state",
    "lstm": "LSTM (Equinox, static attributes)",
    "physics": "physics bucket, calibrated per basin",
    "physics_regional": "physics bucket, parameter network",
    "hybrid": "sequence hybrid, regional",
    "hybrid_mlp": "MLP hybrid, per-basin parameters",
    "hybrid_regional": "MLP hybrid, parameter network",
}
"""Display names of the models of ``experiments/climate_shift/study.yaml``."""

SPLIT_TITLES = {
    "temporal": "Temporal (all basins, later years)",
    "humid_to_arid": "Humid → arid (trained on humid basins, tested on arid ones)",
    "diverse": "Diverse training (humid + a share of arid basins, tested on the other arid)",
    "dry_extremes": "Dry extremes (each basin's driest years, hidden from training)",
}


VARIANT = rf"_(?:extreme|finetuned)$|{BUDGET_SUFFIX}|{SEED_SUFFIX}|{ENSEMBLE_SUFFIX}$"
"""Suffix of a result label that is a variant of a ladder model (not a model of its own)."""


def label(model: str) -> str:
    budget = re.search(BUDGET_SUFFIX, model)
    if budget:
        factor = budget.group(0).removeprefix("_budget_x")
        return f"{label(model[: budget.start()])}, {factor}x budget"
    seed = re.search(SEED_SUFFIX, model)
    if seed:
        return f"{label(model[: seed.start()])}, seed {seed.group(0).removeprefix('_seed')}"
    if model.endswith(ENSEMBLE_SUFFIX):
        return f"{label(model.removesuffix(ENSEMBLE_SUFFIX))}, mean of its trainings"
    if model.endswith("_extreme"):
        return f"{label(model.removesuffix('_extreme'))}, extreme-weighted loss"
    if model.endswith("_finetuned"):
        return f"{label(model.removesuffix('_finetuned'))}, humid run fine-tuned on arid basins"
    return LABELS.get(model, model)


def _fmt(x, digits=2) -> str:
    """``x`` with ``digits`` decimals; "n/a" for a missing value (None, NaN), "-inf" for the
    median of a group where most basins scored ``metrics.WORST_WHEN_UNDEFINED``."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    if isinstance(x, float) and np.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.{digits}f}"


def markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits=2) -> str:
    """``frame`` as a markdown table with ``columns`` ``{column: header}``."""
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, rule]
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            v = row.get(c)
            if c == "model":
                cells.append(label(v))
            elif c == "max_abs_cumulative_residual_mm":
                cells.append("n/a (no water balance)" if not np.isfinite(v) else f"{v:.1e}")
            elif isinstance(v, (float, np.floating)):
                cells.append(_fmt(float(v), digits))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SPLIT_COLUMNS = {
    "temporal": {"model": "model", "n_in": "basins", "nse_in": "NSE", "kge_in": "KGE",
                 "log_nse_in": "log-NSE", "pbias_in": "PBIAS %", "flv_in": "FLV %",
                 "budyko_error_in": "Budyko error",
                 "max_abs_cumulative_residual_mm": "max cumulative water residual (mm)"},
}
for _split in ("humid_to_arid", "diverse", "dry_extremes"):
    SPLIT_COLUMNS[_split] = {
        "model": "model", "nse_in": "NSE in distribution", "nse_shifted": "NSE shifted",
        "nse_drop": "NSE drop", "kge_in": "KGE in", "kge_shifted": "KGE shifted",
        "log_nse_shifted": "log-NSE shifted", "pbias_shifted": "PBIAS % shifted",
        "flv_shifted": "FLV % shifted", "budyko_error_in": "Budyko error in",
        "budyko_error_shifted": "Budyko error shifted",
        "max_abs_cumulative_residual_mm": "max cumulative water residual (mm)",
    }


def results_markdown(results: pd.DataFrame) -> str:
    parts = []
    for split, title in SPLIT_TITLES.items():
        part = results[results["split"] == split]
        if part.empty:
            continue
        order = "nse_shifted" if split != "temporal" else "nse_in"
        part = part.sort_values(order, ascending=False)
        counts = ""
        if split != "temporal":
            counts = (f"{_count(part['n_in'])} in-distribution and "
                      f"{_count(part['n_shifted'])} shifted basin scores")
            if "n_paired" in part and part["n_paired"].notna().all():
                # the same basins in both sets: each median is over the basins scored in both
                counts = (f"medians over the {_count(part['n_paired'])} basins scored in both, "
                          f"of {counts}")
            counts = f" ({counts})"
        parts.append(f"### {title}{counts}\n\n" + markdown_table(part, SPLIT_COLUMNS[split]))
    return "\n\n".join(parts)


def _count(n: pd.Series) -> str:
    """A count of basins the models of a table share (``12``), or its range where they
    differ (``10–12``)."""
    low, high = int(n.min()), int(n.max())
    return str(low) if low == high else f"{low}–{high}"


TIE_NSE = 0.05
"""Drops within this much NSE of the smallest are named alongside it in the verdict."""


def verdict(results: pd.DataFrame) -> str:
    """Which model degrades least from humid to arid basins, in words, from the results."""
    part = results[(results["split"] == "humid_to_arid") & ~results["model"].str.contains(
        VARIANT)].dropna(subset=["nse_drop"])
    if part.empty:
        return "No humid → arid results."
    # a model that fails in distribution (median NSE -inf) has a drop of -inf: no merit
    ranked = part[np.isfinite(part["nse_in"])]
    ranked = part if ranked.empty else ranked
    least = ranked.loc[ranked["nse_drop"].idxmin()]
    best = part.loc[part["nse_shifted"].idxmax()]
    top = part.loc[part["nse_in"].idxmax()]

    def scores(r):
        return (f"median NSE {r['nse_in']:.2f} on humid basins, {r['nse_shifted']:.2f} on arid "
                f"ones, a drop of {r['nse_drop']:.2f}")

    text = (f"Under the humid → arid shift, **{label(least['model'])}** degrades least "
            f"({scores(least)})")
    close = ranked[(ranked["nse_drop"] <= least["nse_drop"] + TIE_NSE)
                   & (ranked["model"] != least["model"])]
    if len(close):
        text += "; within " + f"{TIE_NSE:g} of that drop: " + "; ".join(
            f"**{label(r['model'])}** ({scores(r)})" for _, r in close.iterrows())
    text += "."
    if best["model"] != least["model"]:
        text += (f" **{label(best['model'])}** scores best on the arid basins ({scores(best)}); "
                 "a small drop from a low in-distribution score is no merit, so both are named.")
    else:
        text += " It also scores best on the arid basins."
    if top["model"] not in (least["model"], best["model"]):
        text += (f" The best model in distribution, **{label(top['model'])}**, falls from "
                 f"{top['nse_in']:.2f} to {top['nse_shifted']:.2f}.")
    return text


# ---------------------------------------------------------------------------------------------
# Figures


_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h")
"""Marker of each model in scatter plots (with ``model_style``'s colour: the pairs differ)."""
_HATCHES = ("", "//", "..", "xx")


def plot_skill_vs_aridity(scores: pd.DataFrame, path, split="humid_to_arid", floor=-2.0):
    """Test NSE against aridity for each model of ``split`` (running median per model);
    NSE below ``floor`` is drawn at ``floor``."""
    part = scores[(scores["split"] == split) & (scores["test"] == "test")]
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    for i, (model, s) in enumerate(part.groupby("model", sort=False)):
        s = s.sort_values("aridity")
        y = np.maximum(s["nse"].to_numpy(), floor)
        style = model_style(i)
        ax.scatter(s["aridity"], y, s=6, alpha=0.35, color=style["color"],
                   marker=_MARKERS[i % len(_MARKERS)])
        window = max(3, len(s) // 10)
        med = pd.Series(y).rolling(window, center=True, min_periods=1).median()
        ax.plot(s["aridity"], med, label=label(model), lw=1.5, **style)
    ax.set_xscale("log")
    ax.set_xlabel("aridity (mean PE / mean P)")
    ax.set_ylabel(f"test NSE (below {floor} drawn at {floor})")
    ax.set_ylim(floor - 0.05, 1)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_title(f"Skill against aridity, models trained on humid basins ({split})")
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_skill_drop(results: pd.DataFrame, path):
    """Bars of the median-NSE drop per model and shifted split."""
    splits = [s for s in ("humid_to_arid", "diverse", "dry_extremes")
              if s in set(results["split"])]
    models = list(dict.fromkeys(results["model"]))
    fig = _figure(9, 4.5)
    ax = fig.subplots()
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(models))
    for i, split in enumerate(splits):
        part = results[results["split"] == split].set_index("model")
        drop = [part["nse_drop"].get(m, np.nan) for m in models]
        ax.bar(x + i * width, drop, width, label=split.replace("_", " "),
               color=model_style(i)["color"], hatch=_HATCHES[i % len(_HATCHES)],
               edgecolor="white")
    ax.set_xticks(x + width * (len(splits) - 1) / 2)
    ax.set_xticklabels([label(m) for m in models], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("median NSE drop, in − shifted (symlog)")
    ax.set_yscale("symlog", linthresh=1)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_title("Skill drop under shift (smaller is more robust)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_budyko(scores: pd.DataFrame, path, split="humid_to_arid", omega=2.6):
    """Evaporative index E/P = 1 - Q/P (test period; for a model with a groundwater loss,
    (E + L)/P, as the observed 1 - Q/P also holds what a basin loses other than by ET) against
    aridity: observed and per model, with Fu's curve (``omega``) and the energy and water
    limits."""
    part = scores[(scores["split"] == split) & (scores["test"] == "test")]
    fig = _figure(7, 5)
    ax = fig.subplots()
    first = part.drop_duplicates("basin")
    p = first["mean_precip_mm_day"].to_numpy()
    ax.scatter(first["aridity"], 1 - first["mean_observed_mm_day"] / p, s=14, color="k",
               label="observed", zorder=3)
    for i, (model, s) in enumerate(part.groupby("model", sort=False)):
        ax.scatter(s["aridity"], 1 - s["mean_simulated_mm_day"] / s["mean_precip_mm_day"],
                   s=8, alpha=0.6, label=label(model), color=model_style(i)["color"],
                   marker=_MARKERS[i % len(_MARKERS)])
    phi = np.geomspace(0.2, 10, 200)
    ax.plot(phi, 1 + phi - (1 + phi**omega) ** (1 / omega), color="0.3", lw=1,
            label=f"Fu (ω = {omega})")
    ax.plot(phi, np.minimum(phi, 1), color="0.6", ls="--", lw=1, label="energy / water limit")
    ax.set_xscale("log")
    ax.set_ylim(-0.2, 1.2)
    ax.set_xlabel("aridity PE / P")
    ax.set_ylabel("evaporative index 1 − Q/P (test period)")
    ax.set_title(f"Budyko space, models trained on humid basins ({split})")
    ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Outputs


def write_outputs(out, *, scores, results, timing, untrained, study, basins, wall_s, quick,
                  machine=None):
    """``machine``: the scoring invocation's (``climate_shift._machine``; None where a folder
    scored before it was recorded is rewritten)."""
    out = Path(out)
    figures = out / "figures"
    # full precision: rewrite_report recomputes the medians (and the page) from it
    atomic_write_text(out / "scores.csv", scores.to_csv(index=False, float_format="%.12g"))
    atomic_write_text(out / "results.csv", results.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "timing.csv", timing.to_csv(index=False, float_format="%.3f"))
    atomic_write_text(out / "results.md", results_markdown(results) + "\n")
    # the figures show each model once: its single trainings with other seeds stay in the
    # tables (their mean, the ensemble, is drawn)
    drawn = ~scores["model"].str.contains(SEED_SUFFIX)
    paths = [
        plot_skill_vs_aridity(scores[drawn], figures / "skill_vs_aridity.png"),
        plot_skill_drop(results[~results["model"].str.contains(SEED_SUFFIX)],
                        figures / "skill_drop.png"),
        plot_budyko(scores[drawn], figures / "budyko.png"),
    ]
    site_figure = (figures / "untrained_variables.png").is_file()  # drawn by the scoring
    if site_figure:
        paths.append(figures / "untrained_variables.png")
    page = render_page(results, scores, timing, untrained, study, basins, wall_s, quick,
                       "figures", site_figure=site_figure, machine=machine)
    atomic_write_text(out / "climate_shift.md", page)
    if not quick and study.report.docs:
        docs = Path(study.report.docs)
        fig_dir = Path(study.report.figures or docs.parent / "figures" / "climate_shift")
        fig_dir.mkdir(parents=True, exist_ok=True)
        for p in paths:  # each replaced whole: an interrupted copy leaves the earlier one
            atomic_write_bytes(fig_dir / p.name, lambda f, p=p: f.write(p.read_bytes()))
        rel = Path(os.path.relpath(fig_dir, docs.parent)).as_posix()
        atomic_write_text(docs, render_page(results, scores, timing, untrained, study, basins,
                                            wall_s, quick, rel, site_figure=site_figure,
                                            machine=machine))


QUICK_NOTE = ("**Quick setting** (a few basins, a few optimiser steps: a smoke test, not a "
              "result). ")


def render_page(results, scores, timing, untrained, study, basins, wall_s, quick,
                figures, site_figure: bool = True, machine=None) -> str:
    """The study's page; ``figures``: the figures' folder relative to the page;
    ``site_figure``: whether the untrained variables' figure is there to link; ``machine``:
    what the scoring recorded of its machine (None: not recorded)."""
    d = study.data
    n = {g: len(basins.of(g)) for g in ("humid", "intermediate", "arid")}
    train_s = timing.groupby("model")["train_s"].sum()
    # the mean of a model's trainings is scored, not trained (timing.csv keeps its scoring)
    train_s = train_s[~train_s.index.str.endswith(ENSEMBLE_SUFFIX)]
    extreme = _extreme_table(results)
    lines = [
        "# Robustness under climate shift",
        "",
        "<!-- generated by `hybridland study climate-shift`; edits are overwritten -->",
        "",
        "Reproduce:",
        "",
        "```bash",
        "hybridland study climate-shift --config experiments/climate_shift/study.yaml "
        "--out runs/climate-shift" + (" --quick" if quick else ""),
        "```",
        "",
        *_reproduce(study),
        (QUICK_NOTE if quick else "")
        + f"MOPEX basins: {n['humid']} humid (aridity in [{d.humid[0]:g}, {d.humid[1]:g})), "
        f"{n['intermediate']} intermediate and {n['arid']} arid (aridity in "
        f"[{d.arid[0]:g}, {d.arid[1]:g})); aridity = mean PE / mean P over "
        f"{d.train_period[0]} .. {d.train_period[1]}. Training {d.train_period[0]} .. "
        f"{d.train_period[1]}, validation (early stopping) {d.validation_period[0]} .. "
        f"{d.validation_period[1]}, test {d.test_period[0]} .. {d.test_period[1]}. "
        f"The diverse split adds {len(basins.arid_train)} arid basins to training. Each "
        f"basin's driest {d.dry_years:.0%} of years from {d.train_period[0][:4]} to "
        f"{d.test_period[1][:4]} (by annual precipitation) were hidden from every training "
        "run and form the dry-extreme test, compared with the test years outside them (the two "
        f"share no day). A basin is scored on a test only with at least {MIN_OBSERVED_DAYS} "
        "observed days in it (a whole seasonal cycle; its evaporative index 1 - Q/P is then an "
        "annual one). NSE, KGE and log-NSE count as -inf where the observations define them "
        "and the simulation does not (a constant flow has no correlation), so that a basin a "
        "model fails on is not left out of its median; FLV is left out where the observed low "
        "flows are all zero.",
        "",
        f"Training time of all runs {machine_text(machine)}: "
        f"**{timing['train_s'].sum() / 60:.1f} min**; this invocation of the study took "
        f"{wall_s / 60:.1f} min (evaluation {timing['evaluate_s'].sum() / 60:.1f} min; "
        "finished runs are reused).",
        "",
        _budget(study, quick, timing),
        "",
        "## Verdict",
        "",
        verdict(results),
        "",
        *targets_section(results, scores, timing, untrained, study),
        *budget_table(results, study),
        *ensemble_table(results, study),
        "## Results (median over basins)",
        "",
        "Scores are medians over basins; the drop is in-distribution minus shifted median "
        "NSE. FLV is the bias of the low-flow volume (lowest 30 % of the flow duration curve, "
        "%). The closure column is the largest cumulative water residual over every basin and "
        "day of the evaluation, recomputed from each run's stores and fluxes.",
        "",
        results_markdown(results),
        "",
    ]
    if extreme is not None:
        lines += [
            "## Extreme-weighted training",
            "",
            "The same models trained on the temporal split with the low-flow weighted loss "
            f"(`training.extreme_weight` = {study.extreme_weighting.extreme_weight:g}, weights "
            "1 + λ exp(−q/q̄); see `hybridland.train.losses`), scored on the hidden dry years:",
            "",
            extreme,
            "",
        ]
    if untrained is not None and len(untrained):
        lines += [
            "## Untrained variables",
            "",
            f"The `{study.untrained.model}` model of the temporal split, trained on streamflow "
            "only, run at sites with their own forcing; its evapotranspiration and soil water "
            "against observations (anomaly correlation after removing each series' "
            "day-of-year climatology):",
            "",
            _frame_markdown(untrained[[c for c in UNTRAINED_COLUMNS if c in untrained]]),
            "",
        ]
        if site_figure:
            lines += [f"![untrained variables]({figures}/untrained_variables.png)", ""]
    lines += [
        "## Figures",
        "",
        f"![skill against aridity]({figures}/skill_vs_aridity.png)",
        "",
        f"![skill drop]({figures}/skill_drop.png)",
        "",
        f"![Budyko]({figures}/budyko.png)",
        "",
        "## Training time per model (all splits)",
        "",
        "| model | seconds |",
        "|---|---|",
        *[f"| {label(m)} | {s:.0f} |" for m, s in train_s.items()],
        "",
        *_epochs_table(timing),
    ]
    return "\n".join(lines)


def _reproduce(study) -> list[str]:
    """How the page is continued, re-scored and rewritten without training everything again."""
    lines = [
        "Finished runs in the output folder are reused and interrupted ones resume at their next "
        "epoch, so the command can be stopped and run again; a second invocation with "
        "`--train-only SPLIT/MODEL ...` on the same `--out` trains those runs beside it (a run "
        "is locked while one process trains it), and `--report-only` writes the tables, "
        "figures and this page again from the scores in `--out`.",
        "",
    ]
    if study.report.archive:
        lines += [
            f"The trained runs behind this page are kept, with checksums, in "
            f"`{study.report.archive}`; put them back first and the command above trains "
            "nothing and scores them:",
            "",
            "```bash",
            "python experiments/climate_shift/trained_runs.py restore \\",
            f"    --archive {study.report.archive} --out runs/climate-shift",
            "```",
            "",
        ]
    return lines


def _epochs_table(timing) -> list[str]:
    """Per trained run: epochs completed, best epoch, the bound and whether early stopping
    ended it (the convergence each figure rests on)."""
    if "epochs_completed" not in timing:
        return []
    runs = timing.dropna(subset=["epochs_completed"])
    return [
        "## Epochs per run",
        "",
        "Epochs completed, the best epoch (its weights are the model; counted from 1) and the "
        "bound; *early stop*: the validation loss stopped improving before the bound.",
        "",
        "| model | split | epochs | best | bound | ended by |",
        "|---|---|---|---|---|---|",
        *[f"| {label(r.model)} | {r.split} | {int(r.epochs_completed)} | {int(r.best_epoch) + 1} "
          f"| {int(r.epochs_bound)} | {'early stop' if r.stopped_early else 'bound'} |"
          for r in runs.itertuples()],
        "",
    ]


def machine_text(machine) -> str:
    """Where the page's times were taken, from what the scoring recorded of its machine
    (``climate_shift._machine``): its CPU cores and JAX's backend (with the device where it is
    not the CPU); None: not recorded (a folder scored before it was)."""
    if not machine:
        return "(machine not recorded)"
    cores = machine.get("cpu_count")
    usable = machine.get("usable_cpus", cores)
    text = ("CPU cores unrecorded" if cores is None else f"{cores} CPU cores" if usable == cores
            else f"{usable} of its {cores} CPU cores")
    backend = machine.get("jax_backend")
    if backend:
        text += f", JAX on {backend}"
        kind, count = machine.get("device_kind"), machine.get("device_count", 1)
        if backend != "cpu" and kind:
            text += f": {count} × {kind}" if count and count > 1 else f": {kind}"
    return f"on this machine ({text})"


def _budget(study, quick: bool, timing) -> str:
    """The page's compute budget: the one the study imposes (``training``, or ``quick``) or
    the models' own, with the budget check's runs, which get ``factor`` times it."""
    t = study.quick if quick else study.training
    patience = None if quick else study.training.patience
    if not (t.epochs or t.batches_per_epoch or patience):
        return (
            "Compute budget: every model trains with its own configuration's epochs, "
            "mini-batches and early stopping"
            + _budget_check_runs(study, None, None, True, timing)
            + " (the bound each run reached is in the table of epochs per run); runs ended by "
            "early stopping have converged on the validation loss."
        )
    same = " of ".join(part for part, imposed in (
        (f"{t.epochs} epochs", t.epochs),
        (f"{t.batches_per_epoch} mini-batches per epoch", t.batches_per_epoch)) if imposed)
    stop = (f"early stopping after {patience} epochs without a better validation loss"
            if patience else "")
    own = [name for name, imposed in (("epochs", t.epochs),
                                      ("mini-batches per epoch", t.batches_per_epoch))
           if not imposed]
    batch = (f"{study.quick.batch_basins} basins and the configured window" if quick
             else "the configured basins and window")
    return (
        "Compute budget: every trained model gets the same " + " with ".join(
            part for part in (same, stop) if part)
        + " (" + (f"its own configuration's {' and '.join(own)}; " if own else "")
        + f"each mini-batch: {batch} after the warm-up)"
        # --quick trains without early stopping (quick.epochs is the bound)
        + _budget_check_runs(study, t.epochs, patience, not quick, timing)
        + ". Models with per-basin parameters see each basin in only a share of the batches, "
        "so at this budget they are less converged than with their own configurations' longer "
        "training."
    )


def _budget_check_runs(study, epochs, patience, stopping: bool, timing) -> str:
    """The exception to the page's budget: the budget check's runs get ``factor`` times the
    ``epochs`` and ``patience`` (their numbers where the study sets them, None: the models'
    own); ``stopping``: whether those runs stop early at all; ``timing``'s rows say which of
    them continued their model's run. Empty without a budget check."""
    check = study.budget_check
    if not check.models:
        return ""
    what = "epochs and patience" if stopping else "epochs"
    numbers = [f"{scaled_budget(check.factor, epochs)} epochs"] if epochs else []
    if patience:
        numbers.append(f"early stopping after {scaled_budget(check.factor, patience)}")
    taken = {r.model: int(r.epochs_taken_over) for r in timing.itertuples()
             if r.split == check.split and getattr(r, "epochs_taken_over", 0) > 0}
    continued = [f"{label(m)}: its first {taken[budget_label(m, check.factor)]} epochs"
                 for m in check.models if budget_label(m, check.factor) in taken]
    return (f", except the budget check's runs ({check.split}, \"{check.factor:g}x budget\" in "
            f"the tables), which get {check.factor:g} times the {what}"
            + (f": {', '.join(numbers)}" if numbers else "")
            + (" (taken over from the model's run, which a longer run repeats epoch for epoch "
               "under a learning-rate schedule that does not depend on the epochs bound, so "
               f"only the further epochs were trained and timed: {'; '.join(continued)})"
               if continued else ""))


def _median_columns(results: pd.DataFrame, split: str):
    """The median columns a comparison on ``split`` shows (NSE and KGE in distribution, and
    shifted where the split has a shifted test) with their headings, and the split's results
    by model."""
    keys = [("nse_in", "NSE in distribution"), ("kge_in", "KGE in distribution")]
    if SHIFT[split][2] is not None:
        keys += [("nse_shifted", "NSE shifted"), ("kge_shifted", "KGE shifted")]
    return keys, results[results["split"] == split].set_index("model")


def _trainings(study, name: str, split: str) -> list[str]:
    """Result labels of the trainings of model ``name`` on ``split`` with its own seed and the
    ensemble's seeds (only its own run where the ensemble does not train it there)."""
    ens = study.ensemble
    if name not in ens.models or ens.split != split:
        return [name]
    return ens.trainings(name)


def budget_table(results: pd.DataFrame, study) -> list[str]:
    """The budget check: each model's medians at its own budget and at ``factor`` times it on
    the check's split, the largest change, whether it is within the tolerance and, where the
    model was also trained with other seeds there, whether every change is within the spread
    of those trainings (the budget then moves a median less than the seed does)."""
    check = study.budget_check
    if not check.models:
        return []

    keys, part = _median_columns(results, check.split)
    rows, seeded = [], False
    for name in check.models:
        more = budget_label(name, check.factor)
        if name not in part.index or more not in part.index:
            continue
        changes = {k: abs(part.at[more, k] - part.at[name, k]) for k, _ in keys}
        # a median of -inf (most basins failed) is a score: its change is inf, not unmeasured
        measured = not any(np.isnan(v) for v in changes.values())
        change = max(changes.values()) if measured else np.nan
        cells = [f"{_fmt(part.at[name, k], 3)} → {_fmt(part.at[more, k], 3)}" for k, _ in keys]
        unmoved = ("not measured" if not measured
                   else "yes" if change <= check.tolerance else "**no**")
        runs = _trainings(study, name, check.split)
        spread = "n/a (one training)"
        if len(runs) > 1:
            seeded = True
            if any(r not in part.index for r in runs):
                spread = "n/a (trainings missing)"
            else:
                ranges = {k: np.ptp([part.at[r, k] for r in runs]) for k, _ in keys}
                if not measured or any(np.isnan(v) for v in ranges.values()):
                    spread = "not measured"
                else:
                    within = all(changes[k] <= ranges[k] for k, _ in keys)
                    spread = f"{'yes' if within else '**no**'} ({len(runs)} trainings)"
        rows.append(f"| {label(name)} | " + " | ".join(cells) + f" | {_fmt(change, 3)} | "
                    + unmoved + f" | {spread} |")
    if not rows:
        return []
    return [
        "## Budget check",
        "",
        f"Split {check.split}: each model's medians at its own budget → at {check.factor:g} "
        f"times its epochs and patience (epochs reached: table of epochs per run). "
        f"Unmoved: the largest change is at most {check.tolerance:g}."
        + (" Within the seeds' spread: no change is larger than the range (largest − "
           "smallest) of that median over the model's trainings with different seeds, its "
           "own included; the budget then moves the median no more than the seed does."
           if seeded else ""),
        "",
        "| model | " + " | ".join(h for _, h in keys)
        + " | largest change | unmoved | within the seeds' spread |",
        "|---|" + "---|" * (len(keys) + 3),
        *rows,
        "",
    ]


def ensemble_table(results: pd.DataFrame, study) -> list[str]:
    """Each training of the ensemble's models (its own seed, then the others) and their mean:
    medians in distribution and shifted, and the spread of the trainings."""
    ens = study.ensemble
    if not ens.models:
        return []
    keys, part = _median_columns(results, ens.split)
    rows = []
    for name in ens.models:
        runs = _trainings(study, name, ens.split)
        mean = name + ENSEMBLE_SUFFIX
        if any(r not in part.index for r in runs + [mean]):
            continue
        seeds = [study.models[name].run.seed, *ens.seeds]
        for run, seed in zip(runs, seeds):
            rows.append(f"| {label(name)}, seed {seed} | "
                        + " | ".join(f"{part.at[run, k]:.3f}" for k, _ in keys) + " |")
        rows.append(f"| **{label(name)}, mean of the {len(runs)}** | "
                    + " | ".join(f"**{part.at[mean, k]:.3f}**" for k, _ in keys) + " |")
        rows.append(f"| {label(name)}: spread of the trainings (largest - smallest) | "
                    + " | ".join(f"{np.ptp([part.at[r, k] for r in runs]):.3f}"
                                 for k, _ in keys) + " |")
    if not rows:
        return []
    return [
        "## Trainings and their mean",
        "",
        f"Split {ens.split}: each model trained with its own seed and with seeds "
        f"{', '.join(map(str, ens.seeds))} (other initial weights and mini-batches, the same "
        "data and budget), scored alone and as the mean of their simulated runoff "
        "(`hybridland evaluate --run-dir A B ...`; the mean of closed water balances closes).",
        "",
        "| run | " + " | ".join(h for _, h in keys) + " |",
        "|---|" + "---|" * len(keys),
        *rows,
        "",
    ]


def _met(ok, *values) -> str:
    """'met' / 'not met' for the test ``ok``; 'not measured' if a value it compares is missing
    (NaN: a missing score fails no target and meets none). A median of -inf (most basins of
    the group failed, ``metrics.WORST_WHEN_UNDEFINED``) is measured, and fails."""
    if any(np.isnan(v) for v in values):
        return "not measured"
    return "met" if ok else "**not met**"


NOT_MEASURED = "not measured (no such results)"


def target_pairs(study) -> list[tuple[str, str, str]]:
    """``(what, model label, peer label)`` of every humid-to-arid comparison of the targets'
    model with its peer that the study makes: their own runs, each other seed, the mean of
    their trainings and the larger budget."""
    t, ens, check = study.targets, study.ensemble, study.budget_check
    both = {t.model, t.peer}
    pairs = [("own run", t.model, t.peer)]
    if both <= set(ens.models) and ens.split == "humid_to_arid":
        pairs += [(f"seed {s}", seed_label(t.model, s), seed_label(t.peer, s))
                  for s in ens.seeds]
        pairs.append(("mean runoff of the trainings", t.model + ENSEMBLE_SUFFIX,
                      t.peer + ENSEMBLE_SUFFIX))
    if both <= set(check.models) and check.split == "humid_to_arid":
        pairs.append((f"{check.factor:g}x budget", budget_label(t.model, check.factor),
                      budget_label(t.peer, check.factor)))
    return pairs


def targets_section(results: pd.DataFrame, scores: pd.DataFrame, timing: pd.DataFrame,
                    untrained, study) -> list[str]:
    """The study's targets (``study.targets``), each with its measured value and whether it
    holds ('not measured' where the results lack it); empty without a targets' model."""
    t = study.targets
    if t.model is None:
        return []
    lines = [
        "## Targets",
        "",
        f"**{label(t.model)}** against **{label(t.peer)}**. Humid → arid, for each pair of "
        f"trainings: the model's arid median KGE ≥ 0 and above the peer's, its humid median NSE "
        f"at least the peer's − {t.humid_nse_margin:g}, and its NSE drop smaller than the "
        "peer's.",
        "",
        "| trainings | arid KGE (model / peer) | humid NSE (model / peer) | "
        "NSE drop (model / peer) | arid KGE ≥ 0 | arid KGE above the peer's | "
        f"humid NSE ≥ peer's − {t.humid_nse_margin:g} | smaller drop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    _, h2a = _median_columns(results, "humid_to_arid")
    for what, a, b in target_pairs(study):
        if a not in h2a.index or b not in h2a.index:
            lines.append(f"| {what} | " + " | ".join([NOT_MEASURED] + [""] * 6) + " |")
            continue
        x, y = h2a.loc[a], h2a.loc[b]
        lines.append(
            f"| {what} | {_fmt(x.kge_shifted, 3)} / {_fmt(y.kge_shifted, 3)} | "
            f"{_fmt(x.nse_in, 3)} / {_fmt(y.nse_in, 3)} | {_fmt(x.nse_drop, 3)} / "
            f"{_fmt(y.nse_drop, 3)} | {_met(x.kge_shifted >= 0, x.kge_shifted)} | "
            f"{_met(x.kge_shifted > y.kge_shifted, x.kge_shifted, y.kge_shifted)} | "
            f"{_met(x.nse_in >= y.nse_in - t.humid_nse_margin, x.nse_in, y.nse_in)} | "
            f"{_met(x.nse_drop < y.nse_drop, x.nse_drop, y.nse_drop)} |")
    lines.append("")
    _, diverse = _median_columns(results, "diverse")
    text = "- Diverse training, median KGE on the unseen arid basins at least the peer's: "
    if {t.model, t.peer} <= set(diverse.index):
        a, b = diverse.at[t.model, "kge_shifted"], diverse.at[t.peer, "kge_shifted"]
        text += f"{_fmt(a, 3)} against {_fmt(b, 3)}: {_met(a >= b, a, b)}."
    else:
        text += NOT_MEASURED + "."
    lines.append(text)
    # per basin and run (a run's median skips nothing here: one NaN residual fails it)
    bucket = scores[scores["model"].map(_is_bucket(study))]
    runs = bucket.groupby(["model", "split"])["max_abs_cumulative_residual_mm"]
    text = (f"- Closure of every bucket run reported, its cumulative water residual at most "
            f"{t.closure_mm:g} mm on every basin: ")
    if len(bucket):
        closed = runs.apply(lambda r: bool((np.isfinite(r) & (r <= t.closure_mm)).all()))
        largest = bucket["max_abs_cumulative_residual_mm"].max()
        text += (f"{int(closed.sum())} of {len(closed)} runs, largest {largest:.1e} mm: "
                 f"{_met(bool(closed.all()))}.")
    else:
        text += NOT_MEASURED + "."
    lines.append(text)
    text = (f"- Daily ET correlation at {t.et_site} (an untrained variable; Pearson r of the "
            f"daily series, seasonal cycle included) ≥ {t.et_correlation:g}: ")
    et = (untrained[(untrained["site"] == t.et_site)
                    & (untrained["variable"] == "evapotranspiration")]
          if untrained is not None and len(untrained) else ())
    if len(et):
        r = float(et["correlation"].iloc[0])
        anomaly = float(et["anomaly_correlation"].iloc[0]) if "anomaly_correlation" in et \
            else np.nan
        text += (f"{_fmt(r, 3)} (anomaly correlation {_fmt(anomaly, 3)}): "
                 f"{_met(r >= t.et_correlation, r)}.")
    else:
        text += NOT_MEASURED + "."
    lines.append(text)
    seconds = timing["train_s"].to_numpy(float) + timing.get(
        "evaluate_s", pd.Series(0.0, index=timing.index)).fillna(0.0).to_numpy(float)
    minutes = float(np.sum(seconds)) / 60
    base = timing["model"].map(lambda m: re.sub(VARIANT, "", m)).to_numpy()
    shares = "; ".join(  # where the time goes: the two models the targets compare
        f"the runs of {label(name)}, its variants included, "
        f"{_fmt(seconds[base == name].sum() / 60, 1)} min"
        for name in dict.fromkeys((t.model, t.peer)) if (base == name).any())
    lines += [f"- The whole study within {t.study_minutes:g} min on this machine, counted "
              f"as the training and scoring time of its runs summed over all its invocations "
              f"(runs trained side by side overlap in elapsed time): {_fmt(minutes, 1)} min"
              + (f" ({shares})" if shares else "")
              + f": {_met(minutes <= t.study_minutes, minutes)}.", ""]
    return lines


def _is_bucket(study):
    """Whether a result label is a bucket model of the study (a water balance to close)."""

    def test(model: str) -> bool:
        base = re.sub(VARIANT, "", model)
        config = study.models.get(base)
        return config is not None and config.model.kind != "lstm"
    return test


def _extreme_table(results: pd.DataFrame) -> str | None:
    part = results[results["split"] == "dry_extremes"]
    weighted = [m for m in part["model"] if m.endswith("_extreme")]
    if not weighted:
        return None
    rows = []
    for m in weighted:
        base = m.removesuffix("_extreme")
        for name in (base, m):
            r = part[part["model"] == name]
            if not r.empty:
                rows.append(r.iloc[0])
    frame = pd.DataFrame(rows)
    return markdown_table(frame, {
        "model": "model", "nse_shifted": "NSE dry years", "log_nse_shifted": "log-NSE dry years",
        # the dry_extremes split's "in" days: the test years outside each basin's dry years
        "flv_shifted": "FLV % dry years", "nse_in": "NSE test years outside the dry years",
        "log_nse_in": "log-NSE test years outside the dry years"})


UNTRAINED_COLUMNS = ("site", "variable", "n_days", "correlation", "anomaly_correlation",
                     "mean_observed", "observed_units", "mean_simulated", "simulated_units",
                     "pet_law", "parameters")


def _frame_markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in frame.iterrows():
        cells = [(_fmt(float(v), 3) if isinstance(v, (float, np.floating)) else str(v))
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
