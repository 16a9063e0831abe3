"""Domain exceptions whose messages a geologist can act on.

Every error the command line reports without a traceback derives from
:class:`GeoAnomalyError`; ``geoanomaly`` prints its message on one line and
exits with code 2 (bad input) - see :mod:`core.cli`.
"""

from __future__ import annotations


class GeoAnomalyError(Exception):
    """Base class: bad input or a situation the user can fix."""

    exit_code = 2


class InvalidInputError(GeoAnomalyError):
    """A file, field, band or value the engine cannot use."""


class InvalidCrsError(GeoAnomalyError):
    """A coordinate reference system that is missing, unknown or unsuitable."""


class NonMatchingRasterMetadataError(GeoAnomalyError):
    """Rasters that should share a grid (CRS, cell size, extent) do not."""


class OutputNotWritableError(GeoAnomalyError):
    """The output folder cannot be created or written."""


class OutputExistsError(GeoAnomalyError):
    """The output folder holds an earlier run and ``--overwrite`` was not given."""


class CancelledError(GeoAnomalyError):
    """The run was cancelled (SIGTERM from the plugin's Cancel, or Ctrl-C)."""

    exit_code = 130
