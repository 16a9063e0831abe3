"""The maps a geologist would otherwise make, on the same evidence and in the same folds as KDAL.

- **Evidence alone**: the evidence band's own ranking (no training).
- **Weights of evidence** (binary, Bonham-Carter 1994): each band is cut at
  the area share whose pattern has the largest studentised contrast on the
  training deposits; weights ``W+ = ln P(B|D)/P(B|~D)`` and
  ``W- = ln P(~B|D)/P(~B|~D)`` (counts in unit cells) add to the prior
  logit. Its conditional-independence check is Agterberg & Cheng's (2002)
  test: the predicted number of deposits ``T`` (sum of posterior
  probabilities over the cells) against the observed ``n``; ``n / T`` below
  about 0.85, or a one-sided p below 0.05, says the bands are not
  conditionally independent and the posterior is inflated (its ranking may
  still be usable).
- **Logistic regression** and **random forest** (scikit-learn) on the
  standardised evidence values, with the training deposits as positives and
  random background cells (``background_ratio`` per deposit, never within
  ``radius`` cells of a deposit nor in a closed block) as negatives: the
  usual presence-background set-up of EIS Toolkit and ArcSDM. Classes are
  balanced by weight, so the map ranks cells and its values are not
  calibrated probabilities.

Every function takes ``(features, rows, cols, deposit_cells, closed)`` and
returns a score per valid cell, higher = more prospective, so that
:func:`core.prospectivity.validation.cross_validate` can fold it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from core.errors import InvalidInputError
from core.prospectivity.stack import near_cells

WOFE_AREA_SHARES = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50)  # candidate pattern sizes (top share of area)


def background_cells(
    rows: np.ndarray,
    cols: np.ndarray,
    deposit_cells: np.ndarray,
    closed: np.ndarray | None = None,
    ratio: int = 10,
    radius: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """``ratio`` random background cells per deposit: not within ``radius`` of a deposit, not ``closed``."""
    allowed = ~near_cells(rows, cols, deposit_cells, radius)
    if closed is not None:
        allowed &= ~np.asarray(closed, dtype=bool)
    choices = np.flatnonzero(allowed)
    size = min(len(choices), ratio * max(len(deposit_cells), 1))
    return np.random.default_rng(seed).choice(choices, size=size, replace=False)


@dataclass
class BinaryWeights:
    """One band's binary pattern (top ``area_share`` of the cells) and its weights."""

    band: int
    threshold: float  # cells with value >= threshold are "in the pattern"
    area_share: float
    w_plus: float
    w_minus: float
    s_w_plus: float  # standard deviations of the weights (Bonham-Carter 1994, eq. 9-19)
    s_w_minus: float

    @property
    def contrast(self) -> float:
        return self.w_plus - self.w_minus

    @property
    def studentised_contrast(self) -> float:
        return self.contrast / np.hypot(self.s_w_plus, self.s_w_minus)


def binary_weights(in_pattern: np.ndarray, is_deposit: np.ndarray) -> tuple[float, float, float, float]:
    """(W+, W-, s(W+), s(W-)) of a binary pattern, from counts of unit cells.

    ``in_pattern``, ``is_deposit``: bool per cell. A count of zero is replaced
    by 0.5 (the usual continuity correction) so that the weights stay finite.
    """
    in_pattern = np.asarray(in_pattern, dtype=bool)
    is_deposit = np.asarray(is_deposit, dtype=bool)
    b_d = max(float(np.sum(in_pattern & is_deposit)), 0.5)
    b_nd = max(float(np.sum(in_pattern & ~is_deposit)), 0.5)
    nb_d = max(float(np.sum(~in_pattern & is_deposit)), 0.5)
    nb_nd = max(float(np.sum(~in_pattern & ~is_deposit)), 0.5)
    n_d, n_nd = b_d + nb_d, b_nd + nb_nd
    w_plus = np.log((b_d / n_d) / (b_nd / n_nd))
    w_minus = np.log((nb_d / n_d) / (nb_nd / n_nd))
    return float(w_plus), float(w_minus), float(np.sqrt(1 / b_d + 1 / b_nd)), float(np.sqrt(1 / nb_d + 1 / nb_nd))


