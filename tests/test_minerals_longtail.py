"""Long-tailed training pieces against hand computations, and the staged trainer."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from minerals_fixtures import tiny_photo_set  # noqa: F401

from core.minerals.datasets import PhotoDataset, scan_photo_folder
from core.minerals.longtail import LongTailConfig, LongTailTrainer, centre_step, evaluate_classifier
from core.minerals.losses import CenterLoss, log_class_prior, logit_adjusted_cross_entropy
from core.minerals.metrics import classwise_metrics, tail_classes
from core.minerals.models import PhotoClassifier
from core.minerals.samplers import class_balanced_batches, core_feature_batches, inverse_probability_weights
from core.progress import Progress

torch.set_num_threads(1)


def test_logit_adjusted_cross_entropy_matches_hand_computation():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    prior = log_class_prior([6, 3, 1])
    assert prior.tolist() == pytest.approx([math.log(0.6), math.log(0.3), math.log(0.1)], abs=1e-6)
    z = [1 + math.log(0.6), 2 + math.log(0.3), 0 + math.log(0.1)]
    expected = -(z[2] - math.log(sum(math.exp(v) for v in z)))
    assert float(logit_adjusted_cross_entropy(logits, torch.tensor([2]), prior, tau=1.0)) == pytest.approx(expected, abs=1e-5)
    plain = -(0 - math.log(math.exp(1) + math.exp(2) + 1))
    assert float(logit_adjusted_cross_entropy(logits, torch.tensor([2]), prior, tau=0.0)) == pytest.approx(plain, abs=1e-5)
    assert expected > plain  # the rare class must win by a margin


def test_centre_loss_and_centre_update_match_hand_computation():
    centre = CenterLoss(2, 2)
    with torch.no_grad():
        centre.centres.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    labels = torch.tensor([0, 1])
    assert float(centre(features, labels).detach()) == pytest.approx((1 + 4 + 4 + 9) / 2)
    weight, lr = 3e-4, 0.5
    optimiser = torch.optim.SGD(centre.parameters(), lr=lr)
    (weight * centre(features, labels)).backward()
    centre_step(centre, optimiser, weight)
    # d/dc_y mean ||f - c_y||^2 = -2 (f - c_y) / N, N = 2; the weight is divided out.
    expected = torch.tensor([[0 + lr * (1 - 0), 0 + lr * (2 - 0)], [1 + lr * (3 - 1), 1 + lr * (4 - 1)]])
    assert torch.allclose(centre.centres.detach(), expected)


def test_inverse_probability_weights_on_known_probabilities():
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    p = np.array([0.9, 0.8, 0.5, 0.2, 0.1, 0.6, 0.3])
    w = inverse_probability_weights(p, labels, n_classes=3)
    assert w[:5].sum() == pytest.approx(0.5) and w[5:].sum() == pytest.approx(0.5)  # class-balanced
    s = 1 - (p[:5] - 0.1) / 0.8  # [0, .125, .5, .875, 1]
    e = math.log(4) / math.log(1.0 / ((0 + 0.125 + 0.5 + 0.875) / 4))  # top 20 % = {1.0}
    expected = s**e / (s**e).sum() * 0.5
    assert w[:5] == pytest.approx(expected)
    assert w[0] == 0 and np.all(np.diff(w[:5]) > 0)  # less confident -> more likely
    assert w[5:] == pytest.approx([0.0, 0.5])  # ratio infinite -> exponent 1
    # The weighted half of CFL batches is class-balanced in practice.
    rng = np.random.default_rng(0)
    labels = np.array([0] * 90 + [1] * 10)
    w = inverse_probability_weights(np.linspace(0.1, 0.9, 100), labels, 2)
    drawn = np.concatenate([b[len(b) // 2:] for b in core_feature_batches(w, 20, rng) * 1])
    drawn = np.concatenate([drawn] + [np.concatenate([b[10:] for b in core_feature_batches(w, 20, rng)]) for _ in range(30)])
    assert (labels[drawn] == 1).mean() == pytest.approx(0.5, abs=0.06)


def test_exponent_is_clamped_between_1_and_10():
    labels = np.zeros(10, int)
    nearly_flat = np.r_[np.full(9, 0.5), 0.49]  # s: nine 0, one 1 -> ratio inf -> exponent 1
    w = inverse_probability_weights(nearly_flat, labels, 1)
    assert w.sum() == pytest.approx(1) and w.argmax() == 9
    w_equal = inverse_probability_weights(np.full(10, 0.3), labels, 1)
    assert w_equal == pytest.approx(np.full(10, 0.1))


def test_class_balanced_batches_take_four_consecutive_photos_per_class():
    labels = np.array([0] * 100 + [1] * 5 + [2] * 1)
    rng = np.random.default_rng(1)
    batches = class_balanced_batches(labels, 16, rng, per_class=4, n_batches=300)
    chosen = []
    for batch in batches:
        assert len(batch) == 16
        groups = labels[batch].reshape(4, 4)
        assert np.all(groups == groups[:, :1])
        chosen.extend(groups[:, 0])
    share = np.bincount(chosen, minlength=3) / len(chosen)
    assert share == pytest.approx([1 / 3] * 3, abs=0.04)


def test_tail_classes_and_classwise_metrics_by_hand():
    assert tail_classes([100, 50, 10, 5, 3]) == [2, 3, 4]
    assert tail_classes([100, 1]) == [1]
    m = classwise_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 4, tail=[2, 3])
    assert m["per_class_accuracy"][:3].tolist() == [0.5, 1.0, 0.0] and math.isnan(m["per_class_accuracy"][3])
    assert m["accuracy"] == pytest.approx(0.6) and m["mAcc"] == pytest.approx(0.5)
    assert m["tail_mAcc"] == pytest.approx(0.0)
    assert m["CwASD"] == pytest.approx(np.std([0.5, 1.0, 0.0])) and m["CwARange"] == pytest.approx(1.0)


def test_crt_freezes_the_feature_extractor_and_reinitialises_the_classifier(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    model = PhotoClassifier("resnet18", len(collection.classes))
    model.train()
    with torch.no_grad():
        model.classifier.weight.fill_(7.0)
        for module in model.backbone.modules():  # give BatchNorm statistics values a drift would change
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.3)
    before = copy.deepcopy(model.backbone.state_dict())
    cfg = LongTailConfig(arch="resnet18", image_size=32, batch_size=32, crt_epochs=1, crt_lr=0.01, min_stage_steps=0)
    trainer = LongTailTrainer(cfg, torch.device("cpu"))
    train_idx = collection.indices("train")
    scoring = PhotoDataset(collection, train_idx, 32, train=False)
    trainer.retrain_classifier(model, scoring, collection.labels[train_idx], np.random.default_rng(0))
    after = model.backbone.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # weights and BatchNorm statistics untouched
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.backbone.training
    weight = model.classifier.weight.detach()
    assert (weight != 7.0).all() and weight.abs().max() < 1.0
    torch.manual_seed(cfg.seed + 101)
    fresh = torch.nn.Linear(model.n_features, len(collection.classes))
    assert not torch.equal(fresh.weight, weight)  # and it was trained after the reset
    assert len(trainer.history_["crt"]) == 1


class _Recorder(Progress):
    def __init__(self):
        super().__init__(mode="none")
        self.lines = []

    def log(self, message, level="info"):
        self.lines.append(message)


def test_three_stages_run_and_resume_between_stages(tiny_photo_set, tmp_path):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    cfg = LongTailConfig(arch="resnet18", image_size=32, batch_size=64, fea_epochs=1, cfl_epochs=1, crt_epochs=1,
                         warmup_epochs=1, resample_every=1, min_stage_steps=0)
    trainer = LongTailTrainer(cfg, torch.device("cpu"), checkpoint_dir=tmp_path / "ck")
    model = trainer.fit(collection)
    assert set(trainer.history_) == {"ce", "fea", "cfl", "crt"}
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.pt")) == ["stage_ce.pt", "stage_cfl.pt", "stage_crt.pt",
                                                                     "stage_fea.pt"]
    # An interrupted run: only the plain stage and FEA finished. The next run starts at CFL from FEA's weights.
    (tmp_path / "ck" / "stage_cfl.pt").unlink()
    (tmp_path / "ck" / "stage_crt.pt").unlink()
    recorder = _Recorder()
    again = LongTailTrainer(cfg, torch.device("cpu"), checkpoint_dir=tmp_path / "ck", progress=recorder).fit(collection)
    assert any("resuming after stage FEA" in line for line in recorder.lines)
    metrics = evaluate_classifier(again, collection, "test", 32, trainer.tail_classes_, torch.device("cpu"))
    assert 0 <= metrics["mAcc"] <= 1 and metrics["n_test"] == len(collection.indices("test"))
    assert model.classifier.weight.shape == (36, 512)
    # Interrupted after the plain stage: FEA starts again from where the plain stage started.
    (tmp_path / "ck" / "stage_fea.pt").unlink()
    recorder = _Recorder()
    LongTailTrainer(cfg, torch.device("cpu"), checkpoint_dir=tmp_path / "ck", progress=recorder).fit(collection)
    assert any("resuming after stage CE" in line for line in recorder.lines)


def test_long_tailed_run_never_ends_below_the_plain_run_trained_the_same_way(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    settings = dict(arch="resnet18", image_size=32, batch_size=64, fea_epochs=1, cfl_epochs=1, crt_epochs=1,
                    warmup_epochs=1, resample_every=1, min_stage_steps=0)
    plain = LongTailTrainer(LongTailConfig(method="baseline", **settings), torch.device("cpu"))
    plain_model = plain.fit(collection)
    longtail = LongTailTrainer(LongTailConfig(method="longtail", **settings), torch.device("cpu"))
    longtail_model = longtail.fit(collection)
    # Its first stage is the plain run itself: same losses, same validation mAcc.
    assert longtail.history_["ce"] == plain.history_["ce"]
    first = next(d for d in longtail.stages_ if d["stage"] == "ce")
    assert first["val_mAcc"] == round(plain.val_mAcc_, 4)
    assert [d["stage"] for d in longtail.stages_] == ["ce", "fea", "cfl", "crt"]
    assert longtail.val_mAcc_ >= plain.val_mAcc_
    if longtail.kept_stage_ == "ce":  # the fallback is the plain model, weight for weight
        assert all(torch.equal(v, plain_model.state_dict()[k]) for k, v in longtail_model.state_dict().items())
    # FEA started from where the plain stage started, not from the plain model: its loss is the untrained one's.
    assert longtail.history_["fea"][0] > longtail.history_["ce"][-1]
    # Unguarded (as published) there is no plain stage.
    assert LongTailConfig(guard=False).stages() == ["fea", "cfl", "crt"]
