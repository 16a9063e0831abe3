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

import numpy as np

from core.anomaly import detector_class
from core.anomaly.base import _REGISTRY, Detector, _import_detector_modules
from core.anomaly.classical import CLASSICAL
from core.anomaly.saved_model import save_model
from core.commands._options import (
    add_deposit_arguments,
    add_preprocess_arguments,
    add_sample_arguments,
    preprocessor_from_args,
    read_samples_from_args,
)
from core.errors import InvalidInputError
from core.evaluate.report import evaluate_scores, write_success_rate
from core.grid.idw import grid_samples
from core.io.atomic import atomic_output_dir
from core.io.samples import read_deposits
from core.io.scores import scores_frame, write_scores
from core.preprocess.duplicates import colocated_report
from core.runrecord import RunRecord

NAME = "detect"
HELP = "score samples for anomalies with one detector (classical or deep), grid the scores, evaluate against deposits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True,
                        help="detector: transformer, mahalanobis, isolation_forest, knn, ocsvm, pca")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_sample_arguments(parser)
    add_deposit_arguments(parser)
    add_preprocess_arguments(parser)
    parser.add_argument("--cell", type=float, help="cell size of the score raster in metres (default from sample spacing)")
    parser.add_argument("--max-distance", type=float,
                        help="cells farther than this (metres) from every sample are nodata (default from spacing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same scores")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--compare", default="auto",
                        help="classical baselines scored in the same run: auto (all, when deposits are given), "
                             "none, or a comma list")
    parser.add_argument("--min-km", type=float, default=5.0,
                        help="AUC protocol: background samples are at least this far from every deposit (default 5)")
    _import_detector_modules()
    for cls in _REGISTRY.values():
        cls.add_arguments(parser)


def run(args: argparse.Namespace, progress) -> int:
    method = detector_class(args.method)  # unknown names fail before any work
    baselines = _baselines(args)
    record = RunRecord("detect", vars(args))
    with atomic_output_dir(args.out) as staging:
        progress.stage("read", f"Reading {Path(args.samples).name}", weight=_stage_weights(False, False)["read"])
        table = read_samples_from_args(args)
        deposits = read_deposits(args.deposits, table.work_crs, crs=args.deposits_crs) if args.deposits else None
        progress.log(f"{len(table)} samples; distances in {table.work_crs.name}")

        progress.stage("preprocess", "Preparing assays", weight=_stage_weights(False, False)["preprocess"])
        preprocessor = preprocessor_from_args(args)
        prepared = preprocessor.fit_transform(table)
        dropped = preprocessor.dropped_()
        progress.log(f"{len(prepared.elements)} elements used ({args.transform}, {args.scaling} scaling); "
                     f"{len(dropped)} dropped")
        for entry in dropped:
            progress.log(f"  dropped {entry['element']}: {entry['reason']}")
        colocated = colocated_report(prepared.xy, prepared.values)
        if colocated["identical_to_a_co_located_sample"]:
            progress.warn(f"{colocated['sharing_a_location']} samples share a location with another; "
                          f"{colocated['identical_to_a_co_located_sample']} have identical assays to a co-located "
                          "sample (probably one sample compiled twice): such twins are not independent evidence")

        detector: Detector = method.from_args(args)
        # Deep models log their device (and thread count) themselves, before training starts.
        progress.log(f"Detector {args.method}" + ("" if _uses_torch(detector) else " on cpu"))
        weights = _stage_weights(_uses_torch(detector), deposits is not None)
        fit_weight = weights["fit"]
        if hasattr(detector, "report_stages"):
            # The transformer reports each generation as its own stage ("generation 2/4"); hand it the fit share.
            detector.report_stages(fit_weight)
            fit_weight = 0.0
        progress.stage("fit", f"Fitting {args.method}", weight=fit_weight)
        record.start_timer("fit")
        detector.fit(prepared, progress)
        record.stop_timer("fit")
        record["device"] = getattr(detector, "history_", {}).get("device", "cpu")

        progress.stage("score", "Scoring samples", weight=weights["score"])
        record.start_timer("score")
        scores = detector.score(prepared)
        details = detector.score_details(prepared)
        record.stop_timer("score")
        columns = score_columns(scores, details, prepared.elements)
        readouts = {name: values for name, values in details.items() if np.ndim(values) == 1}

        metrics: dict = {}
        if deposits is not None:
            progress.stage("evaluate", "Evaluating against deposits", weight=weights["evaluate"])
            compared = {args.method: scores, **{f"readout:{k}": v for k, v in readouts.items()}}
            for i, name in enumerate(baselines):
                progress.update(i / max(len(baselines), 1), f"baseline {name}")
                if name == args.method:
                    continue
                baseline = detector_class(name).from_args(args).fit(prepared)
                compared[f"baseline:{name}"] = baseline.score(prepared)
            metrics = evaluate_scores(prepared.xy, compared, deposits, min_km=args.min_km)
            main = metrics["auc_by_score"][args.method]
            # Headline figures of the run's own score, for the plugin and a quick read.
            metrics.update(auc=main["mean"], auc_std=main["std"], success_rate_top5=main["success_rate_top5"])
            progress.log(f"{args.method}: AUC {main['mean']:.3f} ± {main['std']:.3f} "
                         f"({main['n_used']} deposits; mean of 20 repeats, each with its own background samples)")
            if main["n_outside"]:
                progress.warn(f"{main['n_outside']} deposit(s) lie outside the survey and were not scored")
            for name, res in metrics["auc_by_score"].items():
                if name != args.method:
                    progress.log(f"  {plain_score_name(name)}: AUC {res['mean']:.3f} ± {res['std']:.3f}")
            write_success_rate(prepared.xy, {k: v for k, v in compared.items() if not k.startswith("readout:")},
                               deposits, staging, title=f"Success rate — {args.method}",
                               auc={name: res["mean"] for name, res in metrics["auc_by_score"].items()})

        progress.stage("grid", "Gridding the scores", weight=weights["grid"])
        grid = grid_samples(prepared.xy, scores, cell=args.cell, max_distance=args.max_distance,
                            band_names=["anomaly_score"], crs=table.work_crs)
        grid.write(staging / "anomaly_score.tif")

        frame = scores_frame(table, columns)
        write_scores(frame, table.crs, staging)
        save_model(staging / "model", preprocessor, detector, table)

        record["samples"] = {"file": str(Path(args.samples).resolve()), "count": len(table),
                             "crs": table.crs.to_string(), "work_crs": table.work_crs.to_string()}
        record["preprocessing"] = preprocessor.to_dict()["report"]
        record["elements"] = prepared.elements
        record["colocated_samples"] = colocated
        record["grid"] = {"cell_m": grid.cell, "max_distance_m": grid.max_distance}
        record["training"] = getattr(detector, "history_", {})
        record["metrics"] = metrics
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    outputs = {p.stem if p.is_file() else p.name: str(p) for p in sorted(out.iterdir())}
    progress.result(outputs=outputs, metrics=metrics, out=str(out))
    if progress.mode != "json":
        print(f"Scores: {out / 'scores.csv'} | raster: {out / 'anomaly_score.tif'} | record: {out / 'run.json'}")
    return 0


