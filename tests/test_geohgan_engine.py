"""Geo-Hgan engine: tiles, normalisation, networks, scoring (windowed = whole), AnomFilter, save/load, quality."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from core.anomaly.geohgan import SCORE_NAMES, GeoHganDetector, anom_filter, tukey_upper_fence
from core.anomaly.geohgan.dataset import TileDataset
from core.anomaly.geohgan.model import GeoHganNetworks
from core.anomaly.geohgan.normalise import BandNormaliser
from core.anomaly.geohgan.tiles import TileLayout, axis_origins, gather_tiles, valid_fraction
from core.anomaly.geohgan.trainer import gradient_penalty
from core.errors import InvalidInputError
from tests.geohgan_fixtures import planted_raster, trained_detector


@pytest.fixture(scope="module")
def planted():
    return planted_raster(seed=0)


@pytest.fixture(scope="module")
def fitted(planted):
    return trained_detector(planted, seed=0)


@pytest.fixture(scope="module")
def whole_scores(fitted, planted):
    return fitted.score(planted.values)


# -- tiles -----------------------------------------------------------------------


def test_tile_origins_cover_every_cell_including_the_far_edge():
    assert axis_origins(10, 4, 3).tolist() == [0, 3, 6]
    assert axis_origins(11, 4, 3).tolist() == [0, 3, 6, 7]  # one flush with the edge
    layout = TileLayout(11, 9, 4, 2)
    covered = np.zeros((11, 9), dtype=int)
    for r, c in layout.origins():
        covered[r:r + 4, c:c + 4] += 1
    assert covered.min() >= 1


def test_tile_layout_rejects_impossible_settings():
    with pytest.raises(InvalidInputError, match="smaller than one tile"):
        TileLayout(5, 20, 8, 4)
    with pytest.raises(InvalidInputError, match="stride"):
        TileLayout(20, 20, 8, 9)


def test_gather_tiles_keeps_band_order_and_masks():
    values = np.arange(2 * 6 * 5, dtype=np.float32).reshape(2, 6, 5)
    valid = np.ones((6, 5), dtype=bool)
    valid[0, 0] = False
    tiles, masks = gather_tiles(values, valid, np.array([[0, 0], [2, 1]]), 3)
    assert tiles.shape == (2, 2, 3, 3) and masks.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(tiles[1, 1], values[1, 2:5, 1:4])
    assert masks[0, 0, 0, 0] == 0 and masks[1].min() == 1
    np.testing.assert_allclose(valid_fraction(valid, np.array([[0, 0], [2, 1]]), 3), [8 / 9, 1.0])


def test_training_tiles_skip_tiles_that_are_mostly_nodata():
    valid = np.ones((16, 16), dtype=bool)
    valid[:, :8] = False  # left half outside the survey
    data = TileDataset.for_training(np.zeros((2, 16, 16), np.float32), valid, tile=8, stride=4, min_valid=0.5)
    assert len(data) > 0
    assert (data.origins[:, 1] >= 4).all()  # tiles with under half their cells valid are gone
    tile, mask = data[0]
    assert tile.shape == (2, 8, 8) and mask.shape == (1, 8, 8)


# -- normalisation ---------------------------------------------------------------


def test_normaliser_is_fitted_on_valid_cells_only_and_matches_tanh_range():
    rng = np.random.default_rng(0)
    values = np.exp(rng.normal(size=(3, 20, 20))).astype(np.float32)
    valid = np.ones((20, 20), dtype=bool)
    valid[:5] = False
    values[:, :5] = 1e9  # huge values under the nodata mask must not move the fit
    norm = BandNormaliser("log").fit(values, valid, ["Au", "As", "Cu"])
    reference = BandNormaliser("log").fit(values[:, 5:], valid[5:], ["Au", "As", "Cu"])
    np.testing.assert_allclose(norm.low_, reference.low_)
    out = norm.apply(values, valid)
    assert out.dtype == np.float32
    assert out[:, valid].min() >= -1.0 and out[:, valid].max() <= 1.0
    assert (out[:, ~valid] == 0).all()
    again = BandNormaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.apply(values, valid), out)


def test_normaliser_auto_transform_and_band_named_errors():
    values = np.stack([np.linspace(1, 2, 100), np.linspace(-1, 1, 100)]).reshape(2, 10, 10)
    valid = np.ones((10, 10), dtype=bool)
    assert BandNormaliser("auto").fit(values, valid).transform == "none"
    assert BandNormaliser("auto").fit(np.abs(values) + 1, valid).transform == "log"
    with pytest.raises(InvalidInputError, match="Cu"):
        BandNormaliser("log").fit(values, valid, ["Au", "Cu"])
    flat = np.ones((2, 10, 10))
    flat[0] = np.arange(100).reshape(10, 10) + 1
    with pytest.raises(InvalidInputError, match="band_2"):
        BandNormaliser("log").fit(flat, valid)


# -- networks --------------------------------------------------------------------


@pytest.mark.parametrize("tile", [4, 7, 8, 16])
def test_networks_work_at_native_tile_size(tile):
    nets = GeoHganNetworks(bands=5, tile=tile, latent=16)
    x = torch.rand(3, 5, tile, tile) * 2 - 1
    code = nets.encoder(x)
    assert code.shape == (3, 16)
    out = nets.generator(code)
    assert out.shape == x.shape and out.abs().max() <= 1.0
    assert nets.autoencoder(x).shape == x.shape
    assert nets.critic(x).shape == (3, 1)
    assert nets.critic.features(x).shape == (3, nets.critic.feature_size)
    assert nets.latent_discriminator(nets.latent_generator(torch.randn(3, 16))).shape == (3, 1)


def test_gradient_penalty_draws_one_weight_per_tile():
    # A critic linear in its input has the same gradient everywhere: the penalty
    # is then exactly (||w|| - 1)^2 whatever the interpolation weights.
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.fill_(0.5)
    penalty = gradient_penalty(critic, torch.rand(5, 2, 4, 4), torch.rand(5, 2, 4, 4))
    expected = (0.5 * np.sqrt(32) - 1) ** 2
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)
    real, fake = torch.zeros(4, 3, 2, 2), torch.ones(4, 3, 2, 2)
    probe = _Recorder()
    gradient_penalty(probe, real, fake)
    seen = probe.inputs
    # Within one tile every channel and cell has the same weight; tiles differ.
    assert torch.allclose(seen, seen[:, :1, :1, :1].expand_as(seen))
    assert seen[:, 0, 0, 0].unique().numel() == 4


class _Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.inputs = x.detach().clone()
        return (x * self.w).flatten(1).sum(dim=1, keepdim=True)


# -- scoring ---------------------------------------------------------------------


def test_scores_have_the_raster_shape_and_nodata_propagates(planted, whole_scores):
    valid = np.isfinite(planted.values).all(axis=0)
    assert whole_scores.shape == (3, 64, 64) and whole_scores.dtype == np.float32
    assert np.isnan(whole_scores[:, ~valid]).all()
    assert np.isfinite(whole_scores[:, valid]).all()
    assert (whole_scores[:, valid] >= 0).all()


def test_one_nodata_band_makes_the_cell_nodata(fitted, planted):
    values = planted.values.copy()
    values[2, 30:34, 30:34] = np.nan  # one element missing in a patch
    scores = fitted.score(values)
    assert np.isnan(scores[:, 30:34, 30:34]).all()
    assert np.isfinite(scores[:, 29, 29]).all()


def test_windowed_scoring_equals_whole_raster_scoring(fitted, planted, whole_scores):
    for window_rows in (9, 13, 40):
        windowed = fitted.score(planted.values, window_rows=window_rows)
        assert np.array_equal(np.isnan(windowed), np.isnan(whole_scores))
        np.testing.assert_allclose(windowed, whole_scores, rtol=1e-5, atol=1e-7)


def test_a_finer_scoring_stride_still_equals_in_windows(fitted, planted, whole_scores):
    fitted.config.score_stride = 2
    try:
        fine = fitted.score(planted.values)
        windowed = fitted.score(planted.values, window_rows=11)
    finally:
        fitted.config.score_stride = None
    np.testing.assert_allclose(windowed, fine, rtol=1e-5, atol=1e-7)
    assert np.array_equal(np.isnan(fine), np.isnan(whole_scores))
    # Stride 4 gives one value per 4 x 4 block; stride 2 tells the cells of a block apart.
    block = (slice(32, 36), slice(40, 44))
    assert np.unique(whole_scores[1][block]).size == 1
    assert np.unique(fine[1][block]).size > 1


def test_planted_anomalies_rank_at_the_top(planted, whole_scores):
    valid = np.isfinite(planted.values).all(axis=0)
    aucs = {name: roc_auc_score(planted.anomalous[valid], whole_scores[i][valid])
            for i, name in enumerate(SCORE_NAMES)}
    assert aucs["anomaly_score"] > 0.9, aucs
    assert aucs["img_distance"] > 0.9, aucs


def test_scoring_is_deterministic_and_in_eval_mode(fitted, planted, whole_scores):
    again = fitted.score(planted.values)
    np.testing.assert_array_equal(again, whole_scores)
    assert not any(m.training for m in fitted.networks_.modules())


def test_save_and_load_round_trip(fitted, planted, whole_scores, tmp_path):
    fitted.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["band_names"] == planted.band_names and config["config"]["tile"] == 8
    loaded = GeoHganDetector.load(tmp_path / "model", device="cpu")
    np.testing.assert_allclose(loaded.score(planted.values), whole_scores, rtol=1e-6, atol=1e-7)
    with pytest.raises(InvalidInputError, match="6 bands"):
        loaded.score(planted.values[:4])


def test_load_rejects_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "config.json").write_text('{"kind": "something else"}')
    with pytest.raises(InvalidInputError, match="not a Geo-Hgan model"):
        GeoHganDetector.load(tmp_path)


def test_fit_rejects_single_band_and_all_nodata():
    with pytest.raises(InvalidInputError, match="at least two bands"):
        GeoHganDetector(device="cpu").fit(np.ones((1, 16, 16)))
    with pytest.raises(InvalidInputError, match="nodata"):
        GeoHganDetector(device="cpu").fit(np.full((3, 16, 16), np.nan))


def test_same_seed_same_model():
    raster = planted_raster(seed=3)
    settings = dict(device="cpu", seed=5, warmup_epochs=1, epochs=1, encoder_epochs=1, tiles_per_epoch=128)
    a = GeoHganDetector(**settings).fit(raster.values).score(raster.values)
    b = GeoHganDetector(**settings).fit(raster.values).score(raster.values)
    np.testing.assert_array_equal(a, b)


# -- AnomFilter ------------------------------------------------------------------


def test_tukey_fence_on_known_numbers():
    assert tukey_upper_fence(np.arange(1, 9)) == pytest.approx(6.25 + 1.5 * 3.5)
    assert np.isnan(tukey_upper_fence(np.array([])))


def test_anom_filter_keeps_outliers_close_to_the_target_mean():
    scores = np.r_[np.zeros(20), 10.0, 11.0, 12.0]
    features = np.r_[np.zeros((20, 2)), [[1.0, 0.0]], [[2.0, 0.0]], [[9.0, 0.0]]]
    result = anom_filter(scores, features, target_mean=np.zeros(2))
    assert result.above_fence.tolist() == [20, 21, 22]
    np.testing.assert_allclose(result.distance, [1.0, 2.0, 9.0])
    assert result.distance_cut == pytest.approx(5.0)
    assert result.selected.tolist() == [20, 21]  # the wildest one is dropped


def test_anom_filter_never_crashes_on_empty_input():
    empty = anom_filter(np.array([]), np.zeros((0, 3)))
    assert empty.selected.size == 0 and empty.to_dict()["tukey_fence"] is None
    flat = anom_filter(np.ones(10), np.zeros((10, 3)))  # nothing above the fence
    assert flat.selected.size == 0 and flat.above_fence.size == 0
