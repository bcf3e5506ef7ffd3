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
        <each of the three>_offsets            only for encoded codecs (below)
        flow_forward_mean   (T-1, 2) float32   mean (x, y) subtracted from each forward field
        flow_backward_mean  (T-1, 2) float32

Images of an encoded codec (jpeg, png) are image files, concatenated in one uint8 dataset, item
i being bytes offsets[i]:offsets[i+1] of it (`<name>_offsets`, int64, N+1 entries): an RGB
frame is a colour image file; a flow field is one grayscale image of height 2H holding the
quantised x field above the y field. (One slice read for a run of items: a stack of L flow
fields costs one read, where variable-length HDF5 data costs a heap lookup per item.) Raw codecs
store uint8 arrays (T, H, W, 3) in RGB order and (T-1, 2, H, W) for flow (the x plane, then the y
plane: the same planar layout as the encoded image), with the codec's HDF5 filter.

Storage: while a video is written (a staging file) its datasets grow, so they are chunked: raw
ones one item per chunk, encoded ones ENCODED_CHUNK bytes per chunk. When videos are packed into
a shard their size is final, and datasets without a filter (every encoded codec, and `raw:none`)
are stored contiguous, so a run of items is one read and no chunk is half empty; filtered raw
datasets keep one item per chunk, so one frame (or one flow field) is one chunk read. Either
way a stack of consecutive fields is one h5py call.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import h5py
import numpy as np

from flowprep.format.codecs import Codec, parse_codec
from flowprep.format.limits import MAX_FRAMES, MAX_SIDE, integer_problem, label_problem
from flowprep.format.names import check_video_id
from flowprep.format.quantize import dequantize
from runkit.files import kind_of, parse_json
from runkit.safe_paths import shown

FORMAT_NAME = "flowprep-shard"
SHARD_FORMAT_VERSION = 1  # the shard files' own version; config.json and index.json have theirs (format/folder_config.py, format/folder_index.py)

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
OFFSETS_SUFFIX = "_offsets"
ENCODED_CHUNK = 1 << 16  # bytes of encoded images per chunk: a few frames, a stack in one or two reads

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
    # the decoder's complaint about a video kept with `extract --allow-decode-errors` ('': none);
    # optional: shards written before it read as ''
    decode_warning: str = ""

    @property
    def splits_dict(self) -> dict[str, str]:
        return parse_json(self.splits, dict)

    @property
    def num_pairs(self) -> int:
        return self.num_frames - 1

    def write(self, group: h5py.Group) -> None:
        for key, value in asdict(self).items():
            group.attrs[key] = value

    @classmethod
    def read(cls, group: h5py.Group) -> "VideoAttrs":
        return cls(**{f.name: cls.read_field(group, f.name) for f in fields(cls)
                      if f.name in group.attrs or f.default is MISSING})

    @classmethod
    def read_field(cls, group: h5py.Group, name: str):
        """One declared attribute of a video group, as a plain value (for readers that need one
        attribute of many videos, or of a video whose other attributes may be damaged)."""
        if name not in cls.__dataclass_fields__:
            raise AttributeError(f"{name!r} is not a declared video attribute")
        if name not in group.attrs:
            raise ShardFormatError(f"{group.file.filename}: video {group.name} lacks attribute {name!r}")
        raw = group.attrs[name]
        return raw.decode() if isinstance(raw, bytes) else raw.item() if hasattr(raw, "item") else raw


def video_num_frames(group: h5py.Group) -> int:
    """A video group's sampled frames (its declared `num_frames`), without opening its datasets."""
    return int(VideoAttrs.read_field(group, "num_frames"))


def video_size(group: h5py.Group) -> tuple[int, int]:
    """A video group's stored (width, height), without opening its datasets."""
    return int(VideoAttrs.read_field(group, "width")), int(VideoAttrs.read_field(group, "height"))


def iter_video_groups(f: h5py.File) -> Iterator[h5py.Group]:
    """Each video group of an open shard (checked like `video_group`), none of its datasets opened."""
    for video_id in member(f, VIDEOS_GROUP):
        yield video_group(f, video_id)


