"""Faults injected into training: kill -9 at the config and checkpoint writes (streams and feature
fusion), a torchrun rank killed, and training on a folder whose extraction is still running."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from flowprep.format.folder import ExtractionFolder
from tests.support.cli import PYTHON, TWOSTREAM, run
from tests.support.reliability.common import VIDEOS, Record, extract_command, kill_by_fault, verify_ok, wait_until
from tests.support.videos import directions, make_videos


def training_during_extraction(work: Path, cases: tuple[str, ...] = ("single run", "parts")) -> list[Record]:
    """`train` on a folder whose extraction is still running (videos still being packed; another
    part still running): it trains on the videos complete so far and says so in a warning naming
    the folder; never a crash in a worker; and the extraction, undisturbed, ends verified."""
    manifest = make_videos(work / "running_videos", directions(24), frames=20, **VIDEOS)

    def extract(out: Path, *extra: str) -> list:  # TV-L1: slow enough to be caught running
        cmd = extract_command(manifest, out, lossless=False) + list(extra)
        cmd[cmd.index("farneback")] = "tvl1"
        return cmd

    def caught_running(out: Path, cmd: list, ready) -> Record:
        shutil.rmtree(work / "running_run", ignore_errors=True)
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until(ready, proc)
        still_running = proc.poll() is None
        train = run([*TWOSTREAM, "train", out, "--out", work / "running_run", "--stream", "spatial",
                     "--crop-size", "48", "--epochs", "1", "--batch-size", "2", "--loader-workers", "2", "--threads", "1",
                     "--val-every", "0"])
        finished = proc.wait(timeout=600) == 0 and verify_ok(out)[0]
        warned = "still writing into" in train.stderr and "complete so far" in train.stderr
        held = still_running and train.returncode == 0 and warned and "Traceback" not in train.stderr and finished
        last = [line for line in train.stderr.splitlines() if "WARNING" in line][:1]
        return Record("training on a running extraction", what, held,
                      f"extraction running while train started: {still_running}; train exit {train.returncode}; "
                      f"{last[0][-160:] if last else 'no warning'}; the extraction then finished verified: {finished}")

    def indexed(folder: Path, count: int):
        def ready() -> bool:
            try:
                return len(ExtractionFolder(folder).read_index()) >= count
            except Exception:  # noqa: BLE001  the index of a run that has just started may not exist yet
                return False
        return ready

    records = []
    if "single run" in cases:
        out = work / "running_single"
        shutil.rmtree(out, ignore_errors=True)
        what = "videos still being packed"
        records.append(caught_running(out, extract(out), indexed(out, 3)))
    if "parts" in cases:
        out = work / "running_parts"
        shutil.rmtree(out, ignore_errors=True)
        run(extract(out, "--num-parts", "2", "--part", "0"))
        what = "another part still running"
        records.append(caught_running(out, extract(out, "--num-parts", "2", "--part", "1"),
                                      indexed(out / "parts" / "part-00001-of-00002", 1)))
    return records


TRAINING_POINTS = [("write:config.json", 1), ("checkpoint-write", 1), ("checkpoint-saved", 1),
                   ("checkpoint-write", 2), ("checkpoint-saved", 2)]


def train_command(shards: Path, out: Path, fusion_streams: tuple[Path, Path] | None = None) -> list:
    common = [shards, "--out", out, "--epochs", "3", "--batch-size", "2", "--loader-workers", "0", "--threads",
              "1", "--val-every", "0", "--lr", "0.01"]
    if fusion_streams is None:
        return [*TWOSTREAM, "train", "--stream", "temporal", "--flow-length", "4", "--crop-size", "48", *common]
    return [*TWOSTREAM, "fuse-features", "train", "--spatial", fusion_streams[0], "--temporal", fusion_streams[1],
            "--method", "attention", *common]


def weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def same_tensors(mine: dict, theirs: dict) -> bool:
    """Whether two state dicts hold equal tensors under the same names. `all(torch.equal(v, theirs[k])
    for k, v in mine.items())` alone is true for two empty dicts and ignores the names only `theirs`
    has: a checkpoint that lost its weights would pass as the uninterrupted run's."""
    import torch

    return bool(mine) and mine.keys() == theirs.keys() and all(torch.equal(v, theirs[k]) for k, v in mine.items())


