"""Faults injected into extraction: kill -9 at named moments and at times, a full disk, a Dask worker
killed, a Dask scheduler address that is not one, a device out of memory."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import FLOW_DIRECTIONS, open_shard, video_reader
from tests.support.cli import FLOWPREP, run
from tests.support.reliability.common import (
    SIZE,
    VIDEOS,
    Record,
    Reference,
    contents,
    extract_command,
    kill_after,
    kill_by_fault,
    one_line,
    verify_ok,
    wait_until,
)
from tests.support.videos import directions, make_videos, moving_square_frames, write_video

# The moments of an extraction a kill -9 lands on: every file a run writes, at its first and at
# later writes (a second worker's video, a second shard).
EXTRACTION_POINTS = [
    ("write:config.json", 1), ("staging-flush", 1), ("staging-flush", 3), ("staging-commit", 1),
    ("staging-commit", 2), ("staging-commit", 3), ("write:failures.jsonl", 1), ("staging-flush", 2),
    ("pack-copy", 1), ("pack-copy", 2), ("pack-copy", 3), ("pack-rename", 1), ("pack-rename", 2),
    ("write:index.json", 1), ("write:index.json", 2), ("write:index.json", 3), ("staging-unlink", 1),
    ("staging-unlink", 2),
]


TIMED_KILLS = (0.25, 0.5, 0.75)  # shares of an uninterrupted run's time


def extraction_kill(reference: Reference, work: Path, point: str | None, count: int = 1,
                    share: float = 0.0) -> Record:
    """Kill an extraction at a fault point (or after a share of its time), run the same command
    again: it must end complete, verified, and equal to the uninterrupted run."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = extract_command(reference.manifest, out, reference.lossless)
    what = f"{point} #{count}" if point else f"after {share:.0%} of the run"
    if point:
        killed = kill_by_fault(cmd, point, count)
    else:
        started = time.monotonic()
        killed = kill_after(cmd, share * reference.seconds)
        if not killed:
            # the reference's time includes the sweep's cold start, and a warm run ended before that
            # share of it (no kill, nothing tested): once more, at the share of this run's own time
            own = time.monotonic() - started
            shutil.rmtree(out)
            killed = kill_after(cmd, share * own)
    if not killed:
        return Record("kill -9 during extraction", what, False, "the run ended before the kill")
    again = run(cmd)
    if again.returncode != 0:
        return Record("kill -9 during extraction", what, False, f"the re-run failed: {again.stderr[-300:]}")
    ok, last = verify_ok(out)
    data = contents(out)
    lost = len(set(reference.data) - set(data))
    equal = data == reference.data
    held = ok and equal and not list(out.rglob("*.part"))
    return Record("kill -9 during extraction", what, held, "" if held else f"verify {last}, equal {equal}",
                  videos_lost=lost)


def disk_full(reference: Reference, work: Path) -> Record:
    """A disk that fills up mid-run: one line naming the path, exit status 1, the shards finished
    before it intact; the same command with space finishes the job."""
    out = work / "small" / "out"
    mounted = False
    shutil.rmtree(work / "small", ignore_errors=True)
    (work / "small").mkdir(parents=True)
    budget = 1500 * 1024  # room for the first shards of the 1.4 MB the run writes, not for all of them
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={budget}", "tmpfs", str(work / "small")],
                                 capture_output=True).returncode == 0
    how = f"a {budget >> 10} kB tmpfs" if mounted else f"RLIMIT_FSIZE {budget >> 11} kB"

    def limit():  # a file-size limit where no tmpfs can be mounted: writes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (budget // 2, budget // 2))

    cmd = extract_command(reference.manifest, out, reference.lossless)
    if not mounted:  # a limit on each file's size: shards of several videos outgrow it, staging files do not
        cmd[cmd.index("--shard-size-mb") + 1] = "0.5"
    try:
        full = run(cmd, preexec_fn=None if mounted else limit)
        first_line = full.stderr.strip().splitlines()[-1] if full.stderr.strip() else ""
        shards = ExtractionFolder(out).shard_paths()
        shards_ok = all(run([*FLOWPREP, "verify", shard]).returncode == 0 for shard in shards)
        promise = full.returncode == 1 and one_line(full) and str(out) in first_line and shards_ok \
            and (bool(shards) or not mounted)
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=100m", str(work / "small")], check=True)
        again = run(cmd)
        complete = again.returncode == 0 and contents(out) == reference.data
    finally:
        if mounted:
            subprocess.run(["umount", str(work / "small")], capture_output=True)
    held = promise and complete
    return Record("disk full during extraction", how, held,
                  f"exit {full.returncode}: {first_line[:200]}; {len(shards)} shard(s) finished before, intact: "
                  f"{shards_ok}; re-run complete: {complete}", videos_lost=0 if complete else len(reference.data))


