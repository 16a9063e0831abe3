"""The multimodal model: SSF photo expert, property evidence with an error model, Bayes fusion, robustness table."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from minerals_fixtures import tiny_photo_set  # noqa: F401

from core.minerals.backbones import build_backbone
from core.minerals.datasets import scan_photo_folder
from core.minerals.heads import out_of_fold_temperature
from core.minerals.models import MultimodalIdentifier, PropertyEvidence, code_positions, falsify_properties
from core.minerals.multimodal import (
    MultimodalConfig,
    MultimodalTrainer,
    parameter_overhead,
    property_subsets,
    robustness_table,
    true_properties,
)

torch.set_num_threads(1)


def _model(n_classes=5):
    torch.manual_seed(0)
    return MultimodalIdentifier(build_backbone("resnet18"), n_classes)


def test_ssf_layers_get_gradients_and_the_backbone_does_not():
    model = _model()
    model.train()
    assert not model.image_branch.backbone.training  # frozen BatchNorm, even in train mode
    before = copy.deepcopy(model.image_branch.backbone.state_dict())
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images = torch.randn(4, 3, 32, 32)
    properties = torch.tensor([[1.0, 0, 1], [-1, -1, -1], [3, 1, -1], [2, -1, 0]])
    loss = F.cross_entropy(model(images, properties)["logits"], torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for ssf in model.image_branch.ssf:
        assert ssf.gamma.grad is not None and ssf.gamma.grad.abs().sum() > 0
        assert ssf.beta.grad is not None and ssf.beta.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.image_branch.backbone.parameters())
    optimiser.step()
    after = model.image_branch.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics
    assert any(not torch.equal(s.gamma, torch.ones_like(s.gamma)) for s in model.image_branch.ssf)


def test_parameter_overhead_is_small_and_counts_only_trainable_parts():
    model = _model(36)
    overhead = parameter_overhead(model)
    backbone = sum(p.numel() for p in model.image_branch.backbone.parameters())
    assert overhead["backbone_parameters"] == backbone
    assert overhead["ssf_parameters"] == 2 * (64 + 64 + 128 + 256 + 512)
    assert overhead["added_parameters"] == overhead["ssf_parameters"] + 512 * 36 + 36
    assert 0 < overhead["overhead_percent"] < 10


def test_wrong_properties_differ_from_the_truth_even_where_the_record_was_already_wrong():
    generator = torch.Generator().manual_seed(0)
    truth = torch.tensor([[3.0, 1, 0]]).repeat(1000, 1)
    recorded = truth.clone()
    recorded[::4, 1] = 0  # a quarter of the records already have the wrong luster
    recorded[1::5, 2] = -1  # some streaks not recorded
    wrong = falsify_properties(recorded, truth, error_rate=0.5, generator=generator)
    assert torch.equal(wrong < 0, recorded < 0)  # an error never changes what looks present
    chosen = (wrong != recorded).any(1) | ((wrong == recorded) & (wrong != truth) & (recorded >= 0)).all(1)
    assert 0.4 < chosen.float().mean() < 0.6
    rows = (wrong[:, 0] != truth[:, 0]).nonzero().flatten()
    # every present property of a chosen specimen differs from the truth, a re-flipped luster included
    assert ((wrong[rows] != truth[rows]) | (recorded[rows] < 0)).all()
    assert set(wrong[:, 0][wrong[:, 0] >= 0].tolist()) <= {1.0, 2.0, 3.0}
    assert set(wrong[:, 1:][wrong[:, 1:] >= 0].tolist()) <= {0.0, 1.0}
    untouched = (wrong[:, 0] == truth[:, 0])
    assert torch.equal(wrong[untouched], recorded[untouched])
    # unknown truth (-1): wrong means different from the record
    unknown = falsify_properties(recorded[:10], torch.full((10, 3), -1.0), 1.0, generator)
    assert ((unknown != recorded[:10]) | (recorded[:10] < 0)).all()


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_falsification_at_the_extremes(rate):
    clean = torch.tensor([[3.0, 1, 0], [-1, -1, -1]])
    out = falsify_properties(clean, clean, rate, torch.Generator().manual_seed(1))
    assert torch.equal(out[1], clean[1])
    assert torch.equal(out[0] == clean[0], torch.tensor([rate == 0.0] * 3))


def test_property_tables_match_hand_counts_and_the_error_model():
    evidence = PropertyEvidence(2)
    properties = torch.tensor([[1.0, 0, 1], [1, 0, -1], [2, 0, 1], [3, 1, 0], [-1, 1, 0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    evidence.fit(properties, labels, error_rate=0.3)
    # class 0 hardness: codes 1, 1, 2 -> (2+1, 1+1, 0+1) / 6, then 0.7 share + 0.3 (1 - share) / 2
    share = np.array([3, 2, 1]) / 6
    expected = 0.7 * share + 0.3 * (1 - share) / 2
    assert evidence.log_likelihood[0, 0].exp().numpy() == pytest.approx(expected, abs=1e-6)
    share = np.array([1, 3]) / 4  # class 1 luster: 1, 1 (as code positions 0, 1: metallic 0, non-metallic 2)
    assert evidence.log_likelihood[1, 1, :2].exp().numpy() == pytest.approx(0.7 * share + 0.3 * (1 - share), abs=1e-6)
    assert code_positions(properties)[4].tolist() == [-1, 1, 0]
    out = evidence(torch.tensor([[-1.0, -1, -1], [2, -1, -1], [1, 0, 1]]))
    assert torch.equal(out[0], torch.zeros(2))  # nothing recorded: no evidence
    assert torch.allclose(out[1], evidence.log_likelihood[:, 0, 1])
    total = evidence.log_likelihood[:, 0, 0] + evidence.log_likelihood[:, 1, 0] + evidence.log_likelihood[:, 2, 1]
    assert torch.allclose(out[2], total)
    # what one luster can say is bounded by the error model: log((1 - e) / e) at most
    luster = evidence.log_likelihood[:, 1, :2]
    assert float((luster[:, 0] - luster[:, 1]).abs().max()) <= math.log(0.7 / 0.3) + 1e-6


def test_no_property_gives_the_photo_experts_answer_and_right_ones_separate_lookalikes():
    model = _model(2)
    model.eval()
    features = torch.randn(6, model.image_branch.n_features)
    with torch.no_grad():
        model.image_head.weight.mul_(0.01)  # a photo expert that cannot tell the two minerals apart
        model.photo_temperature.fill_(2.0)
        model.property_evidence.fit(torch.tensor([[1.0, 1, 1]] * 9 + [[3.0, 1, 1]] * 9), torch.tensor([0] * 9 + [1] * 9), 0.3)
        nothing = model.fuse(features, torch.full((6, 3), -1.0))
        photo = (model.image_head(features) / 2.0).softmax(1)
        assert torch.allclose(nothing["logits"].softmax(1), photo, atol=1e-6)
        soft, hard = model.fuse(features, torch.tensor([[1.0, -1, -1]] * 6)), model.fuse(features, torch.tensor([[3.0, -1, -1]] * 6))
        assert (soft["logits"].argmax(1) == 0).all() and (hard["logits"].argmax(1) == 1).all()
        # luster and streak are the same for both: they change nothing
        same = model.fuse(features, torch.tensor([[-1.0, 1, 1]] * 6))
        assert torch.allclose(same["logits"].softmax(1), photo, atol=1e-5)


def test_out_of_fold_temperature_cools_an_overconfident_head():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(40)
    features = torch.randn(80, 60, generator=generator)  # noise: separable in 60-d, but nothing to learn
    t = out_of_fold_temperature(features, labels, torch.arange(80), "plain", weight_decay=1e-4)
    assert t > 3  # held-out photos are guessed at chance: the head's certainty must be damped
    informative = torch.cat([features[:, :59], (labels.float() * 6 - 3)[:, None]], dim=1)
    assert out_of_fold_temperature(informative, labels, torch.arange(80), "plain", weight_decay=1e-4) < t


def _train(collection):
    config = MultimodalConfig(arch="resnet18", image_size=32, batch_size=64, epochs=1, views=2)
    trainer = MultimodalTrainer(config, torch.device("cpu"))
    torch.manual_seed(0)
    backbone = build_backbone("resnet18")
    before = copy.deepcopy(backbone.state_dict())
    model = trainer.fit(collection, backbone)
    after = model.image_branch.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    return trainer, model


def test_training_the_robustness_table_and_a_photo_expert_independent_of_properties(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    trainer, model = _train(collection)
    assert len(trainer.history_["loss"]) == 1 and len(trainer.history_["val_mAcc"]) == 2  # epoch 0 = converged head
    assert float(model.photo_temperature) > 0 and float(model.property_evidence.log_likelihood.abs().sum()) > 0
    rows = robustness_table(model, collection, "test", 32, torch.device("cpu"))
    assert len(property_subsets()) == 8
    assert len(rows) == 1 + 7 * 3
    assert rows[0]["properties"] == "photo only"
    assert {r["error_rate"] for r in rows[1:]} == {0.0, 0.3, 0.6}
    assert all(0 <= r["accuracy"] <= 1 and r["n_test"] == len(collection.indices("test")) for r in rows)
    full = {r["error_rate"]: r["wrong_given"] for r in rows if r["properties"] == "hardness+luster+streak"}
    assert full[0.0] < 0.2 and full[0.3] > full[0.0] + 0.15 and full[0.6] > full[0.3] + 0.15
    # Without any recorded property the model is the photo expert, trained exactly the same way.
    blank = copy.copy(collection)
    blank.properties = np.full_like(collection.properties, -1.0)
    _, photo_only = _train(blank)
    assert torch.equal(photo_only.image_head.weight, model.image_head.weight)
    table = photo_only.property_evidence.log_likelihood
    assert torch.equal(table, table[:1].expand_as(table))  # the same for every mineral: no evidence
    blank_rows = robustness_table(photo_only, blank, "test", 32, torch.device("cpu"))
    assert all(r["accuracy"] == rows[0]["accuracy"] for r in blank_rows)


def test_true_properties_are_the_published_codes(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    index = collection.indices("test")
    truth = true_properties(collection, index)
    quartz = collection.classes.index("Quartz")
    assert truth[collection.labels[index] == quartz].tolist()[0] == [3.0, 1.0, 0.0]
