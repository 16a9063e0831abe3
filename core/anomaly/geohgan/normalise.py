"""Per-band normalisation of a geochemical raster, fitted on valid cells only.

The published code scaled inputs twice (to [0, 1/255]) and paired a sigmoid
autoencoder with a tanh generator. Here there is one fitted mapping: the
chosen transform (``log``, ``clr`` across the selected bands, or ``none``;
``auto``, the default, takes ``log`` when every valid value is positive -
concentrations - and ``none`` otherwise - bands already log-ratio transformed,
as ``geoanomaly grid`` writes them by default), then each band's 0.1 and 99.9 percentiles of *valid* cells mapped
linearly to -1 and +1 and clipped there, because every network output that
reconstructs a tile ends in ``tanh`` (range -1 to 1). Percentiles rather than
min/max keep one wild cell from squashing a whole band.

Nodata cells stay NaN through the transform and come out as 0 (the middle of
the tanh range) with a mask beside them: they feed the networks a neutral
value but are excluded from every loss and every score.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InvalidInputError, NotFittedError
from core.preprocess import transforms

LOW_PERCENTILE = 0.1
HIGH_PERCENTILE = 99.9
RASTER_TRANSFORMS = ("auto", "log", "clr", "none")


@dataclass
class BandNormaliser:
    """Transform + per-band linear map to [-1, 1]; ``fit`` learns ``low_``/``high_`` from valid cells."""

    transform: str = "auto"
    band_names: list[str] = field(default_factory=list)
    low_: list[float] = field(default_factory=list)
    high_: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.transform not in RASTER_TRANSFORMS:
            raise InvalidInputError(
                f"unknown transform {self.transform!r}: choose one of {', '.join(RASTER_TRANSFORMS)}"
            )

    # -- fitting -------------------------------------------------------------
    def fit(self, values: np.ndarray, valid: np.ndarray, band_names: list[str] | None = None,
            max_cells: int = 2_000_000, seed: int = 0) -> BandNormaliser:
        """Learn the band ranges from the valid cells of a (bands, rows, cols) array.

        Percentiles of at most ``max_cells`` valid cells (a seeded random draw)
        keep fitting cheap on large grids.
        """
        values = np.asarray(values)
        cells = values[:, valid].T  # (n_valid, bands)
        if len(cells) > max_cells:
            cells = cells[np.random.default_rng(seed).choice(len(cells), max_cells, replace=False)]
        return self.fit_cells(cells, band_names, all_positive=bool((values[:, valid] > 0).all()))

    def fit_cells(self, cells: np.ndarray, band_names: list[str] | None = None,
                  all_positive: bool | None = None) -> BandNormaliser:
        """Learn the band ranges from valid cells given as an (n, bands) array (e.g. a sample of a large raster).

        ``all_positive`` says whether every valid cell of the raster is
        positive (for ``auto``); default: whether these cells are.
        """
        cells = np.asarray(cells)
        self.band_names = list(band_names) if band_names else [f"band_{i + 1}" for i in range(cells.shape[1])]
        if len(cells) == 0:
            raise InvalidInputError("the raster has no valid cell (every cell is nodata in at least one band)")
        if self.transform == "auto":
            positive = bool((cells > 0).all()) if all_positive is None else all_positive
            self.transform = "log" if positive else "none"
        transformed = self._transform_cells(cells)
        low = np.percentile(transformed, LOW_PERCENTILE, axis=0)
        high = np.percentile(transformed, HIGH_PERCENTILE, axis=0)
        flat = high - low <= 1e-12 * np.maximum(1.0, np.abs(high))
        if flat.any():
            names = ", ".join(self.band_names[i] for i in np.flatnonzero(flat))
            raise InvalidInputError(f"band(s) {names} hold the same value on (almost) every valid cell: "
                                    "drop them with --bands")
        self.low_ = [float(v) for v in low]
        self.high_ = [float(v) for v in high]
        return self

    # -- applying ------------------------------------------------------------
    def apply(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Normalised (bands, rows, cols) float32 array; nodata cells set to 0 (mask them with ``valid``)."""
        if not self.low_:
            raise NotFittedError("the band normaliser is not fitted yet: call fit() first")
        values = np.asarray(values)
        if values.shape[0] != len(self.low_):
            raise InvalidInputError(f"the model was fitted on {len(self.low_)} bands; got {values.shape[0]}")
        out = np.zeros(values.shape, dtype=np.float32)
        if valid.any():
            cells = self._transform_cells(values[:, valid].T)
            low, high = np.asarray(self.low_), np.asarray(self.high_)
            scaled = 2.0 * (cells - low) / (high - low) - 1.0
            out[:, valid] = np.clip(scaled, -1.0, 1.0).T.astype(np.float32)
        return out

    def _transform_cells(self, cells: np.ndarray) -> np.ndarray:
        """Apply the transform to (n, bands) cells, naming the band when a value cannot be logged."""
        cells = np.asarray(cells, dtype=np.float64)
        if self.transform in {"log", "clr"} and len(cells):
            bad = (cells <= 0).any(axis=0)
            if bad.any():
                names = ", ".join(self.band_names[i] for i in np.flatnonzero(bad))
                raise InvalidInputError(
                    f"band(s) {names} hold zero or negative values, which a {self.transform} transform cannot take: "
                    "use --transform none, or grid concentrations with values below detection imputed"
                )
        return transforms.apply(self.transform, cells) if len(cells) else cells

    # -- persistence ---------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": "geohgan_band_normaliser", "low_percentile": LOW_PERCENTILE,
                "high_percentile": HIGH_PERCENTILE, "output_range": [-1.0, 1.0], **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> BandNormaliser:
        return cls(transform=data["transform"], band_names=list(data["band_names"]),
                   low_=[float(v) for v in data["low_"]], high_=[float(v) for v in data["high_"]])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BandNormaliser:
        return cls.from_dict(json.loads(Path(path).read_text()))
