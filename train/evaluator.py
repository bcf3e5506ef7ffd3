"""`twostream evaluate`: the test protocol on a split's videos, metrics, and the per-video scores
file that fusion reads (scores.py).

Protocol (the paper's, by default): 25 frames or stacks uniformly spaced over each video, each
under 10 crops (4 corners and the centre, and their horizontal flips); softmax scores averaged
over crops give a clip's score, and over clips the video's.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .checkpoint import check_compatible, load_checkpoint
from .clips import InputSpec
from .config import EvalConfig
from .datasets import EvalClips, eval_loader
from .device import resolve_device, setup_threads
from .engine import predict_clips
from .extraction import check_crop_size, check_stack_length, open_extraction, part_videos
from .metrics import summarize
from .models import build_model
from .scores import VideoScores, save_scores
from .store import ShardStore

log = logging.getLogger("twostream")


def evaluate(config: EvalConfig, interactive: bool | None = None) -> tuple[dict[str, float], VideoScores]:
    """Run the protocol; write the scores file; return the metrics and the scores."""
    setup_threads(config.threads)
    device = resolve_device(config.device, config.amp, config.channels_last)
    state = load_checkpoint(config.checkpoint)
    trained = state["config"]
    extraction = open_extraction(config.shards)
    check_compatible(config.checkpoint, state, config.stream, extraction.class_names)
    spec = InputSpec.of(trained)
    check_crop_size(extraction, spec.crop_size)
    if config.split != trained.split:
        log.warning("evaluating on %s, but %s was trained on %s: a video may be in the training part of one "
                    "split and the test part of another", config.split, config.checkpoint, trained.split)
    videos = part_videos(extraction, config.split, config.part, trained.holdout, trained.seed)
    if spec.stream == "temporal":
        check_stack_length(videos, spec.flow_length, config.part)
    log.info("config: %s", config.to_json())
    log.info("%s stream (%s, epoch %d) on %d %s videos of %s %s: %d clips x %s crops each",
             spec.stream, trained.backbone, state["epoch"], len(videos), config.part, extraction.root, config.split,
             config.clips, config.crops)

    model = build_model(trained.backbone, spec.in_channels, state["num_classes"], trained.dropout)
    model.load_state_dict(state["model"])
    model.to(device.device)
    if device.channels_last:
        model.to(memory_format=torch.channels_last)
    data = EvalClips(ShardStore(extraction.root), videos, spec, config.clips, config.crops)
    loader = eval_loader(data, config.batch_size, config.workers, pin_memory=device.device.type == "cuda")
    clip_scores, seconds = predict_clips(model, loader, device, f"evaluate {config.split} {config.part}", interactive)
    labels = np.array([e.label for e in videos], dtype=np.int64)
    metrics, video_scores = summarize(clip_scores, data.video_index, labels)
    metrics["clips_per_s"] = len(data) / seconds if seconds else 0.0

    scores = VideoScores(
        video_ids=np.array([e.video_id for e in videos], dtype=str),
        labels=labels,
        scores=video_scores,
        class_names=tuple(state["class_names"]),
        meta={"stream": spec.stream, "backbone": trained.backbone, "checkpoint": str(config.checkpoint),
              "epoch": state["epoch"], "split": config.split, "part": config.part, "shards": str(extraction.root),
              "protocol": {"clips": config.clips, "crops": config.crops}, "metrics": metrics,
              "evaluate_config": config.to_dict(), "train_config": trained.to_dict()},
    )
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_scores(out, scores)
    return metrics, scores


def metric_lines(metrics: dict[str, float]) -> list[str]:
    return [
        f"clip  top-1 {metrics['clip_top1']:.4f}  top-5 {metrics['clip_top5']:.4f}",
        f"video top-1 {metrics['video_top1']:.4f}  top-5 {metrics['video_top5']:.4f}  "
        f"mean class accuracy {metrics['mean_class_accuracy']:.4f}",
    ]

