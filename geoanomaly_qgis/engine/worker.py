"""Running one engine command as a worker process and relaying its progress.

The engine (``python -m core <command> ... --progress json``) writes one JSON
object per line on stdout (see ``core/progress.py``). They are turned into
calls on a Processing feedback object: ``setProgress`` / ``setProgressText``
for stages and progress, ``pushInfo`` / ``pushWarning`` for log lines. A
``result`` event is what :func:`run_engine` returns; an ``error`` event (or a
crash) becomes :class:`EngineError` with the engine's one-line message.

All feedback calls are made from the calling thread: two reader threads only
move lines into a queue, so the feedback object is never touched from a
thread QGIS did not create. This module imports nothing from QGIS, so the
settings dialog and tests can use it with any object that has the
``QgsProcessingFeedback`` methods used here.
"""

from __future__ import annotations

import json
import queue
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from .discovery import _no_window, find_engine_python, install_instructions, neutral_folder
from .environment import engine_environment

# Seconds between SIGTERM (the engine removes its staging folder and exits)
# and SIGKILL on Cancel.
CANCEL_GRACE_SECONDS = 4.0


class Feedback(Protocol):
    """The part of ``QgsProcessingFeedback`` the worker uses."""

    def isCanceled(self) -> bool: ...  # noqa: N802 - Qt's name
    def setProgress(self, progress: float) -> None: ...  # noqa: N802
    def setProgressText(self, text: str) -> None: ...  # noqa: N802
    def pushInfo(self, info: str) -> None: ...  # noqa: N802
    def pushWarning(self, warning: str) -> None: ...  # noqa: N802
    def pushCommandInfo(self, info: str) -> None: ...  # noqa: N802
    def pushConsoleInfo(self, info: str) -> None: ...  # noqa: N802
    def reportError(self, error: str, fatalError: bool = False) -> None: ...  # noqa: N802, N803


