"""Commodity-aware runs: references by hand, run_detection in a few lines, detect and benchmark end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from core.anomaly.detection import run_detection
from core.anomaly.references import commodity_level, pathfinder_index
from core.cli import main
from core.io.samples import read_samples
from core.preprocess.elements import COMMODITY_BLIND
from tests.synthetic import synthetic_survey

CRS = "EPSG:28350"


def test_commodity_level_by_hand():
    assays = np.array([[1.0, 10.0], [100.0, 1.0], [5.0, 5.0]])
    not_assayed = np.array([[False, False], [False, False], [True, False]])
    level = commodity_level(assays, ["Au", "As"], "Au", not_assayed)
    # ln 1 = 0, ln 100; the sample never assayed for Au ranks below every assayed one.
    assert level[0] == pytest.approx(0.0) and level[1] == pytest.approx(np.log(100.0))
    assert level[2] < level[0]


def test_pathfinder_index_by_hand():
    rng = np.random.default_rng(0)
    assays = np.exp(rng.normal(size=(9, 3)))
    index = pathfinder_index(assays, ["Au", "As", "Fe"], ["Au", "As"])
    logs = np.log(assays)
    clr = logs - logs.mean(axis=1, keepdims=True)
    med = np.median(clr, axis=0)
    q75, q25 = np.percentile(clr, [75, 25], axis=0)
    z = (clr - med) / ((q75 - q25) / 1.349)
    np.testing.assert_allclose(index, np.maximum(z[:, :2], 0).mean(axis=1))


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A synthetic survey whose planted anomalies are enriched in Cu, Zn, Pb and Ni (the Cu suite holds Pb, Zn)."""
    folder = tmp_path_factory.mktemp("survey")
    frame, planted = synthetic_survey(n=200, anomalies=8, seed=3)
    frame.to_csv(folder / "samples.csv", index=False)
    frame.loc[planted, ["X", "Y"]].to_csv(folder / "deposits.csv", index=False)
    return folder, frame, planted


def test_run_detection_in_three_lines(survey):
    folder, frame, planted = survey
    table = read_samples(folder / "samples.csv", crs=CRS)
    result = run_detection(table, "pca", frame.loc[planted, ["X", "Y"]].to_numpy(), commodity="Cu")
    auc = result.metrics["auc_by_score"]
    assert {"pca", "reference:commodity_level", "reference:pathfinder_index", "readout:suite_halo",
            "readout:pca_halo", "baseline:mahalanobis", "readout:mahalanobis_halo"} <= set(auc)
    assert auc["reference:pathfinder_index"]["mean"] > 0.8   # the planted suite is what the index reads
    assert set(result.suite) >= {"Cu", "Zn", "Pb"} and result.suite["Cu"] == 1.0
    assert len(result.columns["pathfinder_index"]) == len(frame)


def test_without_a_commodity_the_log_says_commodity_blind(survey, capsys):
    folder, _, _ = survey
    from core.progress import Progress

    table = read_samples(folder / "samples.csv", crs=CRS)
    result = run_detection(table, "pca", progress=Progress(mode="plain"))
    assert not result.suite and "readout:suite_halo" not in result.compared
    assert result.map_name == "pca" and np.array_equal(result.scores, result.compared["pca"])
    assert COMMODITY_BLIND[:40] in capsys.readouterr().err


