import numpy as np
import pytest

from flowprep.extract.frames import to_gray
from flowprep.extract.video_job import both_directions
from flowprep.flow.registry import FLOW_METHODS, get_method, make_flow
from flowprep.format.quantize import dequantize
from tests.support.videos import moving_square_frames, square_box, texture

# TV-L1 runs about 1 pair/s at 340x256: tests give it tiny frames only.
VELOCITIES = [(3, 0), (-2, 0), (0, 2), (2, -1)]


@pytest.mark.parametrize("method", sorted(FLOW_METHODS))
@pytest.mark.parametrize("velocity", VELOCITIES)
def test_forward_flow_has_the_motion_and_backward_the_opposite(method, velocity):
    frames = [to_gray(f) for f in moving_square_frames(2, velocity=velocity)]
    flow = make_flow(method)
    rows, cols = square_box(0, velocity=velocity)
    forward = np.median(flow(frames[0], frames[1])[rows, cols].reshape(-1, 2), axis=0)
    rows, cols = square_box(1, velocity=velocity)
    backward = np.median(flow(frames[1], frames[0])[rows, cols].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(forward, velocity, atol=0.5)
    np.testing.assert_allclose(backward, [-v for v in velocity], atol=0.5)


@pytest.mark.parametrize("method", sorted(FLOW_METHODS))
def test_global_translation_is_removed_by_mean_subtraction_and_kept_as_the_mean(method):
    big = texture(120, 160, seed=3)
    prev, nxt = big[10:106, 10:138], big[10:106, 8:136]  # content moves 2 px right
    codes, means = get_method(method).create_batch().codes(*both_directions([prev], [nxt]), 20.0, True)
    fwd_codes, (fwd_mean, bwd_mean) = codes[0], means
    np.testing.assert_allclose(fwd_mean, [2.0, 0.0], atol=0.3)
    np.testing.assert_allclose(bwd_mean, [-2.0, 0.0], atol=0.3)
    assert fwd_codes.shape == (2, 96, 128)  # planes: x, then y
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(np.median(dequantize(fwd_codes[inner], 20.0).reshape(2, -1), axis=1)).max() < 0.3


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown flow method 'raft'; choose one of: tvl1, tvl1-torch, farneback, dis"):
        get_method("raft")


def test_parameters_are_typed_validated_and_named_in_errors():
    tvl1 = get_method("tvl1")
    assert tvl1.resolve({"nscales": "6"})["nscales"] == 6
    with pytest.raises(ValueError, match=r"unknown parameter 'scales' for flow method 'tvl1'; accepted: tau, lambda"):
        tvl1.resolve({"scales": 3})
    with pytest.raises(ValueError, match=r"nscales must be int, got 'many'"):
        tvl1.resolve({"nscales": "many"})
    with pytest.raises(ValueError, match=r"preset must be one of ultrafast, fast, medium, got 'slow'"):
        get_method("dis").resolve({"preset": "slow"})


def test_every_parameter_reaches_the_opencv_object():
    # a parameter that is declared but never applied would silently do nothing
    frames = [to_gray(f) for f in moving_square_frames(2, velocity=(3, 0))]
    a = make_flow("dis", {"preset": "ultrafast"})(frames[0], frames[1])
    b = make_flow("dis", {"preset": "ultrafast", "variational_refinement_iterations": 0,
                          "patch_size": 16})(frames[0], frames[1])
    assert not np.allclose(a, b)
    c = make_flow("tvl1", {"nscales": 2, "warps": 1})(frames[0], frames[1])
    d = make_flow("tvl1", {"nscales": 2, "warps": 1, "lambda": 0.01})(frames[0], frames[1])
    assert not np.allclose(c, d)
