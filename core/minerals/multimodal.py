"""Training and evaluation of the robust multimodal identifier (seed 003, made to read its properties).

The model (:class:`core.minerals.models.MultimodalIdentifier`) multiplies two experts:

1. the photo expert - the frozen backbone with SSF layers and a linear head - trained on the photos
   alone: first the head to convergence on the frozen features (SSF = identity,
   :func:`core.minerals.heads.fit_linear_head`), then SSF + head together for ``epochs``; the epoch
   with the best validation mAcc is kept, the converged head counting as epoch 0;
2. the property expert - how likely each recorded hardness bucket, luster and streak is for each
   mineral - counted on the training specimens, with the error model "a recorded value is wrong
   with probability ``error_rate``" (seed 003 trains with 30 % wrong properties; here that share
   is the model's assumption instead, so no training pass has to teach it).

By construction, a specimen without properties gets the photo expert's answer, and a wrong property
can tilt but not overrule a confident photo. Because the published per-mineral property codes give
the label away when clean, the table reports accuracy with wrong properties too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.minerals import DEFAULT_BACKBONE, INFERENCE_BATCH
from core.minerals.datasets import PhotoCollection, PhotoDataset
from core.minerals.heads import fit_linear_head, out_of_fold_temperature
from core.minerals.losses import log_class_prior
from core.minerals.metrics import mean_class_accuracy
from core.minerals.models import N_PROPERTIES, MultimodalIdentifier, falsify_properties
from core.minerals.properties import PROPERTY_NAMES, published_vector
from core.minerals.quick import training_views
from core.minerals.samplers import class_balanced_batches, uniform_batches
from core.progress import Progress, SilentProgress

ERROR_RATES = (0.0, 0.3, 0.6)


@dataclass
class MultimodalConfig:
    arch: str = DEFAULT_BACKBONE
    image_size: int = 224
    batch_size: int = 64
    epochs: int = 30
    views: int = 4  # cached looks per training photo for the starting classifier (as the quick default)
    lr: float = 1e-4  # AdamW on SSF + a head that starts converged: small steps
    weight_decay: float = 1e-4
    # "balanced": class-balanced batches (4 photos per mineral) and plain CE, so the rare minerals are
    # seen as often as the common ones; "uniform": every photo once per epoch with logit-adjusted CE.
    # Either way the photo expert answers as if every mineral were equally common.
    sampling: str = "balanced"
    error_rate: float = 0.3  # share of recorded properties the property expert assumes wrong
    seed: int = 0
    num_workers: int = 0


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def parameter_overhead(model: MultimodalIdentifier) -> dict:
    """Trainable parameters added to the frozen backbone, absolute and in % of the backbone."""
    backbone = sum(p.numel() for p in model.image_branch.backbone.parameters())
    added = sum(p.numel() for p in trainable_parameters(model))
    ssf = sum(p.numel() for p in model.image_branch.ssf.parameters())
    tables = model.property_evidence.log_likelihood.numel()
    return {"backbone_parameters": backbone, "added_parameters": added, "ssf_parameters": ssf,
            "property_table_entries": tables, "overhead_percent": round(100.0 * added / backbone, 2)}


def true_properties(collection: PhotoCollection, index: np.ndarray) -> torch.Tensor:
    """Each photo's mineral's published code (the truth wrong values must differ from); -1 where unknown."""
    codes = {c: published_vector(name) for c, name in enumerate(collection.classes)}
    return torch.as_tensor(np.stack([codes[int(c)] for c in collection.labels[index]]) if len(index)
                           else np.zeros((0, N_PROPERTIES), np.float32))


def _properties(collection: PhotoCollection, index: np.ndarray) -> torch.Tensor:
    if collection.properties is None:
        return torch.full((len(index), N_PROPERTIES), -1.0)
    return torch.as_tensor(collection.properties[index], dtype=torch.float32)


class MultimodalTrainer:
    def __init__(self, config: MultimodalConfig, device, progress: Progress | None = None) -> None:
        self.config = config
        self.device = device
        self.progress = progress or SilentProgress()
        self.history_: dict[str, list] = {"loss": []}

    def fit(self, collection: PhotoCollection, backbone: torch.nn.Module) -> MultimodalIdentifier:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        n_classes = len(collection.classes)
        model = MultimodalIdentifier(backbone, n_classes).to(self.device)
        train_idx = collection.indices("train")
        norm = {"mean": backbone.mean, "std": backbone.std}
        dataset = PhotoDataset(collection, train_idx, cfg.image_size, train=True, **norm)
        labels_train = collection.labels[train_idx]
        rng = np.random.default_rng([cfg.seed, 3])
        per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
        log_prior = log_class_prior(collection.class_counts("train")).to(self.device)
        uniform = cfg.sampling == "uniform"

        self.progress.stage("photo-start", "Photo expert: classifier on the frozen features", weight=0.1)
        features = training_views(model.image_branch, collection, train_idx, cfg.image_size, cfg.views,
                                  INFERENCE_BATCH, self.device, cfg.seed, cfg.num_workers).to(self.device)
        views = max(1, cfg.views)
        labels = torch.as_tensor(np.tile(labels_train, views), device=self.device)
        objective = "adjusted" if uniform else "balanced"
        fit = fit_linear_head(model.image_head, features, labels, objective, log_prior)
        photos = torch.arange(len(train_idx), device=self.device).repeat(views)
        temperature = out_of_fold_temperature(features, labels, photos, objective, log_prior, seed=cfg.seed)
        model.photo_temperature.fill_(temperature)
        self.history_["start"] = {**fit, "photo_temperature": round(temperature, 4)}
        self.progress.log(f"photo expert: confidence temperature {temperature:.2f} (out-of-fold)")
        del features

        def epoch_batches():
            if uniform:
                return uniform_batches(len(train_idx), cfg.batch_size, rng)
            return class_balanced_batches(labels_train, cfg.batch_size, rng, 4, per_epoch)

        optimiser = torch.optim.AdamW(trainable_parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.epochs * per_epoch))
        self.progress.stage("photo", "Photo expert: SSF layers + classifier", weight=0.9)
        val = self._val_photos(model, collection)
        best = None

        def judge(epoch: int) -> None:
            nonlocal best
            if val is None:
                return
            macc = self._val_macc(model, val)
            self.history_.setdefault("val_mAcc", []).append(round(macc, 4))
            if best is None or macc >= best[0]:  # an epoch that lowers validation mAcc is not kept
                best = (macc, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})

        judge(0)
        for epoch in range(cfg.epochs):
            model.train()
            total, count = 0.0, 0
            batches = [b.tolist() for b in epoch_batches()]
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers)
            for images, labels, _ in loader:
                images, labels = images.to(self.device), labels.to(self.device)
                logits = model.image_head(model.image_branch(images))
                loss = F.cross_entropy(logits + log_prior if uniform else logits, labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(labels)
                count += len(labels)
            self.history_["loss"].append(round(total / max(1, count), 5))
            self.progress.update((epoch + 1) / max(1, cfg.epochs),
                                 f"epoch {epoch + 1}/{cfg.epochs} loss {total / max(1, count):.4f}")
            judge(epoch + 1)
        self.val_mAcc_, self.kept_epoch_ = None, cfg.epochs
        if best is not None:
            model.load_state_dict(best[2])
            self.val_mAcc_, self.kept_epoch_ = best[0], best[1]
            self.progress.log(f"photo expert: kept epoch {best[1]} of {cfg.epochs} (0 = the classifier on the "
                              f"frozen features), validation mAcc {best[0]:.3f}")
        model.property_evidence.fit(_properties(collection, train_idx), torch.as_tensor(labels_train),
                                    cfg.error_rate)
        self.val_mAcc_properties_ = None if val is None else self._val_macc(model, val, with_properties=True)
        model.eval()
        return model

    @torch.no_grad()
    def _val_macc(self, model: MultimodalIdentifier, val: tuple, with_properties: bool = False) -> float:
        """mAcc on the validation photos: the photo expert alone, or with the recorded properties."""
        images, labels, properties = val
        model.eval()
        features = torch.cat([model.image_branch(x) for x in images.split(INFERENCE_BATCH)])
        given = properties if with_properties else torch.full_like(properties, -1.0)
        predicted = model.fuse(features, given.to(self.device))["logits"].argmax(1).cpu().numpy()
        return mean_class_accuracy(labels, predicted, model.image_head.out_features)

    def _val_photos(self, model: MultimodalIdentifier, collection: PhotoCollection):
        """SSF-adapted features are recomputed each epoch from these (image tensors, labels, properties)."""
        index = collection.indices("val")
        if not len(index):
            return None
        backbone = model.image_branch.backbone
        dataset = PhotoDataset(collection, index, self.config.image_size, train=False, mean=backbone.mean,
                               std=backbone.std)
        images = torch.stack([dataset[i][0] for i in range(len(dataset))])
        return images.to(self.device), collection.labels[index], _properties(collection, index)


def property_subsets() -> list[tuple[str, ...]]:
    """All 8 subsets of (hardness, luster, streak), photo only first."""
    return [combo for k in range(N_PROPERTIES + 1) for combo in itertools.combinations(PROPERTY_NAMES, k)]


@torch.no_grad()
def robustness_table(model: MultimodalIdentifier, collection: PhotoCollection, split: str, image_size: int,
                     device, error_rates=ERROR_RATES, batch_size: int = INFERENCE_BATCH, seed: int = 0) -> list[dict]:
    """Accuracy for every subset of available properties and every error rate.

    Properties outside the subset are removed; of those left, a share
    ``error_rate`` of the specimens gets wrong values - codes that differ from
    the mineral's published code, not merely from the recorded one (fixed seed).
    ``wrong_given`` is the share of the given values that differ from the
    published code, recording errors included. The photo features are computed
    once and reused for every row.
    """
    model.eval()
    index = collection.indices(split)
    backbone = model.image_branch.backbone
    dataset = PhotoDataset(collection, index, image_size, train=False, mean=backbone.mean, std=backbone.std)
    features, labels, properties = [], [], []
    for images, y, props in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
        features.append(model.image_branch(images.to(device)))
        labels.append(y)
        properties.append(props)
    features = torch.cat(features)
    labels = torch.cat(labels).to(device)
    properties = torch.cat(properties)
    truth = true_properties(collection, index)
    rows = []
    for subset in property_subsets():
        keep = torch.tensor([name in subset for name in PROPERTY_NAMES])
        for rate in (error_rates if subset else (0.0,)):
            generator = torch.Generator().manual_seed(seed)
            given = torch.where(keep, properties, torch.full_like(properties, -1.0))
            given = falsify_properties(given, truth, rate, generator)
            known = (given >= 0) & (truth >= 0)
            wrong = float((given != truth)[known].float().mean()) if known.any() else 0.0
            given = given.to(device)
            predicted = model.fuse(features, given)["logits"].argmax(1)
            per_class = [float((predicted[labels == c] == c).float().mean()) for c in labels.unique().tolist()]
            rows.append({
                "properties": "+".join(subset) if subset else "photo only",
                "error_rate": rate,
                "accuracy": round(float((predicted == labels).float().mean()), 4),
                "mAcc": round(float(np.mean(per_class)), 4),
                "wrong_given": round(wrong, 4),
                "n_test": int(len(labels)),
            })
    return rows
