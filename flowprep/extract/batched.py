"""The extraction pipeline of a batched flow backend (`tvl1-torch`): video jobs on threads, flow in
device-sized batches.

One process per device. In it, `workers` threads each run video jobs (video_job.py: decode,
sample, resize, encode, stage) and send windows of frame pairs to one `FlowBatcher`, which merges
the windows of many videos into batches of up to `batch` fields and computes them on the device,
forward and backward directions together, mean-subtracted and quantised there (a quarter of the
bytes to copy back). Threads, not processes: decoding, resizing and JPEG encoding run in OpenCV
with the GIL released, and the batcher gets the frames without copying them between processes.
A job keeps two windows in flight, so it decodes the next window while the device computes this
one; windows are sized so that one window of every thread fills a batch (`window_pairs`): one
batch computes while the next is queued. On tvl1-torch the batcher's steps overlap (overlap.py):
the next batch is taken once full (or once the device would wait) and uploaded while this one
computes and the last one downloads, on CUDA from pinned buffers on a copy stream.

The first batch of a frame size holds what the device's free memory holds (at most `batch`); a
CUDA out-of-memory error halves the batch (logged once) and the batch is computed in halves, each
after the failed attempt's memory is freed: no video is lost. Several devices (`--device
cuda:0,cuda:1`) run one such process each, spawned, each seeing only its own GPU (no process
opens a context on another's), taking videos from one queue; the main process packs their
staging files as it does for worker processes, so resume, failures, the lock, progress and the
summary are the same on every path. Warnings of a device process (a kernel that fell back)
reach the main process's output, and the summary says which way each device ran the flow.
"""
from __future__ import annotations

import gc
import logging
import math
import multiprocessing
import os
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from flowprep.extract.config import ExtractConfig
from flowprep.extract.overlap import result_of, run_overlapped
from flowprep.extract.staged_run import when_room
from flowprep.extract.video_job import VideoOutcome, extract_video
from flowprep.flow.backend import BatchFlow, FlowError
from flowprep.format.manifest import ManifestEntry

log = logging.getLogger("flowprep")

LINGER_S = 0.02  # how long a batch smaller than half the maximum waits for more windows


def is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError, matched by name: this module does not import torch
    return type(exc).__name__ in ("OutOfMemoryError", "OutOfMemoryError_") or "out of memory" in str(exc).lower()


@dataclass
class _Request:
    first: np.ndarray
    second: np.ndarray
    future: Future = field(default_factory=Future)


