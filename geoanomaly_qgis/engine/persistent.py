"""A long-lived engine process that answers requests: one JSON object per line each way.

:func:`.worker.run_engine` starts a fresh ``python -m core`` for every command,
so each one pays for starting Python, importing torch and loading its model:
seconds, for an answer that takes a tenth of one. A command that serves many
small requests (``minerals serve``) runs instead in a :class:`PersistentEngine`:

    engine = PersistentEngine(["minerals", "serve"])
    answer = engine.request({"model": folder, "photo": path}, feedback, python=...)
    ...
    engine.stop()

It starts on the first request, with the same interpreter, environment and
working folder as the worker; is started again when it has died; and ends on
:meth:`PersistentEngine.stop`, or by itself when QGIS exits (its stdin closes).

Like the worker, this module imports nothing from QGIS.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from .worker import (
    CANCEL_GRACE_SECONDS,
    EngineCancelled,
    EngineError,
    Feedback,
    engine_command,
    engine_python,
    start_engine_process,
    unexpected_exit,
)

# Seconds an idle engine gets to exit by itself once its stdin is closed, before SIGTERM;
# short, because stop() runs on QGIS's main thread (closing the dock).
EXIT_WAIT_SECONDS = 1.0


class PersistentEngine:
    """``python -m core <argv>`` kept running; :meth:`request` sends one JSON line and returns its answer.

    Requests are answered one at a time, in order. An answer ``{"error": message}``
    (a bad request: the engine keeps running) raises :class:`EngineError`, as does
    an engine that dies; :class:`EngineCancelled` when ``feedback`` is cancelled
    (the engine is stopped; the next request starts a new one).
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self._lock = threading.Lock()  # one request at a time, so answers pair with requests
        self._process: _EngineProcess | None = None

    @property
    def pid(self) -> int | None:
        """The running engine's process id (None when none runs)."""
        process = self._process
        return process.popen.pid if process is not None and process.alive() else None

    def request(self, payload: dict[str, Any], feedback: Feedback | None = None,
                python: str | None = None) -> dict[str, Any]:
        """Send ``payload``, wait for the engine's answer (blocking: call it from a task, not the GUI thread)."""
        with self._lock:
            for attempt in (1, 2):
                process = self._running(python, feedback)
                try:
                    process.send(payload)
                    break
                except (OSError, ValueError):
                    # It died since the last request, before poll() could tell: once more on a fresh one.
                    self._discard(process)
                    if attempt == 2:
                        raise process.failure(feedback) from None
            answer = process.receive(feedback)
            if answer is _CANCELLED:
                self._discard(process)
                raise EngineCancelled(process.popen.pid)
            if answer is None:  # it ended without answering: crashed, killed, or stop() was called
                self._discard(process)
                if process.stopping:
                    raise EngineCancelled(process.popen.pid)
                raise process.failure(feedback)
            if "error" in answer:
                raise EngineError(str(answer["error"]))
            return answer

    def stop(self) -> None:
        """End the engine (from any thread; a request in flight then raises :class:`EngineCancelled`)."""
        process, self._process = self._process, None
        if process is not None:
            process.close()

    def _running(self, python: str | None, feedback: Feedback | None) -> _EngineProcess:
        python = engine_python(python)
        process = self._process
        if process is not None and (not process.alive() or process.python != python):
            # Died, or another interpreter was chosen in the settings since it started.
            self._discard(process)
            process = None
        if process is None:
            if feedback is not None:
                feedback.setProgressText("Starting the engine (the first answer takes a few seconds)")
            process = self._process = _EngineProcess(python, self.argv)
        return process

    def _discard(self, process: _EngineProcess) -> None:
        if self._process is process:
            self._process = None
        process.close()


_CANCELLED = object()


class _EngineProcess:
    """One engine process: its pipes and the threads that read them."""

    def __init__(self, python: str, argv: Sequence[str]) -> None:
        self.python = python
        self.stopping = False
        self.popen = start_engine_process(python, engine_command(python, argv), stdin=subprocess.PIPE)
        # Both pipes are always drained: an engine blocked on a full stderr pipe would never answer.
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=30)
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, payload: dict[str, Any]) -> None:
        self.popen.stdin.write(json.dumps(payload) + "\n")
        self.popen.stdin.flush()

    def receive(self, feedback: Feedback | None) -> dict[str, Any] | object | None:
        """The next answer; None when the engine ended first, ``_CANCELLED`` when feedback was cancelled."""
        while True:
            if feedback is not None and feedback.isCanceled():
                return _CANCELLED
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return None
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # not an answer (a library writing on stdout): skip it
            if not isinstance(answer, dict):
                continue
            if answer.get("event") == "error":  # the command itself failed to start (core/cli.py)
                return {"error": answer.get("message", "the engine failed")}
            if "event" not in answer:
                return answer

    def failure(self, feedback: Feedback | None) -> EngineError:
        """Why the engine ended without answering (after it has ended)."""
        try:
            exit_code = self.popen.wait(timeout=CANCEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            exit_code = None
        self._readers[1].join(timeout=1.0)  # the last stderr lines say why
        return unexpected_exit(self.python, exit_code, list(self.stderr_tail), feedback)

    def close(self) -> None:
        """End of input lets an idle engine exit by itself (code 0); SIGTERM, then SIGKILL, if it does not."""
        self.stopping = True
        try:
            self.popen.stdin.close()
        except (OSError, ValueError):
            pass
        for stop, wait in ((None, EXIT_WAIT_SECONDS), (self.popen.terminate, CANCEL_GRACE_SECONDS),
                           (self.popen.kill, None)):
            if stop is not None:
                stop()
            try:
                self.popen.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for stream in (self.popen.stdout, self.popen.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def _read_stdout(self) -> None:
        try:
            for line in iter(self.popen.stdout.readline, ""):
                self.lines.put(line.rstrip("\r\n"))
        except (OSError, ValueError):  # closed by close()
            pass
        self.lines.put(None)

    def _read_stderr(self) -> None:
        try:
            for line in iter(self.popen.stderr.readline, ""):
                self.stderr_tail.append(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
