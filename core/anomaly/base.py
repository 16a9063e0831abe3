"""The detector interface shared by classical baselines and deep models (scikit-learn / PyOD style).

A detector is configured in ``__init__``, learns in ``fit`` (state in
attributes with a trailing ``_``), and returns one score per sample from
``score`` — higher means more anomalous. It is saved to a folder as JSON
(config) plus arrays (``.npz``, no pickle) or torch weights (loaded with
``weights_only=True``): nothing that can run code when loaded.

Detectors register themselves by name with :func:`register_detector`; the
command line and the QGIS plugin list them from the registry. Modules that
define detectors are imported lazily by :func:`_import_detector_modules`.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import InvalidInputError, NotFittedError
from core.preprocess.pipeline import PreparedSamples
from core.progress import Progress

_REGISTRY: dict[str, type[Detector]] = {}

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

    def element_residuals(self, samples: PreparedSamples) -> np.ndarray | None:
        """Per-element standardised residuals (n, p), positive = above the model's background; None if it has none.

        The commodity readouts (:mod:`core.anomaly.readouts`) read these.
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
        return self

    # -- command-line options -----------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this detector's options to ``geoanomaly detect`` (names must not clash)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Detector:
        return cls()

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


def _check_samples(samples: PreparedSamples) -> None:
    if samples.values.ndim != 2 or samples.values.shape[0] < 2:
        raise InvalidInputError("need at least two samples with element values")
    if not np.all(np.isfinite(samples.values)):
        raise InvalidInputError("the element matrix holds missing values after preprocessing")
