"""Matching known deposits to the samples that represent them.

A deposit is judged by the score of its *nearest sample*. A deposit whose
nearest sample is farther than a maximum distance lies outside the survey:
it is excluded from every figure and reported (count and row numbers), never
silently scored by a sample that has nothing to say about it.

Default maximum distance: ``OUTSIDE_SPACING_FACTOR`` (10) times the median
spacing between distinct sample locations. Ten spacings keeps deposits that
sit in sparsely sampled ground inside a survey (the published protocol scores
them, so numbers stay comparable: on GSWA sed1, spacing 0.93 km, the farthest
of the 32 deposits is 7.7 km from a sample) and drops deposits that lie
clearly beyond the survey's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from core.errors import InvalidInputError
from core.grid.spacing import as_xy, median_sample_spacing
from core.io.rasters import cells_of

OUTSIDE_SPACING_FACTOR = 10.0


@dataclass
class DepositMatch:
    """Each deposit's nearest sample, its distance, and whether it is inside the survey."""

    nearest_index: np.ndarray  # (n_deposits,) row of the nearest sample (lowest row on ties)
    distance_km: np.ndarray  # (n_deposits,) distance to that sample
    inside: np.ndarray  # (n_deposits,) bool
    max_distance_km: float  # the threshold used

    @property
    def outside_index(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.inside)]


def default_max_deposit_distance_km(sample_xy: np.ndarray) -> float:
    """``OUTSIDE_SPACING_FACTOR`` x the median distinct-location spacing, in km (inf for one location)."""
    spacing = median_sample_spacing(sample_xy)
    if not np.isfinite(spacing) or spacing <= 0:
        return float("inf")
    return OUTSIDE_SPACING_FACTOR * spacing / 1000.0


def match_deposits(
    sample_xy: np.ndarray, deposit_xy: np.ndarray, max_distance_km: float | None = None
) -> DepositMatch:
    """Find each deposit's nearest sample (projected metres in, km out).

    Ties (several samples equally near, e.g. duplicates at one location) go to
    the lowest sample row, as ``argmin`` over a distance matrix would.
    """
    sample_xy = as_xy(sample_xy, "sample coordinates")
    deposit_xy = as_xy(deposit_xy, "deposit coordinates")
    if max_distance_km is None:
        max_distance_km = default_max_deposit_distance_km(sample_xy)
    tree = cKDTree(sample_xy)
    nearest = np.empty(len(deposit_xy), dtype=np.int64)
    distance = np.empty(len(deposit_xy))
    if len(deposit_xy):
        approx, _ = tree.query(deposit_xy, k=1)
        for j, (point, radius) in enumerate(zip(deposit_xy, approx)):
            # Gather every sample at (about) the nearest distance, then break ties
            # exactly, so that the answer does not depend on the tree's internals.
            candidates = np.asarray(tree.query_ball_point(point, radius * (1 + 1e-9) + 1e-9), dtype=np.int64)
            exact = np.sqrt(((sample_xy[candidates] - point) ** 2).sum(axis=1))
            best = candidates[exact == exact.min()].min()
            nearest[j] = best
            distance[j] = exact.min() / 1000.0
    inside = distance <= max_distance_km
    return DepositMatch(nearest, distance, inside, float(max_distance_km))


def locate_deposit_cells(score_grid, transform, deposit_xy, valid_mask=None):
    """Check a one-band score grid and find each deposit's cell.

    Returns ``(grid, valid, cells, inside)``: the grid as float, the valid
    cells (finite and within ``valid_mask``), each deposit's (row, col), and
    whether that cell is on the raster and valid. Deposits elsewhere are
    outside: reported, not scored.
    """
    grid = np.asarray(score_grid, dtype=float)
    if grid.ndim != 2:
        raise InvalidInputError(f"a score raster must have one band; got shape {grid.shape}")
    valid = np.isfinite(grid)
    if valid_mask is not None:
        valid &= np.asarray(valid_mask, dtype=bool)
    rows, cols, inside = cells_of(as_xy(deposit_xy, "deposit coordinates"), transform, grid.shape)
    inside[inside] = valid[rows[inside], cols[inside]]
    return grid, valid, np.c_[rows, cols], inside
