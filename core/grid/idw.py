"""Inverse-distance-weighted gridding of sample values (or scores) onto a north-up raster.

Defaults come from the survey's own spacing (median distance between
distinct sample locations, see :mod:`core.grid.spacing`):

- cell size: half the spacing, rounded to a tidy length (1, 2, 2.5 or 5 x 10^k),
  so that a cell is smaller than the gap between neighbouring samples;
- ``max_distance`` (the data mask and the search radius): 5 x the spacing.
  Cells farther than this from every sample are nodata - the map says
  nothing where nobody sampled. Five spacings outline a survey with its
  sparsely sampled ground still inside (on GSWA sed1, spacing 0.93 km, three
  spacings cut the survey into islands and left 14 of 32 deposits in holes,
  five leave 7 outside, ten spread a wide halo beyond the survey's edge).
  At least one cell diagonal, so every sample's own cell has data.

Samples that share a location are averaged first (per band, ignoring missing
values), so duplicates neither divide by zero nor count twice. A cell centre
that falls exactly on a sample takes that sample's value. The weighted mean is
computed as an offset from the nearest sample's value, so a constant field
grids to exactly that constant.

The grid extent is the samples' bounding box grown by ``max_distance`` (the
whole data mask fits), snapped to whole cells. Cells are processed in blocks
of rows, so memory stays bounded for large grids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from scipy.spatial import cKDTree

from core.errors import InvalidInputError
from core.grid.spacing import as_xy, distinct_locations, median_sample_spacing, tidy_length

CELL_SPACING_FACTOR = 0.5
MAX_DISTANCE_SPACING_FACTOR = 5.0
MAX_CELLS = 200_000_000  # a grid larger than this is almost surely a unit mistake (degrees vs metres)
_BLOCK_BYTES = 64 * 1024 * 1024  # working memory for one block of cells


@dataclass
class GriddedRaster:
    """A gridded field with its georeferencing: ``array`` (bands, rows, cols) float32, NaN outside ``mask``."""

    array: np.ndarray
    transform: Affine
    mask: np.ndarray  # (rows, cols) True = within max_distance of a sample
    cell: float
    max_distance: float
    band_names: list[str]
    crs: object = None

    def write(self, path: str | Path, crs=None) -> Path:
        """Write as a float32 GeoTIFF (band descriptions = band names)."""
        from core.io.rasters import write_raster

        return write_raster(
            path, self.array, self.transform, crs if crs is not None else self.crs, band_names=self.band_names
        )


def default_cell(xy: np.ndarray) -> float:
    spacing = median_sample_spacing(xy)
    if not np.isfinite(spacing) or spacing <= 0:
        raise InvalidInputError("cannot choose a cell size: all samples are at one location; give --cell")
    return tidy_length(CELL_SPACING_FACTOR * spacing)


def default_max_distance(xy: np.ndarray, cell: float) -> float:
    spacing = median_sample_spacing(xy)
    if not np.isfinite(spacing) or spacing <= 0:
        return cell * math.sqrt(2)
    return max(MAX_DISTANCE_SPACING_FACTOR * spacing, cell * math.sqrt(2))


def grid_samples(
    xy,
    values,
    cell: float | None = None,
    neighbours: int = 12,
    power: float = 2.0,
    max_distance: float | None = None,
    band_names: Sequence[str] | None = None,
    crs=None,
    progress=None,
) -> GriddedRaster:
    """Grid ``values`` ((n,) or (n, bands), NaN = missing) at projected points ``xy`` (n, 2) by IDW."""
    xy = as_xy(xy, "sample coordinates")
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.ndim != 2 or len(values) != len(xy):
        raise InvalidInputError(
            f"values must be (n,) or (n, bands) for {len(xy)} samples; got shape {values.shape}"
        )
    if len(xy) == 0:
        raise InvalidInputError("no samples to grid")
    n_bands = values.shape[1]
    if band_names is None:
        band_names = [f"band_{i + 1}" for i in range(n_bands)]
    band_names = list(band_names)
    if len(band_names) != n_bands:
        raise InvalidInputError(f"{len(band_names)} band names for {n_bands} bands")
    if neighbours < 1:
        raise InvalidInputError(f"neighbours must be at least 1, got {neighbours}")
    if power <= 0:
        raise InvalidInputError(f"power must be positive, got {power}")

    cell = default_cell(xy) if cell is None else float(cell)
    if not cell > 0:
        raise InvalidInputError(f"cell size must be positive, got {cell}")
    max_distance = default_max_distance(xy, cell) if max_distance is None else float(max_distance)
    if not max_distance > 0:
        raise InvalidInputError(f"max distance must be positive, got {max_distance}")

    locations, inverse = distinct_locations(xy)
    location_values = _average_duplicates(values, inverse, len(locations))

    x0 = math.floor((locations[:, 0].min() - max_distance) / cell) * cell
    x1 = math.ceil((locations[:, 0].max() + max_distance) / cell) * cell
    y0 = math.floor((locations[:, 1].min() - max_distance) / cell) * cell
    y1 = math.ceil((locations[:, 1].max() + max_distance) / cell) * cell
    cols = max(1, int(round((x1 - x0) / cell)))
    rows = max(1, int(round((y1 - y0) / cell)))
    if rows * cols > MAX_CELLS:
        raise InvalidInputError(
            f"a {cell:g} cell grid over this survey would have {rows} x {cols} cells: "
            "use a larger --cell (are the coordinates projected metres?)"
        )
    transform = Affine(cell, 0.0, x0, 0.0, -cell, y1)

    tree = cKDTree(locations)
    k = min(neighbours, len(locations))
    array = np.full((n_bands, rows, cols), np.nan, dtype=np.float32)
    mask = np.zeros((rows, cols), dtype=bool)
    centres_x = x0 + (np.arange(cols) + 0.5) * cell
    block_rows = max(1, _BLOCK_BYTES // max(1, cols * k * (n_bands + 2) * 8 * 3))
    for start in range(0, rows, block_rows):
        stop = min(rows, start + block_rows)
        centres_y = y1 - (np.arange(start, stop) + 0.5) * cell
        gx, gy = np.meshgrid(centres_x, centres_y)
        centres = np.c_[gx.ravel(), gy.ravel()]
        distance, index = tree.query(centres, k=k, distance_upper_bound=max_distance)
        distance = distance.reshape(len(centres), k)
        index = index.reshape(len(centres), k)
        block_mask = np.isfinite(distance[:, 0])
        estimate = _idw(distance[block_mask], index[block_mask], location_values, power)
        block = np.full((len(centres), n_bands), np.nan)
        block[block_mask] = estimate
        array[:, start:stop, :] = block.T.reshape(n_bands, stop - start, cols)
        mask[start:stop, :] = block_mask.reshape(stop - start, cols)
        if progress is not None:
            progress.update(stop / rows, f"gridded {stop} of {rows} rows")
    return GriddedRaster(array, transform, mask, cell, max_distance, band_names, crs)


def _average_duplicates(values: np.ndarray, inverse: np.ndarray, n_locations: int) -> np.ndarray:
    """Mean value per distinct location and band, ignoring missing values (NaN when all are missing)."""
    finite = np.isfinite(values)
    sums = np.zeros((n_locations, values.shape[1]))
    counts = np.zeros((n_locations, values.shape[1]))
    np.add.at(sums, inverse, np.where(finite, values, 0.0))
    np.add.at(counts, inverse, finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _idw(distance: np.ndarray, index: np.ndarray, location_values: np.ndarray, power: float) -> np.ndarray:
    """IDW estimate per cell (m, bands) from its neighbours' distances and indexes (m, k)."""
    if len(distance) == 0:
        return np.empty((0, location_values.shape[1]))
    found = np.isfinite(distance)  # neighbours beyond max_distance come back as inf / index n
    safe_index = np.where(found, index, 0)
    neighbour_values = location_values[safe_index]  # (m, k, bands)
    on_sample = distance[:, 0] == 0.0
    with np.errstate(divide="ignore"):
        weights = np.where(found, 1.0 / np.power(np.where(found, distance, 1.0), power), 0.0)
    # A cell centre on a sample takes that sample's value: weight it alone.
    weights[on_sample] = 0.0
    weights[on_sample, 0] = 1.0
    usable = found[:, :, np.newaxis] & np.isfinite(neighbour_values)
    w = np.where(usable, weights[:, :, np.newaxis], 0.0)
    # Offset from the nearest usable value: exact for constant fields.
    first = np.argmax(usable, axis=1)  # (m, bands)
    reference = np.take_along_axis(neighbour_values, first[:, np.newaxis, :], axis=1)[:, 0, :]
    offsets = np.where(usable, neighbour_values - reference[:, np.newaxis, :], 0.0)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = reference + (w * offsets).sum(axis=1) / total
    estimate[total == 0] = np.nan
    # A sample whose value is missing in a band: fall back to its neighbours there.
    missing_hit = on_sample[:, np.newaxis] & np.isnan(estimate)
    if missing_hit.any():
        rows = np.flatnonzero(missing_hit.any(axis=1))
        fallback = (
            _idw(distance[rows, 1:], index[rows, 1:], location_values, power)
            if distance.shape[1] > 1
            else np.full((len(rows), location_values.shape[1]), np.nan)
        )
        estimate[rows] = np.where(missing_hit[rows], fallback, estimate[rows])
    return estimate
