"""The "Mineral identification" dock: identify a specimen photo, or train a model on a photo folder.

Everything runs in the engine's own Python inside a ``QgsTask``, so QGIS stays
responsive, the task manager shows progress and Cancel stops the engine:
Identify asks one ``geoanomaly minerals serve`` process that the dock keeps
running (see :mod:`.engine.persistent`; importing torch and loading the model
happen once, not on every click), Train runs ``geoanomaly minerals train``
through the worker (:mod:`.engine.worker`). Closing the dock stops the serve
process. This module never imports torch or the engine.

The plugin shows it with::

    from .minerals_dock import MineralDock
    dock = MineralDock(iface.mainWindow())
    iface.addDockWidget(Qt.RightDockWidgetArea, dock)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from qgis.core import QgsApplication, QgsProcessingFeedback, QgsSettings, QgsTask
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QPixmap
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .engine import EngineCancelled, EngineError, PersistentEngine, run_engine
from .settings import default_device, engine_interpreter

KEY_MODELS = "geoanomaly/mineral_models"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LUSTERS = [("", "not observed"), ("metallic", "metallic"), ("non-metallic", "non-metallic")]
STREAKS = [("", "not observed"), ("white", "white / colourless"), ("coloured", "coloured / dark")]


class EngineTask(QgsTask):
    """One engine command in the background; ``done(result, error)`` is called on the main thread."""

    def __init__(self, description: str, argv: list[str], done: Callable[[dict | None, str | None], None]) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.argv = argv
        self.done = done
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        # The worker reports to a Processing feedback (messages go to the QGIS log); its progress
        # drives the task manager's bar, and the task manager's Cancel cancels it.
        self.feedback = QgsProcessingFeedback()
        self.feedback.progressChanged.connect(self.setProgress)

    def cancel(self) -> None:
        self.feedback.cancel()
        super().cancel()

    def run(self) -> bool:
        interpreter = engine_interpreter()
        if interpreter is None:
            self.error = "The GeoAnomaly engine was not found: set its Python interpreter in GeoAnomaly > Settings."
            return False
        try:
            self.result = self.work(interpreter.python)
        except EngineCancelled:
            self.error = "Cancelled."
            return False
        except EngineError as exc:
            self.error = str(exc)
            return False
        return True

    def work(self, python: str) -> dict[str, Any]:
        """The engine's result (task thread)."""
        return run_engine(self.argv, self.feedback, python=python)

    def finished(self, ok: bool) -> None:  # main thread
        self.done(self.result if ok else None, None if ok else (self.error or "Cancelled."))


class IdentifyTask(EngineTask):
    """One identification by the dock's running ``minerals serve`` engine (started if needed)."""

    def __init__(self, engine: PersistentEngine, request: dict[str, Any],
                 done: Callable[[dict | None, str | None], None]) -> None:
        super().__init__("Identify mineral", ["minerals", "serve"], done)
        self.engine = engine
        self.request = request

    def work(self, python: str) -> dict[str, Any]:
        answer = self.engine.request(self.request, self.feedback, python=python)
        # Shaped like the result of ``minerals predict`` (one photo).
        return {"predictions": [answer], "model": self.request["model"]}


