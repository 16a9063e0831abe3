"""One KDAL cycle from files to figures: what ``geoanomaly prospectivity`` does, callable from a notebook.

    from core.prospectivity import CycleSettings, run_cycle
    run = run_cycle(["anomaly_score.tif"], "deposits.csv", settings=CycleSettings(cycles=5))
    run.write("pros/auto")            # the command's outputs; run.metrics() holds its figures

Jobs, in order: read the evidence and the points (:func:`read_inputs`), train
the student (:func:`core.prospectivity.kdal.fit_kdal_map`), class the map,
cross-validate it and the baselines in the same blocked folds
(:func:`cross_validate_maps`), and write everything (:meth:`CycleRun.write`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.evaluate.curves import SuccessRateCurve, success_curve
from core.io.rasters import write_raster
from core.io.samples import read_deposits
from core.progress import Progress, SilentProgress
from core.prospectivity.baselines import BASELINES, WeightsOfEvidence
from core.prospectivity.classes import (
    CLASS_NAMES,
    DEFAULT_SHARES,
    area_share_thresholds,
    classify_by_area,
    classify_by_pa,
    deposits_per_class,
)
from core.prospectivity.kdal import CycleResult, KDALConfig, LabelledCells, fit_kdal_map
from core.prospectivity.labels import (
    LABELS_FILE,
    QUERIES_FILE,
    STATE_FILE,
    empty_labels,
    previous_run_folder,
    read_label_points,
    read_state,
    write_points,
)
from core.prospectivity.plots import plot_prospectivity_figures
from core.prospectivity.soft_labels import normalise_scores
from core.prospectivity.stack import (
    CellPoints,
    EvidenceStack,
    cells_from_mask_raster,
    load_evidence,
    place_points,
)
from core.prospectivity.validation import (
    BlockedFolds,
    CrossValidation,
    blocked_folds,
    capture_area_shares,
    cross_validate,
    pooled_success_curve,
)

EVIDENCE_ALONE = "evidence alone (teacher)"
UNLABELLED_GROUND = (
    "Unlabelled ground is assumed to be as prospective as the evidence (teacher) says: the soft loss holds "
    "every unlabelled cell at the teacher's value, and the residual student departs from it only where the "
    "other bands tell positives (deposits, yes answers) apart. A 0 answer is not learnt as a rule: it sets the "
    "map to 0 on the ground it covers (--oracle-radius cells around it) and moves nothing else."
)


@dataclass
class CycleSettings:
    """Everything a cycle needs besides its inputs; the command's options, one for one."""

    teacher: str = "1"  # band(s) whose normalised scores are the soft labels: names or 1-based numbers
    normalise: str = "robust"
    cycles: int = 0  # unattended cycles answered by the deposits before the final one
    k: int = 5
    query_spacing: int = 5
    oracle_radius: int = 1
    hidden_deposits: float = 0.0  # unattended cycles: share of the deposits not given as labels, known to the oracle
    deposits_as_labels: bool = True
    folds: int = 5  # 0 = no cross-validation
    cv_block: int | None = None
    classes: str = "area"  # "area" or "pa"
    class_shares: tuple[float, float, float] = DEFAULT_SHARES
    baselines: bool = True  # WofE, logistic regression, random forest in the same folds
    kdal: KDALConfig = field(default_factory=KDALConfig)

    def __post_init__(self) -> None:
        if self.cycles < 0 or self.k < 0 or self.query_spacing < 1 or self.oracle_radius < 0:
            raise InvalidInputError("--cycles, --k and --oracle-radius must be >= 0, --query-spacing >= 1")
        if not 0.0 <= self.hidden_deposits < 1.0:
            raise InvalidInputError(f"--hide-deposits must be in [0, 1), got {self.hidden_deposits}")
        if self.folds == 1 or self.folds < 0:
            raise InvalidInputError("--folds must be 0 (no cross-validation) or at least 2")
        if self.classes not in ("area", "pa"):
            raise InvalidInputError(f"unknown class method {self.classes!r}: use area or pa")


@dataclass
class CycleInputs:
    """The evidence stack and everything placed on it."""

    stack: EvidenceStack
    teacher: np.ndarray  # P(prospective) per valid cell from the teacher band(s)
    teacher_bands: list[str]
    deposits: CellPoints
    pool: LabelledCells  # labels besides the deposits
    previous: dict | None  # the previous cycle's state, when the labels came from a run folder

    @property
    def deposit_cells(self) -> np.ndarray:
        # One entry per deposit (two deposits in one cell count twice in the figures, once as a label).
        return self.deposits.flat

    @property
    def cycle_number(self) -> int:
        return (self.previous.get("cycle", 0) + 1) if self.previous else 1


