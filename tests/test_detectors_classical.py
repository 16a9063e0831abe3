"""Classical detectors: one API, planted outliers ranked first, save/load gives identical scores."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.anomaly import Detector, available_detectors, make_detector
from core.anomaly.classical import CLASSICAL
from core.errors import InvalidInputError
from core.preprocess import PreparedSamples


def _samples(n=300, p=6, outliers=10, seed=0):
    rng = np.random.default_rng(seed)
    # A correlated background, as assays are: two geological factors of well-separated variance plus small
    # element noise of distinct sizes. The covariance has distinct eigenvalues, so which components PCA keeps
    # does not depend on rounding (equal eigenvalues made the pca case depend on the BLAS kernel).
    loadings = np.array([np.linspace(1.5, 0.8, p), np.linspace(-0.6, 0.9, p)])
    factors = rng.normal(size=(n, 2)) * np.array([1.5, 1.0])
    values = factors @ loadings + rng.normal(size=(n, p)) * np.linspace(0.15, 0.3, p)
    planted = np.zeros(n, bool)
    planted[rng.choice(n, outliers, replace=False)] = True
    values[planted] += rng.choice([-1, 1], size=(outliers, p)) * 4.0
    xy = rng.uniform(0, 10_000, size=(n, 2))
    return PreparedSamples(values.astype(np.float32), xy, [f"E{j}" for j in range(p)]), planted


def test_all_classical_detectors_are_registered():
    assert set(CLASSICAL) <= set(available_detectors())


@pytest.mark.parametrize("name", CLASSICAL)
def test_planted_outliers_score_highest(name):
    samples, planted = _samples()
    scores = make_detector(name).fit(samples).score(samples)
    assert scores.shape == (len(samples),)
    assert roc_auc_score(planted, scores) > 0.9


@pytest.mark.parametrize("name", CLASSICAL)
def test_save_and_load_give_identical_scores(tmp_path, name):
    samples, _ = _samples(seed=3)
    detector = make_detector(name).fit(samples)
    detector.save(tmp_path / "model")
    loaded = Detector.load(tmp_path / "model")
    assert type(loaded) is type(detector)
    np.testing.assert_array_equal(loaded.score(samples), detector.score(samples))
    # Nothing pickled: every array file loads with pickling disabled.
    for path in (tmp_path / "model").glob("*.npz"):
        np.load(path, allow_pickle=False).close()


def test_knn_leaves_the_sample_itself_out():
    samples, _ = _samples(n=50)
    det = make_detector("knn", k=1).fit(samples)
    assert np.all(det.score(samples) > 0)


def test_elements_must_match_the_fitted_model():
    samples, _ = _samples()
    det = make_detector("pca").fit(samples)
    other = PreparedSamples(samples.values, samples.xy, list(reversed(samples.elements)))
    with pytest.raises(InvalidInputError, match="differ"):
        det.score(other)


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="unknown detector 'foo'"):
        make_detector("foo")
