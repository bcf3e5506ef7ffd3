"""One training epoch and one pass of prediction: the loops, and nothing else."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from twostream.core.device import Device
from twostream.core.errors import DataError, TrainError, from_worker
from twostream.core.progress import EpochProgress


def worker_errors(loader):
    """The loader's batches; a DataError from a loader worker as its own one line."""
    try:
        yield from loader
    except DataError as exc:
        raise from_worker(exc) from None


def model_input(x: torch.Tensor, affine: torch.Tensor, device: Device) -> torch.Tensor:
    """uint8 planes (N, C, H, W), or clips (N, C, T, H, W), and their (N, 2, C) scale and shift ->
    the float32 network input on the device. Normalising here, not in the loader workers, moves a
    quarter of the bytes from the workers and to the device, and costs the device next to nothing."""
    x = x.to(device.device, non_blocking=True)
    affine = affine.to(device.device, non_blocking=True)
    per_channel = (*affine.shape[:1], affine.shape[2], *[1] * (x.dim() - 2))  # (N, C, 1, 1[, 1])
    x = x.float() * affine[:, 0].reshape(per_channel) + affine[:, 1].reshape(per_channel)
    if not device.channels_last:
        return x
    return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)


def consensus_logits(model: nn.Module, x: torch.Tensor, segments: int) -> torch.Tensor:
    """(B * K, C, H, W) -> (B, classes): logits of each sample's K segment inputs averaged
    (TSN's consensus; K=1 is the single-input case)."""
    return model(x).view(x.shape[0] // segments, segments, -1).mean(dim=1)


@dataclass
class EpochTotals:
    """What an epoch's batches have added up to so far. A mid-epoch checkpoint keeps them, so that
    the resumed epoch reports the loss and accuracy of the whole epoch, as an uninterrupted one."""
    batches: int = 0
    samples: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict | None) -> EpochTotals:
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in (stored or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class EpochResult:
    """What `train_one_epoch` did: loss and clip accuracy (means over its samples), samples and
    seconds; `totals`, which they come from (a mid-epoch checkpoint keeps them); `stopped`: a stop
    ended the epoch before its last batch."""
    loss: float
    accuracy: float
    samples: int
    seconds: float
    totals: EpochTotals
    stopped: bool = False

    @classmethod
    def of(cls, totals: EpochTotals, stopped: bool = False) -> EpochResult:
        seen = max(totals.samples, 1)
        return cls(totals.loss_sum / seen, totals.correct / seen, totals.samples, totals.seconds, totals, stopped)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


class Stopped(Exception):
    """A stop was asked for (twostream.engine.fit_loop: a signal) and the loop reached a batch boundary."""


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
                    device: Device, scaler: torch.amp.GradScaler, epoch: int,
                    interactive: bool | None = None, totals: EpochTotals | None = None,
                    stop: Callable[[], bool] = lambda: False, decode: Callable | None = None) -> EpochResult:
    """Train on `loader`'s batches once; `decode` (if given) turns each into (codes, affine, labels)
    (twostream.data.device_decode: the batch's images decoded on the device).

    `totals`: what the epoch's batches before `loader`'s did (a resumed epoch: `loader` skips
    them); the epoch's figures count them too. `stop` is asked after every batch: when it says
    so, the epoch ends there, the result `stopped` and its `totals` saying how far it got."""
    model.train()
    totals = EpochTotals(**(totals or EpochTotals()).to_dict())
    progress = EpochProgress(f"epoch {epoch} train", totals.batches + len(loader), interactive=interactive)
    progress.batches, progress.samples = totals.batches, totals.samples
    started = time.perf_counter()
    stopped = False
    try:
        for batch in worker_errors(loader):
            codes, affine, labels = batch if decode is None else decode(batch)
            segments = codes.shape[1]  # codes: (B, K, C, H, W)
            x = model_input(codes.flatten(0, 1), affine.flatten(0, 1), device)
            labels = labels.to(device.device, non_blocking=True)
            with device.autocast():
                logits = consensus_logits(model, x, segments)
                loss = criterion(logits.float(), labels)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {loss.item()} in epoch {epoch}: lower --lr (now "
                                 f"{optimizer.param_groups[0]['lr']:g})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = labels.shape[0]
            totals.loss_sum += loss.item() * n
            totals.correct += int((logits.argmax(dim=1) == labels).sum())
            totals.samples += n
            totals.batches += 1
            progress.update(n, loss=totals.loss_sum / totals.samples, acc=totals.correct / totals.samples)
            if stop():
                stopped = True
                break
    finally:
        progress.close()
    totals.seconds += time.perf_counter() - started
    return EpochResult.of(totals, stopped)


@torch.no_grad()
def predict_samples(model: nn.Module, loader: DataLoader, device: Device, title: str,
                  interactive: bool | None = None, stop: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, float]:
    """Softmax scores of every sample (its crops' softmax averaged), in loader order: (N, classes),
    and the seconds it took. `stop` is asked after every batch: when it says so, Stopped."""
    model.eval()
    progress = EpochProgress(title, len(loader), interactive=interactive)
    out = []
    started = time.perf_counter()
    try:
        for codes, affine, *_ in worker_errors(loader):  # codes: (B, crops, C, H, W)
            with device.autocast():
                logits = model(model_input(codes.flatten(0, 1), affine.flatten(0, 1), device))
            probs = torch.softmax(logits.float(), dim=1).view(codes.shape[0], codes.shape[1], -1).mean(dim=1)
            out.append(probs.cpu().numpy())
            progress.update(codes.shape[0])
            if stop():
                raise Stopped(title)
    finally:
        progress.close()
    num_classes = getattr(model, "num_classes", 0)
    scores = np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)
    return scores, time.perf_counter() - started


def predict_all(model: nn.Module, loader: DataLoader, device: Device, count: int, title: str,
                interactive: bool | None = None, stop: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, float]:
    """`predict_samples` of all `count` items of a dataset, in item order, in every process: each
    process scores its share (the loader's sampler lists it) and the shares are gathered; the
    items that padded a share are scored twice, and kept once."""
    scores, seconds = predict_samples(model, loader, device, title, interactive, stop)
    world = device.world
    if not world.distributed:
        return scores, seconds
    parts = world.gather((list(loader.sampler), scores))
    full = np.zeros((count, scores.shape[1]), np.float32)
    for indices, part in parts:
        full[indices] = part
    return full, max(seconds for seconds in world.gather(seconds))
