"""Samples that share a location: real field duplicates, or one sample compiled twice.

Compilations of legacy surveys often list one physical sample under several
ids (the shared GSWA sed1 data: 1,095 of 1,392 rows share a location, nearly
all with identical assays). Such twins are not independent evidence: a model
that lets a twin see its sample, or a distance to the nearest sample in
element space, rewards "has a twin" rather than chemistry. Nothing is
removed; the run record and log say how many there are so the geologist can
judge, and the spatial models keep co-located samples out of each other's
context.
"""

from __future__ import annotations

import numpy as np


def colocated_report(xy: np.ndarray, values: np.ndarray, tolerance_m: float = 1e-3) -> dict:
    """Counts of samples sharing a location, and of those whose element values are identical too."""
    keys = np.round(np.asarray(xy, dtype=float) / tolerance_m).astype(np.int64)
    _, location, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    location = location.reshape(-1)
    shared = counts[location] > 1
    rows = np.column_stack([location, np.asarray(values, dtype=np.float64)])
    _, record, record_counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    identical = record_counts[record.reshape(-1)] > 1
    return {"samples": int(len(location)), "locations": int(len(counts)), "sharing_a_location": int(shared.sum()),
            "identical_to_a_co_located_sample": int(identical.sum())}
