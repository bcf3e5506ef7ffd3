"""Running per-video jobs that each stage one video, and packing their output into shards: the
loop that `flowprep extract` and `flowprep import-rawframes` share.

Resume is a property of the output folder, not a journal: shards with final names are complete
and are the truth about what is done; complete staging files are finished videos not yet
packed; `.part` files are interrupted work and are deleted. So a run killed at any moment and
started again with the same command redoes only unfinished videos, and packs each exactly once.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from joblib import Parallel

from flowprep.extract.progress import Progress
from flowprep.extract.shard_writer import pack_shard
from flowprep.format.folder import ExtractionFolder, Failure, staged_video_id
from flowprep.format.folder_config import FolderConfig, RunSettings
from flowprep.format.folder_index import IndexEntry, scan_shard
from flowprep.format.shards import SHARD_SUFFIX
from runkit.faults import DiskFullError, disk_full, fault_point, is_disk_full
from runkit.files import remove_file
from runkit.signals import Stop, deferred, leave_stops_to, received, workers_start_ignoring_sigint

log = logging.getLogger("flowprep")


class StagedOutcome(Protocol):
    """What a job returns: the committed staging file, or the one-line reason it failed."""

    video_id: str
    source: str
    staged: Path | None
    error: str | None
    frames: int
    pairs: int
    flow_seconds: float


@dataclass
class Staging:
    """An output folder's state at the start of a run."""

    folder: ExtractionFolder
    index: dict[str, IndexEntry]  # videos already in shards
    staged: list[Path]  # finished videos not yet packed
    staged_ids: frozenset[str] = frozenset()  # their ids: built once, asked once per manifest row

    def __post_init__(self) -> None:
        if not self.staged_ids:
            self.staged_ids = frozenset(staged_video_id(p) for p in self.staged)

    @property
    def dir(self) -> Path:
        return self.folder.staging_dir

    def done(self, video_id: str) -> bool:
        return video_id in self.index or video_id in self.staged_ids


@dataclass
class RunSummary:
    """What one run into an extraction folder did (`flowprep extract`, `flowprep import-rawframes`):
    `pack_outcomes` counts the videos it packed and those that failed; the command adds what the
    run was given, its time and its own lines; `lines()` is what the command prints."""

    verb: str = "packed"  # what the run did to a video: extracted, imported
    scope: str = ""  # what `total` counts: "in manifest", "in part 0 of 2 (9 in the manifest)", "found"
    total: int = 0  # videos of the run
    skipped: int = 0  # already done by an earlier run
    finished: int = 0  # videos this run's jobs finished, and their frames, pairs and time in the flow backend
    failures: list[Failure] = field(default_factory=list)
    frames: int = 0
    pairs: int = 0
    flow_seconds: float = 0.0
    seconds: float = 0.0
    shards: int = 0
    bytes_on_disk: int = 0
    failures_file: Path | None = None  # the folder's failures.jsonl (a part's own, for a part)
    flow_paths: dict[str, str] = field(default_factory=dict)  # extract: device -> how a batched backend ran the flow
    details: list[str] = field(default_factory=list)  # the command's own lines, after the videos' line
    after: list[str] = field(default_factory=list)  # and after the output's

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, outcome: StagedOutcome) -> None:
        self.finished += 1
        self.frames += outcome.frames
        self.pairs += outcome.pairs
        self.flow_seconds += outcome.flow_seconds

    def lines(self) -> list[str]:
        return [f"videos: {self.total} {self.scope}, {self.finished} {self.verb} now, {self.skipped} already done, "
                f"{len(self.failures)} failed",
                *self.details,
                f"output: {self.shards} shard(s), {self.bytes_on_disk / 1e6:.1f} MB",
                *self.after]


@contextmanager
def staged_run(folder: ExtractionFolder, kind: str, settings: RunSettings, overwrite: bool) -> Iterator[Staging]:
    """A run of `kind` into `folder`: hold its lock for the whole run (a second run into it is
    refused), check or create its config (`ExtractionFolder.prepare`), and recover what an earlier
    run left (`open_staging`)."""
    with folder.lock():
        folder.prepare(kind, settings, overwrite)
        yield open_staging(folder)


