"""Preprocessing of assays: element selection, missing/below-detection values, log-ratio transforms, scaling."""

from core.preprocess.pipeline import PreparedSamples, Preprocessor

__all__ = ["PreparedSamples", "Preprocessor"]
