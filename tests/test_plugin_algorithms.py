"""Every GeoAnomaly algorithm through ``processing.run`` in a real headless QGIS, with the real engine worker.

Data: the GSWA sed1 survey (1,392 stream-sediment samples, lon/lat GDA94) and
its 32 known Au deposits, loaded as QGIS delimited-text layers the way a
geologist adds them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.plugin_fixtures import (  # noqa: F401 - fixtures
    DEPOSITS_CSV,
    ENGINE_PYTHON,
    SAMPLES_CSV,
    fixture_deposits_layer,
    fixture_qgis_app,
    fixture_samples_layer,
    requires_data,
    requires_engine,
    requires_qgis,
)

pytestmark = [requires_qgis, requires_data, requires_engine]

FAST_ELEMENTS = ["Au_ppm", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm", "Ni_ppm", "Cr_ppm", "Co_ppm"]


def engine_commands() -> set[str]:
    """The sub-commands of the engine in this tree (grid/evaluate arrive with their issues)."""
    return {p.stem for p in (Path(__file__).resolve().parent.parent / "core" / "commands").glob("[!_]*.py")}


def engine_detectors() -> list[str]:
    out = subprocess.run([str(ENGINE_PYTHON), "-m", "core", "info", "--progress", "json"], capture_output=True,
                         text=True, timeout=120, cwd="/tmp")
    for line in out.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "result":
            return list(event["info"].get("detectors", []))
    return []


class RecordingFeedback:
    """A real QgsProcessingFeedback that also keeps the messages, for assertions."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class _Recording(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos, self.warnings, self.texts = [], [], []

            def pushInfo(self, text):  # noqa: N802
                self.infos.append(text)
                super().pushInfo(text)

            def pushWarning(self, text):  # noqa: N802
                self.warnings.append(text)
                super().pushWarning(text)

            def setProgressText(self, text):  # noqa: N802
                self.texts.append(text)
                super().setProgressText(text)

        return _Recording()


def read_scores_layer(uri: str) -> dict[int, float]:
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(uri, "scores", "ogr")
    assert layer.isValid(), uri
    return {int(f["sample_row"]): float(f["anomaly_score"]) for f in layer.getFeatures()}


def raster_summary(path: str) -> dict:
    """CRS, size and valid-cell statistics read through QGIS's raster provider (no rasterio in QGIS)."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(path, "raster")
    assert layer.isValid(), path
    provider = layer.dataProvider()
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    valid = [block.value(r, c) for r in range(layer.height()) for c in range(layer.width())
             if not block.isNoData(r, c)]
    return {"crs": layer.crs(), "width": layer.width(), "height": layer.height(), "valid": len(valid),
            "cells": layer.width() * layer.height(), "min": min(valid) if valid else None,
            "max": max(valid) if valid else None, "nodata": provider.sourceNoDataValue(1),
            "bands": layer.bandCount(), "band_names": [provider.generateBandName(b) for b in range(1, layer.bandCount() + 1)],
            "layer": layer}


@pytest.fixture(scope="module")
def deposits_in_mga(deposits_layer, qgis_app):
    """The deposits reprojected to MGA zone 50 (metres): another CRS than the samples'."""
    import processing

    result = processing.run("native:reprojectlayer", {"INPUT": deposits_layer, "TARGET_CRS": "EPSG:28350",
                                                      "OUTPUT": "memory:deposits_mga"})
    layer = result["OUTPUT"]
    assert layer.crs().authid() == "EPSG:28350"
    return layer


