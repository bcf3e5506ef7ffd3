"""What `twostream train` (twostream.streams.trainer) and `fuse-features train` (twostream.feature_fusion.trainer)
do alike: the run folder, resuming, and the epoch loop. What differs (the model, its optimiser's
groups, the inputs, the checkpoint's format and identity) comes in as arguments.

    RUN/config.json      the run's config: a TrainConfig or a FusionTrainConfig (also in every checkpoint)
    RUN/checkpoint.pt    written atomically after every epoch
    RUN/metrics.jsonl    one line per epoch and phase (twostream.engine.metrics_log)

Resume continues from RUN/checkpoint.pt: model, optimizer, scaler and epoch come from it; the
learning rate is a function of the epoch and every random draw of epoch e is seeded by (seed, e),
so the resumed run computes what the uninterrupted one would have.

SIGTERM (a scheduler's time limit, `kill`) and SIGINT (Ctrl-C) stop a run at the next batch
boundary with a mid-epoch checkpoint (runkit.signals): it also holds the batches done in the
epoch, what they added up to, and torch's random state there (dropout). The epoch's batch order is
a function of (seed, epoch) and each sample's augmentation of (seed, epoch, sample), so the resumed
run skips the batches done and sees, from the next one on, what the uninterrupted run would have.
The run folder is locked for the whole run (RUN/.flowprep.lock, runkit.lock): a second
run into it is refused.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from flowprep.format.folder_index import IndexEntry
from runkit.files import remove_file, write_text_atomic
from runkit.lock import LOCK_FILE, folder_lock
from runkit.safe_paths import overlap_problem
from runkit.signals import Deferred, deferred
from twostream.core.checkpoint import check_compatible, load_optimizer_state
from twostream.core.config import ResumableConfig
from twostream.core.device import Device
from twostream.core.errors import TrainError
from twostream.core.run_folder import CHECKPOINT_FILE, RUN_CONFIG_FILE
from twostream.core.schedule import MIN_STEPS_PER_EPOCH, default_batch_size, learning_rate
from twostream.core.world import current
from twostream.data.datasets import Augment, EvalClips, Layout, TrainClips, eval_loader, set_epoch, train_loader
from twostream.data.extraction import ExtractedDataset, videos_in_split
from twostream.data.store import ShardStore
from twostream.engine.loops import EpochTotals, Stopped, predict_all, train_one_epoch
from twostream.engine.metrics import summarize
from twostream.engine.metrics_log import HELD_OUT, MetricsLog, TensorBoardMissing, tensorboard_writer

log = logging.getLogger("twostream")

_TORCH_SEED_TAG = 2  # keeps the per-epoch torch seed apart from the data's (twostream.data.datasets)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch (dropout, DataLoader worker seeds): a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch, _TORCH_SEED_TAG]).generate_state(1)[0])


def resume_state(config: ResumableConfig, resume: bool, load: Callable[[Path], dict], stream: str | None,
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


def check_out_apart(config: ResumableConfig) -> None:
    """TrainError, one line, if the run's --out is, lies inside or contains one of its inputs: the
    extraction (whose config.json a run's would replace) or, for a fusion head, a stream's run."""
    inputs = [(Path(config.shards), "the extraction")] + [
        (Path(getattr(config, k)).parent, f"the {k} run") for k in ("spatial", "temporal") if hasattr(config, k)]
    for given, what in inputs:
        problem = overlap_problem(Path(config.out), given, what)
        if problem:
            raise TrainError(problem)


@contextmanager
def locked_run(config: ResumableConfig) -> Iterator[None]:
    """Hold the run folder's lock for a whole run (creating the folder): a second `train` into the
    same --out, from another shell or job, is refused in one line instead of the two mixing their
    metrics and overwriting each other's checkpoint. Under torchrun the main process holds it."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir = Path(config.out)
    created = not run_dir.exists()
    try:
        with folder_lock(run_dir, TrainError, "another training run"):
            yield
    except BaseException:
        # a run refused before it wrote anything leaves no folder behind (the lock made it)
        if created and run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            remove_file(run_dir / LOCK_FILE)
            run_dir.rmdir()
        raise


def start_run_dir(config: ResumableConfig) -> None:
    """Create the run folder `config.out` and write its config.json."""
    run_dir = Path(config.out)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
    log.info("config: %s", config.to_json())
    if current().main:  # in a run of several processes, the main one writes
        write_text_atomic(run_dir / RUN_CONFIG_FILE, json.dumps(config.to_dict(), indent=1, sort_keys=True))


@dataclass(frozen=True)
class Learner:
    """What a run trains: the model, its optimiser and AMP scaler. `unused_parameters`: some
    trainable parameters may get no gradient (DistributedDataParallel must then look for them)."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    unused_parameters: bool = False


@dataclass(frozen=True)
class FitData:
    """The loader of the training batches, and the validation clips with their loader and labels
    (all None: no validation)."""
    train: DataLoader
    val: EvalClips | None = None
    val_batches: DataLoader | None = None
    val_labels: np.ndarray | None = None
    val_subset: str = HELD_OUT  # metrics_log's name of the validation videos


def resolve_batch_size(config: ResumableConfig, state: dict | None, videos: int, processes: int) -> ResumableConfig:
    """`config` with its batch size decided: as given; a resumed run's own; or the default for
    `videos` training videos shared by `processes` (twostream.core.schedule.default_batch_size),
    which gives a small training set several optimisation steps an epoch."""
    if config.batch_size is not None:
        if config.batch_size * processes > videos:
            log.warning("batch size %d exceeds the %d training videos: each epoch is one step on all of them; "
                        "leave --batch-size out for a batch size that gives several steps an epoch (%d here)",
                        config.batch_size, videos, default_batch_size(videos // processes))
        return config
    if state is not None:
        return replace(config, batch_size=state["config"].batch_size)
    size = default_batch_size(videos // processes)
    log.info("batch size %d: the default for %d training videos (32, halved down to 8 while an epoch has fewer "
             "than %d steps); --batch-size sets it", size, videos, MIN_STEPS_PER_EPOCH)
    return replace(config, batch_size=size)


def videos_for_val_on_test(extraction: ExtractedDataset, split: str) -> list[IndexEntry]:
    """The split's test videos as validation videos (--val-on-test), said loudly: whatever is chosen
    or tuned by watching them is chosen on the test set."""
    videos = videos_in_split(extraction, split, "test")
    log.warning("validating on the %d test videos of %s (--val-on-test): the validation figures are test figures, "
                "and anything chosen by them is chosen on the test set", len(videos), split)
    return videos


@dataclass(frozen=True)
class CheckpointWriter:
    """How a run writes its checkpoint: `identity` (what the checkpoint says about itself) beside
    progress, weights and optimiser state, by `save` (its format's writer)."""
    identity: dict
    save: Callable[[Path, dict], None]


def fit_data(config: ResumableConfig, spec: Layout, root: Path, train_videos: list[IndexEntry],
             val_videos: list[IndexEntry], device: Device, val_subset: str = HELD_OUT) -> FitData:
    """The loaders of a run of `config` on the shards under `root`: its training videos sampled and
    augmented as `config` says, and the validation videos (none: no validation) under its fast
    protocol. Under torchrun each process loads its share (`config.batch_size` a process)."""
    pin, world = device.device.type == "cuda", device.world
    train_data = TrainClips(ShardStore(root), train_videos, spec,
                            Augment(config.multiscale_crop, config.flip, config.color_jitter), config.segments, config.seed)
    train = train_loader(train_data, config.batch_size, config.workers, config.seed, pin, world)
    if not val_videos:
        return FitData(train)
    val_data = EvalClips(ShardStore(root), val_videos, spec, config.val_clips, config.val_crops)
    return FitData(train, val_data, eval_loader(val_data, config.val_batch_size, config.workers, pin, world),
                   np.array([e.label for e in val_videos], dtype=np.int64), val_subset)


def fit_epochs(config: ResumableConfig, learner: Learner, data: FitData, device: Device, writer: CheckpointWriter, *,
               state: dict | None, interactive: bool | None) -> dict:
    """Train the epochs of `config` not yet done, in the run folder `config.out`; return the last
    epoch's metrics.

    `state`: the checkpoint resumed from (optimizer, scaler and progress are restored here; the
    model's weights the caller has loaded). After every epoch `writer` saves the checkpoint.

    Under torchrun every process trains its share of each epoch's samples (`config.batch_size`
    a process) through DistributedDataParallel, which averages the gradients; the main process
    alone logs, writes metrics.jsonl and the checkpoint."""
    model, optimizer, scaler = learner.model, learner.optimizer, learner.scaler
    loader, val_data, val_batches, val_labels = data.train, data.val, data.val_batches, data.val_labels
    run_dir = Path(config.out)
    world = device.world
    metrics_log = MetricsLog(run_dir)
    start_epoch, elapsed_before, last_metrics = 0, 0.0, {}
    resumed, rng = EpochTotals(), None
    if state is not None:
        load_optimizer_state(optimizer, state["optimizer"], run_dir / CHECKPOINT_FILE)
        if state["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        start_epoch, elapsed_before, last_metrics = state["epoch"], state["elapsed"], state["metrics"]
        # under torchrun each process resumes its own share's figures (those of the process of its rank)
        shares = state.get("epoch_totals_of_processes") or []
        own = shares[world.rank] if len(shares) == world.size else state.get("epoch_totals")
        resumed, rng = EpochTotals.from_dict(own), state.get("rng")
        if resumed.batches:
            log.info("resuming %s in epoch %d of %d after its batch %d", run_dir / CHECKPOINT_FILE, start_epoch + 1,
                     config.epochs, resumed.batches)
        else:
            log.info("resuming %s after epoch %d of %d", run_dir / CHECKPOINT_FILE, start_epoch, config.epochs)
    if world.main:
        metrics_log.restart(start_epoch)
        try:
            metrics_log.tensorboard = tensorboard_writer(run_dir, config.tensorboard, start_epoch)
        except TensorBoardMissing as exc:
            raise TrainError(str(exc)) from None
    log.info("%d process(es): batch %d a process, %d in all, learning rate %g (not scaled with the processes); %d "
             "optimisation steps an epoch", world.size, config.batch_size, config.batch_size * world.size, config.lr,
             len(loader))
    trained = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.device.index] if device.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=learner.unused_parameters)

    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    def checkpoint(epoch: int, totals: list[EpochTotals] | None = None) -> dict:
        """The checkpoint after `epoch` completed epochs (and, mid-epoch, every process's `totals`
        of the next, in rank order)."""
        progress = {"epoch": epoch, "elapsed": elapsed()}
        if totals is not None:
            progress.update(epoch_totals=totals[0].to_dict(), epoch_totals_of_processes=[t.to_dict() for t in totals],
                            rng=_rng_state(device))
        return {**writer.identity, **progress, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "metrics": last_metrics}

    with deferred() as signals:
        stop = _stop_check(signals, world)

        def stopped(epoch: int, totals: EpochTotals, where: str) -> BaseException:
            """Save the mid-epoch checkpoint; the Stop that ends the run, saying so in one line."""
            every = world.gather(totals)  # all processes take part; the main one saves
            if world.main:
                writer.save(run_dir / CHECKPOINT_FILE, checkpoint(epoch, every))
            world.barrier()
            return signals.stop(f"stopped by {signals.name} in epoch {epoch + 1} of {config.epochs} {where}; "
                                f"checkpoint {run_dir / CHECKPOINT_FILE} saved: run the same command with --resume "
                                f"to continue")

        for epoch in range(start_epoch, config.epochs):
            totals = resumed if epoch == start_epoch else EpochTotals()
            torch.manual_seed(epoch_seed(config.seed, epoch))
            if totals.batches and rng is not None:  # where the interrupted run's random stream was
                _set_rng_state(rng, device)
            lr = learning_rate(config, epoch)
            # a group may scale the schedule's rate (feature_fusion.trainer: streams fine-tuned slower than the
            # head); the stream trainer's group has no lr_scale, so its stored optimizer state stays as it was
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            set_epoch(loader, epoch)
            if totals.batches >= len(loader):  # stopped during validation: the epoch's training is done
                seen = max(totals.samples, 1)
                train = {"loss": totals.loss_sum / seen, "accuracy": totals.correct / seen, "samples": totals.samples,
                         "seconds": totals.seconds, "stopped": False, "totals": totals}
            else:
                batches = _skipping(loader, totals.batches) if totals.batches else loader
                train = train_one_epoch(trained, criterion, optimizer, batches, device, scaler, epoch + 1, interactive,
                                        totals=totals, stop=stop)
                if train["stopped"]:
                    raise stopped(epoch, train["totals"], f"after batch {train['totals'].batches} of {len(loader)}")
            totals = train["totals"]
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
                try:
                    scores, seconds = predict_all(model, val_batches, device, len(val_data), f"epoch {epoch + 1} val",
                                                  interactive, stop)
                except Stopped:
                    raise stopped(epoch, totals, "during validation") from None
                val, _ = summarize(scores, val_data.video_index, val_labels)
                val_rate = len(val_data) / seconds if seconds else 0.0
                if world.main:
                    metrics_log.write(epoch + 1, "val", val["clip_loss"], val["clip_top1"], lr, val_rate, elapsed(),
                                      data.val_subset)
                last_metrics["val"] = {**val, "samples_per_s": val_rate, "subset": data.val_subset}
                message += f"; val ({data.val_subset} videos) clip accuracy {val['clip_top1']:.3f}, " \
                           f"video {val['video_top1']:.3f}"
            if world.main:
                writer.save(run_dir / CHECKPOINT_FILE, checkpoint(epoch + 1))
            world.barrier()  # no process runs ahead of the checkpoint that a resume would start from
            log.info("%s; checkpoint %s", message, run_dir / CHECKPOINT_FILE)
    metrics_log.close()
    if start_epoch >= config.epochs:
        log.info("%s already completed its %d epochs", run_dir, config.epochs)
    return last_metrics


def _stop_check(signals: Deferred, world) -> Callable[[], bool]:
    """Asked after every batch: has a stop signal come? Under torchrun the processes agree (a sum
    over them), so that all stop after the same batch: one that stopped alone would leave the
    others waiting for ever in the next batch's gradient all-reduce."""
    if not world.distributed:
        return lambda: signals.requested
    return lambda: world.sum([float(signals.requested)])[0] > 0


def _rng_state(device: Device) -> dict:
    """torch's random state (dropout draws from it), the device's too on CUDA."""
    state = {"cpu": torch.get_rng_state()}
    if device.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device.device)
    return state


def _set_rng_state(state: dict, device: Device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device.device)


class _Skip(Sampler):
    """A batch sampler without its first `skip` batches: the resumed part of an epoch."""

    def __init__(self, batches: Sampler, skip: int) -> None:
        self.batches, self.skip = batches, skip

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.skip)


def _skipping(loader: DataLoader, skip: int) -> DataLoader:
    """`loader` without the epoch's first `skip` batches, which are never loaded (the batch order
    is the sampler's, a function of (seed, epoch), so the batches that follow are the same)."""
    return DataLoader(loader.dataset, batch_sampler=_Skip(loader.batch_sampler, skip), num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      prefetch_factor=loader.prefetch_factor, collate_fn=loader.collate_fn, timeout=loader.timeout)
