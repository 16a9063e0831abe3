"""GeoTIFF rasters in and out, with the georeferencing kept beside the values.

- :func:`write_raster`: float32 GeoTIFF, tiled and compressed, band
  descriptions = band names (element names, ``anomaly_score``), NaN written
  as the nodata value, written under a temporary name and renamed when whole.
- :func:`open_raster_writer` + :func:`write_window`: the same file written
  block by block, for rasters larger than memory.
- :func:`read_raster_stack`: one multi-band file or several single-band
  files on one grid -> :class:`RasterStack` (NaN for nodata).
- :func:`iter_windows`: blocks of rows, each with its own transform, for
  rasters larger than memory.
- :func:`sample_raster_at`: raster values at points.

Every read goes through :func:`read_cells`, which takes GDAL's mask of each
band (``read(masked=True)``): the nodata value, an internal mask band or a
per-dataset mask (what several GIS tools write instead of a nodata value),
or an alpha band. A masked cell is NaN, whichever way the file marks it.
Every write marks missing cells with the nodata value, so outputs keep their
mask too (a masked array's mask included).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.io
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioIOError
from rasterio.windows import Window

from core.errors import CrsMismatchError, InvalidCrsError, InvalidInputError, NonMatchingRasterMetadataError
from core.io.atomic import atomic_write_path

DEFAULT_NODATA = -9999.0
_BLOCK = 256


@dataclass
class RasterStack:
    """Bands on one grid: ``values`` (bands, rows, cols) float32 with NaN where there is no data."""

    values: np.ndarray
    transform: Affine
    crs: CRS | None
    band_names: list[str]
    valid_mask: np.ndarray  # (rows, cols) True where every band has data
    paths: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape[1], self.values.shape[2]

    def band(self, name: str) -> np.ndarray:
        try:
            return self.values[self.band_names.index(name)]
        except ValueError:
            raise InvalidInputError(
                f"no band {name!r} in {', '.join(self.paths)}; bands: {', '.join(self.band_names)}"
            ) from None


@dataclass(frozen=True)
class RasterGrid:
    """A raster's grid without its values: what ``--like`` lays a new raster on."""

    transform: Affine
    rows: int
    cols: int
    crs: CRS | None
    path: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols


def raster_grid(path: str | os.PathLike) -> RasterGrid:
    """The grid (transform, shape, CRS) of the raster at ``path``.

    Raises:
        InvalidInputError: the file is missing or unreadable, or its grid is rotated.
        InvalidCrsError: it has no CRS, or one not in metres (distances are measured on it).
    """
    with _open(path) as src:
        grid = RasterGrid(src.transform, src.height, src.width, src.crs, str(path))
    name = Path(path).name
    if grid.transform.b or grid.transform.d:
        raise InvalidInputError(f"{name} is a rotated grid; only north-up rasters can be used as a template")
    if grid.crs is None or not grid.crs.is_projected:
        raise InvalidCrsError(f"{name} is in {grid.crs.to_string() if grid.crs else 'no CRS'}; a template grid "
                              "needs a projected CRS in metres: reproject it first")
    return grid


def to_crs(crs) -> CRS | None:
    """A rasterio CRS from an EPSG code, a WKT/PROJ string, a pyproj or rasterio CRS (None stays None)."""
    if crs is None or isinstance(crs, CRS):
        return crs
    try:
        if hasattr(crs, "to_wkt"):
            return CRS.from_wkt(crs.to_wkt())
        if isinstance(crs, (int, np.integer)):
            return CRS.from_epsg(int(crs))
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise InvalidCrsError(f"unknown coordinate reference system {crs!r}: {exc}") from exc


