"""Startup script: from a fresh profile with the plugin zip installed to the first styled anomaly map.

``qgis --code resources/tools/qgis_first_map.py`` (under Xvfb; driven by
``resources/tools/first_map_timing.py``). What a new user does, step by step,
with a screenshot of each: GeoAnomaly > Settings > Install engine (the real
install: a new environment, pip from the configured index), then "Samples ->
anomalies" from the toolbar on the bundled survey with its deposits, into the
default output folder. Writes ``first_map.json`` with the time of each step.

Keep this file ASCII (QGIS reads it with the locale's encoding).

Environment: ``GEOANOMALY_FIRST_MAP_OUT`` (report and screenshots),
``GEOANOMALY_FIRST_MAP_DATA`` (folder with samples.csv and deposits.csv),
``GEOANOMALY_FIRST_MAP_TORCH`` (the "torch for Install engine" setting, default auto),
``GEOANOMALY_FIRST_MAP_TIMEOUT`` (seconds, default 3000).
"""

import json
import os
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QAction, QApplication, QDockWidget
from qgis.utils import iface, plugins

OUT = Path(os.environ["GEOANOMALY_FIRST_MAP_OUT"])
DATA = Path(os.environ["GEOANOMALY_FIRST_MAP_DATA"])
STARTED = time.monotonic()
report = {"steps": {}, "screenshots": []}
state = {}


def now():
    return round(time.monotonic() - STARTED, 1)


def finish(code):
    report["total_seconds_in_qgis"] = now()
    (OUT / "first_map.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    os._exit(code)


def shot(widget, name):
    QApplication.processEvents()
    path = OUT / name
    if widget.grab().save(str(path)):
        report["screenshots"].append(name)


def guarded(step):
    def wrapper(*args):
        try:
            step(*args)
        except Exception:  # noqa: BLE001 - never hang: record and leave
            report["error"] = traceback.format_exc()
            finish(1)
    return wrapper


@guarded
def open_settings():
    QgsSettings().setValue("/projections/promptWhenMultipleTransformsExist", False, QgsSettings.App)
    iface.mainWindow().resize(1600, 1000)
    report["steps"]["qgis_ready"] = now()
    from geoanomaly_qgis.settings import SettingsDialog, set_torch_source

    set_torch_source(os.environ.get("GEOANOMALY_FIRST_MAP_TORCH", "auto"))
    settings = SettingsDialog(iface.mainWindow())
    settings.show()
    state["settings"] = settings
    shot(settings, "first_1_settings_before_install.png")
    report["install_button"] = settings.panel.install_button.text()
    settings.panel.install_button.click()
    state["install"] = settings.panel.install_dialog
    report["steps"]["install_pressed"] = now()
    QTimer.singleShot(8000, lambda: shot(state["install"], "first_2_install_running.png"))
    poll = QTimer()
    poll.timeout.connect(wait_for_install)
    poll.start(1000)
    state["poll"] = poll


@guarded
def wait_for_install():
    dialog = state["install"]
    if dialog.ok is None:
        return
    state["poll"].stop()
    report["steps"]["install_done"] = now()
    report["install_ok"] = dialog.ok
    report["install_message"] = dialog.message
    report["torch_note"] = [note for note in dialog.plan.notes if note.startswith("torch")]
    shot(dialog, "first_3_install_done.png")
    if not dialog.ok:
        report["install_log_tail"] = dialog.output.toPlainText()[-3000:]
        finish(1)
    dialog.close()
    shot(state["settings"], "first_4_settings_after_install.png")
    state["settings"].accept()
    QTimer.singleShot(500, run_first_map)


def csv_layer(name, title):
    uri = f"{(DATA / name).as_uri()}?type=csv&detectTypes=yes&xField=X&yField=Y&crs=EPSG:4283&geomType=point"
    return QgsVectorLayer(uri, title, "delimitedtext")


@guarded
def run_first_map():
    project = QgsProject.instance()
    samples = csv_layer("samples.csv", "Stream sediment samples")
    deposits = csv_layer("deposits.csv", "Known Au deposits")
    project.addMapLayers([samples, deposits])
    plugin = plugins["geoanomaly_qgis"]
    iface.mainWindow().findChild(QAction, "geoanomaly_samples_to_anomalies").trigger()
    dialog = plugin._dialogs[-1]
    dialog.resize(1000, 760)
    default_folder = dialog.algorithm().parameterDefinition("OUTPUT_FOLDER").defaultValue()
    report["default_output_folder"] = default_folder
    dialog.setParameters({"SAMPLES": samples.id(), "DEPOSITS": deposits.id(), "METHOD": 0})
    shot(dialog, "first_5_algorithm_dialog.png")
    report["steps"]["map_run_started"] = now()
    dialog.algorithmFinished.connect(lambda ok, results: QTimer.singleShot(300, lambda: map_done(dialog, ok, results)))
    dialog.runAlgorithm()


@guarded
def map_done(dialog, ok, results):
    report["steps"]["map_run_done"] = now()
    report["map_ok"] = ok
    report["results"] = {key: str(value) for key, value in (results or {}).items()}
    shot(dialog, "first_6_algorithm_log.png")
    dialog.close()
    project = QgsProject.instance()
    raster = next((layer for layer in project.mapLayers().values() if layer.type() == 1), None)
    canvas = iface.mapCanvas()
    if raster is not None:
        project.setCrs(raster.crs())
        extent = raster.extent()
        canvas.setExtent(extent.buffered(extent.height() * 0.04))
    canvas.refreshAllLayers()
    QTimer.singleShot(3000, final_shot)


@guarded
def final_shot():
    canvas = iface.mapCanvas()
    canvas.waitWhileRendering()
    report["steps"]["first_styled_map"] = now()
    dock = iface.mainWindow().findChild(QDockWidget, "GeoAnomalyResultsDock")
    report["results_panel_visible"] = bool(dock is not None and dock.isVisible())
    shot(iface.mainWindow(), "first_7_first_map.png")
    root = QgsProject.instance().layerTreeRoot()
    report["layer_tree"] = [[node.name() for node in group.children()] for group in root.children()
                            if group.name().startswith("GeoAnomaly ")]
    finish(0)


def watchdog():
    report["error"] = report.get("error") or "watchdog: not finished in time"
    try:
        QgsApplication.primaryScreen().grabWindow(0).save(str(OUT / "first_watchdog.png"))
    except Exception:  # noqa: BLE001
        pass
    finish(2)


_watchdog = QTimer()
_watchdog.setSingleShot(True)
_watchdog.timeout.connect(watchdog)
_watchdog.start(int(float(os.environ.get("GEOANOMALY_FIRST_MAP_TIMEOUT", "3000")) * 1000))
QTimer.singleShot(1500, open_settings)