@pytest.fixture(scope="module")
def detect_run(samples_layer, deposits_in_mga, tmp_path_factory, qgis_app):
    """One detect run (mahalanobis, with deposits in another CRS), loaded as a person would: runAndLoadResults."""
    import processing
    from qgis.core import QgsProject

    out = tmp_path_factory.mktemp("plugin-detect") / "run"
    feedback = RecordingFeedback()
    project = QgsProject.instance()
    before = set(project.layerTreeRoot().children())
    started = time.monotonic()
    results = processing.runAndLoadResults("geoanomaly:samples_to_anomalies", {
        "SAMPLES": samples_layer, "METHOD": 0, "DEPOSITS": deposits_in_mga, "DEVICE": 1,
        "OUTPUT_FOLDER": str(out)}, feedback=feedback)
    yield {"results": results, "feedback": feedback, "out": out, "seconds": time.monotonic() - started,
           "project": project}
    # Leave the shared project as it was for the tests that come after.
    for node in set(project.layerTreeRoot().children()) - before:
        project.removeMapLayers([layer.layer().id() for layer in node.findLayers()] if hasattr(node, "findLayers")
                                else [node.layerId()])
        project.layerTreeRoot().removeChildNode(node)


def test_provider_lists_every_algorithm(qgis_app):
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("geoanomaly")
    assert provider is not None and provider.name() == "GeoAnomaly"
    ids = {alg.id() for alg in provider.algorithms()}
    assert {"geoanomaly:samples_to_anomalies", "geoanomaly:grid_samples",
            "geoanomaly:evaluate_against_deposits"} <= ids
    for alg in provider.algorithms():
        assert alg.shortHelpString() and not alg.icon().isNull(), alg.id()
        assert alg.shortDescription(), f"{alg.id()} has no one-line tooltip"
    # Each button its own picture (drawn, compared pixel by pixel).
    pictures = {alg.id(): alg.icon().pixmap(32, 32).toImage() for alg in provider.algorithms()}
    ids = sorted(pictures)
    for i, first in enumerate(ids):
        for second in ids[i + 1:]:
            assert pictures[first] != pictures[second], f"{first} and {second} share an icon"
    detect = QgsApplication.processingRegistry().algorithmById("geoanomaly:samples_to_anomalies")
    methods = detect.parameterDefinition("METHOD").options()
    assert len(methods) == 6 and any("transformer" in m.lower() for m in methods)
    for name in ("GENERATIONS", "ENSEMBLE", "NEIGHBOURS", "EPOCHS", "DEVICE"):
        assert detect.parameterDefinition(name) is not None, name


def test_the_commodity_is_asked_first_and_remembered_per_project(qgis_app):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProject

    from core.preprocess.elements import PATHFINDERS

    registry = QgsApplication.processingRegistry()
    for alg_id in ("geoanomaly:samples_to_anomalies", "geoanomaly:raster_anomalies_geohgan",
                   "geoanomaly:grid_samples", "geoanomaly:score_new_samples"):
        alg = registry.algorithmById(alg_id)
        first = alg.parameterDefinitions()[0]
        assert first.name() == "COMMODITY", alg_id
        assert first.options()[1:] == list(PATHFINDERS)      # the plugin offers the engine's suites
    # Scoring with a saved model: the first choice is the model's own commodity, which passes nothing and
    # leaves the project's remembered commodity alone.
    score = registry.algorithmById("geoanomaly:score_new_samples")
    assert "model" in score.parameterDefinition("COMMODITY").options()[0].lower()
    detect = registry.algorithmById("geoanomaly:samples_to_anomalies")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    li = list(PATHFINDERS).index("Li") + 1
    assert detect.commodity_arguments({"COMMODITY": li}, context) == ["--commodity", "Li"]
    assert QgsProject.instance().readEntry("GeoAnomaly", "commodity", "")[0] == "Li"
    again = detect.create()
    again.initAlgorithm()
    assert again.parameterDefinition("COMMODITY").defaultValue() == li   # remembered for the next run
    assert score.commodity_arguments({"COMMODITY": 0}, context) == []
    assert QgsProject.instance().readEntry("GeoAnomaly", "commodity", "")[0] == "Li"
    assert detect.commodity_arguments({"COMMODITY": 0}, context) == []
    assert QgsProject.instance().readEntry("GeoAnomaly", "commodity", "")[0] == ""
    QgsProject.instance().removeEntry("GeoAnomaly", "commodity")


