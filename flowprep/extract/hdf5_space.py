"""Writing HDF5 files on a disk that may fill up, without crashing.

HDF5 fails cleanly when a write of data finds the disk full, but when a write of its own metadata
does (in H5Fflush or H5Fclose), it can crash the process with SIGSEGV (h5py#914, h5py#2160; seen
here with HDF5 2.0). Two rules keep every failure a Python exception:
- before HDF5 writes, `reserve` allocates the disk blocks the writes will fill (fallocate with
  KEEP_SIZE: blocks beyond the file's end, the file's size unchanged), so a full disk is found
  there, before any write fails; `release` gives back what was not used once the file is closed;
- a file that is discarded (its run failed, or the disk filled up) is closed by `abandon`, which
  points its descriptor at an in-memory file first, so that nothing HDF5 writes on closing can fail.
Where a file system has no fallocate, `reserve` checks the free space instead.
"""
from __future__ import annotations

import ctypes
import errno
import os
import resource
import shutil
from pathlib import Path

from runkit.faults import DISK_FULL, disk_full

FALLOC_FL_KEEP_SIZE = 1
METADATA_MARGIN = 128 << 10  # room for HDF5's own writes (chunk indexes, heaps, the superblock) per reserve
_NO_FALLOCATE = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_libc = ctypes.CDLL(None, use_errno=True)


def reserve(file, path: Path, nbytes: int) -> None:
    """Make room on the disk for the next `nbytes` (plus HDF5's metadata) that the open h5py
    `file`, stored at `path`, writes; raise DiskFullError, naming `path`, if there is none."""
    descriptor = file.id.get_vfd_handle()
    end, size = os.fstat(descriptor).st_size, int(nbytes) + METADATA_MARGIN
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and end + size > limit:
        raise disk_full(path, OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path)))
    if _fallocate(descriptor, end, size) == 0:
        return
    code = ctypes.get_errno()
    if code in DISK_FULL:
        raise disk_full(path, OSError(code, os.strerror(code), str(path)))
    if code not in _NO_FALLOCATE:
        raise OSError(code, f"cannot reserve disk space for {path}: {os.strerror(code)}")
    if shutil.disk_usage(path.parent).free < size:  # no fallocate here: the best that can be checked
        raise disk_full(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)))


def _fallocate(descriptor: int, offset: int, length: int) -> int:
    fallocate = getattr(_libc, "fallocate", None)
    if fallocate is None:  # not Linux
        ctypes.set_errno(errno.ENOSYS)
        return -1
    return fallocate(descriptor, FALLOC_FL_KEEP_SIZE, ctypes.c_int64(offset), ctypes.c_int64(length))


def release(path: Path) -> None:
    """Give back the blocks reserved beyond the end of the closed file at `path`: growing it by a
    byte and cutting it back frees whatever lies past its end."""
    size = os.stat(path).st_size
    os.truncate(path, size + 1)
    os.truncate(path, size)


def abandon(file) -> None:
    """Close an open h5py File that is about to be deleted, with nothing written to it again: its
    descriptor is pointed at an in-memory file first, so the close's own writes cannot fail."""
    if not file.id.valid:
        return
    descriptor = file.id.get_vfd_handle()
    sink = os.memfd_create("flowprep-discarded") if hasattr(os, "memfd_create") else os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(sink, descriptor)
    finally:
        os.close(sink)
    try:
        file.close()
    except (OSError, RuntimeError):  # nothing it could say matters: the file is being deleted
        pass
