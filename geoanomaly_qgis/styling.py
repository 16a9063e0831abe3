"""Styles for result layers, and a layer group per run.

- Anomaly rasters: the heat-map style in ``resources/styles/anomaly_score.qml``
  (single-band pseudocolor, transparent at background values so the basemap
  shows through, yellow -> red -> dark red for anomalies). Its colour stops
  are written at positions 0..1 and stretched here between the 2nd and 98th
  percentiles of the layer's values, so one outlier cannot wash the map out.
- Scored points: graduated symbols (quantile classes, the same colours, larger
  symbols for higher scores).
- Prospectivity classes: a palette with the class names (very high ... low).
- Known deposits: black stars with a white rim, drawn above the heat map.

Each raster's legend is titled in plain words (:data:`LEGEND_TITLES`) instead
of GDAL's band name ("Band 1: anomaly_score (Gray)").
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from qgis.core import (
    QgsColorRampShader,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsProject,
    QgsRasterLayer,
    QgsRendererRange,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
    QgsVectorLayerUtils,
)
from qgis.PyQt.QtGui import QColor

STYLES_DIR = Path(__file__).resolve().parent / "resources" / "styles"
ANOMALY_QML = STYLES_DIR / "anomaly_score.qml"

# Legend titles of the styled rasters (the first legend entry, which QGIS fills with the band's name).
LEGEND_TITLES = {"anomaly": "Anomaly score (percentile)", "prospectivity": "Prospectivity (0–1)",
                 "classes": "Prospectivity class"}
# The prospectivity classes of the engine (core/prospectivity/classes.py), with their colours.
PROSPECTIVITY_CLASSES = [(4, "very high", QColor(189, 0, 38)), (3, "high", QColor(240, 59, 32)),
                         (2, "moderate", QColor(254, 178, 76)), (1, "low", QColor(255, 255, 204, 0))]

# Percentiles of the values mapped to the two ends of the colour ramp.
LOW_PERCENTILE = 0.02
HIGH_PERCENTILE = 0.98

# The heat ramp (ColorBrewer YlOrRd), low end transparent: reads on a basemap.
HEAT_STOPS = [
    (0.0, QColor(255, 255, 178, 0)),
    (0.25, QColor(254, 217, 118, 110)),
    (0.5, QColor(253, 141, 60, 170)),
    (0.75, QColor(240, 59, 32, 215)),
    (1.0, QColor(189, 0, 38, 255)),
]


def heat_ramp(opaque: bool = False) -> QgsGradientColorRamp:
    """The heat ramp as a QGIS colour ramp (``opaque`` for point symbols)."""

    def colour(c: QColor) -> QColor:
        return QColor(c.red(), c.green(), c.blue(), 255) if opaque else QColor(c)

    first, last = HEAT_STOPS[0][1], HEAT_STOPS[-1][1]
    if opaque:  # the transparent low end would hide low-score points
        first = QColor(255, 255, 204)
    stops = [QgsGradientStop(position, colour(c)) for position, c in HEAT_STOPS[1:-1]]
    return QgsGradientColorRamp(colour(first), colour(last), False, stops)


def percentile_range(layer: QgsRasterLayer, band: int = 1,
                     low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> tuple[float, float] | None:
    """Values at the ``low`` and ``high`` cumulative fractions of ``band`` (nodata left out)."""
    provider = layer.dataProvider()
    if provider is None:
        return None
    lower, upper = provider.cumulativeCut(band, low, high, layer.extent(), 250000)
    if lower != lower or upper != upper:  # NaN: no valid cells
        return None
    if upper <= lower:
        stats = provider.bandStatistics(band)
        lower, upper = stats.minimumValue, stats.maximumValue
        if upper <= lower:
            upper = lower + 1.0
    return float(lower), float(upper)


def style_anomaly_raster(layer: QgsRasterLayer, band: int = 1, qml: Path = ANOMALY_QML) -> bool:
    """Apply the heat-map style to ``band`` and stretch it to the layer's percentiles."""
    if not layer.isValid():
        return False
    message, ok = layer.loadNamedStyle(str(qml))
    loaded = layer.renderer()
    if ok and isinstance(loaded, QgsSingleBandPseudoColorRenderer):
        # A copy: the layer owns (and would delete) the renderer it holds when given a new one.
        renderer = loaded.clone()
    else:
        renderer = _build_heat_renderer(layer)
    value_range = percentile_range(layer, band)
    if value_range is None:
        return False
    lower, upper = value_range
    shader = renderer.shader()
    function = shader.rasterShaderFunction()
    # The .qml's stops sit at 0..1: move them onto [lower, upper]; label each with its percentile.
    values = [lower + item.value * (upper - lower) for item in function.colorRampItemList()]
    ranks = value_percentiles(layer, values, lower, upper, band)
    items = [
        QgsColorRampShader.ColorRampItem(value, item.color, f"P{rank:.0f} (score {value:.3g})")
        for value, rank, item in zip(values, ranks, function.colorRampItemList())
    ]
    items[0].label = f"P{LOW_PERCENTILE * 100:.0f} and below: background (score {lower:.3g})"
    items[-1].label = f"P{HIGH_PERCENTILE * 100:.0f} and above: most anomalous (score {upper:.3g})"
    function.setColorRampItemList(items)
    legend = function.legendSettings()
    if legend is not None:  # the continuous legend of the .qml shows two labels, not the stops
        legend = type(legend)(legend)
        legend.setMinimumLabel(items[0].label)
        legend.setMaximumLabel(items[-1].label)
        function.setLegendSettings(legend)
    function.setMinimumValue(lower)
    function.setMaximumValue(upper)
    function.setClip(False)  # values above the 98th percentile stay dark red, not blank
    renderer.setBand(band)
    renderer.setClassificationMin(lower)
    renderer.setClassificationMax(upper)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def value_percentiles(layer: QgsRasterLayer, values: list[float], lower: float, upper: float,
                      band: int = 1) -> list[float]:
    """The percentile (0..100) of each of ``values`` among the band's cells, for values between ``lower`` and
    ``upper`` (the band's LOW_PERCENTILE and HIGH_PERCENTILE values): a 1000-bin histogram of that range."""
    if not upper > lower:
        return [50.0 for _ in values]
    histogram = layer.dataProvider().histogram(band, 1000, lower, upper, layer.extent(), 250000)
    counts = list(histogram.histogramVector)
    total = float(sum(counts)) or 1.0
    ranks = []
    for value in values:
        edge = int(round((min(max(value, lower), upper) - lower) / (upper - lower) * len(counts)))
        share = sum(counts[:edge]) / total
        ranks.append(100.0 * (LOW_PERCENTILE + (HIGH_PERCENTILE - LOW_PERCENTILE) * share))
    return ranks


