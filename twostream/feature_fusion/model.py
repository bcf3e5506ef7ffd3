"""Feature-level fusion: the two trained stream networks and a small head on top of both (the
heads: heads.REGISTRY, their networks: head_networks.py).

`TwoStreamModel` takes one input of 3 + 2L channels (`paired.PairSpec`: RGB then flow), or two
clip streams' (3 + 2, T, S, S) (`clip_pairs.ClipPairSpec`), and splits it (a head that reads feature maps, `map_heads`, gets both streams' last feature maps and the flow
half of the input instead of pooled features). Frozen (the default), the streams stay in eval mode (batch norm statistics and dropout fixed)
and run without autograd: only the head learns, and a step costs two forward passes. Joint
(`joint=True`), the streams fine-tune with the head, at their own (lower) learning rate.
"""
from __future__ import annotations

import torch
from torch import nn

# the heads' names and their spec live in a torch-free module: the command line needs them for its
# --help and its checks, and importing torch for that took seconds
from twostream.feature_fusion.head_networks import AttentionHead
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.map_heads import MotionHead, StreamMaps
from twostream.streams.models import StreamModel
from twostream.streams.motion_models import LearnedFlowStream


def build_head(spec: HeadSpec, dims: tuple[int, int], num_classes: int) -> nn.Module:
    """The head on features of sizes `dims` (spatial, temporal)."""
    return spec.entry.build(spec, dims, num_classes)


class TwoStreamModel(nn.Module):
    def __init__(self, spatial: StreamModel, temporal: StreamModel, head_spec: HeadSpec, joint: bool) -> None:
        super().__init__()
        if spatial.num_classes != temporal.num_classes:
            raise ValueError(f"the streams must have the same classes; the spatial stream has {spatial.num_classes}, "
                             f"the temporal {temporal.num_classes}")
        self.spatial, self.temporal = spatial, temporal
        dims = (spatial.map_channels, temporal.map_channels) if head_spec.entry.uses_maps else \
            (spatial.feature_dim, temporal.feature_dim)
        self.head = build_head(head_spec, dims, spatial.num_classes)
        self.head_spec, self.joint = head_spec, joint
        self.num_classes = spatial.num_classes
        # a learned-flow stream takes its window's frames as 3T planes (paired.PairSpec)
        self.split = spatial.in_channels
        self.in_channels = spatial.in_channels + getattr(temporal, "paired_channels", temporal.in_channels)
        for p in self.stream_parameters():
            p.requires_grad_(joint)
        self.train(self.training)

    def stream_parameters(self) -> list[nn.Parameter]:
        return list(self.spatial.parameters()) + list(self.temporal.parameters())

    def train(self, mode: bool = True) -> "TwoStreamModel":
        super().train(mode)
        if not self.joint:  # frozen streams keep their batch norm statistics and skip dropout
            self.spatial.eval()
            self.temporal.eval()
        return self

    def _split(self, x: torch.Tensor) -> int:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"a two-stream input has {self.in_channels} channels "
                             f"({self.split} RGB + {self.in_channels - self.split} flow), got {x.shape[1]}")
        return self.split

    def _maps(self, x: torch.Tensor) -> StreamMaps:
        """Each stream's last feature map, and the flow half of the input (a learned-flow stream's:
        its layer's flow of the window)."""
        split = self._split(x)
        motion = x[:, split:]
        with torch.set_grad_enabled(self.joint and torch.is_grad_enabled()):
            flow = self.temporal.flow(motion) if isinstance(self.temporal, LearnedFlowStream) else motion
            return StreamMaps(self.spatial.feature_map(x[:, :split]), self.temporal.feature_map(motion), flow)

    def _streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
        """Each stream's features, and its logits if the head uses them."""
        split = self._split(x)
        # frozen streams run without autograd: no activations kept for a backward pass they never get
        with torch.set_grad_enabled(self.joint and torch.is_grad_enabled()):
            fs, ft = self.spatial.features(x[:, :split]), self.temporal.features(x[:, split:])
            if not self.head_spec.entry.uses_logits:
                return fs, ft, None
            # each stream's classifier after its own dropout (active only when fine-tuned jointly)
            return fs, ft, (self.spatial.classifier(self.spatial.dropout(fs)),
                            self.temporal.classifier(self.temporal.dropout(ft)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3 + 2L, S, S) or (N, 3 + 2, T, S, S) -> (N, classes) fused logits."""
        if self.head_spec.entry.uses_maps:
            return self.head(self._maps(x))
        return self.head(*self._streams(x))

    @torch.no_grad()
    def fusion_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention head's (N, 2) spatial and temporal weights of each input."""
        if not isinstance(self.head, AttentionHead):
            raise ValueError(f"only the attention head weighs the streams; this model's head is {self.head_spec.head}")
        return self.head.weights(*self._streams(x)[:2])

    @torch.no_grad()
    def motion_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The motion head's (N, h, w) weights of the spatial feature map's positions ((N, t, h, w) on
        clip streams; each sums to 1)."""
        if not isinstance(self.head, MotionHead):
            raise ValueError(f"only the motion head weighs places; this model's head is {self.head_spec.head}")
        return self.head.weights(self._maps(x))
