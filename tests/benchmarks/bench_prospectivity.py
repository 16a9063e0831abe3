"""Prospectivity on the shared GSWA sed1 survey: does KDAL active learning beat the anomaly map and a plain classifier?

Run with ``.venv/bin/python tests/benchmarks/bench_prospectivity.py [--method knn] [--seeds 0,1,2]``;
writes ``bench_output/prospectivity.json`` (and a copy ``prospectivity_<method>.json``) and prints a table.

Steps, all in one run:

1. ``geoanomaly detect --method M`` on the survey -> ``anomaly_score.tif``
   (M: the transformer when it is registered, else the best classical
   detector in ``bench_output/classical.json``, else knn).
2. ``geoanomaly grid --pathfinders Au`` on the same grid (same cell and mask)
   -> the pathfinder elements as extra evidence bands.
3. For two evidence stacks (the anomaly raster alone; anomaly + Au
   pathfinders), the share of deposits captured in the top 10 % and 20 % of
   the area, each deposit scored on a map fitted without its spatial block
   (5-fold blocked cross-validation, see core/prospectivity/validation.py):

   - the anomaly map alone (no training: its own ranking);
   - KDAL cycle 0: soft labels + the training deposits as hard labels;
   - KDAL after 5 cycles of K = 5 queries answered by the training deposits
     (the held-out blocks closed to queries);
   - a plain classifier on the training deposits + random background cells.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.cli import main as geoanomaly  # noqa: E402
from core.errors import GeoAnomalyError  # noqa: E402
from core.io.samples import read_deposits  # noqa: E402
from core.prospectivity.kdal import KDALConfig, fit_kdal_map, fit_plain_map  # noqa: E402
from core.prospectivity.soft_labels import normalise_scores  # noqa: E402
from core.prospectivity.stack import load_evidence, place_points  # noqa: E402
from core.prospectivity.validation import (  # noqa: E402
    blocked_folds,
    capture_area_shares,
    cross_validate,
    pooled_success_curve,
)

DATA = REPO.parent / "shared" / "data" / "gswa_sed1_au"
OUT = REPO / "bench_output"
WORK = OUT / "prospectivity_work"


def pick_method() -> str:
    from core.anomaly import detector_class

    try:
        detector_class("transformer")
        return "transformer"
    except GeoAnomalyError:
        pass
    classical = OUT / "classical.json"
    if classical.exists():
        results = json.loads(classical.read_text())["results"]
        best = max((r["auc_mean"], key.split(" | ")[0]) for key, r in results.items() if "all elements" in key)
        return best[1]
    return "knn"


def make_evidence(method: str, device: str) -> tuple[Path, Path, dict]:
    samples, deposits = DATA / "samples.csv", DATA / "deposits.csv"
    detect_dir, grid_dir = WORK / f"detect_{method}", WORK / "grid_au_pathfinders"
    code = geoanomaly(["detect", "--method", method, "--samples", str(samples), "--deposits", str(deposits),
                       "--out", str(detect_dir), "--compare", "none", "--device", device, "--progress", "none"])
    if code:
        raise SystemExit(f"detect failed ({code})")
    detect_record = json.loads((detect_dir / "run.json").read_text())
    cell, max_distance = detect_record["grid"]["cell_m"], detect_record["grid"]["max_distance_m"]
    code = geoanomaly(["grid", "--samples", str(samples), "--pathfinders", "Au", "--out", str(grid_dir),
                       "--cell", str(cell), "--max-distance", str(max_distance), "--progress", "none"])
    if code:
        raise SystemExit(f"grid failed ({code})")
    metrics = detect_record.get("metrics", {})
    return detect_dir / "anomaly_score.tif", grid_dir / "grid.tif", {
        "method": method, "cell_m": cell, "max_distance_m": max_distance,
        "sample_auc_20_run": {"mean": metrics.get("auc"), "std": metrics.get("auc_std")},
    }


def figures(curve) -> dict:
    return {"top10": round(curve.top_area["10"], 4), "top20": round(curve.top_area["20"], 4),
            "auc": round(curve.auc, 4)}


def evaluate_stack(paths: list[Path], seed: int, args) -> dict:
    stack = load_evidence(paths)
    features = stack.features()
    rows, cols = stack.cell_rows, stack.cell_cols
    teacher = normalise_scores(stack.band_values(0), "robust")
    deposits = place_points(stack, read_deposits(DATA / "deposits.csv", stack.rasters.crs))
    cells = deposits.flat
    folds = blocked_folds(rows, cols, cells, args.folds, None, seed)
    config = KDALConfig(seed=seed, device=args.device)
    result = {
        "bands": stack.band_names, "valid_cells": stack.n_cells,
        "deposits": {"count": deposits.n_points, "scored": len(cells), "outside_grid": deposits.n_outside_grid,
                     "on_nodata": deposits.n_on_nodata},
        "cv": {"folds": folds.n_folds, "block_cells": folds.block_cells,
               "deposits_per_fold": np.bincount(folds.fold_of_deposit).tolist()},
    }
    # The anomaly map is fitted without any deposit: its own ranking is already a held-out figure.
    result["anomaly_map_alone"] = figures(pooled_success_curve(capture_area_shares(teacher, cells), stack.n_cells))
    runs = {
        "kdal_cycle0": lambda train, closed: fit_kdal_map(
            features, teacher, rows, cols, train, closed=closed, cycles=0, k=args.k, config=config).probability,
        f"kdal_{args.cycles}_cycles_k{args.k}": lambda train, closed: fit_kdal_map(
            features, teacher, rows, cols, train, closed=closed, cycles=args.cycles, k=args.k,
            config=config).probability,
        "plain_classifier_deposits_only": lambda train, closed: fit_plain_map(
            features, rows, cols, train, closed=closed, config=config),
    }
    for name, fit_predict in runs.items():
        t0 = time.perf_counter()
        cv = cross_validate(fit_predict, cells, folds)
        result[name] = {**figures(cv.curve), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  seed {seed} {'+'.join(stack.band_names[:2])}{'...' if len(paths) > 1 else ''} {name}: "
              f"{result[name]}", flush=True)
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", help="detector for the anomaly raster (default: transformer if present, "
                                         "else the best classical)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (fold split and classifier)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    t0 = time.perf_counter()
    method = args.method or pick_method()
    anomaly, pathfinders, detector = make_evidence(method, args.device)
    stacks = {"anomaly raster only": [anomaly], "anomaly raster + Au pathfinder grids": [anomaly, pathfinders]}
    results: dict = {}
    for label, paths in stacks.items():
        per_seed = {f"seed {seed}": evaluate_stack(paths, int(seed), args) for seed in args.seeds.split(",")}
        maps = [k for k, v in per_seed[next(iter(per_seed))].items() if isinstance(v, dict) and "top10" in v]
        mean = {k: {m: round(float(np.mean([r[k][m] for r in per_seed.values()])), 4) for m in ("top10", "top20", "auc")}
                for k in maps}
        results[label] = {**per_seed, "mean_over_seeds": mean}
    out = {"survey": "gswa_sed1_au", "detector": detector,
           "protocol": f"{args.folds}-fold spatially blocked CV (blocks 1/16 of the grid), figures = share of deposits "
                       "on valid cells captured in the top 10/20 % of the valid area, each on a map that never saw it",
           "kdal": {"cycles": args.cycles, "k": args.k, "config": KDALConfig().__dict__ | {"device": args.device}},
           "results": results, "seconds": round(time.perf_counter() - t0, 1)}
    OUT.mkdir(exist_ok=True)
    (OUT / "prospectivity.json").write_text(json.dumps(out, indent=2) + "\n")
    # A copy per detector, so runs with different anomaly maps can be compared side by side.
    (OUT / f"prospectivity_{method}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'evidence / map':62} {'top 10 %':>9} {'top 20 %':>9} {'AUC':>6}")
    for label, res in results.items():
        for name, f in res["mean_over_seeds"].items():
            print(f"{label + ' / ' + name:62} {f['top10'] * 100:8.1f}% {f['top20'] * 100:8.1f}% {f['auc']:6.3f}")
    print(f"detector {method}; {out['seconds']} s; bench_output/prospectivity.json")
    return out


if __name__ == "__main__":
    main()
