"""Geo-Hgan's three anomaly scores and its per-band residuals, per tile and per cell, whole-raster or in windows.

Per tile x with valid-cell mask m (higher = more anomalous):

- ``img_distance  = MSE_m(G(E(x)), x)`` - mean squared error over valid cells;
- ``anomaly_score = img_distance + kappa * MSE(f(x_hat), f(x))`` with f the
  critic's penultimate features (f-AnoGAN "izi_f", as the published code);
- ``z_distance    = MSE(E(x_hat), E(x))``;

where ``x_hat`` is the reconstruction with the tile's nodata cells copied
from x, so that nodata never shows up as a difference.

Each valid cell gets the mean score of the tiles covering it. Tiles with at
least ``min_valid`` valid cells are used where they exist; cells covered only
by sparser tiles (at the survey's edge) get the mean of those instead, so every
valid cell has a score. Nodata cells get NaN.

The per-band reconstruction residuals ``x - x_hat`` (normalised band units,
positive = the cell holds more than the model reconstructs) are averaged over
the tiles covering each cell in the same way (:func:`residual_raster`): they
are what the commodity readout reads, one band per suite element.

Windowed scoring reads the raster a block of tile rows at a time and writes
each row as soon as every tile covering it is scored: memory is bounded by the
window, and since the tile layout comes from the raster's shape alone the
result equals whole-raster scoring (up to float rounding of batched networks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.anomaly.geohgan.model import GeoHganNetworks
from core.anomaly.geohgan.tiles import TileLayout, gather_tiles, valid_fraction

SCORE_NAMES = ("img_distance", "anomaly_score", "z_distance")

RowReader = Callable[[int, int], np.ndarray]  # (row_start, row_stop) -> normalised (bands, n, cols), valid (n, cols)
RowWriter = Callable[[int, np.ndarray], None]  # (row_start, scores (3, n, cols) float32, NaN = nodata)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-tile mean squared difference over valid cells and all bands; (n,) tensor."""
    squared = (a - b) ** 2 * mask
    cells = mask.sum(dim=(1, 2, 3)) * a.shape[1]
    return squared.sum(dim=(1, 2, 3)) / cells.clamp_min(1.0)


