"""Samples → anomalies: score every sample with a detector and grid the scores."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
)

from ..results_page import auc_sentence, top_area_sentence
from ..settings import engine_info
from .base import EngineAlgorithm, find_metric, read_json

# What a geologist reads in the dialog for the detectors the plugin knows, in the order they are offered
# (the fast first look first). Which detectors exist is the engine's to say (`core info`); one the plugin
# does not know yet is offered under its engine name, after these.
DETECTOR_LABELS = {
    "mahalanobis": "Mahalanobis distance (robust, fast)",
    "isolation_forest": "Isolation forest",
    "knn": "k nearest neighbours distance",
    "ocsvm": "One-class SVM",
    "pca": "PCA reconstruction error",
    "transformer": "Distilled transformer (deep model; GPU helps)",
}


def detectors(reported: list[str] | None = None) -> list[tuple[str, str]]:
    """(engine name, label) of the detectors the engine reports, known ones in the plugin's order.

    With no engine to ask, the known detectors are offered: the run then stops with the engine's
    install instructions, as every algorithm does.
    """
    if reported is None:
        reported = engine_info().get("detectors")
    if not isinstance(reported, list) or not reported:
        reported = list(DETECTOR_LABELS)
    known = [name for name in DETECTOR_LABELS if name in reported]
    return [(name, DETECTOR_LABELS.get(name, name)) for name in known + sorted(set(reported) - set(known))]
TRANSFORMS = [
    ("clr", "centred log-ratio (clr)"),
    ("ilr", "isometric log-ratio (ilr)"),
    ("log", "log10"),
    ("none", "none"),
]


class SamplesToAnomalies(EngineAlgorithm):
    COMMAND = "detect"
    NAME = "samples_to_anomalies"
    DISPLAY_NAME = "Samples → anomalies"
    GROUP, GROUP_ID = "Anomalies", "anomalies"
    ICON = "detect.svg"
    TOOLTIP = "Score every sample for how unusual its assays are, and map the scores as a heat map"
    HELP = (
        "Scores every geochemical sample with an anomaly detector (higher = more anomalous) and grids the "
        "scores into an anomaly raster.<br><br>"
        "<b>Commodity</b>: what you explore for. The run keeps the commodity and its pathfinders whatever their "
        "detection limits, scores their enrichment and halos, and compares every map with the commodity's own "
        "assay and a pathfinder index in the log.<br>"
        "<b>Samples</b>: a point layer with one field per element (Au_ppb, Cu_ppm, ...). Leave <b>Element "
        "fields</b> empty to use every numeric field ending in _ppm, _ppb or _pct. Values of -9999 are missing "
        "assays; other negative values mean 'below the detection limit'.<br>"
        "<b>Detector</b>: Mahalanobis distance is fast and a good first look; the distilled transformer learns "
        "each sample's neighbourhood (options under Advanced: generations, ensemble, neighbours, epochs, device).<br>"
        "<b>Known deposits</b> (optional): the run is evaluated against them (AUC, success-rate curve).<br><br>"
        "Outputs: scored points (graduated symbols), the anomaly raster (heat map), run.json with every "
        "parameter, versions and the device used."
    )

    METHOD = "METHOD"
    TRANSFORM = "TRANSFORM"
    COMPARE = "COMPARE"
    GENERATIONS = "GENERATIONS"
    ENSEMBLE = "ENSEMBLE"
    NEIGHBOURS = "NEIGHBOURS"
    EPOCHS = "EPOCHS"
    SCORES = "SCORES"
    SCORES_CSV = "SCORES_CSV"
    ANOMALY_RASTER = "ANOMALY_RASTER"
    AUC = "AUC"
    SUCCESS_RATE_PLOT = "SUCCESS_RATE_PLOT"

    def define_parameters(self) -> None:
        self.add_commodity_parameter()
        self.detectors = detectors()
        self.add_samples_parameters()
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, self.tr("Detector"), [label for _, label in self.detectors], False, 0))
        self.add_deposits_parameter()
        self.addParameter(QgsProcessingParameterEnum(
            self.TRANSFORM, self.tr("Compositional transform"), [label for _, label in TRANSFORMS], False, 0))
        self.add_cell_parameter()
        self.add_like_parameter()
        self._advanced(QgsProcessingParameterBoolean(
            self.COMPARE, self.tr("With deposits: also score the classical detectors, to compare AUCs in the log"),
            True))
        self.add_work_crs_parameter()
        self.add_seed_parameter()
        self.add_device_parameter()
        for name, label in ((self.GENERATIONS, "Transformer: generations of distillation"),
                            (self.ENSEMBLE, "Transformer: models averaged (ensemble; 1 is fastest)"),
                            (self.NEIGHBOURS, "Transformer: neighbours per sample"),
                            (self.EPOCHS, "Transformer: training epochs per generation")):
            self._advanced(QgsProcessingParameterNumber(
                name, self.tr(label + " (empty: engine default)"), QgsProcessingParameterNumber.Integer,
                None, True, 1))
        self.add_output_folder()
        self.addOutput(QgsProcessingOutputVectorLayer(self.SCORES, self.tr("Scored samples")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.ANOMALY_RASTER, self.tr("Anomaly score raster")))
        self.addOutput(QgsProcessingOutputFile(self.SCORES_CSV, self.tr("Scores table (CSV)")))
        self.addOutput(QgsProcessingOutputNumber(self.AUC, self.tr("AUC against the deposits")))
        self.addOutput(QgsProcessingOutputFile(self.SUCCESS_RATE_PLOT, self.tr("Success-rate curve (PNG)")))

    def method(self, parameters, context) -> str:
        return self.detectors[self.parameterAsEnum(parameters, self.METHOD, context)][0]

    def run_label(self, parameters, context) -> str:
        return self.method(parameters, context)

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        method = self.method(parameters, context)
        samples, elements = self.prepare_samples(parameters, context, feedback, run)
        argv = ["--method", method, "--samples", str(samples), *self.commodity_arguments(parameters, context)]
        if self.parameterAsFields(parameters, self.ELEMENTS, context):
            argv += ["--elements", ",".join(elements)]
        argv += ["--transform", TRANSFORMS[self.parameterAsEnum(parameters, self.TRANSFORM, context)][0]]
        deposits = self.prepare_deposits(parameters, context, feedback, run)
        if deposits is not None:
            argv += ["--deposits", str(deposits)]
            if not self.parameterAsBool(parameters, self.COMPARE, context):
                argv += ["--compare", "none"]
        argv += self.cell_arguments(parameters, context)
        argv += self.like_arguments(parameters, context)
        argv += self.work_crs_arguments(parameters, context)
        argv += self.seed_arguments(parameters, context)
        argv += self.device_arguments(parameters, context)
        if method == "transformer":
            for name, flag in ((self.GENERATIONS, "--generations"), (self.ENSEMBLE, "--ensemble"),
                               (self.NEIGHBOURS, "--neighbours"),
                               (self.EPOCHS, "--epochs")):
                if parameters.get(name) not in (None, ""):
                    argv += [flag, str(self.parameterAsInt(parameters, name, context))]
        return argv

    def results_lines(self, run, record) -> list[str]:
        metrics = record.get("metrics") or {}
        method = (record.get("parameters") or {}).get("method", "")
        return [auc_sentence(metrics, method), top_area_sentence(
            ((metrics.get("success_rate") or {}).get(method) or {}).get("deposits_in_top_area") or {})]

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        method = self.method(parameters, context)
        out = run.out_dir
        raster = out / "anomaly_score.tif"
        scores = out / "scores.gpkg"
        scores_uri = f"{scores}|layername=scores"
        plot = out / "success_rate.png"
        outputs = self.common_outputs(run)
        outputs.update({
            self.SCORES: scores_uri if scores.is_file() else None,
            self.ANOMALY_RASTER: str(raster) if raster.is_file() else None,
            self.SCORES_CSV: str(out / "scores.csv") if (out / "scores.csv").is_file() else None,
            self.SUCCESS_RATE_PLOT: str(plot) if plot.is_file() else None,
            self.AUC: _auc(run),
        })
        if outputs[self.AUC] is not None:
            feedback.pushInfo(f"AUC against the known deposits: {outputs[self.AUC]:.3f}")
        if raster.is_file():
            self.load_on_completion(context, run, raster, f"Anomaly score ({method})", "raster", "anomaly",
                                    rank=90, output_name=self.ANOMALY_RASTER)
        if scores.is_file():
            self.load_on_completion(context, run, scores_uri, f"Scored samples ({method})", "vector", "points",
                                    rank=10, output_name=self.SCORES)
        return outputs


def _auc(run) -> float | None:
    """The AUC the engine wrote for the run's own detector: ``metrics.auc`` of its result (or run.json),
    the mean of the evaluation protocol's 20 runs."""
    return find_metric([run.result, read_json(run.out_dir / "run.json")], "auc")
