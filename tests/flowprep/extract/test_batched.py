"""The pipeline of a batched backend (tvl1-torch), run on the CPU as CI has no GPU: windows of
many videos merged into batches, frames of different sizes kept apart, an out-of-memory error
halving the batch without losing a video, several device processes taking videos from one queue,
and the run's promises (failures, resume, verify) as on the worker-process path."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowprep.extract.batched import FlowBatcher, device_outcomes, multi_device_outcomes
from flowprep.extract.config import ExtractConfig
from flowprep.extract.video_job import both_directions
from flowprep.flow.tvl1.solver import TorchTVL1, TVL1Params
from flowprep.format.folder import ExtractionFolder
from flowprep.format.manifest import read_manifest
from flowprep.format.quantize import dequantize
from flowprep.format.shards import open_shard, video_reader
from tests.conftest import REPO
from tests.support.cli import flowprep
from tests.support.reliability import SmallDevice
from tests.support.videos import MOTIONS, make_videos, texture

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"nscales": 3, "warps": 1}  # tiny frames need no deeper pyramid; the test is of the pipeline


def windows(height: int, width: int, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    frames = [texture(height, width, seed + i) for i in range(count + 1)]
    return [both_directions([frames[i]], [frames[i + 1]]) for i in range(count)]


def test_the_batcher_merges_windows_and_keeps_frame_sizes_apart():
    backend = TorchTVL1(TVL1Params(**{"nscales": 2, "warps": 1}))
    batcher = FlowBatcher(backend, bound=20.0, mean_subtraction=True, max_fields=8)
    small, large = windows(32, 40, 3, seed=0), windows(48, 56, 2, seed=10)
    futures = [(w, batcher.submit(*w)) for w in small + large]
    batcher.close()
    for (first, second), future in futures:
        codes, means = future.result()
        expected_codes, expected_means = backend.codes(first, second, 20.0, True)
        assert codes.shape == (2, 2, *first.shape[1:])
        assert np.abs(codes.astype(int) - expected_codes).max() <= 1
        np.testing.assert_allclose(means, expected_means, atol=1e-4)
    assert batcher.batches >= 2 and batcher.fields == 10  # two sizes: never one batch


def test_the_batcher_runs_a_one_pair_backend_through_the_batch_protocol():
    """Everything the batcher asks of a backend is BatchFlow's: a one-pair backend (farneback, as a
    PairLoop) computes the same codes through it, with no device bound and its own path."""
    from flowprep.flow.registry import FLOW_METHODS

    backend = FLOW_METHODS["farneback"].create_batch()
    assert backend.fields_that_fit(32, 40) is None
    batcher = FlowBatcher(backend, bound=20.0, mean_subtraction=True, max_fields=4)
    futures = [(w, batcher.submit(*w)) for w in windows(32, 40, 3, seed=0)]
    batcher.close()
    for (first, second), future in futures:
        codes, means = future.result()
        expected_codes, expected_means = backend.codes(first, second, 20.0, True)
        assert np.array_equal(codes, expected_codes) and np.array_equal(means, expected_means)
    assert batcher.path == "pairs" and batcher.fields == 6


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    manifest = make_videos(tmp_path_factory.mktemp("batched") / "videos", MOTIONS, frames=8)
    return [(e, manifest.parent / e.path) for e in read_manifest(manifest)]


def tvl1_torch_config(**options) -> ExtractConfig:
    return ExtractConfig(flow_method="tvl1-torch", flow_params=tuple(FAST.items()), width=128, height=96,
                         **options)


def test_out_of_memory_halves_the_batch_and_loses_no_video(videos, tmp_path):
    notes = []
    device = SmallDevice(fields=4, **FAST)
    (tmp_path / "oom").mkdir()
    outcomes = list(device_outcomes(videos, tvl1_torch_config(), tmp_path / "oom", "cpu", workers=2, max_fields=16,
                                    note=notes.append, backend=device))
    assert sorted(o.video_id for o in outcomes) == sorted(MOTIONS) and not [o for o in outcomes if o.error]
    assert device.refused >= 1 and notes[0].startswith("device out of memory for a batch of")
    # how many fields a batch holds depends on which windows are waiting: the cap ends at most 4
    cap = re.search(r"batches of at most (\d+) from now on$", notes[-1])
    assert cap and 1 <= int(cap.group(1)) <= 4
    # the flow is the flow: the same codes as a device with room for every batch
    (tmp_path / "roomy").mkdir()
    roomy = {o.video_id: o for o in device_outcomes(videos, tvl1_torch_config(), tmp_path / "roomy", "cpu", 2, 16,
                                                    backend=SmallDevice(fields=1000, **FAST))}
    for outcome in outcomes:
        with open_shard(outcome.staged) as a, open_shard(roomy[outcome.video_id].staged) as b:
            va, vb = video_reader(a, outcome.video_id), video_reader(b, outcome.video_id)
            for i in range(va.num_frames - 1):
                assert np.abs(va.flow_codes("forward", i).astype(int) - vb.flow_codes("forward", i)).max() <= 1


def test_several_device_processes_take_videos_from_one_queue(videos, tmp_path):
    paths: dict[str, str] = {}
    outcomes = list(multi_device_outcomes(videos, tvl1_torch_config(), tmp_path, ["cpu", "cpu"], workers=1, max_fields=8,
                                          paths=paths))
    assert sorted(o.video_id for o in outcomes) == sorted(MOTIONS)  # each video once
    assert paths == {"cpu": "eager"}  # each device process reported the way its flow ran
    assert all(o.error is None and o.staged.exists() for o in outcomes)


def test_extract_with_tvl1_torch_on_the_cpu(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", MOTIONS, frames=6, missing=True)
    out = tmp_path / "out"
    args = ["extract", "--manifest", manifest, "--out", out, "--flow", "tvl1-torch", "--device", "cpu",
            "--workers", "2", "--size", "128x96", *[a for k, v in FAST.items() for a in ("--flow-param", f"{k}={v}")]]
    status, stdout, _ = flowprep(capsys, *args)
    assert status == 3 and f"{len(MOTIONS)} extracted now, 0 already done, 1 failed" in stdout
    assert "flow: cpu eager" in stdout  # the summary says which way the flow ran
    folder = ExtractionFolder(out)
    assert [f.video_id for f in folder.read_failures()] == ["ghost"]
    assert flowprep(capsys, "verify", out)[0] == 0
    entry = folder.read_index()["right"]
    with open_shard(out / entry.shard) as f:
        video = video_reader(f, "right")
        forward = dequantize(video.flow_codes("forward", 0), 20.0) + video.flow_means("forward")[0]
        backward = dequantize(video.flow_codes("backward", 0), 20.0) + video.flow_means("backward")[0]
    rows, cols = slice(36, 60), slice(52, 76)  # inside the square (moving 2 px right a frame)
    assert np.median(forward[rows, cols, 0]) == pytest.approx(2.0, abs=0.5)
    assert np.median(backward[rows, cols, 0]) == pytest.approx(-2.0, abs=0.5)
    status, stdout, _ = flowprep(capsys, *args)
    assert f"0 extracted now, {len(MOTIONS)} already done, 1 failed" in stdout


@pytest.mark.parametrize("args,expected", [
    (["--device", "gpu"], "device must be cpu, cuda, cuda:N, or several GPUs as cuda:0,cuda:1; got 'gpu'"),
    (["--device", "cuda", "--flow", "farneback"], "--device cuda needs a batched flow backend (tvl1-torch); farneback"),
])
def test_bad_devices_are_one_line(tmp_path, capsys, args, expected):
    manifest = make_videos(tmp_path / "videos", {"right": (2, 0)}, frames=3)
    status, _, err = flowprep(capsys, "extract", "--manifest", manifest, "--out", tmp_path / "o", *args)
    assert status == 2 and err.count("\n") == 1 and expected in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_on_a_machine_without_it(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", {"right": (2, 0)}, frames=3)
    status, _, err = flowprep(capsys, "extract", "--manifest", manifest, "--out", tmp_path / "o", "--flow", "tvl1-torch",
                             "--device", "cuda:1")
    assert status == 2 and err.count("\n") == 1 and "device cuda:1 asked for, but CUDA is not available here" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_extract_with_tvl1_torch_on_a_gpu(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", MOTIONS, frames=6)
    out = tmp_path / "out"
    status, stdout, err = flowprep(capsys, "extract", "--manifest", manifest, "--out", out, "--flow", "tvl1-torch",
                                  "--device", "cuda", "--workers", "4", "--size", "128x96")
    assert status == 0 and f"{len(MOTIONS)} extracted now" in stdout, err
    assert flowprep(capsys, "verify", out)[0] == 0
    # a run started on the GPU resumes on the CPU: the device is not part of the config
    status, stdout, _ = flowprep(capsys, "extract", "--manifest", manifest, "--out", out, "--flow", "tvl1-torch",
                                "--device", "cpu", "--size", "128x96")
    assert status == 0 and f"0 extracted now, {len(MOTIONS)} already done" in stdout


STOP_WHILE_STAGING_IS_FULL = """
import signal, sys, time
from pathlib import Path
import cv2
from flowprep.extract.batched import device_outcomes
from flowprep.extract.config import ExtractConfig
from flowprep.format.manifest import read_manifest
from tests.support.reliability import SmallDevice

