"""Signals from schedulers, concurrent runs and the scale of resume (issue 19):

- SIGTERM (and SIGINT) to an extraction's main process, or to its whole process group: one line,
  exit 143 (130), no worker alive once the run's lock is free, and the same command ends equal
  to an uninterrupted run;
- SIGTERM to training and feature-fusion training mid-epoch: a checkpoint at the next batch
  boundary, well inside SLURM's 30 s, one line, and --resume ends with the uninterrupted run's
  weights (torch.equal);
- two `train` runs into one --out at once: the second refused in one line, the first unharmed;
- resume of a large folder (many staged videos): the first new video soon; the unpacked staging
  files of a run with small shards stay under the bound.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from runkit.lock import LOCK_FILE
from tests.support.cli import FLOWPREP, run
from tests.support.reliability.common import (
    SIZE,
    VIDEOS,
    Record,
    Reference,
    contents,
    extract_command,
    verify_ok,
    wait_until,
)
from tests.support.reliability.training import checkpoint_epoch, same_tensors, train_command, weights
from tests.support.videos import directions, make_videos

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
GRACE_S = 30.0  # SLURM's default KillWait: SIGKILL follows SIGTERM after this long


def signal_reference(root: Path) -> Reference:
    """An uninterrupted extraction of 24 videos (lossless codecs): long enough for a signal to land
    while videos are in flight."""
    manifest = make_videos(root / "videos", directions(24), frames=20, **VIDEOS)
    out = root / "reference"
    started = time.perf_counter()
    result = run(extract_command(manifest, out, lossless=True))
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return Reference(manifest, out, True, time.perf_counter() - started, contents(out))


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    except OSError:  # the process ended meanwhile
        pass
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _lock_free(folder: Path) -> bool:
    """True once no process holds the folder's lock (taken and let go at once)."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _one_stop_line(stderr: str, needle: str) -> tuple[bool, str]:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return "Traceback" not in stderr and needle in last, last


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def extraction_signal(reference: Reference, work: Path, name: str = "SIGTERM", to: str = "main") -> Record:
    """`name` to the extraction's main process (`kill PID`) or to its process group (SLURM,
    Ctrl-C) while videos are in flight: it exits within seconds with one line and 128 + the
    signal's number; at the moment its lock is free no worker process is alive (none writes into
    the folder after); the same command then ends verified and equal to an uninterrupted run."""
    kind, what = "signals", f"{name} to an extraction's {'main process' if to == 'main' else 'process group'}"
    out = work / "signalled"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(c) for c in extract_command(reference.manifest, out, reference.lossless)]
    # as a command typed at a terminal: SIGINT at its default even when this sweep was started in
    # the background of a script, whose asynchronous commands inherit SIGINT ignored (POSIX)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        staged = wait_until(lambda: any(p.suffix == ".h5" for p in (out / "staging").glob("*.h5")), proc, timeout=120)
        # the worker processes (not the resource trackers that outlive them by design: they write nothing)
        workers = [p for p in _descendants(proc.pid) if b"resource_tracker" not in _cmdline(p)]
        if not staged or proc.poll() is not None:
            return Record(kind, what, False, "the run ended before the signal")
        sent = time.monotonic()
        (os.kill if to == "main" else os.killpg)(proc.pid, SIGNALS[name])
        wait_until(lambda: _lock_free(out), timeout=GRACE_S)
        alive_at_release = [p for p in workers if _alive(p)]
        status = proc.wait(timeout=GRACE_S)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    one, last = _one_stop_line("".join(stderr), "run the same command again to resume")
    again = run(cmd)
    ok, verified = verify_ok(out)
    equal = again.returncode == 0 and contents(out) == reference.data
    held = status == 128 + SIGNALS[name] and one and not alive_at_release and seconds < GRACE_S and ok and equal
    return Record(kind, what, held, f"exit {status} after {seconds:.1f} s: {last[-120:]!r}; processes alive when the "
                  f"lock was free: {len(alive_at_release)} of {len(workers)}; the same command: exit "
                  f"{again.returncode}, verify {verified}, equal to an uninterrupted run: {equal}")


