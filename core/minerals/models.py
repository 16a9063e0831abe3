"""Networks for mineral identification: plain ``nn.Module``s, no file I/O except loading a weights file.

- :class:`PhotoClassifier`: a backbone (:mod:`core.minerals.backbones`) + linear classifier (seed 002).
- :class:`SSFBackbone`: a frozen backbone whose stem and stages are each followed by a trainable
  scale-and-shift (SSF) layer (seed 003).
- :class:`MultimodalIdentifier`: SSF photo expert x property evidence (likelihood tables with an
  error model), fused by Bayes' rule: with no property given it is the photo model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.minerals.backbones import Backbone, build_backbone
from core.minerals.properties import PROPERTY_CODES

N_PROPERTIES = len(PROPERTY_CODES)
N_CODES = max(len(codes) for codes in PROPERTY_CODES)


class PhotoClassifier(nn.Module):
    """Backbone features -> linear classifier. ``forward`` gives raw logits (and features on request)."""

    def __init__(self, arch: str, n_classes: int, weights_path: str | Path | None = None,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, weights_path, pretrained)
        self.n_features = self.backbone.n_features
        self.classifier = nn.Linear(self.n_features, n_classes)

    def forward(self, images: torch.Tensor, with_features: bool = False):
        features = self.backbone(images)
        logits = self.classifier(features)
        return (logits, features) if with_features else logits


class SSF(nn.Module):
    """Per-channel ``x * gamma + beta`` (gamma = 1, beta = 0 at the start: the identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.gamma.view(shape) + self.beta.view(shape)


class SSFBackbone(nn.Module):
    """A frozen backbone with a trainable SSF layer after each of its stages (stem first).

    The backbone's weights never get gradients and it always runs in eval
    mode (its BatchNorm statistics stay put), but gradients flow *through* it
    to the SSF layers - so nothing here runs under ``no_grad``.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.ssf = nn.ModuleList(SSF(c) for c in backbone.stage_channels)
        self.n_features = backbone.n_features
        self.mean, self.std = backbone.mean, backbone.std  # the photos' normalisation, as the backbone's
        self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen means frozen BatchNorm too
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for ssf, stage in zip(self.ssf, self.backbone.stages):
            x = ssf(stage(x))
        return self.backbone.pool(x)


def code_positions(properties: torch.Tensor) -> torch.Tensor:
    """(n, 3) position of each recorded value among its property's valid codes; -1 = not measured.

    A value that is not a valid code counts as not measured (the property readers never produce one).
    """
    out = torch.full(properties.shape, -1, dtype=torch.long, device=properties.device)
    for j, codes in enumerate(PROPERTY_CODES):
        for position, code in enumerate(codes):
            out[:, j][properties[:, j] == code] = position
    return out


class PropertyEvidence(nn.Module):
    """What each recorded property says about the mineral: ``log P(recorded value | mineral)``.

    A table per property (naive Bayes: given the mineral, hardness, luster and streak are recorded
    independently), estimated by counting the training specimens' recorded values and mixed with
    an explicit error model: a recorded value is wrong with probability ``error_rate``, any other
    code then being as likely. The error model bounds what one property can say (for luster at
    a 30 % error rate, a factor (0.7 / 0.3) at most), so a wrong value shifts the answer but cannot
    overrule a confident photo, and a property that is not measured says nothing at all.
    """

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        # All zero until fitted: no evidence. Unused code slots (luster/streak have 2 codes) stay 0.
        self.register_buffer("log_likelihood", torch.zeros(n_classes, N_PROPERTIES, N_CODES))

    @torch.no_grad()
    def fit(self, properties: torch.Tensor, labels: torch.Tensor, error_rate: float, smoothing: float = 1.0) -> None:
        """Count each mineral's recorded codes (+ ``smoothing`` per code) and apply the error model."""
        if not 0.0 <= error_rate < 1.0:
            raise ValueError(f"error_rate must be in [0, 1), got {error_rate}")
        positions = code_positions(properties)
        labels = torch.as_tensor(labels, dtype=torch.long)
        n_classes = self.log_likelihood.shape[0]
        table = torch.zeros_like(self.log_likelihood)
        for j, codes in enumerate(PROPERTY_CODES):
            k = len(codes)
            present = positions[:, j] >= 0
            counts = torch.zeros(n_classes, k)
            counts.index_put_((labels[present], positions[present, j]), torch.ones(int(present.sum())), accumulate=True)
            share = (counts + smoothing) / (counts.sum(1, keepdim=True) + k * smoothing)
            likely = (1.0 - error_rate) * share + error_rate * (1.0 - share) / (k - 1)
            table[:, j, :k] = likely.log()
        self.log_likelihood.copy_(table)

    def forward(self, properties: torch.Tensor) -> torch.Tensor:
        """(n, classes) summed log-likelihood of the recorded values; 0 where nothing is recorded."""
        positions = code_positions(properties)
        evidence = torch.zeros(len(properties), self.log_likelihood.shape[0], device=properties.device)
        for j in range(N_PROPERTIES):
            present = positions[:, j] >= 0
            if present.any():
                evidence[present] += self.log_likelihood[:, j, positions[present, j]].T
        return evidence


class MultimodalIdentifier(nn.Module):
    """Photo + properties -> mineral: a product of experts that is the photo model when no property is given.

    - photo expert: :class:`SSFBackbone` (frozen backbone + SSF) and a linear head, trained on the
      photos alone (seed 003's image branch);
    - property expert: :class:`PropertyEvidence`, the recorded values' likelihood per mineral;
    - fusion (Bayes' rule): ``log p(mineral | photo, properties) = log p(mineral | photo) +
      sum of log P(value | mineral) over the properties given`` (+ a constant), the photo's
      probabilities calibrated by a temperature. With no property the
      answer *is* the photo expert's; each property's say is bounded by its error model.

    Issue 12 replaced seed 003's fused head (concatenated features -> information bottleneck ->
    one head per combination of available properties): trained on a few hundred photos it read
    which properties were present but not their values (the same accuracy with 0, 30 and 60 %
    wrong properties) and could be worse than the photo alone.
    """

    def __init__(self, backbone: Backbone, n_classes: int) -> None:
        super().__init__()
        self.image_branch = SSFBackbone(backbone)
        self.image_head = nn.Linear(self.image_branch.n_features, n_classes)
        # softmax(image_logits / T) is the photo expert's belief; T is fitted on out-of-fold logits so
        # that the photo is not far surer of itself than it deserves (the properties could never speak).
        self.register_buffer("photo_temperature", torch.ones(()))
        self.property_evidence = PropertyEvidence(n_classes)

    def forward(self, images: torch.Tensor, properties: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fuse(self.image_branch(images), properties)

    def fuse(self, image_features: torch.Tensor, properties: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything after the image branch (lets evaluation reuse one photo's features for many property sets)."""
        image_logits = self.image_head(image_features)
        evidence = self.property_evidence(properties)
        return {"logits": (image_logits / self.photo_temperature).log_softmax(dim=1) + evidence, "image_logits": image_logits,
                "evidence": evidence}


def falsify_properties(properties: torch.Tensor, truth: torch.Tensor, error_rate: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Wrong properties for evaluation: a share ``error_rate`` of the specimens gets, for every
    property it has, a valid code that differs from ``truth`` (the mineral's true code; where that is
    unknown, -1, from the recorded value), each wrong code equally likely.

    Properties not recorded (-1) stay missing, so which properties look present never changes.
    """
    out = properties.clone()
    wrong_sample = torch.rand(len(out), generator=generator) < error_rate
    reference = torch.where(truth >= 0, truth, properties)
    for j, codes in enumerate(PROPERTY_CODES):
        codes_t = torch.tensor(codes, dtype=out.dtype)
        rows = torch.nonzero(wrong_sample & (properties[:, j] >= 0)).flatten()
        if len(rows) == 0:
            continue
        # shift the true value's position among the valid codes by 1..k-1: always a different code
        position = (reference[rows, j, None] == codes_t).float().argmax(dim=1)
        shift = torch.randint(1, len(codes), (len(rows),), generator=generator)
        out[rows, j] = codes_t[(position + shift) % len(codes)]
    return out
