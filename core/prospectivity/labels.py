"""Labelled points in and out: the geologist's 0/1 labels, the queries, the pool so far.

A labels layer is any point file with a field (default ``label``) holding 1
(prospective: mineralised, anomalous ground confirmed) or 0 (background). An
empty value means "not labelled yet" and is skipped, so the queries layer can
be handed back with only some points labelled. Anything else (2, "yes",
0.5) is an error naming the file, the field and the rows.

A run folder holds ``queries.gpkg`` (the K points to label, ``label``
empty), ``labels.gpkg`` (every label the run trained on) and
``kdal_state.json``. Handing the edited ``queries.gpkg`` back with
``--labels`` also brings in the ``labels.gpkg`` beside it, so the pool grows
from cycle to cycle without the geologist merging files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.io.samples import read_points

QUERIES_FILE = "queries.gpkg"
LABELS_FILE = "labels.gpkg"
STATE_FILE = "kdal_state.json"


@dataclass
class LabelPoints:
    xy: np.ndarray  # (n, 2) in the work CRS, labelled points only
    labels: np.ndarray  # (n,) 0/1
    sources: list[str]
    n_unlabelled: int  # points with an empty label, skipped


def read_label_points(path: str | os.PathLike, field: str, work_crs, default_source: str = "labels") -> LabelPoints:
    """Points with a 0/1 ``field``; empty values are skipped and counted."""
    path = Path(path)
    frame, xy = read_points(path, work_crs, what="labels")
    if field not in frame.columns:
        raise InvalidInputError(
            f"{path.name}: no label field {field!r} (fields: {', '.join(map(str, frame.columns))}); "
            "choose it with --label-field"
        )
    raw = frame[field]
    empty = raw.isna() | raw.astype(str).str.strip().isin(["", "NULL", "None", "nan"])
    values = pd.to_numeric(raw.where(~empty), errors="coerce")
    bad = ~empty & ~values.isin([0, 1])
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(f"row {i + 1}: {raw.iloc[i]!r}" for i in rows[:5])
        raise InvalidInputError(
            f"{path.name}: field {field!r} must hold 1 (prospective) or 0 (background), or be empty; "
            f"{len(rows)} value(s) are not ({shown}{'...' if len(rows) > 5 else ''})"
        )
    keep = ~empty.to_numpy()
    sources = (frame["source"].astype(str).to_numpy()[keep].tolist() if "source" in frame.columns
               else [default_source] * int(keep.sum()))
    return LabelPoints(xy[keep], values.to_numpy()[keep].astype(np.int64), sources, int(empty.sum()))


def previous_run_folder(labels_path: str | os.PathLike) -> Path | None:
    """The run folder a queries layer came from (it holds the pool so far), or None for a plain labels file."""
    labels_path = Path(labels_path).resolve()
    folder = labels_path.parent
    if labels_path.name == LABELS_FILE or not (folder / STATE_FILE).exists() or not (folder / LABELS_FILE).exists():
        return None
    return folder


def read_state(folder: str | os.PathLike) -> dict:
    path = Path(folder) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read the previous cycle's state {path}: {exc}") from exc


def write_points(path: str | os.PathLike, xy: np.ndarray, crs, columns: dict[str, object]) -> Path:
    """Write points (cell centres) with attribute ``columns`` as a GeoPackage layer named after the file."""
    import geopandas as gpd

    path = Path(path)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    frame = gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)
    frame.to_file(path, driver="GPKG", layer=path.stem, VERSION="1.2")  # 1.4 makes QGIS 3.22 warn
    return path


def empty_labels(n: int) -> pd.arrays.IntegerArray:
    """An integer label column with every value empty (written as NULL, editable in QGIS)."""
    return pd.array([pd.NA] * n, dtype="Int64")