def training_signal(shards: Path, work: Path, reference: Path, name: str = "SIGTERM", to: str = "main",
                    fusion_streams: tuple[Path, Path] | None = None, workers: int = 0) -> Record:
    """`name` to a training run in its second epoch: it saves a checkpoint at the next batch
    boundary (mid-epoch), within SLURM's grace, says so in one line and exits 128 + the signal's
    number; the same command with --resume ends with the weights of the uninterrupted run
    `reference` (torch.equal): the resumed epoch skips the batches done and sees the same samples."""
    import torch

    kind = "signals"
    what = f"{name} to {'feature-fusion ' if fusion_streams else ''}training's " \
           f"{'main process' if to == 'main' else 'process group'} mid-epoch ({workers} loader workers)"
    out = work / "signalled_run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(c) for c in train_command(shards, out, fusion_streams)]
    cmd[cmd.index("--loader-workers") + 1] = str(workers)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: checkpoint_epoch(out / "checkpoint.pt") >= 1, proc, timeout=300)
        if proc.poll() is not None:
            return Record(kind, what, False, f"the run ended before the signal: {proc.stderr.read()[-300:]}")
        sent = time.monotonic()
        (os.kill if to == "main" else os.killpg)(proc.pid, SIGNALS[name])
        _, err = proc.communicate(timeout=GRACE_S)
        seconds = time.monotonic() - sent
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return Record(kind, what, False, f"still running {GRACE_S:.0f} s after the signal")
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    batches = state.get("epoch_totals", {}).get("batches", 0)
    one, last = _one_stop_line(err, "--resume")
    again = run(cmd + ["--resume"])
    same = again.returncode == 0 and same_tensors(weights(out / "checkpoint.pt"), weights(reference))
    held = proc.returncode == 128 + SIGNALS[name] and one and batches > 0 and seconds < GRACE_S and same
    return Record(kind, what, held, f"exit {proc.returncode} after {seconds:.1f} s: {last[-160:]!r}; checkpoint in "
                  f"epoch {state['epoch'] + 1} after batch {batches}; --resume: exit {again.returncode}, the "
                  f"uninterrupted run's weights: {same}")


def concurrent_training(shards: Path, work: Path, reference: Path,
                        fusion_streams: tuple[Path, Path] | None = None) -> Record:
    """Two runs into one --out at once (two jobs of one array): the second is refused in one line
    naming the folder while the first runs; the first ends with the weights it would have alone."""
    what = f"two {'fuse-features train' if fusion_streams else 'train'} runs into one --out"
    out = work / "shared_run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(c) for c in train_command(shards, out, fusion_streams)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (out / "config.json").exists(), first, timeout=300)  # the first holds the folder
        running = first.poll() is None
        # paused while the second starts (seconds of imports), so that a tiny run is still running
        # then, as a real one would be; a pause changes nothing in what it computes
        first.send_signal(signal.SIGSTOP)
        try:
            second = run(cmd)
        finally:
            first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    lines = [line for line in second.stderr.strip().splitlines() if line.strip()]
    refused = second.returncode == 2 and len(lines) == 1 and "in use by another training run" in lines[0] \
        and str(out) in lines[0]
    same = first.returncode == 0 and same_tensors(weights(out / "checkpoint.pt"), weights(reference))
    held = running and refused and same
    return Record("concurrent training runs", what, held, f"the first was running: {running}; the second: exit "
                  f"{second.returncode}, {lines[-1][-140:] if lines else 'no message'!r}; the first ended with its "
                  f"own weights: {same}")


