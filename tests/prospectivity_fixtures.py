"""A small synthetic evidence stack with a planted prospective zone (for tests/test_prospectivity_*.py).

48 x 48 cells of 100 m in UTM 50S. The planted zone is a disc of radius 7
cells; ``anomaly_score`` is high there *and* over a decoy blob where the
pathfinder is low (a false anomaly the labels should correct); the
north-west corner is nodata. Deposits lie inside the zone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine

from core.io.rasters import write_raster

CRS = "EPSG:32750"
CELL = 100.0
SHAPE = (48, 48)
ORIGIN = (500_000.0, 6_300_000.0)
TRANSFORM = Affine(CELL, 0.0, ORIGIN[0], 0.0, -CELL, ORIGIN[1])
ZONE_CENTRE = (30, 15)  # row, col
ZONE_RADIUS = 7
DECOY_CENTRE = (12, 34)


def cell_xy(row: float, col: float) -> tuple[float, float]:
    """Map coordinates of a cell centre."""
    return ORIGIN[0] + (col + 0.5) * CELL, ORIGIN[1] - (row + 0.5) * CELL


def zone_mask() -> np.ndarray:
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (r - ZONE_CENTRE[0]) ** 2 + (c - ZONE_CENTRE[1]) ** 2 <= ZONE_RADIUS**2


def synthetic_bands(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    zone = zone_mask().astype(float)
    decoy = np.exp(-((r - DECOY_CENTRE[0]) ** 2 + (c - DECOY_CENTRE[1]) ** 2) / (2 * 4.0**2))
    anomaly = 0.9 * zone + 0.9 * decoy + 0.15 * rng.standard_normal(SHAPE)
    pathfinder = 1.0 * zone - 0.8 * decoy + 0.2 * rng.standard_normal(SHAPE)
    nodata = (r < 6) & (c < 6)
    for band in (anomaly, pathfinder):
        band[nodata] = np.nan
    return {"anomaly_score": anomaly.astype(np.float32), "pathfinder": pathfinder.astype(np.float32)}


def write_stack(folder: Path, seed: int = 0) -> list[Path]:
    """Write one single-band GeoTIFF per band; returns their paths (anomaly first)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, band in synthetic_bands(seed).items():
        paths.append(write_raster(folder / f"{name}.tif", band, TRANSFORM, CRS, band_names=[name]))
    return paths


DEPOSIT_CELLS = [(27, 12), (29, 17), (31, 14), (33, 18), (26, 16), (34, 12), (30, 10), (25, 13)]


def write_deposits(path: Path, cells=DEPOSIT_CELLS, extra_xy=()) -> Path:
    """Deposits as a CSV with Easting/Northing (needs --deposits-crs) plus any extra coordinates."""
    xy = [cell_xy(r, c) for r, c in cells] + list(extra_xy)
    pd.DataFrame({"Easting": [p[0] for p in xy], "Northing": [p[1] for p in xy],
                  "name": [f"D{i}" for i in range(len(xy))]}).to_csv(path, index=False)
    return path


def write_labels(path: Path, points: list[tuple[float, float, object]], field: str = "label") -> Path:
    """A GeoPackage of labelled points (x, y, value)."""
    import geopandas as gpd

    frame = gpd.GeoDataFrame({field: [p[2] for p in points]},
                             geometry=gpd.points_from_xy([p[0] for p in points], [p[1] for p in points]), crs=CRS)
    frame.to_file(path, driver="GPKG")
    return path
