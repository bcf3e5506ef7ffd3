"""The model families: how each kind of backbone is built and cut into the body a stream keeps.

A family (keyed by twostream.core.backbones.family_of's names) constructs the whole network with
random weights, splits it into the body that ends at the penultimate features (and their size),
and says how to read the body's last feature map before pooling: a 2D network's (N, C, h, w) (a
ViT's patch tokens on their grid), a video network's (N, C, t, h, w) (a 3D CNN's places; swin3d's
and mvit's tokens on their grid): what the heads that look at places read. The body is a 2D network on
(N, C, H, W) (torchvision's or timm's image models) or a 3D one on clips (N, C, T, H, W)
(torchvision's video models, Tiny3D). Weights come later (twostream.streams.backbone_state).
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

from twostream.core.backbones import TIMM_PREFIX, family_of
from twostream.core.errors import ModelError

log = logging.getLogger("twostream")
# what the loader normalises RGB with (twostream.data.transforms.RGB_MEAN/RGB_STD)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Family:
    construct: Callable[[str, int, int], nn.Module]  # (name, clip, crop) -> the whole network, random weights
    split: Callable[[nn.Module, float], tuple[nn.Module, int]]  # net, dropout -> (body to the features, their size)
    video: bool = False  # takes clips (N, C, T, H, W)
    # (body, x) -> the last feature map (N, C, h, w) or (N, C, t, h, w), and (body) -> its C; None: not given
    feature_map: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    map_channels: Callable[[nn.Module], int] | None = None


# --- torchvision image models ------------------------------------------------------------------------
def _torchvision(name: str, clip: int, crop: int) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None)


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


def _resnet_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def _last_conv_channels(net: nn.Module) -> int:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1].out_channels


def _vgg_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.features(x)  # before the adaptive pooling to 7x7 and fc6


# --- timm image models -----------------------------------------------------------------------------
def _timm(name: str, clip: int, crop: int) -> nn.Module:
    import timm  # deferred: only timm backbones need it

    model_name = name[len(TIMM_PREFIX):]
    if not timm.is_model(model_name.split(".")[0]):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        raise ModelError(f"unknown timm model {model_name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                         + " (timm.list_models() lists them)")
    net = timm.create_model(model_name, pretrained=False)
    size = getattr(getattr(net, "patch_embed", None), "img_size", None)
    if size is not None and tuple(size) != (crop, crop):
        # a ViT's position embedding is sized for one input size: built for the stream's crops
        net = timm.create_model(model_name, pretrained=False, img_size=crop)
    mean, std = net.pretrained_cfg.get("mean"), net.pretrained_cfg.get("std")
    if mean is not None and (tuple(mean), tuple(std)) != (IMAGENET_MEAN, IMAGENET_STD):
        log.warning("timm's %s weights were trained on inputs normalised with mean %s and std %s; the loader "
                    "normalises RGB with ImageNet's (%s, %s)", model_name, mean, std, IMAGENET_MEAN, IMAGENET_STD)
    return net


def _timm_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    # timm's own API: with the classifier reset to 0 classes the model returns its pooled
    # pre-logits features (head_hidden_size where a model has a hidden head layer, else num_features)
    net.reset_classifier(0)
    return net, getattr(net, "head_hidden_size", None) or net.num_features


def _timm_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net.forward_features(x)
    if out.dim() == 3 and hasattr(net, "patch_embed"):  # a ViT's tokens: its patch tokens back on their grid
        grid = net.patch_embed.grid_size
        return out[:, getattr(net, "num_prefix_tokens", 0):].transpose(1, 2).reshape(out.shape[0], -1, *grid)
    if out.dim() == 4 and out.shape[1] == net.num_features:
        return out
    raise ModelError(f"{type(net).__name__}'s forward_features gives {tuple(out.shape)}, not a feature map "
                     f"(N, {net.num_features}, h, w) or a ViT's tokens; heads on feature maps cannot read it")


# --- torchvision video models ----------------------------------------------------------------------
def _video(name: str, clip: int, crop: int) -> nn.Module:
    if name == "mvit_v2_s" and (clip, crop) != (16, 224):
        # its relative position tables are sized for 16 x 224 x 224 in torchvision's builder
        raise ModelError(f"mvit_v2_s takes 16-frame clips of 224x224 crops (--clip 16 --crop-size 224); "
                         f"got --clip {clip} --crop-size {crop}")
    if name == "s3d" and clip < 8:  # its max pools halve time three times: fewer frames pool to nothing
        raise ModelError(f"s3d takes clips of at least 8 frames; got --clip {clip}")
    return getattr(torchvision.models.video, name)(weights=None)


def _video_resnet_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    return _resnet_body(net, dropout)  # r3d/mc3/r2plus1d: pooled and flattened before fc


def _video_resnet_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.layer4(net.layer3(net.layer2(net.layer1(net.stem(x)))))  # before avgpool


def _features_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.features(x)  # S3D's (in _PooledFeatures) and Tiny3D's: before their pooling


def _inception_channels(net: nn.Module) -> int:
    """S3D's last block concatenates its branches: the sum of each branch's last convolution's."""
    return sum(_last_conv_channels(branch) for branch in net.features[-1].children())


