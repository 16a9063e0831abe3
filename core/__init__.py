"""GeoAnomaly engine: geochemical anomalies and mineral prospectivity.

The engine imports no QGIS. It is a library with a command line
(``geoanomaly``), usable on a server, in a notebook, or from the QGIS plugin,
which runs it as a worker process.
"""

__version__ = "0.1.0"
