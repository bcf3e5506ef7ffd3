"""Stream networks: a torchvision backbone by name, a dropout and a linear classifier.

`StreamModel.features(x)` is the penultimate representation (after global pooling; for VGG after
fc7), `classifier` maps it to class scores: a fusion head can take the features of both streams.
The temporal stream's first convolution takes 2L channels; given RGB weights it is initialised by
cross-modality averaging (TSN, Wang et al. 2016): the RGB filters averaged over colour and
replicated over the 2L flow channels. Pretrained weights come from a local file; torchvision's
named weights work only where its model hub (or its cache) is reachable.
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

from twostream.core.backbones import BACKBONES
from twostream.core.errors import ModelError

log = logging.getLogger("twostream")


@dataclass(frozen=True)
class Family:
    first_conv: str  # attribute path of the first convolution
    classifier: str  # attribute path of the final (1000-class) layer
    split: Callable[[nn.Module, float], tuple[nn.Module, int]]  # net, dropout -> (body to the features, their size)


def _resnet_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    dim = net.fc.in_features
    net.fc = nn.Identity()  # the body ends after global average pooling and flattening
    return net, dim


def _vgg_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    # classifier = fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8. The body keeps fc6 and fc7 (the
    # paper's dropout applies to both); the last Dropout is StreamModel's, before our classifier.
    head = net.classifier
    dim = head[6].in_features
    head[2].p = dropout
    net.classifier = nn.Sequential(*list(head)[:5])
    return net, dim


FAMILIES = {
    "resnet": Family("conv1", "fc", _resnet_body),
    "vgg": Family("features.0", "classifier.6", _vgg_body),
}
def get_family(backbone: str) -> Family:
    try:
        return FAMILIES[BACKBONES[backbone]]
    except KeyError:
        raise ModelError(f"unknown backbone {backbone!r}; choices: {', '.join(BACKBONES)}") from None


class StreamModel(nn.Module):
    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, dropout: float, in_channels: int) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.feature_dim, self.num_classes, self.in_channels = feature_dim, num_classes, in_channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim) penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def cross_modality_weight(rgb_weight: torch.Tensor, channels: int) -> torch.Tensor:
    """(O, 3, k, k) RGB filters -> (O, channels, k, k): the mean over colour, replicated."""
    return rgb_weight.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)


def _replace_first_conv(net: nn.Module, path: str, channels: int, cross_modality: bool) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    old: nn.Conv2d = getattr(parent, name)
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
                    bias=old.bias is not None)
    with torch.no_grad():
        if cross_modality:
            new.weight.copy_(cross_modality_weight(old.weight, channels))
            if old.bias is not None:
                new.bias.copy_(old.bias)
        else:  # torchvision's own initialisation of these convolutions
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    setattr(parent, name, new)


def build_model(backbone: str, in_channels: int, num_classes: int, dropout: float,
                rgb_state: dict[str, torch.Tensor] | None = None, origin: str = "") -> StreamModel:
    """A stream network; `rgb_state` (from `pretrained_state`) initialises the backbone, its
    first conv by cross-modality averaging when in_channels != 3. `origin` names the weights in errors."""
    family = get_family(backbone)
    net = getattr(torchvision.models, backbone)(weights=None)
    if rgb_state is not None:
        _load_backbone_state(net, rgb_state, backbone, family, origin)
    if in_channels != 3:
        _replace_first_conv(net, family.first_conv, in_channels, cross_modality=rgb_state is not None)
    body, dim = family.split(net, dropout)
    return StreamModel(body, dim, num_classes, dropout, in_channels)


def _load_backbone_state(net: nn.Module, state: dict[str, torch.Tensor], backbone: str, family: Family, origin: str) -> None:
    # the 1000-class layer is replaced by our classifier: its weights are not needed
    head = {f"{family.classifier}.weight", f"{family.classifier}.bias"}
    state = {k: v for k, v in state.items() if k not in head}
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ModelError(f"{origin} does not fit {backbone}: {detail}") from None
    missing = [k for k in result.missing_keys if k not in head]
    if missing or result.unexpected_keys:
        raise ModelError(f"{origin} does not fit {backbone}: {len(missing)} missing parameter(s) "
                         f"{missing[:3]}, {len(result.unexpected_keys)} unexpected {result.unexpected_keys[:3]}")


def pretrained_state(backbone: str, pretrained: str | None, weights: str | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The RGB backbone's state dict from a local file or torchvision's named weights (or None),
    and a description of where it came from."""
    if pretrained is not None:
        return _state_from_file(pretrained), pretrained
    if weights is not None:
        return _state_from_torchvision(backbone, weights), f"torchvision {backbone} {weights}"
    return None, ""


def _state_from_file(path: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"pretrained weights file {path} not found") from None
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a readable state dict ({' '.join(str(exc).split())[:200]})") from None
    # common wrappers: {"state_dict": ...} (Lightning, mmcv), {"model": ...} (torchvision references)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{path}: expected a state dict (parameter name -> tensor) of an RGB backbone")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel


def _state_from_torchvision(backbone: str, weights: str) -> dict[str, torch.Tensor]:
    get_family(backbone)
    available = torchvision.models.get_model_weights(backbone)
    try:
        entry = available[weights]
    except KeyError:
        raise ModelError(f"unknown torchvision weights {weights!r} for {backbone}; choices: "
                         f"{', '.join(available.__members__)}") from None
    try:
        return entry.get_state_dict(progress=False)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; RuntimeError: bad hash
        raise ModelError(f"could not fetch torchvision's {backbone} {weights} weights ({' '.join(str(exc).split())}); "
                         f"without access to the model hub, download {entry.url} elsewhere and pass "
                         f"--pretrained PATH") from None


def describe(model: StreamModel) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{params / 1e6:.1f}M parameters, {model.in_channels} input channels, {model.feature_dim}-d features"
