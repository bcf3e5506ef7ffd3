"""A run killed at any moment (SIGKILL to its whole process group) and started again with the
same command ends complete and consistent: no video lost, none duplicated, no partial file."""
from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import item_count, iter_videos, open_shard
from tests.support.cli import FLOWPREP, run
from tests.support.reliability.common import wait_until
from tests.support.videos import make_videos

N_VIDEOS, FRAMES = 6, 24
VELOCITIES = [(1, 0), (0, 1), (-1, 0), (0, -1), (2, 1), (-2, -1)]


@pytest.fixture()
def videos(tmp_path) -> Path:
    make_videos(tmp_path, {f"v{i}": velocity for i, velocity in enumerate(VELOCITIES[:N_VIDEOS])}, FRAMES, classes=3)
    return tmp_path


def command(videos: Path, out: Path) -> list[str]:
    # TV-L1 on small frames: slow enough (a few seconds a video) to be killed mid-way;
    # tiny shards so that a kill can also land while a shard is being packed.
    return [*FLOWPREP, "extract", "--manifest", str(videos / "manifest.csv"),
            "--out", str(out), "--flow", "tvl1", "--size", "96x72", "--workers", "2", "--shard-size-mb", "0.3"]


def run_and_kill(cmd: list[str], ready, timeout: float = 120) -> bool:
    """Start cmd in its own process group; SIGKILL the group once ready() holds. False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return wait_until(ready, proc, timeout)  # the group is killed below, ready or not
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_twice_then_rerun_gives_every_video_exactly_once(videos, tmp_path):
    out = tmp_path / "out"
    cmd = command(videos, out)
    staging = out / "staging"
    # first kill: while the first videos are still being computed
    assert run_and_kill(cmd, lambda: staging.is_dir() and any(staging.glob("*.part")))
    # second kill: once at least one shard exists, mid-way through the rest
    assert run_and_kill(cmd, lambda: out.is_dir() and len(ExtractionFolder(out).shard_paths()) >= 1)
    done = run(cmd, timeout=300)
    assert done.returncode == 0, done.stderr

    assert not list(out.rglob("*.part")) and not staging.exists()
    seen = Counter()
    for shard in ExtractionFolder(out).shard_paths():
        with open_shard(shard) as f:  # every shard opens and has the right version
            for video in iter_videos(f):
                seen[video.video_id] += 1
                assert video.num_frames == FRAMES
                group = f[f"videos/{video.video_id}"]
                assert item_count(group, "rgb") == FRAMES
                for direction in ("forward", "backward"):
                    assert item_count(group, f"flow_{direction}") == FRAMES - 1
                    assert video.flow_codes(direction, FRAMES - 2).shape == (72, 96, 2)
    assert seen == Counter({f"v{i}": 1 for i in range(N_VIDEOS)})
    index = ExtractionFolder(out).read_index()
    assert set(index) == set(seen)
    assert all((out / e.shard).exists() for e in index.values())
