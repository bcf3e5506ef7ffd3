"""Staging is bounded by the shard size, not by the run's length (issue 19 item 6): workers faster
than the packing wait while the finished videos in staging exceed STAGING_SHARDS shards' worth."""
from __future__ import annotations

import threading
import time

import pytest

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import outcomes, run_folder
from flowprep.extract.staged_run import run_jobs, staged_bytes, staged_run, staging_bound
from flowprep.format.folder import ExtractionFolder
from flowprep.format.manifest import read_manifest
from tests.support.reliability.common import SIZE, make_dataset

pytestmark = pytest.mark.slow


def test_with_small_shards_and_a_slow_packer_the_unpacked_staging_stays_under_its_bound(tmp_path):
    manifest = make_dataset(tmp_path / "videos", videos=12)
    config = ExtractConfig(flow_method="farneback", width=SIZE[0], height=SIZE[1])
    run = ExtractRun(manifest, manifest.parent, tmp_path / "out", config, workers=2, shard_size_mb=0.02)
    shard_bytes = run.shard_size_mb * 1e6
    folder = run_folder(run)
    samples: list[int] = []
    largest = 0  # the largest staging file seen
    finished = threading.Event()

    def sample() -> None:  # the staging folder's size, as `du` would see it during the run
        nonlocal largest
        while not finished.is_set():
            samples.append(staged_bytes(folder.staging_dir))
            for p in folder.staging_dir.glob("*.h5") if folder.staging_dir.is_dir() else []:
                try:
                    largest = max(largest, p.stat().st_size)
                except FileNotFoundError:  # packed meanwhile
                    pass
            time.sleep(0.005)

    def slow_packer(outcome) -> None:
        time.sleep(0.4)  # the main process slower than the workers, as on a slow (network) file system

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with staged_run(folder, "extract", config.to_dict(), False, RuntimeError) as staging:
            todo = read_manifest(manifest)
            result = run_jobs(staging, len(todo), outcomes(run, todo, config.to_json(), staging.dir), config.to_json(),
                              shard_bytes, slow_packer, interactive=False)
    finally:
        finished.set()
        sampler.join()
    assert not result.failures and len(ExtractionFolder(folder.root).read_index()) == 12
    # a worker checks for room before a video: at most one video a worker beyond the bound
    assert max(samples) <= staging_bound(shard_bytes) + run.n_workers * largest, \
        f"{max(samples)} bytes staged at once; bound {staging_bound(shard_bytes):.0f} + {run.n_workers} x {largest}"
