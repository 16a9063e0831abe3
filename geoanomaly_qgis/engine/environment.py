"""The environment the engine worker starts with.

QGIS sets variables for its own Python, PROJ and GDAL. Passed on, they make
the engine's interpreter load QGIS's site-packages or rasterio's bundled GDAL
read QGIS's data files - the classic "wrong numpy" / "PROJ database version"
failures. The worker gets the user's environment without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Exact names removed from the worker's environment.
STRIPPED_NAMES = frozenset({
    "PROJ_LIB", "PROJ_DATA", "PROJ_NETWORK",
    "GDAL_DATA", "GDAL_DRIVER_PATH", "GDAL_PLUGINS", "GDAL_FILENAME_IS_UTF8", "GDAL_SKIP",
    "CPL_ZIP_ENCODING", "GEOTIFF_CSV",
    "PYQGIS_STARTUP", "QT_PLUGIN_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH",
    "O4W_QT_PREFIX", "O4W_QT_BINARIES", "O4W_QT_PLUGINS", "OSGEO4W_ROOT",
    "VIRTUAL_ENV", "CONDA_PREFIX",
})
# Prefixes of names removed (PYTHONPATH, PYTHONHOME, QGIS_PREFIX_PATH, ...).
STRIPPED_PREFIXES = ("PYTHON", "QGIS_")


def engine_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without QGIS's Python/GDAL/PROJ settings."""
    source = os.environ if base is None else base
    env = {
        name: value
        for name, value in source.items()
        if name not in STRIPPED_NAMES and not name.upper().startswith(STRIPPED_PREFIXES)
    }
    # Progress lines must arrive as they are written, in UTF-8 whatever the locale.
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env
