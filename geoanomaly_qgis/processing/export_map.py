"""Export prospectivity map: the print layout of :mod:`geoanomaly_qgis.map_export` as PDF and PNG."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import outputs as lasting
from ..map_export import export_prospectivity_map
from .base import ICONS_DIR


class ExportProspectivityMap(QgsProcessingAlgorithm):
    PROSPECTIVITY = "PROSPECTIVITY"
    DEPOSITS = "DEPOSITS"
    RUN_RECORD = "RUN_RECORD"
    TITLE = "TITLE"
    DPI = "DPI"
    OUTPUT_PDF = "OUTPUT_PDF"
    OUTPUT_PNG = "OUTPUT_PNG"
    LAYOUT_ITEMS = "LAYOUT_ITEMS"

    def createInstance(self):  # noqa: N802 - QGIS API name
        return type(self)()

    def name(self) -> str:
        return "export_prospectivity_map"

    def displayName(self) -> str:  # noqa: N802
        return "Export prospectivity map"

    def shortDescription(self) -> str:  # noqa: N802
        return "Lay out a prospectivity map with deposits, legend and scale as PDF and PNG"

    def group(self) -> str:
        return "Prospectivity"

    def groupId(self) -> str:  # noqa: N802
        return "prospectivity"

    def icon(self) -> QIcon:
        return QIcon(str(ICONS_DIR / "export_layout.svg"))

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Lays out an A4 map of a prospectivity raster with the known deposits, a legend, a scale bar, a "
                "north arrow, the title, the CRS and the run's parameters (from its run.json), and exports it "
                "as PDF and PNG. Your project is not changed.")

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("GeoAnomaly", text)

    def flags(self):
        # Layout rendering stays on the main thread, as QGIS's own layout exports do.
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PROSPECTIVITY, self.tr("Prospectivity raster")))
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.DEPOSITS, self.tr("Known deposits"), [QgsProcessing.TypeVectorPoint], None, True))
        self.addParameter(QgsProcessingParameterFile(
            self.RUN_RECORD, self.tr("Run record (run.json; empty: the one beside the raster)"),
            QgsProcessingParameterFile.File, "json", None, True))
        self.addParameter(QgsProcessingParameterString(
            self.TITLE, self.tr("Title"), "Mineral prospectivity"))
        dpi = QgsProcessingParameterNumber(self.DPI, self.tr("Resolution (dpi)"),
                                           QgsProcessingParameterNumber.Integer, 150, False, 30, 1200)
        dpi.setFlags(dpi.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(dpi)
        # Files that last (never QGIS's temporary folder), one pair per export.
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_PDF, self.tr("Map (PDF)"), "PDF files (*.pdf)", lasting.new_output_file("map", ".pdf")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_PNG, self.tr("Map (PNG)"), "PNG files (*.png)", lasting.new_output_file("map", ".png")))
        self.addOutput(QgsProcessingOutputString(self.LAYOUT_ITEMS, self.tr("Layout items")))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Both files' folders writable before anything is drawn."""
        ok, message = super().checkParameterValues(parameters, context)
        if ok:
            for name in (self.OUTPUT_PDF, self.OUTPUT_PNG):
                problem = lasting.check_writable(Path(self.parameterAsFileOutput(parameters, name, context)).parent)
                if problem:
                    return False, problem
        return ok, message

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        raster = self.parameterAsRasterLayer(parameters, self.PROSPECTIVITY, context)
        if raster is None or not Path(raster.source()).is_file():
            raise QgsProcessingException("Choose a prospectivity raster saved as a file (prospectivity.tif).")
        deposits = self.parameterAsVectorLayer(parameters, self.DEPOSITS, context)
        run_json = self.parameterAsFile(parameters, self.RUN_RECORD, context) or None
        pdf = self.parameterAsFileOutput(parameters, self.OUTPUT_PDF, context)
        png = self.parameterAsFileOutput(parameters, self.OUTPUT_PNG, context)
        try:
            exported = export_prospectivity_map(
                raster.source(), pdf, png, deposits, run_json,
                self.parameterAsString(parameters, self.TITLE, context) or "Mineral prospectivity",
                self.parameterAsInt(parameters, self.DPI, context))
        except (OSError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"Map written: {exported.pdf} and {exported.png}")
        return {self.OUTPUT_PDF: str(exported.pdf), self.OUTPUT_PNG: str(exported.png),
                self.LAYOUT_ITEMS: ",".join(sorted(exported.item_ids))}
