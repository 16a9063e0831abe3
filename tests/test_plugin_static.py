"""The boundary between QGIS and the engine, checked on the source text.

``core/`` must run where QGIS is absent (servers, notebooks, torchrun), and
QGIS's Python must never load torch or rasterio (their numpy and GDAL clash
with QGIS's own), so the plugin talks to the engine only through a worker
process.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "geoanomaly_qgis"
FORBIDDEN_IN_PLUGIN = {"torch", "torchvision", "rasterio", "core", "geopandas", "sklearn", "pyogrio", "fiona"}
FORBIDDEN_IN_CORE = {"qgis", "processing", "PyQt5", "PyQt6", "sip"}


def imported_top_level_names(path: Path) -> set[tuple[str, int]]:
    """(top-level module, line) for every absolute import in a Python file, including nested ones."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
                "import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant):
            found.add((str(node.args[0].value).split(".")[0], node.lineno))
    return found


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_core_never_imports_qgis():
    offenders = [f"{path.relative_to(REPO)}:{line} imports {name}"
                 for path in python_files(REPO / "core")
                 for name, line in imported_top_level_names(path) if name in FORBIDDEN_IN_CORE]
    assert not offenders, "core/ must not depend on QGIS:\n" + "\n".join(offenders)


def test_plugin_never_imports_torch_rasterio_or_the_engine():
    files = python_files(PLUGIN)
    assert files, "geoanomaly_qgis/ has no Python files"
    offenders = [f"{path.relative_to(REPO)}:{line} imports {name}"
                 for path in files
                 for name, line in imported_top_level_names(path) if name in FORBIDDEN_IN_PLUGIN]
    assert not offenders, "the plugin must run the engine as a worker, not import it:\n" + "\n".join(offenders)


def test_the_checker_sees_nested_and_dynamic_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import torch.nn\n    from rasterio import open\n"
                      "    importlib.import_module('qgis.core')\n", encoding="utf-8")
    assert {name for name, _ in imported_top_level_names(sample)} == {"torch", "rasterio", "qgis"}


@pytest.mark.parametrize("key", ["name", "qgisMinimumVersion", "description", "about", "version", "author",
                                 "email", "repository", "tracker", "tags", "icon", "hasProcessingProvider"])
def test_metadata_is_complete(key):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(PLUGIN / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general.get(key, "").strip(), f"metadata.txt lacks {key}"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (PLUGIN / general["icon"]).is_file()
    assert general["icon"].endswith(".svg")


def test_icons_and_style_are_shipped():
    icons = sorted(p.name for p in (PLUGIN / "resources" / "icons").glob("*.svg"))
    assert {"geoanomaly.svg", "detect.svg", "grid.svg", "evaluate.svg", "settings.svg"} <= set(icons)
    for icon in icons:
        text = (PLUGIN / "resources" / "icons" / icon).read_text(encoding="utf-8")
        assert text.lstrip().startswith("<svg") and "</svg>" in text, icon
    qml = (PLUGIN / "resources" / "styles" / "anomaly_score.qml").read_text(encoding="utf-8")
    assert 'type="singlebandpseudocolor"' in qml and 'colorRampType="INTERPOLATED"' in qml