def training_kill(shards: Path, work: Path, reference: Path, point: str, count: int,
                  fusion_streams: tuple[Path, Path] | None = None) -> Record:
    """Kill a training run at a fault point; the checkpoint on disk must load, and the same
    command (with --resume once a checkpoint exists) must end with the uninterrupted run's weights."""

    from twostream.core.checkpoint import load_checkpoint
    from twostream.feature_fusion.checkpoint import load_fusion_checkpoint

    kind = "kill -9 during feature-fusion training" if fusion_streams else "kill -9 during training"
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = train_command(shards, out, fusion_streams)
    if not kill_by_fault(cmd, point, count):
        return Record(kind, f"{point} #{count}", False, "the run ended before the kill")
    checkpoint = out / "checkpoint.pt"
    unloadable = 0
    if checkpoint.exists():
        try:
            (load_fusion_checkpoint if fusion_streams else load_checkpoint)(checkpoint)
        except Exception:  # noqa: BLE001  any failure to load is what this scenario counts
            unloadable = 1
    again = run(cmd + (["--resume"] if checkpoint.exists() else []))
    if again.returncode != 0:
        return Record(kind, f"{point} #{count}", False, f"the re-run failed: {again.stderr[-300:]}",
                      checkpoints_unloadable=unloadable)
    mine, theirs = weights(checkpoint), weights(reference)
    same = same_tensors(mine, theirs)
    return Record(kind, f"{point} #{count}", same and not unloadable, "" if same else "other weights than the "
                  "uninterrupted run", checkpoints_unloadable=unloadable)


def torchrun(*args) -> list:
    """Two processes on this machine (gloo on the CPU), each running `python -m twostream ...`."""
    return [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "twostream", *args]


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` among the launcher's children, or None."""
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(child)
    return None


def checkpoint_epoch(path: Path) -> int:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)["epoch"]
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def torchrun_rank_kill(shards: Path, work: Path) -> Record:
    """One of two torchrun ranks killed (SIGKILL) after the first epoch: the run stops (no rank
    waits for ever on the dead one), the checkpoint loads, and the same command with --resume
    ends with the weights of an uninterrupted two-process run."""

    from twostream.core.checkpoint import load_checkpoint

    what = "SIGKILL of rank 1 of 2 after the first checkpoint"
    env = {"OMP_NUM_THREADS": "1"}
    reference, out = work / "ddp_reference", work / "ddp_run"
    for folder in (reference, out):
        shutil.rmtree(folder, ignore_errors=True)
    done = run(torchrun(*train_command(shards, reference)[3:]), env=env)
    if done.returncode != 0:
        return Record("torchrun rank killed", what, False, f"the uninterrupted run failed: {done.stderr[-300:]}")
    cmd = torchrun(*train_command(shards, out)[3:])
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env}, start_new_session=True)
    try:
        wait_until(lambda: checkpoint_epoch(out / "checkpoint.pt") >= 1, proc)
        victim = _rank_pid(proc.pid, 1) if proc.poll() is None else None
        if victim is None:
            return Record("torchrun rank killed", what, False, "the run ended before a rank could be killed")
        os.kill(victim, signal.SIGKILL)
        try:
            stopped = proc.wait(timeout=120) != 0
        except subprocess.TimeoutExpired:
            stopped = False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    unloadable = 0
    try:
        load_checkpoint(out / "checkpoint.pt")
    except Exception:  # noqa: BLE001  any failure to load is what this scenario counts
        unloadable = 1
    again = run(cmd + ["--resume"], env=env)
    if again.returncode != 0:
        return Record("torchrun rank killed", what, False, f"the re-run failed: {again.stderr[-300:]}",
                      checkpoints_unloadable=unloadable)
    mine, theirs = weights(out / "checkpoint.pt"), weights(reference / "checkpoint.pt")
    same = same_tensors(mine, theirs)
    held = stopped and same and not unloadable
    return Record("torchrun rank killed", what, held, f"the run stopped: {stopped}; same weights as uninterrupted: "
                  f"{same}", checkpoints_unloadable=unloadable)
