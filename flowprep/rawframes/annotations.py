"""Labels and splits from mmaction2 annotation lists (`frame_dir total_frames label` lines), as
manifest entries: the lists users already have (build_file_list.py's
`ucf101_train_split_1_rawframes.txt`, ...) and the ones `flowprep export-rawframes` writes.

Which part and split a list holds comes from its name: a pattern's `{part}` (train, val or
test) and `{n}` (the split number) fields, or else the words of the file name
(`..._train_split_2_...`: train of split2; a part without a number: split1; no part: labels
only). mmaction2's val part is flowprep's test part. A video gets `unused` in a split whose lists
do not name it.
"""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprep.format.manifest import ManifestEntry, check_path, validate_video_id
from flowprep.rawframes.layout import RawframesError, parse_annotation_list

PARTS = {"train": "train", "val": "test", "test": "test"}  # mmaction2's name -> the manifest's split value
_FIELDS = {"part": r"(?P<part>train|val|test)", "n": r"(?P<n>\d+)"}
_PART_WORD = re.compile(r"(?:^|[_.\-])(train|val|test)(?=[_.\-]|$)")
_SPLIT_NUMBER = re.compile(r"split_?(\d+)")


@dataclass(frozen=True)
class AnnotationList:
    path: Path
    part: str | None  # train or test (the manifest's values); None: labels only
    split: str | None  # the split column, split1, split2, ...; None with part None


def expand_annotations(patterns: list[str], relative_to: Path | None = None) -> list[AnnotationList]:
    """The lists that `--annotations` options name: a path, or a pattern with {part} and {n}."""
    lists: dict[Path, AnnotationList] = {}
    for pattern in patterns:
        base = pattern if relative_to is None else str(relative_to / pattern)
        if "{" in pattern or "}" in pattern:
            found = _expand_pattern(base, pattern)
        else:
            path = Path(base)
            if not path.is_file():
                raise RawframesError(f"annotation list {pattern} does not exist")
            found = [_from_name(path)]
        for a in found:
            lists.setdefault(a.path, a)
    return list(lists.values())


def _expand_pattern(base: str, pattern: str) -> list[AnnotationList]:
    pieces = re.split(r"(\{[^{}]*\})", base)
    unknown = [p for p in pieces if p.startswith("{") and p[1:-1] not in _FIELDS]
    if unknown or base.count("{") != base.count("}"):
        raise RawframesError(f"annotation pattern {pattern!r}: {unknown[0] if unknown else 'unmatched brace'} is not a "
                             "field; the fields are {part} (train, val or test) and {n} (the split number)")
    wildcard = "".join("*" if p.startswith("{") else glob.escape(p) for p in pieces)
    regex = re.compile("".join(_FIELDS[p[1:-1]] if p.startswith("{") else re.escape(p) for p in pieces))
    found = []
    for name in sorted(glob.glob(wildcard)):
        m = regex.fullmatch(name)
        if not m:
            continue
        groups = m.groupdict()
        part = PARTS[groups["part"]] if groups.get("part") else None
        if part is None:  # {n} alone: the part from the file name
            part = _from_name(Path(name)).part
        split = f"split{int(groups['n'])}" if groups.get("n") else ("split1" if part else None)
        found.append(AnnotationList(Path(name), part, split if part else None))
    if not found:
        raise RawframesError(f"annotation pattern {pattern!r} matches no file")
    return found


def _from_name(path: Path) -> AnnotationList:
    stem = path.name.rsplit(".", 1)[0]
    words = _PART_WORD.findall(stem)
    if not words:
        return AnnotationList(path, None, None)
    number = _SPLIT_NUMBER.search(stem)
    return AnnotationList(path, PARTS[words[0]], f"split{int(number.group(1)) if number else 1}")


def entries_from_annotations(lists: list[AnnotationList], label_names: dict[int, str] | None = None
                             ) -> list[ManifestEntry]:
    """One manifest entry per frame folder the lists name: its path is the frame_dir (relative to
    the tree, mmaction2's data_prefix), its id the folder's name, its label name the class
    folder (`<class>/<video>`), else `label_names`, else the label itself."""
    label_names = label_names or {}
    videos: dict[str, dict] = {}  # video id -> frame_dir, label, where, {split: (part, where)}
    columns = sorted({a.split for a in lists if a.split}, key=lambda c: (len(c), c))
    for a in lists:
        try:
            text = a.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RawframesError(f"annotation list {a.path}: cannot be read: {exc}") from None
        for row in parse_annotation_list(text, str(a.path)):
            problem = check_path(row.frame_dir)
            video_id = PurePosixPath(row.frame_dir).name
            problem = problem or validate_video_id(video_id)
            if problem:
                raise RawframesError(f"annotation list {a.path}: frame_dir {row.frame_dir!r}: {problem}")
            v = videos.setdefault(video_id, {"dir": row.frame_dir, "label": row.label, "where": a.path, "splits": {}})
            if v["dir"] != row.frame_dir:
                raise RawframesError(f"video id {video_id!r} is both {v['dir']} ({v['where']}) and {row.frame_dir} "
                                     f"({a.path}); frame folder names must be unique")
            if v["label"] != row.label:
                raise RawframesError(f"{row.frame_dir} has label {v['label']} in {v['where']} but {row.label} in {a.path}")
            if a.split:
                part, where = v["splits"].setdefault(a.split, (a.part, a.path))
                if part != a.part:
                    raise RawframesError(f"{row.frame_dir} is in both {where} ({part}) and {a.path} ({a.part}) "
                                         f"of {a.split}")
    entries = []
    for video_id, v in sorted(videos.items()):
        parent = PurePosixPath(v["dir"]).parent.name
        name = parent or label_names.get(v["label"], str(v["label"]))
        splits = tuple((c, v["splits"].get(c, (("unused",)))[0]) for c in columns)
        entries.append(ManifestEntry(video_id, v["dir"], v["label"], name, splits))
    return entries
