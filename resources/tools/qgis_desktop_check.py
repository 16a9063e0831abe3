"""Startup script for the QGIS desktop check: ``qgis --code resources/tools/qgis_desktop_check.py``.

Runs inside the real QGIS application (under Xvfb in the tests) with the
GeoAnomaly plugin installed and enabled. It checks the toolbar and menu, runs
"Samples -> anomalies" (Mahalanobis, with the known deposits) on the sample
survey through ``processing.runAndLoadResults`` - what the algorithm dialog
does - zooms to the result and saves screenshots and a JSON report, then
leaves with ``os._exit`` (QGIS may abort while quitting under Xvfb).

Keep this file ASCII: QGIS reads it with the locale's encoding, which is
ASCII under a bare ``xvfb-run``.

Environment: ``GEOANOMALY_DESKTOP_OUT`` (folder for report.json and the PNGs),
``GEOANOMALY_DESKTOP_DATA`` (folder with samples.csv and deposits.csv),
``GEOANOMALY_DESKTOP_TIMEOUT`` (seconds before the watchdog gives up, default 150).
"""

import json
import os
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QAction, QApplication, QDockWidget, QMenu, QToolBar
from qgis.utils import iface, plugins

OUT = Path(os.environ["GEOANOMALY_DESKTOP_OUT"])
DATA = Path(os.environ["GEOANOMALY_DESKTOP_DATA"])
report = {"steps": []}


