"""Raster anomalies (Geo-Hgan): ``geoanomaly geohgan`` as a Processing algorithm."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from . import layers as layer_checks
from .base import EngineAlgorithm, read_json

SCORE_LAYERS = [  # (output name, engine file stem, layer name)
    ("ANOMALY_SCORE", "anomaly_score", "Geo-Hgan anomaly score"),
    ("IMG_DISTANCE", "img_distance", "Geo-Hgan image distance"),
    ("Z_DISTANCE", "z_distance", "Geo-Hgan latent distance"),
]
# With a commodity: the suite's enrichment read from Geo-Hgan's own residuals, and the same readout on the
# suite bands with no model (the better map where a survey lies inside the mineralised field; see README).
COMMODITY_LAYERS = [
    ("SUITE_ENRICHMENT", "suite_enrichment", "Commodity suite enrichment (Geo-Hgan residuals, halo)"),
    ("SUITE_HALO", "suite_halo", "Commodity suite halo (no model)"),
]


class RasterAnomaliesGeoHgan(EngineAlgorithm):
    COMMAND = "geohgan"
    NAME = "raster_anomalies_geohgan"
    DISPLAY_NAME = "Raster anomalies (Geo-Hgan)"
    GROUP, GROUP_ID = "Anomalies", "anomalies"
    ICON = "raster_anomalies.svg"
    TOOLTIP = "Find anomalies in a stack of rasters (gridded elements, geophysics)"
    HELP = (
        "Finds multi-element anomalies in geochemical <b>rasters</b> (one band per element, e.g. the output of "
        "<i>Grid samples to raster</i>) with Geo-Hgan: an autoencoder, a latent-space GAN and a WGAN critic "
        "learn what background tiles of the grid look like; cells whose tiles the model cannot reproduce score "
        "high.<br><br>"
        "<b>Rasters</b>: one multi-band raster, or several single-band rasters on one grid (same CRS, cell size "
        "and extent). <b>Bands</b>: names or numbers, comma-separated (empty: all).<br>"
        "<b>Known deposits</b> (optional): used only to choose which of the three scores feeds the anomaly cells "
        "(by cell AUC; the run record says so) and to report AUCs - never to train.<br><br>"
        "Outputs: three score rasters (anomaly score, image distance, latent distance) as heat maps, the "
        "high-confidence anomaly cells (Tukey fence + distribution filter) as points - ready as positives for "
        "<i>Prospectivity (active learning)</i> - and run.json."
    )

    RASTERS = "RASTERS"
    BANDS = "BANDS"
    TILE = "TILE"
    STRIDE = "STRIDE"
    EPOCHS = "EPOCHS"
    TILES_PER_EPOCH = "TILES_PER_EPOCH"
    ANOMALY_CELLS = "ANOMALY_CELLS"

    def define_parameters(self) -> None:
        self.add_commodity_parameter()
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.RASTERS, self.tr("Geochemical rasters (one band per element, on one grid)"),
            QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, self.tr("Bands to use (names or numbers, comma-separated; empty: all)"), None, False, True))
        self.add_deposits_parameter()
        self._advanced(QgsProcessingParameterNumber(
            self.TILE, self.tr("Tile size (cells)"), QgsProcessingParameterNumber.Integer, 8, False, 2))
        self._advanced(QgsProcessingParameterNumber(
            self.STRIDE, self.tr("Tile stride (cells)"), QgsProcessingParameterNumber.Integer, 4, False, 1))
        self._advanced(QgsProcessingParameterNumber(
            self.EPOCHS, self.tr("Training epochs (each step)"), QgsProcessingParameterNumber.Integer, 15, False, 1))
        self._advanced(QgsProcessingParameterNumber(
            self.TILES_PER_EPOCH, self.tr("Tiles drawn per epoch"), QgsProcessingParameterNumber.Integer, 8192,
            False, 16))
        self.add_seed_parameter()
        self.add_device_parameter()
        self.add_output_folder()
        for output, _, label in COMMODITY_LAYERS + SCORE_LAYERS:
            self.addOutput(QgsProcessingOutputRasterLayer(output, self.tr(label)))
        self.addOutput(QgsProcessingOutputVectorLayer(self.ANOMALY_CELLS, self.tr("High-confidence anomaly cells")))

    def check_inputs(self, parameters, context) -> None:
        super().check_inputs(parameters, context)
        for layer in self.parameterAsLayerList(parameters, self.RASTERS, context):
            layer_checks.raster_file(layer, "raster layer")

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        rasters = self.parameterAsLayerList(parameters, self.RASTERS, context)
        if not rasters:
            raise QgsProcessingException("Choose at least one geochemical raster.")
        argv: list[str] = self.commodity_arguments(parameters, context)
        for layer in rasters:
            argv += ["--raster", layer_checks.raster_file(layer, "raster layer")]
        bands = (self.parameterAsString(parameters, self.BANDS, context) or "").strip()
        if bands:
            argv += ["--bands", bands]
        deposits = self.prepare_deposits(parameters, context, feedback, run, target_crs=rasters[0].crs())
        if deposits is not None:
            argv += ["--deposits", str(deposits)]
        argv += ["--tile", str(self.parameterAsInt(parameters, self.TILE, context)),
                 "--stride", str(self.parameterAsInt(parameters, self.STRIDE, context)),
                 "--epochs", str(self.parameterAsInt(parameters, self.EPOCHS, context)),
                 "--tiles-per-epoch", str(self.parameterAsInt(parameters, self.TILES_PER_EPOCH, context))]
        argv += self.seed_arguments(parameters, context)
        argv += self.device_arguments(parameters, context)
        return argv

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        out = run.out_dir
        outputs = self.common_outputs(run)
        record = read_json(out / "run.json") or {}
        chosen = (record.get("metric") or {}).get("metric")
        if chosen:
            how = (record.get("metric") or {}).get("how", "")
            feedback.pushInfo(f"Anomaly cells use {chosen}: {how}")
        for rank, (output, stem, label) in enumerate(COMMODITY_LAYERS + SCORE_LAYERS):
            path = out / f"{stem}.tif"
            outputs[output] = str(path) if path.is_file() else None
            if path.is_file():
                self.load_on_completion(context, run, path, label, "raster", "anomaly", rank=78 + rank,
                                        output_name=output)
        cells = out / "anomaly_cells.gpkg"
        cells_uri = f"{cells}|layername=anomaly_cells"
        outputs[self.ANOMALY_CELLS] = cells_uri if cells.is_file() else None
        if cells.is_file():
            self.load_on_completion(context, run, cells_uri, "High-confidence anomaly cells", "vector", "points",
                                    rank=5, output_name=self.ANOMALY_CELLS)
        return outputs

    def run_label(self, parameters, context) -> str:
        return "geohgan"


