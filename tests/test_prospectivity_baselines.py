"""Baselines against hand computations, and KDAL next to its evidence on a grid where the evidence is right."""

from __future__ import annotations

import numpy as np
import pytest

from core.prospectivity.baselines import (
    WeightsOfEvidence,
    background_cells,
    binary_weights,
    logistic_regression_map,
    random_forest_map,
)
from core.prospectivity.kdal import (
    DepositOracle,
    KDALConfig,
    LabelledCells,
    chance_of_yes,
    fit_kdal_map,
    least_confident_cells,
)
from core.prospectivity.stack import near_cells
from core.prospectivity.validation import (
    blocked_folds,
    capture_area_shares,
    cross_validate,
    pooled_success_curve,
)

# Ten cells; the pattern is the top four; deposits at cells 0, 1 (in the pattern) and 5 (outside).
VALUES = np.array([10.0, 9, 8, 7, 0, 1, 2, 3, 4, 5])
DEPOSITS = np.array([0, 1, 5])


def test_binary_weights_match_a_hand_computation():
    pattern = VALUES >= 7
    is_deposit = np.isin(np.arange(10), DEPOSITS)
    w_plus, w_minus, s_plus, s_minus = binary_weights(pattern, is_deposit)
    # n(B&D) = 2, n(B&~D) = 2, n(~B&D) = 1, n(~B&~D) = 5; n(D) = 3, n(~D) = 7
    assert w_plus == pytest.approx(np.log((2 / 3) / (2 / 7)))  # ln 7/3 = 0.847
    assert w_minus == pytest.approx(np.log((1 / 3) / (5 / 7)))  # ln 7/15 = -0.762
    assert s_plus == pytest.approx(np.sqrt(1 / 2 + 1 / 2))
    assert s_minus == pytest.approx(np.sqrt(1 / 1 + 1 / 5))


def test_weights_of_evidence_posterior_and_the_conditional_independence_check():
    one = WeightsOfEvidence(area_shares=(0.4,)).fit(VALUES[:, None], DEPOSITS)
    posterior = one.predict_proba(VALUES[:, None])
    # One binary band: the posterior is the deposit density of each pattern class (2/4 and 1/6) ...
    np.testing.assert_allclose(posterior[:4], 0.5)
    np.testing.assert_allclose(posterior[4:], 1 / 6)
    # ... so the predicted number of deposits is the observed one: nothing to reject.
    check = one.independence_
    assert check["predicted_deposits"] == pytest.approx(3.0)
    assert check["ratio"] == pytest.approx(1.0) and check["independent"]
    # s^2(T) per unique condition: (4 cells * 0.5)^2 * (1/3 + 1) + (6 cells * 1/6)^2 * (1/3 + 1/1 + 1/5)
    assert check["sd"] == pytest.approx(np.sqrt(4 * (1 / 3 + 1) + 1 * (1 / 3 + 1.2)), abs=1e-3)
    # The same band twice is the textbook violation: the weights count twice, T exceeds n.
    twice = WeightsOfEvidence(area_shares=(0.4,)).fit(np.column_stack([VALUES, VALUES]), DEPOSITS)
    expected = 4 * 0.7 + 6 * (1 / (1 + np.exp(-np.log(3 * 49 / (7 * 225)))))
    assert twice.independence_["predicted_deposits"] == pytest.approx(expected, abs=1e-3)
    assert twice.independence_["ratio"] < 1.0


def test_multi_class_weights_of_evidence_rank_the_top_class_first():
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000)
    deposits = np.argsort(values)[-10:]  # the ten highest cells: all in the top 2 %
    model = WeightsOfEvidence().fit(values[:, None], deposits)
    weights = model.weights_[0]
    # Top 2 % class: 10 of 10 deposits, 30 of the 1990 other cells -> W = ln((10/10) / (30/1990))
    assert weights[0] == pytest.approx(np.log(1 / (30 / 1990)), abs=1e-6)
    # No other class holds a deposit: counted as 0.5 (continuity), so the 2-5 % class (60 cells) gets
    # ln((0.5/10) / (60/1990)) = 0.51 and the rest (1000 cells) ln((0.5/10) / (1000/1990)) = -2.31.
    assert weights[1] == pytest.approx(np.log(0.05 / (60 / 1990)), abs=1e-6)
    assert weights[-1] == pytest.approx(np.log(0.05 / (1000 / 1990)), abs=1e-6)
    assert np.all(weights[1:] < weights[0])
    score = model.decision_function(values[:, None])
    assert np.all(score[deposits] == score.max())


