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
from dataclasses import dataclass, field, replace
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
from twostream.core.world import World, current
from twostream.data.datasets import Augment, EvalSamples, Layout, TrainSamples, eval_loader, set_epoch, train_loader
from twostream.data.device_decode import DeviceDecoder, StoredTrainSamples
from twostream.data.extraction import ExtractedDataset, videos_in_split
from twostream.data.store import ShardStore
from twostream.engine.loops import EpochResult, EpochTotals, Stopped, predict_all, train_one_epoch
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
    run_folder = Path(config.out)
    path = run_folder / CHECKPOINT_FILE
    if not resume:
        if path.exists():
            raise TrainError(f"{run_folder} already holds a run ({path}); pass --resume to continue it, "
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
    inputs = [(Path(config.extraction), "the extraction")] + [
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
    run_folder = Path(config.out)
    created = not run_folder.exists()
    try:
        with folder_lock(run_folder, TrainError, "another training run"):
            yield
    except BaseException:
        # a run refused before it wrote anything leaves no folder behind (the lock made it)
        if created and run_folder.is_dir() and [p.name for p in run_folder.iterdir()] == [LOCK_FILE]:
            remove_file(run_folder / LOCK_FILE)
            run_folder.rmdir()
        raise


def start_run_folder(config: ResumableConfig) -> None:
    """Create the run folder `config.out` and write its config.json."""
    run_folder = Path(config.out)
    try:
        run_folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"cannot create the run folder {run_folder}: {exc.strerror or exc}") from None
    log.info("config: %s", config.to_json())
    if current().main:  # in a run of several processes, the main one writes
        write_text_atomic(run_folder / RUN_CONFIG_FILE, json.dumps(config.to_dict(), indent=1, sort_keys=True))


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
    val: EvalSamples | None = None
    val_batches: DataLoader | None = None
    val_labels: np.ndarray | None = None
    val_subset: str = HELD_OUT  # metrics_log's name of the validation videos
    # the training batches' decoder in the training process (--decode-on device); None: the loader decoded them
    decode: Callable | None = None


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
             val_videos: list[IndexEntry], device: Device, val_subset: str = HELD_OUT,
             decode_on: str = "loader") -> FitData:
    """The loaders of a run of `config` on the shards under `root`: its training videos sampled and
    augmented as `config` says, and the validation videos (none: no validation) under its fast
    protocol. Under torchrun each process loads its share (`config.batch_size` a process).
    `decode_on` "device": the training batches' images are decoded in this process, on the
    device (twostream.data.device_decode); validation decodes in the loader either way."""
    pin, world = device.device.type == "cuda", device.world
    samples, decode = TrainSamples, None
    if decode_on == "device":
        samples, decode = StoredTrainSamples, DeviceDecoder(spec, device.device)
    train_data = samples(ShardStore(root), train_videos, spec,
                         Augment(config.multiscale_crop, config.flip, config.color_jitter), config.segments, config.seed)
    train = train_loader(train_data, config.batch_size, config.workers, config.seed, pin, world)
    if not val_videos:
        return FitData(train, decode=decode)
    val_data = EvalSamples(ShardStore(root), val_videos, spec, config.val_clips, config.val_crops)
    return FitData(train, val_data, eval_loader(val_data, config.val_batch_size, config.workers, pin, world),
                   np.array([e.label for e in val_videos], dtype=np.int64), val_subset, decode)


@dataclass(frozen=True)
class FitResult:
    """What a run has done when `fit_epochs` returns: `epochs` completed, `trained` of them by this
    call (0: the run had completed them before), and the last epoch's `metrics`, as its checkpoint
    stores them ("train", and "val" when the epoch was validated)."""
    epochs: int
    trained: int
    metrics: dict


@dataclass(frozen=True)
class Restored:
    """Where a run starts: the epochs done, the seconds they took and the last one's metrics; and,
    stopped mid-epoch, what the next epoch's batches added up to and torch's random state there."""
    epoch: int = 0
    elapsed: float = 0.0
    metrics: dict = field(default_factory=dict)
    totals: EpochTotals = field(default_factory=EpochTotals)
    rng: dict | None = None


def restore(state: dict | None, learner: Learner, world: World, path: Path, epochs: int) -> Restored:
    """The progress of the checkpoint `state` (at `path`; None: a new run), its optimizer and scaler
    state restored into `learner` (the model's weights the caller has loaded)."""
    if state is None:
        return Restored()
    load_optimizer_state(learner.optimizer, state["optimizer"], path)
    if state["scaler"] and learner.scaler.is_enabled():
        learner.scaler.load_state_dict(state["scaler"])
    # under torchrun each process resumes its own share's figures (those of the process of its rank)
    shares = state.get("epoch_totals_of_processes") or []
    own = shares[world.rank] if len(shares) == world.size else state.get("epoch_totals")
    restored = Restored(state["epoch"], state["elapsed"], state["metrics"], EpochTotals.from_dict(own),
                        state.get("rng"))
    if restored.totals.batches:
        log.info("resuming %s in epoch %d of %d after its batch %d", path, restored.epoch + 1, epochs,
                 restored.totals.batches)
    else:
        log.info("resuming %s after epoch %d of %d", path, restored.epoch, epochs)
    return restored


