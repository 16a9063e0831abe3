"""Grid samples to raster: one band per chosen field, interpolated from the sample points."""

from __future__ import annotations

from qgis.core import QgsProcessingOutputRasterLayer

from .base import EngineAlgorithm


class GridSamples(EngineAlgorithm):
    COMMAND = "grid"
    NAME = "grid_samples"
    DISPLAY_NAME = "Grid samples to raster"
    GROUP, GROUP_ID = "Samples", "samples"
    ICON = "grid.svg"
    TOOLTIP = "Turn sample values into a raster, one band per field"
    HELP = (
        "Interpolates sample values onto a regular grid: one band per field, named after the field, in a "
        "projected CRS in metres (samples in degrees are reprojected).<br><br>"
        "<b>Commodity</b>: what you explore for. With no fields chosen, the grid holds the elements the "
        "anomaly models read, in concentrations, and the commodity and its pathfinders are kept whatever their "
        "detection limits (below-limit values imputed): the raster stack for Geo-Hgan. Chosen fields are "
        "gridded as they are.<br>"
        "<b>Fields</b>: leave empty to grid every numeric field ending in _ppm, _ppb or _pct. "
        "<b>Cell size</b>: empty lets the engine choose it from the sample spacing. "
        "<b>Template raster</b> (advanced): the grid takes that raster's cells, extent and CRS, so it lines up "
        "with your other rasters."
    )

    GRID = "GRID"

    def define_parameters(self) -> None:
        self.add_commodity_parameter(help_text="With no fields chosen, the commodity and its pathfinders are kept "
                                               "in the grid whatever their detection limits. Chosen fields are "
                                               "gridded as they are.")
        self.add_samples_parameters(elements_help="Fields to grid (none chosen: every numeric field ending in "
                                                  "_ppm, _ppb or _pct)")
        self.add_cell_parameter()
        self.add_like_parameter()
        self.add_output_folder()
        self.addOutput(QgsProcessingOutputRasterLayer(self.GRID, self.tr("Gridded samples (one band per field)")))

    def engine_arguments(self, parameters, context, feedback, run) -> list[str]:
        samples, fields = self.prepare_samples(parameters, context, feedback, run)
        commodity = self.commodity_arguments(parameters, context)
        chosen = self.parameterAsFields(parameters, self.ELEMENTS, context)
        if commodity and not chosen:
            # The engine picks the elements, keeping the commodity's suite whatever its detection limits;
            # values stay concentrations (below-limit ones imputed), as without a commodity.
            what = [*commodity, "--transform", "none", "--scaling", "none"]
        else:
            if commodity:
                feedback.pushInfo(f"Fields chosen: they are gridded as they are; the commodity ({commodity[1]}) "
                                  "decides the elements only when no fields are chosen.")
            what = ["--fields", ",".join(fields)]
        return ["--samples", str(samples), *what, *self.cell_arguments(parameters, context),
                *self.like_arguments(parameters, context)]

    def collect_outputs(self, parameters, context, feedback, run) -> dict:
        grid = run.out_dir / "grid.tif"
        outputs = self.common_outputs(run)
        outputs[self.GRID] = str(grid) if grid.is_file() else None
        if grid.is_file():
            self.load_on_completion(context, run, grid, "Gridded samples", "raster", "anomaly", rank=90,
                                    output_name=self.GRID)
        return outputs
