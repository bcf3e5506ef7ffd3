"""`flowprep extract`: a dataset, in parallel, into shards; resumable, with every failure recorded.

Resume is a property of the folder, not a journal: shards with final names are complete and
are the truth about what is done; complete staging files are finished videos not yet packed;
`.part` files are interrupted work and are deleted. So a run killed at any moment and started
again with the same command redoes only unfinished videos, and packs each video exactly once.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from joblib import Parallel, delayed

from .config import ExtractConfig, ExtractRun
from .dataset_index import (CONFIG_FILE, FAILURES_FILE, INDEX_FILE, Failure, IndexEntry, scan_shard,
                            write_failures, write_index, write_text_atomic)
from .manifest import ManifestEntry, read_manifest
from .progress import Progress, format_duration
from .shard_format import FORMAT_VERSION, SHARD_SUFFIX
from .shard_writer import next_shard_path, pack_shard, remove_partial_files, shard_paths
from .video_job import VideoOutcome, extract_video

log = logging.getLogger("flowprep")

STAGING_DIR = "staging"


class ExtractError(Exception):
    """A problem with the whole run (not one video); str() is the one-line message."""


@dataclass
class ExtractSummary:
    total: int = 0  # videos in the manifest
    skipped: int = 0  # already done by an earlier run
    extracted: int = 0
    failures: list[Failure] = field(default_factory=list)
    frames: int = 0
    pairs: int = 0
    flow_seconds: float = 0.0
    seconds: float = 0.0
    shards: int = 0
    bytes_on_disk: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        rate = self.pairs / self.seconds if self.seconds else 0.0
        return [
            f"videos: {self.total} in manifest, {self.extracted} extracted now, {self.skipped} already done, "
            f"{len(self.failures)} failed",
            f"frames: {self.frames} sampled, {self.pairs} pairs (forward + backward flow each) in "
            f"{format_duration(self.seconds)}, {rate:.2f} pairs/s",
            f"output: {self.shards} shard(s), {self.bytes_on_disk / 1e6:.1f} MB",
        ]


def prepare_output(out_dir: Path, config: ExtractConfig, overwrite: bool) -> None:
    """Create the folder, or check that it was made with the same config (unless overwriting)."""
    config_path = out_dir / CONFIG_FILE
    if config_path.exists() and not overwrite:
        try:
            stored = json.loads(config_path.read_text(encoding="utf-8"))
            if "import" in stored:  # written by import-rawframes (rawframes_import.py)
                raise ExtractError(f"{out_dir} holds frames imported from a rawframes tree (flowprep import-rawframes), "
                                   f"not an extraction; choose another --out, or --overwrite to discard it")
            previous = ExtractConfig.from_dict(stored["extract"])
            stored_version = stored.get("format_version")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExtractError(f"{config_path} is unreadable ({exc}); pass --overwrite to start this folder afresh") from None
        if stored_version != FORMAT_VERSION:
            raise ExtractError(f"{out_dir} holds shard format version {stored_version!r}, this flowprep writes "
                               f"{FORMAT_VERSION}; pass --overwrite to re-extract, or choose another --out")
        if previous != config:
            diff = "; ".join(config.describe_differences(previous))
            raise ExtractError(f"{out_dir} was extracted with a different config ({diff}); "
                               f"use the same options to resume, another --out, or --overwrite to discard it")
    try:
        if overwrite and out_dir.exists():
            _clear_extraction(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(config_path, json.dumps({"format_version": FORMAT_VERSION, "extract": config.to_dict()}, indent=1))
    except OSError as exc:
        raise ExtractError(f"cannot write the output folder {out_dir}: {exc.strerror or exc}") from None


def _clear_extraction(out_dir: Path) -> None:
    """Delete what flowprep wrote in out_dir (and nothing else)."""
    for p in shard_paths(out_dir):
        p.unlink()
    remove_partial_files(out_dir)
    for name in (CONFIG_FILE, INDEX_FILE, FAILURES_FILE):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / STAGING_DIR, ignore_errors=True)


class ShardPacker:
    """Collects finished staging files and packs them into shards of about `target_bytes`."""

    def __init__(self, out_dir: Path, config_json: str, target_bytes: float, index: dict[str, IndexEntry],
                 note=log.info) -> None:
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


def recover(out_dir: Path, staging_dir: Path) -> tuple[dict[str, IndexEntry], list[Path]]:
    """State of a folder left by an earlier run: the index of what is in shards, and staged videos to pack."""
    removed = remove_partial_files(out_dir) + remove_partial_files(staging_dir)
    if removed:
        log.info("removed %d partial file(s) left by an interrupted run", removed)
    index: dict[str, IndexEntry] = {}
    for shard in shard_paths(out_dir):
        for entry in scan_shard(shard):
            index[entry.video_id] = entry
    staged = []
    if staging_dir.is_dir():
        for p in sorted(staging_dir.glob(f"*{SHARD_SUFFIX}")):
            if p.name[: -len(SHARD_SUFFIX)] in index:
                p.unlink()  # packed just before a kill; the shard has it
            else:
                staged.append(p)
    write_index(out_dir, index.values())
    return index, staged


def run_extract(run: ExtractRun, interactive: bool | None = None) -> ExtractSummary:
    """Extract every video of the manifest that is not yet done; return what happened."""
    started = time.perf_counter()
    entries = read_manifest(run.manifest)
    config = run.extract
    config_json = config.to_json()
    out_dir = run.out_dir
    prepare_output(out_dir, config, run.overwrite)
    staging_dir = out_dir / STAGING_DIR
    staging_dir.mkdir(exist_ok=True)
    index, staged = recover(out_dir, staging_dir)
    staged_ids = {p.name[: -len(SHARD_SUFFIX)] for p in staged}

    summary = ExtractSummary(total=len(entries))
    todo: list[ManifestEntry] = []
    for e in entries:
        if e.video_id in index or e.video_id in staged_ids:
            summary.skipped += 1
        else:
            todo.append(e)
    log.info("config: %s", json.dumps(run.to_dict(), sort_keys=True))
    log.info("%d videos in manifest: %d already done, %d to extract with %s on %d worker(s)",
             len(entries), summary.skipped, len(todo), config.flow_method, run.n_workers)

    progress = Progress(len(todo), interactive=interactive)
    packer = ShardPacker(out_dir, config_json, run.shard_size_mb * 1e6, index, note=progress.note)
    for p in staged:
        packer.add(p)
    write_failures(out_dir, [])
    try:
        outcomes = Parallel(n_jobs=min(run.n_workers, max(1, len(todo))), return_as="generator_unordered")(
            delayed(extract_video)(e, run.video_root / e.path, config_json, staging_dir) for e in todo
        )
        for outcome in outcomes:
            _record(outcome, summary, packer, progress, out_dir)
        packer.flush()
    finally:
        progress.close()
    if not any(staging_dir.iterdir()):
        staging_dir.rmdir()
    summary.seconds = time.perf_counter() - started
    summary.shards = len(shard_paths(out_dir))
    summary.bytes_on_disk = sum(p.stat().st_size for p in shard_paths(out_dir))
    return summary


def _record(outcome: VideoOutcome, summary: ExtractSummary, packer: ShardPacker, progress: Progress, out_dir: Path) -> None:
    progress.update(outcome.video_id, outcome.pairs, outcome.error)
    if outcome.error:
        summary.failures.append(Failure(outcome.video_id, outcome.source, outcome.error))
        write_failures(out_dir, summary.failures)
        return
    summary.extracted += 1
    summary.frames += outcome.frames
    summary.pairs += outcome.pairs
    summary.flow_seconds += outcome.flow_seconds
    packer.add(outcome.staged)
