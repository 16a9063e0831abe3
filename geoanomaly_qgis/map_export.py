"""A prospectivity map a geologist can hand over: a QgsPrintLayout exported as PDF and PNG.

The layout (A4 landscape) holds the map (prospectivity raster under the known
deposits), a title, a legend, a scale bar, a north arrow, the map's CRS and
the run's parameters (from its ``run.json``). Everything is built from file
paths in a private :class:`QgsProject`, so the user's project is never
changed and the export runs the same from the toolbar, the Processing
dialog or a headless test.

Item ids (for tests and for users editing the layout): ``map``, ``title``,
``legend``, ``scalebar``, ``north_arrow``, ``crs``, ``parameters``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsColorRampShader,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemPicture,
    QgsLayoutItemScaleBar,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsMapLayerLegendUtils,
    QgsMarkerSymbol,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRectangle,
    QgsRenderContext,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QRectF, Qt
from qgis.PyQt.QtGui import QColor, QFont

PAGE = (297.0, 210.0)  # A4 landscape, mm
MAP_RECT = QRectF(10.0, 22.0, 200.0, 178.0)  # x, y, width, height in mm
SIDE_X = 215.0
NORTH_ARROW_SVG = Path("/usr/share/qgis/svg/arrows/NorthArrow_02.svg")

# Prospectivity 0..1: pale where background, dark red where prospective
# (the same reading as the anomaly heat map, opaque so the print is clear).
PROSPECTIVITY_STOPS = [
    (0.0, QColor(255, 255, 229), "0 (background)"),
    (0.25, QColor(254, 227, 145), "0.25"),
    (0.5, QColor(254, 153, 41), "0.5"),
    (0.75, QColor(217, 72, 1), "0.75"),
    (1.0, QColor(127, 39, 4), "1 (prospective)"),
]
# Parameters of the run worth printing on the map, in this order, in the words a map reader knows. The model's
# own settings (soft loss, temperature, hidden units, normalisation) stay in run.json.
PRINTED_PARAMETERS = {"evidence": "evidence", "cycles": "labelling cycles", "k": "places proposed per cycle",
                      "classes": "classes from", "class_shares": "class area shares", "folds": "validation folds",
                      "seed": "seed"}
CLASS_METHODS = {"pa": "the prediction-area crossing", "area": "area shares"}


@dataclass
class ExportedMap:
    pdf: Path | None
    png: Path | None
    item_ids: list[str]


def run_parameters_text(run_json: str | Path | None) -> str:
    """A few lines describing the run (parameters, cycle, cross-validated figures) from its run.json."""
    if not run_json or not Path(run_json).is_file():
        return "Run parameters: not available"
    try:
        record = json.loads(Path(run_json).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "Run parameters: run.json unreadable"
    params = record.get("parameters", {})
    parts = []
    for key, label in PRINTED_PARAMETERS.items():
        if key in params and params[key] not in (None, "", []):
            value = params[key]
            if key == "evidence":
                value = ", ".join(Path(v).name for v in value)
            elif key == "classes":
                value = CLASS_METHODS.get(value, value)
            parts.append(f"{label}: {value}")
    lines = ["Run: geoanomaly " + str(record.get("command", "prospectivity"))
             + (f", cycle {record['cycle']}" if "cycle" in record else "")
             + (f", {record['started']}" if "started" in record else "")]
    lines += ["; ".join(parts[i:i + 3]) for i in range(0, len(parts), 3)]
    metrics = record.get("metrics", {})
    top = (metrics.get("prospectivity") or {}).get("deposits_in_top_area")
    if isinstance(top, dict) and "10" in top and "20" in top:
        lines.append(f"Deposits in the top 10 % / 20 % of the area: {top['10'] * 100:.0f} % / "
                     f"{top['20'] * 100:.0f} % ({metrics.get('figures_from', '')})")
    return "\n".join(lines)


def style_prospectivity(layer: QgsRasterLayer) -> None:
    """Opaque 0..1 ramp with labelled stops (the legend shows them)."""
    function = QgsColorRampShader(0.0, 1.0)
    function.setColorRampType(QgsColorRampShader.Interpolated)
    function.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, c, label) for v, c, label in PROSPECTIVITY_STOPS])
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)


def style_deposits(layer: QgsVectorLayer) -> None:
    symbol = QgsMarkerSymbol.createSimple({"name": "triangle", "color": "0,0,0", "outline_color": "255,255,255",
                                           "outline_width": "0.3", "size": "3"})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))


def _label(layout: QgsPrintLayout, item_id: str, text: str, x: float, y: float, w: float, h: float,
           size: float, bold: bool = False) -> QgsLayoutItemLabel:
    label = QgsLayoutItemLabel(layout)
    label.setId(item_id)
    label.setText(text)
    font = QFont("Sans Serif", 1)
    font.setPointSizeF(size)
    font.setBold(bold)
    label.setFont(font)
    label.setHAlign(Qt.AlignLeft)
    layout.addLayoutItem(label)
    label.attemptMove(QgsLayoutPoint(x, y, QgsUnitTypes.LayoutMillimeters))
    label.attemptResize(QgsLayoutSize(w, h, QgsUnitTypes.LayoutMillimeters))
    return label


def build_layout(project: QgsProject, prospectivity: QgsRasterLayer, deposits: QgsVectorLayer | None,
                 title: str, parameters_text: str) -> QgsPrintLayout:
    """The print layout for ``prospectivity`` (+ ``deposits``), both already in ``project``."""
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.setName(title)
    page = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(PAGE[0], PAGE[1], QgsUnitTypes.LayoutMillimeters))

    layers = ([deposits] if deposits is not None else []) + [prospectivity]
    crs = prospectivity.crs()
    map_item = QgsLayoutItemMap(layout)
    map_item.setId("map")
    layout.addLayoutItem(map_item)  # first: sizes are converted through the layout
    map_item.attemptMove(QgsLayoutPoint(MAP_RECT.x(), MAP_RECT.y(), QgsUnitTypes.LayoutMillimeters))
    map_item.attemptResize(QgsLayoutSize(MAP_RECT.width(), MAP_RECT.height(), QgsUnitTypes.LayoutMillimeters))
    map_item.setCrs(crs)
    map_item.setLayers(layers)
    map_item.setKeepLayerSet(True)
    map_item.setFrameEnabled(True)
    extent = QgsRectangle(prospectivity.extent())
    extent.scale(1.05)
    # zoomToExtent alone leaves a moved item's extent empty (QGIS 3.22); setExtent fits the
    # item to the extent, so restore the frame's size and zoom again to keep the page layout.
    map_item.setExtent(extent)
    map_item.attemptResize(QgsLayoutSize(MAP_RECT.width(), MAP_RECT.height(), QgsUnitTypes.LayoutMillimeters))
    map_item.zoomToExtent(extent)

    _label(layout, "title", title, 10.0, 6.0, 277.0, 12.0, 18, bold=True)

    # The raster's first legend entry is its band name ("Band 1: prospectivity (Gray)"): show the ramp only.
    node = project.layerTreeRoot().findLayer(prospectivity.id())
    if node is not None:
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, [1])
    legend = QgsLayoutItemLegend(layout)
    legend.setId("legend")
    legend.setTitle("Legend")
    legend.setLinkedMap(map_item)
    # The legend follows the private project's layer tree: just these layers, deposits on top.
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(SIDE_X, 22.0, QgsUnitTypes.LayoutMillimeters))

    scalebar = QgsLayoutItemScaleBar(layout)
    scalebar.setId("scalebar")
    scalebar.setStyle("Single Box")
    scalebar.setLinkedMap(map_item)
    scalebar.setUnits(QgsUnitTypes.DistanceKilometers)
    scalebar.setUnitLabel("km")
    scalebar.setNumberOfSegments(4)
    scalebar.setNumberOfSegmentsLeft(0)
    km_per_unit = 111.0 if crs.isGeographic() else QgsUnitTypes.fromUnitToUnitFactor(
        crs.mapUnits(), QgsUnitTypes.DistanceKilometers)
    scalebar.setUnitsPerSegment(_tidy_segment(map_item.extent().width() * km_per_unit / 5.0))
    layout.addLayoutItem(scalebar)
    scalebar.attemptMove(QgsLayoutPoint(12.0, 186.0, QgsUnitTypes.LayoutMillimeters))

    arrow = QgsLayoutItemPicture(layout)
    arrow.setId("north_arrow")
    arrow.setPicturePath(str(NORTH_ARROW_SVG))
    arrow.setLinkedMap(map_item)  # rotates with the map
    layout.addLayoutItem(arrow)
    arrow.attemptMove(QgsLayoutPoint(190.0, 25.0, QgsUnitTypes.LayoutMillimeters))
    arrow.attemptResize(QgsLayoutSize(15.0, 18.0, QgsUnitTypes.LayoutMillimeters))

    crs_text = f"CRS: {crs.authid() or 'custom'} - {crs.description()}"
    _label(layout, "crs", crs_text, SIDE_X, 150.0, 75.0, 10.0, 8)
    _label(layout, "parameters", parameters_text, SIDE_X, 162.0, 75.0, 40.0, 7)
    return layout


def _tidy_segment(value_km: float) -> float:
    """A segment length of 1, 2 or 5 x 10^k km near ``value_km``."""
    import math

    if value_km <= 0:
        return 1.0
    exponent = math.floor(math.log10(value_km))
    base = value_km / 10**exponent
    step = 1 if base < 1.5 else 2 if base < 3.5 else 5
    return step * 10**exponent


def export_prospectivity_map(prospectivity_path: str | Path, pdf_path: str | Path | None = None,
                             png_path: str | Path | None = None, deposits: str | QgsVectorLayer | None = None,
                             run_json: str | Path | None = None, title: str = "Mineral prospectivity",
                             dpi: int = 150) -> ExportedMap:
    """Lay out and export the map; returns the files written and the layout item ids.

    ``deposits``: a point layer (copied, the original is left alone), an OGR
    source (``file.gpkg|layername=x``), a delimited-text URI, or a CSV with
    lon/lat ``X``/``Y`` columns (read as EPSG:4326).
    """
    project = QgsProject()
    raster = QgsRasterLayer(str(prospectivity_path), "Prospectivity (0-1)")
    if not raster.isValid():
        raise ValueError(f"cannot open the prospectivity raster {prospectivity_path}")
    style_prospectivity(raster)
    project.addMapLayer(raster)
    points = None
    if deposits is not None and deposits != "":
        points = deposits.clone() if isinstance(deposits, QgsVectorLayer) else _open_points(str(deposits))
        points.setName("Known deposits")
        style_deposits(points)
        project.addMapLayer(points)
    if run_json is None:
        candidate = Path(prospectivity_path).with_name("run.json")
        run_json = candidate if candidate.is_file() else None
    layout = build_layout(project, raster, points, title, run_parameters_text(run_json))
    exporter = QgsLayoutExporter(layout)
    written_pdf = written_png = None
    if pdf_path:
        settings = QgsLayoutExporter.PdfExportSettings()
        settings.dpi = dpi
        settings.rasterizeWholeImage = False
        # Real text (searchable, selectable), not outlines: scale bar labels included.
        settings.textRenderFormat = QgsRenderContext.TextFormatAlwaysText
        result = exporter.exportToPdf(str(pdf_path), settings)
        if result != QgsLayoutExporter.Success:
            raise OSError(f"PDF export to {pdf_path} failed: {exporter.errorMessage()}")
        written_pdf = Path(pdf_path)
    if png_path:
        settings = QgsLayoutExporter.ImageExportSettings()
        settings.dpi = dpi
        result = exporter.exportToImage(str(png_path), settings)
        if result != QgsLayoutExporter.Success:
            raise OSError(f"PNG export to {png_path} failed: {exporter.errorMessage()}")
        written_png = Path(png_path)
    ids = [item.id() for item in layout.items() if hasattr(item, "id") and item.id()]
    return ExportedMap(written_pdf, written_png, ids)


def _open_points(source: str) -> QgsVectorLayer:
    if "://" in source or "type=csv" in source:
        layer = QgsVectorLayer(source, "Known deposits", "delimitedtext")
    elif source.lower().endswith(".csv"):
        uri = (f"{Path(source).resolve().as_uri()}?type=csv&detectTypes=yes&xField=X&yField=Y&crs=EPSG:4326"
               "&geomType=point")
        layer = QgsVectorLayer(uri, "Known deposits", "delimitedtext")
    else:
        layer = QgsVectorLayer(source, "Known deposits", "ogr")
    if not layer.isValid():
        raise ValueError(f"cannot open the deposits {source}")
    return layer
