"""Progress reporting for long jobs: a terminal bar, or JSON lines for the plugin.

One object per run is passed down to every step that takes time::

    progress = Progress(mode="json")
    progress.stage("train", "Training generation 1 of 4")
    for epoch in range(n):
        progress.update((epoch + 1) / n, f"epoch {epoch + 1}/{n}")
    progress.log("Using device cuda:0 (NVIDIA H100)")
    progress.result(outputs={"scores": "out/scores.csv"}, metrics={...})

JSON mode writes one object per line on stdout, flushed at once. Event kinds
(the contract with ``geoanomaly_qgis``):

- ``{"event": "stage", "stage": str, "message": str}``
- ``{"event": "progress", "stage": str, "fraction": float, "message": str}``
  (``fraction`` is of the current stage, in [0, 1])
- ``{"event": "log", "level": "info"|"warning", "message": str}``
- ``{"event": "result", ...}`` once, at the end of a successful run
- ``{"event": "error", "message": str, "exit_code": int}`` on failure

Stages may declare their share of the whole run (``stage(name, msg, weight=)``)
so that ``overall`` in progress events moves monotonically across stages.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from core.errors import warn


class Progress:
    """Reports stages, fractions, log lines and the final result."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        if mode not in {"bar", "plain", "json", "none"}:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.current_stage = ""
        self._stage_start = 0.0  # overall fraction when the current stage began
        self._stage_weight = 0.0
        self._last_plain = -1.0
        self._last_emit = 0.0

    # -- events -------------------------------------------------------------
    def stage(self, name: str, message: str = "", weight: float = 0.0) -> None:
        """Start a named stage; ``weight`` is its share of the whole run."""
        self._stage_start = min(1.0, self._stage_start + self._stage_weight)
        self._stage_weight = weight
        self.current_stage = name
        self._last_plain = -1.0
        if self.mode == "json":
            self._json(event="stage", stage=name, message=message, overall=round(self._stage_start, 4))
        elif self.mode in {"bar", "plain"}:
            self._end_bar()
            print(f"[{name}] {message}".rstrip(), file=sys.stderr, flush=True)

    def update(self, fraction: float, message: str = "") -> None:
        """Progress within the current stage, ``fraction`` in [0, 1]."""
        fraction = float(min(1.0, max(0.0, fraction)))
        overall = self._stage_start + self._stage_weight * fraction
        if self.mode == "json":
            now = time.monotonic()
            # Throttle to ~10 events/s, but always send the end of a stage.
            if fraction < 1.0 and now - self._last_emit < 0.1:
                return
            self._last_emit = now
            self._json(event="progress", stage=self.current_stage, fraction=round(fraction, 4),
                       overall=round(overall, 4), message=message)
        elif self.mode == "bar":
            width = 30
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r  [{bar}] {fraction * 100:5.1f}% {message[:60]:<60}")
            sys.stderr.flush()
            if fraction >= 1.0:
                self._end_bar()
        elif self.mode == "plain":
            # Non-interactive output (logs, CI): a line every 25 %.
            if fraction >= 1.0 or fraction - self._last_plain >= 0.25:
                self._last_plain = fraction
                print(f"  {fraction * 100:5.1f}% {message}".rstrip(), file=sys.stderr, flush=True)

    def log(self, message: str, level: str = "info") -> None:
        if self.mode == "json":
            self._json(event="log", level=level, message=message)
        elif self.mode != "none":
            self._end_bar()
            prefix = "warning: " if level == "warning" else ""
            print(f"{prefix}{message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """A warning for the user: shown here and issued through :mod:`warnings` (see :func:`core.errors.warn`)."""
        warn(message, self, stacklevel=3)

    def result(self, **payload: Any) -> None:
        if self.mode == "json":
            self._json(event="result", **payload)

    def error(self, message: str, exit_code: int = 2) -> None:
        if self.mode == "json":
            self._json(event="error", message=message, exit_code=exit_code)
        else:
            self._end_bar()
            print(f"geoanomaly: error: {message}", file=sys.stderr, flush=True)

    # -- helpers ------------------------------------------------------------
    def _json(self, **payload: Any) -> None:
        self.stream.write(json.dumps(payload, default=_jsonable) + "\n")
        self.stream.flush()

    def _end_bar(self) -> None:
        if self.mode == "bar":
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and paths into JSON-friendly values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class SilentProgress(Progress):
    """For library use and tests: reports nothing."""

    def __init__(self) -> None:
        super().__init__(mode="none")
