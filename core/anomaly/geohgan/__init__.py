"""Geo-Hgan (Ding et al. 2024): unsupervised anomaly detection on multi-band geochemical rasters.

Split as in torchgeo: :mod:`.tiles` / :mod:`.dataset` (sliding tiles with a
nodata mask), :mod:`.normalise` (fitted per-band scaling), :mod:`.model`
(plain ``nn.Module``s), :mod:`.trainer` (the two published training steps),
:mod:`.scoring` (tile and cell scores, windowed), :mod:`.anomfilter`
(high-confidence anomalies), :mod:`.detector` (fit / score / save / load)
and :mod:`.streaming` (the same on files read in windows of rows, for rasters
larger than memory; what ``geoanomaly geohgan`` uses).
"""

from core.anomaly.geohgan.anomfilter import AnomFilterResult, anom_filter, tukey_upper_fence
from core.anomaly.geohgan.detector import GeoHganConfig, GeoHganDetector
from core.anomaly.geohgan.scoring import SCORE_NAMES

__all__ = ["SCORE_NAMES", "AnomFilterResult", "GeoHganConfig", "GeoHganDetector", "anom_filter",
           "tukey_upper_fence"]
