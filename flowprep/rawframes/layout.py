"""The rawframes tree of denseflow / TSN / mmaction2: file names, folder scanning, annotation lists.

One folder per video holds 1-based, 5-digit numbered images:

    <video_id>/img_00001.jpg ...             T RGB frames (colour JPEG)
    <video_id>/flow_x_00001.jpg ...          T-1 forward flow fields, x component
    <video_id>/flow_y_00001.jpg ...          T-1 forward flow fields, y component
    <video_id>/backward_flow_x_00001.jpg ... T-1 backward fields (flowprep's addition, optional)
    <video_id>/backward_flow_y_00001.jpg ...

Flow images are grayscale, bound-quantised exactly like our shards (clip to +-bound, 0..255,
128 ~ zero; denseflow's convertFlowToImage). denseflow writes no backward flow; the backward
names are ours and do not match mmaction2's `flow_x_*` globs, so mmaction2 ignores them.

mmaction2's annotation list has one line per video, `frame_dir total_frames label`, split on
whitespace, so a frame_dir may not contain any.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IMG = "img"
FLOW_X = "flow_x"
FLOW_Y = "flow_y"
BACKWARD_X = "backward_flow_x"
BACKWARD_Y = "backward_flow_y"
KINDS = (IMG, FLOW_X, FLOW_Y, BACKWARD_X, BACKWARD_Y)
# (x kind, y kind) of each flow direction, in the shard's direction names
FLOW_KINDS = {"forward": (FLOW_X, FLOW_Y), "backward": (BACKWARD_X, BACKWARD_Y)}
IMAGE_FORMATS = ("jpg", "png")
FIRST_INDEX = 1  # denseflow and mmaction2 count from 1 (mmaction2's start_index=1)

_NAME = re.compile(r"^(img|flow_x|flow_y|backward_flow_x|backward_flow_y)_(\d+)\.(jpg|jpeg|png)$")


class RawframesError(ValueError):
    """A rawframes tree, folder or annotation list that cannot be used; str() says which and why."""


def frame_name(kind: str, index: int, image_format: str) -> str:
    """File name of 0-based frame `index`: frame_name('flow_x', 0, 'jpg') == 'flow_x_00001.jpg'."""
    return f"{kind}_{index + FIRST_INDEX:05d}.{image_format}"


@dataclass(frozen=True)
class FrameFiles:
    """The numbered images of one video folder, in order, per kind (missing kinds: empty)."""

    files: dict[str, tuple[str, ...]]

    def count(self, kind: str) -> int:
        return len(self.files.get(kind, ()))

    def names(self, kind: str) -> tuple[str, ...]:
        return self.files.get(kind, ())


def group_frame_names(names: list[str], where: str) -> FrameFiles:
    """Sort a folder's file names into numbered sequences; raise if a sequence has a gap.

    Files that are not rawframes images are ignored (denseflow trees often hold logs).
    A kind present in two image formats, or numbered with a gap, is an error naming `where`.
    """
    numbered: dict[str, dict[int, str]] = {}
    for name in names:
        m = _NAME.match(name)
        if not m:
            continue
        kind, number = m.group(1), int(m.group(2))
        seen = numbered.setdefault(kind, {})
        if number in seen:
            raise RawframesError(f"{where}: {seen[number]} and {name} are both {kind} frame {number}")
        seen[number] = name
    files = {}
    for kind, by_number in numbered.items():
        expected = range(FIRST_INDEX, FIRST_INDEX + len(by_number))
        if sorted(by_number) != list(expected):
            missing = sorted(set(expected) - set(by_number))
            raise RawframesError(f"{where}: {kind} frames are not numbered {FIRST_INDEX}..{len(by_number)} without gaps "
                                 f"(first missing: {frame_name(kind, missing[0] - FIRST_INDEX, 'jpg')[:-4]})")
        files[kind] = tuple(by_number[n] for n in expected)
    return FrameFiles(files)


def scan_frame_dir(folder: Path) -> FrameFiles:
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError as exc:
        raise RawframesError(f"{folder}: cannot list the frame folder: {exc.strerror or exc}") from None
    return group_frame_names(names, str(folder))


def is_frame_dir(folder: Path) -> bool:
    """A folder of one video: holds rawframes images (any, so that a folder that lost its first
    frame is still found, and reported, rather than silently skipped)."""
    try:
        return any(_NAME.match(p.name) for p in folder.iterdir())
    except OSError:
        return False


# --- mmaction2 annotation lists -----------------------------------------------------------------
def check_frame_dir(frame_dir: str) -> None:
    if not frame_dir or any(c.isspace() for c in frame_dir):
        raise RawframesError(f"frame folder {frame_dir!r} cannot go in an mmaction2 annotation list: "
                             "its lines are split on whitespace")


def annotation_line(frame_dir: str, total_frames: int, label: int) -> str:
    check_frame_dir(frame_dir)
    return f"{frame_dir} {total_frames} {label}"


def annotation_list_name(prefix: str, split_column: str | None, part: str) -> str:
    """mmaction2's file names: ucf101_train_split_1_rawframes.txt, ucf101_val_split_1_rawframes.txt.

    `part` is a manifest split value (train or test; mmaction2 calls the test part 'val');
    without split columns the single list is `<prefix>_rawframes.txt`.
    """
    if split_column is None:
        return f"{prefix}_rawframes.txt"
    number = split_column[len("split"):] or "1"
    return f"{prefix}_{'val' if part == 'test' else part}_split_{number}_rawframes.txt"


@dataclass(frozen=True)
class AnnotationRow:
    frame_dir: str
    total_frames: int
    label: int


def parse_annotation_list(text: str, where: str) -> list[AnnotationRow]:
    """mmaction2 rawframes list lines `frame_dir total_frames label`; errors name the line."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise RawframesError(f"{where} line {lineno}: {len(parts)} columns, expected 3 (frame_dir total_frames label)")
        try:
            total, label = int(parts[1]), int(parts[2])
        except ValueError:
            raise RawframesError(f"{where} line {lineno}: total_frames and label must be integers, "
                                 f"got {parts[1]!r} and {parts[2]!r}") from None
        if total < 0 or label < 0:
            raise RawframesError(f"{where} line {lineno}: negative total_frames or label in {line.strip()!r}")
        rows.append(AnnotationRow(parts[0], total, label))
    return rows
