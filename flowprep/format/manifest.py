"""Dataset manifests: which videos to extract, where they are, their labels and split membership.

A manifest is a CSV file with a header row (format: data_manifests/README.md):
    video_id,path,label[,label_name][,split1,split2,...]
`path` is relative to the video root given at extraction; `label` is a 0-based class index;
every column named split<something> holds train, test or unused. Other columns are allowed and
ignored. Errors name the file, the line and the problem.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprep.format.limits import MAX_CLASSES, label_problem
from flowprep.format.names import MAX_ID_LENGTH, check_label_name, check_video_id
from runkit.files import NotRegularFileError, open_regular, replacing
from runkit.safe_paths import has_control, shown  # noqa: F401

REQUIRED_COLUMNS = ("video_id", "path", "label")
SPLIT_VALUES = ("train", "test", "unused")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class ManifestEntry:
    video_id: str
    path: str
    label: int
    label_name: str
    splits: tuple[tuple[str, str], ...] = ()  # (split column, train|test|unused)

    @property
    def splits_dict(self) -> dict[str, str]:
        return dict(self.splits)


def validate_video_id(video_id: str) -> str | None:
    """Return why `video_id` cannot name a video in a shard, or None if it can: the one rule for
    ids (flowprep.format.names), which the extraction folder's readers apply too."""
    return check_video_id(video_id)


def check_path(path: str) -> str | None:
    """Why a manifest path cannot be a video under the video root, or None: paths are relative to
    it, and one that is absolute or climbs out of it with '..' would read (and name) another file."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if has_control(path):
        return f"path {shown(path)} contains control characters"
    if PurePosixPath(path).is_absolute() or path.startswith("\\") or (parts and parts[0].endswith(":")):
        return f"path {path!r} is absolute; paths are relative to the video root (--video-root)"
    if ".." in parts:
        return f"path {path!r} leaves the video root with '..'; paths are relative to it (--video-root)"
    return None


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read and validate a manifest CSV; raise ManifestError naming the line of the first problem."""
    path = Path(path)
    try:
        with open_regular(path, binary=False, newline="", encoding="utf-8-sig") as fh:  # a FIFO never hangs it
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError, NotRegularFileError) as exc:
        raise ManifestError(f"manifest {path} cannot be read: {exc}") from None
    if not rows:
        raise ManifestError(f"manifest {path} is empty: expected a header row {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"{path} line 1: header lacks column(s) {', '.join(missing)}; "
            f"expected at least {','.join(REQUIRED_COLUMNS)}, got {','.join(header)}"
        )
    if len(set(header)) != len(header):
        raise ManifestError(f"{path} line 1: duplicate column names in header {','.join(header)}")
    col = {name: i for i, name in enumerate(header)}
    split_cols = [h for h in header if h.startswith("split")]
    for name in split_cols:  # a split column's name becomes a file name (export-rawframes' lists)
        if any(c in name for c in "/\\") or has_control(name) or len(name) > MAX_ID_LENGTH:
            raise ManifestError(f"{path} line 1: split column {shown(name)} must be a plain name (no '/', '\\' "
                                f"or control characters)")

    entries: list[ManifestEntry] = []
    first_line: dict[str, int] = {}
    named: dict[int, tuple[str, int]] = {}  # label -> (its name, the line that first named it)
    numbered: dict[str, tuple[int, int]] = {}  # name -> (its label, that line)
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank lines are harmless
        where = f"{path} line {lineno}"
        if len(row) != len(header):
            raise ManifestError(f"{where}: {len(row)} columns, header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        problem = validate_video_id(cell["video_id"])
        if problem:
            raise ManifestError(f"{where}: {problem}")
        if not cell["path"]:
            raise ManifestError(f"{where}: path is empty")
        problem = check_path(cell["path"])
        if problem:
            raise ManifestError(f"{where}: {problem}")
        try:
            label = int(cell["label"])
        except ValueError:
            label = -1
        if label < 0:
            raise ManifestError(f"{where}: label {cell['label']!r} is not a non-negative integer")
        if label_problem(label):  # before it reaches a shard's attribute or sizes a classifier
            raise ManifestError(f"{where}: label {cell['label'].strip()} is above {MAX_CLASSES - 1:,}, the largest "
                                f"class index accepted; labels are 0-based class indices")
        splits = []
        for name in split_cols:
            if cell[name] not in SPLIT_VALUES:
                raise ManifestError(f"{where}: {name} is {cell[name]!r}; accepted: {', '.join(SPLIT_VALUES)}")
            splits.append((name, cell[name]))
        if cell["video_id"] in first_line:
            raise ManifestError(f"{where}: video_id {cell['video_id']!r} already on line {first_line[cell['video_id']]}")
        first_line[cell["video_id"]] = lineno
        problem = check_label_name(cell.get("label_name", ""))
        if problem:
            raise ManifestError(f"{where}: {problem}")
        if cell.get("label_name"):  # one name per class: a second one is a typo or a shifted label
            name = cell["label_name"]
            other_name, line = named.setdefault(label, (name, lineno))
            if other_name != name:
                raise ManifestError(f"{where}: label {label} is named {name!r}, but {other_name!r} on line {line}")
            other_label, line = numbered.setdefault(name, (label, lineno))
            if other_label != label:
                raise ManifestError(f"{where}: label_name {name!r} is label {label}, but {other_label} on line {line}")
        entries.append(ManifestEntry(
            video_id=cell["video_id"],
            path=cell["path"],
            label=label,
            label_name=cell.get("label_name", "") or str(label),
            splits=tuple(splits),
        ))
    if not entries:
        raise ManifestError(f"manifest {path} lists no videos")
    return entries


def write_manifest(path: str | Path, entries: list[ManifestEntry]) -> None:
    """Write entries as a manifest CSV (header from the split columns of the first entry)."""
    split_names = [name for name, _ in entries[0].splits] if entries else []
    path = Path(path)
    with replacing(path, binary=False, newline="") as fh:  # only over a regular file, never through a link
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["video_id", "path", "label", "label_name", *split_names])
        for e in entries:
            splits = e.splits_dict
            writer.writerow([e.video_id, e.path, e.label, e.label_name, *(splits[s] for s in split_names)])
