"""Outputs that last: default folders outside QGIS's temporary folder, checked before the engine starts,
and an earlier run never replaced without being asked (a real headless QGIS, the real engine)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.plugin_fixtures import (  # noqa: F401 - fixtures
    ENGINE_PYTHON,
    fixture_qgis_app,
    fixture_samples_layer,
    requires_data,
    requires_qgis,
)

pytestmark = [requires_qgis, requires_data,
              pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}")]

QUICK = {"METHOD": 0, "ELEMENTS": ["Au_ppm", "As_ppm", "Cu_ppm"]}


def test_default_output_folders_last_beyond_qgis(qgis_app, tmp_path):
    """Not QGIS's temporary folder: GeoAnomaly in the Documents, or beside a saved project; a new one each time."""
    from qgis.core import QgsApplication, QgsProcessingUtils, QgsProject

    registry = QgsApplication.processingRegistry()
    temporary = Path(QgsProcessingUtils.tempFolder()).parent
    for algorithm_id in ("geoanomaly:samples_to_anomalies", "geoanomaly:grid_samples",
                         "geoanomaly:export_prospectivity_map"):
        algorithm = registry.createAlgorithmById(algorithm_id)
        for definition in algorithm.destinationParameterDefinitions():
            default = Path(str(definition.defaultValue()))
            assert default.parent.name == "GeoAnomaly", (algorithm_id, default)
            assert temporary not in default.parents, (algorithm_id, default)
            assert not default.exists()  # nothing made until a run starts
    project = QgsProject.instance()
    project.setFileName(str(tmp_path / "survey.qgz"))
    try:
        algorithm = registry.createAlgorithmById("geoanomaly:samples_to_anomalies")
        default = Path(algorithm.parameterDefinition("OUTPUT_FOLDER").defaultValue())
        assert default.parent == tmp_path / "GeoAnomaly"
    finally:
        project.setFileName("")


@pytest.mark.parametrize("case", ["read-only folder", "a file in the way", "system folder"])
def test_an_output_folder_that_cannot_be_written_stops_before_the_engine(qgis_app, samples_layer, tmp_path,
                                                                         case):
    import processing
    from qgis.core import QgsProcessingException

    if case == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        out = locked / "run"
    elif case == "a file in the way":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        out = Path("/proc/geoanomaly_out")  # refused even to root
    with pytest.raises(QgsProcessingException) as caught:
        processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples_layer, **QUICK,
                                                           "OUTPUT_FOLDER": str(out)})
    message = str(caught.value).splitlines()[-1]  # processing.run puts "Unable to execute algorithm" first
    assert "internal error" not in str(caught.value) and "Traceback" not in str(caught.value), caught.value
    assert "cannot" in message.lower() or "not a folder" in message.lower(), message
    assert not out.exists()


def test_an_earlier_run_is_refused_then_replaced_when_asked(qgis_app, samples_layer, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    out = tmp_path / "run"
    processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples_layer, **QUICK, "OUTPUT_FOLDER": str(out)})
    first = (out / "run.json").read_bytes()
    with pytest.raises(QgsProcessingException) as caught:
        processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples_layer, **QUICK, "METHOD": 1,
                                                           "OUTPUT_FOLDER": str(out)})
    assert "holds an earlier run" in str(caught.value) and "Replace an earlier run" in str(caught.value)
    assert (out / "run.json").read_bytes() == first
    processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples_layer, **QUICK, "METHOD": 1,
                                                       "OVERWRITE": True, "OUTPUT_FOLDER": str(out)})
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["overwrite"] is True and record["parameters"]["method"] != "mahalanobis"


def test_an_engine_failure_reaches_the_user_as_a_dialog_with_the_log(qgis_app, samples_layer, tmp_path):
    """Elements never assayed: the engine's one line in a message box, the run's log behind 'Show Details'."""
    import processing
    from qgis.core import QgsProcessingException
    from qgis.PyQt.QtWidgets import QDialog, QTextEdit, QVBoxLayout

    from geoanomaly_qgis.plugin import GeoAnomalyPlugin

    with pytest.raises(QgsProcessingException) as caught:
        processing.run("geoanomaly:samples_to_anomalies", {"SAMPLES": samples_layer, "ELEMENTS": ["Al_ppm", "B_ppm"],
                                                           "METHOD": 0, "OUTPUT_FOLDER": str(tmp_path / "out")})
    engine_line = str(caught.value).splitlines()[-1]
    # Stands in for Processing's algorithm dialog: the same log widget name (txtLog), real widgets.
    dialog = QDialog()
    log = QTextEdit(dialog)
    log.setObjectName("txtLog")
    log.setPlainText("Engine interpreter: ...\n" + engine_line)
    QVBoxLayout(dialog).addWidget(log)
    plugin = GeoAnomalyPlugin(iface=None)
    box = plugin.report_engine_failure(dialog, "geoanomaly:samples_to_anomalies", False)
    assert box is not None and box.isVisible()
    assert box.text().lower() == engine_line.lower() and "internal error" not in box.text()
    assert engine_line in box.detailedText()
    # Shown once: a later success or Cancel of the same tool does not bring it back.
    assert plugin.report_engine_failure(dialog, "geoanomaly:samples_to_anomalies", False) is None
    box.close()
    dialog.deleteLater()
