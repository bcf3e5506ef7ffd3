"""tvl1-torch's steps of a batch for the extraction's overlapped schedule (flowprep.extract.overlap):
upload, compute, download, finish. On CUDA the host buffers are pinned and reused across batches
(sized for `max_fields` fields at the first batch of a size, grown if a batch is larger), and
uploads and downloads run on a copy stream of their own: the compute waits for its upload's
event, the download for its compute's, and a tensor made on one stream and used on another is
recorded there (`record_stream`) so that the caching allocator does not hand its memory to the
next batch before that use has run. On the CPU the same steps run without streams or pinning."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from flowprep.flow.backend import check_batch


@dataclass
class Staged:
    frames: torch.Tensor  # (2, N, H, W) uint8 on the device: first and second frames
    ready: Any  # the upload's CUDA event (None on the CPU)


@dataclass
class Computed:
    codes: torch.Tensor  # (N, 2, H, W) uint8 on the device
    means: torch.Tensor  # (N, 2) float32 on the device
    done: Any


@dataclass
class Pending:
    codes: torch.Tensor  # views of an output slot's host buffers
    means: torch.Tensor
    done: Any


class TorchTransfers:
    """The steps of `backend` (a TorchTVL1) with `bound` and `mean_subtraction`, through `slots`
    host buffers each way; `copies` counts the copies issued on the copy stream. `on_device(device)`
    makes the device current for a step (solver.device_context), a fresh one each step, as the
    steps run on different threads."""

    def __init__(self, backend, bound: float, mean_subtraction: bool, max_fields: int,
                 on_device: Callable[[torch.device], contextlib.AbstractContextManager], slots: int = 2) -> None:
        self.backend, self.bound, self.mean_subtraction = backend, bound, mean_subtraction
        self.on_device = on_device
        self.max_fields = max_fields
        self.device = backend.device
        self.cuda = self.device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._inputs: list[torch.Tensor | None] = [None] * slots
        self._codes: list[torch.Tensor | None] = [None] * slots
        self._means: list[torch.Tensor | None] = [None] * slots
        self._uploaded: list[Any] = [None] * slots
        self.copies = 0

    def _buffer(self, buffers: list, slot: int, numel: int, per_field: int, dtype: torch.dtype) -> torch.Tensor:
        """Slot `slot`'s host buffer of at least `numel` elements: reused, or made for max_fields."""
        buffer = buffers[slot]
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(max(numel, self.max_fields * per_field), dtype=dtype, pin_memory=self.cuda)
            buffers[slot] = buffer
        return buffer[:numel]

    def _on_copy_stream(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.copy_stream) if self.cuda else contextlib.nullcontext()

    def _event(self):
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record()  # on the current stream
        return event

    def upload(self, slot: int, firsts: Sequence[np.ndarray], seconds: Sequence[np.ndarray]) -> Staged:
        n = sum(len(f) for f in firsts)
        for f, s in zip(firsts, seconds):
            check_batch(f, s)
            check_batch(firsts[0][:1], f[:1])  # one frame size in a batch (names both shapes)
        height, width = firsts[0].shape[1:]
        if self._uploaded[slot] is not None:
            self._uploaded[slot].synchronize()  # the slot's last upload has been read out of it
        host = self._buffer(self._inputs, slot, 2 * n * height * width, 2 * height * width, torch.uint8)
        host = host.view(2, n, height, width)
        np.concatenate(firsts, out=host[0].numpy())
        np.concatenate(seconds, out=host[1].numpy())
        with self.on_device(self.device), self._on_copy_stream():
            # on the CPU the batch is computed from the slot itself, which is refilled only after
            # its compute has returned (overlap.run_overlapped)
            frames = host.to(self.device, non_blocking=True) if self.cuda else host
            self.copies += self.cuda
            self._uploaded[slot] = ready = self._event()
        return Staged(frames, ready)

    def compute(self, staged: Staged) -> Computed:
        with self.on_device(self.device):
            if self.cuda:
                stream = torch.cuda.current_stream(self.device)
                stream.wait_event(staged.ready)
                staged.frames.record_stream(stream)  # made on the copy stream, read on this one
            codes, means = self.backend.device_codes(staged.frames[0], staged.frames[1], self.bound,
                                                     self.mean_subtraction)
            return Computed(codes, means, self._event())

    def download(self, computed: Computed, slot: int) -> Pending:
        n, planes, height, width = computed.codes.shape
        codes = self._buffer(self._codes, slot, computed.codes.numel(), planes * height * width, torch.uint8)
        means = self._buffer(self._means, slot, computed.means.numel(), planes, torch.float32)
        with self.on_device(self.device), self._on_copy_stream():
            if self.cuda:
                self.copy_stream.wait_event(computed.done)
                for tensor in (computed.codes, computed.means):
                    tensor.record_stream(self.copy_stream)  # made on the compute stream, read on this one
                self.copies += 2
            codes.view(computed.codes.shape).copy_(computed.codes, non_blocking=self.cuda)
            means.view(computed.means.shape).copy_(computed.means, non_blocking=self.cuda)
            done = self._event()
        return Pending(codes.view(computed.codes.shape), means.view(computed.means.shape), done)

    def finish(self, pending: Pending) -> tuple[np.ndarray, np.ndarray]:
        if pending.done is not None:
            pending.done.synchronize()
        return pending.codes.numpy().copy(), pending.means.numpy().copy()  # the slot is refilled later
