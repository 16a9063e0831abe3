"""GeoAnomaly > Settings > "Install engine" / "Update engine": the install as a dialog, no terminal.

The steps come from :func:`geoanomaly_qgis.engine.installer.plan_install`;
each runs as a ``QProcess`` (QGIS stays responsive), pip's lines stream into
the dialog and into a log file the user can open, a progress bar follows pip,
Cancel stops the process (a first install that is cancelled or fails leaves
no half-made environment behind), and the dialog ends with the Check engine
result of the new environment.
"""

from __future__ import annotations

import time
from pathlib import Path

from qgis.PyQt.QtCore import QProcess, QProcessEnvironment, Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QFontDatabase
from qgis.PyQt.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from .engine.discovery import neutral_folder
from .engine.installer import (
    InstallPlan,
    PipProgress,
    plan_install,
    remove_environment,
    subprocess_environment,
    write_reuse_link,
)


class EngineInstallDialog(QDialog):
    """Runs an :class:`InstallPlan`; ``finished_install(ok, message)`` when it ends (also on Cancel)."""

    finished_install = pyqtSignal(bool, str)

    def __init__(self, plan: InstallPlan, parent=None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.setWindowTitle("Update the GeoAnomaly engine" if not plan.creates_venv
                            else "Install the GeoAnomaly engine")
        self.setMinimumSize(720, 480)
        layout = QVBoxLayout(self)
        self.step_label = QLabel("", self)
        self.step_label.setWordWrap(True)
        layout.addWidget(self.step_label)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.output.setMaximumBlockCount(5000)
        layout.addWidget(self.output, 1)
        row = QHBoxLayout()
        self.log_button = QPushButton("Open the install log", self)
        self.log_button.setToolTip(str(plan.log))
        self.log_button.clicked.connect(self.open_log)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.accept)
        self.close_button.setEnabled(False)
        row.addWidget(self.log_button)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.close_button)
        layout.addLayout(row)

        self.ok: bool | None = None  # None while running
        self.message = ""
        self.check_text = ""
        self._process: QProcess | None = None
        self._step = -1
        self._done_share = 0.0
        self._pip: PipProgress | None = None
        self._cancelled = False
        self._started = 0.0
        self._log = None

    # -- running ------------------------------------------------------------------
    def start(self) -> None:
        """Open the log and run the first step (returns at once; the steps run in the event loop)."""
        self._started = time.monotonic()
        self.plan.log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.plan.log, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole install
        self._write(f"GeoAnomaly engine {'update' if not self.plan.creates_venv else 'install'}, "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        for note in self.plan.notes:
            self._write(note)
            self.output.appendPlainText(note)
        self._next_step()

    def _next_step(self) -> None:
        if self._step >= 0:
            self._done_share += self.plan.steps[self._step].share
        self._step += 1
        if self._step == 1 and self.plan.reuse_site:
            self._write(f"linked {write_reuse_link(self.plan.venv, self.plan.reuse_site)}")
        if self._step >= len(self.plan.steps):
            self._check()
            return
        step = self.plan.steps[self._step]
        self.step_label.setText(f"Step {self._step + 1} of {len(self.plan.steps) + 1}: {step.title}")
        self._pip = PipProgress(self.plan.package_count) if step.counts_packages else None
        self._write("$ " + " ".join(step.argv))
        process = QProcess(self)
        environment = QProcessEnvironment()
        for name, value in subprocess_environment().items():
            environment.insert(name, value)
        process.setProcessEnvironment(environment)
        process.setWorkingDirectory(neutral_folder())
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._step_finished)
        process.errorOccurred.connect(self._failed_to_start)
        self._process = process
        process.start(step.argv[0], step.argv[1:])

    def _read(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.splitlines():
            if not line.strip():
                continue
            self._write(line)
            self.output.appendPlainText(line)
            if self._pip is not None and self._pip.feed(line):
                self.status_label.setText(self._pip.status)
                self._set_progress(self._pip.fraction)

    def _set_progress(self, fraction_of_step: float) -> None:
        share = self.plan.steps[self._step].share if 0 <= self._step < len(self.plan.steps) else 0.0
        self.progress.setValue(int(round(100 * min(self._done_share + share * fraction_of_step, 0.99))))

    def _failed_to_start(self, error) -> None:
        if error == QProcess.FailedToStart and not self._cancelled:
            argv = self.plan.steps[self._step].argv
            self._end(False, f"Could not start {argv[0]}.")

    def _step_finished(self, exit_code: int, exit_status) -> None:
        self._read()
        if self._cancelled or self.ok is not None:
            return
        if exit_status != QProcess.NormalExit or exit_code != 0:
            self._end(False, f"{self.plan.steps[self._step].title} failed: {self._last_error_line()}")
            return
        self._write(f"(step done, exit code 0, {time.monotonic() - self._started:.0f} s so far)")
        self._set_progress(1.0)
        self._next_step()

    def _check(self) -> None:
        """The last step: Check engine with the new environment, in the background."""
        from .settings import BackgroundCheck

        self.step_label.setText(f"Step {len(self.plan.steps) + 1} of {len(self.plan.steps) + 1}: "
                                "Checking the new engine")
        self.status_label.setText("Checking…")
        self._checker = BackgroundCheck(self)
        self._checker.done.connect(self._checked)
        self._checker.start(str(self.plan.python), "the environment just installed")

    def _checked(self, ok: bool, text: str) -> None:
        self.check_text = text
        self._write(text)
        self.output.appendPlainText("\n" + text)
        if ok:
            minutes = (time.monotonic() - self._started) / 60
            self._end(True, f"The engine is installed and works ({minutes:.1f} minutes).")
        else:
            self._end(False, "The engine was installed but does not start: see the log.")

    def cancel(self) -> None:
        if self.ok is not None:
            self.reject()
            return
        self._cancelled = True
        if self._process is not None and self._process.state() != QProcess.NotRunning:
            self._process.kill()
            self._process.waitForFinished(10000)
        self._end(False, "Cancelled.")

    def _end(self, ok: bool, message: str) -> None:
        if not ok and self.plan.creates_venv:
            remove_environment(self.plan.venv)  # no half-made environment for the plugin to find
            if self._step >= 0:
                message += " Nothing was installed."
        elif not ok:
            message += " The engine environment may be partly updated: press Update engine again."
        self.ok, self.message = ok, message
        self._write(("DONE: " if ok else "STOPPED: ") + message)
        if self._log is not None:
            self._log.close()
            self._log = None
        if ok:
            self.progress.setValue(100)
        self.status_label.setText(message)
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)
        self.finished_install.emit(ok, message)

    # -- helpers --------------------------------------------------------------------
    def _write(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line.rstrip("\n") + "\n")
            self._log.flush()

    def _last_error_line(self) -> str:
        lines = [line for line in self.output.toPlainText().splitlines() if line.strip()]
        errors = [line.strip() for line in lines if line.strip().startswith(("ERROR", "error:", "Error"))]
        return (errors or lines or ["no output"])[-1]

    def open_log(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.plan.log)))

    def wait(self, timeout: float) -> bool | None:
        """Process events until the install ends or ``timeout`` seconds pass (scripts and tests)."""
        from qgis.PyQt.QtCore import QCoreApplication, QEventLoop

        deadline = time.monotonic() + timeout
        while self.ok is None and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 100)
            time.sleep(0.02)
        return self.ok

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.ok is None:
            self.cancel()
        super().closeEvent(event)


def install_engine(parent=None, plugin_dir: Path | None = None, update: bool = False,
                   torch_choice: str = "auto", reuse_site: str | None = None) -> EngineInstallDialog:
    """Show the install dialog and start installing (returns at once)."""
    from .engine.installer import nvidia_gpu

    plan = plan_install(plugin_dir, torch_choice=torch_choice, gpu=nvidia_gpu() if torch_choice == "auto" else None,
                        update=update, reuse_site=reuse_site)
    dialog = EngineInstallDialog(plan, parent)
    dialog.setAttribute(Qt.WA_DeleteOnClose, False)
    dialog.show()
    dialog.start()
    return dialog
