"""Stream networks: a backbone by name (twostream.core.backbones), a dropout and a linear classifier.

`StreamModel.features(x)` is the penultimate representation (after global pooling; for VGG after
fc7), `classifier` maps it to class scores: a fusion head can take the features of both streams.
`StreamModel.feature_map(x)` is a 2D stream's last feature map before pooling, (N, C, h, w) (a
ViT's patch tokens on their grid): what the heads that look at places (motion-guided attention,
cross-attention) read.
The body is a 2D network on (N, C, H, W) (torchvision's or timm's image models) or a 3D one on
clips (N, C, T, H, W) (torchvision's video models); either way `features` gives (N, feature_dim).

The temporal stream's first convolution (found from the model: the first Conv2d/Conv3d taking 3
channels) takes 2L channels (a 2D stream) or 2 (a clip of flow fields, x and y); given RGB
weights it is initialised by cross-modality averaging (TSN, Wang et al. 2016): the RGB filters
averaged over colour and replicated over the flow channels. A 2D ResNet's weights initialise a 3D
ResNet whose layers correspond (r3d_18, mc3_18) by I3D inflation (Carreira and Zisserman 2017):
each 2D kernel repeated over the 3D kernel's time extent and divided by it, so on a clip of one
frame repeated the 3D filter answers as the 2D one does on that frame.
Pretrained weights come from a local file or a URL (torch.hub's cache, its hash checked), or by
name from torchvision (`--weights`, its Weights enum) or timm, where their hubs are reachable.
"""
from __future__ import annotations

import difflib
import logging
import pickle
import re
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

from runkit.files import open_regular
from twostream.core.backbones import TIMM_PREFIX, family_of
from twostream.core.errors import ModelError
from twostream.streams.motion import motion_pooled
from twostream.streams.state_mapping import IGNORED_SUFFIX, MappingError, map_state

log = logging.getLogger("twostream")
_CONVS = (nn.Conv2d, nn.Conv3d)
# what the loader normalises RGB with (twostream.data.transforms.RGB_MEAN/RGB_STD)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Family:
    construct: Callable[[str, int, int], nn.Module]  # (name, clip, crop) -> the whole network, random weights
    split: Callable[[nn.Module, float], tuple[nn.Module, int]]  # net, dropout -> (body to the features, their size)
    video: bool = False  # takes clips (N, C, T, H, W)
    # (body, x) -> the last feature map (N, C, h, w), and (body) -> its C; None: not given (3D streams)
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
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


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
    "video_resnet": Family(_video, _video_resnet_body, video=True),
    "s3d": Family(_video, _s3d_body, video=True),
    "mvit": Family(_video, _head_body, video=True),
    "swin3d": Family(_video, _head_body, video=True),
    "tiny3d": Family(_tiny3d, _whole_body, video=True),
}


def get_family(backbone: str) -> Family:
    try:
        return FAMILIES[family_of(backbone)]
    except ValueError as exc:
        raise ModelError(str(exc)) from None


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
        """(N, C, H, W) -> (N, map_channels, h, w): the last feature map, before pooling."""
        if self._map is None:
            raise ModelError("this stream's network gives no 2D feature map (a 3D network on clips, or one built "
                             "without its family); heads on feature maps take 2D streams")
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


def cross_modality_weight(rgb_weight: torch.Tensor, channels: int) -> torch.Tensor:
    """(O, 3, k...) RGB filters (2D or 3D) -> (O, channels, k...): the mean over colour, replicated."""
    return rgb_weight.mean(dim=1, keepdim=True).repeat(1, channels, *[1] * (rgb_weight.dim() - 2))


