"""Sliding tiles over a (bands, rows, cols) raster: where they start and how much data they hold.

Geo-Hgan treats each square tile of cells as one sample. The published code
cut the grid into non-overlapping 10 x 10 tiles and upsampled them to 64 x 64;
here tiles keep the native cell size and slide with a stride, so that every
valid cell is covered by one or more tiles and gets a score of its own (the
mean of the tiles covering it).

Tile origins lie on the stride grid ``0, stride, 2*stride, ...`` plus one last
origin flush with the far edge, so the last rows/columns are covered too. The
layout depends only on the raster's shape, never on how it is read, which is
what makes windowed scoring equal to whole-raster scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInputError


@dataclass(frozen=True)
class TileLayout:
    """Tile size, stride and raster shape; the origins of every tile."""

    rows: int
    cols: int
    tile: int
    stride: int

    def __post_init__(self) -> None:
        if self.tile < 2:
            raise InvalidInputError(f"tile size must be at least 2 cells, got {self.tile}")
        if not 1 <= self.stride <= self.tile:
            raise InvalidInputError(f"stride must be between 1 and the tile size ({self.tile}), got {self.stride}")
        if self.rows < self.tile or self.cols < self.tile:
            raise InvalidInputError(
                f"the raster ({self.rows} x {self.cols} cells) is smaller than one tile ({self.tile} x {self.tile}); "
                "use a smaller --tile or a finer cell size"
            )

    @property
    def row_origins(self) -> np.ndarray:
        return axis_origins(self.rows, self.tile, self.stride)

    @property
    def col_origins(self) -> np.ndarray:
        return axis_origins(self.cols, self.tile, self.stride)

    def origins(self) -> np.ndarray:
        """All tile origins as an (n, 2) int64 array of (row, col), row-major."""
        rr, cc = np.meshgrid(self.row_origins, self.col_origins, indexing="ij")
        return np.c_[rr.ravel(), cc.ravel()]


def axis_origins(length: int, tile: int, stride: int) -> np.ndarray:
    """Origins along one axis: the stride grid, plus one flush with the end when the grid misses it."""
    origins = np.arange(0, length - tile + 1, stride, dtype=np.int64)
    if origins[-1] != length - tile:
        origins = np.r_[origins, length - tile]
    return origins


def valid_fraction(valid: np.ndarray, origins: np.ndarray, tile: int) -> np.ndarray:
    """Share of valid cells in each tile, from a (rows, cols) boolean mask (summed-area table, O(cells))."""
    table = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(valid, axis=0, dtype=np.int64), axis=1)
    r, c = origins[:, 0], origins[:, 1]
    counts = table[r + tile, c + tile] - table[r, c + tile] - table[r + tile, c] + table[r, c]
    return counts / float(tile * tile)


def gather_tiles(values: np.ndarray, valid: np.ndarray, origins: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Copy the tiles at ``origins`` out of a (bands, rows, cols) array.

    Returns ``(tiles, masks)``: (n, bands, tile, tile) float32 and
    (n, 1, tile, tile) float32 (1 = valid cell). Only the requested tiles are
    copied, so a 2000 x 2000 grid never materialises all its overlapping tiles.
    """
    windows = np.lib.stride_tricks.sliding_window_view(values, (tile, tile), axis=(1, 2))
    mask_windows = np.lib.stride_tricks.sliding_window_view(valid, (tile, tile))
    r, c = origins[:, 0], origins[:, 1]
    tiles = np.ascontiguousarray(windows[:, r, c].transpose(1, 0, 2, 3), dtype=np.float32)
    masks = mask_windows[r, c][:, None].astype(np.float32)
    return tiles, masks
