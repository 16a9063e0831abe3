"""Spatial context of every sample: its K nearest neighbours, and batches of them.

The background at a sample is what its neighbourhood predicts, so every sample
(the *query*) gets the K nearest *other* samples as context. Neighbours are
found with a k-d tree in projected metres, so the cost is O(N log N) to build
and O(N * K) to train and score - never the whole survey per sample.

Co-located samples (duplicates, re-assays, several size fractions of one
site: 572 of the 1,392 rows of the GSWA sed1 survey share a location) are real,
distinct samples, but they measure the same spot. Left in each other's
context they let the model copy a near-twin of the query instead of
estimating the background from the surroundings - a soft form of the target
leak this model exists to avoid - and a pair of anomalous duplicates would
explain each other away. In sed1 most co-located pairs are one sample
compiled twice from two reports (same composite sample id, often the same
assays): keeping them as context scores a sample by whether it has such a
twin (that indicator alone reaches AUC 0.79 there), not by its chemistry. By default (``exclude_colocated=True``) every sample
within ``colocated_tolerance_m`` of the query is therefore left out of its
context, not only the query itself; each duplicate is still a query of its
own and still context for every other location. With
``exclude_colocated=False`` only the query's own row is excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from core.errors import InvalidInputError


@dataclass
class NeighbourContext:
    """The K context samples of each query, as row indices into the survey."""

    indices: np.ndarray  # (n, K) int64; -1 where fewer than K neighbours exist
    distances_m: np.ndarray  # (n, K) float64, metres; inf where the index is -1
    offsets_m: np.ndarray  # (n, K, 2) float64, neighbour xy minus query xy; 0 where missing

    @property
    def missing(self) -> np.ndarray:
        """(n, K) bool: slots with no neighbour (small surveys, big duplicate groups)."""
        return self.indices < 0

    def typical_spacing_m(self) -> float:
        """Median distance to the K-th (farthest) context sample: the scale of offsets."""
        last = np.where(self.missing, -np.inf, self.distances_m).max(axis=1) if self.indices.size else np.array([])
        last = last[np.isfinite(last) & (last > 0)]
        return float(np.median(last)) if last.size else 1.0


def find_neighbours(
    xy: np.ndarray,
    k: int,
    exclude_colocated: bool = True,
    colocated_tolerance_m: float = 1.0,
    context_rows: np.ndarray | None = None,
    guard: int = 0,
) -> NeighbourContext:
    """The ``k`` nearest other samples of every sample, by Euclidean distance in metres.

    ``xy`` must be projected coordinates in metres (``SampleTable.xy``); the
    query's own row is never in its context. See the module docstring for
    ``exclude_colocated``. ``context_rows`` (bool per sample, default all)
    says which samples may serve as context: the transformer passes False
    for repeats of a sample compiled twice, so one sample fills one slot.

    ``guard`` skips that many nearest context samples: the context is the
    (guard+1)-th to (guard+k)-th nearest. A deposit's halo spans several
    adjacent samples; a background read from inside the halo explains the
    deposit away, so the guard keeps the halo out and the context regional.
    Where fewer than ``guard + k`` samples exist, the guard gives way (the
    context keeps its k samples, the nearest ones beyond a smaller guard).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InvalidInputError(f"sample coordinates must be an (n, 2) array, got shape {xy.shape}")
    if not np.isfinite(xy).all():
        raise InvalidInputError("some sample coordinates are missing or not finite; drop or fix those samples")
    n = len(xy)
    if k < 1:
        raise InvalidInputError(f"the number of neighbours must be at least 1, got {k}")
    pool = np.arange(n) if context_rows is None else np.flatnonzero(np.asarray(context_rows, dtype=bool))
    if context_rows is not None and len(np.asarray(context_rows)) != n:
        raise InvalidInputError(f"context_rows must hold one flag per sample ({n})")
    tree = cKDTree(xy[pool])
    # How many rows can sit at one spot decides how far past k we must look.
    if exclude_colocated:
        group_sizes = np.array([len(g) for g in tree.query_ball_point(xy, r=colocated_tolerance_m)])
        extra = int(group_sizes.max()) if n else 1
    else:
        extra = 1
    if guard < 0:
        raise InvalidInputError(f"the guard (nearest samples left out) must be 0 or more, got {guard}")
    n_query = min(len(pool), k + guard + extra)
    if n_query < 2:
        raise InvalidInputError(f"a spatial context needs at least 2 samples at distinct rows, got {len(pool)}")
    distances, indices = tree.query(xy, k=n_query)
    distances = distances.reshape(n, n_query)
    indices = pool[indices.reshape(n, n_query)].astype(np.int64)

    if exclude_colocated:
        keep = distances > colocated_tolerance_m
    else:
        keep = indices != np.arange(n)[:, None]
    # Stable order: kept neighbours first, nearest first; the rest become slots marked -1.
    order = np.argsort(~keep, axis=1, kind="stable")
    skip = np.clip(keep.sum(axis=1) - k, 0, guard)  # per query: the guard, or less where samples are few
    order = np.take_along_axis(order, skip[:, None] + np.arange(min(k, n_query)), axis=1)
    rows = np.arange(n)[:, None]
    out_idx = np.where(keep[rows, order], indices[rows, order], -1)
    out_dist = np.where(out_idx >= 0, distances[rows, order], np.inf)
    if out_idx.shape[1] < k:  # fewer samples than k: pad
        pad = k - out_idx.shape[1]
        out_idx = np.pad(out_idx, ((0, 0), (0, pad)), constant_values=-1)
        out_dist = np.pad(out_dist, ((0, 0), (0, pad)), constant_values=np.inf)
    if (out_idx < 0).all(axis=1).any():
        lonely = int((out_idx < 0).all(axis=1).sum())
        raise InvalidInputError(
            f"{lonely} sample(s) have no other sample at a different location to reconstruct them from; "
            "the survey needs samples at two or more distinct locations"
        )
    safe = np.where(out_idx >= 0, out_idx, 0)
    offsets = np.where((out_idx >= 0)[..., None], xy[safe] - xy[:, None, :], 0.0)
    return NeighbourContext(indices=out_idx, distances_m=out_dist, offsets_m=offsets)


