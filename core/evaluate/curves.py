"""Success-rate (capture-efficiency) curves and prediction-area crossings, as data and as a plot.

Sort area units (samples, or raster cells) by score, highest first; the curve
runs from (0, 0) to (1, 1) with x = cumulative share of the study area and
y = cumulative share of deposits captured (``reference/evaluation.md`` section 2).

- Samples: each sample stands for an equal share of the area; a deposit is
  captured with its nearest sample (deposits outside the survey, see
  :mod:`core.evaluate.deposits`, are reported and left out).
- Raster cells: nodata cells count neither in area nor in deposits; a
  deposit off the raster or on a nodata cell is reported and left out.

Tied scores enter the curve together (one point per distinct score), so the
curve never depends on an arbitrary order among ties; the area under it
(trapezoids) then counts ties one half, like ROC-AUC. "% of deposits in the
top p % of area" reads the curve at x = p by linear interpolation.

Prediction-area (P-A): against the score threshold t, the prediction rate
P(t) (deposits captured at score >= t) falls and 1 - A(t) (area left out)
rises; where they cross, P = 1 - A, is a common class threshold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.evaluate.deposits import locate_deposit_cells, match_deposits
from core.io.atomic import atomic_write_path

TOP_AREA_SHARES = (0.05, 0.10, 0.20)


@dataclass
class SuccessRateCurve:
    area_share: np.ndarray  # from 0 to 1
    deposit_share: np.ndarray  # from 0 to 1
    thresholds: np.ndarray  # score threshold of each point (units with score >= threshold); inf at (0, 0)
    auc: float
    top_area: dict[str, float]  # {"5": share of deposits in the top 5 % of area, "10": ..., "20": ...}
    pa_crossing: dict[str, float]  # threshold, prediction_rate, area_share, normalized_density
    unit: str  # "samples" or "cells"
    n_units: int
    n_deposits: int
    n_used: int
    outside_index: list[int] = field(default_factory=list)

    @property
    def n_outside(self) -> int:
        return len(self.outside_index)

    def to_dict(self) -> dict:
        """Figures for a run record (the curve itself goes to CSV, see :meth:`to_frame`)."""
        return {
            "unit": self.unit,
            "auc": self.auc,
            "deposits_in_top_area": self.top_area,
            "prediction_area_crossing": self.pa_crossing,
            "n_units": self.n_units,
            "n_deposits": self.n_deposits,
            "n_used": self.n_used,
            "n_outside": self.n_outside,
            "outside_index": self.outside_index,
        }

    def to_frame(self, max_points: int | None = 5000) -> pd.DataFrame:
        """The curve as a table (area_share, deposit_share, threshold), thinned to about ``max_points``."""
        keep = np.arange(len(self.area_share))
        if max_points is not None and len(keep) > max_points:
            # Evenly spaced in area, always keeping the points where deposits are captured.
            picked = np.searchsorted(self.area_share, np.linspace(0, 1, max_points))
            steps = np.flatnonzero(np.diff(self.deposit_share) > 0) + 1
            keep = np.unique(np.r_[0, np.clip(picked, 0, len(keep) - 1), steps, len(keep) - 1])
        return pd.DataFrame(
            {
                "area_share": self.area_share[keep],
                "deposit_share": self.deposit_share[keep],
                "threshold": self.thresholds[keep],
            }
        )

    def legend(self, auc: float | None = None) -> str:
        """The curve's line in a plot legend; ``auc``: the run's headline AUC, shown instead of the curve's area
        so that the plot and the log print one number (see :func:`core.evaluate.report.evaluate_scores`)."""
        tops = "/".join(f"{self.top_area[k] * 100:.0f}" for k in self.top_area)
        label = f"AUC {self.auc if auc is None else auc:.3f}; deposits in top {'/'.join(self.top_area)} % of area: {tops} %"
        if self.n_outside:
            label += f"; {self.n_outside} outside"
        return label


def success_curve(
    unit_scores: np.ndarray, deposit_scores: np.ndarray, unit: str = "samples"
) -> SuccessRateCurve:
    """Curve from the score of every area unit and the score at every (usable) deposit."""
    unit_scores = np.asarray(unit_scores, dtype=float).reshape(-1)
    deposit_scores = np.asarray(deposit_scores, dtype=float).reshape(-1)
    if len(unit_scores) == 0:
        raise InvalidInputError(f"no {unit} with a score to build a success-rate curve from")
    if len(deposit_scores) == 0:
        raise InvalidInputError("no deposit within the scored area to build a success-rate curve from")
    thresholds = np.unique(unit_scores)[::-1]  # distinct scores, highest first
    ordered = np.sort(unit_scores)
    ordered_deposits = np.sort(deposit_scores)
    at_or_above = len(ordered) - np.searchsorted(ordered, thresholds, side="left")
    deposits_at_or_above = len(ordered_deposits) - np.searchsorted(ordered_deposits, thresholds, side="left")
    area = np.r_[0.0, at_or_above / len(ordered)]
    captured = np.r_[0.0, deposits_at_or_above / len(ordered_deposits)]
    thresholds = np.r_[np.inf, thresholds]
    auc = float(np.sum(np.diff(area) * (captured[1:] + captured[:-1]) / 2))
    top_area = {f"{p * 100:g}": float(np.interp(p, area, captured)) for p in TOP_AREA_SHARES}
    return SuccessRateCurve(
        area_share=area,
        deposit_share=captured,
        thresholds=thresholds,
        auc=auc,
        top_area=top_area,
        pa_crossing=prediction_area_crossing(area, captured, thresholds),
        unit=unit,
        n_units=len(unit_scores),
        n_deposits=len(deposit_scores),
        n_used=len(deposit_scores),
    )


def prediction_area_crossing(
    area: np.ndarray, captured: np.ndarray, thresholds: np.ndarray
) -> dict[str, float]:
    """Where the prediction rate P equals the area left out 1 - A, interpolated between curve points."""
    total = area + captured  # rises from 0 to 2 as the threshold falls
    i = int(np.argmax(total >= 1.0))
    f = (1.0 - total[i - 1]) / (total[i] - total[i - 1])
    rate = captured[i - 1] + f * (captured[i] - captured[i - 1])
    share = area[i - 1] + f * (area[i] - area[i - 1])
    upper = thresholds[i - 1] if np.isfinite(thresholds[i - 1]) else thresholds[i]
    threshold = upper + f * (thresholds[i] - upper)
    return {
        "threshold": float(threshold),
        "prediction_rate": float(rate),
        "area_share": float(share),
        "normalized_density": float(rate / share) if share > 0 else float("inf"),
    }


def sample_success_curve(
    sample_xy, scores, deposit_xy, max_deposit_distance_km: float | None = None
) -> SuccessRateCurve:
    """Success-rate curve over samples (equal area each); deposits scored by their nearest sample."""
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if not np.isfinite(scores).all():
        raise InvalidInputError(
            f"{int((~np.isfinite(scores)).sum())} sample score(s) are missing or not finite"
        )
    if len(scores) != len(np.asarray(sample_xy)):
        raise InvalidInputError(f"{len(scores)} scores for {len(np.asarray(sample_xy))} samples")
    match = match_deposits(sample_xy, deposit_xy, max_deposit_distance_km)
    curve = success_curve(scores, scores[match.nearest_index[match.inside]], unit="samples")
    curve.n_deposits = len(match.inside)
    curve.outside_index = match.outside_index
    return curve


def raster_success_curve(score_grid, transform, deposit_xy, valid_mask=None) -> SuccessRateCurve:
    """Success-rate curve over raster cells (``score_grid`` (rows, cols), NaN = nodata) in the raster's CRS."""
    grid, valid, cells, inside = locate_deposit_cells(score_grid, transform, deposit_xy, valid_mask)
    curve = success_curve(grid[valid], grid[cells[inside, 0], cells[inside, 1]], unit="cells")
    curve.n_deposits = len(inside)
    curve.outside_index = [int(i) for i in np.flatnonzero(~inside)]
    return curve


