"""The "GeoAnomaly" Processing provider: every engine command as an algorithm."""

from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICONS_DIR
from .detect import SamplesToAnomalies
from .evaluate import EvaluateAgainstDeposits
from .export_map import ExportProspectivityMap  # prospectivity (issue 6)
from .geohgan import RasterAnomaliesGeoHgan  # Geo-Hgan (issue 5)
from .grid import GridSamples
from .prospectivity import ProspectivityActiveLearning  # prospectivity (issue 6)
from .score import ScoreNewSamples

# Algorithms of later issues add themselves here (one class each, subclassing EngineAlgorithm).
ALGORITHMS = [SamplesToAnomalies, ScoreNewSamples, GridSamples, EvaluateAgainstDeposits]
ALGORITHMS += [ProspectivityActiveLearning, ExportProspectivityMap]  # prospectivity (issue 6)
ALGORITHMS += [RasterAnomaliesGeoHgan]  # Geo-Hgan (issue 5)


class GeoAnomalyProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "geoanomaly"

    def name(self) -> str:
        return "GeoAnomaly"

    def longName(self) -> str:  # noqa: N802 - QGIS API name
        return "GeoAnomaly - geochemical anomalies and prospectivity"

    def icon(self) -> QIcon:
        return QIcon(str(ICONS_DIR / "geoanomaly.svg"))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in ALGORITHMS:
            try:
                self.addAlgorithm(algorithm())
            except Exception as exc:  # noqa: BLE001 - the other algorithms stay usable
                QgsMessageLog.logMessage(f"cannot load {algorithm.__name__}: {exc}", "GeoAnomaly", Qgis.Warning)
