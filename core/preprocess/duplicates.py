"""Samples that share a location: real field duplicates, or one sample compiled twice.

Compilations of legacy surveys often list one physical sample under several
ids (the shared GSWA sed1 data: 1,095 of 1,392 rows share a location, nearly
all with identical assays). Such twins are not independent evidence: a model
that lets a twin see its sample, or a distance to the nearest sample in
element space, rewards "has a twin" rather than chemistry. Nothing is
removed from the outputs: every row is scored, the run record and log say how
many twins there are so the geologist can judge, the spatial models keep
co-located samples out of each other's context, and the transformer trains on
each repeated sample once (``repeated_samples``) with whole locations on one
side of its validation split (``location_groups``).
"""

from __future__ import annotations

import numpy as np


def location_groups(xy: np.ndarray, tolerance_m: float = 1e-3) -> np.ndarray:
    """One integer label per sample; samples within ``tolerance_m`` of each other (chained) share it.

    Labels are 0..n_locations-1 in order of first appearance, so they are
    reproducible for a given table.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=np.float64)
    n = len(xy)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(xy).query_pairs(r=tolerance_m, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    relabel = np.empty(len(first), dtype=np.int64)
    relabel[np.argsort(first)] = np.arange(len(first))
    return relabel[labels]


def repeated_samples(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """True for each row that repeats an earlier row of its location group with identical values.

    The first row of every such set stays False: the sample itself, counted once.
    """
    rows = np.column_stack([np.asarray(groups, dtype=np.float64), np.asarray(values, dtype=np.float64)])
    _, first = np.unique(rows, axis=0, return_index=True)
    repeated = np.ones(len(rows), dtype=bool)
    repeated[first] = False
    return repeated


def colocated_report(xy: np.ndarray, values: np.ndarray, tolerance_m: float = 1e-3) -> dict:
    """Counts of samples sharing a location, and of those whose element values are identical too."""
    location = location_groups(xy, tolerance_m)
    counts = np.bincount(location)
    shared = counts[location] > 1
    rows = np.column_stack([location, np.asarray(values, dtype=np.float64)])
    _, record, record_counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    identical = record_counts[record.reshape(-1)] > 1
    return {"samples": int(len(location)), "locations": int(len(counts)), "sharing_a_location": int(shared.sum()),
            "identical_to_a_co_located_sample": int(identical.sum())}
