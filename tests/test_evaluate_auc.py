"""The sample-level AUC protocol against a literal, brute-force reading of reference/evaluation.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from pyproj import Transformer

from core.errors import InvalidInputError
from core.evaluate.auc import auc_protocol, cell_auc, success_rate_at

SED1 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gswa_sed1_au"


def brute_force_protocol(sample_xy, scores, deposit_xy, min_km=5.0, runs=20, seed=42):
    """evaluation.md section 1, word for word, with a full distance matrix and pair counting."""
    distance_km = np.sqrt(((deposit_xy[:, None, :] - sample_xy[None, :, :]) ** 2).sum(axis=2)) / 1000.0
    positives = scores[distance_km.argmin(axis=1)]  # each deposit's nearest sample
    far = (distance_km >= min_km).all(axis=0)  # at least min_km from every deposit
    negatives = scores[far] if far.any() else scores
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(runs):
        drawn = rng.choice(negatives, size=len(positives), replace=True)
        # Mann-Whitney: share of (positive, negative) pairs ranked right, ties count one half.
        greater = (positives[:, None] > drawn[None, :]).sum()
        ties = (positives[:, None] == drawn[None, :]).sum()
        aucs.append((greater + 0.5 * ties) / (len(positives) * len(drawn)))
    return float(np.mean(aucs)), float(np.std(aucs)), aucs


def random_survey(seed, n_samples=300, n_deposits=12, size_m=40_000.0):
    rng = np.random.default_rng(seed)
    sample_xy = rng.uniform(0, size_m, (n_samples, 2)) + [400_000, 6_500_000]
    deposit_xy = rng.uniform(0, size_m, (n_deposits, 2)) + [400_000, 6_500_000]
    scores = rng.integers(0, 8, n_samples).astype(float)  # few distinct values: many ties
    return sample_xy, scores, deposit_xy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_protocol_equals_brute_force(seed):
    sample_xy, scores, deposit_xy = random_survey(seed)
    result = auc_protocol(sample_xy, scores, deposit_xy, max_deposit_distance_km=np.inf)
    mean, std, runs = brute_force_protocol(sample_xy, scores, deposit_xy)
    assert len(result.runs) == 20
    np.testing.assert_allclose(result.runs, runs, rtol=0, atol=1e-12)
    assert result.mean == pytest.approx(mean, abs=1e-12)
    assert result.std == pytest.approx(std, abs=1e-12)
    assert result.n_used == result.n_deposits == len(deposit_xy)
    assert not result.negatives_are_all_samples
    assert 0 < result.std  # the runs really differ


def test_other_seed_runs_and_min_km_follow_the_arguments():
    sample_xy, scores, deposit_xy = random_survey(5)
    result = auc_protocol(
        sample_xy, scores, deposit_xy, min_km=2.0, runs=7, seed=3, max_deposit_distance_km=np.inf
    )
    mean, std, runs = brute_force_protocol(sample_xy, scores, deposit_xy, min_km=2.0, runs=7, seed=3)
    np.testing.assert_allclose(result.runs, runs, atol=1e-12)
    assert result.n_negatives > auc_protocol(sample_xy, scores, deposit_xy).n_negatives


def test_duplicate_locations_take_the_lowest_row_like_argmin():
    sample_xy, scores, deposit_xy = random_survey(7, n_samples=120)
    # Put three samples with different scores exactly on the first deposit's location.
    sample_xy[[10, 20, 30]] = deposit_xy[0]
    scores[[10, 20, 30]] = [1.0, 7.0, 3.0]
    result = auc_protocol(sample_xy, scores, deposit_xy)
    assert result.nearest_sample_index[0] == 10
    assert result.deposit_distance_km[0] == 0.0
    mean, std, runs = brute_force_protocol(sample_xy, scores, deposit_xy)
    np.testing.assert_allclose(result.runs, runs, atol=1e-12)


def test_small_survey_without_background_uses_all_samples():
    rng = np.random.default_rng(11)
    sample_xy = rng.uniform(0, 3_000, (60, 2))  # 3 km square: nothing is 5 km from a deposit
    deposit_xy = rng.uniform(0, 3_000, (4, 2))
    scores = rng.normal(size=60)
    result = auc_protocol(sample_xy, scores, deposit_xy)
    assert result.negatives_are_all_samples
    assert result.n_negatives == 60
    mean, std, runs = brute_force_protocol(sample_xy, scores, deposit_xy)
    np.testing.assert_allclose(result.runs, runs, atol=1e-12)


def test_deposits_outside_the_survey_are_reported_not_scored():
    sample_xy, scores, deposit_xy = random_survey(3)
    far_away = np.array([[900_000.0, 6_000_000.0], [100_000.0, 7_000_000.0]])
    all_deposits = np.vstack([deposit_xy[:5], far_away[:1], deposit_xy[5:], far_away[1:]])
    outside_rows = [5, len(all_deposits) - 1]
    result = auc_protocol(sample_xy, scores, all_deposits)
    assert result.n_deposits == len(all_deposits)
    assert result.n_outside == 2
    assert result.outside_index == outside_rows
    assert result.n_used == len(deposit_xy)
    # The far deposits are hundreds of km away, so the background is the same as without them:
    # the figures equal the brute force on the deposits inside.
    mean, std, runs = brute_force_protocol(sample_xy, scores, deposit_xy)
    np.testing.assert_allclose(result.runs, runs, atol=1e-12)
    assert "2 deposit(s) outside the survey" in result.summary()
    data = result.to_dict()
    assert data["outside_index"] == outside_rows and data["n_outside"] == 2


def test_explicit_max_distance_decides_what_is_outside():
    sample_xy = np.array([[0.0, 0.0], [1000.0, 0.0], [20_000.0, 0.0], [21_000.0, 0.0]])
    scores = np.array([4.0, 3.0, 1.0, 2.0])
    deposit_xy = np.array([[0.0, 500.0], [1000.0, 3000.0]])  # 0.5 km and 3 km from a sample
    result = auc_protocol(sample_xy, scores, deposit_xy, max_deposit_distance_km=2.0)
    assert result.outside_index == [1] and result.n_used == 1
    assert result.max_deposit_distance_km == 2.0
    # One positive (4.0) against background samples (1.0, 2.0): always ranked first.
    assert result.mean == 1.0 and result.std == 0.0
    with pytest.raises(InvalidInputError, match="none of the 2 deposits"):
        auc_protocol(sample_xy, scores, deposit_xy, max_deposit_distance_km=0.1)


def test_known_answers_for_secondary_figures():
    # 40 samples on a line 1 km apart; score falls with distance from x = 0.
    sample_xy = np.c_[np.arange(40) * 1000.0, np.zeros(40)]
    scores = -np.arange(40, dtype=float)
    deposit_xy = np.array([[0.0, 10.0], [1000.0, 10.0], [30_000.0, 10.0]])
    result = auc_protocol(sample_xy, scores, deposit_xy)
    # Top 5 % of 40 samples = the 2 highest: the first two deposits' samples, not the third.
    assert result.success_rate_top5 == pytest.approx(2 / 3)
    # Background = samples >= 5 km from every deposit: x in 6..25 km and 35..39 km.
    assert result.n_negatives == 20 + 5
    # AP with positives ranked 1st, 2nd and (third: -30, after the background scores -6..-25) 23rd.
    assert result.average_precision == pytest.approx((1 + 1 + 3 / 23) / 3)


def test_success_rate_counts_ties_at_the_threshold_as_inside():
    scores = np.array([5.0, 5.0, 5.0] + [0.0] * 37)
    assert success_rate_at(scores, np.array([2]), 0.05) == 1.0  # no sample scores higher
    assert success_rate_at(scores, np.array([3]), 0.05) == 0.0


def test_bad_input_is_reported():
    sample_xy, scores, deposit_xy = random_survey(0)
    with pytest.raises(InvalidInputError, match="not finite"):
        auc_protocol(sample_xy, np.where(np.arange(len(scores)) == 3, np.nan, scores), deposit_xy)
    with pytest.raises(InvalidInputError, match="scores for"):
        auc_protocol(sample_xy, scores[:-1], deposit_xy)
    with pytest.raises(InvalidInputError, match="no deposits"):
        auc_protocol(sample_xy, scores, np.empty((0, 2)))


@pytest.mark.skipif(not SED1.exists(), reason="shared GSWA data not present")
def test_real_survey_equals_brute_force():
    samples = pd.read_csv(SED1 / "samples.csv", usecols=["X", "Y", "Au_ppm"])
    deposits = pd.read_csv(SED1 / "deposits.csv", usecols=["X", "Y"])
    to_utm = Transformer.from_crs(4326, 32750, always_xy=True)  # GDA94 ~ WGS84 at this scale; UTM 50S
    sample_xy = np.c_[to_utm.transform(samples.X.to_numpy(), samples.Y.to_numpy())]
    deposit_xy = np.c_[to_utm.transform(deposits.X.to_numpy(), deposits.Y.to_numpy())]
    gold = samples.Au_ppm.to_numpy().copy()
    gold[gold == -9999] = np.nan
    gold = np.nan_to_num(np.abs(gold), nan=0.0)
    result = auc_protocol(sample_xy, gold, deposit_xy)
    mean, std, runs = brute_force_protocol(sample_xy, gold, deposit_xy)
    np.testing.assert_allclose(result.runs, runs, atol=1e-12)
    # The published protocol scores all 32 deposits of this survey: none may count as outside.
    assert result.n_deposits == 32 and result.n_outside == 0
    assert 0.5 < result.mean < 0.9  # gold itself ranks the gold deposits well above background


def test_cell_auc_known_answer():
    # 10 x 10 grid of 1 m cells; a deposit in cell (2, 2); scores high around it.
    grid = np.zeros((10, 10))
    grid[1:4, 1:4] = 1.0
    grid[8, 8] = 1.0  # one high background cell
    grid[0, 9] = np.nan  # nodata counts neither way
    transform = Affine(1.0, 0, 0, 0, -1.0, 10.0)
    deposit_xy = np.array([[2.5, 7.5], [50.0, 50.0], [9.5, 9.5]])  # cell (2, 2); off the raster; on nodata
    result = cell_auc(grid, transform, deposit_xy)
    assert result.n_positive_cells == 9 and result.n_negative_cells == 90
    assert result.outside_index == [1, 2] and result.n_used == 1
    # Positives all 1; negatives: one 1, 89 zeros -> AUC = (89 + 0.5) / 90.
    assert result.auc == pytest.approx((89 + 0.5) / 90)
