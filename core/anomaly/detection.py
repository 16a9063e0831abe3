"""One detection run as a function: samples in; scores, commodity readouts, references and evaluation out.

``geoanomaly detect`` and ``geoanomaly benchmark`` call :func:`run_detection`;
a notebook does the same in three lines::

    table = read_samples("samples.csv")
    result = run_detection(table, "pca", deposits=read_deposits("deposits.csv", table.work_crs), commodity="Au")
    result.metrics["auc_by_score"]

Every score judged in a run sits in ``result.compared`` under one name:
the detector's own (its method name), its readouts (``readout:...``), the
hand-made references (``reference:commodity_level``, ``reference:pathfinder_index``)
and the classical baselines (``baseline:...``). With deposits, each is put
through the same 20-run AUC protocol, so every model is judged against the
geologist's own maps in one table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from core.anomaly.base import _REGISTRY, Detector, _import_detector_modules, detector_class
from core.anomaly.classical import CLASSICAL
from core.anomaly.readouts import DEFAULT_NEIGHBOURS, robust_standardise, suite_enrichment
from core.anomaly.references import hand_made_references
from core.errors import InvalidInputError
from core.evaluate.report import evaluate_scores
from core.io.samples import SampleTable
from core.preprocess import Preprocessor
from core.preprocess.duplicates import colocated_report, location_groups
from core.preprocess.elements import COMMODITY_BLIND
from core.preprocess.pipeline import PreparedSamples
from core.preprocess.transforms import clr
from core.progress import Progress


@dataclass
class Detection:
    """What one run produced (see the module docstring for the names in ``compared``)."""

    scores: np.ndarray          # the run's map (see ``map_name``): the detector's score or its halo readout
    columns: dict[str, np.ndarray]
    compared: dict[str, np.ndarray]
    metrics: dict
    prepared: PreparedSamples
    preprocessor: Preprocessor
    detector: Detector
    colocated: dict
    suite: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    map_name: str = ""          # the name in ``compared`` of the score that is ``scores`` (the run's map)


def detector_options(seed: int = 0, device: str = "auto", **options) -> argparse.Namespace:
    """Every registered detector's options at their defaults, as ``geoanomaly detect`` would parse them."""
    _import_detector_modules()
    parser = argparse.ArgumentParser(add_help=False)
    for cls in _REGISTRY.values():
        cls.add_arguments(parser)
    args = parser.parse_args([])
    args.seed, args.device = seed, device
    for name, value in options.items():
        setattr(args, name, value)
    return args