# --- file level -------------------------------------------------------------------------------
def write_header(f: h5py.File, extract_config_json: str, created_by: str) -> None:
    f.attrs[ATTR_FORMAT] = FORMAT_NAME
    f.attrs[ATTR_FORMAT_VERSION] = SHARD_FORMAT_VERSION
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
    version = version.item() if hasattr(version, "item") else version  # numpy scalar: name it as a plain number
    if version != SHARD_FORMAT_VERSION:
        raise ShardFormatError(
            f"{name}: shard format version {version!r}, but this flowprep reads version {SHARD_FORMAT_VERSION}; "
            f"re-extract, or use the flowprep release that wrote it")
    if VIDEOS_GROUP not in f:
        raise ShardFormatError(f"{name}: shard has no '{VIDEOS_GROUP}' group")
    member(f, VIDEOS_GROUP)


def member(parent: h5py.Group, name: str) -> h5py.Group | h5py.Dataset:
    """parent[name], refusing a soft or external link: a shard holds its data itself, and a link
    would lead a reader to another object or out of the file (to any file on the machine)."""
    link = parent.get(name, getlink=True)
    if link is None:
        raise KeyError(name)
    if not isinstance(link, h5py.HardLink):
        kind = "an external link (to another file)" if isinstance(link, h5py.ExternalLink) else "a soft link"
        where = f"{parent.name.rstrip('/')}/{name}"
        raise ShardFormatError(f"{parent.file.filename}: {where!r} is {kind}; links in a shard are never followed")
    return parent[name]


