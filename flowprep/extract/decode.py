"""Video decoding with OpenCV: the input edge of the pipeline.

Frame counts come from decoding, never from the container header (shared/data/clips/other/tree.avi
declares 444 frames; 68 decode, spread over the header's whole duration). Problems are raised as
VideoError with a one-line reason that goes into the failures file.

Damage inside a stream (bytes overwritten in the middle of a file) is not visible from OpenCV's
side: the decoder conceals it and drops a few frames, and neither the frame count (within the
truncation check's tolerance), CAP_PROP_POS_FRAMES (a count of decoded frames) nor the timestamps
(an AVI's are its frame numbers, renumbered after the drop) show a gap. What does show it is
FFmpeg's own log: its decoders report every damaged macroblock ("Error at MB: 309", "ac-tex
damaged at 12 7", "concealing 300 DC, 300 AC, 300 MV errors") at AV_LOG_ERROR, the level OpenCV
leaves FFmpeg at, on the process's stderr. `decoder_log` takes those lines off the terminal and
counts them: on all 11 shared clips it finds none, on a clip with 20,000 random bytes in its middle
it finds the damage.
"""
from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
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


# FFmpeg's default log callback writes "[<component> @ 0x<address>] <message>"
FFMPEG_LINE = re.compile(r"^\[([^\]@]+) @ 0x[0-9a-fA-F]+\] ?(.*)$")
LOG_READ_LIMIT = 1 << 20  # bytes of a video's captured log read back: the count of a few thousand lines


class DecoderLog:
    """What FFmpeg has written to a capture file so far (decoder_log)."""

    def __init__(self, capture=None) -> None:
        self.capture = capture

    def lines(self) -> tuple[list[str], list[str]]:
        """(FFmpeg's lines as "component: message", the other lines) captured so far."""
        if self.capture is None:
            return [], []
        sys.stderr.flush()
        self.capture.seek(0)
        text = self.capture.read(LOG_READ_LIMIT).decode("utf-8", errors="replace")
        self.capture.seek(0, os.SEEK_END)
        ffmpeg, others = [], []
        for line in text.splitlines():
            match = FFMPEG_LINE.match(line)
            if match:
                ffmpeg.append(f"{match.group(1)}: {match.group(2)}")
            elif line.strip():
                others.append(line)
        return ffmpeg, others

    def complaints(self) -> list[str]:
        """FFmpeg's lines so far: its decoders' reports of damaged data."""
        return self.lines()[0]


@contextmanager
def decoder_log() -> Iterator[DecoderLog]:
    """Within (on the main thread: a worker process's job, or a run's own single one): what
    FFmpeg writes to this process's stderr goes to a temporary file, never to the terminal (one
    damaged clip printed 774 lines there), and `complaints()` gives its lines; on leaving, any
    other line written meanwhile goes on to stderr. Off the main thread (decoding threads beside
    a device, a Dask worker's task threads) stderr is shared with concurrent decoders and nothing
    is taken: no complaints (FFmpeg is silenced there instead: silence_ffmpeg)."""
    capture, saved = None, -1
    if threading.current_thread() is threading.main_thread():
        try:
            capture = tempfile.TemporaryFile()
            saved = os.dup(2)
        except OSError:  # no temporary space, or no stderr at all: decode uncounted rather than fail
            if capture is not None:
                capture.close()
            capture = None
    if capture is None:
        yield DecoderLog()
        return
    try:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        log = DecoderLog(capture)
        try:
            yield log
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            others = log.lines()[1]
            if others:  # not FFmpeg's: a line of this process, written while it decoded
                os.write(2, ("\n".join(others) + "\n").encode())
    finally:
        os.close(saved)
        capture.close()


def decode_errors_reason(lines: list[str], kept: bool = False) -> str:
    """The one line of a video whose decoder reported damage: its failure's reason, or (`kept`,
    --allow-decode-errors) the warning recorded with it."""
    shown = "; ".join(dict.fromkeys(lines[:3]))
    if kept:
        return f"kept despite {len(lines)} decoder error(s) (FFmpeg: {shown[:200]}); frames may be lost or concealed"
    return (f"damaged: the decoder reported {len(lines)} error(s) (FFmpeg: {shown[:200]}); frames were lost or "
            f"concealed. Pass --allow-decode-errors to keep such videos")


def silence_ffmpeg() -> None:
    """FFmpeg's lines off the terminal in a process whose decoders run in threads (decoder_log
    takes nothing there): OpenCV reads OPENCV_FFMPEG_LOGLEVEL (-8: quiet) when it first opens a
    video in the process, so this must come first. A level the user set is kept."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
