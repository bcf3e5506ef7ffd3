"""What a run says once about how it was asked to run (issue 19 item 8): more worker processes than
cores (capped: they cannot help CPU flow, and each costs memory), and a plain tcp:// scheduler
(its traffic is neither encrypted nor authenticated)."""
from __future__ import annotations

import logging
import os

import pytest

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.folder import ExtractionFolder
from tests.support.cli import FLOWPREP, run
from tests.support.reliability.common import SIZE, VIDEOS, extract_command
from tests.support.videos import directions, make_videos

pytestmark = pytest.mark.slow


def test_more_workers_than_cores_are_capped_with_one_warning(tmp_path):
    cores = len(os.sched_getaffinity(0))
    manifest = make_videos(tmp_path / "videos", directions(6), frames=20, **VIDEOS)
    cmd = extract_command(manifest, tmp_path / "out", lossless=False)
    cmd[cmd.index("--workers") + 1] = str(cores + 30)
    result = run(cmd)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"--workers {cores + 30}" in warnings[0] and f"using {cores}" in warnings[0]
    assert f"with farneback on {cores} worker(s)" in result.stderr
    assert len(ExtractionFolder(tmp_path / "out").read_index()) == 6


def test_workers_within_the_cores_say_nothing(tmp_path):
    manifest = make_videos(tmp_path / "videos", directions(2), frames=20, **VIDEOS)
    result = run([*FLOWPREP, "extract", "--manifest", manifest, "--out", tmp_path / "out", "--flow", "farneback",
                  "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers", "1"])
    assert result.returncode == 0 and "WARNING" not in result.stderr


distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")


def test_a_plain_tcp_scheduler_is_warned_of_once_at_run_time(tmp_path, caplog):
    manifest = make_videos(tmp_path / "videos", directions(2), frames=20, **VIDEOS)
    config = ExtractConfig(flow_method="farneback", width=SIZE[0], height=SIZE[1])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        assert c.scheduler_address.startswith("tcp://")
        with caplog.at_level(logging.WARNING, logger="flowprep"):
            summary = run_extract(ExtractRun(manifest, manifest.parent, tmp_path / "out", config,
                                             scheduler=c.scheduler_address), interactive=False)
    assert summary.finished == 2 and not summary.failures
    warned = [r.getMessage() for r in caplog.records if r.name == "flowprep" and r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert c.scheduler_address in warned[0] and "not encrypted and not authenticated" in warned[0]
