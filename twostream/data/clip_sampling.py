"""Clip inputs for 3D streams (`--clip T`): T frames or T flow fields, `stride` apart, as one input.

A clip at position p takes items p, p + s, ..., p + (T-1)s (s the stride): frames for the spatial
stream (RGB, 3 x T x S x S), forward flow fields for the temporal stream (2 x T x S x S: the x and
y components as the two channels, field t as time step t). A video of N frames has N frames and
N-1 fields, so N - span + 1 RGB positions and N - span flow positions, span = (T-1)s + 1.

Short-video rule (the same as a 2D flow stack's, twostream.data.sampling): a video with fewer items
than the span has one position, a window of the span centred on the video, whose indices past
either end repeat the first or last item (edge padding: the clip holds still at its ends rather
than looping back, which would show a jump the video does not have). Videos of at least a span
never repeat an item. `check_clip_length` refuses a clip longer than every video and names the
padded ones.

Training samples K clips per video with TSN's segments (`sampling.segment_positions` on the clip
positions), evaluation K uniformly spaced clips (`sampling.uniform_positions`) under the test
crops: the datasets (twostream.data.datasets) read clips through `ClipSpec`, a `datasets.Layout`,
as they read a frame or a stack through `clips.InputSpec`. The flip rule is the 2D one: the clip
mirrored, every flow field's x negated.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from flowprep.format.folder_index import IndexEntry
from twostream.core.errors import DataError
from twostream.data.extraction import check_stack_length
from twostream.data.paired import PairSpec
from twostream.data.samples import InputSpec, Video
from twostream.data.transforms import (
    CropBox,
    flow_affine,
    hflip_flow_planes,
    jitter_codes,
    resize_image,
    resize_planes,
    rgb_affine,
)

log = logging.getLogger("twostream")


def clip_span(clip: int, stride: int) -> int:
    """Items from a clip's first to its last, both included."""
    return (clip - 1) * stride + 1


def clip_items(stream: str, num_frames: int) -> int:
    """Frames (spatial) or forward flow fields (temporal) of a video of `num_frames` frames."""
    return num_frames if stream == "spatial" else num_frames - 1


def clip_positions(items: int, clip: int, stride: int) -> int:
    """Distinct clips of a video with `items` frames or fields (at least 1)."""
    return max(1, items - clip_span(clip, stride) + 1)


def clip_indices(position: int, items: int, clip: int, stride: int) -> list[int]:
    """The item index of each of the clip's T steps at `position` (edge-padded for short videos)."""
    span = clip_span(clip, stride)
    if items < span:
        if position != 0:
            raise IndexError(f"a video of {items} items has one clip position for a span of {span}, got {position}")
        start = (items - span) // 2  # negative: the window is centred, overhanging both ends
    else:
        if not 0 <= position <= items - span:
            raise IndexError(f"clip position {position} outside 0..{items - span} for {items} items, span {span}")
        start = position
    return [min(max(start + k * stride, 0), items - 1) for k in range(clip)]