def dask_worker_kill(work: Path, scheduler_address: str) -> Record:
    """A Dask worker killed (SIGKILL) while it writes a video: the scheduler hands its jobs to
    another worker (the nanny starts a new one), and the run ends with every video, verified."""
    import threading

    import distributed

    from flowprep.extract.config import ExtractConfig, ExtractRun
    from flowprep.extract.run import run_extract
    from flowprep.tools.verify import verify_path

    # TV-L1 on small frames: seconds a video, so that a worker can be killed in the middle of one
    root = work / "dask_videos"
    root.mkdir(parents=True, exist_ok=True)
    rows = ["video_id,path,label"]
    for i in range(6):
        write_video(root / f"v{i}.avi", moving_square_frames(14, SIZE[0], SIZE[1], 24, velocity=(1, i % 2), seed=i))
        rows.append(f"v{i},v{i}.avi,{i % 2}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = work / "dask_out"
    shutil.rmtree(out, ignore_errors=True)
    config = ExtractConfig(flow_method="tvl1", width=SIZE[0], height=SIZE[1])
    job = ExtractRun(root / "manifest.csv", root, out, config, scheduler=scheduler_address)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_extract(job, interactive=False)))
    thread.start()
    wait_until(lambda: bool(list((out / "staging").glob("*.part"))), timeout=60)  # a video is being written
    with distributed.Client(scheduler_address) as client:
        pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    thread.join(timeout=300)
    summary = result.get("summary")
    extracted = sorted(ExtractionFolder(out).read_index()) if summary else []
    held = summary is not None and not summary.failures and extracted == [f"v{i}" for i in range(6)] \
        and verify_path(out).ok
    return Record("Dask worker killed during extraction", "SIGKILL of one of 2 workers mid-video", held,
                  f"extracted {len(extracted)} of 6, failures {summary.failures if summary else 'run raised'}",
                  videos_lost=6 - len(extracted))


class Impostor:
    """A TCP server on 127.0.0.1 that is not a Dask scheduler: it accepts every connection and then
    says nothing ('silent'), answers what it is sent as an HTTP server would ('http': the
    dashboard's port, say), or sends random bytes ('garbage'); closed with its `with` block, and it
    holds each connection at most `hold_s` (it ends by itself)."""

    def __init__(self, kind: str, hold_s: float = 10.0) -> None:
        self.kind, self.hold_s = kind, hold_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(hold_s)
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:  # closed, or nobody came within hold_s
            return
        with conn:
            conn.settimeout(self.hold_s)
            try:
                if self.kind == "garbage":
                    conn.sendall(np.random.default_rng(0).bytes(4096))
                elif self.kind == "http":
                    if conn.recv(4096):  # an HTTP server answers a request, never speaks first
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                while conn.recv(4096):  # then holds the connection, reading, until the client leaves
                    pass
            except (socket.timeout, OSError):
                pass

    def __enter__(self) -> "Impostor":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self.thread.join(timeout=self.hold_s + 1)


SCHEDULER_IMPOSTORS = ("silent", "http", "garbage")
IMPOSTOR_TIMEOUT_S = 1.0


