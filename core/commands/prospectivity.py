"""``geoanomaly prospectivity``: anomaly rasters + deposits + labels -> prospectivity map, classes, next queries.

One call runs one KDAL cycle on the labels so far (``--cycles N`` first runs N
cycles whose queries the deposits answer, for evaluation). Outputs (written
whole or not at all) in ``--out``:

- ``prospectivity.tif``: P(prospective), float32 in [0, 1], nodata outside the data;
- ``prospectivity_classes.tif``: 4 very high, 3 high, 2 moderate, 1 low (nodata outside);
- ``queries.gpkg``: the K cells to label next (``label`` empty; fill in 1/0 and
  hand the file back with ``--labels``);
- ``labels.gpkg``, ``kdal_state.json``, ``student.pt``/``student.json``: what the next cycle needs;
- ``success_rate.png``/``.csv``, ``deposits_per_class.csv``: from a spatially
  blocked cross-validation when the deposits were training labels;
- ``run.json``: parameters, counts, figures, device, timings.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from core.commands._options import (
    add_deposit_arguments,
    add_device_argument,
    add_output_argument,
    add_seed_argument,
)
from core.device import describe_device, resolve_device
from core.errors import InvalidInputError
from core.evaluate.curves import SuccessRateCurve, plot_success_rate, success_curve
from core.io.atomic import atomic_output_dir
from core.io.rasters import write_raster
from core.io.samples import read_deposits
from core.prospectivity.classes import (
    CLASS_NAMES,
    area_share_thresholds,
    classify_by_area,
    classify_by_pa,
    deposits_per_class,
)
from core.prospectivity.kdal import KDALConfig, LabelledCells, fit_kdal_map
from core.prospectivity.labels import (
    LABELS_FILE,
    QUERIES_FILE,
    STATE_FILE,
    empty_labels,
    previous_run_folder,
    read_label_points,
    read_state,
    write_points,
)
from core.prospectivity.soft_labels import NORMALISATIONS, normalise_scores
from core.prospectivity.stack import EvidenceStack, cells_from_mask_raster, load_evidence, place_points
from core.prospectivity.validation import blocked_folds, cross_validate
from core.runrecord import RunRecord

NAME = "prospectivity"
HELP = "prospectivity map by KDAL active learning from anomaly rasters, deposits and your labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument(
        "--evidence",
        action="append",
        required=True,
        metavar="FILE",
        help="evidence raster on the common grid (repeat for several); the first is the anomaly map",
    )
    inputs.add_argument(
        "--teacher",
        default="1",
        help="evidence band(s) whose scores are the soft labels: names or 1-based numbers, "
        "comma-separated, averaged after normalisation (default 1: the first band)",
    )
    add_deposit_arguments(inputs, required=True, help="known deposits (points)")
    inputs.add_argument(
        "--labels",
        metavar="FILE",
        help="labelled points (e.g. the edited queries.gpkg of the previous cycle)",
    )
    inputs.add_argument("--label-field", default="label", help="0/1 field of --labels (default label)")
    inputs.add_argument(
        "--anomaly-cells",
        metavar="FILE",
        help="high-confidence anomalies (points, or a 0/1 raster on the grid) added as positives",
    )
    inputs.add_argument(
        "--no-deposit-labels",
        action="store_true",
        help="use the deposits for evaluation only, not as positive labels",
    )
    add_output_argument(parser, help="output folder (the run folder)")
    cycle = parser.add_argument_group("active learning")
    cycle.add_argument(
        "--cycles",
        type=int,
        default=0,
        help="unattended cycles answered by the deposits before the final one (default 0: "
        "one cycle on your labels)",
    )
    cycle.add_argument("--k", type=int, default=5, help="queries per cycle (default 5)")
    cycle.add_argument(
        "--query-spacing",
        type=int,
        default=5,
        help="no two queries (or a query and a label) closer than this many cells (default 5)",
    )
    cycle.add_argument(
        "--oracle-radius",
        type=int,
        default=1,
        help="unattended cycles: a query within this many cells of a deposit is labelled 1 (default 1)",
    )
    model = parser.add_argument_group("classifier")
    model.add_argument(
        "--normalise",
        choices=NORMALISATIONS,
        default="robust",
        help="anomaly scores to [0, 1]: robust min-max (2nd-98th percentile) or rank (default robust)",
    )
    model.add_argument(
        "--soft-loss",
        choices=["kl", "ce"],
        default="kl",
        help="soft loss: KL with temperature or soft cross-entropy (default kl)",
    )
    model.add_argument("--temperature", type=float, default=2.0, help="distillation temperature (default 2)")
    model.add_argument(
        "--hard-weight", type=float, default=1.0, help="hard-loss weight against the soft loss (default 1)"
    )
    model.add_argument(
        "--hidden", type=int, default=32, help="hidden units per layer; 0 = logistic (default 32)"
    )
    model.add_argument("--steps", type=int, default=300, help="optimiser steps per training (default 300)")
    add_seed_argument(model)
    add_device_argument(model)
    out = parser.add_argument_group("classes and validation")
    out.add_argument(
        "--classes",
        choices=["area", "pa"],
        default="area",
        help="classes by area share, or high/low at the prediction-area crossing (default area)",
    )
    out.add_argument(
        "--class-shares",
        default="0.05,0.10,0.20",
        help="area shares of very high, high, moderate (cumulative; default 0.05,0.10,0.20)",
    )
    out.add_argument(
        "--folds",
        type=int,
        default=5,
        help="folds of the spatially blocked cross-validation; 0 = none (default 5)",
    )
    out.add_argument(
        "--cv-block", type=int, help="side of a cross-validation block in cells (default 1/16 of the longer grid side)"
    )


def _class_shares(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(
            f"--class-shares {text!r}: expected three numbers, e.g. 0.05,0.10,0.20"
        ) from None
    if len(values) != 3:
        raise InvalidInputError(f"--class-shares {text!r}: expected three numbers, e.g. 0.05,0.10,0.20")
    return values


def _check_arguments(args: argparse.Namespace) -> None:
    if args.cycles < 0 or args.k < 0 or args.query_spacing < 1 or args.oracle_radius < 0:
        raise InvalidInputError("--cycles, --k and --oracle-radius must be >= 0, --query-spacing >= 1")
    if args.folds == 1 or args.folds < 0:
        raise InvalidInputError("--folds must be 0 (no cross-validation) or at least 2")


def teacher_scores(stack: EvidenceStack, spec: str, method: str) -> tuple[np.ndarray, list[str]]:
    """P(prospective) per valid cell from the teacher band(s): normalised, averaged."""
    names = []
    parts = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item.isdigit():
            index = int(item) - 1
            if not 0 <= index < len(stack.band_names):
                raise InvalidInputError(f"--teacher {item}: there are {len(stack.band_names)} evidence bands")
        elif item in stack.band_names:
            index = stack.band_names.index(item)
        else:
            raise InvalidInputError(
                f"--teacher {item!r}: no such evidence band ({', '.join(stack.band_names)})"
            )
        names.append(stack.band_names[index])
        parts.append(normalise_scores(stack.band_values(index), method))
    if not parts:
        raise InvalidInputError("--teacher names no band")
    return np.mean(parts, axis=0), names


def run(args: argparse.Namespace, progress) -> int:
    _check_arguments(args)
    shares = _class_shares(args.class_shares)
    record = RunRecord(NAME, vars(args))
    config = KDALConfig(
        hidden=args.hidden,
        soft_loss=args.soft_loss,
        temperature=args.temperature,
        hard_weight=args.hard_weight,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
    )
    device_line = describe_device(resolve_device(args.device))
    with atomic_output_dir(args.out) as staging:
        progress.stage("read", "Reading evidence, deposits and labels", weight=0.05)
        stack = load_evidence(args.evidence)
        features = stack.features()
        rows, cols = stack.cell_rows, stack.cell_cols
        teacher, teacher_bands = teacher_scores(stack, args.teacher, args.normalise)
        progress.log(
            f"{len(stack.band_names)} evidence band(s) ({', '.join(stack.band_names)}) on a "
            f"{stack.shape[0]} x {stack.shape[1]} grid, {stack.n_cells} valid cells; "
            f"anomaly map: {', '.join(teacher_bands)}"
        )
        deposits_xy = read_deposits(args.deposits, stack.rasters.crs, crs=args.deposits_crs)
        deposits = place_points(stack, deposits_xy)
        progress.log(deposits.describe("deposits"))
        if deposits.n_outside_grid or deposits.n_on_nodata:
            progress.warn(
                f"{deposits.n_outside_grid + deposits.n_on_nodata} deposit(s) of {Path(args.deposits).name} "
                "are not on valid cells of the evidence grid and are not used or scored"
            )
        if len(deposits.flat) == 0:
            raise InvalidInputError(
                f"{Path(args.deposits).name}: none of its {deposits.n_points} deposits lies on a valid cell of the "
                f"evidence grid ({deposits.n_outside_grid} outside it, {deposits.n_on_nodata} on nodata); "
                "check the deposits' CRS (--deposits-crs) and the rasters' extent"
            )
        # One entry per deposit (two deposits in one cell count twice in the figures, once as a label).
        deposit_cells = deposits.flat
        pool, previous = _read_pool(args, stack, progress)
        cycle_number = (previous.get("cycle", 0) + 1) if previous else 1
        record["device"] = device_line
        progress.log(f"Cycle {cycle_number}: {len(pool)} label(s) besides the deposits; device {device_line}")

        progress.stage(
            "train",
            f"KDAL cycle {cycle_number}" + (f" after {args.cycles} unattended" if args.cycles else ""),
            weight=0.35 if args.folds else 0.8,
        )
        record.start_timer("train")
        result = fit_kdal_map(
            features,
            teacher,
            rows,
            cols,
            deposit_cells,
            pool,
            cycles=args.cycles,
            k=args.k,
            spacing=args.query_spacing,
            oracle_radius=args.oracle_radius,
            deposits_as_labels=not args.no_deposit_labels,
            config=config,
        )
        record.stop_timer("train")
        probability = result.probability
        progress.update(1.0, "trained")

        if args.classes == "pa":
            codes, pa_threshold = classify_by_pa(probability, deposit_cells)
            class_codes, thresholds = (3, 1), {"pa_crossing": pa_threshold}
        else:
            codes = classify_by_area(probability, shares)
            class_codes = (4, 3, 2, 1)
            thresholds = dict(
                zip(["very_high", "high", "moderate"], area_share_thresholds(probability, shares).tolist())
            )

        validation = None
        if args.folds and not args.no_deposit_labels:
            progress.stage(
                "validate", f"Spatially blocked cross-validation ({args.folds} folds)", weight=0.55
            )
            record.start_timer("validate")
            folds = blocked_folds(rows, cols, deposit_cells, args.folds, args.cv_block, args.seed)

            def fold_map(train: np.ndarray, closed: np.ndarray) -> np.ndarray:
                return fit_kdal_map(
                    features,
                    teacher,
                    rows,
                    cols,
                    train,
                    pool,
                    closed,
                    args.cycles,
                    args.k,
                    args.query_spacing,
                    args.oracle_radius,
                    True,
                    config,
                ).probability

            validation = cross_validate(
                fold_map,
                deposit_cells,
                folds,
                on_fold=lambda i, n: progress.update(i / n, f"fold {i} of {n}"),
            )
            record.stop_timer("validate")

        progress.stage("write", "Writing the map, classes and queries", weight=0.05)
        crs = stack.rasters.crs
        write_raster(
            staging / "prospectivity.tif",
            stack.to_map(probability),
            stack.rasters.transform,
            crs,
            band_names=["prospectivity"],
        )
        write_raster(
            staging / "prospectivity_classes.tif",
            stack.to_map(codes.astype(np.float32)),
            stack.rasters.transform,
            crs,
            nodata=0,
            band_names=["prospectivity_class"],
        )
        queries = result.queries
        write_points(
            staging / QUERIES_FILE,
            stack.cell_centres(queries),
            crs.to_wkt(),
            {
                "query": np.arange(1, len(queries) + 1),
                "cycle": np.full(len(queries), cycle_number),
                "probability": probability[queries].round(4),
                "confidence": np.maximum(probability[queries], 1 - probability[queries]).round(4),
                "label": empty_labels(len(queries)),
            },
        )
        # The pool as trained on, deposits included, so that the next cycle starts from it.
        trained = result.pool
        write_points(
            staging / LABELS_FILE,
            stack.cell_centres(trained.cells),
            crs.to_wkt(),
            {
                "label": trained.labels,
                "source": trained.sources,
                "probability": probability[trained.cells].round(4),
            },
        )
        result.model.save(staging)

        curves: dict[str, SuccessRateCurve] = {}
        labelled_by_deposits = not args.no_deposit_labels
        if validation is not None:
            curves[f"prospectivity ({validation.folds.n_folds}-fold blocked CV)"] = validation.curve
            per_class = _deposits_per_class_cv(validation, deposit_cells, args, shares)
        else:
            name = "prospectivity (trained on these deposits)" if labelled_by_deposits else "prospectivity"
            curves[name] = success_curve(probability, probability[deposit_cells], unit="cells")
            per_class = deposits_per_class(codes, deposit_cells, class_codes)
        curves["anomaly map alone (teacher)"] = success_curve(teacher, teacher[deposit_cells], unit="cells")
        _write_success_rate(curves, staging)
        pd.DataFrame(per_class).to_csv(staging / "deposits_per_class.csv", index=False)

        metrics = {
            "figures_from": "spatially blocked cross-validation"
            if validation is not None
            else (
                "the training deposits (optimistic)"
                if labelled_by_deposits
                else "deposits not used in training"
            ),
            "prospectivity": (
                validation.to_dict() if validation is not None else next(iter(curves.values())).to_dict()
            ),
            "anomaly_map_alone": curves["anomaly map alone (teacher)"].to_dict(),
            "class_thresholds": thresholds,
        }
        state = {
            "cycle": cycle_number,
            "evidence": [str(Path(p).resolve()) for p in args.evidence],
            "band_names": stack.band_names,
            "teacher": teacher_bands,
            "labels": {"count": len(trained), "positives": int(trained.labels.sum())},
            "config": asdict(config),
        }
        (staging / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        record["device"] = device_line
        record["cycle"] = cycle_number
        record["grid"] = {
            "rows": stack.shape[0],
            "cols": stack.shape[1],
            "valid_cells": stack.n_cells,
            "cell": stack.cell_size,
            "crs": crs.to_string(),
        }
        record["deposits"] = {
            "count": deposits.n_points,
            "on_valid_cells": int(deposits.placed.sum()),
            "outside_grid": deposits.n_outside_grid,
            "on_nodata": deposits.n_on_nodata,
            "cells": len(deposit_cells),
        }
        record["labels"] = {
            "count": len(trained),
            "positives": int(trained.labels.sum()),
            "by_source": pd.Series(trained.sources).value_counts().to_dict(),
        }
        record["history"] = result.history
        record["metrics"] = metrics
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    top = metrics["prospectivity"]["deposits_in_top_area"]
    progress.log(
        f"Deposits in the top 10 % / 20 % of the area: {top['10'] * 100:.0f} % / {top['20'] * 100:.0f} % "
        f"({metrics['figures_from']})"
    )
    outputs = {p.name: str(p) for p in sorted(out.iterdir()) if p.is_file()}
    progress.result(outputs=outputs, metrics=metrics, out=str(out))
    if progress.mode != "json":
        print(
            f"Prospectivity: {out / 'prospectivity.tif'} | queries to label: {out / QUERIES_FILE} | record: {out / 'run.json'}"
        )
    return 0


def _read_pool(args: argparse.Namespace, stack: EvidenceStack, progress) -> tuple[LabelledCells, dict | None]:
    """Labels besides the deposits: the previous cycle's pool, the edited labels, high-confidence anomalies."""
    pool = LabelledCells()
    previous = None
    crs = stack.rasters.crs
    if args.labels:
        folder = previous_run_folder(args.labels)
        if folder is not None:
            previous = read_state(folder)
            before = read_label_points(folder / LABELS_FILE, "label", crs)
            placed = place_points(stack, before.xy)
            pool = pool.add(
                placed.flat,
                before.labels[placed.placed],
                [s for s, p in zip(before.sources, placed.placed) if p],
            )
            progress.log(
                f"Previous cycle {previous.get('cycle', '?')}: {len(pool)} label(s) from {folder / LABELS_FILE}"
            )
        edited = read_label_points(args.labels, args.label_field, crs, default_source="geologist")
        placed = place_points(stack, edited.xy)
        progress.log(
            placed.describe(f"labelled points in {Path(args.labels).name}")
            + (f"; {edited.n_unlabelled} left empty (skipped)" if edited.n_unlabelled else "")
        )
        # Labels from a queries layer are the geologist's answers, whatever the layer says.
        pool = pool.add(
            placed.flat,
            edited.labels[placed.placed],
            ["geologist" if folder is not None else s for s, p in zip(edited.sources, placed.placed) if p],
        )
    if args.anomaly_cells:
        path = Path(args.anomaly_cells)
        if path.suffix.lower() in {".tif", ".tiff"}:
            cells = cells_from_mask_raster(stack, path)
        else:
            points = place_points(stack, read_deposits(path, crs))
            progress.log(points.describe(f"high-confidence anomalies in {path.name}"))
            cells = points.flat
        pool = pool.add(cells, np.ones(len(cells)), "anomaly")
    return pool, previous


