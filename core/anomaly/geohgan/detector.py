"""Geo-Hgan as one estimator on a (bands, rows, cols) raster: fit, score, save, load.

``GeoHganDetector(...).fit(values)`` normalises the bands, cuts sliding tiles
and runs both training steps; ``score(values)`` returns a (3, rows, cols)
float32 array (``img_distance``, ``anomaly_score``, ``z_distance``; NaN on
nodata). Training is unsupervised: every tile with enough data is used,
deposits never are (they only choose or evaluate a metric, elsewhere).

Defaults suit survey grids of 100-2000 cells a side: 8 x 8 tiles with a
stride of 4 (every cell covered by up to four tiles), latent 32, and epochs of
8192 tiles drawn from the raster (a random subset of a large grid, several
passes over a small one), so training costs the same on any grid size and a
100 x 100 grid gets as many generator steps as a 2000 x 2000 one.

Saved as a folder: ``config.json`` (every setting, band names, versions),
``weights.pt`` (a state_dict, loaded with ``torch.load(weights_only=True)``)
and ``normalisation.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from core.anomaly.geohgan.dataset import DEFAULT_MIN_VALID, TileDataset, TileSampleDataset
from core.anomaly.geohgan.model import GeoHganNetworks
from core.anomaly.geohgan.normalise import BandNormaliser
from core.anomaly.geohgan.scoring import SCORE_NAMES, RowWriter, residual_raster, score_raster
from core.anomaly.geohgan.trainer import TrainingSchedule, train_step1, train_step1_epochs, train_step2
from core.device import cpu_threads, describe_device, resolve_device
from core.errors import InvalidInputError, NotFittedError
from core.progress import Progress, SilentProgress
from core.runrecord import software_versions

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
NORMALISATION_FILE = "normalisation.json"
MODEL_KIND = "geohgan_raster_detector"


@dataclass
class GeoHganConfig:
    """Every setting of a Geo-Hgan model (saved as JSON with it)."""

    tile: int = 8
    stride: int = 4
    score_stride: int | None = None  # stride of the scored tiles (None: the training stride); 1 = no 4-cell blocks
    latent: int = 32
    width: int = 32
    latent_hidden: int = 128
    epochs: int = 15
    encoder_epochs: int = 15
    batch: int = 64
    tiles_per_epoch: int | None = 8192
    kappa: float = 1.0
    warmup_epochs: int = 3
    transform: str = "auto"
    min_valid: float = DEFAULT_MIN_VALID
    seed: int = 0

    def schedule(self) -> TrainingSchedule:
        return TrainingSchedule(epochs=self.epochs, encoder_epochs=self.encoder_epochs, batch=self.batch,
                                kappa=self.kappa, warmup_epochs=self.warmup_epochs,
                                tiles_per_epoch=self.tiles_per_epoch)

    def check(self) -> None:
        for name in ("tile", "stride", "latent", "width", "latent_hidden", "batch"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if min(self.epochs, self.encoder_epochs, self.warmup_epochs) < 0:
            raise InvalidInputError("epochs cannot be negative")
        if not 0.0 < self.min_valid <= 1.0:
            raise InvalidInputError(f"min_valid must be in (0, 1], got {self.min_valid}")


class GeoHganDetector:
    """Unsupervised Geo-Hgan anomaly detector for multi-band geochemical rasters."""

    def __init__(self, device: str = "auto", threads: int | None = 1, **settings) -> None:
        known = {f.name for f in fields(GeoHganConfig)}
        unknown = set(settings) - known
        if unknown:
            raise TypeError(f"unknown Geo-Hgan setting(s): {', '.join(sorted(unknown))}")
        self.config = GeoHganConfig(**settings)
        self.config.check()
        self.device = device
        self.threads = threads
        self.normaliser_: BandNormaliser | None = None
        self.networks_: GeoHganNetworks | None = None
        self.history_: dict = {}
        self.n_training_tiles_: int = 0

    # -- fitting -------------------------------------------------------------
    def fit(self, values: np.ndarray, valid: np.ndarray | None = None, band_names: list[str] | None = None,
            progress: Progress | None = None) -> GeoHganDetector:
        """Train on a (bands, rows, cols) array (NaN = nodata).

        Raises:
            InvalidInputError: not a (bands, rows, cols) array, fewer than two bands, no cell with data, a
                band constant on every cell, or no tile with enough cells with data.
        """
        progress = progress or SilentProgress()
        cfg = self.config
        values, valid = check_raster(values, valid, band_names)
        normaliser = BandNormaliser(cfg.transform).fit(values, valid, band_names, seed=cfg.seed)
        normalised = normaliser.apply(values, valid)
        data = TileDataset.for_training(normalised, valid, cfg.tile, cfg.stride, cfg.min_valid)
        return self._train(normaliser, data, values.shape[0], progress)

    def fit_tiles(self, tiles: np.ndarray, masks: np.ndarray, normaliser: BandNormaliser,
                  progress: Progress | None = None) -> GeoHganDetector:
        """Train on tiles cut beforehand (raw values, NaN = nodata) with a normaliser already fitted.

        For rasters read in windows (see :mod:`core.anomaly.geohgan.streaming`):
        ``tiles`` (n, bands, tile, tile), ``masks`` (n, tile, tile) bool.
        """
        masks = np.asarray(masks, dtype=bool)
        normalised = normaliser.apply(np.moveaxis(tiles, 1, 0), masks)
        data = TileSampleDataset(np.moveaxis(normalised, 0, 1), masks[:, None])
        return self._train(normaliser, data, tiles.shape[1], progress or SilentProgress())

    def _train(self, normaliser: BandNormaliser, data, bands: int, progress: Progress) -> GeoHganDetector:
        cfg = self.config
        if len(data) == 0:
            raise InvalidInputError(
                f"no {cfg.tile} x {cfg.tile} tile has at least {cfg.min_valid:.0%} of its cells with data: "
                "use a smaller --tile or a finer grid"
            )
        self.device_ = resolve_device(self.device)
        with cpu_threads(self.device_, self.threads):
            return self._train_networks(normaliser, data, bands, progress)

    def _train_networks(self, normaliser: BandNormaliser, data, bands: int, progress: Progress) -> GeoHganDetector:
        cfg = self.config
        device = self.device_
        progress.log(f"Geo-Hgan on {describe_device(device)}")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.normaliser_ = normaliser
        self.n_training_tiles_ = len(data)
        self.networks_ = GeoHganNetworks(bands, cfg.tile, cfg.latent, cfg.width, cfg.latent_hidden).to(device)
        schedule = cfg.schedule()

        progress.stage("train_step1", f"Step 1: autoencoder, latent GAN and sample GAN on {len(data)} tiles",
                       weight=0.6)
        epochs = train_step1_epochs(schedule)
        step1 = train_step1(self.networks_, data, schedule, cfg.latent, device, rng,
                            on_epoch=_reporter(progress, epochs, "step 1"),
                            on_batch=lambda done: progress.update(done / max(epochs, 1), "step 1 training"))
        progress.stage("train_step2", "Step 2: GAN-guided encoder", weight=0.25)
        step2 = train_step2(self.networks_, data, schedule, device, rng,
                            on_epoch=_reporter(progress, schedule.encoder_epochs, "step 2"),
                            on_batch=lambda done: progress.update(done / max(schedule.encoder_epochs, 1),
                                                                  "step 2 training"))
        self.history_ = {"step1": step1, "step2": step2}
        self.networks_.eval()
        return self

    # -- scoring -------------------------------------------------------------
    def score(self, values: np.ndarray, valid: np.ndarray | None = None, window_rows: int | None = None,
              progress: Progress | None = None) -> np.ndarray:
        """Cell scores (3, rows, cols) float32 in :data:`SCORE_NAMES` order; NaN on nodata.

        Raises:
            NotFittedError: ``fit`` (or ``load``) has not been called.
            InvalidInputError: the raster has another number of bands than the model was fitted on.
        """
        return self._in_windows(values, valid, len(SCORE_NAMES), window_rows,
                                lambda read, write, rows, cols, n: self.score_windows(read, write, rows, cols, n,
                                                                                      progress))

    def score_windows(self, read_rows, write_rows: RowWriter, rows: int, cols: int, window_rows: int = 512,
                      progress: Progress | None = None) -> None:
        """Score a raster too large for memory: ``read_rows(start, stop)`` returns normalised values and mask.

        ``read_rows`` gets raster rows ``start:stop`` ready for the networks
        (see :meth:`normalise_rows`); ``write_rows(start, scores)`` receives
        finished rows of cell scores in order.
        """
        self._check_fitted()
        cfg = self.config
        device = getattr(self, "device_", None) or resolve_device(self.device)
        self.networks_.to(device).eval()
        progress = progress or SilentProgress()
        with cpu_threads(device, self.threads):
            score_raster(self.networks_, read_rows, write_rows, rows, cols, cfg.tile,
                         cfg.score_stride or cfg.stride, cfg.kappa, device, cfg.min_valid, window_rows=window_rows,
                         on_progress=lambda f: progress.update(f, "scoring tiles"))

    def band_residuals(self, values: np.ndarray, bands: list[int], valid: np.ndarray | None = None,
                       window_rows: int | None = None) -> np.ndarray:
        """Per-cell reconstruction residuals (len(bands), rows, cols) float32 of the chosen band indices.

        ``x - G(E(x))`` in the model's normalised band units, each cell the
        mean over the tiles covering it; positive = more than the model
        reconstructs from the surrounding pattern. NaN on nodata.
        """
        return self._in_windows(values, valid, len(bands), window_rows,
                                lambda read, write, rows, cols, n: self.residual_windows(read, write, rows, cols,
                                                                                         bands, n))

    def _in_windows(self, values: np.ndarray, valid: np.ndarray | None, channels: int, window_rows: int | None,
                    run_windows) -> np.ndarray:
        """An in-memory raster through a windowed pass ``run_windows(read, write, rows, cols, window_rows)``."""
        self._check_fitted()
        values, valid = check_raster(values, valid, None, need_bands=len(self.normaliser_.low_))
        out = np.full((channels, *values.shape[1:]), np.nan, dtype=np.float32)

        def read_rows(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            return self.normaliser_.apply(values[:, start:stop], valid[start:stop]), valid[start:stop]

        def write_rows(start: int, rows: np.ndarray) -> None:
            out[:, start:start + rows.shape[1]] = rows

        run_windows(read_rows, write_rows, values.shape[1], values.shape[2], window_rows or values.shape[1])
        return out

    def residual_windows(self, read_rows, write_rows: RowWriter, rows: int, cols: int, bands: list[int],
                         window_rows: int = 512, progress: Progress | None = None) -> None:
        """:meth:`band_residuals` on a raster read in windows of rows (as :meth:`score_windows`)."""
        self._check_fitted()
        cfg = self.config
        n_bands = len(self.normaliser_.low_)
        if not bands or min(bands) < 0 or max(bands) >= n_bands:
            raise InvalidInputError(f"band indices must be in 0..{n_bands - 1}, got {bands}")
        device = getattr(self, "device_", None) or resolve_device(self.device)
        self.networks_.to(device).eval()
        progress = progress or SilentProgress()
        with cpu_threads(device, self.threads):
            residual_raster(self.networks_, read_rows, write_rows, rows, cols, cfg.tile,
                            cfg.score_stride or cfg.stride, list(bands), device, cfg.min_valid,
                            window_rows=window_rows, on_progress=lambda f: progress.update(f, "band residuals"))

    def normalise_rows(self, values: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw (bands, n, cols) rows -> the normalised rows and their valid mask (for :meth:`score_windows`)."""
        self._check_fitted()
        values, valid = check_raster(values, valid, None, need_bands=len(self.normaliser_.low_), allow_empty=True)
        return self.normaliser_.apply(values, valid), valid

    # -- persistence ---------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"kind": MODEL_KIND, "config": asdict(self.config), "bands": len(self.normaliser_.low_),
                  "band_names": self.normaliser_.band_names, "score_names": list(SCORE_NAMES),
                  "n_training_tiles": self.n_training_tiles_, "history": self.history_,
                  "versions": software_versions()}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().cpu() for k, v in self.networks_.state_dict().items()}
        torch.save(state, folder / WEIGHTS_FILE)
        self.normaliser_.save(folder / NORMALISATION_FILE)

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto", threads: int | None = 1) -> GeoHganDetector:
        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{folder} is not a saved Geo-Hgan model ({CONFIG_FILE}: {exc})") from exc
        if config.get("kind") != MODEL_KIND:
            raise InvalidInputError(f"{folder / CONFIG_FILE} is not a Geo-Hgan model (kind {config.get('kind')!r})")
        detector = cls(device=device, threads=threads, **config["config"])
        cfg = detector.config
        detector.device_ = resolve_device(device)
        detector.normaliser_ = BandNormaliser.load(folder / NORMALISATION_FILE)
        nets = GeoHganNetworks(config["bands"], cfg.tile, cfg.latent, cfg.width, cfg.latent_hidden)
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        nets.load_state_dict(state)
        detector.networks_ = nets.to(detector.device_).eval()
        detector.history_ = config.get("history", {})
        detector.n_training_tiles_ = config.get("n_training_tiles", 0)
        return detector

    @property
    def band_names(self) -> list[str]:
        self._check_fitted()
        return list(self.normaliser_.band_names)

    def _check_fitted(self) -> None:
        if self.networks_ is None or self.normaliser_ is None:
            raise NotFittedError("this Geo-Hgan detector is not fitted yet: call fit() or load() first")