def fit_epochs(config: ResumableConfig, learner: Learner, data: FitData, device: Device, writer: CheckpointWriter, *,
               state: dict | None, interactive: bool | None) -> FitResult:
    """Train the epochs of `config` not yet done, in the run folder `config.out`.

    `state`: the checkpoint resumed from (optimizer, scaler and progress are restored here; the
    model's weights the caller has loaded). After every epoch `writer` saves the checkpoint.

    Under torchrun every process trains its share of each epoch's samples (`config.batch_size`
    a process) through DistributedDataParallel, which averages the gradients; the main process
    alone logs, writes metrics.jsonl and the checkpoint."""
    run = _Run(config, learner, data, device, writer, interactive)
    start = restore(state, learner, device.world, run.checkpoint_path, config.epochs)
    run.start(start)
    with deferred() as signals:
        run.signals, run.stop = signals, _stop_check(signals, device.world)
        for epoch in range(start.epoch, config.epochs):
            first = epoch == start.epoch  # a resumed run may start inside it
            train = run.one_epoch(epoch, start.totals if first else EpochTotals(), start.rng if first else None)
            message = run.record_training(epoch, train)
            if run.validates(epoch):
                message += run.validate(epoch, train.totals)
            run.save(epoch + 1)
            log.info("%s; checkpoint %s", message, run.checkpoint_path)
    run.metrics_log.close()
    if start.epoch >= config.epochs:
        log.info("%s already completed its %d epochs", run.run_folder, config.epochs)
    return FitResult(max(start.epoch, config.epochs), max(config.epochs - start.epoch, 0), run.metrics)


