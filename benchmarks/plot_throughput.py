"""Plot column-steps per second against column count from ``throughput.py``'s JSON and print
the records as a Markdown table.

    .venv/bin/python benchmarks/plot_throughput.py benchmarks/results/cpu-2core.json \\
        --out docs/figures/throughput_cpu.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict


def markdown_table(records: list[dict]) -> str:
    """One row per record: case, throughput, compile time, peak RSS and hybridland ratios."""
    lines = [
        "| impl | model | mode | columns | colsteps/s | compile s | peak RSS MB | hybridland / ref |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['model']} | {r['mode']} | {r['columns']} | failed | | | |")
            continue
        ratios = ", ".join(f"{k[9:]} {v:.2f}" for k, v in r.items() if k.startswith("ratio_vs_"))
        lines.append(
            f"| {r['impl']} | {r['model']} | {r['mode']} | {r['columns']} | "
            f"{r['colsteps_per_s']:.3g} | {r['compile_s']:.2f} | {r['peak_rss_mb']:.0f} | {ratios} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--out", default="docs/figures/throughput_cpu.png")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in json.load(open(args.json)) if "error" not in r]
    print(markdown_table(json.load(open(args.json))))
    panels = sorted({(r["model"], r["mode"]) for r in records})
    impls = sorted({r["impl"] for r in records})
    colour = {impl: f"C{i}" for i, impl in enumerate(impls)}  # one colour per impl everywhere
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, (model, mode) in zip(axes[0], panels):
        lines = defaultdict(list)
        for r in records:
            if (r["model"], r["mode"]) == (model, mode):
                lines[r["impl"]].append((r["columns"], r["colsteps_per_s"]))
        for impl, points in sorted(lines.items()):
            x, y = zip(*sorted(points))
            ax.plot(x, y, "o-", color=colour[impl], label=impl)
        ax.set(xscale="log", yscale="log", xlabel="columns", title=f"{model} {mode}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("column-steps per second")
    for ax in axes[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
