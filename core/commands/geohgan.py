"""``geoanomaly geohgan``: Geo-Hgan anomaly rasters from a multi-band geochemical raster.

Inputs: one multi-band GeoTIFF (a band per element), several single-band
rasters on one grid, or the ``grid.tif`` of ``geoanomaly grid``.

Outputs (written whole or not at all):

- ``geohgan_scores.tif``: 3 bands ``img_distance``, ``anomaly_score``,
  ``z_distance`` on the input grid (same CRS, transform and size), nodata
  where the input has none in some band; the same three as single-band
  ``img_distance.tif``, ``anomaly_score.tif``, ``z_distance.tif`` (one
  heat map each in QGIS, one evidence layer each for prospectivity);
- ``anomaly_cells.gpkg``: AnomFilter's high-confidence anomaly cells (cell
  centres) with their scores, ready as positives for the prospectivity step;
- ``run.json``: parameters, versions, device, timings, the metric used and
  how it was chosen, AUCs per metric when deposits are given;
- ``model/``: the trained detector (config.json, weights.pt, normalisation.json);
- with ``--commodity``: ``suite_enrichment.tif``, the gridded commodity
  readout of Geo-Hgan's own per-band reconstruction residuals: each suite
  band's residual ``x - G(E(x))`` (bands matched to elements by name; each
  cell the mean over the tiles covering it), robust-standardised over the
  valid cells, then :func:`core.anomaly.readouts.gridded_suite_enrichment`
  (one-sided, capped, suite-weighted, Gaussian neighbourhood mean: a halo of
  enriched cells keeps its level, a single-cell spike is diluted, depletion
  counts nothing). Beside it ``suite_halo.tif``, the same readout of the suite
  bands themselves (logged, robust-standardised; no model), the map a
  geologist makes by hand: on a survey that covers only a mineralised field
  the model learns the field as background and the model-free map is the
  better one. Their cell AUCs are in run.json (``commodity.model``,
  ``commodity.model_free``) when deposits are given. Without ``--commodity``
  the log says the maps are commodity-blind.

Metric: without deposits, ``anomaly_score`` (reconstruction error plus
critic-feature distance, f-AnoGAN's recommended score, and the published
code's): an unsupervised choice that needs no labels. With ``--deposits``
(and ``--metric auto``), the metric with the highest cell AUC (deposit cell
and its 8 neighbours positive) is used, as the published
``select_anomaly_metric`` does; run.json then says the choice used deposit
labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.anomaly.geohgan import SCORE_NAMES, GeoHganDetector, anom_filter, tukey_upper_fence
from core.anomaly.geohgan.detector import GeoHganConfig
from core.anomaly.geohgan.streaming import RasterFiles, cell_features, fit_files, residual_files, score_files
from core.anomaly.readouts import gridded_suite_enrichment, robust_standardise
from core.commands._options import (
    _comma_list,
    add_batch_size_argument,
    add_commodity_arguments,
    add_deposit_arguments,
    add_device_argument,
    add_output_argument,
    add_seed_argument,
    add_threads_argument,
    commodity_suite_from_args,
)
from core.device import describe_device, resolve_device
from core.errors import InvalidCrsError, InvalidInputError
from core.evaluate.auc import cell_auc
from core.io.atomic import atomic_output_dir
from core.io.rasters import write_raster
from core.io.samples import read_deposits
from core.preprocess.elements import (
    COMMODITY_BLIND,
    assay_columns,
    commodity_elements,
    commodity_key,
    commodity_suite,
)
from core.runrecord import RunRecord

NAME = "geohgan"
HELP = "Geo-Hgan anomaly rasters (img_distance, anomaly_score, z_distance) from a multi-band geochemical raster"

UNSUPERVISED_METRIC = "anomaly_score"
SCORES_FILE = "geohgan_scores.tif"
CELLS_FILE = "anomaly_cells.gpkg"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GeoHganConfig()
    parser.add_argument("--raster", action="append", required=True, metavar="FILE",
                        help="multi-band GeoTIFF (a band per element); repeat for several single-band rasters "
                             "on one grid")
    add_output_argument(parser)
    parser.add_argument("--bands", type=_comma_list, metavar="A,B,...",
                        help="bands to use, by name (band description or file name) or 1-based number "
                             "(default: all)")
    add_deposit_arguments(parser, help="known deposits (points): choose the metric by cell AUC (uses deposit "
                                       "labels) and report AUCs")
    add_commodity_arguments(parser)
    parser.add_argument("--halo-cells", type=float, default=2.0,
                        help="with --commodity: Gaussian radius of the gridded suite readout, in cells (default 2)")
    parser.add_argument("--metric", choices=["auto", *SCORE_NAMES], default="auto",
                        help=f"score for AnomFilter: auto = {UNSUPERVISED_METRIC} without deposits, the best "
                             "cell AUC with deposits")
    group = parser.add_argument_group("model")
    group.add_argument("--tile", type=int, default=defaults.tile, help=f"tile size in cells (default {defaults.tile})")
    group.add_argument("--stride", type=int, default=defaults.stride,
                       help=f"step between tiles in cells (default {defaults.stride})")
    group.add_argument("--score-stride", type=int,
                       help="stride of the scored tiles (default: --stride); 1 or 2 give smoother maps, at 16 or 4 "
                            "times the scoring time")
    group.add_argument("--latent", type=int, default=defaults.latent,
                       help=f"latent code size (default {defaults.latent})")
    group.add_argument("--epochs", type=int, default=defaults.epochs,
                       help=f"step-1 epochs (default {defaults.epochs})")
    group.add_argument("--encoder-epochs", type=int, help="step-2 epochs (default: --epochs)")
    group.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs,
                       help=f"autoencoder-only epochs before the GANs (default {defaults.warmup_epochs})")
    group.add_argument("--tiles-per-epoch", type=int, default=defaults.tiles_per_epoch,
                       help=f"tiles drawn per epoch (default {defaults.tiles_per_epoch}; 0 = one pass over all)")
    add_batch_size_argument(group, defaults.batch, help=f"tiles per training step (default {defaults.batch})")
    group.add_argument("--kappa", type=float, default=defaults.kappa,
                       help=f"weight of the critic-feature distance (default {defaults.kappa:g})")
    group.add_argument("--transform", choices=["auto", "log", "clr", "none"], default=defaults.transform,
                       help="per-cell transform before scaling: auto = log for positive concentrations, none for "
                            "bands already transformed (default auto)")
    group.add_argument("--min-valid", type=float, default=defaults.min_valid,
                       help=f"share of cells with data a training tile needs (default {defaults.min_valid:g})")
    add_seed_argument(group)
    add_device_argument(group)
    add_threads_argument(group)
    group.add_argument("--window-rows", type=int, default=512,
                       help="rows scored at a time (bounds memory; default 512)")


def run(args: argparse.Namespace, progress) -> int:
    record = RunRecord(NAME, vars(args))
    device = resolve_device(args.device)  # a bad --device fails before any work
    with atomic_output_dir(args.out) as staging:
        progress.stage("read", "Reading " + ", ".join(Path(p).name for p in args.raster), weight=0.02)
        # The files are read in windows of rows, never whole: rasters larger than memory work too.
        files = RasterFiles.open(args.raster, _band_selection(args.bands), block_rows=args.window_rows)
        deposits = _read_deposits(args, files) if args.deposits else None
        progress.log(f"{files.bands} bands, {files.rows} x {files.cols} cells of {abs(files.transform.a):g} x "
                     f"{abs(files.transform.e):g}")
        suite_bands = _suite_bands(args, files, progress)  # a survey without the commodity fails before training

        detector = GeoHganDetector(
            device=args.device, threads=args.threads, tile=args.tile, stride=args.stride,
            score_stride=args.score_stride, latent=args.latent,
            epochs=args.epochs, encoder_epochs=args.epochs if args.encoder_epochs is None else args.encoder_epochs,
            warmup_epochs=args.warmup_epochs, tiles_per_epoch=args.tiles_per_epoch or None, batch=args.batch_size,
            kappa=args.kappa, transform=args.transform, min_valid=args.min_valid, seed=args.seed)
        record.start_timer("fit")
        valid = fit_files(detector, files, progress)
        record.stop_timer("fit")
        record["device"] = describe_device(device)
        progress.log(f"{valid.mean() * 100:.0f} % of the cells have data in every band")

        progress.stage("score", "Scoring cells", weight=0.1)
        record.start_timer("score")
        scores = score_files(detector, files, args.window_rows, progress)
        record.stop_timer("score")
        write_raster(staging / SCORES_FILE, scores, files.transform, files.crs, band_names=list(SCORE_NAMES))
        record["commodity"] = _commodity_readout(args, detector, files, suite_bands, deposits, staging, progress)
        for i, name in enumerate(SCORE_NAMES):
            write_raster(staging / f"{name}.tif", scores[i], files.transform, files.crs, band_names=[name])

        progress.stage("select", "Choosing the metric and filtering anomalies", weight=0.03)
        metric, choice = _choose_metric(args.metric, scores, files.transform, valid, deposits, progress)
        cells, filtered = _anomaly_cells(detector, files, scores, valid, metric)
        _write_cells(staging / CELLS_FILE, cells, files.crs)
        counts = filtered.to_dict()
        progress.log(f"AnomFilter: {counts['n_above_fence']} cells above the Tukey fence of {metric}, "
                     f"{counts['n_selected']} kept as high-confidence anomalies")

        detector.save(staging / "model")
        record["rasters"] = {"files": [str(p.resolve()) for p in files.paths], "bands": files.band_names,
                             "rows": files.rows, "cols": files.cols,
                             "crs": files.crs.to_string() if files.crs else None,
                             "transform": list(files.transform)[:6], "valid_cells": int(valid.sum())}
        record["model"] = {"config": vars(detector.config), "transform_used": detector.normaliser_.transform,
                           "training_tiles": detector.n_training_tiles_, "threads": args.threads}
        record["training"] = detector.history_
        record["metric"] = choice
        record["anomfilter"] = {"metric": metric, **counts}
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    outputs = {**({"suite_enrichment": str(out / "suite_enrichment.tif"), "suite_halo": str(out / "suite_halo.tif")}
                  if args.commodity else {}),
               "scores": str(out / SCORES_FILE), **{name: str(out / f"{name}.tif") for name in SCORE_NAMES},
               "anomaly_cells": str(out / CELLS_FILE), "run": str(out / "run.json"), "model": str(out / "model")}
    progress.result(outputs=outputs, metrics=choice, out=str(out))
    if progress.mode != "json":
        print(f"Scores: {outputs['scores']} | anomaly cells: {outputs['anomaly_cells']} | record: {outputs['run']}")
    return 0


def _suite_bands(args, files: RasterFiles, progress) -> dict[int, tuple[str, float]] | None:
    """Band index -> (element, weight) of the commodity suite's bands; None when commodity-blind."""
    if not args.commodity:
        progress.log(COMMODITY_BLIND)
        return None
    elements = [_band_element(name) for name in files.band_names]
    suite = commodity_suite(args.commodity, commodity_suite_from_args(args), available=elements)
    if not any(el in elements for el in commodity_elements(args.commodity)):
        raise InvalidInputError(f"no raster band is named after the commodity {commodity_key(args.commodity)} "
                                f"(bands: {', '.join(files.band_names[:12])}); grid it with 'geoanomaly grid'")
    return {i: (el, suite[el]) for i, el in enumerate(elements) if el in suite}


