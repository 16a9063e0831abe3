"""Prospectivity building blocks on known arrays: soft labels, queries, classes, the label pool, folds."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.prospectivity.classes import (
    area_share_thresholds,
    classify_by_area,
    classify_by_pa,
    deposits_per_class,
)
from core.prospectivity.kdal import (
    DepositOracle,
    KDALConfig,
    LabelledCells,
    ProspectivityClassifier,
    least_confident_cells,
    soft_loss,
)
from core.prospectivity.soft_labels import normalise_scores, soft_labels
from core.prospectivity.validation import blocked_folds, capture_area_shares, pooled_success_curve


def test_soft_labels_robust_min_max_clips_the_tails_and_sum_to_one():
    scores = np.r_[np.linspace(0.0, 1.0, 101), 1000.0]  # one wild cell
    labels = soft_labels(scores, "robust")
    assert labels.shape == (102, 2)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0)
    a = labels[:, 1]
    assert a.min() == 0.0 and a.max() == 1.0
    # The wild value does not squash the rest: the middle score stays near the middle.
    assert 0.4 < a[50] < 0.6
    assert np.all(np.diff(a[:101]) >= 0)  # order kept


def test_soft_labels_rank_is_uniform_and_ties_share_a_rank():
    a = normalise_scores(np.array([5.0, 1.0, 3.0, 3.0, 9.0]), "rank")
    np.testing.assert_allclose(a, [0.75, 0.0, 0.375, 0.375, 1.0])


def test_soft_labels_constant_scores_are_maximally_uncertain_and_bad_input_is_refused():
    np.testing.assert_allclose(normalise_scores(np.full(4, 2.0)), 0.5)
    with pytest.raises(InvalidInputError):
        normalise_scores(np.array([1.0, np.nan]))
    with pytest.raises(InvalidInputError):
        normalise_scores(np.array([1.0, 2.0]), "zscore")


def test_least_confidence_picks_cells_nearest_one_half_in_order():
    rows, cols = np.zeros(6, dtype=int), np.arange(6) * 10  # far apart: spacing never binds
    p = np.array([0.9, 0.52, 0.1, 0.45, 0.5, 0.7])
    chosen = least_confident_cells(p, 3, rows, cols, spacing=1)
    assert chosen.tolist() == [4, 1, 3]


def test_least_confidence_spreads_queries_and_skips_labelled_cells():
    # A 1 x 10 strip; probabilities closest to 0.5 are neighbours 4, 5, 6.
    rows, cols = np.zeros(10, dtype=int), np.arange(10)
    p = np.array([0.9, 0.9, 0.8, 0.6, 0.5, 0.51, 0.49, 0.7, 0.95, 0.3])
    chosen = least_confident_cells(p, 3, rows, cols, spacing=3)
    assert chosen[0] == 4
    assert np.all(np.abs(np.subtract.outer(chosen, chosen))[~np.eye(len(chosen), dtype=bool)] >= 3)
    # A labelled cell blocks its neighbourhood too.
    chosen = least_confident_cells(p, 2, rows, cols, spacing=2, avoid=np.array([4]))
    assert 4 not in chosen and 5 not in chosen and 3 not in chosen
    assert chosen[0] == 6
    # Candidates restrict where queries may go.
    candidates = np.zeros(10, dtype=bool)
    candidates[[0, 9]] = True
    assert least_confident_cells(p, 5, rows, cols, 1, candidates).tolist() == [9, 0]


def test_area_classes_follow_the_shares():
    p = np.arange(1000) / 1000.0
    codes = classify_by_area(p, (0.05, 0.10, 0.20))
    assert [(codes == c).sum() for c in (4, 3, 2, 1)] == [50, 50, 100, 800]
    assert codes[-1] == 4 and codes[0] == 1
    codes = classify_by_area(p, (0.01, 0.5, 0.9))
    assert [(codes == c).sum() for c in (4, 3, 2, 1)] == [10, 490, 400, 100]
    with pytest.raises(InvalidInputError, match="three increasing"):
        area_share_thresholds(p, (0.2, 0.1, 0.3))
    rows = deposits_per_class(codes, np.array([999, 995, 500, 3]))
    assert [r["deposits"] for r in rows] == [2, 1, 0, 1]
    assert rows[0]["class"] == "very high" and rows[0]["area_share"] == 0.01


def test_pa_classes_split_at_the_crossing():
    p = np.arange(100) / 100.0
    codes, threshold = classify_by_pa(p, np.array([99, 98, 97, 60]))
    assert set(np.unique(codes)) == {1, 3}
    # 3 of 4 deposits in the top ~25 % of the area: the crossing lies there.
    assert 0.6 < threshold <= 0.97
    assert codes[99] == 3 and codes[0] == 1


def test_label_pool_keeps_the_latest_label_per_cell_and_drops_closed_cells():
    pool = LabelledCells().add([3, 5], [1, 1], "deposit").add([5, 7], [0, 1], "geologist")
    assert sorted(zip(pool.cells.tolist(), pool.labels.tolist())) == [(3, 1), (5, 0), (7, 1)]
    closed = np.zeros(10, dtype=bool)
    closed[7] = True
    assert sorted(pool.without(closed).cells.tolist()) == [3, 5]


def test_oracle_answers_within_the_three_by_three_buffer():
    rows, cols = np.divmod(np.arange(25), 5)
    oracle = DepositOracle(np.array([12]), rows, cols, radius=1)  # centre of a 5 x 5 grid
    answers = oracle(np.arange(25)).reshape(5, 5)
    assert answers.sum() == 9 and answers[2, 2] == 1 and answers[0, 0] == 0


def test_soft_loss_is_smallest_when_the_student_matches_the_teacher():
    import torch

    teacher = torch.tensor([0.1, 0.8, 0.5])
    matching = torch.stack([torch.zeros(3), torch.log(teacher / (1 - teacher))], dim=1)
    for kind in ("kl", "ce"):
        at_match = soft_loss(matching, teacher, kind, 2.0)
        off = soft_loss(matching + torch.tensor([[0.0, 1.5]]), teacher, kind, 2.0)
        assert off > at_match
    assert float(soft_loss(matching, teacher, "kl", 2.0)) == pytest.approx(0.0, abs=1e-5)


def test_classifier_learns_soft_targets_and_hard_labels_move_it(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(400, 2)).astype(np.float32)
    teacher = 1 / (1 + np.exp(-4 * x[:, 0]))  # the teacher looks at feature 0 only
    config = KDALConfig(steps=200, device="cpu", hard_weight=1.0)
    student = ProspectivityClassifier(config).fit(x, teacher)
    p = student.predict_proba(x, teacher)
    # Without labels the residual student is its teacher: same values, same ranking.
    np.testing.assert_allclose(p, teacher, atol=1e-6)
    free = ProspectivityClassifier(KDALConfig(steps=200, device="cpu", student="free")).fit(x, teacher)
    assert np.corrcoef(free.predict_proba(x), teacher)[0, 1] > 0.95
    # Hard labels say: high feature 1 is background whatever the teacher says.
    negatives = np.flatnonzero((x[:, 1] > 0.5) & (x[:, 0] > 0.3))
    corrected = ProspectivityClassifier(config).fit(x, teacher, negatives, np.zeros(len(negatives), dtype=int))
    q = corrected.predict_proba(x, teacher)
    assert q[negatives].mean() < p[negatives].mean() - 0.3
    corrected.save(tmp_path)
    np.testing.assert_allclose(ProspectivityClassifier.load(tmp_path, "cpu").predict_proba(x, teacher), q, atol=1e-6)


def test_blocked_folds_keep_blocks_whole_and_capture_shares_are_per_deposit():
    rows, cols = np.divmod(np.arange(400), 20)  # 20 x 20 cells
    deposits = np.array([0, 21, 399, 378, 210])
    folds = blocked_folds(rows, cols, deposits, n_folds=3, block_cells=5, seed=1)
    assert folds.n_folds == 3
    block = (rows // 5) * 4 + cols // 5
    for b in np.unique(block):
        assert len(np.unique(folds.fold_of_cell[block == b])) == 1
    assert folds.fold_of_deposit[0] == folds.fold_of_deposit[1]  # same block, same fold
    with pytest.raises(InvalidInputError, match="at least two blocks"):
        blocked_folds(rows, cols, np.array([0, 1]), n_folds=3, block_cells=5)
    p = np.arange(400) / 400.0
    shares = capture_area_shares(p, np.array([399, 0, 359]))
    np.testing.assert_allclose(shares, [1 / 400, 1.0, 41 / 400])
    curve = pooled_success_curve(np.array([0.05, 0.08, 0.15, 0.6]), 400)
    assert curve.top_area["10"] == pytest.approx(0.5)
    assert curve.top_area["20"] == pytest.approx(0.75)
