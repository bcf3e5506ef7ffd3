"""`flowprep extract`: a dataset, in parallel, into shards; resumable, with every failure recorded.

The run loop (staging, packing, resume, failures) is flowprep.extract.staged_run's; this module decides what
to extract and with which config.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from joblib import delayed

from flowprep.extract.batched import device_outcomes, multi_device_outcomes
from flowprep.extract.cluster import on_cluster, security
from flowprep.extract.config import ExtractRun, part_of
from flowprep.extract.flow_methods import get_method
from flowprep.extract.progress import format_duration
from flowprep.extract.staged_run import (
    AfterReady,
    Outcomes,
    in_processes,
    run_jobs,
    staged_run,
    staging_bound,
    usable_workers,
    when_room,
)
from flowprep.extract.video_job import VideoOutcome, extract_video
from flowprep.format.folder import ExtractionFolder, Failure
from flowprep.format.manifest import ManifestEntry, read_manifest
from flowprep.format.safe_paths import RootGuard

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
    failures_file: Path | None = None  # the run folder's failures.jsonl (a part's own, for a part)
    scope: str = "manifest"  # what `total` counts: the manifest, or one part of it
    flow_paths: dict[str, str] = field(default_factory=dict)  # device -> how a batched backend ran the flow

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        rate = self.pairs / self.seconds if self.seconds else 0.0
        return [
            f"videos: {self.total} in {self.scope}, {self.extracted} extracted now, {self.skipped} already done, "
            f"{len(self.failures)} failed",
            f"frames: {self.frames} sampled, {self.pairs} pairs (forward + backward flow each) in "
            f"{format_duration(self.seconds)}, {rate:.2f} pairs/s",
            f"output: {self.shards} shard(s), {self.bytes_on_disk / 1e6:.1f} MB",
        ] + ([f"flow: {', '.join(f'{d} {p}' for d, p in self.flow_paths.items())}"] if self.flow_paths else [])


def outcomes(run: ExtractRun, todo: list[ManifestEntry], config_json: str, staging_dir: Path,
             paths: dict[str, str] | None = None, workers: int | None = None) -> Outcomes:
    """How the videos are extracted: in `workers` worker processes (default: the run's), one video
    each (the OpenCV backends), or by threads feeding batches to one process per device (batched
    backends, batched.py); `paths[device]` gets the way a device ran the flow."""
    workers = workers or run.n_workers
    bound = staging_bound(run.shard_size_mb * 1e6)
    if not get_method(run.extract.flow_method).batched:
        jobs = [delayed(when_room)(extract_video, staging_dir, bound, e, run.video_root / e.path, config_json,
                                   staging_dir, owner=os.getpid()) for e in todo]
        if run.scheduler is not None:
            tls = security(run.scheduler, run.tls_ca_file, run.tls_cert, run.tls_key)
            return on_cluster(jobs, run.scheduler, tls)
        return in_processes(jobs, workers)
    check_devices(run.devices)
    jobs = [(e, run.video_root / e.path) for e in todo]
    if len(run.devices) == 1:
        return lambda note: device_outcomes(jobs, config_json, staging_dir, run.devices[0], workers,
                                            run.batch_fields, note, paths=paths, bound=bound)
    return lambda note: multi_device_outcomes(jobs, config_json, staging_dir, run.devices, workers,
                                              run.batch_fields, note, paths=paths, bound=bound)


def check_devices(devices: list[str]) -> None:
    """Refuse, before any work, CUDA devices this machine does not have."""
    if devices == ["cpu"]:
        return
    import torch

    if not torch.cuda.is_available():
        raise ExtractError(f"device {','.join(devices)} asked for, but CUDA is not available here; use --device cpu")
    count = torch.cuda.device_count()
    for d in devices:
        index = int(d.split(":")[1]) if ":" in d else 0
        if index >= count:
            raise ExtractError(f"device {d} asked for, but this machine has {count} CUDA device(s)")


def outside_video_root(todo: list[ManifestEntry], run: ExtractRun) -> tuple[list[ManifestEntry], list[VideoOutcome]]:
    """Split the videos to do into those inside the video root and, unless --follow-symlinks,
    the failures of those that resolve outside it (a symlink to elsewhere): a manifest can name
    only files under the root, and a symlink in the root is no way around that."""
    if run.follow_symlinks:
        return todo, []
    guard = RootGuard(run.video_root)
    kept, refused = [], []
    for e in todo:
        real = guard.outside(run.video_root / e.path)
        if real is None:
            kept.append(e)
        else:
            refused.append(VideoOutcome(e.video_id, e.path, None, f"{e.path!r} is a symlink to {real!r}, outside the "
                                        f"video root {str(run.video_root)!r}; pass --follow-symlinks to allow it"))
    return kept, refused


def run_folder(run: ExtractRun) -> ExtractionFolder:
    """Where this run writes: the output folder, or its part's folder in it (after agreeing on the
    config that all parts share). A single run and parts never mix in one folder."""
    top = ExtractionFolder(run.out_dir)
    others = sorted({n for _, n, _ in top.parts()} - {run.num_parts})
    if run.num_parts == 1:
        if others:
            raise ExtractError(f"{run.out_dir} holds parts of an extraction split with --num-parts {others[0]}; "
                               f"run with the same --num-parts and --part, or choose another --out")
        return top
    if others:
        raise ExtractError(f"{run.out_dir} holds parts of a split with --num-parts {others[0]}, not {run.num_parts}; "
                           f"use the same --num-parts, or choose another --out")
    if top.index_path.exists() or (top.root.is_dir() and top.shard_paths()):
        raise ExtractError(f"{run.out_dir} holds an extraction made in one run; parts cannot join it: choose another "
                           f"--out")
    top.share_config("extract", run.extract, run.overwrite)
    return top.part(run.part, run.num_parts)


def run_extract(run: ExtractRun, interactive: bool | None = None) -> ExtractSummary:
    """Extract every video of the manifest that is not yet done; return what happened."""
    started = time.perf_counter()
    entries = read_manifest(run.manifest)
    config = run.extract
    config_json = config.to_json()
    scope = "manifest"
    if run.num_parts > 1:
        scope = f"part {run.part} of {run.num_parts} ({len(entries)} in the manifest)"
        entries = [e for e in entries if part_of(e.video_id, run.num_parts) == run.part]
    folder = run_folder(run)
    with staged_run(folder, "extract", config, run.overwrite) as staging:
        todo = [e for e in entries if not staging.done(e.video_id)]
        todo, refused = outside_video_root(todo, run)
        summary = ExtractSummary(total=len(entries), skipped=len(entries) - len(todo),
                                 failures_file=folder.failures_path, scope=scope)
        log.info("config: %s", json.dumps(run.to_dict(), sort_keys=True))
        batched = get_method(config.flow_method).batched
        workers = run.n_workers if run.scheduler else usable_workers(run.n_workers, processes=not batched)
        log.info("%d videos in manifest: %d already done, %d to extract with %s on %d worker(s)",
                 len(entries), summary.skipped, len(todo), config.flow_method, workers)

        def count(outcome: VideoOutcome) -> None:
            summary.extracted += 1
            summary.frames += outcome.frames
            summary.pairs += outcome.pairs
            summary.flow_seconds += outcome.flow_seconds

        jobs = outcomes(run, todo, config_json, staging.dir, summary.flow_paths, workers)
        result = run_jobs(staging, len(todo) + len(refused), lambda note: AfterReady(refused, jobs(note)), config_json,
                          run.shard_size_mb * 1e6, count, interactive)
        summary.failures = result.failures
        summary.shards, summary.bytes_on_disk = result.shards, result.bytes_on_disk
        summary.seconds = time.perf_counter() - started
        return summary
