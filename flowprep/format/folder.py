"""The extraction folder's bookkeeping files: the config, the dataset index and the failures file.

    <out>/config.json     the ExtractConfig the folder was made with (and the shard format version)
    <out>/index.json      video id -> shard, label, label name, frame count, split membership
    <out>/failures.jsonl  one JSON object per video that could not be extracted: id, path, reason
    <out>/shard-NNNNN.h5  the shards (shard_format.py)

The index is derived from the shards, which are the truth: it is rebuilt from them whenever it
may be stale (a resumed run), and always written atomically.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from flowprep.format.shards import FORMAT_VERSION, ShardFormatError, iter_videos, open_shard

CONFIG_FILE = "config.json"
INDEX_FILE = "index.json"
FAILURES_FILE = "failures.jsonl"


@dataclass(frozen=True)
class IndexEntry:
    video_id: str
    shard: str  # file name within the extraction folder
    label: int
    label_name: str
    num_frames: int
    splits: dict

    def in_split(self, split: str, part: str) -> bool:
        return self.splits.get(split) == part


@dataclass(frozen=True)
class Failure:
    video_id: str
    path: str
    reason: str


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json_file(path: Path, error: type[Exception], missing: str, what: str) -> Any:
    """The JSON document in `path`, or `error` with a one-line message naming the file: `missing`
    when there is no such file, "unreadable <what>: ..." when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {what}: {exc}") from None


# --- index ------------------------------------------------------------------------------------
def scan_shard(shard_path: Path) -> list[IndexEntry]:
    """Index entries of every video in one shard."""
    with open_shard(shard_path) as f:
        return [
            IndexEntry(v.video_id, shard_path.name, v.attrs.label, v.attrs.label_name, v.attrs.num_frames, v.attrs.splits_dict)
            for v in iter_videos(f)
        ]


def write_index(out_dir: Path, entries: Iterable[IndexEntry]) -> None:
    videos = {e.video_id: {k: v for k, v in asdict(e).items() if k != "video_id"} for e in entries}
    write_text_atomic(out_dir / INDEX_FILE, json.dumps({"format_version": FORMAT_VERSION, "videos": videos}, indent=1))


def read_index(out_dir: Path) -> dict[str, IndexEntry]:
    path = Path(out_dir) / INDEX_FILE
    data = read_json_file(path, ShardFormatError, f"no dataset index; is {out_dir} a flowprep extraction folder?",
                          "dataset index")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ShardFormatError(f"{path}: index of format version {version!r}, but this flowprep reads version {FORMAT_VERSION}")
    return {vid: IndexEntry(video_id=vid, **fields) for vid, fields in data["videos"].items()}


# --- failures ---------------------------------------------------------------------------------
def write_failures(out_dir: Path, failures: Iterable[Failure]) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    lines = [json.dumps({**asdict(f), "time": stamp}) for f in failures]
    write_text_atomic(out_dir / FAILURES_FILE, "".join(line + "\n" for line in lines))


def read_failures(out_dir: Path) -> list[Failure]:
    path = Path(out_dir) / FAILURES_FILE
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Failure(r["video_id"], r["path"], r["reason"]) for r in records]
