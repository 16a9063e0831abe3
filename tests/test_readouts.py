"""Commodity readouts: enrichment, not depletion; halos, not spikes; each location counted once."""

import numpy as np
import pytest

from core.anomaly.readouts import (
    gridded_suite_enrichment,
    mahalanobis_residuals,
    sample_enrichment,
    suite_enrichment,
)
from core.errors import InvalidInputError
from core.preprocess.elements import commodity_suite

ELEMENTS = ["Au", "As", "Sb", "Fe", "Al"]
SUITE = commodity_suite("Au", available=ELEMENTS)


def _field(seed=0, side=20, spacing=500.0):
    """Residuals on a jittered grid (metres): a smooth regional swell of ±1 sd in every element, plus noise."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()]).astype(float) * spacing
    xy += rng.normal(0, spacing * 0.1, xy.shape)
    smooth = np.sin(xy[:, 0] / (side * spacing) * 2 * np.pi) * np.cos(xy[:, 1] / (side * spacing) * np.pi)
    residuals = smooth[:, None] + rng.normal(0, 0.5, (len(xy), len(ELEMENTS)))
    return xy, residuals


def _nearest(xy, point, k):
    return np.argsort(np.hypot(*(xy - point).T))[:k]


def test_halo_ranks_above_an_isolated_spike_and_a_depletion():
    xy, residuals = _field()
    halo = _nearest(xy, (2500.0, 2500.0), 7)            # seven adjacent samples moderately enriched in the suite
    residuals[np.ix_(halo, [0, 1, 2])] += 2.5
    spike = _nearest(xy, (7500.0, 7500.0), 1)           # one sample, far more enriched
    residuals[np.ix_(spike, [0, 1, 2])] += 8.0
    depletion = _nearest(xy, (2500.0, 7500.0), 7)       # an equally large halo of depletion
    residuals[np.ix_(depletion, [0, 1, 2])] -= 2.5
    score = suite_enrichment(residuals, ELEMENTS, SUITE, xy)
    top = set(np.argsort(-score)[:7])
    assert top == set(halo)
    assert score[spike[0]] < np.min(score[halo])
    assert np.max(score[depletion]) < np.percentile(score, 75)


def test_twins_add_no_halo_support():
    xy, residuals = _field(seed=1)
    centre = _nearest(xy, (5000.0, 5000.0), 1)[0]
    residuals[centre, :3] = 3.0
    groups = np.arange(len(xy))
    base = suite_enrichment(residuals, ELEMENTS, SUITE, xy, groups)
    # The enriched sample compiled three more times at its own location.
    xy2 = np.vstack([xy, np.repeat(xy[[centre]], 3, axis=0)])
    res2 = np.vstack([residuals, np.repeat(residuals[[centre]], 3, axis=0)])
    groups2 = np.concatenate([groups, np.full(3, groups[centre])])
    twinned = suite_enrichment(res2, ELEMENTS, SUITE, xy2, groups2)
    np.testing.assert_allclose(twinned[: len(xy)], base)
    np.testing.assert_allclose(twinned[len(xy):], base[centre])
    # Groups computed from positions when omitted give the same answer.
    np.testing.assert_allclose(suite_enrichment(res2, ELEMENTS, SUITE, xy2), twinned)


def test_score_rises_with_the_samples_own_suite_assays():
    xy, residuals = _field(seed=2)
    before = suite_enrichment(residuals, ELEMENTS, SUITE, xy)
    raised = residuals.copy()
    raised[10, 0] += 1.5
    after = suite_enrichment(raised, ELEMENTS, SUITE, xy)
    assert after[10] > before[10]
    # Elements outside the suite do not move it.
    other = residuals.copy()
    other[10, 3:] += 5.0
    np.testing.assert_allclose(suite_enrichment(other, ELEMENTS, SUITE, xy), before)


def test_sample_enrichment_by_hand():
    residuals = np.array([[2.0, -1.0, 10.0, 9.0, 9.0]])
    # Au weighs 1, As and Sb 1/2 each; negatives count 0; Sb capped at 4; Fe, Al outside the suite.
    expected = (1.0 * 2.0 + 0.5 * 0.0 + 0.5 * 4.0) / 2.0
    assert sample_enrichment(residuals, ELEMENTS, SUITE, cap=4.0)[0] == pytest.approx(expected)


def test_suite_absent_from_the_assays_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="none of the suite"):
        sample_enrichment(np.zeros((3, 2)), ["Fe", "Al"], SUITE)


def test_mahalanobis_residual_sign_is_the_elements_excess():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    X[:, 1] = X[:, 0] + 0.1 * rng.normal(size=200)   # element 1 follows element 0
    X[5, 1] += 3.0                                    # sample 5: element 1 above what element 0 predicts
    cov = np.cov(X.T)
    residuals = mahalanobis_residuals(X, X.mean(axis=0), np.linalg.inv(cov))
    assert residuals[5, 1] > 5 and residuals[5, 1] == residuals[:, 1].max()


def test_gridded_readout_keeps_nodata_and_rewards_a_patch():
    bands = np.zeros((len(ELEMENTS), 30, 30))
    bands[:3, 10:15, 10:15] = 2.0          # a 5x5-cell patch of suite enrichment
    bands[:3, 25, 25] = 8.0                # one hot cell
    bands[:, 0, :] = np.nan                # a row without data
    out = gridded_suite_enrichment(bands, ELEMENTS, SUITE, radius_cells=2.0)
    assert np.all(np.isnan(out[0]))
    assert out[12, 12] > out[25, 25]


def test_suite_masked_residuals_are_not_explained_by_the_suite_itself():
    rng = np.random.default_rng(1)
    host, sulphide = rng.normal(size=(2, 400))
    noise = 0.1 * rng.normal(size=(4, 400))
    sulphide[:10] += 3.0                 # ten samples: Au and As rise together, the host rocks do not change
    X = np.column_stack([0.3 * host + sulphide + noise[0], 0.3 * host + sulphide + noise[1],   # Au, As
                         host + noise[2], host + noise[3]])                                     # Fe, Al
    precision = np.linalg.inv(np.cov(X[10:].T))
    location = X[10:].mean(axis=0)
    plain = mahalanobis_residuals(X, location, precision)
    masked = mahalanobis_residuals(X, location, precision, np.array([True, True, False, False]))
    # Regressed on each other, Au and As explain each other away; regressed on Fe and Al only, they stand out.
    assert masked[:10, :2].mean() > 2 and masked[:10, :2].mean() > 3 * abs(plain[:10, :2].mean())
    assert np.all(masked[:, 2:] == 0)


def test_pca_halo_reconstructs_the_suite_from_the_other_elements_only():
    from core.anomaly import make_detector
    from core.preprocess.pipeline import PreparedSamples

    rng = np.random.default_rng(2)
    host, sulphide = rng.normal(size=(2, 300))
    sulphide[:10] += 3.0                 # the suite rises together: a main component of the survey
    noise = 0.1 * rng.normal(size=(5, 300))
    X = np.column_stack([sulphide + noise[0], sulphide + noise[1], sulphide + noise[2],
                         host + noise[3], -host + noise[4]])
    samples = PreparedSamples(X.astype(np.float32), np.zeros((300, 2)), ELEMENTS)
    pca = make_detector("pca").fit(samples)
    plain = pca.element_residuals(samples)
    masked = pca.element_residuals(samples, suite=SUITE)
    assert masked[:10, :3].mean() > 2 and masked[:10, :3].mean() > 3 * abs(plain[:10, :3].mean())
    assert np.all(masked[:, 3:] == 0)
