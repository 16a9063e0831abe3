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
whole data mask fits), snapped to whole cells. Cells are computed in blocks
of rows (:func:`iter_grid_blocks`, the one IDW implementation), so memory
stays bounded for large grids: :func:`grid_samples` gathers the blocks into
an in-memory :class:`GriddedRaster`; :func:`write_grid` (after :func:`prepare_grid`) writes each
into the GeoTIFF as it comes, so a grid larger than memory never exists whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from affine import Affine
from scipy.spatial import cKDTree

from core.errors import InvalidInputError
from core.grid.spacing import as_xy, distinct_locations, survey_spacing, tidy_length

if TYPE_CHECKING:
    from core.io.rasters import RasterGrid

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


def default_cell(xy: np.ndarray, spacing_rule: str = "nearest") -> float:
    spacing = survey_spacing(xy, spacing_rule)
    if not np.isfinite(spacing) or spacing <= 0:
        raise InvalidInputError("cannot choose a cell size: all samples are at one location; give --cell")
    return tidy_length(CELL_SPACING_FACTOR * spacing)


def default_max_distance(xy: np.ndarray, cell: float, spacing_rule: str = "nearest") -> float:
    spacing = survey_spacing(xy, spacing_rule)
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
    like: RasterGrid | None = None,
    spacing_rule: str = "nearest",
) -> GriddedRaster:
    """Grid ``values`` ((n,) or (n, bands), NaN = missing) at projected points ``xy`` (n, 2) by IDW, in memory.

    ``like``: lay the grid on a template raster's (see :func:`prepare_grid`).
    For grids larger than memory use :func:`prepare_grid` and :func:`write_grid`.

    Raises:
        InvalidInputError: as :func:`prepare_grid`.
    """
    spec = prepare_grid(xy, values, cell, neighbours, power, max_distance, band_names, like=like,
                        spacing_rule=spacing_rule)
    array = np.empty((spec.bands, spec.rows, spec.cols), dtype=np.float32)
    mask = np.empty((spec.rows, spec.cols), dtype=bool)
    for block in iter_grid_blocks(spec, progress):
        array[:, block.row_start:block.row_stop] = block.values
        mask[block.row_start:block.row_stop] = block.mask
    return GriddedRaster(array, spec.transform, mask, spec.cell, spec.max_distance, spec.band_names, crs)


