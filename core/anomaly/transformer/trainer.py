"""Training by EM-derived self-distillation over generations, and batched inference.

What is learned: each sample's *hidden* elements, predicted from its other
(visible) elements and its regional context (:mod:`.dataset`). Every step
hides the commodity suite (when there is one) and a random share of the
other elements of each query; the loss counts the hidden elements only.
Scoring hides fixed groups of elements in turn (:class:`ElementMasking`), so
every element is predicted once without being seen.

Generation 0 (the teacher) learns this prediction with the loss alone. Generation g >= 1 (a
student) starts from the previous generation's best weights and minimises

    (1 - alpha_g) * MSE(student, sample) + alpha_g * MSE(student, teacher)

with the previous generation frozen (eval mode) as teacher on the same masked
batch. Read as EM: the teacher's reconstruction is the E-step estimate of the
background, the student's fit to a blend of data and estimate the M-step;
the blend pulls students away from fitting anomalous samples.

With ``enriched_threshold`` (the default when a commodity is given), the
E-step also says which values are not background: an element of a sample
more than that many robust standard deviations ABOVE the teacher's
background (one-sided: anomalies are enrichments; 2 sd is the classical
mean + 2 sd anomaly threshold of Hawkes & Webb 1962) is left out of the data
term, so the student learns the teacher's background there instead of the
enrichment. Without it, every student fits the data again, halos included,
and explains more of them away (sed1: the commodity readout fell from 0.852 in
generation 0 to 0.813 in generation 3).

Everything random (initial weights, validation split, batch order, masks,
dropout) derives from one seed; every generation gets its own stream, so
generations see different masks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from core.anomaly.transformer.dataset import NeighbourContextDataset
from core.progress import Progress, SilentProgress


@dataclass
class TrainingSettings:
    generations: int = 2  # teacher + one student: see TransformerDetector
    epochs: int = 100  # at most, per generation; early stopping usually ends sooner
    patience: int = 8  # epochs without a better validation loss before stopping
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    alpha_step: float = 0.1  # published: alpha = 0.1, 0.2, 0.3 for students 1, 2, 3
    alpha_max: float = 0.9
    max_hidden_fraction: float = 0.5  # each step hides a random share in [0, this] of the context
    max_hidden_elements: float = 0.5  # ... and a random share in [0, this] of the query's own elements
    validation_fraction: float = 0.1
    enriched_threshold: float | None = None  # students: data above teacher + this many robust sd is not fitted
    seed: int = 0


@dataclass
class GenerationRecord:
    """What one generation's training did (goes into run.json)."""

    generation: int
    alpha: float
    member: int = 0  # which model of an ensemble (0 for a single model)
    mask_seed: int = 0  # this generation's own mask and batch-order stream
    train_loss: list[float] = field(default_factory=list)  # per epoch, the training objective
    validation_loss: list[float] = field(default_factory=list)  # per epoch, unmasked reconstruction MSE
    best_epoch: int = 0
    best_validation_loss: float = float("inf")
    epochs_run: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time (all threads) of this generation's training and validation

    def as_dict(self) -> dict:
        return asdict(self)


def alpha_for_generation(generation: int, step: float = 0.1, cap: float = 0.9) -> float:
    """Weight of the teacher term: 0 for the teacher, then +``step`` per generation up to ``cap``."""
    if generation < 0:
        raise ValueError("generation must be >= 0")
    return float(min(step * generation, cap))