def style_prospectivity_raster(layer: QgsRasterLayer, band: int = 1) -> bool:
    """The heat ramp over the fixed 0..1 range of a probability (comparable between runs and cycles)."""
    if not layer.isValid():
        return False
    function = QgsColorRampShader(0.0, 1.0)
    function.setColorRampType(QgsColorRampShader.Interpolated)
    names = {0.0: "0 (unlikely)", 0.5: "0.5", 1.0: "1 (most prospective)"}
    function.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, c, names.get(v, f"{v:g}"))
                                   for v, c in HEAT_STOPS])
    function.setClip(False)
    from qgis.core import QgsRasterShader

    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def style_class_raster(layer: QgsRasterLayer, band: int = 1) -> bool:
    """A palette with the class names of the prospectivity classes (codes 1..4)."""
    from qgis.core import QgsPalettedRasterRenderer

    if not layer.isValid():
        return False
    classes = [QgsPalettedRasterRenderer.Class(code, colour, name) for code, name, colour in PROSPECTIVITY_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), band, classes))
    layer.triggerRepaint()
    return True


def style_deposits(layer: QgsVectorLayer) -> bool:
    """Known deposits as black stars with a white rim: visible on the heat map's reds and on a basemap."""
    from qgis.core import QgsSingleSymbolRenderer

    if not layer.isValid():
        return False
    layer.setRenderer(QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple(
        {"name": "star", "color": "20,20,20", "outline_color": "255,255,255", "outline_width": "0.4",
         "size": "4.5"})))
    layer.triggerRepaint()
    return True


def title_legend(node, style: str) -> None:
    """Name the raster's first legend entry (GDAL's band name) in plain words; ``node``: its layer-tree node."""
    from qgis.core import QgsMapLayerLegendUtils

    title = LEGEND_TITLES.get(style)
    if title and node is not None:
        QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, title)
        if node.layer() is not None:
            node.layer().legendChanged.emit()  # the layer tree rebuilds the legend with the new title


