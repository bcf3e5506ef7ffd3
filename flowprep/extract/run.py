"""`flowprep extract`: a dataset, in parallel, into shards; resumable, with every failure recorded.

`run_extract` is one extraction, read top to bottom: the videos of this run, its extraction folder
(`extraction_folder`; locked, its config checked, what an earlier run left recovered: staged_run),
the videos still to do, the jobs started (in processes, on a Dask cluster: cluster.py, or on
devices: batched.py; each job is video_job.extract_video), their staging files packed into shards
and their failures recorded (staged_run.pack_outcomes), the summary (staged_run.RunSummary, with
extract's own lines). The functions after it are those stages, in that order.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from joblib import delayed

from flowprep.extract.batched import device_outcomes, multi_device_outcomes
from flowprep.extract.cluster import on_cluster, security
from flowprep.extract.config import ExtractRun, part_of
from flowprep.extract.decode import silenced_ffmpeg
from flowprep.extract.progress import Progress
from flowprep.extract.staged_run import (
    RunSummary,
    max_staged_bytes,
    pack_outcomes,
    process_outcomes,
    staged_run,
    usable_workers,
    when_room,
)
from flowprep.extract.video_job import VideoOutcome, extract_video
from flowprep.format.folder import ExtractionFolder
from flowprep.format.manifest import ManifestEntry, read_manifest
from runkit.progress import format_duration
from runkit.safe_paths import RootGuard

log = logging.getLogger("flowprep")


class ExtractError(Exception):
    """A problem with the whole run (not one video); str() is the one-line message."""


def extract_lines(summary: RunSummary) -> RunSummary:
    """The summary with extract's own lines: the frames and pairs and how fast, and (a batched
    backend) how each device ran the flow."""
    rate = summary.pairs / summary.seconds if summary.seconds else 0.0
    paths = ", ".join(f"{d} {p}" for d, p in summary.flow_paths.items())
    return replace(summary, details=[f"frames: {summary.frames} sampled, {summary.pairs} pairs (forward + backward "
                                     f"flow each) in {format_duration(summary.seconds)}, {rate:.2f} pairs/s"],
                   after=[f"flow: {paths}"] if paths else [])


def run_extract(run: ExtractRun, interactive: bool | None = None) -> RunSummary:
    """Extract every video of the manifest (or of this run's part of it) that is not yet done;
    return what happened. The whole run, stage by stage."""
    started = time.perf_counter()
    config = run.extract
    entries, scope = videos_of_run(run)
    folder = extraction_folder(run)
    # the folder locked for the whole run, its config checked or written, what an earlier run left recovered
    with staged_run(folder, "extract", config, run.overwrite) as staging:
        pending = [e for e in entries if not staging.done(e.video_id)]
        todo, refused = outside_video_root(pending, run)  # refused: failures now, not "already done"
        batched = config.flow_method.batched
        workers = run.n_workers if run.scheduler else usable_workers(run.n_workers, processes=not batched)
        log.info("config: %s", json.dumps(run.to_dict(), sort_keys=True))
        log.info("%d videos in manifest: %d already done, %d to extract with %s on %d worker(s)",
                 len(entries), len(entries) - len(pending), len(todo), config.flow_method.name, workers)
        progress = Progress(len(todo) + len(refused), interactive=interactive)
        flow_paths: dict[str, str] = {}  # device -> how a batched backend ran the flow, filled as devices finish
        # the jobs started (local workers at once), their staging files packed into shards as they
        # finish, every failure recorded, the jobs closed on a stop
        # a batched backend's videos decode in threads of this process, where decoder_log takes nothing
        with silenced_ffmpeg(batched):
            packed = pack_outcomes(staging, lambda: start_jobs(run, todo, staging.dir, workers, progress.note,
                                                               flow_paths),
                                   progress, config.to_json(), run.shard_size_mb * 1e6, failed_first=refused)
        return extract_lines(replace(packed, verb="extracted", scope=scope, total=len(entries),
                                     skipped=len(entries) - len(pending), seconds=time.perf_counter() - started,
                                     failures_file=folder.failures_path, flow_paths=flow_paths))


def videos_of_run(run: ExtractRun) -> tuple[list[ManifestEntry], str]:
    """The manifest's videos, or this run's part of them (`part_of`), and what they are (the
    summary's scope)."""
    entries = read_manifest(run.manifest)
    if run.num_parts == 1:
        return entries, "in manifest"
    scope = f"in part {run.part} of {run.num_parts} ({len(entries)} in the manifest)"
    return [e for e in entries if part_of(e.video_id, run.num_parts) == run.part], scope


def extraction_folder(run: ExtractRun) -> ExtractionFolder:
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


def start_jobs(run: ExtractRun, todo: list[ManifestEntry], staging_dir: Path, workers: int,
               note: Callable[[str], None], flow_paths: dict[str, str]) -> Iterator[VideoOutcome]:
    """Start extracting the videos `todo` into `staging_dir`; their outcomes, each as its video
    finishes: in `workers` worker processes, one video each (the OpenCV backends), on a Dask
    cluster's workers (--scheduler), or by `workers` threads feeding batches to one process per
    device (batched backends, batched.py; `flow_paths[device]` gets the way a device ran the
    flow). A job waits while staging holds more than `max_staged` bytes (staged_run.when_room); `note`
    prints a line above the progress bar."""
    max_staged = max_staged_bytes(run.shard_size_mb * 1e6)
    if not run.extract.flow_method.batched:
        jobs = [delayed(when_room)(extract_video, staging_dir, max_staged, e, run.video_root / e.path, run.extract,
                                   staging_dir, None, 1, run.allow_decode_errors, owner=os.getpid()) for e in todo]
        if run.scheduler is not None:
            tls = security(run.scheduler, run.tls_ca_file, run.tls_cert, run.tls_key)
            return on_cluster(jobs, run.scheduler, note, tls, timeout_s=run.scheduler_timeout)
        return process_outcomes(jobs, workers)
    check_devices(run.devices)
    videos = [(e, run.video_root / e.path) for e in todo]
    if len(run.devices) == 1:
        return device_outcomes(videos, run.extract, staging_dir, run.devices[0], workers, run.batch_fields, note,
                               paths=flow_paths, max_staged=max_staged)
    return multi_device_outcomes(videos, run.extract, staging_dir, run.devices, workers, run.batch_fields, note,
                                 paths=flow_paths, max_staged=max_staged)


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

