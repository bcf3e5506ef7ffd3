"""One video, decoded, sampled, resized, flowed both ways, quantised and staged: the job of a
worker (a process for the OpenCV backends, a thread beside the device for batched ones).

Frames stream from the decoder into the staging file; flow is asked for in windows of a few
frame pairs (`window`), both directions at once, from a `FlowSubmitter`: the backend itself in
a worker process, or the batcher that merges the windows of many videos into one device batch
(batched.py). A job keeps at most two windows in flight, so memory is bounded by 2 x window + 1
grey frames, their codes and the staging writer's small buffer, whatever the video's length.
"""
from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from flowprep.extract.config import ExtractConfig
from flowprep.extract.decode import (
    VideoError,
    VideoInfo,
    decode_errors_reason,
    decoder_log,
    iter_kept_frames,
    open_video,
)
from flowprep.extract.frames import FrameSampler, output_size, resize, to_gray
from flowprep.extract.shard_writer import StagedVideo
from flowprep.flow.backend import BatchFlow, FlowError
from flowprep.format.manifest import ManifestEntry
from flowprep.format.shards import VideoAttrs
from runkit.faults import disk_full, is_disk_full, quiet_hdf5_after_disk_full


@dataclass(frozen=True)
class VideoOutcome:
    video_id: str
    source: str
    staged: Path | None  # the committed staging file, None on failure
    error: str | None  # one-line reason on failure
    frames: int = 0
    pairs: int = 0
    flow_seconds: float = 0.0  # time spent inside the flow backend (in the job's own process)
    seconds: float = 0.0  # wall time of the whole job
    warning: str = ""  # kept despite a problem (--allow-decode-errors: the decoder's complaint)


class FlowSubmitter(Protocol):
    def submit(self, first: np.ndarray, second: np.ndarray) -> Future:
        """A future of `BatchFlow.codes` of the (N, H, W) frames: (uint8 planes (N, 2, H, W), means (N, 2))."""


class InlineFlow:
    """A FlowSubmitter that computes at once, in the calling process: the worker-process path."""

    def __init__(self, flow: BatchFlow, bound: float, mean_subtraction: bool) -> None:
        self.flow, self.bound, self.mean_subtraction = flow, bound, mean_subtraction
        self.seconds = 0.0

    def submit(self, first: np.ndarray, second: np.ndarray) -> Future:
        future: Future = Future()
        started = time.perf_counter()
        future.set_result(self.flow.codes(first, second, self.bound, self.mean_subtraction))
        self.seconds += time.perf_counter() - started
        return future


@lru_cache(maxsize=4)
def _flow_for(config: ExtractConfig) -> BatchFlow:
    """One flow backend object per worker process and config, reused across videos."""
    return config.flow_method.create_batch(config.flow_params_dict)


