"""Networks for mineral identification: plain ``nn.Module``s, no file I/O except loading a weights file.

- :class:`PhotoClassifier`: a backbone (:mod:`core.minerals.backbones`) + linear classifier (seed 002).
- :class:`SSFBackbone`: a frozen backbone whose stem and stages are each followed by a trainable
  scale-and-shift (SSF) layer (seed 003).
- :class:`MultimodalIdentifier`: SSF image branch + property encoder, per-sample modality gate,
  variational information bottleneck, one head per combination of available properties.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.minerals.backbones import Backbone, build_backbone

N_PROPERTIES = 3
N_COMBINATIONS = 2**N_PROPERTIES  # which of hardness/luster/streak are present (0 = photo only)


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


class PropertyEncoder(nn.Module):
    """[hardness, luster, streak] (-1 = missing) -> Linear(3, d) -> ReLU -> LayerNorm -> residual MLP."""

    def __init__(self, n_out: int = 36) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(N_PROPERTIES, n_out), nn.ReLU(), nn.LayerNorm(n_out))
        self.block = nn.Sequential(nn.Linear(n_out, n_out), nn.ReLU(), nn.Linear(n_out, n_out))
        self.n_features = n_out

    def forward(self, properties: torch.Tensor) -> torch.Tensor:
        x = self.inp(properties)
        return x + self.block(x)


def combination_index(properties: torch.Tensor) -> torch.Tensor:
    """Which properties are present, as a number 0..7 (bit 0 hardness, 1 luster, 2 streak)."""
    present = (properties >= 0).long()
    return present[:, 0] + 2 * present[:, 1] + 4 * present[:, 2]


def _confidence(logits: torch.Tensor) -> torch.Tensor:
    """1 - normalised entropy of the softmax: 1 = certain, 0 = uniform."""
    p = logits.softmax(dim=1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1)
    return 1.0 - entropy / torch.log(torch.tensor(float(logits.shape[1])))


class MultimodalIdentifier(nn.Module):
    """Photo + properties -> mineral, robust to missing and wrong properties.

    - image branch: :class:`SSFBackbone` (frozen backbone + SSF), property branch: :class:`PropertyEncoder`;
    - dynamic weighting: each modality has an auxiliary head; a small gate sees,
      per sample, both heads' confidence, how much they agree and which properties
      are present, and scales each modality's features (the property weight is 0
      when no property is present);
    - variational information bottleneck: fused features -> (mu, log var) of a
      ``bottleneck``-d Gaussian, sampled in training (mean at prediction), with
      ``KL(q(z|x) || N(0, I))`` in the loss;
    - one linear head on z per combination of available properties (added to a shared head).
    """

    def __init__(self, backbone: Backbone, n_classes: int, property_features: int = 36,
                 hidden: int = 256, bottleneck: int = 64) -> None:
        super().__init__()
        self.image_branch = SSFBackbone(backbone)
        self.property_encoder = PropertyEncoder(property_features)
        n_image = self.image_branch.n_features
        # Pooled backbone features are ~20x larger than the property features; normalising them
        # keeps the properties from being drowned out in the fused vector.
        self.image_norm = nn.LayerNorm(n_image)
        self.image_head = nn.Linear(n_image, n_classes)
        self.property_head = nn.Linear(property_features, n_classes)
        self.gate = nn.Linear(3 + N_PROPERTIES, 2)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 2.0)  # start near "use both"
        self.encoder = nn.Sequential(nn.Linear(n_image + property_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * bottleneck))
        with torch.no_grad():  # start nearly deterministic (sigma ~ 0.05); the KL term decides how much noise to keep
            self.encoder[-1].bias[bottleneck:].fill_(-6.0)
        # One head per combination of available properties, as a zero-initialised correction of a
        # shared head: rare combinations start from (and keep learning through) what all photos taught.
        self.shared_head = nn.Linear(bottleneck, n_classes)
        self.heads = nn.ModuleList(nn.Linear(bottleneck, n_classes) for _ in range(N_COMBINATIONS))
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.bottleneck = bottleneck

    def forward(self, images: torch.Tensor, properties: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fuse(self.image_branch(images), properties)

    def fuse(self, image_features: torch.Tensor, properties: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything after the image branch (lets evaluation reuse one photo's features for many property sets)."""
        image_features = self.image_norm(image_features)
        property_features = self.property_encoder(properties)
        image_logits = self.image_head(image_features)
        property_logits = self.property_head(property_features)
        present = (properties >= 0).float()
        any_present = present.amax(dim=1, keepdim=True)
        agreement = (image_logits.softmax(1) * property_logits.softmax(1)).sum(1, keepdim=True)
        gate_input = torch.cat([_confidence(image_logits)[:, None], _confidence(property_logits)[:, None] * any_present,
                                agreement * any_present, present], dim=1)
        weights = torch.sigmoid(self.gate(gate_input.detach()))
        weights = torch.cat([weights[:, :1], weights[:, 1:] * any_present], dim=1)
        fused = torch.cat([image_features * weights[:, :1], property_features * weights[:, 1:]], dim=1)
        mu, log_var = self.encoder(fused).chunk(2, dim=1)
        log_var = log_var.clamp(-10, 10)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var) if self.training else mu
        all_logits = torch.stack([head(z) for head in self.heads], dim=1)  # (n, 8, C)
        combo = combination_index(properties)
        logits = self.shared_head(z) + all_logits[torch.arange(len(combo)), combo]
        return {"logits": logits, "image_logits": image_logits, "property_logits": property_logits,
                "mu": mu, "log_var": log_var, "weights": weights}


