"""The engine used from Python (a notebook, a QGIS task): errors, warnings, threads, rasters, scores."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.anomaly import make_detector
from core.errors import (
    CrsMismatchError,
    GeoAnomalyWarning,
    InvalidInputError,
    NotFittedError,
    OutputNotWritableError,
)
from core.preprocess import PreparedSamples, Preprocessor
from core.progress import Progress, SilentProgress

REPO = Path(__file__).resolve().parents[1]


def _samples(n: int = 60, p: int = 5, seed: int = 0) -> PreparedSamples:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    return PreparedSamples(values.astype(np.float32), rng.uniform(0, 5000, (n, 2)), [f"E{j}" for j in range(p)])


# -- errors ---------------------------------------------------------------------------------------------------
def test_domain_errors_are_the_matching_builtins():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert issubclass(OutputNotWritableError, OSError)
    assert issubclass(CrsMismatchError, ValueError)


@pytest.mark.parametrize("use", [
    lambda: make_detector("knn").score(_samples()),
    lambda: Preprocessor().elements_,
])
def test_not_fitted_is_a_not_fitted_error(use):
    with pytest.raises(NotFittedError, match="not fitted"):
        use()


def test_a_not_fitted_detector_at_the_command_line_exits_2_with_one_line(capsys):
    command = types.SimpleNamespace(run=lambda args, progress: make_detector("pca").score(_samples()))
    args = types.SimpleNamespace(debug=False)
    code = cli._run(command, args, Progress(mode="plain"))
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoanomaly: error:") and "not fitted" in lines[0]
    assert "internal error" not in lines[0] and captured.out == ""


def test_library_warnings_reach_python_without_a_progress_object():
    with pytest.warns(GeoAnomalyWarning, match="twice"):
        SilentProgress().warn("one sample compiled twice")



def test_the_command_line_shows_a_library_warning_once(tmp_path):
    import subprocess
    import sys

    # A separate process, as the plugin runs it: pytest would otherwise catch the warnings module's copy.
    samples = REPO / "resources" / "sample_data" / "samples.csv"  # real GSWA data, with twinned samples
    argv = ["detect", "--method", "pca", "--samples", str(samples), "--elements", "Au_ppm,As_ppm,Cu_ppm,Pb_ppm",
            "--out", str(tmp_path / "run"), "--progress", "plain"]
    done = subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("probably one sample compiled twice") == 1, done.stderr


# -- outputs ----------------------------------------------------------------------------------------------------
def test_outputs_can_be_written_from_a_worker_thread(tmp_path):
    import signal
    import threading

    from core.io.atomic import atomic_output_dir

    before = signal.getsignal(signal.SIGTERM)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with atomic_output_dir(tmp_path / "out") as staging:
                (staging / "scores.csv").write_text("id,score\n1,0.5\n")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            failures.append(exc)

    worker = threading.Thread(target=write)
    worker.start()
    worker.join()
    assert not failures, failures
    assert (tmp_path / "out" / "scores.csv").read_text().startswith("id,score")
    assert not list(tmp_path.glob(".out.partial-*"))
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unwritable_output_is_an_oserror(tmp_path):
    from core.io.atomic import atomic_output_dir

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="not a folder"), atomic_output_dir(blocker):
        pass


# -- options declared once ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parsers():
    parser, _ = cli.build_parser()
    return parser


def test_old_option_spellings_still_parse_but_are_hidden(parsers, capsys):
    base = ["--samples", "s.csv", "--out", "o"]
    args = parsers.parse_args(["detect", "--method", "knn", *base, "--torch-threads", "3"])
    assert args.threads == 3
    assert parsers.parse_args(["detect", "--method", "knn", *base]).threads == 1
    args = parsers.parse_args(["geohgan", "--raster", "r.tif", "--out", "o", "--batch", "8"])
    assert args.batch_size == 8
    assert parsers.parse_args(["geohgan", "--raster", "r.tif", "--out", "o", "--batch-size", "9"]).batch_size == 9
    with pytest.raises(SystemExit):
        parsers.parse_args(["geohgan", "--help"])
    shown = capsys.readouterr().out
    assert "--batch-size" in shown and "--threads" in shown
    assert "--batch " not in shown and "--torch-threads" not in shown


def test_method_choices_come_from_the_detector_registry(parsers):
    from core.anomaly import available_detectors

    detect = next(a for a in parsers._subparsers._group_actions[0].choices["detect"]._actions
                  if "--method" in a.option_strings)
    assert detect.metavar == "{" + ",".join(available_detectors()) + "}"


@pytest.mark.parametrize(("method", "options", "expected"), [
    ("isolation_forest", ["--iforest-trees", "50", "--seed", "4"], {"n_trees": 50, "seed": 4}),
    ("ocsvm", ["--ocsvm-nu", "0.2", "--ocsvm-gamma", "0.5"], {"nu": 0.2, "gamma": 0.5}),
    ("pca", ["--pca-variance", "0.8"], {"variance": 0.8}),
    ("knn", ["--knn-k", "7"], {"k": 7}),
])
def test_detectors_keep_their_command_line_options(parsers, method, options, expected):
    from core.anomaly import detector_class

    args = parsers.parse_args(["detect", "--method", method, "--samples", "s.csv", "--out", "o", *options])
    params = detector_class(method).from_args(args).get_params()
    assert {k: params[k] for k in expected} == expected


def test_cpu_threads_restores_the_thread_count_even_on_failure():
    import torch

    from core.device import cpu_threads

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with pytest.raises(ZeroDivisionError), cpu_threads("cpu", target):
        assert torch.get_num_threads() == target
        1 / 0  # noqa: B018
    assert torch.get_num_threads() == before


def test_cpu_threads_can_limit_numpys_blas_too_and_restores_it():
    from threadpoolctl import threadpool_info

    from core.device import cpu_threads

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    with cpu_threads("cpu", 1, blas=True):
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_geohgan_leaves_the_callers_thread_count_as_it_was():
    import torch

    from core.anomaly.geohgan.detector import GeoHganDetector

    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    torch.set_num_threads(wanted)
    try:
        values = np.random.default_rng(0).uniform(1, 2, size=(3, 16, 16)).astype(np.float32)
        detector = GeoHganDetector(device="cpu", threads=1 if wanted == 2 else 2, warmup_epochs=1, epochs=1,
                                   encoder_epochs=1, tiles_per_epoch=16, batch=8)
        detector.fit(values).score(values)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


# -- scores that do not depend on their neighbours in a call -------------------------------------------------------
CLASSICAL_NAMES = ("mahalanobis", "isolation_forest", "knn", "ocsvm", "pca")


@pytest.mark.parametrize("name", CLASSICAL_NAMES)
def test_a_sample_scores_the_same_whoever_is_scored_with_it(name):
    samples = _samples(n=50)
    detector = make_detector(name).fit(samples)
    everyone = detector.score(samples)
    np.testing.assert_allclose(detector.decision_scores_, everyone, rtol=1e-12)
    keep = np.delete(np.arange(len(samples)), 7)
    np.testing.assert_allclose(detector.score(samples.subset(keep)), everyone[keep], rtol=1e-12)
    np.testing.assert_allclose(detector.score(samples.subset(np.array([0]))), everyone[:1], rtol=1e-12)


def test_knn_leaves_a_training_sample_itself_out_but_counts_its_twin():
    samples = _samples(n=40)
    values = samples.values.copy()
    values[1] = values[0]  # one sample compiled twice
    twins = PreparedSamples(values, samples.xy, samples.elements)
    detector = make_detector("knn", k=1).fit(twins)
    assert detector.score(twins.subset(np.array([0])))[0] == 0.0  # its twin is another sample
    assert detector.score(twins.subset(np.array([2])))[0] > 0.0  # not its own neighbour


def test_training_scores_survive_save_and_load(tmp_path):
    from core.anomaly import Detector

    samples = _samples()
    detector = make_detector("knn").fit(samples)
    detector.save(tmp_path / "model")
    np.testing.assert_array_equal(Detector.load(tmp_path / "model").decision_scores_, detector.decision_scores_)


def test_the_raster_model_follows_the_written_raster_interface():
    import inspect

    from core.anomaly import RasterDetector
    from core.anomaly.geohgan.detector import GeoHganDetector

    # Checked on the class: an unfitted model's band_names raises NotFittedError (an AttributeError, as in
    # scikit-learn), which isinstance() on a Protocol would read as a missing attribute.
    for name in ("fit", "score", "save", "load", "band_names"):
        assert hasattr(GeoHganDetector, name), name
    wanted = list(inspect.signature(RasterDetector.fit).parameters)
    assert list(inspect.signature(GeoHganDetector.fit).parameters)[:len(wanted)] == wanted
    assert list(inspect.signature(GeoHganDetector.score).parameters)[:3] == ["self", "values", "valid"]
    with pytest.raises(NotFittedError):
        GeoHganDetector().band_names  # noqa: B018


# -- raster masks -------------------------------------------------------------------------------------------------
def _masked_geotiff(path):
    """A float GeoTIFF with no nodata value whose no-data cells are marked by an internal mask band only."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(1)
    values = rng.uniform(1, 2, size=(2, 40, 30)).astype(np.float32)
    values[:, :10, :] = 0.0  # what the cells under the mask hold: a real-looking number
    keep = np.ones((40, 30), dtype=bool)
    keep[:10, :] = False
    transform = Affine(100.0, 0, 500_000.0, 0, -100.0, 6_500_000.0)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
        path, "w", driver="GTiff", width=30, height=40, count=2, dtype="float32", crs="EPSG:32750",
        transform=transform,
    ) as dst:
        dst.write(values)
        dst.write_mask(keep.astype(np.uint8) * 255)  # one mask for the dataset (GDAL_MF_PER_DATASET)
    with rasterio.open(path) as src:
        assert src.nodata is None and src.dataset_mask().min() == 0  # the fixture is what it claims to be
    return keep, transform


