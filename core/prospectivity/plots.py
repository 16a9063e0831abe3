"""The figure a geologist reads first: success-rate curves of the map and its baselines beside the P-A plot."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.evaluate.curves import TOP_AREA_SHARES, SuccessRateCurve, success_curve
from core.io.atomic import atomic_write_path


def plot_prospectivity_figures(
    curves: Mapping[str, SuccessRateCurve],
    probability: np.ndarray,
    deposit_probability: np.ndarray,
    path: str | os.PathLike,
    per_cycle: Sequence[Mapping] = (),
) -> Path:
    """One PNG: left, success-rate curves (held-out deposits when cross-validated); middle, the map's
    prediction-area plot (prediction rate and area left out against the probability threshold); right, when
    there were unattended cycles, the held-out capture after each cycle (``per_cycle``, from
    :func:`core.prospectivity.cycle.capture_per_cycle`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 3 if per_cycle else 2
    figure = Figure(figsize=(6.5 * panels, 6.0), dpi=130)
    FigureCanvasAgg(figure)
    left, right = figure.add_subplot(1, panels, 1), figure.add_subplot(1, panels, 2)
    left.plot([0, 100], [0, 100], linestyle="--", color="0.5", linewidth=1, label="random (AUC 0.5)")
    for name, curve in curves.items():
        left.plot(curve.area_share * 100, curve.deposit_share * 100, linewidth=1.8, label=f"{name}: {curve.legend()}")
    for p in TOP_AREA_SHARES:
        left.axvline(p * 100, color="0.85", linewidth=0.8, zorder=0)
    left.set(xlim=(0, 100), ylim=(0, 100), xlabel="Share of the area, most prospective first (%)",
             ylabel="Share of deposits captured (%)", title="Success rate: the map and its alternatives")
    left.grid(True, color="0.92")
    left.legend(loc="lower right", fontsize=6.5, framealpha=0.9)

    pa = success_curve(probability, deposit_probability, unit="cells")
    thresholds = pa.thresholds[1:]
    right.plot(thresholds, pa.deposit_share[1:] * 100, color="tab:red", label="deposits captured (prediction rate)")
    right.plot(thresholds, (1 - pa.area_share[1:]) * 100, color="tab:blue", label="area left out")
    cross = pa.pa_crossing
    right.axvline(cross["threshold"], color="0.4", linestyle=":", linewidth=1)
    right.annotate(f"crossing: {cross['prediction_rate'] * 100:.0f} % of deposits in "
                   f"{cross['area_share'] * 100:.0f} % of the area", (cross["threshold"], cross["prediction_rate"] * 100),
                   textcoords="offset points", xytext=(8, 8), fontsize=8)
    right.set(xlim=(0, 1), ylim=(0, 100), xlabel="Prospectivity threshold",
              ylabel="%", title="Prediction-area plot (final map, all deposits: optimistic)")
    right.grid(True, color="0.92")
    right.legend(loc="center left", fontsize=8)
    if per_cycle:
        _plot_capture_per_cycle(figure.add_subplot(1, panels, 3), per_cycle)
    figure.tight_layout()
    path = Path(path)
    with atomic_write_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _plot_capture_per_cycle(axes, per_cycle: Sequence[Mapping]) -> None:
    """Held-out deposits in the top 5/10/20 % of the area after each cycle, with the answers so far."""
    cycles = [entry["cycle"] for entry in per_cycle]
    for share, colour in zip(("5", "10", "20"), ("tab:red", "tab:orange", "tab:olive")):
        axes.plot(cycles, [entry["deposits_in_top_area"][share] * 100 for entry in per_cycle], marker="o",
                  color=colour, label=f"top {share} % of the area")
    for entry in per_cycle:
        axes.annotate(f"{entry['yes_so_far']} yes\n{entry['no_so_far']} no", (entry["cycle"], 2), ha="center",
                      fontsize=7, color="0.35")
    axes.set(xlim=(min(cycles) - 0.5, max(cycles) + 0.5), ylim=(0, 100), xticks=cycles,
             xlabel="Cycle (answers given before it, summed over folds)", ylabel="Held-out deposits captured (%)",
             title="What the answers added, cycle by cycle")
    axes.grid(True, color="0.92")
    axes.legend(loc="upper left", fontsize=8)
