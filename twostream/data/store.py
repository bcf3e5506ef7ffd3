"""Shard files opened lazily, once per process, and a bounded number at a time.

An h5py handle cannot cross a fork or be pickled: a DataLoader worker that used its parent's
handle would read garbage or crash. So handles live in a table keyed by process id; each worker
opens its own on first use, and pickling (spawn start method) carries only the folder.

Kinetics in 1 GB shards is over a thousand files and 240,000 videos: a worker that kept every
shard it touched open would meet the open-file limit (1,024 by default), and one that kept a
reader for every video it read would grow with the dataset. So each process keeps at most
`max_open` files and `max_readers` video readers, the least recently used going first (a closed
file takes its videos' readers with it). Training reads videos in random order, so a shard is
reopened now and then; opening one costs about a millisecond, a sample several.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import h5py

from flowprep.format.folder_index import IndexEntry
from flowprep.format.shards import VideoReader, open_shard, video_reader

MAX_OPEN_SHARDS = 64
MAX_READERS = 1024


class _Handles:
    """One process's open shards and video readers, both least-recently-used first."""

    def __init__(self) -> None:
        self.files: OrderedDict[str, h5py.File] = OrderedDict()
        self.readers: OrderedDict[str, tuple[str, VideoReader]] = OrderedDict()  # video id -> (shard, reader)


class ShardStore:
    def __init__(self, root: str | Path, max_open: int = MAX_OPEN_SHARDS, max_readers: int = MAX_READERS) -> None:
        self.root = Path(root)
        self.max_open, self.max_readers = max_open, max_readers
        # pid -> its handles. A child never touches, closes or frees its parent's entry: that
        # would act on a handle it does not own.
        self._per_pid: dict[int, _Handles] = {}

    def video(self, entry: IndexEntry) -> VideoReader:
        handles = self._per_pid.setdefault(os.getpid(), _Handles())
        cached = handles.readers.get(entry.video_id)
        if cached is not None:
            handles.readers.move_to_end(entry.video_id)
            handles.files.move_to_end(cached[0])
            return cached[1]
        reader = video_reader(self._file(handles, entry.shard), entry.video_id)
        handles.readers[entry.video_id] = (entry.shard, reader)
        if len(handles.readers) > self.max_readers:
            handles.readers.popitem(last=False)
        return reader

    def _file(self, handles: _Handles, shard: str) -> h5py.File:
        f = handles.files.get(shard)
        if f is not None:
            handles.files.move_to_end(shard)
            return f
        while len(handles.files) >= self.max_open:
            oldest, old = handles.files.popitem(last=False)
            for video_id in [v for v, (s, _) in handles.readers.items() if s == oldest]:
                del handles.readers[video_id]
            old.close()
        f = handles.files[shard] = open_shard(self.root / shard)
        return f

    def open_files(self) -> int:
        """Shard files this process holds open."""
        handles = self._per_pid.get(os.getpid())
        return len(handles.files) if handles else 0

    def close(self) -> None:
        """Close this process's handles."""
        handles = self._per_pid.pop(os.getpid(), None)
        if handles is not None:
            for f in handles.files.values():
                f.close()

    def __getstate__(self) -> dict:
        return {"root": self.root, "max_open": self.max_open, "max_readers": self.max_readers, "_per_pid": {}}
