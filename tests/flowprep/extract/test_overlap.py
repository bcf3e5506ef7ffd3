"""The batcher's overlapped schedule (flowprep/extract/overlap.py, issue 27) with tvl1-torch's real
steps (flowprep/flow/tvl1/transfers.py) on real frames: the same codes as the serial path, each
batch uploaded before it computes and downloaded after, the next upload beside this compute, and
host buffers reused only once their last batch has left them. On the CPU the steps run without
streams; the CUDA case (pinned buffers, a copy stream) runs where a GPU is."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from flowprep.extract.batched import FlowBatcher, is_out_of_memory
from flowprep.extract.frames import resize, to_gray
from flowprep.extract.overlap import SLOTS, run_overlapped
from flowprep.extract.video_job import both_directions
from flowprep.flow.tvl1.solver import TorchTVL1, TVL1Params

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARAMS = TVL1Params(nscales=2, warps=1, outer_iterations=2, inner_iterations=10)


class Window:
    def __init__(self, first: np.ndarray, second: np.ndarray) -> None:
        self.first, self.second = first, second


def real_windows(shared_data, count: int, size=(64, 48)) -> list[Window]:
    """`count` windows of one real pair each, both directions, from the shared clips."""
    windows = []
    for clip in sorted(p for p in (shared_data / "clips").rglob("*") if p.suffix in (".mp4", ".avi")):
        cap = cv2.VideoCapture(str(clip))
        frames = [to_gray(resize(cap.read()[1], size)) for _ in range(4)]
        cap.release()
        windows += [Window(*both_directions([a], [b])) for a, b in zip(frames, frames[1:])]
        if len(windows) >= count:
            return windows[:count]
    pytest.skip("too few shared clips")


def run(windows: list[Window], backend: TorchTVL1, per_batch: int):
    """The schedule over batches of `per_batch` windows: each batch's result and the steps' trace."""
    batches = [windows[i:i + per_batch] for i in range(0, len(windows), per_batch)]
    pending = list(batches)
    results: dict[int, object] = {}
    trace: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def note(step: str, batch: int, slot: int) -> None:
        with lock:
            trace.append((step, batch, slot))

    transfers = backend.transfers(20.0, True, max_fields=2 * per_batch)
    run_overlapped(lambda: pending.pop(0) if pending else [], lambda requests: True, transfers,
                   serial=None, deliver=lambda requests, result: results.__setitem__(batches.index(requests), result),
                   idle=lambda idle: None, is_out_of_memory=is_out_of_memory, trace=note)
    return batches, results, trace, transfers


def test_overlapped_batches_are_the_serial_ones_and_reuse_their_buffers_in_turn(shared_data):
    backend = TorchTVL1(PARAMS)
    batches, results, trace, transfers = run(real_windows(shared_data, 10), backend, per_batch=2)
    assert len(batches) == 5 and sorted(results) == list(range(5))
    for number, batch in enumerate(batches):
        codes, means = results[number]
        expected = backend.codes(np.concatenate([w.first for w in batch]), np.concatenate([w.second for w in batch]),
                                 20.0, True)
        np.testing.assert_array_equal(codes, expected[0])  # bit for bit: the same operations on the same frames
        np.testing.assert_array_equal(means, expected[1])
    at = {(step, batch): i for i, (step, batch, _) in enumerate(trace)}
    slot = {(step, batch): s for step, batch, s in trace}
    for k in range(5):
        assert at["upload", k] < at["compute", k] < at["download", k] < at["finish", k]
        assert slot["upload", k] == slot["download", k] == k % SLOTS  # two buffers each way, in turn
        if k >= SLOTS:  # a buffer is refilled only after its last batch has left it
            assert at["compute", k - SLOTS] < at["upload", k]
            assert at["finish", k - SLOTS] < at["download", k]
    assert at["upload", 1] < at["download", 0]  # the next batch is uploaded beside this one's compute
    assert all(b is not None and b.numel() >= 2 * 4 * 48 * 64 for b in transfers._inputs)  # sized by max_fields
    assert transfers.copies == 0  # no copy stream on the CPU


def test_the_batcher_overlapped_or_serial_gives_the_same_codes(shared_data):
    """Through FlowBatcher (its take, fit and delivery), with and without the overlap."""
    windows = real_windows(shared_data, 6)
    outcomes = []
    for overlap in (True, False):
        batcher = FlowBatcher(TorchTVL1(PARAMS), bound=20.0, mean_subtraction=True, max_fields=4, overlap=overlap)
        assert (batcher.transfers is not None) == overlap
        futures = [batcher.submit(w.first, w.second) for w in windows]
        batcher.close()
        outcomes.append([f.result() for f in futures])
        assert batcher.fields == 12
    for (codes, means), (serial_codes, serial_means) in zip(*outcomes):
        np.testing.assert_array_equal(codes, serial_codes)
        np.testing.assert_array_equal(means, serial_means)


def test_a_batch_out_of_memory_in_the_overlap_is_halved_and_lost_by_no_video(shared_data):
    backend = TorchTVL1(PARAMS)
    real = backend.device_codes

    def device_codes(first, second, bound, mean_subtraction):
        if len(first) > 2:  # a device with room for 2 fields: the fault, injected on the CPU
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(first, second, bound, mean_subtraction)

    backend.device_codes = device_codes
    notes: list[str] = []
    batcher = FlowBatcher(backend, bound=20.0, mean_subtraction=True, max_fields=4, note=notes.append)
    windows = real_windows(shared_data, 4)
    futures = [batcher.submit(w.first, w.second) for w in windows]
    batcher.close()
    for window, future in zip(windows, futures):
        np.testing.assert_array_equal(future.result()[0], TorchTVL1(PARAMS).codes(window.first, window.second,
                                                                                  20.0, True)[0])
    assert batcher.max_fields == 2 and notes == ["device out of memory for a batch of 4 flow fields; "
                                                 "batches of at most 2 from now on"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("kernels", ["eager", "triton"])
def test_on_a_gpu_the_overlap_copies_on_its_own_stream_from_pinned_buffers(shared_data, kernels):
    """PyTorch's operations are deterministic on CUDA: the serial path's codes bit for bit. The fused
    kernels sum each pair's update with atomics, in any order, so a pair may stop an iteration
    earlier or later from run to run: the serial path's codes to a code's rounding."""
    backend = TorchTVL1(PARAMS, "cuda", kernels=kernels)
    batches, results, trace, transfers = run(real_windows(shared_data, 10), backend, per_batch=2)
    for number, batch in enumerate(batches):
        expected = backend.codes(np.concatenate([w.first for w in batch]), np.concatenate([w.second for w in batch]),
                                 20.0, True)
        if kernels == "eager":
            np.testing.assert_array_equal(results[number][0], expected[0])
            np.testing.assert_array_equal(results[number][1], expected[1])
        else:
            difference = np.abs(results[number][0].astype(int) - expected[0])
            assert difference.max() <= 2 and (difference == 0).mean() > 0.99
    assert backend.path == kernels
    assert transfers.copies == 3 * len(batches)  # every upload and download on the copy stream
    assert transfers.copy_stream != torch.cuda.current_stream()
    assert all(b.is_pinned() for b in transfers._inputs + transfers._codes + transfers._means)


def test_a_batch_refused_at_upload_fails_its_videos_only(shared_data):
    """A window whose two frame stacks differ in shape: its batch fails (one line naming both
    shapes), the batches before and after it are computed."""
    from flowprep.flow.backend import FlowError

    good = real_windows(shared_data, 2)
    bad = Window(good[0].first, good[0].second[:, :-1])
    batcher = FlowBatcher(TorchTVL1(PARAMS), bound=20.0, mean_subtraction=True, max_fields=2)
    futures = [batcher.submit(w.first, w.second) for w in (good[0], bad, good[1])]
    batcher.close()
    with pytest.raises(FlowError, match=r"\(2, 48, 64\) and \(2, 47, 64\)"):
        futures[1].result()
    assert futures[0].result()[0].shape == futures[2].result()[0].shape == (2, 2, 48, 64)
