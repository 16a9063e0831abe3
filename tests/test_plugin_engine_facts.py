"""The plugin takes engine facts from the engine: the detector list (``core info``), the AUC it wrote, and
hands a template raster to the engine as ``--like``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.plugin_fixtures import (  # noqa: F401 - fixtures
    ENGINE_PYTHON,
    fixture_deposits_layer,
    fixture_qgis_app,
    fixture_samples_layer,
    requires_data,
    requires_qgis,
)

pytestmark = [requires_qgis, requires_data,
              pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}")]


def test_the_detector_list_is_the_engines(qgis_app):
    from qgis.core import QgsApplication

    from geoanomaly_qgis.processing.detect import detectors
    from geoanomaly_qgis.settings import engine_info

    reported = engine_info()["detectors"]
    assert reported and sorted(name for name, _ in detectors()) == sorted(reported)
    detect = QgsApplication.processingRegistry().createAlgorithmById("geoanomaly:samples_to_anomalies")
    assert len(detect.parameterDefinition("METHOD").options()) == len(reported)
    # A detector the plugin has no label for yet is still offered, under the engine's name.
    assert detectors(["pca", "new_model", "mahalanobis"]) == [
        ("mahalanobis", "Mahalanobis distance (robust, fast)"), ("pca", "PCA reconstruction error"),
        ("new_model", "new_model")]


def _raster(path: Path, crs: str) -> Path:
    from affine import Affine

    from core.io.rasters import write_raster

    transform = Affine(300.0, 0, 500_000.0, 0, -300.0, 6_500_000.0) if crs != "EPSG:4326" else \
        Affine(0.01, 0, 120.0, 0, -0.01, -30.0)
    return write_raster(path, np.zeros((4, 5), dtype=np.float32), transform, crs)


@pytest.mark.parametrize("algorithm", ["geoanomaly:grid_samples", "geoanomaly:samples_to_anomalies"])
def test_a_template_raster_reaches_the_engine_as_like(qgis_app, tmp_path, algorithm):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsRasterLayer

    alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm)
    assert alg.parameterDefinition("LIKE") is not None
    context = QgsProcessingContext()
    template = _raster(tmp_path / "template.tif", "EPSG:32750")
    layer = QgsRasterLayer(str(template), "template", "gdal")
    assert alg.like_arguments({"LIKE": layer}, context) == ["--like", str(template)]
    assert alg.like_arguments({}, context) == []
    with pytest.raises(QgsProcessingException, match="either"):
        alg.like_arguments({"LIKE": layer, "WORK_CRS": "EPSG:32751"}, context)
    degrees = QgsRasterLayer(str(_raster(tmp_path / "degrees.tif", "EPSG:4326")), "degrees", "gdal")
    with pytest.raises(QgsProcessingException, match="geographic"):
        alg.like_arguments({"LIKE": degrees}, context)


def test_the_auc_shown_is_the_one_the_engine_wrote(qgis_app, samples_layer, deposits_layer, tmp_path):
    import processing

    results = processing.run("geoanomaly:samples_to_anomalies", {
        "SAMPLES": samples_layer, "ELEMENTS": ["Au_ppm", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm"], "METHOD": 0,
        "DEPOSITS": deposits_layer, "COMPARE": False, "DEVICE": 1, "OUTPUT_FOLDER": str(tmp_path / "run")})
    written = json.loads(Path(results["RUN_RECORD"]).read_text())["metrics"]["auc"]
    assert isinstance(written, float) and results["AUC"] == written
