"""Physical properties of a hand specimen: hardness, luster, streak.

The multimodal model sees each specimen's properties as a 3-vector
``[hardness bucket, luster, streak]`` with ``-1`` for "not measured", using
the codes of the published Minerals-36 table:

- hardness bucket: 1 = soft (Mohs <= 2.5), 2 = medium (2.5 < Mohs < 5),
  3 = hard (Mohs >= 5). The published bands are "<~2.5, 2.5-4.5, >~5"; the
  gap between 4.5 and 5 is closed at 5.
- luster: 0 = metallic, 1 = non-metallic.
- streak: 0 = white or colourless, 1 = coloured or dark.

Per-specimen values come from an optional CSV (see :func:`read_property_csv`);
a specimen without a row falls back on its mineral's entry in
:data:`PUBLISHED_PROPERTIES`. Those published values are per-class constants,
so with clean values they give the label away: the model is always evaluated
with missing and wrong properties too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError

PROPERTY_NAMES = ("hardness", "luster", "streak")
MISSING = -1.0
# Valid codes of each property, in PROPERTY_NAMES order (used to draw wrong values).
PROPERTY_CODES = ((1.0, 2.0, 3.0), (0.0, 1.0), (0.0, 1.0))

MINERALS_36 = (
    "Agate", "Albite", "Almandine", "Anglesite", "Azurite", "Beryl", "Cassiterite", "Chalcopyrite",
    "Cinnabar", "Copper", "Demantoid", "Diopside", "Elbaite", "Epidote", "Fluorite", "Galena",
    "Gold", "Halite", "Hematite", "Magnetite", "Malachite", "Marcasite", "Opal", "Orpiment",
    "Pyrite", "Quartz", "Rhodochrosite", "Ruby", "Sapphire", "Schorl", "Sphalerite", "Stibnite",
    "Sulphur", "Topaz", "Torbernite", "Wulfenite",
)

_PUBLISHED_GROUPS = {
    (3, 1, 0): "Agate Albite Almandine Beryl Cassiterite Demantoid Diopside Elbaite Opal Quartz Ruby Sapphire Topaz",
    (2, 1, 1): "Anglesite Azurite Malachite Sphalerite",
    (2, 0, 1): "Chalcopyrite Copper Gold",
    (1, 0, 1): "Cinnabar Galena Stibnite",
    (3, 1, 1): "Epidote Schorl",
    (2, 1, 0): "Fluorite Rhodochrosite Wulfenite",
    (1, 1, 0): "Halite",
    (3, 0, 1): "Hematite Magnetite Marcasite Pyrite",
    (1, 1, 1): "Orpiment Sulphur Torbernite",
}
#: Published [hardness bucket, luster, streak] per mineral (Minerals-36 table).
PUBLISHED_PROPERTIES: dict[str, tuple[int, int, int]] = {
    name: code for code, names in _PUBLISHED_GROUPS.items() for name in names.split()
}

_LUSTER_WORDS = {
    "metallic": 0, "metal": 0, "m": 0, "submetallic": 0, "0": 0,
    "non-metallic": 1, "nonmetallic": 1, "non metallic": 1, "nm": 1, "vitreous": 1, "adamantine": 1,
    "resinous": 1, "pearly": 1, "silky": 1, "greasy": 1, "waxy": 1, "dull": 1, "earthy": 1, "1": 1,
}
_STREAK_WORDS = {
    "white": 0, "colourless": 0, "colorless": 0, "none": 0, "0": 0,
    "coloured": 1, "colored": 1, "dark": 1, "black": 1, "red": 1, "brown": 1, "yellow": 1, "green": 1,
    "blue": 1, "grey": 1, "gray": 1, "orange": 1, "1": 1,
}
_HARDNESS_WORDS = {"soft": 1, "medium": 2, "hard": 3}


def hardness_bucket(mohs: float) -> int:
    """Mohs hardness (1-10) -> published bucket 1/2/3."""
    if not 1.0 <= mohs <= 10.0:
        raise ValueError(f"Mohs hardness must be between 1 and 10, got {mohs}")
    if mohs <= 2.5:
        return 1
    return 2 if mohs < 5.0 else 3


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def encode_hardness(value, bucket: bool = False) -> float:
    """A Mohs number ("3.5"), a bucket word (soft/medium/hard) or, with ``bucket``, 1-3."""
    if _blank(value):
        return MISSING
    text = str(value).strip().lower()
    if text in _HARDNESS_WORDS:
        return float(_HARDNESS_WORDS[text])
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"hardness {value!r} is neither a Mohs number nor soft/medium/hard") from None
    if bucket:
        if number not in (1.0, 2.0, 3.0):
            raise ValueError(f"hardness bucket {value!r} must be 1, 2 or 3")
        return number
    return float(hardness_bucket(number))


def encode_luster(value) -> float:
    if _blank(value):
        return MISSING
    text = str(value).strip().lower()
    if text not in _LUSTER_WORDS:
        raise ValueError(f"luster {value!r} is not metallic/non-metallic (or 0/1)")
    return float(_LUSTER_WORDS[text])


def encode_streak(value) -> float:
    if _blank(value):
        return MISSING
    text = str(value).strip().lower()
    if text not in _STREAK_WORDS:
        raise ValueError(f"streak {value!r} is not white/colourless or coloured/dark (or 0/1)")
    return float(_STREAK_WORDS[text])


def encode_properties(hardness=None, luster=None, streak=None, hardness_is_bucket: bool = False) -> np.ndarray:
    """One specimen's properties as the model's float32 3-vector (-1 = missing)."""
    return np.array(
        [encode_hardness(hardness, bucket=hardness_is_bucket), encode_luster(luster), encode_streak(streak)],
        dtype=np.float32,
    )


def published_vector(mineral: str) -> np.ndarray:
    """The published per-mineral code, or all missing for a mineral not in the table."""
    code = PUBLISHED_PROPERTIES.get(mineral) or PUBLISHED_PROPERTIES.get(mineral.strip().capitalize())
    if code is None:
        return np.full(3, MISSING, dtype=np.float32)
    return np.asarray(code, dtype=np.float32)


def read_property_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Per-specimen properties keyed by photo path (relative to the photo folder, ``/``-separated).

    Columns: ``file`` (photo path relative to the data folder, or just its
    file name), then any of ``hardness`` (Mohs number or soft/medium/hard),
    ``hardness_bucket`` (1-3), ``luster``, ``streak``. Blank cells mean "not
    measured". A row naming a photo that is not in the folder is ignored.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the property table {path}: {exc}") from exc
    columns = {c.strip().lower(): c for c in frame.columns}
    if "file" not in columns:
        raise InvalidInputError(f"property table {path} needs a 'file' column naming each photo; it has {list(frame.columns)}")
    if not set(columns) & {"hardness", "hardness_bucket", "luster", "streak"}:
        raise InvalidInputError(f"property table {path} has none of the columns hardness, hardness_bucket, luster, streak")
    table: dict[str, np.ndarray] = {}
    for row_number, row in enumerate(frame.itertuples(index=False), start=2):
        record = dict(zip(frame.columns, row))

        def cell(name: str, record=record):
            return record[columns[name]] if name in columns else None

        try:
            hardness = cell("hardness")
            is_bucket = _blank(hardness) and not _blank(cell("hardness_bucket"))
            vector = encode_properties(
                cell("hardness_bucket") if is_bucket else hardness, cell("luster"), cell("streak"),
                hardness_is_bucket=is_bucket,
            )
        except ValueError as exc:
            raise InvalidInputError(f"property table {path}, line {row_number}: {exc}") from None
        key = str(cell("file")).strip().replace("\\", "/")
        if key:
            table[key] = vector
    return table