def test_a_geotiff_with_an_internal_mask_and_no_nodata_reads_as_masked(tmp_path):
    from core.io.rasters import iter_windows, read_raster_stack, sample_raster_at

    path = tmp_path / "masked.tif"
    keep, transform = _masked_geotiff(path)
    stack = read_raster_stack(path)
    np.testing.assert_array_equal(stack.valid_mask, keep)
    assert np.isnan(stack.values[:, ~keep]).all() and np.isfinite(stack.values[:, keep]).all()
    blocks = list(iter_windows(path, block_rows=16))
    np.testing.assert_array_equal(np.isfinite(np.concatenate([b.values for b in blocks], axis=1)).all(axis=0), keep)
    inside, masked = transform * (5.5, 20.5), transform * (5.5, 2.5)
    sampled = sample_raster_at(path, np.array([inside, masked]))
    assert np.isfinite(sampled[0]).all() and np.isnan(sampled[1]).all()


def test_prospectivity_evidence_and_cell_evaluation_leave_masked_cells_out(tmp_path):
    from core.evaluate.auc import cell_auc
    from core.io.rasters import read_raster_stack
    from core.prospectivity.stack import load_evidence

    path = tmp_path / "masked.tif"
    keep, transform = _masked_geotiff(path)
    assert load_evidence([path]).n_cells == int(keep.sum())
    # A deposit on a masked cell is not scored as if the cell held a real value.
    stack = read_raster_stack(path)
    deposits = np.array([transform * (5.5, 2.5), transform * (12.5, 30.5)])
    result = cell_auc(stack.values[0], stack.transform, deposits)
    assert result.n_used == 1


