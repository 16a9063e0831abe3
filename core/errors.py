"""Domain exceptions and warnings whose messages a geologist can act on.

Every error the command line reports without a traceback derives from
:class:`GeoAnomalyError`; ``geoanomaly`` prints its message on one line and
exits with code 2 (bad input) - see :mod:`core.cli`.

Each error is also the built-in a Python caller would expect (the habit of
scikit-learn's ``NotFittedError`` and rasterio's ``RasterioIOError``), so
``except ValueError`` or ``except OSError`` in a notebook catches it too:

==============================  ==========================================
error                            also a
==============================  ==========================================
:class:`InvalidInputError`       ``ValueError``
:class:`InvalidCrsError`         ``ValueError`` (an invalid input)
:class:`CrsMismatchError`        ``ValueError`` (rasters/points in two CRSs)
:class:`NonMatchingRasterMetadataError`  ``ValueError``
:class:`NotFittedError`          ``ValueError`` and ``AttributeError``
:class:`OutputNotWritableError`  ``OSError``
==============================  ==========================================

Warnings the library gives (a survey with twinned samples, a checkpoint that
does not match) are :class:`GeoAnomalyWarning`, issued with :func:`warn`:
through :mod:`warnings` for a Python caller, and through the progress object
for the command line and the plugin.
"""

from __future__ import annotations

import warnings


class GeoAnomalyError(Exception):
    """Base class: bad input or a situation the user can fix."""

    exit_code = 2


class InvalidInputError(GeoAnomalyError, ValueError):
    """A file, field, band or value the engine cannot use."""


class InvalidCrsError(InvalidInputError):
    """A coordinate reference system that is missing, unknown or unsuitable."""


class NonMatchingRasterMetadataError(InvalidInputError):
    """Rasters that should share a grid (CRS, cell size, extent) do not."""


class CrsMismatchError(InvalidCrsError, NonMatchingRasterMetadataError):
    """Two inputs that must share a coordinate reference system are in different ones."""


class NotFittedError(GeoAnomalyError, ValueError, AttributeError):
    """A detector, normaliser or preprocessor used before ``fit`` (or ``load``)."""


class OutputNotWritableError(GeoAnomalyError, OSError):
    """The output folder cannot be created or written."""


class OutputExistsError(GeoAnomalyError):
    """The output folder holds an earlier run and ``--overwrite`` was not given."""


class CancelledError(GeoAnomalyError):
    """The run was cancelled (SIGTERM from the plugin's Cancel, or Ctrl-C)."""

    exit_code = 130


class GeoAnomalyWarning(UserWarning):
    """Something the user should know about the data or the run; the run goes on."""


def warn(message: str, progress=None, stacklevel: int = 2) -> None:
    """Warn a Python caller (:mod:`warnings`) and, when given, the progress object (command line, plugin).

    The command line silences :class:`GeoAnomalyWarning` in :mod:`warnings`
    because the progress object already shows it.
    """
    warnings.warn(message, GeoAnomalyWarning, stacklevel=stacklevel + 1)
    if progress is not None:
        progress.log(message, level="warning")
