"""The batcher's overlapped schedule (issue 27): batch k+1 uploaded while batch k computes and
batch k-1 downloads, host buffers reused across batches. Pure scheduling, no torch: the backend's
`Transfers` (flowprep.flow.tvl1.transfers) does each step, on CUDA from pinned buffers on a copy
stream ordered by events, on the CPU the same steps without streams.

Three threads, each one step of every batch in turn, so that no step waits for another batch's:
- the caller's (the feeder): takes a batch into a free input slot and uploads it;
- the computer: launches batch k's compute (the host drives its iterations), frees its input slot,
  and queues its download into a free output slot;
- the finisher: waits for a download, copies the codes out of the slot, frees it, and delivers.
Two input and two output slots: the upload of k+1 and the download of k-1 proceed beside the
compute of k (double buffering); a slot is refilled only after its last batch has left it.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Protocol, Sequence

SLOTS = 2  # host buffers each way: one in use by the device's copies, one being filled or emptied
_SERIAL = object()  # a batch the feeder did not upload: the computer computes it without the overlap


class Transfers(Protocol):
    """The device-side steps of a batch; `slot` names the host buffer a step may use."""

    def upload(self, slot: int, firsts: Sequence, seconds: Sequence) -> Any:
        """The frames (one array per window) into host buffer `slot`, then onto the device."""

    def compute(self, staged: Any) -> Any:
        """The codes of an uploaded batch, launched (on CUDA: behind its upload)."""

    def download(self, computed: Any, slot: int) -> Any:
        """The codes and means into host buffer `slot` (on CUDA: behind their compute)."""

    def finish(self, pending: Any) -> tuple[Any, Any]:
        """The downloaded codes and means, copied out of their slot (which is then free)."""


def run_overlapped(take: Callable[[], list], fits: Callable[[list], bool], transfers: Transfers,
                   serial: Callable[[list, bool], tuple], deliver: Callable[[list, Any], None],
                   idle: Callable[[bool], None], is_out_of_memory: Callable[[BaseException], bool],
                   trace: Callable[[str, int, int], None] = lambda step, batch, slot: None) -> None:
    """Run batches until `take` returns none. `take()` gives the next batch (requests with `first`
    and `second`); a batch that does not `fit` (larger than the device holds) is computed by
    `serial(requests, False)`, without the overlap, and so is one whose `compute` ran out of
    memory, by `serial(requests, True)` (which halves the batches); `deliver(requests, result)` gets
    (codes, means) or the exception; `idle(True)` tells the feeder the computer waits for a batch
    (a batch taken then is taken as it is, not waited on until full). `trace(step, batch, slot)`
    notes each step as it starts ("upload", "compute", "download", "finish", "serial")."""
    free_inputs: queue.Queue[int] = queue.Queue()
    free_outputs: queue.Queue[int] = queue.Queue()
    for slot in range(SLOTS):
        free_inputs.put(slot)
        free_outputs.put(slot)
    staged: queue.Queue = queue.Queue()
    downloading: queue.Queue = queue.Queue()

    def computer() -> None:
        while True:
            if staged.empty():
                idle(True)
            item = staged.get()
            idle(False)
            if item is None:
                downloading.put(None)
                return
            number, requests, slot, upload = item
            if slot is None:  # refused at upload (its exception), or to be run serially
                if upload is _SERIAL:
                    trace("serial", number, -1)
                    upload = result_of(lambda: serial(requests, False))
                downloading.put((number, requests, None, upload))
                continue
            out_of_memory, result = False, None
            try:
                trace("compute", number, slot)
                computed = transfers.compute(upload)
            except Exception as exc:  # noqa: BLE001  handed to the batch's videos (or retried below)
                out_of_memory, result = is_out_of_memory(exc), exc
            del upload  # the device's copy of the frames: its memory goes back before a retry
            free_inputs.put(slot)
            if out_of_memory:
                result = None  # its traceback held the attempt's tensors: retried outside the `except`
                trace("serial", number, -1)
                result = result_of(lambda: serial(requests, True))
            if result is not None:
                downloading.put((number, requests, None, result))
                continue
            out = free_outputs.get()
            trace("download", number, out)
            try:
                downloading.put((number, requests, out, transfers.download(computed, out)))
            except Exception as exc:  # noqa: BLE001
                free_outputs.put(out)
                downloading.put((number, requests, None, exc))
            del computed

    def finisher() -> None:
        while (item := downloading.get()) is not None:
            number, requests, out, pending = item
            if out is None:
                deliver(requests, pending)
                continue
            trace("finish", number, out)
            result = result_of(lambda: transfers.finish(pending))
            del pending
            free_outputs.put(out)
            deliver(requests, result)

    threads = [threading.Thread(target=computer, name="flow-compute", daemon=True),
               threading.Thread(target=finisher, name="flow-finish", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        number = 0
        while True:
            slot = free_inputs.get()  # the slot's last batch has been computed: it may be refilled
            requests = take()
            if not requests:
                break
            try:
                if fits(requests):
                    trace("upload", number, slot)
                    item = (number, requests, slot, transfers.upload(slot, [r.first for r in requests],
                                                                     [r.second for r in requests]))
                else:
                    free_inputs.put(slot)
                    item = (number, requests, None, _SERIAL)
            except Exception as exc:  # noqa: BLE001  a batch the device refuses fails its videos only
                free_inputs.put(slot)
                item = (number, requests, None, exc)
            staged.put(item)
            number += 1
    finally:
        staged.put(None)
        for thread in threads:
            thread.join()


def result_of(step: Callable[[], Any]) -> Any:
    """What `step()` returns, or the exception it raised (handed to the batch's videos)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001
        return exc