class EngineError(Exception):
    """The engine failed; ``str(error)`` is its one-line message."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EngineNotFoundError(EngineError):
    """No interpreter with the engine installed was found."""


class EngineCancelled(EngineError):
    """The user cancelled; the worker was stopped. ``pid`` names its staging folders."""

    def __init__(self, pid: int) -> None:
        super().__init__("cancelled: the engine was stopped and wrote no output")
        self.pid = pid


def engine_command(python: str, argv: Sequence[str]) -> list[str]:
    """``python -m core <argv> --progress json`` (the flag added when missing)."""
    command = [python, "-m", "core", *argv]
    if "--progress" not in argv:
        command += ["--progress", "json"]
    return command


def run_engine(
    argv: Sequence[str],
    feedback: Feedback | None = None,
    python: str | None = None,
    cancel_grace: float = CANCEL_GRACE_SECONDS,
) -> dict[str, Any]:
    """Run ``python -m core <argv>`` and return the payload of its ``result`` event.

    Raises :class:`EngineNotFoundError` when no engine interpreter is found,
    :class:`EngineCancelled` when ``feedback`` is cancelled (the worker gets
    SIGTERM, then SIGKILL after ``cancel_grace`` seconds), and
    :class:`EngineError` with the engine's message when it exits non-zero.
    """
    python = engine_python(python)
    command = engine_command(python, argv)
    if feedback is not None:
        feedback.pushCommandInfo(shlex.join(command))
    process = start_engine_process(python, command, stdin=subprocess.DEVNULL)
    return _Session(process, feedback, cancel_grace).wait()


def engine_python(python: str | None = None) -> str:
    """``python`` if given, else the engine interpreter found from the settings and the environment."""
    if python is not None:
        return python
    found = find_engine_python()
    if found is None:
        raise EngineNotFoundError(
            "the GeoAnomaly engine was not found: set its Python interpreter in "
            "GeoAnomaly > Settings, or install it:\n" + install_instructions()
        )
    return found.python


def start_engine_process(python: str, command: Sequence[str], stdin: int) -> subprocess.Popen:
    """Start ``command`` (from :func:`engine_command`) with text pipes for stdout and stderr.

    The engine's environment and a neutral working folder keep the QGIS
    process's own settings and the user's current folder out of the engine.
    """
    try:
        return subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=engine_environment(),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            cwd=neutral_folder(),
            **_no_window(),
        )
    except OSError as exc:
        raise EngineNotFoundError(f"cannot start the engine interpreter {python}: {exc.strerror or exc}") from exc


def unexpected_exit(python: str, exit_code: int | None, stderr_tail: Iterable[str],
                    feedback: Feedback | None = None) -> EngineError:
    """The error for an engine that ended without its own error event: its last stderr line says why."""
    tail = [line for line in stderr_tail if line.strip()]
    detail = tail[-1] if tail else "no message"
    if "No module named 'core'" in detail or "No module named core" in detail:
        return EngineNotFoundError(
            f"the interpreter {python} does not have the GeoAnomaly engine installed; "
            "choose another one in GeoAnomaly > Settings, or install it:\n" + install_instructions(),
            exit_code)
    if feedback is not None and tail:
        feedback.reportError("\n".join(tail[-10:]), False)
    return EngineError(f"the engine stopped unexpectedly (exit code {exit_code}): {detail}", exit_code)


class _Session:
    """One running worker: reader threads, the event loop, cancel handling."""

    def __init__(self, process: subprocess.Popen, feedback: Feedback | None, cancel_grace: float) -> None:
        self.process = process
        self.feedback = feedback
        self.cancel_grace = cancel_grace
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=30)
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self._readers = [
            threading.Thread(target=self._read, args=("stdout", process.stdout), daemon=True),
            threading.Thread(target=self._read, args=("stderr", process.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream_name: str, stream) -> None:
        try:
            for line in iter(stream.readline, ""):
                self.lines.put((stream_name, line.rstrip("\r\n")))
        except (OSError, ValueError):  # closed on Cancel
            pass
        self.lines.put((stream_name, None))  # end of stream

    def wait(self) -> dict[str, Any]:
        open_streams = 2
        while open_streams:
            if self.feedback is not None and self.feedback.isCanceled():
                self._stop()
                raise EngineCancelled(self.process.pid)
            try:
                stream_name, line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif stream_name == "stdout":
                self._on_stdout(line)
            else:
                self.stderr_tail.append(line)
                if self.feedback is not None and line.strip():
                    self.feedback.pushConsoleInfo(line)
        exit_code = self.process.wait()
        self._close_pipes()
        if exit_code == 0:
            return self.result or {}
        if self.error and self.error.get("message"):
            raise EngineError(str(self.error["message"]), exit_code)
        raise unexpected_exit(self.process.args[0], exit_code, self.stderr_tail, self.feedback)

    def _on_stdout(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            # A library printing to stdout: keep it, but only as console detail.
            if self.feedback is not None and line.strip():
                self.feedback.pushConsoleInfo(line)
            return
        kind = event.get("event")
        feedback = self.feedback
        if kind == "result":
            self.result = {k: v for k, v in event.items() if k != "event"}
        elif kind == "error":
            self.error = event
        elif feedback is None:
            return
        elif kind == "stage":
            if event.get("message"):
                feedback.setProgressText(str(event["message"]))
            self._set_progress(event)
        elif kind == "progress":
            self._set_progress(event)
        elif kind == "log":
            message = str(event.get("message", ""))
            if event.get("level") == "warning":
                feedback.pushWarning(message)
            else:
                feedback.pushInfo(message)

    def _set_progress(self, event: dict[str, Any]) -> None:
        fraction = event.get("overall", event.get("fraction"))
        if isinstance(fraction, (int, float)) and self.feedback is not None:
            self.feedback.setProgress(100.0 * min(1.0, max(0.0, float(fraction))))

    def _stop(self) -> None:
        """SIGTERM lets the engine remove its staging folder; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
            deadline = time.monotonic() + self.cancel_grace
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
