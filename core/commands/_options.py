"""Options shared by the commands that read samples (one definition, one meaning)."""

from __future__ import annotations

import argparse

from core.errors import InvalidInputError
from core.io.samples import SampleTable, read_samples
from core.preprocess import Preprocessor
from core.preprocess.elements import PATHFINDERS, read_pathfinders_file


def add_sample_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("samples")
    group.add_argument("--samples", required=required, metavar="FILE",
                       help="sample points: CSV (coordinate columns detected), GeoPackage or Shapefile")
    group.add_argument("--layer", help="layer name inside a GeoPackage")
    group.add_argument("--x", help="x / easting / longitude column of a CSV (auto-detected when omitted)")
    group.add_argument("--y", help="y / northing / latitude column of a CSV (auto-detected when omitted)")
    group.add_argument("--crs", help="CRS of the input coordinates, e.g. EPSG:28350 (default: from the file; "
                                     "bare lon/lat columns are EPSG:4326)")
    group.add_argument("--work-crs", help="projected CRS for distance work (default: the input's if projected, "
                                          "else the local UTM zone)")


def add_deposit_arguments(parser, required: bool = False,
                          help: str = "known deposits (points) to evaluate the scores against") -> None:
    """``--deposits FILE`` and ``--deposits-crs`` (``parser`` may be an argument group)."""
    parser.add_argument("--deposits", required=required, metavar="FILE", help=help)
    parser.add_argument("--deposits-crs", help="CRS of a deposits CSV whose coordinates are not lon/lat")


def add_commodity_arguments(parser) -> None:
    """``--commodity`` (the first question) and the ways to edit its pathfinder suite."""
    group = parser.add_argument_group("commodity")
    group.add_argument("--commodity", metavar="NAME",
                       help=f"the commodity explored for: {', '.join(PATHFINDERS)}. Its suite is never dropped, and "
                            "the run adds enrichment readouts and the hand-made reference maps (commodity level, "
                            "pathfinder index); without it the map is commodity-blind")
    group.add_argument("--pathfinders-file", metavar="FILE",
                       help="replace the commodity's literature pathfinders with the elements listed in this text file")
    group.add_argument("--pathfinder-list", type=_comma_list, metavar="A,B,...",
                       help="replace the commodity's literature pathfinders with these elements, e.g. As,Sb,Bi")


def commodity_suite_from_args(args: argparse.Namespace) -> list[str] | None:
    """The edited pathfinder list (None: the literature set)."""
    if getattr(args, "pathfinders_file", None) and getattr(args, "pathfinder_list", None):
        raise InvalidInputError("give either --pathfinders-file or --pathfinder-list, not both")
    if (getattr(args, "pathfinders_file", None) or getattr(args, "pathfinder_list", None)) \
            and not getattr(args, "commodity", None):
        raise InvalidInputError("--pathfinders-file and --pathfinder-list edit a commodity's suite: give --commodity")
    if getattr(args, "pathfinders_file", None):
        return read_pathfinders_file(args.pathfinders_file)
    return getattr(args, "pathfinder_list", None)


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    add_commodity_arguments(parser)
    group = parser.add_argument_group("preprocessing")
    group.add_argument("--elements", type=_comma_list, help="comma-separated elements or columns (default: every "
                                                            "column ending in _ppm, _ppb or _pct)")
    group.add_argument("--pathfinders", metavar="COMMODITY",
                       help="use the documented pathfinder set of a commodity: Au, Cu, Ni, W, Li, Pb-Zn")
    group.add_argument("--transform", choices=["clr", "ilr", "log", "none"], default="clr",
                       help="log-ratio transform of the assays (default clr)")
    group.add_argument("--scaling", choices=["robust", "standard", "none"], default="robust",
                       help="scaling after the transform (default robust: median and IQR)")
    group.add_argument("--max-missing", type=float, default=0.5,
                       help="drop elements missing or below detection in more than this share of samples (default 0.5)")
    group.add_argument("--dl-fraction", type=float, default=0.5,
                       help="below-detection values are imputed at this fraction of the limit (default 0.5)")


def read_samples_from_args(args: argparse.Namespace) -> SampleTable:
    return read_samples(args.samples, x=args.x, y=args.y, crs=args.crs, work_crs=args.work_crs, layer=args.layer)


def preprocessor_from_args(args: argparse.Namespace) -> Preprocessor:
    return Preprocessor(elements=args.elements, pathfinders=args.pathfinders, transform=args.transform,
                        scaling=args.scaling, max_missing=args.max_missing,
                        detection_limit_fraction=args.dl_fraction, commodity=getattr(args, "commodity", None),
                        suite=commodity_suite_from_args(args))


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items