def both_directions(prevs: list[np.ndarray], nexts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The batch of a window of pairs: its forward fields (prev -> next), then its backward ones."""
    return np.stack(prevs + nexts), np.stack(nexts + prevs)


def stage_flow(staged: StagedVideo, codes: np.ndarray, means: np.ndarray) -> None:
    """Stage the fields of one window (`both_directions` order) pair by pair."""
    n = len(codes) // 2
    for i in range(n):
        staged.add_flow_planes("forward", codes[i], means[i])
        staged.add_flow_planes("backward", codes[n + i], means[n + i])


def frame_sampler(info: VideoInfo, config: ExtractConfig) -> FrameSampler:
    """The frame sampler of one video; sampling a video cannot take (--fps without a stated frame
    rate) is that video's failure, not the run's."""
    try:
        return FrameSampler(info.fps, config.fps, config.stride, config.max_frames)
    except ValueError as exc:
        raise VideoError(str(exc)) from None


class SampledFrames:
    """The BGR frames of an open video that `sampler` keeps, in order, up to its max frames;
    `decoded` counts the frames decoded so far (kept or not)."""

    def __init__(self, cap: cv2.VideoCapture, info: VideoInfo, sampler: FrameSampler) -> None:
        self.cap, self.info, self.sampler, self.decoded = cap, info, sampler, 0

    def _keep(self, index: int) -> bool:
        self.decoded = index + 1
        return self.sampler.keep(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frame in iter_kept_frames(self.cap, self.info, self._keep):
            yield frame
            if self.sampler.done:
                break


def check_length(frames: int, decoded: int) -> None:
    """VideoError unless a video gave the two frames one flow field needs."""
    if frames < 2:
        detail = "" if frames == decoded else f" after sampling ({decoded} decoded)"
        raise VideoError(f"too short: {frames} frame(s){detail}; at least 2 are needed for flow")


def frame_size(info: VideoInfo, config: ExtractConfig) -> tuple[int, int]:
    """(width, height) the frames of a video of `info`'s size are stored at under `config`."""
    fixed = (config.width, config.height) if config.short_side is None else None
    return output_size(info.width, info.height, fixed, config.short_side)


def extract_video(entry: ManifestEntry, source: Path, config: ExtractConfig, staging_dir: Path,
                  flow: FlowSubmitter | None = None, window: int = 1, allow_decode_errors: bool = False) -> VideoOutcome:
    """Extract one video into `staging_dir`; never raises for a bad video, returns the reason.
    Without `flow` (a worker process), the config's backend computes flow here, one pair at a time.
    A video whose decoder reports damage (decode.decoder_log) fails, unless `allow_decode_errors`:
    then it is kept, with the decoder's complaint in its outcome's `warning` (and its shard)."""
    cv2.setNumThreads(1)  # one core per worker: parallelism comes from processes or threads
    quiet_hdf5_after_disk_full()
    started = time.perf_counter()
    try:
        if flow is None:
            flow = InlineFlow(_flow_for(config), config.bound, config.mean_subtraction)
        return _extract(entry, source, config, staging_dir, started, flow, window, allow_decode_errors)
    except (VideoError, FlowError) as exc:
        reason = str(exc)
    except cv2.error as exc:
        reason = "OpenCV error: " + " ".join(str(exc).split())
    except OSError as exc:
        if is_disk_full(exc):  # not this video's fault: every next one would fail too
            raise disk_full(staging_dir, exc) from None
        reason = f"I/O error: {exc}"
    except Exception as exc:  # noqa: BLE001  a bug met on one video must not stop the others'
        reason = f"unexpected {type(exc).__name__} (a flowprep bug; please report it): {' '.join(str(exc).split())}"
    return VideoOutcome(entry.video_id, str(source), None, reason, seconds=time.perf_counter() - started)


def _extract(entry: ManifestEntry, source: Path, config: ExtractConfig, staging_dir: Path, started: float,
             flow: FlowSubmitter, window: int, allow_decode_errors: bool) -> VideoOutcome:
    with decoder_log() as decoder:  # FFmpeg's lines off the terminal, and counted
        cap, info = open_video(source)
        sampler = frame_sampler(info, config)
        size = frame_size(info, config)
        with StagedVideo(staging_dir, entry.video_id, size[0], size[1], config.rgb_codec,
                         config.flow_codec, config.bound, config.to_json()) as staged:
            in_flight: deque[Future] = deque()
            prevs: list[np.ndarray] = []
            nexts: list[np.ndarray] = []
            prev_gray = None
            sampled = SampledFrames(cap, info, sampler)
            for frame in sampled:
                frame = resize(frame, size)
                gray = to_gray(frame)
                staged.add_frame(frame)
                if prev_gray is not None:
                    prevs.append(prev_gray)
                    nexts.append(gray)
                prev_gray = gray
                if len(prevs) == window:
                    in_flight.append(flow.submit(*both_directions(prevs, nexts)))
                    prevs, nexts = [], []
                    while len(in_flight) > 1:  # decode the next window while this one computes
                        stage_flow(staged, *in_flight.popleft().result())
            if prevs:
                in_flight.append(flow.submit(*both_directions(prevs, nexts)))
            while in_flight:
                stage_flow(staged, *in_flight.popleft().result())
            check_length(staged.frames, sampled.decoded)
            complaints = decoder.complaints()
            if complaints and not allow_decode_errors:
                raise VideoError(decode_errors_reason(complaints))
            warning = decode_errors_reason(complaints, kept=True) if complaints else ""
            attrs = VideoAttrs(
                label=entry.label,
                label_name=entry.label_name,
                splits=json.dumps(entry.splits_dict, sort_keys=True),
                source_path=entry.path,
                source_width=info.width,
                source_height=info.height,
                fps_source=info.fps,
                fps_sampled=sampler.output_fps(info.fps),
                width=size[0],
                height=size[1],
                num_frames=staged.frames,
                mean_subtracted=config.mean_subtraction,
                decode_warning=warning,
            )
            path = staged.commit(attrs)
        return VideoOutcome(entry.video_id, str(source), path, None, staged.frames, staged.pairs,
                            getattr(flow, "seconds", 0.0), time.perf_counter() - started, warning)
