"""Evaluate against deposits: how well a score ranks the known deposits (AUC, success-rate curve)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
)

from . import layers as layer_checks
from .base import EngineAlgorithm, find_metric, read_json


class EvaluateAgainstDeposits(EngineAlgorithm):
    COMMAND = "evaluate"
    NAME = "evaluate_against_deposits"
    DISPLAY_NAME = "Evaluate against deposits"
    GROUP, GROUP_ID = "Evaluation", "evaluation"
    ICON = "evaluate.svg"
    TOOLTIP = "How well a score ranks the known deposits: AUC and success-rate curve"
    HELP = (
        "Measures how well anomaly scores point at known deposits: the area under the success-rate curve "
        "(AUC; 0.5 = no better than chance, 1 = every deposit in the highest-scored area).<br><br>"
        "Give either <b>Scored samples</b> (a point layer with a score field, e.g. the 'Scored samples' output "
        "of Samples → anomalies: each deposit against random background samples, 20 times) or a "
        "<b>Score raster</b> (a GeoTIFF in a "
        "projected CRS, e.g. the anomaly raster: the cell-level AUC). <b>Known deposits</b>: a point layer, "
        "reprojected to the scores' CRS when needed."
    )

    SCORES = "SCORES"
    SCORE_RASTER = "SCORE_RASTER"
    SCORE_FIELD = "SCORE_FIELD"
    AUC = "AUC"
    EVALUATION = "EVALUATION"
    SUCCESS_RATE_PLOT = "SUCCESS_RATE_PLOT"
    SUCCESS_RATE_TABLE = "SUCCESS_RATE_TABLE"

    def define_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SCORES, self.tr("Scored samples (point layer)"), [QgsProcessing.TypeVectorPoint], None, True))
        self.addParameter(QgsProcessingParameterField(
            self.SCORE_FIELD, self.tr("Score field (higher = more anomalous)"), "anomaly_score", self.SCORES,
            QgsProcessingParameterField.Numeric, False, True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.SCORE_RASTER, self.tr("or: Score raster (GeoTIFF, projected CRS)"), None, True))
        self.add_deposits_parameter(optional=False)
        self.add_output_folder()
        self.addOutput(QgsProcessingOutputNumber(self.AUC, self.tr("AUC")))
        self.addOutput(QgsProcessingOutputFile(self.EVALUATION, self.tr("Evaluation (JSON)")))
        self.addOutput(QgsProcessingOutputFile(self.SUCCESS_RATE_PLOT, self.tr("Success-rate curve (PNG)")))
        self.addOutput(QgsProcessingOutputFile(self.SUCCESS_RATE_TABLE, self.tr("Success-rate curve (CSV)")))

    def run_label(self, parameters, context) -> str:
        return "evaluation"

    def check_inputs(self, parameters, context) -> None:
        super().check_inputs(parameters, context)
        has_points = bool(parameters.get(self.SCORES))
        raster = self.parameterAsRasterLayer(parameters, self.SCORE_RASTER, context)
        if has_points == (raster is not None):
            raise QgsProcessingException(
                "Give either scored samples (a point layer) or a score raster, not both and not neither.")
        if raster is not None:
            self.score_raster_file(raster)
            if raster.crs().isGeographic():
                raise QgsProcessingException(
                    f"The score raster '{raster.name()}' is in a geographic CRS ({raster.crs().authid()}); cell "
                    "areas need a projected CRS in metres: use the anomaly raster of Samples → anomalies, or "
                    "warp it (Raster > Projections > Warp).")
            return
        source = self.parameterAsSource(parameters, self.SCORES, context)
        layer_checks.check_point_source(source, "scored samples", need_numeric=True)
        score_field = self.parameterAsString(parameters, self.SCORE_FIELD, context) or "anomaly_score"
        index = source.fields().lookupField(score_field)
        if index < 0:
            raise QgsProcessingException(
                f"The scored samples layer '{source.sourceName()}' has no field '{score_field}': choose the field "
                "holding the anomaly score.")
        if not source.fields().field(index).isNumeric():
            raise QgsProcessingException(f"The score field '{score_field}' is not numeric.")

    @staticmethod
    def score_raster_file(raster) -> str:
        """The raster's file (the engine reads files, not QGIS data sources)."""
        return layer_checks.raster_file(raster, "score raster")

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        raster = self.parameterAsRasterLayer(parameters, self.SCORE_RASTER, context)
        if raster is not None:
            deposits = self.prepare_deposits(parameters, context, feedback, run, target_crs=raster.crs(),
                                            target_name="score raster")
            feedback.pushInfo(f"Cell-level evaluation of the raster '{raster.name()}' ({raster.crs().authid()}).")
            return ["--scores", self.score_raster_file(raster), "--deposits", str(deposits)]
        source = self.parameterAsSource(parameters, self.SCORES, context)
        run.samples_crs = source.sourceCrs()
        scores = layer_checks.export_points(source, run.workdir / "scores.gpkg", context, feedback,
                                            layer_name="scores")
        deposits = self.prepare_deposits(parameters, context, feedback, run)
        return ["--scores", str(scores), "--deposits", str(deposits),
                "--score-field", self.parameterAsString(parameters, self.SCORE_FIELD, context) or "anomaly_score"]

    def results_lines(self, run, record) -> list[str]:
        auc = find_metric([run.result, read_json(run.out_dir / "evaluation.json")], "auc")
        return [f"AUC {auc:.3f} (0.5 = no better than chance)."] if auc is not None else []

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        out = run.out_dir
        evaluation = out / "evaluation.json"
        auc = find_metric([run.result, read_json(evaluation)], "auc")
        if auc is not None:
            feedback.pushInfo(f"AUC against the known deposits: {auc:.3f}")
        outputs = self.common_outputs(run)
        outputs.update({
            self.AUC: auc,
            self.EVALUATION: str(evaluation) if evaluation.is_file() else None,
            self.SUCCESS_RATE_PLOT: _existing(out / "success_rate.png"),
            self.SUCCESS_RATE_TABLE: _existing(out / "success_rate.csv"),
        })
        return outputs


def _existing(path) -> str | None:
    return str(path) if path.is_file() else None
