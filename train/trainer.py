"""`twostream train`: fit one stream on a split's training videos, validating on its test videos.

    RUN/config.json      the TrainConfig (also in every checkpoint)
    RUN/checkpoint.pt    written atomically after every epoch (checkpoint.py)
    RUN/metrics.jsonl    one line per epoch and phase (metrics.py)

Resume (`resume=True`) continues from RUN/checkpoint.pt: model, optimizer, scaler and epoch come
from it; the learning rate is a function of the epoch and every random draw of epoch e is seeded
by (seed, e), so the resumed run computes what the uninterrupted one would have.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flowprep.dataset_index import write_text_atomic

from .checkpoint import CHECKPOINT_FILE, check_compatible, load_checkpoint, save_checkpoint
from .clips import InputSpec
from .config import TrainConfig
from .datasets import Augment, EvalClips, TrainClips, eval_loader, set_epoch, train_loader
from .device import Device, resolve_device, setup_threads
from .engine import predict_clips, train_one_epoch
from .errors import TrainError
from .extraction import (DataError, Extraction, check_crop_size, check_stack_length, open_extraction, select_videos,
                         split_holdout)
from .metrics import MetricsLog, summarize
from .models import build_model, describe, pretrained_state
from .schedule import learning_rate
from .store import ShardStore

log = logging.getLogger("twostream")

CONFIG_FILE = "config.json"
_TORCH_SEED_TAG = 2  # keeps the per-epoch torch seed apart from the data's (datasets.py)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch (dropout, DataLoader worker seeds): a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch, _TORCH_SEED_TAG]).generate_state(1)[0])


def _prepare_run(config: TrainConfig, resume: bool, extraction: Extraction) -> dict | None:
    """Check the run folder against `resume`; return the checkpoint to resume from, if any."""
    run_dir = Path(config.out)
    path = run_dir / CHECKPOINT_FILE
    if not resume:
        if path.exists():
            raise TrainError(f"{run_dir} already holds a run ({path}); pass --resume to continue it, "
                             f"or choose another --out")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
        return None
    if not path.exists():
        raise TrainError(f"--resume: there is no {path} to resume from; run without --resume to start")
    state = load_checkpoint(path)
    diffs = config.differences(state["config"])
    if diffs:
        raise TrainError(f"{path} was trained with a different config ({'; '.join(diffs)}); resume with the same "
                         f"options, or choose another --out")
    check_compatible(path, state, config.stream, extraction.class_names)
    return state


def _validation_videos(config: TrainConfig, extraction: Extraction, held_out: list) -> list:
    """The held-out training videos if any, else the split's test videos (or none)."""
    if not config.val_every:
        return []
    if held_out:
        videos = held_out
    else:
        if config.holdout:
            log.warning("--holdout %g holds out no video (too few per class); validating on the test videos",
                        config.holdout)
        try:
            videos = select_videos(extraction, config.split, "test")
        except DataError as exc:
            log.warning("no validation: %s", exc)
            return []
    if config.stream == "temporal":
        check_stack_length(videos, config.flow_length, "validation")
    return videos


