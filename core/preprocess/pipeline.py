"""The preprocessing pipeline: fitted once on a survey, saved, re-applied to new samples.

Steps, in order (each recorded in ``report_``):

1. Element columns: by unit suffix, an explicit list, or a pathfinder set;
   oxide columns fold into their element (see :mod:`core.preprocess.elements`).
2. Missing assays (NaN, -9999) and below-detection values (negative numbers,
   "<v") are told apart. Elements missing or below detection in more than
   ``max_missing`` of samples are dropped: a column that is mostly imputed
   carries little information and, after CLR, turns into a copy of every
   other such column. With a ``commodity``, the commodity and its pathfinders
   are never dropped for this: the geologist explores for them, and gold is
   often mostly below detection. They are imputed, flagged (``protected`` in
   the report) and kept whenever they have at least one detected value.
3. Below-detection values are imputed at ``detection_limit_fraction`` × the
   limit (½ by custom); missing assays at the element's median detected value
   (so they do not look anomalous), and flagged.
4. Log-ratio transform (CLR by default) and robust scaling (median / IQR), so
   that every element weighs the same in the detectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InvalidInputError, NotFittedError
from core.io.samples import SampleTable
from core.preprocess import transforms
from core.preprocess.elements import (
    assay_columns,
    commodity_elements,
    commodity_key,
    commodity_suite,
    numeric_assays,
    pathfinder_elements,
)

MIN_SAMPLES = 10


@dataclass
class PreparedSamples:
    """The element matrix the detectors see, with projected coordinates."""

    values: np.ndarray          # (n, p) float32, transformed and scaled
    xy: np.ndarray              # (n, 2) float64, metres in the work CRS
    elements: list[str]         # feature names (element symbols; ilr_k for ILR)
    imputed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # (n, p_elements)
    # (n, p_elements): never assayed (a subset of ``imputed``, which also holds below-detection values); such a
    # value carries no evidence, and the commodity readouts do not count it as enrichment
    not_assayed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> PreparedSamples:
        imputed = self.imputed[index] if self.imputed.size else self.imputed
        not_assayed = self.not_assayed[index] if self.not_assayed.size else self.not_assayed
        return PreparedSamples(self.values[index], self.xy[index], list(self.elements), imputed, not_assayed)


class Preprocessor:
    """Element selection, imputation, log-ratio transform and scaling (scikit-learn style)."""

    def __init__(self, elements: list[str] | None = None, pathfinders: str | None = None, transform: str = "clr",
                 scaling: str = "robust", max_missing: float = 0.5, detection_limit_fraction: float = 0.5,
                 commodity: str | None = None, suite: list[str] | None = None) -> None:
        if transform not in transforms.TRANSFORMS:
            raise InvalidInputError(f"unknown transform {transform!r}: choose one of {', '.join(transforms.TRANSFORMS)}")
        if scaling not in ("robust", "standard", "none"):
            raise InvalidInputError(f"unknown scaling {scaling!r}: choose robust, standard or none")
        if not 0.0 <= max_missing <= 1.0:
            raise InvalidInputError("--max-missing must be a share between 0 and 1")
        if not 0.0 < detection_limit_fraction <= 1.0:
            raise InvalidInputError("--dl-fraction must be in (0, 1]")
        if elements and pathfinders:
            raise InvalidInputError("give either --elements or --pathfinders, not both")
        self.elements = list(elements) if elements else None
        self.pathfinders = pathfinders
        self.transform_name = transform
        self.scaling = scaling
        self.max_missing = max_missing
        self.detection_limit_fraction = detection_limit_fraction
        self.commodity = commodity_key(commodity) if commodity else None
        if suite and not commodity:
            raise InvalidInputError("a pathfinder list needs a commodity (--commodity)")
        self.suite = list(suite) if suite else None

    # -- fitting ------------------------------------------------------------
    def fit(self, table: SampleTable) -> Preprocessor:
        source = Path(table.source).name
        if len(table) < MIN_SAMPLES:
            raise InvalidInputError(f"{source}: {len(table)} samples are too few; at least {MIN_SAMPLES} are needed")
        available = assay_columns(table.frame.columns)
        wanted = self._wanted_elements(available, table, source)
        protected = self.protected_elements()
        for element in protected:
            if element not in wanted and element in available:
                wanted[element] = available[element]  # the suite is always read, whatever --elements says
        report, kept = [], {}
        for element in protected:
            if element not in wanted:
                if element in commodity_elements(self.commodity):
                    raise InvalidInputError(f"{source}: no assay column for the commodity {element} (expected a "
                                            f"column such as {element}_ppm or {element}_ppb)")
                report.append({"element": element, "columns": [], "kept": False, "protected": True,
                               "reason": "not assayed in this survey"})
        for element, columns in wanted.items():
            values, below = _combine(table, columns, source)
            n = len(values)
            missing = np.isnan(values)
            share_missing = float(missing.mean())
            share_below = float(below.mean())
            entry = {"element": element, "columns": [c for c, _ in columns], "missing_share": round(share_missing, 4),
                     "below_detection_share": round(share_below, 4)}
            detected = values[~missing & ~below]
            if element in protected:
                entry["protected"] = True
            if element in protected and len(detected) and share_missing + share_below > self.max_missing:
                # Kept although mostly imputed: the commodity suite is never dropped for detection limits.
                entry.update(kept=True, fill_missing=float(np.median(detected)), n=n,
                             note=f"{(share_missing + share_below) * 100:.0f}% missing or below detection: "
                                  "imputed and kept (commodity suite)")
                kept[element] = columns
            elif element in protected and not len(detected):
                if element in commodity_elements(self.commodity):
                    raise InvalidInputError(f"{source}: the commodity {element} has no detected value; "
                                            "nothing can be read from it")
                entry.update(kept=False, reason="no detected value")
            elif share_missing + share_below > self.max_missing:
                entry.update(kept=False, reason=f"{(share_missing + share_below) * 100:.0f}% missing or below detection "
                                                f"(limit {self.max_missing * 100:.0f}%)")
            elif (~missing & ~below).sum() < 3 or np.nanstd(values[~missing]) == 0:
                entry.update(kept=False, reason="constant or nearly no detected values")
            else:
                entry.update(kept=True, fill_missing=float(np.median(detected)), n=n)
                kept[element] = columns
            report.append(entry)
        if len(kept) < 2:
            dropped = "; ".join(f"{r['element']}: {r.get('reason')}" for r in report[:8])
            raise InvalidInputError(f"{source}: fewer than two usable element columns remain after dropping mostly missing "
                                    f"ones ({dropped or 'no assay columns found'}); raise --max-missing or choose --elements")
        self.report_ = report
        self.element_columns_ = {el: [[c, f] for c, f in cols] for el, cols in kept.items()}
        self.fill_missing_ = {r["element"]: r["fill_missing"] for r in report if r.get("kept")}
        raw = self._impute(table, source)[0]
        features = transforms.apply(self.transform_name, raw)
        self.center_, self.scale_ = _fit_scaling(features, self.scaling)
        return self

    def transform(self, table: SampleTable) -> PreparedSamples:
        """The samples' assays as the fitted transform and scaling prepare them.

        Raises:
            NotFittedError: ``fit`` has not been called.
            InvalidInputError: a column the fitted elements need is missing.
        """
        self._check_fitted()
        raw, imputed, not_assayed = self._impute(table, Path(table.source).name)
        features = (transforms.apply(self.transform_name, raw) - self.center_) / self.scale_
        return PreparedSamples(features.astype(np.float32), table.xy.astype(np.float64), self.feature_names_, imputed,
                               not_assayed)

    def fit_transform(self, table: SampleTable) -> PreparedSamples:
        return self.fit(table).transform(table)

    @property
    def elements_(self) -> list[str]:
        self._check_fitted()
        return list(self.element_columns_)

    @property
    def feature_names_(self) -> list[str]:
        if self.transform_name == "ilr":
            return [f"ilr_{k + 1}" for k in range(len(self.elements_) - 1)]
        return self.elements_

    def dropped_(self) -> list[dict]:
        return [r for r in self.report_ if not r.get("kept")]

    def protected_elements(self) -> dict[str, float]:
        """The commodity suite (element -> weight) this preprocessor never drops; empty without a commodity."""
        if not self.commodity:
            return {}
        return commodity_suite(self.commodity, self.suite)

    def suite_(self) -> dict[str, float]:
        """The commodity suite over the kept elements, weights split among them (empty without a commodity)."""
        if not self.commodity:
            return {}
        return commodity_suite(self.commodity, self.suite, available=self.elements_)

    def imputed_assays(self, table: SampleTable) -> tuple[np.ndarray, np.ndarray]:
        """Concentrations in ppm of the kept elements, imputed (n, p), and where the assay was missing (not
        merely below detection)."""
        self._check_fitted()
        raw, _, missing = self._impute(table, Path(table.source).name)
        return raw, missing

    # -- persistence ----------------------------------------------------------
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "params": {"elements": self.elements, "pathfinders": self.pathfinders, "transform": self.transform_name,
                       "scaling": self.scaling, "max_missing": self.max_missing,
                       "detection_limit_fraction": self.detection_limit_fraction,
                       "commodity": self.commodity, "suite": self.suite},
            "element_columns": self.element_columns_, "fill_missing": self.fill_missing_,
            "center": self.center_.tolist(), "scale": self.scale_.tolist(), "report": self.report_,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessor:
        p = data["params"]
        self = cls(p["elements"], p["pathfinders"], p["transform"], p["scaling"], p["max_missing"],
                   p["detection_limit_fraction"], commodity=p.get("commodity"), suite=p.get("suite"))
        self.element_columns_ = {el: [list(c) for c in cols] for el, cols in data["element_columns"].items()}
        self.fill_missing_ = dict(data["fill_missing"])
        self.center_ = np.asarray(data["center"], dtype=np.float64)
        self.scale_ = np.asarray(data["scale"], dtype=np.float64)
        self.report_ = list(data["report"])
        return self

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # -- internals ------------------------------------------------------------
    def _wanted_elements(self, available: dict, table: SampleTable, source: str) -> dict:
        if not available and not self.elements:
            raise InvalidInputError(f"{source}: no element columns found (expected names ending in _ppm, _ppb or _pct, "
                                    "e.g. Au_ppb); name them with --elements")
        if self.pathfinders:
            names = pathfinder_elements(self.pathfinders)
            return {el: available[el] for el in names if el in available}
        if not self.elements:
            return available
        wanted = {}
        for name in self.elements:
            if name in available:
                wanted[name] = available[name]
            elif name in table.frame.columns:
                parsed = assay_columns([name])
                element = next(iter(parsed), name)
                wanted[element] = parsed.get(element, [(name, 1.0)])
            else:
                raise InvalidInputError(f"{source}: element {name!r} is neither an element with assay columns nor a column "
                                        f"of the file")
        return wanted

    def _impute(self, table: SampleTable, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(table)
        raw = np.empty((n, len(self.element_columns_)))
        imputed = np.zeros((n, len(self.element_columns_)), dtype=bool)
        not_assayed = np.zeros_like(imputed)
        for j, (element, columns) in enumerate(self.element_columns_.items()):
            missing_cols = [c for c, _ in columns if c not in table.frame.columns]
            if missing_cols:
                raise InvalidInputError(f"{source}: column(s) {', '.join(missing_cols)} needed for {element} are missing")
            values, below = _combine(table, [(c, f) for c, f in columns], source)
            values = values.copy()
            values[below] *= self.detection_limit_fraction
            missing = np.isnan(values)
            values[missing] = self.fill_missing_[element]
            raw[:, j] = values
            imputed[:, j] = missing | below
            not_assayed[:, j] = missing
        return raw, imputed, not_assayed

    def _check_fitted(self) -> None:
        if not hasattr(self, "center_"):
            raise NotFittedError("the preprocessor is not fitted yet: call fit() or fit_transform() first")


def _combine(table: SampleTable, columns: list[tuple[str, float]], source: str) -> tuple[np.ndarray, np.ndarray]:
    """One element from its columns: the first column with a value wins (element columns come first)."""
    values = np.full(len(table), np.nan)
    below = np.zeros(len(table), dtype=bool)
    for column, factor in columns:
        v, b = numeric_assays(table.frame, column, source)
        take = np.isnan(values) & ~np.isnan(v)
        values[take] = v[take] * factor
        below[take] = b[take]
    return values, below


def _fit_scaling(features: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    if scaling == "none":
        return np.zeros(features.shape[1]), np.ones(features.shape[1])
    if scaling == "standard":
        center, scale = features.mean(axis=0), features.std(axis=0)
    else:
        center = np.median(features, axis=0)
        q75, q25 = np.percentile(features, [75, 25], axis=0)
        scale = (q75 - q25) / 1.349  # IQR of a normal distribution = 1.349 sigma
        fallback = features.std(axis=0)
        scale = np.where(scale > 1e-12, scale, fallback)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return center, scale
