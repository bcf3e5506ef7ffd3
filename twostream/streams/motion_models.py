"""The network of each stream, by its TrainConfig: `streams.models.build_model`'s backbone, and for
the `learned-flow` stream a learned TV-L1 layer (`TVL1Layer`, flowprep.flow.tvl1.layer through flowprep.api) in it.

The learned-flow stream (TVNet, Fan et al. 2018; Representation Flow, Piergiovanni and Ryoo 2019)
takes a window of T RGB frames (N, 3, T, S, S), ImageNet-normalised as the loader gives every RGB
input, and computes the flow of its T-1 consecutive pairs with the layer, whose theta, lambda, tau
and difference kernels train with the rest at `lr_scale` of the learning rate. The layer's
parameters are the config's `flow_layer` (`--flow-param`: flowprep.api's LAYER_PARAMS).
Where it runs is the config's `flow_on`:
- `frames` (`LearnedFlowStem`): on the frames themselves, put back to grey levels 0..255
  (tvl1-torch's input); the 2(T-1) flow channels, each less its mean (as extraction stores flow)
  and batch-normalised, go to a 2D backbone whose first convolution takes them (from ImageNet
  weights by cross-modality averaging, as the temporal stream's). Before training, the layer's flow
  is tvl1-torch's for the same parameters (tests/flowprep/flow/test_tvl1_layer.py).
- `features` (`FeatureFlowBody`, Representation Flow's placement): a ResNet's first stage (the stem
  and layer1, ImageNet weights as they are) runs on every frame, a 1x1 convolution reduces its maps
  to `FEATURE_FLOW_CHANNELS`, the layer computes the flow of each reduced map between consecutive
  frames, and a 1x1 convolution takes the 2 x channels x (T-1) flow maps back to the stage's width
  for the ResNet's other stages.
Either way the layer's input is average-pooled by `pool` first and its flow resized back.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from flowprep.api import TVL1Layer
from twostream.streams.families import IMAGENET_MEAN, IMAGENET_STD
from twostream.streams.models import StreamModel, build_model

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as flowprep makes the frames it computes flow on
# Feature maps enter the layer at the spread of the grey levels its step sizes are set for: TV-L1's
# data term grows with its images' scale (lambda acts as lambda x scale), and batch-normalised maps
# spread about 1 where a frame's grey levels spread some 50 around their mean.
FEATURE_SPREAD = 50.0
# maps the layer runs on, on feature maps: a 1x1 convolution's of the stage's 64 (or 256); the
# layer's cost grows with them (Representation Flow reduces the channels before its layer too)
FEATURE_FLOW_CHANNELS = 8


def _scaled_gradient(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda gradient: gradient * factor


def learned_layer(params: dict) -> TVL1Layer:
    """The layer of `flow_layer`'s values, its parameters learning at `lr_scale` of the rate: at the
    full rate, a few epochs on the demo took tau towards 0 and made the image "gradient" mostly
    intensity; the layer is to be tuned from TV-L1, not replaced."""
    layer = TVL1Layer.from_params(params)
    for parameter in layer.parameters():
        parameter.register_hook(_scaled_gradient(params["lr_scale"]))
    return layer


def pair_flows(layer: TVL1Layer, sequence: torch.Tensor, pool: int) -> torch.Tensor:
    """(N, T, C, H, W) -> (N, 2C(T-1), H, W): the flow of each of the T-1 consecutive pairs, channel
    by channel (pair t's channel c's x and y at 2C t + 2c, 2C t + 2c + 1), computed on the input
    average-pooled by `pool` and resized back, in the input's pixels."""
    n, t, c, h, w = sequence.shape
    if pool > 1:
        sequence = F.avg_pool2d(sequence.reshape(n, t * c, h, w), pool).reshape(n, t, c, h // pool, w // pool)
    ph, pw = sequence.shape[-2:]
    first = sequence[:, :-1].reshape(n * (t - 1), c, ph, pw)
    second = sequence[:, 1:].reshape(n * (t - 1), c, ph, pw)
    flow = layer(first, second).reshape(n, 2 * c * (t - 1), ph, pw)
    if pool > 1:  # back to the input's size, in its pixels
        flow = pool * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    return flow


def centred(flow: torch.Tensor) -> torch.Tensor:
    """Each field less its mean, as `flowprep extract` stores flow by default (the paper's
    compensation of camera motion): a shaking camera moves the whole field."""
    return flow - flow.mean(dim=(2, 3), keepdim=True)


class LearnedFlowStem(nn.Module):
    """(N, 3, T, S, S) ImageNet-normalised frames -> (N, 2(T-1), S, S) learned flow, mean-subtracted and batch-normalised,
    channels x0, y0, x1, y1, ... (pair t's x and y), as a temporal stream's forward stack."""

    def __init__(self, frames: int, params: dict) -> None:
        super().__init__()
        self.pool = params["pool"]
        std = torch.tensor(IMAGENET_STD)
        # normalised RGB -> grey level: sum_c luma_c * 255 * (x_c * std_c + mean_c)
        self.register_buffer("grey_weight", (255 * torch.tensor(LUMA) * std).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("grey_shift", 255 * (torch.tensor(LUMA) * torch.tensor(IMAGENET_MEAN)).sum(),
                             persistent=False)
        self.flow = learned_layer(params)
        self.norm = nn.BatchNorm2d(2 * (frames - 1))

    def raw_flow(self, clip: torch.Tensor) -> torch.Tensor:
        """The layer's flow of the clip's pairs, in pixels, before centring and normalisation."""
        grey = (clip.float() * self.grey_weight).sum(dim=1) + self.grey_shift  # (N, T, S, S)
        return pair_flows(self.flow, grey.unsqueeze(2), self.pool)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.norm(centred(self.raw_flow(clip)))


class FeatureFlowBody(nn.Module):
    """A torchvision ResNet body with the learned layer after its first stage (see the module's
    docstring): (N, 3, T, S, S) -> (N, feature_dim); `feature_map` its last map."""

    def __init__(self, net: nn.Module, frames: int, params: dict) -> None:
        super().__init__()
        width = net.layer2[0].conv1.in_channels  # layer1's output: what layer2 takes
        flow_channels = 2 * FEATURE_FLOW_CHANNELS * (frames - 1)
        self.pool = params["pool"]
        self.first_stage = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.reduce = nn.Sequential(nn.Conv2d(width, FEATURE_FLOW_CHANNELS, 1, bias=False),
                                    nn.BatchNorm2d(FEATURE_FLOW_CHANNELS))
        self.flow = learned_layer(params)
        self.norm = nn.BatchNorm2d(flow_channels)
        self.expand = nn.Sequential(nn.Conv2d(flow_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU(inplace=True))
        self.stages = nn.Sequential(net.layer2, net.layer3, net.layer4)
        self.head = nn.Sequential(net.avgpool, nn.Flatten(1))

    def raw_flow(self, clip: torch.Tensor) -> torch.Tensor:
        """The layer's flow of the reduced maps of the clip's pairs, before centring and normalisation."""
        n, c, t, h, w = clip.shape
        maps = self.reduce(self.first_stage(clip.transpose(1, 2).reshape(n * t, c, h, w))) * FEATURE_SPREAD
        return pair_flows(self.flow, maps.reshape(n, t, *maps.shape[1:]), self.pool)

    def feature_map(self, clip: torch.Tensor) -> torch.Tensor:
        return self.stages(self.expand(self.norm(centred(self.raw_flow(clip)))))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_map(clip))


class LearnedFlowStream(StreamModel):
    """The learned-flow stream's network on (N, 3, T, S, S) windows. Fused with a spatial stream
    (twostream.feature_fusion), its input comes as the window's frames stacked as channels,
    (N, 3T, S, S) (`paired_channels` of them), and is taken back to its window here."""

    def __init__(self, body: nn.Module, backbone: StreamModel, num_classes: int, dropout: float, frames: int) -> None:
        super().__init__(body, backbone.feature_dim, num_classes, dropout, 3)
        # the backbone's feature map and its width (found on the backbone: the body holds more)
        self._map, self.map_channels = backbone._map, backbone.map_channels
        self.frames = frames
        self.paired_channels = 3 * frames

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # the frames as channels, (N, 3T, S, S)
            return x.reshape(x.shape[0], 3, self.frames, *x.shape[2:])
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._window(x))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        clip = self._window(x)
        if isinstance(self.body, FeatureFlowBody):
            return self.body.feature_map(clip)
        return self._map(self.body[1], self.body[0](clip))

    def flow(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2C(T-1), S, S) the layer's flow of the window's pairs, in pixels (C = 1 on frames, the
        reduced maps' channels on feature maps): what the motion fusion head weighs places by."""
        body = self.body if isinstance(self.body, FeatureFlowBody) else self.body[0]
        return body.raw_flow(self._window(x))


def build_stream_model(config, num_classes: int, rgb_state: dict[str, torch.Tensor] | None = None,
                       origin: str = "") -> StreamModel:
    """The network `config` (a TrainConfig) trains, `rgb_state` (from `models.pretrained_state`)
    initialising its backbone."""
    if config.stream != "learned-flow":
        return build_model(config.backbone, config.in_channels, num_classes, config.dropout, rgb_state, origin,
                           clip=config.clip, crop_size=config.crop_size, motion_channels=config.motion_channels)
    params = dict(config.flow_layer)
    if config.flow_on == "features":
        rgb = build_model(config.backbone, 3, num_classes, config.dropout, rgb_state, origin, crop_size=config.crop_size)
        return LearnedFlowStream(FeatureFlowBody(rgb.body, config.clip, params), rgb, num_classes, config.dropout,
                                 config.clip)
    model = build_model(config.backbone, 2 * (config.clip - 1), num_classes, config.dropout, rgb_state, origin,
                        crop_size=config.crop_size)
    # body.0 the stem, body.1 the backbone: the names a learned-flow checkpoint's weights have had
    body = nn.Sequential(LearnedFlowStem(config.clip, params), model.body)
    return LearnedFlowStream(body, model, num_classes, config.dropout, config.clip)
