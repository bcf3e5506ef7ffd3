"""A run folder's lock: one run at a time writes into a folder, whichever tool (an extraction, an
import, an export, a training run). A second run into it, from another shell or another cluster
job, is refused in one line instead of the two overwriting each other's files. The lock is an
flock that dies with its process, so a killed run never blocks the next one; its file,
LOCK_FILE, stays and means nothing when unlocked."""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from runkit.files import NotRegularFileError, open_lock_file

log = logging.getLogger("flowprep")  # the logger its warning has always used, training runs too

# A file, not the folder itself, carries the lock: on NFS, flock reaches the server (and so the
# other nodes) only for a regular file open for writing; a directory's lock stays on its node.
LOCK_FILE = ".flowprep.lock"
_NO_LOCKS = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL)
LOCK_PATIENCE_S = 2.0  # how long a run waits out a lock held for a moment (a trainer's `in_use` probe)


class LockError(Exception):
    """A folder in use by another run (or that cannot hold a lock file); str() is one line naming it.
    Each tool passes its own error type instead, the one its command reports."""


@contextmanager
def folder_lock(root: Path, error: type[Exception] = LockError, holder: str = "another run") -> Iterator[None]:
    """An exclusive flock on ROOT/LOCK_FILE for the block, creating ROOT (an extraction folder's,
    an export's tree, a training run's folder); while `holder` holds it, `error` in one line."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(root / LOCK_FILE)
    except NotRegularFileError as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"cannot write the output folder {root}: {exc.strerror or exc}") from None
    try:
        locked = _flock_within(fd, fcntl.LOCK_EX, LOCK_PATIENCE_S)
        if locked is None:  # e.g. Lustre mounted without -o flock: a run must still be possible
            log.warning("%s: the file system gives no file locks, so a second run into this folder "
                        "would not be refused; run one at a time", root)
        elif not locked:
            raise error(f"{root} is in use by {holder}; let it finish (or stop it), or choose another --out")
        yield
    finally:
        os.close(fd)


def held(root: Path) -> bool:
    """Whether a run holds ROOT's lock now (see `folder_lock`); never waits."""
    try:  # never through a link, never waiting on a FIFO
        fd = os.open(root / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no run has ever locked it, or it cannot be read: nothing says a run is on
        return False
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)  # a FIFO or a device planted under the lock's name: no run locks that
        return False
    try:
        return _flock_within(fd, fcntl.LOCK_SH, 0.0) is False
    finally:
        os.close(fd)  # closing releases a shared lock taken here


def _flock_within(fd: int, kind: int, patience_s: float) -> bool | None:
    """Take the flock `kind` on `fd`, trying again for up to `patience_s` seconds; False if another
    process holds a conflicting lock all that time, None if the file system has no locks."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                return None
            raise
