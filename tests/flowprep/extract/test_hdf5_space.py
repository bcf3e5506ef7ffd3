"""Writing HDF5 on a disk that may fill up (flowprep/extract/hdf5_space.py): space is reserved
before HDF5 writes and given back after, a file-size limit or a full disk is a DiskFullError
before any write fails, and a discarded file is closed without a byte more written to it."""
from __future__ import annotations

import errno
import os
import resource

import h5py
import numpy as np
import pytest

from flowprep.extract import hdf5_space
from runkit.faults import DiskFullError


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def test_reserved_blocks_lie_beyond_the_end_until_released(tmp_path):
    path = tmp_path / "a.h5"
    f = h5py.File(path, "w")
    size = os.stat(path).st_size
    hdf5_space.reserve(f, path, 4 << 20)
    if allocated(path) < 4 << 20:
        f.close()
        pytest.skip(f"the file system of {tmp_path} has no fallocate; reserve checks the free space there instead")
    assert os.stat(path).st_size == size  # the file's size, which HDF5 reads, is unchanged
    f.create_dataset("x", data=np.arange(1000))
    f.close()
    hdf5_space.release(path)
    assert allocated(path) < 1 << 20
    with h5py.File(path, "r") as f:
        assert f["x"][-1] == 999


def test_a_file_size_limit_is_a_disk_full_error_before_any_write(tmp_path):
    path = tmp_path / "a.h5"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    with h5py.File(path, "w") as f:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
        try:
            with pytest.raises(DiskFullError) as error:
                hdf5_space.reserve(f, path, 2 << 20)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert error.value.errno == errno.EFBIG and str(path) in str(error.value) and "ulimit -f" in str(error.value)


def test_an_abandoned_file_is_closed_with_nothing_more_written_to_it(tmp_path):
    path = tmp_path / "a.h5"
    f = h5py.File(path, "w")
    f.create_dataset("x", data=np.arange(100_000))  # in HDF5's caches: closing would write it
    before = path.read_bytes()
    hdf5_space.abandon(f)
    assert not f.id.valid and path.read_bytes() == before
