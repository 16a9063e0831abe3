"""Success-rate curves, prediction-area crossing and the plot, with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from core.errors import InvalidInputError
from core.evaluate.auc import auc_protocol
from core.evaluate.curves import (
    plot_success_rate,
    raster_success_curve,
    sample_success_curve,
    success_curve,
)


def line_survey(n=20):
    """n samples 1 km apart on a line, score falling along it; deposits beside samples 0 and 3."""
    sample_xy = np.c_[np.arange(n) * 1000.0, np.zeros(n)]
    scores = np.arange(n, 0, -1, dtype=float)  # sample 0 scores highest
    deposit_xy = np.array([[0.0, 100.0], [3000.0, 100.0]])
    return sample_xy, scores, deposit_xy


def test_sample_curve_known_answer():
    sample_xy, scores, deposit_xy = line_survey()
    curve = sample_success_curve(sample_xy, scores, deposit_xy)
    # Each sample is 1/20 of the area; deposits captured at the 1st and 4th sample.
    assert curve.area_share[0] == 0 and curve.deposit_share[0] == 0
    assert curve.area_share[-1] == 1 and curve.deposit_share[-1] == 1
    np.testing.assert_allclose(
        np.interp([0.05, 0.10, 0.20], curve.area_share, curve.deposit_share), [0.5, 0.5, 1.0]
    )
    assert curve.top_area == {"5": 0.5, "10": 0.5, "20": 1.0}
    # Area under: triangle 0..0.05 to 0.5, 0.05..0.15 at 0.5, 0.15..0.20 rising to 1, then 1 to the end.
    expected = 0.05 * 0.25 + 0.10 * 0.5 + 0.05 * 0.75 + 0.80 * 1.0
    assert curve.auc == pytest.approx(expected)
    assert curve.n_used == 2 and curve.n_outside == 0 and curve.unit == "samples"


def test_curve_auc_equals_rank_auc_against_all_units():
    # Trapezoid area under the capture curve = P(deposit score > unit score) + 1/2 P(tie),
    # i.e. ROC-AUC of deposits against all units, ties included.
    rng = np.random.default_rng(4)
    unit_scores = rng.integers(0, 10, 500).astype(float)
    deposit_scores = rng.choice(unit_scores, 15)
    curve = success_curve(unit_scores, deposit_scores)
    greater = (deposit_scores[:, None] > unit_scores[None, :]).mean()
    ties = (deposit_scores[:, None] == unit_scores[None, :]).mean()
    assert curve.auc == pytest.approx(greater + 0.5 * ties)
    # One point per distinct score, plus the origin.
    assert len(curve.area_share) == len(np.unique(unit_scores)) + 1


def test_random_scores_sit_near_the_diagonal_and_perfect_ones_at_the_top():
    rng = np.random.default_rng(0)
    units = rng.random(20_000)
    assert success_curve(units, rng.random(400)).auc == pytest.approx(0.5, abs=0.03)
    assert success_curve(units, np.full(5, units.max())).auc == pytest.approx(1.0, abs=1e-4)


def test_prediction_area_crossing_known_answer():
    # 10 units scored 10..1; deposits at units scored 10 and 9 -> P(t) = 1 once t <= 9, A(t) = (11 - t) / 10.
    curve = success_curve(np.arange(10, 0, -1, dtype=float), np.array([10.0, 9.0]))
    crossing = curve.pa_crossing
    # P + A = 1 between t = 10 (P = 0.5, A = 0.1, sum 0.6) and t = 9 (P = 1, A = 0.2, sum 1.2):
    # f = (1 - 0.6) / 0.6 = 2/3 -> P = 0.5 + 2/3 * 0.5, A = 0.1 + 2/3 * 0.1, t = 10 - 2/3.
    assert crossing["prediction_rate"] == pytest.approx(0.5 + 1 / 3)
    assert crossing["area_share"] == pytest.approx(0.1 + 0.2 / 3)
    assert crossing["prediction_rate"] + crossing["area_share"] == pytest.approx(1.0)
    assert crossing["threshold"] == pytest.approx(10 - 2 / 3)


def test_sample_curve_reports_deposits_outside():
    sample_xy, scores, deposit_xy = line_survey()
    deposits = np.vstack([deposit_xy, [[500_000.0, 0.0]]])
    curve = sample_success_curve(sample_xy, scores, deposits)
    assert curve.outside_index == [2] and curve.n_used == 2 and curve.n_deposits == 3
    assert curve.to_dict()["n_outside"] == 1
    assert "1 outside" in curve.legend()


def test_sample_curve_and_auc_protocol_agree_on_top5():
    sample_xy, scores, deposit_xy = line_survey(40)
    curve = sample_success_curve(sample_xy, scores, deposit_xy)
    protocol = auc_protocol(sample_xy, scores, deposit_xy)
    # 40 samples: top 5 % = 2 samples; the deposit samples rank 1st and 4th.
    assert protocol.success_rate_top5 == 0.5
    assert curve.top_area["5"] == pytest.approx(0.5)


def test_raster_curve_excludes_nodata_area_and_reports_deposits():
    grid = np.array(
        [
            [5.0, 4.0, np.nan, np.nan],
            [3.0, 2.0, 1.0, np.nan],
        ]
    )
    transform = Affine(10.0, 0, 0, 0, -10.0, 20.0)  # 10 m cells, top-left at (0, 20)
    deposits = np.array(
        [
            [5.0, 15.0],  # cell (0, 0), score 5
            [25.0, 5.0],  # cell (1, 2), score 1
            [35.0, 15.0],  # cell (0, 3): nodata -> outside
            [100.0, 100.0],  # off the raster -> outside
        ]
    )
    curve = raster_success_curve(grid, transform, deposits)
    assert curve.n_units == 5  # nodata cells are not area
    assert curve.outside_index == [2, 3] and curve.n_used == 2
    np.testing.assert_allclose(curve.area_share, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.deposit_share, [0, 0.5, 0.5, 0.5, 0.5, 1.0])
    assert curve.unit == "cells"


def test_no_deposit_in_area_is_an_error():
    grid = np.ones((3, 3))
    with pytest.raises(InvalidInputError, match="no deposit"):
        raster_success_curve(grid, Affine(1.0, 0, 0, 0, -1.0, 3.0), np.array([[50.0, 50.0]]))


def test_plot_writes_a_png_with_several_curves(tmp_path):
    sample_xy, scores, deposit_xy = line_survey()
    curves = {
        "falling": sample_success_curve(sample_xy, scores, deposit_xy),
        "rising": sample_success_curve(sample_xy, -scores, deposit_xy),
    }
    path = plot_success_rate(curves, tmp_path / "success_rate.png", title="Test survey")
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["success_rate.png"]
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= 800
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # something is drawn


def test_to_frame_thins_long_curves_but_keeps_ends_and_steps():
    rng = np.random.default_rng(1)
    units = rng.random(50_000)
    curve = success_curve(units, units[:10])
    frame = curve.to_frame(max_points=500)
    assert len(frame) < 600
    assert frame.area_share.iloc[0] == 0 and frame.area_share.iloc[-1] == 1
    assert frame.deposit_share.is_monotonic_increasing
    assert frame.deposit_share.nunique() == 11  # every captured deposit still shows
