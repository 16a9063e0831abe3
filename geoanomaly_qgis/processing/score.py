"""Score new samples with a saved model: the model folder of an earlier "Samples → anomalies" run."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFile,
    QgsProject,
)

from .base import EngineAlgorithm, read_json
from .results import newest_run_output

MODEL_COMMODITY = "As the model was trained (its own commodity, or none)"


class ScoreNewSamples(EngineAlgorithm):
    COMMAND = "score"
    NAME = "score_new_samples"
    DISPLAY_NAME = "Score new samples with a saved model"
    GROUP, GROUP_ID = "Anomalies", "anomalies"
    ICON = "score.svg"
    TOOLTIP = "Score new samples with the model an earlier run saved"
    HELP = (
        "Applies a detector trained by <b>Samples → anomalies</b> to new samples (a new survey, infill "
        "samples) without training again: the same elements, transform, scaling and detector.<br><br>"
        "<b>Model folder</b>: the <i>model</i> folder inside that run's output folder. The new samples need "
        "the model's element fields (same names).<br>"
        "<b>Commodity</b>: the model's own commodity unless you choose another; with a commodity the scores "
        "include its suite's enrichment and halo readouts and are compared with the commodity's own assay "
        "map and a pathfinder index."
    )

    MODEL = "MODEL"
    SCORES = "SCORES"

    def define_parameters(self) -> None:
        self.add_commodity_parameter(
            unset=MODEL_COMMODITY,
            help_text="The commodity whose enrichment and halos the scores read; the first choice keeps the one "
                      "the model was trained for.")
        self.add_samples_parameters(elements=False)
        # Pre-filled with the model of the project's newest Samples → anomalies run.
        newest = newest_run_output(QgsProject.instance(), "detect", "model")
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Model folder (the 'model' folder of a Samples → anomalies run)"),
            QgsProcessingParameterFile.Folder, defaultValue=str(newest) if newest else None))
        self.add_output_folder()
        self.addOutput(QgsProcessingOutputVectorLayer(self.SCORES, self.tr("Scored samples")))

    def check_inputs(self, parameters, context) -> None:
        super().check_inputs(parameters, context)
        model = Path(self.parameterAsFile(parameters, self.MODEL, context) or "")
        if not model.is_dir() or not any(model.iterdir()):
            raise QgsProcessingException(
                f"The model folder '{model}' does not exist or is empty: choose the 'model' folder inside the "
                "output folder of a Samples → anomalies run.")

    def run_label(self, parameters, context) -> str:
        model = read_json(Path(self.parameterAsFile(parameters, self.MODEL, context)) / "model.json") or {}
        return f"score {model.get('detector') or ''}".strip()

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        samples, _ = self.prepare_samples(parameters, context, feedback, run)
        return ["--model", self.parameterAsFile(parameters, self.MODEL, context), "--samples", str(samples),
                *self.commodity_arguments(parameters, context)]

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        scores = run.out_dir / "scores.gpkg"
        uri = f"{scores}|layername=scores"
        outputs = self.common_outputs(run)
        outputs[self.SCORES] = uri if scores.is_file() else None
        if scores.is_file():
            self.load_on_completion(context, run, uri, "Scored samples (saved model)", "vector", "points",
                                    rank=10, output_name=self.SCORES)
        return outputs
