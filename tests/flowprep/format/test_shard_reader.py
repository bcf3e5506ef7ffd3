"""The shard reader's stack read (`VideoReader.flow_planes`): planar, cut to a box, one call per
direction, identical to reading field by field, for every codec."""
from __future__ import annotations

import numpy as np
import pytest

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import open_shard, video_reader
from tests.support.synthetic import moving_video, write_extraction


@pytest.mark.parametrize("codec", ["raw", "raw:gzip:1", "png", "jpeg:95"])
def test_flow_planes_equal_field_by_field_reads_cut_to_the_box(tmp_path, codec):
    out = write_extraction(tmp_path / "x", [moving_video("v", 0, frames=9)], codec=codec)
    with open_shard(ExtractionFolder(out).shard_paths()[0]) as f:
        video = video_reader(f, "v")
        fields = [("backward", 2), ("backward", 3), ("forward", 4), ("forward", 4), ("forward", 7)]
        whole = video.flow_planes(fields)
        assert whole.shape == (10, video.height, video.width) and whole.dtype == np.uint8
        for k, (direction, i) in enumerate(fields):
            codes = video.flow_codes(direction, i)  # (H, W, 2)
            np.testing.assert_array_equal(whole[2 * k], codes[..., 0])
            np.testing.assert_array_equal(whole[2 * k + 1], codes[..., 1])
        box = (3, 5, 20, 24)
        np.testing.assert_array_equal(video.flow_planes(fields, box), whole[:, 3:23, 5:29])
