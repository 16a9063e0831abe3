"""Which photos go into each training batch (seed 002's three samplers).

Each function returns the batches of one epoch as index arrays (positions in
the training set), ready for ``DataLoader(batch_sampler=...)``.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Instance-uniform: every photo once per epoch, shuffled."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def inverse_probability_weights(p_true: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Sampling weights: class-balanced across classes, favouring low-confidence photos within a class.

    ``p_true`` is each training photo's probability of its own mineral (from an
    evaluation pass over *all* training photos, raw logits). Within a class:
    min-max scale p to s, take ``1 - s``, raise it to ``e = clamp(log 4 /
    log(tail/head), 1, 10)`` where tail/head is the mean of the top 20 % of the
    values over the mean of the rest, and normalise the class to sum to 1.
    Every class then gets the same total, so the weights sum to 1.
    """
    p_true = np.asarray(p_true, dtype=np.float64)
    labels = np.asarray(labels)
    weights = np.zeros(len(p_true), dtype=np.float64)
    present = [c for c in range(n_classes) if np.any(labels == c)]
    for c in present:
        members = np.flatnonzero(labels == c)
        p = p_true[members]
        spread = p.max() - p.min()
        s = (p - p.min()) / spread if spread > 0 else np.zeros_like(p)
        s = 1.0 - s
        weights[members] = within_class_weights(s)
    return weights / len(present)


def within_class_weights(s: np.ndarray) -> np.ndarray:
    """``s**e`` normalised to sum 1, with the exponent that brings the tail/head ratio near 4."""
    if len(s) == 1 or np.allclose(s, s[0]):
        return np.full(len(s), 1.0 / len(s))
    ordered = np.sort(s)[::-1]
    k = max(1, int(math.ceil(0.2 * len(s))))
    head, rest = ordered[:k].mean(), ordered[k:].mean() if len(s) > k else ordered[-1]
    ratio = head / rest if rest > 0 else math.inf
    exponent = 10.0 if ratio <= 1.0 else float(np.clip(math.log(4.0) / math.log(ratio), 1.0, 10.0))
    w = s ** exponent
    if w.sum() <= 0:
        return np.full(len(s), 1.0 / len(s))
    return w / w.sum()


def core_feature_batches(weights: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """CFL batches: half instance-uniform, half drawn by the inverse-probability weights, concatenated."""
    n = len(weights)
    half = max(1, batch_size // 2)
    uniform = uniform_batches(n, half, rng)
    return [np.concatenate([u, rng.choice(n, size=half, replace=True, p=weights)]) for u in uniform]


def class_balanced_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator,
                           per_class: int = 4, n_batches: int | None = None) -> list[np.ndarray]:
    """cRT batches: each class equally likely, ``per_class`` consecutive photos of the chosen class."""
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    n_batches = n_batches or max(1, math.ceil(len(labels) / batch_size))
    groups = max(1, batch_size // per_class)
    batches = []
    for _ in range(n_batches):
        chosen = rng.integers(0, len(members), size=groups)
        batches.append(np.concatenate([rng.choice(members[c], size=per_class, replace=True) for c in chosen]))
    return batches
