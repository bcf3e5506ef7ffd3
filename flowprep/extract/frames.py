"""Pure frame arithmetic: which decoded frames to keep, and the size to store them at."""
from __future__ import annotations

import math

import cv2
import numpy as np


class FrameSampler:
    """Decides, frame by frame as they decode, which source frames are kept.

    The total frame count is unknown until decoding ends (container headers lie), so the rule
    is causal: with a target fps r <= source fps s, source frame i is kept when
    floor(i * r / s) advances, i.e. output frame n is the first source frame at or after
    n / r seconds. A target above the source fps keeps every frame (no frame is invented).
    """

    def __init__(self, source_fps: float, target_fps: float | None = None, stride: int = 1,
                 max_frames: int | None = None) -> None:
        self.ratio = 1.0
        if target_fps is not None:
            if not source_fps > 0 or not math.isfinite(source_fps):
                raise ValueError(f"the video does not state a usable frame rate ({source_fps!r}), so --fps cannot be applied; "
                                 f"extract it with --stride instead")
            self.ratio = min(1.0, target_fps / source_fps)
        self.stride = stride
        self.max_frames = max_frames
        self.kept = 0
        self._last_slot = -1

    @property
    def done(self) -> bool:
        return self.max_frames is not None and self.kept >= self.max_frames

    def keep(self, index: int) -> bool:
        """Whether source frame `index` (0-based, called in increasing order) is kept."""
        if self.done or index % self.stride:
            return False
        # a tiny epsilon keeps exact ratios (15 of 30 fps) from losing a frame to rounding
        slot = math.floor(index * self.ratio + 1e-9)
        if slot == self._last_slot:
            return False
        self._last_slot = slot
        self.kept += 1
        return True

    def output_fps(self, source_fps: float) -> float:
        return source_fps * self.ratio / self.stride


def output_size(width: int, height: int, size: tuple[int, int] | None, short_side: int | None) -> tuple[int, int]:
    """(width, height) to store a width x height source at: a fixed size or a short side."""
    if size is not None:
        return size
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR frame to (width, height); area interpolation when shrinking avoids aliasing."""
    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    shrinking = size[0] * size[1] < w * h
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
