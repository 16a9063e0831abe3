"""`geoanomaly detect` / `score` end to end on the real survey, and every kind of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    """Run the engine as the plugin and a geologist do: a separate process."""
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory, sed1_samples, sed1_deposits):
    out = tmp_path_factory.mktemp("detect") / "out"
    result = run_cli("detect", "--method", "mahalanobis", "--samples", sed1_samples, "--deposits", sed1_deposits,
                     "--out", out, "--progress", "json")
    assert result.returncode == 0, result.stderr + result.stdout
    return out, result


def test_detect_writes_every_output(detect_run, sed1_samples):
    out, _ = detect_run
    for name in ("scores.csv", "scores.gpkg", "anomaly_score.tif", "run.json", "success_rate.png",
                 "success_rate.csv", "model/model.json", "model/preprocess.json", "model/detector.json"):
        assert (out / name).exists(), name
    scores = pd.read_csv(out / "scores.csv")
    source = pd.read_csv(sed1_samples, usecols=["X", "Y", "SAMPLEID"])
    assert len(scores) == len(source)
    np.testing.assert_array_equal(scores["x"], source["X"])  # input CRS, input row order
    np.testing.assert_array_equal(scores["SAMPLEID"], source["SAMPLEID"])
    assert {"anomaly_score", "anomaly_rank", "anomaly_percentile"} <= set(scores.columns)
    assert not list(out.parent.glob(".out.partial-*"))


def test_run_record_holds_parameters_versions_and_auc(detect_run):
    out, _ = detect_run
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["method"] == "mahalanobis"
    assert {"numpy", "geoanomaly"} <= set(record["versions"])
    auc = record["metrics"]["auc_by_score"]
    assert 0.5 < auc["mahalanobis"]["mean"] < 1.0
    assert record["metrics"]["auc"] == auc["mahalanobis"]["mean"]
    assert len(auc["mahalanobis"]["runs"]) == 20
    assert {f"baseline:{n}" for n in ("isolation_forest", "knn", "ocsvm", "pca")} <= set(auc)
    assert record["preprocessing"] and record["elements"]


def test_outputs_are_valid_geodata(detect_run):
    import geopandas as gpd
    import rasterio

    out, _ = detect_run
    points = gpd.read_file(out / "scores.gpkg", layer="scores")
    assert points.crs.to_epsg() == 4326 and len(points) == 1392
    with rasterio.open(out / "anomaly_score.tif") as src:
        assert src.crs.to_epsg() == 32750 and src.dtypes[0] == "float32"
        band = src.read(1, masked=True)
        assert band.count() > 0 and band.mask.any()  # data inside, nodata outside the survey


def test_json_progress_is_one_object_per_line(detect_run):
    _, result = detect_run
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    kinds = {e["event"] for e in events}
    assert {"stage", "log", "result"} <= kinds
    assert events[-1]["event"] == "result" and "outputs" in events[-1]


def test_score_new_samples_with_the_saved_model(detect_run, sed1_samples, tmp_path):
    out, _ = detect_run
    result = run_cli("score", "--model", out / "model", "--samples", sed1_samples, "--out", tmp_path / "rescored")
    assert result.returncode == 0, result.stderr
    again = pd.read_csv(tmp_path / "rescored" / "scores.csv")
    first = pd.read_csv(out / "scores.csv")
    np.testing.assert_allclose(again["anomaly_score"], first["anomaly_score"], rtol=1e-12)


@pytest.mark.parametrize("method", ["isolation_forest", "knn", "ocsvm", "pca"])
def test_every_classical_method_runs(tmp_path, sed1_samples, method):
    assert main(["detect", "--method", method, "--samples", str(sed1_samples), "--out", str(tmp_path / "o"),
                 "--progress", "none"]) == 0
    assert (tmp_path / "o" / "anomaly_score.tif").exists()


# -- bad input: one clear line, exit code 2, nothing written ---------------------------------

def _bad_inputs(tmp_path, sed1_samples):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\x01\x02 not a csv \xff\xfe" * 50)
    no_elements = tmp_path / "no_elements.csv"
    pd.DataFrame({"X": [117.0, 117.1] * 10, "Y": [-33.0, -33.1] * 10, "name": ["a", "b"] * 10}).to_csv(no_elements,
                                                                                                      index=False)
    text_assays = tmp_path / "text.csv"
    pd.DataFrame({"X": np.linspace(117, 118, 20), "Y": np.full(20, -33.0), "Cu_ppm": ["high"] * 20,
                  "Zn_ppm": np.arange(20)}).to_csv(text_assays, index=False)
    all_missing = tmp_path / "missing.csv"
    pd.DataFrame({"X": np.linspace(117, 118, 20), "Y": np.full(20, -33.0), "Cu_ppm": [-9999] * 20,
                  "Zn_ppm": [-9999] * 20}).to_csv(all_missing, index=False)
    few = tmp_path / "few.csv"
    pd.read_csv(sed1_samples, nrows=4).to_csv(few, index=False)
    no_deposit_xy = tmp_path / "deposits.csv"
    pd.DataFrame({"name": ["a"], "commodity": ["Au"]}).to_csv(no_deposit_xy, index=False)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    s = str(sed1_samples)
    return {
        "missing file": (["--samples", str(tmp_path / "nope.csv")], "not found"),
        "unreadable csv": (["--samples", str(garbage)], "garbage.csv"),
        "no element columns": (["--samples", str(no_elements)], "no element columns"),
        "non-numeric column": (["--samples", str(text_assays)], "Cu_ppm"),
        "all values missing": (["--samples", str(all_missing)], "fewer than two usable element columns"),
        "too few samples": (["--samples", str(few)], "too few"),
        "unknown crs": (["--samples", s, "--crs", "EPSG:999999"], "EPSG:999999"),
        "deposits without coordinates": (["--samples", s, "--deposits", str(no_deposit_xy)], "no coordinate columns"),
        "output not writable": (["--samples", s, "--out", str(a_file / "out")], "output"),
        "unknown method": (["--samples", s, "--method", "magic"], "unknown detector"),
    }


@pytest.mark.parametrize("case", ["missing file", "unreadable csv", "no element columns", "non-numeric column",
                                  "all values missing", "too few samples", "unknown crs",
                                  "deposits without coordinates", "output not writable", "unknown method"])
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, sed1_samples, case):
    args, expected = _bad_inputs(tmp_path, sed1_samples)[case]
    out = tmp_path / "out"
    argv = ["detect", "--method", "mahalanobis", "--out", str(out), *args]
    # Later occurrences of an option win in argparse: --method/--out overrides come last.
    result = run_cli(*argv)
    assert result.returncode == 2, (case, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("[")]
    assert lines[-1].startswith("geoanomaly: error:") and expected.lower() in lines[-1].lower(), (case, result.stderr)
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())
    assert not list(tmp_path.glob(".out.partial-*"))


def test_geopackage_input_with_x_y_attributes(tmp_path):
    """GeoPackage field names ignore case: input attributes X/Y must not clash with the output's x/y."""
    import geopandas as gpd

    from tests.synthetic import synthetic_survey

    frame, _ = synthetic_survey(n=60)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.X, frame.Y), crs=28350)
    path = tmp_path / "samples.gpkg"
    gdf.to_file(path, driver="GPKG")
    assert main(["detect", "--method", "pca", "--samples", str(path), "--out", str(tmp_path / "o"),
                 "--progress", "none"]) == 0
    points = gpd.read_file(tmp_path / "o" / "scores.gpkg")
    assert {"X_input", "Y_input", "x", "y"} <= set(points.columns)


