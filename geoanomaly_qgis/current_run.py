"""One-click map export for the current prospectivity run (the toolbar's "Export prospectivity map (current run)").

The *current run* is the run group (see :mod:`.processing.results`: the
group's ``geoanomaly/run`` property holds the engine command and the output
folder) of the layer selected in the layer tree when that group is a
prospectivity run, otherwise the most recent prospectivity run in the
project (the newest ``prospectivity.tif``). A selected layer that was loaded
by hand from a run folder (``prospectivity*.tif`` beside a prospectivity
``run.json``) counts too.

Its map is written into the run folder as ``prospectivity_map.pdf`` and
``prospectivity_map.png`` (replacing an earlier export) with the deposits the
run used: the project's layer with the source named in ``qgis_run.json``, else
that source opened again, else the deposits the engine kept in the run's
``labels.gpkg``. With an ``iface`` the outcome is shown in the message bar
(links to both files); without one (tests, scripts) it is only returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qgis.core import Qgis, QgsLayerTreeGroup, QgsMessageLog, QgsProject, QgsVectorLayer

from .map_export import export_prospectivity_map
from .processing.results import run_record

PDF_NAME = "prospectivity_map.pdf"
PNG_NAME = "prospectivity_map.png"
RASTER_NAME = "prospectivity.tif"

EXPORTED, NO_RUN, FAILED = "exported", "no_run", "failed"


@dataclass
class ExportOutcome:
    status: str  # EXPORTED, NO_RUN or FAILED
    message: str
    run_dir: Path | None = None
    pdf: Path | None = None
    png: Path | None = None
    deposits: str | None = None  # where the deposits on the map came from (None: no deposits drawn)


def _prospectivity_dir(group: QgsLayerTreeGroup) -> Path | None:
    """The run folder of a prospectivity run group whose raster is still on disk, else None."""
    record = run_record(group)
    if not record:
        return None
    command = record.get("command") or []
    if not command or command[0] != "prospectivity" or not record.get("out_dir"):
        return None
    out_dir = Path(record["out_dir"])
    return out_dir if (out_dir / RASTER_NAME).is_file() else None


def _run_dir_of_file(source: str) -> Path | None:
    """The folder of a layer loaded by hand from a prospectivity run folder, else None."""
    folder = Path(source.split("|")[0]).parent
    if not (folder / RASTER_NAME).is_file():
        return None
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return folder if isinstance(record, dict) and record.get("command") == "prospectivity" else None


def find_current_prospectivity_run(project: QgsProject, selected_layer=None) -> Path | None:
    """The run folder of the current prospectivity run in ``project`` (see the module docstring), or None."""
    root = project.layerTreeRoot()
    if selected_layer is not None:
        node = root.findLayer(selected_layer.id())
        parent = node.parent() if node is not None else None
        while isinstance(parent, QgsLayerTreeGroup):  # up to the root; else: in no run group
            found = _prospectivity_dir(parent)
            if found is not None:
                return found
            if run_record(parent):  # the layer's own run is another kind: fall back to the newest
                break
            parent = parent.parent()
        else:
            found = _run_dir_of_file(selected_layer.source())
            if found is not None:
                return found
    runs = [d for d in (_prospectivity_dir(g) for g in root.findGroups(True)) if d is not None]
    if not runs:
        return None
    # Newest raster wins; on a tie the topmost group (runs are inserted at the top of the tree).
    return max(runs, key=lambda d: (d / RASTER_NAME).stat().st_mtime_ns)


def run_deposits(run_dir: Path, project: QgsProject | None = None) -> tuple[QgsVectorLayer | None, str | None]:
    """The deposits of the run in ``run_dir`` as a layer, and a few words saying where they came from."""
    try:
        record = json.loads((run_dir / "qgis_run.json").read_text(encoding="utf-8"))
        source = str(((record.get("layers") or {}).get("DEPOSITS") or {}).get("source") or "")
    except (OSError, ValueError, AttributeError):
        source = ""
    if source:
        if project is not None:
            for layer in project.mapLayers().values():
                if isinstance(layer, QgsVectorLayer) and layer.isValid() and layer.source() == source:
                    return layer, f"the project's layer '{layer.name()}'"
        provider = "delimitedtext" if "://" in source or "type=csv" in source else "ogr"
        layer = QgsVectorLayer(source, "Known deposits", provider)
        if layer.isValid():
            return layer, source
    labels = run_dir / "labels.gpkg"
    if labels.is_file():
        layer = QgsVectorLayer(f"{labels}|layername=labels", "Known deposits", "ogr")
        if layer.isValid() and layer.fields().indexOf("source") >= 0 and layer.setSubsetString(
                "\"source\" = 'deposit'") and layer.featureCount() > 0:
            return layer, f"{labels.name} (the deposits the run used)"
    return None, None


def export_run_map(run_dir: str | Path, project: QgsProject | None = None, dpi: int = 150) -> ExportOutcome:
    """Export the map of the run in ``run_dir`` to ``prospectivity_map.pdf|png`` in that folder."""
    run_dir = Path(run_dir)
    deposits, deposits_from = run_deposits(run_dir, project)
    try:
        exported = export_prospectivity_map(run_dir / RASTER_NAME, run_dir / PDF_NAME, run_dir / PNG_NAME,
                                            deposits, run_dir / "run.json" if (run_dir / "run.json").is_file()
                                            else None, dpi=dpi)
    except Exception as exc:  # noqa: BLE001 - a failed export is a message, never a traceback
        return ExportOutcome(FAILED, f"Could not export the map of {run_dir}: {exc}", run_dir,
                             deposits=deposits_from)
    note = "" if deposits is not None else " (no deposits found for this run: the map shows none)"
    return ExportOutcome(EXPORTED, f"Prospectivity map written{note}", run_dir, exported.pdf, exported.png,
                         deposits_from)


def export_current_run(iface=None, project: QgsProject | None = None, selected_layer=None,
                       dpi: int = 150) -> ExportOutcome:
    """Find the current prospectivity run and export its map; with an ``iface``, say so in the message bar.

    ``project`` defaults to the current project and ``selected_layer`` to
    the layer selected in ``iface``'s layer tree.
    """
    project = project or QgsProject.instance()
    if selected_layer is None and iface is not None:
        try:
            selected_layer = iface.activeLayer()
        except Exception:  # noqa: BLE001 - no layer tree (e.g. while QGIS closes)
            selected_layer = None
    try:
        run_dir = find_current_prospectivity_run(project, selected_layer)
    except Exception as exc:  # noqa: BLE001
        outcome = ExportOutcome(FAILED, f"Could not look for a prospectivity run: {exc}")
    else:
        if run_dir is None:
            outcome = ExportOutcome(NO_RUN, "No prospectivity run in this project: run GeoAnomaly › Prospectivity "
                                            "(active learning) first, or select a layer of its run group.")
        else:
            outcome = _with_busy_cursor(iface, lambda: export_run_map(run_dir, project, dpi))
    QgsMessageLog.logMessage(outcome.message + (f": {outcome.pdf}, {outcome.png}" if outcome.pdf else ""),
                             "GeoAnomaly", Qgis.Info if outcome.status == EXPORTED else Qgis.Warning)
    if iface is not None:
        show_outcome(iface, outcome)
    return outcome


def _with_busy_cursor(iface, work):
    if iface is None:
        return work()
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QApplication

    QApplication.setOverrideCursor(Qt.WaitCursor)
    try:
        return work()
    finally:
        QApplication.restoreOverrideCursor()


def outcome_html(outcome: ExportOutcome) -> str:
    """The message bar's text: links to the files (the message bar opens file links)."""
    if outcome.status != EXPORTED:
        return outcome.message
    from qgis.PyQt.QtCore import QUrl

    links = ", ".join(f'<a href="{QUrl.fromLocalFile(str(path)).toString()}">{path}</a>'
                      for path in (outcome.pdf, outcome.png) if path is not None)
    return f"{outcome.message}: {links}"


def show_outcome(iface, outcome: ExportOutcome) -> None:
    levels = {EXPORTED: Qgis.Success, NO_RUN: Qgis.Warning, FAILED: Qgis.Critical}
    try:
        iface.messageBar().pushMessage("GeoAnomaly", outcome_html(outcome), levels.get(outcome.status, Qgis.Info),
                                       0 if outcome.status == FAILED else 10)
    except Exception as exc:  # noqa: BLE001 - the log already has the outcome
        QgsMessageLog.logMessage(f"message bar: {exc}", "GeoAnomaly", Qgis.Warning)
