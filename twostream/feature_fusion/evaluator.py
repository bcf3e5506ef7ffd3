"""`twostream fuse-features evaluate`: the test protocol for a fusion model, and its scores file.

The stream evaluator's protocol on pairs: `clips` positions uniformly spaced over each video,
each under the test crops (the frame and the stack under the same box and flip); softmax of the
fused logits averaged over crops and clips gives a video's scores, written in the format of
twostream.core.scores, so `twostream report --row NAME=FILE` lists it beside the streams and the
score-level methods.
"""
from __future__ import annotations

import logging

from twostream.core.config import EvalConfig
from twostream.core.scores import VideoScores
from twostream.data.extraction import subset_videos
from twostream.data.motion_inputs import check_stream_length
from twostream.engine.protocol import open_evaluation, score_videos
from twostream.feature_fusion.checkpoint import build_two_stream, load_fusion_checkpoint, pair_spec

log = logging.getLogger("twostream")


def evaluate_fusion(config: EvalConfig, interactive: bool | None = None) -> tuple[dict[str, float], VideoScores]:
    """Run the protocol; write the scores file; return the metrics and the scores."""
    evaluation = open_evaluation(
        config, load_fusion_checkpoint, None, lambda state: pair_spec(state["spatial_config"], state["temporal_config"]))
    state, extraction = evaluation.state, evaluation.extraction
    trained, spatial, temporal = state["config"], state["spatial_config"], state["temporal_config"]
    # the streams held out the same videos (checked when the fusion run started)
    videos = subset_videos(extraction, config.split, config.subset, spatial.holdout, spatial.seed)
    check_stream_length(videos, evaluation.layout, config.subset)
    log.info("config: %s", config.to_json())
    log.info("%s fusion (epoch %d) on %d %s videos of %s %s: %d clips x %s crops each", trained.name, state["epoch"],
             len(videos), config.subset, extraction.root, config.split, config.clips, config.crops)

    model = build_two_stream(spatial, temporal, state["num_classes"], state["head"], trained.joint)
    return score_videos(config, evaluation, model, videos,
                        about={"stream": "feature-fusion", "fusion_method": trained.name,
                               "score_kind": "softmax of fused logits"},
                        configs={"fusion_config": trained.to_dict(), "spatial_config": spatial.to_dict(),
                                 "temporal_config": temporal.to_dict()}, interactive=interactive)
