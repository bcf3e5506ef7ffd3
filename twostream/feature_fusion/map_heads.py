"""Fusion heads that look at places: they read the two streams' last feature maps (N, C, h, w)
(`StreamModel.feature_map`: a CNN's positions, or a ViT's patch tokens on their grid), or two clip
streams' (N, C, t, h, w) (a 3D CNN's places in time and space, or swin3d's or mvit's tokens on
their grid: every place below is one of its t * h * w), instead of pooled vectors, and the normalised flow input. Registered in
`heads.REGISTRY` (uses_maps).

    motion           motion-guided spatial attention: the spatial feature map pooled with weights
                     that sum to 1 over its positions, taken from the motion at each position:
                     hidden 0, parameter-free, from the flow stack's magnitude (camera motion, the
                     stack's mean flow, removed first) averaged over each position's pixels;
                     hidden N, learned, from the temporal feature map (1x1 conv N -> ReLU -> 1x1 conv
                     -> softmax over positions; its last layer starts at zero, so it starts as
                     average pooling, i.e. as the mid head). The attended spatial vector and the
                     temporal map's average, each layer-normalised, go to a linear classifier.
    cross-attention  both maps' positions as tokens (layer-normalised, projected to `hidden` dims),
                     spatial tokens attend to the motion tokens and motion tokens to the spatial
                     ones (multi-head cross-attention); what each set gathered, averaged over its
                     tokens, goes to a linear classifier beside each map's average (layer-
                     normalised: the mid head's input). The attention's output projections start
                     at zero, so it starts as the mid head and learns what the places add.

Why weights that sum to 1 (a softmax or a normalised magnitude) rather than a gate: the attended
vector stays an average of the spatial features, on the scale the stream was trained at, wherever
the motion is and however much there is of it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from twostream.streams.motion import motion_weights


class StreamMaps(NamedTuple):
    spatial: torch.Tensor  # (N, Cs, h, w) the spatial stream's last feature map; clip streams': (N, Cs, t, h, w)
    temporal: torch.Tensor  # (N, Ct, h', w') the temporal stream's; (N, Ct, t', h', w')
    flow: torch.Tensor  # (N, 2L, S, S) the normalised flow stack both came from (x, y of each field); (N, 2, T, S, S)


class MotionHead(nn.Module):
    def __init__(self, channels: tuple[int, int], num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        spatial, temporal = channels
        self.learned = None
        if hidden:
            self.learned = nn.Sequential(nn.Conv2d(temporal, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))
            nn.init.zeros_(self.learned[-1].weight)  # uniform weights at the start: average pooling
            nn.init.zeros_(self.learned[-1].bias)
        self.norm_spatial, self.norm_temporal = nn.LayerNorm(spatial), nn.LayerNorm(temporal)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(spatial + temporal, num_classes))

    def weights(self, maps: StreamMaps) -> torch.Tensor:
        """(N, h, w), or (N, t, h, w) on clip streams: each spatial place's weight; each map sums to 1."""
        n, _, *places = maps.spatial.shape
        if self.learned is None:
            weights = motion_weights(maps.flow, tuple(places))
        else:
            # a 1x1 convolution is per place: a clip map's t, h, w run through it as (t, h * w)
            temporal = maps.temporal
            scores = self.learned(temporal.flatten(3)).reshape(n, 1, *temporal.shape[2:])
            if list(scores.shape[2:]) != places:  # streams whose maps differ in size: the motion map resized
                scores = F.interpolate(scores, size=places, mode="bilinear" if len(places) == 2 else "trilinear",
                                       align_corners=False)
            weights = torch.softmax(scores.flatten(1).float(), dim=1)
        return weights.to(maps.spatial.dtype).reshape(n, *places)

    def forward(self, maps: StreamMaps) -> torch.Tensor:
        weights = self.weights(maps)
        attended = torch.einsum("ncp,np->nc", maps.spatial.flatten(2), weights.flatten(1))
        motion = maps.temporal.flatten(2).mean(dim=2)
        return self.classifier(torch.cat([self.norm_spatial(attended), self.norm_temporal(motion)], dim=1))


def attention_heads(dims: int) -> int:
    """Heads of the cross-attention: 4 where they divide its width, else 2, else 1."""
    return next(h for h in (4, 2, 1) if dims % h == 0)


class CrossAttentionHead(nn.Module):
    def __init__(self, channels: tuple[int, int], num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Sequential(nn.LayerNorm(c), nn.Linear(c, hidden)) for c in channels)
        heads = attention_heads(hidden)
        self.spatial_to_motion = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.motion_to_spatial = nn.MultiheadAttention(hidden, heads, batch_first=True)
        for attention in (self.spatial_to_motion, self.motion_to_spatial):
            nn.init.zeros_(attention.out_proj.weight)  # what attention adds starts at zero: the head
            nn.init.zeros_(attention.out_proj.bias)  # starts as mid fusion on the maps' averages
        self.norm_spatial, self.norm_temporal = (nn.LayerNorm(c) for c in channels)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(channels) + 2 * hidden, num_classes))

    @staticmethod
    def tokens(feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map.flatten(2).transpose(1, 2)  # (N, C, [t,] h, w) -> (N, [t *] h * w, C)

    def attended(self, maps: StreamMaps) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, hidden) each: what the spatial tokens gathered from the motion tokens, and what the
        motion tokens gathered from the spatial ones, averaged over the tokens."""
        s, t = (p(self.tokens(m)) for p, m in zip(self.project, (maps.spatial, maps.temporal)))
        return (self.spatial_to_motion(s, t, t, need_weights=False)[0].mean(dim=1),
                self.motion_to_spatial(t, s, s, need_weights=False)[0].mean(dim=1))

    def forward(self, maps: StreamMaps) -> torch.Tensor:
        # both directions from the same tokens, beside each map's average (the mid head's input):
        # a small head on few videos keeps what the streams learned and adds what attention finds
        pooled = [self.norm_spatial(maps.spatial.flatten(2).mean(dim=2)),
                  self.norm_temporal(maps.temporal.flatten(2).mean(dim=2))]
        return self.classifier(torch.cat([*pooled, *self.attended(maps)], dim=1))
