"""Evidence rasters on one grid, and points placed on its cells.

The grid check (CRS, cell size, extent) is :func:`core.io.rasters.read_raster_stack`'s;
its errors name the two files that disagree. A cell is *valid* when every
evidence band has data there; only valid cells are trained on, ranked or
counted as area.

Points (deposits, labelled locations, high-confidence anomalies) are placed
on the cell that holds them. Points beyond the grid, or on a nodata cell,
are never silently used: :class:`CellPoints` keeps their counts so that the
command can report them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.io.rasters import RasterStack, cells_of, raster_grid, read_raster_stack


@dataclass
class EvidenceStack:
    """Evidence bands on one grid, with the valid cells as a flat index."""

    rasters: RasterStack
    cell_rows: np.ndarray = field(init=False)  # (n_valid,) row of each valid cell
    cell_cols: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not self.rasters.valid_mask.any():
            raise InvalidInputError(
                f"the evidence rasters {', '.join(self.rasters.paths)} have no cell where every band has data"
            )
        self.cell_rows, self.cell_cols = np.nonzero(self.rasters.valid_mask)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rasters.shape

    @property
    def valid_mask(self) -> np.ndarray:
        return self.rasters.valid_mask

    @property
    def n_cells(self) -> int:
        return len(self.cell_rows)

    @property
    def band_names(self) -> list[str]:
        return self.rasters.band_names

    @property
    def cell_size(self) -> tuple[float, float]:
        return abs(self.rasters.transform.a), abs(self.rasters.transform.e)

    def features(self) -> np.ndarray:
        """(n_valid, bands) evidence values of the valid cells, in flat-index order."""
        return self.rasters.values[:, self.cell_rows, self.cell_cols].T.astype(np.float32)

    def band_values(self, index: int) -> np.ndarray:
        return self.rasters.values[index, self.cell_rows, self.cell_cols].astype(np.float64)

    def to_map(self, values: np.ndarray, fill: float = np.nan, dtype=np.float32) -> np.ndarray:
        """Put per-valid-cell ``values`` back on the grid; ``fill`` elsewhere."""
        out = np.full(self.shape, fill, dtype=dtype)
        out[self.cell_rows, self.cell_cols] = values
        return out

    def flat_index_map(self) -> np.ndarray:
        """(rows, cols) int array: flat valid-cell index, -1 on invalid cells."""
        return self.to_map(np.arange(self.n_cells), fill=-1, dtype=np.int64)

    def cell_centres(self, flat_index: np.ndarray) -> np.ndarray:
        """(n, 2) map coordinates of the centres of valid cells ``flat_index``."""
        t = self.rasters.transform
        xs, ys = t * (self.cell_cols[flat_index] + 0.5, self.cell_rows[flat_index] + 0.5)
        return np.column_stack([xs, ys])


RUN_MAP_COLUMN = "anomaly_score"  # a detect run's map in its scored samples (with --commodity: commodity-aware)
POINT_SUFFIXES = {".csv", ".txt", ".gpkg", ".shp", ".geojson", ".json"}
EVIDENCE_SPACING_RULE = "area"  # scored samples are gridded by the survey's area spacing (core.grid.spacing)


def load_evidence(paths: Sequence[str | os.PathLike]) -> EvidenceStack:
    """Read the evidence; rasters must share one grid (CRS, cell size, extent).

    Besides rasters, an entry may be a ``detect`` run folder or its scored
    samples (``scores.gpkg``/``.csv``): the run's map (``anomaly_score``,
    the commodity-aware map when the run had ``--commodity``) is gridded
    with the ``grid`` command's IDW (:func:`grid_run_map`), on the first
    raster's grid when there is one, else by the survey's area spacing.
    """
    if not paths:
        raise InvalidInputError("give at least one evidence raster (--evidence)")
    paths = [Path(p) for p in paths]
    scored = [p for p in paths if p.is_dir() or p.suffix.lower() in POINT_SUFFIXES]
    rasters_in = [p for p in paths if p not in scored]
    if not scored:
        rasters = read_raster_stack(rasters_in)
    else:
        like = raster_grid(rasters_in[0]) if rasters_in else None
        gridded = {p: grid_run_map(p, like) for p in scored}
        first = next(iter(gridded.values()))
        others = read_raster_stack(rasters_in) if rasters_in else None
        values, names = [], []
        for path in paths:  # the bands in the order given; the rasters together, where the first one was
            if path in gridded:
                values.append(gridded[path].array)
                names += gridded[path].band_names
            elif path == rasters_in[0]:
                values.append(others.values)
                names += others.band_names
        stacked = np.concatenate(values, axis=0)
        rasters = RasterStack(stacked, first.transform, first.crs, names, np.isfinite(stacked).all(axis=0),
                              [str(p) for p in paths])
    if rasters.crs is None:
        raise InvalidInputError(f"{rasters.paths[0]} has no CRS; the deposits cannot be placed on it")
    return EvidenceStack(rasters)


def scored_samples_file(path: str | os.PathLike) -> Path:
    """The scored samples of a ``detect`` run folder (``scores.gpkg``, else ``scores.csv``), or the file itself."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in ("scores.gpkg", "scores.csv"):
        if (path / name).is_file():
            return path / name
    raise InvalidInputError(f"{path} is a folder but not a detect run: it holds no scores.gpkg or scores.csv")


