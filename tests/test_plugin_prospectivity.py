"""The prospectivity algorithms in a real, headless QGIS: a KDAL cycle, label edits, the exported map.

The synthetic evidence rasters are written by the engine's Python in a
subprocess (rasterio must not be imported into a QGIS process).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.plugin_fixtures import (
    ENGINE_PYTHON,
    REPO,
    csv_points_uri,
    qgis_app,  # noqa: F401 - fixture
    requires_qgis,
)

pytestmark = [requires_qgis, pytest.mark.qgis]

CYCLE = "geoanomaly:prospectivity_active_learning"
EXPORT = "geoanomaly:export_prospectivity_map"


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prospectivity_survey")
    script = ("import sys; from pathlib import Path; "
              "from tests.prospectivity_fixtures import write_stack, write_deposits; "
              "f = Path(sys.argv[1]); write_stack(f); write_deposits(f / 'deposits.csv')")
    subprocess.run([str(ENGINE_PYTHON), "-c", script, str(folder)], cwd=REPO, check=True)
    return folder


@pytest.fixture(scope="module")
def deposits(qgis_app, survey):  # noqa: F811
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(csv_points_uri(survey / "deposits.csv", "Easting", "Northing", "EPSG:32750"),
                           "deposits", "delimitedtext")
    assert layer.isValid() and layer.featureCount() == 8
    return layer


def _run(algorithm: str, parameters: dict) -> dict:
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return processing.run(algorithm, parameters, context=context, feedback=QgsProcessingFeedback())


def _cycle(survey, deposits, out, **extra) -> dict:
    parameters = {"EVIDENCE": [str(survey / "anomaly_score.tif"), str(survey / "pathfinder.tif")],
                  "DEPOSITS": deposits, "K": 3, "CYCLES": 0, "FOLDS": 0, "OUTPUT_FOLDER": str(out)}
    parameters.update(extra)
    return _run(CYCLE, parameters)


@pytest.fixture(scope="module")
def first_cycle(survey, deposits, tmp_path_factory):
    out = tmp_path_factory.mktemp("cycle") / "cycle1"
    return out, _cycle(survey, deposits, out)


def test_a_cycle_gives_query_points_with_an_editable_label_field_and_the_next_cycle_reads_the_edits(
        survey, deposits, first_cycle, tmp_path):
    from qgis.core import QgsProcessingException, QgsVectorDataProvider, QgsVectorLayer

    out, result = first_cycle
    assert result["PROSPECTIVITY"] == str(out / "prospectivity.tif")
    assert 0.0 <= result["TOP10"] <= 1.0
    page = (out / "figures.html").read_text()
    assert result["FIGURES"] == str(out / "figures.html")
    assert "evidence alone" in page and "success_rate.png" in page  # FOLDS 0: no baselines, no CV
    queries = QgsVectorLayer(result["QUERIES"], "queries", "ogr")
    assert queries.isValid() and queries.featureCount() == 3
    label = queries.fields().indexOf("label")
    assert label >= 0
    assert queries.dataProvider().capabilities() & QgsVectorDataProvider.ChangeAttributeValues
    features = list(queries.getFeatures())
    assert all(f["label"] is None or f["label"] != f["label"] or str(f["label"]) == "NULL" for f in features)

    # Unsaved edits are refused with a message, not silently ignored.
    assert queries.startEditing()
    queries.changeAttributeValue(features[0].id(), label, 1)
    with pytest.raises(QgsProcessingException, match="unsaved edits"):
        _cycle(survey, deposits, tmp_path / "refused", LABELS=queries)
    queries.changeAttributeValue(features[1].id(), label, 0)
    assert queries.commitChanges()

    second = tmp_path / "cycle2"
    result = _cycle(survey, deposits, second, LABELS=queries, LABEL_FIELD="label")
    pool = QgsVectorLayer(f"{second / 'labels.gpkg'}|layername=labels", "labels", "ogr")
    assert pool.isValid()
    geologist = sorted(f["label"] for f in pool.getFeatures() if f["source"] == "geologist")
    assert geologist == [0, 1]
    assert sum(1 for f in pool.getFeatures() if f["source"] == "deposit") == 8
    assert json.loads((second / "kdal_state.json").read_text())["cycle"] == 2
    assert QgsVectorLayer(result["QUERIES"], "next", "ogr").featureCount() == 3


def test_the_exported_map_pdf_and_png_render_with_the_layout_items(first_cycle, deposits, tmp_path):
    from qgis.PyQt.QtGui import QImage

    out, _ = first_cycle
    pdf, png = tmp_path / "map.pdf", tmp_path / "map.png"
    result = _run(EXPORT, {"PROSPECTIVITY": str(out / "prospectivity.tif"), "DEPOSITS": deposits,
                           "TITLE": "Synthetic prospectivity", "DPI": 100,
                           "OUTPUT_PDF": str(pdf), "OUTPUT_PNG": str(png)})
    assert set(result["LAYOUT_ITEMS"].split(",")) == {"map", "title", "legend", "scalebar", "north_arrow", "crs",
                                                       "parameters"}
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for words in ("Synthetic prospectivity", "Legend", "Known deposits", "Prospectivity (0-1)",
                  "CRS: EPSG:32750", "km", "Run: geoanomaly prospectivity, cycle 1", "places proposed per cycle: 3"):
        assert words in text, words
    assert "Band 1" not in text  # the legend shows the ramp, not the band name
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    for image_path in (tmp_path / "page.png", png):
        image = QImage(str(image_path))
        assert not image.isNull() and image.width() > image.height()  # A4 landscape
        step = 4
        inked = reddish = total = 0
        for x in range(0, image.width(), step):
            for y in range(0, image.height(), step):
                colour = image.pixelColor(x, y)
                total += 1
                inked += colour.lightness() < 240
                reddish += colour.red() > 150 and colour.blue() < 80 and colour.green() < 120
        assert inked / total > 0.15, image_path  # the map is drawn, not an empty frame
        assert reddish / total > 0.005, image_path  # the prospective zone shows in dark orange-red


def test_a_commodity_detect_run_in_the_project_is_the_default_evidence_and_is_gridded_from_its_samples(
        qgis_app, tmp_path):  # noqa: F811
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

    script = ("import sys; from pathlib import Path; import geopandas as gpd; from core.cli import main; "
              "from tests.synthetic import synthetic_survey; f = Path(sys.argv[1]); "
              "frame, planted = synthetic_survey(n=100, seed=3); "
              "gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.X, frame.Y), crs='EPSG:32750')"
              ".to_file(f / 'samples.gpkg', driver='GPKG'); "
              "frame.loc[planted, ['X', 'Y']].to_csv(f / 'deposits.csv', index=False); "
              "sys.exit(main(['detect', '--method', 'mahalanobis', '--commodity', 'Au', '--samples', "
              "str(f / 'samples.gpkg'), '--out', str(f / 'run_au'), '--progress', 'none']))")
    subprocess.run([str(ENGINE_PYTHON), "-c", script, str(tmp_path)], cwd=REPO, check=True)
    run_map = QgsRasterLayer(str(tmp_path / "run_au" / "anomaly_score.tif"), "Anomaly score (mahalanobis)")
    assert run_map.isValid()
    deposits = QgsVectorLayer(csv_points_uri(tmp_path / "deposits.csv", "X", "Y", "EPSG:32750"), "deposits",
                              "delimitedtext")
    QgsProject.instance().addMapLayers([run_map, deposits])
    try:
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(CYCLE)
        assert algorithm.parameterDefinition("EVIDENCE").defaultValue() == [run_map.id()]
        out = tmp_path / "pros"
        _run(CYCLE, {"EVIDENCE": [run_map], "DEPOSITS": deposits, "K": 2, "CYCLES": 0, "FOLDS": 0,
                     "OUTPUT_FOLDER": str(out)})
        record = json.loads((out / "run.json").read_text())
        assert record["parameters"]["evidence"] == [str(tmp_path / "run_au")]
    finally:
        QgsProject.instance().removeMapLayers([run_map.id(), deposits.id()])
