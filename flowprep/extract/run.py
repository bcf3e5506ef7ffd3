"""`flowprep extract`: a dataset, in parallel, into shards; resumable, with every failure recorded.

The run loop (staging, packing, resume, failures) is staged_run.py's; this module decides what
to extract and with which config.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from joblib import delayed

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.progress import format_duration
from flowprep.extract.staged_run import clear_output, open_staging, output_lock, run_staged
from flowprep.extract.video_job import VideoOutcome, extract_video
from flowprep.format.folder import CONFIG_FILE, Failure, write_text_atomic
from flowprep.format.shards import FORMAT_VERSION
from flowprep.manifests.manifest import read_manifest

log = logging.getLogger("flowprep")


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
            clear_output(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(config_path, json.dumps({"format_version": FORMAT_VERSION, "extract": config.to_dict()}, indent=1))
    except OSError as exc:
        raise ExtractError(f"cannot write the output folder {out_dir}: {exc.strerror or exc}") from None


def run_extract(run: ExtractRun, interactive: bool | None = None) -> ExtractSummary:
    """Extract every video of the manifest that is not yet done; return what happened."""
    started = time.perf_counter()
    entries = read_manifest(run.manifest)
    config = run.extract
    config_json = config.to_json()
    with output_lock(run.out_dir, ExtractError):  # the whole run: a second one into this folder is refused
        prepare_output(run.out_dir, config, run.overwrite)
        staging = open_staging(run.out_dir)
        todo = [e for e in entries if not staging.done(e.video_id)]
        summary = ExtractSummary(total=len(entries), skipped=len(entries) - len(todo))
        log.info("config: %s", json.dumps(run.to_dict(), sort_keys=True))
        log.info("%d videos in manifest: %d already done, %d to extract with %s on %d worker(s)",
                 len(entries), summary.skipped, len(todo), config.flow_method, run.n_workers)

        def count(outcome: VideoOutcome) -> None:
            summary.extracted += 1
            summary.frames += outcome.frames
            summary.pairs += outcome.pairs
            summary.flow_seconds += outcome.flow_seconds

        jobs = [delayed(extract_video)(e, run.video_root / e.path, config_json, staging.dir) for e in todo]
        result = run_staged(staging, jobs, run.n_workers, config_json, run.shard_size_mb * 1e6, count, interactive)
        summary.failures = result.failures
        summary.shards, summary.bytes_on_disk = result.shards, result.bytes_on_disk
        summary.seconds = time.perf_counter() - started
        return summary
