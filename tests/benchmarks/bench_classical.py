"""Classical detectors on the shared GSWA sed1 survey: AUC (20-run protocol), time and peak memory.

Run with ``make bench`` (or ``.venv/bin/python tests/benchmarks/bench_classical.py``);
prints a table and writes ``bench_output/classical.json``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly import make_detector  # noqa: E402
from core.anomaly.classical import CLASSICAL  # noqa: E402
from core.evaluate.auc import auc_protocol  # noqa: E402
from core.io.samples import read_deposits, read_samples  # noqa: E402
from core.preprocess import Preprocessor  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "gswa_sed1_au"


def main() -> dict:
    table = read_samples(DATA / "samples.csv")
    deposits = read_deposits(DATA / "deposits.csv", table.work_crs)
    results = {}
    for label, pre in (("all elements (CLR)", Preprocessor()), ("Au pathfinders (CLR)", Preprocessor(pathfinders="Au"))):
        prepared = pre.fit_transform(table)
        for name in CLASSICAL:
            t0 = time.perf_counter()
            detector = make_detector(name).fit(prepared)
            scores = detector.score(prepared)
            elapsed = time.perf_counter() - t0
            auc = auc_protocol(prepared.xy, scores, deposits)
            results[f"{name} | {label}"] = {"auc_mean": round(auc.mean, 4), "auc_std": round(auc.std, 4),
                                            "success_top5": round(auc.success_rate_top5, 4),
                                            "elements": len(prepared.elements), "seconds": round(elapsed, 3)}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'detector | elements':48} {'AUC (20-run)':>16} {'top 5 %':>8} {'p':>4} {'time s':>7}")
    for key, r in results.items():
        print(f"{key:48} {r['auc_mean']:.3f} ± {r['auc_std']:.3f} {r['success_top5'] * 100:7.1f}% "
              f"{r['elements']:4d} {r['seconds']:7.2f}")
    print(f"peak RSS {peak_mb:.0f} MB")
    out = {"survey": "gswa_sed1_au", "protocol": "20-run, min 5 km, rng 42", "results": results,
           "peak_rss_mb": round(peak_mb, 1)}
    (REPO / "bench_output").mkdir(exist_ok=True)
    (REPO / "bench_output" / "classical.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
