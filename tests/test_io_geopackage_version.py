"""Every GeoPackage the engine writes is version 1.2: QGIS 3.22 warns on opening 1.4 ("partially supported")."""

import sqlite3

import numpy as np
import pandas as pd

from core.io.scores import write_scores
from core.prospectivity.labels import write_points

GPKG_1_2 = 10200  # PRAGMA user_version of a GeoPackage 1.2 file


def _version(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


def test_query_points_and_scores_are_geopackage_1_2(tmp_path):
    queries = write_points(tmp_path / "queries.gpkg", np.array([[400000.0, 6400000.0], [401000.0, 6401000.0]]),
                           "EPSG:32750", {"label": [1, 0]})
    assert _version(queries) == GPKG_1_2
    frame = pd.DataFrame({"x": [117.0, 117.1], "y": [-33.0, -33.1], "anomaly_score": [0.1, 0.9]})
    written = write_scores(frame, "EPSG:4283", tmp_path)
    assert _version(written["gpkg"]) == GPKG_1_2
