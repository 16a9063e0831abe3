"""``geoanomaly info``: versions and compute devices, for the plugin's "Check engine"."""

from __future__ import annotations

import platform
import sys

import core

NAME = "info"
HELP = "show versions and available compute devices"


def add_arguments(parser) -> None:
    pass


def engine_info() -> dict:
    info: dict = {"geoanomaly": core.__version__, "python": platform.python_version(),
                  "executable": sys.executable, "platform": platform.platform()}
    for module in ("numpy", "pandas", "geopandas", "rasterio", "sklearn", "torch", "torchvision"):
        try:
            info[module] = __import__(module).__version__
        except Exception as exc:  # noqa: BLE001 - report what is broken rather than fail
            info[module] = f"missing ({type(exc).__name__}: {exc})"
    devices = ["cpu"]
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        pass
    info["devices"] = devices
    from core.anomaly import available_detectors

    info["detectors"] = available_detectors()
    return info


def run(args, progress) -> int:
    info = engine_info()
    if progress.mode == "json":
        progress.result(info=info)
    else:
        for key, value in info.items():
            print(f"{key:>12}: {', '.join(value) if isinstance(value, list) else value}")
    return 0
