"""AnomFilter: high-confidence anomalies to use as positives in the prospectivity step.

Published (Geo-Hgan, step 3), here on arrays of real cells, never on images
read back from file names:

1. keep the items whose score exceeds the Tukey upper fence Q3 + 1.5 IQR of
   all scores (outlier criterion);
2. compute the mean vector M of the target-domain items (by default all
   items); for each kept item the distance d = ||x - M||; keep those with
   d <= (min d + max d) / 2 (distribution criterion: the anomalies that still
   look like the target domain, not the wildest ones).

Empty inputs, or no item above the fence, give an empty selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TUKEY_K = 1.5


@dataclass
class AnomFilterResult:
    """Indices of the selected items and the figures behind the choice."""

    selected: np.ndarray  # int64 indices into the input arrays
    above_fence: np.ndarray  # int64 indices of items above the Tukey fence
    fence: float  # NaN when there were no scores
    distance: np.ndarray  # distance to the target mean of each item above the fence
    distance_cut: float  # NaN when nothing was above the fence

    def to_dict(self) -> dict:
        return {"n_selected": int(len(self.selected)), "n_above_fence": int(len(self.above_fence)),
                "tukey_fence": _finite_or_none(self.fence), "distance_cut": _finite_or_none(self.distance_cut)}


def tukey_upper_fence(scores: np.ndarray, k: float = TUKEY_K) -> float:
    """Q3 + k IQR of the finite scores; NaN when there are none."""
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        return float("nan")
    q1, q3 = np.percentile(scores, [25, 75])
    return float(q3 + k * (q3 - q1))


def anom_filter(scores: np.ndarray, features: np.ndarray, target_mean: np.ndarray | None = None,
                k: float = TUKEY_K, fence: float | None = None) -> AnomFilterResult:
    """Select high-confidence anomalies among ``n`` items.

    ``scores`` (n,), higher = more anomalous; ``features`` (n, bands), the
    items' (normalised) band values; ``target_mean`` (bands,), the mean vector
    of the target domain (default: the mean of ``features``). ``fence``, when
    given, replaces the Tukey fence of ``scores`` (for a large raster: the
    fence of all cells, with ``scores``/``features`` only the cells above it).
    """
    scores = np.asarray(scores, dtype=float).reshape(-1)
    features = np.asarray(features, dtype=float)
    if features.ndim == 1:
        features = features.reshape(len(scores), -1) if len(scores) else features.reshape(0, 0)
    if len(features) != len(scores):
        raise ValueError(f"{len(scores)} scores but {len(features)} feature rows")
    empty = np.zeros(0, dtype=np.int64)
    fence = tukey_upper_fence(scores, k) if fence is None else float(fence)
    if not np.isfinite(fence):
        return AnomFilterResult(empty, empty, fence, np.zeros(0), float("nan"))
    above = np.flatnonzero(np.isfinite(scores) & (scores > fence))
    if above.size == 0:
        return AnomFilterResult(empty, above, fence, np.zeros(0), float("nan"))
    if target_mean is None:
        target_mean = features.mean(axis=0)
    distance = np.linalg.norm(features[above] - np.asarray(target_mean, dtype=float), axis=1)
    cut = float((distance.min() + distance.max()) / 2.0)
    return AnomFilterResult(above[distance <= cut], above, fence, distance, cut)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
