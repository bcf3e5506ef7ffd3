"""The extraction folder: the one owner of every file that `flowprep extract` and `flowprep
import-rawframes` write beside the shards, and of the folder's lock. Extract, import, verify,
inspect, export and train all find and read the folder through this module.

    OUT/config.json       {"format_version": 1, "extract": {...}}: the ExtractConfig it was made with,
                          or {"format_version": 1, "import": {...}}: the ImportConfig of an import
                          (its own version, CONFIG_FORMAT_VERSION)
    OUT/index.json        {"format_version": 1, "videos": {...}}: video id -> shard, label, label name,
                          frame count, split membership (its own version, INDEX_FORMAT_VERSION)
    OUT/failures.jsonl    one JSON object per video that could not be processed: id, path, reason, time
    OUT/shard-NNNNN.h5    the shards (flowprep.format.shards); a file with a final name is always complete
    OUT/staging/          a run in progress: one file per finished video not yet packed into a shard,
                          <video_id>.h5 (`staging_path`, `staged_video_id`: only this module names them)
    OUT/*.part            a file being written (WRITING_SUFFIX): interrupted work, deleted by the next run
    OUT/.flowprep.lock    the file a run holds locked while it writes (see `ExtractionFolder.lock`)
    OUT/parts/part-IIIII-of-NNNNN/   an extraction split into N parts (--num-parts N --part I): each
                          part is a folder of the above of its own (config, index, failures,
                          staging, shards, lock), so parts running at once on a cluster never
                          write one file; OUT/config.json is their common config

The index is derived from the shards, which are the truth: a run rebuilds it from them when it
starts (it may be stale after a kill), and it is always written atomically. Readers see one
dataset: `read_index` joins the folder's own index and its parts', after checking that every
part was made with the folder's config and that no video is in two places.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import h5py

from flowprep.format.files import (
    NotRegularFileError,
    is_real_folder,
    open_for_writing,
    open_lock_file,
    parse_json,
    read_json_file,
    read_regular_text,
    real_folder,
    remove_file,
    write_text_atomic,
)
from flowprep.format.limits import MAX_FRAMES, integer_problem, label_problem
from flowprep.format.manifest import SPLIT_VALUES
from flowprep.format.safe_paths import check_label_name, check_shard_name, check_video_id, escaped, shown
from flowprep.format.shards import (
    ATTR_EXTRACT_CONFIG,
    SHARD_SUFFIX,
    VIDEOS_GROUP,
    ShardFormatError,
    check_header,
    iter_videos,
    member,
    open_shard,
)

log = logging.getLogger("flowprep")

# Each file of the folder has its own format version, checked where it is read. Both were the
# shards' version (1) until they were split out, so every folder written before reads as is.
CONFIG_FORMAT_VERSION = 1
INDEX_FORMAT_VERSION = 1

EXTRACTION_CONFIG_FILE = "config.json"
INDEX_FILE = "index.json"
FAILURES_FILE = "failures.jsonl"
STAGING_DIR = "staging"
# Every file flowprep writes is written under its final name plus this suffix, then renamed:
# a file with this suffix is one being written, or left by a run that was stopped.
WRITING_SUFFIX = ".part"
SHARD_NAME = re.compile(r"^shard-(\d{5,})\.h5$")
PARTS_DIR = "parts"
PART_NAME = re.compile(r"^part-(\d{5})-of-(\d{5})$")
# A file, not the folder itself, carries the lock: on NFS, flock reaches the server (and so the
# other nodes) only for a regular file open for writing; a directory's lock stays on its node.
LOCK_FILE = ".flowprep.lock"
_NO_LOCKS = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL)
LOCK_PATIENCE_S = 2.0  # how long a run waits out a lock held for a moment (a trainer's `in_use` probe)

# The two kinds of run that make an extraction folder: config.json's key, and how messages name them.
RUN_KINDS = {
    "extract": "an extraction made by `flowprep extract`",
    "import": "frames imported from a rawframes tree (flowprep import-rawframes)",
}
_CHANGED = {"extract": "was extracted with a different config", "import": "was imported with different settings"}


class FolderError(Exception):
    """A folder a run cannot write into: in use by another run, not writable, made by another kind
    of run or with other settings. str() is one line naming the folder; commands report it as is."""


def writing_path(path: Path) -> Path:
    """Where the file `path` is written before it is renamed to `path` (see WRITING_SUFFIX)."""
    return path.with_name(path.name + WRITING_SUFFIX)


def staging_path(staging_dir: Path, video_id: str) -> Path:
    """The staging file of one finished video (a single-video shard) in a run's staging folder."""
    return staging_dir / f"{video_id}{SHARD_SUFFIX}"


