"""A real, headless QGIS for plugin tests: one application per pytest process.

Import the fixtures into a test module::

    from tests.plugin_fixtures import fixture_qgis_app, fixture_samples_layer  # noqa: F401

(the functions are named ``fixture_*``; tests ask for ``qgis_app``,
``samples_layer``, ``deposits_layer``, so parameters never shadow imports.)

``qgis_app`` starts ``QgsApplication([], False)`` offscreen with a throw-away
profile folder (so tests never touch the user's QGIS settings), initialises
Processing and registers the GeoAnomaly provider. Nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
DATA = (REPO / ".." / "shared" / "data" / "gswa_sed1_au").resolve()
SAMPLES_CSV = DATA / "samples.csv"
DEPOSITS_CSV = DATA / "deposits.csv"
# The engine the plugin tests run: the repository's .venv, or GEOANOMALY_TEST_ENGINE_PYTHON (a git worktree
# whose .venv is shared with another checkout sets it to a Python that imports this tree's engine).
ENGINE_PYTHON = Path(os.environ.get("GEOANOMALY_TEST_ENGINE_PYTHON") or REPO / ".venv" / "bin" / "python")
QGIS_PYTHON_PLUGINS = Path("/usr/share/qgis/python/plugins")

for path in (str(REPO), str(QGIS_PYTHON_PLUGINS)):
    if path not in sys.path:
        sys.path.insert(0 if path == str(REPO) else len(sys.path), path)

try:  # the bindings come from the system site-packages
    import qgis.core  # noqa: F401

    HAVE_QGIS = True
except ImportError:  # pragma: no cover - only on machines without QGIS
    HAVE_QGIS = False

requires_qgis = pytest.mark.skipif(not HAVE_QGIS, reason="the QGIS Python bindings (python3-qgis) are not installed")
requires_data = pytest.mark.skipif(not SAMPLES_CSV.is_file(), reason=f"sample survey not found at {DATA}")

_APP = None
_PROFILE_DIR: str | None = None


def start_qgis():
    """The process's single QgsApplication, with Processing and the GeoAnomaly provider."""
    global _APP, _PROFILE_DIR
    from qgis.core import QgsApplication

    if _APP is not None:
        return _APP
    existing = QgsApplication.instance()
    if existing is not None and isinstance(existing, QgsApplication):
        _APP = existing
    else:
        _PROFILE_DIR = tempfile.mkdtemp(prefix="geoanomaly-qgis-profile-")
        QgsApplication.setPrefixPath("/usr", True)
        _APP = QgsApplication([], False, _PROFILE_DIR)
        _APP.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    if registry.providerById("geoanomaly") is None:
        from geoanomaly_qgis.processing.provider import GeoAnomalyProvider

        provider = GeoAnomalyProvider()
        registry.addProvider(provider)
        _APP._geoanomaly_provider = provider  # keep the Python object alive
    return _APP


@pytest.fixture(scope="session", name="qgis_app")
def fixture_qgis_app():
    if not HAVE_QGIS:
        pytest.skip("the QGIS Python bindings (python3-qgis) are not installed")
    app = start_qgis()
    # Tests find the engine the way a development install does (the repo's .venv);
    # say so explicitly so a stray setting cannot point elsewhere.
    if ENGINE_PYTHON.is_file():
        os.environ["GEOANOMALY_PYTHON"] = str(ENGINE_PYTHON)
    yield app
    if _PROFILE_DIR:
        shutil.rmtree(_PROFILE_DIR, ignore_errors=True)


def csv_points_uri(path: Path, x: str = "X", y: str = "Y", crs: str = "EPSG:4283") -> str:
    """A delimited-text layer URI, as 'Add Delimited Text Layer' builds it (GDA94 lon/lat by default)."""
    return (f"{path.as_uri()}?type=csv&detectTypes=yes&xField={x}&yField={y}&crs={crs}"
            "&spatialIndex=no&subsetIndex=no&watchFile=no&geomType=point")


@pytest.fixture(scope="session", name="samples_layer")
def fixture_samples_layer(qgis_app):
    from qgis.core import QgsVectorLayer

    if not SAMPLES_CSV.is_file():
        pytest.skip(f"sample survey not found at {DATA}")
    layer = QgsVectorLayer(csv_points_uri(SAMPLES_CSV), "samples", "delimitedtext")
    assert layer.isValid(), f"cannot open {SAMPLES_CSV}"
    return layer


@pytest.fixture(scope="session", name="deposits_layer")
def fixture_deposits_layer(qgis_app):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(csv_points_uri(DEPOSITS_CSV), "deposits", "delimitedtext")
    assert layer.isValid(), f"cannot open {DEPOSITS_CSV}"
    return layer


# Plain names for modules that import the fixtures as ``qgis_app`` etc.
qgis_app = fixture_qgis_app
samples_layer = fixture_samples_layer
deposits_layer = fixture_deposits_layer
