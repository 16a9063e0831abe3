"""Small synthetic surveys with known anomalies, for tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_survey(n: int = 400, elements: int = 8, anomalies: int = 12, seed: int = 0,
                     origin=(500_000.0, 6_500_000.0), spacing: float = 500.0):
    """A smooth background field on a jittered grid (projected metres) with planted multi-element anomalies.

    Returns (frame with x, y and ``<El>_ppm`` columns, boolean array marking the planted anomalies).
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()])[:n].astype(float)
    xy = xy * spacing + rng.normal(0, spacing * 0.15, size=xy.shape) + np.asarray(origin)
    u = (xy - xy.min(axis=0)) / np.ptp(xy, axis=0)
    names = ["Cu", "Zn", "Pb", "Ni", "Co", "Cr", "As", "Au", "Ag", "Mo", "Sb", "Bi"][:elements]
    # Smooth regional trends in log space: the background a spatial model should learn.
    logs = np.column_stack([
        np.log(20 + 5 * j) + 0.8 * np.sin(2 * np.pi * (u[:, 0] * (1 + j % 3) / 2)) + 0.6 * np.cos(2 * np.pi * u[:, 1] * (1 + j % 2) / 2)
        for j in range(elements)
    ]) + rng.normal(0, 0.12, size=(n, elements))
    planted = np.zeros(n, dtype=bool)
    planted[rng.choice(n, size=anomalies, replace=False)] = True
    boost = np.zeros(elements)
    boost[: max(2, elements // 2)] = 1.6  # several elements rise together, as over mineralisation
    logs[planted] += boost
    frame = pd.DataFrame({"X": xy[:, 0], "Y": xy[:, 1], "SAMPLEID": [f"S{i:04d}" for i in range(n)]})
    for j, name in enumerate(names):
        frame[f"{name}_ppm"] = np.round(np.exp(logs[:, j]), 4)
    return frame, planted
