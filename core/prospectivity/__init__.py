"""Prospectivity maps from anomaly maps: KDAL active learning (seed 004).

- :mod:`.stack`: evidence rasters on one grid, and points (deposits, labels,
  high-confidence anomalies) placed on its cells.
- :mod:`.soft_labels`: anomaly scores -> soft targets ``[1 - a, a]``.
- :mod:`.kdal`: the student classifier, least-confidence queries, the cycle.
- :mod:`.classes`: prospectivity classes by area share or P-A crossing.
- :mod:`.validation`: spatially blocked cross-validation of the figures.
- :mod:`.labels`: the labelled pool carried from one cycle to the next.
"""
