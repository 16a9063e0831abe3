"""The plugin's settings: which Python runs the engine, the default device, and the engine itself.

Stored in QGIS's settings (``QgsSettings``, section ``geoanomaly/``) so they
follow the user's profile. "Install engine" / "Update engine" make the engine
environment beside the plugin (:mod:`geoanomaly_qgis.engine_install`); "Check
engine" runs ``python -m core info --progress json`` in the background and
shows the versions and devices the engine reports.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QObject, Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QFontDatabase
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
from .engine.installer import TORCH_CHOICES, engine_venv, install_log

KEY_PYTHON = "geoanomaly/engine_python"
KEY_DEVICE = "geoanomaly/device"
KEY_ENGINE_INFO = "geoanomaly/engine_info"  # the last `core info` answer, with the interpreter that gave it
KEY_TORCH = "geoanomaly/torch_source"
DEVICES = ["auto", "cpu", "cuda"]
# What the torch choices mean, in the words of the settings dialog.
TORCH_LABELS = {"auto": "chosen from this computer (CUDA with an NVIDIA GPU, else CPU)",
                "pip": "what pip is set up to use (your organisation's package mirror)"}


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


def torch_source_setting() -> str:
    """Where Install engine takes torch from: "auto", "pip", or an index URL."""
    value = str(QgsSettings().value(KEY_TORCH, "auto", type=str) or "auto").strip()
    return value or "auto"


def set_torch_source(value: str) -> None:
    QgsSettings().setValue(KEY_TORCH, (value or "auto").strip())


def engine_interpreter() -> EngineInterpreter | None:
    """The engine's interpreter following the settings, then auto-detection."""
    return find_engine_python(configured_python())


def check_engine(python: str | None = None, source: str = "the path above") -> tuple[bool, str]:
    """Run ``core info``; return (ok, text to show the user). ``source``: where ``python`` came from."""
    if python is None:
        found = engine_interpreter()
        if found is None:
            return False, ("The GeoAnomaly engine is not installed yet. Press 'Install engine': it makes the "
                           "engine's own Python environment beside the plugin (a few minutes; torch is a large "
                           "download).\n\nWithout the button, in a terminal:\n" + install_instructions())
        python, source = found.python, found.source
    try:
        info = run_engine(["info"], python=python)
    except EngineError as exc:
        return False, (f"The engine at {python} did not start: {exc}\n\nPress 'Install engine' (or 'Update "
                       "engine') to make it again.")
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


