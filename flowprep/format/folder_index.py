"""An extraction folder's index.json: one `IndexEntry` per video (its shard, label, label name,
frame count and split membership), the index's one parser and writer, and the validation of
every entry read back (a folder is input: its index may come from elsewhere). The index is
derived from the shards, which are the truth (`scan_shard`); the store (flowprep.format.folder)
joins a split extraction's parts.

    OUT/index.json   {"format_version": 1, "videos": {...}}: video id -> shard, label, label name,
                     frame count, split membership (its own version, INDEX_FORMAT_VERSION)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from flowprep.format.folder_config import FolderConfig, check_shard_config
from flowprep.format.limits import MAX_FRAMES, integer_problem, label_problem
from flowprep.format.manifest import SPLIT_VALUES
from flowprep.format.names import SHARD_NAME, check_label_name, check_shard_name, check_video_id
from flowprep.format.shards import ShardFormatError, iter_videos, open_shard
from runkit.safe_paths import shown

INDEX_FORMAT_VERSION = 1  # its own version (it was the shards' until split out: old folders read as is)
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class IndexEntry:
    video_id: str
    shard: str  # path of the shard file, relative to the extraction folder
    label: int
    label_name: str
    num_frames: int
    splits: dict

    def in_split(self, split: str, subset: str) -> bool:
        """Whether the video is in `subset` ("train" or "test") of `split` (a manifest's split column)."""
        return self.splits.get(split) == subset


def index_text(entries: Iterable[IndexEntry]) -> str:
    """index.json's text for `entries` (the one place it is built)."""
    videos = {e.video_id: {k: v for k, v in asdict(e).items() if k != "video_id"} for e in entries}
    return json.dumps({"format_version": INDEX_FORMAT_VERSION, "videos": videos}, indent=1)


def parse_index(data: Any, path: Path) -> dict[str, IndexEntry]:
    """index.json's content (at `path`) read back, every entry checked (`index_entry_problem`);
    ShardFormatError, one line naming the file, for another format version or any bad entry."""
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != INDEX_FORMAT_VERSION:
        raise ShardFormatError(f"{path}: index of format version {version!r}, but this flowprep reads "
                               f"version {INDEX_FORMAT_VERSION}")
    try:
        index = {vid: IndexEntry(video_id=vid, **fields) for vid, fields in data["videos"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise ShardFormatError(f"{path}: malformed dataset index: {exc!r}") from None
    passed: set = set()
    for entry in index.values():
        problem = index_entry_problem(entry, passed)
        if problem:
            raise ShardFormatError(f"{path}: refused: {problem}")
    return index


def index_entry_problem(entry: IndexEntry, passed: set | None = None) -> str | None:
    """Why an entry read from index.json cannot be used, or None: its id follows the id rule, its
    shard is a shard's plain name in the folder, and every field has its type. `passed` holds
    shard names, label names and splits already found good: they repeat across a large index."""
    passed = set() if passed is None else passed
    problem = check_video_id(entry.video_id)
    if problem:
        return problem
    where = f"video {entry.video_id!r}"
    for problem in (label_problem(entry.label), integer_problem("num_frames", entry.num_frames, 0, MAX_FRAMES)):
        if problem:
            return f"{where}: {problem}"
    if ("shard", entry.shard) not in passed:
        problem = check_shard_name(entry.shard)
        if problem is None and not SHARD_NAME.match(entry.shard):
            problem = f"shard name {shown(entry.shard)} is not a shard's name (shard-NNNNN.h5)"
        if problem:
            return f"{where}: {problem}"
        passed.add(("shard", entry.shard))
    if ("label", entry.label_name) not in passed:
        problem = check_label_name(entry.label_name)
        if problem:
            return f"{where}: {problem}"
        passed.add(("label", entry.label_name))
    # split column names become annotation lists' file names (export-rawframes): plain names only
    splits = tuple(entry.splits.items()) if isinstance(entry.splits, dict) else None
    if splits is not None and not all(isinstance(v, str) for _, v in splits):
        splits = None  # (and so unhashable values never reach the set)
    if ("splits", splits) not in passed:
        if splits is None or not all(isinstance(k, str) and check_shard_name(k) is None and v in SPLIT_VALUES
                                     for k, v in splits):
            return (f"{where}: splits {shown(entry.splits)} is not an object of plain split names to "
                    f"{'/'.join(SPLIT_VALUES)}")
        passed.add(("splits", splits))
    return None


def scan_shard(shard_path: Path, relative_to: Path, config: FolderConfig | None = None) -> list[IndexEntry]:
    """Index entries of every video in one shard (their `shard` relative to `relative_to`); with
    `config`, the shard is refused unless it was made with it (`check_shard_config`)."""
    name = shard_path.relative_to(relative_to).as_posix()
    with open_shard(shard_path) as f:
        if config is not None:
            check_shard_config(f, shard_path, config)
        entries = [IndexEntry(v.video_id, name, v.attrs.label, v.attrs.label_name, v.attrs.num_frames,
                              v.attrs.splits_dict) for v in iter_videos(f)]
    for e in entries:
        problem = check_label_name(e.label_name)
        if problem:
            raise ShardFormatError(f"{shard_path}: video {e.video_id!r}: {problem}")
    return entries
