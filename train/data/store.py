"""Shard files opened lazily, once per process.

An h5py handle cannot cross a fork or be pickled: a DataLoader worker that used its parent's
handle would read garbage or crash. So handles live in a table keyed by process id; each worker
opens its own on first use, and pickling (spawn start method) carries only the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py

from flowprep.format.folder import IndexEntry
from flowprep.format.shards import VideoReader, open_shard, video_reader


class ShardStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        # pid -> (shard name -> open file, video id -> reader). A child never touches, closes or
        # frees its parent's entry: that would act on a handle it does not own.
        self._per_pid: dict[int, tuple[dict[str, h5py.File], dict[str, VideoReader]]] = {}

    def video(self, entry: IndexEntry) -> VideoReader:
        files, readers = self._per_pid.setdefault(os.getpid(), ({}, {}))
        reader = readers.get(entry.video_id)
        if reader is None:
            f = files.get(entry.shard)
            if f is None:
                f = files[entry.shard] = open_shard(self.root / entry.shard)
            reader = readers[entry.video_id] = video_reader(f, entry.video_id)
        return reader

    def close(self) -> None:
        """Close this process's handles."""
        files, _ = self._per_pid.pop(os.getpid(), ({}, {}))
        for f in files.values():
            f.close()

    def __getstate__(self) -> dict:
        return {"root": self.root, "_per_pid": {}}
