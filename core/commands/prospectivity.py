"""``geoanomaly prospectivity``: anomaly rasters + deposits + labels -> prospectivity map, classes, next queries.

One call runs one KDAL cycle on the labels so far (``--cycles N`` first runs N
cycles whose queries the deposits answer, for evaluation). Outputs (written
whole or not at all) in ``--out``:

- ``prospectivity.tif``: P(prospective), float32 in [0, 1], nodata outside the data;
- ``prospectivity_classes.tif``: 4 very high, 3 high, 2 moderate, 1 low (nodata outside);
- ``queries.gpkg``: the K cells to label next (``label`` empty; fill in 1/0 and
  hand the file back with ``--labels``; ``why_here`` says why each was chosen);
- ``labels.gpkg``, ``kdal_state.json``, ``student.pt``/``student.json``: what the next cycle needs;
- ``success_rate.png``/``.csv``, ``deposits_per_class.csv``: from a spatially
  blocked cross-validation when the deposits were training labels, with the
  evidence alone, weights of evidence, logistic regression and random forest
  in the same folds, and the map's prediction-area plot;
- ``run.json``: parameters, counts, figures, device, timings.

The work is :func:`core.prospectivity.run_cycle`'s; this module only turns
options into :class:`core.prospectivity.cycle.CycleSettings` and records the run.
"""

from __future__ import annotations

import argparse
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
from core.io.atomic import atomic_output_dir
from core.prospectivity.classes import area_share_thresholds
from core.prospectivity.cycle import CycleRun, CycleSettings, run_cycle
from core.prospectivity.kdal import STUDENTS, KDALConfig
from core.prospectivity.labels import QUERIES_FILE
from core.prospectivity.soft_labels import NORMALISATIONS
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
        help="evidence (repeat for several): a raster on the common grid, or a detect run folder (or its "
        "scores.gpkg/.csv), whose map is gridded here - with detect --commodity, the commodity-aware map, "
        "the recommended first evidence; the first is the anomaly map",
    )
    inputs.add_argument(
        "--teacher",
        default="1",
        help="evidence band(s) whose scores are the soft labels: names or 1-based numbers, "
        "comma-separated, averaged after normalisation, or best: the band that ranks the deposits highest "
        "(chosen again on each fold's training deposits in the cross-validation) (default 1: the first band)",
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
        help="no two queries closer than this many cells (default 5); a query is never on ground a label "
             "already covers (--oracle-radius)",
    )
    cycle.add_argument(
        "--oracle-radius",
        type=int,
        default=1,
        help="the ground one check covers: unattended cycles label a query 1 when a deposit lies within this "
             "many cells; a 0 label crosses off this many cells around it (default 1)",
    )
    cycle.add_argument(
        "--hide-deposits",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="unattended cycles: this share of the deposits is not given as labels; the simulated geologist "
        "knows them and answers yes near them, to show what the answers add (default 0)",
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
        "--student",
        choices=STUDENTS,
        default="residual",
        help="residual: the evidence's own map plus a learned correction (never starts worse than the "
        "evidence); free: a classifier learning the map from scratch (default residual)",
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
        "--no-baselines",
        action="store_true",
        help="skip weights of evidence, logistic regression and random forest in the cross-validation",
    )
    out.add_argument(
        "--cv-block", type=int, help="side of a cross-validation block in cells (default 1/16 of the longer grid side)"
    )


def _class_shares(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--class-shares {text!r}: expected three numbers, e.g. 0.05,0.10,0.20") from None
    if len(values) != 3:
        raise InvalidInputError(f"--class-shares {text!r}: expected three numbers, e.g. 0.05,0.10,0.20")
    area_share_thresholds(np.linspace(0, 1, 101), values)  # checks the shares before any work
    return values


def settings_from_arguments(args: argparse.Namespace) -> CycleSettings:
    kdal = KDALConfig(student=args.student, hidden=args.hidden, soft_loss=args.soft_loss,
                      temperature=args.temperature, hard_weight=args.hard_weight, steps=args.steps,
                      seed=args.seed, device=args.device)
    return CycleSettings(teacher=args.teacher, normalise=args.normalise, cycles=args.cycles, k=args.k,
                         query_spacing=args.query_spacing, oracle_radius=args.oracle_radius,
                         hidden_deposits=args.hide_deposits,
                         deposits_as_labels=not args.no_deposit_labels, folds=args.folds, cv_block=args.cv_block,
                         classes=args.classes, class_shares=_class_shares(args.class_shares),
                         baselines=not args.no_baselines, kdal=kdal)


def run(args: argparse.Namespace, progress) -> int:
    settings = settings_from_arguments(args)
    record = RunRecord(NAME, vars(args))
    record["device"] = describe_device(resolve_device(args.device))
    with atomic_output_dir(args.out) as staging:
        record.start_timer("cycle")
        cycle = run_cycle(args.evidence, args.deposits, args.labels, settings=settings, label_field=args.label_field,
                          anomaly_cells=args.anomaly_cells, deposits_crs=args.deposits_crs, progress=progress)
        record.stop_timer("cycle")
        progress.stage("write", "Writing the map, classes and queries", weight=0.05)
        cycle.write(staging)
        metrics = cycle.metrics()
        _record(record, cycle, metrics)
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    top = metrics["prospectivity"]["deposits_in_top_area"]
    progress.log(f"Deposits in the top 10 % / 20 % of the area: {top['10'] * 100:.0f} % / {top['20'] * 100:.0f} % "
                 f"({metrics['figures_from']})")
    check = metrics.get("never_worse_than_evidence")
    if check and not check["holds"]:
        progress.warn("On held-out deposits this map captures fewer deposits than the evidence alone "
                      f"(top 10 %: {check['10']['map']} vs {check['10']['evidence']}, top 20 %: "
                      f"{check['20']['map']} vs {check['20']['evidence']}): prefer the evidence raster")
    outputs = {p.name: str(p) for p in sorted(out.iterdir()) if p.is_file()}
    progress.result(outputs=outputs, metrics=metrics, out=str(out))
    if progress.mode != "json":
        print(f"Prospectivity: {out / 'prospectivity.tif'} | queries to label: {out / QUERIES_FILE} | "
              f"record: {out / 'run.json'}")
    return 0


def _record(record: RunRecord, cycle: CycleRun, metrics: dict) -> None:
    stack, deposits, trained = cycle.inputs.stack, cycle.inputs.deposits, cycle.result.pool
    record["cycle"] = cycle.inputs.cycle_number
    record["grid"] = {"rows": stack.shape[0], "cols": stack.shape[1], "valid_cells": stack.n_cells,
                      "cell": stack.cell_size, "crs": stack.rasters.crs.to_string()}
    record["deposits"] = {"count": deposits.n_points, "on_valid_cells": int(deposits.placed.sum()),
                          "outside_grid": deposits.n_outside_grid, "on_nodata": deposits.n_on_nodata,
                          "cells": len(cycle.inputs.deposit_cells)}
    record["labels"] = {"count": len(trained), "positives": int(trained.labels.sum()),
                        "by_source": pd.Series(trained.sources).value_counts().to_dict()}
    record["history"] = cycle.result.history
    record["metrics"] = metrics
