"""Anomaly scores as soft labels: the detector is the teacher (KDAL step 1-2).

A cell's soft label is the target distribution ``[1 - a, a]`` over
{background, prospective}, ``a`` its anomaly score mapped to [0, 1].

Two mappings:

- ``"robust"`` (default): robust min-max. Scores at or below the 2nd
  percentile give 0, at or above the 98th give 1, linear in between. It keeps
  the shape of the score distribution: most of a survey is background, so
  most cells get a small ``a`` and only the anomalous tail gets ``a`` near 1;
  the extreme percentiles are clipped so that one wild cell does not squash
  the rest towards 0.
- ``"rank"``: the cell's rank as a share of all valid cells (0 lowest, 1
  highest). Insensitive to the score's scale, but it declares half of the
  area more prospective than not, which a detector rarely means.
"""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError

NORMALISATIONS = ("robust", "rank")
ROBUST_PERCENTILES = (2.0, 98.0)


def normalise_scores(scores: np.ndarray, method: str = "robust") -> np.ndarray:
    """Map anomaly scores (higher = more anomalous, finite) to [0, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise InvalidInputError(f"anomaly scores must be a non-empty 1-D array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise InvalidInputError("anomaly scores hold NaN or infinite values on valid cells")
    if method == "rank":
        if scores.size == 1:
            return np.ones(1)
        order = np.argsort(scores, kind="stable")
        ranks = np.empty(scores.size)
        ranks[order] = np.arange(scores.size)
        # Equal scores share one (average) rank, so ties never order cells.
        _, inverse = np.unique(scores, return_inverse=True)
        ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
        return ranks / (scores.size - 1)
    if method == "robust":
        low, high = np.percentile(scores, ROBUST_PERCENTILES)
        if high <= low:  # nearly constant: fall back to the full range
            low, high = scores.min(), scores.max()
        if high <= low:
            return np.full(scores.size, 0.5)  # no information: maximal uncertainty
        return np.clip((scores - low) / (high - low), 0.0, 1.0)
    raise InvalidInputError(f"unknown score normalisation {method!r}: use one of {', '.join(NORMALISATIONS)}")


def soft_labels(scores: np.ndarray, method: str = "robust") -> np.ndarray:
    """(n, 2) soft targets ``[1 - a, a]`` from anomaly scores."""
    a = normalise_scores(scores, method)
    return np.column_stack([1.0 - a, a])
