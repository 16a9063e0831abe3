"""Small Geo-Hgan rasters and one trained model shared by the Geo-Hgan tests (tiny, seconds on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

from core.anomaly.geohgan import GeoHganDetector
from core.anomaly.geohgan.synthetic import SyntheticRaster, synthetic_raster
from core.io.rasters import write_raster

TRANSFORM = Affine(100.0, 0.0, 500_000.0, 0.0, -100.0, 6_500_000.0)
CRS = "EPSG:28350"

# Enough training for the planted anomalies to rank at the top on a 64 x 64
# raster (measured: cell AUC 0.95-0.99 over seeds), in about 20 s on one core.
TRAINED_SETTINGS = dict(warmup_epochs=6, epochs=2, encoder_epochs=8, batch=64, tiles_per_epoch=2048)
# For command-line tests that check files, not quality.
QUICK_ARGS = ["--warmup-epochs", "1", "--epochs", "1", "--encoder-epochs", "1", "--tiles-per-epoch", "128",
              "--device", "cpu", "--progress", "none"]


def planted_raster(seed: int = 0) -> SyntheticRaster:
    return synthetic_raster(bands=6, rows=64, cols=64, anomalies=4, enrichment=3.0, nodata_corner=True, seed=seed)


def trained_detector(raster: SyntheticRaster, seed: int = 0) -> GeoHganDetector:
    return GeoHganDetector(device="cpu", seed=seed, **TRAINED_SETTINGS).fit(raster.values,
                                                                            band_names=raster.band_names)


def write_stack(path: Path, values: np.ndarray, band_names: list[str] | None = None, transform: Affine = TRANSFORM,
                crs: str = CRS) -> Path:
    return write_raster(path, values, transform, crs, band_names=band_names)