def write_raster(
    path: str | os.PathLike,
    array: np.ndarray,
    transform: Affine,
    crs,
    nodata: float = DEFAULT_NODATA,
    band_names: Sequence[str] | None = None,
) -> Path:
    """Write ``array`` ((rows, cols) or (bands, rows, cols)) as a float32 GeoTIFF; NaN -> ``nodata``.

    A masked array's masked cells are written as ``nodata`` too.

    Raises:
        InvalidInputError: the array is not 2-D or 3-D, or the band names do not match the bands.
        InvalidCrsError: ``crs`` is not a CRS rasterio knows.
    """
    path = Path(path)
    if np.ma.isMaskedArray(array):  # np.asarray would drop the mask
        array = np.ma.asarray(array, dtype=np.float32).filled(np.nan)
    data = np.asarray(array, dtype=np.float32)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3 or data.shape[1] == 0 or data.shape[2] == 0:
        raise InvalidInputError(
            f"cannot write {path.name}: expected (rows, cols) or (bands, rows, cols), got {np.shape(array)}"
        )
    bands, rows, cols = data.shape
    # Bands are written one at a time to avoid a second full copy of the stack.
    with open_raster_writer(path, bands, rows, cols, transform, crs, nodata, band_names) as dst:
        for i in range(bands):
            dst.write(_nan_to_nodata(data[i], nodata, copy=True), i + 1)
    return path


def raster_profile(bands: int, rows: int, cols: int, transform: Affine, crs, nodata: float = DEFAULT_NODATA) -> dict:
    """The rasterio profile of every GeoTIFF the engine writes: float32, tiled when large, compressed."""
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": bands,
        "height": rows,
        "width": cols,
        "transform": transform,
        "crs": to_crs(crs),
        "nodata": float(nodata),
        "compress": "deflate",
        "predictor": 3,  # floating-point predictor: smaller files for smooth fields
        "interleave": "band",
    }
    # Tiles pay off only when the raster is larger than one tile.
    if rows >= _BLOCK and cols >= _BLOCK:
        profile.update(tiled=True, blockxsize=_BLOCK, blockysize=_BLOCK)
    return profile


@contextlib.contextmanager
def open_raster_writer(
    path: str | os.PathLike,
    bands: int,
    rows: int,
    cols: int,
    transform: Affine,
    crs,
    nodata: float = DEFAULT_NODATA,
    band_names: Sequence[str] | None = None,
) -> Iterator[rasterio.io.DatasetWriter]:
    """An open float32 GeoTIFF to write piece by piece (:func:`write_window`); it appears at ``path`` whole.

    The file is written under a temporary name beside ``path`` and renamed
    only when the ``with`` block ends without an exception; otherwise it is
    removed.
    """
    path = Path(path)
    if band_names is not None and len(band_names) != bands:
        raise InvalidInputError(f"cannot write {path.name}: {len(band_names)} band names for {bands} bands")
    profile = raster_profile(bands, rows, cols, transform, crs, nodata)
    # The dataset is closed (flushed) before the rename, and before the
    # temporary file is removed on failure.
    with atomic_write_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        if band_names is not None:
            for i, name in enumerate(band_names, start=1):
                dst.set_band_description(i, str(name))
        yield dst


def write_window(dst, row_off: int, values: np.ndarray) -> None:
    """Write ``values`` (bands, rows, cols), NaN -> the file's nodata, as full rows from ``row_off``.

    NaN is replaced in place: ``values`` is the caller's scratch block.
    """
    _, rows, cols = values.shape
    dst.write(_nan_to_nodata(values, dst.nodata, copy=False), window=Window(0, row_off, cols, rows))


def _nan_to_nodata(values: np.ndarray, nodata: float, copy: bool) -> np.ndarray:
    """NaN (and inf) -> ``nodata``: the value is written explicitly so that other software never sees NaN."""
    missing = ~np.isfinite(values)
    if missing.any():
        if copy:
            values = values.copy()
        values[missing] = nodata
    return values


def _open(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"raster file not found: {path}")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidInputError(f"cannot read raster {path}: {exc}") from exc


def _band_names(src, path: Path) -> list[str]:
    names = []
    for i, description in enumerate(src.descriptions, start=1):
        if description:
            names.append(description)
        elif src.count == 1:
            names.append(path.stem)
        else:
            names.append(f"band_{i}")
    return names


