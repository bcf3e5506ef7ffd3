"""`flowprep manifest check`: find missing and unreadable videos before a long extraction starts.

Each video is opened and its first frame decoded (milliseconds a video); `full` decodes every
frame, which also finds truncated files, at the cost of a pass over the whole dataset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from joblib import delayed

from flowprep.extract.config import worker_count
from flowprep.extract.decode import VideoError, decode_errors_reason, decoder_log, iter_frames, open_video
from flowprep.extract.staged_run import worker_pool
from flowprep.format.manifest import read_manifest
from runkit.signals import leave_stops_to


@dataclass(frozen=True)
class CheckConfig:
    manifest: Path
    video_root: Path
    full: bool = False  # decode every frame (finds truncation) instead of the first one
    workers: int = 1  # 0 = all cores

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be 0 (all cores) or positive, got {self.workers!r}")


@dataclass(frozen=True)
class VideoFileProblem:
    video_id: str
    path: str
    kind: str  # "missing", "unreadable" or "damaged" (the decoder reported errors)
    reason: str


@dataclass
class CheckReport:
    total: int = 0
    problems: list[VideoFileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(p.kind == kind for p in self.problems)

    def to_dict(self) -> dict:
        return {"total": self.total, "ok": self.total - len(self.problems), "missing": self.count("missing"),
                "unreadable": self.count("unreadable"),
                "damaged": self.count("damaged"),
                "problems": [{"video_id": p.video_id, "path": p.path, "kind": p.kind, "reason": p.reason}
                             for p in self.problems]}


def check_video_file(path: Path, full: bool) -> tuple[str, str] | None:
    """(kind, reason) of what is wrong with one video file, or None when it decodes."""
    if not path.exists():
        return "missing", f"file not found: {path}"
    cv2.setNumThreads(1)
    try:
        with decoder_log() as decoder:  # FFmpeg's lines off the terminal, and counted
            cap, info = open_video(path)
            frames = iter_frames(cap, info, check_truncation=full)
            decoded = 0
            for _ in frames:
                decoded += 1
                if not full:
                    break
            frames.close()  # releases the capture when the loop stopped early
            complaints = decoder.complaints()
        if decoded == 0:
            return "unreadable", f"no frame decodes: {path}"
        if complaints:  # what `extract` would record as a failure (or, allowed, a warning)
            return "damaged", f"{path}: {decode_errors_reason(complaints)}"
    except VideoError as exc:
        return "unreadable", str(exc)
    except cv2.error as exc:
        return "unreadable", "OpenCV error: " + " ".join(str(exc).split())
    return None


def check_manifest(config: CheckConfig) -> CheckReport:
    """Every video of the manifest checked, on --workers processes (at most one a core, as an
    extraction's: worker_pool), ended on a stop; the problems in the manifest's order."""
    entries = read_manifest(config.manifest)
    jobs = [delayed(_numbered_check)(i, config.video_root / e.path, config.full, os.getpid())
            for i, e in enumerate(entries)]
    found: dict[int, tuple[str, str]] = {}
    if jobs:
        with worker_pool(jobs, worker_count(config.workers)) as results:
            for i, result in results:
                if result is not None:
                    found[i] = result
    report = CheckReport(total=len(entries))
    for i in sorted(found):
        report.problems.append(VideoFileProblem(entries[i].video_id, entries[i].path, *found[i]))
    return report


def _numbered_check(number: int, path: Path, full: bool, owner: int) -> tuple[int, tuple[str, str] | None]:
    """check_video_file in a worker process of `owner` (which acts on stop signals), with the
    video's place in the manifest (the outcomes come as their jobs finish)."""
    leave_stops_to(owner)
    return number, check_video_file(path, full)
