"""The detector interface shared by classical baselines and deep models (scikit-learn / PyOD style).

A detector is configured in ``__init__``, learns in ``fit`` (state in
attributes with a trailing ``_``; the training samples' own scores in
``decision_scores_``, as PyOD keeps them), and returns one score per sample
from ``score`` — higher means more anomalous. For the classical detectors
each row is scored on its own: a sample's score never depends on which other
samples are scored in the same call. The transformer reads each sample in
the context of its spatial neighbours among the scored samples, so its
scores do depend on the set (by design: see its docstring).

Raster models (Geo-Hgan) take a grid rather than a sample table and follow
the second interface written down in :class:`RasterDetector`. It is saved to a folder as JSON
(config) plus arrays (``.npz``, no pickle) or torch weights (loaded with
``weights_only=True``): nothing that can run code when loaded.

Detectors register themselves by name with :func:`register_detector`; the
command line and the QGIS plugin list them from the registry. Modules that
define detectors are imported lazily by :func:`_import_detector_modules`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from core.errors import InvalidInputError, NotFittedError
from core.preprocess.pipeline import PreparedSamples
from core.progress import Progress

_REGISTRY: dict[str, type[Detector]] = {}
TRAINING_SCORES_FILE = "training_scores.npy"

# Modules that register detectors when imported (the deep models are heavy,
# so they load only when the registry is first asked for).
DETECTOR_MODULES = ("core.anomaly.classical", "core.anomaly.transformer")


def register_detector(name: str):
    def decorate(cls: type[Detector]) -> type[Detector]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


_UNAVAILABLE: dict[str, str] = {}  # module -> why it could not be imported


def _import_detector_modules() -> None:
    for module in DETECTOR_MODULES:
        if module in _UNAVAILABLE:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken model must not take the other detectors down
            _UNAVAILABLE[module] = f"{type(exc).__name__}: {exc}"


def available_detectors() -> list[str]:
    _import_detector_modules()
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    _import_detector_modules()
    if name not in _REGISTRY:
        broken = "".join(f"; {module} could not load ({why})" for module, why in _UNAVAILABLE.items())
        raise InvalidInputError(f"unknown detector {name!r}; available: {', '.join(sorted(_REGISTRY))}{broken}")
    return _REGISTRY[name]


def make_detector(name: str, **params: Any) -> Detector:
    return detector_class(name)(**params)


class Detector:
    """Base class; subclasses implement ``_fit``/``_score`` and ``_state``/``_restore``."""

    name: ClassVar[str] = "detector"
    history_: dict

    # -- the public API -------------------------------------------------------
    def fit(self, samples: PreparedSamples, progress: Progress | None = None) -> Detector:
        """Learn the background from ``samples``; training scores are kept in ``decision_scores_``.

        Raises:
            InvalidInputError: fewer than two samples, or missing values in the element matrix.
        """
        _check_samples(samples)
        self.elements_ = list(samples.elements)
        self.history_ = {}
        self._fit(samples, progress or Progress(mode="none"))
        # Training scores once, at fit time (PyOD's decision_scores_): a notebook reads them without rescoring.
        self.decision_scores_ = np.asarray(self._score(samples), dtype=np.float64)
        return self

    def score(self, samples: PreparedSamples) -> np.ndarray:
        """One score per sample, higher = more anomalous.

        Raises:
            NotFittedError: ``fit`` (or ``load``) has not been called.
            InvalidInputError: the samples carry other elements than the model was fitted on.
        """
        self._check_compatible(samples)
        return np.asarray(self._score(samples), dtype=np.float64)

    def score_details(self, samples: PreparedSamples) -> dict[str, np.ndarray]:
        """Extra readouts: 1-D per-sample scores, or 2-D (n, p) per-element residuals."""
        return {}

    def element_residuals(self, samples: PreparedSamples, suite: Collection[str] | None = None) -> np.ndarray | None:
        """Per-element standardised residuals (n, p), positive = above the model's background; None if it has none.

        The commodity readouts (:mod:`core.anomaly.readouts`) read these. ``suite``
        names the commodity suite: a detector that can estimate the suite's
        background from the other elements only (suite masked) should.
        """
        return None

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    # -- persistence ----------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"detector": self.name, "params": self.get_params(), "elements": self.elements_}
        (folder / "detector.json").write_text(json.dumps(config, indent=1))
        self._save_state(folder)
        if hasattr(self, "decision_scores_"):
            np.save(folder / TRAINING_SCORES_FILE, self.decision_scores_, allow_pickle=False)

    @classmethod
    def load(cls, folder: str | Path) -> Detector:
        """A detector saved with :meth:`save`.

        Raises:
            InvalidInputError: ``folder`` holds no saved detector, or one of an unknown kind.
        """
        folder = Path(folder)
        config_path = folder / "detector.json"
        if not config_path.exists():
            raise InvalidInputError(f"{folder} holds no saved detector (detector.json missing)")
        config = json.loads(config_path.read_text())
        klass = detector_class(config["detector"]) if cls is Detector else cls
        self = klass(**config["params"])
        self.elements_ = config["elements"]
        self.history_ = {}
        self._load_state(folder)
        if (folder / TRAINING_SCORES_FILE).exists():
            self.decision_scores_ = np.load(folder / TRAINING_SCORES_FILE, allow_pickle=False)
        return self

    # -- command-line options -----------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this detector's options to ``geoanomaly detect`` (names must not clash)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Detector:
        return cls()

    @classmethod
    def default(cls, param: str) -> Any:
        """The constructor's default for ``param``: option defaults are read from here, never written twice."""
        return inspect.signature(cls.__init__).parameters[param].default

    # -- for subclasses -------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        raise NotImplementedError

    def _score(self, samples: PreparedSamples) -> np.ndarray:
        raise NotImplementedError

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / "state.npz", **self._state())

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / "state.npz", allow_pickle=False) as data:
            self._restore({k: data[k] for k in data.files})

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _check_compatible(self, samples: PreparedSamples) -> None:
        if not hasattr(self, "elements_"):
            raise NotFittedError(f"the {self.name} detector is not fitted yet: call fit() or load() first")
        if list(samples.elements) != list(self.elements_):
            raise InvalidInputError(f"the samples' elements ({', '.join(samples.elements[:6])}...) differ from the "
                                    f"model's ({', '.join(self.elements_[:6])}...)")