def test_detect_outputs_are_valid_layers(detect_run, samples_layer):
    results = detect_run["results"]
    out = detect_run["out"]
    assert Path(results["OUTPUT_FOLDER"]) == out
    raster = raster_summary(results["ANOMALY_RASTER"])
    assert raster["crs"].isValid() and not raster["crs"].isGeographic()
    assert raster["crs"].authid() == "EPSG:32750", raster["crs"].authid()  # the samples' UTM zone
    assert raster["nodata"] == -9999
    assert 0 < raster["valid"] < raster["cells"], "values must not be all nodata (nor cover every cell)"
    assert raster["min"] < raster["max"]
    from qgis.core import QgsVectorLayer

    scores = QgsVectorLayer(results["SCORES"], "scores", "ogr")
    assert scores.isValid() and scores.featureCount() == samples_layer.featureCount() == 1392
    assert scores.crs() == samples_layer.crs()  # points stay in the input CRS
    first = next(scores.getFeatures())
    assert first.geometry().asPoint().x() == pytest.approx(first["x"]) and math.isfinite(first["anomaly_score"])
    record = json.loads(Path(results["RUN_RECORD"]).read_text())
    assert record["parameters"]["method"] == "mahalanobis" and record["versions"]["geoanomaly"]
    qgis_record = json.loads((out / "qgis_run.json").read_text())
    assert qgis_record["algorithm"] == "geoanomaly:samples_to_anomalies"
    assert qgis_record["layers"]["SAMPLES"]["source"] == samples_layer.source()
    assert qgis_record["layers"]["SAMPLES"]["crs"] == "EPSG:4283"
    assert qgis_record["layers"]["DEPOSITS"]["crs"] == "EPSG:28350"
    assert qgis_record["engine_command"][:3] == ["detect", "--method", "mahalanobis"]
    assert Path(results["SUCCESS_RATE_PLOT"]).is_file()
    assert 0.5 < results["AUC"] <= 1.0


def test_detect_scores_equal_a_direct_engine_run(detect_run, tmp_path):
    direct = tmp_path / "direct"
    subprocess.run([str(ENGINE_PYTHON), "-m", "core", "detect", "--method", "mahalanobis", "--samples",
                    str(SAMPLES_CSV), "--crs", "EPSG:4283", "--out", str(direct), "--progress", "none"],
                   check=True, timeout=240, cwd="/tmp")
    with open(direct / "scores.csv", newline="") as handle:
        expected = {int(row["sample_row"]): float(row["anomaly_score"]) for row in csv.DictReader(handle)}
    got = read_scores_layer(detect_run["results"]["SCORES"])
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12) for k in expected)
    mine = raster_summary(detect_run["results"]["ANOMALY_RASTER"])
    theirs = raster_summary(str(direct / "anomaly_score.tif"))
    assert (mine["width"], mine["height"], mine["valid"]) == (theirs["width"], theirs["height"], theirs["valid"])
    assert mine["max"] == pytest.approx(theirs["max"], rel=1e-5)


def test_detect_log_names_crs_handling_and_device(detect_run):
    feedback = detect_run["feedback"]
    warnings = "\n".join(feedback.warnings)
    infos = "\n".join(feedback.infos)
    assert "geographic CRS (EPSG:4283" in warnings and "reprojects" in warnings
    assert "Deposits are in EPSG:28350; reprojected to EPSG:4283, the CRS of the samples" in infos
    assert "Detector mahalanobis on cpu" in infos
    assert "knn (for comparison): AUC" in infos, "the classical detectors are compared by default"
    assert "Engine interpreter:" in infos
    assert any(text.startswith("Fitting") for text in feedback.texts)


