"""The extraction folder's store: the one owner of every file that `flowprep extract` and
`flowprep import-rawframes` write beside the shards, and of the folder's lock. Extract, import,
verify, inspect, export and train all find and read the folder through this module; what
config.json and index.json hold, and how they are checked, are folder_config's and folder_index's.

    OUT/config.json       {"format_version": 1, "extract": {...}}: the ExtractConfig it was made with,
                          or {"format_version": 1, "import": {...}}: the ImportConfig of an import
                          (flowprep.format.folder_config)
    OUT/index.json        {"format_version": 1, "videos": {...}}: video id -> shard, label, label name,
                          frame count, split membership (flowprep.format.folder_index)
    OUT/failures.jsonl    one JSON object per video that could not be processed: id, path, reason, time
    OUT/shard-NNNNN.h5    the shards (flowprep.format.shards); a file with a final name is always complete
    OUT/staging/          a run in progress: one file per finished video not yet packed into a shard,
                          <video_id>.h5 (`staging_path`, `staged_video_id`: only this module names them)
    OUT/*.part            a file being written (WRITING_SUFFIX): interrupted work, deleted by the next run
    OUT/.flowprep.lock    the file a run holds locked while it writes (runkit.lock; `ExtractionFolder.lock`)
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

import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py

from flowprep.format.folder_config import (
    CONFIG_FORMAT_VERSION,
    EXTRACTION_CONFIG_FILE,
    RUN_KINDS,
    ConfigVersionError,
    FolderConfig,
    RunSettings,
    check_shard_config,
    config_text,
    settings_differences,
    shard_config_problem,
)
from flowprep.format.folder_index import INDEX_FILE, IndexEntry, index_text, parse_index, scan_shard
from flowprep.format.names import SHARD_NAME, check_video_id
from flowprep.format.shards import SHARD_SUFFIX, VIDEOS_GROUP, ShardFormatError, check_header, member, open_shard
from runkit.files import (
    NotRegularFileError,
    is_real_folder,
    open_for_writing,
    parse_json,
    read_json_file,
    read_regular_text,
    real_folder,
    remove_file,
    write_text_atomic,
)
from runkit.lock import folder_lock, held
from runkit.safe_paths import escaped, shown

log = logging.getLogger("flowprep")

FAILURES_FILE = "failures.jsonl"
STAGING_DIR = "staging"
# Every file flowprep writes is written under its final name plus this suffix, then renamed:
# a file with this suffix is one being written, or left by a run that was stopped.
WRITING_SUFFIX = ".part"
PARTS_DIR = "parts"
PART_NAME = re.compile(r"^part-(\d{5})-of-(\d{5})$")
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


@dataclass(frozen=True)
class Failure:
    video_id: str
    path: str
    reason: str


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
        return held(self.root)

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
                fh.write(config_text(FolderConfig(kind, settings.to_dict())))
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
        write_text_atomic(self.config_path, config_text(FolderConfig(kind, settings)))

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
        return parse_index(data, self.index_path)

    def write_index(self, entries: Iterable[IndexEntry]) -> None:
        write_text_atomic(self.index_path, index_text(entries))

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
        never blocks the next one; its file, runkit.lock.LOCK_FILE, stays and means nothing when unlocked."""
        if self.within is not None:  # a part: OUT/parts and its own folder are the tool's, never links
            real_folder(self.root.parent)
            real_folder(self.root)
        with folder_lock(self.root, FolderError, holder="another flowprep run"):
            yield


