"""The two streams' inputs of one moment of a video, as one network input for a two-stream model.

A *pair* at position p is the temporal stream's flow stack at p and the RGB frame at that stack's
tau (the paper samples a frame and takes the stack at it): frame p for a forward stack, frame
p + L/2 for a bidirectional one (the frame between its backward and forward halves). Both are cut
to the same crop box and flipped together (the flow's x negated, as for the temporal stream
alone), so the two halves of a fused input always show the same pixels.

The motion half may also be a window of T frames (`motion_inputs.FrameWindow`: the dynamic-image
and learned-flow streams), paired with the window's first frame (as a forward stack with the frame
its first field starts at); a learned-flow window's (3, T, S, S) frames come as 3T planes.

`PairSpec` is a `datasets.Layout`: `TrainSamples` and `EvalSamples` sample pairs with their own
positions, boxes, flips and test crops. A pair's planes are the RGB planes followed by the 2L flow
planes, with the affine of each half, so `engine.model_input` normalises both halves, each its own
way, in one step; `twostream.feature_fusion.model.TwoStreamModel` splits the channels again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twostream.data.samples import InputSpec, Video
from twostream.data.sampling import stack_fields
from twostream.data.transforms import CropBox


def anchor_frame(position: int, num_frames: int, flow_length: int, flow_stack: str) -> int:
    """The frame at tau of the stack at `position`: where its first forward field starts.

    Taken from `sampling.stack_fields`, so a short video's edge-padded stack gets a frame inside
    the video by the same rule (the frame its first forward field, after padding, starts at)."""
    fields = stack_fields(position, num_frames, flow_length, flow_stack)
    return next(index for direction, index in fields if direction == "forward")


# the streams a pair's motion half may be: a flow stack, or a window of frames (motion_inputs)
MOTION_STREAMS = ("temporal", "dynamic-image", "learned-flow")


class PairHalves:
    """What every pair layout does alike with its two halves, `spatial` and `temporal` (PairSpec,
    clip_pairs.ClipPairSpec): one crop size, one box for both, and the motion half's positions
    (every stack or flow clip has its frames, not every frame a stack)."""

    @property
    def crop_size(self) -> int:
        return self.spatial.crop_size

    def positions(self, num_frames: int) -> int:
        return self.temporal.positions(num_frames)

    def cut_raw(self, raw: tuple, box: CropBox) -> tuple:
        return self.spatial.cut_raw(raw[0], box), self.temporal.cut_raw(raw[1], box)


@dataclass(frozen=True)
class PairSpec(PairHalves):
    spatial: InputSpec
    temporal: InputSpec  # or a motion_inputs.FrameWindow

    def __post_init__(self) -> None:
        if self.spatial.stream != "spatial" or self.temporal.stream not in MOTION_STREAMS:
            raise ValueError(f"a pair needs a spatial input spec and a motion one ({', '.join(MOTION_STREAMS)}), "
                             f"got {self.spatial.stream} and {self.temporal.stream}")
        if self.spatial.crop_size != self.temporal.crop_size:
            raise ValueError(f"the two streams must take the same crop size to share crop boxes; the spatial stream "
                             f"takes {self.spatial.crop_size}, the temporal {self.temporal.crop_size}")

    @property
    def in_channels(self) -> tuple[int, int]:
        """(spatial, temporal) channels: the pair's planes are the first followed by the second."""
        return self.spatial.in_channels, getattr(self.temporal, "paired_channels", self.temporal.in_channels)

    def frame_at(self, position: int, num_frames: int) -> int:
        if self.temporal.stream != "temporal":  # a window: its first frame
            return self.temporal.frames.indices(num_frames, position)[0]
        return anchor_frame(position, num_frames, self.temporal.flow_length, self.temporal.flow_stack)

    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None) -> tuple:
        frame = self.spatial.read_raw(video, num_frames, self.frame_at(position, num_frames), box)
        return frame, self.temporal.read_raw(video, num_frames, position, box)

    def to_input(self, raw: tuple, bound: float, flip: bool,
               jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(3 + 2L, S, S) uint8 planes and their (2, 3 + 2L) scale and shift; colour jitter
        touches the RGB half only."""
        rgb, rgb_affine = self.spatial.to_input(raw[0], bound, flip, jitter)
        flow, flow_affine = self.temporal.to_input(raw[1], bound, flip)
        if flow.ndim == 4:  # a window's (3, T, S, S) frames as 3T planes, each with its colour's affine
            flow_affine = flow_affine.repeat(flow.shape[1], axis=1)
            flow = flow.reshape(-1, *flow.shape[2:])
        return np.concatenate([rgb, flow]), np.concatenate([rgb_affine, flow_affine], axis=1)
