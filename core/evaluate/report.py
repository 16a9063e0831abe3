"""Evaluating several score columns of one run against deposits, for the run record and the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.evaluate.auc import auc_protocol
from core.evaluate.curves import plot_success_rate, sample_success_curve


def evaluate_scores(
    sample_xy: np.ndarray, scores: dict[str, np.ndarray], deposit_xy: np.ndarray, min_km: float = 5.0
) -> dict:
    """The 20-run AUC protocol and success-rate figures of every named score.

    One AUC per score: the protocol's mean (``auc_by_score``), which the log and the plot show too. The area
    under the single success-rate curve is kept as ``curve_area``, a different figure (all samples, no
    distance rule), so that no second number called AUC reaches the reader.
    """
    auc = {
        name: auc_protocol(sample_xy, values, deposit_xy, min_km=min_km).to_dict()
        for name, values in scores.items()
    }
    curves = {}
    for name, values in scores.items():
        curve = sample_success_curve(sample_xy, values, deposit_xy).to_dict()
        curve["curve_area"] = curve.pop("auc")
        curves[name] = curve
    return {
        "protocol": {"min_km": min_km, "runs": 20, "seed": 42, "unit": "samples"},
        "auc_by_score": auc,
        "success_rate": curves,
    }


def write_success_rate(
    sample_xy: np.ndarray,
    scores: dict[str, np.ndarray],
    deposit_xy: np.ndarray,
    folder: str | Path,
    title: str,
    auc: dict[str, float] | None = None,
) -> dict[str, Path]:
    """``success_rate.png`` (all curves on one plot) and ``success_rate.csv`` (long format).

    ``auc``: each score's headline AUC (see :func:`evaluate_scores`), printed in the legend.
    """
    folder = Path(folder)
    curves = {name: sample_success_curve(sample_xy, values, deposit_xy) for name, values in scores.items()}
    png = plot_success_rate(curves, folder / "success_rate.png", title=title, auc=auc)
    frames = [curve.to_frame().assign(score=name) for name, curve in curves.items()]
    csv = folder / "success_rate.csv"
    pd.concat(frames, ignore_index=True)[["score", "area_share", "deposit_share", "threshold"]].to_csv(
        csv, index=False
    )
    return {"png": png, "csv": csv}
