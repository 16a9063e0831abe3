"""The base of every GeoAnomaly Processing algorithm: one engine command, run as a worker.

A new algorithm is a small subclass::

    class RasterAnomalies(EngineAlgorithm):
        COMMAND = "geohgan"                     # engine sub-command (core/commands/geohgan.py)
        NAME = "raster_anomalies"               # algorithm id: geoanomaly:raster_anomalies
        DISPLAY_NAME = "Rasters → anomalies"
        GROUP, GROUP_ID = "Anomalies", "anomalies"
        ICON = "raster_anomalies.svg"           # in geoanomaly_qgis/resources/icons/
        HELP = "What it does, for a geologist."

        def define_parameters(self):
            self.addParameter(QgsProcessingParameterMultipleLayers("RASTERS", ...))
            self.add_device_parameter()
            self.add_output_folder()            # --out DIR, added to argv by the base
            self.addOutput(QgsProcessingOutputRasterLayer("ANOMALY_RASTER", "Anomaly score"))

        def engine_arguments(self, parameters, context, feedback, run):
            return ["--rasters", ",".join(...), *self.device_arguments(parameters, context)]

        def collect_outputs(self, parameters, context, feedback, run):
            raster = run.out_dir / "anomaly_score.tif"
            self.load_on_completion(context, run, raster, "Anomaly score", kind="raster", style="anomaly")
            return {"ANOMALY_RASTER": str(raster), **self.common_outputs(run)}

What the base does (``processAlgorithm``): makes a scratch folder for
exported inputs, asks the subclass for the engine arguments, runs
``python -m core COMMAND ... --out DIR --progress json`` through
:mod:`geoanomaly_qgis.engine.worker` (progress bar, log, Cancel), turns an
engine failure into a ``QgsProcessingException`` carrying the engine's
one-line message, and on Cancel removes anything partial. Helpers declare the
common parameters (samples + element fields, deposits, device, seed, cell
size, output folder), check and export layers (:meth:`prepare_samples`,
:meth:`prepare_deposits`), and queue result layers for loading, styled and
grouped per run (:meth:`load_on_completion`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProject,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import outputs as lasting
from ..engine import EngineCancelled, EngineError, install_instructions, run_engine
from ..results_page import write_results_page
from ..settings import DEVICES, default_device, engine_interpreter
from ..styling import run_group_name
from . import layers as layer_checks
from .results import ResultLayerLoader

ICONS_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
REPLACE_LABEL = "Replace an earlier run in the output folder"
DEPOSITS_FILE = "deposits_used.gpkg"
# The engine's message of each algorithm's last failed run, for the error dialog the toolbar's dialogs show
# (plugin.py); taken (removed) when shown.
ENGINE_FAILURES: dict[str, str] = {}


@dataclass
class EngineRun:
    """One run of an algorithm: where its inputs and outputs go, and what the engine returned."""

    out_dir: Path
    workdir: Path
    group: str
    argv: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    samples_crs: QgsCoordinateReferenceSystem | None = None
    deposits_file: Path | None = None  # the deposits as the engine saw them, kept in the run folder


class EngineAlgorithm(QgsProcessingAlgorithm):
    """One engine command as a Processing algorithm (see the module docstring)."""

    COMMAND = ""
    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "Anomalies"
    GROUP_ID = "anomalies"
    ICON = "geoanomaly.svg"
    TOOLTIP = ""  # one line for the toolbar button and the toolbox
    HELP = ""

    # Parameter names shared by the algorithms (and by models built from them).
    SAMPLES = "SAMPLES"
    ELEMENTS = "ELEMENTS"
    DEPOSITS = "DEPOSITS"
    DEVICE = "DEVICE"
    COMMODITY = "COMMODITY"
    SEED = "SEED"
    CELL = "CELL"
    WORK_CRS = "WORK_CRS"
    LIKE = "LIKE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OVERWRITE = "OVERWRITE"
    RUN_RECORD = "RUN_RECORD"
    RESULTS_PAGE = "RESULTS_PAGE"

    # -- identity (QGIS asks for these) --------------------------------------
    def createInstance(self):  # noqa: N802 - QGIS API name
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def shortDescription(self) -> str:  # noqa: N802
        return self.TOOLTIP

    def icon(self) -> QIcon:
        return QIcon(str(ICONS_DIR / self.ICON))

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("GeoAnomaly", text)

    # -- what subclasses write ------------------------------------------------
    def initAlgorithm(self, config=None):  # noqa: N802
        self.define_parameters()

    def define_parameters(self) -> None:
        """Declare the parameters and outputs (use the ``add_*`` helpers)."""
        raise NotImplementedError

    def engine_arguments(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback, run: EngineRun) -> list[str]:
        """The engine command's options (without the command name, ``--out`` and ``--progress``)."""
        raise NotImplementedError

    def collect_outputs(self, parameters: dict, context: QgsProcessingContext,
                        feedback: QgsProcessingFeedback, run: EngineRun) -> dict[str, Any]:
        """The algorithm's results; queue layers with :meth:`load_on_completion`."""
        return self.common_outputs(run)

    def run_label(self, parameters: dict, context: QgsProcessingContext) -> str:
        """Names the run's layer group (with the time); e.g. the detector's name."""
        return self.NAME

    # -- the run ----------------------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Layer checks before the run starts, so the dialog can say what is wrong at once."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        try:
            self.check_inputs(parameters, context)
            self.check_output_folder(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def check_output_folder(self, parameters: dict, context: QgsProcessingContext) -> Path | None:
        """The output folder, checked before anything starts: writable, and not an earlier run unless replacing
        it was asked for (the engine refuses such a folder without ``--overwrite``)."""
        if self.parameterDefinition(self.OUTPUT_FOLDER) is None:
            return None
        out_dir = Path(self.parameterAsFileOutput(parameters, self.OUTPUT_FOLDER, context)).absolute()
        problem = lasting.check_writable(out_dir)
        if problem:
            raise QgsProcessingException(problem)
        if lasting.holds_earlier_run(out_dir) and not self.replace_earlier_run(parameters, context, out_dir):
            raise QgsProcessingException(
                f"The output folder {out_dir} holds an earlier run. Choose another output folder, or tick "
                f"'{self.tr(REPLACE_LABEL)}' (under Advanced parameters) to replace it.")
        return out_dir

    def replace_earlier_run(self, parameters: dict, context: QgsProcessingContext, out_dir: Path) -> bool:
        """Whether the earlier run in ``out_dir`` may be replaced: the parameter, or the user's answer."""
        if self.parameterDefinition(self.OVERWRITE) is not None and \
                self.parameterAsBoolean(parameters, self.OVERWRITE, context):
            return True
        return lasting.ask_to_replace(out_dir)

    def check_inputs(self, parameters: dict, context: QgsProcessingContext) -> None:
        """Raise ``QgsProcessingException`` for unusable inputs (extend in subclasses)."""
        if self.parameterDefinition(self.SAMPLES) is not None:
            source = self.parameterAsSource(parameters, self.SAMPLES, context)
            layer_checks.check_point_source(source, "samples", _selected_only(parameters.get(self.SAMPLES)))
            if self.parameterDefinition(self.ELEMENTS) is not None:
                layer_checks.check_element_choice(source, self.parameterAsFields(parameters, self.ELEMENTS, context))
        if self.parameterDefinition(self.DEPOSITS) is not None and parameters.get(self.DEPOSITS):
            deposits = self.parameterAsSource(parameters, self.DEPOSITS, context)
            layer_checks.check_point_source(deposits, "deposits", _selected_only(parameters.get(self.DEPOSITS)),
                                            need_numeric=False)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.check_inputs(parameters, context)
        out_dir = self.check_output_folder(parameters, context)
        workdir = Path(QgsProcessingUtils.tempFolder()) / f"geoanomaly-inputs-{uuid.uuid4().hex[:10]}"
        workdir.mkdir(parents=True, exist_ok=True)
        run = EngineRun(out_dir=out_dir or workdir, workdir=workdir,
                        group=run_group_name(self.run_label(parameters, context)))
        try:
            argv = [self.COMMAND, *self.engine_arguments(parameters, context, feedback, run)]
            if feedback.isCanceled():
                raise QgsProcessingException("Cancelled before the engine started.")
            if out_dir is not None:
                argv += ["--out", str(out_dir)]
                if lasting.holds_earlier_run(out_dir):  # replacing it was asked for (check_output_folder)
                    argv.append("--overwrite")
                    lasting.forget_answer(out_dir)
                    feedback.pushInfo(f"Replacing the earlier run in {out_dir}, as asked.")
            run.argv = argv
            # --debug: an unexpected engine failure prints its traceback into the log (the Details the user
            # can send), since QGIS has no command line to run again with it.
            run.result = self.run_worker([*argv, "--debug"], feedback, run)
            exported = workdir / "deposits.gpkg"
            if out_dir is not None and out_dir.is_dir() and exported.is_file():
                # Kept with the results: the map shows (and the run folder keeps) the deposits the run used.
                run.deposits_file = out_dir / DEPOSITS_FILE
                shutil.copy2(exported, run.deposits_file)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        feedback.setProgress(100.0)
        outputs = (run.result or {}).get("outputs")
        if isinstance(outputs, dict) and outputs:
            feedback.pushInfo("Engine outputs: " + ", ".join(sorted(outputs)) + f" in {run.out_dir}")
        if out_dir is not None and out_dir.is_dir():
            self.write_qgis_record(parameters, context, run)
        outputs = self.collect_outputs(parameters, context, feedback, run)
        if run.deposits_file is not None:
            self.load_on_completion(context, run, f"{run.deposits_file}|layername=deposits", "Known deposits",
                                    "vector", "deposits", rank=0)
        return outputs

    def write_qgis_record(self, parameters: dict, context: QgsProcessingContext, run: EngineRun) -> Path:
        """``qgis_run.json`` beside the engine's run.json: the QGIS side of the run, to reproduce a map.

        The engine only saw temporary exports of the layers; this names the
        layers themselves (source, CRS, selection), every parameter as
        Processing writes it, and the engine command.
        """
        from qgis.core import Qgis

        record: dict[str, Any] = {"algorithm": self.id(), "qgis": Qgis.QGIS_VERSION, "engine_command": run.argv,
                                  "parameters": {}, "layers": {}}
        for definition in self.parameterDefinitions():
            name = definition.name()
            if name not in parameters:
                continue
            value = parameters[name]
            record["parameters"][name] = definition.valueAsPythonString(value, context)
            if definition.type() not in {"source", "vector", "raster", "layer"}:
                continue
            layer_value = value.source.staticValue() if isinstance(value, QgsProcessingFeatureSourceDefinition) \
                else value
            layer = QgsProcessingUtils.mapLayerFromString(str(layer_value), context) \
                if isinstance(layer_value, str) else layer_value
            if hasattr(layer, "source") and hasattr(layer, "crs") and callable(layer.source):
                record["layers"][name] = {"name": layer.name(), "source": layer.source(),
                                          "crs": layer.crs().authid() or layer.crs().toWkt(),
                                          "selected_only": _selected_only(value)}
        path = run.out_dir / "qgis_run.json"
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        partial.replace(path)
        return path

    def run_worker(self, argv: list[str], feedback: QgsProcessingFeedback, run: EngineRun) -> dict[str, Any]:
        """Run the engine; failures become ``QgsProcessingException`` with the engine's message."""
        interpreter = engine_interpreter()
        if interpreter is None:
            raise QgsProcessingException(
                "The GeoAnomaly engine was not found. Set its Python interpreter in GeoAnomaly > Settings "
                "(or the GEOANOMALY_PYTHON environment variable), or install it:\n" + install_instructions()
            )
        feedback.pushInfo(f"Engine interpreter: {interpreter.python} (found via {interpreter.source})")
        existed = run.out_dir.exists()
        try:
            return run_engine(argv, feedback, python=interpreter.python)
        except EngineCancelled as exc:
            _remove_partial_output(run.out_dir, exc.pid, existed)
            raise QgsProcessingException(
                f"Cancelled: the engine was stopped; no output was written to {run.out_dir}.") from None
        except EngineError as exc:
            ENGINE_FAILURES[self.id()] = str(exc)
            raise QgsProcessingException(str(exc)) from None

    # -- parameter helpers ------------------------------------------------------
    def add_commodity_parameter(self, unset: str = "",
                                help_text: str = "The map reads enrichment of this commodity and its pathfinders, and "
                                            "is compared with the commodity's own assay map and a pathfinder "
                                            "index. None: any unusual chemistry.") -> None:
        """The first question: which commodity the map is for (the project's last answer is the default).

        ``unset`` names the first choice, the one that passes no ``--commodity`` (default: commodity-blind).
        """
        remembered = QgsProject.instance().readEntry(PROJECT_SCOPE, self.COMMODITY.lower(), "")[0]
        default = COMMODITIES.index(remembered) + 1 if remembered in COMMODITIES else 0
        param = QgsProcessingParameterEnum(
            self.COMMODITY, self.tr("Commodity explored for"), [unset or COMMODITY_BLIND] + COMMODITIES, False,
            default, True)
        param.setHelp(help_text)
        self.addParameter(param)

    def commodity_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        """``--commodity X`` (none for the first choice); remembers a chosen commodity in the project.

        The first choice is remembered as "none" only where it means commodity-blind: elsewhere (a saved
        model's own commodity) it says nothing about what the project explores for.
        """
        index = self.parameterAsEnum(parameters, self.COMMODITY, context) if parameters.get(self.COMMODITY) \
            not in (None, "") else 0
        chosen = COMMODITIES[index - 1] if index > 0 else ""
        if chosen or self.parameterDefinition(self.COMMODITY).options()[0] == COMMODITY_BLIND:
            project = context.project() or QgsProject.instance()
            project.writeEntry(PROJECT_SCOPE, self.COMMODITY.lower(), chosen)
        return ["--commodity", chosen] if chosen else []

    def add_samples_parameters(self, elements: bool = True,
                               elements_help: str = "Element fields (none chosen: every numeric field "
                                                    "ending in _ppm, _ppb or _pct)") -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, self.tr("Samples (point layer)"), [QgsProcessing.TypeVectorPoint],
            likely_samples_layer()))
        if elements:
            self.addParameter(QgsProcessingParameterField(
                self.ELEMENTS, self.tr(elements_help), None, self.SAMPLES,
                QgsProcessingParameterField.Numeric, True, True))

    def add_deposits_parameter(self, optional: bool = True) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.DEPOSITS, self.tr("Known deposits (point layer, for evaluation)"),
            [QgsProcessing.TypeVectorPoint], None, optional))

    def add_device_parameter(self) -> None:
        param = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), DEVICES, False,
                                           DEVICES.index(default_device()))
        param.setHelp("auto: a CUDA GPU when the engine sees one, else the CPU")
        self._advanced(param)

    def add_seed_parameter(self, default: int = 0) -> None:
        self._advanced(QgsProcessingParameterNumber(
            self.SEED, self.tr("Random seed (same seed, same result)"), QgsProcessingParameterNumber.Integer,
            default, True, 0))

    def add_cell_parameter(self) -> None:
        self.addParameter(QgsProcessingParameterNumber(
            self.CELL, self.tr("Raster cell size in metres (empty: chosen from the sample spacing)"),
            QgsProcessingParameterNumber.Double, None, True, 0.0))

    def add_work_crs_parameter(self) -> None:
        self._advanced(QgsProcessingParameterCrs(
            self.WORK_CRS, self.tr("Projected CRS for distances and rasters (empty: the samples' UTM zone)"),
            None, True))

    def add_like_parameter(self) -> None:
        self._advanced(QgsProcessingParameterRasterLayer(
            self.LIKE, self.tr("Lay the raster on the grid of this raster (same cells, extent and CRS; empty: a "
                               "grid fitted to the samples)"), None, True))

    def add_output_folder(self, label: str = "Output folder") -> None:
        # A new folder that lasts (see geoanomaly_qgis/outputs.py), named when the dialog opens.
        param = QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr(label),
                                                        lasting.new_run_folder(self.NAME))
        param.setHelp("Kept after QGIS closes: by default a new folder in 'GeoAnomaly' beside the project file, "
                      "or in your Documents when the project is not saved yet.")
        self.addParameter(param)
        self._advanced(QgsProcessingParameterBoolean(self.OVERWRITE, self.tr(REPLACE_LABEL), False, True))
        self.addOutput(QgsProcessingOutputFile(self.RUN_RECORD, self.tr("Run record (run.json)")))
        self.addOutput(QgsProcessingOutputHtml(self.RESULTS_PAGE, self.tr("Results page (success-rate curve)")))

    def _advanced(self, param: QgsProcessingParameterDefinition) -> None:
        param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(param)

    # -- argument helpers -------------------------------------------------------------
    def device_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        return ["--device", DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]]

    def seed_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        if parameters.get(self.SEED) in (None, ""):
            return []
        return ["--seed", str(self.parameterAsInt(parameters, self.SEED, context))]

    def cell_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        if parameters.get(self.CELL) in (None, "") or self.parameterAsDouble(parameters, self.CELL, context) <= 0:
            return []
        return ["--cell", repr(self.parameterAsDouble(parameters, self.CELL, context))]

    def like_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        """``--like FILE`` when a template raster was chosen: the engine lays its raster on that grid."""
        layer = self.parameterAsRasterLayer(parameters, self.LIKE, context)
        if layer is None:
            return []
        if layer.crs().isGeographic():
            raise QgsProcessingException(
                f"The template raster '{layer.name()}' is in a geographic CRS ({layer.crs().authid()}); choose a "
                "raster in a projected CRS in metres (the anomaly raster of an earlier run, for example).")
        if parameters.get(self.WORK_CRS):
            raise QgsProcessingException(
                "Choose either a projected CRS for distances or a template raster, not both: the template's CRS "
                "is used.")
        return ["--like", layer_checks.raster_file(layer, "template raster")]

    def work_crs_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        if not parameters.get(self.WORK_CRS):
            return []
        crs = self.parameterAsCrs(parameters, self.WORK_CRS, context)
        if not crs.isValid():
            return []
        if crs.isGeographic():
            raise QgsProcessingException(
                f"The working CRS {crs.authid()} is geographic (degrees); choose a projected CRS in metres.")
        return ["--work-crs", crs.authid() or crs.toWkt()]

    def prepare_samples(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                        run: EngineRun) -> tuple[Path, list[str]]:
        """Check the samples layer, export it for the engine; return the file and the element fields."""
        source = self.parameterAsSource(parameters, self.SAMPLES, context)
        layer_checks.check_point_source(source, "samples", _selected_only(parameters.get(self.SAMPLES)))
        chosen = self.parameterAsFields(parameters, self.ELEMENTS, context) if self.parameterDefinition(
            self.ELEMENTS) is not None else []
        elements = layer_checks.check_element_choice(source, chosen)
        if not chosen:
            feedback.pushInfo(f"No element fields chosen: the engine picks from the {len(elements)} numeric fields "
                              f"ending in _ppm, _ppb or _pct ({', '.join(elements[:8])}, ...), leaving out those "
                              "mostly missing.")
        note = layer_checks.geographic_crs_note(source.sourceCrs(), "samples")
        if note:
            feedback.pushWarning(note)
        run.samples_crs = source.sourceCrs()
        path = layer_checks.export_points(source, run.workdir / "samples.gpkg", context, feedback,
                                          layer_name="samples")
        feedback.pushInfo(f"Samples: {source.featureCount()} points from '{source.sourceName()}' "
                          f"({source.sourceCrs().authid()}).")
        return path, elements

    def prepare_deposits(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                         run: EngineRun, target_crs: QgsCoordinateReferenceSystem | None = None,
                         target_name: str | None = None) -> Path | None:
        """Check and export the deposits (reprojected to ``target_crs``, default the samples' CRS).

        ``target_name`` names what ``target_crs`` belongs to, for the log (default: "samples", or
        "rasters" when ``target_crs`` is given).
        """
        target_name = target_name or ("samples" if target_crs is None else "rasters")
        if self.parameterDefinition(self.DEPOSITS) is None or not parameters.get(self.DEPOSITS):
            return None
        source = self.parameterAsSource(parameters, self.DEPOSITS, context)
        if source is None:
            return None
        layer_checks.check_point_source(source, "deposits", _selected_only(parameters.get(self.DEPOSITS)),
                                        need_numeric=False)
        target = target_crs or run.samples_crs or source.sourceCrs()
        if source.sourceCrs() != target:
            feedback.pushInfo(f"Deposits are in {source.sourceCrs().authid()}; reprojected to {target.authid()}, "
                              f"the CRS of the {target_name}.")
        path = layer_checks.export_points(source, run.workdir / "deposits.gpkg", context, feedback,
                                          target_crs=target, layer_name="deposits")
        feedback.pushInfo(f"Deposits: {source.featureCount()} points from '{source.sourceName()}'.")
        return path

    # -- output helpers ---------------------------------------------------------------
    def common_outputs(self, run: EngineRun) -> dict[str, Any]:
        outputs: dict[str, Any] = {self.OUTPUT_FOLDER: str(run.out_dir)}
        record = run.out_dir / "run.json"
        outputs[self.RUN_RECORD] = str(record) if record.is_file() else None
        if self.outputDefinition(self.RESULTS_PAGE) is not None and run.out_dir.is_dir():
            page = write_results_page(run.out_dir, f"{self.displayName()} - {run.group}",
                                      self.results_lines(run, read_json(record) or {}))
            outputs[self.RESULTS_PAGE] = str(page) if page is not None else None
        return outputs

    def results_lines(self, run: EngineRun, record: dict[str, Any]) -> list[str]:
        """Sentences above the pictures of the results page (the run's figures, as the log gives them)."""
        return []

    def load_on_completion(self, context: QgsProcessingContext, run: EngineRun, path: str | Path, name: str,
                           kind: str = "raster", style: str | None = None, rank: int = 50,
                           output_name: str = "") -> None:
        """Queue a result layer: loaded when the run ends (dialog, runAndLoadResults), styled, in the run's group.

        ``kind`` is "raster" or "vector"; ``style`` "anomaly" (heat map), "prospectivity" (0..1 ramp),
        "classes" (named prospectivity classes), "points" (graduated on anomaly_score), "deposits" (stars),
        "queries" (places to check next) or None; lower ``rank`` is drawn on top.
        """
        if context.project() is None:  # qgis_process, or a context without a project: nothing to load into
            return
        details = QgsProcessingContext.LayerDetails(name, context.project(), output_name)
        details.forceName = True
        details.layerTypeHint = (QgsProcessingUtils.LayerHint.Raster if kind == "raster"
                                 else QgsProcessingUtils.LayerHint.Vector)
        details.setPostProcessor(ResultLayerLoader.create(run.group, style, rank, run.argv, run.out_dir))
        context.addLayerToLoadOnCompletion(str(path), details)


