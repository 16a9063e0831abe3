"""Geo-Hgan on files read in windows of rows: the same tiles, scores and features as in memory."""

from __future__ import annotations

import numpy as np
import pytest

from core.anomaly.geohgan import GeoHganDetector
from core.anomaly.geohgan.streaming import (
    RasterFiles,
    cell_features,
    fit_files,
    residual_files,
    scan,
    score_files,
    training_tiles,
)
from core.anomaly.geohgan.tiles import TileLayout, gather_tiles, valid_fraction
from core.errors import InvalidInputError, NonMatchingRasterMetadataError
from tests.geohgan_fixtures import TRANSFORM, planted_raster, write_stack

QUICK = dict(device="cpu", seed=0, warmup_epochs=1, epochs=1, encoder_epochs=1, tiles_per_epoch=128)


@pytest.fixture(scope="module")
def raster_files(tmp_path_factory):
    raster = planted_raster(seed=5)
    folder = tmp_path_factory.mktemp("streaming")
    # Two files (4 + 2 bands) on one grid, read 7 rows at a time.
    write_stack(folder / "a.tif", raster.values[:4], raster.band_names[:4])
    write_stack(folder / "b.tif", raster.values[4:], raster.band_names[4:])
    files = RasterFiles.open([folder / "a.tif", folder / "b.tif"], block_rows=7)
    return files, raster


@pytest.fixture(scope="module")
def streamed_model(raster_files):
    files, _ = raster_files
    detector = GeoHganDetector(**QUICK)
    valid = fit_files(detector, files)
    return detector, valid


def test_files_open_with_band_choice_and_grid_checks(raster_files, tmp_path):
    files, raster = raster_files
    assert files.band_names == raster.band_names and (files.rows, files.cols) == (64, 64)
    assert files.transform == TRANSFORM
    picked = RasterFiles.open(files.paths, bands=["E6_ppm", 2])
    assert picked.band_names == ["E6_ppm", "E2_ppm"]
    blocks = list(picked.blocks())
    block = blocks[0].values
    np.testing.assert_array_equal(block[0], raster.values[5, :block.shape[1]])
    # Each block carries its own transform: its first cell's corner, however far down the grid it starts.
    small = list(RasterFiles.open(files.paths, block_rows=20).blocks())
    assert [b.window.row_off for b in small] == [0, 20, 40, 60]
    for each in small:
        assert each.transform == TRANSFORM * TRANSFORM.translation(0, each.window.row_off)
    shifted = write_stack(tmp_path / "shifted.tif", raster.values[:2], transform=TRANSFORM * TRANSFORM.translation(0, 2))
    with pytest.raises(NonMatchingRasterMetadataError, match="shifted.tif"):
        RasterFiles.open([files.paths[0], shifted])


def test_scan_and_training_tiles_match_the_in_memory_ones(raster_files):
    files, raster = raster_files
    valid, cells, positive = scan(files, seed=0)
    expected_valid = np.isfinite(raster.values).all(axis=0)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(cells, raster.values[:, expected_valid].T)  # small raster: every cell
    assert positive
    tiles, masks = training_tiles(files, valid, tile=8, stride=4, min_valid=0.5, seed=0)
    origins = TileLayout(64, 64, 8, 4).origins()
    origins = origins[valid_fraction(expected_valid, origins, 8) >= 0.5]
    expected, expected_masks = gather_tiles(raster.values, expected_valid, origins, 8)
    np.testing.assert_array_equal(tiles, expected)
    np.testing.assert_array_equal(masks, expected_masks[:, 0] > 0)
    few, _ = training_tiles(files, valid, tile=8, stride=4, min_valid=0.5, seed=0, max_bytes=20 * 6 * 8 * 8 * 4)
    assert len(few) == 20  # a seeded subset when the tiles would not fit


def test_streamed_scores_equal_in_memory_scores(raster_files, streamed_model):
    files, raster = raster_files
    detector, valid = streamed_model
    streamed = score_files(detector, files, window_rows=10)
    in_memory = detector.score(raster.values)
    assert np.array_equal(np.isnan(streamed), np.isnan(in_memory))
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-7)
    assert np.isnan(streamed[:, ~valid]).all()


def test_band_residuals_are_the_mean_misfit_of_the_covering_tiles(raster_files, streamed_model):
    import torch

    files, raster = raster_files
    detector, valid = streamed_model
    bands = [0, 2]
    streamed = residual_files(detector, files, bands, window_rows=10)
    in_memory = detector.band_residuals(raster.values, bands)
    assert streamed.shape == (2, *valid.shape) and np.isnan(streamed[:, ~valid]).all()
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-6)
    # By hand at an interior cell: x - G(E(x)) of each tile covering it, averaged.
    cfg, (r, c) = detector.config, (30, 30)
    origins = TileLayout(*valid.shape, cfg.tile, cfg.stride).origins()
    covering = origins[(origins[:, 0] <= r) & (r < origins[:, 0] + cfg.tile)
                       & (origins[:, 1] <= c) & (c < origins[:, 1] + cfg.tile)]
    tiles, masks = gather_tiles(detector.normaliser_.apply(raster.values, valid), valid, covering, cfg.tile)
    assert masks.all()  # interior: every covering tile is whole
    with torch.no_grad():
        misfit = (torch.from_numpy(tiles) - detector.networks_.generator(detector.networks_.encoder(
            torch.from_numpy(tiles)))).numpy()
    by_hand = misfit[np.arange(len(covering)), :, r - covering[:, 0], c - covering[:, 1]][:, bands].mean(axis=0)
    np.testing.assert_allclose(streamed[:, r, c], by_hand, rtol=1e-4, atol=1e-5)


def test_cell_features_are_the_normalised_values(raster_files, streamed_model):
    files, raster = raster_files
    detector, valid = streamed_model
    wanted = np.zeros_like(valid)
    wanted[40:42, 10:13] = True
    features, mean = cell_features(detector, files, valid, wanted)
    normalised = detector.normaliser_.apply(raster.values, valid)
    np.testing.assert_allclose(features, normalised[:, wanted].T, rtol=1e-6)
    np.testing.assert_allclose(mean, normalised[:, valid].mean(axis=1), rtol=1e-5)


def test_single_band_and_all_nodata_files_are_refused(tmp_path):
    single = write_stack(tmp_path / "au.tif", np.ones((1, 16, 16), np.float32), ["Au"])
    with pytest.raises(InvalidInputError, match="single band"):
        fit_files(GeoHganDetector(**QUICK), RasterFiles.open([single]))
    empty = write_stack(tmp_path / "empty.tif", np.full((2, 16, 16), np.nan, np.float32), ["Au", "As"])
    with pytest.raises(InvalidInputError, match="all nodata"):
        fit_files(GeoHganDetector(**QUICK), RasterFiles.open([empty]))
