"""``geoanomaly grid``: sample values or scores -> a multi-band GeoTIFF (inverse-distance weighting).

What is gridded, one band per field (band descriptions = names):

- ``--fields a,b``: those numeric columns as they are (scores, ratios, ...);
  empty cells and the -9999 codes are missing;
- otherwise, with assay columns: the elements after the preprocessing the
  detectors see (``--elements`` / ``--pathfinders``, ``--transform``,
  ``--scaling``; ``--transform none --scaling none`` gives imputed
  concentrations in ppm) - the stack the raster models read;
- a points file without assays but with ``anomaly_score`` (a detect run's
  ``scores.csv``): that score.

Output: ``DIR/grid.tif`` (float32, nodata outside the data mask, in the work
CRS) and ``DIR/run.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from core.commands._options import (
    _comma_list,
    add_like_argument,
    add_output_argument,
    add_preprocess_arguments,
    add_sample_arguments,
    preprocessor_from_args,
    read_samples_from_args,
    template_from_args,
)
from core.errors import InvalidInputError
from core.grid.idw import prepare_grid, write_grid
from core.grid.spacing import SPACING_RULES
from core.io.atomic import atomic_output_dir
from core.io.samples import SampleTable
from core.preprocess.elements import COMMODITY_BLIND, MISSING_CODES, assay_columns
from core.runrecord import RunRecord

NAME = "grid"
HELP = (
    "grid sample values, elements or scores onto a GeoTIFF by inverse-distance weighting (one band per field)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_output_argument(parser, help="output folder (grid.tif, run.json)")
    add_sample_arguments(parser)
    parser.add_argument(
        "--fields",
        type=_comma_list,
        metavar="A,B,...",
        help="numeric columns to grid as they are (default: the preprocessed elements, "
        "or anomaly_score when the file has no assays)",
    )
    add_preprocess_arguments(parser)
    group = parser.add_argument_group("gridding")
    group.add_argument(
        "--cell",
        type=float,
        metavar="M",
        help="cell size in metres (default: half the median sample spacing, rounded)",
    )
    group.add_argument(
        "--spacing",
        choices=SPACING_RULES,
        default="nearest",
        help="the sample spacing that the default cell and max distance follow: nearest (median distance between "
        "nearest distinct locations) or area (for clustered surveys, the spacing the samples would have spread "
        "at random over the survey's area, when larger; what prospectivity grids use) (default nearest)",
    )
    add_like_argument(group)
    group.add_argument("--neighbours", type=int, default=12, help="samples weighted per cell (default 12)")
    group.add_argument("--power", type=float, default=2.0, help="inverse-distance power (default 2)")
    group.add_argument(
        "--max-distance",
        type=float,
        metavar="M",
        help="cells farther than this (metres) from every sample are nodata "
        "(default: 5 x the median sample spacing)",
    )


def run(args: argparse.Namespace, progress) -> int:
    record = RunRecord("grid", vars(args))
    progress.stage("read", f"Reading {Path(args.samples).name}", weight=0.1)
    like = template_from_args(args)
    table = read_samples_from_args(args, like)
    values, names, preprocessing = _values_to_grid(args, table)
    if preprocessing is not None:
        # With a commodity its suite is kept whatever the detection limits (flagged in run.json).
        progress.log(f"Commodity {args.commodity}: its suite is kept in the stack" if args.commodity
                     else COMMODITY_BLIND)
    progress.log(
        f"{len(table)} samples, {len(names)} band(s): {', '.join(names[:12])}"
        f"{'...' if len(names) > 12 else ''}; distances in {table.work_crs.name}"
    )

    # The grid goes straight into grid.tif block by block: an element stack over
    # a province (49 bands, 10,000 x 10,000 cells) would take ~20 GB in memory.
    progress.stage("grid", "Gridding (inverse-distance weighting) into grid.tif", weight=0.85)
    record.start_timer("grid")
    # Laid out (and the options checked) before the output folder is touched.
    spec = prepare_grid(
        table.xy,
        values,
        cell=args.cell,
        neighbours=args.neighbours,
        power=args.power,
        max_distance=args.max_distance,
        band_names=names,
        like=like,
        spacing_rule=args.spacing,
    )
    with atomic_output_dir(args.out) as staging:
        grid = write_grid(staging / "grid.tif", spec, crs=table.work_crs, progress=progress)
        record.stop_timer("grid")
        rows, cols = grid.rows, grid.cols
        progress.log(
            f"{rows} x {cols} cells of {grid.cell:g} m; {grid.data_share * 100:.0f} % within "
            f"{grid.max_distance:.0f} m of a sample"
        )

        progress.stage("write", "Writing run.json", weight=0.05)
        record["samples"] = {
            "file": str(Path(args.samples).resolve()),
            "count": len(table),
            "crs": table.crs.to_string(),
            "work_crs": table.work_crs.to_string(),
        }
        record["bands"] = names
        record["grid"] = {
            "cell_m": grid.cell,
            "max_distance_m": grid.max_distance,
            "rows": rows,
            "cols": cols,
            "transform": list(grid.transform)[:6],
            "data_share": grid.data_share,
            "neighbours": args.neighbours,
            "power": args.power,
            "spacing_rule": args.spacing,
            "like": str(Path(args.like).resolve()) if like else None,
        }
        if preprocessing is not None:
            record["preprocessing"] = preprocessing
        record.write(staging / "run.json")

    out = Path(args.out).resolve()
    progress.result(outputs={"grid": str(out / "grid.tif"), "run": str(out / "run.json")}, bands=names)
    if progress.mode != "json":
        print(f"Grid: {out / 'grid.tif'} ({len(names)} band(s), {rows} x {cols} cells of {grid.cell:g} m)")
    return 0


def _values_to_grid(
    args: argparse.Namespace, table: SampleTable
) -> tuple[np.ndarray, list[str], dict | None]:
    """The (n, bands) values, band names, and the preprocessing report when elements were prepared."""
    source = Path(table.source).name
    fields = args.fields
    chose_elements = bool(args.elements or args.pathfinders or args.commodity)
    if fields and chose_elements:
        raise InvalidInputError(
            "give either --fields (columns as they are) or --elements/--pathfinders/--commodity, not both"
        )
    if not fields and not chose_elements and not assay_columns(table.frame.columns):
        if "anomaly_score" not in table.frame.columns:
            raise InvalidInputError(
                f"{source}: no assay columns (_ppm, _ppb, _pct) and no anomaly_score column; "
                "choose the columns to grid with --fields"
            )
        fields = ["anomaly_score"]
    if fields:
        return (
            np.column_stack([_numeric_field(table.frame, name, source) for name in fields]),
            list(fields),
            None,
        )
    preprocessor = preprocessor_from_args(args)
    prepared = preprocessor.fit_transform(table)
    return prepared.values.astype(np.float64), list(prepared.elements), preprocessor.to_dict()["report"]


def _numeric_field(frame: pd.DataFrame, name: str, source: str) -> np.ndarray:
    if name not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:15]))
        raise InvalidInputError(
            f"{source}: no column {name!r} to grid (columns: {columns}{'...' if frame.shape[1] > 15 else ''})"
        )
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, copy=True)
    text = raw.astype("string").str.strip()
    bad = np.isnan(values) & text.notna().to_numpy() & (text.str.len() > 0).fillna(False).to_numpy(bool)
    if bad.any():
        example = text[np.flatnonzero(bad)[0]]
        raise InvalidInputError(
            f"{source}: column {name!r} holds non-numeric values such as {example!r} "
            f"(in {int(bad.sum())} rows)"
        )
    for code in MISSING_CODES:
        values[values == code] = np.nan
    if np.isnan(values).all():
        raise InvalidInputError(f"{source}: column {name!r} holds no values to grid (all missing)")
    return values
