"""The multimodal model: SSF training, frozen backbone, corruption, bottleneck, gate, robustness table."""

from __future__ import annotations

import copy

import pytest
import torch
from minerals_fixtures import tiny_photo_set  # noqa: F401

from core.minerals.backbones import build_backbone
from core.minerals.datasets import scan_photo_folder
from core.minerals.models import (
    MultimodalIdentifier,
    combination_index,
    corrupt_properties,
    multimodal_loss,
)
from core.minerals.multimodal import (
    MultimodalConfig,
    MultimodalTrainer,
    parameter_overhead,
    property_subsets,
    robustness_table,
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
    loss = multimodal_loss(model(images, properties), torch.tensor([0, 1, 2, 3]), properties)
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
    assert 0 < overhead["overhead_percent"] < 10


def test_corruption_changes_only_present_properties():
    generator = torch.Generator().manual_seed(0)
    clean = torch.tensor([[3.0, 1, 0], [-1, 0, 1], [1, -1, -1], [-1, -1, -1]]).repeat(250, 1)
    wrong = corrupt_properties(clean, missing_rate=0.0, error_rate=0.5, generator=generator)
    assert torch.equal(wrong < 0, clean < 0)  # an error never changes what looks present
    changed = (wrong != clean).any(1)
    assert 0.4 < changed[(clean >= 0).any(1)].float().mean() < 0.6
    rows = changed.nonzero().flatten()
    assert ((wrong[rows] != clean[rows]) | (clean[rows] < 0)).all()  # every present property of a chosen row is wrong
    assert set(wrong[:, 0][wrong[:, 0] >= 0].tolist()) <= {1.0, 2.0, 3.0}
    assert set(wrong[:, 1:][wrong[:, 1:] >= 0].tolist()) <= {0.0, 1.0}
    dropped = corrupt_properties(clean, missing_rate=1.0, error_rate=0.0, generator=generator)
    assert ((dropped == clean) | (dropped == -1)).all()  # values either kept or removed
    has_any = (clean >= 0).any(1)
    assert ((dropped < 0).sum(1) > (clean < 0).sum(1))[has_any].all()  # every sample lost at least one


def test_heads_follow_the_available_properties_and_the_bottleneck_is_stochastic():
    props = torch.tensor([[-1.0, -1, -1], [2, -1, -1], [-1, 1, -1], [-1, -1, 0], [1, 0, 1]])
    assert combination_index(props).tolist() == [0, 1, 2, 4, 7]
    model = _model()
    images = torch.randn(5, 3, 32, 32)
    model.train()
    a, b = model(images, props), model(images, props)
    assert not torch.allclose(a["logits"], b["logits"])  # z is sampled in training
    model.eval()
    with torch.no_grad():
        c, d = model(images, props), model(images, props)
        assert torch.equal(c["logits"], d["logits"])  # the mean at prediction
        assert c["weights"][0, 1] == 0 and (c["weights"][1:, 1] > 0).all()  # no property -> no property weight
        # each sample's logits come from the head of its property combination
        features = model.image_branch(images)
        for head in model.heads:  # give the per-combination heads distinct weights
            torch.nn.init.normal_(head.weight)
        full = model.fuse(features, props)
        mu = full["mu"]
        assert torch.allclose(full["logits"][4], model.shared_head(mu[4]) + model.heads[7](mu[4]), atol=1e-5)
        assert torch.allclose(full["logits"][0], model.shared_head(mu[0]) + model.heads[0](mu[0]), atol=1e-5)


def test_training_and_the_robustness_table(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    config = MultimodalConfig(arch="resnet18", image_size=32, batch_size=64, epochs=1)
    trainer = MultimodalTrainer(config, torch.device("cpu"))
    backbone = build_backbone("resnet18")
    before = copy.deepcopy(backbone.state_dict())
    model = trainer.fit(collection, backbone)
    assert len(trainer.history_["loss"]) == 1
    after = model.image_branch.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    rows = robustness_table(model, collection, "test", 32, torch.device("cpu"))
    assert len(property_subsets()) == 8
    assert len(rows) == 1 + 7 * 3
    assert rows[0]["properties"] == "photo only"
    assert {r["error_rate"] for r in rows[1:]} == {0.0, 0.3, 0.6}
    assert all(0 <= r["accuracy"] <= 1 and r["n_test"] == len(collection.indices("test")) for r in rows)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_corruption_at_the_extremes(rate):
    clean = torch.tensor([[3.0, 1, 0], [-1, -1, -1]])
    out = corrupt_properties(clean, 0.0, rate, torch.Generator().manual_seed(1))
    assert torch.equal(out[1], clean[1])
    assert torch.equal(out[0] == clean[0], torch.tensor([rate == 0.0] * 3))