def staged_video_id(path: Path) -> str:
    """The video id a staging file is named by (the inverse of `staging_path`); ShardFormatError
    naming the file if its name is not one: a file dropped into staging/ would become a video."""
    video_id = path.name[: -len(SHARD_SUFFIX)] if path.name.endswith(SHARD_SUFFIX) else ""
    problem = check_video_id(video_id)
    if problem:
        raise ShardFormatError(f"{path}: not a staging file's name ({problem})")
    return video_id


class RunSettings(Protocol):
    """What a run stores in config.json (ExtractConfig, ImportConfig): its owner writes it as a
    dict and parses it back, filling settings added since with their defaults."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings": ...


@dataclass(frozen=True)
class IndexEntry:
    video_id: str
    shard: str  # path of the shard file, relative to the extraction folder
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


class ConfigVersionError(ValueError):
    """config.json of another format version than CONFIG_FORMAT_VERSION."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"format version {version!r}")
        self.version = version


@dataclass(frozen=True)
class FolderConfig:
    """What config.json says: which kind of run made the folder, and that run's settings as stored
    (ExtractConfig.to_dict() or ImportConfig.to_dict(); the modules that own those classes parse them)."""

    kind: str  # one of RUN_KINDS
    settings: dict[str, Any]

    def to_json(self) -> str:
        """The settings as one line of JSON, as every shard of the folder stores them."""
        return json.dumps(self.settings, sort_keys=True)

    def stored(self) -> dict[str, Any]:
        """config.json's content: `{"format_version": ..., kind: settings}` (the one place it is built)."""
        return {"format_version": CONFIG_FORMAT_VERSION, self.kind: self.settings}

    @classmethod
    def parse(cls, data: Any) -> "FolderConfig":
        """config.json's content read back (the one place it is parsed): ConfigVersionError for
        another format version, ValueError saying why for anything else it cannot be."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        version = data.get("format_version")
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigVersionError(version)
        kinds = [k for k in RUN_KINDS if k in data]
        if len(kinds) != 1 or not isinstance(data[kinds[0]], dict):
            raise ValueError(f"expected one of the keys {', '.join(repr(k) for k in RUN_KINDS)} holding the settings")
        problem = settings_type_problem(kinds[0], data[kinds[0]])
        if problem:  # a width of "112" is refused here, not a TypeError in a reader
            raise ValueError(problem)
        return cls(kinds[0], data[kinds[0]])

    @property
    def fixed_min_side(self) -> int | None:
        """The shorter side of every stored frame, where the config fixes it (an extraction: a
        fixed size or a short side); None where frames keep their source's size (an import).

        The one reading of an extraction's keys left in this module, and why: the trainer needs
        it before it opens a shard, and twostream reads flowprep through flowprep.format only
        (tests/test_layout.py), so it cannot ask flowprep.extract.config; without this it would
        read the size of every video of every shard."""
        s = self.settings
        if self.kind != "extract":
            return None
        return s["short_side"] if s.get("short_side") is not None else min(s["width"], s["height"])


def _config_text(config: FolderConfig) -> str:
    """config.json's text, as every run writes it."""
    return json.dumps(config.stored(), indent=1)


def _positive_number(v: Any) -> bool:
    return type(v) in (int, float) and v > 0


