"""Training and evaluation of the robust multimodal identifier (seed 003).

Only the SSF layers, the property encoder, the gate, the information
bottleneck and the heads train; the image backbone stays frozen (weights and
BatchNorm statistics). Every training batch gets fresh random corruption:
a share of the specimens loses some properties (``missing_rate``) and a share
gets wrong values for the properties it has (``error_rate``), so the model
learns not to trust properties blindly - the published per-mineral property
codes would otherwise give the label away.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from core.minerals import DEFAULT_BACKBONE
from core.minerals.datasets import PhotoCollection, PhotoDataset
from core.minerals.losses import log_class_prior
from core.minerals.metrics import mean_class_accuracy
from core.minerals.models import (
    N_PROPERTIES,
    MultimodalIdentifier,
    corrupt_properties,
    multimodal_loss,
)
from core.minerals.properties import PROPERTY_NAMES
from core.minerals.samplers import class_balanced_batches, uniform_batches
from core.progress import Progress, SilentProgress

ERROR_RATES = (0.0, 0.3, 0.6)


@dataclass
class MultimodalConfig:
    arch: str = DEFAULT_BACKBONE
    image_size: int = 224
    batch_size: int = 64
    epochs: int = 30
    lr: float = 5e-3  # AdamW: the few parameters of a parameter-efficient model, new heads included
    weight_decay: float = 1e-4
    # "balanced": class-balanced batches (4 photos per mineral) and plain CE, so the rare minerals -
    # often the ones only properties can separate from a common lookalike - are seen as often as the
    # common ones; "uniform": every photo once per epoch with logit-adjusted CE.
    sampling: str = "balanced"
    missing_rate: float = 0.5
    error_rate: float = 0.3
    beta: float = 1e-3
    property_features: int = 36
    hidden: int = 256
    bottleneck: int = 64
    seed: int = 0
    num_workers: int = 0


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def parameter_overhead(model: MultimodalIdentifier) -> dict:
    """Trainable parameters added to the frozen backbone, absolute and in % of the backbone."""
    backbone = sum(p.numel() for p in model.image_branch.backbone.parameters())
    added = sum(p.numel() for p in trainable_parameters(model))
    ssf = sum(p.numel() for p in model.image_branch.ssf.parameters())
    return {"backbone_parameters": backbone, "added_parameters": added, "ssf_parameters": ssf,
            "overhead_percent": round(100.0 * added / backbone, 2)}


class MultimodalTrainer:
    def __init__(self, config: MultimodalConfig, device, progress: Progress | None = None) -> None:
        self.config = config
        self.device = device
        self.progress = progress or SilentProgress()
        self.history_: dict[str, list] = {"loss": []}

    def fit(self, collection: PhotoCollection, backbone: torch.nn.Module) -> MultimodalIdentifier:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        model = MultimodalIdentifier(backbone, len(collection.classes), cfg.property_features, cfg.hidden,
                                     cfg.bottleneck).to(self.device)
        train_idx = collection.indices("train")
        dataset = PhotoDataset(collection, train_idx, cfg.image_size, train=True, mean=backbone.mean, std=backbone.std)
        labels_train = collection.labels[train_idx]
        rng = np.random.default_rng([cfg.seed, 3])
        per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))

        def epoch_batches():
            if cfg.sampling == "balanced":
                return class_balanced_batches(labels_train, cfg.batch_size, rng, 4, per_epoch)
            return uniform_batches(len(train_idx), cfg.batch_size, rng)

        optimiser = torch.optim.AdamW(trainable_parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        log_prior = (log_class_prior(collection.class_counts("train")).to(self.device)
                     if cfg.sampling == "uniform" else None)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.epochs * per_epoch))
        self.progress.stage("multimodal", "Multimodal model: SSF + property encoder + variational bottleneck", weight=1.0)
        val_photos = self._val_photos(model, collection)
        best, self.val_mAcc_, self.kept_epoch_ = None, None, cfg.epochs
        for epoch in range(cfg.epochs):
            model.train()
            total, count = 0.0, 0
            batches = [b.tolist() for b in epoch_batches()]
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers)
            for images, labels, properties in loader:
                properties = corrupt_properties(properties, cfg.missing_rate, cfg.error_rate, generator)
                images, labels, properties = images.to(self.device), labels.to(self.device), properties.to(self.device)
                features = model.image_branch(images)
                loss = multimodal_loss(model.fuse(features, properties), labels, properties, cfg.beta, log_prior)
                # Every photo also trains the photo-only path: with random dropping alone, the head for
                # "no property given" would see only a few % of the photos.
                nothing = torch.full_like(properties, -1.0)
                loss = loss + multimodal_loss(model.fuse(features, nothing), labels, nothing, cfg.beta, log_prior)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(labels)
                count += len(labels)
            self.history_["loss"].append(round(total / max(1, count), 5))
            self.progress.update((epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} loss {total / max(1, count):.4f}")
            if val_photos is not None:
                macc = self._val_macc(model, val_photos)
                self.history_.setdefault("val_mAcc", []).append(round(macc, 4))
                if best is None or macc >= best[0]:  # an epoch that lowers validation mAcc is not kept
                    best = (macc, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if best is not None:
            model.load_state_dict(best[2])
            self.val_mAcc_, self.kept_epoch_ = best[0], best[1]
            self.progress.log(f"kept epoch {best[1]} of {cfg.epochs}: validation mAcc {best[0]:.3f}")
        model.eval()
        return model

    @torch.no_grad()
    def _val_macc(self, model: MultimodalIdentifier, val: tuple) -> float:
        """mAcc on the validation photos, their properties corrupted as in training (fixed seed)."""
        images, labels, properties = val
        model.eval()
        features = torch.cat([model.image_branch(x) for x in images.split(self.config.batch_size)])
        given = corrupt_properties(properties, self.config.missing_rate, self.config.error_rate,
                                   torch.Generator().manual_seed(self.config.seed + 7)).to(self.device)
        predicted = model.fuse(features, given)["logits"].argmax(1).cpu().numpy()
        return mean_class_accuracy(labels, predicted, model.shared_head.out_features)

    def _val_photos(self, model: MultimodalIdentifier, collection: PhotoCollection):
        """SSF-adapted features are recomputed each epoch from these (image tensors, labels, properties)."""
        index = collection.indices("val")
        if not len(index):
            return None
        backbone = model.image_branch.backbone
        dataset = PhotoDataset(collection, index, self.config.image_size, train=False, mean=backbone.mean,
                               std=backbone.std)
        images, labels, properties = zip(*(dataset[i] for i in range(len(dataset))))
        return torch.stack(images).to(self.device), np.asarray(labels), torch.stack(properties)


def property_subsets() -> list[tuple[str, ...]]:
    """All 8 subsets of (hardness, luster, streak), photo only first."""
    return [combo for k in range(N_PROPERTIES + 1) for combo in itertools.combinations(PROPERTY_NAMES, k)]


@torch.no_grad()
def robustness_table(model: MultimodalIdentifier, collection: PhotoCollection, split: str, image_size: int,
                     device, error_rates=ERROR_RATES, batch_size: int = 64, seed: int = 0) -> list[dict]:
    """Accuracy for every subset of available properties and every error rate.

    Properties outside the subset are removed; of those left, a share
    ``error_rate`` of the specimens gets wrong values (fixed seed). The photo
    features are computed once and reused for every row.
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
    rows = []
    for subset in property_subsets():
        keep = torch.tensor([name in subset for name in PROPERTY_NAMES])
        for rate in (error_rates if subset else (0.0,)):
            generator = torch.Generator().manual_seed(seed)
            given = torch.where(keep, properties, torch.full_like(properties, -1.0))
            given = corrupt_properties(given, 0.0, rate, generator).to(device)
            predicted = model.fuse(features, given)["logits"].argmax(1)
            per_class = [float((predicted[labels == c] == c).float().mean()) for c in labels.unique().tolist()]
            rows.append({
                "properties": "+".join(subset) if subset else "photo only",
                "error_rate": rate,
                "accuracy": round(float((predicted == labels).float().mean()), 4),
                "mAcc": round(float(np.mean(per_class)), 4),
                "n_test": int(len(labels)),
            })
    return rows