def _build(config: TrainConfig, num_classes: int, device: Device, rgb_state: dict | None, origin: str,
           new_run: bool) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The model (seeded, so a run's initial weights are its seed's), the optimiser and the AMP scaler."""
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, config.in_channels, num_classes, config.dropout, rgb_state, origin)
    log.info("%s %s: %s", config.stream, config.backbone, describe(model))
    if rgb_state is not None:
        log.info("initialised from %s%s", origin, " by cross-modality averaging" if config.stream == "temporal" else "")
    elif new_run:
        log.warning("training from random initialisation; the paper's streams start from ImageNet weights "
                    "(--pretrained PATH)")
    model.to(device.device)
    if device.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    return model, optimizer, device.scaler()


def _identity(config: TrainConfig, extraction: Extraction) -> dict:
    """What a checkpoint says about itself, beside its weights and progress (checkpoint.py)."""
    return {"config": config.to_json(), "stream": config.stream, "backbone": config.backbone,
            "in_channels": config.in_channels, "num_classes": extraction.num_classes,
            "class_names": list(extraction.class_names), "extract_config": extraction.extract_config.to_json()}


def fit(config: TrainConfig, resume: bool = False, interactive: bool | None = None) -> dict:
    """Train (or continue training) as `config` says; return the last epoch's metrics."""
    setup_threads(config.threads)
    device = resolve_device(config.device, config.amp, config.channels_last)
    extraction = open_extraction(config.shards)
    check_crop_size(extraction, config.crop_size)
    train_videos, held_out = split_holdout(select_videos(extraction, config.split, "train"), config.holdout, config.seed)
    if config.stream == "temporal":
        check_stack_length(train_videos, config.flow_length, "training")
    val_videos = _validation_videos(config, extraction, held_out)
    # a resumed run has its weights in the checkpoint; a new one reads its pretrained file now,
    # before anything is written
    rgb_state, origin = (None, "") if resume else pretrained_state(config.backbone, config.pretrained, config.weights)
    state = _prepare_run(config, resume, extraction)
    run_dir = Path(config.out)

    log.info("config: %s", config.to_json())
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=1, sort_keys=True))
    log.info("%s stream on %s %s: %d training videos, %d validation videos (%s), %d classes; device %s",
             config.stream, extraction.root, config.split, len(train_videos), len(val_videos),
             "held out" if held_out else "test", extraction.num_classes, device.device)
    if len(train_videos) < config.batch_size:
        log.warning("batch size %d exceeds the %d training videos: each epoch is one batch of all of them",
                    config.batch_size, len(train_videos))

    model, optimizer, scaler = _build(config, extraction.num_classes, device, rgb_state, origin, state is None)
    metrics_log = MetricsLog(run_dir)
    start_epoch, elapsed_before, last_metrics = 0, 0.0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        start_epoch, elapsed_before, last_metrics = state["epoch"], state["elapsed"], state["metrics"]
        log.info("resuming %s after epoch %d of %d", run_dir / CHECKPOINT_FILE, start_epoch, config.epochs)
    metrics_log.restart(start_epoch)

    spec = InputSpec.of(config)
    pin = device.device.type == "cuda"
    train_data = TrainClips(ShardStore(extraction.root), train_videos, spec,
                            Augment(config.multiscale_crop, config.flip, config.color_jitter), config.segments, config.seed)
    loader = train_loader(train_data, config.batch_size, config.workers, config.seed, pin)
    val_data = val_labels = val_batches = None
    if val_videos:
        val_data = EvalClips(ShardStore(extraction.root), val_videos, spec, config.val_clips, config.val_crops)
        val_labels = np.array([e.label for e in val_videos], dtype=np.int64)
        val_batches = eval_loader(val_data, config.val_batch_size, config.workers, pin)
    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch))
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        set_epoch(loader, epoch)
        train = train_one_epoch(model, criterion, optimizer, loader, device, scaler, epoch + 1, interactive)
        train_rate = train["samples"] / train["seconds"] if train["seconds"] else 0.0
        metrics_log.write(epoch + 1, "train", train["loss"], train["accuracy"], lr, train_rate, elapsed())
        last_metrics = {"train": {"loss": train["loss"], "accuracy": train["accuracy"], "samples_per_s": train_rate}}
        message = f"epoch {epoch + 1}/{config.epochs} lr {lr:.3g}: train loss {train['loss']:.4f} " \
                  f"accuracy {train['accuracy']:.3f} ({train_rate:.1f} samples/s)"
        if val_batches is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
            scores, seconds = predict_clips(model, val_batches, device, f"epoch {epoch + 1} val", interactive)
            val, _ = summarize(scores, val_data.video_index, val_labels)
            val_rate = len(val_data) / seconds if seconds else 0.0
            metrics_log.write(epoch + 1, "val", val["clip_loss"], val["clip_top1"], lr, val_rate, elapsed())
            last_metrics["val"] = {**val, "samples_per_s": val_rate}
            message += f"; val clip accuracy {val['clip_top1']:.3f}, video {val['video_top1']:.3f}"
        save_checkpoint(run_dir / CHECKPOINT_FILE, {
            **_identity(config, extraction), "epoch": epoch + 1, "elapsed": elapsed(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "metrics": last_metrics})
        log.info("%s; checkpoint %s", message, run_dir / CHECKPOINT_FILE)
    if start_epoch >= config.epochs:
        log.info("%s already completed its %d epochs", run_dir, config.epochs)
    return last_metrics
