"""Staging is bounded by the shard size, not by the run's length (issue 19 item 6): workers faster
than the packing wait while the finished videos in staging exceed STAGING_SHARDS shards' worth."""
from __future__ import annotations

import pytest

from tests.support.reliability.signals import staging_bound_run

pytestmark = pytest.mark.slow


def test_with_small_shards_and_a_slow_packer_the_unpacked_staging_stays_under_its_bound(tmp_path):
    record = staging_bound_run(tmp_path)
    assert record.held, record.detail
