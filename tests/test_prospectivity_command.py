"""``geoanomaly prospectivity`` end to end on a small synthetic stack with a planted prospective zone."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from core.cli import main
from core.io.rasters import write_raster
from tests.prospectivity_fixtures import (
    CRS,
    DECOY_CENTRE,
    TRANSFORM,
    cell_xy,
    synthetic_bands,
    write_deposits,
    write_labels,
    write_stack,
    zone_mask,
)

FAST = ["--steps", "150", "--device", "cpu", "--progress", "none"]


@pytest.fixture
def survey(tmp_path):
    evidence = write_stack(tmp_path / "evidence")
    deposits = write_deposits(tmp_path / "deposits.csv")
    return tmp_path, evidence, deposits


def _run(evidence, deposits, out, *extra) -> int:
    argv = ["prospectivity", "--deposits", str(deposits), "--deposits-crs", CRS, "--out", str(out), *FAST, *extra]
    for path in evidence:
        argv += ["--evidence", str(path)]
    return main(argv)


def _values_at(grid: np.ndarray, points) -> np.ndarray:
    cols, rows = ~TRANSFORM * (points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    return grid[rows.astype(int), cols.astype(int)]


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1, masked=True), src.dtypes[0], src.crs, src.transform


def test_a_cycle_recovers_the_planted_zone_and_writes_every_output(survey):
    tmp, evidence, deposits = survey
    out = tmp / "run"
    assert _run(evidence, deposits, out, "--cycles", "2", "--k", "4", "--folds", "2", "--cv-block", "12") == 0

    prospectivity, dtype, crs, transform = _read(out / "prospectivity.tif")
    assert dtype == "float32" and crs.to_string() == CRS and transform == TRANSFORM
    assert prospectivity.mask[:6, :6].all() and not prospectivity.mask[10:, 10:].any()  # nodata corner kept
    assert 0.0 <= prospectivity.min() and prospectivity.max() <= 1.0
    values = prospectivity.filled(np.nan)
    # The simulated geologist's "no" answers cross off their 3 x 3 cells (set to 0); judge the rest.
    labels = gpd.read_file(out / "labels.gpkg")
    barren = labels[labels["label"] == 0]
    assert len(barren) and np.all(_values_at(values, barren) == 0)
    bcols, brows = ~TRANSFORM * (barren.geometry.x.to_numpy(), barren.geometry.y.to_numpy())
    r, c = np.mgrid[:48, :48]
    crossed = np.zeros((48, 48), dtype=bool)
    for br, bc in zip(brows.astype(int), bcols.astype(int)):
        crossed |= (np.abs(r - br) <= 1) & (np.abs(c - bc) <= 1)
    values[crossed] = np.nan
    zone = zone_mask() & ~crossed
    decoy = ((r - DECOY_CENTRE[0]) ** 2 + (c - DECOY_CENTRE[1]) ** 2 <= 9) & ~crossed
    top = values >= np.nanquantile(values, 0.90)
    assert (top & zone).sum() / zone.sum() > 0.9  # the top 10 % of the area holds almost all the zone ...
    highest = values >= np.sort(values[~np.isnan(values)])[-zone.sum()]
    assert zone[highest].mean() > 0.7  # ... and as many cells as the zone has are mostly the zone
    assert np.nanmean(values[zone]) > np.nanmean(values[decoy]) + 0.1  # the decoy anomaly ranks below the zone
    assert np.nanmean(values[zone]) > 0.8 and np.nanmean(values[~zone & ~decoy]) < 0.4

    classes, _, _, _ = _read(out / "prospectivity_classes.tif")
    counts = {code: int((classes == code).sum()) for code in (1, 2, 3, 4)}
    valid = int((~classes.mask).sum())
    assert abs(counts[4] / valid - 0.05) < 0.01 and abs(counts[2] / valid - 0.10) < 0.01
    assert classes.mask[:6, :6].all()

    queries = gpd.read_file(out / "queries.gpkg")
    assert len(queries) == 4 and queries["label"].isna().all()
    assert queries["probability"].between(0, 1).all() and queries.crs.to_string() == CRS

    record = json.loads((out / "run.json").read_text())
    assert record["metrics"]["figures_from"] == "spatially blocked cross-validation"
    assert record["metrics"]["prospectivity"]["deposits_in_top_area"]["20"] >= 0.75
    assert [h["cycle"] for h in record["history"]] == [0, 1, 2]
    assert record["labels"]["by_source"] == {"deposit": 8, "oracle": 8}
    curve = pd.read_csv(out / "success_rate.csv")
    assert set(curve["map"]) == {f"{name} (2-fold blocked CV)" for name in (
        "prospectivity (KDAL)", "weights of evidence", "logistic regression", "random forest")} | {
        "evidence alone (teacher)"}
    assert set(record["metrics"]["baselines"]) == {"weights of evidence", "logistic regression", "random forest"}
    assert "independent" in record["metrics"]["weights_of_evidence"]["conditional_independence"]
    assert record["metrics"]["never_worse_than_evidence"]["holds"]
    # What the answers added: held-out capture after each unattended cycle; the last is the final map's.
    per_cycle = record["metrics"]["capture_per_cycle"]
    assert [entry["cycle"] for entry in per_cycle] == [0, 1, 2]
    assert per_cycle[-1]["deposits_in_top_area"] == pytest.approx(
        record["metrics"]["prospectivity"]["deposits_in_top_area"], abs=1e-4)
    assert [entry["yes_so_far"] + entry["no_so_far"] for entry in per_cycle] == [0, 8, 16]  # 2 folds x K = 4
    assert queries["why_here"].str.contains("nearest known point").all()
    assert (out / "success_rate.png").stat().st_size > 10_000
    per_class = pd.read_csv(out / "deposits_per_class.csv")
    assert per_class["class"].tolist() == ["very high", "high", "moderate", "low"]
    assert per_class["deposits"].sum() == 8
    state = json.loads((out / "kdal_state.json").read_text())
    assert state["cycle"] == 1 and (out / "student.pt").exists() and (out / "labels.gpkg").exists()


def test_label_edits_in_the_queries_layer_are_picked_up_by_the_next_cycle(survey):
    tmp, evidence, deposits = survey
    first = tmp / "cycle1"
    assert _run(evidence, deposits, first, "--k", "3", "--folds", "0") == 0
    queries = gpd.read_file(first / "queries.gpkg")
    before = _read(first / "prospectivity.tif")[0].filled(np.nan)
    # Deposits are rare: the least certain chance of a yes is on the likeliest unvisited ground, not mid-map.
    assert queries["chance_of_yes"].between(0, 1).all()
    assert (queries["probability"] >= np.nanquantile(before, 0.8)).all()
    # The geologist visits two of the three places: one mineralised, one barren; the third stays empty.
    queries.loc[0, "label"] = 1
    queries.loc[1, "label"] = 0
    queries.to_file(first / "queries.gpkg", driver="GPKG", layer="queries")

    second = tmp / "cycle2"
    assert _run(evidence, deposits, second, "--k", "3", "--folds", "0", "--labels", str(first / "queries.gpkg")) == 0
    labels = gpd.read_file(second / "labels.gpkg")
    geologist = labels[labels["source"] == "geologist"]
    assert len(geologist) == 2 and sorted(geologist["label"].tolist()) == [0, 1]
    assert (labels["source"] == "deposit").sum() == 8
    after = _read(second / "prospectivity.tif")[0].filled(np.nan)
    cols, rows = ~TRANSFORM * (queries.geometry.x.to_numpy(), queries.geometry.y.to_numpy())
    rows, cols = rows.astype(int), cols.astype(int)
    assert after[rows[0], cols[0]] >= before[rows[0], cols[0]] - 1e-3  # labelled 1: stays at the top
    assert after[rows[1], cols[1]] == 0.0 < before[rows[1], cols[1]] - 0.2  # labelled 0: crossed off
    assert json.loads((second / "kdal_state.json").read_text())["cycle"] == 2
    # New queries keep off the ground the labels already answer for (1 cell around each, --oracle-radius).
    new = gpd.read_file(second / "queries.gpkg")
    for x, y in zip(new.geometry.x, new.geometry.y):
        chebyshev = np.maximum(np.abs(queries.geometry.x[:2] - x), np.abs(queries.geometry.y[:2] - y))
        assert np.min(chebyshev) >= 2 * 100 - 1


def test_rasters_on_different_grids_are_refused_naming_the_file(survey, capsys):
    tmp, evidence, deposits = survey
    shifted = tmp / "shifted.tif"
    moved = Affine(100.0, 0.0, TRANSFORM.c + 250.0, 0.0, -100.0, TRANSFORM.f)
    write_raster(shifted, synthetic_bands()["pathfinder"], moved, CRS)
    coarse = tmp / "coarse.tif"
    write_raster(coarse, synthetic_bands()["pathfinder"][::2, ::2], Affine(200.0, 0, TRANSFORM.c, 0, -200.0, TRANSFORM.f), CRS)
    for bad, words in ((shifted, "same extent"), (coarse, "cells of 200")):
        out = tmp / f"out_{bad.stem}"
        assert _run([evidence[0], bad], deposits, out) == 2
        message = capsys.readouterr().err
        assert bad.name in message and words in message
        assert not out.exists()


def test_deposits_outside_the_grid_are_reported_or_refused(survey, capsys):
    tmp, evidence, _ = survey
    far = [(TRANSFORM.c - 5000.0, TRANSFORM.f), (TRANSFORM.c + 100_000.0, TRANSFORM.f - 100.0)]
    nodata_corner = [cell_xy(1, 1)]
    some = write_deposits(tmp / "some_outside.csv", extra_xy=far + nodata_corner)
    out = tmp / "partial"
    assert _run(evidence, some, out, "--folds", "0", "--k", "2", "--progress", "json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [e["message"] for e in events if e.get("level") == "warning"]
    assert any("3 deposit(s) of some_outside.csv are not on valid cells" in w for w in warnings)
    record = json.loads((out / "run.json").read_text())
    assert record["deposits"] == {"count": 11, "on_valid_cells": 8, "outside_grid": 2, "on_nodata": 1, "cells": 8}

    none = write_deposits(tmp / "all_outside.csv", cells=[], extra_xy=far)
    out = tmp / "refused"
    assert _run(evidence, none, out) == 2
    message = capsys.readouterr().err
    assert "all_outside.csv" in message and "2 outside it" in message
    assert not out.exists()


@pytest.mark.parametrize("values, words", [([1, 2, None], "'label' must hold 1"), (["yes", 0, 1], "'yes'")])
def test_a_labels_field_that_is_not_zero_or_one_is_refused(survey, capsys, values, words):
    tmp, evidence, deposits = survey
    points = [(*cell_xy(10 + 3 * i, 40), v) for i, v in enumerate(values)]
    labels = write_labels(tmp / "labels.gpkg", points)
    out = tmp / "out"
    assert _run(evidence, deposits, out, "--labels", str(labels)) == 2
    message = capsys.readouterr().err
    assert "labels.gpkg" in message and words in message
    assert not out.exists()
    assert _run(evidence, deposits, out, "--labels", str(labels), "--label-field", "grade") == 2
    assert "no label field 'grade'" in capsys.readouterr().err


def test_a_label_outside_the_grid_is_refused_in_one_line_and_nothing_is_written(survey, capsys):
    tmp, evidence, deposits = survey
    labels = write_labels(tmp / "answers.gpkg", [(*cell_xy(20, 30), 1), (TRANSFORM.c - 3000.0, TRANSFORM.f, 0)])
    out = tmp / "out"
    assert _run(evidence, deposits, out, "--labels", str(labels), "--folds", "0") == 2
    message = capsys.readouterr().err.strip()
    assert "answers.gpkg" in message and "1 labelled point(s) lie outside the evidence grid" in message
    assert len(message.splitlines()) == 1
    assert not out.exists() and not list(tmp.glob("out*"))


def test_high_confidence_anomalies_join_the_labels_as_positives(survey):
    tmp, evidence, deposits = survey
    # Two AnomFilter picks, as points in the decoy blob, and one outside the grid (reported, not used).
    points = write_labels(tmp / "anomfilter.gpkg", [(*cell_xy(*DECOY_CENTRE), 1), (*cell_xy(14, 36), 1),
                                                      (TRANSFORM.c - 1000.0, TRANSFORM.f, 1)])
    out = tmp / "with_anomalies"
    assert _run(evidence, deposits, out, "--folds", "0", "--anomaly-cells", str(points), "--classes", "pa") == 0
    record = json.loads((out / "run.json").read_text())
    assert record["labels"]["by_source"] == {"deposit": 8, "anomaly": 2}
    assert set(pd.read_csv(out / "deposits_per_class.csv")["class"]) == {"high", "low"}
    assert "pa_crossing" in record["metrics"]["class_thresholds"]


def test_a_detect_run_is_evidence_its_map_gridded_as_the_grid_command_does(tmp_path, capsys):
    """The default evidence: a detect run folder (its commodity-aware map), gridded once, by the grid code."""
    import geopandas as gpd

    from core.io.rasters import read_raster_stack
    from tests.synthetic import synthetic_survey

    frame, planted = synthetic_survey(n=100, seed=3)
    samples = tmp_path / "samples.gpkg"
    gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.X, frame.Y), crs=CRS).to_file(samples, driver="GPKG")
    deposits = tmp_path / "deposits.csv"
    frame.loc[planted, ["X", "Y"]].rename(columns={"X": "Easting", "Y": "Northing"}).to_csv(deposits, index=False)
    run = tmp_path / "detect_au"
    assert main(["detect", "--method", "mahalanobis", "--commodity", "Au", "--samples", str(samples),
                 "--out", str(run), "--progress", "none"]) == 0
    assert main(["grid", "--samples", str(run / "scores.gpkg"), "--spacing", "area", "--out", str(tmp_path / "g"),
                 "--progress", "none"]) == 0
    by_hand = read_raster_stack([tmp_path / "g" / "grid.tif"])

    out = tmp_path / "pros"
    assert main(["prospectivity", "--evidence", str(run), "--deposits", str(deposits), "--deposits-crs", CRS,
                 "--out", str(out), "--folds", "0", "--no-baselines", *FAST]) == 0
    state = json.loads((out / "kdal_state.json").read_text())
    assert state["band_names"] == ["anomaly_score"] and state["evidence"] == [str(run.resolve())]
    with rasterio.open(out / "prospectivity.tif") as src:
        assert src.transform == by_hand.transform and src.crs == by_hand.crs
        assert np.array_equal(~src.read_masks(1).astype(bool), ~by_hand.valid_mask)

    # Beside a raster, the run's map is laid on that raster's grid.
    pathfinder = tmp_path / "pathfinder.tif"
    write_raster(pathfinder, by_hand.values[0][:, :-3] * 0 + 1.0, by_hand.transform, by_hand.crs,
                 band_names=["flat"])
    out2 = tmp_path / "pros2"
    assert main(["prospectivity", "--evidence", str(run / "scores.csv"), "--evidence", str(pathfinder),
                 "--deposits", str(deposits), "--deposits-crs", CRS, "--out", str(out2), "--folds", "0",
                 "--no-baselines", *FAST]) == 0
    with rasterio.open(out2 / "prospectivity.tif") as src:
        assert src.shape == (by_hand.values.shape[1], by_hand.values.shape[2] - 3)

    empty = tmp_path / "not_a_run"
    empty.mkdir()
    capsys.readouterr()
    assert main(["prospectivity", "--evidence", str(empty), "--deposits", str(deposits), "--deposits-crs", CRS,
                 "--out", str(tmp_path / "pros3"), *FAST]) == 2
    message = capsys.readouterr().err.strip()
    assert "not a detect run" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "pros3").exists()


def test_a_hidden_deposit_share_outside_zero_to_one_is_refused_in_one_line(survey, capsys):
    tmp, evidence, deposits = survey
    out = tmp / "hidden"
    assert _run(evidence, deposits, out, "--cycles", "1", "--hide-deposits", "1.5") == 2
    message = capsys.readouterr().err.strip()
    assert "--hide-deposits must be in [0, 1)" in message and len(message.splitlines()) == 1
    assert not out.exists()


def test_grid_refuses_an_unknown_spacing_rule(survey, capsys):
    tmp, _, deposits = survey
    with pytest.raises(SystemExit) as stopped:
        main(["grid", "--samples", str(deposits), "--spacing", "random", "--out", str(tmp / "g")])
    assert stopped.value.code == 2
    assert "invalid choice: 'random'" in capsys.readouterr().err
    assert not (tmp / "g").exists()