class FlowBatcher:
    """Merges windows of frame pairs from many jobs into device batches, on its own thread."""

    def __init__(self, backend: BatchFlow, bound: float, mean_subtraction: bool, max_fields: int,
                 note: Callable[[str], None] = log.info, release: Callable[[], None] = lambda: None,
                 overlap: bool = True) -> None:
        self.backend, self.bound, self.mean_subtraction = backend, bound, mean_subtraction
        self.max_fields = max_fields
        self.note, self.release = note, release
        self.batches = 0
        self.fields = 0
        # a backend with device-side steps (tvl1-torch) overlaps each batch's copies with the
        # compute of the one before (overlap.py); any other, or `overlap` false, runs them in turn
        steps = getattr(backend, "transfers", None)  # (a test's or a benchmark's wrapper may have none)
        self.transfers = steps(bound, mean_subtraction, max_fields) if overlap and steps else None
        self._computing = False  # the overlapped schedule's computer is busy: a batch may wait to fill
        self._fitted: set[tuple[int, ...]] = set()
        self._queue: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="flow-batcher", daemon=True)
        self._thread.start()

    def submit(self, first: np.ndarray, second: np.ndarray) -> Future:
        request = _Request(first, second)
        with self._cond:
            if self._closed:
                raise FlowError("the flow batcher is closed")
            self._queue.append(request)
            self._cond.notify()
        return request.future

    def close(self) -> None:
        """Finish the queued windows, then stop the batcher's thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> list[_Request]:
        """The next batch: queued windows of the oldest window's frame size, up to max_fields
        (at least one window), after a short wait for more while the batch is small."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            while self._computing and not self._closed and sum(len(r.first) for r in self._queue) < self.max_fields:
                self._cond.wait()  # the device is busy: taken now, the next batch would be smaller than it needs be
            queued = sum(len(r.first) for r in self._queue)
            if not self._closed and queued < self.max_fields // 2:
                self._cond.wait(LINGER_S)
            size = self._queue[0].first.shape[1:] if self._queue else None
            taken, fields = [], 0
            for request in list(self._queue):
                if request.first.shape[1:] != size:
                    continue  # frames of another size wait for a batch of their own
                if taken and fields + len(request.first) > self.max_fields:
                    break
                taken.append(request)
                fields += len(request.first)
                self._queue.remove(request)
            return taken

    def _run(self) -> None:
        if self.transfers is not None:
            return run_overlapped(self._take, self._fits, self.transfers, self._serial, self._deliver, self._idle,
                                  is_out_of_memory)
        while requests := self._take():
            self._deliver(requests, result_of(lambda: self._serial(requests, False)))

    def _serial(self, requests: list[_Request], out_of_memory: bool) -> tuple[np.ndarray, np.ndarray]:
        """The codes of a batch computed in turn (in slices that fit), after a failed attempt of
        the whole batch when `out_of_memory`."""
        first = np.concatenate([r.first for r in requests])
        if out_of_memory:
            self._out_of_memory(len(first), first.shape[1:])
        return self._codes(first, np.concatenate([r.second for r in requests]))

    def _fits(self, requests: list[_Request]) -> bool:
        self._fit(requests[0].first.shape[1:])
        return sum(len(r.first) for r in requests) <= self.max_fields

    def _idle(self, idle: bool) -> None:
        with self._cond:
            self._computing = not idle
            self._cond.notify_all()

    def _deliver(self, requests: list[_Request], result) -> None:
        """Each window's slice of a batch's (codes, means), or the batch's error to each."""
        if isinstance(result, BaseException):  # each waiting job records its video's failure
            error = result if isinstance(result, FlowError) else FlowError(
                f"flow batch failed: {type(result).__name__}: {result}")
            for r in requests:
                r.future.set_exception(error)
            return
        codes, means = result
        self.batches += 1
        self.fields += len(codes)
        start = 0
        for r in requests:
            end = start + len(r.first)
            r.future.set_result((codes[start:end], means[start:end]))
            start = end

    def _codes(self, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backend's codes of a batch, in slices of at most `max_fields`; out of device memory,
        the slice is halved (and so is every later batch) and tried again."""
        self._fit(first.shape[1:])
        slices: list[tuple[np.ndarray, np.ndarray]] = []
        start = 0
        while start < len(first):
            size = min(self.max_fields, len(first) - start)
            result = self._attempt(first[start:start + size], second[start:start + size])
            if result is None:
                self._out_of_memory(size, first.shape[1:])
                continue
            slices.append(result)
            start += size
        if len(slices) == 1:
            return slices[0]
        return np.concatenate([s[0] for s in slices]), np.concatenate([s[1] for s in slices])

    def _out_of_memory(self, size: int, frame: tuple[int, ...]) -> None:
        """After a batch of `size` fields ran out of memory, and out of its `except`: the failed
        attempt's tensors are gone (its traceback held them), so the halves get the memory it had."""
        gc.collect()
        self.release()
        if size == 1:
            raise FlowError(f"out of device memory for a single flow field of {frame[1]}x{frame[0]}")
        half = size // 2
        if half < self.max_fields:
            self.max_fields = half
            self.note(f"device out of memory for a batch of {size} flow fields; "
                      f"batches of at most {half} from now on")

    def _attempt(self, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The codes, or None when the device ran out of memory."""
        try:
            return self.backend.codes(first, second, self.bound, self.mean_subtraction)
        except Exception as exc:  # noqa: BLE001  any other error fails the batch's videos
            if not is_out_of_memory(exc):
                raise
        return None

    def _fit(self, size: tuple[int, ...]) -> None:
        """At the first batch of a frame size: at most what the device's free memory holds."""
        if size in self._fitted:
            return
        self._fitted.add(size)
        fields = self.backend.fields_that_fit(int(size[0]), int(size[1]))
        if fields is not None and fields < self.max_fields:
            self.max_fields = fields
            self.note(f"free device memory holds about {fields} flow fields of {size[1]}x{size[0]}; "
                      f"batches of at most {fields}")

    @property
    def path(self) -> str:
        """How the backend runs the flow (tvl1-torch: "triton", "compile" or "eager")."""
        return self.backend.path

    def cancel(self) -> None:
        """Fail every queued window and refuse new ones (an interrupted run): the jobs end soon."""
        with self._cond:
            self._closed = True
            for request in self._queue:
                request.future.set_exception(FlowError("interrupted"))
            self._queue.clear()
            self._cond.notify()


def window_pairs(max_fields: int, workers: int) -> int:
    """Pairs per window (2 fields a pair: both directions): one window of every worker fills a
    batch. In steady state a job has one window queued while its previous one computes (it waits
    for that one before it decodes the next), so a batch holds one window of each: windows of
    max_fields / (2 x workers) fields, as this was until issue 27, gave batches of max_fields / 2."""
    return max(1, math.ceil(max_fields / (2 * workers)))


def device_outcomes(videos: Iterable[tuple[ManifestEntry, Path]], config: ExtractConfig, staging_dir: Path, device: str,
                    workers: int, max_fields: int, note: Callable[[str], None] = log.info,
                    backend: BatchFlow | None = None, paths: dict[str, str] | None = None,
                    max_staged: float = math.inf, overlap: bool = True) -> Iterator[VideoOutcome]:
    """Run the video jobs on `workers` threads with their flow batched on `device`; yield each
    outcome as its video finishes; `overlap` false runs each batch's copies and compute in turn
    (check_gpu measures both). At most 2 x workers jobs are started ahead, so `videos` may be
    a queue that other devices take from too. `backend` replaces the config's backend (a test
    injects faults through it); `paths[device]` gets the way the flow ran, at the end. A job
    waits to start while the finished videos in staging exceed `max_staged` bytes
    (staged_run.wait_for_room): the thread waits, not this loop, which goes on handing finished
    outcomes to the packer."""
    import cv2

    cv2.setNumThreads(1)
    if backend is None:
        backend = config.flow_method.create_batch(config.flow_params_dict, device)
    batcher = FlowBatcher(backend, config.bound, config.mean_subtraction, max_fields, note, _release_for(device),
                          overlap)
    window = window_pairs(max_fields, workers)
    log.info("%s: flow batches of up to %d fields from %d threads, %d pair(s) per window", device, max_fields,
             workers, window)
    running: set[Future] = set()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="video")
    # set when the run stops: the jobs still waiting for room in staging leave (it would never come,
    # the packer has stopped), or the pool's shutdown would wait for them for ever
    stopped = threading.Event()
    try:
        for entry, source in videos:
            running.add(pool.submit(when_room, extract_video, staging_dir, max_staged, entry, source, config,
                                    staging_dir, batcher, window, stopped=stopped))
            if len(running) >= 2 * workers:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    except BaseException:  # interrupted (or the consumer stopped): end the jobs soon, not at their videos' end
        stopped.set()
        batcher.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    batcher.close()
    if paths is not None:
        paths[device] = batcher.path


def _release_for(device: str) -> Callable[[], None]:
    """What frees the device's cached memory after an out-of-memory error."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return torch.cuda.empty_cache


# --- several devices ------------------------------------------------------------------------------
_DONE = "done"
_PATH = "path"


def visible_device(device: str, inherited: str | None) -> tuple[str | None, str]:
    """A device process's CUDA_VISIBLE_DEVICES and its name for its GPU there: only its own GPU
    is visible (as cuda:0), so nothing in it can open a context on another GPU. `inherited` is
    the main process's CUDA_VISIBLE_DEVICES (None: all visible); (None, device) for the CPU."""
    if not device.startswith("cuda"):
        return None, device
    index = int(device.split(":")[1]) if ":" in device else 0
    if inherited is None:
        return str(index), "cuda:0"
    visible = [v.strip() for v in inherited.split(",") if v.strip()]
    if index >= len(visible):
        raise FlowError(f"device {device} asked for, but CUDA_VISIBLE_DEVICES={inherited!r} shows {len(visible)}")
    return visible[index], "cuda:0"


class _Forward(logging.Handler):
    """Sends a device process's warnings to the main process, which prints them."""

    def __init__(self, send: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        self.send(f"{record.levelname.lower()}: {record.getMessage()}")


def _device_process(number: int, device: str, tasks, results, config: ExtractConfig, staging_dir: Path, workers: int,
                    max_fields: int, max_staged: float = math.inf) -> None:
    """Device `number`'s process: take videos from `tasks` until its end marker, put each outcome
    in `results`, then (number, _PATH, how the flow ran) and finally (number, _DONE). A video
    starts once staging has room (`max_staged` bytes)."""
    visible, local = visible_device(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None:  # before anything initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = visible

    def from_queue() -> Iterator[tuple[ManifestEntry, Path]]:
        while (item := tasks.get()) is not None:
            yield item

    def note(message: str) -> None:
        results.put((number, message))

    flowprep_log = logging.getLogger("flowprep")
    flowprep_log.addHandler(_Forward(note))
    flowprep_log.setLevel(min(flowprep_log.getEffectiveLevel(), logging.WARNING))
    paths: dict[str, str] = {}
    for outcome in device_outcomes(from_queue(), config, staging_dir, local, workers, max_fields, note, paths=paths,
                                   max_staged=max_staged):
        results.put(outcome)
    results.put((number, _PATH, paths.get(local, "")))
    results.put((number, _DONE))


def multi_device_outcomes(videos: list[tuple[ManifestEntry, Path]], config: ExtractConfig, staging_dir: Path,
                          devices: list[str], workers: int, max_fields: int,
                          note: Callable[[str], None] = log.info, paths: dict[str, str] | None = None,
                          max_staged: float = math.inf) -> Iterator[VideoOutcome]:
    """`device_outcomes` on several devices, one spawned process each, taking videos from one
    queue (a fast device takes more). A process that dies stops the run with FlowError; what
    it had finished is packed by the next run, what it had not is redone."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked process
    tasks, results = context.Queue(), context.Queue()
    for video in videos:
        tasks.put(video)
    for _ in devices:
        tasks.put(None)
    processes = [context.Process(target=_device_process, name=f"flowprep-{d}", daemon=True,
                                 args=(i, d, tasks, results, config, staging_dir, workers, max_fields, max_staged))
                 for i, d in enumerate(devices)]
    for p in processes:
        p.start()
    running = set(range(len(devices)))
    try:
        while running:
            try:
                item = results.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i in running if not processes[i].is_alive()]
                if dead:
                    raise FlowError(f"the process of device {devices[dead[0]]} ended with exit code "
                                    f"{processes[dead[0]].exitcode}; run the same command again to resume")
                continue
            if isinstance(item, VideoOutcome):
                yield item
            elif item[1] == _PATH:
                if paths is not None:
                    paths[devices[item[0]]] = item[2]
            elif item[1] == _DONE:
                running.discard(item[0])
            else:
                note(f"{devices[item[0]]}: {item[1]}")
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()
            p.join()
