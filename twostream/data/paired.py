"""The two streams' inputs of one moment of a video, as one network input for a two-stream model.

A *pair* at position p is the temporal stream's flow stack at p and the RGB frame at that stack's
tau (the paper samples a frame and takes the stack at it): frame p for a forward stack, frame
p + L/2 for a bidirectional one (the frame between its backward and forward halves). Both are cut
to the same crop box and flipped together (the flow's x negated, as for the temporal stream
alone), so the two halves of a fused input always show the same pixels.

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


@dataclass(frozen=True)
class PairSpec:
    spatial: InputSpec
    temporal: InputSpec

    def __post_init__(self) -> None:
        if (self.spatial.stream, self.temporal.stream) != ("spatial", "temporal"):
            raise ValueError(f"a pair needs a spatial and a temporal input spec, got {self.spatial.stream} and "
                             f"{self.temporal.stream}")
        if self.spatial.crop_size != self.temporal.crop_size:
            raise ValueError(f"the two streams must take the same crop size to share crop boxes; the spatial stream "
                             f"takes {self.spatial.crop_size}, the temporal {self.temporal.crop_size}")

    @property
    def crop_size(self) -> int:
        return self.spatial.crop_size

    @property
    def in_channels(self) -> tuple[int, int]:
        """(spatial, temporal) channels: the pair's planes are the first followed by the second."""
        return self.spatial.in_channels, self.temporal.in_channels

    def positions(self, num_frames: int) -> int:
        # every stack has its frame, not every frame a stack: the temporal stream's positions
        return self.temporal.positions(num_frames)

    def frame_at(self, position: int, num_frames: int) -> int:
        return anchor_frame(position, num_frames, self.temporal.flow_length, self.temporal.flow_stack)

    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None) -> tuple:
        frame = self.spatial.read_raw(video, num_frames, self.frame_at(position, num_frames), box)
        return frame, self.temporal.read_raw(video, num_frames, position, box)

    def cut_raw(self, raw: tuple, box: CropBox) -> tuple:
        return self.spatial.cut_raw(raw[0], box), self.temporal.cut_raw(raw[1], box)

    def to_input(self, raw: tuple, bound: float, flip: bool,
               jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(3 + 2L, S, S) uint8 planes and their (2, 3 + 2L) scale and shift; colour jitter
        touches the RGB half only."""
        rgb, rgb_affine = self.spatial.to_input(raw[0], bound, flip, jitter)
        flow, flow_affine = self.temporal.to_input(raw[1], bound, flip)
        return np.concatenate([rgb, flow]), np.concatenate([rgb_affine, flow_affine], axis=1)