def first_new_video_after_resume(root: Path, videos: int, staged: int) -> dict:
    """Seconds from the start of a resumed `flowprep extract` to its first new video being written,
    on a folder whose `videos`-row manifest has `staged` videos finished but not packed (real
    staging files of a tiny video, each under its own id); the run is then stopped with SIGTERM.
    benchmarks/bench_scale.py measures it at Kinetics scale."""
    import h5py

    from flowprep.format.folder import ExtractionFolder
    from flowprep.format.shards import VIDEOS_GROUP
    from tests.support.videos import moving_square_frames, write_video

    options = ["--flow", "farneback", "--size", "32x24", "--max-frames", "2", "--workers", "2"]
    root.mkdir(parents=True, exist_ok=True)
    write_video(root / "clip.avi", moving_square_frames(4, 32, 24, 8, velocity=(1, 0)))
    rows = ["video_id,path,label"] + [f"v{i:06d},clip.avi,{i % 400}" for i in range(videos)]
    (root / "first.csv").write_text("\n".join(rows[:2]) + "\n")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = root / "out"
    shutil.rmtree(out, ignore_errors=True)
    first = run([*FLOWPREP, "extract", "--manifest", root / "first.csv", "--out", out, *options])
    if first.returncode != 0:
        raise RuntimeError(first.stderr[-2000:])
    template = ExtractionFolder(out).shard_paths()[0].read_bytes()
    staging = out / "staging"
    staging.mkdir()
    for i in range(1, staged + 1):  # the shard's one video under other ids: what a stopped run left
        path = staging / f"v{i:06d}.h5"
        path.write_bytes(template)
        with h5py.File(path, "r+") as f:
            f[VIDEOS_GROUP].move("v000000", f"v{i:06d}")
    staged_mb = sum(p.stat().st_size for p in staging.iterdir()) / 1e6
    started = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in [*FLOWPREP, "extract", "--manifest", root / "manifest.csv", "--out", out,
                                              *options]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(staging.glob("*.part")), proc, timeout=1800)
        seconds = time.perf_counter() - started
        reached = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait()
    return {"videos": videos, "staged": staged, "staged_mb": staged_mb, "first_new_video_s": seconds,
            "reached": reached, "sigterm_exit": status}


RESUME_LIMIT_S = 30.0  # "in seconds": imports and reading the manifest included


def scale_of_resume(work: Path, videos: int = 20_000, staged: int = 6_000) -> Record:
    """A resumed run of `videos` with `staged` finished videos not yet packed reaches its first new
    video within RESUME_LIMIT_S (the resume check once cost 42 ms a manifest row at 33,514 staged)."""
    found = first_new_video_after_resume(work / "resume_scale", videos, staged)
    held = found["reached"] and found["first_new_video_s"] < RESUME_LIMIT_S and found["sigterm_exit"] == 143
    return Record("scale of resume", f"{videos:,} videos, {staged:,} staged", held,
                  f"first new video after {found['first_new_video_s']:.1f} s (limit {RESUME_LIMIT_S:.0f} s); "
                  f"SIGTERM then: exit {found['sigterm_exit']}")


def staging_bound_run(work: Path) -> Record:
    """With small shards (0.02 MB) and a packer slower than the workers (0.4 s a video, a slow
    file system), the finished videos waiting in staging never exceed the bound (3 shards' worth)
    plus one video a worker; the run ends complete."""
    from flowprep.extract.config import ExtractConfig, ExtractRun
    from flowprep.extract.progress import Progress
    from flowprep.extract.run import extraction_folder, start_jobs
    from flowprep.extract.staged_run import max_staged_bytes, pack_outcomes, staged_run
    from flowprep.format.folder import ExtractionFolder
    from flowprep.format.manifest import read_manifest
    manifest = make_videos(work / "bound_videos", directions(12), frames=20, **VIDEOS)
    out = work / "bound_out"
    shutil.rmtree(out, ignore_errors=True)
    config = ExtractConfig(flow_method="farneback", width=SIZE[0], height=SIZE[1])
    job = ExtractRun(manifest, manifest.parent, out, config, workers=2, shard_size_mb=0.02)
    shard_bytes = job.shard_size_mb * 1e6
    folder = extraction_folder(job)
    with StagingSampler(folder.staging_dir) as sampled:
        with staged_run(folder, "extract", config, False) as staging:
            todo = read_manifest(manifest)
            progress = Progress(len(todo), interactive=False)
            result = pack_outcomes(staging, lambda: start_jobs(job, todo, staging.dir, job.n_workers, progress.note, {}),
                                   progress, config.to_json(), shard_bytes,
                                   on_success=lambda outcome: time.sleep(0.4))  # a slow packer
    limit = max_staged_bytes(shard_bytes) + job.n_workers * sampled.largest
    complete = not result.failures and len(ExtractionFolder(out).read_index()) == 12
    held = complete and sampled.most <= limit
    return Record("scale of resume", "staging with 0.02 MB shards and a slow packer", held,
                  f"at most {sampled.most / 1e3:.0f} kB staged at once; bound {max_staged_bytes(shard_bytes) / 1e3:.0f} kB "
                  f"+ {job.n_workers} x {sampled.largest / 1e3:.0f} kB; complete: {complete}")