@runtime_checkable
class RasterDetector(Protocol):
    """The second detector interface: models that read a grid of cells rather than a sample table.

    A raster model sees each cell together with its neighbourhood (tiles), so
    it cannot take the :class:`Detector` API's (samples, elements) matrix. It
    keeps the same habits instead:

    - ``fit(values, valid=None, band_names=None, progress=None)``: ``values``
      is a (bands, rows, cols) float array with NaN where there is no data,
      ``valid`` a (rows, cols) bool mask (True = data; combined with the
      finite cells), as :func:`core.io.rasters.read_raster_stack` returns them
      (``stack.values``, ``stack.valid_mask``); returns the fitted model.
    - ``score(values, valid=None, ...)``: a (scores, rows, cols) float32 array,
      higher = more anomalous, NaN on cells without data.
    - ``save(folder)`` / ``load(folder)``: JSON plus torch weights loaded with
      ``weights_only=True``; never a pickle.
    - ``band_names``: the bands it was fitted on, in order.

    Not fitted: :class:`core.errors.NotFittedError`; bad input:
    :class:`core.errors.InvalidInputError`. :class:`GeoHganDetector
    <core.anomaly.geohgan.detector.GeoHganDetector>` is the one raster model.
    """

    def fit(self, values: np.ndarray, valid: np.ndarray | None = None, band_names: list[str] | None = None,
            progress: Progress | None = None) -> RasterDetector: ...

    def score(self, values: np.ndarray, valid: np.ndarray | None = None, *args: Any, **kwargs: Any) -> np.ndarray: ...

    def save(self, folder: str | Path) -> None: ...

    @classmethod
    def load(cls, folder: str | Path, *args: Any, **kwargs: Any) -> RasterDetector: ...

    @property
    def band_names(self) -> list[str]: ...


def _check_samples(samples: PreparedSamples) -> None:
    if samples.values.ndim != 2 or samples.values.shape[0] < 2:
        raise InvalidInputError("need at least two samples with element values")
    if not np.all(np.isfinite(samples.values)):
        raise InvalidInputError("the element matrix holds missing values after preprocessing")
