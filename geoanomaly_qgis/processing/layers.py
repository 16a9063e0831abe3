"""Checking QGIS layers before a run and handing them to the engine as files.

Every check names the layer and the problem, so a geologist can fix it
without reading a traceback; the engine would otherwise stop later with a
less specific message (or, worse, run on the wrong columns).
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsFields,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsVectorFileWriter,
    QgsWkbTypes,
)

# The engine writes the point coordinates as columns x, y of its outputs; an
# attribute of the same name (a CSV layer's X/Y columns) would clash with them
# in a GeoPackage (field names there ignore case). The geometry carries them.
COORDINATE_FIELDS = frozenset({"x", "y"})

# Element columns carry their unit in the name (Au_ppb, Cu_ppm, Fe2O3_pct).
UNIT_SUFFIXES = ("_ppm", "_ppb", "_pct")


def numeric_fields(fields: QgsFields) -> list[str]:
    return [field.name() for field in fields if field.isNumeric()]


def element_fields(fields: QgsFields) -> list[str]:
    """Numeric fields whose names end in a unit suffix, in layer order."""
    return [name for name in numeric_fields(fields) if name.lower().endswith(UNIT_SUFFIXES)]


def check_point_source(
    source: QgsProcessingFeatureSource | None,
    role: str,
    selected_only: bool = False,
    need_numeric: bool = True,
) -> None:
    """Raise ``QgsProcessingException`` naming the problem with a point layer.

    ``role`` is the layer's part in the run ("samples", "deposits").
    """
    if source is None:
        raise QgsProcessingException(f"The {role} layer could not be opened; check that its file still exists.")
    name = source.sourceName() or role
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PointGeometry:
        kind = QgsWkbTypes.geometryDisplayString(QgsWkbTypes.geometryType(source.wkbType())).lower()
        raise QgsProcessingException(
            f"The {role} layer '{name}' has {kind} geometries; choose a point layer (one point per sample)."
        )
    if source.featureCount() == 0:
        if selected_only:
            raise QgsProcessingException(
                f"The {role} layer '{name}' has no selected features, and 'Selected features only' is ticked: "
                "select some samples or untick it."
            )
        raise QgsProcessingException(f"The {role} layer '{name}' is empty: it has no features.")
    if not source.sourceCrs().isValid():
        raise QgsProcessingException(
            f"The {role} layer '{name}' has no coordinate reference system; set one in Layer Properties > Source."
        )
    if need_numeric and not numeric_fields(source.fields()):
        raise QgsProcessingException(
            f"The {role} layer '{name}' has no numeric fields: element concentrations must be stored as numbers "
            "(for a CSV layer, tick 'Detect field types' when adding it)."
        )


def check_element_choice(source: QgsProcessingFeatureSource, chosen: list[str], role: str = "samples") -> list[str]:
    """The element fields to use: the chosen ones (all numeric), or those with a unit suffix."""
    name = source.sourceName() or role
    fields = source.fields()
    if chosen:
        missing = [field for field in chosen if fields.lookupField(field) < 0]
        if missing:
            raise QgsProcessingException(f"The {role} layer '{name}' has no field named {', '.join(missing)}.")
        not_numeric = [field for field in chosen if not fields.field(fields.lookupField(field)).isNumeric()]
        if not_numeric:
            raise QgsProcessingException(
                f"Field(s) {', '.join(not_numeric)} of the {role} layer '{name}' are not numeric; "
                "choose fields holding element concentrations."
            )
        return list(chosen)
    found = element_fields(fields)
    if not found:
        raise QgsProcessingException(
            f"No element fields were chosen, and the {role} layer '{name}' has no numeric fields whose names end "
            f"in {', '.join(UNIT_SUFFIXES)}: choose the element fields to use."
        )
    return found


def geographic_crs_note(crs: QgsCoordinateReferenceSystem, role: str = "samples") -> str | None:
    """The warning shown when a layer is in degrees (the engine reprojects it to metres)."""
    if crs.isGeographic():
        return (
            f"The {role} layer is in a geographic CRS ({crs.authid() or crs.description()}, degrees): the engine "
            "reprojects it to a projected CRS in metres for distances and the raster; the scored points stay in "
            "the layer's CRS."
        )
    return None


def export_points(
    source: QgsProcessingFeatureSource,
    path: Path,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None = None,
    target_crs: QgsCoordinateReferenceSystem | None = None,
    layer_name: str = "points",
    skip_fields: frozenset[str] = COORDINATE_FIELDS,
) -> Path:
    """Write ``source`` (already limited to the selection when asked) to a GeoPackage for the engine.

    With ``target_crs`` the points are reprojected (deposits into the samples' CRS).
    Fields named in ``skip_fields`` (any case) are left out.
    """
    crs = target_crs if target_crs is not None and target_crs.isValid() else source.sourceCrs()
    fields = QgsFields()
    kept = []
    for index, field in enumerate(source.fields()):
        if field.name().lower() in skip_fields or field.name().lower() == "fid":
            continue  # "fid" is the GeoPackage's own key
        fields.append(field)
        kept.append(index)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = layer_name
    options.fileEncoding = "UTF-8"
    writer = QgsVectorFileWriter.create(
        str(path), fields, source.wkbType(), crs, context.transformContext(), options
    )
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"Cannot write the temporary file {path}: {writer.errorMessage()}")
    request = QgsFeatureRequest()
    request.setSubsetOfAttributes(kept)
    if crs != source.sourceCrs():
        request.setDestinationCrs(crs, context.transformContext())
    try:
        for feature in source.getFeatures(request):
            if feedback is not None and feedback.isCanceled():
                break
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            out.setAttributes([feature.attribute(i) for i in kept])
            writer.addFeature(out, QgsFeatureSink.FastInsert)
    finally:
        del writer  # closes the GeoPackage
    return path


def raster_file(layer, what: str = "raster") -> str:
    """The file behind a raster layer: the engine reads files, not QGIS data sources."""
    path = layer.dataProvider().dataSourceUri().split("|")[0]
    if layer.providerType() != "gdal" or not Path(path).is_file():
        raise QgsProcessingException(
            f"The {what} '{layer.name()}' is not a file on disk; save it as a GeoTIFF first.")
    return path
