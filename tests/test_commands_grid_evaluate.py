"""``geoanomaly grid`` and ``geoanomaly evaluate`` end to end on a piece of the real GSWA survey."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

import core.grid.idw as idw
from core.cli import main
from core.evaluate.auc import auc_protocol
from core.io.rasters import read_raster_stack, write_raster
from core.io.samples import read_deposits, read_samples

ELEMENTS = ["Au_ppm", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm", "Ni_ppm", "Co_ppm", "Fe_ppm"]


@pytest.fixture(scope="module")
def survey(tmp_path_factory, request) -> dict[str, Path]:
    """The ~230 samples within 35 km of the deposits' centre, eight assays; all 32 deposits."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gswa_sed1_au"
    if not (shared / "samples.csv").exists():
        pytest.skip("shared GSWA data not present")
    folder = tmp_path_factory.mktemp("sed1_piece")
    samples = pd.read_csv(shared / "samples.csv", usecols=["X", "Y", "SAMPLEID", *ELEMENTS])
    deposits = pd.read_csv(shared / "deposits.csv")
    centre = deposits[["X", "Y"]].mean()
    km = np.hypot((samples.X - centre.X) * 93.0, (samples.Y - centre.Y) * 111.0)
    samples[km < 35].to_csv(folder / "samples.csv", index=False)
    deposits[["X", "Y", "SITE_CODE", "SHORT_NAME"]].to_csv(folder / "deposits.csv", index=False)
    # A scores file as detect writes it: x, y in the input CRS and an anomaly_score.
    piece = samples[km < 35]
    scores = pd.DataFrame(
        {
            "x": piece.X,
            "y": piece.Y,
            "SAMPLEID": piece.SAMPLEID,
            "anomaly_score": np.log(piece.Au_ppm.abs().clip(lower=1e-4)),
        }
    )
    scores.to_csv(folder / "scores.csv", index=False)
    return {
        "samples": folder / "samples.csv",
        "deposits": folder / "deposits.csv",
        "scores": folder / "scores.csv",
    }


def run_cli(*argv: str) -> int:
    return main([*map(str, argv), "--progress", "none"])


def test_grid_fields_writes_named_bands_in_the_work_crs(survey, tmp_path):
    out = tmp_path / "grid_out"
    assert run_cli("grid", "--samples", survey["samples"], "--out", out, "--fields", "Au_ppm,As_ppm") == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.tif", "run.json"]
    stack = read_raster_stack(out / "grid.tif")
    assert stack.band_names == ["Au_ppm", "As_ppm"]
    assert stack.crs.to_epsg() == 32750  # lon/lat in, local UTM (zone 50 S) out
    record = json.loads((out / "run.json").read_text())
    assert record["bands"] == ["Au_ppm", "As_ppm"] and record["command"] == "grid"
    assert record["grid"]["cell_m"] == abs(stack.transform.a)
    # IDW never leaves the range of the data (missing codes excluded).
    arsenic = pd.read_csv(survey["samples"]).As_ppm.replace(-9999, np.nan)
    inside = stack.values[1][stack.valid_mask]
    assert inside.min() >= arsenic.min() - 1e-4 and inside.max() <= arsenic.max() + 1e-4
    assert 0.05 < stack.valid_mask.mean() < 1.0  # a data mask, not a filled rectangle


def test_grid_prepared_elements_and_options(survey, tmp_path):
    out = tmp_path / "elements"
    code = run_cli(
        "grid",
        "--samples",
        survey["samples"],
        "--out",
        out,
        "--elements",
        "Au,As,Cu,Pb",
        "--cell",
        "1000",
        "--neighbours",
        "6",
        "--power",
        "1",
        "--max-distance",
        "3000",
    )
    assert code == 0
    stack = read_raster_stack(out / "grid.tif")
    assert stack.band_names == ["Au", "As", "Cu", "Pb"]
    assert stack.transform.a == 1000.0
    record = json.loads((out / "run.json").read_text())
    assert record["grid"]["max_distance_m"] == 3000.0 and record["grid"]["neighbours"] == 6
    assert "preprocessing" in record
    assert np.isfinite(stack.values[:, stack.valid_mask]).all()  # imputed elements: no holes inside the mask


