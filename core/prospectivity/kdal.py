"""KDAL: knowledge-distillation active learning on an evidence stack (seed 004).

The anomaly detector is the teacher: its normalised scores are soft labels
for every valid cell. The student is a small classifier on the standardised
evidence values of a cell. Each cycle trains the student on

    loss = soft_loss(all valid cells) + hard_weight * cross_entropy(labelled cells)

(``hard_weight`` 1: the seed's "sum", 1 : 1), then proposes the K cells whose
chance of a yes it is least sure about (lowest max-class probability of
:func:`chance_of_yes`) for labelling, spread out so that no two queries share
a neighbourhood.

Choices (defaults; all configurable in :class:`KDALConfig`):

- **Student** (``student="residual"``): the teacher's own logit, rescaled
  by a positive factor and shifted, plus a correction ``g`` (an MLP, two
  hidden layers of 32; ``hidden=0``: linear) of the *other* evidence bands,
  ``g = 0`` at the start. Why: a free MLP on the evidence (the first design,
  ``student="free"``) had to relearn the teacher's ranking through 300
  steps on a batch of cells, and lost part of it (a flatter map than its
  teacher; on GSWA sed1 fewer held-out deposits in the top 10-20 % than the
  evidence alone). With one band, the only thing a few dozen labels could
  add is a reordering of cells by that band's own values, which deposits
  (positives only) and a strict oracle's "no" answers (near the student's
  p = 0.5, i.e. at the high evidence values where the held-out deposits
  also lie) push the wrong way. The residual student cannot reorder cells
  that the other bands do not tell apart: on one band it ranks exactly as
  the evidence (labels only calibrate it); other bands may reorder cells
  when the labels support it.
- **Soft loss**: KL divergence at temperature T = 2 (Hinton et al.), scaled
  by T^2 so that its gradients stay comparable to the hard loss. The teacher's
  scores are not calibrated probabilities; T > 1 softens both sides, so the
  student learns the teacher's *ordering* of cells rather than its exact
  (arbitrary) confidence, and the hard labels can move it. ``soft_loss="ce"``
  gives plain soft cross-entropy (the KL at T = 1 up to a constant).
- **What the queries are least sure of**: the chance that a check is
  answered yes (:func:`chance_of_yes`, the map recalibrated to the labels'
  base rate), not the map's teacher-scaled P(prospective). Deposits are
  rare, so least confidence on a calibrated chance asks about the likeliest
  unvisited ground; on the teacher's scale it asked about middling ground
  and met no hidden deposit in 125 queries on GSWA sed1.
- **Query spacing**: least-confidence cells are taken in order of confidence,
  skipping any cell within ``spacing - 1`` cells (Chebyshev) of a query
  already taken, or within the answer radius of a labelled cell: otherwise the K queries would be K
  neighbouring cells on one contour of p = 0.5, i.e. one field visit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.device import cpu_threads
from core.errors import InvalidInputError
from core.prospectivity.stack import near_cells
from core.prospectivity.validation import capture_area_shares

SOFT_LOSSES = ("kl", "ce")
STUDENTS = ("residual", "free")
TEACHER_CLIP = 1e-4  # teacher probabilities are clipped to [1e-4, 1 - 1e-4] before taking logits


def teacher_logit(teacher_prob):
    """log(a / (1 - a)) of the teacher's P(prospective), clipped so that 0 and 1 stay finite (torch or numpy)."""
    p = teacher_prob.clip(TEACHER_CLIP, 1 - TEACHER_CLIP)
    return (p / (1 - p)).log() if hasattr(p, "log") else np.log(p / (1 - p))


@dataclass
class KDALConfig:
    student: str = "residual"  # "residual": teacher's logit + learned correction; "free": the MLP alone
    hidden: int = 32  # units per hidden layer; 0 = logistic regression
    soft_loss: str = "kl"  # "kl" (with temperature) or "ce" (soft cross-entropy)
    temperature: float = 2.0
    hard_weight: float = 1.0  # weight of the hard loss against the soft loss (seed: 1)
    steps: int = 300  # optimiser steps per training
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    batch_cells: int = 8192  # soft-loss cells drawn per step (all when fewer): 5x faster on 40k cells, same map
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.soft_loss not in SOFT_LOSSES:
            raise InvalidInputError(f"unknown soft loss {self.soft_loss!r}: use one of {', '.join(SOFT_LOSSES)}")
        if self.student not in STUDENTS:
            raise InvalidInputError(f"unknown student {self.student!r}: use one of {', '.join(STUDENTS)}")
        if not self.temperature > 0:
            raise InvalidInputError(f"the temperature must be positive, got {self.temperature}")
        if self.hidden < 0 or self.steps < 1 or self.batch_cells < 1:
            raise InvalidInputError("hidden must be >= 0, steps and batch_cells >= 1")
        if self.hard_weight < 0:
            raise InvalidInputError(f"the hard-loss weight must be >= 0, got {self.hard_weight}")


