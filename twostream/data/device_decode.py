"""Training inputs decoded where the model runs (`twostream train --decode-on device`).

With `--decode-on loader` (the default) a loader worker decodes every JPEG of a sample (one RGB
frame, or L flow fields for a temporal stack) and augments it on the CPU. On a GPU those decodes
bound the temporal stream: 10 fields a sample, x and y. With `--decode-on device` the workers
only read: each item is the sample's stored image files and its random choices (drawn exactly as
`TrainSamples` draws them), and the training process decodes the whole batch in one
`torchvision.io.decode_jpeg` call on the model's device (nvJPEG on CUDA, libjpeg-turbo on the
CPU), then applies the same transforms as `data.samples.to_input`, on tensors:

    decode -> cut to the crop box -> resize to the crop size (multi-scale crops only) -> flip
    (flow: x codes -> 255 - x) -> colour jitter (RGB)

On the CPU the results are the loader's to the code (the two use the same libjpeg-turbo; the
resize redoes OpenCV's fixed-point arithmetic), but for rounding: an enlarged multi-scale crop's
border rows (under 1 % of its codes) and colour-jittered RGB (numpy's order of float sums, not
torch's) may differ by one (tests/twostream/data/test_device_decode.py). nvJPEG's IDCT is not
libjpeg's, so on CUDA decoded codes may differ by a little more (not yet measured).

Only JPEG-coded streams can be decoded on the device (`check_decodable`), and only the inputs of
the 2D spatial and temporal streams (`InputSpec`); the training config refuses other streams.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from twostream.core.errors import DataError
from twostream.data.datasets import TrainSamples, readable
from twostream.data.samples import InputSpec, input_affine
from twostream.data.sampling import stack_fields
from twostream.data.transforms import LUMA, CropBox

DECODABLE = "jpeg"  # the codec kind torchvision decodes on a device


def check_decodable(rgb_codec: str, flow_codec: str, stream: str) -> None:
    """DataError unless the codec of the stream's images is JPEG (an extraction's stored codecs)."""
    which, codec = ("RGB", rgb_codec) if stream == "spatial" else ("flow", flow_codec)
    if codec.split(":")[0] != DECODABLE:
        raise DataError(f"--decode-on device decodes JPEG images; the extraction stores {which} as {codec!r} "
                        f"(use --decode-on loader, or extract with --{which.lower()}-codec jpeg)")


@dataclass(frozen=True)
class StoredItem:
    """One training item before decoding: its K segment inputs' image files in order (K RGB frames,
    or K x L flow fields, each x above y), and what `TrainSamples` drew for them."""
    files: list[np.ndarray]
    box: CropBox
    flip: bool
    jitter: tuple[float, float, float] | None
    affine: np.ndarray  # (K, 2, C): as the loader path computes it
    label: int


@dataclass(frozen=True)
class StoredBatch:
    items: list[StoredItem]


def stored_files(video, spec: InputSpec, num_frames: int, position: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The input at `position` as stored, undecoded: the RGB frame's image file, or the L flow
    fields' files in stack order, each direction's fields read in one slice; and, for flow with
    mean subtraction turned off, the (L, 2) means to put back (as `samples.read_sample`)."""
    if spec.stream == "spatial":
        return [video.stored_rgb(position)], None
    fields = stack_fields(position, num_frames, spec.flow_length, spec.flow_stack)
    runs = {}
    for direction in {d for d, _ in fields}:
        indices = [i for d, i in fields if d == direction]
        runs[direction] = (min(indices), video.stored_flow(direction, min(indices), max(indices) + 1))
    files = [runs[d][1][i - runs[d][0]] for d, i in fields]
    means = None if spec.mean_subtraction else np.stack([video.flow_means(d)[i] for d, i in fields])
    return files, means


