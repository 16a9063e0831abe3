"""GeoAnomaly QGIS plugin: geochemical anomalies and mineral prospectivity.

The plugin gathers layers, runs the GeoAnomaly engine (``core``) as a worker
process in its own Python environment, and loads the results as styled
layers. It never imports torch, rasterio or the engine itself.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import GeoAnomalyPlugin

    return GeoAnomalyPlugin(iface)
