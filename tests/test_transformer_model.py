"""The context transformer's parts: neighbours, no target leak, trainable offsets, masks, distillation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.anomaly.transformer.dataset import NeighbourContextDataset, find_neighbours
from core.anomaly.transformer.model import ContextReconstructor, encoder_layer
from core.anomaly.transformer.trainer import (
    DistillationTrainer,
    ElementMasking,
    TrainingSettings,
    alpha_for_generation,
    distillation_loss,
    draw_hidden,
    draw_hidden_elements,
    predict_background,
    seed_streams,
)
from core.errors import InvalidInputError
from tests.transformer_fixtures import one_thread  # noqa: F401 - autouse fixture


def _survey(n=60, p=5, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10_000, size=(n, 2)) + [400_000.0, 6_200_000.0]
    values = rng.normal(size=(n, p)).astype(np.float32)
    return xy, values


def _dataset(xy, values, k=6, **kw):
    context = find_neighbours(xy, k, **kw)
    return NeighbourContextDataset(values, context, context.typical_spacing_m(), torch.device("cpu")), context


# -- neighbours --------------------------------------------------------------------
def test_neighbours_are_the_nearest_other_samples():
    xy, _ = _survey()
    context = find_neighbours(xy, 5)
    rows = np.arange(len(xy))
    assert not (context.indices == rows[:, None]).any(), "a sample must never be in its own context"
    full = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :5]
    np.testing.assert_allclose(context.distances_m, expected)
    np.testing.assert_allclose(context.offsets_m, xy[context.indices] - xy[:, None])


def test_colocated_samples_are_left_out_by_default_and_kept_on_request():
    xy = np.array([[0, 0], [0, 0], [0, 0], [100, 0], [0, 100], [200, 200], [300, 0]], float)
    excluded = find_neighbours(xy, 3)
    for row in range(3):  # three samples at one spot: none is context of the others
        assert not np.isin(excluded.indices[row], [0, 1, 2]).any()
    assert (excluded.distances_m > 0).all()
    kept = find_neighbours(xy, 3, exclude_colocated=False)
    assert set(kept.indices[0]) >= {1, 2} and 0 not in kept.indices[0]


def test_only_the_given_context_rows_serve_as_context():
    # rows 1 and 4 repeat a sample compiled twice: they are scored, but fill no one's context
    xy = np.array([[0, 0], [0, 0], [100, 0], [0, 100], [0, 100], [200, 200], [300, 0]], float)
    usable = np.array([True, False, True, True, False, True, True])
    context = find_neighbours(xy, 3, context_rows=usable)
    assert context.indices.shape == (7, 3)
    assert not np.isin(context.indices, [1, 4]).any()
    plain = find_neighbours(xy, 3)
    assert np.isin(plain.indices, [1, 4]).any()
    # the repeats' own contexts are those of the samples they repeat
    np.testing.assert_array_equal(context.indices[1], context.indices[0])
    np.testing.assert_array_equal(context.indices[4], context.indices[3])
    with pytest.raises(InvalidInputError, match="one flag per sample"):
        find_neighbours(xy, 3, context_rows=usable[:-1])


def test_small_survey_pads_missing_neighbours_and_lonely_samples_fail():
    xy = np.array([[0, 0], [10, 0], [0, 10]], float)
    context = find_neighbours(xy, 5)
    assert context.indices.shape == (3, 5)
    assert context.missing[:, 2:].all() and not context.missing[:, :2].any()
    assert context.typical_spacing_m() == pytest.approx(10 * np.sqrt(2))  # farthest present neighbour
    with pytest.raises(InvalidInputError, match="distinct locations"):
        find_neighbours(np.zeros((4, 2)), 3)


# -- the model ---------------------------------------------------------------------
def _background(model, values, context, masking):
    dataset = NeighbourContextDataset(values, context, context.typical_spacing_m(), torch.device("cpu"))
    return predict_background(model, dataset, masking)[0]


@pytest.mark.parametrize("suite", [None, [0, 2]])
def test_no_target_leak_an_element_is_predicted_without_its_own_value(suite):
    xy, values = _survey()
    torch.manual_seed(0)
    model = ContextReconstructor(values.shape[1], d_model=16, n_heads=2)
    _, context = _dataset(xy, values)
    flags = None if suite is None else np.isin(np.arange(values.shape[1]), suite)
    masking = ElementMasking.for_elements(values.shape[1], flags)
    before = _background(model, values, context, masking)
    for j in range(values.shape[1]):
        changed = values.copy()
        changed[7, j] += 25.0  # a huge anomaly of element j at sample 7
        after = _background(model, changed, context, masking)
        assert after[7, j] == before[7, j], f"element {j} of sample 7 saw its own value"
    changed = values.copy()
    changed[7] += 25.0
    after = _background(model, changed, context, masking)
    users = np.flatnonzero((context.indices == 7).any(axis=1))
    assert len(users) and not np.allclose(after[users], before[users]), "sample 7 must still inform its neighbours"
    if suite is not None:  # the suite is hidden together: none of it informs the rest of the suite
        changed = values.copy()
        changed[7, suite] += 25.0
        np.testing.assert_array_equal(_background(model, changed, context, masking)[7, suite], before[7, suite])


def test_no_target_leak_with_duplicates_kept_as_context():
    xy, values = _survey()
    xy[8] = xy[7]  # a duplicate location
    model = ContextReconstructor(values.shape[1], d_model=16, n_heads=2)
    _, context = _dataset(xy, values, exclude_colocated=False)
    masking = ElementMasking.for_elements(values.shape[1], np.arange(values.shape[1]) == 1)
    before = _background(model, values, context, masking)
    changed = values.copy()
    changed[7, 1] -= 10.0
    np.testing.assert_array_equal(_background(model, changed, context, masking)[7, 1], before[7, 1])


def test_the_guard_leaves_the_nearest_samples_out_of_the_context():
    xy = np.column_stack([np.arange(30) * 100.0, np.zeros(30)])
    plain = find_neighbours(xy, 4)
    guarded = find_neighbours(xy, 4, guard=2)
    assert set(plain.indices[15]) == {13, 14, 16, 17}
    assert set(guarded.indices[15]) == {12, 13, 17, 18}  # the 2 nearest (14 and 16) are skipped
    assert guarded.distances_m[15].min() >= 200.0
    small = find_neighbours(xy[:6], 4, guard=2)  # too few samples: the guard gives way, k are kept
    assert (small.indices >= 0).all() and (small.indices != np.arange(6)[:, None]).all()
    with pytest.raises(InvalidInputError, match="guard"):
        find_neighbours(xy, 4, guard=-1)


def test_element_masks_always_hide_the_suite_and_scoring_passes_cover_every_element():
    suite = np.array([True, False, False, True, False, False, False])
    masking = ElementMasking.for_elements(7, suite, passes=2)
    read = np.zeros(7, dtype=int)
    for hidden, from_pass in masking.passes():
        assert hidden[suite].all() and not (from_pass & ~hidden).any()
        read += from_pass
    np.testing.assert_array_equal(read, 1)  # each element is read from exactly one pass
    hide = draw_hidden_elements(500, masking, 0.5, torch.Generator().manual_seed(0))
    assert hide[:, suite].all() and 0.05 < hide[:, ~suite].float().mean() < 0.45
    blind = draw_hidden_elements(500, ElementMasking.for_elements(7), 0.0, torch.Generator().manual_seed(0))
    assert (blind.sum(dim=1) == 1).all()  # nothing drawn: one element is still hidden to give a target


def test_offset_encoding_receives_gradients_and_trains():
    xy, values = _survey()
    dataset, _ = _dataset(xy, values)
    model = ContextReconstructor(values.shape[1], d_model=16, n_heads=2)
    target, context, offsets, missing = dataset.batch(torch.arange(20))
    prediction, _ = model(context, offsets, missing, target, torch.ones_like(target, dtype=torch.bool))
    torch.mean((prediction - target) ** 2).backward()
    for name, parameter in model.offset_encoding.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    start = [p.detach().clone() for p in model.offset_encoding.parameters()]
    trainer = DistillationTrainer(lambda: ContextReconstructor(values.shape[1], d_model=16, n_heads=2),
                                  TrainingSettings(generations=1, epochs=2, batch_size=16), torch.device("cpu"))
    trainer.fit(dataset)
    trained = [v for k, v in trainer.generation_states_[0].items() if k.startswith("offset_encoding")]
    torch.manual_seed(seed_streams(0, 1)[0])
    fresh = ContextReconstructor(values.shape[1], d_model=16, n_heads=2).offset_encoding.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(trained, fresh)), "the offset encoding must not be frozen"
    assert len(start) == len(trained)


def test_any_number_of_elements_and_attention_sums_to_one():
    for p in (1, 3, 40):
        xy, values = _survey(p=p)
        dataset, _ = _dataset(xy, values)
        model = ContextReconstructor(p, d_model=16, n_heads=2)
        reconstruction, attention = predict_background(model, dataset, ElementMasking.for_elements(p))
        assert reconstruction.shape == (len(xy), p)
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)


# -- masks -------------------------------------------------------------------------
def test_masks_are_fresh_every_step_and_keep_one_token_visible():
    missing = torch.zeros(200, 16, dtype=torch.bool)
    missing[:, 12:] = True
    generator = torch.Generator().manual_seed(1)
    first = draw_hidden(missing, 0.5, generator)
    second = draw_hidden(missing, 0.5, generator)
    assert not torch.equal(first, second)
    assert first[:, 12:].all(), "empty slots stay hidden"
    assert (~first).any(dim=1).all()
    share = first[:, :12].float().mean().item()
    assert 0.1 < share < 0.4  # a share drawn in [0, 0.5] per query: about a quarter hidden on average
    everything = draw_hidden(missing, 0.999999, torch.Generator().manual_seed(2))
    assert (~everything).any(dim=1).all()


def test_masks_differ_between_generations():
    _, _, per_generation = seed_streams(7, 4)
    mask_seeds = [m for _, m in per_generation]
    assert len(set(mask_seeds)) == 4
    missing = torch.zeros(64, 16, dtype=torch.bool)
    masks = [draw_hidden(missing, 0.5, torch.Generator().manual_seed(m)) for m in mask_seeds]
    assert all(not torch.equal(masks[0], other) for other in masks[1:])
    assert seed_streams(7, 4) == seed_streams(7, 4)


# -- distillation --------------------------------------------------------------------
def test_distillation_loss_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    prediction, target, teacher = (torch.randn(10, 4, generator=g) for _ in range(3))
    for alpha in (0.0, 0.1, 0.3, 0.9):
        expected = ((1 - alpha) * ((prediction - target) ** 2).mean()
                    + alpha * ((prediction - teacher) ** 2).mean())
        assert torch.allclose(distillation_loss(prediction, target, teacher, alpha), expected)
    assert torch.allclose(distillation_loss(prediction, target, None, 0.0), ((prediction - target) ** 2).mean())


def test_alpha_schedule_as_published_and_capped():
    assert [alpha_for_generation(g) for g in range(5)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert alpha_for_generation(12) == pytest.approx(0.9)
    assert alpha_for_generation(3, step=0.25, cap=0.6) == pytest.approx(0.6)


def test_trainer_records_generations_alphas_and_early_stops():
    xy, values = _survey(n=80)
    dataset, _ = _dataset(xy, values)
    settings = TrainingSettings(generations=3, epochs=30, patience=2, batch_size=32, alpha_step=0.2)
    trainer = DistillationTrainer(lambda: ContextReconstructor(values.shape[1], d_model=16, n_heads=2),
                                  settings, torch.device("cpu")).fit(dataset)
    assert [r.alpha for r in trainer.history_] == pytest.approx([0.0, 0.2, 0.4])
    assert len(trainer.generation_states_) == 3
    for record in trainer.history_:
        assert record.epochs_run == len(record.validation_loss) == len(record.train_loss)
        assert record.best_validation_loss == pytest.approx(min(record.validation_loss))
        # noise cannot be reconstructed, so validation stops improving and training stops early
        assert record.epochs_run < 30


def test_early_stopping_uses_the_scoring_passes_validation_loss():
    xy, values = _survey(n=80)
    dataset, _ = _dataset(xy, values)
    build = lambda: ContextReconstructor(values.shape[1], d_model=16, n_heads=2)  # noqa: E731
    trainer = DistillationTrainer(build, TrainingSettings(generations=2, epochs=4, batch_size=32),
                                  torch.device("cpu")).fit(dataset)
    rows = trainer.validation_rows_.numpy()
    assert 0 < len(rows) < len(xy)
    for state, record in zip(trainer.generation_states_, trainer.history_):
        model = build()
        model.load_state_dict(state)
        reconstruction, _ = predict_background(model, dataset, trainer.masking)  # whole context visible
        mse = float(np.mean((reconstruction[rows] - values[rows]) ** 2))
        assert mse == pytest.approx(record.best_validation_loss, rel=1e-4)


def test_validation_holds_out_whole_location_groups():
    # pairs of rows at one spot (one sample compiled twice): a twin must not sit on the other side
    xy, values = _survey(n=80)
    groups = np.repeat(np.arange(40), 2)
    trainer = DistillationTrainer(lambda: ContextReconstructor(values.shape[1], d_model=16, n_heads=2),
                                  TrainingSettings(validation_fraction=0.2), torch.device("cpu"))
    train, validation = trainer._split(80, np.random.default_rng(0), groups)
    held = set(groups[validation.numpy()])
    assert held.isdisjoint(groups[train.numpy()])
    assert 16 <= len(validation) <= 18 and len(train) + len(validation) == 80
    ungrouped_train, ungrouped_validation = trainer._split(80, np.random.default_rng(0))
    assert len(ungrouped_validation) == 16
    with pytest.raises(ValueError, match="one label per sample"):
        trainer._split(80, np.random.default_rng(0), groups[:-1])


@pytest.mark.parametrize("training", [False, True])
def test_written_out_encoder_layer_is_torchs_layer(training):
    torch.manual_seed(0)
    # Dropout 0: in training the two must then agree too (dropout draws are the only difference).
    layer = nn.TransformerEncoderLayer(16, 2, 32, 0.0, activation="gelu", batch_first=True, norm_first=True)
    layer.train(training)
    tokens = torch.randn(5, 7, 16)
    hidden = torch.rand(5, 7) < 0.4
    hidden[:, 0] = False
    expected = layer(tokens, src_key_padding_mask=hidden)
    got = encoder_layer(layer, tokens, ~hidden[:, None, None, :], training)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
