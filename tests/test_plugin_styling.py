"""Styles of result layers, on small layers with known answers (a real QGIS, no engine needed)."""

from __future__ import annotations

import pytest

from tests.plugin_fixtures import fixture_qgis_app, requires_qgis  # noqa: F401

pytestmark = requires_qgis


def write_raster(path, values, nodata=-9999.0):
    """A float32 GeoTIFF in MGA zone 50, written with QGIS's own GDAL."""
    import numpy as np
    from osgeo import gdal, osr

    array = np.asarray(values, dtype="float32")
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((400000, 100, 0, 6500000, 0, -100))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(28350)
    dataset.SetProjection(srs.ExportToWkt())
    band = dataset.GetRasterBand(1)
    band.SetNoDataValue(nodata)
    band.WriteArray(array)
    dataset = None
    return path


def test_percentile_known_answers():
    from geoanomaly_qgis.styling import percentile

    values = [float(v) for v in range(101)]
    assert percentile(values, 0) == 0 and percentile(values, 100) == 100
    assert percentile(values, 50) == 50 and percentile(values, 97.5) == pytest.approx(97.5)
    assert percentile([1.0, 3.0], 50) == 2.0


def test_heat_map_is_stretched_to_percentiles_not_to_an_outlier(qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsRasterLayer

    from geoanomaly_qgis.styling import style_anomaly_raster

    values = np.tile(np.linspace(0.0, 10.0, 100), (100, 1))
    values[0, 0] = 10000.0  # one wild score must not wash the map out
    values[50:, :20] = -9999.0  # nodata
    layer = QgsRasterLayer(str(write_raster(tmp_path / "score.tif", values)), "score")
    assert style_anomaly_raster(layer)
    renderer = layer.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    low, high = renderer.classificationMin(), renderer.classificationMax()
    assert 0.0 <= low < 0.6 and 9.4 < high <= 10.0, (low, high)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert [round(i.value, 6) for i in items] == [round(low + f * (high - low), 6) for f in (0, .25, .5, .75, 1)]
    assert items[0].color.alpha() == 0 and items[-1].color.name() == "#bd0026"
    assert items[0].label.startswith("P2 and below: background") and "most anomalous" in items[-1].label
    # Inner stops are labelled with their percentile among the cells (an even ramp of values here).
    inner = [float(i.label.split()[0][1:]) for i in items[1:-1]]
    assert inner == sorted(inner) and 15 < inner[0] < 35 and 65 < inner[-1] < 85, inner


def test_all_nodata_raster_is_left_unstyled(qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsRasterLayer

    from geoanomaly_qgis.styling import style_anomaly_raster

    layer = QgsRasterLayer(str(write_raster(tmp_path / "empty.tif", np.full((5, 5), -9999.0))), "empty")
    assert style_anomaly_raster(layer) is False


def test_scored_points_get_percentile_classes(qgis_app):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    from geoanomaly_qgis.styling import POINT_PERCENTILES, style_scored_points

    layer = QgsVectorLayer("Point?crs=EPSG:28350&field=anomaly_score:double", "scores", "memory")
    features = []
    for i in range(1001):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(400000 + i, 6400000)))
        feature["anomaly_score"] = float(i)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    assert style_scored_points(layer)
    ranges = layer.renderer().ranges()
    assert len(ranges) == len(POINT_PERCENTILES) + 1
    assert [r.upperValue() for r in ranges[:-1]] == pytest.approx([10.0 * q for q in POINT_PERCENTILES])
    sizes = [r.symbol().size() for r in ranges]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], "more anomalous, bigger"
    assert ranges[0].label().startswith("background") and "most anomalous" in ranges[-1].label()
    assert not style_scored_points(QgsVectorLayer("Point?field=other:double", "x", "memory"))


def test_prospectivity_classes_read_very_high_to_low_and_queries_say_why_here(qgis_app, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsRasterLayer, QgsVectorLayer

    from geoanomaly_qgis.styling import style_class_raster, style_query_points

    codes = write_raster(tmp_path / "classes.tif", [[4, 3, 2, 1], [1, 1, 2, 0]], nodata=0)
    layer = QgsRasterLayer(str(codes), "classes")
    assert style_class_raster(layer)
    legend = {c.value: c.label for c in layer.renderer().classes()}
    assert legend == {4.0: "very high", 3.0: "high", 2.0: "moderate", 1.0: "low"}

    queries = QgsVectorLayer("Point?crs=EPSG:28350&field=query:integer&field=why_here:string", "q", "memory")
    feature = QgsFeature(queries.fields())
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(400000, 6400000)))
    feature["query"], feature["why_here"] = 1, "map undecided here (p = 0.50)"
    queries.dataProvider().addFeatures([feature])
    assert style_query_points(queries)
    assert queries.labelsEnabled() and "why_here" in queries.mapTipTemplate()


def test_run_group_collects_layers_in_rank_order(qgis_app, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer

    from geoanomaly_qgis.styling import move_into_group, run_group_name

    project = QgsProject()
    a = QgsVectorLayer("Point?field=x:double", "raster-like", "memory")
    b = QgsVectorLayer("Point?field=x:double", "points-like", "memory")
    project.addMapLayer(a)
    project.addMapLayer(b)
    name = run_group_name("knn")
    assert name.startswith("GeoAnomaly knn ")
    group = move_into_group(project, a, name)
    move_into_group(project, b, name)
    assert project.layerTreeRoot().children()[0] is group or project.layerTreeRoot().children()[0].name() == name
    assert [node.layer().name() for node in group.findLayers()] == ["points-like", "raster-like"]
    assert project.layerTreeRoot().findLayer(a.id()).parent().name() == name


def test_prospectivity_and_class_rasters_read_in_words(qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsRasterLayer

    from geoanomaly_qgis.styling import LEGEND_TITLES, style_class_raster, style_prospectivity_raster

    probability = QgsRasterLayer(str(write_raster(tmp_path / "p.tif", np.linspace(0, 0.7, 100).reshape(10, 10))),
                                 "p")
    assert style_prospectivity_raster(probability)
    renderer = probability.renderer()
    # A fixed 0..1 range: a map of 0.7 at most does not look as prospective as one that reaches 1.
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)
    labels = [item.label for item in renderer.shader().rasterShaderFunction().colorRampItemList()]
    assert labels[0] == "0 (unlikely)" and labels[-1] == "1 (most prospective)"
    classes = QgsRasterLayer(str(write_raster(tmp_path / "c.tif", np.tile([1.0, 2.0, 3.0, 4.0], (4, 1)))), "c")
    assert style_class_raster(classes)
    assert classes.renderer().type() == "paletted"
    assert {c.value: c.label for c in classes.renderer().classes()} == {4: "very high", 3: "high", 2: "moderate",
                                                                       1: "low"}
    assert LEGEND_TITLES["prospectivity"] == "Prospectivity (0–1)"