class StagingSampler:
    """While open, samples a staging folder every 5 ms: `most`, the most bytes of finished videos
    waiting in it at once (staged_run.staged_bytes), and `largest`, the largest one file."""

    def __init__(self, staging_dir: Path) -> None:
        self.staging_dir, self.most, self.largest = staging_dir, 0, 0
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        from flowprep.extract.staged_run import staged_bytes

        while not self._finished.is_set():
            self.most = max(self.most, staged_bytes(self.staging_dir))
            for p in self.staging_dir.glob("*.h5") if self.staging_dir.is_dir() else []:
                try:
                    self.largest = max(self.largest, p.stat().st_size)
                except FileNotFoundError:  # packed meanwhile
                    pass
            time.sleep(0.005)

    def __enter__(self) -> "StagingSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._finished.set()
        self._thread.join()


def torchrun_signal(shards: Path, work: Path) -> Record:
    """SIGTERM to a two-process torchrun training (its group, as SLURM sends it) in the second
    epoch: both processes stop after the same batch (they agree after every batch), the main one
    saves the mid-epoch checkpoint, and --resume ends with the uninterrupted two-process run's weights."""
    import torch

    from tests.support.reliability.training import torchrun

    what = "SIGTERM to a torchrun training of 2 processes mid-epoch"
    env = {"OMP_NUM_THREADS": "1"}
    reference, out = work / "ddp_signal_reference", work / "ddp_signal_run"
    for folder in (reference, out):
        shutil.rmtree(folder, ignore_errors=True)
    done = run(torchrun(*train_command(shards, reference)[3:]), env=env)
    if done.returncode != 0:
        return Record("signals", what, False, f"the uninterrupted run failed: {done.stderr[-300:]}")
    cmd = [str(c) for c in torchrun(*train_command(shards, out)[3:])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, start_new_session=True)
    try:
        wait_until(lambda: checkpoint_epoch(out / "checkpoint.pt") >= 1, proc, timeout=300)
        if proc.poll() is not None:
            return Record("signals", what, False, "the run ended before the signal")
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=GRACE_S)
        seconds = time.monotonic() - sent
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return Record("signals", what, False, f"still running {GRACE_S:.0f} s after the signal")
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    batches = state.get("epoch_totals", {}).get("batches", 0)
    stopped = "checkpoint" in err and "saved" in err and "--resume" in err
    again = run(cmd + ["--resume"], env=env)
    same = again.returncode == 0 and same_tensors(weights(out / "checkpoint.pt"), weights(reference / "checkpoint.pt"))
    held = stopped and batches > 0 and seconds < GRACE_S and same
    return Record("signals", what, held, f"exit {proc.returncode} after {seconds:.1f} s; checkpoint in epoch "
                  f"{state['epoch'] + 1} after batch {batches}; --resume: exit {again.returncode}, the "
                  f"uninterrupted run's weights: {same}")


EARLY_COMMANDS = ("extract", "export-rawframes", "import-rawframes")


def early_commands(root: Path, manifest: Path, extraction: Path) -> dict[str, list[str]]:
    """The command lines of EARLY_COMMANDS: an extraction of `manifest`, an export of `extraction`,
    an import of ROOT/tree (early_reference makes it), each into its own folder under `root`."""
    return {"extract": [str(c) for c in extract_command(manifest, root / "extract_out", lossless=False)],
            "export-rawframes": [*map(str, FLOWPREP), "export-rawframes", str(extraction), "--format", "png",
                                 "--workers", "2", "--out", str(root / "exported")],
            "import-rawframes": [*map(str, FLOWPREP), "import-rawframes", str(root / "tree"), "--out",
                                 str(root / "imported"), "--workers", "2"]}


EARLY_VIDEOS = 48


