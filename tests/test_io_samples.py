"""Reading samples and deposits: coordinate detection, CRS rules, vector formats, row order."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidCrsError, InvalidInputError
from core.io.samples import read_deposits, read_samples, utm_crs
from tests.synthetic import synthetic_survey


def test_lon_lat_csv_defaults_to_wgs84_and_local_utm(sed1_samples):
    table = read_samples(sed1_samples)
    assert table.crs.to_epsg() == 4326
    assert table.work_crs.to_epsg() == 32750  # 117-118.5 E, southern hemisphere: UTM 50S
    assert len(table) == 1392
    # Row order and coordinates are kept as in the file.
    raw = pd.read_csv(sed1_samples, usecols=["X", "Y"])
    np.testing.assert_array_equal(table.x, raw["X"].to_numpy())
    # Projected coordinates are metres: neighbouring samples hundreds of metres to kilometres apart.
    assert 600_000 < table.xy[0, 0] < 800_000 and 6_100_000 < table.xy[0, 1] < 6_500_000


def test_utm_zone_choice():
    assert utm_crs(117.5, -33.0).to_epsg() == 32750
    assert utm_crs(-3.7, 40.4).to_epsg() == 32630


def test_projected_csv_needs_a_crs(tmp_path):
    frame, _ = synthetic_survey(n=30)
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InvalidCrsError, match="--crs"):
        read_samples(path)
    table = read_samples(path, crs="EPSG:28350")
    assert table.work_crs.to_epsg() == 28350  # already projected: used as is
    np.testing.assert_allclose(table.xy[:, 0], frame["X"])


def test_explicit_columns_override_detection(tmp_path):
    frame = pd.DataFrame({"East_m": [500000.0, 501000.0], "North_m": [6.5e6, 6.501e6], "X": [1, 2], "Y": [3, 4],
                          "Cu_ppm": [1.0, 2.0]})
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    table = read_samples(path, x="East_m", y="North_m", crs="EPSG:28350")
    np.testing.assert_allclose(table.x, [500000.0, 501000.0])
    with pytest.raises(InvalidInputError, match="no column 'Easting'"):
        read_samples(path, x="Easting", y="North_m", crs="EPSG:28350")


@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile")])
def test_vector_formats_keep_crs_and_order(tmp_path, suffix, driver):
    frame, _ = synthetic_survey(n=25)
    gdf = gpd.GeoDataFrame(frame.drop(columns=["X", "Y"]), geometry=gpd.points_from_xy(frame.X, frame.Y), crs=28350)
    path = tmp_path / f"s{suffix}"
    gdf.to_file(path, driver=driver)
    table = read_samples(path)
    assert table.crs.to_epsg() == 28350
    np.testing.assert_allclose(table.x, frame["X"])
    assert list(table.frame["SAMPLEID"]) == list(frame["SAMPLEID"])


def test_deposits_reprojected_to_work_crs(sed1_samples, sed1_deposits):
    table = read_samples(sed1_samples)
    deposits = read_deposits(sed1_deposits, table.work_crs)
    assert deposits.shape == (32, 2)
    # Deposits lie within the survey's extent (metres).
    assert table.xy[:, 0].min() - 5000 < deposits[:, 0].min() < deposits[:, 0].max() < table.xy[:, 0].max() + 5000


def test_deposits_without_coordinates(tmp_path):
    path = tmp_path / "deposits.csv"
    pd.DataFrame({"name": ["a", "b"], "commodity": ["Au", "Au"]}).to_csv(path, index=False)
    with pytest.raises(InvalidInputError, match="no coordinate columns"):
        read_deposits(path, "EPSG:32750")


def test_missing_coordinates_named(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"lon": [117.0, None], "lat": [-33.0, -33.1], "Cu_ppm": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(InvalidInputError, match="no valid coordinates.*line"):
        read_samples(path)