def inflate_weight(weight_2d: torch.Tensor, time: int) -> torch.Tensor:
    """I3D inflation: (O, I, kh, kw) -> (O, I, time, kh, kw), the kernel repeated over time and
    divided by `time`, so a clip of one frame repeated gives the 2D response."""
    return weight_2d.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


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
    """A stream network; `rgb_state` (from `pretrained_state`) initialises the backbone, its
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
        if family.video and _is_2d_state(rgb_state):
            rgb_state = inflate_state(rgb_state, body, backbone, origin)
        rgb_state = _fit_position_embedding(rgb_state, body, origin)
        _load_backbone_state(body, rgb_state, head, backbone, origin)
    if in_channels != 3:
        _replace_first_conv(body, in_channels, cross_modality=rgb_state is not None)
    if motion_channels:
        if family.feature_map is None or in_channels != 3:
            raise ModelError(f"motion attention pools a 2D RGB stream's feature map; {backbone} on {in_channels} "
                             f"channels has none")
        return MotionAttendedStream(body, num_classes, dropout, family, motion_channels)
    return StreamModel(body, dim, num_classes, dropout, in_channels, family)


def _fit_position_embedding(state: dict[str, torch.Tensor], body: nn.Module, origin: str) -> dict[str, torch.Tensor]:
    """A ViT's pretrained position embedding (e.g. 14x14 patches of 224 crops) resampled to the grid
    of this stream's crops (6x6 at 96), as timm does when it loads weights at another image size."""
    target = getattr(body, "pos_embed", None)
    old = state.get("pos_embed")
    if not isinstance(target, torch.Tensor) or old is None or old.shape == target.shape:
        return state
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(body, "no_embed_class", False) else getattr(body, "num_prefix_tokens", 1)
    log.info("%s: position embedding resampled from %d to %d tokens", origin, old.shape[1], target.shape[1])
    return {**state, "pos_embed": resample_abs_pos_embed(old, list(body.patch_embed.grid_size), num_prefix_tokens=prefix)}


def _is_2d_state(state: dict[str, torch.Tensor]) -> bool:
    return state.get("conv1.weight") is not None and state["conv1.weight"].dim() == 4


def _inflated_key(key: str) -> str:
    """A torchvision 2D ResNet's parameter name -> the name in a torchvision 3D ResNet of BasicBlocks."""
    key = re.sub(r"^conv1\.", "stem.0.", key)
    key = re.sub(r"^bn1\.", "stem.1.", key)
    # a block's convN and bnN are one Sequential (conv, bn[, relu]) in the 3D network
    key = re.sub(r"^(layer\d+\.\d+)\.conv(\d)\.", r"\1.conv\2.0.", key)
    return re.sub(r"^(layer\d+\.\d+)\.bn(\d)\.", r"\1.conv\2.1.", key)


def inflate_state(state_2d: dict[str, torch.Tensor], body: nn.Module, backbone: str, origin: str) -> dict[str, torch.Tensor]:
    """A 2D ResNet's state dict as the 3D ResNet `body`'s: names mapped, every 2D kernel inflated
    over its 3D kernel's time extent (`inflate_weight`)."""
    target = body.state_dict()
    out = {}
    for key, value in state_2d.items():
        new = _inflated_key(key)
        if new in target and value.dim() == 4 and target[new].dim() == 5:
            value = inflate_weight(value, target[new].shape[2])
        out[new] = value
    missing = [k for k in target if k not in out and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"{origin} is a 2D network's state, and I3D inflation needs a 3D network whose layers "
                         f"correspond to its own (a 2D ResNet-18 into r3d_18 or mc3_18); {backbone} has "
                         f"{len(missing)} parameter(s) it lacks, e.g. {missing[:2]}")
    log.info("I3D inflation of the 2D weights of %s into %s", origin, backbone)
    return out


