"""Where a trained bucket's runoff comes from on some basins: quick or slow flow, against the
observed hydrograph split the same way.

Both hydrographs (observed gaps filled by linear interpolation, the simulated series as it is)
are split by the Lyne-Hollick digital filter (alpha 0.925, three passes: forward, backward,
forward; Nathan and McMahon 1990) into a slow (baseflow) and a quick part; the medians over
basins of the mean of each part over the observed days, and the model's own budget terms
(P, E, its groundwater loss where it has one, its surface and subsurface runoff before
routing, and the part of the surface runoff the infiltration capacity made where it has
one: "horton"), are printed. Example, the humid-trained hybrid on the arid basins:

    .venv/bin/python experiments/climate_shift/flow_paths.py --run-dir runs/shift-hybrid \\
        --aridity 1.5:100
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from hybridland.train.evaluate import evaluate_run

ALPHA = 0.925


def _forward(q: np.ndarray, alpha: float) -> np.ndarray:
    """One forward pass of the filter over ``[basin, time]``: the slow part, 0 <= b <= q."""
    quick = np.zeros_like(q)
    for t in range(1, q.shape[-1]):
        quick[:, t] = alpha * quick[:, t - 1] + 0.5 * (1 + alpha) * (q[:, t] - q[:, t - 1])
        quick[:, t] = np.clip(quick[:, t], 0.0, q[:, t])
    return q - quick


def baseflow(q: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The slow part of hydrographs ``[basin, time]`` (no gaps): three filter passes."""
    b = _forward(q, alpha)
    b = _forward(b[:, ::-1], alpha)[:, ::-1]
    return _forward(b, alpha)


def flow_paths(run_dir, aridity=None, data=None) -> pd.DataFrame:
    """One row per basin with observations: the means over the observed days (mm day-1)."""
    ev = evaluate_run(run_dir, data, aridity_range=aridity, progress=False)
    if ev.simulation is None:
        raise SystemExit(f"{run_dir} is not a bucket model: it has no flow paths to split.")
    observed = ev.observed
    seen = np.isfinite(observed)
    keep = seen.any(axis=1)
    filled = pd.DataFrame(observed.T).interpolate(limit_direction="both").to_numpy().T
    filled = np.where(np.isfinite(filled), filled, 0.0)
    f = ev.simulation.fluxes

    def mean(x):
        x = np.where(seen, np.asarray(x, np.float64), np.nan)
        return np.nanmean(x[keep], axis=1)

    rows = {
        "precip": mean(f.precip), "et": mean(f.et),
        "loss": mean(f.groundwater_loss) if f.groundwater_loss is not None else 0.0,
        "surface": mean(f.surface_runoff), "subsurface": mean(f.subsurface_runoff),
        # the part of the surface runoff the infiltration capacity made, where there is one
        "horton": (mean(f.infiltration_excess_runoff)
                   if f.infiltration_excess_runoff is not None else 0.0),
        "q_sim": mean(ev.runoff), "q_obs": mean(observed),
        "slow_sim": mean(baseflow(np.asarray(ev.runoff, np.float64))),
        "slow_obs": mean(baseflow(filled)),
    }
    table = pd.DataFrame(rows, index=np.asarray(ev.data.basins)[keep])
    table["quick_sim"] = table.q_sim - table.slow_sim
    table["quick_obs"] = table.q_obs - table.slow_obs
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data", default=None, help="another file of the run's layout")
    parser.add_argument("--aridity", default=None, metavar="LOW:HIGH",
                        help="keep the basins whose aridity lies in [LOW, HIGH)")
    args = parser.parse_args(argv)
    aridity = None if args.aridity is None else tuple(float(v) for v in args.aridity.split(":"))
    table = flow_paths(args.run_dir, aridity, args.data)
    print(f"{len(table)} basins with observations; medians over basins (mm day-1):")
    print(table.median().round(4).to_string())
    med = table.median()
    print(f"ratio of the medians, simulated / observed: slow {med.slow_sim / med.slow_obs:.2f}, "
          f"quick {med.quick_sim / med.quick_obs:.2f}")


if __name__ == "__main__":
    main()
