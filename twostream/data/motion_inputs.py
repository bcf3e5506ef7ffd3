"""The inputs of the streams that see motion without precomputed flow: a window of T consecutive
RGB frames (`--clip T`, `--clip-stride S`) read from the shards, as a 3D clip stream reads them
(`clip_sampling.ClipSpec` of the spatial stream: the same positions, short-video rule, crops and
flips), made into
- `dynamic-image`: one dynamic image (twostream.data.dynamic_images), an RGB image (3, S, S) with
  ImageNet normalisation, for any 2D backbone;
- `learned-flow`: the frames themselves (3, T, S, S), ImageNet-normalised like a clip stream's:
  the stream's network computes their flow with its learned TV-L1 layer
  (twostream.streams.motion_models).
Both are `datasets.Layout`s, so training and the test protocol treat them as any other stream's.
The dynamic image is pooled from the crop (after cutting, before resizing and flipping): training
and the test crops pool the pixels the network sees, with one rescaling each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowprep.format.folder_index import IndexEntry
from twostream.core.config import WINDOW_STREAMS
from twostream.data.clip_pairs import ClipPairSpec
from twostream.data.clip_sampling import ClipSpec, check_clip_length, check_input_length, input_layout
from twostream.data.dynamic_images import dynamic_image
from twostream.data.paired import PairSpec
from twostream.data.samples import Video
from twostream.data.transforms import CropBox, channels_first, hflip_planes, resize_image, rgb_affine


@dataclass(frozen=True)
class FrameWindow:
    """T RGB frames `stride` apart, read as the spatial stream's clip (`frames`); `stream` names
    what they become."""
    stream: str
    frames: ClipSpec

    @classmethod
    def of(cls, config) -> "FrameWindow":
        return cls(config.stream, ClipSpec("spatial", config.clip, config.clip_stride, config.crop_size))

    @property
    def crop_size(self) -> int:
        return self.frames.crop_size

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def paired_channels(self) -> int:
        """Planes of its input beside a frame (paired.PairSpec): a learned-flow window's T frames as 3T."""
        return 3 * self.frames.clip if self.stream == "learned-flow" else 3

    def positions(self, num_frames: int) -> int:
        return self.frames.positions(num_frames)

    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None) -> np.ndarray:
        return self.frames.read_raw(video, num_frames, position, box)

    def cut_raw(self, raw: np.ndarray, box: CropBox) -> np.ndarray:
        return self.frames.cut_raw(raw, box)

    def to_input(self, raw: np.ndarray, bound: float, flip: bool,
                 jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """learned-flow: the clip (3, T, S, S); dynamic-image: the image (3, S, S); uint8 either way,
        with ImageNet's (2, 3) scale and shift."""
        if self.stream == "learned-flow":
            return self.frames.to_input(raw, bound, flip, jitter)
        planes = channels_first(resize_image(dynamic_image(raw), self.crop_size))
        return (hflip_planes(planes) if flip else planes), rgb_affine()


def stream_layout(config):
    """What one network input of a TrainConfig is: a frame window for the streams above, else
    `clip_sampling.input_layout`'s clip, frame or flow stack."""
    return FrameWindow.of(config) if config.stream in WINDOW_STREAMS else input_layout(config)


def check_stream_length(entries: list[IndexEntry], layout, what: str) -> None:
    """A window's clip length check (`clip_sampling.check_clip_length`; alone or as a pair's motion
    half), a clip pair's flow clip's (one field fewer than frames: the RGB clip then fits too),
    else the layout's own."""
    if isinstance(layout, ClipPairSpec):
        layout = layout.temporal
    if isinstance(layout, PairSpec) and isinstance(layout.temporal, FrameWindow):
        layout = layout.temporal
    if isinstance(layout, FrameWindow):
        check_clip_length(entries, layout.frames, what)
    else:
        check_input_length(entries, layout, what)