def distillation_loss(
    prediction: torch.Tensor, target: torch.Tensor, teacher_prediction: torch.Tensor | None, alpha: float,
    counted: torch.Tensor | None = None, background: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(1 - alpha) * MSE(prediction, target) + alpha * MSE(prediction, teacher_prediction)``.

    ``counted`` (bool, shaped like ``prediction``) restricts both means to
    those entries: the hidden elements, the only ones whose prediction is
    not a copy. ``background`` (bool, same shape) further restricts the data
    term to the entries the teacher holds to be background (not enriched).
    """
    def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.mean((a - b) ** 2) if counted is None else _masked_mse(a, b, counted)

    if teacher_prediction is None or alpha == 0.0:
        return mse(prediction, target)
    data_term = mse(prediction, target) if background is None else _masked_mse(prediction, target, (
        background if counted is None else counted & background))
    return (1.0 - alpha) * data_term + alpha * mse(prediction, teacher_prediction)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    weight = counted.to(a.dtype)
    return torch.sum((a - b) ** 2 * weight) / torch.clamp(weight.sum(), min=1.0)


def enriched_entries(values: np.ndarray, background: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """(n, p) bool: each value more than ``threshold`` robust sd above its background.

    The spread of each element's residual (IQR / 1.349, its standard deviation where that is 0) is taken over
    ``rows`` (the training samples), so the flags are the teacher's own judgement of what is not background.
    """
    from core.anomaly.readouts import robust_centre_scale

    residual = np.asarray(values, dtype=np.float64) - background
    center, scale = robust_centre_scale(residual, rows)
    return (residual - center) / scale > threshold


@dataclass
class ElementMasking:
    """Which of a query's own elements are hidden: always (the commodity suite) and per scoring pass.

    ``always`` (p,) bool is hidden in every step and every pass: the suite
    must be predicted from the rest. ``groups`` split the other elements
    into a few interleaved groups; scoring runs one pass per group (plus one
    for the suite), each element predicted in the pass that hides it.
    """

    always: np.ndarray
    groups: list[np.ndarray]

    @classmethod
    def for_elements(cls, n_elements: int, suite: np.ndarray | None = None, passes: int = 4) -> ElementMasking:
        always = np.zeros(n_elements, dtype=bool) if suite is None else np.asarray(suite, dtype=bool)
        others = np.flatnonzero(~always)
        n_groups = min(passes, len(others))
        groups = []
        for g in range(n_groups):
            group = np.zeros(n_elements, dtype=bool)
            group[others[g::n_groups]] = True
            groups.append(group)
        return cls(always=always, groups=groups)

    def passes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(hidden elements, elements read from this pass) per scoring pass."""
        out = [(self.always, self.always)] if self.always.any() else []
        return out + [(self.always | group, group) for group in self.groups]


def draw_hidden_elements(rows: int, masking: ElementMasking, max_fraction: float,
                         generator: torch.Generator) -> torch.Tensor:
    """A fresh (rows, p) mask of the query's own elements, True = hidden this step.

    The suite is always hidden; each query hides a random share in
    [0, ``max_fraction``] of the other elements too, and at least one
    element, so every query has something to predict.
    """
    p = len(masking.always)
    share = torch.rand(rows, 1, generator=generator) * max_fraction
    hide = (torch.rand(rows, p, generator=generator) < share) | torch.as_tensor(masking.always)
    pick = torch.randint(0, p, (rows,), generator=generator)
    nothing = ~hide.any(dim=1)
    hide[nothing, pick[nothing]] = True
    return hide


def seed_streams(seed: int, generations: int) -> tuple[int, int, list[tuple[int, int]]]:
    """From one seed: (initial weights seed, validation split seed, per generation (dropout seed, mask seed))."""
    streams = np.random.SeedSequence(seed).spawn(2 + generations)
    per_generation = [tuple(int(v) for v in stream.generate_state(2)) for stream in streams[2:]]
    return int(streams[0].generate_state(1)[0]), int(streams[1].generate_state(1)[0]), per_generation


def draw_hidden(missing: torch.Tensor, max_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A fresh key-padding mask: True = token hidden this step.

    Each query hides a random share in [0, ``max_fraction``] of its context
    (drawn per query), on top of the slots that hold no neighbour. Draws come
    from a CPU generator so a seed gives the same masks on CPU and GPU. Slot 0
    (the nearest neighbour, always present) is revealed when everything else
    is hidden, so attention always has something to read.
    """
    rows, k = missing.shape
    share = torch.rand(rows, 1, generator=generator) * max_fraction
    hide = torch.rand(rows, k, generator=generator) < share
    hidden = hide.to(missing.device) | missing
    hidden[:, 0] &= ~hidden.all(dim=1)
    return hidden


@torch.inference_mode()
def predict_background(
    model: nn.Module, dataset: NeighbourContextDataset, masking: ElementMasking, rows: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Background (n, p), each element predicted while hidden, and attention over the context (n, K).

    The whole context is visible; one pass per :meth:`ElementMasking.passes`,
    the attention averaged over the passes. ``rows`` (default all) limits
    the queries. A batch's context is encoded once and read by every pass:
    the encoder, the costly part, does not see which own elements are hidden.
    """
    model.eval()
    rows_all = torch.arange(len(dataset)) if rows is None else torch.as_tensor(rows)
    background = torch.zeros((len(rows_all), dataset.n_elements), dtype=torch.float32)
    attention_sum = torch.zeros((len(rows_all), dataset.k), dtype=torch.float32)
    passes = [(torch.as_tensor(hidden, device=dataset.device), torch.as_tensor(read))
              for hidden, read in masking.passes()]
    for start in range(0, len(rows_all), batch_size):
        batch_rows = rows_all[start : start + batch_size].to(dataset.device)
        stop = start + len(batch_rows)
        own, context, offsets, missing = dataset.batch(batch_rows)
        memory = model.encode_context(context, offsets, missing)
        for hidden_elements, read in passes:
            prediction, attention = model.read_context(memory, offsets, missing, own,
                                                       hidden_elements.expand(len(batch_rows), -1))
            background[start:stop, read] = prediction.float().cpu()[:, read]
            attention_sum[start:stop] += attention.float().cpu()
    return background.numpy(), (attention_sum / len(passes)).numpy()


class DistillationTrainer:
    """Trains a teacher and students; keeps each generation's best weights.

    ``build_model`` makes a fresh, untrained model (the same architecture every
    time). After ``fit``: ``generation_states_`` (one CPU state_dict per
    generation, best validation epoch) and ``history_`` (GenerationRecords).
    """

    def __init__(
        self,
        build_model: Callable[[], nn.Module],
        settings: TrainingSettings,
        device: torch.device,
        masking: ElementMasking | None = None,
        progress: Progress | None = None,
        progress_share: float = 0.0,
        member: int = 0,
        members: int = 1,
    ) -> None:
        self.build_model = build_model
        self.masking = masking
        self.member = member
        self.members = members
        self.settings = settings
        self.device = device
        self.progress = progress or SilentProgress()
        self.progress_share = progress_share

    def fit(
        self, dataset: NeighbourContextDataset, groups: np.ndarray | None = None, skip: np.ndarray | None = None
    ) -> DistillationTrainer:
        """Train every generation.

        ``groups`` (one label per sample, e.g. its location) keeps each group
        wholly on one side of the validation split. ``skip`` (bool per sample)
        marks rows that are neither trained nor validated on - repeats of a
        sample compiled twice, which would otherwise count double - though
        they still serve as context and are still scored.
        """
        s = self.settings
        if s.generations < 1:
            raise ValueError("at least one generation (the teacher) is needed")
        if self.masking is None:
            self.masking = ElementMasking.for_elements(dataset.n_elements)
        init_seed, split_seed, generation_seeds = seed_streams(s.seed, s.generations)
        torch.manual_seed(init_seed)
        model = self.build_model().to(self.device)
        train_rows, validation_rows = self._split(len(dataset), np.random.default_rng(split_seed), groups)
        if skip is not None:
            skip = torch.as_tensor(np.asarray(skip, dtype=bool))
            train_rows, validation_rows = train_rows[~skip[train_rows]], validation_rows[~skip[validation_rows]]
        self.validation_rows_ = validation_rows

        self.generation_states_: list[dict[str, torch.Tensor]] = []
        self.history_: list[GenerationRecord] = []
        teacher = None
        self.background_ = None
        for generation in range(s.generations):
            if generation > 0:
                teacher = self.build_model().to(self.device)
                teacher.load_state_dict(self.generation_states_[-1])
                teacher.eval().requires_grad_(False)
                model.load_state_dict(self.generation_states_[-1])
                self.background_ = self._teacher_background(teacher, dataset, train_rows)
            record = self._train_generation(
                generation, model, teacher, dataset, train_rows, validation_rows, generation_seeds[generation]
            )
            self.history_.append(record)
        return self

    def _teacher_background(self, teacher, dataset, train_rows) -> torch.Tensor | None:
        """(n, p) bool on the dataset's device: True where the teacher holds the value to be background (E-step).

        None when no threshold is set: every value is fitted.
        """
        if self.settings.enriched_threshold is None:
            return None
        background, _ = predict_background(teacher, dataset, self.masking)
        enriched = enriched_entries(dataset.values.cpu().numpy(), background, train_rows.numpy(),
                                    self.settings.enriched_threshold)
        return torch.as_tensor(~enriched, device=dataset.device)

    # -- one generation -------------------------------------------------------
    def _train_generation(self, generation, model, teacher, dataset, train_rows, validation_rows, seeds):
        s = self.settings
        alpha = alpha_for_generation(generation, s.alpha_step, s.alpha_max)
        # Plain words for the log (run.json's history keeps alpha): each round learns from the one before.
        role = "first round" if generation == 0 else f"round {generation + 1}, learning from round {generation}"
        label = self._name(generation)
        if self.progress_share > 0:
            self.progress.stage(label, f"Training {label} ({role})", weight=self.progress_share / s.generations)
        else:
            self.progress.log(f"Training {label} ({role})")
        dropout_seed, mask_seed = seeds
        torch.manual_seed(dropout_seed)
        generator = torch.Generator().manual_seed(mask_seed)
        # The fused update is one kernel for all ~50 small tensors instead of a dozen operations per tensor.
        fused = torch.device(self.device).type in ("cpu", "cuda")
        optimiser = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay,
                                      fused=fused or None)
        record = GenerationRecord(generation=generation, alpha=alpha, member=self.member, mask_seed=mask_seed)
        best_state = copy.deepcopy(_cpu_state(model))
        stale = 0
        started, started_cpu = time.perf_counter(), time.process_time()
        for epoch in range(s.epochs):
            train_loss = self._train_epoch(model, teacher, alpha, optimiser, dataset, train_rows, generator)
            validation_loss = self._validation_loss(model, dataset, validation_rows)
            record.train_loss.append(train_loss)
            record.validation_loss.append(validation_loss)
            record.epochs_run = epoch + 1
            if validation_loss < record.best_validation_loss:
                record.best_validation_loss = validation_loss
                record.best_epoch = epoch + 1
                best_state = copy.deepcopy(_cpu_state(model))
                stale = 0
            else:
                stale += 1
            self._report(
                generation, (epoch + 1) / s.epochs,
                f"{label}, epoch {epoch + 1}: "
                f"train {train_loss:.4f}, validation {validation_loss:.4f}",
            )
            if stale >= s.patience:
                break
        self._report(
            generation, 1.0,
            f"{label} done: best validation "
            f"{record.best_validation_loss:.4f} at epoch {record.best_epoch}",
        )
        record.seconds = round(time.perf_counter() - started, 3)
        record.cpu_seconds = round(time.process_time() - started_cpu, 3)
        model.load_state_dict(best_state)
        self.generation_states_.append(best_state)
        return record

    def _name(self, generation: int) -> str:
        name = f"generation {generation + 1}/{self.settings.generations}"
        return f"model {self.member + 1}/{self.members}, {name}" if self.members > 1 else name

    def _report(self, generation: int, fraction: float, message: str) -> None:
        if self.progress_share <= 0:  # within the caller's stage: all generations share it
            done = self.member * self.settings.generations + generation + fraction
            fraction = done / (self.members * self.settings.generations)
        self.progress.update(fraction, message)

    def _train_epoch(self, model, teacher, alpha, optimiser, dataset, train_rows, generator) -> float:
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator)].to(dataset.device)
        total, count = 0.0, 0
        for start in range(0, len(order), self.settings.batch_size):
            rows = order[start : start + self.settings.batch_size]
            target, context, offsets, missing = dataset.batch(rows)
            hidden = draw_hidden(missing, self.settings.max_hidden_fraction, generator)
            own_hidden = draw_hidden_elements(len(rows), self.masking, self.settings.max_hidden_elements,
                                              generator).to(dataset.device)
            prediction, _ = model(context, offsets, hidden, target, own_hidden, need_attention=False)
            teacher_prediction = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_prediction, _ = teacher(context, offsets, hidden, target, own_hidden,
                                                    need_attention=False)
            background = None if self.background_ is None or teacher is None else self.background_[rows]
            loss = distillation_loss(prediction, target, teacher_prediction, alpha, counted=own_hidden,
                                     background=background)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        return total / max(count, 1)

    def _validation_loss(self, model, dataset, validation_rows) -> float:
        """MSE of the held-out queries' elements, each predicted while hidden, whole context visible
        (exactly the scoring passes; the early-stopping criterion)."""
        background, _ = predict_background(model, dataset, self.masking, rows=validation_rows)
        target = dataset.values[validation_rows.to(dataset.device)].cpu().numpy()
        return float(np.mean((background - target) ** 2)) if len(background) else 0.0

    def _split(
        self, n: int, rng: np.random.Generator, groups: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hold out queries for validation; tiny surveys validate on the training queries.

        Whole groups are held out: a sample compiled twice at one spot (most of
        the co-located rows in sed1) would otherwise sit in training with its
        twin in validation, and early stopping would reward memorising it.
        """
        n_validation = int(round(self.settings.validation_fraction * n))
        if n_validation < 1 or n - n_validation < 2:
            everything = torch.arange(n)
            return everything, everything
        if groups is None:
            order = rng.permutation(n)
            return torch.as_tensor(order[n_validation:]), torch.as_tensor(order[:n_validation])
        _, group_of, group_sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
        if group_of.shape != (n,):
            raise ValueError(f"groups must hold one label per sample ({n}), got {group_of.shape}")
        order = rng.permutation(len(group_sizes))
        n_held = int(np.searchsorted(np.cumsum(group_sizes[order]), n_validation)) + 1
        is_validation = np.isin(group_of, order[:n_held])
        if is_validation.all() or (~is_validation).sum() < 2:
            everything = torch.arange(n)
            return everything, everything
        rows = np.arange(n)
        return torch.as_tensor(rows[~is_validation]), torch.as_tensor(rows[is_validation])


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
