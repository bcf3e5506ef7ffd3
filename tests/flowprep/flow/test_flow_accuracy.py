"""Flow accuracy against ground truth (shared/data/flow_gt): the defaults keep their promises."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowprep.flow.registry import make_flow
from flowprep.tools.flow_eval import average_epe, endpoint_error, flyingchairs_pairs, read_flo


@pytest.fixture(scope="module")
def chairs(shared_data):
    return flyingchairs_pairs(shared_data / "flow_gt" / "flyingchairs")


@pytest.mark.slow
def test_default_tvl1_reaches_epe_5_on_flyingchairs(flyingchairs_tvl1):
    # OpenCV's own TV-L1 defaults give 6.4 px here (docs/benchmarks.md, "Choosing the TV-L1 defaults")
    pairs, epe = flyingchairs_tvl1
    assert len(pairs) == 9
    assert epe <= 5.0


@pytest.mark.parametrize("method,bound", [("dis", 4.0), ("farneback", 8.0)])
def test_fast_backends_on_flyingchairs(chairs, method, bound):
    epe, _ = average_epe(method, None, chairs, workers=1)
    assert epe <= bound


@pytest.mark.parametrize("method", ["tvl1", "dis", "farneback"])
def test_every_backend_beats_zero_flow_on_a_real_crop(shared_data, method):
    crops = shared_data / "flow_gt" / "mmflow_crops"
    first = cv2.imread(str(crops / "00001_img1.png"), cv2.IMREAD_GRAYSCALE)
    second = cv2.imread(str(crops / "00001_img2.png"), cv2.IMREAD_GRAYSCALE)
    truth = read_flo(crops / "00001_flow.flo")
    estimate = make_flow(method)(first, second)
    assert endpoint_error(estimate, truth) < 0.75 * endpoint_error(np.zeros_like(truth), truth)


def test_read_flo_rejects_other_files(tmp_path):
    bad = tmp_path / "x.flo"
    bad.write_bytes(b"JUNK" + bytes(16))
    with pytest.raises(ValueError, match="not a Middlebury .flo file"):
        read_flo(bad)


def test_endpoint_error_leaves_out_pixels_of_unknown_true_flow(tmp_path):
    """Middlebury and KITTI mark unknown ground truth with components above 1e9 (issue 30, item
    14): counted, zero flow scored ~1e9 px on such a file; only the known pixels count now."""
    truth = np.zeros((4, 6, 2), np.float32)
    truth[..., 0] = 3.0
    truth[0, :, :] = 1e10  # a row of unknown flow, as Middlebury writes it
    path = tmp_path / "gt.flo"
    path.write_bytes(b"PIEH" + np.array([6, 4], np.int32).tobytes() + truth.tobytes())
    assert endpoint_error(np.zeros((4, 6, 2), np.float32), read_flo(path)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown"):
        endpoint_error(np.zeros((1, 1, 2), np.float32), np.full((1, 1, 2), 1e10, np.float32))