# The types of the settings this layer reads (fixed_min_side) or compares: each kind's key ->
# (check, what is accepted). flowprep.extract.config parses the whole config (verify, export and a
# resumed run do); this is the guard every reader has, the trainer included, which cannot reach
# flowprep.extract: a config.json from elsewhere with a width of "112" is one line where it is read.
_OPTIONAL_SIDE = (lambda v: v is None or (type(v) is int and v > 0), "a positive integer or null")
SETTINGS_TYPES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "extract": {"width": _OPTIONAL_SIDE, "height": _OPTIONAL_SIDE, "short_side": _OPTIONAL_SIDE,
                "bound": (_positive_number, "a positive number"),
                "mean_subtraction": (lambda v: type(v) is bool, "true or false"),
                "flow_method": (lambda v: type(v) is str, "a string"),
                "flow_params": (lambda v: isinstance(v, dict), "an object"),
                "rgb_codec": (lambda v: type(v) is str, "a string"), "flow_codec": (lambda v: type(v) is str, "a string")},
    "import": {"bound": (_positive_number, "a positive number"),
               "mean_subtracted": (lambda v: type(v) is bool, "true or false"),
               "rgb_codec": (lambda v: type(v) is str, "a string"), "flow_codec": (lambda v: type(v) is str, "a string")},
}


def settings_type_problem(kind: str, settings: dict[str, Any]) -> str | None:
    """Why stored settings of `kind` cannot be read, or None: each setting this layer reads has its type."""
    for key, (ok, accepted) in SETTINGS_TYPES[kind].items():
        if key in settings and not ok(settings[key]):
            return f"{key} is {shown(settings[key])}, expected {accepted}"
    if kind == "extract" and settings.get("short_side") is None and (settings.get("width") is None
                                                                     or settings.get("height") is None):
        return "expected width and height, or short_side"
    return None


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every setting that differs (`key.sub` inside nested dicts)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            lines += [f"{key}.{line}" for line in settings_differences(a, b)]
        else:
            lines.append(f"{key}: {a!r} -> {b!r}")
    return lines


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


def same_settings(shard: Any, folder: Any) -> bool:
    """Whether settings a shard stores are the folder's: every key the shard has is the folder's,
    with the same value (nested dicts likewise). A key only the folder has is a setting added to
    flowprep since the shard was written (config.json is rewritten by each run, shards are not);
    the parsing modules (flowprep.extract.config) know its default, this layer does not."""
    if isinstance(shard, dict) and isinstance(folder, dict):
        return all(k in folder and same_settings(v, folder[k]) for k, v in shard.items())
    return shard == folder


def shard_config_problem(f: h5py.File, config: FolderConfig) -> str | None:
    """Why an open shard is not one of the folder whose config is `config`, or None: the
    extraction config it stores must be the folder's (`same_settings`), of the same kind of run."""
    text = f.attrs.get(ATTR_EXTRACT_CONFIG)
    try:
        stored = parse_json(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:160]
        return f"its stored extraction config does not parse ({why})"
    if not isinstance(stored, dict):
        return "its stored extraction config is not a JSON object"
    kind = "import" if stored.get("origin") == "rawframes" else "extract"
    marker = "origin" if kind == "import" else "flow_method"
    if kind != config.kind or marker not in stored:
        return (f"holds {RUN_KINDS[kind]}, but the folder's {EXTRACTION_CONFIG_FILE} {RUN_KINDS[config.kind]}: a shard "
                "of another folder")
    if same_settings(stored, config.settings):
        return None
    diff = "; ".join(settings_differences(config.settings, {**config.settings, **stored})[:4])
    extra = [k for k in stored if k not in config.settings]
    diff = diff or f"settings unknown to the folder: {', '.join(extra[:4])}"
    return (f"was made with another config than the folder's {EXTRACTION_CONFIG_FILE} ({diff}): a shard of another "
            "extraction")


def check_shard_config(f: h5py.File, path: Path, config: FolderConfig) -> None:
    """ShardFormatError, one line naming the shard, unless it was made with the folder's config."""
    problem = shard_config_problem(f, config)
    if problem:
        raise ShardFormatError(f"{path} {problem}; move it out of the folder (or re-extract it there)")


