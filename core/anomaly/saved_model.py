"""A saved model folder: preprocessing + detector + the CRS they were fitted in.

Layout of ``DIR/model/``::

    model.json        what was fitted, where (CRSs) and with which versions
    preprocess.json   the fitted Preprocessor (elements, imputation, transform, scaling)
    detector.json     the detector's name, parameters and elements
    state.npz / *.pt  its learned state (arrays or torch weights; never pickles)
"""

from __future__ import annotations

import json
from pathlib import Path

import pyproj

from core.anomaly.base import Detector
from core.errors import InvalidInputError
from core.io.samples import SampleTable
from core.preprocess import Preprocessor
from core.runrecord import software_versions


def save_model(folder: str | Path, preprocessor: Preprocessor, detector: Detector, table: SampleTable,
               map_score: str = "auto") -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    preprocessor.save(folder / "preprocess.json")
    detector.save(folder)
    meta = {"format": "geoanomaly-model/1", "detector": detector.name, "input_crs": table.crs.to_wkt(),
            "work_crs": table.work_crs.to_wkt(), "map": map_score, "trained_on": Path(table.source).name, "samples": len(table),
            "versions": software_versions()}
    (folder / "model.json").write_text(json.dumps(meta, indent=1))


def load_model(folder: str | Path) -> tuple[Preprocessor, Detector, dict]:
    folder = Path(folder)
    meta_path = folder / "model.json"
    if not meta_path.exists():
        raise InvalidInputError(f"{folder} is not a saved GeoAnomaly model (model.json missing); "
                                "point --model at the model/ folder of a detect run")
    meta = json.loads(meta_path.read_text())
    meta["work_crs"] = pyproj.CRS.from_wkt(meta["work_crs"])
    meta["input_crs"] = pyproj.CRS.from_wkt(meta["input_crs"])
    return Preprocessor.load(folder / "preprocess.json"), Detector.load(folder), meta
