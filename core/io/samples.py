"""Reading geochemical samples and known deposits.

Samples come as CSV (coordinate columns auto-detected), GeoPackage or
Shapefile. Coordinates are kept in the input CRS for outputs, and projected
to a metric *work CRS* (auto: the local UTM zone) for every distance
computation, since distances in degrees are wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj

from core.errors import InvalidCrsError, InvalidInputError

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}

# Coordinate column pairs tried in order (lower-case names). Geographic pairs
# imply longitude/latitude; the others are taken as given (projected unless
# their values only make sense as degrees).
_GEOGRAPHIC_PAIRS = [("lon", "lat"), ("longitude", "latitude"), ("long", "lat"), ("lng", "lat")]
_PLAIN_PAIRS = [("x", "y"), ("easting", "northing"), ("east", "north"), ("mga_e", "mga_n"),
                ("utm_e", "utm_n"), ("e", "n"), ("xcoord", "ycoord"), ("x_coord", "y_coord")]


@dataclass
class SampleTable:
    """Samples as read: attributes in input row order, and both coordinate forms."""

    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    crs: pyproj.CRS
    xy: np.ndarray
    work_crs: pyproj.CRS
    source: str
    x_column: str = "x"
    y_column: str = "y"

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, index: np.ndarray) -> SampleTable:
        """The rows at ``index`` (for selections and tests)."""
        return SampleTable(self.frame.iloc[index].reset_index(drop=True), self.x[index], self.y[index],
                           self.crs, self.xy[index], self.work_crs, self.source, self.x_column, self.y_column)


def read_samples(path: str | Path, x: str | None = None, y: str | None = None, crs: str | None = None,
                 work_crs: str | None = None, layer: str | None = None) -> SampleTable:
    """Read a point file of samples; see the module docstring for the rules.

    Raises:
        InvalidInputError: the file is missing, unreadable, empty or has no coordinate columns.
        InvalidCrsError: the CRS is missing, unknown, or not projected where metres are needed.
    """
    path = Path(path)
    frame, xs, ys, in_crs, x_col, y_col = _read_points(path, x, y, crs, layer, what="samples")
    if len(frame) == 0:
        raise InvalidInputError(f"{path.name}: the file holds no samples")
    work = resolve_work_crs(in_crs, xs, ys, work_crs)
    xy = project(xs, ys, in_crs, work)
    return SampleTable(frame.reset_index(drop=True), xs, ys, in_crs, xy, work, str(path), x_col, y_col)


def read_deposits(path: str | Path, work_crs: pyproj.CRS | str, x: str | None = None, y: str | None = None,
                  crs: str | None = None, layer: str | None = None) -> np.ndarray:
    """Known deposits as an (m, 2) array of coordinates in ``work_crs``.

    Raises:
        InvalidInputError: the file is missing, unreadable or has no coordinate columns.
        InvalidCrsError: the deposits' CRS is missing or unknown.
    """
    return read_points(path, work_crs, x, y, crs, layer, what="deposits")[1]


def read_points(path: str | Path, work_crs: pyproj.CRS | str, x: str | None = None, y: str | None = None,
                crs: str | None = None, layer: str | None = None,
                what: str = "points") -> tuple[pd.DataFrame, np.ndarray]:
    """Attributes of a point file (deposits, labels...) and their (m, 2) coordinates in ``work_crs``.

    ``what`` names the points in error messages ("deposits", "labels").
    """
    path = Path(path)
    frame, xs, ys, in_crs, _, _ = _read_points(path, x, y, crs, layer, what=what)
    if len(frame) == 0:
        raise InvalidInputError(f"{path.name}: the {what} file holds no points")
    return frame.reset_index(drop=True), project(xs, ys, in_crs, pyproj.CRS.from_user_input(work_crs))


def resolve_work_crs(crs: pyproj.CRS, xs: np.ndarray, ys: np.ndarray, work_crs: str | None = None) -> pyproj.CRS:
    """The metric CRS for distance work: the user's, the input's if projected, else local UTM."""
    if work_crs:
        chosen = parse_crs(work_crs, "--work-crs")
        if not chosen.is_projected:
            raise InvalidCrsError(f"--work-crs {work_crs} is not a projected CRS; distances need metres")
        return chosen
    if crs.is_projected:
        return crs
    lon, lat = project(xs, ys, crs, pyproj.CRS.from_epsg(4326)).T
    return utm_crs(float(np.nanmedian(lon)), float(np.nanmedian(lat)))


def utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS 84 UTM zone holding (lon, lat)."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def project(xs: np.ndarray, ys: np.ndarray, src: pyproj.CRS, dst: pyproj.CRS) -> np.ndarray:
    if src == dst:
        return np.column_stack([xs, ys]).astype(np.float64)
    transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    px, py = transformer.transform(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    out = np.column_stack([px, py])
    if not np.all(np.isfinite(out)):
        raise InvalidCrsError(f"some coordinates cannot be transformed from {src.to_string()} to {dst.to_string()}; "
                              "check the coordinate columns and --crs")
    return out


def parse_crs(text: str, option: str = "--crs") -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise InvalidCrsError(f"{option} {text!r} is not a CRS pyproj knows (try EPSG:XXXX)") from exc


# -- internals --------------------------------------------------------------

def _read_points(path: Path, x: str | None, y: str | None, crs: str | None, layer: str | None, what: str):
    if not path.exists():
        raise InvalidInputError(f"{what} file not found: {path}")
    if path.is_dir():
        raise InvalidInputError(f"{what} path {path} is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix in VECTOR_SUFFIXES and not (x and y):
        return _read_vector(path, crs, layer, what)
    if suffix in CSV_SUFFIXES or (x and y):
        frame = _read_csv(path, what)
        return _points_from_columns(frame, path, x, y, crs, what)
    raise InvalidInputError(f"{path.name}: unsupported {what} format {suffix!r} (use CSV, GeoPackage or Shapefile)")


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() == ".tsv" else None
    try:
        frame = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c", encoding_errors="replace")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{path.name}: cannot read the {what} CSV ({first})") from exc
    if frame.shape[1] < 2:
        raise InvalidInputError(f"{path.name}: the {what} CSV has fewer than two columns; is the separator a comma?")
    return frame


def _read_vector(path: Path, crs: str | None, layer: str | None, what: str):
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises many kinds
        raise InvalidInputError(f"{path.name}: cannot read the {what} file ({exc})") from exc
    if gdf.geometry is None or gdf.geometry.isna().all():
        raise InvalidInputError(f"{path.name}: the {what} layer has no geometries")
    geom = gdf.geometry
    if not set(geom.geom_type.dropna().unique()) <= {"Point", "MultiPoint"}:
        raise InvalidInputError(f"{path.name}: the {what} layer must hold points, found {sorted(set(geom.geom_type.dropna()))}")
    if geom.isna().any() or geom.is_empty.any():
        bad = int((geom.isna() | geom.is_empty).sum())
        raise InvalidInputError(f"{path.name}: {bad} {what} have no location (empty geometry)")
    points = geom.representative_point() if (geom.geom_type == "MultiPoint").any() else geom
    if crs:
        in_crs = parse_crs(crs)
    elif gdf.crs is not None:
        in_crs = pyproj.CRS.from_user_input(gdf.crs)
    else:
        raise InvalidCrsError(f"{path.name}: the {what} layer has no CRS; pass --crs (e.g. EPSG:28350)")
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    return frame, points.x.to_numpy(float), points.y.to_numpy(float), in_crs, "x", "y"


def _points_from_columns(frame: pd.DataFrame, path: Path, x: str | None, y: str | None, crs: str | None, what: str):
    if bool(x) != bool(y):
        raise InvalidInputError("give both --x and --y, or neither")
    geographic_names = False
    if x and y:
        for col in (x, y):
            if col not in frame.columns:
                raise InvalidInputError(f"{path.name}: no column {col!r} (columns: {', '.join(map(str, frame.columns[:12]))}...)")
        x_col, y_col = x, y
    else:
        found = _find_coordinate_columns(frame)
        if found is None:
            raise InvalidInputError(
                f"{path.name}: no coordinate columns found in the {what} file; expected X/Y, Easting/Northing or "
                "Longitude/Latitude columns" + (" (or name them with --x and --y)" if what == "samples" else ""))
        x_col, y_col, geographic_names = found
    xs = pd.to_numeric(frame[x_col], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(frame[y_col], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(xs) & np.isfinite(ys))
    if bad.all():
        raise InvalidInputError(f"{path.name}: coordinate columns {x_col!r}/{y_col!r} hold no numbers")
    if bad.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])
        raise InvalidInputError(f"{path.name}: {int(bad.sum())} {what} have no valid coordinates in "
                                f"{x_col!r}/{y_col!r} (file lines {rows}{'...' if bad.sum() > 5 else ''})")
    looks_geographic = bool(np.all(np.abs(xs) <= 180) and np.all(np.abs(ys) <= 90))
    if crs:
        in_crs = parse_crs(crs)
    elif geographic_names or looks_geographic:
        if geographic_names and not looks_geographic:
            raise InvalidCrsError(f"{path.name}: columns {x_col!r}/{y_col!r} are named as longitude/latitude but hold values "
                                  "outside ±180/±90; pass --crs")
        in_crs = pyproj.CRS.from_epsg(4326)  # bare lon/lat: WGS 84, per the usual convention
    else:
        raise InvalidCrsError(f"{path.name}: coordinates in {x_col!r}/{y_col!r} look projected but the CSV carries no CRS; "
                              "pass --crs (e.g. EPSG:28350 for MGA zone 50)")
    return frame, xs, ys, in_crs, x_col, y_col


def _find_coordinate_columns(frame: pd.DataFrame):
    lower = {str(c).strip().lower(): c for c in frame.columns}
    for pairs, geographic in ((_GEOGRAPHIC_PAIRS, True), (_PLAIN_PAIRS, False)):
        for xname, yname in pairs:
            if xname in lower and yname in lower:
                return lower[xname], lower[yname], geographic
    # Names such as "MGA94_Easting" or "GDA94_Long".
    def first(pattern: str):
        return next((c for c in frame.columns if re.search(pattern, str(c), re.I)), None)

    for xp, yp, geographic in ((r"(^|_)(lon|long|longitude)$", r"(^|_)(lat|latitude)$", True),
                               (r"east(ing)?$", r"north(ing)?$", False)):
        xc, yc = first(xp), first(yp)
        if xc is not None and yc is not None:
            return xc, yc, geographic
    return None
