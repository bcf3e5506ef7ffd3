"""The network of each stream, by its TrainConfig: `streams.models.build_model`'s backbone, and for
the `learned-flow` stream a learned TV-L1 layer in front of it.

The learned-flow stream (Representation Flow's idea, Piergiovanni and Ryoo 2019, on frames) takes
a window of T RGB frames (N, 3, T, S, S), ImageNet-normalised as the loader gives every RGB input;
`LearnedFlowStem` puts them back to grey levels 0..255 (tvl1-torch's input), pools them by
`FLOW_POOL`, computes the flow of each of the T-1 consecutive pairs with
`flowprep.flow.tvl1_layer.TVL1Layer` (its theta, lambda, tau and difference kernels trained with
the rest, at `FLOW_LR_SCALE` of the learning rate), and hands the 2(T-1) flow channels, each less
its mean (as extraction stores flow) and batch-normalised, to a 2D backbone whose first convolution takes them (from ImageNet weights by
cross-modality averaging, as the temporal stream's). Before training, the layer's flow is
tvl1-torch's single-scale flow (tests/flowprep/flow/test_tvl1_layer.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowprep.flow.tvl1_layer import TVL1Layer
from twostream.streams.models import IMAGENET_MEAN, IMAGENET_STD, StreamModel, build_model

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as flowprep makes the frames it computes flow on
FLOW_ITERATIONS = 10  # TV-L1 iterations of the layer (one warping, one scale): TVNet's and RepFlow's order
# the layer runs on frames average-pooled by this factor (Representation Flow runs it on feature maps
# a quarter of the input's size): its cost falls with the square, one scale reaches twice as far
# in input pixels, and the flow is resized back to the crop for the backbone
FLOW_POOL = 2
# the layer's parameters learn at this fraction of the network's learning rate (their gradients are
# scaled): at the full rate, a few epochs on the demo took tau towards 0 and made the image
# "gradient" mostly intensity; the layer is to be tuned from TV-L1, not replaced
FLOW_LR_SCALE = 0.01


def _scaled_gradient(gradient: torch.Tensor) -> torch.Tensor:
    return gradient * FLOW_LR_SCALE


class LearnedFlowStem(nn.Module):
    """(N, 3, T, S, S) ImageNet-normalised frames -> (N, 2(T-1), S, S) learned flow, mean-subtracted and batch-normalised,
    channels x0, y0, x1, y1, ... (pair t's x and y), as a temporal stream's forward stack."""

    def __init__(self, frames: int, iterations: int = FLOW_ITERATIONS, pool: int = FLOW_POOL) -> None:
        super().__init__()
        self.pool = pool
        std = torch.tensor(IMAGENET_STD)
        # normalised RGB -> grey level: sum_c luma_c * 255 * (x_c * std_c + mean_c)
        self.register_buffer("grey_weight", (255 * torch.tensor(LUMA) * std).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("grey_shift", 255 * (torch.tensor(LUMA) * torch.tensor(IMAGENET_MEAN)).sum(),
                             persistent=False)
        self.flow = TVL1Layer(iterations=iterations)
        for parameter in self.flow.parameters():
            parameter.register_hook(_scaled_gradient)
        self.norm = nn.BatchNorm2d(2 * (frames - 1))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        grey = (clip.float() * self.grey_weight).sum(dim=1) + self.grey_shift  # (N, T, S, S)
        size = grey.shape[-2:]
        if self.pool > 1:
            grey = F.avg_pool2d(grey, self.pool)
        n, t, h, w = grey.shape
        first = grey[:, :-1].reshape(n * (t - 1), 1, h, w)
        second = grey[:, 1:].reshape(n * (t - 1), 1, h, w)
        flow = self.flow(first, second).reshape(n, 2 * (t - 1), h, w)
        if self.pool > 1:  # back to the crop's size, in its pixels
            flow = self.pool * F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
        # each field less its mean, as `flowprep extract` stores flow by default (the paper's
        # compensation of camera motion): a shaking camera moves the whole field
        return self.norm(flow - flow.mean(dim=(2, 3), keepdim=True))


def build_stream_model(config, num_classes: int, rgb_state: dict[str, torch.Tensor] | None = None,
                       origin: str = "") -> StreamModel:
    """The network `config` (a TrainConfig) trains, `rgb_state` (from `models.pretrained_state`)
    initialising its backbone."""
    if config.stream != "learned-flow":
        return build_model(config.backbone, config.in_channels, num_classes, config.dropout, rgb_state, origin,
                           clip=config.clip, crop_size=config.crop_size, motion_channels=config.motion_channels)
    model = build_model(config.backbone, 2 * (config.clip - 1), num_classes, config.dropout, rgb_state, origin,
                        crop_size=config.crop_size)
    model.body = nn.Sequential(LearnedFlowStem(config.clip), model.body)
    model.in_channels = config.in_channels
    return model
