"""Geo-Hgan benchmark: speed on a 500 x 500 x 30-band raster, quality on the gridded GSWA sed1 survey.

Run with ``make bench`` (or ``.venv/bin/python tests/benchmarks/bench_geohgan.py [--quick] [--device D]``);
prints a summary and writes ``bench_output/geohgan.json``.

1. Speed (default settings): ``geoanomaly geohgan`` on a synthetic 500 x 500 x
   30-band GeoTIFF with planted anomalies, run in this process: train + score
   time, peak RSS, scoring throughput (cells/s); the planted anomalies' cell
   AUC as a sanity check. Targets on 2 CPU
   cores: under 20 minutes, peak RSS under 4 GB.
2. Quality: the sed1 samples preprocessed as ``geoanomaly detect`` does
   (elements < 50 % missing, CLR, robust scaling), gridded by IDW at a 500 m
   cell (``core.grid.idw``, default data mask), all elements and the Au
   pathfinder set, then Geo-Hgan with default settings (``--seeds`` seeds). AUC of each score with the cell protocol (evaluation.md section 3:
   deposit cell + 8 neighbours positive) and the sample protocol (score read at
   each sample, then the 20-run protocol of section 1), next to an Isolation
   Forest fitted on the same cells (their gridded values) in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from affine import Affine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly.geohgan import SCORE_NAMES, GeoHganDetector  # noqa: E402
from core.anomaly.geohgan.synthetic import synthetic_raster  # noqa: E402
from core.device import describe_device, resolve_device  # noqa: E402
from core.evaluate.auc import auc_protocol, cell_auc  # noqa: E402
from core.grid.idw import grid_samples  # noqa: E402
from core.io.rasters import RasterStack, sample_raster_at  # noqa: E402
from core.io.samples import read_deposits, read_samples  # noqa: E402
from core.preprocess import Preprocessor  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "gswa_sed1_au"
SED1_CELL_M = 500.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(device: str, quick: bool) -> dict:
    """The command as a user runs it (files read in windows), on a synthetic GeoTIFF, in this process."""
    import tempfile

    import rasterio
    from sklearn.metrics import roc_auc_score

    from core.cli import main as geoanomaly
    from core.io.rasters import write_raster

    size, bands = (120, 8) if quick else (500, 30)
    raster = synthetic_raster(bands=bands, rows=size, cols=size, anomalies=max(4, size * size // 6000), seed=0)
    quick_args = ["--epochs", "1", "--warmup-epochs", "1", "--tiles-per-epoch", "512"] if quick else []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stack.tif"
        write_raster(path, raster.values, Affine(100.0, 0, 500_000.0, 0, -100.0, 6_500_000.0), "EPSG:28350",
                     band_names=raster.band_names)
        del raster.values  # the command reads the file, not this array
        code = geoanomaly(["geohgan", "--raster", str(path), "--out", str(Path(tmp) / "out"), "--device", device,
                           "--progress", "none", *quick_args])
        if code != 0:
            raise SystemExit(f"geoanomaly geohgan failed with exit code {code}")
        record = json.loads((Path(tmp) / "out" / "run.json").read_text())
        with rasterio.open(Path(tmp) / "out" / "geohgan_scores.tif") as src:
            scores = src.read(masked=True).filled(np.nan)
    valid = np.isfinite(scores).all(axis=0)
    timings = record["timings_s"]
    return {
        "raster": f"{size} x {size} x {bands} bands (synthetic GeoTIFF, {int(raster.anomalous.sum())} planted "
                  "anomaly cells)",
        "command": "geoanomaly geohgan --raster stack.tif --out out (default settings)",
        "settings": record["model"]["config"], "training_tiles": record["model"]["training_tiles"],
        "device": record["device"],
        "fit_s": timings["fit"], "score_s": timings["score"], "command_total_s": timings["total"],
        "train_plus_score_s": round(timings["fit"] + timings["score"], 1),
        "score_cells_per_s": round(int(valid.sum()) / timings["score"]),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "planted_cell_auc": {name: round(float(roc_auc_score(raster.anomalous[valid], scores[i][valid])), 4)
                             for i, name in enumerate(SCORE_NAMES)},
        "targets": {"time_s": 1200, "peak_rss_mb": 4096},
    }


ELEMENT_SETS = {"all elements": dict(), "Au pathfinders": dict(pathfinders="Au")}


def quality(device: str, quick: bool, seeds: int) -> dict:
    table = read_samples(DATA / "samples.csv")
    deposits = read_deposits(DATA / "deposits.csv", table.work_crs)
    out = {"data": "gswa_sed1_au samples.csv / deposits.csv",
           "preprocessing": "Preprocessor defaults (elements < 50 % missing, CLR, robust scaling); "
                            "'Au pathfinders' = --pathfinders Au",
           "protocols": {"cell": "evaluation.md section 3: deposit cell + 8 neighbours positive, other valid "
                                 "cells negative, ROC-AUC",
                         "sample": "score read at each sample's cell, then evaluation.md section 1 (20 runs, "
                                   "min 5 km, rng 42)"},
           "runs": {}}
    for label, options in ELEMENT_SETS.items():
        prepared = Preprocessor(**options).fit_transform(table)
        grid = grid_samples(prepared.xy, prepared.values, cell=SED1_CELL_M, band_names=prepared.elements,
                            crs=table.work_crs)
        stack = RasterStack(values=grid.array, transform=grid.transform, crs=grid.crs, band_names=grid.band_names,
                            valid_mask=np.isfinite(grid.array).all(axis=0), paths=["sed1 IDW grid"])
        rows, cols = stack.shape
        cells = stack.values[:, stack.valid_mask].T
        maps = {}
        timings = {}
        # Isolation Forest on the same cells: the gridded band values as a user would give them.
        from sklearn.ensemble import IsolationForest

        t0 = time.perf_counter()
        forest = IsolationForest(n_estimators=300, random_state=0, n_jobs=1).fit(cells)
        forest_grid = np.full(stack.shape, np.nan, dtype=np.float32)
        forest_grid[stack.valid_mask] = -forest.score_samples(cells)
        maps["isolation_forest_cells"] = forest_grid
        timings["isolation_forest_s"] = round(time.perf_counter() - t0, 1)
        for seed in range(seeds):
            settings = dict(epochs=1, encoder_epochs=1, warmup_epochs=1, tiles_per_epoch=512) if quick else {}
            detector = GeoHganDetector(device=device, seed=seed, **settings)
            t0 = time.perf_counter()
            detector.fit(stack.values, stack.valid_mask, stack.band_names)
            scores = detector.score(stack.values, stack.valid_mask)
            timings[f"geohgan_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
            maps.update({f"{name} (seed {seed})": scores[i] for i, name in enumerate(SCORE_NAMES)})
        results = {name: _evaluate(score_map, stack, prepared.xy, deposits) for name, score_map in maps.items()}
        for name in SCORE_NAMES:
            per_seed = [results[f"{name} (seed {s})"] for s in range(seeds)]
            results[f"{name} (mean of {seeds} seeds)"] = {
                "cell_auc": round(float(np.mean([r["cell_auc"] for r in per_seed])), 4),
                "sample_auc_mean": round(float(np.mean([r["sample_auc_mean"] for r in per_seed])), 4),
                "sample_auc_std": round(float(np.mean([r["sample_auc_std"] for r in per_seed])), 4),
                "sample_success_top5": round(float(np.mean([r["sample_success_top5"] for r in per_seed])), 4)}
        out["runs"][label] = {
            "grid": {"cell_m": SED1_CELL_M, "rows": rows, "cols": cols, "bands": len(stack.band_names),
                     "elements": stack.band_names, "valid_cells": int(stack.valid_mask.sum()),
                     "max_distance_m": round(grid.max_distance, 1), "crs": table.work_crs.to_string()},
            "transform_used": detector.normaliser_.transform, "settings": vars(detector.config),
            "timings": timings, "auc": results}
    return out


def _evaluate(score_map: np.ndarray, stack: RasterStack, sample_xy: np.ndarray, deposits: np.ndarray) -> dict:
    cell = cell_auc(score_map, stack.transform, deposits, stack.valid_mask)
    at_samples = sample_raster_at(_one_band(stack, score_map), sample_xy)[:, 0]
    missing = ~np.isfinite(at_samples)
    sample = auc_protocol(sample_xy[~missing], at_samples[~missing], deposits)
    return {"cell_auc": round(cell.auc, 4), "cell_positive": cell.n_positive_cells,
            "cell_negative": cell.n_negative_cells, "cell_deposits_used": cell.n_used,
            "sample_auc_mean": round(sample.mean, 4), "sample_auc_std": round(sample.std, 4),
            "sample_success_top5": round(sample.success_rate_top5, 4), "samples_off_grid": int(missing.sum())}


def _one_band(stack: RasterStack, score_map: np.ndarray) -> RasterStack:
    return RasterStack(values=score_map[None], transform=stack.transform, crs=stack.crs, band_names=["score"],
                       valid_mask=np.isfinite(score_map), paths=[])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--part", choices=["all", "speed", "quality"], default="all",
                        help="one part only: its figures replace that part in an existing geohgan.json")
    parser.add_argument("--seeds", type=int, default=2, help="Geo-Hgan seeds on the sed1 grids (default 2)")
    parser.add_argument("--json", help="output file name in bench_output/ (default geohgan.json)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    out_dir = REPO / "bench_output"
    out_path = out_dir / (args.json or ("geohgan_quick.json" if args.quick else "geohgan.json"))
    out = json.loads(out_path.read_text()) if args.part != "all" and out_path.is_file() else {}
    out.update(device=describe_device(device), note="timings on a machine shared with other jobs are pessimistic")
    if args.part in {"all", "speed"}:
        out["speed"] = speed(args.device, args.quick)
        s = out["speed"]
        print(f"speed: {s['raster']}: fit {s['fit_s']} s + score {s['score_s']} s = {s['train_plus_score_s']} s "
              f"(command {s['command_total_s']} s); "
              f"{s['score_cells_per_s']} cells/s; peak RSS {s['peak_rss_mb']:.0f} MB; planted AUC "
              f"{s['planted_cell_auc']}", flush=True)
    if args.part in {"all", "quality"}:
        out["quality"] = quality(args.device, args.quick, args.seeds)
        for label, run in out["quality"]["runs"].items():
            g = run["grid"]
            print(f"quality: sed1 {label} gridded at {g['cell_m']:g} m ({g['rows']} x {g['cols']} x {g['bands']} "
                  f"bands, {g['valid_cells']} valid cells)")
            for name, r in run["auc"].items():
                print(f"  {name:36} cell AUC {r['cell_auc']:.3f} | sample AUC {r['sample_auc_mean']:.3f} ± "
                      f"{r['sample_auc_std']:.3f} (top 5 %: {r['sample_success_top5'] * 100:.0f} %)")
    out[f"peak_rss_mb_{args.part}"] = round(peak_rss_mb(), 1)
    out_dir.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