def test_progress_reaches_the_end_of_the_bar(detect_run):
    _, result = detect_run
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    overall = [e["overall"] for e in events if "overall" in e]
    assert overall == sorted(overall)  # never moves backwards
    last_stage = [e for e in events if e["event"] == "stage"][-1]
    assert last_stage["stage"] == "grid" and 0.8 <= last_stage["overall"] < 1.0


def test_log_run_record_and_plot_legend_give_one_auc(detect_run):
    """The AUC in the log is the one in run.json and the one printed in success_rate.png's legend."""
    from core.evaluate.curves import SuccessRateCurve

    out, result = detect_run
    record = json.loads((out / "run.json").read_text())
    logged = [e["message"] for e in map(json.loads, result.stdout.splitlines())
              if e.get("event") == "log" and e.get("message", "").startswith("mahalanobis: AUC")]
    assert logged and f"AUC {record['metrics']['auc']:.3f}" in logged[0], logged
    # No second figure called AUC for the same score: the single curve's area has its own name.
    curve = record["metrics"]["success_rate"]["mahalanobis"]
    assert "auc" not in curve and 0.0 < curve["curve_area"] < 1.0
    assert curve["curve_area"] != pytest.approx(record["metrics"]["auc"], abs=5e-4)  # they differ: two figures
    # The legend the plot is drawn with, from the same numbers.
    rates = pd.read_csv(out / "success_rate.csv")
    own = rates[rates["score"] == "mahalanobis"]
    line = SuccessRateCurve(own["area_share"].to_numpy(), own["deposit_share"].to_numpy(),
                            own["threshold"].to_numpy(), curve["curve_area"], curve["deposits_in_top_area"], {},
                            "samples", 0, 0, 0).legend(record["metrics"]["auc"])
    assert line.startswith(f"AUC {record['metrics']['auc']:.3f};")