def with_nodata_from(reconstruction: torch.Tensor, tiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reconstruction on valid cells, the input's (neutral) values on nodata cells."""
    return mask * reconstruction + (1.0 - mask) * tiles


@torch.no_grad()
def tile_scores(networks: GeoHganNetworks, tiles: torch.Tensor, masks: torch.Tensor, kappa: float) -> torch.Tensor:
    """(n, 3) scores in :data:`SCORE_NAMES` order; networks must be in eval mode."""
    encoder, generator, critic = networks.encoder, networks.generator, networks.critic
    code = encoder(tiles)
    reconstruction = with_nodata_from(generator(code), tiles, masks)
    img = masked_mse(reconstruction, tiles, masks)
    feature = ((critic.features(reconstruction) - critic.features(tiles)) ** 2).mean(dim=1)
    z = ((encoder(reconstruction) - code) ** 2).mean(dim=1)
    return torch.stack([img, img + kappa * feature, z], dim=1)


def score_tiles(networks: GeoHganNetworks, normalised: np.ndarray, valid: np.ndarray, origins: np.ndarray,
                tile: int, kappa: float, device: torch.device, batch: int = 1024) -> np.ndarray:
    """Scores (n, 3) float64 of the tiles at ``origins`` of a normalised array, in batches."""
    out = np.empty((len(origins), len(SCORE_NAMES)), dtype=np.float64)
    for start in range(0, len(origins), batch):
        tiles, masks = gather_tiles(normalised, valid, origins[start:start + batch], tile)
        scores = tile_scores(networks, torch.from_numpy(tiles).to(device), torch.from_numpy(masks).to(device), kappa)
        out[start:start + len(tiles)] = scores.double().cpu().numpy()
    return out


@torch.no_grad()
def tile_residuals(networks: GeoHganNetworks, tiles: torch.Tensor, masks: torch.Tensor,
                   bands: torch.Tensor) -> torch.Tensor:
    """(n, len(bands), tile, tile) residuals ``x - G(E(x))`` of the chosen bands; 0 on nodata cells."""
    reconstruction = with_nodata_from(networks.generator(networks.encoder(tiles)), tiles, masks)
    return (tiles - reconstruction)[:, bands]


def score_raster(networks: GeoHganNetworks, read_rows: RowReader, write_rows: RowWriter, rows: int, cols: int,
                 tile: int, stride: int, kappa: float, device: torch.device, min_valid: float,
                 window_rows: int = 512, batch: int = 1024,
                 on_progress: Callable[[float], None] | None = None) -> None:
    """Score every valid cell of a raster, a window of rows at a time (see the module docstring).

    ``window_rows >= rows`` scores the whole raster in one go.
    """
    def scores(normalised: np.ndarray, valid: np.ndarray, origins: np.ndarray) -> np.ndarray:
        per_tile = score_tiles(networks, normalised, valid, origins, tile, kappa, device, batch)
        return np.broadcast_to(per_tile[:, :, None, None], (*per_tile.shape, tile, tile))

    _cells_from_tiles(scores, len(SCORE_NAMES), read_rows, write_rows, rows, cols, tile, stride, min_valid,
                      window_rows, on_progress)


def residual_raster(networks: GeoHganNetworks, read_rows: RowReader, write_rows: RowWriter, rows: int, cols: int,
                    tile: int, stride: int, bands: list[int], device: torch.device, min_valid: float,
                    window_rows: int = 512, batch: int = 1024,
                    on_progress: Callable[[float], None] | None = None) -> None:
    """Per-cell reconstruction residuals of ``bands`` (indices into the raster's bands), a window at a time.

    ``write_rows`` receives (len(bands), n, cols) float32 rows, NaN on nodata.
    """
    chosen = torch.as_tensor(bands, dtype=torch.long, device=device)

    def residuals(normalised: np.ndarray, valid: np.ndarray, origins: np.ndarray) -> np.ndarray:
        out = np.empty((len(origins), len(bands), tile, tile), dtype=np.float64)
        for start in range(0, len(origins), batch):
            tiles, masks = gather_tiles(normalised, valid, origins[start:start + batch], tile)
            out[start:start + len(tiles)] = tile_residuals(
                networks, torch.from_numpy(tiles).to(device), torch.from_numpy(masks).to(device), chosen
            ).double().cpu().numpy()
        return out

    _cells_from_tiles(residuals, len(bands), read_rows, write_rows, rows, cols, tile, stride, min_valid,
                      window_rows, on_progress)


TileValues = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (normalised, valid, origins) -> (n, C, t, t)


def _cells_from_tiles(tile_values: TileValues, channels: int, read_rows: RowReader, write_rows: RowWriter,
                      rows: int, cols: int, tile: int, stride: int, min_valid: float, window_rows: int,
                      on_progress: Callable[[float], None] | None) -> None:
    """Each valid cell's mean of ``tile_values`` over the tiles covering it, written a window of rows at a time."""
    layout = TileLayout(rows, cols, tile, stride)
    row_origins, col_origins = layout.row_origins, layout.col_origins
    per_block = max(1, (max(window_rows, tile) - tile) // stride + 1)
    blocks = [row_origins[i:i + per_block] for i in range(0, len(row_origins), per_block)]
    carry: _CellAccumulator | None = None
    for b, block in enumerate(blocks):
        top, bottom = int(block[0]), int(block[-1]) + tile
        start = carry.start if carry is not None else top
        normalised, valid = read_rows(top, bottom)
        acc = _CellAccumulator(start, bottom - start, cols, channels)
        if carry is not None:
            acc.take(carry)
        acc.valid[top - start:] = valid
        origins = np.stack(np.meshgrid(block - top, col_origins, indexing="ij"), axis=-1).reshape(-1, 2)
        fraction = valid_fraction(valid, origins, tile)
        scored = fraction > 0
        values = np.full((len(origins), channels, tile, tile), np.nan)
        values[scored] = tile_values(normalised, valid, origins[scored])
        acc.add(origins + [top - start, 0], values, fraction >= min_valid, scored, tile)
        done = int(blocks[b + 1][0]) if b + 1 < len(blocks) else rows
        write_rows(start, acc.finished(done - start))
        carry = acc.remainder(done - start)
        if on_progress is not None:
            on_progress((b + 1) / len(blocks))


class _CellAccumulator:
    """Running sums of per-cell tile values over a band of raster rows: well-covered tiles and all tiles apart."""

    def __init__(self, start: int, height: int, cols: int, channels: int = len(SCORE_NAMES)) -> None:
        self.start = start
        self.sum_good = np.zeros((channels, height, cols))
        self.count_good = np.zeros((height, cols))
        self.sum_any = np.zeros((channels, height, cols))
        self.count_any = np.zeros((height, cols))
        self.valid = np.zeros((height, cols), dtype=bool)

    def take(self, other: _CellAccumulator) -> None:
        n = other.count_any.shape[0]
        self.sum_good[:, :n] += other.sum_good
        self.count_good[:n] += other.count_good
        self.sum_any[:, :n] += other.sum_any
        self.count_any[:n] += other.count_any
        self.valid[:n] = other.valid

    def add(self, origins: np.ndarray, values: np.ndarray, good: np.ndarray, scored: np.ndarray, tile: int) -> None:
        """Add each scored tile's (channels, tile, tile) values to its cells (origins relative to ``start``)."""
        for keep, sums, counts in ((good, self.sum_good, self.count_good), (scored, self.sum_any, self.count_any)):
            r, c, v = origins[keep, 0], origins[keep, 1], values[keep]
            # For one (dy, dx) offset, distinct tiles hit distinct cells, so plain
            # fancy-index addition is safe (no repeated index within one call).
            for dy in range(tile):
                for dx in range(tile):
                    sums[:, r + dy, c + dx] += v[:, :, dy, dx].T
                    counts[r + dy, c + dx] += 1.0

    def finished(self, n: int) -> np.ndarray:
        """Cell values (channels, n, cols) float32 of the first n rows; NaN on nodata cells."""
        good = self.count_good[:n] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(good, self.sum_good[:, :n] / self.count_good[:n],
                            self.sum_any[:, :n] / self.count_any[:n])
        mean[:, ~self.valid[:n]] = np.nan
        return mean.astype(np.float32)

    def remainder(self, n: int) -> _CellAccumulator:
        rest = _CellAccumulator(self.start + n, self.count_any.shape[0] - n, self.count_any.shape[1],
                                self.sum_any.shape[0])
        rest.take(_Slice(self, n))
        return rest


class _Slice:
    """Rows n: of an accumulator, shaped like one (for :meth:`_CellAccumulator.take`)."""

    def __init__(self, acc: _CellAccumulator, n: int) -> None:
        self.sum_good, self.count_good = acc.sum_good[:, n:], acc.count_good[n:]
        self.sum_any, self.count_any = acc.sum_any[:, n:], acc.count_any[n:]
        self.valid = acc.valid[n:]
