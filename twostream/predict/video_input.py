"""A new video as the input of runs trained on an extraction: decoded, sampled, resized, flowed,
quantised and put through the shards' codecs exactly as `flowprep extract` did for the extraction
the runs were trained on (its ExtractConfig, stored in every checkpoint), then held in memory.

Every step is flowprep's own function, imported from flowprep.api (decoding and sampling: flowprep.extract.decode,
frames, video_job; flow: the flow registry's batch entry point, which also subtracts the mean
and quantises; the codecs: flowprep.format.shards's encode/decode pairs), called in the order
`video_job._extract` calls them, so a video predicted from its file gets the frames and flow
codes a shard of it holds (tests/twostream/predict/test_predict.py compares them).

`MemoryVideo` has the methods of a shard's VideoReader that the datasets read (the
`twostream.data.samples.Video` protocol), so the test protocol runs on it unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from flowprep.api import (
    VIDEO_EXTENSIONS,
    BatchFlow,
    ExtractConfig,
    ImportConfig,
    SampledFrames,
    VideoInfo,
    both_directions,
    check_length,
    frame_sampler,
    frame_size,
    open_video,
    parse_shard_settings,
    resize,
    to_gray,
)
from flowprep.format.shards import FLOW_DIRECTIONS, decode_flow, decode_rgb, encode_flow, encode_rgb
from twostream.core.errors import DataError

DIRECTIONS = tuple(FLOW_DIRECTIONS)  # forward, backward


def extraction_settings(stored: str | None, where: str) -> ExtractConfig:
    """The ExtractConfig a checkpoint stores (its `extract_config`), parsed by its owner; a
    DataError naming `where` if it is missing or describes frames imported from rawframes (whose
    flow was computed elsewhere, by a method predict cannot run)."""
    if not isinstance(stored, str) or not stored:
        raise DataError(f"{where} does not record the extraction settings it was trained on; predict needs them to "
                        f"compute a new video's input as training saw it")
    try:
        config = parse_shard_settings(stored)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: its recorded extraction settings do not parse: {exc}") from None
    if isinstance(config, ImportConfig):
        raise DataError(f"{where} was trained on frames imported from rawframes (flowprep import-rawframes), whose "
                        f"flow was computed by another tool; predict computes flow itself and needs runs trained on "
                        f"a 'flowprep extract' folder")
    return config


class MemoryVideo:
    """One video's stored frames and flow, in memory: what a shard's VideoReader returns for it."""

    def __init__(self, config: ExtractConfig, width: int, height: int) -> None:
        self.bound, self.width, self.height = config.bound, width, height
        self.frames: list[np.ndarray] = []  # (H, W, 3) RGB
        self.planes: dict[str, list[np.ndarray]] = {d: [] for d in DIRECTIONS}  # (2, H, W) codes
        self.means: dict[str, list[np.ndarray]] = {d: [] for d in DIRECTIONS}

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def rgb(self, index: int) -> np.ndarray:
        return self.frames[index]

    def flow_planes(self, fields: Sequence[tuple[str, int]], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        top, left, h, w = box if box is not None else (0, 0, self.height, self.width)
        planes = [self.planes[d][i][:, top:top + h, left:left + w] for d, i in fields]
        return np.concatenate(planes)

    def flow_means(self, direction: str) -> np.ndarray:
        return np.array(self.means[direction], np.float32).reshape(-1, 2)


class FrameCoder:
    """Frames in one at a time (BGR, as decoded), out as stored: the frame resized and through the
    RGB codec, and from the second frame on the fields of the new pair (previous -> new forward,
    new -> previous backward), mean-subtracted, quantised and through the flow codec. One new pair
    a frame: a live window never computes a field twice.

    `directions` are the fields computed: both for a file (as the shards hold), or only those the
    runs read (a forward stack needs no backward field: half the flow in the live mode)."""

    def __init__(self, config: ExtractConfig, size: tuple[int, int], flow: BatchFlow,
                 directions: tuple[str, ...] = DIRECTIONS) -> None:
        self.config, self.size, self.flow, self.directions = config, size, flow, directions
        self.rgb_codec, self.flow_codec = config.rgb_codec, config.flow_codec
        self.previous: np.ndarray | None = None

    def add(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """(stored RGB frame, {direction: (code planes (2, H, W), subtracted mean (2,))})."""
        frame = resize(frame_bgr, self.size)
        gray = to_gray(frame)
        rgb = decode_rgb(self.rgb_codec, encode_rgb(self.rgb_codec, frame))
        fields = {}
        if self.previous is not None:
            if self.directions == DIRECTIONS:  # the extraction's batch: forward, then backward
                first, second = both_directions([self.previous], [gray])
            else:
                pairs = {"forward": (self.previous, gray), "backward": (gray, self.previous)}
                first, second = (np.stack(x) for x in zip(*(pairs[d] for d in self.directions)))
            codes, means = self.flow.codes(first, second, self.config.bound, self.config.mean_subtraction)
            height, width = gray.shape
            for k, direction in enumerate(self.directions):
                stored = encode_flow(self.flow_codec, codes[k])
                fields[direction] = decode_flow(self.flow_codec, stored, height, width), means[k]
        self.previous = gray
        return rgb, fields


def flow_backend(config: ExtractConfig, device: str = "cpu") -> BatchFlow:
    """The extraction's flow method with its recorded parameters (a batched one on `device`)."""
    method = config.flow_method
    return method.create_batch(config.flow_params_dict, device if method.batched else "cpu")


def add_frame(video: MemoryVideo, coder: FrameCoder, frame_bgr: np.ndarray) -> None:
    rgb, fields = coder.add(frame_bgr)
    video.frames.append(rgb)
    for direction, (planes, mean) in fields.items():
        video.planes[direction].append(planes)
        video.means[direction].append(mean)


def decode_video(path: str | Path, config: ExtractConfig, flow: BatchFlow) -> MemoryVideo:
    """The video file as the extraction stores it; VideoError (one line) if it cannot be."""
    cap, info = open_video(path)
    size = frame_size(info, config)
    coder = FrameCoder(config, size, flow)
    video = MemoryVideo(config, *size)
    sampled = SampledFrames(cap, info, frame_sampler(info, config))
    for frame in sampled:
        add_frame(video, coder, frame)
    check_length(video.num_frames, sampled.decoded)
    return video


def frames_video(frames, config: ExtractConfig, flow: BatchFlow) -> MemoryVideo:
    """Frames already sampled, (T, H, W, 3) uint8 RGB (numpy or a torch tensor), as the extraction
    would store them: resized to its size, flowed, quantised, through its codecs."""
    array = np.asarray(frames.cpu().numpy() if hasattr(frames, "cpu") else frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise DataError(f"frames must be a (T, H, W, 3) uint8 RGB array or tensor; got {array.dtype} of shape "
                        f"{tuple(array.shape)}")
    height, width = array.shape[1:3]
    size = frame_size(VideoInfo(0.0, width, height, 0), config)
    coder = FrameCoder(config, size, flow)
    video = MemoryVideo(config, *size)
    for frame in array:
        add_frame(video, coder, np.ascontiguousarray(frame[..., ::-1]))  # RGB -> BGR, as a decoder gives
    check_length(video.num_frames, video.num_frames)
    return video


def video_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the video files (by extension, sorted) at any depth of folders."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(path)
    return found
