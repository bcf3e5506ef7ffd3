"""The test protocol that `twostream evaluate` (twostream.streams.evaluator, one stream) and `fuse-features evaluate`
(twostream.feature_fusion.evaluator, a fusion model) both run: `clips` positions uniformly spaced over each video,
each under the test crops; softmax scores averaged over crops give a clip's score, and over clips
the video's, written to the per-video scores file (twostream.core.scores) that fusion and reports read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from flowprep.format.folder_index import IndexEntry
from twostream.core.checkpoint import check_compatible, load_weights
from twostream.core.config import EvalConfig
from twostream.core.device import Device, setup_device
from twostream.core.scores import EXTRACTION_KEY, SUBSET_KEY, VideoScores, save_scores
from twostream.data.datasets import EvalSamples, Layout, eval_loader
from twostream.data.extraction import ExtractedDataset, check_crop_size, open_extraction
from twostream.data.store import ShardStore
from twostream.engine.loops import predict_all
from twostream.engine.metrics import summarize

log = logging.getLogger("twostream")


@dataclass(frozen=True)
class Evaluation:
    """What `open_evaluation` found for a checkpoint: the device to run on, the checkpoint's state,
    the shards it is evaluated on, and the input layout it was trained with."""
    device: Device
    state: dict
    extraction: ExtractedDataset
    layout: Layout


def open_evaluation(config: EvalConfig, load: Callable[[str], dict], stream: str | None,
                    layout: Callable[[dict], Layout]) -> Evaluation:
    """The device, the checkpoint (read by `load`; of `stream`, None: any; trained on the shards'
    classes), the shards, and the input `layout` makes of the checkpoint, its crop size checked."""
    device = setup_device(config)
    state = load(config.checkpoint)
    extraction = open_extraction(config.extraction)
    check_compatible(config.checkpoint, state, stream, extraction.class_names)
    spec = layout(state)
    check_crop_size(extraction, spec.crop_size)
    trained = state["config"]
    if config.split != trained.split:
        log.warning("evaluating on %s, but %s was trained on %s: a video may be in the training part of one "
                    "split and the test part of another", config.split, config.checkpoint, trained.split)
    return Evaluation(device, state, extraction, spec)


def score_videos(config: EvalConfig, evaluation: Evaluation, model: nn.Module, videos: list[IndexEntry], about: dict,
                 configs: dict, interactive: bool | None) -> tuple[dict[str, float], VideoScores]:
    """Run the protocol with `model` (built for the evaluation's checkpoint, whose weights it gets
    here) on `videos`; write the scores file; return the metrics and the scores. The file's metadata
    is `about` (what was evaluated), the protocol and metrics, then `configs` (how it was trained)."""
    device, state, spec, root = evaluation.device, evaluation.state, evaluation.layout, evaluation.extraction.root
    load_weights(model, state["model"], config.checkpoint)
    device.place(model)
    data = EvalSamples(ShardStore(root), videos, spec, config.clips, config.crops)
    loader = eval_loader(data, config.batch_size, config.workers, device.device.type == "cuda", device.world)
    sample_scores, seconds = predict_all(model, loader, device, len(data), f"evaluate {config.split} {config.subset}",
                                       interactive)
    labels = np.array([e.label for e in videos], dtype=np.int64)
    metrics, video_scores = summarize(sample_scores, data.video_index, labels)
    metrics["clips_per_s"] = len(data) / seconds if seconds else 0.0

    scores = VideoScores(
        video_ids=np.array([e.video_id for e in videos], dtype=str),
        labels=labels,
        scores=video_scores,
        class_names=tuple(state["class_names"]),
        meta={**about, "checkpoint": str(config.checkpoint), "epoch": state["epoch"], "split": config.split,
              SUBSET_KEY: config.subset, EXTRACTION_KEY: str(root), "protocol": {"clips": config.clips, "crops": config.crops},
              "metrics": metrics, "evaluate_config": config.to_dict(), **configs},
    )
    if device.world.main:  # one file, from every process's share
        out = Path(config.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_scores(out, scores)
    device.world.barrier()
    return metrics, scores