def open_staging(folder: ExtractionFolder) -> Staging:
    """Recover the state an earlier run left: delete partial files, index the shards, and list
    the staged videos still to pack (a staged video already in a shard was packed just before a
    kill: its copy goes)."""
    folder.make_staging()
    partial = folder.partial_files()
    for p in partial:
        remove_file(p)
    if partial:
        log.info("removed %d partial file(s) left by an interrupted run", len(partial))
    index = folder.scan_shards()
    staged = []
    for p in folder.staged_files():
        if staged_video_id(p) in index:
            remove_file(p)
        else:
            staged.append(p)
    folder.write_index(index.values())
    return Staging(folder, index, staged)


# A shard is also closed, below its target size, once its first video has waited this long: with
# shards of 1 GB a small dataset would otherwise stay in staging/ until the run's end, where no reader
# sees it (training on a running extraction uses the packed videos). The wait doubles after each
# shard closed so, so a long run adds a few small shards (about log2 of its length in these units)
# rather than one a minute. Packing stays the one way into a shard: readers never see staging files,
# which the packer deletes, and a killed run resumes as before.
FIRST_PACK_WAIT_S = 60.0


class ShardPacker:
    """Collects finished staging files and packs them into shards of about `target_bytes`, or of
    what has waited `pack_wait_s` (FIRST_PACK_WAIT_S, doubling; None: size only)."""

    def __init__(self, folder: ExtractionFolder, stored_config: str, target_bytes: float, index: dict[str, IndexEntry],
                 note: Callable[[str], None] = log.info, pack_wait_s: float | None = FIRST_PACK_WAIT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.note = note
        self.stored_config = stored_config  # what each shard stores as its config (JSON)
        # what every staging file packed must have been made with (read at the first pack): a file
        # dropped into staging/ is refused in one line, not copied into a shard
        self.folder_config: FolderConfig | None = None
        self.target_bytes = target_bytes
        self.index = index
        self.pending: list[Path] = []
        self.pending_bytes = 0
        self.pack_wait_s, self.clock = pack_wait_s, clock
        self.first_pending_at = 0.0  # when the first of `pending` came

    def add(self, staged: Path) -> None:
        if not self.pending:
            self.first_pending_at = self.clock()
        self.pending.append(staged)
        self.pending_bytes += staged.stat().st_size
        if self.pending_bytes >= self.target_bytes:
            self.flush()
        elif self.pack_wait_s is not None and self.clock() - self.first_pending_at >= self.pack_wait_s:
            self.note(f"closing a shard below its target size: its first video waited {self.pack_wait_s:.0f} s "
                      f"(so that readers see the finished videos; the next waits twice as long)")
            self.flush()
            self.pack_wait_s *= 2

    def flush(self) -> None:
        if not self.pending:
            return
        shard = self.folder.next_shard_path()
        if self.folder_config is None:
            self.folder_config = self.folder.read_config()
        pack_shard(self.pending, shard, self.stored_config, self.folder_config)
        # the index is written before the staging files go: if killed here, resume finds the
        # videos in a shard and deletes their staging copies
        for entry in scan_shard(shard, self.folder.root):
            self.index[entry.video_id] = entry
        self.folder.write_index(self.index.values())
        fault_point("staging-unlink")
        for p in self.pending:
            remove_file(p)
        self.note(f"packed {len(self.pending)} video(s) into {shard.name}")
        self.pending, self.pending_bytes = [], 0


# Finished videos wait in staging until the main process packs them. Workers faster than the
# packing (small shards, a slow file system) would pile them up for the whole run: a job first
# waits while the unpacked videos exceed this many shards' worth, so staging holds at most that
# plus the videos in progress (one a worker), whatever the run's length.
STAGING_SHARDS = 3
ROOM_POLL_S = 0.05


def max_staged_bytes(shard_bytes: float) -> float:
    return STAGING_SHARDS * shard_bytes


def staged_bytes(staging_dir: Path) -> int:
    """Bytes of the finished videos in `staging_dir` that wait to be packed."""
    total = 0
    try:
        entries = list(os.scandir(staging_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.endswith(SHARD_SUFFIX):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:  # packed and deleted meanwhile
                pass
    return total


class RunStopped(Exception):
    """A job that waited for room in staging gives up: its run has stopped."""


def wait_for_room(staging_dir: Path, max_staged: float, stopped: threading.Event | None = None) -> None:
    """Block while the finished videos waiting in staging exceed `max_staged` bytes (the main process
    packs them meanwhile). A run that stops packs no more, so the room would never come: a thread
    that waits leaves with RunStopped once `stopped` is set (a worker process is ended instead)."""
    while staged_bytes(staging_dir) > max_staged:
        if stopped is not None and stopped.is_set():
            raise RunStopped(f"the run stopped while this job waited for room in {staging_dir}")
        time.sleep(ROOM_POLL_S)


def when_room(job: Callable, staging_dir: Path, max_staged: float, *args: Any, owner: int | None = None,
              stopped: threading.Event | None = None) -> Any:
    """`job(*args)` once staging has room (wait_for_room, which `stopped` ends): how a worker runs a
    video job. `owner`: the pid of the run's main process, which acts on stop signals for its
    worker processes."""
    if owner is not None:
        leave_stops_to(owner)
    wait_for_room(staging_dir, max_staged, stopped)
    return job(*args)


def available_cores() -> int:
    """The cores this process may run on (a SLURM job's or a container's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_workers(asked: int, processes: bool = True) -> int:
    """`asked` worker processes, at most one a core (with a warning): more processes than cores
    cannot make CPU-bound jobs faster, and each holds its own memory (--workers 1000 on 2 cores
    started dozens of processes, GBs, without a word). Threads (processes=False) are only warned of."""
    cores = available_cores()
    if asked <= cores:
        return asked
    if processes:
        log.warning("--workers %d, but this run has %d core(s): more worker processes than cores cannot make it "
                    "faster and each costs memory; using %d", asked, cores, cores)
        return cores
    log.warning("--workers %d decoding threads, but this run has %d core(s): more threads than cores cannot make "
                "decoding faster", asked, cores)
    return asked


def process_outcomes(jobs: list, workers: int) -> Iterator[StagedOutcome]:
    """joblib `jobs` (delayed calls returning StagedOutcome), started now on `workers` processes
    (usable_workers: at most one a core); their outcomes, each as its job finishes."""
    workers = usable_workers(workers)
    # a run that stops (a full disk, Ctrl-C) cancels the jobs it had queued: joblib's warning about
    # them would only add lines to the one-line error
    warnings.filterwarnings("ignore", message=r".*tasks which were still being processed by the workers")
    # one video a task (batch_size=1): a task of several videos returns none of their outcomes until
    # the last is done, so the first ones' staging files could not be packed while the later ones
    # wait for room in staging (wait_for_room) -- a deadlock once staging is full
    workers_start_ignoring_sigint()  # a Ctrl-C while they import is the run's to act on
    return Parallel(n_jobs=min(workers, max(1, len(jobs))), batch_size=1, return_as="generator_unordered")(jobs)


@contextmanager
def worker_pool(jobs: list, workers: int) -> Iterator[Iterator[Any]]:
    """process_outcomes for a command that stages nothing (export-rawframes, manifest check):
    within, the outcomes, each as its job finishes; left early (a stop, an error), the workers
    are ended then, before the command's one line, as pack_outcomes ends an extraction's. A
    stopped `manifest check --workers 1000` left 145 workers alive for minutes (issue 30)."""
    with deferred() as stop:  # a stop while the pool starts waits for a handle to close it with
        outcomes = process_outcomes(jobs, workers)
    try:
        if stop.requested:
            raise stop.stop()
        yield outcomes
        if received() is not None:  # a stop dropped on the way (in a finaliser) still ends the command as one
            raise Stop(received())
    except BaseException:
        outcomes.close()  # joblib's abort: the worker processes killed
        let_queue_feeders_end()
        raise
    outcomes.close()


FEEDER_PATIENCE_S = 2.0  # how long a stopped run waits for the job queues' feeder threads to end


def let_queue_feeders_end(timeout_s: float = FEEDER_PATIENCE_S) -> None:
    """Wait (at most `timeout_s` in all) for the feeder threads of the worker processes' queues
    to end, after a stop closed the jobs. Each feeder thread drops the last references to some
    of the queue's semaphores as it ends, and loky unregisters each from its resource tracker
    as it goes. These threads are daemons: when the command exited first, the interpreter froze
    one between the semaphore's unlink and its unregistration, and the resource tracker, which
    outlives the run, printed "leaked semlock objects" warnings after the run's one line (CI, 1
    of ~250 SIGTERMs to an extraction; a feeder was still alive after 20-40% of stopped runs).
    A feeder ends within a millisecond once the closed queue wakes it."""
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        # multiprocessing's and loky's queues both name their feeder threads so
        if thread.name == "QueueFeederThread" and thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


def pack_outcomes(staging: Staging, start: Callable[[], Iterator[StagedOutcome]], progress: Progress,
                  stored_config: str, shard_bytes: float, failed_first: Iterable[StagedOutcome] = (),
                  on_success: Callable[[StagedOutcome], None] | None = None) -> RunSummary:
    """Start the jobs (`start()`: their outcomes, each as its video finishes) and pack their
    staging files into shards of about `shard_bytes` as they finish (each shard stores
    `stored_config`, its config as JSON), record the failures in failures.jsonl (`failed_first`:
    videos refused before any job, recorded first), and count both on `progress`; on a stop or an
    error, close the jobs before returning. The videos an earlier run finished are packed while
    the jobs, already started, run: a resumed run is at work in seconds, however much it left."""
    folder = staging.folder
    result = RunSummary()
    packer = ShardPacker(folder, stored_config, shard_bytes, staging.index, note=progress.note)

    def pack(staged: Path | None = None) -> None:
        # a stop signal waits for the video's copy into its shard to end: raised inside h5py's
        # callbacks, it came out as a SystemError (a traceback, not the run's one line)
        with deferred() as stop:
            if staged is None:
                packer.flush()
            else:
                packer.add(staged)
        if stop.requested:
            raise stop.stop()

    # a stop waits until the jobs have a handle to close: raised while joblib was still starting
    # them (its workers already at work), it left none, and the workers outlived the run's lock
    # (seen under load); it is acted on first thing below, and the jobs are closed
    with deferred() as stop_while_starting:
        running = start()
    finished = False
    try:
        if stop_while_starting.requested:
            raise stop_while_starting.stop()
        folder.write_failures([])
        for p in staging.staged:
            pack(p)
        for outcome in chain(failed_first, running):
            if received() is not None:  # a stop whose exception a library swallowed (signals.install)
                raise Stop(received())
            progress.update(outcome.video_id, outcome.pairs, outcome.error)
            if outcome.error:
                result.failures.append(Failure(outcome.video_id, outcome.source, outcome.error))
                folder.write_failures(result.failures)
                continue
            result.count(outcome)
            if getattr(outcome, "warning", ""):  # kept despite a problem (extract --allow-decode-errors)
                progress.note(f"warning: {outcome.video_id}: {outcome.warning}")
            if on_success is not None:
                on_success(outcome)
            pack(outcome.staged)
        pack()
        finished = True
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise disk_full(folder.root, exc) from None
        raise
    finally:
        # a stop (Ctrl-C, SIGTERM, a full disk) ends the jobs here, before the run's lock is
        # released: closing the generator kills the worker processes (joblib's abort), stops the
        # device threads or processes, cancels cluster tasks; left to the garbage collector, the
        # workers would write into the folder after the next run took its lock
        close = getattr(running, "close", None)
        if close is not None:
            close()
            if not finished:  # the jobs were ended early: their queues were closed
                let_queue_feeders_end()
        progress.close()
    if not any(staging.dir.iterdir()):
        staging.dir.rmdir()
    shards = folder.shard_paths()
    result.shards = len(shards)
    result.bytes_on_disk = sum(p.stat().st_size for p in shards)
    return result

