"""Why knn reaches 0.68 on the Li rock chips, and why the commodity's own level is 0.533 here but 0.650 in issue 11.

Not part of ``make bench``: the record of an investigation (issue 11 part Q), no model trained, seconds to run:
``.venv/bin/python tests/benchmarks/explain_li_survey.py``. Prints 20-run AUCs (evaluation.md section 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.stats import rankdata

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly import make_detector  # noqa: E402
from core.anomaly.references import hand_made_references  # noqa: E402
from core.evaluate.auc import auc_protocol  # noqa: E402
from core.io.samples import read_deposits, read_samples  # noqa: E402
from core.preprocess import Preprocessor  # noqa: E402
from core.preprocess.duplicates import location_groups  # noqa: E402

SURVEY = REPO.parent / "shared" / "data" / "gswa_rock_li"
MAJORS = ("Al", "Ca", "K", "Mg", "Mn", "Na", "P")


def knn_distance(values: np.ndarray, k: int = 5, groups: np.ndarray | None = None) -> np.ndarray:
    """Mean distance to the k nearest other samples in element space; with ``groups``, co-located ones skipped."""
    dist, idx = cKDTree(values).query(values, k=min(len(values), k + 30))
    same = np.zeros_like(idx, dtype=bool) if groups is None else groups[idx] == groups[:, None]
    same[:, 0] = True  # the sample itself
    dist = np.sort(np.where(same, np.inf, dist), axis=1)
    return dist[:, :k].mean(axis=1)


def main() -> None:
    table = read_samples(SURVEY / "samples.csv")
    deposits = read_deposits(SURVEY / "deposits.csv", table.work_crs)
    pre = Preprocessor(commodity="Li")
    prepared = pre.fit_transform(table)
    xy, elements = prepared.xy, pre.elements_
    assays, not_assayed = pre.imputed_assays(table)
    li = elements.index("Li")

    def auc(score, max_km=None):
        return auc_protocol(xy, score, deposits, max_deposit_distance_km=max_km).mean

    protocol = auc_protocol(xy, np.zeros(len(xy)), deposits)
    used = np.asarray(protocol.nearest_sample_index)[np.asarray(protocol.deposit_distance_km)
                                                      <= protocol.max_deposit_distance_km]
    print(f"deposits: {protocol.n_deposits}, scored {protocol.n_used} (nearest sample within "
          f"{protocol.max_deposit_distance_km * 1000:.0f} m); distances (m): "
          f"{np.round(np.asarray(protocol.deposit_distance_km) * 1000).astype(int).tolist()}")
    print("negatives: all samples (the survey is a few km2, no sample 5 km from a deposit)")
    frame = pd.DataFrame(np.where(not_assayed[used], np.nan, assays[used]), columns=elements, index=used)
    frame.loc["survey median"] = np.nanmedian(np.where(not_assayed, np.nan, assays), axis=0)
    print("assays (ppm) of the scored deposits' nearest samples; NaN = not assayed:")
    print(frame.round(1).to_string())

    print("\n-- the commodity's own level (0.533 here, 0.650 in the issue) --")
    log_li = np.log(assays[:, li])
    last = hand_made_references(assays, elements, "Li", list(pre.suite_()), not_assayed)["commodity_level"]
    for label, score in (("unassayed ranked last (reference)", last),
                         ("unassayed at the survey median (imputed, as the models see it)", log_li)):
        print(f"{label}: {auc(score):.3f} with the scored deposits; {auc(score, 0.25):.3f} with all 9 "
              "(nearest sample within 250 m)")

    print("\n-- knn (element space) --")
    groups = location_groups(xy)
    knn = make_detector("knn").fit(prepared).score(prepared)
    print(f"knn: {auc(knn):.3f} (all 9 deposits: {auc(knn, 0.25):.3f}); rank percentile of the scored deposits' "
          f"samples: {np.round(rankdata(knn)[used] / len(knn), 2).tolist()}")
    columns = {name: [j for j, el in enumerate(elements) if el in keep] for name, keep in (
        ("majors only (Al Ca K Mg Mn Na P)", MAJORS),
        ("without the Li suite", [el for el in elements if el not in pre.suite_()]),
        ("the Li suite only", list(pre.suite_())))}
    for name, cols in columns.items():
        print(f"knn on {name}: {auc(knn_distance(prepared.values[:, cols])):.3f}")
    print(f"knn, co-located samples not counted as neighbours: {auc(knn_distance(prepared.values, groups=groups)):.3f}")
    print(f"knn on the pattern of missing assays only: {auc(knn_distance(not_assayed.astype(float))):.3f}")
    print(f"number of elements assayed: {auc(-not_assayed.sum(axis=1)):.3f}")
    spacing = cKDTree(xy).query(xy, k=17)[0][:, 1:].mean(axis=1)
    print(f"sampling density (mean distance to the 16 nearest samples, no chemistry): {auc(spacing):.3f}")
    print(f"Li below the survey median at {int((frame.loc[used, 'Li'] < frame.loc['survey median', 'Li']).sum())} "
          f"of the {len(used)} scored deposits' samples; not assayed at {int(frame.loc[used, 'Li'].isna().sum())}")


if __name__ == "__main__":
    main()
