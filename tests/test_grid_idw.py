"""IDW gridding: constant fields, the nodata mask, duplicates, samples on cell centres, hand-computed weights;
streaming into a GeoTIFF block by block."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scipy.spatial import cKDTree

import core.grid.idw as idw
import core.io.rasters as rasters
from core.errors import InvalidInputError
from core.grid.idw import grid_samples, prepare_grid, write_grid
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


def test_the_area_rule_measures_a_clustered_survey_by_its_area_and_an_even_one_by_its_neighbours():
    from core.grid.spacing import survey_spacing

    gx, gy = np.meshgrid(np.arange(10) * 1000.0, np.arange(10) * 1000.0)
    even = np.c_[gx.ravel(), gy.ravel()]
    assert survey_spacing(even, "area") == pytest.approx(survey_spacing(even, "nearest")) == pytest.approx(1000.0)
    # Rock chips in tight clusters (5 m apart) on outcrops 1 km apart: 4 chips per outcrop.
    clustered = np.vstack([even + offset for offset in ([0, 0], [5, 0], [0, 5], [5, 5])])
    assert survey_spacing(clustered, "nearest") == pytest.approx(5.0)
    area = 9000.0 * 9000.0  # the outcrops' hull (the clusters add a few metres)
    assert survey_spacing(clustered, "area") == pytest.approx(0.5 * np.sqrt(area / 400), rel=0.01)

    def inside(grid):  # cells whose centre lies among the outcrops
        gx, gy = cell_centres(grid)
        return grid.mask[(gx >= 0) & (gx <= 9000) & (gy >= 0) & (gy <= 9000)]

    grid = grid_samples(clustered, np.arange(400.0), spacing_rule="area")
    assert grid.cell == 100.0 and inside(grid).all()  # the ground between outcrops stays on the map
    assert inside(grid_samples(clustered, np.arange(400.0))).mean() < 0.05  # the nearest rule leaves it out
    with pytest.raises(InvalidInputError, match="spacing rule"):
        survey_spacing(even, "median")


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


def survey_with_gaps(n=300, seed=5):
    """Three bands with missing values (one sample missing everything) and 20 duplicated locations."""
    rng = np.random.default_rng(seed)
    xy = scattered(n, seed=seed)
    xy = np.vstack([xy, xy[:20]])
    values = rng.lognormal(size=(len(xy), 3))
    values[rng.random(values.shape) < 0.15] = np.nan
    values[7] = np.nan
    return xy, values


@pytest.mark.parametrize("cell", [40.0, 200.0], ids=["tiled", "strips"])
def test_streamed_geotiff_is_the_in_memory_grid_written(tmp_path, monkeypatch, cell):
    xy, values = survey_with_gaps()
    names = ["Au_ppm", "As_ppm", "Cu_ppm"]
    expected = grid_samples(xy, values, cell=cell, max_distance=2000.0, band_names=names, crs=32750)
    expected_path = expected.write(tmp_path / "in_memory.tif")

    # One row of cells per block, one row of tiles (or strips) per write: many of both.
    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)
    windows = []
    real_write_window = rasters.write_window

    def recording_write_window(dst, row_off, block):
        windows.append((row_off, block.shape[1]))
        real_write_window(dst, row_off, block)

    monkeypatch.setattr(rasters, "write_window", recording_write_window)
    spec = prepare_grid(xy, values, cell=cell, max_distance=2000.0, band_names=names)
    summary = write_grid(tmp_path / "streamed.tif", spec, crs=32750)

    rows, cols = expected.mask.shape
    assert len(windows) > 2
    assert [off for off, _ in windows] == list(np.cumsum([0] + [n for _, n in windows[:-1]]))
    assert sum(n for _, n in windows) == rows
    with rasterio.open(summary.path) as streamed, rasterio.open(expected_path) as in_memory:
        # Whole tiles (strips) per write: a half-written compressed tile would be rewritten later.
        assert all(n % streamed.block_shapes[0][0] == 0 for _, n in windows[:-1])
        assert streamed.profile == in_memory.profile  # size, transform, CRS, nodata, tiling, compression
        assert streamed.descriptions == ("Au_ppm", "As_ppm", "Cu_ppm")
        assert streamed.descriptions == in_memory.descriptions
        np.testing.assert_array_equal(streamed.read(), in_memory.read())  # nodata value where NaN
        np.testing.assert_array_equal(streamed.read_masks(), in_memory.read_masks())
    stack = read_raster_stack(summary.path)
    assert np.isnan(stack.values).any() and np.isfinite(stack.values).any()
    np.testing.assert_array_equal(stack.values, expected.array)
    assert stack.transform == expected.transform and stack.crs.to_epsg() == 32750
    assert (summary.rows, summary.cols, summary.transform) == (rows, cols, expected.transform)
    assert (summary.cell, summary.max_distance, summary.band_names) == (cell, 2000.0, names)
    assert summary.valid_cells == expected.mask.sum() and summary.data_share == expected.mask.mean()


def test_a_failed_streamed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    xy, values = survey_with_gaps()
    real_blocks = idw.iter_grid_blocks
    written = []

    def failing_blocks(spec, progress=None):
        for block in real_blocks(spec, progress):
            yield block
            if block.row_stop > spec.rows // 2:
                raise RuntimeError("disk full")

    real_write_window = rasters.write_window

    def recording_write_window(dst, row_off, block):
        written.append(row_off)
        real_write_window(dst, row_off, block)

    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(idw, "iter_grid_blocks", failing_blocks)
    monkeypatch.setattr(rasters, "write_window", recording_write_window)
    folder = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        write_grid(folder / "grid.tif", prepare_grid(xy, values, cell=40.0, max_distance=2000.0))
    assert written  # it failed midway, after writing part of the file
    assert list(folder.iterdir()) == []  # neither grid.tif nor a temporary file

    # An earlier grid at the target is left as it was.
    (folder / "grid.tif").write_bytes(b"an earlier grid")
    with pytest.raises(RuntimeError, match="disk full"):
        write_grid(folder / "grid.tif", prepare_grid(xy, values, cell=40.0, max_distance=2000.0))
    assert [p.name for p in folder.iterdir()] == ["grid.tif"]
    assert (folder / "grid.tif").read_bytes() == b"an earlier grid"


def test_streaming_reports_progress_per_block(tmp_path, monkeypatch):
    xy, values = survey_with_gaps()
    updates = []

    class Recorder:
        def update(self, fraction, message=""):
            updates.append(fraction)

    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)
    summary = write_grid(tmp_path / "g.tif", prepare_grid(xy, values, cell=200.0), progress=Recorder())
    assert len(updates) == summary.rows and updates == sorted(updates) and updates[-1] == 1.0


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
