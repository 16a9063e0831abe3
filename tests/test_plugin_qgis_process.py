"""The algorithms from the command line: ``qgis_process`` loads the plugin's provider (hasProcessingProvider=yes).

The plugin is installed (development link) into a throw-away profile found
through ``XDG_DATA_HOME``, so the user's own QGIS profile is never touched.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest

from tests.plugin_fixtures import DATA, ENGINE_PYTHON, REPO

sys.path.insert(0, str(REPO / "resources" / "tools"))

import install_plugin  # noqa: E402

# Debian's /usr/bin/qgis_process wrapper adds --noversioncheck, which qgis_process 3.22 rejects.
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")

pytestmark = [
    pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed"),
    pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}"),
    pytest.mark.skipif(not (DATA / "samples.csv").is_file(), reason=f"sample survey not found at {DATA}"),
]


@pytest.fixture(scope="module")
def qgis_process_env(tmp_path_factory):
    data_home = tmp_path_factory.mktemp("xdg-data")
    install_plugin.install(data_home / "QGIS" / "QGIS3", "default")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "GEOANOMALY_PYTHON"}}
    env.update({"XDG_DATA_HOME": str(data_home), "QT_QPA_PLATFORM": "offscreen"})
    return env


def test_qgis_process_lists_the_algorithms(qgis_process_env):
    listed = subprocess.run([QGIS_PROCESS, "list"], env=qgis_process_env, capture_output=True, text=True,
                            timeout=120).stdout
    for algorithm in ("geoanomaly:samples_to_anomalies", "geoanomaly:grid_samples",
                      "geoanomaly:evaluate_against_deposits"):
        assert algorithm in listed, listed[-2000:]


def test_qgis_process_runs_samples_to_anomalies(qgis_process_env, tmp_path):
    samples = (f"delimitedtext://{(DATA / 'samples.csv').as_uri()}?type=csv&detectTypes=yes"
               "&xField=X&yField=Y&crs=EPSG:4283")
    out = tmp_path / "run"
    done = subprocess.run([QGIS_PROCESS, "run", "geoanomaly:samples_to_anomalies", "--",
                           f"SAMPLES={samples}", "METHOD=0", "ELEMENTS=Au_ppm;As_ppm;Cu_ppm;Pb_ppm;Zn_ppm",
                           f"OUTPUT_FOLDER={out}"],
                          env=qgis_process_env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    # The plugin found the engine itself: the development link leads to the repository's .venv.
    assert f"Engine interpreter: {ENGINE_PYTHON}" in done.stdout
    assert "--elements Au_ppm,As_ppm,Cu_ppm,Pb_ppm,Zn_ppm" in done.stdout
    assert f"ANOMALY_RASTER:\t{out / 'anomaly_score.tif'}" in done.stdout
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1392 and all(row["anomaly_score"] for row in rows)