def plot_success_rate(
    curves: Mapping[str, SuccessRateCurve], path: str | os.PathLike, title: str = "Success-rate curve",
    auc: Mapping[str, float] | None = None,
) -> Path:
    """Draw one or more success-rate curves with the random diagonal into a PNG (written atomically).

    ``auc``: the AUC the run reports for each curve's name (log and run.json), printed in the legend
    instead of the area under that one curve.
    """
    # The Agg canvas directly: no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 6.0), dpi=150)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot([0, 100], [0, 100], linestyle="--", color="0.5", linewidth=1, label="random (AUC 0.5)")
    for name, curve in curves.items():
        # Straight segments between points: a block of tied scores is a slope, as its AUC share is.
        ax.plot(
            curve.area_share * 100,
            curve.deposit_share * 100,
            linewidth=1.8,
            label=f"{name}: {curve.legend((auc or {}).get(name))}",
        )
    for p in TOP_AREA_SHARES:
        ax.axvline(p * 100, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("Share of study area, highest scores first (%)")
    units = {c.unit for c in curves.values()}
    deposits = {c.n_used for c in curves.values()}
    ax.set_ylabel(
        "Share of deposits captured (%)" + (f", n = {deposits.pop()}" if len(deposits) == 1 else "")
    )
    ax.set_title(title + (f" ({units.pop()})" if len(units) == 1 else ""))
    ax.grid(True, color="0.92")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    figure.tight_layout()
    path = Path(path)
    with atomic_write_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
