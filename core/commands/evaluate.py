"""``geoanomaly evaluate``: judge a score map against known deposits.

- Points (a detect run's ``scores.csv`` / ``scores.gpkg``, or any point file
  with a score column): the 20-run sample-level AUC protocol of
  ``reference/evaluation.md`` section 1 (mean +/- std), success rate at the
  top 5 %, average precision, and the success-rate curve over samples.
- A GeoTIFF: the cell-level AUC of section 3 (a deposit's cell and its 8
  neighbours positive) and the success-rate curve over cells (nodata cells
  are not area). The raster must be in a projected CRS.

Deposits outside the survey (points) or on nodata / off the raster (GeoTIFF)
are reported and not scored. With ``--out DIR``: ``evaluation.json`` (every
figure, parameters, versions), ``success_rate.csv`` and ``success_rate.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from core.commands._options import add_deposit_arguments, add_output_argument
from core.errors import InvalidCrsError, InvalidInputError
from core.evaluate.auc import auc_protocol, cell_auc
from core.evaluate.curves import (
    SuccessRateCurve,
    plot_success_rate,
    raster_success_curve,
    sample_success_curve,
)
from core.io.atomic import atomic_output_dir
from core.io.rasters import RasterStack, read_raster_stack
from core.io.samples import read_deposits, read_samples
from core.runrecord import RunRecord

NAME = "evaluate"
HELP = "evaluate scores (points or a GeoTIFF) against known deposits: AUC protocol and success-rate curve"
RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scores",
        required=True,
        metavar="FILE",
        help="scored points (CSV with x/y columns in the file's CRS, GeoPackage, Shapefile) "
        "or a score GeoTIFF",
    )
    add_deposit_arguments(parser, required=True, help="known deposits (points)")
    parser.add_argument(
        "--score-field",
        default="anomaly_score",
        help="score column of the points, or band name of a multi-band GeoTIFF (default anomaly_score)",
    )
    add_output_argument(
        parser,
        required=False,
        help="write evaluation.json, success_rate.csv and success_rate.png here (default: print only)",
    )
    parser.add_argument(
        "--min-km",
        type=float,
        default=5.0,
        help="AUC protocol: background samples are at least this far from every deposit (default 5)",
    )
    parser.add_argument(
        "--max-deposit-distance",
        type=float,
        metavar="KM",
        help="deposits farther than this from every sample are outside the survey "
        "(default: 10 x the median sample spacing)",
    )
    group = parser.add_argument_group("coordinates of a points file")
    group.add_argument("--layer", help="layer name inside a GeoPackage")
    group.add_argument("--x", help="x / easting / longitude column of a CSV (auto-detected when omitted)")
    group.add_argument("--y", help="y / northing / latitude column of a CSV (auto-detected when omitted)")
    group.add_argument(
        "--crs",
        help="CRS of the coordinates, e.g. EPSG:28350 (default: from the file; "
        "bare lon/lat columns are EPSG:4326)",
    )
    group.add_argument(
        "--work-crs",
        help="projected CRS for distances (default: the file's if projected, else the local UTM zone)",
    )


def run(args: argparse.Namespace, progress) -> int:
    path = Path(args.scores)
    record = RunRecord("evaluate", vars(args))
    progress.stage("evaluate", f"Evaluating {path.name} against {Path(args.deposits).name}", weight=0.8)
    if path.suffix.lower() in RASTER_SUFFIXES:
        metrics, curve, line = _evaluate_raster(args, path)
    else:
        metrics, curve, line = _evaluate_points(args, path)
    # stdout carries only JSON events in json mode.
    progress.log(line) if progress.mode == "json" else print(line)
    if curve.n_outside:
        progress.warn(
            f"{curve.n_outside} deposit(s) outside the scored area were not scored "
            f"(rows {curve.outside_index} of {Path(args.deposits).name})"
        )

    outputs = {}
    if args.out:
        progress.stage("write", "Writing evaluation.json and the success-rate curve", weight=0.2)
        with atomic_output_dir(args.out) as staging:
            curve.to_frame().to_csv(staging / "success_rate.csv", index=False)
            plot_success_rate(
                {args.score_field: curve}, staging / "success_rate.png", title=f"Success rate - {path.name}"
            )
            record["metrics"] = metrics
            record.write(staging / "evaluation.json")
        out = Path(args.out).resolve()
        outputs = {
            name: str(out / name) for name in ("evaluation.json", "success_rate.csv", "success_rate.png")
        }
        if progress.mode != "json":
            print(f"Evaluation: {out / 'evaluation.json'} | curve: {out / 'success_rate.png'}")
    progress.result(outputs=outputs, metrics=metrics)
    return 0


def _evaluate_points(args: argparse.Namespace, path: Path) -> tuple[dict, SuccessRateCurve, str]:
    table = read_samples(path, x=args.x, y=args.y, crs=args.crs, work_crs=args.work_crs, layer=args.layer)
    scores = _score_column(table.frame, args.score_field, path)
    deposits = read_deposits(args.deposits, table.work_crs, crs=args.deposits_crs)
    max_km = args.max_deposit_distance
    result = auc_protocol(table.xy, scores, deposits, min_km=args.min_km, max_deposit_distance_km=max_km)
    curve = sample_success_curve(
        table.xy, scores, deposits, max_deposit_distance_km=result.max_deposit_distance_km
    )
    metrics = {
        "unit": "samples",
        "score_field": args.score_field,
        "work_crs": table.work_crs.to_string(),
        # Headline numbers first: readers (the QGIS plugin) look for a number called "auc".
        "auc": result.mean,
        "auc_std": result.std,
        "success_rate_top5": result.success_rate_top5,
        "auc_protocol": result.to_dict(),
        "success_rate": curve.to_dict(),
    }
    return metrics, curve, f"{args.score_field}: {result.summary()}"


def _evaluate_raster(args: argparse.Namespace, path: Path) -> tuple[dict, SuccessRateCurve, str]:
    stack = read_raster_stack(path)
    band = _score_band(stack, args.score_field, path)
    if stack.crs is None or not stack.crs.is_projected:
        raise InvalidCrsError(
            f"{path.name}: the raster is in {stack.crs.to_string() if stack.crs else 'no CRS'}; "
            "distances need a projected CRS in metres: reproject it first"
        )
    deposits = read_deposits(args.deposits, stack.crs.to_wkt(), crs=args.deposits_crs)
    result = cell_auc(band, stack.transform, deposits)
    curve = raster_success_curve(band, stack.transform, deposits)
    tops = ", ".join(f"{v * 100:.0f} %" for v in curve.top_area.values())
    line = (
        f"{path.name}: cell AUC {result.auc:.3f} ({result.n_used} deposits, deposit cell + 8 neighbours positive, "
        f"{result.n_negative_cells} background cells); success-rate AUC {curve.auc:.3f}; deposits in the top "
        f"{'/'.join(curve.top_area)} % of area: {tops}"
    )
    metrics = {
        "unit": "cells",
        "band": args.score_field if args.score_field in stack.band_names else stack.band_names[0],
        "crs": stack.crs.to_string(),
        "auc": result.auc,
        "cell_auc": result.to_dict(),
        "success_rate": curve.to_dict(),
    }
    return metrics, curve, line


def _score_column(frame: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    if name not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:15]))
        raise InvalidInputError(
            f"{path.name}: no score column {name!r} (columns: {columns}"
            f"{'...' if frame.shape[1] > 15 else ''}); choose one with --score-field"
        )
    scores = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(scores)
    if bad.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])
        raise InvalidInputError(
            f"{path.name}: column {name!r} has {int(bad.sum())} missing or non-numeric score(s) "
            f"(file lines {rows}{'...' if bad.sum() > 5 else ''})"
        )
    return scores


def _score_band(stack: RasterStack, name: str, path: Path) -> np.ndarray:
    if name in stack.band_names:
        return stack.band(name)
    if len(stack.band_names) == 1:
        return stack.values[0]
    raise InvalidInputError(
        f"{path.name}: no band {name!r} among {', '.join(stack.band_names)}; choose one with --score-field"
    )
