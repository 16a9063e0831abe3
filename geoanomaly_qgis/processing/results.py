"""Loading result layers when a run ends: styled, and gathered in one group per run.

Processing loads queued layers on the main thread after the algorithm ends
and then calls each layer's post-processor; this one styles the layer, moves
it into the run's group (ordered by rank: points above rasters) and records
the engine command and output folder on the group, so the project remembers
how the map was made.
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .. import styling

RANK_PROPERTY = "geoanomaly/rank"
RUN_PROPERTY = "geoanomaly/run"

# Post-processors must outlive the algorithm (QGIS keeps only a C++ pointer);
# the most recent ones are kept here.
_ALIVE: list["ResultLayerLoader"] = []
_KEEP = 64


class ResultLayerLoader(QgsProcessingLayerPostProcessorInterface):
    """Styles one result layer and puts it in its run's layer group."""

    def __init__(self, group: str, style: str | None, rank: int, argv: list[str], out_dir: Path) -> None:
        super().__init__()
        self.group = group
        self.style = style
        self.rank = rank
        self.argv = list(argv)
        self.out_dir = Path(out_dir)

    @classmethod
    def create(cls, group: str, style: str | None, rank: int, argv: list[str], out_dir: Path) -> "ResultLayerLoader":
        loader = cls(group, style, rank, argv, out_dir)
        _ALIVE.append(loader)
        del _ALIVE[:-_KEEP]
        return loader

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API name
        try:
            if self.style == "anomaly" and isinstance(layer, QgsRasterLayer):
                styling.style_anomaly_raster(layer)
            elif self.style == "prospectivity" and isinstance(layer, QgsRasterLayer):
                styling.style_prospectivity_raster(layer)
            elif self.style == "classes" and isinstance(layer, QgsRasterLayer):
                styling.style_class_raster(layer)
            elif self.style == "points" and isinstance(layer, QgsVectorLayer):
                styling.style_scored_points(layer)
            elif self.style == "deposits" and isinstance(layer, QgsVectorLayer):
                styling.style_deposits(layer)
            elif self.style == "queries" and isinstance(layer, QgsVectorLayer):
                styling.style_query_points(layer)
            project = context.project()
            if project is None:
                return
            group = styling.move_into_group(project, layer, self.group)
            styling.title_legend(group.findLayer(layer.id()), self.style or "")
            self._order(group, layer)
            if not group.customProperty(RUN_PROPERTY):
                group.setCustomProperty(RUN_PROPERTY, json.dumps(
                    {"command": self.argv, "out_dir": str(self.out_dir),
                     "run_record": str(self.out_dir / "run.json")}))
        except Exception as exc:  # noqa: BLE001 - a styling problem must not lose the result layer
            if feedback is not None:
                feedback.pushWarning(f"Could not style or group {layer.name()}: {exc}")

    def _order(self, group, layer) -> None:
        """Put the layer's node among its siblings by rank (lower rank = higher in the list = drawn on top)."""
        node = group.findLayer(layer.id())
        if node is None:
            return
        node.setCustomProperty(RANK_PROPERTY, self.rank)
        children = [child for child in group.children() if child is not node]
        position = sum(1 for child in children if int(child.customProperty(RANK_PROPERTY, 50)) <= self.rank)
        index = group.children().index(node)
        if index != position:
            # The copy goes in before the original leaves: a layer missing from the tree for a moment is
            # removed from the project by QGIS (its layer-tree bridge), and the layer would vanish.
            group.insertChildNode(position if position < index else position + 1, node.clone())
            group.removeChildNode(node)


def run_record(group: QgsLayerTreeGroup) -> dict | None:
    """The run a layer group holds (``command``: the engine argv, ``out_dir``), or None for other groups."""
    try:
        record = json.loads(group.customProperty(RUN_PROPERTY) or "")
    except (TypeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def newest_run_output(project: QgsProject, command: str, name: str) -> Path | None:
    """``name`` in the output folder of the project's newest ``command`` run that still has it, else None.

    Used to pre-fill a dialog with what the geologist just made (a detect run's model folder, its map).
    """
    found = []
    for group in project.layerTreeRoot().findGroups(True):
        record = run_record(group) or {}
        argv = record.get("command") or []
        if argv and argv[0] == command and record.get("out_dir"):
            path = Path(record["out_dir"]) / name
            if path.exists():
                found.append(path)
    return max(found, key=lambda path: path.stat().st_mtime) if found else None
