"""Fitting a linear classifier on fixed (cached) features until it has converged.

The classifier stages of the mineral models - the quick default Train, seed 002's cRT - only move
a linear layer over features that do not change. Their objective is then convex, so instead of a
fixed number of SGD epochs (which on a small collection is a handful of steps: the failure of
issue 12, where cRT ended at loss ln C, i.e. chance) we minimise it to convergence with full-batch
L-BFGS, whatever the collection's size. Objectives:

- ``"plain"``: cross-entropy over all photos (the baseline);
- ``"adjusted"``: logit-adjusted cross-entropy ``CE(z + tau log pi, y)`` (FEA; raw logits at test time);
- ``"balanced"``: every mineral weighs the same (the expectation of cRT's class-balanced sampling), plain CE.

All add the optimiser's weight decay as ``weight_decay / 2 * ||W||^2``. Features are standardised
while fitting (so the same settings converge for any backbone's feature scale) and the
standardisation is folded back into the layer, which then takes the raw features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OBJECTIVES = ("plain", "adjusted", "balanced")


def fit_linear_head(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, objective: str = "plain",
                    log_prior: torch.Tensor | None = None, tau: float = 1.0, weight_decay: float = 5e-4,
                    max_iter: int = 500, tolerance: float = 1e-7) -> dict:
    """Re-initialise ``head`` and fit it to convergence; returns ``{"loss", "iterations", "converged"}``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    features = features.detach().float()
    labels = torch.as_tensor(labels, dtype=torch.long, device=features.device)
    n_classes = head.out_features
    mean = features.mean(dim=0)
    std = features.std(dim=0).clamp_min(1e-6)
    x = (features - mean) / std
    weight = torch.zeros(n_classes, features.shape[1], device=features.device, requires_grad=True)
    bias = torch.zeros(n_classes, device=features.device, requires_grad=True)
    if objective == "balanced":
        counts = torch.bincount(labels, minlength=n_classes).float()
        sample_weight = 1.0 / (counts[labels] * float((counts > 0).sum()))
    else:
        sample_weight = torch.full((len(labels),), 1.0 / max(1, len(labels)), device=features.device)
    shift = tau * log_prior.to(features.device) if objective == "adjusted" else 0.0

    def loss_fn() -> torch.Tensor:
        logits = x @ weight.T + bias + shift
        ce = F.cross_entropy(logits, labels, reduction="none")
        return (ce * sample_weight).sum() + 0.5 * weight_decay * (weight**2).sum()

    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=tolerance, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimiser.step(closure)
    state = optimiser.state[weight]  # L-BFGS keeps its counters with the first parameter
    iterations = int(state.get("n_iter", 0))
    with torch.no_grad():
        final = float(loss_fn())
        head.weight.copy_(weight / std)  # fold the standardisation back in: W (f - m) / s + b
        head.bias.copy_(bias - (weight * (mean / std)).sum(dim=1))
    return {"loss": round(final, 6), "iterations": iterations, "converged": iterations < max_iter}


def out_of_fold_temperature(features: torch.Tensor, labels: torch.Tensor, photos: torch.Tensor,
                            objective: str = "plain", log_prior: torch.Tensor | None = None,
                            weight_decay: float = 5e-4, folds: int = 5, seed: int = 0) -> float:
    """Temperature ``T`` that makes ``softmax(logits / T)`` of a head fitted by :func:`fit_linear_head`
    honest about its confidence (temperature scaling, Guo et al. 2017).

    A head fitted to convergence on a few hundred photos separates its own training photos perfectly
    and is far too sure of itself on new ones; T is therefore fitted (maximum likelihood) on
    out-of-fold logits: the photos (``photos`` = a photo id per row, so that the views of one photo
    stay in one fold) are split into ``folds``; each fold is scored by a head fitted on the others.
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=features.device)
    photos = torch.as_tensor(photos, device=features.device)
    ids = torch.unique(photos)
    order = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).to(ids.device)]
    fold_of = torch.empty(int(photos.max()) + 1, dtype=torch.long, device=features.device)
    fold_of[order] = torch.arange(len(order), device=features.device) % max(2, folds)
    fold = fold_of[photos]
    n_classes = int(labels.max()) + 1
    logits = torch.zeros(len(labels), n_classes, device=features.device)
    for k in range(max(2, folds)):
        held = fold == k
        if not held.any() or held.all():
            continue
        head = nn.Linear(features.shape[1], n_classes).to(features.device)
        fit_linear_head(head, features[~held], labels[~held], objective, log_prior, weight_decay=weight_decay)
        with torch.no_grad():
            logits[held] = head(features[held])
    log_t = torch.zeros((), requires_grad=True, device=features.device)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 100.0))
