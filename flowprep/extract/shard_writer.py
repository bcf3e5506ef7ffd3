"""Writing shards atomically: one staging file per video, then packing staged videos into shards.

A worker streams one video into its own staging file (`staging/<video_id>.h5.part`, renamed to
`.h5` once complete), one frame pair at a time, so a ten-minute video never has its flow in
memory. Only the main process packs finished staging files into a shard: it writes
`shard-NNNNN.h5.part`, copies the video groups in (the stored bytes; nothing is re-encoded), and
renames it. Growable datasets needed chunks while they grew; in the shard their final size is
known, so unfiltered ones are stored contiguous: a run of encoded images is then one read, and
no chunk is left half empty. So no two processes ever write one file, and a file with a final
name is always complete: a kill at any moment leaves only `.part` files to delete.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from flowprep import __version__
from flowprep.extract import hdf5_space
from flowprep.format.codecs import Codec
from flowprep.format.folder import check_staged_file, staging_path, writing_path
from flowprep.format.folder_config import FolderConfig
from flowprep.format.shards import (
    ENCODED_CHUNK,
    FLOW_DIRECTIONS,
    RGB,
    VIDEOS_GROUP,
    VideoAttrs,
    append_items,
    append_means,
    create_video,
    encode_flow,
    encode_rgb,
    write_header,
)
from runkit.faults import fault_point
from runkit.files import remove_file

CREATED_BY = f"flowprep {__version__}"


class StagedVideo:
    """A single-video shard written frame by frame; visible under its final name only when committed.

    Frames and fields are encoded as they come and written in batches of FLUSH_FRAMES: one h5py
    write per stream per batch, not several per frame, while memory stays bounded.
    `stored_config` is the run's config as every shard stores it: its JSON (ExtractConfig.to_json,
    ImportConfig.to_json), made where a shard is written.
    """

    FLUSH_FRAMES = 32

    def __init__(self, staging_dir: Path, video_id: str, width: int, height: int,
                 rgb_codec: Codec, flow_codec: Codec, bound: float, stored_config: str) -> None:
        self.final_path = staging_path(staging_dir, video_id)
        self.part_path = writing_path(self.final_path)
        self.rgb_codec, self.flow_codec = rgb_codec, flow_codec
        self.frames = 0
        self.pairs = 0
        self._items: dict[str, list[np.ndarray]] = {RGB: [], **{name: [] for name in FLOW_DIRECTIONS.values()}}
        self._means: dict[str, list[np.ndarray]] = {direction: [] for direction in FLOW_DIRECTIONS}
        self._file = _create_exclusively(self.part_path)
        try:
            hdf5_space.reserve(self._file, self.part_path, 0)
            write_header(self._file, stored_config, CREATED_BY)
            self._group = create_video(self._file[VIDEOS_GROUP], video_id, width, height, rgb_codec, flow_codec,
                                       bound)
        except BaseException:
            self.discard()
            raise

    def add_frame(self, frame_bgr: np.ndarray) -> None:
        self._items[RGB].append(encode_rgb(self.rgb_codec, frame_bgr))
        self.frames += 1
        if len(self._items[RGB]) >= self.FLUSH_FRAMES:
            self._flush()

    def add_flow_planes(self, direction: str, planes: np.ndarray, mean: np.ndarray) -> None:
        """One quantised field as uint8 planes (2, H, W), and the mean vector subtracted from it."""
        self._items[FLOW_DIRECTIONS[direction]].append(encode_flow(self.flow_codec, planes))
        self._means[direction].append(mean)
        if direction == "forward":
            self.pairs += 1

    def add_flow(self, direction: str, codes: np.ndarray, mean: np.ndarray) -> None:
        """One quantised field as (H, W, 2) uint8 codes, flowprep's interleaved layout."""
        self.add_flow_planes(direction, np.ascontiguousarray(codes.transpose(2, 0, 1)), mean)

    def _flush(self) -> None:
        fault_point("staging-flush")
        pending = sum(item.nbytes for items in self._items.values() for item in items)
        # a stream's last chunk may be new too: encoded streams grow in chunks of ENCODED_CHUNK bytes
        hdf5_space.reserve(self._file, self.part_path, pending + len(self._items) * ENCODED_CHUNK)
        for name, items in self._items.items():
            append_items(self._group, name, self.rgb_codec if name == RGB else self.flow_codec, items)
            items.clear()
        for direction, means in self._means.items():
            append_means(self._group, direction, means)
            means.clear()

    def commit(self, attrs: VideoAttrs) -> Path:
        self._flush()
        attrs.write(self._group)
        self._file.close()
        hdf5_space.release(self.part_path)
        fault_point("staging-commit")
        os.replace(self.part_path, self.final_path)
        return self.final_path

    def discard(self) -> None:
        hdf5_space.abandon(self._file)  # after a failed write, a plain close can crash HDF5
        remove_file(self.part_path)

    def __enter__(self) -> "StagedVideo":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


def pack_shard(staged: Iterable[Path], shard_path: Path, stored_config: str,
               folder_config: FolderConfig | None = None) -> list[str]:
    """Copy the video groups of staged files into a new shard, atomically; return the video ids.
    With `folder_config` (the folder's config.json), each staged file is first checked to be the
    folder's own (`check_staged_file`): made with that config, holding the video its name says.

    The staging files are left in place: the caller deletes them after the shard is visible, so
    a kill in between leaves duplicates that resume recognises (video already in a shard), never
    a lost video.
    """
    part = writing_path(shard_path)
    video_ids = []
    staged = list(staged)
    out = _create_exclusively(part)
    try:
        hdf5_space.reserve(out, part, sum(path.stat().st_size for path in staged))  # a copy of them: no larger
        write_header(out, stored_config, CREATED_BY)
        videos = out[VIDEOS_GROUP]
        for path in staged:
            with h5py.File(path, "r") as src:
                if folder_config is not None:
                    check_staged_file(src, path, folder_config)
                for video_id, group in src[VIDEOS_GROUP].items():
                    _copy_video(group, videos.create_group(video_id))
                    video_ids.append(video_id)
                    fault_point("pack-copy")
        out.close()
        hdf5_space.release(part)
    except BaseException:
        hdf5_space.abandon(out)  # after a failed write, a plain close can crash HDF5 (a no-op if closed)
        remove_file(part)
        raise
    _fsync(part)
    fault_point("pack-rename")
    os.replace(part, shard_path)
    return video_ids


COPY_BLOCK_BYTES = 64 << 20  # memory bound of copying one dataset


def _copy_video(src: h5py.Group, dst: h5py.Group) -> None:
    dst.attrs.update(src.attrs)
    for name, ds in src.items():
        if ds.compression is not None:  # a filter needs chunks: copy them as they are
            src.copy(ds, dst, name=name)
            continue
        out = dst.create_dataset(name, shape=ds.shape, dtype=ds.dtype)  # contiguous
        out.attrs.update(ds.attrs)
        row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
        step = max(1, COPY_BLOCK_BYTES // row_bytes)
        for start in range(0, ds.shape[0], step):
            out[start:start + step] = ds[start:start + step]


def _create_exclusively(path: Path) -> h5py.File:
    """A new HDF5 file at `path`: whatever is there goes first (a leftover, or a link planted in
    its place: the link itself, never its target), then HDF5 creates it with O_EXCL, which never
    follows a link, so nothing outside the folder is written even if one reappears."""
    remove_file(path)
    return h5py.File(path, "x")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
