"""Class-wise accuracy figures of seed 002 and the confusion-matrix picture.

- accuracy: share of test photos identified correctly (dominated by frequent minerals)
- mAcc: mean over minerals of the per-mineral accuracy
- tail mAcc: mAcc over the *tail* minerals = the rarest minerals that together
  hold at most 20 % of the training photos (at least one mineral)
- CwASD: standard deviation (population) of the per-mineral accuracies
- CwARange: best minus worst per-mineral accuracy
Minerals without test photos are left out of the class-wise figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tail_classes(train_counts, share: float = 0.2) -> list[int]:
    """Indices of the rarest classes holding together at most ``share`` of the training photos."""
    counts = np.asarray(train_counts, dtype=np.int64)
    order = np.argsort(counts, kind="stable")
    limit = share * counts.sum()
    tail, total = [], 0
    for c in order:
        if counts[c] == 0:
            continue
        if tail and total + counts[c] > limit:
            break
        tail.append(int(c))
        total += counts[c]
    return sorted(tail)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classwise_metrics(y_true, y_pred, n_classes: int, tail: list[int]) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    support = matrix.sum(axis=1)
    per_class = np.full(n_classes, np.nan)
    seen = support > 0
    per_class[seen] = np.diag(matrix)[seen] / support[seen]
    acc = per_class[seen]
    tail_seen = [c for c in tail if seen[c]]
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "mAcc": float(acc.mean()),
        "tail_mAcc": float(np.mean(per_class[tail_seen])) if tail_seen else float("nan"),
        "CwASD": float(acc.std()),
        "CwARange": float(acc.max() - acc.min()),
        "per_class_accuracy": per_class,
        "tail_classes": tail,
        "n_test": int(len(y_true)),
        "confusion": matrix,
    }


def mean_class_accuracy(y_true, y_pred, n_classes: int) -> float:
    """mAcc alone (the figure that decides whether a training stage is kept)."""
    return classwise_metrics(y_true, y_pred, n_classes, [])["mAcc"]


def plot_confusion_matrix(matrix: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG (rows: true mineral)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(5, 0.28 * k + 2), max(4, 0.28 * k + 1.5)), dpi=110)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=6)
    ax.set_yticks(range(k), classes, fontsize=6)
    ax.set_xlabel("identified as")
    ax.set_ylabel("true mineral")
    ax.set_title(title or "Confusion matrix (share of each true mineral)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
