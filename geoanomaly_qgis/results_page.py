"""The run's results page: the success-rate curve (and any other figure of the run) inside QGIS.

A small HTML file written into the run folder and returned as a Processing
HTML output, so QGIS lists it in the Processing Results Viewer and the run's
pictures open inside QGIS. The figures quoted on it are read from run.json:
the same numbers as the log and the plot's legend.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

PAGE_NAME = "results.html"
# The run's own pictures first, in this order; any other PNG of the run folder follows.
FIRST_FIGURES = ["success_rate.png", "method_comparison.png"]


def write_results_page(out_dir: Path, title: str, lines: list[str]) -> Path | None:
    """``results.html`` in ``out_dir`` with ``lines`` (plain sentences) and the run's PNG figures."""
    out_dir = Path(out_dir)
    pictures = [out_dir / name for name in FIRST_FIGURES if (out_dir / name).is_file()]
    pictures += sorted(p for p in out_dir.glob("*.png") if p not in pictures)
    if not pictures:
        return None
    body = [f"<h3>{html.escape(title)}</h3>"]
    body += [f"<p>{html.escape(line)}</p>" for line in lines if line]
    for picture in pictures:
        body.append(f'<p><img src="{picture.as_uri()}" width="420" alt="{html.escape(picture.name)}">'
                    f"<br><small>{html.escape(picture.name)}</small></p>")
    body.append(f"<p><small>Run folder: {html.escape(str(out_dir))}</small></p>")
    page = out_dir / PAGE_NAME
    partial = page.with_name(f".{page.name}.partial")
    partial.write_text("<html><head><meta charset='utf-8'></head><body>" + "\n".join(body) + "</body></html>",
                       encoding="utf-8")
    partial.replace(page)
    return page


def auc_sentence(metrics: dict[str, Any], name: str) -> str:
    """'AUC 0.629 ± 0.031 against 32 deposits (mean of 20 repeats)': the run's figure, as the log prints it."""
    entry = (metrics.get("auc_by_score") or {}).get(name) or {}
    auc = metrics.get("auc") if isinstance(metrics.get("auc"), (int, float)) else entry.get("mean")
    if not isinstance(auc, (int, float)):
        return ""
    spread = entry.get("std")
    used = entry.get("n_used")
    return (f"AUC {auc:.3f}" + (f" ± {spread:.3f}" if isinstance(spread, (int, float)) else "")
            + (f" against {used} deposits" if used else "")
            + " (0.5 = no better than chance; mean of 20 repeats, each against its own random background "
              "samples).")


def top_area_sentence(top: dict[str, Any]) -> str:
    shares = [(k, v) for k, v in (top or {}).items() if isinstance(v, (int, float))]
    if not shares:
        return ""
    return "Deposits in the highest-scored " + ", ".join(f"{k} %" for k, _ in shares) + " of the area: " + \
        ", ".join(f"{v * 100:.0f} %" for _, v in shares) + "."
