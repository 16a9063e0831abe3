"""Losses of the long-tailed training (seed 002)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def logit_adjusted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, log_prior: torch.Tensor,
                                 tau: float = 1.0) -> torch.Tensor:
    """``CE(z + tau * log(pi), y)``: frequent classes must win by a margin, so rare ones get more gradient.

    Only for training the feature extractor; predictions use the raw logits.
    """
    return F.cross_entropy(logits + tau * log_prior.to(logits), targets)


def log_class_prior(class_counts) -> torch.Tensor:
    """log of the training class frequencies; a class without photos gets a tiny prior, not -inf."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp_min(0.5)
    return torch.log(counts / counts.sum()).float()


class CenterLoss(nn.Module):
    """``mean_i ||f_i - c_{y_i}||^2``: pulls each photo's features to its mineral's centre.

    The centres are parameters with their own optimiser (see
    :func:`core.minerals.longtail.centre_step`), not the model's.
    """

    def __init__(self, n_classes: int, n_features: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.centres = nn.Parameter(torch.randn(n_classes, n_features, generator=generator) * 0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ((features - self.centres[labels]) ** 2).sum(dim=1).mean()
