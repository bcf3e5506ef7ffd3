"""Fusion checkpoints, and two-stream models built from stream or fusion checkpoints.

A fusion checkpoint is written atomically (checkpoint.save_checkpoint) and read with
`torch.load(weights_only=True)`; like a stream checkpoint it holds tensors and plain values only:
    format          "twostream-fusion-checkpoint"
    format_version  2 (version 1: the attention head fused raw logits)
    config          FusionTrainConfig as JSON
    head            HeadSpec as JSON (head, hidden units, dropout; "method" before issue 31)
    spatial_config, temporal_config   the streams' TrainConfigs as JSON: they rebuild the streams
    num_classes, class_names, extract_config
    epoch, elapsed, model (the whole TwoStreamModel: streams and head), optimizer, scaler, metrics
so `fuse-features evaluate` needs no stream checkpoint, and frozen streams are stored as they
were used (a stream run trained further later does not change a fusion run).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from twostream.core.checkpoint import (
    STREAM_FORMAT,
    CheckpointFormat,
    check_compatible,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from twostream.core.config import WINDOW_STREAMS, TrainConfig
from twostream.core.errors import TrainError
from twostream.data.clip_pairs import ClipPairSpec
from twostream.data.clip_sampling import ClipSpec
from twostream.data.motion_inputs import stream_layout
from twostream.data.paired import MOTION_STREAMS, PairSpec
from twostream.data.samples import InputSpec
from twostream.feature_fusion.config import FusionTrainConfig
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.model import TwoStreamModel
from twostream.streams.motion_models import build_stream_model

FUSION_FORMAT = "twostream-fusion-checkpoint"
FUSION_FORMAT_VERSION = 2  # 2: the attention head fuses standardised logits with a learned scale
FUSION_CHECKPOINT_FORMAT = CheckpointFormat(
    FUSION_FORMAT, FUSION_FORMAT_VERSION, "fusion checkpoint", "fusion checkpoint",
    {"config": FusionTrainConfig.from_json, "head": HeadSpec.from_json,
     "spatial_config": TrainConfig.from_json, "temporal_config": TrainConfig.from_json},
    refused={STREAM_FORMAT: "is a stream checkpoint of 'twostream train'; 'fuse-features evaluate' takes the "
                            "checkpoint of a 'fuse-features train' run"})


def save_fusion_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_checkpoint(path, state, FUSION_CHECKPOINT_FORMAT)


def load_fusion_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a fusion checkpoint (checkpoint.read_checkpoint); a stream checkpoint is refused as such."""
    return read_checkpoint(path, FUSION_CHECKPOINT_FORMAT)


def load_stream(path: str | Path, stream: str, class_names: tuple[str, ...]) -> tuple[TrainConfig, dict[str, torch.Tensor]]:
    """A trained stream's config and weights, refused if of another stream or other classes:
    `stream` "spatial", or "temporal" for the motion side (any of paired.MOTION_STREAMS)."""
    state = load_checkpoint(path)
    motion = stream == "temporal" and state["stream"] in MOTION_STREAMS
    check_compatible(path, state, None if motion else stream, class_names)
    return state["config"], state["model"]


def build_two_stream(spatial: TrainConfig, temporal: TrainConfig, num_classes: int, head: HeadSpec,
                     joint: bool) -> TwoStreamModel:
    """The architecture the configs describe, with untrained weights: load a state dict into it."""
    if head.head == "motion" and not head.hidden and temporal.stream == "dynamic-image":
        raise TrainError("the motion head with --hidden 0 weighs places by the flow, and a dynamic-image stream has "
                         "none: give --hidden N (weights learned from its feature map) or another head")
    streams = [build_stream_model(c, num_classes) for c in (spatial, temporal)]
    return TwoStreamModel(*streams, head, joint)


def pair_spec(spatial: TrainConfig, temporal: TrainConfig) -> PairSpec | ClipPairSpec:
    """The fused input of the two streams: a frame and its stack (or window) for 2D streams, a
    clip pair for two clip streams (the same crop size required; the same clip and stride too)."""
    for name, config in (("spatial", spatial), ("temporal", temporal)):
        if config.motion_attention:
            raise TrainError(f"the {name} stream reads a flow stack beside its frame (--motion-attention): "
                             f"feature-level fusion takes plain streams (the motion head does this on fused "
                             f"features); fuse its scores with 'twostream fuse'")
    clips = {name: bool(config.clip) and config.stream not in WINDOW_STREAMS
             for name, config in (("spatial", spatial), ("temporal", temporal))}
    if clips["spatial"] != clips["temporal"]:  # a 3D stream's clips and a 2D stream's frames do not pair
        three, two = ("spatial", "temporal") if clips["spatial"] else ("temporal", "spatial")
        clip = (spatial if clips["spatial"] else temporal).clip
        raise TrainError(f"the {three} stream is a clip stream (--clip {clip}) and the {two} stream a 2D one: "
                         f"feature-level fusion pairs two 2D streams or two clip streams; fuse their scores with "
                         f"'twostream fuse'")
    try:
        if clips["spatial"]:
            return ClipPairSpec(ClipSpec.of(spatial), ClipSpec.of(temporal))
        return PairSpec(InputSpec.of(spatial), stream_layout(temporal))
    except ValueError as exc:
        raise TrainError(str(exc)) from None
