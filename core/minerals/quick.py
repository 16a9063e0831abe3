"""The quick default Train: a frozen ImageNet-pretrained backbone, cached features, converged classifiers.

A geologist's collection (a few hundred photos) is far too small to train a network from scratch
and too slow to fine-tune on a laptop CPU. Features of a pretrained backbone separate minerals well
(issue 12: a linear classifier on EfficientNet-Lite0 features reached 0.93 where a ResNet-18 trained
from scratch reached 0.74), so the quick schedule:

1. extracts the backbone's features once: ``views`` per training photo (the centre crop plus
   random resized crops / flips, the training augmentation) and the centre crop of each
   validation photo;
2. fits the linear classifier to convergence (:func:`core.minerals.heads.fit_linear_head`) with
   plain cross-entropy - the baseline, and for ``longtail`` the bar every later stage must clear;
3. ``longtail`` only: seed 002's classifier stages on the same features - FEA's logit-adjusted
   cross-entropy, then cRT's class-balanced cross-entropy - each kept only if the validation mAcc
   does not fall (:class:`core.minerals.stages.StageGuard`). CFL is not run: it changes the
   features, and here they are frozen (``--schedule full`` fine-tunes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.minerals import DEFAULT_BACKBONE, INFERENCE_BATCH
from core.minerals.datasets import PhotoCollection, PhotoDataset
from core.minerals.heads import fit_linear_head
from core.minerals.losses import log_class_prior
from core.minerals.metrics import mean_class_accuracy, tail_classes
from core.minerals.models import PhotoClassifier
from core.minerals.stages import StageGuard
from core.progress import Progress, SilentProgress


@dataclass
class QuickConfig:
    """Settings of the quick schedule (defaults chosen for a few hundred photos on a laptop CPU)."""

    method: str = "longtail"  # "longtail" (plain -> FEA -> cRT, guarded) or "baseline" (plain only)
    arch: str = DEFAULT_BACKBONE
    weights: str | None = None
    image_size: int = 224
    views: int = 4  # cached feature vectors per training photo: centre crop + 3 augmented crops
    batch_size: int = INFERENCE_BATCH  # only features are computed: no training batch to fill
    tau: float = 1.0
    weight_decay: float = 5e-4
    seed: int = 0
    num_workers: int = 0


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, dataset: PhotoDataset, batch_size: int, device,
                     num_workers: int = 0, on_batch=None) -> torch.Tensor:
    """Pooled features of every photo of ``dataset`` (backbone in eval mode: BatchNorm statistics fixed)."""
    backbone.eval()
    out = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, _, _ in loader:
        out.append(backbone(images.to(device)).cpu())
        if on_batch is not None:
            on_batch(len(images))
    return torch.cat(out) if out else torch.zeros(0, backbone.n_features)


def training_views(backbone: torch.nn.Module, collection: PhotoCollection, index: np.ndarray, image_size: int,
                   views: int, batch_size: int, device, seed: int, num_workers: int = 0, on_batch=None) -> torch.Tensor:
    """Features of ``views`` looks at each photo, view by view: the centre crop, then random crops/flips
    (the training augmentation, reproducible from ``seed``). Row ``v * len(index) + i`` is view v of photo i."""
    norm = {"mean": backbone.mean, "std": backbone.std}
    out = [extract_features(backbone, PhotoDataset(collection, index, image_size, train=False, **norm), batch_size,
                            device, num_workers, on_batch)]
    augmented = PhotoDataset(collection, index, image_size, train=True, **norm)
    for view in range(1, max(1, views)):
        torch.manual_seed(seed * 1000 + view)  # the random crops of each view are reproducible
        out.append(extract_features(backbone, augmented, batch_size, device, num_workers, on_batch))
    return torch.cat(out)


class QuickTrainer:
    """Trains a :class:`PhotoClassifier` whose backbone stays as pretrained; only the classifier learns."""

    def __init__(self, config: QuickConfig, device, progress: Progress | None = None) -> None:
        self.config = config
        self.device = device
        self.progress = progress or SilentProgress()
        self.history_: dict[str, dict] = {}
        self.heads_: dict[str, dict] = {}  # each stage's classifier as fitted, kept or not (for comparisons)

    def fit(self, collection: PhotoCollection) -> PhotoClassifier:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        n_classes = len(collection.classes)
        model = PhotoClassifier(cfg.arch, n_classes, cfg.weights).to(self.device)
        model.backbone.requires_grad_(False)
        self.backbone_origin_ = model.backbone.origin
        train_idx, val_idx = collection.indices("train"), collection.indices("val")
        counts = collection.class_counts("train")
        self.class_counts_ = counts
        self.tail_classes_ = tail_classes(counts)
        norm = {"mean": model.backbone.mean, "std": model.backbone.std}

        total = len(train_idx) * max(1, cfg.views) + len(val_idx)
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            self.progress.update(done[0] / max(1, total), f"photo features {done[0]}/{total}")

        self.progress.stage("features", "Reading photos through the pretrained network", weight=0.95)
        features = training_views(model.backbone, collection, train_idx, cfg.image_size, cfg.views, cfg.batch_size,
                                  self.device, cfg.seed, cfg.num_workers, tick).to(self.device)
        labels = torch.as_tensor(np.tile(collection.labels[train_idx], max(1, cfg.views)), device=self.device)
        val_features = extract_features(model.backbone, PhotoDataset(collection, val_idx, cfg.image_size, train=False,
                                                                     **norm), cfg.batch_size, self.device,
                                        cfg.num_workers, tick).to(self.device)
        val_labels = collection.labels[val_idx]

        self.progress.stage("classifier", "Fitting the classifier", weight=0.05)
        guard = StageGuard(self.progress, has_validation=len(val_idx) > 0)
        head = model.classifier
        log_prior = log_class_prior(counts).to(self.device)
        stages = [("ce", "plain")] + ([("fea", "adjusted"), ("crt", "balanced")] if cfg.method == "longtail" else [])
        kept = None
        for stage, objective in stages:
            fit = fit_linear_head(head, features, labels, objective, log_prior, cfg.tau, cfg.weight_decay)
            val_macc = None
            if len(val_idx):
                with torch.no_grad():
                    val_macc = mean_class_accuracy(val_labels, head(val_features).argmax(1).cpu().numpy(), n_classes)
            self.history_[stage] = {**fit, "objective": objective, "val_mAcc": val_macc}
            self.heads_[stage] = {k: v.detach().clone() for k, v in head.state_dict().items()}
            if guard.judge(stage, val_macc):
                kept = {k: v.detach().clone() for k, v in head.state_dict().items()}
            else:
                head.load_state_dict(kept)
        self.stages_ = guard.decisions
        self.kept_stage_ = guard.kept
        self.val_mAcc_ = guard.best
        model.eval()
        return model
