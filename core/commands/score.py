"""``geoanomaly score``: apply a saved model (``DIR/model`` of a detect run) to new samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.anomaly.detection import _reads_commodity, choose_map, commodity_scores, score_columns
from core.anomaly.saved_model import load_model
from core.commands._options import add_output_argument, add_sample_arguments
from core.io.atomic import atomic_output_dir
from core.io.samples import read_samples
from core.io.scores import scores_frame, write_scores
from core.preprocess.elements import COMMODITY_BLIND, commodity_key
from core.runrecord import RunRecord

NAME = "score"
HELP = "score new samples with a model saved by 'geoanomaly detect' (DIR/model)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the model/ folder of a detect run")
    add_output_argument(parser, help="output folder for scores.csv / scores.gpkg")
    add_sample_arguments(parser)
    parser.add_argument("--commodity", metavar="NAME",
                        help="add the commodity's references and halo readouts (default: the commodity the model "
                             "was fitted for, if any)")


def run(args: argparse.Namespace, progress) -> int:
    preprocessor, detector, meta = load_model(args.model)
    record = RunRecord("score", vars(args))
    with atomic_output_dir(args.out) as staging:
        progress.stage("read", f"Reading {Path(args.samples).name}", weight=0.2)
        # Distances must be measured in the CRS the model was fitted in.
        work_crs = args.work_crs or meta["work_crs"].to_wkt()
        table = read_samples(args.samples, x=args.x, y=args.y, crs=args.crs, work_crs=work_crs, layer=args.layer)
        prepared = preprocessor.transform(table)
        if args.commodity:
            preprocessor.commodity = commodity_key(args.commodity)
        progress.stage("score", f"Scoring with {detector.name}", weight=0.7)
        scores = detector.score(prepared)
        references, readouts = commodity_scores(preprocessor, table, prepared, detector)
        # The same map as the detect run that saved the model (its --map).
        map_name, map_values = choose_map(detector.name, scores, readouts, meta.get("map", "auto"),
                                          own_commodity_score=_reads_commodity(detector))
        columns = score_columns(map_values, detector.score_details(prepared), prepared.elements)
        columns.update({f"{detector.name}_score": scores, **references, **readouts})
        progress.log(f"Commodity {preprocessor.commodity}: references and readouts {', '.join([*references, *readouts])}"
                     if references else COMMODITY_BLIND)
        write_scores(scores_frame(table, columns), table.crs, staging)
        record["commodity"] = preprocessor.commodity
        record["map"] = map_name
        record["model"] = str(Path(args.model).resolve())
        record["samples"] = {"file": str(Path(args.samples).resolve()), "count": len(table)}
        record.write(staging / "run.json")
    out = Path(args.out).resolve()
    progress.result(outputs={"scores": str(out / "scores.csv"), "gpkg": str(out / "scores.gpkg")})
    if progress.mode != "json":
        print(f"Scores: {out / 'scores.csv'}")
    return 0
