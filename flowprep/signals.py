"""Stop signals: SIGINT (Ctrl-C) and SIGTERM (`kill PID`, a scheduler's time limit or preemption)
as one kind of stop, in every command of both CLIs.

Python turns SIGINT into KeyboardInterrupt but dies at once on SIGTERM, with no clean-up: a
killed `flowprep extract` left its worker processes writing into OUT after its lock was gone,
and `twostream train` lost the epoch in progress. `install()` (run_click, before any command)
makes SIGTERM raise `Stop`, a KeyboardInterrupt, so every path that cleans up after Ctrl-C
cleans up after SIGTERM too. Code that must reach a safe point first (training: the next batch
boundary, then a checkpoint) runs inside `deferred()`, where either signal only sets a flag that
it polls; a second signal there stops at once.

Exit statuses (the shell's convention, 128 + the signal's number): 130 after SIGINT, 143 after
SIGTERM, each with one line saying how to resume.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Stop(KeyboardInterrupt):
    """A stop asked for by SIGINT or SIGTERM; `status` is the exit status it ends with, and
    str() (when not empty) the one line that says what was kept."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message)
        self.signum = signum
        self.message = message

    @property
    def status(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return NAMES.get(self.signum, f"signal {self.signum}")


_received: int | None = None  # the stop signal this process got, if any


def received() -> int | None:
    """The stop signal this process has got (SIGINT, SIGTERM), or None."""
    return _received


def _raise_stop(signum: int, frame) -> None:
    global _received
    _received = signum
    raise Stop(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """SIGTERM raises Stop from now on, as SIGINT raises KeyboardInterrupt (main thread only)."""
    if _main_thread():
        signal.signal(signal.SIGTERM, _raise_stop)


class Deferred:
    """The state of a `deferred()` block: the signal that asked for a stop, if one did."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return NAMES.get(self.signum, "a signal")

    def stop(self, message: str = "") -> Stop:
        """The Stop to raise at the safe point reached."""
        return Stop(self.signum or signal.SIGINT, message)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """Within: SIGINT and SIGTERM ask for a stop (`Deferred.requested`) instead of raising, so the
    caller stops at a point of its choosing; a second signal raises Stop at once (an impatient
    user, or work that has no safe point soon). Outside the main thread: nothing is deferred."""
    state = Deferred()
    if not _main_thread():
        yield state
        return

    def ask(signum: int, frame) -> None:
        global _received
        _received = signum
        if state.requested:
            raise Stop(signum)
        state.signum = signum

    before = {s: signal.getsignal(s) for s in NAMES}
    for s in NAMES:
        signal.signal(s, ask)
    try:
        yield state
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def ignore_in_worker(*_args) -> None:
    """A DataLoader worker's init: SIGINT and SIGTERM sent to the whole process group are the main
    process's to act on; a worker that died of them would fail the batch the main process is
    finishing before its checkpoint. The workers end when the main process closes its loaders
    (or, if it is killed, when they see it gone)."""
    for s in NAMES:
        signal.signal(s, signal.SIG_IGN)