class MineralDock(QDockWidget):
    """Photo (+ optional hardness/luster/streak) -> top-5 minerals; Train on a photo folder."""

    def __init__(self, parent: QWidget | None = None, run_in_background: bool = True) -> None:
        super().__init__("Mineral identification", parent)
        self.setObjectName("GeoAnomalyMineralDock")
        self.setAcceptDrops(True)
        # Tests (and scripts) run tasks in the calling thread; QGIS runs them in the task manager.
        self.run_in_background = run_in_background
        self.extra_train_arguments: list[str] = []  # e.g. fewer epochs for a quick trial
        self.last_result: dict | None = None
        self._tasks: list[EngineTask] = []
        # Started on the first Identify and kept: later clicks skip importing torch and loading the model.
        self.engine = PersistentEngine(["minerals", "serve"])

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.thumbnail = QLabel("Drop a specimen photo here\nor choose one below", body)
        self.thumbnail.setAlignment(Qt.AlignCenter)
        self.thumbnail.setMinimumHeight(140)
        self.thumbnail.setStyleSheet("QLabel { border: 1px dashed #999; }")
        layout.addWidget(self.thumbnail)

        form = QFormLayout()
        photo_row = QHBoxLayout()
        self.photo_edit = QLineEdit(body)
        self.photo_edit.setPlaceholderText("photo of the specimen (JPEG, PNG, WebP)")
        self.photo_edit.editingFinished.connect(lambda: self.set_photo(self.photo_edit.text()))
        browse = QPushButton("…", body)
        browse.setToolTip("Choose a photo")
        browse.clicked.connect(self._choose_photo)
        photo_row.addWidget(self.photo_edit, 1)
        photo_row.addWidget(browse)
        form.addRow("Photo", photo_row)
        self.hardness_edit = QLineEdit(body)
        self.hardness_edit.setPlaceholderText("Mohs, e.g. 3.5 (blank: not measured)")
        form.addRow("Hardness", self.hardness_edit)
        self.luster_combo = _choices(body, LUSTERS)
        form.addRow("Luster", self.luster_combo)
        self.streak_combo = _choices(body, STREAKS)
        form.addRow("Streak", self.streak_combo)
        model_row = QHBoxLayout()
        self.model_combo = QComboBox(body)
        self.model_combo.setEditable(True)
        self.model_combo.lineEdit().setPlaceholderText("a trained model folder")
        for folder in _remembered_models():
            self.model_combo.addItem(folder)
        choose_model = QPushButton("…", body)
        choose_model.setToolTip("Choose a model folder")
        choose_model.clicked.connect(self._choose_model)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(choose_model)
        form.addRow("Model", model_row)
        # How good the chosen model is, next to its name: its accuracy on photos held back from training.
        self.model_quality = QLabel("", body)
        self.model_quality.setWordWrap(True)
        form.addRow("", self.model_quality)
        self.model_combo.currentTextChanged.connect(self._show_model_quality)
        self._show_model_quality(self.model_combo.currentText())
        layout.addLayout(form)

        # The quick default keeps the pretrained network as it is and fits the classifier on its
        # features: minutes on a laptop. Fine-tuning the network (the published schedule) takes hours.
        self.training_size = _choices(body, TRAINING_SIZES)
        self.training_size.setToolTip("How big a model Train… fits: a quick trial on a CPU, or the published schedule")
        form.addRow("Training", self.training_size)

        buttons = QHBoxLayout()
        self.identify_button = QPushButton("Identify", body)
        self.identify_button.clicked.connect(self.identify)
        self.train_button = QPushButton("Train…", body)
        self.train_button.setToolTip("Train a model on a folder with one sub-folder of photos per mineral")
        self.train_button.clicked.connect(self._choose_training_folder)
        buttons.addWidget(self.identify_button)
        buttons.addWidget(self.train_button)
        layout.addLayout(buttons)

        self.results = QTableWidget(0, 2, body)
        self.results.setHorizontalHeaderLabels(["Mineral", "Probability"])
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.verticalHeader().setVisible(False)
        self.results.setEditTriggers(QTableWidget.NoEditTriggers)
        layout.addWidget(self.results, 1)
        self.status = QLabel("", body)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.setWidget(body)

    # -- photo ------------------------------------------------------------------------------------------
    def set_photo(self, path: str) -> None:
        self.photo_edit.setText(path)
        pixmap = QPixmap(path) if path else QPixmap()
        if pixmap.isNull():
            self.thumbnail.setPixmap(QPixmap())
            self.thumbnail.setText("Cannot show this photo" if path else "Drop a specimen photo here")
        else:
            self.thumbnail.setPixmap(pixmap.scaled(220, 140, Qt.KeepAspectRatio, Qt.SmoothTransformation))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if _dropped_photo(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        photo = _dropped_photo(event)
        if photo is not None:
            self.set_photo(photo)
            event.acceptProposedAction()

    def _choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Specimen photo", "", "Photos (*.jpg *.jpeg *.png *.webp)")
        if path:
            self.set_photo(path)

    def _choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Trained mineral model folder")
        if folder:
            self.set_model(folder)

    def set_model(self, folder: str) -> None:
        if self.model_combo.findText(folder) < 0:
            self.model_combo.insertItem(0, folder)
        self.model_combo.setCurrentText(folder)
        self._show_model_quality(folder)

    def _show_model_quality(self, folder: str) -> None:
        self.model_quality.setText(model_quality(folder))

    # -- identify ---------------------------------------------------------------------------------------
    def identify_request(self) -> dict[str, Any]:
        """The ``minerals serve`` request for the photo, properties and model on screen."""
        request: dict[str, Any] = {"model": self.model_combo.currentText().strip(),
                                   "photo": self.photo_edit.text().strip(), "top": 5, "device": default_device()}
        for name, value in (("hardness", self.hardness_edit.text().strip()),
                            ("luster", self.luster_combo.currentData()),
                            ("streak", self.streak_combo.currentData())):
            if value:  # left out = not observed
                request[name] = value
        return request

    def identify(self) -> None:
        photo, model = self.photo_edit.text().strip(), self.model_combo.currentText().strip()
        if not photo or not Path(photo).is_file():
            self.status.setText("Choose a photo first.")
            return
        if not model or not (Path(model) / "model.json").is_file():
            self.status.setText("Choose a trained model folder (it holds model.json), or train one.")
            return
        self.identify_button.setEnabled(False)
        self.status.setText("Identifying…" if self.engine.pid else "Identifying… (starting the engine: a few seconds)")
        self._start(IdentifyTask(self.engine, self.identify_request(), self._show_identification))

    def _show_identification(self, result: dict | None, error: str | None) -> None:
        self.identify_button.setEnabled(True)
        if error:
            self.status.setText(error)
            return
        self.last_result = result
        predictions = (result or {}).get("predictions") or [{}]
        top = predictions[0].get("top", [])
        self.results.setRowCount(len(top))
        for row, entry in enumerate(top):
            self.results.setItem(row, 0, QTableWidgetItem(str(entry["mineral"])))
            bar = QProgressBar(self.results)
            bar.setRange(0, 1000)
            bar.setValue(int(round(float(entry["probability"]) * 1000)))
            bar.setFormat(f"{float(entry['probability']):.1%}")
            self.results.setCellWidget(row, 1, bar)
        seconds = predictions[0].get("seconds")
        timing = f" ({seconds:.2f} s)" if seconds else ""
        if not top:
            self.status.setText("")
        elif predictions[0].get("uncertain"):
            self.status.setText(f"Uncertain: the best match, {top[0]['mineral']}, has only {top[0]['probability']:.0%}; "
                                f"the photo alone does not settle it - check the other candidates{timing}")
        else:
            self.status.setText(f"Best match: {top[0]['mineral']}{timing}")

    def stop_engine(self) -> None:
        """Stop the Identify engine process (the next Identify starts a new one)."""
        self.engine.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # A hidden dock should not keep a Python with torch and a model in memory.
        self.stop_engine()
        super().closeEvent(event)

    def shown_minerals(self) -> list[tuple[str, float]]:
        """The rows on screen as (mineral, probability)."""
        rows = []
        for row in range(self.results.rowCount()):
            bar = self.results.cellWidget(row, 1)
            rows.append((self.results.item(row, 0).text(), bar.value() / 1000.0))
        return rows

    # -- train ------------------------------------------------------------------------------------------
    def _choose_training_folder(self) -> None:
        data = QFileDialog.getExistingDirectory(self, "Photo folder: one sub-folder of photos per mineral")
        if not data:
            return
        out = QFileDialog.getExistingDirectory(self, "Folder for the new model (an empty folder)")
        if out:
            self.train(data, out)

    def train_arguments(self, data: str, out: str, kind: str = "longtail") -> list[str]:
        argv = ["minerals", "train", "--data", data, "--out", out, "--model", kind, "--device", default_device()]
        size = self.training_size.currentData()
        return argv + list(TRAINING_ARGUMENTS.get(size, [])) + list(self.extra_train_arguments)

    def train(self, data: str, out: str, kind: str = "longtail") -> None:
        """Train in the background (task manager: progress, Cancel); the new model is then offered."""
        self.train_button.setEnabled(False)
        self.status.setText(f"Training on {data}… (progress and Cancel in the task manager)")

        def done(result: dict | None, error: str | None) -> None:
            self.train_button.setEnabled(True)
            if error:
                self.status.setText(f"Training stopped: {error}")
                return
            model = str((result or {}).get("outputs", {}).get("model", out))
            _remember_model(model)
            self.set_model(model)
            metrics = (result or {}).get("metrics") or {}
            summary = f" (test mAcc {metrics['mAcc']:.1%})" if isinstance(metrics.get("mAcc"), (int, float)) else ""
            self.status.setText(f"New model ready and selected: {model}{summary}")

        self._start(EngineTask(f"Train mineral model on {Path(data).name}", self.train_arguments(data, out, kind), done))

    def _start(self, task: EngineTask) -> None:
        if self.run_in_background:
            self._tasks = [t for t in self._tasks if t.status() not in (QgsTask.Complete, QgsTask.Terminated)] + [task]
            QgsApplication.taskManager().addTask(task)
        else:
            task.finished(task.run())


TRAINING_SIZES = [("quick", "Quick (pretrained network kept as it is: minutes on a laptop)"),
                  ("full", "Full (fine-tunes the network, published schedule: hours without a GPU)")]
TRAINING_ARGUMENTS = {
    "quick": [],  # the engine's default
    "full": ["--schedule", "full"],
}


def model_quality(folder: str) -> str:
    """The model's accuracy on its validation photos, in plain words ("" when there is no model there)."""
    path = Path(folder.strip()) / "model.json" if folder.strip() else None
    if path is None or not path.is_file():
        return ""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return "This model's description cannot be read."
    validation = info.get("validation") or {}
    macc = validation.get("mAcc")
    minerals = len(info.get("classes", []))
    if not isinstance(macc, (int, float)):
        return f"{minerals} minerals; no validation accuracy recorded for this model."
    return (f"{minerals} minerals; right on {macc:.0%} of its validation photos "
            f"(average over minerals, {validation.get('n_photos', '?')} photos held back from training)")


def _choices(parent: QWidget, options: list[tuple[str, str]]) -> QComboBox:
    combo = QComboBox(parent)
    for value, label in options:
        combo.addItem(label, value)
    return combo


def _dropped_photo(event) -> str | None:
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    for url in urls:
        path = url.toLocalFile()
        if path.lower().endswith(PHOTO_SUFFIXES):
            return path
    return None


def _remembered_models() -> list[str]:
    value = QgsSettings().value(KEY_MODELS, [], type=list) or []
    return [str(v) for v in value if v and (Path(str(v)) / "model.json").is_file()]


def _remember_model(folder: str) -> None:
    models = [folder] + [m for m in _remembered_models() if m != folder]
    QgsSettings().setValue(KEY_MODELS, models[:10])
