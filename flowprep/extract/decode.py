"""Video decoding with OpenCV: the input edge of the pipeline.

Frame counts come from decoding, never from the container header (shared/data/clips/other/tree.avi
declares 444 frames; 68 decode, spread over the header's whole duration). Problems are raised as
VideoError with a one-line reason that goes into the failures file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np


class VideoError(Exception):
    """A video that cannot be extracted; str() is the one-line reason."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float  # as the container states it; 0.0 when unknown
    width: int
    height: int
    header_frames: int  # what the container claims, for the truncation check only


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"file not found: {path}")
    if path.is_dir():
        raise VideoError(f"is a directory, not a video file: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"empty file (0 bytes): {path}")
    if not os.access(path, os.R_OK):
        raise VideoError(f"permission denied: {path}")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise VideoError(f"not a readable video (OpenCV/FFmpeg cannot open it; truncated header or unsupported format): {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        fps=fps if math.isfinite(fps) and fps > 0 else 0.0,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        header_frames=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
    )
    return cap, info


def truncation_reason(info: VideoInfo, decoded: int, last_timestamp_ms: float) -> str | None:
    """Why decoding looks cut short, or None.

    A file is truncated when decoding ends well before the duration its header states. The end is
    measured by the last frame's timestamp where the container gives one (so a sparse stream
    like tree.avi, 68 frames spanning the header's 444, is complete), else by the frame count.
    Up to 2 frames or 5% may be missing: AVI headers often count one frame more than decodes.
    """
    if info.fps <= 0 or info.header_frames <= 0:
        return None
    period_ms = 1000.0 / info.fps
    expected_ms = info.header_frames * period_ms
    decoded_ms = max(last_timestamp_ms + period_ms, decoded * period_ms)
    tolerance_ms = max(2 * period_ms, 0.05 * expected_ms)
    if decoded_ms + tolerance_ms < expected_ms:
        return (f"truncated: decoding stopped at {decoded_ms / 1000:.2f} s ({decoded} frames) of the "
                f"{expected_ms / 1000:.2f} s ({info.header_frames} frames) the header states")
    return None


def iter_frames(cap: cv2.VideoCapture, info: VideoInfo, check_truncation: bool = True) -> Iterator[np.ndarray]:
    """Yield every decodable BGR frame; at the end, raise VideoError if the file was cut short.

    The caller stops early (max frames) simply by not asking for more; the truncation check
    then does not run, which is right: the part that was wanted decoded.
    """
    for _, frame in iter_kept_frames(cap, info, lambda index: True, check_truncation):
        yield frame


def iter_kept_frames(cap: cv2.VideoCapture, info: VideoInfo, keep: Callable[[int], bool],
                     check_truncation: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of the frames `keep` (called with every index, in order) says to keep.

    Every frame is grabbed (the codec decodes it: later frames depend on it), but only kept ones
    are retrieved, i.e. converted to BGR, which is a third of the cost of reading an HD frame:
    sampling with --fps or --stride pays for the conversion of the frames it keeps only. At the
    end, VideoError if the file was cut short (as `iter_frames`)."""
    decoded = 0
    last_ms = 0.0
    try:
        while cap.grab():
            index = decoded
            decoded += 1
            last_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if keep(index):
                ok, frame = cap.retrieve()
                if not ok:
                    break
                yield index, frame
    finally:
        cap.release()
    if check_truncation:
        reason = truncation_reason(info, decoded, last_ms)
        if reason:
            raise VideoError(reason)


def count_frames(path: str | Path) -> int:
    """Number of frames that actually decode (not what the header says)."""
    cap, info = open_video(path)
    return sum(1 for _ in iter_frames(cap, info, check_truncation=False))
