"""`flowprep inspect`: what an extraction folder or a shard holds, as a dict (for --json) or text.

The shards are the truth (as for resume): videos, frames and classes are counted from their
attributes (nothing is decoded), bytes from the files, and the index is only compared against
them. One video's report reads its data: bytes per stream and flow statistics.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_config import EXTRACTION_CONFIG_FILE
from flowprep.format.quantize import LEVELS
from flowprep.format.shards import (
    FLOW_DIRECTIONS,
    RGB,
    VIDEOS_GROUP,
    ShardFormatError,
    VideoReader,
    iter_videos,
    open_shard,
    stored_bytes,
    stored_extract_config,
    stored_flow_bytes,
    video_reader,
)
from runkit.files import parse_json

MAX_LISTED = 10  # classes and failures shown in the text summary (--json has them all)


def storage_bytes(group: h5py.Group) -> dict[str, int]:
    """Bytes of one video's RGB frames and of its flow (both directions, with their means)."""
    return {"rgb": stored_bytes(group, RGB), "flow": stored_flow_bytes(group)}


def _stored_config(text: str) -> dict:
    try:
        return parse_json(text)
    except ValueError:
        return {"unparsed": text}


def summarize_shard(path: Path) -> dict:
    """Counts of one shard: videos, frames, classes, splits (attributes only: nothing is decoded)."""
    with open_shard(path) as f:
        config = _stored_config(stored_extract_config(f))
        videos, frames = 0, 0
        classes: Counter = Counter()
        splits: dict[str, Counter] = {}
        for video in iter_videos(f):
            videos += 1
            frames += video.num_frames
            classes[video.attrs.label_name] += 1
            for column, part in video.attrs.splits_dict.items():
                splits.setdefault(column, Counter())[part] += 1
    return {"name": path.name, "file_bytes": path.stat().st_size, "videos": videos, "frames": frames,
            "classes": classes, "splits": splits, "config": config}


def _combine(shards: list[dict]) -> dict:
    classes: Counter = Counter()
    splits: dict[str, Counter] = {}
    for s in shards:
        classes.update(s["classes"])
        for column, counts in s["splits"].items():
            splits.setdefault(column, Counter()).update(counts)
    videos = sum(s["videos"] for s in shards)
    frames = sum(s["frames"] for s in shards)
    pairs = frames - videos  # T-1 flow fields per direction and video
    on_disk = sum(s["file_bytes"] for s in shards)
    return {
        "videos": videos, "frames": frames, "flow_fields_per_direction": pairs,
        "classes": dict(sorted(classes.items())),
        "splits": {c: {p: counts.get(p, 0) for p in ("train", "test", "unused")} for c, counts in sorted(splits.items())},
        # a frame's share of the shards: its RGB image, and the forward and backward flow of its pair
        "bytes": {"on_disk": on_disk, "per_frame": on_disk / frames if frames else 0.0,
                  "per_video": on_disk / videos if videos else 0.0},
        "shards": [{k: s[k] for k in ("name", "file_bytes", "videos", "frames")} for s in shards],
    }


def inspect_path(path: str | Path) -> dict:
    """Summary of an extraction folder or of one shard file."""
    path = Path(path)
    if not path.exists():
        raise ShardFormatError(f"{path}: no such extraction folder or shard")
    if path.is_file():
        shard = summarize_shard(path)
        return {"path": str(path), "kind": "shard", "config": shard["config"], **_combine([shard])}
    folder = ExtractionFolder(path)
    shards = [{**summarize_shard(p), "name": p.relative_to(path).as_posix()} for p in folder.dataset_shards()]
    if not shards and not folder.config_path.exists():
        raise ShardFormatError(f"{path}: not an extraction folder (no {EXTRACTION_CONFIG_FILE}, no shards)")
    try:
        stored = folder.read_config()
        config: dict | None = stored.stored()
    except ShardFormatError as exc:
        config = None if not folder.config_path.exists() else {"unreadable": str(exc)}
    else:  # a shard of another extraction dropped into the folder is refused, naming it
        folder.check_shards([p.relative_to(path).as_posix() for p in folder.dataset_shards()], stored)
    index_problem = None
    try:
        indexed: int | None = len(folder.read_index())
    except ShardFormatError as exc:  # the shards are still counted: they are the truth
        indexed, index_problem = None, str(exc)
    summary = {"path": str(path), "kind": "extraction", "config": config, **_combine(shards),
               "indexed_videos": indexed, "index_problem": index_problem,
               # finished videos a run has not packed yet: no reader sees them until it does
               "staged_videos": len(folder.staged_files()), "unfinished": folder.unfinished(),
               "failures": [asdict(f) for f in folder.read_failures()]}
    return summary


# --- one video ----------------------------------------------------------------------------------
def flow_statistics(video: VideoReader, direction: str) -> dict:
    """Magnitude statistics of the stored (dequantised) flow of one direction, and the share of
    components at the bound (code 0 or 255): values clipped by quantisation, or right at it."""
    total = 0.0
    count = 0
    peak = 0.0
    clipped = 0
    components = 0
    for i in range(video.num_frames - 1):
        codes = video.flow_codes(direction, i)
        clipped += int(np.count_nonzero((codes == 0) | (codes == LEVELS)))
        components += codes.size
        field = video.flow(direction, i)
        magnitude = np.hypot(field[..., 0], field[..., 1])
        total += float(magnitude.sum(dtype=np.float64))
        count += magnitude.size
        peak = max(peak, float(magnitude.max()))
    means = video.flow_means(direction)
    mean_norms = np.hypot(means[:, 0], means[:, 1]) if len(means) else np.zeros(1)
    return {
        "fields": video.num_frames - 1,
        "mean_magnitude": total / count if count else 0.0,
        "max_magnitude": peak,
        "clipped_share": clipped / components if components else 0.0,
        # the subtracted mean vectors: the camera motion that mean subtraction removed
        "subtracted_mean_magnitude": float(mean_norms.mean()),
        "subtracted_mean_max": float(mean_norms.max()),
    }


