"""Which columns are assays, in which unit, and which element they measure.

Assay columns are recognised by their unit suffix (``Au_ppb``, ``Cu_ppm``,
``Fe2O3_pct``). Oxide columns (``Al2O3_pct``) measure the same element as the
element column (``Al_ppm``): they are folded into one element column, in ppm,
converted with the oxide's stoichiometry, so that an element is never counted
twice and a survey that reports some batches as oxides loses nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInputError

UNIT_TO_PPM = {"ppm": 1.0, "ppb": 1e-3, "pct": 1e4, "percent": 1e4, "pc": 1e4, "ppt": 1e-6, "gpt": 1.0, "g_t": 1.0}
_SUFFIX = re.compile(r"^(?P<name>.+?)_(?P<unit>ppm|ppb|pct|percent|pc|ppt|gpt|g_t)$", re.I)

# Standard atomic weights (IUPAC, rounded) for stoichiometric oxide -> element factors.
ATOMIC_WEIGHT = {
    "H": 1.008, "Li": 6.94, "Be": 9.012, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998,
    "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "P": 30.974, "S": 32.06, "Cl": 35.45, "K": 39.098,
    "Ca": 40.078, "Sc": 44.956, "Ti": 47.867, "V": 50.942, "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933,
    "Ni": 58.693, "Cu": 63.546, "Zn": 65.38, "Ga": 69.723, "Ge": 72.630, "As": 74.922, "Se": 78.971, "Br": 79.904,
    "Rb": 85.468, "Sr": 87.62, "Y": 88.906, "Zr": 91.224, "Nb": 92.906, "Mo": 95.95, "Ru": 101.07, "Rh": 102.91,
    "Pd": 106.42, "Ag": 107.87, "Cd": 112.41, "In": 114.82, "Sn": 118.71, "Sb": 121.76, "Te": 127.60, "I": 126.90,
    "Cs": 132.91, "Ba": 137.33, "La": 138.91, "Ce": 140.12, "Pr": 140.91, "Nd": 144.24, "Sm": 150.36, "Eu": 151.96,
    "Gd": 157.25, "Tb": 158.93, "Dy": 162.50, "Ho": 164.93, "Er": 167.26, "Tm": 168.93, "Yb": 173.05, "Lu": 174.97,
    "Hf": 178.49, "Ta": 180.95, "W": 183.84, "Re": 186.21, "Os": 190.23, "Ir": 192.22, "Pt": 195.08, "Au": 196.97,
    "Hg": 200.59, "Tl": 204.38, "Pb": 207.2, "Bi": 208.98, "Th": 232.04, "U": 238.03,
}

# Pathfinder elements by target commodity, for `--pathfinders`. Each set is
# the deposit model's characteristic halo in surface media, from the cited
# literature; the commodity itself is always included.
PATHFINDERS: dict[str, dict] = {
    "Au": {
        "elements": ["Au", "Ag", "As", "Sb", "Bi", "Te", "W", "Mo", "Cu", "Pb", "Zn", "Hg", "Se", "Tl", "S"],
        "source": "orogenic and intrusion-related gold: Groves et al. 1998 (Ore Geol. Rev. 13); Eilu & Groves 2001 "
                  "(Geochem. Explor. Environ. Anal. 1); Thompson et al. 1999 (intrusion-related Au-Bi-Te-W)",
        "ore_minerals": {"native gold, electrum": ["Au", "Ag"], "tellurides": ["Au", "Ag", "Te", "Bi"],
                         "auriferous pyrite, arsenopyrite": ["Fe", "As", "S"]},
    },
    "Cu": {
        "elements": ["Cu", "Mo", "Au", "Ag", "As", "Sb", "Bi", "Pb", "Zn", "Te", "Se", "W", "Sn", "Re", "Mn", "S"],
        "source": "porphyry copper halos: Sillitoe 2010 (Econ. Geol. 105); Halley, Dilles & Tosdal 2015 (SEG Newsletter 100)",
        "ore_minerals": {"chalcopyrite, bornite": ["Cu", "Fe", "S"], "chalcocite": ["Cu", "S"],
                         "molybdenite": ["Mo", "S"]},
    },
    "Ni": {
        "elements": ["Ni", "Cu", "Co", "Cr", "Mg", "Fe", "Pt", "Pd", "Au", "S", "Te", "As"],
        "source": "magmatic Ni-Cu-PGE sulfides: Naldrett 2004 (Magmatic Sulfide Deposits); Barnes & Lightfoot 2005 "
                  "(Econ. Geol. 100th Anniv. Vol.)",
        "ore_minerals": {"pentlandite, pyrrhotite": ["Ni", "Fe", "S"], "chalcopyrite": ["Cu", "Fe", "S"]},
    },
    "W": {
        "elements": ["W", "Mo", "Sn", "Bi", "As", "Cu", "F", "Be", "Li", "Rb", "Zn", "Ag"],
        "source": "W skarn and greisen systems: Meinert et al. 2005 (Econ. Geol. 100th Anniv. Vol.); Černý et al. 2005",
        "ore_minerals": {"scheelite": ["W", "Ca"], "wolframite": ["W", "Fe", "Mn"], "cassiterite": ["Sn"]},
    },
    "Li": {
        # Low K/Rb marks fractionated pegmatite; it is read through Rb's enrichment, since the readouts
        # count enrichment only (K itself is not enriched).
        "elements": ["Li", "Cs", "Ta", "Nb", "Rb", "Be", "Sn", "B", "F", "Ga", "Tl"],
        "source": "LCT pegmatites: Černý & Ercit 2005 (Can. Mineral. 43); Bradley et al. 2017 (USGS PP 1802-K)",
        "ore_minerals": {"spodumene, petalite": ["Li", "Al", "Si"], "lepidolite": ["K", "Li", "Al", "Si", "F"],
                         "amblygonite-montebrasite": ["Li", "Na", "Al", "P", "F"],
                         "triphylite-lithiophilite": ["Li", "Fe", "Mn", "P"], "columbite-tantalite": ["Nb", "Ta", "Fe",
                                                                                                     "Mn"]},
    },
    "Pb-Zn": {
        "elements": ["Pb", "Zn", "Ag", "Cd", "Mn", "Ba", "Tl", "As", "Sb", "Hg", "Cu", "Fe", "S"],
        "source": "sediment-hosted Pb-Zn (SEDEX/MVT) halos: Large & McGoldrick 1998 (J. Geochem. Explor. 63); "
                  "Leach et al. 2005 (Econ. Geol. 100th Anniv. Vol.)",
        "ore_minerals": {"galena": ["Pb", "S"], "sphalerite": ["Zn", "Fe", "S"], "pyrite": ["Fe", "S"]},
    },
}
PATHFINDER_ALIASES = {"gold": "Au", "copper": "Cu", "nickel": "Ni", "tungsten": "W", "lithium": "Li",
                      "pb": "Pb-Zn", "zn": "Pb-Zn", "pbzn": "Pb-Zn", "pb-zn": "Pb-Zn", "lead-zinc": "Pb-Zn",
                      "au": "Au", "cu": "Cu", "ni": "Ni", "w": "W", "li": "Li"}

# What the log says when no commodity is given.
COMMODITY_BLIND = ("no commodity given: the map is commodity-blind (any unusual chemistry, enriched or depleted, "
                   "in any element); give the commodity to read the map for it")

# Codes for missing assays used by survey exports.
MISSING_CODES = (-9999.0, -99999.0, -999999.0)


def commodity_key(commodity: str) -> str:
    """The canonical name of a commodity (``gold`` -> ``Au``, ``pbzn`` -> ``Pb-Zn``); clear error if unknown."""
    key = PATHFINDER_ALIASES.get(commodity.strip().lower().replace(" ", ""), commodity.strip())
    if key not in PATHFINDERS:
        raise InvalidInputError(f"no pathfinder set for {commodity!r}; known: {', '.join(PATHFINDERS)}")
    return key


def pathfinder_elements(commodity: str) -> list[str]:
    return list(PATHFINDERS[commodity_key(commodity)]["elements"])


def commodity_elements(commodity: str) -> list[str]:
    """The element(s) the commodity is assayed as: ``Au`` -> [Au]; ``Pb-Zn`` -> [Pb, Zn]."""
    return commodity_key(commodity).split("-")


def ore_mineral_elements(commodity: str) -> list[str]:
    """Elements that the commodity's own ore minerals are made of (spodumene LiAlSi2O6 -> Li, Al, Si ...).

    In a sample of the ore host (a pegmatite rock chip, a gossan) these rise with the ore itself, so a
    background predicted from them explains the deposit away; the transformer hides them from a sample's
    own input together with the suite (``PATHFINDERS[...]["ore_minerals"]``: mineral -> constituents).
    """
    minerals = PATHFINDERS[commodity_key(commodity)].get("ore_minerals", {})
    return list(dict.fromkeys(el for constituents in minerals.values() for el in constituents))


def commodity_suite(commodity: str, pathfinders: list[str] | None = None,
                    available: list[str] | None = None) -> dict[str, float]:
    """Element -> weight for the commodity readouts and the pathfinder index.

    The commodity is the target and its pathfinders corroborate it, so the
    commodity element(s) weigh as much as all pathfinders together (1 each
    side, split evenly). ``pathfinders`` replaces the literature set
    (``--pathfinders-file`` or an explicit list); the commodity is always in.
    With ``available`` (the survey's elements), the weights are split among
    the elements the survey has, so a survey with 3 of 14 pathfinders still
    gives its pathfinders half the weight.
    """
    target = commodity_elements(commodity)
    others = pathfinder_elements(commodity) if pathfinders is None else list(pathfinders)
    others = [el for el in dict.fromkeys(others) if el not in target]
    if available is not None:
        target = [el for el in target if el in available] or target
        others = [el for el in others if el in available]
    suite = {el: 1.0 / len(target) for el in target}
    suite.update({el: 1.0 / len(others) for el in others})
    return suite


def read_pathfinders_file(path: str | Path) -> list[str]:
    """Pathfinder elements from a text file: symbols separated by commas, spaces or lines; ``#`` starts a comment."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"pathfinders file {path} does not exist")
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    names = [tok for tok in re.split(r"[\s,;]+", text) if tok]
    unknown = [n for n in names if n not in ATOMIC_WEIGHT]
    if unknown or not names:
        raise InvalidInputError(f"{path.name}: expected element symbols such as As, Sb, Bi; "
                                f"{'got ' + ', '.join(unknown[:5]) if unknown else 'the file lists none'}")
    return names


def parse_formula(name: str) -> dict[str, int] | None:
    """Element counts of a formula such as ``Fe2O3``; None if it is not one."""
    tokens = re.findall(r"([A-Z][a-z]?)(\d*)", name)
    if not tokens or "".join(sym + num for sym, num in tokens) != name:
        return None
    counts: dict[str, int] = {}
    for sym, num in tokens:
        if sym not in ATOMIC_WEIGHT:
            return None
        counts[sym] = counts.get(sym, 0) + int(num or 1)
    return counts


def assay_columns(columns) -> dict[str, list[tuple[str, float]]]:
    """Map element -> [(column, factor to element ppm), ...]; element columns first.

    Oxides fold into their cation (``Fe2O3T_pct`` -> Fe). Compounds that are
    not a single-cation oxide (LOI, H2O, CO2 against C stays C...) are skipped.
    """
    found: dict[str, list[tuple[str, float, bool]]] = {}
    for col in columns:
        match = _SUFFIX.match(str(col))
        if not match:
            continue
        name, unit = match["name"], match["unit"].lower()
        to_ppm = UNIT_TO_PPM[unit]
        if name in ATOMIC_WEIGHT:
            found.setdefault(name, []).append((str(col), to_ppm, True))
            continue
        # Oxide forms, with optional total/ferrous markers (Fe2O3T).
        base = re.sub(r"(T|tot|total)$", "", name)
        counts = parse_formula(base)
        if not counts or set(counts) - {"O"} == set() or counts.get("O", 0) == 0:
            continue
        cations = [el for el in counts if el != "O"]
        if len(cations) != 1:
            continue
        cation = cations[0]
        if cation == "H":
            continue  # water, not an element concentration
        mass = sum(ATOMIC_WEIGHT[el] * n for el, n in counts.items())
        fraction = ATOMIC_WEIGHT[cation] * counts[cation] / mass
        found.setdefault(cation, []).append((str(col), to_ppm * fraction, False))
    return {el: [(c, f) for c, f, _ in sorted(cols, key=lambda t: not t[2])] for el, cols in found.items()}


def numeric_assays(frame: pd.DataFrame, column: str, source: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Values and below-detection flags of one assay column.

    Returns (values, below_detection): values are NaN where missing
    (empty, NaN, -9999 codes), the detection limit |v| where the lab reported
    a negative number or "<v", and the assay otherwise.
    """
    raw = frame[column]
    if raw.dtype.kind in "if":
        values = raw.to_numpy(dtype=float, copy=True)
        below = np.zeros(len(values), dtype=bool)
    else:
        text = raw.astype("string").str.strip()
        below = text.str.startswith("<").fillna(False).to_numpy(bool)
        cleaned = text.str.lstrip("<").str.replace(",", "", regex=False)
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(float)
        bad = np.isnan(values) & text.notna().to_numpy() & (text.str.len() > 0).fillna(False).to_numpy(bool)
        bad &= ~text.str.upper().isin(["NA", "N/A", "NAN", "-", "NULL", "ND", "IS", "NR", "X", "NS"]).fillna(False).to_numpy(bool)
        if bad.any():
            example = text[np.flatnonzero(bad)[0]]
            where = f"{source}: " if source else ""
            raise InvalidInputError(f"{where}column {column!r} holds non-numeric values such as {example!r} "
                                    f"(in {int(bad.sum())} rows); fix them or leave the column out with --elements")
        values[below] = -np.abs(values[below])
    for code in MISSING_CODES:
        values[np.isclose(values, code)] = np.nan
    negative = values < 0
    below = below | negative
    values = np.abs(values)
    # A reported zero is a below-detection value with an unknown limit: treat as missing.
    values[values == 0] = np.nan
    below[np.isnan(values)] = False
    return values, below
