"""The plugin zip (``make package``) and the profile install (``make install-plugin``)."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "resources" / "tools"))

import install_plugin  # noqa: E402
import package_plugin  # noqa: E402


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return package_plugin.build(tmp_path_factory.mktemp("dist") / "geoanomaly_qgis.zip")


def test_zip_has_the_plugin_folder_at_its_root(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
        metadata = archive.read("geoanomaly_qgis/metadata.txt").decode("utf-8")
    assert all(name.startswith("geoanomaly_qgis/") for name in names)
    for required in ("geoanomaly_qgis/__init__.py", "geoanomaly_qgis/plugin.py",
                     "geoanomaly_qgis/processing/provider.py", "geoanomaly_qgis/processing/base.py",
                     "geoanomaly_qgis/engine/worker.py", "geoanomaly_qgis/resources/icons/geoanomaly.svg",
                     "geoanomaly_qgis/resources/styles/anomaly_score.qml"):
        assert required in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(metadata)
    assert f"geoanomaly_qgis/{parser['general']['icon']}" in names


def test_zip_carries_the_engine_sources(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        names = set(archive.namelist())
    engine = "geoanomaly_qgis/engine_src/"
    for required in ("core/__init__.py", "core/cli.py", "core/commands/detect.py", "pyproject.toml",
                     "constraints.txt", "README.md"):
        assert engine + required in names, required
    shipped = {n[len(engine):] for n in names if n.startswith(engine + "core/")}
    in_tree = {p.relative_to(REPO).as_posix() for p in (REPO / "core").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix not in package_plugin.SKIP_SUFFIXES
               and not any(part.startswith(".") for part in p.relative_to(REPO).parts)}
    assert shipped == in_tree


def test_engine_builds_from_the_zip(plugin_zip, tmp_path):
    """``pip`` can build the engine from the sources the zip carries (no network: no build isolation)."""
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(tmp_path / "unzipped")
    source = tmp_path / "unzipped" / "geoanomaly_qgis" / "engine_src"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheels"), str(source)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    wheels = list((tmp_path / "wheels").glob("geoanomaly-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert "core/cli.py" in wheel.namelist()


def test_zip_is_reproducible(plugin_zip, tmp_path):
    again = package_plugin.build(tmp_path / "again.zip")
    assert again.read_bytes() == plugin_zip.read_bytes()


def test_incomplete_metadata_is_refused(tmp_path):
    plugin = tmp_path / "geoanomaly_qgis"
    plugin.mkdir()
    (plugin / "metadata.txt").write_text("[general]\nname=GeoAnomaly\nqgisMinimumVersion=3.22\n")
    with pytest.raises(SystemExit, match="lacks description"):
        package_plugin.check_metadata(plugin)


def test_install_from_zip_into_a_clean_profile(plugin_zip, tmp_path):
    profiles = tmp_path / "profiles-root"
    ini = profiles / "profiles" / "geology" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nlocale=en\n\n[PythonPlugins]\nprocessing=true\ngeoanomaly_qgis=false\n\n[Other]\nx=1\n")
    target = install_plugin.install(profiles, "geology", plugin_zip)
    assert (target / "metadata.txt").is_file() and not target.is_symlink()
    text = ini.read_text()
    assert "geoanomaly_qgis=true" in text and "geoanomaly_qgis=false" not in text
    assert "processing=true" in text and "[Other]\nx=1" in text and "locale=en" in text


def test_development_install_is_a_link_to_the_source_tree(tmp_path):
    target = install_plugin.install(tmp_path, "default")
    assert target.is_symlink() and target.resolve() == (REPO / "geoanomaly_qgis").resolve()
    ini = tmp_path / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    assert "[PythonPlugins]\ngeoanomaly_qgis=true" in ini.read_text()
    # Installing again replaces the link rather than failing.
    assert install_plugin.install(tmp_path, "default").is_symlink()
