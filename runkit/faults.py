"""Named points where the reliability suite kills a run, and what a full disk looks like.

`fault_point(name)` marks a moment a kill -9 must survive: while a staging file is written, a
shard is packed, the index is replaced, a checkpoint is written... It does nothing unless the
environment says `FLOWPREP_FAULT=<name>:<n>`: then the n-th time this process reaches `name`, it
kills its whole process group with SIGKILL (a run and its worker processes, as `kill -9` of a
job would), so that tests/test_reliability.py and `make bench-reliability` can kill a run at
exactly the moments that matter and check that the same command, run again, finishes the job.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import sys
import traceback
from collections import Counter
from pathlib import Path

ENV = "FLOWPREP_FAULT"  # its name from before runkit, kept: the reliability suite and scripts set it
_reached: Counter = Counter()


def fault_point(name: str) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    point, _, count = target.rpartition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(count):
        os.killpg(os.getpgid(0), signal.SIGKILL)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """An OSError of a full disk (or quota, or file-size limit), including HDF5's, which reports
    the errno only in its message."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in DISK_FULL or _says_disk_full(str(exc))


def _says_disk_full(text: str) -> bool:
    return any(f"errno = {code}," in text for code in DISK_FULL) or "No space left on device" in text


class DiskFullError(OSError):
    """The disk (or quota) filled up: no video's fault, so the run stops rather than record every
    next video as failed; what is packed stays, and the same command resumes once there is room."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror


def disk_full(path: Path, cause: OSError) -> DiskFullError:
    """A one-line DiskFullError naming the file that could not be written: the one HDF5 names in
    its message, else the one the OSError names, else `path`. A DiskFullError is returned as it is."""
    if isinstance(cause, DiskFullError):
        return cause
    named = re.search(r"filename = '([^']+)'", str(cause))
    target = named.group(1) if named else (cause.filename or path)
    stated = re.search(r"errno = (\d+),", str(cause))
    code = int(stated.group(1)) if stated else cause.errno
    if code == errno.EDQUOT:
        problem, remedy = f"the disk quota is used up: cannot write {target}", "free space (or raise the quota)"
    elif code == errno.EFBIG:
        problem, remedy = f"the file-size limit (ulimit -f) stops the writing of {target}", "raise it"
    else:
        problem, remedy = f"no space left on the device to write {target}", "free space"
    return DiskFullError(code or errno.ENOSPC, f"{problem}; {remedy} and run the same command again to resume")


def quiet_hdf5_after_disk_full() -> None:
    """After a write fails for a full disk, HDF5 reports, as each of its objects is released,
    that it could not flush it; Cython prints those reports through sys.excepthook and
    sys.unraisablehook, as tracebacks that would bury the run's one-line error. Drop them, and
    only them (the disk-full errors of h5py's own object release)."""
    if getattr(sys.excepthook, "quiet_hdf5", False):
        return
    previous_except, previous_unraisable = sys.excepthook, sys.unraisablehook

    def releasing(exc: BaseException | None, tb) -> bool:
        return isinstance(exc, (OSError, RuntimeError)) and _says_disk_full(str(exc)) and \
            tb is not None and any("h5py" in frame.filename for frame in traceback.extract_tb(tb))

    def except_hook(kind, exc, tb) -> None:
        if not releasing(exc, tb):
            previous_except(kind, exc, tb)

    def unraisable_hook(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, (OSError, RuntimeError))
                and _says_disk_full(str(unraisable.exc_value))):
            previous_unraisable(unraisable)

    except_hook.quiet_hdf5 = True
    sys.excepthook, sys.unraisablehook = except_hook, unraisable_hook
