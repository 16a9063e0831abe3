"""Commodity readouts: how much a sample and its neighbouring locations are ENRICHED in the commodity suite.

An exploration geologist reads a survey for one commodity (see
``shared/reference/commodity_anomalies.md``): anomalies are enrichments of
the commodity and its pathfinders, and a real target shows as a halo of
several adjacent samples, not as one spike. Every readout here therefore

1. keeps only the **positive** part of each suite element's standardised
   residual (``max(r, 0)``): depletion, leaching and dilution do not count;
2. caps each element's residual at ``cap`` robust standard deviations, so one
   nugget-sized value cannot outweigh a coherent suite (a 20-sigma Au spike
   counts as ``cap``);
3. combines the suite as a weighted mean (weights from
   :func:`core.preprocess.elements.commodity_suite`: the commodity as much as
   all its pathfinders together);
4. counts each **location** once: samples sharing a location (twins, field
   duplicates, see :mod:`core.preprocess.duplicates`) are averaged into one
   location value before any neighbour sees them, so a twin adds no support;
5. smooths over neighbouring locations with a Gaussian kernel (a moving
   average, the oldest halo map in exploration geochemistry; kriging-style
   smoothing without a fitted variogram). The sample's own location has the
   largest weight, so the score rises with the sample's own assays, but an
   isolated spike is diluted by its unenriched neighbours while a halo of
   moderately enriched samples keeps its level.

The kernel's bandwidth adapts to the survey: by default it is the median,
over locations, of the distance to the ``k``-th nearest other location, so
about ``k`` neighbours support each location whatever the sampling density
(stream sediments every ~1 km, soils every 50 m).

Public functions take per-element standardised residuals (n × m, positive =
above background), so any model that has them can use them: the classical
detectors (PCA reconstruction residuals, :func:`mahalanobis_residuals`), the
transformer, and the gridded stacks of Geo-Hgan (:func:`gridded_suite_enrichment`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree

from core.errors import InvalidInputError

DEFAULT_NEIGHBOURS = 6      # locations whose support a location receives (bandwidth = median distance to the 6th)
DEFAULT_CAP = 4.0           # robust standard deviations: beyond this, more of one element adds nothing


def suite_weights(elements: Sequence[str], suite: Mapping[str, float]) -> np.ndarray:
    """Weights (m,) of the suite over the residual columns; 0 for elements outside the suite.

    Raises a clear error when none of the suite's elements is among ``elements``.
    """
    weights = np.array([float(suite.get(el, 0.0)) for el in elements])
    if not np.any(weights > 0):
        raise InvalidInputError(f"none of the suite's elements ({', '.join(suite)}) is among the assays used "
                                f"({', '.join(elements[:12])}{'...' if len(elements) > 12 else ''})")
    return weights / weights.sum()


def sample_enrichment(residuals: np.ndarray, elements: Sequence[str], suite: Mapping[str, float],
                      cap: float = DEFAULT_CAP) -> np.ndarray:
    """Each sample's own suite enrichment: weighted mean of the capped positive residuals (n,)."""
    residuals = np.asarray(residuals, dtype=np.float64)
    if residuals.ndim != 2 or residuals.shape[1] != len(elements):
        raise InvalidInputError(f"residuals must be (samples × {len(elements)} elements), got {residuals.shape}")
    weights = suite_weights(elements, suite)
    used = weights > 0
    positive = np.clip(np.nan_to_num(residuals[:, used], nan=0.0), 0.0, cap)
    return positive @ weights[used]


def location_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-location mean of ``values`` and each sample's location index (locations are 0..L-1)."""
    groups = np.asarray(groups)
    labels, index = np.unique(groups, return_inverse=True)
    counts = np.bincount(index, minlength=len(labels))
    means = np.bincount(index, weights=values, minlength=len(labels)) / counts
    return means, index


def halo_support(location_values: np.ndarray, location_xy: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS,
                 bandwidth_m: float | None = None) -> tuple[np.ndarray, float]:
    """Gaussian-kernel moving average of location values, own location included (weight 1).

    Returns the smoothed values (L,) and the bandwidth used (metres).
    """
    n_loc = len(location_values)
    if n_loc == 1:
        return location_values.astype(np.float64), float(bandwidth_m or 0.0)
    tree = cKDTree(location_xy)
    k = min(3 * neighbours, n_loc - 1) + 1  # beyond ~3 bandwidths a Gaussian weight is negligible
    dist, idx = tree.query(location_xy, k=k)
    if bandwidth_m is None:
        kth = dist[:, min(neighbours, k - 1)]
        bandwidth_m = float(np.median(kth[kth > 0])) if np.any(kth > 0) else 1.0
    if bandwidth_m <= 0:
        raise InvalidInputError("the halo bandwidth must be positive (metres)")
    weights = np.exp(-0.5 * (dist / bandwidth_m) ** 2)  # column 0 is the location itself, weight 1
    smoothed = (weights * location_values[idx]).sum(axis=1) / weights.sum(axis=1)
    return smoothed, bandwidth_m


