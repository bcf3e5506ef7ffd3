"""What `twostream train` (twostream.streams.trainer) and `fuse-features train` (twostream.feature_fusion.trainer)
do alike: the run folder, resuming, and the epoch loop. What differs (the model, its optimiser's
groups, the inputs, the checkpoint's format and identity) comes in as arguments.

    RUN/config.json      the run's config: a TrainConfig or a FusionTrainConfig (also in every checkpoint)
    RUN/checkpoint.pt    written atomically after every epoch
    RUN/metrics.jsonl    one line per epoch and phase (twostream.engine.metrics_log)

Resume continues from RUN/checkpoint.pt: model, optimizer, scaler and epoch come from it; the
learning rate is a function of the epoch and every random draw of epoch e is seeded by (seed, e),
so the resumed run computes what the uninterrupted one would have.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from flowprep.format.files import write_text_atomic
from flowprep.format.folder import IndexEntry
from twostream.core.checkpoint import CHECKPOINT_FILE, check_compatible
from twostream.core.device import Device
from twostream.core.errors import TrainError
from twostream.core.schedule import learning_rate
from twostream.core.world import current
from twostream.data.datasets import Augment, EvalClips, Layout, TrainClips, eval_loader, set_epoch, train_loader
from twostream.data.store import ShardStore
from twostream.engine.loops import predict_all, train_one_epoch
from twostream.engine.metrics import summarize
from twostream.engine.metrics_log import MetricsLog

log = logging.getLogger("twostream")

CONFIG_FILE = "config.json"
_TORCH_SEED_TAG = 2  # keeps the per-epoch torch seed apart from the data's (twostream.data.datasets)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch (dropout, DataLoader worker seeds): a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch, _TORCH_SEED_TAG]).generate_state(1)[0])


def resume_state(config: Any, resume: bool, load: Callable[[Path], dict], stream: str | None,
                 class_names: tuple[str, ...]) -> dict | None:
    """Check the run folder against `resume`; return the checkpoint to resume from, if any: read by
    `load`, its config the same as `config` but for RUN_FIELDS, of `stream` (None: any) and `class_names`."""
    run_dir = Path(config.out)
    path = run_dir / CHECKPOINT_FILE
    if not resume:
        if path.exists():
            raise TrainError(f"{run_dir} already holds a run ({path}); pass --resume to continue it, "
                             f"or choose another --out")
        return None
    if not path.exists():
        raise TrainError(f"--resume: there is no {path} to resume from; run without --resume to start")
    state = load(path)
    diffs = config.differences(state["config"])
    if diffs:
        raise TrainError(f"{path} was trained with a different config ({'; '.join(diffs)}); resume with the same "
                         f"options, or choose another --out")
    check_compatible(path, state, stream, class_names)
    return state


def start_run_dir(config: Any) -> Path:
    """Create the run folder and write its config.json; return the folder."""
    run_dir = Path(config.out)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
    log.info("config: %s", config.to_json())
    if current().main:  # in a run of several processes, the main one writes
        write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=1, sort_keys=True))
    return run_dir


def fit_epochs(config: Any, run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: Device, spec: Layout, root: Path,
               train_videos: list[IndexEntry], val_videos: list[IndexEntry], *, state: dict | None, identity: dict,
               save: Callable[[Path, dict], None], interactive: bool | None, unused_parameters: bool = False) -> dict:
    """Train the epochs of `config` not yet done; return the last epoch's metrics.

    `state`: the checkpoint resumed from (optimizer, scaler and progress are restored here; the
    model's weights the caller has loaded). After every epoch `save` writes the checkpoint:
    `identity` (what it says about itself) plus progress, weights and optimiser state.

    Under torchrun every process trains its share of each epoch's samples (`config.batch_size`
    a process) through DistributedDataParallel, which averages the gradients; the main process
    alone logs, writes metrics.jsonl and the checkpoint. `unused_parameters`: some trainable
    parameters may get no gradient (DDP must then look for them)."""
    world = device.world
    metrics_log = MetricsLog(run_dir)
    start_epoch, elapsed_before, last_metrics = 0, 0.0, {}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        start_epoch, elapsed_before, last_metrics = state["epoch"], state["elapsed"], state["metrics"]
        log.info("resuming %s after epoch %d of %d", run_dir / CHECKPOINT_FILE, start_epoch, config.epochs)
    if world.main:
        metrics_log.restart(start_epoch)
    log.info("%d process(es): batch %d a process, %d in all, learning rate %g (not scaled with the processes)",
             world.size, config.batch_size, config.batch_size * world.size, config.lr)
    trained = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.device.index] if device.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused_parameters)

    pin = device.device.type == "cuda"
    train_data = TrainClips(ShardStore(root), train_videos, spec,
                            Augment(config.multiscale_crop, config.flip, config.color_jitter), config.segments, config.seed)
    loader = train_loader(train_data, config.batch_size, config.workers, config.seed, pin, world)
    val_data = val_labels = val_batches = None
    if val_videos:
        val_data = EvalClips(ShardStore(root), val_videos, spec, config.val_clips, config.val_crops)
        val_labels = np.array([e.label for e in val_videos], dtype=np.int64)
        val_batches = eval_loader(val_data, config.val_batch_size, config.workers, pin, world)
    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch))
        lr = learning_rate(config, epoch)
        # a group may scale the schedule's rate (feature_fusion.trainer: streams fine-tuned slower than the
        # head); the stream trainer's group has no lr_scale, so its stored optimizer state stays as it was
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        set_epoch(loader, epoch)
        train = train_one_epoch(trained, criterion, optimizer, loader, device, scaler, epoch + 1, interactive)
        if world.distributed:  # the epoch's loss and accuracy over every process's samples
            loss_sum, correct, samples = world.sum([train["loss"] * train["samples"],
                                                    train["accuracy"] * train["samples"], train["samples"]])
            train = {**train, "loss": loss_sum / samples, "accuracy": correct / samples, "samples": samples}
        train_rate = train["samples"] / train["seconds"] if train["seconds"] else 0.0
        if world.main:
            metrics_log.write(epoch + 1, "train", train["loss"], train["accuracy"], lr, train_rate, elapsed())
        last_metrics = {"train": {"loss": train["loss"], "accuracy": train["accuracy"], "samples_per_s": train_rate}}
        message = f"epoch {epoch + 1}/{config.epochs} lr {lr:.3g}: train loss {train['loss']:.4f} " \
                  f"accuracy {train['accuracy']:.3f} ({train_rate:.1f} samples/s)"
        if val_batches is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
            scores, seconds = predict_all(model, val_batches, device, len(val_data), f"epoch {epoch + 1} val",
                                          interactive)
            val, _ = summarize(scores, val_data.video_index, val_labels)
            val_rate = len(val_data) / seconds if seconds else 0.0
            if world.main:
                metrics_log.write(epoch + 1, "val", val["clip_loss"], val["clip_top1"], lr, val_rate, elapsed())
            last_metrics["val"] = {**val, "samples_per_s": val_rate}
            message += f"; val clip accuracy {val['clip_top1']:.3f}, video {val['video_top1']:.3f}"
        if world.main:
            save(run_dir / CHECKPOINT_FILE, {
                **identity, "epoch": epoch + 1, "elapsed": elapsed(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "metrics": last_metrics})
        world.barrier()  # no process runs ahead of the checkpoint that a resume would start from
        log.info("%s; checkpoint %s", message, run_dir / CHECKPOINT_FILE)
    if start_epoch >= config.epochs:
        log.info("%s already completed its %d epochs", run_dir, config.epochs)
    return last_metrics
