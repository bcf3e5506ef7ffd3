"""Torch datasets over a list of videos: training samples (random sampling, augmented) and test
samples (uniform positions x fixed crops), and the loaders that batch them. A sample is one network
input (a frame, a flow stack, a 3D clip of T frames, or a pair of them), read through a Layout.

Randomness is a function of (seed, epoch, video): the sampler hands each item its epoch, and the
item draws positions, crop, flip and jitter from a generator seeded with (seed, epoch, index).
So an epoch's data is the same whatever the number of workers, and a resumed run sees exactly
what an uninterrupted one would have.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from flowprep.format.codecs import CodecError
from flowprep.format.folder_index import IndexEntry
from flowprep.format.shards import ShardFormatError
from runkit.signals import ignore_in_worker
from twostream.core.errors import DataError
from twostream.core.world import ONE, World, rank_share
from twostream.data.samples import Video
from twostream.data.sampling import segment_positions, uniform_positions
from twostream.data.transforms import CropBox, eval_crops, jitter_factors, multiscale_corner_box, random_crop_box

# Tags that keep the sampler's and the items' random streams apart.
_ORDER, _ITEM = 0, 1


class Source(Protocol):
    def video(self, entry: IndexEntry) -> Video: ...


class Layout(Protocol):
    """What one network input is made of: `samples.InputSpec` (one stream) or `paired.PairSpec`
    (an RGB frame and the flow stack at the same position, channels concatenated). A raw input
    is whatever `read_raw` returns; `to_input` turns it into uint8 planes and their (2, C) affine."""

    crop_size: int

    def positions(self, num_frames: int) -> int: ...

    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None): ...

    def cut_raw(self, raw, box: CropBox): ...

    def to_input(self, raw, bound: float, flip: bool,
               jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Augment:
    multiscale_crop: bool = False
    flip: bool = True
    color_jitter: float = 0.0  # RGB only


class EpochSampler(Sampler):
    """Yields (epoch, index) keys in an order shuffled by (seed, epoch); set_epoch before iterating.
    In a run of several processes each takes its share of that order (`rank_share`): together
    they see every item once an epoch (the few that pad the shares, twice)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, world: World = ONE) -> None:
        self.size, self.seed, self.shuffle, self.epoch, self.world = size, seed, shuffle, 0, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, self.epoch, _ORDER]).permutation(self.size) if self.shuffle \
            else np.arange(self.size)
        return iter([(self.epoch, int(order[i])) for i in rank_share(self.size, self.world)])

    def __len__(self) -> int:
        return len(rank_share(self.size, self.world))


class TrainSamples(Dataset):
    """Item (epoch, i) -> (uint8 tensor (K, C, S, S), float32 (K, 2, C) scale and shift, label):
    K segment samples of video i, all with the same crop, flip and jitter (TSN's group augmentation;
    K=1 is the paper's sampling). `engine.model_input` turns the pair into the network input."""

    def __init__(self, source: Source, entries: list[IndexEntry], spec: Layout, augment: Augment,
                 segments: int, seed: int) -> None:
        self.source, self.entries, self.spec, self.augment = source, entries, spec, augment
        self.segments, self.seed = segments, seed

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        draw = self.draw(key)
        with readable(draw.entry):
            raws = [self.spec.read_raw(draw.video, draw.entry.num_frames, p, draw.box) for p in draw.positions]
        samples = [self.spec.to_input(raw, draw.bound, draw.flip, draw.jitter) for raw in raws]
        return _stacked(samples) + (draw.entry.label,)

    def draw(self, key: tuple[int, int]) -> "Draw":
        """Item `key`'s video and its random choices, in the order they are drawn (each item's
        whole randomness: `data.device_decode` draws through this too, and so sees the same)."""
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, _ITEM, i])
        entry = self.entries[i]
        with readable(entry):
            video = self.source.video(entry)
            height, width, bound = video.height, video.width, video.bound
        positions = segment_positions(self.spec.positions(entry.num_frames), self.segments, rng)
        box = multiscale_corner_box(height, width, rng) if self.augment.multiscale_crop \
            else random_crop_box(height, width, self.spec.crop_size, rng)
        flip = self.augment.flip and bool(rng.random() < 0.5)
        jitter = jitter_factors(self.augment.color_jitter, rng) if self.augment.color_jitter else None
        return Draw(entry, video, bound, positions, box, flip, jitter)