@dataclass(frozen=True, eq=False)  # holds arrays and a k-d tree: compared by identity
class GridSpec:
    """A grid ready to fill: its geometry and the distinct sample locations with their (averaged) values."""

    transform: Affine
    rows: int
    cols: int
    cell: float
    max_distance: float
    band_names: list[str]
    neighbours: int  # per cell: at most the number of distinct locations
    power: float
    tree: cKDTree  # of the distinct locations
    location_values: np.ndarray  # (locations, bands), NaN = missing

    @property
    def bands(self) -> int:
        return len(self.band_names)

    @property
    def block_rows(self) -> int:
        """Rows of cells per block: the IDW's (cells, neighbours, bands) float64 arrays fit ``_BLOCK_BYTES``."""
        return max(1, _BLOCK_BYTES // max(1, self.cols * self.neighbours * (self.bands + 2) * 8 * 3))


class GridBlock(NamedTuple):
    """Rows ``row_start:row_stop`` of a grid: ``values`` (bands, rows, cols) float32, NaN outside ``mask``."""

    row_start: int
    row_stop: int
    values: np.ndarray
    mask: np.ndarray  # (rows, cols) True = within max_distance of a sample


@dataclass(frozen=True)
class GridSummary:
    """What :func:`write_grid` wrote: the grid's geometry and how much of it has data."""

    path: Path
    transform: Affine
    rows: int
    cols: int
    cell: float
    max_distance: float
    band_names: list[str]
    valid_cells: int  # cells within max_distance of a sample

    @property
    def data_share(self) -> float:
        """Share of cells with data (the in-memory grid's ``mask.mean()``)."""
        return self.valid_cells / (self.rows * self.cols)


def prepare_grid(
    xy,
    values,
    cell: float | None = None,
    neighbours: int = 12,
    power: float = 2.0,
    max_distance: float | None = None,
    band_names: Sequence[str] | None = None,
    like: RasterGrid | None = None,
    spacing_rule: str = "nearest",
) -> GridSpec:
    """Check the inputs, choose cell and max distance, and lay out the grid; no cell is computed yet.

    ``spacing_rule`` (:func:`core.grid.spacing.survey_spacing`): the spacing the default cell and max
    distance follow, ``"nearest"`` or ``"area"`` (clustered surveys measured by their area).
    ``like`` (:func:`core.io.rasters.raster_grid`) lays the grid on another
    raster's: the same transform and shape (its CRS is the caller's to match:
    ``xy`` must be in it), so every raster of a run shares one grid.

    Raises:
        InvalidInputError: bad values, band names, neighbours, power, cell or max distance, or both
            ``cell`` and ``like`` given with different cell sizes.
    """
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

    if like is not None:
        if cell is not None and not math.isclose(float(cell), abs(like.transform.a), rel_tol=1e-9):
            raise InvalidInputError(f"--cell {cell:g} differs from the template's cell of {abs(like.transform.a):g}; "
                                    "give one or the other")
        cell = abs(like.transform.a)
    cell = default_cell(xy, spacing_rule) if cell is None else float(cell)
    if not cell > 0:
        raise InvalidInputError(f"cell size must be positive, got {cell}")
    max_distance = default_max_distance(xy, cell, spacing_rule) if max_distance is None else float(max_distance)
    if not max_distance > 0:
        raise InvalidInputError(f"max distance must be positive, got {max_distance}")

    locations, inverse = distinct_locations(xy)
    location_values = _average_duplicates(values, inverse, len(locations))

    if like is not None:
        transform, rows, cols = like.transform, like.rows, like.cols
    else:
        x0 = math.floor((locations[:, 0].min() - max_distance) / cell) * cell
        x1 = math.ceil((locations[:, 0].max() + max_distance) / cell) * cell
        y0 = math.floor((locations[:, 1].min() - max_distance) / cell) * cell
        y1 = math.ceil((locations[:, 1].max() + max_distance) / cell) * cell
        cols = max(1, int(round((x1 - x0) / cell)))
        rows = max(1, int(round((y1 - y0) / cell)))
        transform = Affine(cell, 0.0, x0, 0.0, -cell, y1)
    if rows * cols > MAX_CELLS:
        raise InvalidInputError(
            f"a {cell:g} cell grid over this survey would have {rows} x {cols} cells: "
            "use a larger --cell (are the coordinates projected metres?)"
        )
    return GridSpec(
        transform=transform,
        rows=rows,
        cols=cols,
        cell=cell,
        max_distance=max_distance,
        band_names=band_names,
        neighbours=min(neighbours, len(locations)),
        power=power,
        tree=cKDTree(locations),
        location_values=location_values,
    )


def iter_grid_blocks(spec: GridSpec, progress=None) -> Iterator[GridBlock]:
    """The grid's cells by IDW, in successive blocks of rows from the top (``spec.block_rows`` at a time)."""
    transform, cols, k = spec.transform, spec.cols, spec.neighbours
    # From the transform, not the cell size: a template grid (--like) may have cells that are not square.
    centres_x = transform.c + (np.arange(cols) + 0.5) * transform.a
    for start in range(0, spec.rows, spec.block_rows):
        stop = min(spec.rows, start + spec.block_rows)
        centres_y = transform.f + (np.arange(start, stop) + 0.5) * transform.e
        gx, gy = np.meshgrid(centres_x, centres_y)
        centres = np.c_[gx.ravel(), gy.ravel()]
        distance, index = spec.tree.query(centres, k=k, distance_upper_bound=spec.max_distance)
        distance = distance.reshape(len(centres), k)
        index = index.reshape(len(centres), k)
        block_mask = np.isfinite(distance[:, 0])
        estimate = _idw(distance[block_mask], index[block_mask], spec.location_values, spec.power)
        block = np.full((len(centres), spec.bands), np.nan)
        block[block_mask] = estimate
        values = block.T.reshape(spec.bands, stop - start, cols).astype(np.float32)
        if progress is not None:
            progress.update(stop / spec.rows, f"gridded {stop} of {spec.rows} rows")
        yield GridBlock(start, stop, values, block_mask.reshape(stop - start, cols))


def write_grid(path: str | Path, spec: GridSpec, crs=None, progress=None) -> GridSummary:
    """Fill ``spec``'s grid block by block into a float32 GeoTIFF at ``path`` (as :meth:`GriddedRaster.write`).

    Memory holds one block of cells being computed (about ``_BLOCK_BYTES``) and
    one window of rows being written: whole rows of the file's tiles, all
    bands, as many as fit ``_BLOCK_BYTES`` but at least one (bands x cols x
    1 KiB for 256-row tiles: 0.5 GB for 49 bands x 10,000 columns). Neither
    grows with the number of rows. The file appears at ``path`` only when
    complete (a temporary name beside it until then; removed if anything fails).
    """
    from core.io.rasters import open_raster_writer, write_window

    path = Path(path)
    valid_cells = 0
    with open_raster_writer(
        path, spec.bands, spec.rows, spec.cols, spec.transform, crs, band_names=spec.band_names
    ) as dst:
        rows = _RowBuffer(spec, _write_rows(spec, dst.block_shapes[0][0]))
        for block in iter_grid_blocks(spec, progress):
            valid_cells += int(np.count_nonzero(block.mask))
            for row_off, values in rows.add(block.values):
                write_window(dst, row_off, values)
    return GridSummary(
        path, spec.transform, spec.rows, spec.cols, spec.cell, spec.max_distance, spec.band_names, valid_cells
    )


def _write_rows(spec: GridSpec, file_block_rows: int) -> int:
    """Rows per write: whole rows of the file's tiles (or strips), as many as fit ``_BLOCK_BYTES``, at least one.

    A write that ends inside a compressed tile leaves it to GDAL's cache; when
    the cache runs short GDAL compresses the half-filled tile, and must read,
    recompress and append it again when the rest arrives (slower, larger file).
    """
    tile_row_bytes = spec.bands * file_block_rows * spec.cols * 4
    return min(spec.rows, file_block_rows * max(1, _BLOCK_BYTES // tile_row_bytes))


class _RowBuffer:
    """Collects blocks of computed rows into windows of ``height`` rows (the last one shorter) for writing."""

    def __init__(self, spec: GridSpec, height: int) -> None:
        self.total_rows = spec.rows
        self.buffer = np.empty((spec.bands, height, spec.cols), dtype=np.float32)
        self.row_off = 0  # first row of the window being collected
        self.filled = 0  # rows of it collected so far

    def add(self, values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Take the next rows ``values`` (bands, n, cols); yield ``(row_off, window values)`` for each full window.

        The yielded array is the buffer itself, valid until the next call (the
        writer may change it in place).
        """
        height = self.buffer.shape[1]
        done = 0
        while done < values.shape[1]:
            take = min(values.shape[1] - done, height - self.filled)
            self.buffer[:, self.filled:self.filled + take] = values[:, done:done + take]
            self.filled += take
            done += take
            if self.filled == height or self.row_off + self.filled == self.total_rows:
                yield self.row_off, self.buffer[:, :self.filled]
                self.row_off += self.filled
                self.filled = 0


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