def _commodity_readout(args, detector: GeoHganDetector, files: RasterFiles, suite_bands, deposits, staging: Path,
                       progress) -> dict | None:
    """``suite_enrichment.tif`` (the halo readout of Geo-Hgan's residuals of the suite bands) and, as the
    model-free map beside it, ``suite_halo.tif`` (the same readout of the suite bands themselves)."""
    if suite_bands is None:
        return None
    wanted = list(suite_bands)
    elements = [suite_bands[i][0] for i in wanted]
    suite = dict(suite_bands.values())
    residuals = residual_files(detector, files, wanted, args.window_rows).astype(np.float64)
    levels = np.concatenate([block.values[wanted] for block in files.blocks()], axis=1).astype(np.float64)
    for band in levels:
        # Concentrations (all positive) are compared on a log scale; preprocessed bands are used as they are.
        finite = np.isfinite(band)
        if np.all(band[finite] > 0):
            band[finite] = np.log(band[finite])
    info = {"name": commodity_key(args.commodity), "suite": suite, "halo_cells": args.halo_cells}
    progress.log(f"Commodity {info['name']}: suite bands {', '.join(suite)}")
    info["model"] = _suite_readout(
        "suite_enrichment", residuals, elements, suite, args, files, deposits, staging, progress,
        reads="Geo-Hgan reconstruction residuals of the suite bands (x - G(E(x)), mean over covering tiles)",
        words="where the suite is richer than the model rebuilds from the surrounding pattern")
    info["model_free"] = _suite_readout(
        "suite_halo", levels, elements, suite, args, files, deposits, staging, progress,
        reads="the suite bands themselves (logged concentrations), no model",
        words="where the suite is richest in the survey, no model")
    return info


