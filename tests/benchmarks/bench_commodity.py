"""Commodity-aware maps on the two shared surveys: `geoanomaly benchmark` with shared_surveys.toml.

Run with ``make bench`` (or ``.venv/bin/python tests/benchmarks/bench_commodity.py [--methods a,b] [--seeds 0,1,2]``);
writes ``bench_output/commodity/`` (benchmark.csv, benchmark.md, benchmark.png, run.json) and prints the table.
Only the commodity is given per survey; every other setting is a default. Classical detectors by default:
add ``--methods transformer,mahalanobis,...`` to include the transformer (minutes on a CPU).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.cli import main  # noqa: E402

MANIFEST = Path(__file__).resolve().parent / "shared_surveys.toml"


if __name__ == "__main__":
    out = REPO / "bench_output" / "commodity"
    if out.exists():
        shutil.rmtree(out)  # a new table replaces the last one
    sys.exit(main(["benchmark", "--manifest", str(MANIFEST), "--out", str(out), "--progress", "plain", *sys.argv[1:]]))
