"""Sample spacing: the yardstick for default cell sizes and search distances.

Stream-sediment and soil surveys often hold several samples at one location
(field duplicates, re-assays), so spacing is measured between *distinct*
locations; otherwise the median nearest-neighbour distance would be zero.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from core.errors import InvalidInputError


def distinct_locations(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(locations, inverse)``: the distinct rows of ``xy`` and, per sample, its location index."""
    xy = as_xy(xy, "sample coordinates")
    locations, inverse = np.unique(xy, axis=0, return_inverse=True)
    return locations, inverse.reshape(-1)


def median_sample_spacing(xy: np.ndarray) -> float:
    """Median distance from each distinct sample location to its nearest other location (CRS units).

    Returns ``nan`` when there are fewer than two distinct locations.
    """
    locations, _ = distinct_locations(xy)
    if len(locations) < 2:
        return float("nan")
    distances, _ = cKDTree(locations).query(locations, k=2)
    return float(np.median(distances[:, 1]))


SPACING_RULES = ("nearest", "area")


def survey_spacing(xy: np.ndarray, rule: str = "nearest") -> float:
    """The survey's sample spacing by ``rule`` (CRS units; ``nan`` with fewer than two distinct locations).

    - ``"nearest"``: the median nearest-neighbour distance between distinct
      locations (:func:`median_sample_spacing`).
    - ``"area"``: the larger of that and the nearest-neighbour distance the
      same number of locations would have if spread at random over the
      survey's area (its convex hull): ``0.5 * sqrt(area / n)`` (Clark & Evans
      1954). Rock chips taken in clusters on outcrops, or stream sediments
      strung along drainages, have neighbours a few metres apart while the
      ground between clusters is hundreds of metres wide; the grid must
      bridge those gaps, so a clustered survey is measured by its area. A
      survey spread evenly or at random keeps its nearest-neighbour spacing.
    """
    if rule not in SPACING_RULES:
        raise InvalidInputError(f"unknown spacing rule {rule!r}: use one of {', '.join(SPACING_RULES)}")
    nearest = median_sample_spacing(xy)
    if rule == "nearest" or not math.isfinite(nearest):
        return nearest
    from scipy.spatial import ConvexHull, QhullError

    locations, _ = distinct_locations(xy)
    try:
        area = ConvexHull(locations).volume  # in 2-D, the hull's area
    except QhullError:  # collinear locations (one traverse): no area to spread over
        return nearest
    return max(nearest, 0.5 * math.sqrt(area / len(locations)))


def tidy_length(value: float) -> float:
    """Round a length to the nearest (in ratio) of 1, 2, 2.5 or 5 times a power of ten."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"cannot make a tidy length of {value!r}")
    exponent = math.floor(math.log10(value))
    candidates = [m * 10.0**e for e in (exponent - 1, exponent, exponent + 1) for m in (1, 2, 2.5, 5)]
    return min(candidates, key=lambda c: abs(math.log(c / value)))


def as_xy(xy, what: str) -> np.ndarray:
    """Coordinates as a float64 ``(n, 2)`` array, finite, or a clear error naming ``what``."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InvalidInputError(f"{what} must be an (n, 2) array of x, y; got shape {xy.shape}")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise InvalidInputError(
            f"{what}: {int(bad.sum())} row(s) have missing or non-finite coordinates (first: row {int(np.argmax(bad))})"
        )
    return xy
