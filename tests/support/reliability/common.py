"""What every reliability scenario shares: the record of a scenario, running commands, killing them,
the small dataset the faults are injected into, and an uninterrupted reference run."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import open_shard, video_reader
from tests.support.cli import FLOWPREP, environment, run
from tests.support.videos import directions, make_videos

SIZE = (96, 72)
# the scenarios' videos (tests.support.videos.make_videos): 96x72 with a 24-pixel square, two
# classes, the last two videos for test
VIDEOS = {"size": SIZE, "square": 24, "classes": 2, "tests": 2}


@dataclass
class Record:
    kind: str  # e.g. "kill -9 during extraction", "bad video"
    what: str  # e.g. "pack-copy #2", "zero bytes"
    held: bool  # the promise held
    detail: str = ""  # why not, or what happened
    videos_lost: int = 0
    checkpoints_unloadable: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def one_line(result: subprocess.CompletedProcess) -> bool:
    """The error is one line, and no traceback."""
    err = result.stderr.strip()
    # ": error:" as the commands write it (a logged config names allow_decode_errors: not an error)
    return "Traceback" not in err and len([line for line in err.splitlines() if ": error:" in line]) == 1


def extract_command(manifest: Path, out: Path, lossless: bool) -> list:
    codecs = ["--rgb-codec", "png", "--flow-codec", "png"] if lossless else []
    return [*FLOWPREP, "extract", "--manifest", manifest, "--out", out, "--flow", "farneback",
            "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers", "2", "--shard-size-mb", "0.15", *codecs]


def contents(folder: Path) -> dict:
    """Every video's frames and flow as stored (bytes), through the folder's index."""
    out = {}
    for video_id, entry in ExtractionFolder(folder).read_index().items():
        with open_shard(folder / entry.shard) as f:
            v = video_reader(f, video_id)
            out[video_id] = ([bytes(v.stored_rgb(i)) for i in range(v.num_frames)],
                             [v.flow_codes(d, i).tobytes() for d in ("forward", "backward")
                              for i in range(v.num_frames - 1)],
                             v.flow_means("forward").tobytes(), v.flow_means("backward").tobytes())
    return out


def verify_ok(folder: Path) -> tuple[bool, str]:
    result = run([*FLOWPREP, "verify", folder])
    return result.returncode == 0, (result.stdout + result.stderr).strip().splitlines()[-1:]


def kill_by_fault(cmd: list, point: str, count: int, timeout: float = 300) -> bool:
    """Run `cmd` with the fault point armed; True if it was killed there (SIGKILL of its group)."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment({"FLOWPREP_FAULT": f"{point}:{count}"}), start_new_session=True)
    try:
        return proc.wait(timeout=timeout) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 120) -> bool:
    """Poll `ready` until it holds (True), or until `proc` (if given) ends or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        if ready():
            return True
        time.sleep(0.05)
    return False


def kill_after(cmd: list, seconds: float) -> bool:
    """Run `cmd` and SIGKILL its group after `seconds`; True if it was still running then."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


@dataclass
class Reference:
    manifest: Path
    out: Path
    lossless: bool
    seconds: float
    data: dict = field(default_factory=dict)


def reference_run(root: Path, lossless: bool) -> Reference:
    manifest = make_videos(root / "videos", directions(6), frames=20, **VIDEOS)
    out = root / "reference"
    started = time.perf_counter()
    result = run(extract_command(manifest, out, lossless))
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return Reference(manifest, out, lossless, time.perf_counter() - started, contents(out))


def assert_held(records: list[Record] | Record) -> None:
    """A test's assertion on scenarios: at least one ran (an empty list checked nothing) and every
    one held, the broken ones named with their details."""
    records = records if isinstance(records, list) else [records]
    assert records, "no scenario was checked: an empty list of records holds nothing"
    broken = [x for x in records if not x.held]
    assert not broken, "; ".join(f"{x.kind}: {x.what}: {x.detail}" for x in broken)


def summary(records: list[Record]) -> dict:
    """Counts by kind, for docs/reliability.md's table."""
    kinds: dict[str, dict] = {}
    for r in records:
        k = kinds.setdefault(r.kind, {"tried": 0, "held": 0, "videos_lost": 0, "checkpoints_unloadable": 0})
        k["tried"] += 1
        k["held"] += int(r.held)
        k["videos_lost"] += r.videos_lost
        k["checkpoints_unloadable"] += r.checkpoints_unloadable
    return kinds