def run_detection(table: SampleTable, method: str | Detector = "pca", deposits: np.ndarray | None = None, *,
                  commodity: str | None = None, pathfinders: list[str] | None = None,
                  preprocessor: Preprocessor | None = None, baselines: str | list[str] = "auto",
                  options: argparse.Namespace | None = None, seed: int = 0, min_km: float = 5.0,
                  halo_neighbours: int = DEFAULT_NEIGHBOURS, map_score: str = "auto",
                  progress: Progress | None = None) -> Detection:
    """Prepare, fit, score, add the commodity readouts and references, and evaluate against ``deposits``.

    ``method`` is a detector name or an unfitted detector. ``preprocessor``
    (unfitted) overrides the default one built from ``commodity`` and
    ``pathfinders``. ``baselines``: "auto" (every classical detector when
    deposits are given), "none", or a list of names. ``options`` are the
    detectors' options (:func:`detector_options`; detect passes its parsed arguments).
    ``halo_neighbours``: about how many neighbouring locations support each
    location in the halo readouts (:func:`core.anomaly.readouts.suite_enrichment`).
    ``map_score``: which score is the run's map (``scores``, ``anomaly_score``,
    the headline AUC): "auto" (the detector's suite-halo readout when a
    commodity is given and the detector has per-element residuals, else its
    own score), "detector" or "halo"; see :func:`choose_map`.
    """
    progress = progress or Progress(mode="none")
    options = options or detector_options(seed=seed)
    if preprocessor is None:
        preprocessor = Preprocessor(commodity=commodity, suite=pathfinders)
    if preprocessor.commodity and not getattr(options, "commodity", None):
        # Commodity-aware detectors (the transformer) read the commodity from their options.
        options.commodity, options.pathfinder_list = preprocessor.commodity, preprocessor.suite
    if isinstance(method, Detector):
        detector, name = method, method.name
    else:
        detector, name = detector_class(method).from_args(options), method
    baseline_names = _baseline_names(baselines, deposits is not None)
    deep = _uses_torch(detector)
    weights = _stage_weights(deep, deposits is not None)

    progress.stage("preprocess", "Preparing assays", weight=weights["preprocess"])
    prepared = preprocessor.fit_transform(table)
    _log_preprocessing(preprocessor, prepared, progress)
    colocated = colocated_report(prepared.xy, prepared.values)
    if colocated["identical_to_a_co_located_sample"]:
        progress.warn(f"{colocated['sharing_a_location']} samples share a location with another; "
                      f"{colocated['identical_to_a_co_located_sample']} have identical assays to a co-located "
                      "sample (probably one sample compiled twice): such twins are not independent evidence")

    progress.log(f"Detector {name}" + ("" if deep else " on cpu"))  # deep models log their device themselves
    fit_weight = weights["fit"]
    if hasattr(detector, "report_stages"):
        # The transformer reports each generation as its own stage ("generation 2/4"); hand it the fit share.
        detector.report_stages(fit_weight)
        fit_weight = 0.0
    progress.stage("fit", f"Fitting {name}", weight=fit_weight)
    timings = {}
    timings["fit"] = _timed(lambda: detector.fit(prepared, progress))[1]

    progress.stage("score", "Scoring samples", weight=weights["score"])
    (scores, details), timings["score"] = _timed(lambda: (detector.score(prepared), detector.score_details(prepared)))
    compared = {name: scores, **{f"readout:{k}": v for k, v in details.items() if np.ndim(v) == 1}}

    suite = preprocessor.suite_()
    groups = location_groups(prepared.xy) if suite else None
    references, readouts = commodity_scores(preprocessor, table, prepared, detector, groups, halo_neighbours)
    map_name, map_values = choose_map(name, scores, readouts, map_score, own_commodity_score=_reads_commodity(detector))
    progress.log(f"Map: {map_name}" + ("" if suite else " (commodity-blind)"))
    columns = score_columns(map_values, details, prepared.elements)
    columns.update({f"{name}_score": scores, **references, **readouts})
    compared.update({f"reference:{k}": v for k, v in references.items()})
    compared.update({f"readout:{k}": v for k, v in readouts.items()})

    metrics: dict = {}
    if deposits is not None:
        progress.stage("evaluate", "Evaluating against deposits", weight=weights["evaluate"])
        for i, other in enumerate(baseline_names):
            progress.update(i / max(len(baseline_names), 1), f"baseline {other}")
            if other == name:
                continue
            baseline = detector_class(other).from_args(options).fit(prepared)
            compared[f"baseline:{other}"] = baseline.score(prepared)
            if suite:
                halo = _commodity_readout(baseline, prepared, suite, groups, halo_neighbours)
                if halo is not None:
                    compared[f"readout:{other}_halo"] = halo
        metrics = evaluate_scores(prepared.xy, compared, deposits, min_km=min_km)
        main = metrics["auc_by_score"][map_name]
        # Headline figures of the run's map, for the plugin and a quick read.
        metrics.update(map=map_name, auc=main["mean"], auc_std=main["std"],
                       success_rate_top5=main["success_rate_top5"])
        _log_metrics(map_name, metrics, progress)
    return Detection(map_values, columns, compared, metrics, prepared, preprocessor, detector, colocated, suite,
                     timings, map_name)


MAP_CHOICES = ("auto", "detector", "halo")


def choose_map(name: str, scores: np.ndarray, readouts: dict[str, np.ndarray], choice: str = "auto",
               own_commodity_score: bool = False) -> tuple[str, np.ndarray]:
    """The run's map and its name in ``compared``: the detector's score, or its suite-halo readout.

    "auto" takes the halo readout when there is one (a commodity was given and
    the detector has per-element residuals): it reads enrichment of the
    commodity suite, as the geologist does, and ranked the deposits of both
    shared surveys above both hand-made maps (README, Commodity-aware maps).
    A detector whose own score is already its commodity readout
    (``own_commodity_score``: the transformer given a commodity) keeps it.
    """
    if choice not in MAP_CHOICES:
        raise InvalidInputError(f"--map {choice!r}: choose one of {', '.join(MAP_CHOICES)}")
    halo = readouts.get(f"{name}_halo")
    if choice == "halo" and halo is None:
        raise InvalidInputError(f"--map halo needs --commodity and a detector with per-element residuals "
                                f"({name} has none); use --map detector")
    if choice == "halo" or (choice == "auto" and halo is not None and not own_commodity_score):
        return f"readout:{name}_halo", halo
    return name, scores


def _reads_commodity(detector: Detector) -> bool:
    """Whether the detector's own score is a commodity readout (it was given the commodity and scores by it)."""
    return bool(getattr(detector, "commodity", None)) and getattr(detector, "main_score", "auto") in ("auto",
                                                                                                      "commodity")