@dataclass(frozen=True)
class ClipSpec:
    stream: str
    clip: int  # T
    stride: int
    crop_size: int

    @classmethod
    def of(cls, config) -> "ClipSpec":
        """The clip spec of a TrainConfig with clip > 0."""
        return cls(config.stream, config.clip, config.clip_stride, config.crop_size)

    @property
    def in_channels(self) -> int:
        return 3 if self.stream == "spatial" else 2

    @property
    def span(self) -> int:
        return clip_span(self.clip, self.stride)

    def positions(self, num_frames: int) -> int:
        return clip_positions(clip_items(self.stream, num_frames), self.clip, self.stride)

    def indices(self, num_frames: int, position: int) -> list[int]:
        return clip_indices(position, clip_items(self.stream, num_frames), self.clip, self.stride)

    # datasets.Layout: a raw clip is (T, h, w, 3) RGB frames or (2T, h, w) flow code planes x0, y0, x1, ...
    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None) -> np.ndarray:
        return self.read_items(video, self.indices(num_frames, position), box)

    def read_items(self, video: Video, indices: list[int], box: CropBox | None = None) -> np.ndarray:
        """The raw clip of the frames or forward fields at `indices` (a clip pair reads the RGB
        frames at its flow clip's indices: frame i is where field i starts)."""
        if self.stream == "temporal":  # the reader cuts the box itself, all T fields in one call
            return video.flow_planes([("forward", i) for i in indices],
                                     None if box is None else (box.top, box.left, box.height, box.width))
        frames = {i: video.rgb(i) for i in dict.fromkeys(indices)}  # a padded clip reads its edge frame once
        raw = np.stack([frames[i] for i in indices])
        return raw if box is None else self.cut_raw(raw, box)

    def cut_raw(self, raw: np.ndarray, box: CropBox) -> np.ndarray:
        rows, cols = slice(box.top, box.top + box.height), slice(box.left, box.left + box.width)
        return raw[:, rows, cols]

    def to_input(self, raw: np.ndarray, bound: float, flip: bool,
               jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (C, T, S, S) and the (2, C) scale and shift of its channels (`engine.loops.model_input`)."""
        size = self.crop_size
        if self.stream == "temporal":
            planes = resize_planes(raw, size)
            planes = hflip_flow_planes(planes) if flip else planes
            clip = np.ascontiguousarray(planes.reshape(self.clip, 2, size, size).transpose(1, 0, 2, 3))
            return clip, flow_affine(2, bound, None, flip)
        frames = np.stack([resize_image(frame, size) for frame in raw])  # (T, S, S, 3)
        if flip:
            frames = frames[:, :, ::-1]
        clip = np.ascontiguousarray(frames.transpose(3, 0, 1, 2))  # (3, T, S, S)
        if jitter is not None:  # one jitter for the whole clip, as TSN's group augmentation
            clip = jitter_codes(clip.reshape(3, self.clip * size, size), jitter).reshape(clip.shape)
        return clip, rgb_affine()


def check_clip_length(entries: list[IndexEntry], spec: ClipSpec, what: str) -> None:
    """Refuse a clip longer than every video; warn about the videos the short-video rule pads."""
    kind = "frames" if spec.stream == "spatial" else "flow fields"
    longest = max(entries, key=lambda e: e.num_frames)
    if clip_items(spec.stream, longest.num_frames) < spec.span:
        raise DataError(f"a clip of {spec.clip} {kind} {spec.stride} apart spans {spec.span} {kind}, but the longest "
                        f"of the {len(entries)} {what} videos ({longest.video_id}) has "
                        f"{clip_items(spec.stream, longest.num_frames)}; pass a smaller --clip or --clip-stride")
    short = [e for e in entries if clip_items(spec.stream, e.num_frames) < spec.span]
    if short:
        log.warning("%d of %d %s videos have fewer than %d %s (e.g. %s, %d frames): each gives one centred clip "
                    "with its edge %s repeated (docs/training.md, clip streams)", len(short), len(entries), what,
                    spec.span, kind, short[0].video_id, short[0].num_frames, kind)


def frame_sampling(settings: dict, kind: str) -> str:
    """How an extraction folder's frames were sampled from its videos, in words that compare equal
    for equal sampling: 'fps F' (`flowprep extract --fps`), 'stride N' (every Nth frame, N=1: every
    frame) or, for an import that did not state its rate, 'unknown'."""
    fps = settings.get("fps")
    if fps:
        return f"fps {float(fps):g}"
    if kind == "extract":
        return f"stride {int(settings.get('stride', 1))}"
    return "unknown"


def input_layout(config):
    """What one network input of a TrainConfig is: a clip (`ClipSpec`, clip > 0), the paper's
    frame or flow stack (`clips.InputSpec`), or a frame with the stack beside it (`paired.PairSpec`,
    a motion-attended spatial stream)."""
    if getattr(config, "motion_attention", False):
        frame = InputSpec.of(config)
        return PairSpec(frame, dataclasses.replace(frame, stream="temporal"))
    return ClipSpec.of(config) if config.clip else InputSpec.of(config)


def check_input_length(entries: list[IndexEntry], layout, what: str) -> None:
    """The length check of the layout's input: a clip's span, a flow stack's L (a frame needs none)."""
    if isinstance(layout, ClipSpec):
        check_clip_length(entries, layout, what)
    elif isinstance(layout, PairSpec):
        check_stack_length(entries, layout.temporal.flow_length, what)
    elif layout.stream == "temporal":
        check_stack_length(entries, layout.flow_length, what)


def check_frame_sampling(trained: str | None, settings: dict, kind: str, root) -> None:
    """Refuse shards whose frames were sampled otherwise than those a clip stream was trained on:
    T frames would span another time."""
    here = frame_sampling(settings, kind)
    if trained is not None and trained != here:
        raise DataError(f"the clip stream was trained on frames sampled at {trained}, but {root} holds frames "
                        f"sampled at {here}: a clip would span another time; extract the shards with the same "
                        f"--fps/--stride")