def multimodal_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, properties: torch.Tensor,
                    beta: float = 1e-3, log_prior: torch.Tensor | None = None) -> torch.Tensor:
    """CE of the fused head + CE of the auxiliary heads (property head only where a property is present)
    + beta * KL(q(z|x) || N(0, I)).

    With ``log_prior`` (log training class frequencies) every CE is logit-adjusted, as in FEA, so
    the heads trained on long-tailed photos are not biased towards the common minerals.
    """
    shift = 0.0 if log_prior is None else log_prior.to(labels.device)

    def ce(logits, target):
        return F.cross_entropy(logits + shift, target)

    loss = ce(out["logits"], labels) + ce(out["image_logits"], labels)
    present = (properties >= 0).any(dim=1)
    if present.any():
        loss = loss + ce(out["property_logits"][present], labels[present])
    kl = 0.5 * (out["mu"] ** 2 + out["log_var"].exp() - 1.0 - out["log_var"]).sum(dim=1).mean()
    return loss + beta * kl


def corrupt_properties(properties: torch.Tensor, missing_rate: float, error_rate: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Training/evaluation noise: drop and falsify properties, per sample.

    - missing: with probability ``missing_rate`` a sample loses a random
      non-empty subset of its present properties;
    - erroneous: with probability ``error_rate`` every still-present property of a
      sample is replaced by a *different* valid code.
    Missing properties (-1) are never filled in, so which properties look
    present never changes through an error.
    """
    from core.minerals.properties import PROPERTY_CODES

    out = properties.clone()
    n = len(out)
    present = out >= 0
    if missing_rate > 0:
        drop_sample = torch.rand(n, generator=generator) < missing_rate
        drop = (torch.rand(n, N_PROPERTIES, generator=generator) < 0.5) & present & drop_sample[:, None]
        # guarantee a non-empty drop for chosen samples that kept everything by chance
        nothing = drop_sample & present.any(1) & ~drop.any(1)
        if nothing.any():
            scores = torch.rand(n, N_PROPERTIES, generator=generator) + present.float() * 2
            first = scores.argmax(dim=1)
            drop[nothing, first[nothing]] = True
        out[drop] = -1.0
        present = out >= 0
    if error_rate > 0:
        wrong_sample = torch.rand(n, generator=generator) < error_rate
        for j, codes in enumerate(PROPERTY_CODES):
            codes_t = torch.tensor(codes, dtype=out.dtype)
            rows = torch.nonzero(wrong_sample & present[:, j]).flatten()
            if len(rows) == 0:
                continue
            # shift each value's position among the valid codes by 1..k-1: always a different code
            position = (out[rows, j, None] == codes_t).float().argmax(dim=1)
            shift = torch.randint(1, len(codes), (len(rows),), generator=generator)
            out[rows, j] = codes_t[(position + shift) % len(codes)]
    return out
