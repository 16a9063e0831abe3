"""Spatially blocked cross-validation of prospectivity figures.

When deposits are also training labels, a map scored on those same deposits
flatters itself. The grid is cut into square blocks; blocks are dealt to
folds (blocks holding deposits first, balancing the number of deposits per
fold); each fold's deposits are held out, the whole procedure is re-run on
the other deposits with the fold's blocks closed to labels and queries, and
each held-out deposit is scored on the map that never saw it. The cells
within ``buffer_cells`` of a held-out deposit are closed too, even where
they spill into a neighbouring block, so that no label, query or oracle
answer in training touches a held-out deposit's neighbourhood
(evaluation.md, section 3).

The figure per deposit is its *capture area share*: the share of valid cells
scoring at least as high as the deposit's cell. "Share of deposits captured
in the top 10 % of the area" is the share of deposits whose capture area
share is at most 0.10; the success-rate curve is the same for every area
share from 0 to 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInputError
from core.evaluate.curves import SuccessRateCurve, success_curve
from core.prospectivity.stack import near_cells


@dataclass
class BlockedFolds:
    fold_of_cell: np.ndarray  # (n_valid,) fold of each valid cell
    fold_of_deposit: np.ndarray  # (n_deposits,) fold of each deposit
    n_folds: int
    block_cells: int  # side of a block, in cells
    closed: list[np.ndarray]  # per fold: bool per valid cell, the fold's blocks + its deposits' neighbourhoods

    def closed_cells(self, fold: int) -> np.ndarray:
        """Bool per valid cell: no label, query or answer may come from here when ``fold`` is held out."""
        return self.closed[fold]


def blocked_folds(
    rows: np.ndarray,
    cols: np.ndarray,
    deposit_cells: np.ndarray,
    n_folds: int = 5,
    block_cells: int | None = None,
    seed: int = 0,
    buffer_cells: int = 1,
) -> BlockedFolds:
    """Deal square blocks of ``block_cells`` (default: 1/16 of the longer grid side) to ``n_folds`` folds.

    The default block (13 km on the 200 km GSWA sed1 grid) is much wider than a
    label's footprint (3 x 3 cells) and than the gridding search radius (about
    5 km there), so nothing a held-out deposit touches is seen in training,
    while a cluster of deposits is still split over a few folds.
    """
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    if block_cells is None:
        block_cells = max(1, int(round(max(rows.max() + 1, cols.max() + 1) / 16)))
    block_cells = int(block_cells)
    if block_cells < 1:
        raise InvalidInputError(f"the cross-validation block must be at least one cell, got {block_cells}")
    n_block_cols = int(cols.max()) // block_cells + 1
    block = (rows // block_cells) * n_block_cols + cols // block_cells
    deposit_blocks, counts = np.unique(block[deposit_cells], return_counts=True)
    n_folds = min(int(n_folds), len(deposit_blocks))
    if n_folds < 2:
        raise InvalidInputError(
            f"spatial cross-validation needs deposits in at least two blocks of {block_cells} cells; "
            f"found deposits in {len(deposit_blocks)}: use a smaller block (--cv-block) or more deposits"
        )
    rng = np.random.default_rng(seed)
    fold_of_block: dict[int, int] = {}
    # Largest blocks first, each to the fold holding fewest deposits so far (random tie order).
    shuffled = rng.permutation(len(deposit_blocks))
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    load = np.zeros(n_folds)
    for i in order:
        fold = int(np.argmin(load))
        fold_of_block[int(deposit_blocks[i])] = fold
        load[fold] += counts[i]
    other = np.setdiff1d(np.unique(block), deposit_blocks)
    for b, fold in zip(other, rng.integers(0, n_folds, len(other))):
        fold_of_block[int(b)] = int(fold)
    blocks, inverse = np.unique(block, return_inverse=True)
    fold_of_cell = np.array([fold_of_block[int(b)] for b in blocks], dtype=np.int64)[inverse.reshape(-1)]
    fold_of_deposit = fold_of_cell[deposit_cells]
    closed = [(fold_of_cell == f) | near_cells(rows, cols, deposit_cells[fold_of_deposit == f], buffer_cells)
              for f in range(n_folds)]
    return BlockedFolds(fold_of_cell, fold_of_deposit, n_folds, block_cells, closed)


def capture_area_shares(probability: np.ndarray, deposit_cells: np.ndarray) -> np.ndarray:
    """Per deposit: the share of valid cells scoring at least as high as its cell."""
    ordered = np.sort(np.asarray(probability, dtype=float))
    values = np.asarray(probability, dtype=float)[np.asarray(deposit_cells, dtype=np.int64)]
    return 1.0 - np.searchsorted(ordered, values, side="left") / ordered.size


def cross_validated_shares(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    deposit_cells: np.ndarray,
    folds: BlockedFolds,
    on_fold: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Capture area share of every deposit on a map fitted without its fold.

    ``fit_predict(train_deposit_cells, closed_cells)`` returns P(prospective)
    per valid cell; ``closed_cells`` (bool per valid cell) is the held-out
    area, where no label may be used and no query asked.
    """
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    shares = np.full(len(deposit_cells), np.nan)
    for fold in range(folds.n_folds):
        held_out = folds.fold_of_deposit == fold
        probability = fit_predict(deposit_cells[~held_out], folds.closed_cells(fold))
        shares[held_out] = capture_area_shares(probability, deposit_cells[held_out])
        if on_fold is not None:
            on_fold(fold + 1, folds.n_folds)
    return shares


def pooled_success_curve(shares: np.ndarray, n_cells: int) -> SuccessRateCurve:
    """The success-rate curve of deposits each scored on its own fold's map (from their capture area shares).

    Every valid cell enters at an area share of k / n_cells; a deposit is
    captured at its share. Expressed as scores (minus the share) this is an
    ordinary curve, so figures and plots are those of :mod:`core.evaluate.curves`.
    """
    area_entry = np.arange(1, n_cells + 1) / n_cells
    return success_curve(-area_entry, -np.asarray(shares, dtype=float), unit="cells")


@dataclass
class CrossValidation:
    shares: np.ndarray  # capture area share of each deposit on its fold's map
    fold_maps: list[np.ndarray]  # P(prospective) per valid cell, one map per fold
    folds: BlockedFolds
    curve: SuccessRateCurve  # pooled over folds

    def to_dict(self) -> dict:
        return {"folds": self.folds.n_folds, "block_cells": self.folds.block_cells,
                "deposits_per_fold": np.bincount(self.folds.fold_of_deposit, minlength=self.folds.n_folds).tolist(),
                **self.curve.to_dict()}


def cross_validate(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    deposit_cells: np.ndarray,
    folds: BlockedFolds,
    on_fold: Callable[[int, int], None] | None = None,
) -> CrossValidation:
    """Run ``fit_predict`` once per fold (see :func:`cross_validated_shares`) and pool the held-out deposits."""
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    maps: list[np.ndarray] = []

    def keep_map(train: np.ndarray, closed: np.ndarray) -> np.ndarray:
        maps.append(np.asarray(fit_predict(train, closed), dtype=float))
        return maps[-1]

    shares = cross_validated_shares(keep_map, deposit_cells, folds, on_fold)
    return CrossValidation(shares, maps, folds, pooled_success_curve(shares, len(folds.fold_of_cell)))