def scheduler_impostor(manifest: Path, work: Path, kind: str) -> Record:
    """`extract --scheduler` at an Impostor of `kind` with --scheduler-timeout 1: exit 2 and one
    line naming the address, within seconds (issue 30: a silent listener or an HTTP server hung
    extract for over 200 s; garbage gave an ArrayMemoryError of 3.07 EiB), nothing written."""
    out = work / f"impostor_{kind}"
    shutil.rmtree(out, ignore_errors=True)
    with Impostor(kind) as impostor:
        started = time.monotonic()
        done = run([*FLOWPREP, "extract", "--manifest", manifest, "--out", out, "--flow", "farneback", "--scheduler",
                    impostor.address, "--scheduler-timeout", str(IMPOSTOR_TIMEOUT_S)], timeout=120)
        seconds = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if " WARNING " not in line and " INFO " not in line]
    why = "did not answer within" if kind != "garbage" else "answered, but not as a Dask scheduler"
    held = done.returncode == 2 and len(lines) == 1 and why in lines[0] and impostor.address in lines[0] \
        and seconds < 30 and not any((out / "staging").glob("*.h5"))
    return Record("bad argument", f"a Dask scheduler address that is {kind}", held,
                  f"exit {done.returncode} after {seconds:.1f} s: {(lines[-1] if lines else '')[-140:]!r}")


class SmallDevice:
    """tvl1-torch on a device with room for `fields` flow fields: larger batches fail as CUDA
    fails, with torch.OutOfMemoryError (the fault, injected on the CPU)."""

    def __init__(self, fields: int, **params) -> None:
        from flowprep.flow.tvl1.solver import TorchTVL1, TVL1Params

        self.backend, self.fields, self.refused = TorchTVL1(TVL1Params(**params)), fields, 0

    @property
    def path(self) -> str:
        return self.backend.path

    def fields_that_fit(self, height: int, width: int) -> None:
        return None  # the device's room shows only as out-of-memory errors, as when CUDA's estimate is off

    def codes(self, first, second, bound, mean_subtraction):
        import torch

        if len(first) > self.fields:
            self.refused += 1
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(first)} fields")
        return self.backend.codes(first, second, bound, mean_subtraction)


def device_out_of_memory(work: Path) -> Record:
    """tvl1-torch on a device with room for 4 flow fields, asked for batches of 16 (CUDA's
    out-of-memory error, raised on the CPU): the batch halves until it fits, no video is lost, and
    the flow equals that of a device with room for every batch."""
    from flowprep.extract.batched import device_outcomes
    from flowprep.extract.config import ExtractConfig
    from flowprep.format.manifest import read_manifest

    manifest = make_videos(work / "oom_videos", directions(4), frames=8, **VIDEOS)
    videos = [(e, manifest.parent / e.path) for e in read_manifest(manifest)]
    fast = {"nscales": 3, "warps": 1}  # small frames need no deeper pyramid; the scenario is of the batching
    config = ExtractConfig(flow_method="tvl1-torch", flow_params=tuple(fast.items()), width=SIZE[0], height=SIZE[1])
    small, notes = SmallDevice(fields=4, **fast), []
    runs = {}
    for name, device in (("small", small), ("roomy", SmallDevice(fields=1000, **fast))):
        (work / f"oom_{name}").mkdir(parents=True, exist_ok=True)
        runs[name] = {o.video_id: o for o in device_outcomes(videos, config, work / f"oom_{name}", "cpu", workers=2,
                                                             max_fields=16, note=notes.append, backend=device)}
    done = [v for v, o in runs["small"].items() if o.error is None]
    same = all(_same_flow(runs["small"][v].staged, runs["roomy"][v].staged, v) for v in done)
    held = len(done) == len(videos) and small.refused >= 1 and same
    return Record("device out of memory (simulated on the CPU)", "batches of 16 on room for 4", held,
                  f"{notes[0] if notes else 'no note'}; {len(done)} of {len(videos)} videos; same flow: {same}",
                  videos_lost=len(videos) - len(done))


def _same_flow(a: Path, b: Path, video_id: str) -> bool:
    """The same flow codes, within one quantisation step (batches of other sizes sum in another order)."""
    with open_shard(a) as fa, open_shard(b) as fb:
        va, vb = video_reader(fa, video_id), video_reader(fb, video_id)
        return all(np.abs(va.flow_codes(d, i).astype(int) - vb.flow_codes(d, i)).max() <= 1
                   for d in FLOW_DIRECTIONS for i in range(va.num_frames - 1))
