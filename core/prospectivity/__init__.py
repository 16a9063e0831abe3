"""Prospectivity maps from anomaly maps: KDAL active learning (seed 004).

In a notebook, one cycle as the command runs it::

    from core.prospectivity import CycleSettings, run_cycle
    run = run_cycle(["anomaly_score.tif"], "deposits.csv", settings=CycleSettings(cycles=5))
    run.write("pros/auto")

- :mod:`.cycle`: one cycle from files to figures (:func:`run_cycle`, :class:`CycleSettings`).
- :mod:`.stack`: evidence rasters on one grid, and points (deposits, labels,
  high-confidence anomalies) placed on its cells.
- :mod:`.soft_labels`: anomaly scores -> soft targets ``[1 - a, a]``.
- :mod:`.kdal`: the student classifier, least-confidence queries, the simulated geologist.
- :mod:`.baselines`: weights of evidence, logistic regression, random forest.
- :mod:`.classes`: prospectivity classes by area share or P-A crossing.
- :mod:`.validation`: spatially blocked cross-validation of the figures.
- :mod:`.labels`: the labelled pool carried from one cycle to the next.
- :mod:`.plots`: success-rate curves beside the prediction-area plot.
"""

from __future__ import annotations

__all__ = ["CycleSettings", "KDALConfig", "run_cycle"]


def __getattr__(name: str):
    # Lazy, so that importing one light module (e.g. .kdal from the plugin) does not load them all.
    if name in ("CycleSettings", "run_cycle"):
        from core.prospectivity import cycle

        return getattr(cycle, name)
    if name == "KDALConfig":
        from core.prospectivity.kdal import KDALConfig

        return KDALConfig
    raise AttributeError(name)