class Stopped(Exception):
    pass

def stop(signum, frame):
    raise Stopped

manifest, staging = Path(sys.argv[1]), Path(sys.argv[2])
(staging / "unpacked.h5").write_bytes(bytes(4096))  # staging over its bound: every job waits for room
videos = [(e, manifest.parent / e.path) for e in read_manifest(manifest)]
config = ExtractConfig(flow_method="tvl1-torch", flow_params=(("nscales", 3), ("warps", 1)), width=48, height=32)
device = SmallDevice(fields=100)  # everything imported before the clock starts
signal.signal(signal.SIGALRM, stop)
signal.setitimer(signal.ITIMER_REAL, 1.0)  # the run stops while its jobs wait
started = time.monotonic()
try:
    list(device_outcomes(videos, config, staging, "cpu", 2, 16, backend=device, max_staged=1024))
except Stopped:
    print(f"stopped after {time.monotonic() - started:.1f} s")
"""


def test_a_stop_while_the_jobs_wait_for_room_in_staging_ends_them(videos, tmp_path):
    """A batched run stopped while its jobs waited for room in staging (the packer, which would
    make room, stops first) waited for them for ever: the thread pool's shutdown joined threads
    that never got room. The jobs that wait give up when the run stops."""
    (tmp_path / "staging").mkdir()
    manifest = next(p / "manifest.csv" for p in videos[0][1].parents if (p / "manifest.csv").exists())
    done = subprocess.run([sys.executable, "-c", STOP_WHILE_STAGING_IS_FULL, str(manifest), str(tmp_path / "staging")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.startswith("stopped after"), done.stderr[-1000:]


class BatchSizes(TorchTVL1):
    """tvl1-torch on the CPU, noting the fields of every batch it computes."""

    def __init__(self, **params) -> None:
        super().__init__(TVL1Params(**params))
        self.sizes: list[int] = []

    def device_codes(self, first, second, bound, mean_subtraction):  # both schedules compute through it
        self.sizes.append(len(first))
        return super().device_codes(first, second, bound, mean_subtraction)


def test_steady_state_batches_are_full(tmp_path):
    """Each thread has one window queued while its previous one computes, so in steady state a
    batch holds one window of every thread: windows of max_fields / workers fields fill it (before
    issue 27 they held half that, and every batch of this run held 8 fields of 16)."""
    slow = {name: (dx // 2, dy // 2) for name, (dx, dy) in MOTIONS.items()}  # 33 frames stay in the picture
    manifest = make_videos(tmp_path / "videos", slow, frames=33)
    videos = [(e, manifest.parent / e.path) for e in read_manifest(manifest)]
    # the flow is the bound (as a GPU is, with 16 cores decoding): 4 frames are decoded and staged
    # long before a batch is computed
    backend = BatchSizes(nscales=2, warps=1, outer_iterations=2, inner_iterations=10)
    (tmp_path / "staging").mkdir()
    config = ExtractConfig(flow_method="tvl1-torch", flow_params=tuple(FAST.items()), width=64, height=48)
    outcomes = list(device_outcomes(videos, config, tmp_path / "staging", "cpu", workers=2, max_fields=16,
                                    backend=backend))
    assert not [o for o in outcomes if o.error] and sum(backend.sizes) == 4 * 32 * 2
    steady = sorted(backend.sizes[2:-2])  # not the first batches, nor the videos' last windows
    assert steady[len(steady) // 2] == 16, backend.sizes
