"""Where the clips of a video come from: positions, flow-stack indices, training and test sampling.

Pure index arithmetic on frame counts, shared by training and evaluation.

A *position* is where one network input starts:
- spatial stream: position p is frame p; a video of T frames has T positions;
- temporal stream: position p is a stack of L consecutive flow fields starting at field p. A video
  of T frames has T-1 fields of each direction, so T-L positions (p = 0 .. T-1-L).
  * `forward` stacks forward fields p .. p+L-1 (the paper's default input);
  * `bidirectional` stacks, around tau = p + L/2, the L/2 backward fields between frames
    tau-L/2 and tau (fields p .. tau-1) and then the L/2 forward fields between frames tau and
    tau+L/2 (fields tau .. p+L-1): channels in time order, as in the paper (section 3.1).

Short-video rule: a video with fewer flow fields than the stack (T-1 < L) has exactly one
position, a window of L fields centred on the video, whose indices past either end repeat the
first or last field (edge padding). Videos with at least L fields never repeat a field.
"""
from __future__ import annotations

import numpy as np


def num_positions(stream: str, num_frames: int, flow_length: int) -> int:
    """How many distinct inputs a video of `num_frames` frames offers (at least 1)."""
    if stream == "spatial":
        return num_frames
    return max(1, num_frames - flow_length)


def is_short(num_frames: int, flow_length: int) -> bool:
    """True when the video has fewer flow fields than a stack needs (edge padding applies)."""
    return num_frames - 1 < flow_length


def stack_fields(position: int, num_frames: int, flow_length: int, flow_stack: str) -> list[tuple[str, int]]:
    """The (direction, field index) of each of the L fields of the stack at `position`, in channel order."""
    fields = num_frames - 1
    if is_short(num_frames, flow_length):
        if position != 0:
            raise IndexError(f"a video of {num_frames} frames has one stack position, got {position}")
        start = (fields - flow_length) // 2  # negative: the window is centred, overhanging both ends
    else:
        if not 0 <= position <= fields - flow_length:
            raise IndexError(f"stack position {position} outside 0..{fields - flow_length} "
                             f"for {num_frames} frames and L={flow_length}")
        start = position
    indices = [min(max(start + k, 0), fields - 1) for k in range(flow_length)]
    if flow_stack == "forward":
        return [("forward", i) for i in indices]
    half = flow_length // 2
    return [("backward", i) for i in indices[:half]] + [("forward", i) for i in indices[half:]]


def segment_positions(n_positions: int, segments: int, rng: np.random.Generator) -> list[int]:
    """Training sampling: one random position in each of `segments` equal parts of the video (TSN).

    segments=1 is the paper's sampling: one random frame or stack per video per epoch. A video
    with fewer positions than segments gives sorted random positions, some repeated.
    """
    if n_positions < segments:
        return sorted(int(p) for p in rng.integers(0, n_positions, size=segments))
    edges = np.linspace(0, n_positions, segments + 1).astype(np.int64)
    return [int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def uniform_positions(n_positions: int, count: int) -> list[int]:
    """Test sampling: `count` positions uniformly spaced over the video, at segment centres.

    A video with fewer positions than `count` repeats some, so every video gets the same number
    of clips (as the TSN test protocol does).
    """
    tick = n_positions / count
    return [min(int(tick / 2 + tick * i), n_positions - 1) for i in range(count)]