def _smooth_field(shape=(40, 40), seed=0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).normal(size=shape), 3)


def _planted_survey():
    """A 40 x 40 grid whose evidence peaks at the deposits: one deposit on the top cell of each 10 x 10 block."""
    field = _smooth_field()
    rows, cols = np.divmod(np.arange(field.size), field.shape[1])
    values = field.ravel()
    deposits = []
    for br in range(0, 40, 10):
        for bc in range(0, 40, 10):
            inside = np.flatnonzero((rows // 10 == br // 10) & (cols // 10 == bc // 10))
            deposits.append(inside[np.argmax(values[inside])])
    top = np.quantile(values, 0.9)
    deposits = np.array([d for d in deposits if values[d] >= top])  # only those the evidence ranks high
    return values, rows, cols, deposits


def _kdal_shares_per_cycle(values, rows, cols, deposits, folds, config, cycles=2, others=None) -> np.ndarray:
    """(cycles + 1, deposits) capture area shares of each held-out deposit on the map after each cycle."""
    teacher = (values - values.min()) / (values.max() - values.min())
    shares = np.full((cycles + 1, len(deposits)), np.nan)
    for fold in range(folds.n_folds):
        held_out = folds.fold_of_deposit == fold
        # Features: the other bands (none unless given); the teacher is the evidence band itself.
        features = np.zeros((len(values), 0)) if others is None else others
        result = fit_kdal_map(features, teacher, rows, cols, deposits[~held_out],
                              closed=folds.closed_cells(fold), cycles=cycles, k=3, spacing=3, config=config)
        for cycle, probability in enumerate(result.cycle_probabilities):
            shares[cycle, held_out] = capture_area_shares(probability, deposits[held_out])
    return shares


def test_kdal_keeps_the_ranking_of_evidence_that_ranks_the_deposits_perfectly():
    values, rows, cols, deposits = _planted_survey()
    n = len(deposits)
    assert n >= 4
    folds = blocked_folds(rows, cols, deposits, n_folds=4, block_cells=10, seed=0)
    evidence = pooled_success_curve(capture_area_shares(values, deposits), len(values))
    assert evidence.top_area["10"] == pytest.approx(1.0)
    shares = _kdal_shares_per_cycle(values, rows, cols, deposits, folds, KDALConfig(steps=60, device="cpu", seed=1))
    for cycle, cycle_shares in enumerate(shares):  # cycle 0 (deposits only), then with the geologist's answers
        curve = pooled_success_curve(cycle_shares, len(values))
        for share in ("10", "20"):
            assert curve.top_area[share] * n >= evidence.top_area[share] * n - 1, (cycle, share)


def test_kdal_with_a_misleading_band_stays_at_its_evidence_through_labelled_cycles():
    """A second band of noise, and the geologist's "no" answers, must not cost held-out deposits."""
    values, rows, cols, deposits = _planted_survey()
    n = len(deposits)
    folds = blocked_folds(rows, cols, deposits, n_folds=4, block_cells=10, seed=0)
    evidence = pooled_success_curve(capture_area_shares(values, deposits), len(values))
    noise = _smooth_field(seed=7).reshape(-1, 1)
    shares = _kdal_shares_per_cycle(values, rows, cols, deposits, folds, KDALConfig(steps=60, device="cpu", seed=1),
                                    cycles=3, others=noise)
    for cycle, cycle_shares in enumerate(shares):
        curve = pooled_success_curve(cycle_shares, len(values))
        for share in ("10", "20"):
            assert round(curve.top_area[share] * n) >= round(evidence.top_area[share] * n), (cycle, share)


def test_no_answers_cross_off_their_own_ground_and_move_nothing_else():
    values, rows, cols, deposits = _planted_survey()
    teacher = (values - values.min()) / (values.max() - values.min())
    noise = _smooth_field(seed=7).reshape(-1, 1)
    result = fit_kdal_map(noise, teacher, rows, cols, deposits, cycles=2, k=3, spacing=3, oracle_radius=1,
                          config=KDALConfig(steps=40, device="cpu"))
    assert [h["answers_yes"] for h in result.history[:2]] == [0, 0]  # queries keep clear of the labelled deposits
    no = result.pool.cells[result.pool.labels == 0]
    assert len(no) == 6
    crossed = near_cells(rows, cols, no, 1)
    first, last = result.cycle_probabilities[0], result.cycle_probabilities[-1]
    assert np.all(last[crossed] == 0)
    np.testing.assert_array_equal(last[~crossed], first[~crossed])  # the student itself did not move


def test_the_simulated_geologist_knows_hidden_training_deposits_and_never_the_held_out_ones():
    rows, cols = np.divmod(np.arange(900), 30)
    deposits = np.array([r * 30 + c for r in (4, 14, 24) for c in (5, 15, 25)])
    # The least-confident ground (teacher 0.5) is around every deposit, held-out ones included.
    teacher = np.where(near_cells(rows, cols, deposits, 1), 0.5, 0.02)
    folds = blocked_folds(rows, cols, deposits, n_folds=3, block_cells=10, seed=0)
    found = 0
    for fold in range(folds.n_folds):
        held_out = folds.fold_of_deposit == fold
        train = deposits[~held_out]
        result = fit_kdal_map(np.zeros((900, 0)), teacher, rows, cols, train, closed=folds.closed_cells(fold),
                              cycles=2, k=4, spacing=2, hidden_share=0.5, config=KDALConfig(steps=10, device="cpu"))
        sources = np.asarray(result.pool.sources)
        shown = result.pool.cells[sources == "deposit"]
        assert len(shown) == len(train) - round(0.5 * len(train)) and set(shown) < set(train)
        hidden = np.setdiff1d(train, shown)
        yes = result.pool.cells[(sources == "oracle") & (result.pool.labels == 1)]
        no = result.pool.cells[(sources == "oracle") & (result.pool.labels == 0)]
        assert near_cells(rows, cols, hidden, 1)[yes].all()  # yes: next to a hidden training deposit
        assert not near_cells(rows, cols, train, 1)[no].any()
        assert not near_cells(rows, cols, deposits[held_out], 1)[result.pool.cells].any()  # test fold unused
        assert sum(h.get("answers_yes", 0) for h in result.history) == len(yes)
        found += len(yes)
    assert found > 0


def _rare_deposit_survey(n_deposits: int = 14):
    """A 60 x 60 grid where deposits are rare and lie on high, not the highest, evidence (spaced 4 cells)."""
    values = _smooth_field((60, 60), seed=3).ravel()
    rows, cols = np.divmod(np.arange(values.size), 60)
    rng = np.random.default_rng(5)
    high = rng.permutation(np.flatnonzero(values >= np.quantile(values, 0.9)))
    deposits: list[int] = []
    for cell in high:
        if all(max(abs(rows[cell] - rows[d]), abs(cols[cell] - cols[d])) >= 4 for d in deposits):
            deposits.append(int(cell))
        if len(deposits) == n_deposits:
            break
    return values, rows, cols, np.array(deposits)


def test_queries_on_the_calibrated_chance_find_hidden_deposits_that_the_teachers_scale_misses():
    """Deposits are rare: least confidence on the teacher's 0-1 scale asks about middling ground and finds
    nothing; on the chance of a yes (the same map, calibrated) it asks about the likeliest unvisited ground."""
    values, rows, cols, deposits = _rare_deposit_survey()
    teacher = (values - values.min()) / (values.max() - values.min())
    oracle = DepositOracle(deposits, rows, cols, radius=1)
    config = KDALConfig(steps=20, device="cpu")
    result = fit_kdal_map(np.zeros((len(values), 0)), teacher, rows, cols, deposits, cycles=3, k=4, spacing=3,
                          hidden_share=0.5, config=config)
    found = sum(h["answers_yes"] for h in result.history[:3])
    shown = result.pool.cells[np.asarray(result.pool.sources) == "deposit"]
    first = fit_kdal_map(np.zeros((len(values), 0)), teacher, rows, cols, shown, k=12, spacing=3, config=config)
    assert first.chance is not None
    on_teacher_scale = least_confident_cells(first.probability, 12, rows, cols, 3, avoid=first.pool.cells)
    assert oracle(on_teacher_scale).sum() == 0  # the old rule: 12 queries, no find
    assert found >= 2, result.history  # the same 12 queries over three cycles on the calibrated chance


def test_the_chance_of_a_yes_is_the_map_calibrated_to_the_labels_base_rate():
    rows, cols = np.divmod(np.arange(900), 30)
    logit = np.random.default_rng(0).normal(size=900) + np.where(cols > 20, 2.0, 0.0)
    positives = np.array([5 * 30 + 25, 15 * 30 + 24, 25 * 30 + 26])
    pool = LabelledCells().add(positives, np.ones(3), "deposit")
    assert chance_of_yes(logit, LabelledCells(), rows, cols, 1) is None  # nothing to calibrate on
    chance = chance_of_yes(logit, pool, rows, cols, 1)
    order = np.argsort(logit)
    assert np.all(np.diff(chance[order]) >= 0)  # the map's order is kept
    assert chance.sum() == pytest.approx(near_cells(rows, cols, positives, 1).sum(), rel=0.02)  # base rate
    barren = pool.add([2 * 30 + 2], [0], "geologist")
    crossed = chance_of_yes(logit, barren, rows, cols, 1)
    assert np.all(crossed[near_cells(rows, cols, np.array([62]), 1)] == 0)


def test_the_simulated_geologist_answers_yes_within_the_radius_only():
    rows, cols = np.divmod(np.arange(100), 10)
    oracle = DepositOracle(np.array([55]), rows, cols, radius=2)
    answers = oracle(np.arange(100)).reshape(10, 10)
    assert answers[3:8, 3:8].all() and answers.sum() == 25
    assert oracle(np.array([0, 57, 77, 78])).tolist() == [0, 1, 1, 0]


def test_blocked_folds_never_put_a_deposits_neighbourhood_in_training():
    rows, cols = np.divmod(np.arange(400), 20)
    # Deposits on block edges, where a 3 x 3 neighbourhood spills into the next block.
    deposits = np.array([4 * 20 + 4, 5 * 20 + 15, 14 * 20 + 9, 15 * 20 + 15, 9 * 20 + 10])
    folds = blocked_folds(rows, cols, deposits, n_folds=3, block_cells=5, seed=0, buffer_cells=1)
    for fold in range(folds.n_folds):
        held_out = deposits[folds.fold_of_deposit == fold]
        neighbourhood = near_cells(rows, cols, held_out, 1)
        assert folds.closed_cells(fold)[neighbourhood].all()
    # Labels, queries and answers in training come from open cells only.
    train_cells = []

    def record(train, closed):
        result = fit_kdal_map(rows[:, None].astype(float), np.linspace(0, 1, 400), rows, cols, train, closed=closed,
                              cycles=1, k=4, spacing=2, config=KDALConfig(steps=5, device="cpu"))
        train_cells.append((result.pool.cells, result.queries, closed))
        return result.probability

    cross_validate(record, deposits, folds)
    for labelled, queries, closed in train_cells:
        assert not closed[labelled].any() and not closed[queries].any()


def test_presence_background_baselines_rank_the_planted_deposits_high():
    values, rows, cols, deposits = _planted_survey()
    background = background_cells(rows, cols, deposits, ratio=5, seed=0)
    assert not near_cells(rows, cols, deposits, 1)[background].any() and len(background) == 5 * len(deposits)
    for fit in (logistic_regression_map, random_forest_map):
        score = fit(values[:, None], rows, cols, deposits)
        assert np.mean(capture_area_shares(score, deposits) <= 0.2) >= 0.75, fit.__name__


def test_the_best_band_teacher_is_chosen_on_the_deposits_it_is_given():
    from affine import Affine

    from core.io.rasters import RasterStack
    from core.prospectivity.cycle import teacher_scores
    from core.prospectivity.stack import EvidenceStack

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 100))
    north, south = np.argsort(a)[-4:], np.argsort(b)[-4:]  # deposits each band ranks at its top
    values = np.stack([a, b]).reshape(2, 10, 10).astype(np.float32)
    stack = EvidenceStack(RasterStack(values, Affine.identity(), None, ["a", "b"], np.ones((10, 10), bool), ["x"]))
    assert teacher_scores(stack, "best", "robust", north)[1] == ["a"]
    assert teacher_scores(stack, "best", "robust", south)[1] == ["b"]