class BackgroundCheck(QObject):
    """Check engine in a thread: QGIS stays responsive; ``done(ok, text)`` arrives on the main thread."""

    done = pyqtSignal(bool, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.running = False
        self.result: tuple[bool, str] | None = None
        self.done.connect(self._keep)

    def start(self, python: str | None = None, source: str = "the path above") -> None:
        self.running, self.result = True, None

        def work() -> None:
            try:
                ok, text = check_engine(python, source)
            except Exception as exc:  # noqa: BLE001 - the dialog must leave its "checking" state
                ok, text = False, f"The check itself failed: {exc}"
            try:
                self.done.emit(ok, text)
            except RuntimeError:  # the dialog was closed (and deleted) while the engine was checked
                pass

        threading.Thread(target=work, name="geoanomaly-check-engine", daemon=True).start()

    def _keep(self, ok: bool, text: str) -> None:
        self.running, self.result = False, (ok, text)


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
        self.device_combo.setToolTip("auto uses an NVIDIA graphics card (CUDA) when the engine sees one, "
                                     "else the processor (CPU)")
        form.addRow("Default device", self.device_combo)
        self.torch_combo = QComboBox(self)
        self.torch_combo.setEditable(True)
        for choice in TORCH_CHOICES:
            self.torch_combo.addItem(TORCH_LABELS[choice], choice)
        current = torch_source_setting()
        index = self.torch_combo.findData(current)
        if index >= 0:
            self.torch_combo.setCurrentIndex(index)
        else:
            self.torch_combo.setEditText(current)
        self.torch_combo.setToolTip("Where 'Install engine' takes torch (the deep-learning library) from; "
                                    "or type the address of a package index")
        form.addRow("torch for Install engine", self.torch_combo)
        layout.addLayout(form)

        row = QHBoxLayout()
        self.install_button = QPushButton(self)
        self.install_button.clicked.connect(self.install)
        self.check_button = QPushButton("Check engine", self)
        self.check_button.setToolTip("Start the engine and show its versions and devices")
        self.check_button.clicked.connect(self.check)
        self.log_button = QPushButton("Open install log", self)
        self.log_button.clicked.connect(self.open_install_log)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the text below")
        self.copy_button.clicked.connect(self.copy_report)
        row.addWidget(self.install_button)
        row.addWidget(self.check_button)
        row.addWidget(self.log_button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.plugin_dir: Path | None = None  # None: where QGIS loaded the plugin (tests install elsewhere)
        self.install_dialog = None
        self.checker = BackgroundCheck(self)
        self.checker.done.connect(self._checked)
        self.refresh_install_button()
        self.status_label = QLabel("", self)
        layout.addWidget(self.status_label)
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.report.setPlaceholderText("Press 'Install engine' once after installing the plugin, then "
                                       "'Check engine' to see the engine's versions and devices.")
        layout.addWidget(self.report, 1)

    def refresh_install_button(self) -> None:
        exists = (engine_venv(self.plugin_dir) / "pyvenv.cfg").is_file()
        self.install_button.setText("Update engine" if exists else "Install engine")
        self.install_button.setToolTip(
            f"{'Bring the engine up to date with this plugin version' if exists else 'Make the engine'} in "
            f"{engine_venv(self.plugin_dir)} (pip, the pinned versions; a few minutes)")
        self.log_button.setEnabled(install_log(self.plugin_dir).is_file())

    def check(self) -> None:
        """Check engine in the background with the interpreter in the field (or the one found)."""
        if self.checker.running:
            return
        typed = self.python_widget.filePath().strip()
        self.check_button.setEnabled(False)
        self.check_button.setText("Checking…")
        self.status_label.setText("Checking the engine… (starting it takes a few seconds)")
        self.checker.start(typed or None)

    def _checked(self, ok: bool, text: str) -> None:
        self.check_button.setEnabled(True)
        self.check_button.setText("Check engine")
        self.status_label.setText("Engine OK" if ok else "No working engine yet - see below")
        self.report.setPlainText(text)

    def wait_for_check(self, timeout: float = 120.0) -> bool:
        """Process events until the check ends (scripts and tests); True when the engine works."""
        import time

        from qgis.PyQt.QtCore import QCoreApplication, QEventLoop

        deadline = time.monotonic() + timeout
        while (self.checker.running or self.checker.result is None) and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 100)
            time.sleep(0.02)
        return bool(self.checker.result and self.checker.result[0])

    def install(self):
        """Install engine / Update engine: the install dialog; the check result lands here when it ends."""
        from .engine.installer import reuse_site_from_environment
        from .engine_install import install_engine

        self.save_torch_source()
        exists = (engine_venv(self.plugin_dir) / "pyvenv.cfg").is_file()
        try:
            self.install_dialog = install_engine(self, self.plugin_dir, update=exists,
                                                 torch_choice=torch_source_setting(),
                                                 reuse_site=reuse_site_from_environment())
        except FileNotFoundError as exc:
            self.status_label.setText("Cannot install the engine")
            self.report.setPlainText(str(exc))
            return None
        self.install_dialog.finished_install.connect(self._installed)
        return self.install_dialog

    def _installed(self, ok: bool, message: str) -> None:
        self.refresh_install_button()
        self.status_label.setText(message)
        if self.install_dialog is not None and self.install_dialog.check_text:
            self.report.setPlainText(self.install_dialog.check_text)
        if ok and configured_python() and configured_python() != str(self.install_dialog.plan.python):
            # The user asked for this engine: use it instead of the one typed earlier.
            self.python_widget.setFilePath(str(self.install_dialog.plan.python))
            set_configured_python(str(self.install_dialog.plan.python))

    def open_install_log(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(install_log(self.plugin_dir))))

    def save_torch_source(self) -> None:
        data = self.torch_combo.currentData()
        text = self.torch_combo.currentText().strip()
        set_torch_source(data if data and TORCH_LABELS.get(data) == text else text)

    def copy_report(self) -> None:
        QApplication.clipboard().setText(self.report.toPlainText())

    def save(self) -> None:
        set_configured_python(self.python_widget.filePath())
        set_default_device(self.device_combo.currentText())
        self.save_torch_source()


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
        self.wait_for_check = self.panel.wait_for_check
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
