"""The ``geoanomaly`` command line: one sub-command per job.

Each module in :mod:`core.commands` is one sub-command. It defines::

    NAME = "detect"                       # the sub-command's name
    HELP = "one line for --help"
    def add_arguments(parser): ...        # its options (argparse)
    def run(args, progress) -> int: ...   # does the job; returns the exit code

and is found automatically, so adding a command never edits this file.
Common options (``--progress``, ``--debug``) are added here.

Errors: a :class:`core.errors.GeoAnomalyError` is reported as one line
(``geoanomaly: error: ...``, or a JSON ``error`` event) with exit code 2;
any other exception is reported the same way as an internal error, with the
traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import core.commands
from core.errors import CancelledError, GeoAnomalyError, GeoAnomalyWarning, OutputExistsError
from core.progress import Progress


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="geoanomaly",
        description="Geochemical anomaly detection and mineral prospectivity mapping.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for info in sorted(pkgutil.iter_modules(core.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"core.commands.{info.name}")
        except Exception as exc:  # noqa: BLE001 - one broken command must not take the others down
            module = _UnavailableCommand(info.name, exc)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        add_common_arguments(command)
        module.add_arguments(command)
        modules[module.NAME] = module
    return parser, modules


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress", choices=["auto", "bar", "plain", "json", "none"], default="auto",
        help="progress display: a bar on a terminal (auto), or one JSON object per line (json) for the QGIS plugin",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of internal errors")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in the --out folder (without it, such a folder is refused)")


def refuse_earlier_run(args: argparse.Namespace) -> None:
    """Stop before any work when ``--out`` holds an earlier run (its run.json) and ``--overwrite`` is not given.

    Replacing a run silently mixes two runs' files in one folder (a pca run
    over a mahalanobis run kept the older plots); checked here, once for every
    command, before the command reads its inputs.
    """
    out = getattr(args, "out", None)
    if not out or getattr(args, "overwrite", False):
        return
    record = Path(out).expanduser() / "run.json"
    if record.is_file():
        raise OutputExistsError(f"the output folder {Path(out).expanduser().resolve()} holds an earlier run "
                                "(run.json); choose another folder, or add --overwrite to replace it")


class _UnavailableCommand:
    """Stands in for a command whose module failed to import (e.g. a missing optional dependency)."""

    def __init__(self, name: str, error: Exception) -> None:
        self.NAME = name
        self.HELP = f"(unavailable: {type(error).__name__}: {error})"
        self.error = error

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER)

    def run(self, args: argparse.Namespace, progress: Progress) -> int:
        raise GeoAnomalyError(f"the {self.NAME} command cannot load: {type(self.error).__name__}: {self.error}; "
                              "check the engine installation (geoanomaly info)")


def main(argv: Sequence[str] | None = None) -> int:
    # Intel OpenMP prints informational warnings on stderr, which the plugin would show as noise.
    os.environ.setdefault("KMP_WARNINGS", "0")
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    progress = Progress(mode=args.progress)
    with warnings.catch_warnings():
        # The progress object shows the engine's own warnings; printing them twice would be noise.
        warnings.simplefilter("ignore", GeoAnomalyWarning)
        return _run(modules[args.command], args, progress)


def _run(command, args: argparse.Namespace, progress: Progress) -> int:
    """Run one command; every failure becomes one line and an exit code."""
    try:
        refuse_earlier_run(args)
        return int(command.run(args, progress) or 0)
    except CancelledError:
        progress.error("cancelled; no output was written", exit_code=CancelledError.exit_code)
        return CancelledError.exit_code
    except KeyboardInterrupt:
        progress.error("interrupted; no output was written", exit_code=130)
        return 130
    except GeoAnomalyError as exc:
        progress.error(str(exc), exit_code=exc.exit_code)
        return exc.exit_code
    except MemoryError:
        progress.error("out of memory: try a smaller batch size, fewer neighbours or a coarser cell size", exit_code=3)
        return 3
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a bare traceback
        if args.debug:
            traceback.print_exc()
        hint = "the details are in the log above" if args.debug else "run again with --debug for details"
        progress.error(f"internal error: {type(exc).__name__}: {exc} ({hint})", exit_code=1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
