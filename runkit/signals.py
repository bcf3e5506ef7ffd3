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

import _thread
import os
import signal
import sys
import threading
import time
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
    """SIGINT and SIGTERM raise Stop from now on (main thread only), and `received()` remembers
    which came: where a library swallows the exception raised in its code (h5py turned one into a
    SystemError inside an attribute callback; one was lost for good in 2 of 30 group SIGINTs to an
    extraction), the command still knows it was asked to stop. A SIGINT ignored since the start
    (a script's background job) stays ignored, as Python leaves it."""
    global _received
    _received = None
    if _main_thread():
        signal.signal(signal.SIGTERM, _raise_stop)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, _raise_stop)
        if sys.unraisablehook is not _redeliver:
            global _previous_hook
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _redeliver


_previous_hook = sys.unraisablehook


def _redeliver(unraisable) -> None:
    """A signal's exception raised while Python ran a finalizer (a weakref callback of the garbage
    collector, a __del__, a callback from C) is dropped there, and the run would go on as if no
    signal had come (seen: SIGTERM lost in a WeakValueDictionary callback). The signal is marked
    pending again: its handler then raises in the code that runs next. Not `os.kill`: it runs the
    handler before returning, inside this hook, whose exception Python drops in turn and prints
    as a traceback after the run's one line (seen in 2 of 8 group SIGINTs to an extraction)."""
    exc = unraisable.exc_value
    if isinstance(exc, KeyboardInterrupt):
        # from another thread, a moment later: interrupt_main called here can run the handler at
        # once, inside this hook, which then drops the Stop again and prints it (seen: a stopped
        # `manifest check` printed 'Stop:' and finished with exit 0)
        signum = exc.signum if isinstance(exc, Stop) else signal.SIGINT
        threading.Timer(REDELIVER_DELAY_S, _thread.interrupt_main, args=(signum,)).start()
        return
    _previous_hook(unraisable)


REDELIVER_DELAY_S = 0.01  # long enough for the hook to have returned


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
    asked = _asked_flag()

    def ask(signum: int, frame) -> None:
        global _received
        _received = signum
        asked.value = ASKED
        if state.requested:
            raise Stop(signum)
        state.signum = signum

    before = {s: signal.getsignal(s) for s in NAMES}
    for s in NAMES:
        signal.signal(s, ask)
    asked.value = DEFERRING
    try:
        yield state
    finally:
        asked.value = IDLE
        for s, handler in before.items():
            signal.signal(s, handler)


# shared memory, inherited by forked workers: 0 no deferred() block runs in the main process,
# 1 one runs, 2 it has been asked to stop
_asked = None
IDLE, DEFERRING, ASKED = 0, 1, 2


def _asked_flag():
    """The shared flag, created in the main process before it forks workers (they inherit it)."""
    global _asked
    if _asked is None:
        import multiprocessing

        _asked = multiprocessing.RawValue("b", 0)
    return _asked


def leave_stops_to(owner_pid: int) -> None:
    """Called first by a job that may run in a worker process of `owner_pid` (joblib's loky
    workers): Ctrl-C reaches the whole process group, and stopping is the owner's to do (it ends
    its workers before it lets go of the folder's lock). A worker that raised KeyboardInterrupt
    itself printed its own traceback after the owner's one line (seen in 1 of 16 group SIGINTs to
    an extraction: "Exception ignored in ... KeyboardInterrupt"). SIGINT is ignored from then on;
    SIGTERM keeps its default, a silent exit, so `kill WORKER` still ends a worker. Nothing changes
    in the owner itself (a job run in-process, one worker) or off a main thread (Dask's task
    threads, device feeders), where handlers cannot be set."""
    if os.getpid() != owner_pid and _main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


# how a worker's command starts: sh sets SIGINT to ignored, then becomes the worker's Python
IGNORING_SIGINT = [b"/bin/sh", b"-c", b'trap "" INT; exec "$0" "$@"']


def workers_start_ignoring_sigint() -> None:
    """From now on, joblib's worker processes (loky's, started by fork and exec) start with SIGINT
    ignored, before Python imports anything in them: an ignored signal is the one disposition a
    process keeps through exec, and `sh -c 'trap "" INT; exec python ...'` sets it before Python
    starts. Ignored later (leave_stops_to, or a loky initializer, run after the imports), it came
    too late: a Ctrl-C to the process group in the first second of a run found the workers still
    importing, and each printed its KeyboardInterrupt traceback (19-47 lines in all, 8 of 11 tries
    in issue 30) before the run's one line. Not this process ignoring SIGINT while it starts them
    (the disposition they would inherit): a group SIGINT landing then was lost to one of its native
    threads, which ignored it, and the run went on (2 of 4 tries); nor a mask that blocks SIGINT,
    which loky's fork_exec does not pass on. Idempotent."""
    from joblib.externals.loky.backend import fork_exec as module

    if getattr(module.fork_exec, "ignores_sigint", False):
        return
    spawn = module.fork_exec

    def fork_exec(cmd, *args, **kwargs):
        return spawn([*IGNORING_SIGINT, *cmd], *args, **kwargs)

    fork_exec.ignores_sigint = True
    module.fork_exec = fork_exec  # looked up at each start (popen_loky_posix imports it there)


WORKER_PATIENCE_S = 0.5  # how long a worker's SIGTERM waits to learn whether the main process defers it


def ignore_in_worker(*_args) -> None:
    """A DataLoader worker's init: a stop signal sent to the whole process group (Ctrl-C, SLURM) is
    the main process's to act on. A worker that died of it would fail the batch the main process
    finishes before its checkpoint (torch even raises that failure from a SIGCHLD handler, anywhere
    in the main process). SIGINT is ignored; SIGTERM is ignored only while the main process defers
    a stop (`deferred()`): multiprocessing ends its daemonic workers with SIGTERM, and they must
    go then. The workers end when the main process closes its loaders, or sees it gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum: int, frame) -> None:
    deadline = time.monotonic() + WORKER_PATIENCE_S
    # a group's signal reaches the main process at the same moment: give its handler time to say so
    while _asked is not None and _asked.value == DEFERRING and time.monotonic() < deadline:
        time.sleep(0.01)
    if _asked is not None and _asked.value == ASKED:
        return  # the main process stops at its next batch boundary, and then closes this worker
    # ended by its main process (multiprocessing ends daemonic workers so at exit): a clean exit,
    # which torch's SIGCHLD handler in the main process does not report as a worker's failure
    os._exit(0)
