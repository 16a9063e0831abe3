"""``geoanomaly minerals`` end to end on a tiny photo set: train, predict, evaluate, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from minerals_fixtures import tiny_photo_set  # noqa: F401

from core.cli import main
from core.minerals.saved import MineralIdentifier, read_model_info

torch.set_num_threads(1)
TINY = ["--backbone", "resnet18", "--image-size", "32", "--batch-size", "64", "--threads", "1", "--progress", "none"]


@pytest.fixture(scope="module")
def trained(tiny_photo_set, tmp_path_factory):  # noqa: F811
    root, _ = tiny_photo_set
    out = tmp_path_factory.mktemp("models")
    assert main(["minerals", "train", "--data", str(root), "--model", "longtail", "--out", str(out / "lt"),
                 "--schedule", "full", "--fea-epochs", "1", "--cfl-epochs", "1", "--crt-epochs", "1",
                 "--warmup-epochs", "1", "--min-stage-steps", "0", *TINY]) == 0
    assert main(["minerals", "train", "--data", str(root), "--model", "multimodal", "--photo-model", str(out / "lt"),
                 "--out", str(out / "mm"), "--epochs", "1", *TINY]) == 0
    return root, out


def test_train_writes_a_complete_model_folder(trained):
    root, out = trained
    names = {p.name for p in (out / "lt").iterdir()}
    assert {"model.json", "weights.pt", "run.json", "metrics.json", "confusion_matrix.png",
            "per_class_accuracy.csv"} <= names
    assert not list(out.glob(".lt.stages")) and not list(out.glob(".*partial*"))  # checkpoints cleaned up
    info = read_model_info(out / "lt")
    assert info["kind"] == "longtail" and len(info["classes"]) == 36 and info["image_size"] == 32
    run = json.loads((out / "lt" / "run.json").read_text())
    assert set(run["training"]) == {"ce", "fea", "cfl", "crt"} and "device" in run and "versions" in run
    assert {"accuracy", "mAcc", "tail_mAcc", "CwASD", "CwARange", "per_class_accuracy"} <= set(run["metrics"])
    mm = json.loads((out / "mm" / "metrics.json").read_text())
    assert len(mm["robustness"]) == 22 and mm["parameter_overhead"]["overhead_percent"] > 0


def test_predict_lists_five_minerals_with_probabilities(trained, capsys):
    root, out = trained
    photo = next((root / "Galena").iterdir())
    capsys.readouterr()
    assert main(["minerals", "predict", "--model", str(out / "mm"), str(photo), "--hardness", "2.5",
                 "--luster", "metallic", "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["top"]) == 5
    probabilities = [row["probability"] for row in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    # the same through the library, and properties change the answer's probabilities
    identifier = MineralIdentifier.load(out / "mm")
    without = identifier.identify(photo)
    with_props = identifier.identify(photo, hardness="2.5", luster="metallic")
    assert [r["mineral"] for r in with_props] == [r["mineral"] for r in result["top"]]
    assert with_props != without


def test_predict_progress_json_reports_a_result_event(trained, capsys):
    root, out = trained
    photo = next((root / "Quartz").iterdir())
    capsys.readouterr()
    assert main(["minerals", "predict", "--model", str(out / "lt"), str(photo), "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "result" and len(events[-1]["predictions"][0]["top"]) == 5


def test_serve_answers_like_predict_survives_bad_requests_and_reloads_a_retrained_model(trained, tmp_path, capsys):
    root, out = trained
    galena, quartz = next((root / "Galena").iterdir()), next((root / "Quartz").iterdir())
    requests = [{"model": str(out / "mm"), "photo": str(galena), "hardness": "2.5", "luster": "metallic"},
                {"model": str(out / "mm"), "photo": str(quartz), "top": 3, "device": "cpu"}]
    expected = []
    for request in requests:
        argv = ["--hardness", "2.5", "--luster", "metallic"] if "hardness" in request else ["--top", "3"]
        capsys.readouterr()
        assert main(["minerals", "predict", "--model", request["model"], request["photo"], *argv, "--json",
                     "--threads", "1"]) == 0
        expected.append(json.loads(capsys.readouterr().out))
    retrained = tmp_path / "lt"
    shutil.copytree(out / "lt", retrained)

    with open(tmp_path / "stderr.txt", "w") as stderr:
        # --progress json, as the plugin starts it: logs must still stay off stdout.
        server = subprocess.Popen([sys.executable, "-m", "core", "minerals", "serve", "--threads", "1", "--progress",
                                   "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)

        def ask(request) -> dict:
            server.stdin.write((request if isinstance(request, str) else json.dumps(request)) + "\n")
            server.stdin.flush()
            return json.loads(server.stdout.readline())

        for request, want in zip(requests, expected):
            answer = ask(request)
            assert (answer["image"], answer["top"]) == (want["image"], want["top"]) and answer["seconds"] >= 0
        # Bad requests: one error line naming what is wrong, and the server goes on.
        assert "nowhere.jpg" in ask({**requests[0], "photo": str(tmp_path / "nowhere.jpg")})["error"]
        assert "hardness" in ask({**requests[0], "hardness": "very"})["error"]
        assert "not a mineral model folder" in ask({**requests[0], "model": str(tmp_path)})["error"]
        assert "'photo'" in ask({"model": str(out / "mm")})["error"]
        assert "JSON" in ask("not json")["error"]
        assert ask(requests[1])["top"] == expected[1]["top"]
        # A model retrained in the same folder (new files) is loaded again, not served from memory.
        photo_only = {"model": str(retrained), "photo": str(galena)}
        before = ask(photo_only)["top"]
        state = torch.load(retrained / "weights.pt", weights_only=True)
        state["classifier.weight"] = torch.randn_like(state["classifier.weight"])
        torch.save(state, retrained / "weights.pt")
        stamp = (retrained / "weights.pt").stat().st_mtime_ns + 10**9  # distinct even on coarse file times
        os.utime(retrained / "weights.pt", ns=(stamp, stamp))
        assert ask(photo_only)["top"] != before
        server.stdin.close()  # end of input: the server exits cleanly
        assert server.wait(timeout=60) == 0
        assert server.stdout.read() == ""  # exactly one line per request, nothing else
        server.stdout.close()


def test_evaluate_compares_models_on_the_same_split(trained, tmp_path, capsys):
    root, out = trained
    assert main(["minerals", "evaluate", "--model", str(out / "lt"), "--model", str(out / "mm"), "--data", str(root),
                 "--out", str(tmp_path / "eval"), "--threads", "1", "--progress", "none"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    first = metrics["1:lt"]
    train_run = json.loads((out / "lt" / "metrics.json").read_text())
    assert first["mAcc"] == pytest.approx(train_run["mAcc"])  # the same test photos as at training
    assert len(metrics["2:mm"]["robustness"]) == 22
    assert (tmp_path / "eval" / "1_lt" / "confusion_matrix.png").is_file()


def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path, capsys, tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    out = tmp_path / "model"
    assert main(["minerals", "train", "--data", str(tmp_path / "nowhere"), "--out", str(out), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
    assert main(["minerals", "train", "--data", str(root), "--out", str(out), "--error-rate", "1.5", *TINY]) == 2
    assert main(["minerals", "train", "--data", str(root), "--out", str(out), "--weights", str(tmp_path / "x.pth"),
                 *TINY]) == 2
    assert "x.pth" in capsys.readouterr().err and not out.exists()
    (tmp_path / "evil.pth").write_bytes(b"\x80\x04not a state dict")
    assert main(["minerals", "train", "--data", str(root), "--out", str(out), "--weights", str(tmp_path / "evil.pth"),
                 *TINY]) == 2
    assert "evil.pth" in capsys.readouterr().err and not out.exists()
    assert main(["minerals", "predict", "--model", str(root), str(tmp_path / "x.jpg"), "--progress", "none"]) == 2
    (tmp_path / "bad.csv").write_text("file,luster\nQuartz/x.jpg,sparkly\n")
    assert main(["minerals", "train", "--data", str(root), "--out", str(out), "--properties", str(tmp_path / "bad.csv"),
                 *TINY]) == 2
    assert "bad.csv, line 2" in capsys.readouterr().err


def test_user_weights_file_is_loaded(tmp_path):
    import torchvision

    from core.errors import InvalidInputError
    from core.minerals.backbones import build_backbone
    from core.minerals.models import PhotoClassifier

    reference = torchvision.models.resnet18(weights=None)
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "imagenet.pth")
    model = PhotoClassifier("resnet18", 36, tmp_path / "imagenet.pth")
    assert torch.equal(model.backbone.stages[0][0].weight, reference.conv1.weight)
    assert model.backbone.origin == "user-supplied weights file imagenet.pth"
    with pytest.raises(InvalidInputError, match="does not fit a resnet50"):
        build_backbone("resnet50", tmp_path / "imagenet.pth")
