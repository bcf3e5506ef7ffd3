"""One video, decoded, sampled, resized, flowed both ways, quantised and staged: the worker's job.

Runs inside a joblib worker process. Memory is bounded by two frames, their flow and the staging
writer's small buffer of encoded items, whatever the video's length: frames stream from the
decoder into the staging file.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from flowprep.extract.config import ExtractConfig
from flowprep.extract.decode import VideoError, VideoInfo, iter_frames, open_video
from flowprep.extract.flow_methods import FlowFn, make_flow
from flowprep.extract.frames import FrameSampler, output_size, resize, to_gray
from flowprep.extract.shard_writer import StagedVideo
from flowprep.format.codecs import parse_codec
from flowprep.format.manifest import ManifestEntry
from flowprep.format.quantize import field_mean, quantize_planes
from flowprep.format.shards import VideoAttrs


@dataclass(frozen=True)
class VideoOutcome:
    video_id: str
    source: str
    staged: Path | None  # the committed staging file, None on failure
    error: str | None  # one-line reason on failure
    frames: int = 0
    pairs: int = 0
    flow_seconds: float = 0.0  # time spent inside the flow backend
    seconds: float = 0.0  # wall time of the whole job


def flow_pair(flow: FlowFn, prev_gray: np.ndarray, next_gray: np.ndarray, bound: float,
              mean_subtraction: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Forward (prev -> next) and backward (next -> prev) flow of one pair, mean-subtracted and
    quantised.

    Returns [(direction, uint8 code planes (2, H, W): x then y, subtracted mean (2,) float32)].
    """
    out = []
    for direction, a, b in (("forward", prev_gray, next_gray), ("backward", next_gray, prev_gray)):
        field = flow(a, b)
        mean = field_mean(field) if mean_subtraction else np.zeros(2, np.float32)
        out.append((direction, quantize_planes(field, bound, mean), mean))
    return out


@lru_cache(maxsize=4)
def _flow_for(config_json: str) -> FlowFn:
    """One flow backend object per worker process and config, reused across videos."""
    config = ExtractConfig.from_json(config_json)
    return make_flow(config.flow_method, config.flow_params_dict)


def frame_sampler(info: VideoInfo, config: ExtractConfig) -> FrameSampler:
    """The frame sampler of one video; sampling a video cannot take (--fps without a stated frame
    rate) is that video's failure, not the run's."""
    try:
        return FrameSampler(info.fps, config.fps, config.stride, config.max_frames)
    except ValueError as exc:
        raise VideoError(str(exc)) from None


def extract_video(entry: ManifestEntry, source: Path, config_json: str, staging_dir: Path) -> VideoOutcome:
    """Extract one video into `staging_dir`; never raises for a bad video, returns the reason."""
    cv2.setNumThreads(1)  # one core per worker: parallelism comes from processes
    started = time.perf_counter()
    config = ExtractConfig.from_json(config_json)
    try:
        return _extract(entry, source, config, config_json, staging_dir, started)
    except VideoError as exc:
        reason = str(exc)
    except cv2.error as exc:
        reason = "OpenCV error: " + " ".join(str(exc).split())
    except OSError as exc:
        reason = f"I/O error: {exc}"
    except Exception as exc:  # noqa: BLE001  a bug met on one video must not stop the others'
        reason = f"unexpected {type(exc).__name__} (a flowprep bug; please report it): {' '.join(str(exc).split())}"
    return VideoOutcome(entry.video_id, str(source), None, reason, seconds=time.perf_counter() - started)


def _extract(entry: ManifestEntry, source: Path, config: ExtractConfig, config_json: str,
             staging_dir: Path, started: float) -> VideoOutcome:
    flow = _flow_for(config_json)
    cap, info = open_video(source)
    sampler = frame_sampler(info, config)
    fixed = (config.width, config.height) if config.short_side is None else None
    size = output_size(info.width, info.height, fixed, config.short_side)
    flow_seconds = 0.0
    decoded = 0
    with StagedVideo(staging_dir, entry.video_id, size[0], size[1], parse_codec(config.rgb_codec),
                     parse_codec(config.flow_codec), config.bound, config_json) as staged:
        prev_gray = None
        for index, frame in enumerate(iter_frames(cap, info)):
            decoded += 1
            if sampler.done:
                break
            if not sampler.keep(index):
                continue
            frame = resize(frame, size)
            gray = to_gray(frame)
            staged.add_frame(frame)
            if prev_gray is not None:
                t0 = time.perf_counter()
                fields = flow_pair(flow, prev_gray, gray, config.bound, config.mean_subtraction)
                flow_seconds += time.perf_counter() - t0
                for direction, planes, mean in fields:
                    staged.add_flow_planes(direction, planes, mean)
            prev_gray = gray
        if staged.frames < 2:
            detail = "" if staged.frames == decoded else f" after sampling ({decoded} decoded)"
            raise VideoError(f"too short: {staged.frames} frame(s){detail}; at least 2 are needed for flow")
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
        )
        path = staged.commit(attrs)
    return VideoOutcome(entry.video_id, str(source), path, None, staged.frames, staged.pairs, flow_seconds,
                        time.perf_counter() - started)