def test_detect_results_are_grouped_and_styled(detect_run):
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    root = detect_run["project"].layerTreeRoot()
    groups = [g for g in root.children() if g.name().startswith("GeoAnomaly mahalanobis ")]
    assert len(groups) == 1, [g.name() for g in root.children()]
    nodes = groups[0].findLayers()
    layers = [node.layer() for node in nodes]
    assert [type(layer) for layer in layers] == [QgsVectorLayer, QgsVectorLayer, QgsRasterLayer], \
        "deposits, then points, above the raster"
    deposits, points, raster = layers
    assert deposits.name() == "Known deposits" and deposits.featureCount() == 32
    assert deposits.renderer().type() == "singleSymbol" and deposits.renderer().symbol().symbolLayer(0).shape() \
        == deposits.renderer().symbol().symbolLayer(0).Star
    # The raster's legend is titled in words, not with GDAL's "Band 1: anomaly_score (Gray)".
    from qgis.core import QgsMapLayerLegendUtils

    assert QgsMapLayerLegendUtils.legendNodeUserLabel(nodes[2], 0) == "Anomaly score (percentile)"
    # Every GeoPackage of the run is version 1.2, which QGIS 3.22 opens without a warning (1.4 warned).
    import sqlite3

    for name in ("scores.gpkg", "deposits_used.gpkg"):
        with sqlite3.connect(detect_run["out"] / name) as connection:
            assert connection.execute("PRAGMA user_version").fetchone()[0] == 10200, name
    assert points.renderer().type() == "graduatedSymbol"
    assert points.renderer().classAttribute() == "anomaly_score"
    assert len(points.renderer().ranges()) == 6
    renderer = raster.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    shader = renderer.shader().rasterShaderFunction()
    items = shader.colorRampItemList()
    assert items[0].color.alpha() == 0 and items[-1].color.alpha() == 255, "transparent background, opaque anomalies"
    summary = raster_summary(raster.source())
    # Percentile stretch: inside the data range, and the top above most values.
    assert summary["min"] <= renderer.classificationMin() < renderer.classificationMax() <= summary["max"]
    assert renderer.classificationMax() < summary["max"], "stretched to the 98th percentile, not the maximum"
    record = json.loads(groups[0].customProperty("geoanomaly/run"))
    assert record["command"][0] == "detect" and "--method" in record["command"]


def test_results_page_shows_the_curve_and_the_auc_of_the_log(detect_run):
    """One number: the page quotes the AUC of run.json, which the log printed, beside the success-rate curve."""
    results = detect_run["results"]
    page = Path(results["RESULTS_PAGE"])
    assert page.is_file() and page.parent == detect_run["out"]
    text = page.read_text()
    record = json.loads(Path(results["RUN_RECORD"]).read_text())
    figure = f"AUC {record['metrics']['auc']:.3f}"
    assert figure in text and (detect_run["out"] / "success_rate.png").as_uri() in text
    assert f"{results['AUC']:.3f}" == figure.split()[1]
    assert any(figure in message for message in detect_run["feedback"].infos), "the log gives the same figure"


def test_cancel_stops_the_worker_and_leaves_no_output(samples_layer, deposits_layer, tmp_path, qgis_app):
    import processing
    from qgis.core import QgsProcessingException

    out = tmp_path / "cancelled"
    feedback = RecordingFeedback()
    cancelled_at: list[float] = []

    def cancel_once_running(progress: float) -> None:
        if progress > 0 and not cancelled_at:  # the engine is past reading: it is working
            cancelled_at.append(time.monotonic())
            feedback.cancel()

    feedback.progressChanged.connect(cancel_once_running)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("geoanomaly:samples_to_anomalies", {
            "SAMPLES": samples_layer, "METHOD": 0, "DEPOSITS": deposits_layer, "OUTPUT_FOLDER": str(out)},
            feedback=feedback)
    stopped_after = time.monotonic() - cancelled_at[0]
    assert stopped_after < 6.0, f"the worker took {stopped_after:.1f}s to stop"
    assert not out.exists(), "a cancelled run must leave no output folder"
    assert not list(tmp_path.glob(".cancelled.partial-*")), "no staging folder left behind"
    children = _child_commands()
    assert not any("core detect" in cmd for cmd in children), children