def early_reference(root: Path) -> dict[str, list[str]]:
    """early_commands on a small dataset, with their inputs made here: an extraction and its
    export (PNG, so that its import has work to do)."""
    # enough videos (EARLY_VIDEOS) that a Ctrl-C 0.5 s after the workers start lands before the end,
    # also on an idle machine (of 2 videos, each command had ended first)
    manifest = make_videos(root / "videos", directions(EARLY_VIDEOS), frames=20, **VIDEOS)
    commands = early_commands(root, manifest, root / "extracted")
    tree = [*commands["export-rawframes"][:-1], str(root / "tree")]
    for command in (extract_command(manifest, root / "extracted", lossless=False), tree):
        done = run(command)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
    return commands


def _outputs(command: list[str]) -> Path:
    return Path(command[command.index("--out") + 1])


def early_group_sigint(commands: dict[str, list[str]], name: str, after: float = 0.15) -> Record:
    """Ctrl-C (SIGINT to the process group) `after` seconds after `name`'s worker processes appear,
    while they are still importing (a SIGINT sooner than ~0.05 s, before Python set its handler,
    ended them silently): exit 130 with the one line, and no KeyboardInterrupt traceback from a
    worker (they start with SIGINT ignored: signals.workers_start_ignoring_sigint); no process of
    the run is left."""
    what = f"SIGINT to {name}'s process group {after:.2f} s after its workers started"
    out = _outputs(commands[name])
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(commands[name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_sigint_default)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    seen: list[int] = []
    try:
        def workers_started() -> bool:
            seen[:] = [p for p in _descendants(proc.pid) if b"popen_loky" in _cmdline(p)]
            return bool(seen)

        started = wait_until(workers_started, proc, timeout=120)
        if not started:
            return Record("signals", what, False, f"no worker started (exit {proc.poll()})")
        time.sleep(after)
        if proc.poll() is not None:  # a tiny run on an idle machine can finish first: nothing was tested
            return Record("signals", what, False, f"the run ended before the signal: exit {proc.returncode}")
        os.killpg(proc.pid, signal.SIGINT)
        status = proc.wait(timeout=GRACE_S)
        gone = wait_until(lambda: not any(_alive(p) for p in seen), timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    err = "".join(stderr)
    lines = [line for line in err.splitlines() if line.strip() and " INFO " not in line and " WARNING " not in line]
    held = status == 130 and len(lines) == 1 and "interrupted" in lines[0] and "KeyboardInterrupt" not in err \
        and gone
    return Record("signals", what, held, f"exit {status}; {len(lines)} line(s) besides the log, the last "
                  f"{(lines[-1] if lines else '')[-100:]!r}; workers ended: {gone}")


CHECK_VIDEOS = 240


def stopped_manifest_check(work: Path, asked: int = 1000) -> Record:
    """`manifest check --workers 1000 --full`, SIGTERM to its main process once its workers run:
    at most one worker a core (as an extraction's), exit 143 with one line, and none of its
    workers alive after it (issue 30: 215 processes, 145 of them alive 3 minutes after SIGTERM)."""
    from flowprep.extract.staged_run import available_cores
    what = f"SIGTERM to manifest check --workers {asked}"
    # enough videos that the check outlasts the signal on an idle machine (24 videos took 0.75 s in
    # all: a SIGTERM 0.3 s after the workers came landed after the check's last line, exit 0)
    manifest = make_videos(work / "check_videos", directions(CHECK_VIDEOS), frames=20, **VIDEOS)
    cmd = [*map(str, FLOWPREP), "manifest", "check", str(manifest), "--full", "--workers", str(asked)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    most: list[int] = []
    try:
        def count() -> bool:
            workers = [p for p in _descendants(proc.pid) if b"popen_loky" in _cmdline(p)]
            most.extend(workers)
            return len(set(most)) >= min(asked, available_cores())

        wait_until(count, proc, timeout=120)
        time.sleep(0.3)
        count()
        if proc.poll() is not None:
            return Record("signals", what, False, f"the check ended before the signal: exit {proc.returncode}")
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=GRACE_S)
        gone = wait_until(lambda: not any(_alive(p) for p in set(most)), timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    one, last = _one_stop_line(err, "terminated")
    workers = len(set(most))
    held = proc.returncode == 143 and one and workers <= available_cores() and gone
    return Record("signals", what, held, f"{workers} worker process(es) on {available_cores()} core(s); exit "
                  f"{proc.returncode}: {last[-100:]!r}; workers ended with it: {gone}")