def _load_backbone_state(body: nn.Module, state: dict[str, torch.Tensor], head: set[str], backbone: str,
                         origin: str) -> None:
    try:  # names that are not the model's own are mapped when that is unambiguous (state_mapping)
        mapping = map_state(state, body.state_dict(), frozenset(head))
    except MappingError as exc:
        raise ModelError(f"{origin} does not fit {backbone}: {exc}") from None
    log.info("%s into %s: %s", origin, backbone, mapping.how)
    try:
        result = body.load_state_dict(mapping.state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ModelError(f"{origin} does not fit {backbone}: {' '.join(detail.split())[:300]}") from None
    result.missing_keys[:] = [k for k in result.missing_keys if not k.endswith(IGNORED_SUFFIX)]
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(f"{origin} does not fit {backbone}: {len(result.missing_keys)} missing parameter(s) "
                         f"{result.missing_keys[:3]}, {len(result.unexpected_keys)} unexpected "
                         f"{result.unexpected_keys[:3]}")


# --- where pretrained weights come from --------------------------------------------------------------
def is_url(value: str) -> bool:
    return re.match(r"^(https?|file)://", value) is not None


def pretrained_state(backbone: str, pretrained: str | None, weights: str | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The RGB backbone's state dict from a local file, a URL or named weights (torchvision's or
    timm's), or None; and a description of where it came from."""
    if pretrained is not None:
        if is_url(pretrained):
            return _state_from_url(pretrained), pretrained
        return _state_from_file(pretrained), pretrained
    if weights is not None:
        if family_of(backbone) == "timm":
            return _state_from_timm(backbone, weights)
        return _state_from_torchvision(backbone, weights), f"torchvision {backbone} {weights}"
    return None, ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _state_dict_of(obj, origin: str) -> dict[str, torch.Tensor]:
    # common wrappers: {"state_dict": ...} (Lightning, mmcv), {"model": ...} (torchvision references)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{origin}: expected a state dict (parameter name -> tensor) of an RGB backbone")
    for name, tensor in obj.items():  # else the first step's loss is NaN, blamed on the learning rate
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(f"{origin}: tensor {name!r} holds {bad} value(s) that are not finite numbers (NaN or "
                             f"infinite): the weights file is damaged")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel


def _state_from_file(path: str) -> dict[str, torch.Tensor]:
    try:
        if path.endswith(".safetensors"):  # what timm's and Hugging Face's hubs hold
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            with open_regular(path) as fh:
                obj = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"pretrained weights file {path} not found") from None
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a readable state dict ({_one_line(exc)})") from None
    return _state_dict_of(obj, path)


def _state_from_url(url: str) -> dict[str, torch.Tensor]:
    """Downloaded once into torch.hub's cache ($TORCH_HOME/hub/checkpoints); a file named
    NAME-<sha256 prefix>.EXT (torchvision's convention) has its hash checked."""
    try:
        obj = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True,
                                                 weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        # URLError and refused connections are OSErrors; a bad hash is a RuntimeError
        raise ModelError(f"could not fetch {url} ({_one_line(exc)}); without access to it, download it elsewhere "
                         f"and pass --pretrained PATH (the local file)") from None
    return _state_dict_of(obj, url)


def torchvision_weights(backbone: str, weights: str):
    """torchvision's Weights entry for `weights`, in either spelling: IMAGENET1K_V1 (or DEFAULT)
    or the enum's full name, ResNet18_Weights.IMAGENET1K_V1 (how torchvision's references name them)."""
    get_family(backbone)
    available = torchvision.models.get_model_weights(backbone)
    enum_name, dot, member = weights.rpartition(".")
    choices = ", ".join(available.__members__)
    if dot and enum_name != available.__name__:
        raise ModelError(f"weights {weights!r} are not {backbone}'s; choices: {choices} "
                         f"(or {available.__name__}.NAME)")
    try:
        return available[member]
    except KeyError:
        raise ModelError(f"unknown torchvision weights {weights!r} for {backbone}; choices: {choices} "
                         f"(or {available.__name__}.NAME)") from None


def _state_from_torchvision(backbone: str, weights: str) -> dict[str, torch.Tensor]:
    entry = torchvision_weights(backbone, weights)
    try:
        return entry.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; RuntimeError: bad hash
        raise ModelError(f"could not fetch torchvision's {backbone} {weights} weights ({_one_line(exc)}); "
                         f"without access to the model hub, download {entry.url} elsewhere and pass "
                         f"--pretrained PATH") from None


def _state_from_timm(backbone: str, weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """timm's own pretrained loading (its Hugging Face hub): `weights` is DEFAULT (timm's default
    tag for the model) or a tag such as in1k (convnext_tiny.in1k)."""
    import timm

    name = backbone[len(TIMM_PREFIX):]
    full = name if weights == "DEFAULT" else f"{name.split('.')[0]}.{weights}"
    try:
        cfg = timm.models.get_pretrained_cfg(full)
    except Exception:  # noqa: BLE001 - timm raises several kinds for an unknown tag
        cfg = None
    if cfg is None:
        tags = [m.split(".", 1)[1] for m in timm.list_pretrained(f"{name.split('.')[0]}.*")]
        raise ModelError(f"timm has no pretrained weights {weights!r} for {name}; choices: DEFAULT"
                         + (f", {', '.join(tags)}" if tags else ""))
    source = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or "timm's model hub")
    try:
        net = timm.create_model(full, pretrained=True)
    except (OSError, RuntimeError, ValueError) as exc:  # offline: huggingface_hub's and requests' errors are these
        raise ModelError(f"could not fetch timm's {full} weights ({_one_line(exc)}); without access to the hub, "
                         f"download {source} (model.safetensors) elsewhere and pass --pretrained PATH") from None
    return net.state_dict(), f"timm {full}"


def describe(model: StreamModel) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{params / 1e6:.1f}M parameters, {model.in_channels} input channels, {model.feature_dim}-d features"
