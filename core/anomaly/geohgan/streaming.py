"""Geo-Hgan on raster files read in windows of rows: memory bounded whatever the raster's size.

Passes over the files (each a sequence of row blocks from
:func:`core.io.rasters.iter_windows`):

1. *scan*: the valid mask (every band has data) and a random sample of valid
   cells, on which the band normalisation is fitted;
2. *tiles*: the training tiles (every tile with enough data, or a seeded
   random subset of at most ``max_training_tiles`` on very large grids) cut
   out of the stream;
3. *score*: windowed scoring (:func:`core.anomaly.geohgan.scoring.score_raster`),
   rows read once, a halo of one tile kept between windows; with a commodity,
   one more such pass for the suite bands' reconstruction residuals;
4. *features*: the normalised band values of the candidate anomaly cells and
   the mean of all valid cells, for AnomFilter.

Only the (rows, cols) mask, the cell sample, the training tiles, one window
and the 3-band score array live in memory; the input bands never do at once.
"""

from __future__ import annotations

import math

import numpy as np

from core.anomaly.geohgan.detector import GeoHganDetector
from core.anomaly.geohgan.normalise import BandNormaliser
from core.anomaly.geohgan.scoring import SCORE_NAMES
from core.anomaly.geohgan.tiles import TileLayout, gather_tiles, valid_fraction
from core.errors import InvalidInputError
from core.io.rasters import RasterFiles
from core.progress import Progress, SilentProgress

# Cells sampled to fit the normalisation, and the memory the training tiles may take.
MAX_SAMPLE_CELLS = 2_000_000
MAX_TRAINING_TILE_BYTES = 512 * 1024 * 1024


class _RowReader:
    """Rows ``start:stop`` of a block stream, for requests that only move forward."""

    def __init__(self, files: RasterFiles) -> None:
        self.stream = files.blocks()
        self.start = 0
        self.values = np.zeros((files.bands, 0, files.cols), dtype=np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        if start < self.start:
            raise RuntimeError("rows are read in order only")
        while self.start + self.values.shape[1] < stop:
            block = next(self.stream).values
            self.values = np.concatenate([self.values, block], axis=1)
        self.values = self.values[:, start - self.start:]
        self.start = start
        return self.values[:, :stop - start]


def scan(files: RasterFiles, seed: int, max_cells: int = MAX_SAMPLE_CELLS) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pass 1: the valid mask (rows, cols), a random sample of valid cells (n, bands), and whether all are > 0."""
    rng = np.random.default_rng(seed)
    share = min(1.0, max_cells / max(files.rows * files.cols, 1))
    valid = np.zeros((files.rows, files.cols), dtype=bool)
    samples, positive = [], True
    for block in files.blocks():
        first, values = int(block.window.row_off), block.values
        block_valid = np.isfinite(values).all(axis=0)
        valid[first:first + values.shape[1]] = block_valid
        cells = values[:, block_valid].T
        positive = positive and bool((cells > 0).all())
        if share < 1.0:
            cells = cells[rng.random(len(cells)) < share]
        samples.append(cells)
    return valid, np.concatenate(samples, axis=0), positive


def training_tiles(files: RasterFiles, valid: np.ndarray, tile: int, stride: int, min_valid: float, seed: int,
                   max_bytes: int = MAX_TRAINING_TILE_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2: raw training tiles (n, bands, tile, tile) and masks (n, tile, tile), row-major order."""
    layout = TileLayout(files.rows, files.cols, tile, stride)
    origins = layout.origins()
    origins = origins[valid_fraction(valid, origins, tile) >= min_valid]
    limit = max(1, max_bytes // (files.bands * tile * tile * 4))
    if len(origins) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(origins), limit, replace=False))
        origins = origins[keep]
    tiles = np.empty((len(origins), files.bands, tile, tile), dtype=np.float32)
    masks = np.empty((len(origins), tile, tile), dtype=bool)
    reader = _RowReader(files)
    for row in np.unique(origins[:, 0]):
        here = np.flatnonzero(origins[:, 0] == row)
        block = reader.read(int(row), int(row) + tile)
        local = np.c_[np.zeros(len(here), dtype=np.int64), origins[here, 1]]
        cut, cut_masks = gather_tiles(block, np.isfinite(block).all(axis=0), local, tile)
        tiles[here], masks[here] = cut, cut_masks[:, 0] > 0
    return tiles, masks


