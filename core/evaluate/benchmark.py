"""Benchmark methods and hand-made references over several surveys and seeds, from a small manifest.

A manifest is a TOML file (or the same keys as JSON, ``.json``; paths relative to it)::

    seeds = [0, 1, 2]                           # optional (default [0, 1, 2])
    methods = ["pca", "mahalanobis", "knn"]     # optional (default: every classical detector)
    min_km = 5.0                                # optional: AUC protocol background distance

    [[survey]]
    name = "sed1"                               # optional (default: the samples file's folder name)
    samples = "data/gswa_sed1_au/samples.csv"
    deposits = "data/gswa_sed1_au/deposits.csv"
    commodity = "Au"
    # optional: crs, x, y, work_crs, layer (samples); deposits_crs (deposits); pathfinders = ["As", "Sb"]

Each survey and seed is one :func:`core.anomaly.detection.run_detection`
(the first method is the run's detector, the others its baselines), so
every score is judged by the same 20-run AUC protocol. The table has one
row per survey and score: AUC mean and standard deviation over seeds (each
seed's AUC is the mean of its 20 runs), the mean 20-run standard deviation,
and the share of deposits captured in the top 5 / 10 / 20 % of samples
(mean over seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.anomaly.classical import CLASSICAL
from core.errors import InvalidInputError
from core.io.samples import SampleTable, read_deposits, read_samples
from core.preprocess.elements import assay_columns, commodity_elements, commodity_key
from core.progress import Progress

DEFAULT_SEEDS = (0, 1, 2)
TABLE_COLUMNS = ["survey", "commodity", "score", "kind", "auc_mean", "auc_std_over_seeds", "auc_std_20_runs",
                 "top5", "top10", "top20", "deposits_used", "seeds"]


@dataclass
class Survey:
    name: str
    samples: Path
    deposits: Path
    commodity: str
    read: dict = field(default_factory=dict)      # crs, x, y, work_crs, layer
    deposits_crs: str | None = None
    pathfinders: list[str] | None = None


@dataclass
class Manifest:
    surveys: list[Survey]
    methods: list[str]
    seeds: list[int]
    min_km: float = 5.0


def read_manifest(path: str | Path, commodity: str | None = None, seeds: list[int] | None = None,
                  methods: list[str] | None = None) -> Manifest:
    """Parse and check a manifest; ``commodity``/``seeds``/``methods`` override what it says."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"manifest {path} does not exist")
    data = _parse(path)
    entries = data.get("survey")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{path.name}: the manifest lists no [[survey]]")
    base = path.parent
    surveys = []
    for i, entry in enumerate(entries, 1):
        for key in ("samples", "deposits"):
            if key not in entry:
                raise InvalidInputError(f"{path.name}: survey {i} has no {key!r} file")
        samples, deposits = base / entry["samples"], base / entry["deposits"]
        for what, file in (("samples", samples), ("deposits", deposits)):
            if not file.is_file():
                raise InvalidInputError(f"{path.name}: survey {i}: {what} file {file} does not exist")
        name = str(entry.get("name") or samples.parent.name)
        chosen = commodity or entry.get("commodity")
        if not chosen:
            raise InvalidInputError(f"{path.name}: survey {name} names no commodity (add commodity = \"Au\" or "
                                    "give --commodity)")
        read = {k: entry[k] for k in ("crs", "x", "y", "work_crs", "layer") if k in entry}
        surveys.append(Survey(name, samples, deposits, commodity_key(chosen), read, entry.get("deposits_crs"),
                              entry.get("pathfinders")))
    names = [s.name for s in surveys]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"{path.name}: survey names must differ ({', '.join(names)})")
    chosen_methods = list(methods or data.get("methods") or CLASSICAL)
    from core.anomaly import available_detectors

    for method in chosen_methods:
        if method not in available_detectors():
            raise InvalidInputError(f"{path.name}: unknown method {method!r}; available: "
                                    f"{', '.join(available_detectors())}")
    chosen_seeds = [int(s) for s in (seeds if seeds is not None else data.get("seeds", DEFAULT_SEEDS))]
    if not chosen_seeds:
        raise InvalidInputError(f"{path.name}: no seeds to run")
    return Manifest(surveys, chosen_methods, chosen_seeds, float(data.get("min_km", 5.0)))