def test_windows_carry_their_own_transform(tmp_path):
    from affine import Affine

    from core.io.rasters import iter_windows

    path = tmp_path / "masked.tif"
    _, transform = _masked_geotiff(path)
    for block in iter_windows(path, block_rows=16):
        assert block.transform == transform * Affine.translation(0, block.window.row_off)


def test_a_masked_array_is_written_with_its_mask(tmp_path):
    from affine import Affine

    from core.io.rasters import read_raster_stack, write_raster

    values = np.ma.masked_array(np.ones((5, 4), dtype=np.float32), mask=np.eye(5, 4, dtype=bool))
    path = write_raster(tmp_path / "out.tif", values, Affine(10, 0, 0, 0, -10, 50), 32750)
    np.testing.assert_array_equal(read_raster_stack(path).valid_mask, ~np.eye(5, 4, dtype=bool))


# -- one grid for every raster of a run ------------------------------------------------------------------------------
def test_rasters_made_with_like_share_the_templates_grid(tmp_path, synthetic_csv):
    import rasterio
    from affine import Affine

    from core.io.rasters import write_raster

    samples, _ = synthetic_csv
    # A template that fits nothing the samples would choose: odd origin, 300 m cells, a smaller extent.
    template = write_raster(tmp_path / "template.tif", np.zeros((25, 31), dtype=np.float32),
                            Affine(300.0, 0, 500_130.0, 0, -300.0, 6_507_070.0), "EPSG:32750")
    common = ["--samples", str(samples), "--crs", "EPSG:32750", "--like", str(template), "--progress", "none"]
    assert cli.main(["grid", "--out", str(tmp_path / "grid"), "--fields", "Cu_ppm", *common]) == 0
    assert cli.main(["detect", "--method", "pca", "--out", str(tmp_path / "det"), *common]) == 0
    with rasterio.open(template) as ref:
        for made in (tmp_path / "grid" / "grid.tif", tmp_path / "det" / "anomaly_score.tif"):
            with rasterio.open(made) as out:
                assert (out.transform, out.shape, out.crs) == (ref.transform, ref.shape, ref.crs), made
                assert np.isfinite(out.read(1, masked=True).filled(np.nan)).any()


def test_like_refuses_a_different_cell_or_work_crs(tmp_path, synthetic_csv, capsys):
    from affine import Affine

    from core.io.rasters import write_raster

    samples, _ = synthetic_csv
    template = write_raster(tmp_path / "template.tif", np.zeros((5, 5), dtype=np.float32),
                            Affine(300.0, 0, 500_000.0, 0, -300.0, 6_501_500.0), "EPSG:32750")
    common = ["grid", "--samples", str(samples), "--crs", "EPSG:32750", "--like", str(template),
              "--fields", "Cu_ppm", "--out", str(tmp_path / "g")]
    assert cli.main([*common, "--cell", "250"]) == 2
    assert cli.main([*common, "--work-crs", "EPSG:32751"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("geoanomaly: error")]
    assert "--cell 250" in errors[0] and "--work-crs EPSG:32751" in errors[1]
    assert not (tmp_path / "g").exists()
