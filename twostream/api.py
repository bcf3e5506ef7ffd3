"""The Python API for your own training loop (docs/api.md).

    from twostream.api import SpatialFrames, TemporalStacks, build_model, evaluate_videos, fuse_scores

Datasets (map-style, `ds[i]` -> normalised float32 tensor and label; any sampler, DataLoader
workers, DistributedSampler):
    SpatialFrames(folder, split, subset, crop_size=..., ...)    RGB frames, (3, S, S)
    TemporalStacks(folder, split, subset, flow_length=..., ...) flow stacks, (2L, S, S)
Models:
    build_model(backbone, in_channels, num_classes, dropout=0.5)  the trainer's stream network
    build_model(backbone, 3, num_classes, stream="learned-flow", clip=T, flow_on=..., flow_params=...)
                                                                   the learned-flow stream's, on (N, 3, T, S, S)
    build_fusion_model(spatial, temporal, method="mid", ...)      a fusion head on two stream networks
    FUSION_HEADS                                                   the heads' names (mid, attention, motion, ...)
The test protocol:
    evaluate_videos(model, dataset, subset="test", clips=25, crops="ten") -> VideoScores
Scores and fusion:
    VideoScores, save_scores(path, scores), load_scores(path)     the files `twostream fuse` reads
    fuse_scores(spatial, temporal, method="weighted", ratio=(1, 1.5), fit=None) -> VideoScores
    FUSION_METHODS                                                 the methods' names (the fusion rules)
Trained runs (twostream train, fuse, fuse-features train) on new videos:
    Predictor.load(RUN, [RUN], fusion=None, clips=25, crops="ten") -> .predict(video file or frames) -> Prediction
    load_run(RUN) -> the run's network (weights loaded), input layout, class names, extraction settings

The import name is `twostream` (the folder twostream/), not `train`: a script of yours named
train.py no longer hides the package.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from twostream.core.config import CROPS, WINDOW_STREAMS, TrainConfig
from twostream.core.device import resolve_device
from twostream.core.errors import DataError
from twostream.core.scores import EXTRACTION_KEY, SUBSET_KEY, VideoScores, load_scores, save_scores
from twostream.data.datasets import EvalSamples
from twostream.data.extraction import check_stack_length, subset_videos
from twostream.data.mapstyle import SpatialFrames, StreamDataset, TemporalStacks, normalise
from twostream.data.store import ShardStore
from twostream.engine.loops import predict_samples
from twostream.engine.metrics import summarize
from twostream.feature_fusion.heads import HEADS as FUSION_HEADS
from twostream.feature_fusion.heads import REGISTRY as HEAD_REGISTRY
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.model import TwoStreamModel
from twostream.predict.predictor import Prediction, Predictor
from twostream.predict.predictor import load_scorer as load_run
from twostream.score_fusion.rules import FUSION_RULES as FUSION_METHODS  # the API says method, as the CLI does
from twostream.score_fusion.rules import FusionParams, fit_and_fuse, pair_streams
from twostream.streams.models import build_model as _build_model
from twostream.streams.motion_models import build_stream_model

__all__ = [
    "FUSION_HEADS",
    "FUSION_METHODS",
    "Prediction",
    "Predictor",
    "SpatialFrames",
    "StreamDataset",
    "TemporalStacks",
    "VideoScores",
    "build_fusion_model",
    "build_model",
    "evaluate_videos",
    "fuse_scores",
    "load_run",
    "load_scores",
    "normalise",
    "save_scores",
]


def build_model(backbone: str, in_channels: int, num_classes: int, dropout: float = 0.5,
                crop_size: int = 224, *, stream: str | None = None, clip: int = 0, flow_on: str = "frames",
                flow_params: dict | None = None) -> nn.Module:
    """The stream network `twostream train` builds (randomly initialised): a torchvision backbone
    with its first convolution taking `in_channels` (3 for RGB, 2L for flow) and a `num_classes`
    classifier after `dropout`. `crop_size` matters to ViTs (their position embedding's grid).

    `stream` names a stream on a window of `clip` RGB frames (in_channels 3), as `twostream train
    --stream NAME --clip T` builds it: "dynamic-image" (an RGB network: a dynamic image is an
    image), or "learned-flow", which takes the window (N, 3, T, S, S) and runs its learned TV-L1
    layer on the frames or, `flow_on="features"`, on a ResNet's feature maps; `flow_params` sets the
    layer's parameters as `--flow-param` does ({"inner_iterations": 20, "tau": 0.2, ...}:
    flowprep.flow.tvl1.params.LAYER_PARAMS). A bad value is a ValueError in one line."""
    if stream is None:
        return _build_model(backbone, in_channels, num_classes, dropout, crop_size=crop_size)
    if stream not in WINDOW_STREAMS or in_channels != 3:
        raise ValueError(f"stream must be one of {', '.join(WINDOW_STREAMS)} (or None), on 3 channels; got "
                         f"{stream!r} on {in_channels!r}")
    config = TrainConfig(extraction="", out="", stream=stream, backbone=backbone, clip=clip, crop_size=crop_size,
                         dropout=dropout, flow_on=flow_on, flow_layer=tuple((flow_params or {}).items()))
    return build_stream_model(config, num_classes)


def build_fusion_model(spatial: nn.Module, temporal: nn.Module, method: str = "mid", hidden: int | None = None,
                       dropout: float = 0.5, joint: bool = False) -> TwoStreamModel:
    """The model `twostream fuse-features train` trains: a fusion head (`FUSION_HEADS`, docs/fusion.md)
    on two stream networks of `build_model` (trained ones: load their weights first). It takes one
    input of 3 + 2L channels, the RGB frame then the flow stack at it, and gives fused class logits;
    only the head learns unless `joint`. `hidden` None: the head's default. The motion head's
    weights of places: `model.motion_attention(x)`."""
    spec = HeadSpec(method, HEAD_REGISTRY[method].default_hidden if hidden is None and method in HEAD_REGISTRY
                    else hidden, dropout)
    return TwoStreamModel(spatial, temporal, spec, joint)


def evaluate_videos(model: nn.Module, data: StreamDataset, subset: str = "test", clips: int = 25, crops: str = "ten",
                    batch_size: int = 16, workers: int = 0, device: str | torch.device | None = None) -> VideoScores:
    """The test protocol of `twostream evaluate` with your model: `clips` frames or stacks
    uniformly spaced over each video of `subset` (of the split and extraction of `data`, whose
    input settings it uses: crop size, flow length, stack, means), each under the `crops`
    (ten: 4 corners + centre and their flips; center), softmax averaged over crops and clips.
    Returns per-video scores; `.accuracy()` is video top-1, `.meta["metrics"]` has the rest, and
    `save_scores` writes the file `twostream fuse` and `report` read. The model is left in eval mode
    on its device (or moved to `device`)."""
    if crops not in CROPS:
        raise DataError(f"crops must be one of {', '.join(CROPS)}; got {crops!r}")
    if not isinstance(clips, int) or clips < 1:
        raise DataError(f"clips must be a positive integer, got {clips!r}")
    videos = subset_videos(data.extraction, data.split, subset, data.holdout, data.seed or 0)
    if data.stream == "temporal":
        check_stack_length(videos, data.spec.flow_length, subset)
    where = next(model.parameters()).device if device is None else torch.device(device)
    dev = resolve_device(str(where), amp=False, channels_last=False)
    model.to(dev.device)
    items = EvalSamples(ShardStore(data.folder), videos, data.spec, clips, crops)
    loader = DataLoader(items, batch_size=batch_size, num_workers=workers)
    sample_scores, _ = predict_samples(model, loader, dev, f"evaluate {data.split} {subset}", interactive=False)
    labels = np.array([e.label for e in videos], dtype=np.int64)
    metrics, video_scores = summarize(sample_scores, items.video_index, labels)
    return VideoScores(np.array([e.video_id for e in videos], dtype=str), labels, video_scores.astype(np.float32),
                       tuple(data.class_names),
                       meta={"stream": data.stream, "split": data.split, SUBSET_KEY: subset, EXTRACTION_KEY: str(data.folder),
                             "protocol": {"clips": clips, "crops": crops}, "metrics": metrics})


def fuse_scores(spatial: VideoScores | str | Path, temporal: VideoScores | str | Path, method: str = "weighted",
                ratio: tuple[float, float] = (1.0, 1.5),
                fit: tuple[VideoScores | str | Path, VideoScores | str | Path] | None = None) -> VideoScores:
    """Score-level fusion of the two streams' per-video scores (objects or score files), as
    `twostream fuse --method METHOD --ratio S:T` computes it; the learned methods (weighted-val,
    svm, logreg) fit on `fit`, the two streams' scores of held-out training videos."""
    def scores(x):
        return x if isinstance(x, VideoScores) else load_scores(x)

    test = pair_streams(scores(spatial), scores(temporal))
    fit_pair = None if fit is None else pair_streams(scores(fit[0]), scores(fit[1]))
    return fit_and_fuse(method, test, fit_pair, FusionParams(weights=tuple(float(r) for r in ratio)))
