"""`flowprep verify`: is an extraction folder (or one shard) whole?

Checks, each problem reported with its file and video:
- every shard opens and has this flowprep's format version (open_shard names both versions);
- the stored config parses; config.json and index.json are readable and of this version;
- every video has its attributes and datasets, with T RGB frames and T-1 flow fields and mean
  vectors a direction, stored at the declared size;
- the index and the shards agree (no video missing from either, none in two shards);
- nothing a reader would refuse: every name from the folder follows its rule (video ids, shard
  names in index.json), a shard is a regular file (not a FIFO), holds no soft or external link,
  and was made with the folder's config.json (not a shard of another extraction);
- unless quick: every RGB frame and flow field decodes to the declared size.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import h5py

from flowprep.extract.config import parse_settings, parse_shard_settings
from flowprep.format.codecs import CodecError
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_config import FolderConfig, shard_config_problem
from flowprep.format.shards import (
    FLOW_DIRECTIONS,
    RGB,
    VIDEOS_GROUP,
    ShardFormatError,
    VideoAttrs,
    VideoReader,
    open_shard,
    stored_extract_config,
    stored_number_problems,
    video_group,
    video_num_frames,
)

# what h5py and our readers raise for damaged content (a missing object is a KeyError)
DAMAGE = (ShardFormatError, CodecError, OSError, KeyError, ValueError, TypeError)


@dataclass(frozen=True)
class VerifyProblem:
    file: str
    video: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}{f' video {self.video!r}' if self.video else ''}: {self.message}"


@dataclass
class VerifyReport:
    shards: int = 0
    videos: int = 0
    frames_decoded: int = 0  # RGB frames and flow fields
    problems: list[VerifyProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not wrong, but worth knowing

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "shards": self.shards, "videos": self.videos, "frames_decoded": self.frames_decoded,
                "problems": [{"file": p.file, "video": p.video, "message": p.message} for p in self.problems],
                "notes": self.notes}


def check_video_group(group: h5py.Group, decode: bool) -> tuple[list[str], int]:
    """Problems of one video group (messages), and how many images were decoded."""
    missing = [f"attribute {a.name!r}" for a in fields(VideoAttrs) if a.name not in group.attrs
               and a.default is MISSING]  # an optional attribute (decode_warning) may be absent
    missing += [f"dataset {name!r}" for name in (RGB, *FLOW_DIRECTIONS.values()) if name not in group]
    if missing:
        return [f"lacks {', '.join(missing)}"], 0
    try:
        problems = stored_number_problems(group, VideoAttrs.read(group))
    except DAMAGE as exc:
        return [f"unreadable: {exc}"], 0
    if problems:  # every number a reader would trust, before any of them sizes a read
        return problems, 0
    try:
        video = VideoReader(group)
    except DAMAGE as exc:
        return [f"unreadable: {exc}"], 0
    t, h, w = video.num_frames, video.attrs.height, video.attrs.width
    if t < 2:
        problems.append(f"num_frames is {t}; a video has at least 2")
    if problems or not decode:
        return problems, 0
    decoded = 0
    readers = [(RGB, t, video.rgb, (h, w, 3))] + [
        (FLOW_DIRECTIONS[d], t - 1, lambda i, d=d: video.flow_codes(d, i), (h, w, 2)) for d in FLOW_DIRECTIONS]
    for name, count, read, shape in readers:
        bad = []
        for i in range(count):
            try:
                image = read(i)
                if image.shape != shape:
                    raise ValueError(f"decodes to {image.shape}, expected {shape}")
                decoded += 1
            except DAMAGE as exc:
                bad.append((i, str(exc)))
        if bad:
            i, why = bad[0]
            more = f" ({len(bad)} of {count} bad)" if len(bad) > 1 else ""
            problems.append(f"{name}[{i}] does not decode: {why}{more}")
    return problems, decoded


def verify_shard(path: Path, decode: bool, report: VerifyReport,
                 config: FolderConfig | None = None) -> dict[str, int] | None:
    """Check one shard into `report` (with `config`: that it was made with the folder's config);
    return {video id: num_frames} of its videos (None if unopenable)."""
    try:
        f = open_shard(path)
    except ShardFormatError as exc:
        report.problems.append(VerifyProblem(str(path), None, str(exc).removeprefix(f"{path}: ")))
        return None
    report.shards += 1
    found = {}
    with f:
        try:
            parse_shard_settings(stored_extract_config(f))
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            report.problems.append(VerifyProblem(str(path), None, f"stored extraction config does not parse: {why}"))
        else:
            problem = None if config is None else shard_config_problem(f, config)
            if problem:
                report.problems.append(VerifyProblem(str(path), None, problem))
        try:
            names = list(f[VIDEOS_GROUP])
        except DAMAGE as exc:
            report.problems.append(VerifyProblem(str(path), None, f"cannot list videos: {exc}"))
            return found
        for video_id in names:
            report.videos += 1
            try:  # a name or a link that readers refuse: reported, and nothing under it is followed
                group = video_group(f, video_id)
            except ShardFormatError as exc:
                report.problems.append(VerifyProblem(str(path), None, str(exc).removeprefix(f"{path}: ")))
                continue
            try:
                problems, decoded = check_video_group(group, decode)
            except DAMAGE as exc:  # damage below what check_video_group reads defensively
                problems, decoded = [f"unreadable: {exc}"], 0
            report.frames_decoded += decoded
            report.problems += [VerifyProblem(str(path), video_id, m) for m in problems]
            try:
                found[video_id] = video_num_frames(group)
            except DAMAGE:
                found[video_id] = -1
    return found


def verify_folder(root: Path, decode: bool, report: VerifyReport) -> None:
    folder = ExtractionFolder(root)
    config: FolderConfig | None = None
    try:
        config = folder.read_config()
        parse_settings(config.kind, config.settings)
    except ShardFormatError as exc:
        report.problems.append(VerifyProblem(str(folder.config_path), None, str(exc).split(": ", 1)[-1]))
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(VerifyProblem(str(folder.config_path), None, f"unreadable: {exc}"))
    part_problems = folder.part_problems()
    for problem in part_problems:
        report.problems.append(VerifyProblem(str(folder.root / "parts"), None, problem))
    try:
        index = None if part_problems else folder.read_index()
    except ShardFormatError as exc:
        report.problems.append(VerifyProblem(str(folder.index_path), None, str(exc).split(": ", 1)[-1]))
        index = None

    in_shards: dict[str, tuple[str, int]] = {}
    unopened = set()
    for shard in folder.dataset_shards():
        name = shard.relative_to(root).as_posix()  # as the index names it
        found = verify_shard(shard, decode, report, config)
        if found is None:
            unopened.add(name)
            continue
        for video_id, frames in found.items():
            if video_id in in_shards:
                report.problems.append(VerifyProblem(str(shard), video_id, f"also in {in_shards[video_id][0]}"))
            in_shards[video_id] = (name, frames)
    if index is not None:
        for video_id, entry in index.items():
            where = str(root / entry.shard)
            if entry.shard in unopened:
                continue  # already reported: the shard itself is broken
            if video_id not in in_shards:
                report.problems.append(VerifyProblem(where, video_id, "listed in the index but in no shard"))
            elif in_shards[video_id][0] != entry.shard:
                report.problems.append(VerifyProblem(where, video_id, f"the index says {entry.shard}, "
                                                                f"but it is in {in_shards[video_id][0]}"))
            elif in_shards[video_id][1] != entry.num_frames:
                report.problems.append(VerifyProblem(where, video_id, f"the index says {entry.num_frames} frames, "
                                                                f"the shard {in_shards[video_id][1]}"))
        for video_id, (shard_name, _) in sorted(in_shards.items()):
            if video_id not in index:
                report.problems.append(VerifyProblem(str(root / shard_name), video_id,
                                               "in a shard but not in the index (stale index: re-run the same "
                                               "extract command to rebuild it)"))
    runs = [folder] + [part for _, _, part in folder.parts()]
    leftovers = [p for run in runs for p in run.partial_files()]
    staged = [p for run in runs for p in run.staged_files()]
    if leftovers or staged:
        report.notes.append(f"an interrupted run left {len(leftovers)} partial file(s) and {len(staged)} staged "
                            "video file(s); re-running the same command finishes it")


def verify_path(path: str | Path, quick: bool = False) -> VerifyReport:
    """Verify an extraction folder or one shard file; quick skips decoding every frame."""
    path = Path(path)
    if not path.exists():
        raise ShardFormatError(f"{path}: no such extraction folder or shard")
    report = VerifyReport()
    if path.is_dir():
        verify_folder(path, decode=not quick, report=report)
    else:
        verify_shard(path, decode=not quick, report=report)
    return report
