"""`twostream fuse-features train`: a fusion head on two trained streams (optionally fine-tuned jointly).

The head learns from pairs (twostream.data.paired): an RGB frame and the flow stack at the same
position, with one crop box and flip for both, sampled as the trainer samples one stream. The run
folder, resume and the epoch loop are twostream.engine.fit_loop's, with a fusion checkpoint
(twostream.feature_fusion.checkpoint) in place of a stream's.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from flowprep.format.folder_index import IndexEntry
from twostream.core.checkpoint import load_weights
from twostream.core.config import TrainConfig
from twostream.core.device import setup_device
from twostream.core.errors import DataError, TrainError
from twostream.core.run_folder import CHECKPOINT_FILE
from twostream.data.extraction import (
    ExtractedDataset,
    check_crop_size,
    open_extraction,
    split_holdout,
    subset_videos,
    videos_in_split,
)
from twostream.data.motion_inputs import check_stream_length
from twostream.engine.fit_loop import (
    CheckpointWriter,
    FitResult,
    Learner,
    check_out_apart,
    fit_data,
    fit_epochs,
    locked_run,
    resolve_batch_size,
    resume_state,
    start_run_folder,
    videos_for_val_on_test,
)
from twostream.engine.metrics_log import HELD_OUT, ON_TEST
from twostream.feature_fusion.checkpoint import (
    build_two_stream,
    load_fusion_checkpoint,
    load_stream,
    pair_spec,
    save_fusion_checkpoint,
)
from twostream.feature_fusion.config import FusionTrainConfig
from twostream.feature_fusion.model import TwoStreamModel

log = logging.getLogger("twostream")


def fusion_videos(extraction: ExtractedDataset, config: FusionTrainConfig, spatial: TrainConfig,
                  temporal: TrainConfig) -> tuple[list[IndexEntry], list[IndexEntry], str]:
    """(videos the head learns from, validation videos, what the latter are).

    Both streams must have been trained on the split and have held out the same videos: the head
    should learn from videos that are of one kind for both streams (seen by both, or by neither)."""
    for name, stream in (("spatial", spatial), ("temporal", temporal)):
        if stream.split != config.split:
            raise TrainError(f"the {name} stream was trained on split {stream.split!r}, not {config.split!r}: its "
                             f"training videos would be test videos here; pass --split {stream.split}")
    training = videos_in_split(extraction, config.split, "train")
    held = {name: split_holdout(training, s.holdout, s.seed)[1] for name, s in (("spatial", spatial), ("temporal", temporal))}
    if {e.video_id for e in held["spatial"]} != {e.video_id for e in held["temporal"]}:
        raise TrainError(f"the streams held out different training videos (spatial: holdout {spatial.holdout} seed "
                         f"{spatial.seed}, {len(held['spatial'])} videos; temporal: holdout {temporal.holdout} seed "
                         f"{temporal.seed}, {len(held['temporal'])} videos); train both with the same --holdout and --seed")
    if config.subset == "val" and not held["spatial"]:
        raise TrainError(f"--subset val: the streams held out no training videos of split {config.split!r} (holdout "
                         f"{spatial.holdout}); train them with --holdout FRACTION, or fit the head with --subset train")
    fit = subset_videos(extraction, config.split, config.subset, spatial.holdout, spatial.seed)
    if not config.val_every:
        return fit, [], "none"
    if config.subset == "train" and held["spatial"]:
        return fit, held["spatial"], HELD_OUT
    if not config.val_on_test:
        log.warning("no validation: %s; --val-on-test validates on the test videos (choosing on them)",
                    "the head learns from the videos the streams held out" if config.subset == "val" else
                    f"the streams held out no training video (holdout {spatial.holdout})")
        return fit, [], "none"
    try:
        return fit, videos_for_val_on_test(extraction, config.split), ON_TEST
    except DataError as exc:
        log.warning("no validation: %s", exc)
        return fit, [], "none"


def _optimizer(model: TwoStreamModel, config: FusionTrainConfig) -> torch.optim.SGD:
    """SGD over the head, and in joint mode over the streams too; each group's lr is the
    schedule's times its `lr_scale` (the streams, already trained, move slower)."""
    groups = [{"params": list(model.head.parameters()), "lr_scale": 1.0}]
    if config.joint:
        groups.append({"params": model.stream_parameters(), "lr_scale": config.stream_lr_scale})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def fit_fusion(config: FusionTrainConfig, resume: bool = False, interactive: bool | None = None) -> FitResult:
    """Train (or continue training) as `config` says; return what the run has done (its last epoch's
    metrics among it)."""
    check_out_apart(config)
    device = setup_device(config)
    extraction = open_extraction(config.extraction)
    with locked_run(config):  # the run folder is this run's until it ends
        state = resume_state(config, resume, load_fusion_checkpoint, None, extraction.class_names)
        if state is None:
            spatial, spatial_weights = load_stream(config.spatial, "spatial", extraction.class_names)
            temporal, temporal_weights = load_stream(config.temporal, "temporal", extraction.class_names)
        else:  # the streams as this run stored them: the stream checkpoints may have moved on
            spatial, temporal = state["spatial_config"], state["temporal_config"]
        pair = pair_spec(spatial, temporal)
        check_crop_size(extraction, pair.crop_size)
        fit_videos, val_videos, val_kind = fusion_videos(extraction, config, spatial, temporal)
        check_stream_length(fit_videos, pair, "training")
        if val_videos:
            check_stream_length(val_videos, pair, "validation")

        config = resolve_batch_size(config, state, len(fit_videos), device.world.size)
        start_run_folder(config)
        log.info("%s fusion (%s) of %s and %s on %s %s: %d %s videos, %d validation videos (%s), %d classes; device %s",
                 config.head, "streams fine-tuned jointly" if config.joint else "streams frozen", config.spatial,
                 config.temporal, extraction.root, config.split, len(fit_videos), config.subset, len(val_videos), val_kind,
                 extraction.num_classes, device.device)
        if config.subset == "train" and val_kind == HELD_OUT and not config.joint:
            log.info("the head learns from the streams' own training videos, on which they are overconfident; "
                     "--subset val trains it on the %d videos they held out", len(val_videos))

        torch.manual_seed(config.seed)  # the head's initial weights are the seed's
        model = build_two_stream(spatial, temporal, extraction.num_classes, config.head_spec, config.joint)
        if state is None:
            load_weights(model.spatial, spatial_weights, config.spatial, "spatial stream")
            load_weights(model.temporal, temporal_weights, config.temporal, "temporal stream")
        else:
            load_weights(model, state["model"], Path(config.out) / CHECKPOINT_FILE)
        device.place(model)
        optimizer, scaler = _optimizer(model, config), device.scaler()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log.info("%s head: %.2fM trainable parameters of %.1fM", config.head, trainable / 1e6,
                 sum(p.numel() for p in model.parameters()) / 1e6)

        identity = {"config": config.to_json(), "head": config.head_spec.to_json(), "spatial_config": spatial.to_json(),
                    "temporal_config": temporal.to_json(), "num_classes": extraction.num_classes,
                    "class_names": list(extraction.class_names), "extract_config": extraction.config.to_json()}
        # fine-tuned with a mid head, the streams' own classifiers get no gradient
        learner = Learner(model, optimizer, scaler, unused_parameters=config.joint and not config.head_spec.entry.uses_logits)
        return fit_epochs(config, learner, fit_data(config, pair, extraction.root, fit_videos, val_videos, device,
                                                             val_kind), device,
                          CheckpointWriter(identity, save_fusion_checkpoint), state=state, interactive=interactive)
