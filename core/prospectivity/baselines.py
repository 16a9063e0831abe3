"""The maps a geologist would otherwise make, on the same evidence and in the same folds as KDAL.

- **Evidence alone**: the evidence band's own ranking (no training).
- **Weights of evidence** (multi-class, Bonham-Carter 1994): each band is
  cut into classes by area share (top 2, 5, 10, 20, 30, 50 %, rest); a
  class's weight ``W = ln P(class|D) / P(class|~D)`` (counts in unit cells;
  two classes give the binary ``W+`` and ``W-``) adds to the prior logit. Its conditional-independence check is Agterberg & Cheng's (2002)
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

WOFE_AREA_SHARES = (0.02, 0.05, 0.10, 0.20, 0.30, 0.50)  # class edges, as top shares of the area


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


def binary_weights(in_pattern: np.ndarray, is_deposit: np.ndarray) -> tuple[float, float, float, float]:
    """(W+, W-, s(W+), s(W-)) of a binary pattern, from counts of unit cells.

    ``in_pattern``, ``is_deposit``: bool per cell. A count of zero is replaced
    by 0.5 (the usual continuity correction) so that the weights stay finite.
    """
    classes = np.where(np.asarray(in_pattern, dtype=bool), 0, 1)
    (w_plus, w_minus), (s_plus, s_minus) = class_weights(classes, np.asarray(is_deposit, dtype=bool), 2)
    return w_plus, w_minus, s_plus, s_minus


def class_weights(classes: np.ndarray, is_deposit: np.ndarray, n_classes: int) -> tuple[list[float], list[float]]:
    """Weight ``W_k = ln P(class k | D) / P(class k | ~D)`` and its standard deviation per class.

    A count of zero is replaced by 0.5 (the usual continuity correction; the totals stay the true
    counts) so that the weights stay finite.
    """
    n_deposit, n_other = float(np.sum(is_deposit)), float(np.sum(~is_deposit))
    on_deposit = np.maximum(np.bincount(classes[is_deposit], minlength=n_classes).astype(float), 0.5)
    off_deposit = np.maximum(np.bincount(classes[~is_deposit], minlength=n_classes).astype(float), 0.5)
    weights = np.log((on_deposit / n_deposit) / (off_deposit / n_other))
    return weights.tolist(), np.sqrt(1 / on_deposit + 1 / off_deposit).tolist()


@dataclass
class WeightsOfEvidence:
    """Multi-class weights of evidence: each band cut into classes by area share (top 2, 5, 10, 20, 30, 50 %, rest).

    Multi-class rather than binary: one binary pattern per band gives the map
    two values per band, so held-out deposits in a wide pattern tie with all
    of it (measured on sed1 with the best-contrast pattern: 0 % of held-out
    deposits in the top 10 %). ``area_shares=(0.4,)`` is the binary case
    (pattern = top 40 %). scikit-learn habits.
    """

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
        # Class edges per band, highest first: class 0 = the top area share, the last class = the rest.
        shares = np.asarray(self.area_shares, dtype=float)
        self.edges_ = [np.quantile(features[:, b], 1 - shares) for b in range(features.shape[1])]
        classes = self._classes(features)
        self.weights_, self.sd_ = [], []
        for band in range(features.shape[1]):
            weights, sd = class_weights(classes[:, band], is_deposit, len(shares) + 1)
            self.weights_.append(np.asarray(weights))
            self.sd_.append(np.asarray(sd))
        # Cells with the same class in every band share one posterior (a "unique condition"); its error is
        # shared by all of them, so the test sums over conditions, not over cells.
        conditions, cells_per_condition = np.unique(classes, axis=0, return_counts=True)
        posterior = self.predict_proba_of_classes(conditions)
        self.independence_ = conditional_independence_test(posterior, self.n_deposits_, self._variance(conditions),
                                                           cells_per_condition)
        return self

    def _classes(self, features: np.ndarray) -> np.ndarray:
        """(cells, bands) class index: how many class edges the value lies below (at an edge: the higher class)."""
        return np.column_stack([np.sum(features[:, [b]] < edges[None, :], axis=1)
                                for b, edges in enumerate(self.edges_)])

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Posterior logit per cell: the prior logit + the weight of each band's class."""
        return self._logit_of_classes(self._classes(np.asarray(features, dtype=np.float64)))

    def _logit_of_classes(self, classes: np.ndarray) -> np.ndarray:
        return self.prior_logit_ + sum(self.weights_[b][classes[:, b]] for b in range(classes.shape[1]))

    def predict_proba_of_classes(self, classes: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self._logit_of_classes(classes)))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision_function(features)))

    def _variance(self, classes: np.ndarray) -> np.ndarray:
        """Relative variance of each cell's posterior: 1/n(D) + the variances of its classes' weights."""
        return 1.0 / self.n_deposits_ + sum(self.sd_[b][classes[:, b]] ** 2 for b in range(classes.shape[1]))

    def to_dict(self, band_names: list[str] | None = None) -> dict:
        names = band_names or [f"band {b + 1}" for b in range(len(self.weights_))]
        classes = [f"top {s * 100:g} %" for s in self.area_shares] + ["rest"]
        return {"classes": classes,
                "weights": {names[b]: [round(float(w), 3) for w in self.weights_[b]] for b in range(len(names))},
                "conditional_independence": self.independence_}


def conditional_independence_test(posterior: np.ndarray, n_deposits: int, relative_variance: np.ndarray,
                                  cells: np.ndarray | None = None) -> dict:
    """Agterberg & Cheng (2002): is the predicted number of deposits T significantly above the observed n?

    Per unique condition (cells sharing one class in every band): ``posterior``
    P, ``cells`` its number of unit cells (1 each when omitted) and
    ``relative_variance`` s^2(P) / P^2 (1/n(D) + the variances of its
    weights, Bonham-Carter 1994). ``T = sum cells * P``, ``s^2(T) = sum
    (cells * P)^2 * relative_variance``. Returns T, s(T), the ratio n / T
    (rule of thumb: below 0.85 the bands are not conditionally independent)
    and the one-sided p of ``T - n`` (below 0.05: reject independence).
    """
    posterior = np.asarray(posterior, dtype=np.float64)
    cells = np.ones(len(posterior)) if cells is None else np.asarray(cells, dtype=np.float64)
    expected = float(np.sum(cells * posterior))
    spread = float(np.sqrt(np.sum((cells * posterior) ** 2 * relative_variance)))
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
