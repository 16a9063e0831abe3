"""Long-tailed training by stages (seed 002): FEA -> CFL -> cRT, and the plain cross-entropy baseline.

1. FEA (feature-extractor adjustment): logit-adjusted cross-entropy
   ``CE(z + tau log pi, y)``, instance-uniform batches.
2. CFL (core feature learning): each batch = half instance-uniform + half from
   the inverse-probability sampler (rebuilt every ``resample_every`` epochs from
   an evaluation pass over all training photos, raw logits), logit-adjusted CE
   + centre loss (weight 3e-4, centres on their own SGD at lr 0.5 with the
   gradient scaled by 1/weight).
3. cRT (classifier re-training): feature extractor frozen (no gradients, eval
   mode so BatchNorm statistics stay), classifier re-initialised and trained with
   *plain* CE, every mineral weighing the same. The frozen features of the training
   photos are computed once (evaluation transform). By default the class-balanced
   objective is minimised to convergence (:func:`core.minerals.heads.fit_linear_head`);
   ``crt_solver="sgd"`` keeps the published fixed epochs of class-balanced SGD batches
   (lr 1e-3, cosine decay) - on a small collection a handful of steps, which left the
   classifier at chance (issue 12).

Made safe for small collections (issue 12): FEA, CFL and the baseline run at least
``min_stage_steps`` optimiser steps; with a pretrained backbone the run starts from a
converged plain classifier on the pretrained features ("start"), and fine-tuning
starts from it; each stage is kept only if the validation mAcc does not fall
(:class:`core.minerals.stages.StageGuard`), otherwise the previous stage's weights
are restored and the log says so. The long-tailed run must also never end worse on
validation than the plain model trained the same way (issue 12), so, guarded, it first trains
that plain model itself - the same stage, settings, seed and random draws as ``method="baseline"``,
hence the same weights - and FEA then starts again from where the plain stage started: the plain
model is the bar FEA, CFL and cRT must each clear, and the fallback when none does.

FEA and CFL share one one-cycle learning-rate schedule. Weight decay is applied
once, by the optimiser. After each stage a checkpoint (weights + optimiser +
schedule state) lets an interrupted run resume at the next stage.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.minerals import DEFAULT_BACKBONE, INFERENCE_BATCH
from core.minerals.datasets import PhotoCollection, PhotoDataset, collection_fingerprint
from core.minerals.heads import fit_linear_head
from core.minerals.losses import CenterLoss, log_class_prior, logit_adjusted_cross_entropy
from core.minerals.metrics import classwise_metrics, mean_class_accuracy, tail_classes
from core.minerals.models import PhotoClassifier
from core.minerals.samplers import (
    class_balanced_batches,
    core_feature_batches,
    inverse_probability_weights,
    uniform_batches,
)
from core.minerals.stages import StageGuard
from core.progress import Progress, SilentProgress


@dataclass
class LongTailConfig:
    """Settings of a long-tailed training run (defaults: the published ones, for real photo sets)."""

    method: str = "longtail"  # "longtail" (FEA -> CFL -> cRT) or "baseline" (plain CE, same length)
    arch: str = DEFAULT_BACKBONE
    weights: str | None = None  # ResNets: user-supplied ImageNet weights file; None = from scratch
    image_size: int = 224
    batch_size: int = 128
    fea_epochs: int = 60
    cfl_epochs: int = 40
    crt_epochs: int = 10
    lr: float | None = None  # peak one-cycle LR; None = 0.002 with weights, 0.05 from scratch
    warmup_epochs: int = 10
    momentum: float = 0.9
    weight_decay: float = 5e-4
    tau: float = 1.0
    centre_weight: float = 3e-4
    centre_lr: float = 0.5
    resample_every: int = 5
    crt_lr: float = 1e-3
    crt_per_class: int = 4
    # "converged": cRT's class-balanced CE minimised to convergence on the cached features (L-BFGS);
    # "sgd": the published fixed crt_epochs of SGD (kept to reproduce issue 12's failure).
    crt_solver: str = "converged"
    min_stage_steps: int = 200  # FEA/CFL/plain run at least this many optimiser steps (small collections)
    guard: bool = True  # keep a stage only if the validation mAcc does not fall
    seed: int = 0
    num_workers: int = 0

    def pretrained(self) -> bool:
        return self.arch == DEFAULT_BACKBONE or bool(self.weights)

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (0.002 if self.pretrained() else 0.05)

    def stages(self) -> list[str]:
        """Stages in order. Guarded, the long-tailed run first trains the plain model exactly as
        ``method="baseline"`` would ("ce"): FEA -> CFL -> cRT then start again from where it started,
        and each must beat the best stage so far - the plain model included - on validation."""
        if self.method == "baseline":
            return ["ce"]
        return ["ce", "fea", "cfl", "crt"] if self.guard else ["fea", "cfl", "crt"]


def _loader(dataset: PhotoDataset, batches, num_workers: int):
    return torch.utils.data.DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=num_workers)


def _eval_loader(dataset: PhotoDataset, batch_size: int, num_workers: int):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


@torch.no_grad()
def predict_logits(model: PhotoClassifier, dataset: PhotoDataset, batch_size: int, device,
                   num_workers: int = 0, with_features: bool = False):
    """Raw logits (and pooled features) of every photo of ``dataset``, model in eval mode."""
    was_training = model.training
    model.eval()
    logits, feats = [], []
    for images, _, _ in _eval_loader(dataset, batch_size, num_workers):
        z, f = model(images.to(device), with_features=True)
        logits.append(z.cpu())
        if with_features:
            feats.append(f.cpu())
    model.train(was_training)
    return (torch.cat(logits), torch.cat(feats)) if with_features else torch.cat(logits)


class LongTailTrainer:
    """Trains a :class:`PhotoClassifier` on a collection's training photos, stage by stage."""

    def __init__(self, config: LongTailConfig, device, checkpoint_dir: str | Path | None = None,
                 progress: Progress | None = None) -> None:
        self.config = config
        self.device = device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress or SilentProgress()
        self.history_: dict[str, list] = {}

    # -- bookkeeping ----------------------------------------------------------------------------------
    def _fingerprint(self, collection: PhotoCollection) -> str:
        settings = {k: v for k, v in asdict(self.config).items() if k != "num_workers"}
        text = json.dumps(settings, sort_keys=True) + collection_fingerprint(collection)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _checkpoint(self, stage: str) -> Path | None:
        return self.checkpoint_dir / f"stage_{stage}.pt" if self.checkpoint_dir else None

    def _save_stage(self, stage: str, fingerprint: str, state: dict) -> None:
        path = self._checkpoint(stage)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({"fingerprint": fingerprint, "history": self.history_}))

    def _resume_point(self, stages: list[str], fingerprint: str) -> tuple[int, dict | None]:
        """Index of the first stage still to run, and the checkpoint of the stage before it."""
        done, state = 0, None
        for i, stage in enumerate(stages):
            path = self._checkpoint(stage)
            if path is None or not path.is_file() or not path.with_suffix(".json").is_file():
                break
            info = json.loads(path.with_suffix(".json").read_text())
            if info.get("fingerprint") != fingerprint:
                self.progress.warn(f"checkpoint {path.name} is from other settings or photos; starting again")
                break
            done = i + 1
            self.history_ = info.get("history", {})
        if done:
            state = torch.load(self._checkpoint(stages[done - 1]), map_location="cpu", weights_only=True)
            self.progress.log(f"resuming after stage {stages[done - 1].upper()} from {self.checkpoint_dir}")
        return done, state

    # -- training -------------------------------------------------------------------------------------
    def stage_epochs(self, n_train: int) -> dict[str, int]:
        """Epochs of each stage: as configured, but at least ``min_stage_steps`` optimiser steps each
        (a small collection makes few steps per epoch: a fixed few epochs would stop it half-trained)."""
        cfg = self.config
        per_epoch = math.ceil(n_train / cfg.batch_size)
        per_epoch_cfl = math.ceil(n_train / max(1, cfg.batch_size // 2))

        def at_least(epochs: int, steps_per_epoch: int) -> int:
            return max(epochs, math.ceil(cfg.min_stage_steps / max(1, steps_per_epoch))) if epochs else 0

        fea, cfl = at_least(cfg.fea_epochs, per_epoch), at_least(cfg.cfl_epochs, per_epoch_cfl)
        return {"ce": at_least(cfg.fea_epochs + cfg.cfl_epochs, per_epoch), "fea": fea, "cfl": cfl,
                "crt": cfg.crt_epochs}

    def fit(self, collection: PhotoCollection) -> PhotoClassifier:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        train_idx, val_idx = collection.indices("train"), collection.indices("val")
        labels = collection.labels[train_idx]
        counts = collection.class_counts("train")
        self.class_counts_ = counts
        self.tail_classes_ = tail_classes(counts)
        n_classes = len(collection.classes)
        model = PhotoClassifier(cfg.arch, n_classes, cfg.weights).to(self.device)
        self.backbone_origin_ = model.backbone.origin
        norm = {"mean": model.backbone.mean, "std": model.backbone.std}
        train_set = PhotoDataset(collection, train_idx, cfg.image_size, train=True, **norm)
        scoring_set = PhotoDataset(collection, train_idx, cfg.image_size, train=False, **norm)
        val_set = PhotoDataset(collection, val_idx, cfg.image_size, train=False, **norm)
        log_prior = log_class_prior(counts).to(self.device)
        centre = CenterLoss(n_classes, model.n_features, seed=cfg.seed).to(self.device)

        n = len(train_idx)
        epochs = self.stage_epochs(n)
        fea_steps = epochs["fea"] * math.ceil(n / cfg.batch_size)
        cfl_steps = epochs["cfl"] * math.ceil(n / max(1, cfg.batch_size // 2))
        ce_steps = epochs["ce"] * math.ceil(n / cfg.batch_size)

        def optimisation(kind: str):
            """SGD + one-cycle schedule of the plain stage ("ce") or of FEA + CFL together ("longtail")."""
            main_epochs = epochs["ce"] if kind == "ce" else epochs["fea"] + epochs["cfl"]
            optimiser = torch.optim.SGD(model.parameters(), lr=cfg.peak_lr(), momentum=cfg.momentum,
                                        weight_decay=cfg.weight_decay)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=cfg.peak_lr(), total_steps=max(1, ce_steps if kind == "ce" else fea_steps + cfl_steps),
                pct_start=min(0.9, max(0.01, cfg.warmup_epochs / max(1, main_epochs))),
            )
            return optimiser, schedule

        centre_optimiser = torch.optim.SGD(centre.parameters(), lr=cfg.centre_lr)
        stages = cfg.stages()
        fingerprint = self._fingerprint(collection)
        start, state = self._resume_point(stages, fingerprint)
        # The optimiser of the next stage to run: a checkpoint's optimiser state is of the same kind
        # unless the plain stage was the last one done (FEA then starts a fresh schedule anyway).
        kind = "ce" if stages[start:start + 1] == ["ce"] else "longtail"
        optimiser, schedule = optimisation(kind)
        guard = StageGuard(self.progress, has_validation=len(val_idx) > 0) if cfg.guard else None

        def val_macc() -> float | None:
            if not len(val_idx):
                return None
            logits = predict_logits(model, val_set, cfg.batch_size, self.device, cfg.num_workers)
            return mean_class_accuracy(collection.labels[val_idx], logits.argmax(1).numpy(), n_classes)

        chain_start = None  # where FEA starts when the plain stage ran first: where the plain stage started
        if state is not None:
            model.load_state_dict(state["model"])
            chain_start = state.get("chain_start")
            if stages[start - 1] != "ce":
                optimiser.load_state_dict(state["optimiser"])
                schedule.load_state_dict(state["schedule"])
            centre.load_state_dict(state["centre"])
            centre_optimiser.load_state_dict(state["centre_optimiser"])
            if guard is not None:
                guard.best, guard.kept, guard.decisions = state["guard"]["best"], state["guard"]["kept"], list(
                    state["guard"]["decisions"])
        elif cfg.pretrained() and guard is not None and len(val_idx):
            # Stage 0: the pretrained features with a converged plain classifier (the quick default's
            # baseline). Fine-tuning starts from it, and must beat it on validation to be kept.
            self.progress.stage("start", "Classifier on the pretrained features", weight=0.0)
            _, features = predict_logits(model, scoring_set, cfg.batch_size, self.device, cfg.num_workers,
                                         with_features=True)
            fit = fit_linear_head(model.classifier, features.to(self.device), torch.as_tensor(labels), "plain",
                                  weight_decay=cfg.weight_decay)
            self.history_["start"] = [fit["loss"]]
            guard.judge("start", val_macc())
        kept_state = _copy_state(model)
        if state is None and "ce" in stages and len(stages) > 1:
            chain_start = _copy_state(model)

        all_epochs = max(1, sum(epochs[s] for s in stages))
        names = {"ce": "Plain cross-entropy (baseline)" if len(stages) == 1 else
                 "Plain cross-entropy: the model the long-tailed stages must beat", "fea": "FEA: logit-adjusted feature learning",
                 "cfl": "CFL: inverse-probability sampling + centre loss", "crt": "cRT: classifier re-training"}
        for stage in stages[start:]:
            rng = np.random.default_rng([cfg.seed, stages.index(stage)])
            self.progress.stage(stage, names[stage], weight=epochs[stage] / all_epochs)
            if stage == "fea" and chain_start is not None:
                model.load_state_dict(chain_start)  # trained the same way as the plain model, from the same start
            if stage == "fea" and kind == "ce":
                kind = "longtail"
                optimiser, schedule = optimisation(kind)
            if stage in ("ce", "fea"):
                adjust = stage == "fea"
                for epoch in range(epochs[stage]):
                    batches = uniform_batches(n, cfg.batch_size, rng)
                    loss = self._epoch(model, train_set, batches, optimiser, schedule, log_prior if adjust else None)
                    self._log(stage, epoch, epochs[stage], loss)
            elif stage == "cfl":
                weights = None
                for epoch in range(epochs["cfl"]):
                    if epoch % max(1, cfg.resample_every) == 0:
                        logits = predict_logits(model, scoring_set, cfg.batch_size, self.device, cfg.num_workers)
                        p_true = logits.softmax(1)[torch.arange(n), torch.as_tensor(labels)].numpy()
                        weights = inverse_probability_weights(p_true, labels, n_classes)
                    batches = core_feature_batches(weights, cfg.batch_size, rng)
                    loss = self._epoch(model, train_set, batches, optimiser, schedule, log_prior,
                                       centre=centre, centre_optimiser=centre_optimiser)
                    self._log(stage, epoch, epochs["cfl"], loss)
            else:
                self.retrain_classifier(model, scoring_set, labels, rng)
            if guard is not None and not guard.judge(stage, val_macc()):
                model.load_state_dict(kept_state)
            kept_state = _copy_state(model)
            self._save_stage(stage, fingerprint, {
                "model": model.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                "centre": centre.state_dict(), "centre_optimiser": centre_optimiser.state_dict(),
                "guard": {"best": guard.best, "kept": guard.kept, "decisions": guard.decisions} if guard else {},
                **({"chain_start": chain_start} if chain_start is not None and stage == "ce" else {}),
            })
        self.stages_ = guard.decisions if guard else []
        self.kept_stage_ = guard.kept if guard else stages[-1]
        self.val_mAcc_ = guard.best if guard else None
        model.eval()
        return model

    def _epoch(self, model, dataset, batches, optimiser, schedule, log_prior, centre=None, centre_optimiser=None):
        cfg = self.config
        model.train()
        total, count = 0.0, 0
        for images, targets, _ in _loader(dataset, batches, cfg.num_workers):
            images, targets = images.to(self.device), targets.to(self.device)
            logits, features = model(images, with_features=True)
            if log_prior is not None:
                loss = logit_adjusted_cross_entropy(logits, targets, log_prior, cfg.tau)
            else:
                loss = F.cross_entropy(logits, targets)
            if centre is not None:
                loss = loss + cfg.centre_weight * centre(features, targets)
                centre_optimiser.zero_grad(set_to_none=True)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if centre is not None:
                centre_step(centre, centre_optimiser, cfg.centre_weight)
            schedule.step()
            total += float(loss.detach()) * len(targets)
            count += len(targets)
        return total / max(1, count)

    def retrain_classifier(self, model: PhotoClassifier, scoring_set: PhotoDataset, labels: np.ndarray,
                           rng: np.random.Generator) -> None:
        """cRT: frozen, eval-mode feature extractor; fresh classifier; class-balanced batches; plain CE."""
        cfg = self.config
        _, features = predict_logits(model, scoring_set, cfg.batch_size, self.device, cfg.num_workers,
                                     with_features=True)
        model.backbone.requires_grad_(False)
        model.backbone.eval()
        features = features.to(self.device)
        targets = torch.as_tensor(labels, device=self.device)
        torch.manual_seed(cfg.seed + 101)
        model.classifier.reset_parameters()
        if cfg.crt_solver == "converged":
            fit = fit_linear_head(model.classifier, features, targets, "balanced", weight_decay=cfg.weight_decay)
            self._log("crt", 0, 1, fit["loss"])
            return
        optimiser = torch.optim.SGD(model.classifier.parameters(), lr=cfg.crt_lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        per_epoch = max(1, math.ceil(len(labels) / cfg.batch_size))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.crt_epochs * per_epoch))
        model.classifier.train()
        for epoch in range(cfg.crt_epochs):
            total = 0.0
            for batch in class_balanced_batches(labels, cfg.batch_size, rng, cfg.crt_per_class, per_epoch):
                index = torch.as_tensor(batch, device=self.device)
                loss = F.cross_entropy(model.classifier(features[index]), targets[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach())
            self._log("crt", epoch, cfg.crt_epochs, total / per_epoch)

    def _log(self, stage: str, epoch: int, epochs: int, loss: float) -> None:
        self.history_.setdefault(stage, []).append(round(float(loss), 5))
        self.progress.update((epoch + 1) / max(1, epochs), f"{stage.upper()} epoch {epoch + 1}/{epochs} loss {loss:.4f}")


def _copy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def centre_step(centre: CenterLoss, centre_optimiser: torch.optim.Optimizer, weight: float) -> None:
    """Move the centres by the gradient of the *unweighted* centre loss (their grad holds weight x that)."""
    centre.centres.grad.mul_(1.0 / weight)
    centre_optimiser.step()


def evaluate_classifier(model: PhotoClassifier, collection: PhotoCollection, split: str, image_size: int,
                        tail: list[int], device, batch_size: int = INFERENCE_BATCH, num_workers: int = 0) -> dict:
    """Class-wise metrics of ``model`` on one split of ``collection`` (raw logits, centre crop)."""
    index = collection.indices(split)
    dataset = PhotoDataset(collection, index, image_size, train=False, mean=model.backbone.mean,
                           std=model.backbone.std)
    logits = predict_logits(model, dataset, batch_size, device, num_workers)
    predicted = logits.argmax(1).numpy()
    return classwise_metrics(collection.labels[index], predicted, len(collection.classes), tail)
