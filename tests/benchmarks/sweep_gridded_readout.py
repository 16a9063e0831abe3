"""The gridded commodity readout (geohgan --commodity) on both shared surveys: cell AUC against the radius.

Not part of ``make bench`` (the record of a design choice). Grids each survey with
``geoanomaly grid --commodity`` into a temporary folder, trains Geo-Hgan on the grid with its defaults
(seed 0), then computes ``suite_enrichment.tif`` from the model's suite-band residuals ("model") and
``suite_halo.tif`` from the suite bands themselves ("model_free") as ``geoanomaly geohgan --commodity`` does,
for several halo radii. The commodity band itself is the reference.
Run: ``.venv/bin/python tests/benchmarks/sweep_gridded_readout.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.anomaly.geohgan import GeoHganDetector  # noqa: E402
from core.anomaly.geohgan.streaming import RasterFiles, fit_files  # noqa: E402
from core.cli import main as cli  # noqa: E402
from core.commands.geohgan import _commodity_readout, _read_deposits, _suite_bands  # noqa: E402
from core.evaluate.auc import cell_auc  # noqa: E402
from core.progress import Progress  # noqa: E402

DATA = REPO.parent / "shared" / "data"
work = Path(tempfile.mkdtemp())
for n, c in (("gswa_sed1_au", "Au"), ("gswa_rock_li", "Li")):
    assert cli(["grid", "--samples", str(DATA / n / "samples.csv"), "--commodity", c, "--out", str(work / n),
                "--progress", "none"]) == 0
    files = RasterFiles.open([work / n / "grid.tif"], None)
    args = argparse.Namespace(commodity=c, pathfinders_file=None, pathfinder_list=None, halo_cells=2.0,
                              deposits=str(DATA / n / "deposits.csv"), deposits_crs=None, window_rows=512)
    progress = Progress(mode="none")
    detector = GeoHganDetector(device="cpu", seed=0)
    fit_files(detector, files, progress)
    suite_bands = _suite_bands(args, files, progress)
    dep = _read_deposits(args, files)
    band = np.concatenate([b.values for b in files.blocks()], axis=1)
    ci = files.band_names.index(c)
    ref = cell_auc(band[ci], files.transform, dep, np.isfinite(band[ci])).auc
    out = {"commodity band": round(ref, 3)}
    for r in (0.0, 1.0, 2.0, 4.0):
        args.halo_cells = r
        info = _commodity_readout(args, detector, files, suite_bands, dep, Path(tempfile.mkdtemp()), progress)
        out[f"halo {r:g} cells"] = {which: round(info[which]["cell_auc"]["auc"], 3) for which in ("model", "model_free")}
    print(n, out)