def read_cells(src, window: Window | None = None) -> np.ndarray:
    """(bands, rows, cols) float32 of an open dataset, NaN wherever GDAL's mask says there is no data.

    The mask is GDAL's per band: the nodata value, an internal or per-dataset
    mask band, or an alpha band (rasterio's ``read(masked=True)``).
    """
    data = src.read(window=window, masked=True)
    values = np.ma.getdata(data).astype(np.float32, copy=True)
    values[np.ma.getmaskarray(data)] = np.nan
    return values


@dataclass
class RasterFiles:
    """One multi-band file or several files on one grid, with the bands chosen; nothing read yet."""

    paths: list[Path]
    band_names: list[str]
    band_index: list[int]  # into the bands of all files, concatenated
    transform: Affine
    crs: object
    rows: int
    cols: int
    block_rows: int = 512

    @classmethod
    def open(cls, paths: Sequence[str | Path], bands: Sequence[str | int] | None = None,
             block_rows: int = 512) -> RasterFiles:
        """Check that the files share one grid and pick the bands (names or 1-based numbers).

        Raises:
            InvalidInputError: no file, a missing or unreadable file, an unknown or repeated band name.
            NonMatchingRasterMetadataError: the files do not share one grid (:class:`CrsMismatchError`
                when their CRSs differ).
        """
        paths = [Path(p) for p in paths]
        if not paths:
            raise InvalidInputError("no raster files given")
        names: list[str] = []
        reference = None
        for path in paths:
            with _open(path) as src:
                grid = (src.crs, src.transform, src.width, src.height)
                if reference is None:
                    reference = (path, grid)
                else:
                    _check_same_grid(reference[0], reference[1], path, grid)
                names.extend(_band_names(src, path))
        if bands is None:
            index = list(range(len(names)))
        else:
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise InvalidInputError(
                    f"band name(s) {', '.join(duplicated)} occur more than once in {', '.join(map(str, paths))}")
            index = [_band_index(b, names, paths) for b in bands]
        crs, transform, width, height = reference[1]
        return cls(paths, [names[i] for i in index], index, transform, crs, height, width, block_rows)

    @property
    def bands(self) -> int:
        return len(self.band_index)

    @property
    def nbytes(self) -> int:
        """Size of the chosen bands in memory as float32."""
        return self.bands * self.rows * self.cols * 4

    def blocks(self) -> Iterator[RasterBlock]:
        """:class:`RasterBlock` (window, values, transform) for successive blocks of full rows of the chosen bands.

        values are (bands, rows_in_block, cols) float32, NaN where any mask says no data; the transform is the
        block's own, so a block can be written or sampled alone.
        """
        streams = [iter_windows(path, self.block_rows) for path in self.paths]
        for parts in zip(*streams):
            values = np.concatenate([part.values for part in parts], axis=0) if len(parts) > 1 else parts[0].values
            yield RasterBlock(parts[0].window, values[self.band_index], parts[0].transform)