def _deposits_per_class_cv(validation, deposit_cells: np.ndarray, args, shares) -> list[dict]:
    """Each held-out deposit classed on the map of its own fold (by that map's own thresholds)."""
    deposit_codes = np.zeros(len(deposit_cells), dtype=np.uint8)
    fold_codes = []
    for fold, fold_map in enumerate(validation.fold_maps):
        held_out = validation.folds.fold_of_deposit == fold
        if args.classes == "pa":
            codes = classify_by_pa(fold_map, deposit_cells[~held_out])[0]
        else:
            codes = classify_by_area(fold_map, shares)
        deposit_codes[held_out] = codes[deposit_cells[held_out]]
        fold_codes.append(codes)
    rows = []
    for code in (3, 1) if args.classes == "pa" else (4, 3, 2, 1):
        count = int(np.sum(deposit_codes == code))
        area = float(np.mean([np.mean(codes == code) for codes in fold_codes]))
        rows.append(
            {
                "class": CLASS_NAMES[code],
                "code": code,
                "area_share": round(area, 4),
                "deposits": count,
                "deposit_share": round(count / max(len(deposit_cells), 1), 4),
                "figures_from": "held-out deposits (blocked CV)",
            }
        )
    return rows


def _write_success_rate(curves: dict[str, SuccessRateCurve], folder: Path) -> None:
    frames = []
    for name, curve in curves.items():
        frame = curve.to_frame()
        frame.insert(0, "map", name)
        frames.append(frame)
    pd.concat(frames, ignore_index=True).to_csv(folder / "success_rate.csv", index=False)
    plot_success_rate(curves, folder / "success_rate.png", title="Success rate — prospectivity")
