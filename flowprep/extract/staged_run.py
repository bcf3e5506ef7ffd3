"""Running per-video jobs that each stage one video, and packing their output into shards: the
loop that `flowprep extract` and `flowprep import-rawframes` share.

Resume is a property of the output folder, not a journal: shards with final names are complete
and are the truth about what is done; complete staging files are finished videos not yet
packed; `.part` files are interrupted work and are deleted. So a run killed at any moment and
started again with the same command redoes only unfinished videos, and packs each exactly once.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from joblib import Parallel

from flowprep.extract.progress import Progress
from flowprep.extract.shard_writer import next_shard_path, pack_shard, remove_partial_files, shard_paths
from flowprep.format.folder import (
    CONFIG_FILE,
    FAILURES_FILE,
    INDEX_FILE,
    Failure,
    IndexEntry,
    scan_shard,
    write_failures,
    write_index,
)
from flowprep.format.shards import SHARD_SUFFIX

log = logging.getLogger("flowprep")

STAGING_DIR = "staging"


class StagedOutcome(Protocol):
    """What a job returns: the committed staging file, or the one-line reason it failed."""

    video_id: str
    source: str
    staged: Path | None
    error: str | None
    pairs: int


@dataclass
class Staging:
    """An output folder's state at the start of a run."""

    out_dir: Path
    index: dict[str, IndexEntry]  # videos already in shards
    staged: list[Path]  # finished videos not yet packed

    @property
    def dir(self) -> Path:
        return self.out_dir / STAGING_DIR

    def done(self, video_id: str) -> bool:
        return video_id in self.index or video_id in self.staged_ids

    @property
    def staged_ids(self) -> set[str]:
        return {p.name[: -len(SHARD_SUFFIX)] for p in self.staged}


@dataclass
class StagedRunResult:
    failures: list[Failure] = field(default_factory=list)
    shards: int = 0
    bytes_on_disk: int = 0


@contextmanager
def output_lock(out_dir: Path, error: type[Exception]) -> Iterator[None]:
    """Hold an exclusive lock on the output folder for a whole run (creating the folder). A second
    run into the same folder, from another shell or another cluster job, is refused with `error`
    instead of the two overwriting each other's staging files. The lock is on the folder itself,
    so it leaves no file behind, and it dies with the process, so a killed run never blocks the
    next one."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir, os.O_RDONLY)
    except OSError as exc:
        raise error(f"cannot write the output folder {out_dir}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(f"{out_dir} is in use by another flowprep run; let it finish (or stop it), "
                        f"or choose another --out") from None
        yield
    finally:
        os.close(fd)


def clear_output(out_dir: Path) -> None:
    """Delete what flowprep wrote in out_dir (and nothing else), for --overwrite."""
    for p in shard_paths(out_dir):
        p.unlink()
    remove_partial_files(out_dir)
    for name in (CONFIG_FILE, INDEX_FILE, FAILURES_FILE):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / STAGING_DIR, ignore_errors=True)


def open_staging(out_dir: Path) -> Staging:
    """Recover the state an earlier run left: delete partial files, index the shards, and list
    the staged videos still to pack (a staged video already in a shard was packed just before a
    kill: its copy goes)."""
    staging_dir = out_dir / STAGING_DIR
    staging_dir.mkdir(exist_ok=True)
    removed = remove_partial_files(out_dir) + remove_partial_files(staging_dir)
    if removed:
        log.info("removed %d partial file(s) left by an interrupted run", removed)
    index: dict[str, IndexEntry] = {}
    for shard in shard_paths(out_dir):
        for entry in scan_shard(shard):
            index[entry.video_id] = entry
    staged = []
    for p in sorted(staging_dir.glob(f"*{SHARD_SUFFIX}")):
        if p.name[: -len(SHARD_SUFFIX)] in index:
            p.unlink()
        else:
            staged.append(p)
    write_index(out_dir, index.values())
    return Staging(out_dir, index, staged)


class ShardPacker:
    """Collects finished staging files and packs them into shards of about `target_bytes`."""

    def __init__(self, out_dir: Path, config_json: str, target_bytes: float, index: dict[str, IndexEntry],
                 note: Callable[[str], None] = log.info) -> None:
        self.out_dir = out_dir
        self.note = note
        self.config_json = config_json
        self.target_bytes = target_bytes
        self.index = index
        self.pending: list[Path] = []
        self.pending_bytes = 0

    def add(self, staged: Path) -> None:
        self.pending.append(staged)
        self.pending_bytes += staged.stat().st_size
        if self.pending_bytes >= self.target_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        shard = next_shard_path(self.out_dir)
        pack_shard(self.pending, shard, self.config_json)
        # the index is written before the staging files go: if killed here, resume finds the
        # videos in a shard and deletes their staging copies
        for entry in scan_shard(shard):
            self.index[entry.video_id] = entry
        write_index(self.out_dir, self.index.values())
        for p in self.pending:
            p.unlink()
        self.note(f"packed {len(self.pending)} video(s) into {shard.name}")
        self.pending, self.pending_bytes = [], 0


def run_staged(staging: Staging, jobs: list, workers: int, config_json: str, shard_bytes: float,
               on_success: Callable[[StagedOutcome], None], interactive: bool | None = None) -> StagedRunResult:
    """Run joblib `jobs` (delayed calls returning StagedOutcome) on `workers` processes, as they
    finish pack their staging files into shards and record failures in failures.jsonl."""
    out_dir = staging.out_dir
    result = StagedRunResult()
    progress = Progress(len(jobs), interactive=interactive)
    packer = ShardPacker(out_dir, config_json, shard_bytes, staging.index, note=progress.note)
    for p in staging.staged:
        packer.add(p)
    write_failures(out_dir, [])
    try:
        outcomes = Parallel(n_jobs=min(workers, max(1, len(jobs))), return_as="generator_unordered")(jobs)
        for outcome in outcomes:
            progress.update(outcome.video_id, outcome.pairs, outcome.error)
            if outcome.error:
                result.failures.append(Failure(outcome.video_id, outcome.source, outcome.error))
                write_failures(out_dir, result.failures)
                continue
            on_success(outcome)
            packer.add(outcome.staged)
        packer.flush()
    finally:
        progress.close()
    if not any(staging.dir.iterdir()):
        staging.dir.rmdir()
    shards = shard_paths(out_dir)
    result.shards = len(shards)
    result.bytes_on_disk = sum(p.stat().st_size for p in shards)
    return result
