"""The 20-run sample-level AUC protocol (``reference/evaluation.md`` section 1), and the cell-level one (section 3).

Sample level, exactly as the public GeoChemAD / OpenGADBench protocol:

- positives: for every deposit, the score of its nearest sample;
- negatives: samples at least ``min_km`` (5.0) from every deposit, or all
  samples when none is that far (small surveys);
- each run draws ``k`` = number of deposits negatives *with replacement*
  (``rng.choice(negatives, size=k, replace=True)``) and computes ROC-AUC of
  positives against them (``sklearn.metrics.roc_auc_score``: ties count 1/2);
- ``runs`` (20) runs from one ``numpy.random.default_rng(seed)`` (42);
  reported as mean +/- std (population std, ``ddof=0``).

Distances are Euclidean on projected coordinates in metres, divided by 1000.
Deposits outside the survey (see :mod:`core.evaluate.deposits`) are left out
of the positives and of ``k``, and reported. The negative pool keeps its
distance to *every* deposit, outside ones included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from sklearn.metrics import average_precision_score, roc_auc_score

from core.errors import InvalidInputError
from core.evaluate.deposits import locate_deposit_cells, match_deposits
from core.grid.spacing import as_xy


@dataclass
class AucResult:
    mean: float
    std: float
    runs: list[float]
    n_deposits: int
    n_used: int
    n_outside: int
    outside_index: list[int]
    success_rate_top5: float
    average_precision: float
    min_km: float = 5.0
    n_negatives: int = 0  # size of the pool the negatives are drawn from
    negatives_are_all_samples: bool = False  # True when no sample was min_km from every deposit
    max_deposit_distance_km: float = float("inf")
    deposit_distance_km: list[float] = field(default_factory=list)  # per deposit, to its nearest sample
    nearest_sample_index: list[int] = field(default_factory=list)  # per deposit

    def to_dict(self) -> dict:
        data = asdict(self)
        if not np.isfinite(self.max_deposit_distance_km):
            data["max_deposit_distance_km"] = None
        return data

    def summary(self) -> str:
        """One line for a terminal or a log."""
        line = (
            f"AUC {self.mean:.3f} +/- {self.std:.3f} ({len(self.runs)} runs, {self.n_used} deposits, "
            f"{self.n_negatives} background samples >= {self.min_km:g} km); "
            f"success rate top 5 %: {self.success_rate_top5 * 100:.1f} %; average precision {self.average_precision:.3f}"
        )
        if self.n_outside:
            line += f"; {self.n_outside} deposit(s) outside the survey not scored (rows {self.outside_index})"
        return line


def auc_protocol(
    sample_xy,
    scores,
    deposit_xy,
    min_km: float = 5.0,
    runs: int = 20,
    seed: int = 42,
    max_deposit_distance_km: float | None = None,
) -> AucResult:
    """Run the sample-level protocol; ``sample_xy``/``deposit_xy`` in projected metres, higher score = more anomalous."""
    sample_xy = as_xy(sample_xy, "sample coordinates")
    deposit_xy = as_xy(deposit_xy, "deposit coordinates")
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if len(scores) != len(sample_xy):
        raise InvalidInputError(f"{len(scores)} scores for {len(sample_xy)} samples")
    if not np.isfinite(scores).all():
        raise InvalidInputError(
            f"{int((~np.isfinite(scores)).sum())} sample score(s) are missing or not finite"
        )
    if len(sample_xy) < 2:
        raise InvalidInputError("the AUC protocol needs at least 2 samples")
    if len(deposit_xy) == 0:
        raise InvalidInputError("the deposits file holds no deposits")
    if runs < 1:
        raise InvalidInputError(f"runs must be at least 1, got {runs}")

    match = match_deposits(sample_xy, deposit_xy, max_deposit_distance_km)
    used = match.nearest_index[match.inside]
    if len(used) == 0:
        raise InvalidInputError(
            f"none of the {len(deposit_xy)} deposits lies within {match.max_distance_km:.3g} km of a sample: "
            "are samples and deposits in the same area and CRS?"
        )
    positives = scores[used]

    nearest_deposit_km = cKDTree(deposit_xy).query(sample_xy, k=1)[0] / 1000.0
    background = nearest_deposit_km >= min_km
    all_samples = not background.any()
    negatives = scores if all_samples else scores[background]

    k = len(positives)
    labels = np.r_[np.ones(k), np.zeros(k)]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(runs):
        drawn = rng.choice(negatives, size=k, replace=True)
        aucs.append(float(roc_auc_score(labels, np.r_[positives, drawn])))

    return AucResult(
        mean=float(np.mean(aucs)),
        std=float(np.std(aucs)),
        runs=aucs,
        n_deposits=len(deposit_xy),
        n_used=k,
        n_outside=int((~match.inside).sum()),
        outside_index=match.outside_index,
        success_rate_top5=success_rate_at(scores, used, 0.05),
        average_precision=_average_precision(scores, used, background if not all_samples else None),
        min_km=float(min_km),
        n_negatives=len(negatives),
        negatives_are_all_samples=bool(all_samples),
        max_deposit_distance_km=match.max_distance_km,
        deposit_distance_km=[float(d) for d in match.distance_km],
        nearest_sample_index=[int(i) for i in match.nearest_index],
    )


def success_rate_at(scores: np.ndarray, positive_index: np.ndarray, top_share: float) -> float:
    """Share of deposits whose sample ranks in the top ``top_share`` of all samples.

    A sample is in the top 5 % when fewer than 5 % of samples score strictly
    higher (ties at the threshold count as inside).
    """
    scores = np.asarray(scores, dtype=float)
    ordered = np.sort(scores)
    higher = len(scores) - np.searchsorted(ordered, scores[positive_index], side="right")
    return float(np.mean(higher < top_share * len(scores)))


def _average_precision(
    scores: np.ndarray, positive_index: np.ndarray, background: np.ndarray | None
) -> float:
    """Average precision of deposit samples (one each) against the background pool (all others if None)."""
    is_positive = np.zeros(len(scores), dtype=bool)
    is_positive[positive_index] = True
    keep = np.ones(len(scores), dtype=bool) if background is None else (background | is_positive)
    return float(average_precision_score(is_positive[keep], scores[keep]))


# --- section 3: raster cells ------------------------------------------------


@dataclass
class CellAucResult:
    auc: float
    n_positive_cells: int
    n_negative_cells: int
    n_deposits: int
    n_used: int
    n_outside: int
    outside_index: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def cell_auc(score_grid, transform, deposit_xy, valid_mask=None) -> CellAucResult:
    """ROC-AUC of raster cells: a deposit's cell and its 8 neighbours are positive, every other valid cell negative.

    ``score_grid`` is (rows, cols) with NaN for nodata; cells outside
    ``valid_mask`` (default: finite cells) count neither way, and deposits on
    them or outside the raster are reported, not scored.
    """
    grid, valid, cells, inside = locate_deposit_cells(score_grid, transform, deposit_xy, valid_mask)
    if not inside.any():
        raise InvalidInputError("no deposit lies on a valid cell of the score raster")
    positive = np.zeros(grid.shape, dtype=bool)
    for row, col in cells[inside]:
        positive[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = True
    positive &= valid
    labels = positive[valid]
    if labels.all():
        raise InvalidInputError(
            "every valid cell is within one cell of a deposit: no background cells to compare with"
        )
    return CellAucResult(
        auc=float(roc_auc_score(labels, grid[valid])),
        n_positive_cells=int(labels.sum()),
        n_negative_cells=int((~labels).sum()),
        n_deposits=len(cells),
        n_used=int(inside.sum()),
        n_outside=int((~inside).sum()),
        outside_index=[int(i) for i in np.flatnonzero(~inside)],
    )
