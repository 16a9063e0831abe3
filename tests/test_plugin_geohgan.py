"""Raster anomalies (Geo-Hgan) through ``processing`` in a real headless QGIS, with the real engine worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.geohgan_fixtures import TRANSFORM, planted_raster, write_stack
from tests.plugin_fixtures import ENGINE_PYTHON, csv_points_uri, qgis_app, requires_qgis  # noqa: F401

pytestmark = [requires_qgis,
              pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}")]

ALGORITHM = "geoanomaly:raster_anomalies_geohgan"
QUICK = {"EPOCHS": 1, "TILES_PER_EPOCH": 128, "DEVICE": 1}  # DEVICE 1 = cpu


@pytest.fixture(scope="module")
def geohgan_run(qgis_app, tmp_path_factory):  # noqa: F811 - fixture
    import processing
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    folder = tmp_path_factory.mktemp("plugin-geohgan")
    raster = planted_raster(seed=4)
    stack = write_stack(folder / "stack.tif", raster.values, raster.band_names)
    rows, cols = np.nonzero(raster.anomalous)
    x, y = TRANSFORM * (cols[::16] + 0.5, rows[::16] + 0.5)
    pd.DataFrame({"x": x, "y": y}).to_csv(folder / "deposits.csv", index=False)
    layer = QgsRasterLayer(str(stack), "geochemistry")
    deposits = QgsVectorLayer(csv_points_uri(folder / "deposits.csv", "x", "y", "EPSG:28350"), "deposits",
                              "delimitedtext")
    assert layer.isValid() and deposits.isValid()
    out = folder / "run"
    results = processing.runAndLoadResults(ALGORITHM, {
        "RASTERS": [layer], "BANDS": "E1_ppm, E2_ppm,E3_ppm,E5_ppm", "DEPOSITS": deposits,
        "OUTPUT_FOLDER": str(out), **QUICK})
    return {"results": results, "out": out, "input": layer, "project": QgsProject.instance()}


def test_algorithm_is_registered_with_help_and_icon(qgis_app):  # noqa: F811
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(ALGORITHM)
    assert alg is not None and alg.displayName() == "Raster anomalies (Geo-Hgan)"
    assert alg.shortHelpString() and not alg.icon().isNull()
    for name in ("RASTERS", "BANDS", "DEPOSITS", "TILE", "STRIDE", "EPOCHS", "DEVICE", "OUTPUT_FOLDER"):
        assert alg.parameterDefinition(name) is not None, name


def test_score_rasters_are_aligned_with_the_input(geohgan_run):
    from qgis.core import QgsRasterLayer

    source = geohgan_run["input"]
    for name in ("ANOMALY_SCORE", "IMG_DISTANCE", "Z_DISTANCE"):
        layer = QgsRasterLayer(geohgan_run["results"][name], name)
        assert layer.isValid() and layer.bandCount() == 1, name
        assert (layer.width(), layer.height()) == (source.width(), source.height())
        assert layer.extent() == source.extent() and layer.crs() == source.crs()


def test_run_used_the_band_subset_and_says_how_the_metric_was_chosen(geohgan_run):
    record = json.loads(Path(geohgan_run["results"]["RUN_RECORD"]).read_text())
    assert record["rasters"]["bands"] == ["E1_ppm", "E2_ppm", "E3_ppm", "E5_ppm"]
    assert record["metric"]["uses_deposit_labels"] is True
    assert set(record["metric"]["cell_auc"]) == {"img_distance", "anomaly_score", "z_distance"}


def test_results_are_grouped_and_styled_as_heat_maps(geohgan_run):
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    root = geohgan_run["project"].layerTreeRoot()
    groups = [g for g in root.children() if g.name().startswith("GeoAnomaly geohgan ")]
    assert len(groups) == 1, [g.name() for g in root.children()]
    layers = [node.layer() for node in groups[0].findLayers()]
    assert [type(layer) for layer in layers] == [QgsVectorLayer] * 2 + [QgsRasterLayer] * 3, \
        "the run's deposits, then the cells, above the rasters"
    deposits, cells, *rasters = layers
    assert deposits.name() == "Known deposits" and deposits.renderer().type() == "singleSymbol"
    assert cells.name() == "High-confidence anomaly cells"
    assert {"row", "col", "anomaly_score"} <= set(cells.fields().names())
    for raster in rasters:
        assert raster.renderer().type() == "singlebandpseudocolor", raster.name()
        items = raster.renderer().shader().rasterShaderFunction().colorRampItemList()
        assert items[0].color.alpha() == 0 and items[-1].color.alpha() == 255


def test_a_commodity_run_loads_its_suite_maps_on_top(qgis_app, tmp_path):  # noqa: F811
    """Commodity Au: the suite readouts (Geo-Hgan's own residuals, and no model) load above the score rasters."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer

    from core.preprocess.elements import PATHFINDERS
    from tests.test_geohgan_commodity import BANDS, _field

    stack = write_stack(tmp_path / "stack.tif", _field(), BANDS)
    layer = QgsRasterLayer(str(stack), "geochemistry")
    project = QgsProject.instance()
    try:
        results = processing.runAndLoadResults(ALGORITHM, {
            "COMMODITY": list(PATHFINDERS).index("Au") + 1, "RASTERS": [layer], "OUTPUT_FOLDER": str(tmp_path / "run"),
            **QUICK})
        assert Path(results["SUITE_ENRICHMENT"]).is_file() and Path(results["SUITE_HALO"]).is_file()
        group = next(g for g in project.layerTreeRoot().children() if g.name().startswith("GeoAnomaly geohgan ")
                     and any(n.layer().source() == results["SUITE_HALO"] for n in g.findLayers()))
        names = [node.layer().name() for node in group.findLayers() if isinstance(node.layer(), QgsRasterLayer)]
        assert names[:2] == ["Commodity suite enrichment (Geo-Hgan residuals, halo)",
                             "Commodity suite halo (no model)"], names
    finally:
        project.removeEntry("GeoAnomaly", "commodity")
        for group in [g for g in project.layerTreeRoot().children() if g.name().startswith("GeoAnomaly geohgan ")]:
            project.removeMapLayers([node.layerId() for node in group.findLayers()])
            project.layerTreeRoot().removeChildNode(group)
