"""Prospectivity classes: by share of the area, or at the prediction-area crossing.

Class codes in the classified raster (0 = nodata):

====  ===========  =================================================
code  class        by area share (default shares 5 / 10 / 20 %)
====  ===========  =================================================
4     very high    the top 5 % of the valid area
3     high         the next cells up to 10 %
2     moderate     the next cells up to 20 %
1     low          the rest
====  ===========  =================================================

By P-A crossing (``method="pa"``): the threshold where the share of deposits
captured equals the share of area *not* selected (the prediction-area plot's
crossing) splits "high" (code 3) from "low" (code 1); the crossing uses the
deposits, so quote it only with the cross-validated figures beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InvalidInputError
from core.evaluate.curves import success_curve

CLASS_NAMES = {4: "very high", 3: "high", 2: "moderate", 1: "low"}
DEFAULT_SHARES = (0.05, 0.10, 0.20)


def area_share_thresholds(probability: np.ndarray, shares: Sequence[float] = DEFAULT_SHARES) -> np.ndarray:
    """Probability thresholds above which lie the top ``shares`` of the cells (one per share)."""
    shares = np.asarray(shares, dtype=float)
    if shares.size != 3 or np.any(np.diff(shares) <= 0) or shares[0] <= 0 or shares[-1] >= 1:
        raise InvalidInputError(
            f"class area shares must be three increasing values between 0 and 1 (e.g. 0.05,0.10,0.20), got {shares.tolist()}"
        )
    return np.quantile(np.asarray(probability, dtype=float), 1.0 - shares, method="higher")


def classify_by_area(probability: np.ndarray, shares: Sequence[float] = DEFAULT_SHARES) -> np.ndarray:
    """Class code (1-4) per cell; cells tied at a threshold go to the higher class."""
    probability = np.asarray(probability, dtype=float)
    very_high, high, moderate = area_share_thresholds(probability, shares)
    codes = np.ones(probability.shape, dtype=np.uint8)
    codes[probability >= moderate] = 2
    codes[probability >= high] = 3
    codes[probability >= very_high] = 4
    return codes


def pa_crossing_threshold(probability: np.ndarray, deposit_cells: np.ndarray) -> float:
    """The threshold where the share of deposits at or above it equals the share of area below it."""
    probability = np.asarray(probability, dtype=float)
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    if deposit_cells.size == 0:
        raise InvalidInputError("the prediction-area crossing needs deposits on valid cells")
    return success_curve(probability, probability[deposit_cells], unit="cells").pa_crossing["threshold"]


def classify_by_pa(probability: np.ndarray, deposit_cells: np.ndarray) -> tuple[np.ndarray, float]:
    threshold = pa_crossing_threshold(probability, deposit_cells)
    codes = np.where(np.asarray(probability) >= threshold, 3, 1).astype(np.uint8)
    return codes, threshold


def deposits_per_class(codes: np.ndarray, deposit_cells: np.ndarray, classes: Sequence[int] = (4, 3, 2, 1)) -> list[dict]:
    """Rows (class, code, area share, deposits, deposit share) for ``classes`` (the P-A method has 3 and 1)."""
    codes = np.asarray(codes)
    deposit_codes = codes[np.asarray(deposit_cells, dtype=np.int64)]
    n_dep = max(len(deposit_codes), 1)
    rows = []
    for code in classes:
        area = float(np.mean(codes == code)) if codes.size else 0.0
        count = int(np.sum(deposit_codes == code))
        rows.append({"class": CLASS_NAMES[code], "code": code, "area_share": round(area, 4),
                     "deposits": count, "deposit_share": round(count / n_dep, 4)})
    return rows