def score_columns(scores: np.ndarray, details: dict[str, np.ndarray], elements: list[str]) -> dict[str, np.ndarray]:
    """The per-sample columns of the points output: score, rank, percentile, readouts, residuals."""
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(1, len(scores) + 1)
    columns = {"anomaly_score": scores, "anomaly_rank": rank,
               "anomaly_percentile": 100.0 * (1.0 - (rank - 1) / len(scores))}
    for name, values in details.items():
        values = np.asarray(values)
        if values.ndim == 1:
            columns[name] = values
        elif values.ndim == 2 and values.shape[1] == len(elements):
            # Which elements drive each anomaly: the three largest absolute residuals.
            top = np.argsort(-np.abs(values), axis=1)[:, :3]
            columns["top_elements"] = np.array([",".join(elements[j] for j in row) for row in top], dtype=object)
            for j, element in enumerate(elements):
                columns[f"{name}_{element}"] = values[:, j]
    return columns


def plain_score_name(name: str) -> str:
    """A compared score's name for the log: "baseline:pca" and "readout:x" are run.json's keys, not words."""
    if name.startswith("baseline:"):
        return f"{name.split(':', 1)[1]} (for comparison)"
    if name.startswith("readout:"):
        return f"{name.split(':', 1)[1].replace('_', ' ')} (one part of the model's score)"
    return name


def _stage_weights(deep: bool, evaluate: bool) -> dict[str, float]:
    """Each stage's share of the progress bar, summing to 1 (training dominates deep runs)."""
    weights = {"read": 0.05, "preprocess": 0.05, "fit": 0.75 if deep else 0.35, "score": 0.05,
               "evaluate": (0.05 if deep else 0.35) if evaluate else 0.0}
    weights["grid"] = 1.0 - sum(weights.values())
    return weights


def _baselines(args) -> list[str]:
    if args.compare == "none":
        return []
    if args.compare == "auto":
        return list(CLASSICAL) if args.deposits else []
    names = [n.strip() for n in args.compare.split(",") if n.strip()]
    for name in names:
        if name not in CLASSICAL:
            raise InvalidInputError(f"--compare: {name!r} is not a classical detector ({', '.join(CLASSICAL)})")
    return names


def _uses_torch(detector: Detector) -> bool:
    return type(detector).__module__.split(".")[2:3] != ["classical"]