@dataclass
class WeightsOfEvidence:
    """Binary weights of evidence, one pattern per band; scikit-learn habits."""

    area_shares: tuple[float, ...] = WOFE_AREA_SHARES

    def fit(self, features: np.ndarray, deposit_cells: np.ndarray) -> WeightsOfEvidence:
        features = np.asarray(features, dtype=np.float64)
        deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
        if deposit_cells.size == 0:
            raise InvalidInputError("weights of evidence need at least one deposit on a valid cell")
        is_deposit = np.zeros(len(features), dtype=bool)
        is_deposit[deposit_cells] = True
        self.n_cells_ = len(features)
        self.n_deposits_ = int(is_deposit.sum())
        self.prior_logit_ = float(np.log(self.n_deposits_ / (self.n_cells_ - self.n_deposits_)))
        self.weights_: list[BinaryWeights] = []
        for band in range(features.shape[1]):
            values = features[:, band]
            best = None
            for share in self.area_shares:
                threshold = float(np.quantile(values, 1 - share))
                pattern = values >= threshold
                weights = BinaryWeights(band, threshold, float(pattern.mean()), *binary_weights(pattern, is_deposit))
                if best is None or weights.studentised_contrast > best.studentised_contrast:
                    best = weights
            self.weights_.append(best)
        posterior = self.predict_proba(features)
        self.independence_ = conditional_independence_test(posterior, self.n_deposits_, self._variance(features))
        return self

    def _patterns(self, features: np.ndarray) -> np.ndarray:
        return np.column_stack([features[:, w.band] >= w.threshold for w in self.weights_])

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Posterior logit per cell: prior logit + W+ where the band is in its pattern, W- where not."""
        patterns = self._patterns(np.asarray(features, dtype=np.float64))
        w_plus = np.array([w.w_plus for w in self.weights_])
        w_minus = np.array([w.w_minus for w in self.weights_])
        return self.prior_logit_ + np.where(patterns, w_plus, w_minus).sum(axis=1)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision_function(features)))

    def _variance(self, features: np.ndarray) -> np.ndarray:
        """Relative variance of each cell's posterior: 1/n(D) + sum of the variances of its weights."""
        patterns = self._patterns(features)
        s_plus = np.array([w.s_w_plus for w in self.weights_]) ** 2
        s_minus = np.array([w.s_w_minus for w in self.weights_]) ** 2
        return 1.0 / self.n_deposits_ + np.where(patterns, s_plus, s_minus).sum(axis=1)

    def to_dict(self, band_names: list[str] | None = None) -> dict:
        names = band_names or [f"band {w.band + 1}" for w in self.weights_]
        return {"patterns": [{"band": names[w.band], "threshold": w.threshold, "area_share": round(w.area_share, 4),
                              "w_plus": round(w.w_plus, 4), "w_minus": round(w.w_minus, 4),
                              "contrast": round(w.contrast, 4),
                              "studentised_contrast": round(w.studentised_contrast, 3)} for w in self.weights_],
                "conditional_independence": self.independence_}


def conditional_independence_test(posterior: np.ndarray, n_deposits: int, relative_variance: np.ndarray) -> dict:
    """Agterberg & Cheng (2002): is the predicted number of deposits T significantly above the observed n?

    ``T = sum of posterior probabilities`` (unit cells); ``s^2(T) = sum P^2 *
    relative_variance``. Returns T, s(T), the ratio n / T (Bonham-Carter's
    rule of thumb: below 0.85 the bands are not conditionally independent)
    and the one-sided p of ``T - n`` (below 0.05: reject independence).
    """
    posterior = np.asarray(posterior, dtype=np.float64)
    expected = float(posterior.sum())
    spread = float(np.sqrt(np.sum(posterior**2 * relative_variance)))
    p_value = float(norm.sf((expected - n_deposits) / spread)) if spread > 0 else 1.0
    ratio = n_deposits / expected if expected > 0 else float("nan")
    return {"predicted_deposits": round(expected, 3), "sd": round(spread, 3), "observed_deposits": int(n_deposits),
            "ratio": round(ratio, 3), "p_value": round(p_value, 4),
            "independent": bool(p_value >= 0.05 and ratio >= 0.85)}


def weights_of_evidence_map(features, rows, cols, deposit_cells, closed=None, seed: int = 0) -> np.ndarray:
    """Posterior logit of binary weights of evidence fitted on ``deposit_cells`` (the closed area is not used;
    deterministic: ``seed`` is accepted so that every baseline is called alike)."""
    keep = np.ones(len(features), dtype=bool) if closed is None else ~np.asarray(closed, dtype=bool)
    index = np.cumsum(keep) - 1  # new index of each kept cell
    model = WeightsOfEvidence().fit(np.asarray(features)[keep], index[np.asarray(deposit_cells, dtype=np.int64)])
    return model.decision_function(features)


def _presence_background(features, rows, cols, deposit_cells, closed, seed: int, ratio: int = 10):
    from sklearn.preprocessing import StandardScaler

    background = background_cells(rows, cols, deposit_cells, closed, ratio=ratio, seed=seed)
    cells = np.concatenate([np.asarray(deposit_cells, dtype=np.int64), background])
    y = np.r_[np.ones(len(deposit_cells)), np.zeros(len(background))]
    scaler = StandardScaler().fit(features)
    return scaler, scaler.transform(features[cells]), y


def logistic_regression_map(features, rows, cols, deposit_cells, closed=None, seed: int = 0) -> np.ndarray:
    """Logistic regression (balanced classes, L2, C = 1) on deposits + random background: the decision value per cell."""
    from sklearn.linear_model import LogisticRegression

    scaler, x, y = _presence_background(features, rows, cols, deposit_cells, closed, seed)
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)
    return model.decision_function(scaler.transform(features))


def random_forest_map(features, rows, cols, deposit_cells, closed=None, seed: int = 0) -> np.ndarray:
    """Random forest (300 trees, leaves of >= 3 cells, balanced classes) on deposits + random background: P per cell."""
    from sklearn.ensemble import RandomForestClassifier

    scaler, x, y = _presence_background(features, rows, cols, deposit_cells, closed, seed)
    model = RandomForestClassifier(n_estimators=300, min_samples_leaf=3, class_weight="balanced_subsample",
                                   random_state=seed, n_jobs=1).fit(x, y)
    return model.predict_proba(scaler.transform(features))[:, 1]


BASELINES = {
    "weights of evidence": weights_of_evidence_map,
    "logistic regression": logistic_regression_map,
    "random forest": random_forest_map,
}