def test_a_folder_with_an_earlier_run_is_refused_without_overwrite(detect_run, sed1_samples):
    out, _ = detect_run
    before = (out / "run.json").read_bytes()
    refused = run_cli("detect", "--method", "pca", "--samples", sed1_samples, "--out", out)
    assert refused.returncode == 2 and "holds an earlier run" in refused.stderr and "--overwrite" in refused.stderr
    assert (out / "run.json").read_bytes() == before  # nothing replaced, nothing half-written
    assert not list(out.parent.glob(".out.partial-*"))


def test_overwrite_replaces_the_earlier_run(tmp_path, sed1_samples):
    out = tmp_path / "out"
    for method in ("mahalanobis", "pca"):
        result = run_cli("detect", "--method", method, "--samples", sed1_samples, "--out", out, "--overwrite",
                         "--elements", "Au_ppm,As_ppm,Cu_ppm")
        assert result.returncode == 0, result.stderr
    assert json.loads((out / "run.json").read_text())["parameters"]["method"] == "pca"


def test_a_killed_run_leaves_a_partial_folder_the_next_run_removes(tmp_path, sed1_samples):
    """SIGKILL cannot be caught: the staging folder stays; the next run into that folder removes it."""
    import signal
    import time

    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "core", "detect", "--method", "ocsvm", "--samples",
                                str(sed1_samples), "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = list(tmp_path.glob(f".out.partial-{process.pid}"))
    assert left, "the killed run should have left its staging folder (else this test proves nothing)"
    alive = tmp_path / f".out.partial-{os.getpid()}"  # a run still going (this process): kept
    alive.mkdir()
    result = run_cli("detect", "--method", "mahalanobis", "--samples", sed1_samples, "--out", out,
                     "--elements", "Au_ppm,As_ppm,Cu_ppm")
    assert result.returncode == 0, result.stderr
    assert not left[0].exists() and alive.is_dir()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_a_folder_the_system_refuses_gives_one_line_and_exit_2(sed1_samples):
    """/proc passes os.access for root yet refuses new folders: one clear line, not an internal error."""
    result = run_cli("detect", "--method", "mahalanobis", "--samples", sed1_samples, "--out", "/proc/geoanomaly_out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("geoanomaly: error: ") and "writable" in result.stderr
