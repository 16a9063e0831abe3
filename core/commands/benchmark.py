"""``geoanomaly benchmark``: methods and hand-made references over several surveys and seeds, from a manifest.

Outputs (written whole or not at all, in ``--out``): ``benchmark.csv`` and
``benchmark.md`` (one row per survey and score: 20-run AUC mean ± std over
seeds, deposits captured in the top 5/10/20 % of samples), ``benchmark.png``
(bars with error bars) and ``run.json``. The manifest format is described in
:mod:`core.evaluate.benchmark`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.commands._options import _comma_list, add_output_argument
from core.evaluate.benchmark import plot_benchmark, read_manifest, run_benchmark, table_markdown
from core.io.atomic import atomic_output_dir
from core.runrecord import RunRecord

NAME = "benchmark"
HELP = "compare methods with the commodity's hand-made reference maps on several surveys and seeds (a manifest)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, metavar="FILE",
                        help="TOML file listing the surveys: samples, deposits, commodity (optional CRS/columns)")
    add_output_argument(parser)
    parser.add_argument("--commodity", metavar="NAME", help="the commodity for every survey (overrides the manifest)")
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in _comma_list(t)], metavar="0,1,2",
                        help="seeds (default: the manifest's, else 0,1,2)")
    parser.add_argument("--methods", type=_comma_list, metavar="A,B",
                        help="detectors to run (default: the manifest's, else every classical detector)")


def run(args: argparse.Namespace, progress) -> int:
    manifest = read_manifest(args.manifest, commodity=args.commodity, seeds=args.seeds, methods=args.methods)
    record = RunRecord("benchmark", vars(args))
    with atomic_output_dir(args.out) as staging:
        record.start_timer("benchmark")
        table, runs = run_benchmark(manifest, progress)
        record.stop_timer("benchmark")
        table.to_csv(staging / "benchmark.csv", index=False)
        (staging / "benchmark.md").write_text(table_markdown(table), encoding="utf-8")
        plot_benchmark(table, staging / "benchmark.png")
        record["manifest"] = str(Path(args.manifest).resolve())
        record["methods"] = manifest.methods
        record["seeds"] = manifest.seeds
        record["surveys"] = runs
        record["table"] = table.to_dict(orient="records")
        record.write(staging / "run.json")
    out = Path(args.out).resolve()
    progress.result(outputs={p.name: str(p) for p in sorted(out.iterdir())}, out=str(out))
    if progress.mode != "json":
        print(table_markdown(table))
        print(f"Table: {out / 'benchmark.csv'} | chart: {out / 'benchmark.png'} | record: {out / 'run.json'}")
    return 0
