"""Map-style datasets for your own training loop: `ds[i]` is one video's training input, a
normalised float32 tensor (C, S, S), and its label, drawn as `twostream train` draws it.

The trainer's own dataset (`datasets.TrainSamples`) takes `(epoch, index)` keys from its
`EpochSampler`, which makes a run reproducible whatever the number of workers, but `ds[0]` and
`DataLoader(ds, shuffle=True)` do not work with it. These classes wrap it with integer keys:

    seed=None (default)  every access draws a fresh position, crop, flip (and jitter) from the
                         operating system's entropy: any sampler, any number of workers, and
                         each epoch sees new draws with nothing to call.
    seed=S               draws are a function of (S, epoch, index), as in `twostream train`:
                         call `ds.set_epoch(epoch)` before each epoch (as with DistributedSampler)
                         for new draws; the same epoch gives the same inputs on any machine.

The normalisation is the trainer's (RGB: ImageNet mean and std; flow: codes back to pixels,
divided by the bound), applied here rather than on the device, so a user's loop needs nothing
else; one process reads its shards through its own handles (`store.ShardStore`), so the
datasets work in DataLoader workers, forked or spawned.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import torch
from torch.utils.data import Dataset

from twostream.core.errors import DataError
from twostream.data.datasets import Augment, TrainSamples
from twostream.data.extraction import (
    ExtractedDataset,
    check_crop_size,
    check_stack_length,
    open_extraction,
    subset_videos,
)
from twostream.data.samples import InputSpec
from twostream.data.store import ShardStore

SUBSETS = ("train", "test", "val")  # val: the training videos held out by `holdout` (as evaluate --subset val)


def normalise(codes: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """uint8 planes (..., C, H, W) and their (..., 2, C) scale and shift -> float32 network input,
    exactly as `twostream.engine.loops.model_input` does on the device."""
    return codes.float() * affine[..., 0, :, None, None] + affine[..., 1, :, None, None]


class StreamDataset(Dataset):
    """One stream's training inputs over the videos of `subset` of `split` in an extraction folder."""

    stream = ""  # set by the subclasses

    def __init__(self, folder: str | Path, split: str = "split1", subset: str = "train", *, crop_size: int = 224,
                 flip: bool = True, multiscale_crop: bool = False, color_jitter: float = 0.0,
                 flow_length: int = 10, flow_stack: str = "forward", restore_means: bool = False,
                 holdout: float = 0.0, seed: int | None = None) -> None:
        if subset not in SUBSETS:
            raise DataError(f"subset must be one of {', '.join(SUBSETS)}; got {subset!r}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise DataError(f"seed must be None (fresh draws) or a non-negative integer, got {seed!r}")
        self.extraction: ExtractedDataset = open_extraction(folder)
        self.split, self.subset, self.holdout, self.seed, self.epoch = split, subset, holdout, seed, 0
        self.spec = InputSpec(self.stream, flow_length, flow_stack, not restore_means, crop_size)
        check_crop_size(self.extraction, crop_size)
        # the held-out videos are chosen by a hash of (seed, id), as the trainer chooses them
        self.videos = subset_videos(self.extraction, split, subset, holdout, seed or 0)
        if self.stream == "temporal":
            check_stack_length(self.videos, flow_length, subset)
        self._samples = TrainSamples(ShardStore(self.extraction.root), self.videos, self.spec,
                                 Augment(multiscale_crop, flip, color_jitter), segments=1, seed=seed or 0)

    @property
    def folder(self) -> Path:
        return self.extraction.root

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.extraction.class_names

    @property
    def num_classes(self) -> int:
        return self.extraction.num_classes

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def labels(self) -> list[int]:
        return [e.label for e in self.videos]

    def set_epoch(self, epoch: int) -> None:
        """With a seed: the epoch the next draws belong to (without one, every access is fresh)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = range(len(self.videos))[int(index)]  # an IndexError, naming nothing odd, past the end
        key = self.epoch if self.seed is not None else secrets.randbits(62)
        codes, affine, label = self._samples[(key, i)]
        return normalise(codes[0], affine[0]), label

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.folder)!r}, split={self.split!r}, subset={self.subset!r}: "
                f"{len(self)} videos, {self.num_classes} classes, input {self.in_channels}x{self.spec.crop_size}"
                f"x{self.spec.crop_size})")


class SpatialFrames(StreamDataset):
    """`ds[i]`: one random RGB frame of video i, randomly cropped to `crop_size` (or TSN's
    multi-scale corner crop), flipped half the time, colour-jittered by `color_jitter`:
    a float32 tensor (3, S, S) normalised with ImageNet's mean and std; and the video's label."""

    stream = "spatial"

    def __init__(self, folder: str | Path, split: str = "split1", subset: str = "train", *, crop_size: int = 224,
                 flip: bool = True, multiscale_crop: bool = False, color_jitter: float = 0.2,
                 holdout: float = 0.0, seed: int | None = None) -> None:
        super().__init__(folder, split, subset, crop_size=crop_size, flip=flip, multiscale_crop=multiscale_crop,
                         color_jitter=color_jitter, holdout=holdout, seed=seed)


class TemporalStacks(StreamDataset):
    """`ds[i]`: the stack of `flow_length` flow fields (2L channels x0, y0, x1, y1, ...) at a random
    position of video i, cropped and flipped (x negated) like the frames: a float32 tensor
    (2L, S, S) in units of the bound (-1..1 is -bound..bound pixels); and the video's label.
    `restore_means` puts back the mean vectors that extraction subtracted."""

    stream = "temporal"

    def __init__(self, folder: str | Path, split: str = "split1", subset: str = "train", *, crop_size: int = 224,
                 flow_length: int = 10, flow_stack: str = "forward", restore_means: bool = False, flip: bool = True,
                 multiscale_crop: bool = False, holdout: float = 0.0, seed: int | None = None) -> None:
        super().__init__(folder, split, subset, crop_size=crop_size, flip=flip, multiscale_crop=multiscale_crop,
                         flow_length=flow_length, flow_stack=flow_stack, restore_means=restore_means,
                         holdout=holdout, seed=seed)