def _suite_readout(name: str, bands: np.ndarray, elements: list[str], suite: dict, args, files: RasterFiles,
                   deposits, staging: Path, progress, reads: str, words: str) -> dict:
    """``<name>.tif``: each band robust-standardised over its valid cells, then the gridded halo readout
    (enrichment only, capped, Gaussian neighbourhood mean); its cell AUC when deposits are given."""
    for band in bands:
        finite = np.isfinite(band)
        band[finite] = robust_standardise(band[finite][:, None])[:, 0]
    readout = gridded_suite_enrichment(bands, elements, suite, radius_cells=args.halo_cells)
    write_raster(staging / f"{name}.tif", readout[None].astype(np.float32), files.transform, files.crs,
                 band_names=[name])
    info = {"readout": f"{name}.tif", "reads": reads + "; robust-standardised per band, enrichment only, capped, "
                                                      "Gaussian neighbourhood mean"}
    progress.log(f"  {name}.tif: {words}, supported by neighbouring cells")
    if deposits is not None:
        try:
            info["cell_auc"] = cell_auc(readout, files.transform, deposits, np.isfinite(readout)).to_dict()
            progress.log(f"  {name}: cell AUC {info['cell_auc']['auc']:.3f}")
        except InvalidInputError as exc:
            progress.warn(f"cell AUC of {name} not computed: {exc}")
    return info


