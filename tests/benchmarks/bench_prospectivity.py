"""Prospectivity on both shared surveys: KDAL cycles next to the evidence alone, WofE, LR and RF, same folds.

Run with ``.venv/bin/python tests/benchmarks/bench_prospectivity.py [--seeds 0,1,2] [--cycles 5]``;
writes ``bench_output/prospectivity.json`` and prints the table of the README.

Per survey (GSWA sed1 Au stream sediments, GSWA rock-chip Li):

1. Evidence: ``geoanomaly grid --pathfinders C --spacing area`` grids the
   commodity and its pathfinders (clr, robust-scaled) on a grid whose cell and
   data mask follow the survey's area spacing (both surveys are clustered);
   the commodity-aware evidence band is the one-sided, capped suite
   enrichment of those grids with the commodity weighted as much as all
   pathfinders together (:func:`core.anomaly.readouts.gridded_suite_enrichment`).
   Two stacks: the commodity band alone, and the commodity band + the
   pathfinder grids. On sed1 also the run's own map as evidence
   (``prospectivity --evidence DETECT_RUN``): old (transformer
   reconstruction error) and new (``detect --commodity Au``).
2. For each seed: 5-fold spatially blocked CV (blocks 1/16 of the grid, a
   held-out deposit's 3 x 3 neighbourhood closed too), and in the same
   folds: the evidence alone, every band alone (the best one chosen on the
   held-out deposits, and chosen per fold on the training deposits), weights
   of evidence, logistic regression, random forest, and KDAL cycles 0-5 with
   a simulated geologist: half of each fold's training deposits (``--hide``)
   are hidden from the labels and known to the geologist, who answers yes to
   a query within 1 cell of any training deposit, otherwise no (K = 5 per
   cycle; the held-out blocks closed to queries; test-fold deposits unknown to it).
3. Figures: share of held-out deposits in the top 5/10/20 % of the valid
   area and the success-rate AUC, means over seeds; per KDAL cycle the labels
   used and the yes/no answers so far (summed over folds); CPU seconds per
   cycle on the whole grid (sed1 also on the 408 x 263 grid of 500 m cells).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly.readouts import gridded_suite_enrichment  # noqa: E402
from core.cli import main as geoanomaly  # noqa: E402
from core.io.rasters import read_raster_stack, write_raster  # noqa: E402
from core.preprocess.elements import commodity_suite  # noqa: E402
from core.prospectivity.baselines import BASELINES  # noqa: E402
from core.prospectivity.cycle import (  # noqa: E402
    CycleSettings,
    best_band,
    capture_per_cycle,
    fit_map,
    read_inputs,
)
from core.prospectivity.kdal import KDALConfig  # noqa: E402
from core.prospectivity.validation import (  # noqa: E402
    blocked_folds,
    capture_area_shares,
    cross_validate,
    pooled_success_curve,
)

DATA = REPO.parent / "shared" / "data"
OUT = REPO / "bench_output"
WORK = OUT / "prospectivity_work"
SURVEYS = {"gswa_sed1_au": "Au", "gswa_rock_li": "Li"}


def make_evidence(survey: str, commodity: str, spacing: str = "area") -> tuple[Path, Path]:
    """The commodity-aware evidence band and the pathfinder grids, on one grid (``grid --spacing``)."""
    grid_dir = WORK / f"{survey}_grid_{spacing}"
    code = geoanomaly(["grid", "--samples", str(DATA / survey / "samples.csv"), "--pathfinders", commodity,
                       "--spacing", spacing, "--out", str(grid_dir), "--overwrite", "--progress", "none"])
    if code:
        raise SystemExit(f"grid failed ({code})")
    grids = read_raster_stack([grid_dir / "grid.tif"])
    suite = commodity_suite(commodity, available=grids.band_names)
    # One cell of extra smoothing: the grid is already an IDW surface; this only joins its neighbouring cells.
    index = gridded_suite_enrichment(grids.values, grids.band_names, suite, radius_cells=1.0)
    evidence = WORK / f"{survey}_{commodity}_index_{spacing}.tif"
    write_raster(evidence, index.astype(np.float32), grids.transform, grids.crs, band_names=[f"{commodity}_index"])
    return evidence, grid_dir / "grid.tif"


def detect_run(survey: str, options: list[str]) -> Path:
    """A detect run folder on the survey (seed 0), reused when it is already there."""
    run = WORK / f"{survey}_detect_{'_'.join(o.strip('-') for o in options)}"
    if not (run / "run.json").is_file():
        code = geoanomaly(["detect", *options, "--samples", str(DATA / survey / "samples.csv"), "--deposits",
                           str(DATA / survey / "deposits.csv"), "--seed", "0", "--out", str(run), "--overwrite",
                           "--progress", "none"])
        if code:
            raise SystemExit(f"detect failed ({code})")
    return run


def figures(curve) -> dict:
    return {"top5": round(curve.top_area["5"], 4), "top10": round(curve.top_area["10"], 4),
            "top20": round(curve.top_area["20"], 4), "auc": round(curve.auc, 4)}


def evaluate(paths: list[Path], deposits: Path, seed: int, args) -> dict:
    settings = CycleSettings(teacher=args.teacher, cycles=args.cycles, k=args.k, hidden_deposits=args.hide,
                             kdal=KDALConfig(seed=seed, device=args.device))
    inputs = read_inputs(paths, deposits, settings)
    stack, cells, teacher = inputs.stack, inputs.deposit_cells, inputs.teacher
    rows, cols = stack.cell_rows, stack.cell_cols
    folds = blocked_folds(rows, cols, cells, args.folds, None, seed, buffer_cells=settings.oracle_radius)
    out = {"bands": stack.band_names, "grid": list(stack.shape), "cell_m": stack.cell_size[0],
           "valid_cells": stack.n_cells, "deposits_scored": len(cells), "teacher": inputs.teacher_bands,
           "deposits_per_fold": np.bincount(folds.fold_of_deposit).tolist(), "block_cells": folds.block_cells}
    out["evidence alone"] = figures(pooled_success_curve(capture_area_shares(teacher, cells), stack.n_cells))
    features = stack.features()
    # Every band alone (the evidence need not be the best one): the best by deposits in the top 10 %, then 20 %.
    bands = {name: figures(pooled_success_curve(capture_area_shares(features[:, i], cells), stack.n_cells))
             for i, name in enumerate(stack.band_names)}
    best = max(bands, key=lambda b: (bands[b]["top10"], bands[b]["top20"]))
    out["best band alone"] = {**bands[best], "band": best}  # chosen on the held-out deposits: a high bar
    out["bands_alone"] = bands
    per_fold = np.full(len(cells), np.nan)
    for fold in range(folds.n_folds):  # the band a geologist would pick from the other folds' deposits
        held_out = folds.fold_of_deposit == fold
        chosen = best_band(stack, settings.normalise, cells[~held_out])
        per_fold[held_out] = capture_area_shares(features[:, chosen], cells[held_out])
    out["best band alone (chosen per fold)"] = figures(pooled_success_curve(per_fold, stack.n_cells))
    for name, fit in BASELINES.items():
        cv = cross_validate(lambda train, closed, fit=fit: fit(features, rows, cols, train, closed, seed=seed),
                            cells, folds)
        out[name] = figures(cv.curve)
    fold_results = [fit_map(inputs, settings, cells[folds.fold_of_deposit != fold], folds.closed_cells(fold))
                    for fold in range(folds.n_folds)]
    for entry in capture_per_cycle(fold_results, cells, folds):
        top = entry["deposits_in_top_area"]
        # Answers given before this cycle's map, summed over the folds.
        out[f"KDAL cycle {entry['cycle']}"] = {"top5": top["5"], "top10": top["10"], "top20": top["20"],
                                               "auc": entry["auc"], "labels_per_fold": entry["labels_per_fold"],
                                               "yes_so_far": entry["yes_so_far"], "no_so_far": entry["no_so_far"]}
    print(f"  seed {seed} {'+'.join(stack.band_names[:2])}{'...' if len(paths) > 1 else ''}: "
          + "; ".join(f"{k} {v['top10']:.2f}/{v['top20']:.2f}" for k, v in out.items() if isinstance(v, dict) and "top10" in v),
          flush=True)
    return out


def time_per_cycle(paths: list[Path], deposits: Path, args) -> dict:
    """CPU and wall seconds per cycle of the whole-grid run (all deposits as labels, K queries answered)."""
    settings = CycleSettings(teacher=args.teacher, cycles=args.cycles, k=args.k, kdal=KDALConfig(device=args.device))
    inputs = read_inputs(paths, deposits, settings)
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fit_map(inputs, settings)
    cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    n = args.cycles + 1
    return {"grid": list(inputs.stack.shape), "valid_cells": inputs.stack.n_cells, "cycles": n,
            "cpu_s_per_cycle": round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / n, 2),
            "wall_s_per_cycle": round((wall1 - wall0) / n, 2)}


def mean_over_seeds(per_seed: dict) -> dict:
    first = next(iter(per_seed.values()))
    names = [k for k, v in first.items() if isinstance(v, dict) and "top10" in v]
    return {name: {m: round(float(np.mean([r[name][m] for r in per_seed.values()])), 4)
                   for m in first[name] if m in ("top5", "top10", "top20", "auc", "labels_per_fold",
                                                 "yes_so_far", "no_so_far")} for name in names}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (folds, student, background)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--hide", type=float, default=0.5,
                        help="share of each fold's training deposits hidden from the labels, known to the geologist")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--surveys", default=",".join(SURVEYS))
    parser.add_argument("--teacher", default="1", help="prospectivity --teacher (default 1: the commodity index)")
    parser.add_argument("--name", default="prospectivity",
                        help="bench_output/NAME.json, grids in bench_output/NAME_work (two runs side by side)")
    parser.add_argument("--no-detect-runs", action="store_true",
                        help="skip sed1's old (transformer) vs new (commodity-aware) detect-run evidence")
    args = parser.parse_args()
    global WORK
    WORK = OUT / f"{args.name}_work"
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results: dict = {}
    for survey in args.surveys.split(","):
        commodity = SURVEYS[survey]
        evidence, pathfinders = make_evidence(survey, commodity)
        deposits = DATA / survey / "deposits.csv"
        stacks = {f"{commodity} index": [evidence], f"{commodity} index + pathfinder grids": [evidence, pathfinders]}
        for label, paths in stacks.items():
            print(f"{survey} / {label}", flush=True)
            per_seed = {f"seed {s}": evaluate(paths, deposits, int(s), args) for s in args.seeds.split(",")}
            results[f"{survey} / {label}"] = {**per_seed, "mean_over_seeds": mean_over_seeds(per_seed)}
        if survey == "gswa_sed1_au" and not args.no_detect_runs:
            # Issue 11 scope 6: the run's map as evidence, old (transformer reconstruction error) vs new
            # (detect --commodity Au: the suite-masked Mahalanobis halo readout), each gridded from its samples.
            for label, detect in {"old: transformer anomaly_score (detect run)": ["--method", "transformer"],
                                  "new: commodity-aware map (detect --commodity Au)":
                                      ["--method", "mahalanobis", "--commodity", "Au"]}.items():
                run = detect_run(survey, detect)
                print(f"{survey} / {label}", flush=True)
                per_seed = {f"seed {s}": evaluate([run], deposits, int(s), args) for s in args.seeds.split(",")}
                results[f"{survey} / {label}"] = {**per_seed, "mean_over_seeds": mean_over_seeds(per_seed)}
        timed = dict(stacks)
        if survey == "gswa_sed1_au":  # the 408 x 263 grid of 500 m cells (nearest-neighbour spacing) too
            index_nearest, pathfinders_nearest = make_evidence(survey, commodity, "nearest")
            timed[f"{commodity} index + pathfinder grids, 500 m cells"] = [index_nearest, pathfinders_nearest]
        results[f"{survey} / time per cycle"] = {label: time_per_cycle(paths, deposits, args)
                                                 for label, paths in timed.items()}
    out = {"protocol": f"{args.folds}-fold spatially blocked CV (blocks 1/16 of the grid, held-out deposits' 3 x 3 "
                       "neighbourhood closed), same folds for every map; figures = share of held-out deposits on "
                       "valid cells in the top 5/10/20 % of the valid area, success-rate AUC; KDAL: "
                       f"{args.hide:.0%} of each fold's training deposits hidden from the labels, known to the "
                       "simulated geologist",
           "teacher": args.teacher,
           "kdal": {"cycles": args.cycles, "k": args.k, "oracle_radius_cells": 1,
                    "config": KDALConfig().__dict__ | {"device": args.device}},
           "results": results, "seconds": round(time.perf_counter() - t0, 1),
           "note": "torch 1 thread; wall times on a shared 2-core machine are inflated"}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'survey / evidence / map':62} {'top 5':>6} {'top 10':>7} {'top 20':>7} {'AUC':>6}  yes/no so far")
    for label, res in results.items():
        if "mean_over_seeds" not in res:
            print(f"{label}: {res}")
            continue
        for name, f in res["mean_over_seeds"].items():
            answers = f" {f['yes_so_far']:.1f}/{f['no_so_far']:.1f}" if "yes_so_far" in f else ""
            print(f"{label + ' / ' + name:62} {f['top5'] * 100:5.0f}% {f['top10'] * 100:6.0f}% "
                  f"{f['top20'] * 100:6.0f}% {f['auc']:6.3f}{answers}")
    print(f"{out['seconds']} s; bench_output/{args.name}.json")
    return out


if __name__ == "__main__":
    main()