def _child_commands() -> list[str]:
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def _memory_layer(definition: str, name: str, features: list[tuple[str, dict]] = ()):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(definition, name, "memory")
    assert layer.isValid()
    provider = layer.dataProvider()
    for wkt, attributes in features:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        for key, value in attributes.items():
            feature[key] = value
        provider.addFeature(feature)
    layer.updateExtents()
    return layer


@pytest.mark.parametrize("case, message", [
    ("empty", "The samples layer 'empty samples' is empty"),
    ("text_only", "has no numeric fields"),
    ("no_units", "no numeric fields whose names end in _ppm, _ppb, _pct"),
    ("lines", "choose a point layer"),
    ("no_selection", "has no selected features, and 'Selected features only' is ticked"),
])
def test_bad_layers_are_named_in_the_message(case, message, qgis_app, tmp_path, samples_layer):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeatureSourceDefinition

    layers = {
        "empty": lambda: _memory_layer("Point?crs=EPSG:28350&field=Au_ppb:double", "empty samples"),
        "text_only": lambda: _memory_layer("Point?crs=EPSG:28350&field=name:string", "labels",
                                           [("Point(400000 6400000)", {"name": "a"})]),
        "no_units": lambda: _memory_layer("Point?crs=EPSG:28350&field=gold:double", "unitless",
                                          [("Point(400000 6400000)", {"gold": 1.0})]),
        "lines": lambda: _memory_layer("LineString?crs=EPSG:28350&field=Au_ppb:double", "traverses",
                                       [("LineString(400000 6400000, 401000 6401000)", {"Au_ppb": 1.0})]),
    }
    if case == "no_selection":
        samples_layer.removeSelection()
        samples = QgsProcessingFeatureSourceDefinition(samples_layer.source(), True)
        from qgis.core import QgsProject

        QgsProject.instance().addMapLayer(samples_layer, False)
        samples = QgsProcessingFeatureSourceDefinition(samples_layer.id(), True)
    else:
        samples = layers[case]()
    with pytest.raises(QgsProcessingException) as caught:
        processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples, "METHOD": 0,
                                                           "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert message in str(caught.value), str(caught.value)
    assert not (tmp_path / "out").exists()


def test_selected_features_only_runs_on_the_selection(samples_layer, tmp_path, qgis_app):
    import processing
    from qgis.core import QgsProcessingFeatureSourceDefinition, QgsProject

    QgsProject.instance().addMapLayer(samples_layer, False)
    ids = [f.id() for f in samples_layer.getFeatures()][:400]
    samples_layer.selectByIds(ids)
    try:
        results = processing.run("geoanomaly:samples_to_anomalies", {
            "SAMPLES": QgsProcessingFeatureSourceDefinition(samples_layer.id(), True),
            "ELEMENTS": FAST_ELEMENTS, "METHOD": 0, "OUTPUT_FOLDER": str(tmp_path / "sel")})
    finally:
        samples_layer.removeSelection()
    assert len(read_scores_layer(results["SCORES"])) == 400
    assert results["AUC"] is None