def check_staged_file(f: h5py.File, path: Path, config: FolderConfig) -> None:
    """ShardFormatError, one line naming the file, unless the staging file `f` (at `path`) was made
    with the folder's config and holds the one video its name says: packing would copy whatever a
    file dropped into staging/ holds into the folder's shards."""
    check_header(f)  # a shard's header, and a videos group that is no link
    problem = shard_config_problem(f, config)
    if problem is None:
        ids = list(member(f, VIDEOS_GROUP))
        if ids != [staged_video_id(path)]:
            problem = f"holds the videos {shown(ids[:3])}, not the one its name says"
    if problem:
        raise ShardFormatError(f"{path} {problem}: not this folder's staging file; move it out of the folder (the "
                               f"same command then extracts that video again)")


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


class ExtractionFolder:
    """One extraction folder: its paths, its config, index and failures, and a run's lock."""

    def __init__(self, root: str | Path, within: Path | None = None) -> None:
        self.root = Path(root)
        # a part's folder lies inside the whole extraction's (`within`): the folders between them
        # are the tool's own and must be real folders, never links to elsewhere (see `lock`)
        self.within = within

    config_path = property(lambda self: self.root / EXTRACTION_CONFIG_FILE)
    index_path = property(lambda self: self.root / INDEX_FILE)
    failures_path = property(lambda self: self.root / FAILURES_FILE)
    staging_dir = property(lambda self: self.root / STAGING_DIR)

    # --- parts --------------------------------------------------------------------------------------
    def part(self, part: int, num_parts: int) -> "ExtractionFolder":
        """The folder of part `part` (0-based) of an extraction split into `num_parts`."""
        return ExtractionFolder(self.root / PARTS_DIR / f"part-{part:05d}-of-{num_parts:05d}", within=self.root)

    def parts(self) -> list[tuple[int, int, "ExtractionFolder"]]:
        """(part, num_parts, folder) of every part folder, in order."""
        folder = self.root / PARTS_DIR
        if not folder.is_dir():
            return []
        found = [(PART_NAME.match(p.name), p) for p in sorted(folder.iterdir())]
        return [(int(m.group(1)), int(m.group(2)), ExtractionFolder(p)) for m, p in found if m and p.is_dir()]

    def part_problems(self) -> list[str]:
        """Why the parts do not make one dataset: a part made with another config than the
        folder's, parts of different splits (--num-parts), a video in two places. One line each."""
        parts = self.parts()
        if not parts:
            return []
        problems = []
        counts = sorted({n for _, n, _ in parts})
        if len(counts) > 1:
            problems.append(f"{self.root / PARTS_DIR} holds parts of {len(counts)} different splits "
                            f"(--num-parts {', '.join(map(str, counts))}); their videos overlap")
        try:
            common = self.read_config()
        except ShardFormatError as exc:
            return problems + [str(exc)]
        for _, _, part in parts:
            if not part.config_path.exists():
                continue  # a part that has not started yet
            try:
                own = part.read_config()
            except ShardFormatError as exc:
                problems.append(str(exc))
                continue
            if (own.kind, own.settings) != (common.kind, common.settings):
                diff = "; ".join(settings_differences(common.settings, own.settings)) or f"kind {own.kind}"
                problems.append(f"{part.root} was made with another config than {self.config_path} ({diff})")
        return problems

    # --- shards -----------------------------------------------------------------------------------
    def shard_paths(self) -> list[Path]:
        """Complete shard files of this run folder (not of its parts), in order."""
        return sorted(p for p in self.root.iterdir() if SHARD_NAME.match(p.name))

    def dataset_shards(self) -> list[Path]:
        """Complete shard files of the whole dataset: this folder's and every part's."""
        return self.shard_paths() + [p for _, _, part in self.parts() for p in part.shard_paths()]

    def next_shard_path(self) -> Path:
        numbers = [int(SHARD_NAME.match(p.name).group(1)) for p in self.shard_paths()]
        return self.root / f"shard-{max(numbers, default=-1) + 1:05d}{SHARD_SUFFIX}"

    def partial_files(self) -> list[Path]:
        """Leftovers of an interrupted run: `.part` shards and staging files."""
        return [p for folder in (self.root, self.staging_dir) if is_real_folder(folder)
                for p in sorted(folder.glob(f"*{WRITING_SUFFIX}"))]

    def staged_files(self) -> list[Path]:
        """Finished videos of a run in progress, not yet packed into a shard."""
        return sorted(self.staging_dir.glob(f"*{SHARD_SUFFIX}")) if is_real_folder(self.staging_dir) else []

    def make_staging(self) -> Path:
        """The staging folder, created if absent; NotRegularFileError if it is a link (a run would
        write and delete staging files in the folder it points to) or not a folder."""
        return real_folder(self.staging_dir)

    def unfinished(self) -> list[str]:
        """Why the dataset this folder holds may not be whole yet, one line each: a run still
        writing into it or into one of its parts (it holds the folder's lock), a run stopped before
        it finished (its staging files are left), a part of the split with no folder yet."""
        lines = []
        parts = self.parts()
        for folder in [self] + [part for _, _, part in parts]:
            if folder.in_use():
                lines.append(f"a flowprep run is still writing into {folder.root}")
            elif folder.staged_files() or folder.partial_files():
                lines.append(f"the run into {folder.root} stopped before it finished; the same command, run again, "
                             "finishes it")
        if parts:
            present, count = {i for i, _, _ in parts}, max(n for _, n, _ in parts)
            missing = [str(i) for i in range(count) if i not in present]
            if missing:
                lines.append(f"{self.root / PARTS_DIR} lacks part(s) {', '.join(missing)} of {count}")
        return lines

    def in_use(self) -> bool:
        """A run holds this folder's lock now (see `lock`)."""
        try:  # never through a link, never waiting on a FIFO
            fd = os.open(self.root / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # no run has ever locked it, or it cannot be read: nothing says a run is on
            return False
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)  # a FIFO or a device planted under the lock's name: no run locks that
            return False
        try:
            return _flock_within(fd, fcntl.LOCK_SH, 0.0) is False
        finally:
            os.close(fd)  # closing releases a shared lock taken here

    # --- config.json ------------------------------------------------------------------------------
    def read_config(self) -> FolderConfig:
        """The folder's config; ShardFormatError with a one-line message naming config.json if it is
        missing, unreadable, of another format version, or not of a known kind."""
        data = read_json_file(self.config_path, ShardFormatError,
                              f"missing; is {self.root} a flowprep extraction folder?", "extraction config")
        try:
            return FolderConfig.parse(data)
        except ConfigVersionError as exc:
            raise ShardFormatError(f"{self.config_path}: format version {exc.version!r}, but this flowprep reads "
                                   f"version {CONFIG_FORMAT_VERSION}") from None
        except ValueError as exc:
            raise ShardFormatError(f"{self.config_path}: unreadable extraction config: {exc}") from None

    def prepare(self, kind: str, settings: RunSettings, overwrite: bool) -> None:
        """Make the folder ready for a run of `kind` with `settings`: create it, or check that it was
        made by the same kind of run with the same settings (`check_config`); with `overwrite`,
        clear what an earlier run left instead. Problems are FolderErrors naming the folder or file."""
        if self.config_path.exists() and not overwrite:
            self.check_config(kind, settings)
        try:
            if overwrite and self.root.exists():
                self.clear()
            self.write_config(kind, settings.to_dict())
        except OSError as exc:
            raise FolderError(f"cannot write the output folder {self.root}: {exc.strerror or exc}") from None

    def share_config(self, kind: str, settings: RunSettings, overwrite: bool) -> None:
        """The config the parts of a split extraction share: written by whichever part starts first
        (atomically: a hard link that fails if another part got there first), then checked by every
        part against its own settings. With `overwrite`, this part's settings replace it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if overwrite:
                self.write_config(kind, settings.to_dict())
                return
            tmp = self.config_path.with_name(f"{EXTRACTION_CONFIG_FILE}.{os.getpid()}.tmp")
            with open_for_writing(tmp, binary=False) as fh:
                fh.write(_config_text(FolderConfig(kind, settings.to_dict())))
            try:
                os.link(tmp, self.config_path)  # link(2) never follows a link at its new name
            except FileExistsError:
                pass
            finally:
                remove_file(tmp)
        except OSError as exc:
            raise FolderError(f"cannot write the output folder {self.root}: {exc.strerror or exc}") from None
        self.check_config(kind, settings)

    def check_config(self, kind: str, settings: RunSettings) -> None:
        """Refuse, with a FolderError, a folder made by another kind of run or with other settings.
        The stored settings are read back by their owner (`type(settings).from_dict`), so settings
        added to flowprep since the folder was made compare as their defaults."""
        try:
            stored = FolderConfig.parse(parse_json(read_regular_text(self.config_path)))
            if stored.kind == kind:
                stored = replace(stored, settings=type(settings).from_dict(stored.settings).to_dict())
        except ConfigVersionError as exc:
            raise FolderError(f"{self.root} holds extraction config format version {exc.version!r}, this flowprep "
                              f"writes {CONFIG_FORMAT_VERSION}; pass --overwrite to start afresh, or choose "
                              f"another --out") from None
        except NotRegularFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise FolderError(f"{self.config_path} is unreadable ({why}); pass --overwrite to start this folder "
                              f"afresh") from None
        if stored.kind != kind:
            raise FolderError(f"{self.root} holds {RUN_KINDS[stored.kind]}, not {RUN_KINDS[kind]}; choose another "
                              f"--out, or --overwrite to discard it")
        if stored.settings != settings.to_dict():
            diff = "; ".join(settings_differences(stored.settings, settings.to_dict()))
            raise FolderError(f"{self.root} {_CHANGED[kind]} ({diff}); use the same options to resume, another "
                              f"--out, or --overwrite to discard it")

    def write_config(self, kind: str, settings: dict[str, Any]) -> None:
        """Write config.json (creating the folder) for a run of `kind` (one of RUN_KINDS) with `settings`."""
        if kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, _config_text(FolderConfig(kind, settings)))

    def clear(self) -> None:
        """Delete what flowprep wrote in the folder (and nothing else), for --overwrite."""
        for p in self.shard_paths() + self.partial_files() + [self.config_path, self.index_path, self.failures_path]:
            remove_file(p)  # a link goes itself, never what it points to
        if is_real_folder(self.staging_dir):
            shutil.rmtree(self.staging_dir, ignore_errors=True)
        else:
            remove_file(self.staging_dir)

    # --- index.json -------------------------------------------------------------------------------
    def read_index(self) -> dict[str, IndexEntry]:
        """The dataset's index: this folder's own and its parts', joined (shards named relative to
        this folder). ShardFormatError, one line, if the parts do not make one dataset."""
        parts = self.parts()
        if not parts:
            return self.read_own_index()
        problems = self.part_problems()
        if problems:
            raise ShardFormatError(problems[0])
        index = self.read_own_index() if self.index_path.exists() else {}
        where = {v: self.index_path for v in index}
        for _, _, part in parts:
            if not part.index_path.exists():
                continue
            prefix = part.root.relative_to(self.root).as_posix()
            for video_id, entry in part.read_own_index().items():
                if video_id in index:
                    raise ShardFormatError(f"video {video_id!r} is in both {where[video_id]} and {part.index_path}: "
                                           f"parts overlap (another --num-parts, or a single run beside parts)")
                index[video_id] = replace(entry, shard=f"{prefix}/{entry.shard}")
                where[video_id] = part.index_path
        return index

    def read_own_index(self) -> dict[str, IndexEntry]:
        """This run folder's index.json (not its parts')."""
        data = read_json_file(self.index_path, ShardFormatError,
                              f"no dataset index; is {self.root} a flowprep extraction folder?", "dataset index")
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != INDEX_FORMAT_VERSION:
            raise ShardFormatError(f"{self.index_path}: index of format version {version!r}, but this flowprep reads "
                                   f"version {INDEX_FORMAT_VERSION}")
        try:
            index = {vid: IndexEntry(video_id=vid, **fields) for vid, fields in data["videos"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ShardFormatError(f"{self.index_path}: malformed dataset index: {exc!r}") from None
        passed: set = set()
        for entry in index.values():
            problem = index_entry_problem(entry, passed)
            if problem:
                raise ShardFormatError(f"{self.index_path}: refused: {problem}")
        return index

    def write_index(self, entries: Iterable[IndexEntry]) -> None:
        videos = {e.video_id: {k: v for k, v in asdict(e).items() if k != "video_id"} for e in entries}
        write_text_atomic(self.index_path,
                          json.dumps({"format_version": INDEX_FORMAT_VERSION, "videos": videos}, indent=1))

    def scan_shards(self) -> dict[str, IndexEntry]:
        """The index as the shards say it is (what `write_index` writes after a run's start); a
        shard made with another config than config.json's is refused, naming it."""
        config = self.read_config()
        return {e.video_id: e for shard in self.shard_paths() for e in scan_shard(shard, self.root, config)}

    def open_shard(self, name: str, config: FolderConfig) -> h5py.File:
        """Open shard `name` (as `read_index` names it) to read, refused in one line naming it
        unless it is a regular file made with the folder's `config`. The caller closes it."""
        path = self.root / name
        f = open_shard(path)
        try:
            check_shard_config(f, path, config)
        except BaseException:
            f.close()
            raise
        return f

    def check_shards(self, names: Iterable[str], config: FolderConfig | None = None) -> None:
        """Refuse, in one line naming it, the first of the shards `names` that is not a readable
        shard of this folder (not a regular file, another format, another extraction's config)."""
        config = config or self.read_config()
        for name in names:
            self.open_shard(name, config).close()

    # --- failures.jsonl ---------------------------------------------------------------------------
    def read_failures(self) -> list[Failure]:
        """This folder's failures and its parts'."""
        return self.read_own_failures() + [f for _, _, part in self.parts() for f in part.read_own_failures()]

    def read_own_failures(self) -> list[Failure]:
        try:
            text = read_regular_text(self.failures_path)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ShardFormatError(f"{self.failures_path}: unreadable failures file: {exc}") from None
        try:
            records = [parse_json(line) for line in text.splitlines() if line.strip()]
            # a folder from elsewhere may hold anything: its records reach the terminal escaped
            return [Failure(escaped(str(r["video_id"])), escaped(str(r["path"])), escaped(str(r["reason"])))
                    for r in records]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else repr(exc)
            raise ShardFormatError(f"{self.failures_path}: unreadable failures file: {why}") from None

    def write_failures(self, failures: Iterable[Failure]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        lines = [json.dumps({**asdict(f), "time": stamp}) for f in failures]
        write_text_atomic(self.failures_path, "".join(line + "\n" for line in lines))

    # --- a run ------------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder for a whole run (creating the folder). A second run
        into it, from another shell or another cluster job, is refused with a FolderError instead of
        the two overwriting each other's staging files. The lock dies with the process, so a killed run
        never blocks the next one; its file, LOCK_FILE, stays and means nothing when unlocked."""
        if self.within is not None:  # a part: OUT/parts and its own folder are the tool's, never links
            real_folder(self.root.parent)
            real_folder(self.root)
        with folder_lock(self.root):
            yield


@contextmanager
def folder_lock(root: Path, error: type[Exception] = FolderError,
                holder: str = "another flowprep run") -> Iterator[None]:
    """The lock of `ExtractionFolder.lock` on any run folder (also a training run's: twostream's
    fit_loop): an exclusive flock on ROOT/LOCK_FILE for the block, creating ROOT; while `holder`
    holds it, `error` in one line (a training run raises its own: its command's error type)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(root / LOCK_FILE)
    except NotRegularFileError as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"cannot write the output folder {root}: {exc.strerror or exc}") from None
    try:
        locked = _flock_within(fd, fcntl.LOCK_EX, LOCK_PATIENCE_S)
        if locked is None:  # e.g. Lustre mounted without -o flock: a run must still be possible
            log.warning("%s: the file system gives no file locks, so a second run into this folder "
                        "would not be refused; run one at a time", root)
        elif not locked:
            raise error(f"{root} is in use by {holder}; let it finish (or stop it), or choose another --out")
        yield
    finally:
        os.close(fd)


def _flock_within(fd: int, kind: int, patience_s: float) -> bool | None:
    """Take the flock `kind` on `fd`, trying again for up to `patience_s` seconds; False if another
    process holds a conflicting lock all that time, None if the file system has no locks."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                return None
            raise
