"""The transformer detector end to end: reproducibility, save/load, duplicates, lon/lat, planted anomalies, CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from core.anomaly import Detector, make_detector
from core.cli import main
from core.errors import InvalidInputError
from core.io.samples import read_samples
from core.preprocess import Preprocessor
from core.progress import Progress
from tests.synthetic import synthetic_survey
from tests.transformer_fixtures import (  # noqa: F401 - one_thread is an autouse fixture
    TINY,
    one_thread,
    prepared_from_frame,
    survey_with_duplicates,
    write_lonlat_csv,
)


@pytest.fixture(scope="module")
def small_prepared():
    frame, planted = synthetic_survey(n=150, elements=6, anomalies=5, seed=1)
    return prepared_from_frame(frame), planted


def test_same_seed_same_scores_and_another_seed_differs(small_prepared):
    prepared, _ = small_prepared
    first = make_detector("transformer", **TINY).fit(prepared)
    second = make_detector("transformer", **TINY).fit(prepared)
    np.testing.assert_array_equal(first.score(prepared), second.score(prepared))
    assert first.history_["generations"][1]["train_loss"] == second.history_["generations"][1]["train_loss"]
    other = make_detector("transformer", **{**TINY, "seed": 1}).fit(prepared)
    assert not np.allclose(other.score(prepared), first.score(prepared))


def test_save_load_gives_identical_scores_and_readouts(small_prepared, tmp_path):
    prepared, _ = small_prepared
    detector = make_detector("transformer", **TINY).fit(prepared)
    detector.save(tmp_path / "model")
    saved = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert "transformer_generation_0.pt" in saved and "transformer_generation_1.pt" in saved
    # weights are plain tensors: loadable with weights_only=True
    state = torch.load(tmp_path / "model" / "transformer_generation_1.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = Detector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score(prepared), detector.score(prepared))
    before, after = detector.score_details(prepared), loaded.score_details(prepared)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_an_ensemble_averages_its_members_and_saves_every_one(small_prepared, tmp_path):
    from core.anomaly.transformer.trainer import predict_background

    prepared, _ = small_prepared
    ensemble = make_detector("transformer", **{**TINY, "ensemble": 2}).fit(prepared)
    history = ensemble.history_
    assert [(g["member"], g["generation"]) for g in history["generations"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    seeds = history["ensemble_seeds"]
    assert seeds[0] == TINY["seed"] and len(set(seeds)) == 2
    # member 0 is the single model of the same seed; the ensemble's background is the members' mean
    single = make_detector("transformer", **TINY).fit(prepared)
    members = ensemble._member_models(torch.device("cpu"))
    dataset = ensemble._dataset(prepared, ensemble._context(prepared)[0], torch.device("cpu"))
    first, _ = predict_background(members[0][-1], dataset, ensemble._masking())
    second, _ = predict_background(members[1][-1], dataset, ensemble._masking())
    np.testing.assert_allclose(np.linalg.norm(prepared.values - first, axis=1), single.score(prepared), rtol=1e-6)
    expected = np.linalg.norm(prepared.values - (first + second) / 2, axis=1)
    np.testing.assert_allclose(ensemble.score(prepared), expected, rtol=1e-5)
    assert not np.allclose(ensemble.score(prepared), single.score(prepared))
    ensemble.save(tmp_path / "model")
    assert (tmp_path / "model" / "transformer_member_1_generation_1.pt").exists()
    loaded = Detector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score(prepared), ensemble.score(prepared))
    with pytest.raises(InvalidInputError, match="ensemble"):
        make_detector("transformer", ensemble=0)


def test_readouts_per_generation_history_and_default_score(small_prepared):
    prepared, _ = small_prepared
    detector = make_detector("transformer", **{**TINY, "generations": 3}).fit(prepared)
    details = detector.score_details(prepared)
    n, p = prepared.values.shape
    for name in ("generation_0", "generation_1", "generation_2", "reconstruction_error",
                 "attention_dispersion", "rank_fusion", "residual_mahalanobis"):
        assert details[name].shape == (n,), name
    assert details["residual"].shape == (n, p)
    np.testing.assert_array_equal(detector.element_residuals(prepared), details["residual"])
    # residuals are standardised with the spread fixed at fitting; the error is their norm in prepared units
    raw = details["residual"] * detector.residual_scale_ + detector.residual_center_
    np.testing.assert_allclose(details["reconstruction_error"], np.linalg.norm(raw, axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.median(details["residual"], axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(details["reconstruction_error"], details["generation_2"])
    np.testing.assert_array_equal(detector.score(prepared), details["reconstruction_error"])
    assert not np.allclose(details["generation_0"], details["generation_2"])
    # attention dispersion is a distance in metres, within the context's reach
    assert (details["attention_dispersion"] > 0).all()
    assert 0.0 < details["rank_fusion"].min() and details["rank_fusion"].max() <= 1.0
    history = detector.history_
    assert [g["alpha"] for g in history["generations"]] == pytest.approx([0.0, 0.1, 0.2])
    assert history["device"].startswith("cpu")
    assert len({g["mask_seed"] for g in history["generations"]}) == 3
    json.dumps(history)  # goes into run.json
    fused = make_detector("transformer", **{**TINY, "generations": 3, "main_score": "fusion"}).fit(prepared)
    np.testing.assert_array_equal(fused.score(prepared), fused.score_details(prepared)["rank_fusion"])
    # the robust Mahalanobis distance of the residuals: the classical detector's, fitted on the residuals
    from core.anomaly.classical import MahalanobisDetector
    from core.preprocess.pipeline import PreparedSamples

    residuals = PreparedSamples(raw, prepared.xy, list(prepared.elements))
    expected = MahalanobisDetector(seed=0).fit(residuals).score(residuals)
    np.testing.assert_allclose(details["residual_mahalanobis"], expected, rtol=1e-4)
    by_pattern = make_detector("transformer", **{**TINY, "generations": 3, "main_score": "mahalanobis"}).fit(prepared)
    np.testing.assert_array_equal(by_pattern.score(prepared), by_pattern.score_details(prepared)["residual_mahalanobis"])


def test_planted_multi_element_anomalies_rank_at_the_top():
    frame, planted = synthetic_survey(n=400, elements=8, anomalies=12, seed=0)
    prepared = prepared_from_frame(frame)
    detector = make_detector("transformer", generations=2, epochs=10, patience=5, neighbours=12, d_model=16,
                             heads=2, batch_size=64, device="cpu", seed=0).fit(prepared)
    scores = detector.score(prepared)
    assert roc_auc_score(planted, scores) > 0.9
    # the elements that rose together drive the anomalies
    residual = detector.score_details(prepared)["residual"]
    top = np.argsort(-np.abs(residual[planted]).mean(axis=0))[:3]
    assert set(top) <= {0, 1, 2, 3}


def test_duplicate_locations_and_lonlat_input(tmp_path):
    frame = survey_with_duplicates(n=160, duplicates=30)
    path = write_lonlat_csv(frame, tmp_path / "lonlat.csv")
    table = read_samples(path)
    assert table.work_crs.is_projected
    prepared = Preprocessor().fit_transform(table)
    detector = make_detector("transformer", **TINY).fit(prepared)
    scores = detector.score(prepared)
    assert scores.shape == (190,) and np.isfinite(scores).all()
    # the context is measured in metres: the typical spacing of a 500 m grid, not a fraction of a degree
    assert 500.0 < detector.offset_scale_m_ < 5000.0
    # duplicates are distinct samples: each gets its own score
    first_copy = frame.index[frame["SAMPLEID"] == "D0000"][0]
    original = int(np.flatnonzero((frame["X"] == frame.loc[first_copy, "X"]).to_numpy())[0])
    assert original != first_copy and scores[original] != scores[first_copy]
    with_twins = make_detector("transformer", **{**TINY, "exclude_colocated": False}).fit(prepared)
    assert np.isfinite(with_twins.score(prepared)).all()


def test_a_sample_compiled_twice_counts_once_and_gets_one_score():
    frame, _ = synthetic_survey(n=150, elements=6, anomalies=5, seed=4)
    twice = pd.concat([frame, frame.iloc[:40]], ignore_index=True)  # 40 samples listed twice, same assays
    prepared = prepared_from_frame(twice)
    detector = make_detector("transformer", **TINY).fit(prepared)
    assert detector.history_["samples_trained_on"] == 150
    context, _, repeats = detector._context(prepared)
    assert repeats.sum() == 40 and not np.isin(context.indices, np.flatnonzero(repeats)).any()
    scores = detector.score(prepared)
    np.testing.assert_allclose(scores[150:], scores[:40], rtol=1e-6)


def test_progress_within_a_callers_stage_names_each_generation(small_prepared):
    prepared, _ = small_prepared
    stream = io.StringIO()
    progress = Progress(mode="json", stream=stream)
    progress.stage("fit", "Fitting", weight=0.5)
    make_detector("transformer", **TINY).fit(prepared, progress)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("generation 1/2" in m for m in logs) and any("generation 2/2" in m for m in logs)
    assert any(m.startswith("Transformer on cpu") for m in logs)
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {e["stage"] for e in events if e["event"] == "progress"} == {"fit"}


def test_bad_settings_are_reported_clearly(small_prepared):
    with pytest.raises(InvalidInputError, match="neighbours"):
        make_detector("transformer", neighbours=0)
    with pytest.raises(InvalidInputError, match="multiple of the heads"):
        make_detector("transformer", d_model=30, heads=4)
    with pytest.raises(InvalidInputError, match="transformer score"):
        make_detector("transformer", main_score="best")
    prepared, _ = small_prepared
    detector = make_detector("transformer", **TINY).fit(prepared)
    fewer = prepared.subset(np.arange(50))
    fewer.elements = fewer.elements[:-1]
    fewer.values = fewer.values[:, :-1]
    with pytest.raises(InvalidInputError, match="elements"):
        detector.score(fewer)


def test_tiny_survey_through_the_command_line(tmp_path, capsys):
    frame, planted = synthetic_survey(n=120, elements=6, anomalies=4, seed=2)
    samples = tmp_path / "samples.csv"
    frame.to_csv(samples, index=False)
    deposits = tmp_path / "deposits.csv"
    frame.loc[planted, ["X", "Y"]].to_csv(deposits, index=False)
    out = tmp_path / "run"
    code = main(["detect", "--method", "transformer", "--samples", str(samples), "--crs", "EPSG:32750",
                 "--deposits", str(deposits), "--deposits-crs", "EPSG:32750", "--out", str(out),
                 "--generations", "2", "--ensemble", "2", "--epochs", "3", "--neighbours", "8", "--d-model", "16",
                 "--device", "cpu", "--seed", "3", "--compare", "mahalanobis", "--progress", "json"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages.index("model 1/2, generation 1/2") < stages.index("model 2/2, generation 2/2")
    overall = [e["overall"] for e in events if "overall" in e]
    assert overall == sorted(overall) and overall[-1] <= 1.0
    in_training = [e["overall"] for e in events if e.get("stage") == "model 2/2, generation 2/2"]
    assert in_training[-1] > in_training[0], "the bar moves during training"
    assert any("cpu" in e.get("message", "") for e in events if e["event"] == "log")
    scores = pd.read_csv(out / "scores.csv")
    for column in ("anomaly_score", "generation_0", "generation_1", "attention_dispersion", "rank_fusion",
                   "residual_mahalanobis", "residual_Cu", "top_elements"):
        assert column in scores.columns, column
    record = json.loads((out / "run.json").read_text())
    training = record["training"]
    assert [(g["member"], g["generation"]) for g in training["generations"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(g["validation_loss"] and g["seconds"] >= 0 for g in training["generations"])
    by_score = record["metrics"]["auc_by_score"]
    assert "readout:generation_0" in by_score and "readout:generation_1" in by_score
    # the saved model scores new samples: the same survey gives the same scores
    rescored = tmp_path / "rescored"
    assert main(["score", "--model", str(out / "model"), "--samples", str(samples), "--crs", "EPSG:32750",
                 "--out", str(rescored), "--progress", "none"]) == 0
    again = pd.read_csv(rescored / "scores.csv")
    np.testing.assert_allclose(again["anomaly_score"], scores["anomaly_score"], rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_the_cpu_closely(small_prepared):
    prepared, _ = small_prepared
    cpu = make_detector("transformer", **TINY).fit(prepared)
    gpu = make_detector("transformer", **{**TINY, "device": "cuda"}).fit(prepared)
    assert gpu.history_["device"].startswith("cuda")
    assert np.corrcoef(cpu.score(prepared), gpu.score(prepared))[0, 1] > 0.9


# -- the commodity: a background that does not explain the deposit away -------------------------------------------
def _halo_survey(seed: int = 0):
    """A smooth field with a planted halo (7 adjacent samples moderately enriched in the Au suite), an isolated
    Au spike and an equally large Au depletion elsewhere."""
    frame, _ = synthetic_survey(n=400, elements=8, anomalies=0, seed=seed)
    xy = frame[["X", "Y"]].to_numpy()
    centre = xy.min(axis=0) + 0.3 * np.ptp(xy, axis=0)
    halo = np.argsort(np.hypot(*(xy - centre).T))[:7]
    far = np.argsort(-np.hypot(*(xy - centre).T))
    spike, dip = far[0], far[40]
    for element, rise in (("Au", 1.0), ("As", 1.0), ("Cu", 0.8), ("Pb", 0.6)):
        frame.loc[halo, f"{element}_ppm"] *= np.exp(rise)
    frame.loc[spike, "Au_ppm"] *= np.exp(3.0)
    frame.loc[dip, "Au_ppm"] *= np.exp(-3.0)
    return prepared_from_frame(frame), halo, spike, dip


COMMODITY = dict(generations=2, ensemble=1, epochs=12, patience=4, neighbours=12, d_model=16, heads=2,
                 batch_size=64, device="cpu", seed=0, commodity="Au")


@pytest.fixture(scope="module")
def halo_fit():
    prepared, halo, spike, dip = _halo_survey()
    return make_detector("transformer", **COMMODITY).fit(prepared), prepared, halo, spike, dip


def test_a_planted_halo_ranks_at_the_top_and_a_lone_spike_or_a_depletion_do_not(halo_fit):
    detector, prepared, halo, spike, dip = halo_fit
    scores = detector.score(prepared)
    np.testing.assert_array_equal(scores, detector.score_details(prepared)["commodity_enrichment"])
    rank = np.argsort(np.argsort(-scores))  # 0 = top
    assert rank[halo].max() < 12, rank[halo]  # seeds 0-2: the 7 halo samples are within the top 9
    assert rank[spike] > rank[halo].max() and rank[dip] > rank[halo].max()  # seeds 0-2: spike 20-27, dip 41-331
    assert detector.history_["suite_predicted"][0] == "Au"
    assert {"generation_0_commodity", "generation_1_commodity"} <= set(detector.score_details(prepared))


def test_the_score_rises_with_the_samples_own_suite_assays_and_never_sees_them(halo_fit):
    detector, prepared, halo, _, _ = halo_fit
    au = prepared.elements.index("Au")
    quiet = int(np.argmin(detector.score(prepared)))
    before = detector.score(prepared)[quiet]
    background = prepared.values[quiet, au] - (detector.element_residuals(prepared)[quiet, au]
                                               * detector.residual_scale_[au] + detector.residual_center_[au])
    raised = prepared.subset(np.arange(len(prepared)))
    raised.values = raised.values.copy()
    raised.values[quiet, au] += 2.0
    after_residuals = detector.element_residuals(raised)
    assert detector.score(raised)[quiet] > before  # not a function of positions alone
    # the background of Au at the sample did not move: the model never sees the sample's own Au
    after_background = raised.values[quiet, au] - (after_residuals[quiet, au] * detector.residual_scale_[au]
                                                   + detector.residual_center_[au])
    assert after_background == pytest.approx(background, abs=1e-4)


def test_a_commodity_model_saves_and_loads_identically(halo_fit, tmp_path):
    detector, prepared, _, _, _ = halo_fit
    detector.save(tmp_path / "model")
    loaded = Detector.load(tmp_path / "model")
    assert loaded.commodity == "Au" and loaded.suite_ == detector.suite_
    np.testing.assert_array_equal(loaded.score(prepared), detector.score(prepared))
    np.testing.assert_array_equal(loaded.element_residuals(prepared), detector.element_residuals(prepared))
    # new samples are standardised with the spread fixed at fitting, saved with the weights
    np.testing.assert_array_equal(loaded.residual_scale_, detector.residual_scale_)


def test_command_line_options_are_derived_from_the_constructor_defaults():
    import argparse

    from core.anomaly.transformer import TransformerDetector

    parser = argparse.ArgumentParser()
    TransformerDetector.add_arguments(parser)
    assert TransformerDetector.from_args(parser.parse_args([])).get_params() == TransformerDetector().get_params()
    args = parser.parse_args(["--guard", "3", "--include-colocated", "--neighbours", "9"])
    args.commodity, args.threads = "Li", 0  # shared options of the commands (--commodity, --threads)
    detector = TransformerDetector.from_args(args)
    assert (detector.guard, detector.exclude_colocated, detector.threads, detector.neighbours) == (3, False, None, 9)
    assert detector.commodity == "Li" and detector._main_score() == "commodity"
    assert f"default {TransformerDetector().guard}" in parser.format_help()
    with pytest.raises(InvalidInputError, match="commodity"):
        make_detector("transformer", main_score="commodity")
    with pytest.raises(InvalidInputError, match="pathfinder set"):
        make_detector("transformer", commodity="Unobtainium")