class NeighbourContextDataset:
    """Element values, context indices and scaled offsets held as tensors on one device.

    ``batch(query_rows)`` gathers the context of a batch of queries. No
    DataLoader: everything fits in memory (O(N * K)), and gathering by index
    on the device is faster than collating Python objects.
    """

    def __init__(self, values: np.ndarray, context: NeighbourContext, offset_scale_m: float, device,
                 hidden_in_context: np.ndarray | None = None) -> None:
        """``hidden_in_context`` (p,) bool: elements a context sample shows as 0 (the survey's centre after
        scaling), so a sample's neighbours lend it their lithology but not their commodity suite."""
        import torch

        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or len(values) != len(context.indices):
            raise InvalidInputError(
                f"element values {values.shape} do not match {len(context.indices)} sample locations"
            )
        if not np.isfinite(values).all():
            raise InvalidInputError("element values contain missing or infinite numbers after preprocessing")
        self.device = device
        self.n_samples, self.n_elements = values.shape
        self.k = context.indices.shape[1]
        self.values = torch.as_tensor(values, device=device)
        self.context_values = self.values
        if hidden_in_context is not None and np.any(hidden_in_context):
            shown = values.copy()
            shown[:, np.asarray(hidden_in_context, dtype=bool)] = 0.0
            self.context_values = torch.as_tensor(shown, device=device)
        self.missing = torch.as_tensor(context.missing, device=device)
        self.indices = torch.as_tensor(np.where(context.missing, 0, context.indices), device=device)
        scaled = context.offsets_m / float(offset_scale_m)
        radius = np.sqrt((scaled**2).sum(axis=-1, keepdims=True))
        self.offsets = torch.as_tensor(np.concatenate([scaled, radius], axis=-1).astype(np.float32), device=device)
        self.distances_m = torch.as_tensor(
            np.where(context.missing, 0.0, context.distances_m).astype(np.float32), device=device
        )

    def __len__(self) -> int:
        return self.n_samples

    def batch(self, query_rows):
        """(target values, context values, context offsets, missing slots) of the queries."""
        context_rows = self.indices[query_rows]
        return (
            self.values[query_rows],
            self.context_values[context_rows],
            self.offsets[query_rows],
            self.missing[query_rows],
        )