def fit_files(detector: GeoHganDetector, files: RasterFiles, progress: Progress | None = None) -> np.ndarray:
    """Passes 1-2 and training; returns the valid mask."""
    progress = progress or SilentProgress()
    cfg = detector.config
    if files.bands < 2:
        raise InvalidInputError(
            f"{', '.join(map(str, files.paths))} holds a single band ({files.band_names[0]}): Geo-Hgan needs two or "
            "more elements - give a multi-band raster or several single-band rasters")
    valid, cells, positive = scan(files, cfg.seed)
    if not valid.any():
        raise InvalidInputError(f"{', '.join(map(str, files.paths))} is all nodata: no cell has data in every band "
                                f"({', '.join(files.band_names)}); nothing to learn from")
    normaliser = BandNormaliser(cfg.transform).fit_cells(cells, files.band_names, all_positive=positive)
    tiles, masks = training_tiles(files, valid, cfg.tile, cfg.stride, cfg.min_valid, cfg.seed)
    progress.log(f"{len(tiles)} training tiles of {cfg.tile} x {cfg.tile} cells cut from the files")
    detector.fit_tiles(tiles, masks, normaliser, progress)
    return valid


def score_files(detector: GeoHganDetector, files: RasterFiles, window_rows: int = 512,
                progress: Progress | None = None) -> np.ndarray:
    """Pass 3: cell scores (3, rows, cols) float32, NaN on nodata, reading the files once in windows."""
    return _in_windows(detector, files, len(SCORE_NAMES), lambda read, write: detector.score_windows(
        read, write, files.rows, files.cols, window_rows=window_rows, progress=progress))


def residual_files(detector: GeoHganDetector, files: RasterFiles, bands: list[int], window_rows: int = 512,
                   progress: Progress | None = None) -> np.ndarray:
    """Per-cell reconstruction residuals (len(bands), rows, cols) float32 of the chosen bands, NaN on nodata,
    reading the files once in windows (see :meth:`GeoHganDetector.band_residuals`)."""
    return _in_windows(detector, files, len(bands), lambda read, write: detector.residual_windows(
        read, write, files.rows, files.cols, bands, window_rows=window_rows, progress=progress))


def _in_windows(detector: GeoHganDetector, files: RasterFiles, channels: int, run_windows) -> np.ndarray:
    """A (channels, rows, cols) float32 array filled by a windowed pass ``run_windows(read_rows, write_rows)``."""
    out = np.full((channels, files.rows, files.cols), np.nan, dtype=np.float32)
    reader = _RowReader(files)

    def read_rows(start: int, stop: int):
        return detector.normalise_rows(reader.read(start, stop))

    def write_rows(start: int, block: np.ndarray) -> None:
        out[:, start:start + block.shape[1]] = block

    run_windows(read_rows, write_rows)
    return out


def cell_features(detector: GeoHganDetector, files: RasterFiles, valid: np.ndarray,
                  wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pass 4: normalised band values of the ``wanted`` cells ((rows, cols) mask) and the mean over valid cells."""
    features = np.empty((int(wanted.sum()), files.bands))
    total = np.zeros(files.bands)
    count, filled = 0, 0
    for block in files.blocks():
        first, values = int(block.window.row_off), block.values
        rows = slice(first, first + values.shape[1])
        normalised, block_valid = detector.normalise_rows(values, valid[rows])
        total += normalised[:, block_valid].sum(axis=1, dtype=np.float64)
        count += int(block_valid.sum())
        here = wanted[rows]
        n = int(here.sum())
        features[filled:filled + n] = normalised[:, here].T
        filled += n
    mean = total / count if count else np.full(files.bands, math.nan)
    return features, mean