def regular_file_problem(path: Path) -> str | None:
    """Why `path` cannot be opened as a shard without risk, or None: only a regular file (or a
    symlink to one) is opened, so a FIFO cannot hang a reader and a device or folder is refused."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # the opener says "not found" in its own words
    except OSError as exc:
        return f"cannot be examined: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return f"is {kind_of(mode)}, not a regular file; a shard is a regular HDF5 file"


def open_shard(path: str | Path) -> h5py.File:
    """Open a shard read-only after checking its header; errors name the file. Only a regular
    file is opened: h5py would wait forever on a FIFO."""
    problem = regular_file_problem(Path(path))
    if problem:
        raise ShardFormatError(f"{path}: {problem}")
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise ShardFormatError(f"{path}: shard file not found") from None
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE) or "errno = 24," in str(exc) or "errno = 23," in str(exc):
            raise OSError(errno.EMFILE, f"cannot open {path}: too many open files (this process may have "
                                        f"{_open_file_limit()}; raise it with `ulimit -n`)") from None
        raise ShardFormatError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {exc}") from None
    try:
        check_header(f)
    except ShardFormatError:
        f.close()
        raise
    return f


def _open_file_limit() -> str:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited open files" if soft == resource.RLIM_INFINITY else f"{soft} open files at most"


def stored_extract_config(f: h5py.File) -> str:
    return f.attrs[ATTR_EXTRACT_CONFIG]


# --- video level: creation (writer side) ------------------------------------------------------
def create_video(parent: h5py.Group, video_id: str, width: int, height: int,
                 rgb_codec: Codec, flow_codec: Codec, bound: float) -> h5py.Group:
    """Create an empty, growable video group; frames are appended with `append_*`."""
    group = parent.create_group(video_id)
    _create_image_dataset(group, RGB, rgb_codec, (height, width, 3))
    for name in FLOW_DIRECTIONS.values():
        ds = _create_image_dataset(group, name, flow_codec, (2, height, width))
        ds.attrs[ATTR_BOUND] = bound
        group.create_dataset(name + MEAN_SUFFIX, shape=(0, 2), maxshape=(None, 2), dtype=np.float32, chunks=(1024, 2))
    return group


def _create_image_dataset(group: h5py.Group, name: str, codec: Codec, shape: tuple[int, ...]) -> h5py.Dataset:
    if codec.encoded:
        ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(ENCODED_CHUNK,))
        group.create_dataset(name + OFFSETS_SUFFIX, data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,))
    else:
        ds = group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=np.uint8,
                                  chunks=(1, *shape), **codec.hdf5_filter())
    ds.attrs[ATTR_CODEC] = str(codec)
    return ds


def _extend(ds: h5py.Dataset, rows: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + len(rows), axis=0)
    ds[n:] = rows


def stored_codec(ds: h5py.Dataset) -> Codec:
    """The codec an image dataset's attribute names: what the file says, parsed here (CodecError
    naming a bad name)."""
    return parse_codec(ds.attrs[ATTR_CODEC])


def is_encoded(ds: h5py.Dataset) -> bool:
    return stored_codec(ds).encoded


def item_count(group: h5py.Group, name: str) -> int:
    """Images stored in stream `name` of a video group, whatever the codec."""
    if is_encoded(group[name]):
        return group[name + OFFSETS_SUFFIX].shape[0] - 1
    return group[name].shape[0]


def item_shape(name: str, height: int, width: int) -> tuple[int, ...]:
    """The declared shape of one decoded image of stream `name`: RGB (H, W, 3), flow (2, H, W)."""
    return (height, width, 3) if name == RGB else (2, height, width)


def stored_bytes(group: h5py.Group, name: str) -> int:
    """Bytes on disk of stream `name` of a video group (with an encoded codec's offsets)."""
    size = group[name].id.get_storage_size()
    if is_encoded(group[name]):
        size += group[name + OFFSETS_SUFFIX].id.get_storage_size()
    return int(size)


def stored_flow_bytes(group: h5py.Group) -> int:
    """Bytes on disk of a video group's flow: both directions, their offsets and their mean vectors."""
    return sum(stored_bytes(group, name) + int(group[name + MEAN_SUFFIX].id.get_storage_size())
               for name in FLOW_DIRECTIONS.values())


def encode_rgb(codec: Codec, frame_bgr: np.ndarray) -> np.ndarray:
    """What is stored of one (H, W, 3) BGR frame: its image file, or the RGB array."""
    return codec.encode(frame_bgr) if codec.encoded else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


def encode_flow(codec: Codec, planes: np.ndarray) -> np.ndarray:
    """What is stored of one quantised field as uint8 planes (2, H, W): its image file (x above
    y, (2H, W)), or the planes."""
    return codec.encode(planes.reshape(-1, planes.shape[-1])) if codec.encoded else planes


def decode_rgb(codec: Codec, stored: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of what `encode_rgb` stored: the inverse up to the codec's loss, so
    encoding then decoding gives exactly the frame a reader of the shard sees."""
    return cv2.cvtColor(codec.decode(stored, grayscale=False), cv2.COLOR_BGR2RGB) if codec.encoded else stored


def decode_flow(codec: Codec, stored: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 planes (2, H, W) of what `encode_flow` stored (the inverse up to the codec's loss)."""
    return codec.decode(stored, grayscale=True).reshape(2, height, width) if codec.encoded else stored


def append_items(group: h5py.Group, name: str, codec: Codec, items: list[np.ndarray]) -> None:
    """Append stored items (from `encode_rgb` / `encode_flow`) to stream `name`, in one write."""
    if not items:
        return
    if codec.encoded:
        data, offsets = group[name], group[name + OFFSETS_SUFFIX]
        end = data.shape[0]
        _extend(data, np.concatenate(items))
        _extend(offsets, end + np.cumsum([item.size for item in items], dtype=np.int64))
    else:
        _extend(group[name], np.stack(items))


def append_means(group: h5py.Group, direction: str, means: list[np.ndarray]) -> None:
    """Append the (x, y) mean vectors subtracted from fields of `direction`."""
    if means:
        _extend(group[FLOW_DIRECTIONS[direction] + MEAN_SUFFIX], np.stack(means).astype(np.float32))


# --- video level: reading ---------------------------------------------------------------------
def stored_number_problems(group: h5py.Group, attrs: VideoAttrs) -> list[str]:
    """Why the numbers a video group states cannot be trusted, one line each (none: []), checked
    before any of them sizes an allocation or an index: its label, frame count and size within
    limits, each dataset holding as many items as the frame count says, raw items of the stated
    size, bounds positive. Reads shapes and attributes only, never the data."""
    problems = [p for p in (label_problem(attrs.label), integer_problem("num_frames", attrs.num_frames, 1, MAX_FRAMES),
                            integer_problem("width", attrs.width, 1, MAX_SIDE),
                            integer_problem("height", attrs.height, 1, MAX_SIDE)) if p]
    if problems:
        return problems  # the checks below take these numbers as given
    t, h, w = attrs.num_frames, attrs.height, attrs.width
    expected = {RGB: t, **{name: t - 1 for name in FLOW_DIRECTIONS.values()},
                **{name + MEAN_SUFFIX: t - 1 for name in FLOW_DIRECTIONS.values()}}
    for name, n in expected.items():
        if name not in group:
            problems.append(f"lacks dataset {name!r}")
            continue
        try:
            count = group[name].shape[0] if name.endswith(MEAN_SUFFIX) else item_count(group, name)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            problems.append(f"{name} is unreadable: {exc!r}")
            continue
        if count != n:
            problems.append(f"{name} holds {count} entries, expected {n} for {t} frames (incomplete)")
    for name in FLOW_DIRECTIONS.values():
        if name + MEAN_SUFFIX in group and group[name + MEAN_SUFFIX].shape[1:] != (2,):
            problems.append(f"{name + MEAN_SUFFIX} has shape {group[name + MEAN_SUFFIX].shape}, expected (T-1, 2)")
        bound = group[name].attrs.get(ATTR_BOUND) if name in group else 1.0
        bound = bound.item() if isinstance(bound, np.generic) else bound  # named as a plain number
        if not isinstance(bound, (int, float)) or not np.isfinite(bound) or not bound > 0:
            problems.append(f"{name} has bound {shown(bound)}; expected a positive number")
    for name in (RGB, *FLOW_DIRECTIONS.values()):
        if name in group and not is_encoded(group[name]) and group[name].shape[1:] != item_shape(name, h, w):
            problems.append(f"{name} stores {group[name].shape[1:]} arrays, expected {item_shape(name, h, w)}")
    return problems


def offsets_problem(offsets: np.ndarray, data_length: int) -> str | None:
    """Why an encoded stream's offsets cannot cut its data into images, or None: they start at 0
    or above, rise strictly (every image at least one byte: equal offsets made an empty image
    that OpenCV's decoder refuses with a traceback) and end within the data."""
    if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
        return f"offsets of shape {offsets.shape} and type {offsets.dtype}, expected N+1 integers"
    if offsets[0] < 0 or offsets[-1] > data_length:
        return f"offsets run from {offsets[0]} to {offsets[-1]}, outside its {data_length} bytes"
    steps = np.diff(offsets)
    if len(steps) and steps.min() <= 0:
        i = int(np.argmax(steps <= 0))
        return f"offsets {i} and {i + 1} are {offsets[i]} and {offsets[i + 1]}: an image of {steps[i]} bytes"
    return None


class VideoReader:
    """Frames and flow of one video in an open shard. Indices are 0-based sampled frames.

    Dataset handles are looked up once: the trainer reads through this class in its hot loop,
    where an h5py lookup per read would cost more than the read.
    """

    def __init__(self, group: h5py.Group) -> None:
        self.group = group
        self.video_id = group.name.rsplit("/", 1)[-1]
        for name in group:  # every stream and its offsets and means: data of this file, not a link
            member(group, name)
        self.attrs = VideoAttrs.read(group)
        for name in (RGB, FLOW_FORWARD, FLOW_BACKWARD):
            if name not in group:
                raise ShardFormatError(f"{group.file.filename}: video {self.video_id!r} lacks dataset {name!r}")
        self._rgb = group[RGB]
        self._flow = {direction: group[name] for direction, name in FLOW_DIRECTIONS.items()}
        self.rgb_codec = stored_codec(self._rgb)
        self.flow_codec = stored_codec(self._flow["forward"])
        problems = stored_number_problems(group, self.attrs)
        if problems:
            raise ShardFormatError(f"{group.file.filename}: video {self.video_id!r}: {problems[0]}")
        self.bound = float(self._flow["forward"].attrs[ATTR_BOUND])
        self._means: dict[str, np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}  # encoded streams' offsets, read on first use

    @property
    def num_frames(self) -> int:
        return self.attrs.num_frames

    @property
    def height(self) -> int:
        return self.attrs.height

    @property
    def width(self) -> int:
        return self.attrs.width

    def _encoded(self, ds: h5py.Dataset, lo: int, hi: int) -> list[np.ndarray]:
        """The image files of items lo..hi-1 of an encoded stream, read in one slice."""
        offsets = self._offsets.get(ds.name)
        if offsets is None:
            offsets = self.group[ds.name + OFFSETS_SUFFIX][()]  # its length checked: the stream's item count
            problem = offsets_problem(offsets, ds.shape[0])
            if problem:
                raise ShardFormatError(f"{self.group.file.filename}: video {self.video_id!r}: {ds.name}: {problem}")
            self._offsets[ds.name] = offsets
        if not 0 <= lo < hi <= len(offsets) - 1:
            raise IndexError(f"items {lo}..{hi - 1} of {ds.name}, which holds {len(offsets) - 1}")
        block = ds[offsets[lo]:offsets[hi]]
        return [block[offsets[i] - offsets[lo]:offsets[i + 1] - offsets[lo]] for i in range(lo, hi)]

    def stored_rgb(self, index: int) -> np.ndarray:
        """Frame `index` as stored: the image file's bytes (encoded codecs) or the RGB array."""
        return self._encoded(self._rgb, index, index + 1)[0] if self.rgb_codec.encoded else self._rgb[index]

    def rgb(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame."""
        return decode_rgb(self.rgb_codec, self.stored_rgb(index))

    def stored_flow(self, direction: str, lo: int, hi: int) -> list[np.ndarray]:
        """Fields lo..hi-1 of 'forward' or 'backward' as stored, read in one slice: their image
        files (encoded codecs; each x above y, (2H, W) grey) for a decoder of the caller's own
        (twostream's device decoding), or the (2, H, W) planes (raw codecs)."""
        ds = self._flow[direction]
        return self._encoded(ds, lo, hi) if self.flow_codec.encoded else list(ds[lo:hi])

    def flow_planes(self, fields: Sequence[tuple[str, int]], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Quantised flow of several fields as uint8 planes (2L, h, w): x0, y0, x1, y1, ...

        `fields` lists (direction, index) pairs; `box` = (top, left, height, width) cuts every
        plane (default: whole). The fields of each direction are read with one h5py call over
        their index range, and a raw codec reads only the box: this is the temporal stream's
        input, read for every training sample.
        """
        top, left, h, w = box if box is not None else (0, 0, self.height, self.width)
        out = np.empty((len(fields), 2, h, w), np.uint8)
        for direction in {d for d, _ in fields}:
            slots = [(k, i) for k, (d, i) in enumerate(fields) if d == direction]
            lo = min(i for _, i in slots)
            hi = max(i for _, i in slots) + 1
            ds = self._flow[direction]
            if self.flow_codec.encoded:
                stored = self._encoded(ds, lo, hi)
                for k, i in slots:
                    planes = decode_flow(self.flow_codec, stored[i - lo], self.height, self.width)
                    out[k] = planes[:, top:top + h, left:left + w]
            else:
                block = ds[lo:hi, :, top:top + h, left:left + w]
                for k, i in slots:
                    out[k] = block[i - lo]
        return out.reshape(2 * len(fields), h, w)

    def flow_codes(self, direction: str, index: int) -> np.ndarray:
        """(H, W, 2) uint8 quantised flow field `index` of 'forward' or 'backward'."""
        return np.ascontiguousarray(self.flow_planes([(direction, index)]).transpose(1, 2, 0))

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


def check_group_name(f: h5py.File, video_id: str) -> None:
    """ShardFormatError naming the file unless a video group's name follows the id rule (it
    becomes a frame folder's name and is printed)."""
    problem = check_video_id(video_id)
    if problem:
        raise ShardFormatError(f"{f.filename}: a video group's name is refused: {problem}")


def video_group(f: h5py.File, video_id: str) -> h5py.Group:
    """The group of video `video_id`, after checking its name and that it is no link."""
    check_group_name(f, video_id)
    try:
        return member(member(f, VIDEOS_GROUP), video_id)
    except KeyError:
        raise ShardFormatError(f"{f.filename}: no video {video_id!r} in this shard") from None


def iter_videos(f: h5py.File) -> Iterator[VideoReader]:
    for video_id in member(f, VIDEOS_GROUP):
        yield VideoReader(video_group(f, video_id))


def video_reader(f: h5py.File, video_id: str) -> VideoReader:
    group = video_group(f, video_id)
    try:
        return VideoReader(group)
    except KeyError:
        raise ShardFormatError(f"{f.filename}: no video {video_id!r} in this shard") from None
