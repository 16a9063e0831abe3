"""The run record (``run.json``): every parameter, versions, device, timings, metrics."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import core


def software_versions() -> dict[str, str]:
    versions = {"geoanomaly": core.__version__, "python": platform.python_version()}
    for module in ("numpy", "pandas", "geopandas", "rasterio", "sklearn", "torch", "torchvision"):
        mod = sys.modules.get(module)
        if mod is not None:
            versions[module] = getattr(mod, "__version__", "?")
    return versions


class RunRecord:
    """Collects what a run did; ``write`` saves it as JSON."""

    def __init__(self, command: str, parameters: dict[str, Any]) -> None:
        self.data: dict[str, Any] = {
            "command": command,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "parameters": {k: _plain(v) for k, v in parameters.items()},
            "timings_s": {},
        }
        self._t0 = time.perf_counter()
        self._timers: dict[str, float] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def start_timer(self, name: str) -> None:
        self._timers[name] = time.perf_counter()

    def stop_timer(self, name: str) -> float:
        elapsed = time.perf_counter() - self._timers.pop(name)
        self.data["timings_s"][name] = round(elapsed, 3)
        return elapsed

    def write(self, path: str | Path) -> None:
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 3)
        self.data["versions"] = software_versions()
        Path(path).write_text(json.dumps(self.data, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
