"""``geoanomaly detect``: samples in, anomaly scores, map and evaluation out.

Outputs (written whole or not at all):
``scores.csv`` / ``scores.gpkg`` (input CRS and row order), ``anomaly_score.tif``
(IDW grid of the score in the work CRS), ``run.json``, ``model/`` (everything
``geoanomaly score`` needs for new samples), and with ``--deposits``:
``success_rate.png`` / ``success_rate.csv`` and the AUC protocol in run.json,
next to the classical baselines computed in the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.anomaly import detector_class
from core.anomaly.base import _REGISTRY, _import_detector_modules
from core.anomaly.detection import MAP_CHOICES, _baseline_names, _stage_weights, _uses_torch, run_detection
from core.anomaly.readouts import DEFAULT_NEIGHBOURS
from core.anomaly.saved_model import save_model
from core.commands._options import (
    add_deposit_arguments,
    add_device_argument,
    add_like_argument,
    add_output_argument,
    add_preprocess_arguments,
    add_sample_arguments,
    add_seed_argument,
    add_threads_argument,
    method_choices,
    preprocessor_from_args,
    read_samples_from_args,
    template_from_args,
)
from core.evaluate.report import write_success_rate
from core.grid.idw import grid_samples
from core.io.atomic import atomic_output_dir
from core.io.samples import read_deposits
from core.io.scores import scores_frame, write_scores
from core.runrecord import RunRecord

NAME = "detect"
HELP = "score samples for anomalies with one detector (classical or deep), grid the scores, evaluate against deposits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The registry's names, checked in run() rather than by argparse, so that an unknown name is one
    # clear line (and a JSON error event for the plugin) like every other bad input.
    methods = method_choices()
    parser.add_argument("--method", required=True, metavar="{" + ",".join(methods) + "}",
                        help=f"detector: {', '.join(methods)}")
    add_output_argument(parser)
    add_sample_arguments(parser)
    add_deposit_arguments(parser)
    add_preprocess_arguments(parser)
    parser.add_argument("--cell", type=float, help="cell size of the score raster in metres (default from sample spacing)")
    parser.add_argument("--max-distance", type=float,
                        help="cells farther than this (metres) from every sample are nodata (default from spacing)")
    add_like_argument(parser)
    add_seed_argument(parser)
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--compare", default="auto",
                        help="classical baselines scored in the same run: auto (all, when deposits are given), "
                             "none, or a comma list")
    parser.add_argument("--map", choices=MAP_CHOICES, default="auto",
                        help="the run's map (anomaly_score, raster): auto (with --commodity, the detector's suite-halo "
                             "readout when it has one, else its own score), detector, or halo")
    parser.add_argument("--halo-neighbours", type=int, default=DEFAULT_NEIGHBOURS,
                        help=f"with --commodity: about how many neighbouring locations support each location in the "
                             f"halo readouts (default {DEFAULT_NEIGHBOURS}; more for long dispersion trains)")
    parser.add_argument("--min-km", type=float, default=5.0,
                        help="AUC protocol: background samples are at least this far from every deposit (default 5)")
    _import_detector_modules()
    for cls in _REGISTRY.values():
        cls.add_arguments(parser)


def run(args: argparse.Namespace, progress) -> int:
    method = detector_class(args.method)  # unknown names fail before any work
    baselines = _baseline_names(args.compare, bool(args.deposits))
    like = template_from_args(args)
    record = RunRecord("detect", vars(args))
    with atomic_output_dir(args.out) as staging:
        progress.stage("read", f"Reading {Path(args.samples).name}", weight=_stage_weights(False, False)["read"])
        table = read_samples_from_args(args, like)
        deposits = read_deposits(args.deposits, table.work_crs, crs=args.deposits_crs) if args.deposits else None
        progress.log(f"{len(table)} samples; distances in {table.work_crs.name}")

        detector = method.from_args(args)
        weights = _stage_weights(_uses_torch(detector), deposits is not None)
        result = run_detection(table, detector, deposits, preprocessor=preprocessor_from_args(args),
                               baselines=baselines, options=args, seed=args.seed, min_km=args.min_km,
                               halo_neighbours=args.halo_neighbours, map_score=args.map,
                               progress=progress)
        prepared, metrics = result.prepared, result.metrics
        record["timings_s"].update(result.timings)
        record["device"] = getattr(detector, "history_", {}).get("device", "cpu")
        if deposits is not None:
            write_success_rate(prepared.xy, {k: v for k, v in result.compared.items() if not k.startswith("readout:")},
                               deposits, staging, title=f"Success rate — {args.method}",
                               auc={name: res["mean"] for name, res in metrics["auc_by_score"].items()})

        progress.stage("grid", "Gridding the scores", weight=weights["grid"])
        grid = grid_samples(prepared.xy, result.scores, cell=args.cell, max_distance=args.max_distance,
                            band_names=["anomaly_score"], crs=table.work_crs, like=like)
        grid.write(staging / "anomaly_score.tif")

        frame = scores_frame(table, result.columns)
        write_scores(frame, table.crs, staging)
        save_model(staging / "model", result.preprocessor, detector, table, map_score=args.map)

        record["samples"] = {"file": str(Path(args.samples).resolve()), "count": len(table),
                             "crs": table.crs.to_string(), "work_crs": table.work_crs.to_string()}
        record["preprocessing"] = result.preprocessor.to_dict()["report"]
        record["elements"] = prepared.elements
        record["commodity"] = ({"name": result.preprocessor.commodity, "suite": result.suite}
                               if result.suite else None)
        record["map"] = result.map_name
        record["colocated_samples"] = result.colocated
        record["grid"] = {"cell_m": grid.cell, "max_distance_m": grid.max_distance}
        record["training"] = getattr(detector, "history_", {})
        record["metrics"] = metrics
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    # Keyed by file NAME: scores.csv and scores.gpkg (success_rate.csv and .png) are different outputs.
    outputs = {p.name: str(p) for p in sorted(out.iterdir())}
    progress.result(outputs=outputs, metrics=metrics, out=str(out))
    if progress.mode != "json":
        print(f"Scores: {out / 'scores.csv'} | raster: {out / 'anomaly_score.tif'} | record: {out / 'run.json'}")
    return 0