def _band_element(name: str) -> str:
    """The element a band measures: its name if a symbol ("Au"), else from a unit suffix ("Au_ppb")."""
    found = assay_columns([name])
    return next(iter(found)) if found else name


def _band_selection(bands: list[str] | None) -> list[str | int] | None:
    if bands is None:
        return None
    return [int(b) if b.isdigit() else b for b in bands]


def _read_deposits(args: argparse.Namespace, files: RasterFiles) -> np.ndarray:
    if files.crs is None:
        raise InvalidCrsError(f"{files.paths[0]} has no CRS, so the deposits cannot be placed on it")
    return read_deposits(args.deposits, files.crs.to_wkt(), crs=args.deposits_crs)


def _choose_metric(requested: str, scores: np.ndarray, transform, valid: np.ndarray, deposits,
                   progress) -> tuple[str, dict]:
    """The metric for AnomFilter and how it was chosen (with per-metric cell AUCs when deposits are given)."""
    choice: dict = {"requested": requested}
    aucs = {}
    if deposits is not None:
        for i, name in enumerate(SCORE_NAMES):
            try:
                aucs[name] = cell_auc(scores[i], transform, deposits, valid).to_dict()
            except InvalidInputError as exc:
                progress.warn(f"cell AUC of {name} not computed: {exc}")
                break
        for name, res in aucs.items():
            progress.log(f"  {name}: cell AUC {res['auc']:.3f} ({res['n_used']} of {res['n_deposits']} deposits "
                         f"on valid cells, {res['n_positive_cells']} positive cells)")
        choice["cell_auc"] = aucs
        choice["auc_protocol"] = "cells: deposit cell + 8 neighbours positive, all other valid cells negative"
    if requested != "auto":
        choice.update(metric=requested, how="given by the user (--metric)", uses_deposit_labels=False)
    elif aucs:
        best = max(aucs, key=lambda name: aucs[name]["auc"])
        choice.update(metric=best, how="highest cell AUC against the given deposits (select_anomaly_metric)",
                      uses_deposit_labels=True)
        progress.log(f"Metric {best} chosen by cell AUC: this choice uses the deposit labels")
    else:
        choice.update(metric=UNSUPERVISED_METRIC,
                      how="unsupervised default: reconstruction error + critic-feature distance (f-AnoGAN izi_f)",
                      uses_deposit_labels=False)
    return choice["metric"], choice


def _anomaly_cells(detector: GeoHganDetector, files: RasterFiles, scores: np.ndarray, valid: np.ndarray,
                   metric: str):
    """AnomFilter on valid cells: the chosen score, the cells' normalised band values, their mean as target.

    Only the cells above the Tukey fence need their band values, read in one
    more pass over the files.
    """
    chosen = scores[SCORE_NAMES.index(metric)]
    valid = valid & np.isfinite(scores).all(axis=0)
    fence = tukey_upper_fence(chosen[valid])
    wanted = valid & (chosen > fence) if np.isfinite(fence) else np.zeros_like(valid)
    features, target_mean = cell_features(detector, files, valid, wanted)
    filtered = anom_filter(chosen[wanted], features, target_mean, fence=fence)
    rows, cols = np.nonzero(wanted)
    filtered.above_fence = np.c_[rows, cols]  # report cells, not positions in the candidate list
    keep = filtered.selected
    xs, ys = files.transform * (cols[keep] + 0.5, rows[keep] + 0.5)
    cells = {"row": rows[keep], "col": cols[keep], "x": np.asarray(xs, dtype=float), "y": np.asarray(ys, dtype=float),
             **{name: scores[i][rows[keep], cols[keep]].astype(float) for i, name in enumerate(SCORE_NAMES)},
             "metric": [metric] * len(keep), "distance_to_mean": filtered.distance[keep].astype(float)}
    return cells, filtered


def _write_cells(path: Path, cells: dict, crs) -> None:
    import geopandas as gpd

    columns = {k: v for k, v in cells.items() if k not in {"x", "y"}}
    frame = gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(cells["x"], cells["y"]),
                             crs=crs.to_wkt() if crs else None)
    frame.to_file(path, layer="anomaly_cells", driver="GPKG", VERSION="1.2")  # 1.4 makes QGIS 3.22 warn
