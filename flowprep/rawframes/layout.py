"""The rawframes tree of denseflow / TSN / mmaction2: file names, folder scanning, annotation lists.

One folder per video, `TREE/<video>/` or `TREE/<class>/<video>/` (mmaction2's
build_rawframes.py --level 2), holds 5-digit numbered images:

    img_00001.jpg ...             T RGB frames (colour JPEG)
    flow_x_00001.jpg ...          T-1 forward flow fields, x component (or x_00001.jpg ...)
    flow_y_00001.jpg ...          T-1 forward flow fields, y component (or y_00001.jpg ...)
    backward_flow_x_00001.jpg ... T-1 backward fields (flowprep's addition, optional)
    backward_flow_y_00001.jpg ...

The trees users have differ in three ways, and a reader must take all of them:
- numbering: denseflow counts from 0 (img_00000.jpg, flow_x_00000.jpg), mmaction2's OpenCV
  frame extraction and tools/misc/flow_extraction.py (--start-idx 1) and flowprep's export from
  1. A folder may even mix them (build_rawframes.py --use-opencv RGB with denseflow flow), so the
  base is detected per kind of image, and frames and fields are paired by position.
- naming: denseflow writes flow_x_/flow_y_, mmaction2's flow_extraction.py x_/y_.
- counts: T-1 flow fields for T frames, or T where the RGB decoder saw one frame fewer than the
  flow extractor's; then the last field has no frame after it and is dropped (`plan_frames`).

Flow images are grayscale, bound-quantised like our shards (clip to +-bound, 0..255). denseflow
rounds (cvRound(255 (v + b) / 2b), so zero motion is 128, as ours); mmaction2's
flow_extraction.py truncates (astype(uint8)), so its zero is 127, half a step below. denseflow
writes no backward flow; the backward names are ours and do not match mmaction2's `flow_x_*`
globs, so mmaction2 ignores them.

mmaction2's annotation list has one line per video, `frame_dir total_frames label`, split on
whitespace, so a frame_dir may not contain any.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

IMG = "img"
FLOW_X = "flow_x"
FLOW_Y = "flow_y"
BACKWARD_X = "backward_flow_x"
BACKWARD_Y = "backward_flow_y"
# (x kind, y kind) of each flow direction, in the shard's direction names
FLOW_KINDS = {"forward": (FLOW_X, FLOW_Y), "backward": (BACKWARD_X, BACKWARD_Y)}
# mmaction2's tools/misc/flow_extraction.py names forward flow x_NNNNN / y_NNNNN
SHORT_NAMES = {"x": FLOW_X, "y": FLOW_Y}
IMAGE_FORMATS = ("jpg", "png")
FIRST_INDEX = 1  # what export writes: mmaction2's start_index=1
FIRST_INDICES = (0, 1)  # what import reads: denseflow counts from 0, mmaction2 from 1

_NAME = re.compile(r"^(img|flow_x|flow_y|backward_flow_x|backward_flow_y|x|y)_(\d+)\.(jpg|jpeg|png)$")


class RawframesError(ValueError):
    """A rawframes tree, folder or annotation list that cannot be used; str() says which and why."""


def frame_name(kind: str, index: int, image_format: str) -> str:
    """File name of 0-based frame `index` as export writes it: frame_name('flow_x', 0, 'jpg') == 'flow_x_00001.jpg'."""
    return f"{kind}_{index + FIRST_INDEX:05d}.{image_format}"


def is_frame_name(name: str) -> bool:
    return _NAME.match(name) is not None


@dataclass(frozen=True)
class FrameFiles:
    """The numbered images of one video folder, in order, per kind (missing kinds: empty).

    Kinds are the long names (x_ files are FLOW_X); `prefixes` keeps the names the folder used
    and `first` the number each kind starts at, for messages."""

    files: dict[str, tuple[str, ...]]
    prefixes: dict[str, str] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return len(self.files.get(kind, ()))

    def names(self, kind: str) -> tuple[str, ...]:
        return self.files.get(kind, ())

    def prefix(self, kind: str) -> str:
        return self.prefixes.get(kind, kind)

    def missing(self, kind: str, count: int, base: int | None = None) -> str:
        """'x_00007' or 'x_00007..x_00009': the images after the last one up to `count` of them
        (numbered from `base`, default the kind's own first number)."""
        start = self.first.get(kind, 0) if base is None else base
        first, last = start + self.count(kind), start + count - 1
        name = _numbered(self.prefix(kind), first)
        return f"{name} is missing" if first == last else f"{name}..{_numbered(self.prefix(kind), last)} are missing"


def _numbered(prefix: str, number: int) -> str:
    return f"{prefix}_{number:05d}"


def group_frame_names(names: list[str], where: str) -> FrameFiles:
    """Sort a folder's file names into numbered sequences; raise, naming the cause, if one is
    not numbered 0.. or 1.. without gaps, or if x_ and flow_x_ names are mixed.

    Files that are not rawframes images are ignored (denseflow trees often hold logs).
    """
    numbered: dict[str, dict[int, str]] = {}
    prefixes: dict[str, str] = {}
    for name in names:
        m = _NAME.match(name)
        if not m:
            continue
        prefix, number = m.group(1), int(m.group(2))
        kind = SHORT_NAMES.get(prefix, prefix)
        if prefixes.setdefault(kind, prefix) != prefix:
            a, b = sorted((prefixes[kind], prefix), key=len)
            raise RawframesError(f"{where}: holds both {a}_NNNNN and {b}_NNNNN images ({name}); "
                                 "one naming per folder (mmaction2's x_/y_ or denseflow's flow_x_/flow_y_)")
        seen = numbered.setdefault(kind, {})
        if number in seen:
            raise RawframesError(f"{where}: {seen[number]} and {name} are both {kind} frame {number}")
        seen[number] = name
    files, first = {}, {}
    for kind, by_number in numbered.items():
        prefix = prefixes[kind]
        numbers = sorted(by_number)
        start = numbers[0]
        if start not in FIRST_INDICES:
            raise RawframesError(f"{where}: {prefix}_NNNNN images start at {_numbered(prefix, start)}; trees are numbered "
                                 f"from 0 (denseflow) or 1 (mmaction2), so {_numbered(prefix, start - 1)} is missing")
        if numbers[-1] - start + 1 != len(numbers):
            missing = next(expected for n, expected in zip(numbers, range(start, start + len(numbers))) if n != expected)
            absent = numbers[-1] - start + 1 - len(numbers)
            raise RawframesError(f"{where}: {prefix}_NNNNN images {_numbered(prefix, start)}..{_numbered(prefix, numbers[-1])} "
                                 f"have a gap: {_numbered(prefix, missing)} is missing"
                                 f"{f' (and {absent - 1} more)' if absent > 1 else ''}")
        files[kind] = tuple(by_number[n] for n in numbers)
        first[kind] = start
    return FrameFiles(files, prefixes, first)


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


# --- which images make the video ----------------------------------------------------------------
@dataclass(frozen=True)
class FramePlan:
    """The files of one video in the order they go into a shard: T frames, T-1 (x, y) fields per
    direction; `dropped` names the images left out and why ('' when none)."""

    frames: tuple[str, ...]
    forward: tuple[tuple[str, str], ...]
    backward: tuple[tuple[str, str], ...]  # empty when backward flow is not read from files
    dropped: str = ""


def plan_frames(files: FrameFiles, backward_files: bool, where: str) -> FramePlan:
    """Pair T frames with T-1 flow fields of each direction read from files; raise naming the
    counts that do not fit.

    T fields for T frames are accepted: a tree whose RGB came from another decoder (OpenCV)
    than its flow (denseflow) can have one frame fewer than the flow extractor saw, and then
    field i still joins frames i and i+1 and the last field has no frame after it: it is
    dropped, and `dropped` says so.
    """
    frames = files.count(IMG)
    if frames < 2:
        hint = " (mmaction2's flow_extraction.py writes them only with --save-rgb)" if files.count(FLOW_X) else ""
        raise RawframesError(f"{where}: {frames} img_NNNNN frame(s){hint}; at least 2 are needed")
    directions = [("forward", FLOW_X, FLOW_Y)] + ([("backward", BACKWARD_X, BACKWARD_Y)] if backward_files else [])
    fields: dict[str, tuple[tuple[str, str], ...]] = {"forward": (), "backward": ()}
    dropped = []
    for direction, x_kind, y_kind in directions:
        nx, ny = files.count(x_kind), files.count(y_kind)
        if nx == 0 and ny == 0:
            if direction == "forward":
                raise RawframesError(f"{where}: no flow images (flow_x_NNNNN and flow_y_NNNNN as denseflow names them, "
                                     f"or x_NNNNN and y_NNNNN as mmaction2's flow_extraction.py does) for {frames} "
                                     "img frames")
            raise RawframesError(f"{where}: 0 {x_kind} images for {frames} img frames; use --backward negate "
                                 "to approximate backward flow from the forward flow")
        if nx != ny:
            fewer, more = (y_kind, x_kind) if ny < nx else (x_kind, y_kind)
            raise RawframesError(f"{where}: {nx} {files.prefix(x_kind)} images but {ny} {files.prefix(y_kind)} images: "
                                 f"{files.missing(fewer, max(nx, ny), files.first.get(more))}")
        if nx < frames - 1:
            raise RawframesError(f"{where}: {nx} {files.prefix(x_kind)} images for {frames} img frames: "
                                 f"{files.missing(x_kind, frames - 1)} (one field per frame pair)")
        if nx > frames:
            raise RawframesError(f"{where}: {nx} {files.prefix(x_kind)} images for {frames} img frames: "
                                 f"{files.missing(IMG, nx)}, or the flow is not of these frames")
        pairs = tuple(zip(files.names(x_kind), files.names(y_kind)))
        if nx == frames:
            x_last, y_last = pairs[-1]
            dropped.append(f"{x_last} and {y_last} ({direction} field {frames} of {frames}: no img frame after it)")
            pairs = pairs[:-1]
        fields[direction] = pairs
    return FramePlan(files.names(IMG), fields["forward"], fields["backward"], "; ".join(dropped))
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
        if len(parts) > 3:
            raise RawframesError(f"{where} line {lineno}: {len(parts)} columns: a multi-label line; flowprep takes "
                                 "one label per video (frame_dir total_frames label)")
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