def test_engine_failure_message_reaches_processing(samples_layer, tmp_path, qgis_app):
    """Elements that exist but are never assayed: the engine's own one-line message, no traceback."""
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as caught:
        processing.run("geoanomaly:samples_to_anomalies", {
            "SAMPLES": samples_layer, "ELEMENTS": ["Al_ppm", "B_ppm"], "METHOD": 0,
            "OUTPUT_FOLDER": str(tmp_path / "out")})
    text = str(caught.value)
    assert "Traceback" not in text and "internal error" not in text, text
    assert "Al" in text or "element" in text.lower(), text
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif("grid" not in engine_commands(), reason="the engine's grid command is not in this tree yet")
def test_grid_samples_to_raster(samples_layer, tmp_path, qgis_app):
    import processing

    results = processing.run("geoanomaly:grid_samples", {
        "SAMPLES": samples_layer, "ELEMENTS": ["Au_ppm", "As_ppm"], "CELL": 2000,
        "OUTPUT_FOLDER": str(tmp_path / "grid")})
    grid = raster_summary(results["GRID"])
    assert grid["bands"] == 2 and not grid["crs"].isGeographic()
    assert 0 < grid["valid"] < grid["cells"]
    # QGIS shows a GeoTIFF band's description in its band name ("Band 1: Au_ppm").
    assert all(name in label for name, label in zip(["Au_ppm", "As_ppm"], grid["band_names"])), grid["band_names"]


@pytest.mark.skipif("grid" not in engine_commands(), reason="the engine's grid command is not in this tree yet")
def test_grid_for_a_commodity_keeps_its_suite(samples_layer, tmp_path, qgis_app):
    """No fields chosen, commodity Au: the engine's elements, with the Au suite kept, as concentrations."""
    import processing
    from qgis.core import QgsProject

    from core.preprocess.elements import PATHFINDERS

    au = list(PATHFINDERS).index("Au") + 1
    try:
        results = processing.run("geoanomaly:grid_samples", {
            "COMMODITY": au, "SAMPLES": samples_layer, "CELL": 4000, "OUTPUT_FOLDER": str(tmp_path / "grid")})
    finally:
        QgsProject.instance().removeEntry("GeoAnomaly", "commodity")
    run = json.loads((tmp_path / "grid" / "run.json").read_text())
    options = run["parameters"]
    assert options["commodity"] == "Au" and options["transform"] == "none", options
    grid = raster_summary(results["GRID"])
    assert any("Au" in label for label in grid["band_names"]), grid["band_names"]
    assert grid["min"] >= 0, "concentrations, not log-ratios"


@pytest.mark.skipif("evaluate" not in engine_commands(), reason="the engine's evaluate command is not in this tree yet")
def test_evaluate_against_deposits(detect_run, deposits_layer, tmp_path, qgis_app):
    import processing
    from qgis.core import QgsVectorLayer

    scores = QgsVectorLayer(detect_run["results"]["SCORES"], "scores", "ogr")
    results = processing.run("geoanomaly:evaluate_against_deposits", {
        "SCORES": scores, "SCORE_FIELD": "anomaly_score", "DEPOSITS": deposits_layer,
        "OUTPUT_FOLDER": str(tmp_path / "eval")})
    assert Path(results["EVALUATION"]).is_file() and Path(results["SUCCESS_RATE_PLOT"]).is_file()
    assert results["AUC"] == pytest.approx(detect_run["results"]["AUC"], abs=0.05)


@pytest.mark.slow
def test_transformer_small_run(samples_layer, tmp_path, qgis_app):
    if "transformer" not in engine_detectors():
        pytest.skip("the engine's transformer detector is not in this tree yet")
    import processing

    feedback = RecordingFeedback()
    results = processing.run("geoanomaly:samples_to_anomalies", {
        "SAMPLES": samples_layer, "ELEMENTS": FAST_ELEMENTS, "METHOD": 5, "GENERATIONS": 1, "ENSEMBLE": 2,
        "EPOCHS": 1, "NEIGHBOURS": 8, "DEVICE": 1, "OUTPUT_FOLDER": str(tmp_path / "tf")}, feedback=feedback)
    assert len(read_scores_layer(results["SCORES"])) == 1392
    assert raster_summary(results["ANOMALY_RASTER"])["valid"] > 0
    assert any("cpu" in line for line in feedback.infos), "the device is named in the log"
    assert any("2 models" in line for line in feedback.infos), "the ensemble option reaches the engine"