def test_grid_of_a_scores_file_defaults_to_anomaly_score(survey, tmp_path):
    out = tmp_path / "scores_grid"
    assert run_cli("grid", "--samples", survey["scores"], "--out", out) == 0
    assert read_raster_stack(out / "grid.tif").band_names == ["anomaly_score"]


def test_grid_streams_block_by_block_and_records_what_it_wrote(survey, tmp_path, monkeypatch):
    argv = ["grid", "--samples", survey["scores"], "--cell", "200", "--max-distance", "3000"]
    assert run_cli(*argv, "--out", tmp_path / "default_blocks") == 0
    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)  # one row of cells per block, one row of tiles per write
    out = tmp_path / "small_blocks"
    assert run_cli(*argv, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.tif", "run.json"]
    stack = read_raster_stack(out / "grid.tif")
    assert stack.shape[0] > 256  # more than one row of tiles
    np.testing.assert_array_equal(stack.values, read_raster_stack(tmp_path / "default_blocks" / "grid.tif").values)
    grid = json.loads((out / "run.json").read_text())["grid"]
    assert (grid["rows"], grid["cols"]) == stack.shape and grid["transform"] == list(stack.transform)[:6]
    assert grid["data_share"] == stack.valid_mask.mean()  # counted block by block


def test_grid_failing_midway_writes_nothing(survey, tmp_path, monkeypatch):
    real_blocks = idw.iter_grid_blocks

    def failing_blocks(spec, progress=None):
        for block in real_blocks(spec, progress):
            yield block
            if block.row_stop > spec.rows // 2:
                raise OSError("No space left on device")

    monkeypatch.setattr(idw, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(idw, "iter_grid_blocks", failing_blocks)
    out = tmp_path / "out"
    assert run_cli("grid", "--samples", survey["scores"], "--out", out, "--cell", "200", "--max-distance", "3000") != 0
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder


def test_evaluate_points_matches_the_protocol(survey, tmp_path, capsys):
    out = tmp_path / "evaluation"
    assert (
        run_cli("evaluate", "--scores", survey["scores"], "--deposits", survey["deposits"], "--out", out) == 0
    )
    printed = capsys.readouterr().out
    assert "AUC" in printed and "+/-" in printed and "success rate top 5 %" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.json",
        "success_rate.csv",
        "success_rate.png",
    ]
    metrics = json.loads((out / "evaluation.json").read_text())["metrics"]
    table = read_samples(survey["scores"])
    expected = auc_protocol(
        table.xy, table.frame.anomaly_score.to_numpy(), read_deposits(survey["deposits"], table.work_crs)
    )
    assert metrics["auc"] == pytest.approx(expected.mean, abs=1e-12)  # the headline number
    assert metrics["auc_std"] == pytest.approx(expected.std, abs=1e-12)
    assert metrics["auc_protocol"]["runs"] == pytest.approx(expected.runs, abs=1e-12)
    assert metrics["auc_protocol"]["n_deposits"] == 32
    curve = pd.read_csv(out / "success_rate.csv")
    assert list(curve.columns) == ["area_share", "deposit_share", "threshold"]
    assert curve.area_share.iloc[0] == 0 and curve.deposit_share.iloc[-1] == 1


def test_evaluate_raster_reports_cell_auc_and_outside_deposits(survey, tmp_path, capsys):
    grid_out = tmp_path / "g"
    assert run_cli("grid", "--samples", survey["scores"], "--out", grid_out, "--max-distance", "2000") == 0
    out = tmp_path / "e"
    assert (
        main(
            [
                "evaluate",
                "--scores",
                str(grid_out / "grid.tif"),
                "--deposits",
                str(survey["deposits"]),
                "--out",
                str(out),
                "--progress",
                "plain",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "cell AUC" in captured.out
    metrics = json.loads((out / "evaluation.json").read_text())["metrics"]
    assert metrics["unit"] == "cells" and metrics["auc"] == metrics["cell_auc"]["auc"]
    assert 0.0 <= metrics["auc"] <= 1.0
    # With a 2 km mask some deposits sit on nodata: reported, by row.
    outside = metrics["cell_auc"]["outside_index"]
    assert metrics["cell_auc"]["n_outside"] == len(outside) > 0
    assert "outside the scored area" in captured.err


def test_evaluate_json_progress_keeps_stdout_pure_json(survey, capsys):
    code = main(
        [
            "evaluate",
            "--scores",
            str(survey["scores"]),
            "--deposits",
            str(survey["deposits"]),
            "--progress",
            "json",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[-1]["event"] == "result" and isinstance(events[-1]["metrics"]["auc"], float)


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing_samples",
        "unknown_field",
        "non_numeric_field",
        "fields_and_elements",
        "output_is_a_file",
        "missing_score_field",
        "deposits_without_coordinates",
        "geographic_raster",
        "missing_scores_file",
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(survey, tmp_path, capsys, case):
    out = tmp_path / "out"
    samples, deposits, scores = survey["samples"], survey["deposits"], survey["scores"]
    if case == "missing_samples":
        argv = ["grid", "--samples", tmp_path / "nope.csv", "--out", out]
    elif case == "unknown_field":
        argv = ["grid", "--samples", samples, "--out", out, "--fields", "Au_ppm,Unobtainium_ppm"]
    elif case == "non_numeric_field":
        argv = ["grid", "--samples", samples, "--out", out, "--fields", "SAMPLEID,Au_ppm"]
        frame = pd.read_csv(samples)
        frame["SAMPLEID"] = "S-" + frame["SAMPLEID"].astype(str)
        samples = tmp_path / "named.csv"
        frame.to_csv(samples, index=False)
        argv[2] = samples
    elif case == "fields_and_elements":
        argv = ["grid", "--samples", samples, "--out", out, "--fields", "Au_ppm", "--elements", "Au,As"]
    elif case == "output_is_a_file":
        out = write_file(tmp_path / "out", "a file, not a folder")
        argv = ["grid", "--samples", samples, "--out", out, "--fields", "Au_ppm"]
    elif case == "missing_score_field":
        argv = [
            "evaluate",
            "--scores",
            scores,
            "--deposits",
            deposits,
            "--score-field",
            "prospectivity",
            "--out",
            out,
        ]
    elif case == "deposits_without_coordinates":
        bad = write_file(tmp_path / "deposits.csv", "SITE_CODE,NAME\nS1,Dingo\nS2,Jinkas\n")
        argv = ["evaluate", "--scores", scores, "--deposits", bad, "--out", out]
    elif case == "geographic_raster":
        tif = tmp_path / "lonlat.tif"
        write_raster(tif, np.ones((10, 10)), rasterio.Affine(0.01, 0, 117.9, 0, -0.01, -33.4), 4326)
        argv = ["evaluate", "--scores", tif, "--deposits", deposits, "--out", out]
    else:
        argv = ["evaluate", "--scores", tmp_path / "none.csv", "--deposits", deposits, "--out", out]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geoanomaly: error: "), err
    assert "internal error" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a partial folder


def test_evaluate_geopackage_scores_in_a_projected_crs_equals_csv(survey, tmp_path):
    import geopandas as gpd

    frame = pd.read_csv(survey["scores"])
    points = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.x, frame.y), crs=4326).to_crs(28350)
    gpkg = tmp_path / "scores.gpkg"
    points.drop(columns=["x", "y"]).to_file(gpkg, layer="scores", driver="GPKG")
    assert (
        run_cli("evaluate", "--scores", gpkg, "--deposits", survey["deposits"], "--out", tmp_path / "g") == 0
    )
    assert (
        run_cli(
            "evaluate",
            "--scores",
            survey["scores"],
            "--deposits",
            survey["deposits"],
            "--work-crs",
            "EPSG:28350",
            "--out",
            tmp_path / "c",
        )
        == 0
    )
    from_gpkg = json.loads((tmp_path / "g" / "evaluation.json").read_text())["metrics"]
    from_csv = json.loads((tmp_path / "c" / "evaluation.json").read_text())["metrics"]
    assert from_gpkg["work_crs"] == "EPSG:28350"
    assert from_gpkg["auc"] == pytest.approx(from_csv["auc"], abs=1e-9)