def read_raster_stack(
    paths: str | os.PathLike | Sequence[str | os.PathLike], bands: Sequence[str | int] | None = None
) -> RasterStack:
    """Read one multi-band file or several single/multi-band files that share one grid.

    ``bands`` picks bands by name (band description, or file stem for an
    unnamed single band) or by 1-based number in the combined stack.

    Raises:
        InvalidInputError: a file is missing or unreadable, or a band is unknown.
        NonMatchingRasterMetadataError: the files do not share one grid
            (:class:`CrsMismatchError` when their CRSs differ).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = RasterFiles.open(paths, bands)
    arrays = []
    for path in files.paths:
        with _open(path) as src:
            arrays.append(read_cells(src))
    values = np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
    values = values[files.band_index] if bands is not None else values
    return RasterStack(
        values=values,
        transform=files.transform,
        crs=files.crs,
        band_names=files.band_names,
        valid_mask=np.isfinite(values).all(axis=0),
        paths=[str(p) for p in files.paths],
    )


def _band_index(band: str | int, names: list[str], paths: list[Path]) -> int:
    if isinstance(band, (int, np.integer)):
        if not 1 <= band <= len(names):
            raise InvalidInputError(
                f"band number {band} is out of range 1..{len(names)} in {', '.join(map(str, paths))}"
            )
        return int(band) - 1
    if band not in names:
        raise InvalidInputError(
            f"no band {band!r} in {', '.join(map(str, paths))}; bands: {', '.join(names)}"
        )
    return names.index(band)


def _check_same_grid(ref_path: Path, ref, path: Path, grid) -> None:
    ref_crs, ref_transform, ref_w, ref_h = ref
    crs, transform, w, h = grid
    if ref_crs != crs:
        raise CrsMismatchError(
            f"{path} is in {crs.to_string() if crs else 'no CRS'} but {ref_path} is in "
            f"{ref_crs.to_string() if ref_crs else 'no CRS'}: reproject them to one CRS first"
        )
    if not np.allclose([transform.a, transform.e], [ref_transform.a, ref_transform.e], rtol=1e-9, atol=0):
        raise NonMatchingRasterMetadataError(
            f"{path} has cells of {abs(transform.a):g} x {abs(transform.e):g} but {ref_path} has "
            f"{abs(ref_transform.a):g} x {abs(ref_transform.e):g}: resample them to one grid first"
        )
    if (w, h) != (ref_w, ref_h) or not transform.almost_equals(
        ref_transform, precision=1e-6 * abs(ref_transform.a)
    ):
        raise NonMatchingRasterMetadataError(
            f"{path} ({w} x {h} cells from {transform.c:g}, {transform.f:g}) does not cover the same extent as "
            f"{ref_path} ({ref_w} x {ref_h} cells from {ref_transform.c:g}, {ref_transform.f:g}): align them to one grid first"
        )


class RasterBlock(NamedTuple):
    """A block of rows read from a raster, georeferenced on its own."""

    window: Window
    values: np.ndarray  # (bands, rows_in_block, cols) float32, NaN where there is no data
    transform: Affine  # of the block's first cell, so the block can be written or sampled alone


def iter_windows(path: str | os.PathLike, block_rows: int = 512) -> Iterator[RasterBlock]:
    """Yield a :class:`RasterBlock` (window, values, transform) for successive blocks of ``block_rows`` full rows.

    Raises:
        InvalidInputError: the file is missing or unreadable.
    """
    if block_rows < 1:
        raise InvalidInputError("block_rows must be at least 1")
    with _open(path) as src:
        for row in range(0, src.height, block_rows):
            window = Window(0, row, src.width, min(block_rows, src.height - row))
            yield RasterBlock(window, read_cells(src, window), src.window_transform(window))


def sample_raster_at(path_or_stack: str | os.PathLike | RasterStack, xy, block_rows: int = 512) -> np.ndarray:
    """Values at points ``xy`` (n, 2) in the raster's CRS: (n, bands), NaN outside the raster or on nodata.

    A file is read in blocks of rows holding points, never whole.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if isinstance(path_or_stack, RasterStack):
        stack = path_or_stack
        rows, cols, inside = cells_of(xy, stack.transform, stack.shape)
        out = np.full((len(xy), stack.values.shape[0]), np.nan, dtype=np.float32)
        out[inside] = stack.values[:, rows[inside], cols[inside]].T
        return out
    with _open(path_or_stack) as src:
        rows, cols, inside = cells_of(xy, src.transform, (src.height, src.width))
        out = np.full((len(xy), src.count), np.nan, dtype=np.float32)
        for start in np.unique(rows[inside] // block_rows) * block_rows:
            window = Window(0, int(start), src.width, min(block_rows, src.height - int(start)))
            block = read_cells(src, window)
            here = inside & (rows >= start) & (rows < start + window.height)
            out[here] = block[:, rows[here] - start, cols[here]].T
        return out


def cells_of(
    xy: np.ndarray, transform: Affine, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column of the cell holding each point, and whether it is on the raster."""
    cols, rows = ~transform * (xy[:, 0], xy[:, 1])
    finite = np.isfinite(rows) & np.isfinite(cols)
    rows = np.floor(np.where(finite, rows, -1)).astype(np.int64)
    cols = np.floor(np.where(finite, cols, -1)).astype(np.int64)
    inside = finite & (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows, cols, inside
