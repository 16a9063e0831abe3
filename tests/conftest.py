"""Fixtures shared by the whole suite: the real survey, and small synthetic surveys with known anomalies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import synthetic_survey

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "gswa_sed1_au"

# Tests share two cores: keep torch and BLAS from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def sed1_samples() -> Path:
    path = SHARED_DATA / "samples.csv"
    assert path.exists(), f"the shared GSWA survey is expected at {path} (../shared beside the repository)"
    return path


@pytest.fixture(scope="session")
def sed1_deposits() -> Path:
    return SHARED_DATA / "deposits.csv"


@pytest.fixture
def synthetic_csv(tmp_path) -> tuple[Path, np.ndarray]:
    frame, planted = synthetic_survey()
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    return path, planted