def check_raster(values: np.ndarray, valid: np.ndarray | None, band_names: list[str] | None,
                 need_bands: int | None = None, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A (bands, rows, cols) float array and its valid mask (all bands finite), or a clear error."""
    values = np.asarray(values)
    if values.ndim != 3:
        raise InvalidInputError(f"expected a (bands, rows, cols) raster array; got shape {values.shape}")
    if need_bands is None and values.shape[0] < 2:
        name = f" ({band_names[0]})" if band_names else ""
        raise InvalidInputError(
            f"Geo-Hgan needs at least two bands (elements); the raster has one{name}: "
            "give a multi-band raster or several single-band rasters"
        )
    if need_bands is not None and values.shape[0] != need_bands:
        raise InvalidInputError(f"the model was trained on {need_bands} bands; this raster has {values.shape[0]}")
    if band_names is not None and len(band_names) != values.shape[0]:
        raise InvalidInputError(f"{len(band_names)} band names for {values.shape[0]} bands")
    finite = np.isfinite(values).all(axis=0)
    valid = finite if valid is None else (np.asarray(valid, dtype=bool) & finite)
    if not allow_empty and not valid.any():
        raise InvalidInputError("every cell of the raster is nodata (in at least one band): nothing to learn from")
    return values, valid


def _reporter(progress: Progress, epochs: int, label: str):
    def report(epoch: int, losses: dict[str, float]) -> None:
        text = ", ".join(f"{k} {v:.4g}" for k, v in losses.items())
        progress.update((epoch + 1) / max(epochs, 1), f"{label} epoch {epoch + 1}/{epochs}: {text}")
    return report
