"""GeoTIFF round trips, grid checks across files, windowed reads and point sampling."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from core.errors import InvalidInputError, NonMatchingRasterMetadataError
from core.io.rasters import iter_windows, read_raster_stack, sample_raster_at, write_raster

TRANSFORM = Affine(250.0, 0.0, 500_000.0, 0.0, -250.0, 6_400_000.0)


def stack_values(bands=3, rows=300, cols=270, seed=0):
    values = np.random.default_rng(seed).normal(size=(bands, rows, cols)).astype(np.float32)
    values[:, :5, :7] = np.nan  # a nodata corner
    values[-1, rows // 3, cols // 3] = np.nan
    return values


def test_round_trip_keeps_georeferencing_names_and_nodata(tmp_path):
    values = stack_values()
    path = write_raster(
        tmp_path / "grid.tif", values, TRANSFORM, 32750, band_names=["Au_ppm", "As_ppm", "Cu_ppm"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.tif"]  # no temporary file left behind
    stack = read_raster_stack(path)
    assert stack.band_names == ["Au_ppm", "As_ppm", "Cu_ppm"]
    assert stack.transform == TRANSFORM
    assert stack.crs.to_epsg() == 32750
    assert stack.values.dtype == np.float32 and stack.values.shape == values.shape
    np.testing.assert_array_equal(stack.values, values)  # NaN where NaN went in
    assert not stack.valid_mask[0, 0] and not stack.valid_mask[100, 90] and stack.valid_mask[200, 200]
    with rasterio.open(path) as src:
        assert src.nodata == -9999.0
        assert src.read(1)[0, 0] == -9999.0  # stored as the nodata value, not NaN
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.dtypes == ("float32",) * 3


def test_single_band_and_custom_nodata(tmp_path):
    band = stack_values(bands=1, rows=20, cols=30)[0]
    path = write_raster(tmp_path / "score.tif", band, TRANSFORM, "EPSG:28350", nodata=-1.0e30)
    stack = read_raster_stack(path)
    assert stack.band_names == ["score"]  # an unnamed single band takes the file's name
    assert stack.crs.to_epsg() == 28350
    np.testing.assert_array_equal(stack.values[0], band)


def test_several_single_band_files_stack_and_select(tmp_path):
    values = stack_values(bands=2, rows=40, cols=50)
    a = write_raster(tmp_path / "a.tif", values[0], TRANSFORM, 32750, band_names=["Ni_ppm"])
    b = write_raster(tmp_path / "b.tif", values[1], TRANSFORM, 32750, band_names=["Cr_ppm"])
    stack = read_raster_stack([a, b])
    assert stack.band_names == ["Ni_ppm", "Cr_ppm"]
    np.testing.assert_array_equal(stack.values, values)
    picked = read_raster_stack([a, b], bands=["Cr_ppm"])
    np.testing.assert_array_equal(picked.values, values[1:])
    np.testing.assert_array_equal(read_raster_stack([a, b], bands=[2]).values, values[1:])
    with pytest.raises(InvalidInputError, match="no band 'Au_ppm'"):
        read_raster_stack([a, b], bands=["Au_ppm"])


@pytest.mark.parametrize(
    "other_transform, other_crs, shape, message",
    [
        (TRANSFORM, 4326, (40, 50), "EPSG:4326"),
        (Affine(100.0, 0, 500_000.0, 0, -100.0, 6_400_000.0), 32750, (40, 50), "cells of 100"),
        (Affine(250.0, 0, 510_000.0, 0, -250.0, 6_400_000.0), 32750, (40, 50), "same extent"),
        (TRANSFORM, 32750, (41, 50), "same extent"),
    ],
)
def test_mismatched_rasters_name_the_files(tmp_path, other_transform, other_crs, shape, message):
    a = write_raster(tmp_path / "a.tif", np.ones((40, 50)), TRANSFORM, 32750)
    b = write_raster(tmp_path / "b.tif", np.ones(shape), other_transform, other_crs)
    with pytest.raises(NonMatchingRasterMetadataError, match=message) as caught:
        read_raster_stack([a, b])
    assert str(a) in str(caught.value) and str(b) in str(caught.value)


def test_windowed_read_equals_full_read(tmp_path):
    values = stack_values()
    path = write_raster(tmp_path / "grid.tif", values, TRANSFORM, 32750)
    blocks = list(iter_windows(path, block_rows=64))
    assert len(blocks) == 5  # 300 rows in blocks of 64
    assert [b.window.row_off for b in blocks] == [0, 64, 128, 192, 256]
    np.testing.assert_array_equal(np.concatenate([b.values for b in blocks], axis=1), values)


def test_sample_raster_at_points(tmp_path):
    values = stack_values(bands=2, rows=300, cols=270)
    path = write_raster(tmp_path / "grid.tif", values, TRANSFORM, 32750)
    # Centre of cell (row 10, col 20); a point in cell (299, 269); one in the nodata corner; two off the raster.
    xy = np.array(
        [
            [500_000 + 20.5 * 250, 6_400_000 - 10.5 * 250],
            [500_000 + 269.9 * 250, 6_400_000 - 299.9 * 250],
            [500_000 + 1 * 250, 6_400_000 - 1 * 250],
            [499_000.0, 6_400_000.0],
            [600_000.0, 6_000_000.0],
        ]
    )
    from_file = sample_raster_at(path, xy, block_rows=32)  # points fall in different blocks
    np.testing.assert_array_equal(from_file[0], values[:, 10, 20])
    np.testing.assert_array_equal(from_file[1], values[:, 299, 269])
    assert np.isnan(from_file[2:]).all()
    np.testing.assert_array_equal(sample_raster_at(read_raster_stack(path), xy), from_file)


def test_missing_and_unreadable_files_are_reported(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        read_raster_stack(tmp_path / "nothing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(InvalidInputError, match="cannot read raster"):
        read_raster_stack(junk)
    with pytest.raises(InvalidInputError, match="band names"):
        write_raster(tmp_path / "x.tif", np.ones((2, 3, 3)), TRANSFORM, 32750, band_names=["one"])
    assert not (tmp_path / "x.tif").exists()
