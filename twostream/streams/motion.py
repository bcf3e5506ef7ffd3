"""Motion-guided spatial attention without parameters: where in a frame the flow stack beside it
moves (for a clip of flow fields: where and when), as weights of a feature map's places. Pure
functions on tensors; the spatial stream that reads a stack beside its frame (`twostream train
--motion-attention`, models.MotionAttendedStream) and the motion fusion head
(twostream.feature_fusion.map_heads) pool with them."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def field_magnitudes(fields: torch.Tensor) -> torch.Tensor:
    """(N, 2, T, S, S) x, y of T flow fields -> (N, 1, T, S, S) each field's magnitude, the field's
    mean (the camera's motion, roughly: the paper's mean displacement subtraction) removed first."""
    fields = fields.float()
    fields = fields - fields.mean(dim=(3, 4), keepdim=True)
    return fields.pow(2).sum(dim=1, keepdim=True).sqrt()


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2L, S, S) flow stack (x0, y0, x1, ...) -> (N, 1, S, S) the mean of its L fields'
    magnitudes; a flow clip (N, 2, T, S, S) -> (N, 1, T, S, S) each field's own (field_magnitudes)."""
    if flow.dim() == 5:
        return field_magnitudes(flow)
    n, channels, height, width = flow.shape
    return field_magnitudes(flow.reshape(n, channels // 2, 2, height, width).transpose(1, 2)).mean(dim=2)


def motion_weights(flow: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """The flow magnitude averaged over each of `size` positions' pixels, normalised to sum to 1
    over the positions: (N, h * w) float32, or for a flow clip and `size` (t, h, w) (N, t * h * w),
    each place its time steps' and pixels' average. A still stack or clip weighs all alike."""
    pool = F.adaptive_avg_pool3d if len(size) == 3 else F.adaptive_avg_pool2d
    magnitude = pool(flow_magnitude(flow), size).flatten(1)
    magnitude = magnitude + 1e-6 * magnitude.amax(dim=1, keepdim=True).clamp_min(1e-6)
    return magnitude / magnitude.sum(dim=1, keepdim=True)


def motion_pooled(feature_map: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, h, w) feature map and the (N, 2L, S, S) stack at it -> ((N, C) the map averaged with
    the motion weights, (N, h, w) the weights)."""
    n, _, h, w = feature_map.shape
    weights = motion_weights(flow, (h, w)).to(feature_map.dtype).reshape(n, h, w)
    return torch.einsum("nchw,nhw->nc", feature_map, weights), weights
