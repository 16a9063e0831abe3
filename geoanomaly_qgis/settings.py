"""The plugin's settings: which Python runs the engine, and the default device.

Stored in QGIS's settings (``QgsSettings``, section ``geoanomaly/``) so they
follow the user's profile. The dialog's "Check engine" runs
``python -m core info --progress json`` and shows the versions and devices the
engine reports, or copyable install instructions when there is no engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFontDatabase
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .engine import EngineError, find_engine_python, install_instructions, run_engine
from .engine.discovery import EngineInterpreter

KEY_PYTHON = "geoanomaly/engine_python"
KEY_DEVICE = "geoanomaly/device"
KEY_ENGINE_INFO = "geoanomaly/engine_info"  # the last `core info` answer, with the interpreter that gave it
DEVICES = ["auto", "cpu", "cuda"]


def configured_python() -> str:
    """The interpreter path the user typed in the settings ('' when left to auto-detection)."""
    return str(QgsSettings().value(KEY_PYTHON, "", type=str) or "").strip()


def set_configured_python(path: str) -> None:
    QgsSettings().setValue(KEY_PYTHON, (path or "").strip())


def default_device() -> str:
    device = str(QgsSettings().value(KEY_DEVICE, "auto", type=str) or "auto")
    return device if device in DEVICES else "auto"


def set_default_device(device: str) -> None:
    QgsSettings().setValue(KEY_DEVICE, device if device in DEVICES else "auto")


def engine_interpreter() -> EngineInterpreter | None:
    """The engine's interpreter following the settings, then auto-detection."""
    return find_engine_python(configured_python())


def check_engine(python: str | None = None) -> tuple[bool, str]:
    """Run ``core info``; return (ok, text to show the user)."""
    if python is None:
        found = engine_interpreter()
        if found is None:
            return False, "No GeoAnomaly engine was found.\n\n" + install_instructions()
        python, source = found.python, found.source
    else:
        source = "the path above"
    try:
        info = run_engine(["info"], python=python)
    except EngineError as exc:
        return False, f"The engine at {python} did not start: {exc}\n\n{install_instructions()}"
    _remember_engine_info(python, info)
    return True, f"Engine interpreter: {python}\n(found via {source})\n\n" + describe_info(info)


def engine_info() -> dict:
    """What the engine says about itself (``core info``: versions, devices, detectors).

    Asked once per engine interpreter and remembered in the settings, so
    QGIS does not start Python and torch each time it lists the algorithms;
    "Check engine" asks again. Empty when no engine answers.
    """
    found = engine_interpreter()
    if found is None:
        return {}
    try:
        cached = json.loads(str(QgsSettings().value(KEY_ENGINE_INFO, "", type=str) or "{}"))
    except ValueError:
        cached = {}
    if cached.get("python") == found.python and isinstance(cached.get("info"), dict):
        return cached["info"]
    try:
        result = run_engine(["info"], python=found.python)
    except EngineError:
        return {}
    return _remember_engine_info(found.python, result)


def _remember_engine_info(python: str, result: dict) -> dict:
    info = result.get("info", result) if isinstance(result, dict) else {}
    QgsSettings().setValue(KEY_ENGINE_INFO, json.dumps({"python": python, "info": info}))
    return info


def describe_info(result: dict) -> str:
    """The ``info`` result as readable lines: devices first, then versions and the rest."""
    info = result.get("info", result) if isinstance(result, dict) else {}
    lines = []
    devices = info.get("devices") or []
    lines.append("Devices: " + (", ".join(map(str, devices)) if isinstance(devices, list) else str(devices)))
    for key, value in info.items():
        if key == "devices":
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = json.dumps(value)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


class EngineSettingsPanel(QWidget):
    """Engine interpreter, default device and "Check engine": the body of the dialog and of the Options page."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.python_widget = QgsFileWidget(self)
        self.python_widget.setStorageMode(QgsFileWidget.GetFile)
        self.python_widget.setDialogTitle("Python interpreter of the GeoAnomaly engine")
        self.python_widget.setFilePath(configured_python())
        self.python_widget.lineEdit().setPlaceholderText("auto-detect (the project's .venv, or a Python that has the engine)")
        form.addRow("Engine Python interpreter", self.python_widget)
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(default_device())
        self.device_combo.setToolTip("auto uses a CUDA GPU when the engine sees one, else the CPU")
        form.addRow("Default device", self.device_combo)
        layout.addLayout(form)

        row = QHBoxLayout()
        self.check_button = QPushButton("Check engine", self)
        self.check_button.clicked.connect(self.check)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the text below (versions, or install instructions)")
        self.copy_button.clicked.connect(self.copy_report)
        row.addWidget(self.check_button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.status_label = QLabel("", self)
        layout.addWidget(self.status_label)
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.report.setPlaceholderText("Press 'Check engine' to see the engine's versions and devices.")
        layout.addWidget(self.report, 1)

    def check(self) -> bool:
        """Runs ``core info`` with the interpreter in the field (or the auto-detected one)."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            typed = self.python_widget.filePath().strip()
            ok, text = check_engine(typed or None)
        finally:
            QApplication.restoreOverrideCursor()
        self.status_label.setText("Engine OK" if ok else "Engine missing or broken - see below")
        self.report.setPlainText(text)
        return ok

    def copy_report(self) -> None:
        QApplication.clipboard().setText(self.report.toPlainText())

    def save(self) -> None:
        set_configured_python(self.python_widget.filePath())
        set_default_device(self.device_combo.currentText())


class SettingsDialog(QDialog):
    """GeoAnomaly > Settings: the settings panel with OK / Cancel."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GeoAnomaly settings")
        self.setMinimumWidth(640)
        layout = QVBoxLayout(self)
        self.panel = EngineSettingsPanel(self)
        layout.addWidget(self.panel, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        # The panel's parts, for callers that drive the dialog.
        self.python_widget = self.panel.python_widget
        self.device_combo = self.panel.device_combo
        self.status_label = self.panel.status_label
        self.report = self.panel.report
        self.check = self.panel.check
        self.copy_report = self.panel.copy_report

    def accept(self) -> None:
        self.panel.save()
        super().accept()


class GeoAnomalyOptionsPage(QgsOptionsPageWidget):
    """The same settings as a page of QGIS's Settings > Options."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.panel = EngineSettingsPanel(self)
        layout.addWidget(self.panel)

    def apply(self) -> None:
        self.panel.save()


class GeoAnomalyOptionsFactory(QgsOptionsWidgetFactory):
    """Registers the GeoAnomaly page in Settings > Options (see plugin.initGui)."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("GeoAnomaly")

    def icon(self):
        from qgis.PyQt.QtGui import QIcon

        return QIcon(str(Path(__file__).resolve().parent / "resources" / "icons" / "geoanomaly.svg"))

    def createWidget(self, parent):  # noqa: N802 - QGIS API name
        return GeoAnomalyOptionsPage(parent)
