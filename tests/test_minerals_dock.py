"""The "Mineral identification" dock in a real, headless QGIS, running the engine worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from plugin_fixtures import qgis_app, requires_qgis  # noqa: F401

pytestmark = [requires_qgis, pytest.mark.qgis]


@pytest.fixture(scope="module")
def photos_and_model(tmp_path_factory):
    """A small photo set and an (untrained) resnet18 model folder, made with the engine."""
    import torch

    from core.minerals.models import PhotoClassifier
    from core.minerals.properties import MINERALS_36
    from core.minerals.saved import save_model
    from core.minerals.synthetic import write_synthetic_photo_set

    root = tmp_path_factory.mktemp("dock")
    write_synthetic_photo_set(root / "photos", n_max=6, imbalance=2, size=32, seed=4)
    torch.manual_seed(0)
    classes = sorted(MINERALS_36)
    save_model(root / "model", PhotoClassifier("resnet18", len(classes)),
               {"kind": "longtail", "arch": "resnet18", "classes": classes, "image_size": 32, "tail_classes": []})
    return root / "photos", root / "model"


def test_dock_identifies_a_photo_through_the_worker_and_shows_five_rows(qgis_app, photos_and_model):  # noqa: F811
    from geoanomaly_qgis.minerals_dock import MineralDock

    photos, model = photos_and_model
    dock = MineralDock(run_in_background=False)
    assert dock.windowTitle() == "Mineral identification"
    photo = str(next((photos / "Pyrite").iterdir()))
    dock.set_photo(photo)
    assert not dock.thumbnail.pixmap().isNull()  # thumbnail shown
    dock.set_model(str(model))
    dock.hardness_edit.setText("6")
    dock.luster_combo.setCurrentIndex(1)
    request = dock.identify_request()
    assert request["hardness"] == "6" and request["luster"] == "metallic"
    assert "streak" not in request  # left blank = not observed
    dock.identify()
    rows = dock.shown_minerals()
    assert len(rows) == 5, dock.status.text()
    probabilities = [p for _, p in rows]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    # A confident answer names the best match; a weak one (the tiny test model) says it is uncertain.
    from core.minerals.saved import UNCERTAIN_BELOW

    expected = "Best match: " if rows[0][1] >= UNCERTAIN_BELOW else "Uncertain: the best match, "
    assert dock.status.text().startswith(expected + rows[0][0]), dock.status.text()
    assert dock.identify_button.isEnabled()
    dock.close()


def test_identify_reuses_one_engine_process_and_closing_the_dock_stops_it(qgis_app, photos_and_model):  # noqa: F811
    """Clicks after the first are answered by the same ``minerals serve`` process (torch imported and the model
    loaded once), with the answer of a fresh ``minerals predict``; a dead process is started again."""
    from qgis.PyQt.QtCore import QCoreApplication

    from geoanomaly_qgis.engine import run_engine
    from geoanomaly_qgis.minerals_dock import MineralDock

    photos, model = photos_and_model
    photo = str(next((photos / "Galena").iterdir()))
    fresh = run_engine(["minerals", "predict", "--model", str(model), photo, "--device", "cpu"])  # one process per photo
    expected = [row["mineral"] for row in fresh["predictions"][0]["top"]]

    dock = MineralDock()  # in the task manager, as in QGIS
    dock.set_photo(photo)
    dock.set_model(str(model))
    dock.identify()
    assert not dock.identify_button.isEnabled()  # returned at once; disabled while the engine works
    deadline = time.monotonic() + 120
    while not dock.identify_button.isEnabled() and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert [name for name, _ in dock.shown_minerals()] == expected, dock.status.text()
    pid = dock.engine.pid
    assert pid is not None

    dock.run_in_background = False
    dock.results.setRowCount(0)
    dock.identify()
    assert [name for name, _ in dock.shown_minerals()] == expected, dock.status.text()
    assert dock.engine.pid == pid  # the same process answered
    dock.hardness_edit.setText("very hard")
    dock.identify()
    assert "hardness" in dock.status.text() and dock.engine.pid == pid  # a bad request does not end it
    dock.hardness_edit.clear()

    os.kill(pid, signal.SIGKILL)
    while dock.engine.pid is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    dock.identify()  # a dead engine is started again
    assert [name for name, _ in dock.shown_minerals()] == expected, dock.status.text()
    restarted = dock.engine.pid
    assert restarted not in (None, pid)

    dock.close()
    assert dock.engine.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(restarted, 0)  # ended and reaped


def test_dock_reports_a_missing_photo_and_a_bad_model(qgis_app, photos_and_model, tmp_path):  # noqa: F811
    from geoanomaly_qgis.minerals_dock import MineralDock

    photos, _ = photos_and_model
    dock = MineralDock(run_in_background=False)
    dock.identify()
    assert "photo" in dock.status.text()
    dock.set_photo(str(next((photos / "Quartz").iterdir())))
    dock.set_model(str(tmp_path))
    dock.identify()
    assert "model folder" in dock.status.text() and dock.results.rowCount() == 0


def test_dock_trains_a_model_through_the_worker_and_offers_it(qgis_app, photos_and_model, tmp_path):  # noqa: F811
    from geoanomaly_qgis.minerals_dock import MineralDock

    photos, _ = photos_and_model
    dock = MineralDock(run_in_background=False)
    dock.extra_train_arguments = ["--backbone", "resnet18", "--image-size", "32", "--batch-size", "64",
                                  "--fea-epochs", "1", "--cfl-epochs", "1", "--crt-epochs", "1", "--warmup-epochs", "1",
                                  "--threads", "1"]
    dock.train(str(photos), str(tmp_path / "new_model"))
    assert "New model ready" in dock.status.text(), dock.status.text()
    assert Path(dock.model_combo.currentText()) == tmp_path / "new_model"
    assert (tmp_path / "new_model" / "model.json").is_file()


def test_cancelled_training_stops_the_worker_and_writes_nothing(qgis_app, photos_and_model, tmp_path):  # noqa: F811
    from geoanomaly_qgis.minerals_dock import EngineTask, MineralDock

    photos, _ = photos_and_model
    dock = MineralDock(run_in_background=False)
    outcome = {}
    task = EngineTask("train", dock.train_arguments(str(photos), str(tmp_path / "never")),
                      lambda result, error: outcome.update(result=result, error=error))
    task.cancel()  # what the task manager's Cancel does
    task.finished(task.run())
    assert outcome == {"result": None, "error": "Cancelled."}
    assert not (tmp_path / "never").exists()


def test_training_defaults_to_a_quick_cpu_trial_and_can_ask_for_the_full_schedule(qgis_app):  # noqa: F811
    from geoanomaly_qgis.minerals_dock import MineralDock

    dock = MineralDock(run_in_background=False)
    quick = dock.train_arguments("photos", "model")
    assert "--schedule" not in quick and "--backbone" not in quick  # the engine's quick pretrained default
    dock.training_size.setCurrentIndex(dock.training_size.findData("full"))
    full = dock.train_arguments("photos", "model")
    assert full[full.index("--schedule") + 1] == "full"


def test_dock_shows_the_models_validation_accuracy_next_to_it(qgis_app, photos_and_model, tmp_path):  # noqa: F811
    import json

    from geoanomaly_qgis.minerals_dock import MineralDock

    folder = tmp_path / "rated"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"classes": ["Quartz", "Pyrite"],
                                                   "validation": {"mAcc": 0.84, "n_photos": 12}}))
    dock = MineralDock(run_in_background=False)
    dock.set_model(str(folder))
    assert "84%" in dock.model_quality.text() and "12 photos" in dock.model_quality.text()
    dock.set_model(str(tmp_path / "nothing here"))
    assert dock.model_quality.text() == ""