class _PooledFeatures(nn.Module):
    """S3D's features pooled over time and space: its own head pools with a fixed (2, 7, 7) window,
    which needs 224 crops and 16+ frames; adaptive pooling takes any clip."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features  # the same attribute name: S3D's state dict keys load unchanged
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def _s3d_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    return _PooledFeatures(net.features), net.classifier[1].in_channels


def _swin3d_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # SwinTransformer3d.forward: patch_embed, pos_drop, features, norm, permute, avgpool. The norm
    # (a LayerNorm per token) is applied: the map is what its pooling averages, so the map's mean
    # over its places is the stream's pooled features, as for the CNNs
    x = net.norm(net.features(net.pos_drop(net.patch_embed(x))))  # (N, t, h, w, C)
    return x.permute(0, 4, 1, 2, 3)


def _mvit_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MViT.forward up to its final norm, the class token left out, the patch tokens (in t, h, w
    order: conv_proj's flattened grid, which every block's pooling keeps) back on the grid the
    blocks pooled them to. Its pooled feature is the class token (what the classifier reads), not
    an average of these places: the map's mean is not the stream's features (as for a timm ViT
    that pools its class token). Tested for mvit_v2_s; mvit_v1_b (the same MViT class) by hand."""
    x = net.pos_encoding(net.conv_proj(x).flatten(2).transpose(1, 2))  # (N, 1 + t * h * w, C): the class token first
    thw = (net.pos_encoding.temporal_size, *net.pos_encoding.spatial_size)  # as MViT.forward starts
    for block in net.blocks:
        x, thw = block(x, thw)
    x = net.norm(x)[:, 1:]
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *thw)


def _final_norm_channels(net: nn.Module) -> int:
    return net.norm.normalized_shape[0]  # swin3d's and mvit's LayerNorm over the last stage's channels


def _head_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    # mvit: head = Dropout, Linear on the class token; swin3d: head = Linear after pooling
    linear = net.head[-1] if isinstance(net.head, nn.Sequential) else net.head
    net.head = nn.Identity()
    return net, linear.in_features


class Tiny3D(nn.Module):
    """Three 3x3x3 convolution blocks (16, 32, 64 channels; batch norm, ReLU), the first pooling
    space only, the second time and space, then global average pooling: a real 3D CNN, small enough
    to train on a CPU in seconds. No pretrained weights exist for it."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        pools = [(1, 2, 2), (2, 2, 2), None]
        for width, pool in zip(widths, pools):
            layers += [nn.Conv3d(channels, width, 3, padding=1, bias=False), nn.BatchNorm3d(width),
                       nn.ReLU(inplace=True)]
            if pool is not None:
                layers.append(nn.MaxPool3d(pool, ceil_mode=True))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def _tiny3d(name: str, clip: int, crop: int) -> nn.Module:
    return Tiny3D()


def _whole_body(net: nn.Module, dropout: float) -> tuple[nn.Module, int]:
    return net, net.num_features


FAMILIES = {
    "resnet": Family(_torchvision, _resnet_body, feature_map=_resnet_map, map_channels=_last_conv_channels),
    "vgg": Family(_torchvision, _vgg_body, feature_map=_vgg_map, map_channels=_last_conv_channels),
    "timm": Family(_timm, _timm_body, feature_map=_timm_map, map_channels=lambda net: net.num_features),
    "video_resnet": Family(_video, _video_resnet_body, video=True, feature_map=_video_resnet_map,
                           map_channels=_last_conv_channels),
    "s3d": Family(_video, _s3d_body, video=True, feature_map=_features_map, map_channels=_inception_channels),
    "mvit": Family(_video, _head_body, video=True, feature_map=_mvit_map, map_channels=_final_norm_channels),
    "swin3d": Family(_video, _head_body, video=True, feature_map=_swin3d_map, map_channels=_final_norm_channels),
    "tiny3d": Family(_tiny3d, _whole_body, video=True, feature_map=_features_map,
                     map_channels=lambda net: net.num_features),
}


def get_family(backbone: str) -> Family:
    try:
        return FAMILIES[family_of(backbone)]
    except ValueError as exc:
        raise ModelError(str(exc)) from None