def test_algorithm_runs_inside_a_model(samples_layer, tmp_path, qgis_app):
    """The graphical modeller's way: the algorithm as a child of a model, fed by a model input."""
    import processing
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
    )

    model = QgsProcessingModelAlgorithm("Anomalies from samples", "GeoAnomaly tests")
    model.addModelParameter(QgsProcessingParameterFeatureSource("samples", "Samples", [QgsProcessing.TypeVectorPoint]),
                            QgsProcessingModelParameter("samples"))
    child = QgsProcessingModelChildAlgorithm("geoanomaly:samples_to_anomalies")
    child.setChildId("detect")
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    child.addParameterSources("SAMPLES", [QgsProcessingModelChildParameterSource.fromModelParameter("samples")])
    child.addParameterSources("METHOD", [static(0)])
    child.addParameterSources("TRANSFORM", [static(0)])  # the modeller fills in each default like this
    child.addParameterSources("DEVICE", [static(1)])
    child.addParameterSources("COMPARE", [static(True)])
    child.addParameterSources("ELEMENTS", [static(FAST_ELEMENTS)])
    child.addParameterSources("OUTPUT_FOLDER", [static(str(tmp_path / "model_run"))])
    model.addChildAlgorithm(child)
    ok, errors = model.validate()
    assert ok, errors
    processing.run(model, {"samples": samples_layer})
    assert len(read_scores_layer(f"{tmp_path / 'model_run' / 'scores.gpkg'}|layername=scores")) == 1392
    assert raster_summary(str(tmp_path / "model_run" / "anomaly_score.tif"))["valid"] > 0


def test_saved_model_scores_new_samples_like_the_training_run(detect_run, samples_layer, tmp_path, qgis_app):
    """A selection of the same survey scored with the saved model gets the scores of the training run."""
    import processing
    from qgis.core import (
        QgsApplication,
        QgsProcessingException,
        QgsProcessingFeatureSourceDefinition,
        QgsProject,
    )

    model = detect_run["out"] / "model"
    # The dialog opens with the model of the run the geologist just made (the newest detect run group).
    dialog = QgsApplication.processingRegistry().algorithmById("geoanomaly:score_new_samples").create()
    dialog.initAlgorithm()
    assert Path(dialog.parameterDefinition("MODEL").defaultValue()) == model
    QgsProject.instance().addMapLayer(samples_layer, False)
    samples_layer.selectByIds([f.id() for f in samples_layer.getFeatures()][:300])
    try:
        results = processing.run("geoanomaly:score_new_samples", {
            "SAMPLES": QgsProcessingFeatureSourceDefinition(samples_layer.id(), True), "MODEL": str(model),
            "OUTPUT_FOLDER": str(tmp_path / "scored")})
    finally:
        samples_layer.removeSelection()
    new = read_scores_layer(results["SCORES"])
    trained = read_scores_layer(detect_run["results"]["SCORES"])
    assert len(new) == 300
    assert all(new[row] == pytest.approx(trained[row], rel=1e-6) for row in new)
    with pytest.raises(QgsProcessingException, match="does not exist or is empty"):
        processing.run("geoanomaly:score_new_samples", {
            "SAMPLES": samples_layer, "MODEL": str(tmp_path / "no-model"), "OUTPUT_FOLDER": str(tmp_path / "x")})