def _build_heat_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    """The same style as the .qml, in code (used when the .qml cannot be read)."""
    function = QgsColorRampShader(0.0, 1.0)
    function.setColorRampType(QgsColorRampShader.Interpolated)
    function.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, c, "") for v, c in HEAT_STOPS])
    from qgis.core import QgsRasterShader

    shader = QgsRasterShader()
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    return renderer


# Percentile classes of the scored points: most samples are background, so the
# classes are narrow at the top, where a geologist looks for follow-up targets.
POINT_PERCENTILES = [50, 75, 90, 95, 98]


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, linearly interpolated."""
    position = (len(sorted_values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def style_scored_points(layer: QgsVectorLayer, field: str = "anomaly_score",
                        percentiles: list[int] | None = None) -> bool:
    """Graduated symbols on ``field``: percentile classes, heat colours, bigger = more anomalous."""
    index = layer.fields().lookupField(field) if layer.isValid() else -1
    if index < 0:
        return False
    raw, _ok = QgsVectorLayerUtils.getValues(layer, field)
    values = sorted(float(v) for v in raw if isinstance(v, (int, float)) and v == v)
    if not values:
        return False
    percentiles = percentiles or POINT_PERCENTILES
    edges = [values[0]] + [percentile(values, q) for q in percentiles] + [values[-1]]
    names = ([f"background (< P{percentiles[0]})"]
             + [f"P{a}–P{b}" for a, b in zip(percentiles, percentiles[1:])]
             + [f"> P{percentiles[-1]} (most anomalous)"])
    ramp = heat_ramp(opaque=True)
    ranges = []
    count = len(names)
    for k, name in enumerate(names):
        fraction = k / (count - 1)
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "outline_color": "40,40,40,150",
                                               "outline_width": "0.1"})
        symbol.setColor(ramp.color(fraction))
        symbol.setSize(0.9 + 2.1 * fraction)
        ranges.append(QgsRendererRange(edges[k], edges[k + 1], symbol, f"{name}: {edges[k]:.3g} – {edges[k + 1]:.3g}"))
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    renderer.setSourceSymbol(QgsMarkerSymbol.createSimple({"name": "circle"}))
    renderer.setSourceColorRamp(ramp)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def run_group_name(method: str, when: _dt.datetime | None = None) -> str:
    """A run's layer group: method and local time, e.g. 'GeoAnomaly mahalanobis 2026-11-23 14:05:09'."""
    when = when or _dt.datetime.now()
    return f"GeoAnomaly {method} {when:%Y-%m-%d %H:%M:%S}"


def move_into_group(project: QgsProject, layer: QgsMapLayer, group_name: str) -> QgsLayerTreeGroup:
    """Put ``layer`` into the group ``group_name`` (created at the top of the layer tree when missing).

    Layers keep the order they arrive in below one another, so a run's points
    (added last) are drawn above its raster when loaded points-last.
    """
    root = project.layerTreeRoot()
    group = root.findGroup(group_name)
    if group is None:
        group = root.insertGroup(0, group_name)
    node = root.findLayer(layer.id())
    if node is None:
        if project.mapLayer(layer.id()) is None:
            project.addMapLayer(layer, False)
        group.insertLayer(0, layer)
        return group
    parent = node.parent()
    if parent is group:
        return group
    clone = node.clone()
    group.insertChildNode(0, clone)
    parent.removeChildNode(node)
    return group


# Prospectivity classes (codes of core/prospectivity/classes.py): the geologist's words, warm = explore.
def style_query_points(layer: QgsVectorLayer) -> bool:
    """Places to check next: bold star markers numbered by query, "why here" as the map tip."""
    from qgis.core import QgsPalLayerSettings, QgsSingleSymbolRenderer, QgsVectorLayerSimpleLabeling

    if not layer.isValid():
        return False
    symbol = QgsMarkerSymbol.createSimple({"name": "star", "color": "0,160,255", "outline_color": "0,0,0",
                                           "outline_width": "0.3", "size": "4.5"})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    if layer.fields().lookupField("query") >= 0:
        settings = QgsPalLayerSettings()
        settings.fieldName = "query"
        settings.enabled = True
        layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
        layer.setLabelsEnabled(True)
    if layer.fields().lookupField("why_here") >= 0:
        layer.setMapTipTemplate("<b>Query [% \"query\" %]</b><br>[% \"why_here\" %]")
    layer.triggerRepaint()
    return True
