"""The shard format: the one contract between `flowprep` (writer) and `train` (reader).

Everything about the layout is declared here once: names, dtypes, shapes, chunking, attributes
and the format version. docs/shard_format.md describes the same layout for users of plain h5py.

    <shard>.h5
      attrs: format="flowprep-shard", format_version=1, extract_config=<JSON>, created_by
      videos/<video_id>/                      one group per video
        attrs: label, label_name, splits (JSON), source_path, source_width, source_height,
               fps_source, fps_sampled, width, height, num_frames, mean_subtracted
        rgb                 T images (RGB)     attrs: codec
        flow_forward        T-1 flow fields    attrs: codec, bound    frame t -> t+1
        flow_backward       T-1 flow fields    attrs: codec, bound    frame t+1 -> t
        flow_forward_mean   (T-1, 2) float32   mean (x, y) subtracted from each forward field
        flow_backward_mean  (T-1, 2) float32

Images of an encoded codec (jpeg, png) are variable-length uint8 arrays, one per frame: an RGB
frame is a colour image file; a flow field is one grayscale image of height 2H holding the
quantised x field above the y field. Raw codecs store uint8 arrays (T, H, W, 3) in RGB order and
(T-1, H, W, 2) for flow, with the codec's HDF5 filter. Every dataset is chunked one frame per
chunk, so reading one frame (or one flow field) is one chunk read.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator

import cv2
import h5py
import numpy as np

from .codecs import Codec, parse_codec
from .quantize import dequantize

FORMAT_NAME = "flowprep-shard"
FORMAT_VERSION = 1

# file attributes
ATTR_FORMAT = "format"
ATTR_FORMAT_VERSION = "format_version"
ATTR_EXTRACT_CONFIG = "extract_config"
ATTR_CREATED_BY = "created_by"

VIDEOS_GROUP = "videos"
SHARD_SUFFIX = ".h5"

# per-video datasets
RGB = "rgb"
FLOW_FORWARD = "flow_forward"
FLOW_BACKWARD = "flow_backward"
FLOW_DIRECTIONS = {"forward": FLOW_FORWARD, "backward": FLOW_BACKWARD}
MEAN_SUFFIX = "_mean"

# dataset attributes
ATTR_CODEC = "codec"
ATTR_BOUND = "bound"


class ShardFormatError(Exception):
    """A file that is not a shard this code can read; str() names the file and the problem."""


@dataclass(frozen=True)
class VideoAttrs:
    """Attributes of one video group; the types are the declaration."""

    label: int
    label_name: str
    splits: str  # JSON object: split name -> "train" | "test" | "unused"
    source_path: str
    source_width: int
    source_height: int
    fps_source: float
    fps_sampled: float
    width: int
    height: int
    num_frames: int
    mean_subtracted: bool

    @property
    def splits_dict(self) -> dict[str, str]:
        return json.loads(self.splits)

    @property
    def num_pairs(self) -> int:
        return self.num_frames - 1

    def write(self, group: h5py.Group) -> None:
        for key, value in asdict(self).items():
            group.attrs[key] = value

    @classmethod
    def read(cls, group: h5py.Group) -> "VideoAttrs":
        values = {}
        for f in fields(cls):
            if f.name not in group.attrs:
                raise ShardFormatError(f"{group.file.filename}: video {group.name} lacks attribute {f.name!r}")
            raw = group.attrs[f.name]
            values[f.name] = raw.decode() if isinstance(raw, bytes) else raw.item() if hasattr(raw, "item") else raw
        return cls(**values)


# --- file level -------------------------------------------------------------------------------
def write_header(f: h5py.File, extract_config_json: str, created_by: str) -> None:
    f.attrs[ATTR_FORMAT] = FORMAT_NAME
    f.attrs[ATTR_FORMAT_VERSION] = FORMAT_VERSION
    f.attrs[ATTR_EXTRACT_CONFIG] = extract_config_json
    f.attrs[ATTR_CREATED_BY] = created_by
    f.require_group(VIDEOS_GROUP)


def check_header(f: h5py.File) -> None:
    """Refuse anything but a shard of this format version, naming the file and both versions."""
    name = f.filename
    fmt = f.attrs.get(ATTR_FORMAT)
    if fmt != FORMAT_NAME:
        raise ShardFormatError(f"{name}: not a flowprep shard (format attribute {fmt!r}, expected {FORMAT_NAME!r})")
    version = f.attrs.get(ATTR_FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ShardFormatError(
            f"{name}: shard format version {version!r}, but this flowprep reads version {FORMAT_VERSION}; "
            f"re-extract, or use the flowprep release that wrote it")
    if VIDEOS_GROUP not in f:
        raise ShardFormatError(f"{name}: shard has no '{VIDEOS_GROUP}' group")


def open_shard(path: str | Path) -> h5py.File:
    """Open a shard read-only after checking its header; errors name the file."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise ShardFormatError(f"{path}: shard file not found") from None
    except OSError as exc:
        raise ShardFormatError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {exc}") from None
    try:
        check_header(f)
    except ShardFormatError:
        f.close()
        raise
    return f


