"""Shared fixtures of the mineral tests: one tiny synthetic photo set per session."""

from __future__ import annotations

import pytest

from core.minerals.synthetic import write_synthetic_photo_set


@pytest.fixture(scope="session")
def tiny_photo_set(tmp_path_factory):
    """36 classes, 24 photos in the largest class, 32 px (imbalance 8 keeps >= 3 per class)."""
    root = tmp_path_factory.mktemp("minerals") / "photos"
    counts = write_synthetic_photo_set(root, n_max=24, imbalance=8.0, size=32, seed=3)
    return root, counts
