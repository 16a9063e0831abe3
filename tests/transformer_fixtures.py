"""Tiny transformer settings and small surveys for the transformer tests (fast on 2 shared cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import torch

from core.preprocess.pipeline import PreparedSamples
from tests.synthetic import synthetic_survey

# Small enough that a fit takes a second or two on one CPU thread.
TINY = dict(generations=2, ensemble=1, epochs=4, patience=3, neighbours=8, d_model=16, heads=2, batch_size=64,
            device="cpu", seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, especially on a machine shared with other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def prepared_from_frame(frame: pd.DataFrame, x: str = "X", y: str = "Y") -> PreparedSamples:
    """Log and standardise the ``_ppm`` columns (a stand-in for the preprocessor, for model-level tests)."""
    columns = [c for c in frame.columns if c.endswith("_ppm")]
    logs = np.log(frame[columns].to_numpy(float))
    values = ((logs - logs.mean(axis=0)) / logs.std(axis=0)).astype(np.float32)
    xy = frame[[x, y]].to_numpy(float)
    return PreparedSamples(values, xy, [c.split("_")[0] for c in columns])


def survey_with_duplicates(n: int = 160, duplicates: int = 30, seed: int = 0) -> pd.DataFrame:
    """A synthetic survey where ``duplicates`` extra rows repeat earlier locations (re-assays: values differ)."""
    frame, _ = synthetic_survey(n=n, elements=6, anomalies=4, seed=seed)
    rng = np.random.default_rng(seed)
    again = frame.iloc[rng.choice(n, size=duplicates, replace=False)].copy()
    for column in [c for c in frame.columns if c.endswith("_ppm")]:
        again[column] = again[column] * np.exp(rng.normal(0, 0.05, size=len(again)))
    again["SAMPLEID"] = [f"D{i:04d}" for i in range(len(again))]
    return pd.concat([frame, again], ignore_index=True)


def write_lonlat_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write the survey with longitude/latitude columns (projected from UTM 50S, as GSWA data come)."""
    to_lonlat = pyproj.Transformer.from_crs("EPSG:32750", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(frame["X"].to_numpy(), frame["Y"].to_numpy())
    out = frame.drop(columns=["X", "Y"]).copy()
    out.insert(0, "lat", lat)
    out.insert(0, "lon", lon)
    out.to_csv(path, index=False)
    return path
