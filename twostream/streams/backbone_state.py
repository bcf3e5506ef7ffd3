"""An RGB backbone's pretrained state put into a stream's body (read by twostream.streams.pretrained).

Names that are not the body's own are mapped when that is unambiguous (twostream.streams.state_mapping).
A 2D ResNet's weights initialise a 3D ResNet whose layers correspond (r3d_18, mc3_18) by I3D
inflation (Carreira and Zisserman 2017): each 2D kernel repeated over the 3D kernel's time extent
and divided by it, so on a clip of one frame repeated the 3D filter answers as the 2D one does on
that frame. A ViT's position embedding is resampled to the grid of the stream's crops. A first
convolution taking flow instead of RGB is initialised by cross-modality averaging (TSN, Wang et
al. 2016): the RGB filters averaged over colour and replicated over the flow channels.
"""
from __future__ import annotations

import logging
import re

import torch
from torch import nn

from twostream.core.errors import ModelError
from twostream.streams.state_mapping import IGNORED_SUFFIX, MappingError, map_state

log = logging.getLogger("twostream")


def cross_modality_weight(rgb_weight: torch.Tensor, channels: int) -> torch.Tensor:
    """(O, 3, k...) RGB filters (2D or 3D) -> (O, channels, k...): the mean over colour, replicated."""
    return rgb_weight.mean(dim=1, keepdim=True).repeat(1, channels, *[1] * (rgb_weight.dim() - 2))


def inflate_weight(weight_2d: torch.Tensor, time: int) -> torch.Tensor:
    """I3D inflation: (O, I, kh, kw) -> (O, I, time, kh, kw), the kernel repeated over time and
    divided by `time`, so a clip of one frame repeated gives the 2D response."""
    return weight_2d.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


def load_rgb_state(body: nn.Module, state: dict[str, torch.Tensor], head: set[str], backbone: str, origin: str,
                   video: bool) -> None:
    """Load `state` (an RGB backbone's, from `origin`) into `body`, the `head` parameters of the
    whole network left out: inflated first if `body` is a `video` network and the state a 2D one's."""
    if video and _is_2d_state(state):
        state = inflate_state(state, body, backbone, origin)
    state = _fit_position_embedding(state, body, origin)
    _load_backbone_state(body, state, head, backbone, origin)


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