def finish(code):
    (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    os._exit(code)


def guarded(step):
    """Run a step; on any error record it and leave (a desktop app must never hang a test)."""
    def wrapper():
        try:
            report["steps"].append(step.__name__)
            step()
        except Exception:  # noqa: BLE001
            report["error"] = traceback.format_exc()
            finish(1)
    return wrapper


def csv_layer(name, title):
    uri = f"{(DATA / name).as_uri()}?type=csv&detectTypes=yes&xField=X&yField=Y&crs=EPSG:4283&geomType=point"
    return QgsVectorLayer(uri, title, "delimitedtext")


@guarded
def run_algorithm():
    # An unattended run: take QGIS's preferred datum transformation instead of asking.
    QgsSettings().setValue("/projections/promptWhenMultipleTransformsExist", False, QgsSettings.App)
    mw = iface.mainWindow()
    mw.resize(1600, 1000)
    report["plugin_loaded"] = "geoanomaly_qgis" in plugins
    report["provider"] = QgsApplication.processingRegistry().providerById("geoanomaly") is not None
    toolbar = mw.findChild(QToolBar, "GeoAnomalyToolbar")
    report["toolbar_actions"] = [a.text() for a in toolbar.actions()] if toolbar else None
    menu = mw.findChild(QMenu, "GeoAnomalyMenu")
    report["menu_actions"] = [a.text() for a in menu.actions() if a.text()] if menu else None
    # The toolbar button opens the mineral identification side panel.
    mineral_action = mw.findChild(QAction, "geoanomaly_mineral_identification")
    if mineral_action is not None:
        mineral_action.trigger()
        dock = mw.findChild(QDockWidget, "GeoAnomalyMineralDock")
        report["mineral_dock_visible"] = bool(dock is not None and dock.isVisible())

    samples = csv_layer("samples.csv", "GSWA sed1 samples")
    deposits = csv_layer("deposits.csv", "Known Au deposits")
    import processing

    results = processing.runAndLoadResults("geoanomaly:samples_to_anomalies", {
        "SAMPLES": samples, "DEPOSITS": deposits, "METHOD": 0, "DEVICE": 1, "OUTPUT_FOLDER": str(OUT / "run")})
    report["results"] = {key: str(value) for key, value in (results or {}).items()}

    project = QgsProject.instance()
    root = project.layerTreeRoot()
    # The run adds its deposits (as stars, above the heat map) itself: nothing is styled or moved here.
    groups = [g for g in root.children() if g.name().startswith("GeoAnomaly ")]
    report["groups"] = [g.name() for g in groups]
    from qgis.core import QgsMapLayerLegendUtils

    report["group_layers"] = [
        {"name": node.layer().name(), "type": node.layer().type(), "renderer": node.layer().renderer().type(),
         "valid": node.layer().isValid(), "crs": node.layer().crs().authid(),
         "legend_title": QgsMapLayerLegendUtils.legendNodeUserLabel(node, 0)}
        for group in groups for node in group.findLayers()]
    QTimer.singleShot(500, zoom)


@guarded
def zoom():
    project = QgsProject.instance()
    raster = next((layer for layer in project.mapLayers().values() if layer.type() == 1), None)
    canvas = iface.mapCanvas()
    if raster is not None:
        project.setCrs(raster.crs())
        canvas.setDestinationCrs(raster.crs())
        extent = raster.extent()
        canvas.setExtent(extent.buffered(extent.height() * 0.04))
    canvas.refreshAllLayers()
    QTimer.singleShot(2500, shoot)


@guarded
def shoot():
    canvas = iface.mapCanvas()
    canvas.waitWhileRendering()
    QApplication.processEvents()
    report["project_crs"] = QgsProject.instance().crs().authid()
    root = QgsProject.instance().layerTreeRoot()
    report["tree_at_screenshot"] = [[child.name(), [n.name() for n in getattr(child, "children", list)()]]
                                    for child in root.children()]
    report["layer_order_at_screenshot"] = [layer.name() for layer in root.layerOrder()]
    report["screenshot"] = iface.mainWindow().grab().save(str(OUT / "qgis_desktop.png"))
    report["canvas_screenshot"] = canvas.grab().save(str(OUT / "qgis_map_canvas.png"))
    QTimer.singleShot(200, dialogs)


@guarded
def dialogs():
    """The toolbar's way: the algorithm dialog, its task in a background thread, results loaded after."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue(ProcessingConfig.KEEP_DIALOG_OPEN, True)  # to photograph its log
    project = QgsProject.instance()
    samples = csv_layer("samples.csv", "GSWA sed1 samples")
    project.addMapLayer(samples, False)  # available to the dialog, not drawn
    deposits = csv_layer("deposits.csv", "Known Au deposits")
    project.addMapLayer(deposits, False)
    plugin = plugins["geoanomaly_qgis"]
    report["options_page"] = plugin.options_factory is not None
    plugin.open_algorithm("samples_to_anomalies")
    dialog = plugin._dialogs[-1]
    dialog.resize(1000, 760)
    dialog.setParameters({"SAMPLES": samples.id(), "METHOD": 2, "DEVICE": 1, "DEPOSITS": deposits.id(),
                          "COMPARE": False,
                          "ELEMENTS": ["Au_ppm", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm", "Ni_ppm"],
                          "OUTPUT_FOLDER": str(OUT / "dialog_run")})
    report["dialog_threaded"] = not (dialog.algorithm().flags() & dialog.algorithm().FlagNoThreading)
    dialog.algorithmFinished.connect(lambda ok, results: QTimer.singleShot(300, lambda: dialog_done(dialog, ok)))
    dialog.runAlgorithm()


def dialog_done(dialog, ok):
    try:
        from qgis.PyQt.QtWidgets import QTextEdit

        report["dialog_ok"] = ok
        log = dialog.findChild(QTextEdit, "txtLog")
        report["dialog_log"] = log.toPlainText() if log is not None else None
        root = QgsProject.instance().layerTreeRoot()
        report["groups_after_dialog"] = [g.name() for g in root.children() if g.name().startswith("GeoAnomaly ")]
        report["algorithm_dialog"] = dialog.grab().save(str(OUT / "qgis_algorithm_dialog.png"))
        dock = iface.mainWindow().findChild(QDockWidget, "GeoAnomalyResultsDock")
        report["results_panel_visible"] = bool(dock is not None and dock.isVisible())
        if dock is not None:
            from qgis.PyQt.QtWidgets import QTextBrowser

            page = dock.findChild(QTextBrowser, "GeoAnomalyResultsPage")
            report["results_panel_text"] = page.toPlainText() if page is not None else None
            report["results_panel"] = dock.grab().save(str(OUT / "qgis_results_panel.png"))
        dialog.close()
        cancel_in_dialog()
    except Exception:  # noqa: BLE001
        report["error"] = traceback.format_exc()
        finish(1)


def cancel_in_dialog():
    """A long transformer run from the dialog, cancelled with its Cancel button once training has started."""
    import time

    from qgis.PyQt.QtWidgets import QProgressBar

    plugin = plugins["geoanomaly_qgis"]
    samples = next(layer for layer in QgsProject.instance().mapLayers().values()
                   if layer.name() == "GSWA sed1 samples")
    plugin.open_algorithm("samples_to_anomalies")
    dialog = plugin._dialogs[-1]
    dialog.setParameters({"SAMPLES": samples.id(), "METHOD": 5, "DEVICE": 1, "GENERATIONS": 4, "EPOCHS": 100,
                          "ELEMENTS": ["Au_ppm", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm", "Ni_ppm"],
                          "OUTPUT_FOLDER": str(OUT / "cancelled_run")})
    state = {"started": time.monotonic(), "clicked": None}
    poll = QTimer(dialog)

    def click_cancel_when_training():
        bar = dialog.findChild(QProgressBar, "progressBar")
        value = bar.value() if bar is not None else 0
        if state["clicked"] is None and (value >= 10 or time.monotonic() - state["started"] > 30):
            state["clicked"] = time.monotonic()
            report["cancel_at_progress"] = value
            dialog.cancelButton().click()
            poll.stop()

    def finished(ok, results):
        poll.stop()
        QTimer.singleShot(200, lambda: cancel_done(dialog, ok, state))

    poll.timeout.connect(click_cancel_when_training)
    dialog.algorithmFinished.connect(finished)
    dialog.runAlgorithm()
    poll.start(200)


def cancel_done(dialog, ok, state):
    import time

    try:
        from qgis.PyQt.QtWidgets import QTextEdit

        report["cancel_run_ok"] = ok
        report["cancel_seconds"] = None if state["clicked"] is None else time.monotonic() - state["clicked"]
        report["cancel_output_exists"] = (OUT / "cancelled_run").exists()
        report["cancel_partial_left"] = [p.name for p in OUT.glob(".cancelled_run.partial-*")]
        log = dialog.findChild(QTextEdit, "txtLog")
        report["cancel_log"] = log.toPlainText()[-3000:] if log is not None else None
        dialog.close()
        settings_dialog()
    except Exception:  # noqa: BLE001
        report["error"] = traceback.format_exc()
        finish(1)


def settings_dialog():
    from geoanomaly_qgis.settings import SettingsDialog

    settings = SettingsDialog(iface.mainWindow())
    settings.show()
    settings.check()
    report["check_in_background"] = settings.panel.check_button.text()  # "Checking..." while it runs
    report["engine_ok"] = settings.wait_for_check(120)
    report["engine_report"] = settings.report.toPlainText()
    QApplication.processEvents()
    report["settings_dialog"] = settings.grab().save(str(OUT / "qgis_settings.png"))
    settings.close()
    reopen_dialogs()
    finish(0)


def reopen_dialogs():
    """Each algorithm opened from its toolbar button, closed, and opened again from the menu (twice over)."""
    from qgis.PyQt import sip
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    from geoanomaly_qgis.processing.provider import ALGORITHMS

    plugin = plugins["geoanomaly_qgis"]
    mw = iface.mainWindow()
    toolbar = mw.findChild(QToolBar, "GeoAnomalyToolbar")
    menu = mw.findChild(QMenu, "GeoAnomalyMenu")
    reopened = {}
    for algorithm_class in ALGORITHMS:
        name = algorithm_class().name()
        action = mw.findChild(QAction, "geoanomaly_" + name)
        opened = []
        for round_ in range(2):
            for way in ("toolbar", "menu"):
                try:
                    if way == "toolbar":
                        toolbar.widgetForAction(action).click()
                    else:
                        next(a for a in menu.actions() if a is action).trigger()
                except Exception as exc:  # noqa: BLE001 - what the user would see as a dead button
                    opened.append(way + ": " + type(exc).__name__ + ": " + str(exc))
                    continue
                dialog = plugin._dialogs[-1] if plugin._dialogs else None
                ok = dialog is not None and not sip.isdeleted(dialog) and dialog.isVisible()
                if ok and round_ == 0 and way == "toolbar":
                    dialog.grab().save(str(OUT / ("qgis_dialog_" + name + ".png")))
                opened.append(way + ": " + ("open" if ok else "not shown"))
                if dialog is not None and not sip.isdeleted(dialog):
                    dialog.close()
                # Let Qt delete the closed dialog, as it does between two clicks of a person.
                QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
                QApplication.processEvents()
        reopened[name] = opened
    report["reopened"] = reopened


def watchdog():
    report["error"] = report.get("error") or "watchdog: the desktop check did not finish in time"
    try:
        QgsApplication.primaryScreen().grabWindow(0).save(str(OUT / "watchdog.png"))
        report["visible_windows"] = [w.windowTitle() or type(w).__name__
                                     for w in QApplication.topLevelWidgets() if w.isVisible()]
    except Exception:  # noqa: BLE001
        report["watchdog_error"] = traceback.format_exc()
    finish(2)


_watchdog = QTimer()
_watchdog.setSingleShot(True)
_watchdog.timeout.connect(watchdog)
_watchdog.start(int(float(os.environ.get("GEOANOMALY_DESKTOP_TIMEOUT", "150")) * 1000))
QTimer.singleShot(1500, run_algorithm)
