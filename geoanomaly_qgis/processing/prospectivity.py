"""Prospectivity (active learning): one KDAL cycle of ``geoanomaly prospectivity`` as a Processing algorithm.

The geologist's loop: run a cycle -> the K query points appear as a layer
with an empty ``label`` field -> label some of them (1 prospective, 0
background; leave the rest empty) and save -> run again with that layer as
*Labels*: the engine reads the edits and, beside them, everything the
previous cycle trained on (its ``labels.gpkg`` in the same run folder).
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from ..results_page import top_area_sentence
from . import layers as layer_checks
from .base import EngineAlgorithm, likely_deposits_layer, read_json

# (engine value, words in the dialog); run.json and the README keep the technical names (KL divergence with
# temperature, soft cross-entropy).
SOFT_LOSSES = [("kl", "follow the anomaly map's ranking, softened (recommended)"),
               ("ce", "follow the anomaly map's values as they are")]
CLASS_METHODS = [("area", "by area share (5 / 10 / 20 %)"), ("pa", "at the prediction-area crossing")]


class ProspectivityActiveLearning(EngineAlgorithm):
    COMMAND = "prospectivity"
    NAME = "prospectivity_active_learning"
    DISPLAY_NAME = "Prospectivity (active learning)"
    GROUP, GROUP_ID = "Prospectivity", "prospectivity"
    ICON = "prospectivity.svg"
    TOOLTIP = "Map prospectivity from evidence rasters and known deposits, and pick points for you to label"
    HELP = (
        "Turns anomaly rasters into a prospectivity map (0-1) step by step with you: "
        "the first evidence raster's anomaly scores teach a small classifier, the known deposits and your "
        "labels correct it, and it proposes the <b>K places whose chance of a find it is least sure about</b> "
        "for you to check (deposits are rare, so these are mostly the likeliest ground nobody has checked; "
        "a 0 crosses off the ground it covers).<br><br>"
        "<b>Evidence rasters</b>: on one grid (same CRS, cell size and extent); the first is the anomaly map. "
        "A commodity anomaly map from <i>Samples → anomalies</i> is offered first; a run's map is gridded again "
        "from its samples, so that the ground between sample clusters stays on the map.<br>"
        "<b>Labels</b>: after a cycle, the query points appear as a layer with an empty <i>label</i> field. "
        "Enter 1 (prospective) or 0 (background) for the places you checked, save the edits, and choose that "
        "layer here for the next cycle; labels from earlier cycles are carried over.<br>"
        "<b>Unattended cycles</b>: for evaluation, the deposits answer that many rounds of queries first.<br><br>"
        "Outputs: prospectivity raster, classes (very high / high / moderate / low), query points, "
        "success-rate curve and deposits per class from a spatially blocked cross-validation, run.json."
    )

    EVIDENCE = "EVIDENCE"
    LABELS = "LABELS"
    LABEL_FIELD = "LABEL_FIELD"
    ANOMALY_POINTS = "ANOMALY_POINTS"
    CYCLES = "CYCLES"
    K = "K"
    FOLDS = "FOLDS"
    SOFT_LOSS = "SOFT_LOSS"
    TEMPERATURE = "TEMPERATURE"
    CLASS_METHOD = "CLASS_METHOD"
    PROSPECTIVITY = "PROSPECTIVITY"
    CLASSES = "CLASSES"
    QUERIES = "QUERIES"
    TOP10 = "TOP10"
    TOP20 = "TOP20"
    SUCCESS_RATE_PLOT = "SUCCESS_RATE_PLOT"
    FIGURES = "FIGURES"

    def define_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.EVIDENCE, self.tr("Evidence rasters (one grid; the first is the anomaly map)"),
            QgsProcessing.TypeRaster, run_map_layers()[:1] or None))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.DEPOSITS, self.tr("Known deposits (point layer)"), [QgsProcessing.TypeVectorPoint],
            likely_deposits_layer()))
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.LABELS, self.tr("Labels (e.g. the edited query points of the previous cycle)"),
            [QgsProcessing.TypeVectorPoint], None, True))
        self.addParameter(QgsProcessingParameterField(
            self.LABEL_FIELD, self.tr("Label field (1 prospective, 0 background, empty = not checked)"), "label",
            self.LABELS, QgsProcessingParameterField.Any, False, True))
        self.addParameter(QgsProcessingParameterNumber(
            self.K, self.tr("Query points per cycle (K)"), QgsProcessingParameterNumber.Integer, 5, False, 0))
        self.addParameter(QgsProcessingParameterNumber(
            self.CYCLES, self.tr("Unattended cycles answered by the deposits (0: one cycle on your labels)"),
            QgsProcessingParameterNumber.Integer, 0, False, 0))
        self._advanced(QgsProcessingParameterFeatureSource(
            self.ANOMALY_POINTS, self.tr("High-confidence anomalies added as positives (points)"),
            [QgsProcessing.TypeVectorPoint], None, True))
        self._advanced(QgsProcessingParameterNumber(
            self.FOLDS, self.tr("Cross-validation folds (0: none)"), QgsProcessingParameterNumber.Integer, 5,
            False, 0))
        self._advanced(QgsProcessingParameterEnum(
            self.SOFT_LOSS, self.tr("How closely to follow the anomaly map"), [label for _, label in SOFT_LOSSES], False, 0))
        self._advanced(QgsProcessingParameterNumber(
            self.TEMPERATURE, self.tr("Softening (higher: the anomaly map's ranking counts less strictly)"), QgsProcessingParameterNumber.Double, 2.0,
            False, 0.01))
        self._advanced(QgsProcessingParameterEnum(
            self.CLASS_METHOD, self.tr("Classes"), [label for _, label in CLASS_METHODS], False, 0))
        self.add_seed_parameter()
        self.add_device_parameter()
        self.add_output_folder("Run folder")
        self.addOutput(QgsProcessingOutputRasterLayer(self.PROSPECTIVITY, self.tr("Prospectivity (0-1)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.CLASSES, self.tr("Prospectivity classes")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.QUERIES, self.tr("Query points to label")))
        self.addOutput(QgsProcessingOutputNumber(self.TOP10, self.tr("Share of deposits in the top 10 % of the area")))
        self.addOutput(QgsProcessingOutputNumber(self.TOP20, self.tr("Share of deposits in the top 20 % of the area")))
        self.addOutput(QgsProcessingOutputFile(self.SUCCESS_RATE_PLOT, self.tr("Success-rate curve (PNG)")))
        self.addOutput(QgsProcessingOutputHtml(self.FIGURES, self.tr("The map next to its alternatives")))

    def check_inputs(self, parameters, context) -> None:
        super().check_inputs(parameters, context)
        labels = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        if labels is not None and labels.isEditable() and labels.isModified():
            raise QgsProcessingException(
                f"The labels layer '{labels.name()}' has unsaved edits: save them (Toggle Editing > Save) first.")

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        rasters = self.parameterAsLayerList(parameters, self.EVIDENCE, context)
        if not rasters:
            raise QgsProcessingException("Choose at least one evidence raster (the anomaly map first).")
        argv: list[str] = []
        for layer in rasters:
            run_folder = detect_run_folder(layer.source())
            if run_folder is None:
                argv += ["--evidence", layer_checks.raster_file(layer, "evidence layer")]
                continue
            # The run's own samples, gridded again by the engine: on clustered surveys the run's raster leaves
            # the ground between sample clusters (and deposits there) off the map.
            commodity = (read_json(run_folder / "run.json") or {}).get("commodity") or {}
            feedback.pushInfo(f"Evidence: the anomaly map of the run in {run_folder.name} ("
                              + (f"{commodity.get('name')} and its pathfinders" if commodity else
                                 "any unusual chemistry, not one commodity")
                              + "), gridded from its samples so that the ground between sample clusters stays "
                                "on the map.")
            argv += ["--evidence", str(run_folder)]
        grid_crs = rasters[0].crs()
        deposits = self.prepare_deposits(parameters, context, feedback, run, target_crs=grid_crs)
        if deposits is None:
            raise QgsProcessingException("Choose the known deposits (a point layer).")
        argv += ["--deposits", str(deposits)]
        argv += self._labels_arguments(parameters, context, feedback, run)
        if parameters.get(self.ANOMALY_POINTS):
            source = self.parameterAsSource(parameters, self.ANOMALY_POINTS, context)
            path = layer_checks.export_points(source, run.workdir / "anomaly_points.gpkg", context, feedback,
                                              target_crs=grid_crs, layer_name="anomaly_points")
            argv += ["--anomaly-cells", str(path)]
        argv += ["--k", str(self.parameterAsInt(parameters, self.K, context)),
                 "--cycles", str(self.parameterAsInt(parameters, self.CYCLES, context)),
                 "--folds", str(self.parameterAsInt(parameters, self.FOLDS, context)),
                 "--soft-loss", SOFT_LOSSES[self.parameterAsEnum(parameters, self.SOFT_LOSS, context)][0],
                 "--temperature", repr(self.parameterAsDouble(parameters, self.TEMPERATURE, context)),
                 "--classes", CLASS_METHODS[self.parameterAsEnum(parameters, self.CLASS_METHOD, context)][0]]
        argv += self.seed_arguments(parameters, context)
        argv += self.device_arguments(parameters, context)
        return argv

    def _labels_arguments(self, parameters, context, feedback, run) -> list[str]:
        layer = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        if layer is None:
            return []
        field = self.parameterAsString(parameters, self.LABEL_FIELD, context) or "label"
        if layer.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"The labels layer '{layer.name()}' has no field '{field}'.")
        path = Path(layer.source().split("|")[0])
        if layer.providerType() == "ogr" and path.suffix.lower() == ".gpkg" and path.is_file():
            # The file itself: beside a previous cycle's queries.gpkg lies the pool so far.
            feedback.pushInfo(f"Labels: {layer.featureCount()} points from {path}.")
            return ["--labels", str(path), "--label-field", field]
        source = self.parameterAsSource(parameters, self.LABELS, context)
        exported = layer_checks.export_points(source, run.workdir / "labels.gpkg", context, feedback,
                                              layer_name="labels")
        return ["--labels", str(exported), "--label-field", field]

    def results_lines(self, run, record) -> list[str]:
        metrics = record.get("metrics") or {}
        top = (metrics.get("prospectivity") or {}).get("deposits_in_top_area") or {}
        source = metrics.get("figures_from")
        return [top_area_sentence(top) + (f" ({source})" if source else "")]

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        out = run.out_dir
        prospectivity = out / "prospectivity.tif"
        classes = out / "prospectivity_classes.tif"
        queries = out / "queries.gpkg"
        queries_uri = f"{queries}|layername=queries"
        plot = out / "success_rate.png"
        record = read_json(out / "run.json") or {}
        top = ((record.get("metrics") or {}).get("prospectivity") or {}).get("deposits_in_top_area") or {}
        outputs = self.common_outputs(run)
        outputs.update({
            self.PROSPECTIVITY: str(prospectivity) if prospectivity.is_file() else None,
            self.CLASSES: str(classes) if classes.is_file() else None,
            self.QUERIES: queries_uri if queries.is_file() else None,
            self.SUCCESS_RATE_PLOT: str(plot) if plot.is_file() else None,
            self.FIGURES: write_figures_page(out, record) if plot.is_file() else None,
            self.TOP10: top.get("10"),
            self.TOP20: top.get("20"),
        })
        if top:
            feedback.pushInfo(f"Deposits in the top 10 % / 20 % of the area: {top['10'] * 100:.0f} % / "
                              f"{top['20'] * 100:.0f} % ({(record.get('metrics') or {}).get('figures_from', '')})")
        cycle = record.get("cycle", "")
        if prospectivity.is_file():
            self.load_on_completion(context, run, prospectivity, f"Prospectivity (cycle {cycle})", "raster",
                                    "prospectivity", rank=90, output_name=self.PROSPECTIVITY)
        if classes.is_file():
            self.load_on_completion(context, run, classes, f"Prospectivity classes (cycle {cycle})", "raster",
                                    "classes", rank=95, output_name=self.CLASSES)
        if queries.is_file():
            self.load_on_completion(context, run, queries_uri, f"Places to check next (cycle {cycle})", "vector",
                                    "queries", rank=5, output_name=self.QUERIES)
        return outputs

    def run_label(self, parameters, context) -> str:
        return "prospectivity"


def detect_run_folder(source: str) -> Path | None:
    """The detect run folder whose map (``anomaly_score.tif``, beside its run.json and scored samples) ``source`` is."""
    path = Path(str(source).split("|")[0])
    folder = path.parent
    if path.name != "anomaly_score.tif" or not (folder / "scores.gpkg").is_file():
        return None
    return folder if (read_json(folder / "run.json") or {}).get("command") == "detect" else None


def run_map_layers() -> list[str]:
    """Ids of the project's rasters that are a detect run's map: commodity-aware runs first, then the newest.

    The first is the prospectivity algorithm's default evidence: the run's commodity-aware map.
    """
    from qgis.core import QgsProject, QgsRasterLayer

    found = []
    for layer in QgsProject.instance().mapLayers().values():
        folder = detect_run_folder(layer.source()) if isinstance(layer, QgsRasterLayer) else None
        if folder is not None:
            record = read_json(folder / "run.json") or {}
            found.append((record.get("commodity") is not None, str(record.get("started", "")), layer.id()))
    return [layer_id for *_, layer_id in sorted(found, reverse=True)]


def write_figures_page(out: Path, record: dict) -> str:
    """``figures.html`` in the run folder: the plot and, per map, the held-out deposits it captures.

    Processing's Results Viewer shows it, so the geologist sees the map next to
    the evidence alone and the classical methods without opening files.
    """
    metrics = record.get("metrics") or {}
    rows = [("KDAL prospectivity map", metrics.get("prospectivity") or {}),
            ("evidence alone", metrics.get("anomaly_map_alone") or {}),
            *((name, figures) for name, figures in (metrics.get("baselines") or {}).items())]
    lines = []
    for name, figures in rows:
        top = figures.get("deposits_in_top_area") or {}
        cells = "".join(f"<td>{top[k] * 100:.0f} %</td>" if k in top else "<td></td>" for k in ("5", "10", "20"))
        auc = figures.get("auc")
        lines.append(f"<tr><td>{name}</td>{cells}<td>{auc:.3f}</td></tr>" if isinstance(auc, float)
                     else f"<tr><td>{name}</td>{cells}<td></td></tr>")
    check = metrics.get("never_worse_than_evidence") or {}
    verdict = ("" if not check else "<p>On held-out deposits the map captures at least as many as the evidence alone."
               "</p>" if check.get("holds") else "<p><b>On held-out deposits the map captures fewer deposits than the "
               "evidence alone: prefer the evidence raster.</b></p>")
    html = (f"<h3>Prospectivity, cycle {record.get('cycle', '')}</h3>"
            f"<p>Figures from {metrics.get('figures_from', '')}.</p>{verdict}"
            "<table border='1' cellpadding='3'><tr><th>map</th><th>deposits in top 5 % of area</th>"
            "<th>top 10 %</th><th>top 20 %</th><th>success-rate AUC</th></tr>" + "".join(lines) + "</table>"
            f"<p><img src='{(out / 'success_rate.png').resolve().as_uri()}' width='900'></p>")
    path = out / "figures.html"
    path.write_text(html, encoding="utf-8")
    return str(path)
