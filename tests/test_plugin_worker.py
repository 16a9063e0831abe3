"""The engine worker: finding the interpreter, the environment it gets, relaying events, failures.

These run the real engine (``.venv/bin/python -m core``) as a subprocess, the
way the plugin does inside QGIS.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from geoanomaly_qgis.engine import EngineError, EngineNotFoundError, find_engine_python, run_engine
from geoanomaly_qgis.engine.discovery import ENV_VAR, install_instructions
from geoanomaly_qgis.engine.environment import engine_environment
from geoanomaly_qgis.engine.worker import engine_command
from tests.plugin_fixtures import ENGINE_PYTHON, REPO, SAMPLES_CSV, fixture_qgis_app, requires_qgis  # noqa: F401

needs_engine = pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}")


class RecordingFeedback:
    """Collects what the worker reports; has the methods of QgsProcessingFeedback it calls."""

    def __init__(self) -> None:
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.commands: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []

    def isCanceled(self) -> bool:  # noqa: N802
        return False

    def setProgress(self, value: float) -> None:  # noqa: N802
        self.progress.append(value)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.texts.append(text)

    def pushInfo(self, text: str) -> None:  # noqa: N802
        self.infos.append(text)

    def pushWarning(self, text: str) -> None:  # noqa: N802
        self.warnings.append(text)

    def pushCommandInfo(self, text: str) -> None:  # noqa: N802
        self.commands.append(text)

    def pushConsoleInfo(self, text: str) -> None:  # noqa: N802
        self.console.append(text)

    def reportError(self, text: str, fatal: bool = False) -> None:  # noqa: N802
        self.errors.append(text)


def test_worker_environment_drops_qgis_python_and_gdal_settings():
    base = {"PATH": "/usr/bin", "HOME": "/home/geo", "PYTHONPATH": "/usr/share/qgis/python",
            "PYTHONHOME": "/opt/qgis", "PROJ_LIB": "/usr/share/proj", "PROJ_DATA": "/x", "GDAL_DATA": "/y",
            "GDAL_DRIVER_PATH": "/z", "QGIS_PREFIX_PATH": "/usr", "PYQGIS_STARTUP": "s.py",
            "CUDA_VISIBLE_DEVICES": "0", "LANG": "C.UTF-8"}
    env = engine_environment(base)
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/home/geo"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["LANG"] == "C.UTF-8"
    for name in ("PYTHONPATH", "PYTHONHOME", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH",
                 "QGIS_PREFIX_PATH", "PYQGIS_STARTUP"):
        assert name not in env, name
    assert env["PYTHONUNBUFFERED"] == "1"


def test_engine_command_asks_for_json_progress():
    assert engine_command("py", ["info"]) == ["py", "-m", "core", "info", "--progress", "json"]
    assert engine_command("py", ["info", "--progress", "json"]).count("--progress") == 1


@needs_engine
def test_discovery_prefers_setting_then_env_var_then_source_tree_venv(monkeypatch, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("")
    assert find_engine_python(str(fake)).source == "the plugin settings"
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert find_engine_python("").python == str(fake)
    monkeypatch.delenv(ENV_VAR)
    found = find_engine_python("")
    # The plugin is loaded from the repository here, so the repository's .venv is found
    # (its own path, not the system Python it links to: that is what makes it the venv).
    assert found is not None and found.python == str(ENGINE_PYTHON)
    assert found.source == "the source tree's .venv"


@needs_engine
def test_info_reports_versions_and_devices():
    feedback = RecordingFeedback()
    result = run_engine(["info"], feedback, python=str(ENGINE_PYTHON))
    info = result["info"]
    assert info["geoanomaly"] and info["torch"] and info["numpy"].startswith("1.")
    assert "cpu" in info["devices"]
    assert feedback.commands and "-m core info --progress json" in feedback.commands[0]


@needs_engine
def test_detect_progress_and_log_reach_the_feedback(tmp_path):
    feedback = RecordingFeedback()
    out = tmp_path / "run"
    result = run_engine(["detect", "--method", "mahalanobis", "--samples", str(SAMPLES_CSV),
                         "--elements", "Au_ppm,As_ppm,Cu_ppm,Pb_ppm,Zn_ppm", "--out", str(out)],
                        feedback, python=str(ENGINE_PYTHON))
    assert Path(result["outputs"]["anomaly_score.tif"]).is_file()
    assert feedback.texts[0].startswith("Reading")
    assert feedback.progress and max(feedback.progress) <= 100.0
    assert feedback.progress == sorted(feedback.progress), "progress must not go backwards"
    assert any("Detector mahalanobis on cpu" in line for line in feedback.infos), feedback.infos


@needs_engine
def test_engine_error_is_its_one_line_message(tmp_path):
    with pytest.raises(EngineError) as caught:
        run_engine(["detect", "--method", "no_such_detector", "--samples", str(SAMPLES_CSV),
                    "--out", str(tmp_path / "x")], RecordingFeedback(), python=str(ENGINE_PYTHON))
    assert caught.value.exit_code == 2
    assert "no_such_detector" in str(caught.value) and "\n" not in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert not (tmp_path / "x").exists()


def test_missing_interpreter_says_how_to_install(tmp_path):
    with pytest.raises(EngineNotFoundError) as caught:
        run_engine(["info"], python=str(tmp_path / "nowhere" / "python"))
    assert "cannot start the engine interpreter" in str(caught.value)


@pytest.mark.skipif(not Path(sys.base_prefix, "bin", "python3").is_file(), reason="no system python3")
def test_interpreter_without_the_engine_gets_install_instructions(tmp_path):
    # The system Python (no venv, no editable install) cannot import core.
    bare = Path(sys.base_prefix) / "bin" / "python3"
    env_backup = os.environ.get("PYTHONPATH")
    with pytest.raises(EngineNotFoundError) as caught:
        run_engine(["info"], python=str(bare))
    assert env_backup == os.environ.get("PYTHONPATH")
    message = str(caught.value)
    assert "does not have the GeoAnomaly engine installed" in message
    assert "pip install" in message and "venv" in message


def test_install_instructions_point_at_the_engine_sources():
    text = install_instructions()
    assert "python3 -m venv" in text and "pip install -c" in text
    assert str(REPO) in text  # a development install: the repository holds pyproject.toml


@requires_qgis
@needs_engine
def test_settings_check_engine(qgis_app, tmp_path):
    from geoanomaly_qgis import settings

    ok, text = settings.check_engine(str(ENGINE_PYTHON))
    assert ok and "Devices: cpu" in text and "torch:" in text
    ok, text = settings.check_engine(str(tmp_path / "missing-python"))
    assert not ok and "Install engine" in text  # the button that makes it, not terminal lines
    settings.set_default_device("cpu")
    assert settings.default_device() == "cpu"
    settings.set_default_device("auto")


@requires_qgis
@needs_engine
def test_settings_dialog_shows_engine_versions(qgis_app):
    from geoanomaly_qgis.settings import SettingsDialog

    dialog = SettingsDialog()
    dialog.python_widget.setFilePath(str(ENGINE_PYTHON))
    dialog.check()  # in the background: QGIS stays responsive
    assert dialog.wait_for_check(120)
    assert dialog.status_label.text() == "Engine OK"
    assert "numpy" in dialog.report.toPlainText()
    dialog.copy_report()
    from qgis.PyQt.QtWidgets import QApplication

    assert "numpy" in QApplication.clipboard().text()
    dialog.deleteLater()


def test_qgis_python_is_never_used_as_the_engine():
    # QGIS's sys.executable is the qgis binary; discovery must never return it.
    found = find_engine_python("")
    if found is not None:
        assert Path(found.python).name.startswith("python")
    assert shutil.which("python3") is not None


@requires_qgis
def test_options_page_saves_the_settings(qgis_app, tmp_path):
    from geoanomaly_qgis import settings

    factory = settings.GeoAnomalyOptionsFactory()
    assert factory.title() == "GeoAnomaly" and not factory.icon().isNull()
    page = factory.createWidget(None)
    python = tmp_path / "python"
    python.write_text("")
    page.panel.python_widget.setFilePath(str(python))
    page.panel.device_combo.setCurrentText("cpu")
    page.apply()
    try:
        assert settings.configured_python() == str(python)
        assert settings.default_device() == "cpu"
        assert settings.engine_interpreter().python == str(python)
    finally:
        settings.set_configured_python("")
        settings.set_default_device("auto")
    page.deleteLater()
