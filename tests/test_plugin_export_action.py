"""The toolbar's one-click "Export prospectivity map (current run)" in a real, headless QGIS.

Two prospectivity runs are loaded into the project as the algorithm dialog
loads them (``processing.runAndLoadResults``: styled layers in one group per
run, the run folder on the group); the current run is the newest one, or the
run of the selected layer, and its map lands in its folder as PDF and PNG.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.plugin_fixtures import csv_points_uri, qgis_app, requires_qgis  # noqa: F401 - qgis_app: fixture
from tests.test_plugin_prospectivity import CYCLE, survey  # noqa: F401 - survey: the synthetic stack, a fixture

pytestmark = [requires_qgis, pytest.mark.qgis]


@pytest.fixture(scope="module")
def loaded_runs(qgis_app, survey, tmp_path_factory):  # noqa: F811
    """Deposits + two prospectivity runs in the current project, loaded as the dialog loads them."""
    import processing
    from qgis.core import QgsProject, QgsVectorLayer

    project = QgsProject.instance()
    root = project.layerTreeRoot()
    before = list(root.children())
    deposits = QgsVectorLayer(csv_points_uri(survey / "deposits.csv", "Easting", "Northing", "EPSG:32750"),
                              "deposits", "delimitedtext")
    assert deposits.isValid()
    project.addMapLayer(deposits)
    outs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp("export_action") / name
        processing.runAndLoadResults(CYCLE, {
            "EVIDENCE": [str(survey / "anomaly_score.tif"), str(survey / "pathfinder.tif")],
            "DEPOSITS": deposits, "K": 3, "CYCLES": 0, "FOLDS": 0, "DEVICE": 1, "OUTPUT_FOLDER": str(out)})
        outs.append(out)
    yield {"project": project, "first": outs[0], "second": outs[1], "deposits": deposits}
    # Leave the shared project as it was for the tests that come after.
    for node in [n for n in root.children() if n not in before]:
        ids = [child.layerId() for child in node.findLayers()] if hasattr(node, "findLayers") else [node.layerId()]
        root.removeChildNode(node)
        project.removeMapLayers(ids)


def _run_group_layers(project, out_dir):
    """The layers of the run group whose recorded output folder is ``out_dir``."""
    from geoanomaly_qgis.processing.results import RUN_PROPERTY

    for group in project.layerTreeRoot().findGroups(True):
        record = json.loads(group.customProperty(RUN_PROPERTY) or "{}")
        if record.get("out_dir") == str(out_dir):
            return [node.layer() for node in group.findLayers()]
    raise AssertionError(f"no run group for {out_dir}")


def test_without_a_prospectivity_run_it_says_so(qgis_app, tmp_path):  # noqa: F811
    from qgis.core import QgsProject, QgsVectorLayer

    from geoanomaly_qgis.current_run import NO_RUN, export_current_run, find_current_prospectivity_run
    from geoanomaly_qgis.processing.results import RUN_PROPERTY

    project = QgsProject()
    assert find_current_prospectivity_run(project) is None
    # A detect run's group is not a prospectivity run, even with one of its layers selected.
    group = project.layerTreeRoot().addGroup("GeoAnomaly mahalanobis 2026-11-23 14:05:09")
    group.setCustomProperty(RUN_PROPERTY, json.dumps({"command": ["detect", "--method", "mahalanobis"],
                                                      "out_dir": str(tmp_path)}))
    points = QgsVectorLayer("Point?crs=EPSG:32750", "scored points", "memory")
    project.addMapLayer(points, False)
    group.addLayer(points)
    assert find_current_prospectivity_run(project, points) is None
    outcome = export_current_run(None, project=project)
    assert outcome.status == NO_RUN and outcome.pdf is None and outcome.png is None
    assert "No prospectivity run" in outcome.message and "Prospectivity (active learning)" in outcome.message
    assert not list(tmp_path.iterdir())


def test_the_current_run_is_the_newest_or_the_selected_layers(loaded_runs):
    from geoanomaly_qgis.current_run import find_current_prospectivity_run

    project, first, second = loaded_runs["project"], loaded_runs["first"], loaded_runs["second"]
    assert find_current_prospectivity_run(project) == second
    first_layers = _run_group_layers(project, first)
    assert len(first_layers) == 4  # the run's deposits, query points, prospectivity, classes
    for layer in first_layers:
        assert find_current_prospectivity_run(project, layer) == first, layer.name()
    # A layer outside any run group (the deposits) leaves the newest run current.
    assert find_current_prospectivity_run(project, loaded_runs["deposits"]) == second


def test_one_click_writes_the_runs_pdf_and_png_map(loaded_runs):
    from qgis.PyQt.QtGui import QImage

    from geoanomaly_qgis.current_run import EXPORTED, export_current_run, outcome_html

    project, first, second = loaded_runs["project"], loaded_runs["first"], loaded_runs["second"]
    outcome = export_current_run(None, project=project, dpi=80)
    assert outcome.status == EXPORTED, outcome.message
    assert (outcome.run_dir, outcome.pdf, outcome.png) == (
        second, second / "prospectivity_map.pdf", second / "prospectivity_map.png")
    assert "deposits" in (outcome.deposits or "")  # the project's deposits layer, named in qgis_run.json
    assert outcome.pdf.stat().st_size > 20_000 and outcome.png.stat().st_size > 20_000
    html = outcome_html(outcome)
    assert f'href="file://{outcome.pdf}"' in html and f'href="file://{outcome.png}"' in html

    text = subprocess.run(["pdftotext", "-layout", str(outcome.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    for words in ("Mineral prospectivity", "Known deposits", "Prospectivity (0-1)", "CRS: EPSG:32750",
                  "Run: geoanomaly prospectivity, cycle 1", "places proposed per cycle: 3"):
        assert words in text, words
    page = second / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "30", "-singlefile", str(outcome.pdf), str(page)], check=True)
    for image_path in (page.with_suffix(".png"), outcome.png):
        image = QImage(str(image_path))
        assert not image.isNull() and image.width() > image.height()  # A4 landscape
        step = max(1, image.width() // 120)
        samples = [image.pixelColor(x, y) for x in range(0, image.width(), step)
                   for y in range(0, image.height(), step)]
        assert sum(c.lightness() < 240 for c in samples) / len(samples) > 0.15, image_path
        assert sum(c.red() > 150 and c.blue() < 80 and c.green() < 120 for c in samples) / len(samples) > 0.005
    page.with_suffix(".png").unlink()

    # With a layer of the older run selected, that run's map is written into its own folder.
    selected = _run_group_layers(project, first)[0]
    older = export_current_run(None, project=project, selected_layer=selected, dpi=50)
    assert older.status == EXPORTED and older.pdf == first / "prospectivity_map.pdf" and older.png.is_file()


def test_deposits_fall_back_to_the_ones_the_run_kept(loaded_runs, tmp_path):
    """When the original deposits layer is gone, the map shows the deposits from the run's labels.gpkg."""
    from geoanomaly_qgis.current_run import EXPORTED, export_run_map, run_deposits

    run = tmp_path / "copied_run"
    shutil.copytree(loaded_runs["first"], run)
    record = json.loads((run / "qgis_run.json").read_text())
    record["layers"]["DEPOSITS"]["source"] = str(tmp_path / "moved_away.csv")
    (run / "qgis_run.json").write_text(json.dumps(record))
    layer, origin = run_deposits(run, project=None)
    assert layer is not None and "labels.gpkg" in origin and layer.featureCount() == 8
    outcome = export_run_map(run, dpi=40)
    assert outcome.status == EXPORTED and outcome.pdf.stat().st_size > 10_000
    text = subprocess.run(["pdftotext", str(outcome.pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Known deposits" in text


def test_printed_run_notes_are_in_plain_words(qgis_app, tmp_path):  # noqa: F811
    from geoanomaly_qgis.map_export import run_parameters_text

    record = {"command": "prospectivity", "cycle": 2, "parameters": {
        "evidence": ["/runs/a/anomaly_score.tif"], "cycles": 1, "k": 5, "soft_loss": "kl", "temperature": 2.0,
        "hidden": 32, "normalise": "robust", "classes": "area", "class_shares": "5,15,30", "folds": 5, "seed": 0}}
    (tmp_path / "run.json").write_text(json.dumps(record), encoding="utf-8")
    text = run_parameters_text(tmp_path / "run.json")
    assert "evidence: anomaly_score.tif" in text and "places proposed per cycle: 5" in text
    assert "classes from: area shares" in text
    for technical in ("soft loss", "temperature", "hidden", "normalise", "kl"):
        assert technical not in text, technical
