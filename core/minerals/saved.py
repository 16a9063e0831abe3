"""Trained mineral models on disk, and identifying one photo with them.

A model folder holds ``model.json`` (what the network is, its minerals, image
size, training class counts, split settings) and ``weights.pt`` (a plain
state dict, read back with ``torch.load(weights_only=True)``: loading a model
cannot run code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from core.errors import InvalidInputError
from core.minerals.backbones import build_backbone
from core.minerals.datasets import load_photo, photo_transform
from core.minerals.models import MultimodalIdentifier, PhotoClassifier
from core.minerals.properties import encode_properties

FORMAT = "geoanomaly-minerals/1"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
KINDS = ("longtail", "baseline", "multimodal")
# Below this top probability the answer is flagged "uncertain": the model finds another mineral at
# least as likely as not, so the photo alone does not settle it.
UNCERTAIN_BELOW = 0.5


def save_model(folder: str | Path, network: torch.nn.Module, info: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), folder / WEIGHTS_FILE)
    (folder / MODEL_FILE).write_text(json.dumps({"format": FORMAT, **info}, indent=2, default=_plain) + "\n")


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def read_model_info(folder: str | Path) -> dict:
    folder = Path(folder).expanduser()
    path = folder / MODEL_FILE
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise InvalidInputError(f"{folder} is not a mineral model folder (needs {MODEL_FILE} and {WEIGHTS_FILE})")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from None
    if info.get("format") != FORMAT or info.get("kind") not in KINDS:
        raise InvalidInputError(f"{path} is not a {FORMAT} model description")
    return info


def build_network(info: dict) -> torch.nn.Module:
    n_classes = len(info["classes"])
    if info["kind"] == "multimodal":
        if "bottleneck" in info.get("multimodal", {}):
            raise InvalidInputError("this multimodal model was trained by an earlier version (whose fused head did not "
                                    "read the property values); train it again")
        return MultimodalIdentifier(build_backbone(info["arch"], pretrained=False), n_classes)
    # The saved weights replace the pretrained ones: no need to read those first.
    return PhotoClassifier(info["arch"], n_classes, pretrained=False)


def load_model(folder: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The network (eval mode, on ``device``) and its description."""
    folder = Path(folder).expanduser()
    info = read_model_info(folder)
    network = build_network(info)
    try:
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        network.load_state_dict(_stage_names(state))
    except Exception as exc:  # noqa: BLE001 - corrupt or mismatched weights
        raise InvalidInputError(f"weights in {folder / WEIGHTS_FILE} do not fit {MODEL_FILE}: {exc}") from None
    return network.to(device).eval(), info


# Models saved before the backbones were split into stages name a ResNet's tensors as torchvision does.
_RESNET_STAGES = {"conv1.": "stages.0.0.", "bn1.": "stages.0.1.", "layer1.": "stages.1.", "layer2.": "stages.2.",
                  "layer3.": "stages.3.", "layer4.": "stages.4."}


def _stage_names(state: dict) -> dict:
    """``state`` with torchvision ResNet names (``backbone.layer1.0...``) renamed to the stage names."""
    renamed = {}
    for key, value in state.items():
        for prefix in ("backbone.", "image_branch.backbone."):
            rest = key.removeprefix(prefix)
            if rest != key:
                old = next((o for o in _RESNET_STAGES if rest.startswith(o)), None)
                if old is not None:
                    key = prefix + _RESNET_STAGES[old] + rest[len(old):]
                break
        renamed[key] = value
    return renamed


def load_photo_backbone(folder: str | Path) -> tuple[torch.nn.Module, str]:
    """The feature extractor of a trained photo-only model (to freeze under the multimodal model)."""
    network, info = load_model(folder)
    backbone = network.image_branch.backbone if info["kind"] == "multimodal" else network.backbone
    first = info.get("backbone", {}).get("weights", "unknown")
    backbone.origin = f"the feature extractor of the model {Path(folder).name} (first weights: {first})"
    return backbone, info["arch"]


class MineralIdentifier:
    """Identifies a mineral from one photo (and, for a multimodal model, optional properties)."""

    def __init__(self, network: torch.nn.Module, info: dict, device="cpu") -> None:
        self.network = network
        self.info = info
        self.device = torch.device(device)
        self.classes: list[str] = info["classes"]
        backbone = network.image_branch.backbone if self.uses_properties else network.backbone
        self.transform = photo_transform(int(info["image_size"]), False, backbone.mean, backbone.std)

    @classmethod
    def load(cls, folder: str | Path, device="cpu") -> MineralIdentifier:
        network, info = load_model(folder, device)
        return cls(network, info, device)

    @property
    def uses_properties(self) -> bool:
        return self.info["kind"] == "multimodal"

    @torch.no_grad()
    def identify(self, photo: str | Path, hardness=None, luster=None, streak=None, top: int = 5) -> list[dict]:
        """Top minerals with probabilities, best first. Blank properties count as not measured."""
        try:
            properties = encode_properties(hardness, luster, streak)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        image = self.transform(load_photo(photo)).unsqueeze(0).to(self.device)
        if self.uses_properties:
            logits = self.network(image, torch.as_tensor(properties)[None].to(self.device))["logits"]
        else:
            logits = self.network(image)
        probabilities = logits.softmax(dim=1)[0].cpu().numpy()
        order = np.argsort(-probabilities)[: max(1, top)]
        return [{"mineral": self.classes[i], "probability": round(float(probabilities[i]), 5)} for i in order]


def is_uncertain(rows: list[dict]) -> bool:
    """True when the best answer's probability is below :data:`UNCERTAIN_BELOW`."""
    return not rows or rows[0]["probability"] < UNCERTAIN_BELOW