# The engine's commodity suites (core/preprocess/elements.py PATHFINDERS); the plugin does not import the engine.
COMMODITIES = ["Au", "Cu", "Ni", "W", "Li", "Pb-Zn"]
COMMODITY_BLIND = "None (commodity-blind: any unusual chemistry)"
PROJECT_SCOPE = "GeoAnomaly"
DEPOSIT_WORDS = ("deposit", "mine", "occurrence", "prospect", "showing")
RUN_OUTPUT_WORDS = ("scored", "places to check")  # point layers a run adds: never a run's input by default


def likely_deposits_layer() -> str | None:
    """The id of the project's point layer that looks like deposits (not the scored samples), as a default.

    Processing would otherwise pre-fill a required point input with the first point layer - often a run's
    "Scored samples".
    """
    return _first_point_layer(lambda name: any(word in name for word in DEPOSIT_WORDS))


def likely_samples_layer() -> str | None:
    """The id of the project's first point layer that looks like neither deposits nor a run's output.

    Processing would otherwise pre-fill the samples with whichever point layer comes first - after a run,
    often the run's "Known deposits".
    """
    return _first_point_layer(lambda name: not any(word in name for word in DEPOSIT_WORDS))


def _first_point_layer(wanted) -> str | None:
    from qgis.core import QgsProject, QgsVectorLayer, QgsWkbTypes

    for layer in QgsProject.instance().mapLayers().values():
        name = layer.name().lower()
        if isinstance(layer, QgsVectorLayer) and layer.geometryType() == QgsWkbTypes.PointGeometry and \
                wanted(name) and not any(word in name for word in RUN_OUTPUT_WORDS):
            return layer.id()
    return None


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_metric(sources: list[Any], name: str) -> float | None:
    """A number called ``name`` at the top of the first source that has it, or under its metrics."""
    for source in sources:
        if not isinstance(source, dict):
            continue
        metrics = source.get("metrics") if isinstance(source.get("metrics"), dict) else {}
        for holder in (source, metrics, *[v for v in metrics.values() if isinstance(v, dict)]):
            value = holder.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def _selected_only(value: Any) -> bool:
    return isinstance(value, QgsProcessingFeatureSourceDefinition) and bool(value.selectedFeaturesOnly)


def _remove_partial_output(out_dir: Path, pid: int, existed_before: bool) -> None:
    """After a cancel: the worker's staging folder, and the output folder if the run created it empty."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-{pid}*"):
        shutil.rmtree(stale, ignore_errors=True)
    if not existed_before and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()

