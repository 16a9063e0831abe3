"""The QGIS desktop application with the plugin installed from its zip: what a person sees.

``qgis`` runs under Xvfb with a clean profile (``--profiles-path``), the plugin
installed from the zip that ``make package`` builds and enabled, and
``resources/tools/qgis_desktop_check.py`` as startup script: it runs "Samples →
anomalies" on the sample survey, and saves a report and screenshots, which
are copied to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.plugin_fixtures import DATA, ENGINE_PYTHON, REPO

sys.path.insert(0, str(REPO / "resources" / "tools"))

import install_plugin  # noqa: E402
import package_plugin  # noqa: E402

ARTIFACTS = REPO / "test-artifacts"
STARTUP_SCRIPT = REPO / "resources" / "tools" / "qgis_desktop_check.py"
MISSING = [tool for tool in ("qgis", "xvfb-run") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(bool(MISSING), reason=f"the desktop test needs {' and '.join(MISSING)} (not installed)"),
    pytest.mark.skipif(not ENGINE_PYTHON.is_file(), reason=f"no engine venv at {ENGINE_PYTHON}"),
    pytest.mark.skipif(not (DATA / "samples.csv").is_file(), reason=f"sample survey not found at {DATA}"),
]


@pytest.fixture(scope="module")
def desktop_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("qgis-desktop")
    plugin_zip = package_plugin.build(work / "dist" / "geoanomaly_qgis.zip")
    profiles = work / "profiles-root"
    installed = install_plugin.install(profiles, "default", plugin_zip)
    out = work / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"QT_QPA_PLATFORM", "PYTHONPATH", "VIRTUAL_ENV"}}
    env.update({
        "GEOANOMALY_PYTHON": str(ENGINE_PYTHON),  # the zip's copy of the plugin is not in the source tree
        "GEOANOMALY_DESKTOP_OUT": str(out),
        "GEOANOMALY_DESKTOP_DATA": str(DATA),
        "GEOANOMALY_DESKTOP_TIMEOUT": "150",
    })
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--profiles-path", str(profiles),
               "--nologo", "--noversioncheck", "--code", str(STARTUP_SCRIPT)]
    # Its own process group, so that a hung QGIS (and its Xvfb) can be stopped as a whole.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=work, start_new_session=True)
    try:
        log, _ = process.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        log = process.communicate()[0] + "\n[killed after 200 s]"
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {
        "error": "QGIS wrote no report: it did not reach the startup script (a modal error dialog while "
                 "loading plugins?) or crashed; log tail:\n" + log[-3000:]}
    ARTIFACTS.mkdir(exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copy2(png, ARTIFACTS / png.name)
    (ARTIFACTS / "qgis_desktop_report.json").write_text(json.dumps(report, indent=2))
    return {"report": report, "out": out, "installed": installed, "log": log}


def test_plugin_is_installed_from_the_zip_and_enabled(desktop_run):
    report = desktop_run["report"]
    assert "error" not in report, report.get("error") or report
    assert not desktop_run["installed"].is_symlink()
    assert report["plugin_loaded"] and report["provider"]
    expected = ["Samples → anomalies", "Grid samples to raster", "Evaluate against deposits",
                "Export prospectivity map (current run)", "Mineral identification", "Settings…"]
    for label in expected:
        assert label in report["toolbar_actions"], report["toolbar_actions"]
        assert label in report["menu_actions"], report["menu_actions"]
    assert report.get("mineral_dock_visible"), "the Mineral identification button did not show its dock"


def test_run_results_are_loaded_grouped_and_styled(desktop_run):
    report = desktop_run["report"]
    assert "error" not in report, report.get("error")
    assert len(report["groups"]) == 1 and report["groups"][0].startswith("GeoAnomaly mahalanobis ")
    layers = report["group_layers"]
    # The run's deposits as stars on top, the scored samples, then the heat map.
    assert [layer["renderer"] for layer in layers] == ["singleSymbol", "graduatedSymbol", "singlebandpseudocolor"], \
        layers
    assert layers[0]["name"] == "Known deposits"
    assert all(layer["valid"] for layer in layers)
    assert layers[1]["crs"] == "EPSG:4283" and layers[2]["crs"] == "EPSG:32750"
    assert layers[2]["legend_title"] == "Anomaly score (percentile)"
    assert 0.5 < float(report["results"]["AUC"]) <= 1.0


def test_screenshot_shows_the_heat_map(desktop_run):
    from PIL import Image

    report = desktop_run["report"]
    assert report.get("screenshot"), report
    shot = ARTIFACTS / "qgis_desktop.png"
    assert shot.is_file()
    image = Image.open(ARTIFACTS / "qgis_map_canvas.png").convert("RGB")
    pixels = list(image.getdata())
    # The ramp's anomalous end (#bd0026 / #f03b20) and its pale background must both be on the map.
    red = sum(1 for r, g, b in pixels if r > 170 and g < 80 and b < 60)
    pale = sum(1 for r, g, b in pixels if r > 240 and 200 < g < 250 and b < 200)
    assert red > 200, f"only {red} anomaly-red pixels on the map"
    assert pale > 1000, f"only {pale} pale heat-map pixels on the map"


def test_algorithm_dialog_runs_in_the_background_and_logs(desktop_run):
    report = desktop_run["report"]
    assert "error" not in report, report.get("error")
    assert report["dialog_threaded"] and report["dialog_ok"], report.get("dialog_log")
    log = report["dialog_log"]
    assert "Detector knn on cpu" in log and "Engine interpreter:" in log
    assert "-m core detect --method knn" in log
    assert len(report["groups_after_dialog"]) == 2, report["groups_after_dialog"]
    # With deposits, the results page (curve and the run's AUC) opens in a panel inside QGIS.
    assert report["results_panel_visible"], report.get("results_panel_text")
    auc_lines = [line for line in log.splitlines() if line.startswith("knn: AUC")]
    assert auc_lines and auc_lines[0].split()[2] in report["results_panel_text"], (auc_lines, report)
    assert any(name.startswith("GeoAnomaly knn ") for name in report["groups_after_dialog"])


def test_cancel_button_stops_the_worker_and_leaves_no_output(desktop_run):
    report = desktop_run["report"]
    assert "error" not in report, report.get("error")
    assert report["cancel_at_progress"] >= 10, "cancelled while training"
    assert report["cancel_run_ok"] is False
    assert report["cancel_seconds"] < 8, f"the worker took {report['cancel_seconds']:.1f} s to stop"
    assert not report["cancel_output_exists"] and not report["cancel_partial_left"]
    assert "Cancelled" in report["cancel_log"], report["cancel_log"]


def test_settings_dialog_checks_the_engine(desktop_run):
    report = desktop_run["report"]
    assert report.get("engine_ok"), report.get("engine_report")
    assert report["options_page"], "the GeoAnomaly page is registered in Settings > Options"
    assert "Devices: cpu" in report["engine_report"]
    assert report["check_in_background"] == "Checking…", "Check engine shows it is busy, QGIS stays usable"
    assert (ARTIFACTS / "qgis_settings.png").is_file() and (ARTIFACTS / "qgis_algorithm_dialog.png").is_file()


def test_every_algorithm_opens_again_after_its_dialog_is_closed(desktop_run):
    """Toolbar, close, menu, close, toolbar, close, menu: a dialog each time (a deleted dialog once broke this)."""
    report = desktop_run["report"]
    assert "error" not in report, report.get("error")
    reopened = report["reopened"]
    assert len(reopened) >= 5, reopened
    for name, ways in reopened.items():
        assert ways == ["toolbar: open", "menu: open"] * 2, (name, ways)