def _mlp(n_in: int, hidden: int, n_out: int):
    from torch import nn

    if hidden == 0:
        return nn.Linear(n_in, n_out)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


def _build_network(n_features: int, hidden: int, residual: bool):
    """The student's network: ``forward(x, z)`` -> two-class logits; ``z`` is the teacher's logit per cell."""
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    class Free(nn.Module):
        """An MLP on the evidence values that must learn the teacher's map from scratch."""

        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp(n_features, hidden, 2)

        def forward(self, x, z):
            return self.net(x)

    class Residual(nn.Module):
        """Logit = softplus(rho) * teacher logit + shift + correction(other evidence bands).

        Starts as the teacher (scale 1, shift 0, correction 0). The scale stays
        positive, so no label can reverse the teacher's order among cells that
        the other bands do not tell apart.
        """

        def __init__(self) -> None:
            super().__init__()
            self.rho = nn.Parameter(torch.tensor(math.log(math.e - 1.0)))  # softplus(rho) = 1
            self.shift = nn.Parameter(torch.zeros(()))
            self.correction = _mlp(n_features, hidden, 1) if n_features else None
            if self.correction is not None:
                last = self.correction if hidden == 0 else self.correction[-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

        def forward(self, x, z):
            margin = F.softplus(self.rho) * z + self.shift
            if self.correction is not None:
                margin = margin + self.correction(x)[:, 0]
            return torch.stack([torch.zeros_like(margin), margin], dim=1)

    return Residual() if residual else Free()


def soft_loss(logits, teacher_prob, kind: str, temperature: float):
    """Distillation loss between the student's logits and the teacher's P(prospective) per cell."""
    import torch
    import torch.nn.functional as F

    teacher = torch.stack([1.0 - teacher_prob, teacher_prob], dim=1)
    if kind == "ce":
        return -(teacher * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    teacher_logits = torch.stack([torch.zeros_like(teacher_prob), teacher_logit(teacher_prob)], dim=1)
    target = F.softmax(teacher_logits / temperature, dim=1)
    student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, target, reduction="batchmean") * temperature**2


class ProspectivityClassifier:
    """The student: a cell's evidence values (and the teacher's say there) -> P(prospective). scikit-learn habits.

    A ``residual`` student (the default when it has a teacher) predicts the
    logit ``s * teacher_logit(a) + b + g(x)``: the teacher's own logit,
    rescaled (``s > 0``) and shifted, plus a correction ``g`` of the
    features that starts at zero. Give it the evidence bands *other than*
    the teacher's as ``features``: then, without labels, the soft loss is at
    its minimum with ``s = 1, b = 0, g = 0`` and the student *is* its
    teacher; with labels, ``s`` and ``b`` calibrate it, and only the other
    bands can reorder cells. A ``free`` student (an MLP on all bands) must
    relearn the teacher's ranking from scratch, and loses part of it.
    """

    def __init__(self, config: KDALConfig | None = None) -> None:
        self.config = config or KDALConfig()

    def fit(
        self,
        features: np.ndarray,
        soft_targets: np.ndarray | None = None,
        labelled: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> ProspectivityClassifier:
        """Train on soft targets (P(prospective) per row of ``features``) and/or hard 0/1 ``labels`` at rows ``labelled``."""
        import torch

        from core.device import resolve_device

        cfg = self.config
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError(f"features must be (cells, bands), got shape {features.shape}")
        labelled = np.asarray([] if labelled is None else labelled, dtype=np.int64)
        labels = np.asarray([] if labels is None else labels, dtype=np.int64)
        if soft_targets is None and labelled.size == 0:
            raise InvalidInputError("nothing to train on: no soft labels and no labelled cells")
        if labelled.size != labels.size:
            raise ValueError("labelled and labels differ in length")
        self.residual_ = cfg.student == "residual" and soft_targets is not None
        if not self.residual_ and features.shape[1] == 0:
            raise InvalidInputError("a student without a teacher needs at least one evidence band")
        self.mean_ = features.mean(axis=0) if len(features) else np.zeros(features.shape[1], np.float32)
        scale = features.std(axis=0) if len(features) else np.ones(features.shape[1], np.float32)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        self.n_features_in_ = features.shape[1]
        self.device_ = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        self.network_ = _build_network(self.n_features_in_, cfg.hidden, self.residual_).to(self.device_)
        x = torch.from_numpy((features - self.mean_) / self.scale_).to(self.device_)
        soft = None if soft_targets is None else torch.as_tensor(soft_targets, dtype=torch.float32, device=self.device_)
        z = teacher_logit(soft) if self.residual_ else torch.zeros(len(x), device=self.device_)
        hard_idx = torch.from_numpy(labelled).to(self.device_)
        hard_y = torch.from_numpy(labels).to(self.device_)
        # Weight decay pulls the learned part towards nothing; the residual's scale and shift (the teacher
        # itself) are not decayed, or a student without labels would drift from its teacher.
        calibration = [p for name, p in self.network_.named_parameters() if name in ("rho", "shift")]
        learned = [p for name, p in self.network_.named_parameters() if name not in ("rho", "shift")]
        groups = [{"params": learned, "weight_decay": cfg.weight_decay}, {"params": calibration, "weight_decay": 0.0}]
        optimiser = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.learning_rate)
        self.network_.train()
        # One CPU thread for small grids: a tiny network gains nothing from threads and loses a lot to
        # contention on a shared machine (measured: 2 threads 5x slower on a busy 2-core box).
        with cpu_threads(self.device_, 1 if len(x) <= 200_000 else None):
            self._train(x, z, soft, hard_idx, hard_y, labelled.size, optimiser, generator)
        return self

    def _train(self, x, z, soft, hard_idx, hard_y, n_labelled: int, optimiser, generator) -> None:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        n = len(x)
        for _ in range(cfg.steps):
            optimiser.zero_grad()
            loss = torch.zeros((), device=self.device_)
            if soft is not None:
                batch = (torch.randint(0, n, (cfg.batch_cells,), generator=generator).to(self.device_)
                         if n > cfg.batch_cells else slice(None))
                loss = loss + soft_loss(self.network_(x[batch], z[batch]), soft[batch], cfg.soft_loss,
                                        cfg.temperature)
            if n_labelled:
                weight = cfg.hard_weight if soft is not None else 1.0
                loss = loss + weight * F.cross_entropy(self.network_(x[hard_idx], z[hard_idx]), hard_y)
            loss.backward()
            optimiser.step()
        self.final_loss_ = float(loss.detach())

    def decision_function(self, features: np.ndarray, teacher: np.ndarray | None = None) -> np.ndarray:
        """Logit of P(prospective) per row (float64): ranks cells without the ties of a saturated probability."""
        import torch

        if self.residual_ and teacher is None:
            raise InvalidInputError("a residual student needs the teacher's P(prospective) of every cell it maps")
        x = (np.asarray(features, dtype=np.float32) - self.mean_) / self.scale_
        z = (teacher_logit(np.asarray(teacher, dtype=np.float64)) if self.residual_ else np.zeros(len(x)))
        self.network_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 262144):
                part = slice(start, start + 262144)
                logits = self.network_(torch.from_numpy(x[part]).to(self.device_),
                                       torch.from_numpy(z[part]).float().to(self.device_)).double()
                out.append((logits[:, 1] - logits[:, 0]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def predict_proba(self, features: np.ndarray, teacher: np.ndarray | None = None) -> np.ndarray:
        """P(prospective) per row, float64 in [0, 1]; ``teacher``: the teacher's P per row (residual student)."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(features, teacher)))

    def save(self, folder: str | Path) -> None:
        """``student.pt`` (state_dict) + ``student.json`` (config, scaler): nothing that runs code on load."""
        import torch

        folder = Path(folder)
        torch.save({k: v.cpu() for k, v in self.network_.state_dict().items()}, folder / "student.pt")
        meta = {"config": asdict(self.config), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "n_features": self.n_features_in_, "residual": self.residual_}
        (folder / "student.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> ProspectivityClassifier:
        import torch

        from core.device import resolve_device

        folder = Path(folder)
        meta = json.loads((folder / "student.json").read_text())
        model = cls(KDALConfig(**{**meta["config"], "device": device}))
        model.mean_ = np.asarray(meta["mean"], dtype=np.float32)
        model.scale_ = np.asarray(meta["scale"], dtype=np.float32)
        model.n_features_in_ = int(meta["n_features"])
        model.residual_ = bool(meta.get("residual", False))
        model.device_ = resolve_device(device)
        model.network_ = _build_network(model.n_features_in_, model.config.hidden, model.residual_)
        model.network_.load_state_dict(torch.load(folder / "student.pt", weights_only=True))
        model.network_.to(model.device_)
        return model


def least_confident_cells(
    probability: np.ndarray,
    k: int,
    rows: np.ndarray,
    cols: np.ndarray,
    spacing: int = 1,
    candidates: np.ndarray | None = None,
    avoid: np.ndarray | None = None,
    avoid_spacing: int | None = None,
) -> np.ndarray:
    """The ``k`` cells with the lowest max-class probability, at least ``spacing`` cells apart.

    ``probability``: P(prospective) per valid cell; ``rows``/``cols``: each
    cell's grid position; ``candidates``: bool mask of cells that may be
    queried; ``avoid``: cells already labelled, no query within
    ``avoid_spacing`` (default ``spacing``) of them either. Ties go to the
    lower cell index. Returns fewer than ``k`` when the spacing leaves no more room.
    """
    probability = np.asarray(probability, dtype=np.float64)
    if k < 0:
        raise InvalidInputError(f"the number of queries K must be >= 0, got {k}")
    spacing = max(int(spacing), 1)
    confidence = np.maximum(probability, 1.0 - probability)
    order = np.lexsort((np.arange(len(confidence)), confidence))
    if candidates is not None:
        order = order[np.asarray(candidates, dtype=bool)[order]]
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    blocked = np.zeros((n_rows, n_cols), dtype=bool)

    def block(i: int, apart: int = spacing) -> None:
        r, c = rows[i], cols[i]
        blocked[max(r - apart + 1, 0):r + apart, max(c - apart + 1, 0):c + apart] = True

    for i in ([] if avoid is None else np.asarray(avoid, dtype=np.int64)):
        block(int(i), spacing if avoid_spacing is None else max(int(avoid_spacing), 1))
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if blocked[rows[i], cols[i]]:
            continue
        chosen.append(int(i))
        block(int(i))
    return np.asarray(chosen, dtype=np.int64)


@dataclass
class LabelledCells:
    """The labelled pool: valid-cell index, 0/1 label and where the label came from."""

    cells: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cells)

    def add(self, cells, labels, source: str | list[str]) -> LabelledCells:
        """A new pool with these labels added; a later label for a cell replaces an earlier one."""
        cells = np.asarray(cells, dtype=np.int64).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        sources = [source] * len(cells) if isinstance(source, str) else list(source)
        all_cells = np.concatenate([self.cells, cells])
        all_labels = np.concatenate([self.labels, labels])
        all_sources = self.sources + sources
        # Keep the last label given for each cell (the geologist's latest word).
        _, last_from_end = np.unique(all_cells[::-1], return_index=True)
        keep = np.sort(len(all_cells) - 1 - last_from_end)
        return LabelledCells(all_cells[keep], all_labels[keep], [all_sources[i] for i in keep])

    def positives(self) -> LabelledCells:
        """The pool's 1 labels only."""
        keep = self.labels == 1
        return LabelledCells(self.cells[keep], self.labels[keep], [s for s, k in zip(self.sources, keep) if k])

    def without(self, drop_mask: np.ndarray) -> LabelledCells:
        """The pool less the cells where ``drop_mask`` (per valid cell) is True."""
        keep = ~np.asarray(drop_mask, dtype=bool)[self.cells]
        return LabelledCells(self.cells[keep], self.labels[keep], [s for s, k in zip(self.sources, keep) if k])


class DepositOracle:
    """The simulated geologist: answers 1 when a deposit lies within ``radius`` cells (3 x 3 buffer at 1), else 0."""

    def __init__(self, deposit_cells: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius: int = 1) -> None:
        self.near_deposit = near_cells(rows, cols, deposit_cells, radius)

    def __call__(self, cells: np.ndarray) -> np.ndarray:
        return self.near_deposit[np.asarray(cells, dtype=np.int64)].astype(np.int64)


@dataclass
class CycleResult:
    probability: np.ndarray  # (n_valid,) P(prospective) of the final student
    queries: np.ndarray  # valid-cell indices proposed for labelling next
    pool: LabelledCells  # the labels the final student was trained on
    model: ProspectivityClassifier
    history: list[dict]  # one entry per cycle: labels used, queries, positives found
    cycle_probabilities: list[np.ndarray] = field(default_factory=list)  # the map after each cycle (0 first)
    chance: np.ndarray | None = None  # (n_valid,) P(a check is answered yes) the queries were chosen on


def lower_near_no_answers(probability: np.ndarray, pool: LabelledCells, rows: np.ndarray, cols: np.ndarray,
                          radius: int) -> np.ndarray:
    """The map with the ground each 0 answer covers (``radius`` cells around it) set to 0, positives excepted.

    A "no" is a fact about one place (checked, barren), not about the evidence
    signature: the checked ground is crossed off, and nothing else moves.
    """
    negatives = pool.cells[pool.labels == 0]
    if len(negatives) == 0:
        return probability
    barren = near_cells(rows, cols, negatives, radius)
    barren[pool.cells[pool.labels == 1]] = False
    return np.where(barren, 0.0, probability)


def chance_of_yes(logit: np.ndarray, pool: LabelledCells, rows: np.ndarray, cols: np.ndarray, radius: int,
                  candidates: np.ndarray | None = None) -> np.ndarray | None:
    """P(a field check here is answered yes) per cell: the map's logit recalibrated to the labels' base rate.

    The map's own P(prospective) is on the teacher's scale (robust min-max of
    the anomaly scores: half of the survey near 0.5), not a chance of finding
    anything: least confidence on it asks about middling ground, where on the
    shared surveys not one query of 125 met a hidden deposit. Deposits are
    rare, so here a one-feature logistic regression (Platt scaling) of the
    map's rank (-log of the share of the area scoring at least as high, from
    the logit) maps it to the chance that the cell lies within ``radius`` cells of
    a positive label, fitted on the cells that may be queried (footprints of
    the 1 labels = yes, all else = no, unweighted so the base rate stays).
    Least confidence on that chance is the seed's rule on a calibrated
    probability: where every chance is below 0.5 it asks about the likeliest
    finds, and at the edge of a well-known district about the cells nearest
    0.5. ``None`` when there is nothing to calibrate on (no positive, or
    every cell positive); the caller then uses the map's probability.
    """
    from sklearn.linear_model import LogisticRegression

    positives = pool.cells[pool.labels == 1]
    if len(positives) == 0:
        return None
    yes = near_cells(rows, cols, positives, radius)
    fit_on = np.ones(len(logit), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    if yes[fit_on].all() or not yes[fit_on].any():
        return None
    # The feature is the map's rank, as -log(share of the area scoring at least as high): free of the
    # teacher's scale, whose clipped tails (logit +-9.2 for the top and bottom 2 % of a robust min-max)
    # would make a fitted line promise certainty at the very top.
    x = -np.log(capture_area_shares(logit, np.arange(len(logit))))[:, None]
    model = LogisticRegression(C=1e4).fit(x[fit_on], yes[fit_on])
    if model.coef_[0, 0] <= 0:  # the labels contradict the map's order: no calibration can rank by it
        return None
    # Checked, barren ground: no chance left there (the same ground the map crosses off).
    return lower_near_no_answers(model.predict_proba(x)[:, 1], pool, rows, cols, radius)


def run_kdal(
    features: np.ndarray,
    teacher: np.ndarray | None,
    rows: np.ndarray,
    cols: np.ndarray,
    pool: LabelledCells,
    k: int = 5,
    spacing: int = 5,
    cycles: int = 0,
    oracle: Callable[[np.ndarray], np.ndarray] | None = None,
    config: KDALConfig | None = None,
    query_candidates: np.ndarray | None = None,
    on_cycle: Callable[[int, int], None] | None = None,
    answer_radius: int = 1,
) -> CycleResult:
    """Run ``cycles`` cycles answered by ``oracle``, then one more whose queries are left for the user.

    Each cycle: train the student (soft loss on all cells if ``teacher`` is
    given, hard loss on the labelled cells), then pick the ``k`` cells whose
    chance of a yes (:func:`chance_of_yes`) is least certain. ``teacher``:
    P(prospective) per cell from the anomaly scores, or None for a plain
    supervised classifier.

    With a teacher, the hard loss sees the positives only; each 0 answer
    instead sets the ground within ``answer_radius`` cells of it to 0
    (:func:`lower_near_no_answers`). Why: the least-confident cells the
    geologist is asked about lie on the evidence's high values, where the
    undiscovered deposits lie too; trained on, every "no" taught the student
    that such values are barren everywhere and cost held-out deposits
    (GSWA sed1: 1-2 of 25 at 20 % of the area after 3-5 cycles). The soft
    loss already gives the contrast a positives-only hard loss lacks.
    Without a teacher the 0 labels are the classifier's only negatives and are trained on.
    """
    if cycles > 0 and oracle is None:
        raise InvalidInputError("unattended cycles need an oracle (known deposits)")
    config = config or KDALConfig()
    history: list[dict] = []
    maps: list[np.ndarray] = []
    for cycle in range(cycles + 1):
        trained = pool if teacher is None else pool.positives()
        model = ProspectivityClassifier(config).fit(features, teacher, trained.cells, trained.labels)
        logit = model.decision_function(features, teacher)
        probability = lower_near_no_answers(1.0 / (1.0 + np.exp(-logit)), pool, rows, cols, answer_radius)
        maps.append(probability)
        chance = chance_of_yes(logit, pool, rows, cols, answer_radius, query_candidates)
        # Queries keep ``spacing`` apart (one field visit each), but only off the ground a label already
        # answers for (``answer_radius``): the ground next to a known deposit is still unknown, and on
        # clustered deposits it is where the next one is most likely (a step-out).
        queries = least_confident_cells(probability if chance is None else chance, k, rows, cols, spacing,
                                        query_candidates, avoid=pool.cells, avoid_spacing=answer_radius + 1)
        entry = {"cycle": cycle, "labelled": len(pool), "positives": int(pool.labels.sum()),
                 "queries": len(queries)}
        if cycle < cycles:
            answers = oracle(queries)
            entry["answers_yes"] = int(answers.sum())
            entry["answers_no"] = int(len(answers) - answers.sum())
            pool = pool.add(queries, answers, "oracle")
        history.append(entry)
        if on_cycle is not None:
            on_cycle(cycle + 1, cycles + 1)
    return CycleResult(probability, queries, pool, model, history, maps, chance)


def fit_kdal_map(
    features: np.ndarray,
    teacher: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    deposit_cells: np.ndarray,
    pool: LabelledCells | None = None,
    closed: np.ndarray | None = None,
    cycles: int = 0,
    k: int = 5,
    spacing: int = 5,
    oracle_radius: int = 1,
    deposits_as_labels: bool = True,
    config: KDALConfig | None = None,
    hidden_share: float = 0.0,
) -> CycleResult:
    """The whole KDAL procedure as the command runs it, optionally with an area ``closed`` to labels and queries.

    ``deposit_cells`` are the first positives (unless ``deposits_as_labels``
    is off) and answer the unattended cycles' queries; ``pool``: other labels
    (the geologist's, earlier cycles', high-confidence anomalies). Cross-
    validation calls this with a fold's blocks ``closed`` and its deposits left out.
    ``hidden_share``: with unattended cycles, this share of the deposits
    (drawn with the config's seed) is not given as labels; the simulated
    geologist still knows them and answers yes near them, so the cycles can
    find ground the labels did not show (:func:`hide_deposits`).
    """
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    config = config or KDALConfig()
    shown = hide_deposits(deposit_cells, hidden_share, config.seed) if cycles > 0 else deposit_cells
    labelled = LabelledCells()
    if deposits_as_labels:
        labelled = labelled.add(shown, np.ones(len(shown)), "deposit")
    if pool is not None and len(pool):
        labelled = labelled.add(pool.cells, pool.labels, pool.sources)
    candidates = None
    if closed is not None:
        labelled = labelled.without(closed)
        candidates = ~np.asarray(closed, dtype=bool)
    oracle = DepositOracle(deposit_cells, rows, cols, oracle_radius) if cycles > 0 else None
    return run_kdal(features, teacher, rows, cols, labelled, k=k, spacing=spacing, cycles=cycles,
                    oracle=oracle, config=config, query_candidates=candidates, answer_radius=oracle_radius)


def hide_deposits(deposit_cells: np.ndarray, share: float, seed: int) -> np.ndarray:
    """The deposits left as labels when ``share`` of them (rounded, at least one kept) is hidden at random."""
    if not 0.0 <= share < 1.0:
        raise InvalidInputError(f"the share of deposits hidden from the labels must be in [0, 1), got {share}")
    deposit_cells = np.asarray(deposit_cells, dtype=np.int64)
    n_hidden = min(int(round(share * len(deposit_cells))), max(len(deposit_cells) - 1, 0))
    hidden = np.random.default_rng(seed).choice(len(deposit_cells), n_hidden, replace=False)
    return np.delete(deposit_cells, hidden)
