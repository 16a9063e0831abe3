"""``geoanomaly geohgan``: outputs aligned to the input grid, run record, metric choice, bad inputs."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from core.cli import main
from core.io.rasters import read_raster_stack
from tests.geohgan_fixtures import CRS, QUICK_ARGS, TRANSFORM, planted_raster, write_stack


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory):
    raster = planted_raster(seed=1)
    path = tmp_path_factory.mktemp("geohgan") / "stack.tif"
    write_stack(path, raster.values, raster.band_names)
    return path, raster


def _deposits_on(raster, path):
    rows, cols = np.nonzero(raster.anomalous)
    pick = np.arange(0, len(rows), 16)
    x, y = TRANSFORM * (cols[pick] + 0.5, rows[pick] + 0.5)
    pd.DataFrame({"x": x, "y": y}).to_csv(path, index=False)
    return path


def test_outputs_are_aligned_to_the_input_grid(stack_file, tmp_path, capsys):
    path, raster = stack_file
    out = tmp_path / "out"
    assert main(["geohgan", "--raster", str(path), "--out", str(out), *QUICK_ARGS]) == 0
    with rasterio.open(path) as src, rasterio.open(out / "geohgan_scores.tif") as dst:
        assert dst.count == 3
        assert dst.descriptions == ("img_distance", "anomaly_score", "z_distance")
        assert (dst.width, dst.height) == (src.width, src.height)
        assert dst.transform == src.transform and dst.crs == src.crs
        scores = dst.read(masked=True)
    valid = np.isfinite(raster.values).all(axis=0)
    assert (scores.mask.all(axis=0) == ~valid).all()  # nodata exactly where the input has none
    for i, name in enumerate(("img_distance", "anomaly_score", "z_distance")):
        with rasterio.open(out / f"{name}.tif") as single:
            assert single.count == 1 and single.descriptions == (name,) and single.transform == TRANSFORM
            np.testing.assert_array_equal(single.read(1, masked=True).filled(np.nan), scores[i].filled(np.nan))

    record = json.loads((out / "run.json").read_text())
    assert record["metric"]["metric"] == "anomaly_score"
    assert record["metric"]["uses_deposit_labels"] is False
    assert "unsupervised" in record["metric"]["how"]
    assert {"fit", "score", "total"} <= set(record["timings_s"])
    assert record["device"].startswith("cpu") and "torch" in record["versions"]
    assert record["rasters"]["bands"] == raster.band_names
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "normalisation.json", "weights.pt"]

    cells = gpd.read_file(out / "anomaly_cells.gpkg")
    assert cells.crs.to_epsg() == 28350
    assert {"row", "col", "img_distance", "anomaly_score", "z_distance", "distance_to_mean"} <= set(cells.columns)
    assert len(cells) == record["anomfilter"]["n_selected"]
    if len(cells):
        # Each point is the centre of its cell, and carries that cell's scores.
        x, y = TRANSFORM * (cells["col"].to_numpy() + 0.5, cells["row"].to_numpy() + 0.5)
        np.testing.assert_allclose(cells.geometry.x, x)
        np.testing.assert_allclose(cells.geometry.y, y)
        np.testing.assert_allclose(cells["anomaly_score"], scores[1].data[cells["row"], cells["col"]], rtol=1e-6)


def test_deposits_choose_the_metric_by_cell_auc_and_say_so(stack_file, tmp_path):
    path, raster = stack_file
    deposits = _deposits_on(raster, tmp_path / "deposits.csv")
    out = tmp_path / "out"
    assert main(["geohgan", "--raster", str(path), "--out", str(out), "--deposits", str(deposits),
                 "--deposits-crs", CRS, "--bands", "E1_ppm,E2_ppm,E3_ppm,E4_ppm", *QUICK_ARGS]) == 0
    record = json.loads((out / "run.json").read_text())
    choice = record["metric"]
    assert choice["uses_deposit_labels"] is True
    aucs = {name: res["auc"] for name, res in choice["cell_auc"].items()}
    assert set(aucs) == {"img_distance", "anomaly_score", "z_distance"}
    assert choice["metric"] == max(aucs, key=aucs.get)
    assert record["rasters"]["bands"] == ["E1_ppm", "E2_ppm", "E3_ppm", "E4_ppm"]


def test_several_single_band_rasters_are_one_stack(stack_file, tmp_path):
    _, raster = stack_file
    files = []
    for name, band in zip(raster.band_names[:3], raster.values[:3]):
        files += ["--raster", str(write_stack(tmp_path / f"{name}.tif", band[None], [name]))]
    out = tmp_path / "out"
    assert main(["geohgan", *files, "--out", str(out), *QUICK_ARGS]) == 0
    scores = read_raster_stack(out / "geohgan_scores.tif")
    assert scores.band_names == ["img_distance", "anomaly_score", "z_distance"]
    assert scores.transform == TRANSFORM


def _fails(capsys, argv, out, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()  # nothing half-written


def test_mismatched_rasters_are_refused(stack_file, tmp_path, capsys):
    path, raster = stack_file
    shifted = write_stack(tmp_path / "shifted.tif", raster.values[:2], raster.band_names[:2],
                          transform=TRANSFORM * TRANSFORM.translation(3, 0))
    out = tmp_path / "out"
    _fails(capsys, ["geohgan", "--raster", str(path), "--raster", str(shifted), "--out", str(out), *QUICK_ARGS],
           out, "shifted.tif", "same extent")


def test_a_single_band_is_refused(stack_file, tmp_path, capsys):
    _, raster = stack_file
    single = write_stack(tmp_path / "au.tif", raster.values[:1], ["Au_ppb"])
    out = tmp_path / "out"
    _fails(capsys, ["geohgan", "--raster", str(single), "--out", str(out), *QUICK_ARGS], out,
           "au.tif", "single band", "Au_ppb")


def test_an_all_nodata_raster_is_refused(tmp_path, capsys):
    empty = write_stack(tmp_path / "empty.tif", np.full((3, 20, 20), np.nan, np.float32), ["Au", "As", "Cu"])
    out = tmp_path / "out"
    _fails(capsys, ["geohgan", "--raster", str(empty), "--out", str(out), *QUICK_ARGS], out,
           "empty.tif", "all nodata")


def test_an_unknown_band_is_refused(stack_file, tmp_path, capsys):
    path, _ = stack_file
    out = tmp_path / "out"
    _fails(capsys, ["geohgan", "--raster", str(path), "--out", str(out), "--bands", "Au_ppm,Zr_ppm", *QUICK_ARGS],
           out, "Au_ppm")


def test_commodity_adds_the_gridded_suite_readout(stack_file, tmp_path, capsys):
    _, raster = stack_file
    named = tmp_path / "named.tif"
    write_stack(named, raster.values, ["Au_ppb", "As_ppm", "Sb_ppm", "Bi_ppm", "Fe_ppm", "Al_ppm"])
    deposits = _deposits_on(raster, tmp_path / "deposits.csv")
    out = tmp_path / "out"
    assert main(["geohgan", "--raster", str(named), "--out", str(out), "--commodity", "gold", "--deposits",
                 str(deposits), "--deposits-crs", CRS, *QUICK_ARGS]) == 0
    valid = np.isfinite(raster.values).all(axis=0)
    for name in ("suite_enrichment", "suite_halo"):  # Geo-Hgan's residuals, and the model-free map beside it
        with rasterio.open(named) as src, rasterio.open(out / f"{name}.tif") as dst:
            assert dst.descriptions == (name,) and dst.transform == src.transform
            readout = dst.read(1, masked=True)
        assert (readout.mask == ~valid).all() and readout.min() >= 0      # enrichment only, nodata kept
    record = json.loads((out / "run.json").read_text())
    assert set(record["commodity"]["suite"]) == {"Au", "As", "Sb", "Bi"}
    for which in ("model", "model_free"):
        assert 0.0 <= record["commodity"][which]["cell_auc"]["auc"] <= 1.0
    # Bands that do not measure the commodity: one clear line, nothing written.
    out2 = tmp_path / "out2"
    capsys.readouterr()
    assert main(["geohgan", "--raster", str(named), "--out", str(out2), "--commodity", "Li", *QUICK_ARGS]) == 2
    assert "no raster band is named after the commodity Li" in capsys.readouterr().err
    assert not out2.exists()