def test_interpreter_without_the_engine_gives_install_instructions(samples_layer, tmp_path, qgis_app):
    """A Python chosen in the settings that lacks the engine: a message saying what to do, no traceback."""
    import sys

    import processing
    from qgis.core import QgsProcessingException

    from geoanomaly_qgis import settings

    bare = Path(sys.base_prefix) / "bin" / "python3"
    if not bare.is_file():
        pytest.skip("no system python3")
    settings.set_configured_python(str(bare))
    try:
        with pytest.raises(QgsProcessingException) as caught:
            processing.run("geoanomaly:samples_to_anomalies", {
                "SAMPLES": samples_layer, "ELEMENTS": FAST_ELEMENTS, "METHOD": 0,
                "OUTPUT_FOLDER": str(tmp_path / "out")})
    finally:
        settings.set_configured_python("")
    text = str(caught.value)
    assert f"the interpreter {bare} does not have the GeoAnomaly engine installed" in text
    assert "pip install" in text and "Traceback" not in text


@pytest.mark.skipif("evaluate" not in engine_commands(), reason="the engine's evaluate command is not in this tree yet")
def test_evaluate_a_score_raster(detect_run, deposits_layer, tmp_path, qgis_app):
    """The anomaly raster itself (cell-level AUC); deposits in lon/lat are reprojected to the raster's UTM zone."""
    import processing
    from qgis.core import QgsProcessingException, QgsRasterLayer

    raster = QgsRasterLayer(detect_run["results"]["ANOMALY_RASTER"], "anomaly")
    feedback = RecordingFeedback()
    results = processing.run("geoanomaly:evaluate_against_deposits", {
        "SCORE_RASTER": raster, "DEPOSITS": deposits_layer, "OUTPUT_FOLDER": str(tmp_path / "eval")},
        feedback=feedback)
    assert 0.5 < results["AUC"] <= 1.0
    assert any("reprojected to EPSG:32750, the CRS of the score raster" in line for line in feedback.infos), feedback.infos
    with pytest.raises(QgsProcessingException, match="either scored samples"):
        processing.run("geoanomaly:evaluate_against_deposits", {
            "DEPOSITS": deposits_layer, "OUTPUT_FOLDER": str(tmp_path / "none")})


# Words that belong in run.json and the README, not in what a geologist reads in QGIS.
JARGON = ["20-run protocol", "teacher", "student", "alpha 0", "readout:", "baseline:", "KL divergence",
          "cross-entropy", "python -m core", "--debug", "AUC protocol"]


def test_dialogs_and_help_use_plain_words(qgis_app):
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("geoanomaly")
    for alg in provider.algorithms():
        texts = [alg.displayName(), alg.shortHelpString(), alg.shortDescription()]
        for definition in alg.parameterDefinitions():
            texts += [definition.description(), definition.help()]
            texts += list(getattr(definition, "options", lambda: [])() or [])
        texts += [output.description() for output in alg.outputDefinitions()]
        for text in texts:
            found = [word for word in JARGON if word.lower() in (text or "").lower()]
            assert not found, (alg.id(), found, text)


def test_the_run_log_uses_plain_words(detect_run):
    log = "\n".join(detect_run["feedback"].infos)
    found = [word for word in JARGON if word.lower() in log.lower()]
    assert not found, (found, log[-3000:])


def test_samples_and_deposits_are_prefilled_with_the_layers_they_look_like(qgis_app):
    from qgis.core import QgsApplication, QgsProject, QgsVectorLayer

    project = QgsProject.instance()
    added = [QgsVectorLayer("Point?crs=EPSG:4283", name, "memory")
             for name in ("Known deposits", "Scored samples (pca)", "stream sediments")]
    project.addMapLayers(added)
    try:
        algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoanomaly:samples_to_anomalies")
        # Other tests' sample layers may come first; never the deposits nor a run's output.
        samples = algorithm.parameterDefinition("SAMPLES").defaultValue()
        assert samples is not None and samples not in (added[0].id(), added[1].id())
        cycle = QgsApplication.processingRegistry().createAlgorithmById("geoanomaly:prospectivity_active_learning")
        assert cycle.parameterDefinition("DEPOSITS").defaultValue() == added[0].id()
    finally:
        project.removeMapLayers([layer.id() for layer in added])