def stored_extract_config(f: h5py.File) -> str:
    return f.attrs[ATTR_EXTRACT_CONFIG]


# --- video level: creation (writer side) ------------------------------------------------------
def create_video(parent: h5py.Group, video_id: str, width: int, height: int,
                 rgb_codec: Codec, flow_codec: Codec, bound: float) -> h5py.Group:
    """Create an empty, growable video group; frames are appended with `append_*`."""
    group = parent.create_group(video_id)
    _create_image_dataset(group, RGB, rgb_codec, (height, width, 3))
    for name in FLOW_DIRECTIONS.values():
        ds = _create_image_dataset(group, name, flow_codec, (height, width, 2))
        ds.attrs[ATTR_BOUND] = bound
        group.create_dataset(name + MEAN_SUFFIX, shape=(0, 2), maxshape=(None, 2), dtype=np.float32, chunks=(1024, 2))
    return group


def _create_image_dataset(group: h5py.Group, name: str, codec: Codec, shape: tuple[int, ...]) -> h5py.Dataset:
    if codec.encoded:
        ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8), chunks=(1,))
    else:
        ds = group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=np.uint8,
                                  chunks=(1, *shape), **codec.hdf5_filter())
    ds.attrs[ATTR_CODEC] = str(codec)
    return ds


def _append(ds: h5py.Dataset, value: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + 1, axis=0)
    ds[n] = value


def append_rgb(group: h5py.Group, codec: Codec, frame_bgr: np.ndarray) -> None:
    if codec.encoded:
        _append(group[RGB], codec.encode(frame_bgr))
    else:
        _append(group[RGB], cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))


def append_flow(group: h5py.Group, direction: str, codec: Codec, codes: np.ndarray, mean: np.ndarray) -> None:
    """Append one quantised (H, W, 2) uint8 flow field and its subtracted mean vector."""
    name = FLOW_DIRECTIONS[direction]
    if codec.encoded:
        stacked = np.concatenate([codes[..., 0], codes[..., 1]], axis=0)  # x above y: (2H, W)
        _append(group[name], codec.encode(stacked))
    else:
        _append(group[name], codes)
    _append(group[name + MEAN_SUFFIX], mean)


# --- video level: reading ---------------------------------------------------------------------
class VideoReader:
    """Frames and flow of one video in an open shard. Indices are 0-based sampled frames."""

    def __init__(self, group: h5py.Group) -> None:
        self.group = group
        self.video_id = group.name.rsplit("/", 1)[-1]
        self.attrs = VideoAttrs.read(group)
        for name in (RGB, FLOW_FORWARD, FLOW_BACKWARD):
            if name not in group:
                raise ShardFormatError(f"{group.file.filename}: video {self.video_id!r} lacks dataset {name!r}")
        self.rgb_codec = parse_codec(group[RGB].attrs[ATTR_CODEC])
        self.flow_codec = parse_codec(group[FLOW_FORWARD].attrs[ATTR_CODEC])
        self.bound = float(group[FLOW_FORWARD].attrs[ATTR_BOUND])
        self._means: dict[str, np.ndarray] = {}

    @property
    def num_frames(self) -> int:
        return self.attrs.num_frames

    def rgb(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame."""
        stored = self.group[RGB][index]
        if self.rgb_codec.encoded:
            return cv2.cvtColor(self.rgb_codec.decode(stored, grayscale=False), cv2.COLOR_BGR2RGB)
        return stored

    def flow_codes(self, direction: str, index: int) -> np.ndarray:
        """(H, W, 2) uint8 quantised flow field `index` of 'forward' or 'backward'."""
        stored = self.group[FLOW_DIRECTIONS[direction]][index]
        if self.flow_codec.encoded:
            image = self.flow_codec.decode(stored, grayscale=True)
            h = self.attrs.height
            return np.stack([image[:h], image[h:]], axis=-1)
        return stored

    def flow_means(self, direction: str) -> np.ndarray:
        """(T-1, 2) float32 mean vectors subtracted at extraction (zeros if it was off)."""
        if direction not in self._means:
            self._means[direction] = self.group[FLOW_DIRECTIONS[direction] + MEAN_SUFFIX][()]
        return self._means[direction]

    def flow(self, direction: str, index: int, restore_mean: bool = False) -> np.ndarray:
        """(H, W, 2) float32 flow in pixels; restore_mean adds back the subtracted mean vector."""
        field = dequantize(self.flow_codes(direction, index), self.bound)
        if restore_mean:
            field += self.flow_means(direction)[index]
        return field


def iter_videos(f: h5py.File) -> Iterator[VideoReader]:
    for video_id in f[VIDEOS_GROUP]:
        yield VideoReader(f[VIDEOS_GROUP][video_id])


def video_reader(f: h5py.File, video_id: str) -> VideoReader:
    try:
        return VideoReader(f[VIDEOS_GROUP][video_id])
    except KeyError:
        raise ShardFormatError(f"{f.filename}: no video {video_id!r} in this shard") from None
