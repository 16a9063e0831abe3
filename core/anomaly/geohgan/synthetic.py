"""Synthetic multi-band geochemical rasters with planted anomalies (tests and benchmarks).

Background: a few smooth spatial factors (lithologies, regolith) mixed into
every band and exponentiated, so bands are positive, log-normal and
correlated like gridded assays. Anomalies: small square patches where a few
"pathfinder" bands are enriched *and* decoupled from the background mixture,
which is what a multi-element anomaly looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass
class SyntheticRaster:
    values: np.ndarray  # (bands, rows, cols) float32, positive, NaN outside the survey
    anomalous: np.ndarray  # (rows, cols) bool: planted anomaly cells
    band_names: list[str]


def synthetic_raster(bands: int = 6, rows: int = 64, cols: int = 64, anomalies: int = 4, patch: int = 4,
                     enrichment: float = 2.5, factors: int = 3, smoothness: float = 4.0,
                     nodata_corner: bool = False, seed: int = 0) -> SyntheticRaster:
    """A raster of ``bands`` positive bands with ``anomalies`` planted ``patch`` x ``patch`` patches.

    ``enrichment`` is in natural-log units (2.5 = about 12 times background).
    With ``nodata_corner`` a triangle of cells in the top-left corner is NaN,
    like the edge of a survey.
    """
    rng = np.random.default_rng(seed)
    fields = np.stack([gaussian_filter(rng.standard_normal((rows, cols)), smoothness, mode="reflect")
                       for _ in range(factors)])
    fields /= fields.std(axis=(1, 2), keepdims=True)
    mixing = rng.normal(0.0, 0.6, (bands, factors))
    logs = np.einsum("bf,frc->brc", mixing, fields) + rng.normal(0.0, 0.1, (bands, rows, cols))
    logs += rng.uniform(0.0, 4.0, (bands, 1, 1))  # different abundance per element

    anomalous = np.zeros((rows, cols), dtype=bool)
    margin = patch + 2
    placed = 0
    for _ in range(anomalies * 50):
        if placed == anomalies:
            break
        r = int(rng.integers(margin, rows - margin - patch))
        c = int(rng.integers(margin, cols - margin - patch))
        if anomalous[max(r - patch, 0):r + 2 * patch, max(c - patch, 0):c + 2 * patch].any():
            continue  # keep patches apart so each is a separate anomaly
        pathfinders = rng.choice(bands, size=max(2, bands // 3), replace=False)
        for b in pathfinders:
            logs[b, r:r + patch, c:c + patch] += enrichment + rng.normal(0.0, 0.2, (patch, patch))
        anomalous[r:r + patch, c:c + patch] = True
        placed += 1

    values = np.exp(logs).astype(np.float32)
    if nodata_corner:
        rr, cc = np.mgrid[:rows, :cols]
        corner = rr + cc < min(rows, cols) // 4
        values[:, corner] = np.nan
        anomalous &= ~corner
    return SyntheticRaster(values, anomalous, [f"E{i + 1}_ppm" for i in range(bands)])