def _run_samples_crs(source: Path) -> str | None:
    """The samples' CRS from the detect run's ``run.json`` beside a scores CSV (a CSV carries none)."""
    import json

    record = source.parent / "run.json"
    if source.suffix.lower() != ".csv" or not record.is_file():
        return None
    try:
        return (json.loads(record.read_text()).get("samples") or {}).get("crs")
    except (OSError, ValueError, AttributeError):
        return None


def grid_run_map(path: str | os.PathLike, like=None):
    """A detect run's map (``anomaly_score`` of its scored samples) gridded by IDW, as one band.

    ``like``: the grid to lay it on (:func:`core.io.rasters.raster_grid`);
    otherwise the grid follows the survey's area spacing, so that ground
    between clusters of samples (and the deposits there) stays on the map.
    """
    from core.grid.idw import grid_samples
    from core.io.samples import read_samples

    source = scored_samples_file(path)
    table = read_samples(source, crs=_run_samples_crs(source), work_crs=like.crs.to_wkt() if like is not None else None)
    if RUN_MAP_COLUMN not in table.frame.columns:
        raise InvalidInputError(f"{source.name}: no {RUN_MAP_COLUMN} column; give a detect run's scored samples")
    values = pd.to_numeric(table.frame[RUN_MAP_COLUMN], errors="coerce").to_numpy(dtype=float)
    return grid_samples(table.xy, values, band_names=[RUN_MAP_COLUMN], crs=table.work_crs, like=like,
                        spacing_rule=EVIDENCE_SPACING_RULE)


@dataclass
class CellPoints:
    """Points placed on valid cells: ``flat`` index per point placed, and what was left out."""

    flat: np.ndarray  # (n_placed,) valid-cell index of each point placed
    placed: np.ndarray  # (n_points,) bool: the point lies on a valid cell
    n_outside_grid: int
    n_on_nodata: int

    @property
    def n_points(self) -> int:
        return len(self.placed)

    def describe(self, what: str) -> str:
        """A line for the log, e.g. '32 deposits: 30 on the grid, 1 outside it, 1 on nodata cells'."""
        text = f"{self.n_points} {what}: {int(self.placed.sum())} on valid cells"
        if self.n_outside_grid:
            text += f", {self.n_outside_grid} outside the grid (not used)"
        if self.n_on_nodata:
            text += f", {self.n_on_nodata} on cells without data (not used)"
        return text


def place_points(stack: EvidenceStack, xy: np.ndarray) -> CellPoints:
    """Place points (n, 2), in the stack's CRS, on its valid cells."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    rows, cols, on_grid = cells_of(xy, stack.rasters.transform, stack.shape)
    flat = np.full(len(xy), -1, dtype=np.int64)
    flat[on_grid] = stack.flat_index_map()[rows[on_grid], cols[on_grid]]
    placed = flat >= 0
    return CellPoints(flat[placed], placed, int((~on_grid).sum()), int((on_grid & ~placed).sum()))


def cells_from_mask_raster(stack: EvidenceStack, path: str | os.PathLike) -> np.ndarray:
    """Valid-cell indices where a 0/1 raster on the evidence grid is non-zero (e.g. AnomFilter's picks)."""
    mask = read_raster_stack([stack.rasters.paths[0], Path(path)])
    values = mask.values[-1]
    chosen = np.isfinite(values) & (values != 0)
    return stack.flat_index_map()[chosen & stack.valid_mask]


def near_cells(rows: np.ndarray, cols: np.ndarray, deposit_cells: np.ndarray, radius: int) -> np.ndarray:
    """Bool per valid cell: within ``radius`` cells (Chebyshev) of a deposit."""
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    near = np.zeros(shape, dtype=bool)
    for i in np.asarray(deposit_cells, dtype=np.int64):
        r, c = rows[i], cols[i]
        near[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1] = True
    return near[rows, cols]
