"""Measure a new user's way from the plugin zip to the first styled anomaly map, with screenshots.

Builds the zip, installs it into a fresh QGIS profile (as "Install from ZIP"
does), starts the desktop QGIS under Xvfb with ``qgis_first_map.py``: Settings >
Install engine (a real install, pip from the configured index), then "Samples
-> anomalies" on the bundled survey. Prints the time of each step and copies
the screenshots to ``test-artifacts/first_map/``. Needs qgis and xvfb-run.

Usage: ``python resources/tools/first_map_timing.py [--torch auto|pip|URL] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "resources" / "tools"))

import install_plugin  # noqa: E402
import package_plugin  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="auto", help="the 'torch for Install engine' setting (auto, pip, URL)")
    parser.add_argument("--data", default=str(REPO / "resources" / "sample_data"))
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--timeout", type=float, default=3000)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoanomaly-first-map-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.mkdir(exist_ok=True)
    home = work / "home"  # the user's Documents (the default output folder) live here, not in the real home
    (home / "Documents").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    plugin_zip = package_plugin.build(work / "dist" / "geoanomaly_qgis.zip")
    installed = install_plugin.install(work / "profiles", "default", plugin_zip)
    zip_seconds = time.monotonic() - started
    env = {k: v for k, v in os.environ.items()
           if k not in {"QT_QPA_PLATFORM", "PYTHONPATH", "VIRTUAL_ENV", "GEOANOMALY_PYTHON",
                        "GEOANOMALY_ENGINE_REUSE_SITE"}}
    env.update({"HOME": str(home), "XDG_DOCUMENTS_DIR": str(home / "Documents"),
                "GEOANOMALY_FIRST_MAP_OUT": str(out), "GEOANOMALY_FIRST_MAP_DATA": args.data,
                "GEOANOMALY_FIRST_MAP_TORCH": args.torch, "GEOANOMALY_FIRST_MAP_TIMEOUT": str(args.timeout)})
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--profiles-path", str(work / "profiles"),
               "--nologo", "--noversioncheck", "--code", str(REPO / "resources" / "tools" / "qgis_first_map.py")]
    qgis_started = time.monotonic()
    completed = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True,
                               timeout=args.timeout + 120)
    wall = time.monotonic() - qgis_started
    report_path = out / "first_map.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"error": completed.stdout[-3000:]}
    artifacts = REPO / "test-artifacts" / "first_map"
    artifacts.mkdir(parents=True, exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copy2(png, artifacts / png.name)
    report.update({"zip_install_seconds": round(zip_seconds, 1), "qgis_wall_seconds": round(wall, 1),
                   "plugin_folder": str(installed), "work": str(work)})
    (artifacts / "first_map.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