def test_detect_with_a_commodity_names_outputs_by_file(survey, tmp_path, capsys):
    folder, _, _ = survey
    out = tmp_path / "run"
    code = main(["detect", "--method", "mahalanobis", "--samples", str(folder / "samples.csv"), "--crs", CRS,
                 "--deposits", str(folder / "deposits.csv"), "--deposits-crs", CRS, "--commodity", "Cu",
                 "--compare", "pca", "--out", str(out), "--progress", "json"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    outputs = events[-1]["outputs"]
    assert {"scores.csv", "scores.gpkg", "success_rate.csv", "success_rate.png"} <= set(outputs)
    record = json.loads((out / "run.json").read_text())
    assert record["commodity"]["name"] == "Cu"
    assert "reference:commodity_level" in record["metrics"]["auc_by_score"]
    scores = pd.read_csv(out / "scores.csv")
    assert {"commodity_level", "pathfinder_index", "suite_halo", "mahalanobis_halo"} <= set(scores.columns)
    # The saved model remembers the commodity: scoring the same samples gives the same readouts.
    assert main(["score", "--model", str(out / "model"), "--samples", str(folder / "samples.csv"), "--crs", CRS,
                 "--out", str(tmp_path / "again"), "--progress", "none"]) == 0
    again = pd.read_csv(tmp_path / "again" / "scores.csv")
    for column in ("commodity_level", "pathfinder_index", "suite_halo", "mahalanobis_halo", "anomaly_score"):
        np.testing.assert_allclose(again[column], scores[column], rtol=1e-6, err_msg=column)
    # With a commodity the run's map is the detector's suite-halo readout; its own score stays a column.
    assert record["map"] == "readout:mahalanobis_halo"
    assert record["metrics"]["auc"] == record["metrics"]["auc_by_score"]["readout:mahalanobis_halo"]["mean"]
    np.testing.assert_allclose(scores["anomaly_score"], scores["mahalanobis_halo"])
    assert "mahalanobis_score" in scores.columns


def _manifest(folder, survey_folder, name="m.toml", commodity="Cu", deposits="deposits.csv", samples="samples.csv"):
    text = f"""seeds = [0]
methods = ["pca", "mahalanobis"]
[[survey]]
name = "a"
samples = "{survey_folder / samples}"
deposits = "{survey_folder / deposits}"
commodity = "{commodity}"
crs = "{CRS}"
deposits_crs = "{CRS}"
[[survey]]
name = "b"
samples = "{survey_folder / samples}"
deposits = "{survey_folder / deposits}"
commodity = "Pb-Zn"
crs = "{CRS}"
deposits_crs = "{CRS}"
"""
    path = folder / name
    path.write_text(text)
    return path


def test_benchmark_gives_the_same_table_twice(survey, tmp_path, capsys):
    folder, _, _ = survey
    manifest = _manifest(tmp_path, folder)
    tables = []
    for run in ("one", "two"):
        assert main(["benchmark", "--manifest", str(manifest), "--out", str(tmp_path / run), "--progress", "none"]) == 0
        tables.append(pd.read_csv(tmp_path / run / "benchmark.csv"))
    pd.testing.assert_frame_equal(*tables)
    table = tables[0]
    assert set(table["survey"]) == {"a", "b"}
    assert {"commodity_level", "pathfinder_index", "pca", "mahalanobis", "suite_halo"} <= set(table["score"])
    for name in ("benchmark.md", "benchmark.png", "run.json"):
        assert (tmp_path / "one" / name).is_file()
    assert "± " in (tmp_path / "one" / "benchmark.md").read_text()


@pytest.mark.parametrize("case, expected", [
    ("missing_file", "does not exist"),
    ("no_commodity_column", "no assay column for the commodity Li"),
    ("deposits_without_coordinates", "no coordinate columns"),
])
def test_benchmark_bad_manifest_one_line_exit_2(survey, tmp_path, capsys, case, expected):
    folder, frame, _ = survey
    if case == "missing_file":
        manifest = _manifest(tmp_path, folder, samples="nowhere.csv")
    elif case == "no_commodity_column":
        manifest = _manifest(tmp_path, folder, commodity="Li")
    else:
        pd.DataFrame({"name": ["a", "b"], "grade": [1.0, 2.0]}).to_csv(tmp_path / "deposits.csv", index=False)
        frame.to_csv(tmp_path / "samples.csv", index=False)
        manifest = _manifest(tmp_path, tmp_path)
    out = tmp_path / "out"
    assert main(["benchmark", "--manifest", str(manifest), "--out", str(out), "--progress", "plain"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("geoanomaly: error:") and expected in err[-1], err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_the_runs_map_is_the_halo_readout_only_when_there_is_one():
    from core.anomaly.detection import choose_map
    from core.errors import InvalidInputError

    own, readouts = np.arange(3.0), {"pca_halo": np.ones(3)}
    assert choose_map("pca", own, readouts)[0] == "readout:pca_halo"
    assert choose_map("pca", own, readouts, "detector")[0] == "pca"
    assert choose_map("knn", own, readouts)[0] == "knn"            # no per-element residuals: its own score
    with pytest.raises(InvalidInputError, match="--map halo"):
        choose_map("knn", own, readouts, "halo")


def test_the_default_map_rises_with_the_samples_own_suite_assays(survey, tmp_path):
    folder, frame, planted = survey
    i = int(np.flatnonzero(~planted)[0])
    raised = frame.copy()
    raised.loc[i, ["Cu_ppm", "Pb_ppm", "Zn_ppm"]] *= 4.0
    raised.to_csv(tmp_path / "raised.csv", index=False)
    before = run_detection(read_samples(folder / "samples.csv", crs=CRS), "mahalanobis", commodity="Cu")
    after = run_detection(read_samples(tmp_path / "raised.csv", crs=CRS), "mahalanobis", commodity="Cu")
    assert before.map_name == after.map_name == "readout:mahalanobis_halo"
    assert after.scores[i] > before.scores[i] + 0.1      # same positions, more metal: a higher score


def test_a_commodity_aware_transformer_keeps_its_own_commodity_map(survey):
    from core.anomaly.detection import detector_options

    folder, frame, planted = survey
    table = read_samples(folder / "samples.csv", crs=CRS)
    options = detector_options(seed=0, generations=1, ensemble=1, epochs=2)
    result = run_detection(table, "transformer", frame.loc[planted, ["X", "Y"]].to_numpy(), commodity="Cu",
                           options=options, baselines=["pca"])
    assert result.detector.commodity == "Cu"                  # the commodity reached the model
    assert result.map_name == "transformer"                   # its own score is its commodity readout
    assert {"readout:transformer_halo", "readout:pca_halo", "reference:pathfinder_index"} <= set(result.compared)
