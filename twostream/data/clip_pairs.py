"""The two clip streams' inputs at one position, as one network input for a two-stream model of 3D
streams (feature-level fusion of `--clip T` runs): the spatial stream's RGB clip and the temporal
stream's flow clip, (3 + 2, T, S, S), channels concatenated.

The clip pair at position p is the flow clip at p (forward fields p, p + s, ..., `clip_sampling`'s
indices and short-video rule) and the RGB frames at the same indices: frame i is the frame field i
starts at, so RGB step t shows what flow step t moves (a 2D pair's frame at its stack's tau, in
`paired`, is the same rule for one step). Both halves are cut to one crop box and flipped together
(each flow field's x negated, the 2D rule). Both streams must take clips of the same length,
stride and crop size: else their steps would not be the same moments, or their boxes the same
pixels.

`ClipPairSpec` is a `datasets.Layout`, as `paired.PairSpec` is for 2D streams: `TrainSamples` and
`EvalSamples` sample clip pairs with their own positions, boxes, flips and test crops, and
`engine.model_input` normalises each half its own way in one step (its (2, 5) affine);
`twostream.feature_fusion.model.TwoStreamModel` splits the channels again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twostream.data.clip_sampling import ClipSpec
from twostream.data.paired import PairHalves
from twostream.data.samples import Video
from twostream.data.transforms import CropBox


@dataclass(frozen=True)
class ClipPairSpec(PairHalves):  # its crop size, positions (the flow clip's) and one box for both
    spatial: ClipSpec  # the RGB clip's
    temporal: ClipSpec  # the flow clip's

    def __post_init__(self) -> None:
        if self.spatial.stream != "spatial" or self.temporal.stream != "temporal":
            raise ValueError(f"a clip pair needs a spatial clip stream and a temporal one, got {self.spatial.stream} "
                             f"and {self.temporal.stream}")
        for what, option, spatial, temporal in (("clip length", "--clip", self.spatial.clip, self.temporal.clip),
                                                ("clip stride", "--clip-stride", self.spatial.stride, self.temporal.stride),
                                                ("crop size", "--crop-size", self.spatial.crop_size, self.temporal.crop_size)):
            if spatial != temporal:
                raise ValueError(f"the two clip streams must take the same {what} ({option}) to pair their clips; the "
                                 f"spatial stream takes {spatial}, the temporal {temporal}")

    @property
    def in_channels(self) -> tuple[int, int]:
        """(spatial, temporal) channels of the pair's clip: RGB, then the flow's x and y."""
        return self.spatial.in_channels, self.temporal.in_channels

    def read_raw(self, video: Video, num_frames: int, position: int, box: CropBox | None = None) -> tuple:
        indices = self.temporal.indices(num_frames, position)
        return self.spatial.read_items(video, indices, box), self.temporal.read_items(video, indices, box)

    def to_input(self, raw: tuple, bound: float, flip: bool,
                 jitter: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(3 + 2, T, S, S) uint8 and the (2, 5) scale and shift of its channels; colour jitter
        touches the RGB half only."""
        rgb, rgb_affine = self.spatial.to_input(raw[0], bound, flip, jitter)
        flow, flow_affine = self.temporal.to_input(raw[1], bound, flip)
        return np.concatenate([rgb, flow]), np.concatenate([rgb_affine, flow_affine], axis=1)