def find_video(path: Path, video_id: str) -> Path:
    """The shard holding `video_id`: `path` itself if it is a shard, else via the folder's index."""
    if path.is_file():
        return path
    try:
        entry = ExtractionFolder(path).read_index().get(video_id)
    except ShardFormatError:
        entry = None
    if entry is not None:
        return path / entry.shard
    for shard in ExtractionFolder(path).dataset_shards():  # no index, or a stale one: the shards are the truth
        with open_shard(shard) as f:
            if video_id in f[VIDEOS_GROUP]:
                return shard
    raise ShardFormatError(f"{path}: no video {video_id!r} in this extraction")


def inspect_video(path: str | Path, video_id: str) -> dict:
    path = Path(path)
    if not path.exists():
        raise ShardFormatError(f"{path}: no such extraction folder or shard")
    shard = find_video(path, video_id)
    with open_shard(shard) as f:
        video = video_reader(f, video_id)
        sizes = storage_bytes(video.group)
        frames = video.num_frames
        return {
            "video_id": video_id, "shard": str(shard), "attrs": asdict(video.attrs),
            "codecs": {"rgb": str(video.rgb_codec), "flow": str(video.flow_codec)}, "bound": video.bound,
            "bytes": {**sizes, "rgb_per_frame": sizes["rgb"] / frames,
                      "flow_per_pair": sizes["flow"] / max(1, frames - 1)},
            "flow": {d: flow_statistics(video, d) for d in FLOW_DIRECTIONS},
        }


# --- text ---------------------------------------------------------------------------------------
def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def format_summary(s: dict) -> list[str]:
    b = s["bytes"]
    lines = [f"{s['kind']}: {s['path']}"]
    if s["kind"] == "extraction":
        lines.append(f"shards: {len(s['shards'])}")
        lines += [f"  {x['name']}: {x['videos']} videos, {_size(x['file_bytes'])}" for x in s["shards"]]
    lines += [
        f"videos: {s['videos']}" + (f" (index unreadable: {s['index_problem']})" if s.get("index_problem") else
                                    f" (index lists {s['indexed_videos']})"
                                    if s.get("kind") == "extraction" and s.get("indexed_videos") != s["videos"] else ""),
        f"frames: {s['frames']} RGB, {s['flow_fields_per_direction']} flow fields per direction",
        f"bytes on disk: {_size(b['on_disk'])}; {_size(b['per_frame'])} per frame (RGB + flow both ways), "
        f"{_size(b['per_video'])} per video (--video ID splits one video's bytes by stream)",
    ]
    classes = s["classes"]
    shown = ", ".join(f"{name} {n}" for name, n in list(classes.items())[:MAX_LISTED])
    lines.append(f"classes: {len(classes)}" + (f" ({shown}{', ...' if len(classes) > MAX_LISTED else ''})" if classes else ""))
    for column, counts in s["splits"].items():
        lines.append(f"{column}: {counts['train']} train / {counts['test']} test / {counts['unused']} unused")
    lines.append("config: " + (json.dumps(s["config"], sort_keys=True) if s["config"] is not None else "none"))
    if s["kind"] == "extraction":
        if s.get("staged_videos"):
            lines.append(f"staged: {s['staged_videos']} finished video(s) not yet packed into a shard (training "
                         f"and evaluation read the shards' videos only; the run packs these as it goes)")
        lines += [f"unfinished: {line}" for line in s.get("unfinished", [])]
        failures = s["failures"]
        lines.append(f"failures: {len(failures)}")
        lines += [f"  {f['video_id']}: {f['reason']}" for f in failures[:MAX_LISTED]]
        if len(failures) > MAX_LISTED:
            lines.append(f"  ... and {len(failures) - MAX_LISTED} more (--json lists them all)")
    return lines


def format_video(v: dict) -> list[str]:
    a = v["attrs"]
    lines = [
        f"video: {v['video_id']} in {v['shard']}",
        f"label: {a['label']} ({a['label_name']}); splits: {a['splits']}",
        f"source: {a['source_path']}, {a['source_width']}x{a['source_height']} at {a['fps_source']:g} fps",
        f"stored: {a['num_frames']} frames at {a['width']}x{a['height']}, {a['fps_sampled']:g} fps; "
        f"codecs RGB {v['codecs']['rgb']}, flow {v['codecs']['flow']}; bound {v['bound']:g} px; "
        f"mean subtracted: {'yes' if a['mean_subtracted'] else 'no'}",
        f"bytes: RGB {_size(v['bytes']['rgb'])} ({_size(v['bytes']['rgb_per_frame'])} a frame), "
        f"flow {_size(v['bytes']['flow'])} ({_size(v['bytes']['flow_per_pair'])} a pair)",
    ]
    for direction, st in v["flow"].items():
        lines.append(f"{direction} flow: {st['fields']} fields, magnitude mean {st['mean_magnitude']:.3f} px, "
                     f"max {st['max_magnitude']:.2f} px; {100 * st['clipped_share']:.3f}% of values at the bound; "
                     f"subtracted mean vectors {st['subtracted_mean_magnitude']:.3f} px on average "
                     f"(max {st['subtracted_mean_max']:.3f})")
    return lines