def _parse(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise InvalidInputError(f"{path.name}: TOML manifests need Python 3.11 or later; write it as JSON") from None
        return tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise InvalidInputError(f"{path.name}: not a valid manifest ({exc})") from exc


def load_survey(survey: Survey) -> tuple[SampleTable, np.ndarray]:
    """Samples and deposits of one survey, checked: the commodity's column must be there."""
    table = read_samples(survey.samples, **survey.read)
    found = assay_columns(table.frame.columns)
    missing = [el for el in commodity_elements(survey.commodity) if el not in found]
    if missing:
        raise InvalidInputError(f"{survey.samples.name} (survey {survey.name}): no assay column for the commodity "
                                f"{survey.commodity} (expected e.g. {missing[0]}_ppm)")
    deposits = read_deposits(survey.deposits, table.work_crs, crs=survey.deposits_crs)
    return table, deposits


def run_benchmark(manifest: Manifest, progress: Progress | None = None) -> tuple[pd.DataFrame, dict]:
    """Run every survey × seed; returns the table (one row per survey and score) and per-run details."""
    from core.anomaly.detection import detector_options, run_detection

    progress = progress or Progress(mode="none")
    loaded = {s.name: load_survey(s) for s in manifest.surveys}  # every input checked before any model runs
    runs: dict[str, dict] = {}
    rows = []
    total = len(manifest.surveys) * len(manifest.seeds)
    done = 0
    for survey in manifest.surveys:
        table, deposits = loaded[survey.name]
        per_seed = []
        for seed in manifest.seeds:
            progress.stage("benchmark", f"{survey.name}, seed {seed}", weight=1.0 / total)
            result = run_detection(table, manifest.methods[0], deposits, commodity=survey.commodity,
                                   pathfinders=survey.pathfinders, baselines=manifest.methods[1:] or "none",
                                   options=detector_options(seed=seed, commodity=survey.commodity,
                                                          pathfinder_list=survey.pathfinders),
                                   seed=seed, min_km=manifest.min_km)
            per_seed.append(result.metrics)
            done += 1
            progress.log(f"{survey.name} seed {seed}: " + ", ".join(
                f"{k} {v['mean']:.3f}" for k, v in result.metrics["auc_by_score"].items()))
        runs[survey.name] = {"commodity": survey.commodity, "samples": str(survey.samples.resolve()),
                             "deposits": str(survey.deposits.resolve()), "seeds": manifest.seeds,
                             "auc_by_seed": {k: [m["auc_by_score"][k]["mean"] for m in per_seed]
                                             for k in per_seed[0]["auc_by_score"]}}
        rows.extend(_rows(survey, per_seed, manifest.seeds))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), runs


def _rows(survey: Survey, per_seed: list[dict], seeds: list[int]) -> list[dict]:
    rows = []
    for name in per_seed[0]["auc_by_score"]:
        aucs = np.array([m["auc_by_score"][name]["mean"] for m in per_seed])
        inner = np.array([m["auc_by_score"][name]["std"] for m in per_seed])
        tops = np.array([[m["success_rate"][name]["deposits_in_top_area"][k] for k in ("5", "10", "20")]
                         for m in per_seed]).mean(axis=0)
        kind, _, label = name.rpartition(":")
        rows.append({"survey": survey.name, "commodity": survey.commodity, "score": label, "kind": kind or "method",
                     "auc_mean": round(float(aucs.mean()), 4), "auc_std_over_seeds": round(float(aucs.std()), 4),
                     "auc_std_20_runs": round(float(inner.mean()), 4), "top5": round(float(tops[0]), 4),
                     "top10": round(float(tops[1]), 4), "top20": round(float(tops[2]), 4),
                     "deposits_used": int(per_seed[0]["auc_by_score"][name]["n_used"]), "seeds": len(seeds)})
    return rows


def table_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: AUC mean ± std over seeds, and the top 5/10/20 % capture, per survey."""
    lines = ["| survey | score | kind | AUC (20-run, mean ± std over seeds) | top 5 % | top 10 % | top 20 % |",
             "|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.survey} ({row.commodity}) | {row.score} | {row.kind} | {row.auc_mean:.3f} ± "
                     f"{row.auc_std_over_seeds:.3f} | {row.top5 * 100:.0f} % | {row.top10 * 100:.0f} % | "
                     f"{row.top20 * 100:.0f} % |")
    return "\n".join(lines) + "\n"


def plot_benchmark(table: pd.DataFrame, path: str | Path) -> Path:
    """A bar chart of AUC per score, one panel per survey, error bars = std over seeds (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from core.io.atomic import atomic_write_path

    surveys = list(dict.fromkeys(table["survey"]))
    colours = {"method": "#4C72B0", "baseline": "#8C8C8C", "reference": "#DD8452", "readout": "#55A868"}
    figure = Figure(figsize=(max(7.0, 0.45 * table.groupby("survey").size().max() + 2), 3.2 * len(surveys)), dpi=120)
    FigureCanvasAgg(figure)
    for i, survey in enumerate(surveys, 1):
        part = table[table["survey"] == survey]
        ax = figure.add_subplot(len(surveys), 1, i)
        ax.bar(range(len(part)), part["auc_mean"], yerr=part["auc_std_over_seeds"], capsize=3,
               color=[colours.get(k, "#4C72B0") for k in part["kind"]])
        ax.axhline(0.5, color="0.5", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(part)), [f"{k}:{s}" if k != "method" else s for k, s in zip(part["kind"], part["score"])],
                      rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AUC (20-run)")
        ax.set_title(f"{survey} ({part['commodity'].iloc[0]}), {int(part['seeds'].iloc[0])} seed(s)", fontsize=9)
        ax.grid(True, axis="y", color="0.92")
    figure.tight_layout()
    path = Path(path)
    with atomic_write_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