class _Run:
    """A run between its start and its last epoch: the steps of `fit_epochs` and what they share
    (the model as trained, DistributedDataParallel's under torchrun; the metrics log; the clock;
    the last epoch's metrics, which every checkpoint stores)."""

    def __init__(self, config: ResumableConfig, learner: Learner, data: FitData, device: Device,
                 writer: CheckpointWriter, interactive: bool | None) -> None:
        self.config, self.learner, self.data, self.device, self.writer = config, learner, data, device, writer
        self.interactive, self.world = interactive, device.world
        self.run_folder = Path(config.out)
        self.checkpoint_path = self.run_folder / CHECKPOINT_FILE
        self.metrics_log = MetricsLog(self.run_folder)
        self.criterion = nn.CrossEntropyLoss()
        self.trained: nn.Module = learner.model
        self.signals: Deferred | None = None
        self.stop: Callable[[], bool] = lambda: False
        self.metrics: dict = {}
        self.elapsed_before, self.started = 0.0, time.perf_counter()

    def start(self, start: Restored) -> None:
        """Open the metrics log (and TensorBoard's) at the epoch the run starts from, wrap the model
        for torchrun, start the clock."""
        self.metrics, self.elapsed_before = start.metrics, start.elapsed
        if self.world.main:
            self.metrics_log.restart(start.epoch)
            try:
                self.metrics_log.tensorboard = tensorboard_writer(self.run_folder, self.config.tensorboard, start.epoch)
            except TensorBoardMissing as exc:
                raise TrainError(str(exc)) from None
        config = self.config
        log.info("%d process(es): batch %d a process, %d in all, learning rate %g (not scaled with the processes); "
                 "%d optimisation steps an epoch", self.world.size, config.batch_size,
                 config.batch_size * self.world.size, config.lr, len(self.data.train))
        self.trained = _distributed(self.learner, self.device)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def one_epoch(self, epoch: int, totals: EpochTotals, rng: dict | None) -> EpochResult:
        """Train epoch `epoch` (from 0) on its batches after those `totals` counts (a resumed
        epoch, `rng` the random state where it stopped); its figures over every process's samples."""
        torch.manual_seed(epoch_seed(self.config.seed, epoch))
        if totals.batches and rng is not None:  # where the interrupted run's random stream was
            _set_rng_state(rng, self.device)
        lr = learning_rate(self.config, epoch)
        # a group may scale the schedule's rate (feature_fusion.trainer: streams fine-tuned slower than the
        # head); the stream trainer's group has no lr_scale, so its stored optimizer state stays as it was
        for group in self.learner.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loader = self.data.train
        set_epoch(loader, epoch)
        if totals.batches >= len(loader):  # stopped during validation: the epoch's training is done
            train = EpochResult.of(totals)
        else:
            batches = _skipping(loader, totals.batches) if totals.batches else loader
            train = train_one_epoch(self.trained, self.criterion, self.learner.optimizer, batches, self.device,
                                    self.learner.scaler, epoch + 1, self.interactive, totals=totals, stop=self.stop,
                                    decode=self.data.decode)
            if train.stopped:
                raise self.stopped(epoch, train.totals, f"after batch {train.totals.batches} of {len(loader)}")
        return _over_processes(train, self.world)

    def record_training(self, epoch: int, train: EpochResult) -> str:
        """Log the epoch's training figures (metrics.jsonl; the checkpoint's metrics); its line's start."""
        lr = learning_rate(self.config, epoch)
        if self.world.main:
            self.metrics_log.write(epoch + 1, "train", train.loss, train.accuracy, lr, train.samples_per_s,
                                   self.elapsed())
        self.metrics = {"train": {"loss": train.loss, "accuracy": train.accuracy, "samples_per_s": train.samples_per_s}}
        return f"epoch {epoch + 1}/{self.config.epochs} lr {lr:.3g}: train loss {train.loss:.4f} " \
               f"accuracy {train.accuracy:.3f} ({train.samples_per_s:.1f} samples/s)"

    def validates(self, epoch: int) -> bool:
        """Is epoch `epoch` (from 0) validated: every --val-every epochs, and the last."""
        config = self.config
        return self.data.val_batches is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs)

    def validate(self, epoch: int, totals: EpochTotals) -> str:
        """Score the validation clips after epoch `epoch` (from 0), whose training `totals` a stop
        here saves; log the figures; the part of the epoch's line that says them."""
        data = self.data
        try:
            scores, seconds = predict_all(self.learner.model, data.val_batches, self.device, len(data.val),
                                          f"epoch {epoch + 1} val", self.interactive, self.stop)
        except Stopped:
            raise self.stopped(epoch, totals, "during validation") from None
        val, _ = summarize(scores, data.val.video_index, data.val_labels)
        rate = len(data.val) / seconds if seconds else 0.0
        if self.world.main:
            self.metrics_log.write(epoch + 1, "val", val["clip_loss"], val["clip_top1"],
                                   learning_rate(self.config, epoch), rate, self.elapsed(), data.val_subset)
        self.metrics["val"] = {**val, "samples_per_s": rate, "subset": data.val_subset}
        return f"; val ({data.val_subset} videos) clip accuracy {val['clip_top1']:.3f}, video {val['video_top1']:.3f}"

    def checkpoint(self, epoch: int, totals: list[EpochTotals] | None = None) -> dict:
        """The checkpoint after `epoch` completed epochs (and, mid-epoch, every process's `totals`
        of the next, in rank order)."""
        learner = self.learner
        progress = {"epoch": epoch, "elapsed": self.elapsed()}
        if totals is not None:
            progress.update(epoch_totals=totals[0].to_dict(), epoch_totals_of_processes=[t.to_dict() for t in totals],
                            rng=_rng_state(self.device))
        return {**self.writer.identity, **progress, "model": learner.model.state_dict(),
                "optimizer": learner.optimizer.state_dict(),
                "scaler": learner.scaler.state_dict() if learner.scaler.is_enabled() else {}, "metrics": self.metrics}

    def save(self, epoch: int, totals: list[EpochTotals] | None = None) -> None:
        """The main process writes the checkpoint; no process runs ahead of the checkpoint that a
        resume would start from."""
        if self.world.main:
            self.writer.save(self.checkpoint_path, self.checkpoint(epoch, totals))
        self.world.barrier()

    def stopped(self, epoch: int, totals: EpochTotals, where: str) -> BaseException:
        """Save the mid-epoch checkpoint; the Stop that ends the run, saying so in one line."""
        self.save(epoch, self.world.gather(totals))  # all processes take part; the main one saves
        return self.signals.stop(f"stopped by {self.signals.name} in epoch {epoch + 1} of {self.config.epochs} "
                                 f"{where}; checkpoint {self.checkpoint_path} saved: run the same command with "
                                 f"--resume to continue")


def _distributed(learner: Learner, device: Device) -> nn.Module:
    """The model as trained: under torchrun, wrapped by DistributedDataParallel."""
    if not device.world.distributed:
        return learner.model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.device.index] if device.device.type == "cuda" else None
    return DistributedDataParallel(learner.model, device_ids=ids, find_unused_parameters=learner.unused_parameters)


def _over_processes(train: EpochResult, world: World) -> EpochResult:
    """Under torchrun, the epoch's loss and accuracy over every process's samples."""
    if not world.distributed:
        return train
    loss_sum, correct, samples = world.sum([train.loss * train.samples, train.accuracy * train.samples,
                                            train.samples])
    return replace(train, loss=loss_sum / samples, accuracy=correct / samples, samples=samples)


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
