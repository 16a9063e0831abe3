"""Anomaly detectors with one interface: ``fit(samples)``, ``score(samples)`` (higher = more anomalous)."""

from core.anomaly.base import (
    Detector,
    RasterDetector,
    available_detectors,
    detector_class,
    make_detector,
    register_detector,
)

__all__ = ["Detector", "RasterDetector", "available_detectors", "detector_class", "make_detector", "register_detector"]