@dataclass(frozen=True)
class Draw:
    """One training item's video and random choices: positions of its K segments, one crop box,
    flip and jitter for all of them (`TrainSamples.draw`)."""
    entry: IndexEntry
    video: Video
    bound: float
    positions: list[int]
    box: CropBox
    flip: bool
    jitter: tuple[float, float, float] | None


class EvalSamples(Dataset):
    """Item j -> (uint8 tensor (n_crops, C, S, S), float32 (n_crops, 2, C) scale and shift, label,
    video number): one of `clips` uniformly spaced positions of a video (the test protocol's
    clips, `--clips`), under every crop of the protocol."""

    def __init__(self, source: Source, entries: list[IndexEntry], spec: Layout, clips: int, crops: str) -> None:
        self.source, self.entries, self.spec, self.crops = source, entries, spec, crops
        self.items = [(v, p) for v, e in enumerate(entries) for p in uniform_positions(spec.positions(e.num_frames), clips)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int, int]:
        v, position = self.items[j]
        entry = self.entries[v]
        with readable(entry):
            video = self.source.video(entry)
            raw = self.spec.read_raw(video, entry.num_frames, position)
            height, width, bound = video.height, video.width, video.bound
        crops = [self.spec.to_input(self.spec.cut_raw(raw, box), bound, flip)
                 for box, flip in eval_crops(height, width, self.spec.crop_size, self.crops)]
        return _stacked(crops) + (entry.label, v)

    @property
    def video_index(self) -> np.ndarray:
        """The video number of every item, in item order."""
        return np.array([v for v, _ in self.items], dtype=np.int64)


@contextmanager
def readable(entry: IndexEntry) -> Iterator[None]:
    """A video that cannot be read from its shard (a damaged, truncated or missing file) as one
    DataError naming the shard and the video, the same in a loader worker and in the main process.
    It wraps the reading only: an error in sampling or augmentation is a bug, shown as one."""
    try:
        yield
    except DataError:
        raise
    except (ShardFormatError, CodecError, OSError, KeyError, ValueError, IndexError) as exc:
        message = " ".join(str(exc).split())
        raise DataError(f"{entry.shard}: video {entry.video_id!r} cannot be read ({message[:200]}); "
                        f"`flowprep verify` on the shards lists what is damaged") from None


def _stacked(inputs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    planes, affines = zip(*inputs)
    # one sample (the usual case) needs no copy: a new leading axis is a view
    stacked = planes[0][None] if len(planes) == 1 else np.stack(planes)
    return torch.from_numpy(stacked), torch.from_numpy(np.stack(affines))


def train_loader(dataset: TrainSamples, batch_size: int, workers: int, seed: int, pin_memory: bool,
                 world: World = ONE) -> DataLoader:
    """Full batches only, so batch statistics never come from a handful of samples; a split
    smaller than one batch gives one batch of all its videos. `batch_size` is per process. A
    dataset may batch its items its own way (its `collate`: `data.device_decode`'s stored images)."""
    sampler = EpochSampler(len(dataset), seed, world=world)
    batches = BatchSampler(sampler, batch_size, drop_last=len(sampler) >= batch_size)
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=getattr(dataset, "collate", None),
                      persistent_workers=workers > 0, generator=_own_generator(seed), worker_init_fn=ignore_in_worker)


def eval_loader(dataset: EvalSamples, batch_size: int, workers: int, pin_memory: bool, world: World = ONE) -> DataLoader:
    """The items in order; in a run of several processes, this process's share (its `sampler`
    lists which: `twostream.engine.loops.predict_all` puts the shares back together)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=rank_share(len(dataset), world), num_workers=workers,
                      pin_memory=pin_memory, generator=_own_generator(0), worker_init_fn=ignore_in_worker)


def _own_generator(seed: int) -> torch.Generator:
    """A DataLoader draws its workers' base seed from a generator each time it starts iterating;
    left to the global one, that draw would shift dropout's random stream by an amount that
    depends on the number of workers and on validation. Our items never use torch's RNG."""
    return torch.Generator().manual_seed(seed)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    loader.batch_sampler.sampler.set_epoch(epoch)
