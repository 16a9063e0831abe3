"""What the transformer's background is predicted from: variants × both shared surveys × 3 seeds.

Not part of ``make bench`` (it is the record of a design choice, issue 11 part Q). Each variant is one
``TransformerDetector`` configuration given the survey's commodity; one model per seed (``--ensemble 1``, the
cheap setting: the default averages three) and the default 4 generations, so every generation's commodity
readout is compared. Run (minutes; torch on one thread):
``nice -n 5 .venv/bin/python tests/benchmarks/sweep_transformer_background.py [variant ...] [--seeds 0,1,2]``;
prints and appends JSON lines to ``bench_output/sweep_transformer_background.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly.detection import run_detection  # noqa: E402
from core.anomaly.transformer import TransformerDetector  # noqa: E402
from core.io.samples import read_deposits, read_samples  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SURVEYS = (("gswa_sed1_au", "Au"), ("gswa_rock_li", "Li"))
VARIANTS = {
    # before part Q: the suite hidden, the other own elements (majors included) and the context beyond 8 visible
    "suite_hidden": {"hide_ore_minerals": False, "enriched_sd": 0.0, "suite_in_context": True},
    # the ore minerals' constituents (spodumene's Al, Si; lepidolite's K ...) hidden too
    "ore_minerals_hidden": {"hide_ore_minerals": True, "enriched_sd": 0.0, "suite_in_context": True},
    # students do not fit values the teacher holds to be enriched (> 2 robust sd above its background)
    "suite_hidden_background_students": {"hide_ore_minerals": False, "enriched_sd": 2.0, "suite_in_context": True},
    # both
    "ore_minerals_hidden_background_students": {"hide_ore_minerals": True, "enriched_sd": 2.0,
                                                "suite_in_context": True},
    # the neighbours lend their lithology, not their suite assays (the halo itself), + background students
    "suite_hidden_in_context": {"hide_ore_minerals": False, "enriched_sd": 2.0, "suite_in_context": False},
    "suite_and_ore_hidden_in_context": {"hide_ore_minerals": True, "enriched_sd": 2.0, "suite_in_context": False},
    # the regional context only: no own element visible
    "context_only": {"own_elements": False, "suite_in_context": True},
    # the defaults (part Q): suite and ore minerals' constituents hidden from the sample and its context,
    # background students, values never assayed read as no evidence
    "default": {},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--surveys", default=",".join(name for name, _ in SURVEYS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = REPO / "bench_output" / "sweep_transformer_background.jsonl"
    out.parent.mkdir(exist_ok=True)
    for variant in args.variants:
        for survey, commodity in (s for s in SURVEYS if s[0] in args.surveys.split(",")):
            table = read_samples(DATA / survey / "samples.csv")
            deposits = read_deposits(DATA / survey / "deposits.csv", table.work_crs)
            per_seed = []
            for seed in seeds:
                started = time.process_time()
                detector = TransformerDetector(commodity=commodity, seed=seed, ensemble=args.ensemble,
                                               **VARIANTS[variant])
                result = run_detection(table, detector, deposits, commodity=commodity, baselines="none", seed=seed)
                aucs = {k.removeprefix("readout:"): round(v["mean"], 4)
                        for k, v in result.metrics["auc_by_score"].items()
                        if k.endswith("_commodity") or k in ("transformer", "readout:reconstruction_error")}
                per_seed.append(aucs)
                line = {"variant": variant, "survey": survey, "seed": seed, "ensemble": args.ensemble,
                        "cpu_s": round(time.process_time() - started, 1), "auc": aucs}
                print(json.dumps(line), flush=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")
            means = {k: round(float(np.mean([a[k] for a in per_seed])), 3) for k in per_seed[0]}
            print(f"== {variant} {survey} mean over seeds {seeds}: {means}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
