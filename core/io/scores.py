"""Writing scored samples: a CSV and a GeoPackage point layer in the input CRS and row order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.io.samples import SampleTable
from core.preprocess.elements import assay_columns


def scores_frame(table: SampleTable, columns: dict[str, np.ndarray], keep_assays: bool = False) -> pd.DataFrame:
    """``x``, ``y`` (input CRS), the samples' own attributes, then the score columns.

    Assay columns are left out unless ``keep_assays`` (the source file has
    them, joined by ``sample_row``), which keeps the layer light in QGIS.
    """
    assays = {c for cols in assay_columns(table.frame.columns).values() for c, _ in cols}
    attributes = table.frame[[c for c in table.frame.columns if keep_assays or c not in assays]]
    attributes = attributes.drop(columns=[c for c in (table.x_column, table.y_column, "x", "y") if c in attributes])
    out = pd.DataFrame({"x": table.x, "y": table.y, "sample_row": np.arange(len(table))})
    # GeoPackage field names ignore case: an attribute "X" would clash with "x".
    taken = {name.lower() for name in [*out.columns, *columns]}
    attributes = attributes.rename(columns={c: f"{c}_input" for c in attributes.columns if str(c).lower() in taken})
    out = pd.concat([out, attributes.reset_index(drop=True)], axis=1)
    for name, values in columns.items():
        out[name] = values
    return out


def write_scores(frame: pd.DataFrame, crs, folder: str | Path, stem: str = "scores") -> dict[str, Path]:
    """Write ``stem.csv`` and ``stem.gpkg`` (layer ``stem``) into ``folder``."""
    import geopandas as gpd

    folder = Path(folder)
    csv_path, gpkg_path = folder / f"{stem}.csv", folder / f"{stem}.gpkg"
    frame.to_csv(csv_path, index=False)
    gdf = gpd.GeoDataFrame(frame.copy(), geometry=gpd.points_from_xy(frame["x"], frame["y"]), crs=crs)
    # GeoPackage field names: keep them plain; object columns as text.
    for col in gdf.columns:
        if col != "geometry" and gdf[col].dtype == object:
            gdf[col] = gdf[col].astype("string")
    # GeoPackage 1.2: QGIS 3.22 warns that newer versions "may only be partially supported".
    gdf.to_file(gpkg_path, layer=stem, driver="GPKG", VERSION="1.2")
    return {"csv": csv_path, "gpkg": gpkg_path}
