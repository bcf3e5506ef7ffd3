"""One network input from one video: read a frame or a flow stack cut to a crop box, resize,
flip, normalise.

`InputSpec` is what a checkpoint's config says about its input; training and evaluation build
their inputs from it, so a model is always tested on inputs shaped as it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twostream.data.sampling import num_positions, stack_fields
from twostream.data.transforms import (
    CropBox,
    channels_first,
    flow_affine,
    hflip_flow_planes,
    hflip_planes,
    jitter_codes,
    resize_image,
    resize_planes,
    rgb_affine,
)


class Video(Protocol):
    """What a sample is read from: flowprep's VideoReader, or any source with the same methods."""

    bound: float
    height: int
    width: int

    def rgb(self, index: int) -> np.ndarray: ...

    def flow_planes(self, fields: list[tuple[str, int]], box: tuple[int, int, int, int] | None = None) -> np.ndarray: ...

    def flow_means(self, direction: str) -> np.ndarray: ...


@dataclass(frozen=True)
class InputSpec:
    stream: str
    flow_length: int
    flow_stack: str
    mean_subtraction: bool  # False: the stored mean vectors are put back
    crop_size: int

    @classmethod
    def of(cls, config) -> "InputSpec":
        """The input spec of a TrainConfig."""
        return cls(config.stream, config.flow_length, config.flow_stack, config.mean_subtraction, config.crop_size)

    @property
    def in_channels(self) -> int:
        return 3 if self.stream == "spatial" else 2 * self.flow_length

    def positions(self, num_frames: int) -> int:
        return num_positions(self.stream, num_frames, self.flow_length)

    # The sample layout the datasets read through (datasets.Layout): a raw input is what
    # `read_sample` returns, (planes, means). `paired.PairSpec` reads both streams' inputs
    # through the same three calls.
    def read_raw(self, video: Video, num_frames: int, position: int,
                 box: CropBox | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        return read_sample(video, self, num_frames, position, box)

    def cut_raw(self, raw: tuple[np.ndarray, np.ndarray | None], box: CropBox) -> tuple[np.ndarray, np.ndarray | None]:
        return cut(raw[0], self, box), raw[1]

    def to_input(self, raw: tuple[np.ndarray, np.ndarray | None], bound: float, flip: bool,
               jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return to_input(raw[0], raw[1], self, bound, flip, jitter)


def read_sample(video: Video, spec: InputSpec, num_frames: int, position: int,
              box: CropBox | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The input at `position`, cut to `box` (whole if None): an RGB frame (h, w, 3), or the flow
    stack as uint8 code planes (2L, h, w) x0, y0, x1, y1, ... with, for flow with mean
    subtraction turned off, the (L, 2) mean vectors to put back.

    The flow is cut by the reader itself: a shard reads all L fields in one call per direction,
    and a raw codec only the box's bytes."""
    if spec.stream == "spatial":
        frame = video.rgb(position)
        return (frame if box is None else cut(frame, spec, box)), None
    fields = stack_fields(position, num_frames, spec.flow_length, spec.flow_stack)
    planes = video.flow_planes(fields, None if box is None else (box.top, box.left, box.height, box.width))
    means = None if spec.mean_subtraction else np.stack([video.flow_means(d)[i] for d, i in fields])
    return planes, means


def cut(raw: np.ndarray, spec: InputSpec, box: CropBox) -> np.ndarray:
    """The box of an uncut input (a view): of an RGB frame (H, W, 3) or of flow planes (2L, H, W)."""
    rows, cols = slice(box.top, box.top + box.height), slice(box.left, box.left + box.width)
    return raw[rows, cols] if spec.stream == "spatial" else raw[:, rows, cols]


def to_input(cut_raw: np.ndarray, means: np.ndarray | None, spec: InputSpec, bound: float, flip: bool,
             jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A cut input (see `read_sample`) resized to the crop size if it differs (multi-scale crops),
    flipped, colour-jittered (RGB): uint8 planes (C, S, S), flow channels x0, y0, x1, y1, ...,
    and the (2, C) scale and shift that normalise them (`transforms.flow_affine`/`rgb_affine`)."""
    if spec.stream == "spatial":
        planes = channels_first(resize_image(cut_raw, spec.crop_size))
        planes = hflip_planes(planes) if flip else planes
        return (planes if jitter is None else jitter_codes(planes, jitter)), input_affine(spec, 3, bound, means, flip)
    planes = resize_planes(cut_raw, spec.crop_size)
    planes = hflip_flow_planes(planes) if flip else planes
    return planes, input_affine(spec, planes.shape[0], bound, means, flip)


def input_affine(spec: InputSpec, channels: int, bound: float, means: np.ndarray | None, flip: bool) -> np.ndarray:
    """The (2, C) scale and shift that normalise an input of `spec` (`transforms.rgb_affine` /
    `flow_affine`): for the loader's decoded inputs and for `device_decode`'s stored ones alike."""
    return rgb_affine() if spec.stream == "spatial" else flow_affine(channels, bound, means, flip)
