import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowprep.format.quantize import (
    dequantize,
    field_mean,
    hflip_flow,
    hflip_flow_codes,
    quantization_step,
    quantize,
    quantize_planes,
)

finite_flows = arrays(np.float32, (4, 5, 2), elements=st.floats(-60, 60, width=32))


@settings(max_examples=200, deadline=None)
@given(flow=finite_flows, bound=st.sampled_from([5.0, 20.0, 32.5]))
def test_round_trip_within_half_a_step_inside_the_bound(flow, bound):
    restored = dequantize(quantize(flow, bound), bound)
    clipped = np.clip(flow, -bound, bound)
    assert np.max(np.abs(restored - clipped)) <= quantization_step(bound) / 2 + 1e-4


def test_extremes_and_zero():
    codes = quantize(np.array([-20.0, -100.0, 0.0, 20.0, 55.0], np.float32), 20.0)
    assert codes.tolist() == [0, 0, 128, 255, 255]
    assert abs(dequantize(np.uint8(128), 20.0)) <= quantization_step(20.0) / 2 + 1e-6


def test_bound_must_be_positive():
    with pytest.raises(ValueError, match="bound must be positive, got 0"):
        quantize(np.zeros((2, 2, 2), np.float32), 0)


def test_field_mean_is_the_mean_vector():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(6, 7, 2)).astype(np.float32) + np.array([3.0, -1.5], np.float32)
    mean = field_mean(flow)
    assert mean.dtype == np.float32 and mean.shape == (2,)
    np.testing.assert_allclose(mean, flow.reshape(-1, 2).mean(0), atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(flow=arrays(np.float32, (9, 11, 2), elements=st.floats(-60, 60, width=32)),
       shift=arrays(np.float32, (2,), elements=st.floats(-5, 5, width=32)), bound=st.sampled_from([5.0, 20.0]))
def test_the_fast_planar_quantiser_is_quantize_of_the_shifted_field(flow, shift, bound):
    planes = quantize_planes(flow, bound, shift)
    assert planes.shape == (2, 9, 11) and planes.dtype == np.uint8
    expected = quantize(flow - shift, bound).transpose(2, 0, 1)
    # the same value, but for float rounding of values within a hair of a half step
    assert np.abs(planes.astype(int) - expected).max() <= 1
    exact_half = np.isclose(((np.clip(flow - shift, -bound, bound) + bound) * 255 / (2 * bound)) % 1, 0.5, atol=1e-3)
    assert np.array_equal(planes[~exact_half.transpose(2, 0, 1)], expected[~exact_half.transpose(2, 0, 1)])


@settings(max_examples=100, deadline=None)
@given(flow=finite_flows)
def test_flip_of_codes_is_the_exact_negated_mirror_after_dequantisation(flow):
    codes = quantize(flow, 20.0)
    flipped_then_decoded = dequantize(hflip_flow_codes(codes), 20.0)
    decoded_then_flipped = hflip_flow(dequantize(codes, 20.0))
    np.testing.assert_allclose(flipped_then_decoded, decoded_then_flipped, atol=1e-5)


def test_flip_mirrors_columns_and_negates_x_only():
    flow = np.zeros((1, 3, 2), np.float32)
    flow[0, 0] = (5.0, 2.0)  # left pixel moves right and down
    flipped = hflip_flow(flow)
    assert flipped[0, 2].tolist() == [-5.0, 2.0]  # now the right pixel, moving left, still down
    assert np.all(flipped[0, :2] == 0)
    stack = np.stack([flow, flow])  # (L, H, W, 2) stacks flip the same way
    np.testing.assert_array_equal(hflip_flow(stack)[1], flipped)
