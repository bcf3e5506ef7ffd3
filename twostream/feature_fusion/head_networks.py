"""The fusion heads' networks, each an nn.Module over the two streams' features (and logits).
Which heads exist, and how each is built, is the registry's (`heads.REGISTRY`); the two-stream
model around a head is model.py's.

Heads (`heads.REGISTRY`):
    mid        mid fusion: the two streams' penultimate features concatenated -> dropout -> linear
               (or, with hidden units, linear -> ReLU -> dropout -> linear) -> class logits
    attention  a small network on the concatenated features gives two softmax weights per sample;
               the fused logits are s * (w_s * spatial logits + w_t * temporal logits), each
               stream's logits (its own classifier's) standardised per sample, s a learned scale.
               A convex combination of logits is a weighted product of the two streams' softmax
               distributions, so evidence of complementary streams adds up (the appearance from
               one, the motion from the other); it starts at 1:1.

Why standardised logits: the weights' gradient is proportional to the difference of the two
streams' logits. Streams trained for different lengths have logits of unrelated scales (tens on
one, ones on the other); raw, they made one SGD step throw the weights into the saturated ends
of the softmax (0 or 1 for every sample), where the gradient vanishes and the head keeps
whichever stream it fell on, worse than its 1:1 start. Standardised, the weights move at a rate
that does not depend on the streams, and neither stream drowns the other by its scale alone.

Both heads see each stream's features layer-normalised, then concatenated: two networks' features
have unrelated scales (and a stream trained briefly can have large ones), and a head on the raw
concatenation would mostly hear the louder stream and need a learning rate to suit it.
"""
from __future__ import annotations

import torch
from torch import nn


class StreamNorm(nn.Module):
    """Each stream's features layer-normalised on their own, then concatenated: (N, Ds + Dt)."""

    def __init__(self, spatial_features: int, temporal_features: int) -> None:
        super().__init__()
        self.spatial, self.temporal = nn.LayerNorm(spatial_features), nn.LayerNorm(temporal_features)

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.spatial(spatial), self.temporal(temporal)], dim=1)


class MidHead(nn.Module):
    def __init__(self, dims: tuple[int, int], num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = StreamNorm(*dims)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(sum(dims), hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or sum(dims), num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor, logits: tuple | None) -> torch.Tensor:
        return self.net(self.norm(spatial, temporal))


class AttentionHead(nn.Module):
    def __init__(self, dims: tuple[int, int], hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = StreamNorm(*dims)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(dims), hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2))
        # zero output layer: every sample starts with weights 1/2, 1/2 (the paper's averaging)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        # the fused logits' scale (their softmax's sharpness), learned as its log; starts at 1
        self.log_scale = nn.Parameter(torch.zeros(()))

    def weights(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        """(N, 2) per-sample weights of the spatial and the temporal stream; each row sums to 1."""
        return torch.softmax(self.net(self.norm(spatial, temporal)).float(), dim=1).to(spatial.dtype)

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor, logits: tuple) -> torch.Tensor:
        w = self.weights(spatial, temporal)
        zs, zt = (standardised(z) for z in logits)
        return (w[:, :1] * zs + w[:, 1:] * zt) * self.log_scale.exp().to(zs.dtype)


def standardised(logits: torch.Tensor) -> torch.Tensor:
    """(N, C) logits with zero mean and unit standard deviation in each row (computed in float32:
    under autocast they may be bfloat16). The softmax of a row is the stream's own, tempered."""
    z = logits.float()
    z = (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True, unbiased=False) + 1e-6)
    return z.to(logits.dtype)
