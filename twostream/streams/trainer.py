"""`twostream train`: fit one stream (its TrainConfig, model and stream checkpoint) on a split's
training videos, validating on held-out or test videos. The run folder, resume and the epoch loop
are twostream.engine.fit_loop's, shared with the feature-fusion trainer.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from twostream.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from twostream.core.config import TrainConfig
from twostream.core.device import Device, setup_device
from twostream.core.run_folder import CHECKPOINT_FILE
from twostream.data.clip_sampling import frame_sampling
from twostream.data.device_decode import check_decodable
from twostream.data.extraction import (
    DataError,
    ExtractedDataset,
    check_crop_size,
    open_extraction,
    split_holdout,
    videos_in_split,
)
from twostream.data.motion_inputs import check_stream_length, stream_layout
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
from twostream.streams.models import describe
from twostream.streams.motion_models import build_stream_model
from twostream.streams.pretrained import pretrained_state

log = logging.getLogger("twostream")


def _validation_videos(config: TrainConfig, extraction: ExtractedDataset, held_out: list) -> tuple[list, str]:
    """(validation videos, what they are): the held-out training videos; with none held out, the
    split's test videos if --val-on-test asks for them, else none."""
    if not config.val_every:
        return [], HELD_OUT
    if held_out:
        videos, subset = held_out, HELD_OUT
    elif not config.val_on_test:
        log.warning("no validation: %s; pass --holdout F to validate on held-out training videos (or, knowingly, "
                    "--val-on-test to validate on the test videos)",
                    f"--holdout {config.holdout} holds out no video (too few per class)" if config.holdout
                    else "--holdout 0 trains on every training video")
        return [], HELD_OUT
    else:
        try:
            videos, subset = videos_for_val_on_test(extraction, config.split), ON_TEST
        except DataError as exc:
            log.warning("no validation: %s", exc)
            return [], HELD_OUT
    check_stream_length(videos, stream_layout(config), "validation")
    return videos, subset


def _build(config: TrainConfig, num_classes: int, device: Device, rgb_state: dict | None, origin: str,
           new_run: bool) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The model (seeded, so a run's initial weights are its seed's), the optimiser and the AMP scaler."""
    torch.manual_seed(config.seed)
    model = build_stream_model(config, num_classes, rgb_state, origin)
    log.info("%s %s: %s", config.stream, config.backbone, describe(model))
    if rgb_state is not None:
        log.info("initialised from %s%s", origin,
                 " by cross-modality averaging" if config.stream == "temporal" or
                 (config.stream == "learned-flow" and config.flow_on == "frames") else "")
    elif new_run:
        log.warning("training from random initialisation; the paper's streams start from ImageNet weights "
                    "(--pretrained PATH)")
    device.place(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    return model, optimizer, device.scaler()


def _identity(config: TrainConfig, extraction: ExtractedDataset) -> dict:
    """What a checkpoint says about itself, beside its weights and progress (twostream.core.checkpoint)."""
    return {"config": config.to_json(), "stream": config.stream, "backbone": config.backbone,
            "in_channels": config.in_channels, "num_classes": extraction.num_classes,
            "class_names": list(extraction.class_names), "extract_config": extraction.config.to_json()}


def fit(config: TrainConfig, resume: bool = False, interactive: bool | None = None) -> FitResult:
    """Train (or continue training) as `config` says; return what the run has done (its last epoch's
    metrics among it)."""
    check_out_apart(config)
    device = setup_device(config)
    extraction = open_extraction(config.extraction)
    if config.clip:  # recorded in the run's config: evaluation checks its shards against it
        config = dataclasses.replace(config, frames=frame_sampling(extraction.config.settings, extraction.config.kind))
    check_crop_size(extraction, config.crop_size)
    train_videos, held_out = split_holdout(videos_in_split(extraction, config.split, "train"), config.holdout, config.seed)
    check_stream_length(train_videos, stream_layout(config), "training")
    val_videos, val_subset = _validation_videos(config, extraction, held_out)
    # a resumed run has its weights in the checkpoint; a new one reads its pretrained file now,
    # before anything is written
    rgb_state, origin = (None, "") if resume else pretrained_state(config.backbone, config.pretrained, config.weights)
    with locked_run(config):  # the run folder is this run's until it ends
        state = resume_state(config, resume, load_checkpoint, config.stream, extraction.class_names)
        config = resolve_batch_size(config, state, len(train_videos), device.world.size)
        start_run_folder(config)
        log.info("%s stream on %s %s: %d training videos, %d validation videos (%s), %d classes; device %s",
                 config.stream, extraction.root, config.split, len(train_videos), len(val_videos),
                 "none" if not val_videos else f"held out of training, --holdout {config.holdout}"
                 if val_subset == HELD_OUT else "the test videos, --val-on-test", extraction.num_classes, device.device)

        model, optimizer, scaler = _build(config, extraction.num_classes, device, rgb_state, origin, state is None)
        if state is not None:
            load_weights(model, state["model"], Path(config.out) / CHECKPOINT_FILE)
        if config.decode_on == "device":
            settings = extraction.config.settings
            check_decodable(settings["rgb_codec"], settings["flow_codec"], config.stream)
        data = fit_data(config, stream_layout(config), extraction.root, train_videos, val_videos, device, val_subset,
                        config.decode_on)
        return fit_epochs(config, Learner(model, optimizer, scaler), data, device,
                          CheckpointWriter(_identity(config, extraction), save_checkpoint), state=state,
                          interactive=interactive)
