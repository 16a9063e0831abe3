"""Styles for result layers, and a layer group per run.

- Anomaly rasters: the heat-map style in ``resources/styles/anomaly_score.qml``
  (single-band pseudocolor, transparent at background values so the basemap
  shows through, yellow -> red -> dark red for anomalies). Its colour stops
  are written at positions 0..1 and stretched here between the 2nd and 98th
  percentiles of the layer's values, so one outlier cannot wash the map out.
- Scored points: graduated symbols (quantile classes, the same colours, larger
  symbols for higher scores).
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
    # The .qml's stops sit at 0..1: move them onto [lower, upper].
    items = [
        QgsColorRampShader.ColorRampItem(lower + item.value * (upper - lower), item.color,
                                         f"{lower + item.value * (upper - lower):.3g}")
        for item in function.colorRampItemList()
    ]
    items[0].label = f"{lower:.3g} (low)"
    items[-1].label = f"{upper:.3g} (high)"
    function.setColorRampItemList(items)
    function.setMinimumValue(lower)
    function.setMaximumValue(upper)
    function.setClip(False)  # values above the 98th percentile stay dark red, not blank
    renderer.setBand(band)
    renderer.setClassificationMin(lower)
    renderer.setClassificationMax(upper)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


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
PROSPECTIVITY_CLASSES = [
    (4, QColor(189, 0, 38), "very high"),
    (3, QColor(240, 59, 32), "high"),
    (2, QColor(254, 178, 76), "moderate"),
    (1, QColor(255, 255, 204, 90), "low"),
]


def style_prospectivity_classes(layer: QgsRasterLayer) -> bool:
    """Paletted classes with a legend that reads "very high / high / moderate / low" (low nearly transparent)."""
    from qgis.core import QgsPalettedRasterRenderer

    if not layer.isValid():
        return False
    classes = [QgsPalettedRasterRenderer.Class(code, colour, name) for code, colour, name in PROSPECTIVITY_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()
    return True


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