def commodity_scores(preprocessor: Preprocessor, table: SampleTable, prepared: PreparedSamples, detector: Detector,
                     groups: np.ndarray | None = None, halo_neighbours: int = DEFAULT_NEIGHBOURS,
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The hand-made references and the halo readouts of a fitted run; both empty without a commodity.

    Readouts: ``suite_halo`` (the survey's own background: the median of
    each element's CLR) and ``<detector>_halo`` when the detector has
    per-element residuals (:meth:`Detector.element_residuals`).
    """
    suite = preprocessor.suite_()
    if not suite:
        return {}, {}
    groups = location_groups(prepared.xy) if groups is None else groups
    assays, not_assayed = preprocessor.imputed_assays(table)
    elements = preprocessor.elements_
    references = hand_made_references(assays, elements, preprocessor.commodity, list(suite), not_assayed)
    readouts = {"suite_halo": suite_enrichment(robust_standardise(clr(assays)), elements, suite, prepared.xy, groups,
                                               neighbours=halo_neighbours)}
    own = _commodity_readout(detector, prepared, suite, groups, halo_neighbours)
    if own is not None:
        readouts[f"{detector.name}_halo"] = own
    return references, readouts


def score_columns(scores: np.ndarray, details: dict[str, np.ndarray], elements: list[str]) -> dict[str, np.ndarray]:
    """The per-sample columns of the points output: score, rank, percentile, readouts, residuals."""
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(1, len(scores) + 1)
    columns = {"anomaly_score": scores, "anomaly_rank": rank,
               "anomaly_percentile": 100.0 * (1.0 - (rank - 1) / len(scores))}
    for name, values in details.items():
        values = np.asarray(values)
        if values.ndim == 1:
            columns[name] = values
        elif values.ndim == 2 and values.shape[1] == len(elements):
            # Which elements drive each anomaly: the three largest absolute residuals.
            top = np.argsort(-np.abs(values), axis=1)[:, :3]
            columns["top_elements"] = np.array([",".join(elements[j] for j in row) for row in top], dtype=object)
            for j, element in enumerate(elements):
                columns[f"{name}_{element}"] = values[:, j]
    return columns


def _commodity_readout(detector: Detector, prepared: PreparedSamples, suite: dict[str, float],
                       groups: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS) -> np.ndarray | None:
    """The halo readout of a detector's per-element residuals; None if it has none (or features are not elements)."""
    residuals = detector.element_residuals(prepared, suite=list(suite))
    if residuals is None or not set(suite) & set(prepared.elements):
        return None
    return suite_enrichment(residuals, prepared.elements, suite, prepared.xy, groups, neighbours=neighbours)


def _log_preprocessing(preprocessor: Preprocessor, prepared: PreparedSamples, progress: Progress) -> None:
    dropped = preprocessor.dropped_()
    progress.log(f"{len(prepared.elements)} elements used ({preprocessor.transform_name}, {preprocessor.scaling} "
                 f"scaling); {len(dropped)} dropped")
    for entry in dropped:
        progress.log(f"  dropped {entry['element']}: {entry['reason']}")
    if not preprocessor.commodity:
        progress.log(COMMODITY_BLIND)
        return
    suite = preprocessor.suite_()
    progress.log(f"Commodity {preprocessor.commodity}: suite {', '.join(suite)} (never dropped for detection limits)")
    for entry in preprocessor.report_:
        if entry.get("protected") and entry.get("note"):
            progress.log(f"  {entry['element']}: {entry['note']}")


def _log_metrics(name: str, metrics: dict, progress: Progress) -> None:
    main = metrics["auc_by_score"][name]
    progress.log(f"{name}: AUC {main['mean']:.3f} ± {main['std']:.3f} "
                 f"({main['n_used']} deposits; mean of 20 repeats, each with its own background samples)")
    if main["n_outside"]:
        progress.warn(f"{main['n_outside']} deposit(s) lie outside the survey and were not scored")
    for other, res in metrics["auc_by_score"].items():
        if other != name:
            progress.log(f"  {plain_score_name(other)}: AUC {res['mean']:.3f} ± {res['std']:.3f}")


def plain_score_name(name: str) -> str:
    """A compared score's name for the log: "baseline:pca", "readout:x", "reference:x" are run.json's keys."""
    kind, _, rest = name.partition(":")
    if not rest:
        return name
    words = rest.replace("_", " ")
    if kind == "baseline":
        return f"{words} (for comparison)"
    if kind == "reference":
        return f"{words} (map made by hand, for comparison)"
    if kind == "readout":
        return f"{words} (one part of the model's score)"
    return name


def _baseline_names(baselines: str | list[str], have_deposits: bool) -> list[str]:
    if baselines == "none":
        return []
    if baselines == "auto":
        return list(CLASSICAL) if have_deposits else []
    names = [n.strip() for n in baselines.split(",") if n.strip()] if isinstance(baselines, str) else list(baselines)
    for name in names:
        if name not in CLASSICAL:
            raise InvalidInputError(f"--compare: {name!r} is not a classical detector ({', '.join(CLASSICAL)})")
    return names


def _stage_weights(deep: bool, evaluate: bool) -> dict[str, float]:
    """Each stage's share of the progress bar, summing to 1 (training dominates deep runs)."""
    weights = {"read": 0.05, "preprocess": 0.05, "fit": 0.75 if deep else 0.35, "score": 0.05,
               "evaluate": (0.05 if deep else 0.35) if evaluate else 0.0}
    weights["grid"] = 1.0 - sum(weights.values())
    return weights


def _uses_torch(detector: Detector) -> bool:
    return type(detector).__module__.split(".")[2:3] != ["classical"]


def _timed(job):
    import time

    start = time.perf_counter()
    out = job()
    return out, round(time.perf_counter() - start, 3)