def suite_enrichment(residuals: np.ndarray, elements: Sequence[str], suite: Mapping[str, float], xy: np.ndarray,
                     groups: np.ndarray | None = None, neighbours: int = DEFAULT_NEIGHBOURS,
                     bandwidth_m: float | None = None, cap: float = DEFAULT_CAP) -> np.ndarray:
    """The commodity readout: suite enrichment supported by neighbouring locations, one score per sample.

    Parameters
    ----------
    residuals : (n, m) per-element standardised residuals, positive = above background.
    elements : the m element names of the residual columns.
    suite : element -> weight (commodity and pathfinders); elements outside it are ignored.
    xy : (n, 2) sample coordinates in metres.
    groups : (n,) location labels (:func:`core.preprocess.duplicates.location_groups`); computed when omitted.
    neighbours : about how many neighbouring locations support each location (sets the bandwidth).
    bandwidth_m : fixed Gaussian bandwidth in metres (overrides ``neighbours``).
    cap : each element's residual counts up to this many robust standard deviations.

    Samples at one location get the same score (they are one piece of evidence).
    """
    if neighbours < 1:
        raise InvalidInputError("the halo readout needs at least one neighbouring location (--halo-neighbours)")
    xy = np.asarray(xy, dtype=np.float64)
    own = sample_enrichment(residuals, elements, suite, cap=cap)
    if xy.shape != (len(own), 2):
        raise InvalidInputError(f"xy must be (samples × 2) metres, got {xy.shape}")
    if groups is None:
        from core.preprocess.duplicates import location_groups

        groups = location_groups(xy)
    per_location, index = location_means(own, groups)
    location_xy = np.zeros((len(per_location), 2))
    location_xy[index] = xy  # samples of one location share (nearly) one position
    smoothed, _ = halo_support(per_location, location_xy, neighbours=neighbours, bandwidth_m=bandwidth_m)
    return smoothed[index]


def robust_centre_scale(residuals: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each column's median and robust spread (IQR / 1.349; the standard deviation, then 1, where that is 0),
    fitted on ``rows``; NaN (a value never measured) is left out. A model keeps them to standardise new samples
    on its training survey's scale."""
    residuals = np.asarray(residuals, dtype=np.float64)
    fit = residuals if rows is None else residuals[rows]
    empty = np.all(np.isnan(fit), axis=0)
    fit = np.where(empty, 0.0, fit)  # a column with no value at all: centre 0, spread 1
    center = np.nanmedian(fit, axis=0)
    q75, q25 = np.nanpercentile(fit, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 1e-12, scale, np.nanstd(fit, axis=0))
    scale = np.where(scale > 1e-12, scale, 1.0)
    return center, scale


def robust_standardise(residuals: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Centre each column on its median and divide by its robust spread (IQR / 1.349), fitted on ``rows``."""
    center, scale = robust_centre_scale(residuals, rows)
    return (np.asarray(residuals, dtype=np.float64) - center) / scale


def mahalanobis_residuals(values: np.ndarray, location: np.ndarray, precision: np.ndarray,
                          suite_columns: np.ndarray | None = None) -> np.ndarray:
    """Per-element conditional residuals of a (robust) Gaussian background, in standard deviations.

    Without ``suite_columns``: ``(P d)_j / sqrt(P_jj)``, element j's deviation
    from its regression on all the other elements (Mahalanobis's per-element
    decomposition). With ``suite_columns`` (boolean, m): the suite's deviation
    from its regression on the elements OUTSIDE the suite only,
    ``P_SS^-1 (P d)_S`` standardised by the conditional covariance ``P_SS^-1``.
    That is the regression-residual method with the suite masked: background
    predicted from what controls the host chemistry (majors, lithophiles), so a
    deposit whose suite elements rise together is not explained away by its own
    pathfinders. Other columns are 0. Positive = enriched.
    """
    d = np.asarray(values, dtype=np.float64) - location
    precision = np.asarray(precision, dtype=np.float64)
    if suite_columns is None or not np.any(suite_columns) or np.all(suite_columns):
        diag = np.sqrt(np.maximum(np.diag(precision), 1e-12))
        return robust_standardise((d @ precision) / diag)
    suite_columns = np.asarray(suite_columns, dtype=bool)
    conditional = np.linalg.pinv(precision[np.ix_(suite_columns, suite_columns)])
    out = np.zeros_like(d)
    out[:, suite_columns] = ((d @ precision)[:, suite_columns] @ conditional.T
                             / np.sqrt(np.maximum(np.diag(conditional), 1e-12)))
    out[:, suite_columns] = robust_standardise(out[:, suite_columns])
    return out


def gridded_suite_enrichment(residual_bands: np.ndarray, elements: Sequence[str], suite: Mapping[str, float],
                             radius_cells: float = 2.0, cap: float = DEFAULT_CAP) -> np.ndarray:
    """The readout on a raster stack: Gaussian neighbourhood mean of one-sided suite residuals (H, W).

    ``residual_bands`` is (m, H, W) standardised residuals per element band,
    NaN where there is no data; nodata stays NaN and does not dilute its
    neighbours (normalised convolution).
    """
    from scipy.ndimage import gaussian_filter

    bands = np.asarray(residual_bands, dtype=np.float64)
    if bands.ndim != 3 or bands.shape[0] != len(elements):
        raise InvalidInputError(f"residual bands must be ({len(elements)} × rows × columns), got {bands.shape}")
    weights = suite_weights(elements, suite)
    valid = np.all(np.isfinite(bands[weights > 0]), axis=0)
    own = np.tensordot(weights, np.clip(np.nan_to_num(bands, nan=0.0), 0.0, cap), axes=1)
    own = np.where(valid, own, 0.0)
    num = gaussian_filter(own, sigma=radius_cells, mode="constant")
    den = gaussian_filter(valid.astype(np.float64), sigma=radius_cells, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(valid, out, np.nan)
