"""Options shared by several commands, declared once so that each has one name and one meaning.

Old spellings (``--batch``, ``--torch-threads``) still parse, as hidden
aliases, so saved scripts and older plugin versions keep working.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyproj

from core.errors import CrsMismatchError, InvalidInputError
from core.io.rasters import RasterGrid, raster_grid
from core.io.samples import SampleTable, parse_crs, read_samples
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


def add_output_argument(parser, help: str = "output folder", required: bool = True) -> None:
    """``--out DIR`` (``parser`` may be an argument group)."""
    parser.add_argument("--out", required=required, metavar="DIR", help=help)


def add_seed_argument(parser, help: str = "random seed (default 0): same seed, same scores") -> None:
    parser.add_argument("--seed", type=int, default=0, help=help)


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto", help="compute device: auto (CUDA when available), cpu, cuda "
                                                         "or cuda:N")


def add_threads_argument(parser, default: int | None = 1,
                         help: str = "CPU threads for torch (default 1: the networks are small, and on a shared "
                                     "machine more threads made training slower; 0 = torch's choice)") -> None:
    """``--threads N`` (hidden alias ``--torch-threads``)."""
    parser.add_argument("--threads", type=int, default=default, metavar="N", help=help)
    _hidden_alias(parser, "--torch-threads", "threads", int)


def add_batch_size_argument(parser, default: int | None, help: str) -> None:
    """``--batch-size`` (hidden alias ``--batch``)."""
    parser.add_argument("--batch-size", type=int, default=default, metavar="N", help=help)
    _hidden_alias(parser, "--batch", "batch_size", int)


def method_choices() -> list[str]:
    """The detectors ``--method`` accepts: the registry's, so a new detector needs no edit here."""
    from core.anomaly import available_detectors

    return available_detectors()


def _hidden_alias(parser, flag: str, dest: str, type_) -> None:
    # SUPPRESS as default: the alias never overwrites the main option's default.
    parser.add_argument(flag, dest=dest, type=type_, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_like_argument(parser) -> None:
    """``--like RASTER``: lay the output raster on a template's grid (transform, shape and CRS)."""
    parser.add_argument("--like", metavar="RASTER",
                        help="lay the output raster on this raster's grid: same cells, extent and CRS (the "
                             "samples are projected into its CRS), so every raster of a project lines up "
                             "(default: a grid fitted to the samples)")


def template_from_args(args: argparse.Namespace) -> RasterGrid | None:
    """The ``--like`` template's grid, or None; checked before any work is done."""
    return raster_grid(args.like) if getattr(args, "like", None) else None


def read_samples_from_args(args: argparse.Namespace, like: RasterGrid | None = None) -> SampleTable:
    """The samples, with distances in ``--work-crs`` or, given a template grid, in the template's CRS.

    Raises:
        CrsMismatchError: ``--work-crs`` and the template's CRS differ.
    """
    work_crs = args.work_crs
    if like is not None:
        template_crs = pyproj.CRS.from_wkt(like.crs.to_wkt())
        if work_crs and parse_crs(work_crs, "--work-crs") != template_crs:
            raise CrsMismatchError(f"--work-crs {work_crs} differs from the CRS of --like {Path(like.path).name} "
                                   f"({template_crs.name}); leave --work-crs out to use the template's")
        work_crs = template_crs.to_wkt()
    return read_samples(args.samples, x=args.x, y=args.y, crs=args.crs, work_crs=work_crs, layer=args.layer)


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
