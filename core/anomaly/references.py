"""The two maps a geologist makes by hand, scored in every run with a commodity so models are judged against them.

``commodity_level``
    The commodity's own assay on a log scale, below-detection values at the
    run's fraction of the limit. Samples where it was not assayed rank last
    (a hand-coloured map leaves them blank: no evidence of enrichment). For a
    two-metal commodity (Pb-Zn) it is the mean of the metals' robust z-scores
    of log concentration, so neither metal's unit dominates. Ranking is the
    same as colouring the samples by the raw assay.

``pathfinder_index``
    An additive index of standardised log-ratio values of the suite, the
    geologist's "weighted sums" (Garrett & Grunsky 2001, Geochem. Explor.
    Environ. Anal. 1:135-141; additive pathfinder indices, Smith, Perdrix &
    Davis 1983, J. Geochem. Explor. 19). Definition used here: the CLR of every
    kept element (so dilution by quartz or carbonate does not move it), each
    element robust-standardised over the survey (median, IQR / 1.349), and the
    mean over the suite (commodity and pathfinders, equal weights, the way an
    index is made by hand) of the positive parts ``max(z, 0)``: an index of
    enrichment, so a depleted element does not cancel an enriched one.

Neither uses positions or a model: they are the bar a model must clear.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.anomaly.readouts import robust_standardise
from core.errors import InvalidInputError
from core.preprocess.elements import commodity_elements
from core.preprocess.transforms import clr

REFERENCES = ("commodity_level", "pathfinder_index")


def commodity_level(assays_ppm: np.ndarray, elements: Sequence[str], commodity: str,
                    not_assayed: np.ndarray | None = None) -> np.ndarray:
    """The commodity's own level (n,): log concentration, or the mean robust z of logs for Pb-Zn.

    ``not_assayed`` (n, m) marks assays that are missing: those samples get the lowest level.
    """
    assays_ppm = np.asarray(assays_ppm, dtype=np.float64)
    columns = [list(elements).index(el) for el in commodity_elements(commodity) if el in elements]
    if not columns:
        raise InvalidInputError(f"the commodity {commodity} is not among the assays used ({', '.join(elements)})")
    logs = np.log(assays_ppm[:, columns])
    if not_assayed is not None:
        gap = np.asarray(not_assayed, dtype=bool)[:, columns]
        logs = np.where(gap, np.nan, logs)
    level = logs[:, 0] if len(columns) == 1 else np.nanmean(robust_standardise_nan(logs), axis=1)
    lowest = np.nanmin(level) - 1.0 if np.any(np.isfinite(level)) else 0.0
    return np.where(np.isfinite(level), level, lowest)


def robust_standardise_nan(values: np.ndarray) -> np.ndarray:
    """Robust z-scores per column ignoring NaN (which stay NaN)."""
    center = np.nanmedian(values, axis=0)
    q75, q25 = np.nanpercentile(values, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 1e-12, (q75 - q25) / 1.349, 1.0)
    return (values - center) / scale


def pathfinder_index(assays_ppm: np.ndarray, elements: Sequence[str], suite: Sequence[str]) -> np.ndarray:
    """Mean over the suite of one-sided robust z-scores of CLR values (n,); see the module docstring."""
    used = [j for j, el in enumerate(elements) if el in set(suite)]
    if not used:
        raise InvalidInputError(f"none of the suite's elements ({', '.join(suite)}) is among the assays used")
    z = robust_standardise(clr(np.asarray(assays_ppm, dtype=np.float64)))
    return np.clip(z[:, used], 0.0, None).mean(axis=1)


def hand_made_references(assays_ppm: np.ndarray, elements: Sequence[str], commodity: str,
                         suite: Sequence[str], not_assayed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Both references, by name (the names in :data:`REFERENCES`)."""
    return {"commodity_level": commodity_level(assays_ppm, elements, commodity, not_assayed),
            "pathfinder_index": pathfinder_index(assays_ppm, elements, suite)}