BEST_BAND = "best"  # --teacher best: the band that ranks the (training) deposits highest


def teacher_scores(stack: EvidenceStack, spec: str, method: str,
                   deposit_cells: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """P(prospective) per valid cell from the teacher band(s): normalised, averaged.

    ``spec`` ``"best"``: the one band whose ranking puts ``deposit_cells``
    highest (:func:`best_band`); cross-validation passes each fold's training
    deposits, so the choice never sees a held-out deposit.
    """
    if spec.strip() == BEST_BAND:
        if deposit_cells is None or len(deposit_cells) == 0:
            raise InvalidInputError("--teacher best needs deposits on the grid to choose the band")
        spec = str(best_band(stack, method, deposit_cells) + 1)
    names = []
    parts = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item.isdigit():
            index = int(item) - 1
            if not 0 <= index < len(stack.band_names):
                raise InvalidInputError(f"--teacher {item}: there are {len(stack.band_names)} evidence bands")
        elif item in stack.band_names:
            index = stack.band_names.index(item)
        else:
            raise InvalidInputError(f"--teacher {item!r}: no such evidence band ({', '.join(stack.band_names)})")
        names.append(stack.band_names[index])
        parts.append(normalise_scores(stack.band_values(index), method))
    if not parts:
        raise InvalidInputError("--teacher names no band")
    return np.mean(parts, axis=0), names


def best_band(stack: EvidenceStack, method: str, deposit_cells: np.ndarray) -> int:
    """Index of the band whose ranking puts the deposits highest: the smallest mean share of the area at or
    above a deposit (the success-rate curve's whole area, steadier on a few deposits than one cut-off); the
    first band on ties."""
    means = [capture_area_shares(normalise_scores(stack.band_values(i), method), deposit_cells).mean()
             for i in range(len(stack.band_names))]
    return int(np.argmin(np.round(means, 12)))


def read_inputs(
    evidence: Sequence[str | os.PathLike],
    deposits: str | os.PathLike,
    settings: CycleSettings,
    labels: str | os.PathLike | None = None,
    label_field: str = "label",
    anomaly_cells: str | os.PathLike | None = None,
    deposits_crs: str | None = None,
    progress: Progress | None = None,
) -> CycleInputs:
    """Read the evidence rasters, the deposits, the labels so far and the high-confidence anomalies."""
    progress = progress or SilentProgress()
    stack = load_evidence(evidence)
    placed = place_points(stack, read_deposits(deposits, stack.rasters.crs, crs=deposits_crs))
    progress.log(placed.describe("deposits"))
    if placed.n_outside_grid or placed.n_on_nodata:
        progress.warn(
            f"{placed.n_outside_grid + placed.n_on_nodata} deposit(s) of {Path(deposits).name} "
            "are not on valid cells of the evidence grid and are not used or scored"
        )
    if len(placed.flat) == 0:
        raise InvalidInputError(
            f"{Path(deposits).name}: none of its {placed.n_points} deposits lies on a valid cell of the "
            f"evidence grid ({placed.n_outside_grid} outside it, {placed.n_on_nodata} on nodata); "
            "check the deposits' CRS (--deposits-crs) and the rasters' extent"
        )
    teacher, teacher_bands = teacher_scores(stack, settings.teacher, settings.normalise, placed.flat)
    progress.log(
        f"{len(stack.band_names)} evidence band(s) ({', '.join(stack.band_names)}) on a "
        f"{stack.shape[0]} x {stack.shape[1]} grid, {stack.n_cells} valid cells; teacher: {', '.join(teacher_bands)}"
        + (" (the band that ranks the deposits highest)" if settings.teacher.strip() == BEST_BAND else "")
    )
    pool, previous = _read_pool(stack, labels, label_field, anomaly_cells, progress)
    return CycleInputs(stack, teacher, teacher_bands, placed, pool, previous)


def _read_pool(stack: EvidenceStack, labels, label_field: str, anomaly_cells, progress) -> tuple[LabelledCells, dict | None]:
    """Labels besides the deposits: the previous cycle's pool, the edited labels, high-confidence anomalies."""
    pool = LabelledCells()
    previous = None
    crs = stack.rasters.crs
    if labels:
        folder = previous_run_folder(labels)
        if folder is not None:
            previous = read_state(folder)
            before = read_label_points(folder / LABELS_FILE, "label", crs)
            placed = place_points(stack, before.xy)
            pool = pool.add(placed.flat, before.labels[placed.placed],
                            [s for s, p in zip(before.sources, placed.placed) if p])
            progress.log(f"Previous cycle {previous.get('cycle', '?')}: {len(pool)} label(s) from {folder / LABELS_FILE}")
        edited = read_label_points(labels, label_field, crs, default_source="geologist")
        placed = place_points(stack, edited.xy)
        if placed.n_outside_grid:
            # A label is an answer about this map: one off the grid means the wrong file or CRS, not a detail.
            raise InvalidInputError(
                f"{Path(labels).name}: {placed.n_outside_grid} labelled point(s) lie outside the evidence grid; "
                "check the file and its CRS"
            )
        progress.log(
            placed.describe(f"labelled points in {Path(labels).name}")
            + (f"; {edited.n_unlabelled} left empty (skipped)" if edited.n_unlabelled else "")
        )
        # Labels from a queries layer are the geologist's answers, whatever the layer says.
        pool = pool.add(placed.flat, edited.labels[placed.placed],
                        ["geologist" if folder is not None else s for s, p in zip(edited.sources, placed.placed) if p])
    if anomaly_cells:
        path = Path(anomaly_cells)
        if path.suffix.lower() in {".tif", ".tiff"}:
            cells = cells_from_mask_raster(stack, path)
        else:
            points = place_points(stack, read_deposits(path, crs))
            progress.log(points.describe(f"high-confidence anomalies in {path.name}"))
            cells = points.flat
        pool = pool.add(cells, np.ones(len(cells)), "anomaly")
    return pool, previous


def student_features(stack: EvidenceStack, teacher_bands: list[str], settings: CycleSettings) -> np.ndarray:
    """What the student reads: a residual student the bands other than the teacher's (it has the teacher's
    logit already, and must not reorder cells by the teacher's own values); a free student every band."""
    features = stack.features()
    if settings.kdal.student != "residual":
        return features
    others = [i for i, name in enumerate(stack.band_names) if name not in teacher_bands]
    return features[:, others]


def fit_map(inputs: CycleInputs, settings: CycleSettings, deposit_cells: np.ndarray | None = None,
            closed: np.ndarray | None = None) -> CycleResult:
    """The KDAL map on these inputs; cross-validation passes a fold's training deposits and closed area
    (with ``--teacher best`` the fold's teacher is chosen on its training deposits)."""
    stack = inputs.stack
    teacher, teacher_bands = inputs.teacher, inputs.teacher_bands
    if deposit_cells is not None and settings.teacher.strip() == BEST_BAND:
        teacher, teacher_bands = teacher_scores(stack, BEST_BAND, settings.normalise, deposit_cells)
    return fit_kdal_map(
        student_features(stack, teacher_bands, settings), teacher, stack.cell_rows, stack.cell_cols,
        inputs.deposit_cells if deposit_cells is None else deposit_cells,
        pool=inputs.pool, closed=closed, cycles=settings.cycles, k=settings.k, spacing=settings.query_spacing,
        oracle_radius=settings.oracle_radius, deposits_as_labels=settings.deposits_as_labels, config=settings.kdal,
        hidden_share=settings.hidden_deposits,
    )


def cross_validate_maps(inputs: CycleInputs, settings: CycleSettings, progress: Progress | None = None
                        ) -> tuple[BlockedFolds, dict[str, CrossValidation], list[dict]]:
    """KDAL and (optionally) the baselines, each deposit scored on a map fitted without its fold.

    Also returns KDAL's capture after each unattended cycle (:func:`capture_per_cycle`; empty without cycles).
    """
    progress = progress or SilentProgress()
    stack, cells = inputs.stack, inputs.deposit_cells
    rows, cols = stack.cell_rows, stack.cell_cols
    folds = blocked_folds(rows, cols, cells, settings.folds, settings.cv_block, settings.kdal.seed,
                          buffer_cells=max(settings.oracle_radius, 1))
    fold_results: list[CycleResult] = []

    def kdal_map(train: np.ndarray, closed: np.ndarray) -> np.ndarray:
        fold_results.append(fit_map(inputs, settings, train, closed))
        return fold_results[-1].probability

    makers = {"prospectivity (KDAL)": kdal_map}
    if settings.baselines:
        features = stack.features()
        for name, fit in BASELINES.items():
            makers[name] = partial(fit, features, rows, cols, seed=settings.kdal.seed)
    results = {}
    for i, (name, fit_predict) in enumerate(makers.items()):
        results[name] = cross_validate(fit_predict, cells, folds)
        progress.update((i + 1) / len(makers), f"{name}: done")
    per_cycle = capture_per_cycle(fold_results, cells, folds) if settings.cycles else []
    return folds, results, per_cycle


def capture_per_cycle(fold_results: Sequence[CycleResult], deposit_cells: np.ndarray, folds: BlockedFolds
                      ) -> list[dict]:
    """Held-out capture of the map after each cycle, pooled over the folds: what the answers added.

    ``fold_results[f]`` is fold ``f``'s KDAL run; per cycle: the labels each
    fold had (mean), the yes / no answers given before that cycle's map (summed
    over folds), and the success-rate figures of its held-out deposits.
    """
    n_cells = len(folds.fold_of_cell)
    n_cycles = len(fold_results[0].cycle_probabilities)
    out = []
    for cycle in range(n_cycles):
        shares = np.full(len(deposit_cells), np.nan)
        for fold, result in enumerate(fold_results):
            held_out = folds.fold_of_deposit == fold
            shares[held_out] = capture_area_shares(result.cycle_probabilities[cycle], deposit_cells[held_out])
        curve = pooled_success_curve(shares, n_cells)
        histories = [r.history for r in fold_results]
        out.append({
            "cycle": cycle,
            "labels_per_fold": round(float(np.mean([h[cycle]["labelled"] for h in histories])), 1),
            "yes_so_far": int(sum(e.get("answers_yes", 0) for h in histories for e in h[:cycle])),
            "no_so_far": int(sum(e.get("answers_no", 0) for h in histories for e in h[:cycle])),
            "deposits_in_top_area": {k: round(float(v), 4) for k, v in curve.top_area.items()},
            "auc": round(float(curve.auc), 4),
        })
    return out


@dataclass
class CycleRun:
    """A finished cycle: the map, its classes, the next queries and the figures."""

    inputs: CycleInputs
    settings: CycleSettings
    result: CycleResult
    codes: np.ndarray  # class code per valid cell
    thresholds: dict
    validation: dict[str, CrossValidation] = field(default_factory=dict)  # name -> CV, KDAL first
    wofe: dict | None = None  # weights of evidence on all deposits (patterns, independence check)
    per_cycle: list[dict] = field(default_factory=list)  # held-out capture after each unattended cycle

    @property
    def probability(self) -> np.ndarray:
        return self.result.probability

    def curves(self) -> dict[str, SuccessRateCurve]:
        """Success-rate curves: cross-validated when there was a validation, else on the deposits as they are."""
        cells, teacher = self.inputs.deposit_cells, self.inputs.teacher
        curves = {f"{name} ({cv.folds.n_folds}-fold blocked CV)": cv.curve for name, cv in self.validation.items()}
        if not curves:
            trained = self.settings.deposits_as_labels
            name = "prospectivity (trained on these deposits)" if trained else "prospectivity"
            curves[name] = success_curve(self.probability, self.probability[cells], unit="cells")
        # The evidence is fitted without any deposit: its own ranking is already a held-out figure.
        curves[EVIDENCE_ALONE] = success_curve(teacher, teacher[cells], unit="cells")
        return curves

    def never_worse_than_evidence(self) -> dict:
        """Held-out deposits captured by the map and by the evidence alone at 10 % and 20 % of the area."""
        curves = list(self.curves().values())
        kdal, evidence = curves[0], curves[-1]
        n = kdal.n_used
        out = {share: {"map": round(kdal.top_area[share] * n), "evidence": round(evidence.top_area[share] * n)}
               for share in ("10", "20")}
        return {**out, "holds": all(v["map"] >= v["evidence"] for v in out.values())}

    def agreement_with_evidence(self) -> float:
        """Spearman rank correlation of the map with the teacher over the valid cells (1 = same ranking)."""
        from scipy.stats import spearmanr

        return float(spearmanr(self.probability, self.inputs.teacher).statistic)

    def metrics(self) -> dict:
        curves = self.curves()
        first = next(iter(curves.values()))
        figures_from = ("spatially blocked cross-validation" if self.validation else
                        "the training deposits (optimistic)" if self.settings.deposits_as_labels
                        else "deposits not used in training")
        kdal_cv = next(iter(self.validation.values()), None)
        metrics = {
            "figures_from": figures_from,
            "prospectivity": kdal_cv.to_dict() if kdal_cv else first.to_dict(),
            "anomaly_map_alone": curves[EVIDENCE_ALONE].to_dict(),
            "baselines": {name: cv.curve.to_dict() for name, cv in list(self.validation.items())[1:]},
            "class_thresholds": self.thresholds,
            "rank_agreement_with_evidence": round(self.agreement_with_evidence(), 4),
            "unlabelled_ground": UNLABELLED_GROUND,
        }
        if self.validation:
            metrics["never_worse_than_evidence"] = self.never_worse_than_evidence()
        if self.wofe is not None:
            metrics["weights_of_evidence"] = self.wofe
        if self.per_cycle:
            metrics["capture_per_cycle"] = self.per_cycle
        return metrics

    def deposits_per_class(self) -> list[dict]:
        cells = self.inputs.deposit_cells
        kdal_cv = next(iter(self.validation.values()), None)
        if kdal_cv is not None:
            return _deposits_per_class_cv(kdal_cv, cells, self.settings)
        class_codes = (3, 1) if self.settings.classes == "pa" else (4, 3, 2, 1)
        return deposits_per_class(self.codes, cells, class_codes)

    def write(self, folder: str | os.PathLike) -> Path:
        """Write the map, classes, queries, labels, student, figures and state into ``folder`` (must exist)."""
        folder = Path(folder)
        stack, result = self.inputs.stack, self.result
        crs, transform = stack.rasters.crs, stack.rasters.transform
        probability = self.probability
        write_raster(folder / "prospectivity.tif", stack.to_map(probability), transform, crs,
                     band_names=["prospectivity"])
        write_raster(folder / "prospectivity_classes.tif", stack.to_map(self.codes.astype(np.float32)), transform,
                     crs, nodata=0, band_names=["prospectivity_class"])
        queries = result.queries
        chance = probability if result.chance is None else result.chance
        write_points(folder / QUERIES_FILE, stack.cell_centres(queries), crs.to_wkt(), {
            "query": np.arange(1, len(queries) + 1),
            "cycle": np.full(len(queries), self.inputs.cycle_number),
            "probability": probability[queries].round(4),
            "chance_of_yes": chance[queries].round(4),
            "confidence": np.maximum(chance[queries], 1 - chance[queries]).round(4),
            "why_here": query_reasons(self.inputs, probability, chance, queries),
            "label": empty_labels(len(queries)),
        })
        # The pool as trained on, deposits included, so that the next cycle starts from it.
        trained = result.pool
        write_points(folder / LABELS_FILE, stack.cell_centres(trained.cells), crs.to_wkt(), {
            "label": trained.labels, "source": trained.sources, "probability": probability[trained.cells].round(4)})
        result.model.save(folder)
        curves = self.curves()
        frames = []
        for name, curve in curves.items():
            frame = curve.to_frame()
            frame.insert(0, "map", name)
            frames.append(frame)
        pd.concat(frames, ignore_index=True).to_csv(folder / "success_rate.csv", index=False)
        plot_prospectivity_figures(curves, probability, probability[self.inputs.deposit_cells],
                                   folder / "success_rate.png", self.per_cycle)
        pd.DataFrame(self.deposits_per_class()).to_csv(folder / "deposits_per_class.csv", index=False)
        state = {
            "cycle": self.inputs.cycle_number,
            "evidence": [str(Path(p).resolve()) for p in stack.rasters.paths],
            "band_names": stack.band_names,
            "teacher": self.inputs.teacher_bands,
            "labels": {"count": len(trained), "positives": int(trained.labels.sum())},
            "config": asdict(self.settings.kdal),
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        return folder


def query_reasons(inputs: CycleInputs, probability: np.ndarray, chance: np.ndarray, queries: np.ndarray) -> list[str]:
    """A short "why here" per query: the chance of a find, the map and evidence there, the nearest known point."""
    stack = inputs.stack
    known = np.concatenate([inputs.deposit_cells, inputs.pool.cells]).astype(np.int64)
    kinds = ["deposit"] * len(inputs.deposit_cells) + [f"label {v}" for v in inputs.pool.labels]
    cell = float(np.mean(stack.cell_size))
    reasons = []
    for q in np.asarray(queries, dtype=np.int64):
        text = (f"chance of a find {chance[q]:.0%} (the least certain unvisited ground); map p = "
                f"{probability[q]:.2f}, evidence at {inputs.teacher[q]:.2f} of its range")
        if len(known):
            d = np.hypot(stack.cell_rows[known] - stack.cell_rows[q], stack.cell_cols[known] - stack.cell_cols[q])
            i = int(np.argmin(d))
            text += f"; nearest known point: {kinds[i]} {d[i] * cell / 1000:.1f} km away"
        reasons.append(text)
    return reasons


def _deposits_per_class_cv(validation: CrossValidation, deposit_cells: np.ndarray, settings: CycleSettings) -> list[dict]:
    """Each held-out deposit classed on the map of its own fold (by that map's own thresholds)."""
    deposit_codes = np.zeros(len(deposit_cells), dtype=np.uint8)
    fold_codes = []
    for fold, fold_map in enumerate(validation.fold_maps):
        held_out = validation.folds.fold_of_deposit == fold
        if settings.classes == "pa":
            codes = classify_by_pa(fold_map, deposit_cells[~held_out])[0]
        else:
            codes = classify_by_area(fold_map, settings.class_shares)
        deposit_codes[held_out] = codes[deposit_cells[held_out]]
        fold_codes.append(codes)
    rows = []
    for code in (3, 1) if settings.classes == "pa" else (4, 3, 2, 1):
        count = int(np.sum(deposit_codes == code))
        rows.append({"class": CLASS_NAMES[code], "code": code,
                     "area_share": round(float(np.mean([np.mean(c == code) for c in fold_codes])), 4),
                     "deposits": count, "deposit_share": round(count / max(len(deposit_cells), 1), 4),
                     "figures_from": "held-out deposits (blocked CV)"})
    return rows


def classify(probability: np.ndarray, deposit_cells: np.ndarray, settings: CycleSettings) -> tuple[np.ndarray, dict]:
    """Class codes per cell and the thresholds used (area shares, or the P-A crossing)."""
    if settings.classes == "pa":
        codes, threshold = classify_by_pa(probability, deposit_cells)
        return codes, {"pa_crossing": threshold}
    codes = classify_by_area(probability, settings.class_shares)
    names = ["very_high", "high", "moderate"]
    return codes, dict(zip(names, area_share_thresholds(probability, settings.class_shares).tolist()))


def run_cycle(
    evidence: Sequence[str | os.PathLike],
    deposits: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    *,
    settings: CycleSettings | None = None,
    label_field: str = "label",
    anomaly_cells: str | os.PathLike | None = None,
    deposits_crs: str | None = None,
    progress: Progress | None = None,
) -> CycleRun:
    """One KDAL cycle (after ``settings.cycles`` unattended ones): map, classes, queries, cross-validated figures."""
    settings = settings or CycleSettings()
    progress = progress or SilentProgress()
    progress.stage("read", "Reading evidence, deposits and labels", weight=0.05)
    inputs = read_inputs(evidence, deposits, settings, labels, label_field, anomaly_cells, deposits_crs, progress)
    progress.log(f"Cycle {inputs.cycle_number}: {len(inputs.pool)} label(s) besides the deposits")
    validate = settings.folds and settings.deposits_as_labels
    progress.stage("train", f"Cycle {inputs.cycle_number}" + (f" after {settings.cycles} unattended" if settings.cycles
                                                               else ""), weight=0.3 if validate else 0.9)
    result = fit_map(inputs, settings)
    progress.update(1.0, "trained")
    codes, thresholds = classify(result.probability, inputs.deposit_cells, settings)
    validation: dict[str, CrossValidation] = {}
    per_cycle: list[dict] = []
    if validate:
        progress.stage("validate", f"Checking the map and its alternatives on held-out deposits "
                                   f"({settings.folds} spatial folds)", weight=0.6)
        _, validation, per_cycle = cross_validate_maps(inputs, settings, progress)
        for entry in per_cycle:
            top = entry["deposits_in_top_area"]
            progress.log(f"Held-out deposits after cycle {entry['cycle']} ({entry['labels_per_fold']:.0f} labels per "
                         f"fold, {entry['yes_so_far']} yes / {entry['no_so_far']} no so far): "
                         f"{top['10'] * 100:.0f} % / {top['20'] * 100:.0f} % in the top 10 / 20 % of the area")
    wofe = None
    if settings.baselines:
        model = WeightsOfEvidence().fit(inputs.stack.features(), inputs.deposit_cells)
        wofe = model.to_dict(inputs.stack.band_names)
    return CycleRun(inputs, settings, result, codes, thresholds, validation, wofe, per_cycle)
