"""`twostream evaluate`: the test protocol on a split's videos, metrics, and the per-video scores
file that fusion reads (twostream.core.scores).

Protocol (the paper's, by default): 25 frames or stacks uniformly spaced over each video, each
under 10 crops (4 corners and the centre, and their horizontal flips); softmax scores averaged
over crops give a clip's score, and over clips the video's. twostream.engine.protocol runs it, for
`fuse-features evaluate` too.
"""
from __future__ import annotations

import logging

from twostream.core.checkpoint import load_checkpoint
from twostream.core.config import EvalConfig
from twostream.core.scores import VideoScores
from twostream.data.clip_sampling import check_frame_sampling
from twostream.data.extraction import subset_videos
from twostream.data.motion_inputs import check_stream_length, stream_layout
from twostream.engine.protocol import open_evaluation, score_videos
from twostream.streams.motion_models import build_stream_model

log = logging.getLogger("twostream")


def evaluate(config: EvalConfig, interactive: bool | None = None) -> tuple[dict[str, float], VideoScores]:
    """Run the protocol; write the scores file; return the metrics and the scores."""
    evaluation = open_evaluation(config, load_checkpoint, config.stream, lambda state: stream_layout(state["config"]))
    state, extraction, spec = evaluation.state, evaluation.extraction, evaluation.layout
    trained = state["config"]
    if trained.clip:
        check_frame_sampling(trained.frames, extraction.config.settings, extraction.config.kind, extraction.root)
    videos = subset_videos(extraction, config.split, config.subset, trained.holdout, trained.seed)
    check_stream_length(videos, spec, config.subset)
    log.info("config: %s", config.to_json())
    log.info("%s stream (%s%s, epoch %d) on %d %s videos of %s %s: %d clips x %s crops each",
             trained.stream, trained.backbone, f", clips of {trained.clip}" if trained.clip else "", state["epoch"],
             len(videos), config.subset, extraction.root, config.split, config.clips, config.crops)

    model = build_stream_model(trained, state["num_classes"])
    return score_videos(config, evaluation, model, videos,
                        about={"stream": trained.stream, "backbone": trained.backbone},
                        configs={"train_config": trained.to_dict()}, interactive=interactive)


def metric_lines(metrics: dict[str, float]) -> list[str]:
    return [
        f"clip  top-1 {metrics['clip_top1']:.4f}  top-5 {metrics['clip_top5']:.4f}",
        f"video top-1 {metrics['video_top1']:.4f}  top-5 {metrics['video_top5']:.4f}  "
        f"mean class accuracy {metrics['mean_class_accuracy']:.4f}",
    ]

