"""UCF101 and HMDB51 manifests built from the official split lists.

UCF101 (ucfTrainTestlist): classInd.txt ("1 ApplyEyeMakeup", 1-based), trainlist0{1,2,3}.txt
("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1") and testlist0{1,2,3}.txt (path only); CRLF
line endings. The folder is the class: "HandstandPushups/v_HandStandPushups_g01_c01.avi" is how
the lists (and the archive) spell that class's videos, and paths are kept exactly so.

HMDB51 (testTrainMulti_7030_splits): <class>_test_split<k>.txt per class and split, lines
"<clip>.avi <code> " with a trailing space; code 1 = train, 2 = test, 0 = unused. The archive
unpacks to <class>/<clip>.avi. There is no class index: labels follow sorted class names, as
mmaction2's do.

Parsing is pure (file name -> text in, manifest entries out); only `read_split_files` touches
the disk. Errors name the file and line.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

from flowprep.format.manifest import ManifestEntry, ManifestError, validate_video_id

UCF101_CLASS_INDEX = "classInd.txt"
NUM_SPLITS = 3
HMDB51_CODES = {"0": "unused", "1": "train", "2": "test"}
_HMDB51_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


class SplitListError(ManifestError):
    """A malformed official split list; str() names the file and line."""


def split_column(k: int) -> str:
    return f"split{k}"


def ucf101_file_names() -> list[str]:
    return [UCF101_CLASS_INDEX] + [f"{kind}list{k:02d}.txt" for k in range(1, NUM_SPLITS + 1) for kind in ("train", "test")]


def read_split_files(folder: str | Path, names: list[str] | None = None) -> dict[str, str]:
    """Text of the named files in `folder` (all *.txt files when names is None)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SplitListError(f"split list folder {folder} does not exist")
    if names is None:
        names = sorted(p.name for p in folder.glob("*.txt"))
        if not names:
            raise SplitListError(f"no split list files (*.txt) in {folder}")
    texts = {}
    for name in names:
        path = folder / name
        try:
            texts[name] = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise SplitListError(f"{path} is missing; the official lists are {', '.join(names)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SplitListError(f"{path} cannot be read: {exc}") from None
    return texts


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of each non-blank line: this absorbs the
    lists' CRLF endings and HMDB51's trailing spaces."""
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


# --- UCF101 -------------------------------------------------------------------------------------
def parse_class_index(text: str, where: str) -> list[str]:
    """classInd.txt -> class names in label order (line k holds label k, 1-based)."""
    names: list[str] = []
    for lineno, fields in _lines(text):
        if len(fields) != 2:
            raise SplitListError(f"{where} line {lineno}: {len(fields)} columns, expected 2 (index name)")
        if fields[0] != str(len(names) + 1):
            raise SplitListError(f"{where} line {lineno}: class index {fields[0]!r}, expected {len(names) + 1} "
                                 "(indices run 1, 2, 3... in order)")
        if fields[1] in names:
            raise SplitListError(f"{where} line {lineno}: class {fields[1]!r} already has index {names.index(fields[1]) + 1}")
        names.append(fields[1])
    if not names:
        raise SplitListError(f"{where}: no classes")
    return names


def parse_ucf101_list(text: str, where: str, classes: list[str], labelled: bool) -> dict[str, int]:
    """A train list ("Class/video.avi label", labelled) or test list ("Class/video.avi") ->
    {path: line number}, checking the class folder and, where given, the label."""
    label_of = {name: i for i, name in enumerate(classes)}
    columns = 2 if labelled else 1
    paths: dict[str, int] = {}
    for lineno, fields in _lines(text):
        at = f"{where} line {lineno}"
        if len(fields) != columns:
            raise SplitListError(f"{at}: {len(fields)} columns, expected {columns} "
                                 f"({'path label' if labelled else 'path'})")
        path = fields[0]
        parts = PurePosixPath(path).parts
        if len(parts) != 2:
            raise SplitListError(f"{at}: path {path!r} is not <class folder>/<video file>")
        if parts[0] not in label_of:
            raise SplitListError(f"{at}: unknown class {parts[0]!r}; {UCF101_CLASS_INDEX} lists {len(classes)} classes "
                                 f"({', '.join(classes[:3])}, ...)")
        if labelled and fields[1] != str(label_of[parts[0]] + 1):
            raise SplitListError(f"{at}: label {fields[1]!r}, but class {parts[0]!r} is {label_of[parts[0]] + 1} "
                                 f"in {UCF101_CLASS_INDEX}")
        if path in paths:
            raise SplitListError(f"{at}: duplicate video {path!r}, already on line {paths[path]}")
        paths[path] = lineno
    return paths


def build_ucf101(texts: dict[str, str], where: str = "") -> list[ManifestEntry]:
    """Manifest entries (every video once, membership in each of the 3 splits) from the lists' texts."""
    prefix = f"{where}/" if where else ""
    classes = parse_class_index(texts[UCF101_CLASS_INDEX], prefix + UCF101_CLASS_INDEX)
    membership: dict[str, dict[str, str]] = {}
    for k in range(1, NUM_SPLITS + 1):
        train_name, test_name = f"trainlist{k:02d}.txt", f"testlist{k:02d}.txt"
        train = parse_ucf101_list(texts[train_name], prefix + train_name, classes, labelled=True)
        test = parse_ucf101_list(texts[test_name], prefix + test_name, classes, labelled=False)
        for path, lineno in test.items():
            if path in train:
                raise SplitListError(f"{prefix}{test_name} line {lineno}: video {path!r} is also in {train_name} "
                                     f"(line {train[path]}); a video is train or test in a split, not both")
        for part, paths in (("train", train), ("test", test)):
            for path in paths:
                membership.setdefault(path, {})[split_column(k)] = part
    label_of = {name: i for i, name in enumerate(classes)}
    entries = []
    for path in sorted(membership, key=lambda p: (label_of[PurePosixPath(p).parts[0]], p)):
        cls = PurePosixPath(path).parts[0]
        entries.append(ManifestEntry(
            video_id=PurePosixPath(path).stem, path=path, label=label_of[cls], label_name=cls,
            splits=tuple((split_column(k), membership[path].get(split_column(k), "unused"))
                         for k in range(1, NUM_SPLITS + 1)),
        ))
    _check_ids(entries, prefix + "ucf101 lists")
    return entries


# --- HMDB51 -------------------------------------------------------------------------------------
def parse_hmdb51_file(text: str, where: str) -> dict[str, tuple[str, int]]:
    """One <class>_test_split<k>.txt -> {clip file name: (train|test|unused, line number)}."""
    clips: dict[str, tuple[str, int]] = {}
    for lineno, fields in _lines(text):
        at = f"{where} line {lineno}"
        if len(fields) != 2:
            raise SplitListError(f"{at}: {len(fields)} columns, expected 2 (clip code)")
        clip, code = fields
        if code not in HMDB51_CODES:
            raise SplitListError(f"{at}: code {code!r} for {clip}; accepted: 1 (train), 2 (test), 0 (unused)")
        if clip in clips:
            raise SplitListError(f"{at}: duplicate video {clip!r}, already on line {clips[clip][1]}")
        clips[clip] = (HMDB51_CODES[code], lineno)
    if not clips:
        raise SplitListError(f"{where}: lists no clips")
    return clips


def build_hmdb51(texts: dict[str, str], where: str = "") -> list[ManifestEntry]:
    """Manifest entries from the 153 split files' texts (file name -> text)."""
    prefix = f"{where}/" if where else ""
    per_class: dict[str, dict[int, str]] = {}
    for name in texts:
        m = _HMDB51_FILE.match(name)
        if not m:
            raise SplitListError(f"{prefix}{name}: not an HMDB51 split file name (<class>_test_split<1-{NUM_SPLITS}>.txt)")
        k = int(m.group("split"))
        if not 1 <= k <= NUM_SPLITS:
            raise SplitListError(f"{prefix}{name}: split {k}, but HMDB51 has splits 1-{NUM_SPLITS}")
        per_class.setdefault(m.group("cls"), {})[k] = name
    classes = sorted(per_class)
    rows = []  # (class, clip, {split column: part})
    for cls in classes:
        missing = [f"{cls}_test_split{k}.txt" for k in range(1, NUM_SPLITS + 1) if k not in per_class[cls]]
        if missing:
            raise SplitListError(f"{prefix}{missing[0]} is missing: every class needs splits 1-{NUM_SPLITS}")
        parsed = {k: parse_hmdb51_file(texts[per_class[cls][k]], prefix + per_class[cls][k])
                  for k in range(1, NUM_SPLITS + 1)}
        clips = list(parsed[1])
        for k in range(2, NUM_SPLITS + 1):
            if set(parsed[k]) != set(clips):
                odd = sorted(set(parsed[k]) ^ set(clips))[0]
                raise SplitListError(f"{prefix}{per_class[cls][k]}: lists other clips than {per_class[cls][1]} "
                                     f"(e.g. {odd!r}); each split file of a class lists all its clips")
        for clip in sorted(clips):
            rows.append((cls, clip, {split_column(k): parsed[k][clip][0] for k in range(1, NUM_SPLITS + 1)}))
    # ids are clip stems; a stem found in two classes (none in the official lists, but copies
    # of them are edited) is qualified by its class so that every id stays unique
    stems = Counter(PurePosixPath(clip).stem for _, clip, _ in rows)
    entries = []
    for cls, clip, splits in rows:
        stem = PurePosixPath(clip).stem
        entries.append(ManifestEntry(
            video_id=stem if stems[stem] == 1 else f"{cls}__{stem}",
            path=f"{cls}/{clip}", label=classes.index(cls), label_name=cls,
            splits=tuple(sorted(splits.items())),
        ))
    _check_ids(entries, prefix + "hmdb51 lists")
    return entries


def _check_ids(entries: list[ManifestEntry], where: str) -> None:
    seen: dict[str, str] = {}
    for e in entries:
        problem = validate_video_id(e.video_id)
        if problem:
            raise SplitListError(f"{where}: {e.path}: {problem}")
        if e.video_id in seen:
            raise SplitListError(f"{where}: {seen[e.video_id]} and {e.path} both have video id {e.video_id!r}")
        seen[e.video_id] = e.path


def split_counts(entries: list[ManifestEntry]) -> dict[str, dict[str, int]]:
    """{split column: {train: n, test: n, unused: n}}, for summaries and tests."""
    counts: dict[str, dict[str, int]] = {}
    for e in entries:
        for column, part in e.splits:
            counts.setdefault(column, {"train": 0, "test": 0, "unused": 0})[part] += 1
    return counts


def ucf101_manifest(splits_dir: str | Path) -> list[ManifestEntry]:
    return build_ucf101(read_split_files(splits_dir, ucf101_file_names()), str(splits_dir))


def hmdb51_manifest(splits_dir: str | Path) -> list[ManifestEntry]:
    return build_hmdb51(read_split_files(splits_dir), str(splits_dir))
