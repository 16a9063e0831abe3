"""Tiles of a normalised raster as training/scoring samples (the torchgeo "dataset" part).

A :class:`TileDataset` holds one normalised (bands, rows, cols) array, its
valid mask and the tile origins to use. Tiles are cut on demand, a batch at a
time, so memory stays at the size of the raster whatever the overlap.
"""

from __future__ import annotations

import numpy as np
import torch

from core.anomaly.geohgan.tiles import TileLayout, gather_tiles, valid_fraction

# A tile is used for training only when at least this share of its cells holds
# data: tiles along the survey edge that are mostly nodata teach the networks
# the edge, not the geochemistry.
DEFAULT_MIN_VALID = 0.5


class TileDataset(torch.utils.data.Dataset):
    """Tiles at ``origins`` of a normalised raster; items are ``(tile, mask)`` float32 tensors."""

    def __init__(self, normalised: np.ndarray, valid: np.ndarray, origins: np.ndarray, tile: int) -> None:
        self.normalised = normalised
        self.valid = valid
        self.origins = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
        self.tile = tile

    @classmethod
    def for_training(cls, normalised: np.ndarray, valid: np.ndarray, tile: int, stride: int,
                     min_valid: float = DEFAULT_MIN_VALID) -> TileDataset:
        """Every tile of the layout with at least ``min_valid`` of its cells valid."""
        layout = TileLayout(normalised.shape[1], normalised.shape[2], tile, stride)
        origins = layout.origins()
        keep = valid_fraction(valid, origins, tile) >= min_valid
        return cls(normalised, valid, origins[keep], tile)

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        tiles, masks = self.batch(np.array([index]))
        return tiles[0], masks[0]

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tiles, masks)`` of shape (n, bands, tile, tile) and (n, 1, tile, tile)."""
        tiles, masks = gather_tiles(self.normalised, self.valid, self.origins[indices], self.tile)
        return torch.from_numpy(tiles), torch.from_numpy(masks)


class TileSampleDataset(torch.utils.data.Dataset):
    """Tiles already cut and normalised, (n, bands, tile, tile) with masks (n, 1, tile, tile): same API as above.

    Used when the raster is read in windows (larger than memory): the
    training tiles are cut during one pass over the file.
    """

    def __init__(self, tiles: np.ndarray, masks: np.ndarray) -> None:
        self.tiles = np.ascontiguousarray(tiles, dtype=np.float32)
        self.masks = np.ascontiguousarray(masks, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.tiles[index]), torch.from_numpy(self.masks[index])

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.tiles[indices]), torch.from_numpy(self.masks[indices])
