"""IDW gridding: constant fields, the nodata mask, duplicates, samples on cell centres, hand-computed weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

import core.grid.idw as idw
from core.errors import InvalidInputError
from core.grid.idw import grid_samples
from core.grid.spacing import median_sample_spacing, tidy_length
from core.io.rasters import read_raster_stack


def cell_centres(grid):
    rows, cols = grid.mask.shape
    t = grid.transform
    x = t.c + (np.arange(cols) + 0.5) * t.a
    y = t.f + (np.arange(rows) + 0.5) * t.e
    return np.meshgrid(x, y)


def scattered(n=200, seed=0, size=20_000.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, size, (n, 2)) + [500_000.0, 6_400_000.0]


def test_constant_field_grids_to_exactly_the_constant():
    xy = scattered()
    for constant in (3.7, 0.1, -2.5e-3, 1234.5678):
        grid = grid_samples(xy, np.full(len(xy), constant))
        inside = grid.array[0][grid.mask]
        assert inside.size > 100
        assert np.all(inside == np.float32(constant))
        assert np.isnan(grid.array[0][~grid.mask]).all()


def test_cells_beyond_max_distance_are_nodata():
    # Two clusters 50 km apart: the ground between them is not sampled.
    rng = np.random.default_rng(1)
    xy = np.vstack([rng.uniform(0, 5000, (50, 2)), rng.uniform(0, 5000, (50, 2)) + [50_000, 0]])
    grid = grid_samples(xy, rng.normal(size=100), cell=250.0, max_distance=2000.0)
    gx, gy = cell_centres(grid)
    nearest, _ = cKDTree(xy).query(np.c_[gx.ravel(), gy.ravel()])
    expected_mask = (nearest <= 2000.0).reshape(grid.mask.shape)
    np.testing.assert_array_equal(grid.mask, expected_mask)
    assert np.isnan(grid.array[0][~grid.mask]).all()
    assert np.isfinite(grid.array[0][grid.mask]).all()
    # The middle of the gap is nodata, and the grid covers the whole mask (bbox grown by max_distance).
    col = int((25_000 - grid.transform.c) / grid.cell)
    assert not grid.mask[:, col].any()
    assert grid.transform.c <= xy[:, 0].min() - 2000 and grid.transform.f >= xy[:, 1].max() + 2000


def test_duplicates_are_averaged_and_a_sample_on_a_cell_centre_keeps_its_value():
    # Cell 10 m; sample coordinates on cell centres (multiples of 10 plus 5).
    xy = np.array([[105.0, 205.0], [105.0, 205.0], [155.0, 205.0], [105.0, 255.0], [155.0, 255.0]])
    values = np.array([1.0, 3.0, 10.0, 20.0, 30.0])
    with np.errstate(all="raise"):  # no division by zero anywhere
        grid = grid_samples(xy, values, cell=10.0, max_distance=100.0)
    row, col = ~grid.transform * (105.0, 205.0)
    assert (row % 1, col % 1) == (0.5, 0.5)  # really a cell centre
    assert grid.array[0, int(col), int(row)] == pytest.approx(2.0)  # mean of the duplicates, exactly
    row, col = ~grid.transform * (155.0, 255.0)
    assert grid.array[0, int(col), int(row)] == np.float32(30.0)


def test_idw_weights_known_answer():
    # Two samples on a line; the cell centre at x = 15 is 10 m from one and 30 m from the other.
    xy = np.array([[5.0, 5.0], [45.0, 5.0]])
    values = np.array([2.0, 6.0])
    for power, weights in ((2.0, (1 / 100, 1 / 900)), (1.0, (1 / 10, 1 / 30))):
        grid = grid_samples(xy, values, cell=10.0, max_distance=60.0, power=power)
        col, row = ~grid.transform * (15.0, 5.0)
        expected = (2.0 * weights[0] + 6.0 * weights[1]) / sum(weights)
        assert grid.array[0, int(row), int(col)] == pytest.approx(expected, rel=1e-6)
    # One neighbour only: nearest-sample value.
    grid = grid_samples(xy, values, cell=10.0, max_distance=60.0, neighbours=1)
    col, row = ~grid.transform * (15.0, 5.0)
    assert grid.array[0, int(row), int(col)] == 2.0


def test_missing_values_per_band_use_the_other_samples():
    xy = np.array([[5.0, 5.0], [45.0, 5.0], [85.0, 5.0]])
    values = np.array([[1.0, np.nan], [2.0, 7.0], [3.0, 7.0]])
    grid = grid_samples(xy, values, cell=10.0, max_distance=200.0, band_names=["Au_ppm", "As_ppm"])
    col, row = ~grid.transform * (5.0, 5.0)
    assert grid.array[0, int(row), int(col)] == 1.0  # on the sample
    assert grid.array[1, int(row), int(col)] == 7.0  # its As is missing: the neighbours' (constant) value
    assert grid.band_names == ["Au_ppm", "As_ppm"]
    # A cell has As exactly where a sample with an As value lies within max_distance.
    gx, gy = cell_centres(grid)
    has_as, _ = cKDTree(xy[1:]).query(np.c_[gx.ravel(), gy.ravel()], distance_upper_bound=200.0)
    np.testing.assert_array_equal(np.isfinite(grid.array[1]), np.isfinite(has_as).reshape(grid.mask.shape))
    assert np.isfinite(grid.array[0][grid.mask]).all()


def test_default_cell_and_max_distance_follow_sample_spacing():
    gx, gy = np.meshgrid(np.arange(10) * 1000.0, np.arange(10) * 1000.0)
    xy = np.c_[gx.ravel(), gy.ravel()]
    xy = np.vstack([xy, xy[:7]])  # duplicates must not shrink the spacing to zero
    assert median_sample_spacing(xy) == pytest.approx(1000.0)
    grid = grid_samples(xy, np.arange(len(xy), dtype=float))
    assert grid.cell == 500.0
    assert grid.max_distance == pytest.approx(5000.0)
    assert tidy_length(466.0) == 500.0 and tidy_length(230.0) == 250.0 and tidy_length(0.013) == 0.01


def test_blocks_of_rows_give_the_same_grid(monkeypatch):
    xy = scattered(300, seed=2)
    values = np.random.default_rng(3).normal(size=(300, 3))
    whole = grid_samples(xy, values, cell=200.0)
    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)  # one row of cells at a time
    blocked = grid_samples(xy, values, cell=200.0)
    np.testing.assert_array_equal(whole.array, blocked.array)
    np.testing.assert_array_equal(whole.mask, blocked.mask)


def test_write_keeps_band_names_and_georeferencing(tmp_path):
    xy = scattered(100, seed=4)
    grid = grid_samples(xy, np.c_[np.ones(100), np.arange(100.0)], band_names=["Cu_ppm", "Zn_ppm"], crs=32750)
    path = grid.write(tmp_path / "grid.tif")
    stack = read_raster_stack(path)
    assert stack.band_names == ["Cu_ppm", "Zn_ppm"]
    assert stack.transform == grid.transform and stack.crs.to_epsg() == 32750
    np.testing.assert_array_equal(stack.valid_mask, grid.mask)
    np.testing.assert_array_equal(stack.values, grid.array)


def test_bad_input_is_reported():
    xy = scattered(10)
    with pytest.raises(InvalidInputError, match="shape"):
        grid_samples(xy, np.ones(9))
    with pytest.raises(InvalidInputError, match="one location"):
        grid_samples(np.zeros((5, 2)), np.ones(5))
    with pytest.raises(InvalidInputError, match="larger --cell"):
        grid_samples(xy, np.ones(10), cell=0.001)
    with pytest.raises(InvalidInputError, match="non-finite coordinates"):
        grid_samples(np.r_[xy[:9], [[np.nan, 1.0]]], np.ones(10))
