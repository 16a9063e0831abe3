"""How the halo readout's settings were chosen: neighbours × cap × residual source, both shared surveys, 3 seeds.

Not part of ``make bench`` (it is the record of a design choice). Run:
``.venv/bin/python tests/benchmarks/sweep_halo_readouts.py``; prints AUC (20-run protocol) sed1 / Li / mean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly import make_detector  # noqa: E402
from core.anomaly.readouts import robust_standardise, suite_enrichment  # noqa: E402
from core.evaluate.auc import auc_protocol  # noqa: E402
from core.io.samples import read_deposits, read_samples  # noqa: E402
from core.preprocess import Preprocessor  # noqa: E402
from core.preprocess.duplicates import location_groups  # noqa: E402
from core.preprocess.transforms import clr  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SURVEYS = (("gswa_sed1_au", "Au"), ("gswa_rock_li", "Li"))
SEEDS = (0, 1, 2)


def residual_sources(pre: Preprocessor, prepared, table) -> dict[str, list[np.ndarray]]:
    suite = list(pre.suite_())
    assays, _ = pre.imputed_assays(table)
    pca = make_detector("pca").fit(prepared)
    return {
        "survey background": [robust_standardise(clr(assays))] * len(SEEDS),
        "pca, suite masked": [pca.element_residuals(prepared, suite=suite)] * len(SEEDS),
        "pca, unmasked": [pca.element_residuals(prepared)] * len(SEEDS),
        "mahalanobis, suite masked": [make_detector("mahalanobis", seed=s).fit(prepared)
                                      .element_residuals(prepared, suite=suite) for s in SEEDS],
        "mahalanobis, unmasked": [make_detector("mahalanobis", seed=s).fit(prepared).element_residuals(prepared)
                                  for s in SEEDS],
    }


def main() -> None:
    results: dict[tuple, dict[str, float]] = {}
    for survey, commodity in SURVEYS:
        table = read_samples(DATA / survey / "samples.csv")
        deposits = read_deposits(DATA / survey / "deposits.csv", table.work_crs)
        pre = Preprocessor(commodity=commodity)
        prepared = pre.fit_transform(table)
        suite, groups = pre.suite_(), location_groups(prepared.xy)
        for source, residuals in residual_sources(pre, prepared, table).items():
            for k in (0, 3, 6, 12):
                for cap in (2.0, 4.0, np.inf):
                    # k = 0: the sample's own location only (a bandwidth far below any sample spacing).
                    options = {"bandwidth_m": 1e-3} if k == 0 else {"neighbours": k}
                    aucs = [auc_protocol(prepared.xy, suite_enrichment(r, pre.elements_, suite, prepared.xy, groups,
                                                                       cap=cap, **options), deposits).mean
                            for r in residuals]
                    results.setdefault((source, k, cap), {})[survey] = float(np.mean(aucs))
    print(f"{'residuals':28} {'k':>3} {'cap':>5} {'sed1':>6} {'li':>6} {'mean':>6}")
    for (source, k, cap), auc in results.items():
        sed1, li = auc["gswa_sed1_au"], auc["gswa_rock_li"]
        print(f"{source:28} {k:3d} {cap:5.0f} {sed1:.3f} {li:.3f} {(sed1 + li) / 2:.3f}")


if __name__ == "__main__":
    main()
