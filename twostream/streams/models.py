"""Stream networks: a backbone's body (twostream.streams.families), a dropout and a linear classifier.

`StreamModel.features(x)` is the penultimate representation (after global pooling; for VGG after
fc7), `classifier` maps it to class scores: a fusion head can take the features of both streams.
`StreamModel.feature_map(x)` is the last feature map before pooling, (N, C, h, w) for a 2D stream
(a ViT's patch tokens on their grid), (N, C, t, h, w) for a video network on clips (a 3D CNN's
places, swin3d's or mvit's tokens on their grid): what the heads that look at places
(motion-guided attention, cross-attention) read. Either way `features` gives (N, feature_dim).

The temporal stream's first convolution (found from the model: the first Conv2d/Conv3d taking 3
channels) takes 2L channels (a 2D stream) or 2 (a clip of flow fields, x and y); given RGB
weights (twostream.streams.pretrained reads them, twostream.streams.backbone_state loads them) it
is initialised by cross-modality averaging.
"""
from __future__ import annotations

import torch
from torch import nn

from twostream.core.errors import ModelError
from twostream.streams.backbone_state import cross_modality_weight, load_rgb_state
from twostream.streams.families import Family, get_family
from twostream.streams.motion import motion_pooled

_CONVS = (nn.Conv2d, nn.Conv3d)


class StreamModel(nn.Module):
    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, dropout: float, in_channels: int,
                 family: Family | None = None) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.feature_dim, self.num_classes, self.in_channels = feature_dim, num_classes, in_channels
        self._map = family.feature_map if family is not None else None
        # channels of feature_map's output; 0 where the family gives no map
        self.map_channels = family.map_channels(body) if self._map is not None else 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) or (N, C, T, H, W) -> (N, feature_dim) penultimate features."""
        return self.body(x)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, map_channels, h, w), or a clip (N, C, T, H, W) -> (N, map_channels, t,
        h, w): the last feature map, before pooling."""
        if self._map is None:
            raise ModelError("this stream's network was built without its family (twostream.streams.families), "
                             "which says how to read its feature map; build it with build_model")
        return self._map(self.body, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


class MotionAttendedStream(StreamModel):
    """A spatial stream that reads the flow stack beside its frame, (N, 3 + 2L, S, S), and pools its
    last feature map where the stack moves (motion.motion_pooled: parameter-free motion-guided
    spatial attention) instead of averaging it: its features are the map's channels."""

    def __init__(self, body: nn.Module, num_classes: int, dropout: float, family: Family, motion_channels: int) -> None:
        super().__init__(body, family.map_channels(body), num_classes, dropout, 3 + motion_channels, family)

    def motion_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, map channels), weights of the map's places (N, h, w))."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"a motion-attended spatial stream takes {self.in_channels} channels (RGB + "
                             f"{self.in_channels - 3} flow), got {x.shape[1]}")
        return motion_pooled(self.feature_map(x[:, :3]), x[:, 3:])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.motion_attention(x)[0]


def first_conv_path(net: nn.Module, channels: int = 3) -> str:
    """The attribute path of the network's first convolution on RGB (`channels`: on a temporal
    stream's input): timm's pretrained_cfg 'first_conv' where it names one, else the first
    Conv2d/Conv3d (in registration order, which for every stem is the forward order) taking them."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    named = cfg.get("first_conv")
    for path in ([named] if isinstance(named, str) else list(named or [])):
        try:
            module = net.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, _CONVS) and module.in_channels == channels:
            return path
    for path, module in net.named_modules():
        if isinstance(module, _CONVS) and module.in_channels == channels:
            return path
    raise ModelError(f"{type(net).__name__} has no convolution taking {channels} channels to give the flow channels")


def _replace_first_conv(net: nn.Module, channels: int, cross_modality: bool) -> None:
    path = first_conv_path(net)
    parent_path, _, name = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    old = getattr(parent, name)
    new = type(old)(channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
                    bias=old.bias is not None, padding_mode=old.padding_mode)
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
                rgb_state: dict[str, torch.Tensor] | None = None, origin: str = "", clip: int = 0,
                crop_size: int = 224, motion_channels: int = 0) -> StreamModel:
    """A stream network; `rgb_state` (from `pretrained.pretrained_state`) initialises the backbone, its
    first conv by cross-modality averaging when in_channels != 3. `origin` names the weights in
    errors. A video backbone takes clips of `clip` frames (`crop_size` matters to mvit and ViTs).
    `motion_channels` 2L > 0: an RGB stream that reads a flow stack beside its frame
    (MotionAttendedStream)."""
    family = get_family(backbone)
    if family.video and clip < 1:
        raise ModelError(f"{backbone} is a video network: give --clip T (frames per clip)")
    net = family.construct(backbone, clip, crop_size)
    whole = set(net.state_dict())
    body, dim = family.split(net, dropout)
    head = whole - set(body.state_dict())  # the 1000/400-class layer, replaced by our classifier
    if rgb_state is not None:
        load_rgb_state(body, rgb_state, head, backbone, origin, family.video)
    if in_channels != 3:
        _replace_first_conv(body, in_channels, cross_modality=rgb_state is not None)
    if motion_channels:
        if family.feature_map is None or in_channels != 3:
            raise ModelError(f"motion attention pools a 2D RGB stream's feature map; {backbone} on {in_channels} "
                             f"channels has none")
        return MotionAttendedStream(body, num_classes, dropout, family, motion_channels)
    return StreamModel(body, dim, num_classes, dropout, in_channels, family)


def describe(model: StreamModel) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{params / 1e6:.1f}M parameters, {model.in_channels} input channels, {model.feature_dim}-d features"