class StoredTrainSamples(TrainSamples):
    """`TrainSamples` whose items are `StoredItem`s: the same videos, positions, crop, flip and
    jitter (drawn by `TrainSamples.draw`), the images left encoded for `DeviceDecoder`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.spec, InputSpec):
            raise TypeError("device decoding reads the inputs of 2D spatial and temporal streams (an InputSpec)")

    def __getitem__(self, key: tuple[int, int]) -> StoredItem:
        draw = self.draw(key)
        entry, video = draw.entry, draw.video
        with readable(entry):
            codec = video.rgb_codec if self.spec.stream == "spatial" else video.flow_codec
            if codec.kind != DECODABLE:  # a shard unlike its extraction's config
                raise DataError(f"{entry.shard}: video {entry.video_id!r} stores {codec}, not JPEG: "
                                f"use --decode-on loader")
            stored = [stored_files(video, self.spec, entry.num_frames, p) for p in draw.positions]
        files = [f for fs, _ in stored for f in fs]
        channels = self.spec.in_channels
        affine = np.stack([input_affine(self.spec, channels, draw.bound, means, draw.flip) for _, means in stored])
        return StoredItem(files, draw.box, draw.flip, draw.jitter, affine, entry.label)

    @staticmethod
    def collate(items: list[StoredItem]) -> StoredBatch:
        return StoredBatch(list(items))


class DeviceDecoder:
    """A `StoredBatch` -> (uint8 codes (B, K, C, S, S) on `device`, float32 affine (B, K, 2, C), labels):
    what the loader path's batches hold, decoded in one batched call on `device`."""

    def __init__(self, spec: InputSpec, device: torch.device) -> None:
        self.spec, self.device = spec, device

    def __call__(self, batch: StoredBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg  # deferred: only this path needs torchvision.io

        spatial = self.spec.stream == "spatial"
        files = [torch.from_numpy(np.asarray(f)) for item in batch.items for f in item.files]
        try:
            images = decode_jpeg(files, mode=ImageReadMode.RGB if spatial else ImageReadMode.GRAY, device=self.device)
        except RuntimeError as exc:  # a damaged image: the loader path's error, without the worker
            raise DataError(f"a stored JPEG of this batch does not decode ({' '.join(str(exc).split())[:200]}); "
                            f"`flowprep verify` on the shards lists what is damaged") from None
        inputs, start = [], 0
        for item in batch.items:
            mine = images[start:start + len(item.files)]
            start += len(item.files)
            inputs.append(self._input(mine, item))
        affine = torch.from_numpy(np.stack([item.affine for item in batch.items]))
        labels = torch.tensor([item.label for item in batch.items], dtype=torch.int64)
        return torch.stack(inputs), affine, labels

    def _input(self, images: list[torch.Tensor], item: StoredItem) -> torch.Tensor:
        """(K, C, S, S) uint8: one item's decoded images as `samples.to_input` makes them."""
        segments = len(images) if self.spec.stream == "spatial" else len(images) // self.spec.flow_length
        box = item.box
        if self.spec.stream == "spatial":
            planes = torch.stack(images)  # (K, 3, H, W)
        else:  # each field (1, 2H, W): x above y
            planes = torch.stack([im.view(2, im.shape[1] // 2, im.shape[2]) for im in images])
            planes = planes.view(segments, -1, *planes.shape[-2:])  # (K, 2L, H, W): x0, y0, x1, y1, ...
        planes = planes[..., box.top:box.top + box.height, box.left:box.left + box.width]
        planes = resize_codes(planes, self.spec.crop_size)
        if item.flip:
            planes = planes.flip(-1)
            if self.spec.stream != "spatial":
                planes[:, 0::2] = 255 - planes[:, 0::2]  # flowprep's sign rule on codes (transforms.hflip_flow_planes)
        if item.jitter is not None:
            planes = jitter_codes(planes, item.jitter)
        return planes.contiguous()


def resize_codes(planes: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (..., h, w) -> (..., size, size) as OpenCV's INTER_LINEAR resizes uint8 images
    (`transforms.resize_planes`), in its own fixed-point arithmetic: 11-bit taps, a horizontal pass
    in integers, then its vectorised vertical pass with its roundings. The same codes when
    shrinking; when enlarging, OpenCV's border rows round otherwise in under 1 % of the codes (by
    one). The planes themselves when they have that size already."""
    if planes.shape[-2:] == (size, size):
        return planes
    height, width = planes.shape[-2:]
    sy, sy1, b0, b1 = _linear_taps(height, size, planes.device)
    sx, sx1, a0, a1 = _linear_taps(width, size, planes.device)
    codes = planes.to(torch.int32)
    rows = codes[..., sx] * a0 + codes[..., sx1] * a1  # (..., h, size): codes x 2048
    top, bottom = rows[..., sy, :], rows[..., sy1, :]
    out = (((b0[:, None] * (top >> 4)) >> 16) + ((b1[:, None] * (bottom >> 4)) >> 16) + 2) >> 2
    return out.clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=64)  # a few box sizes (multi-scale crops) per run
def _linear_taps(source: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """OpenCV's bilinear taps from `source` to `size` samples: the two source indices of each
    output sample and their weights in 1/2048 (cv::resize: float32 positions, each weight rounded
    on its own, border samples clamped)."""
    scale = 1 / (size / source)  # as OpenCV computes it, from the inverse scale
    position = ((torch.arange(size, dtype=torch.float64) + 0.5) * scale - 0.5).float()
    first = position.floor()
    fraction = position - first
    first = first.long()
    clamped = (first < 0) | (first >= source - 1)
    fraction[clamped] = 0
    first = first.clamp(0, source - 1)
    weight0 = ((1 - fraction) * 2048).round().to(torch.int32)
    weight1 = (fraction * 2048).round().to(torch.int32)
    second = (first + 1).clamp(max=source - 1)
    return tuple(t.to(device) for t in (first, second, weight0, weight1))


def jitter_codes(planes: torch.Tensor, factors: tuple[float, float, float]) -> torch.Tensor:
    """`transforms.jitter_codes` on uint8 RGB planes (K, 3, H, W) as tensors: each of the K
    images its own grey mean, as the loader jitters each segment's frame alone."""
    brightness, contrast, saturation = factors
    luma = torch.from_numpy(LUMA).to(planes.device).view(1, 3, 1, 1)
    out = planes.float() * np.float32(1 / 255) * np.float32(brightness)
    mean_gray = (out * luma).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    out = (out - mean_gray) * np.float32(contrast) + mean_gray
    gray = (out * luma).sum(dim=1, keepdim=True)
    out = (gray + (out - gray) * np.float32(saturation)).clamp_(0.0, 1.0)
    return (out * 255).round_().to(torch.uint8)
