"""Pure pieces of the trainer: stack index arithmetic, sampling, crops, the flip sign rule on
flow stacks, metrics and the learning-rate schedule."""
from __future__ import annotations

import numpy as np
import pytest

from flowprep.format.quantize import dequantize, hflip_flow, hflip_flow_codes, quantize
from tests.support.inputs import flow_input, rgb_input
from twostream.core.config import TrainConfig
from twostream.core.schedule import learning_rate
from twostream.data.sampling import is_short, num_positions, segment_positions, stack_fields, uniform_positions
from twostream.data.transforms import (
    center_box,
    channels_first,
    color_jitter,
    corner_boxes,
    eval_crops,
    hflip_flow_planes,
    hflip_planes,
    multiscale_corner_box,
    random_crop_box,
    resize_image,
    resize_planes,
)
from twostream.engine.metrics import mean_class_accuracy, summarize, topk_hits, video_scores


# --- positions and stacks ---------------------------------------------------------------------
def test_positions_count_frames_or_stacks():
    assert num_positions("spatial", 30, 10) == 30
    assert num_positions("temporal", 30, 10) == 20  # 29 fields, stacks start at 0..19
    assert num_positions("temporal", 11, 10) == 1  # exactly L fields
    assert num_positions("temporal", 5, 10) == 1  # short: the centred, padded stack


def test_forward_stack_takes_consecutive_forward_fields():
    assert stack_fields(0, 30, 4, "forward") == [("forward", i) for i in range(4)]
    last = 30 - 1 - 4  # the last stack ends at the last field, T-2
    assert stack_fields(last, 30, 4, "forward")[-1] == ("forward", 28)
    with pytest.raises(IndexError):
        stack_fields(last + 1, 30, 4, "forward")
    with pytest.raises(IndexError):
        stack_fields(-1, 30, 4, "forward")


def test_bidirectional_stack_is_backward_before_tau_then_forward_from_tau():
    # position p: tau = p + L/2; backward fields tau-L/2 .. tau-1 (frames tau-L/2 .. tau), then
    # forward fields tau .. tau+L/2-1 (frames tau .. tau+L/2)
    fields = stack_fields(3, 30, 6, "bidirectional")
    assert fields == [("backward", 3), ("backward", 4), ("backward", 5), ("forward", 6), ("forward", 7), ("forward", 8)]
    last = stack_fields(30 - 1 - 6, 30, 6, "bidirectional")
    assert last[0] == ("backward", 23) and last[-1] == ("forward", 28)
    assert stack_fields(0, 30, 6, "bidirectional")[0] == ("backward", 0)


@pytest.mark.parametrize("frames", [2, 3, 5, 10])
def test_short_videos_get_one_centred_edge_padded_stack(frames):
    assert is_short(frames, 10)
    fields = [i for _, i in stack_fields(0, frames, 10, "forward")]
    assert len(fields) == 10 and min(fields) == 0 and max(fields) == frames - 2
    assert fields == sorted(fields)
    assert set(fields) == set(range(frames - 1))  # every field is used, the edge ones repeated
    pad_before, pad_after = fields.count(0) - 1, fields.count(frames - 2) - 1
    assert abs(pad_before - pad_after) <= 1  # centred
    bidi = stack_fields(0, frames, 10, "bidirectional")
    assert [d for d, _ in bidi] == ["backward"] * 5 + ["forward"] * 5
    assert [i for _, i in bidi] == fields
    with pytest.raises(IndexError):
        stack_fields(1, frames, 10, "forward")


def test_five_frames_l10_exact_indices():
    assert [i for _, i in stack_fields(0, 5, 10, "forward")] == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]


def test_segment_sampling_draws_one_position_per_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        positions = segment_positions(100, 4, rng)
        assert [p // 25 for p in positions] == [0, 1, 2, 3]
    assert all(0 <= p < 7 for p in segment_positions(7, 1, rng))
    few = segment_positions(2, 5, rng)
    assert len(few) == 5 and few == sorted(few) and set(few) <= {0, 1}


def test_uniform_test_positions_are_spread_and_in_range():
    assert uniform_positions(100, 25) == [2 + 4 * i for i in range(25)]
    assert uniform_positions(1, 25) == [0] * 25
    p = uniform_positions(10, 25)
    assert len(p) == 25 and p == sorted(p) and set(p) == set(range(10))


# --- crops and flips --------------------------------------------------------------------------
def test_crop_boxes_stay_inside_the_frame():
    rng = np.random.default_rng(1)
    for _ in range(100):
        b = random_crop_box(48, 64, 32, rng)
        assert 0 <= b.top <= 16 and 0 <= b.left <= 32 and (b.height, b.width) == (32, 32)
        m = multiscale_corner_box(256, 340, rng)
        assert m.top >= 0 and m.left >= 0 and m.top + m.height <= 256 and m.left + m.width <= 340
        assert m.height in (256, 224, 192, 168) and m.width in (256, 224, 192, 168)
    corners = corner_boxes(256, 340, 224, 224)
    assert [(b.top, b.left) for b in corners] == [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)]
    assert center_box(256, 340, 224) == corners[4]


def test_ten_crops_are_five_boxes_then_the_same_flipped():
    crops = eval_crops(256, 340, 224, "ten")
    assert len(crops) == 10 and [f for _, f in crops] == [False] * 5 + [True] * 5
    assert [b for b, _ in crops[:5]] == [b for b, _ in crops[5:]]
    assert eval_crops(256, 340, 224, "center") == [(center_box(256, 340, 224), False)]


def test_resize_handles_frames_and_planes():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    planes = rng.integers(0, 255, (10, 48, 64), dtype=np.uint8)
    box = multiscale_corner_box(48, 64, np.random.default_rng(3))
    rows, cols = slice(box.top, box.top + box.height), slice(box.left, box.left + box.width)
    assert resize_image(frame[rows, cols], 24).shape == (24, 24, 3)
    resized = resize_planes(planes[:, rows, cols], 24)
    assert resized.shape == (10, 24, 24) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized[2], resize_image(planes[2, rows, cols, None], 24)[..., 0])  # plane by plane
    exact = random_crop_box(48, 64, 24, np.random.default_rng(4))
    rows, cols = slice(exact.top, exact.top + 24), slice(exact.left, exact.left + 24)
    np.testing.assert_array_equal(resize_planes(planes[:, rows, cols], 24), planes[:, rows, cols])


def test_channels_first_interleaves_x_and_y_of_each_field():
    stack = np.random.default_rng(6).integers(0, 255, (3, 4, 5, 2), dtype=np.uint8)
    planes = channels_first(stack)
    assert planes.shape == (6, 4, 5) and planes.flags.c_contiguous
    for k in range(3):
        np.testing.assert_array_equal(planes[2 * k], stack[k, ..., 0])
        np.testing.assert_array_equal(planes[2 * k + 1], stack[k, ..., 1])


def test_flow_plane_flip_is_flowprep_rule():
    codes = np.random.default_rng(7).integers(0, 256, (4, 6, 9, 2), dtype=np.uint8)
    np.testing.assert_array_equal(hflip_flow_planes(channels_first(codes)), channels_first(hflip_flow_codes(codes)))
    rgb = np.random.default_rng(8).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(hflip_planes(channels_first(rgb)), channels_first(rgb[:, ::-1]))


def test_flipping_a_stack_mirrors_it_and_negates_every_x_field():
    rng = np.random.default_rng(5)
    bound = 20.0
    flow = rng.uniform(-15, 15, size=(3, 8, 12, 2)).astype(np.float32)  # L=3 fields
    codes = quantize(flow, bound)
    flipped = flow_input(hflip_flow_planes(channels_first(codes)), bound, None, flipped=True) * bound  # (2L, H, W) px
    expected = hflip_flow(dequantize(codes, bound))  # flowprep's rule on each float field
    for k in range(3):
        np.testing.assert_allclose(flipped[2 * k], expected[k, ..., 0], atol=1e-4)
        np.testing.assert_allclose(flipped[2 * k + 1], expected[k, ..., 1], atol=1e-4)
    # a rightward motion reads as leftward after the flip, a downward one stays downward
    right_down = quantize(np.full((2, 8, 12, 2), [4.0, 3.0], np.float32), bound)
    out = flow_input(hflip_flow_planes(channels_first(right_down)), bound, None, flipped=True) * bound
    assert np.all(out[0::2] < -3.8) and np.all(out[1::2] > 2.8)


def test_restored_means_follow_the_flip():
    planes = np.full((4, 4, 4), 128, np.uint8)  # zero motion codes, L=2
    step = 2 * 20.0 / 255
    means = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    plain = flow_input(planes, 20.0, means, flipped=False) * 20.0
    flipped = flow_input(hflip_flow_planes(planes), 20.0, means, flipped=True) * 20.0
    np.testing.assert_allclose(plain[:, 0, 0], [1.0, 2.0, 3.0, -1.0], atol=step)
    np.testing.assert_allclose(flipped[:, 0, 0], [-1.0, 2.0, -3.0, -1.0], atol=step)


def test_rgb_input_normalises_and_jitter_keeps_grey_grey():
    from twostream.data.transforms import RGB_MEAN, RGB_STD

    rgb = np.random.default_rng(9).integers(0, 256, (3, 5, 6), dtype=np.uint8)
    expected = (rgb / 255.0 - RGB_MEAN[:, None, None]) / RGB_STD[:, None, None]
    np.testing.assert_allclose(rgb_input(rgb), expected, atol=1e-5)
    np.testing.assert_allclose(rgb_input(rgb, (1.0, 1.0, 1.0)), expected, atol=1e-5)  # identity factors
    grey = np.full((3, 2, 2), 0.5, np.float32)
    np.testing.assert_allclose(color_jitter(grey, (1.2, 0.7, 1.5)), np.full((3, 2, 2), 0.6), atol=1e-6)


# --- metrics and schedule ---------------------------------------------------------------------
def test_video_scores_average_clips_and_metrics_count_right():
    clip_scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]], np.float32)
    video_index = np.array([0, 0, 1, 1])
    labels = np.array([0, 2])
    videos = video_scores(video_index, clip_scores, 2)
    np.testing.assert_allclose(videos, [[0.55, 0.45, 0.0], [0.35, 0.15, 0.5]], atol=1e-6)
    metrics, _ = summarize(clip_scores, video_index, labels)
    assert metrics["clip_top1"] == 0.5 and metrics["video_top1"] == 1.0
    assert metrics["clip_top5"] == 1.0  # k capped at the 3 classes
    top2 = topk_hits(np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), np.array([1, 2]), 2)
    assert top2.tolist() == [True, False]
    assert mean_class_accuracy(labels=np.array([0, 0, 0, 1]), predictions=np.array([0, 0, 1, 1])) == pytest.approx((2 / 3 + 1) / 2)


def test_step_schedule_is_the_papers_tenfold_drops():
    config = TrainConfig(extraction="s", out="o", epochs=80, lr=0.01)
    assert config.lr_steps == (50, 70)
    assert [learning_rate(config, e) for e in (0, 49, 50, 69, 70, 79)] == pytest.approx(
        [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])
    cosine = TrainConfig(extraction="s", out="o", epochs=10, lr=0.1, schedule="cosine")
    assert learning_rate(cosine, 0) == pytest.approx(0.1) and learning_rate(cosine, 5) == pytest.approx(0.05)


@pytest.mark.parametrize("options,message", [
    ({"stream": "depth"}, "stream must be one of spatial, temporal, dynamic-image, learned-flow; got 'depth'"),
    ({"backbone": "alexnet"}, "unknown backbone 'alexnet'; choices: resnet18"),
    ({"flow_stack": "bidirectional", "flow_length": 5}, "flow length must be even; got 5"),
    ({"stream": "temporal", "color_jitter": 0.3}, "colour jitter applies to RGB frames only"),
    ({"pretrained": "a.pth", "weights": "IMAGENET1K_V1"}, "not both"),
    ({"lr_steps": (5, 3)}, "lr steps must be increasing"),
    ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N; got 'gpu'"),
])
def test_bad_config_values_are_named(options, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(extraction="s", out="o", **options)
    assert message in str(info.value)


def test_stream_defaults_are_resolved_and_stored():
    spatial = TrainConfig(extraction="s", out="o")
    temporal = TrainConfig(extraction="s", out="o", stream="temporal")
    assert (spatial.dropout, temporal.dropout) == (0.5, 0.9)  # the paper's 0.9 for the temporal net
    assert temporal.color_jitter == 0.0 and temporal.in_channels == 20
    assert TrainConfig.from_json(temporal.to_json()) == temporal


def test_the_run_options_are_declared_once_and_stored_last():
    """workers, device, threads, amp, channels_last: RunOptions' fields and checks, in every config;
    stored after the config's own fields, where they were before the base held them."""
    import dataclasses

    from twostream.core.config import RUN_FIELDS, RUN_OPTIONS, EvalConfig, RunOptions
    from twostream.feature_fusion.config import FusionTrainConfig

    assert RUN_OPTIONS == ("workers", "device", "threads", "amp", "channels_last")
    assert set(RUN_OPTIONS) <= RUN_FIELDS  # a resumed run may change them
    for config in (TrainConfig(extraction="s", out="o"), EvalConfig("c", "s", "o"),
                   FusionTrainConfig("a", "b", "s", "o")):
        assert isinstance(config, RunOptions)
        assert not set(RUN_OPTIONS) & set(type(config).__annotations__)  # not restated
        assert list(config.to_dict())[-len(RUN_OPTIONS):] == list(RUN_OPTIONS)
        assert type(config).from_json(config.to_json()) == config
        with pytest.raises(ValueError, match="workers must be a non-negative integer, got -1"):
            dataclasses.replace(config, workers=-1)
        with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N; got 'gpu'"):
            dataclasses.replace(config, device="gpu")


def test_progress_bar_redraws_one_line_on_a_terminal():
    import io

    from twostream.core.progress import EpochProgress

    stream = io.StringIO()
    bar = EpochProgress("epoch 3 train", 2, stream=stream, interactive=True)
    bar.update(16, loss=1.5, acc=0.25)
    bar.update(16, loss=1.0, acc=0.5)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[" + "#" * 24 + "] epoch 3 train 2/2 loss 1.0000 acc 0.5000" in text


def test_one_mean_class_accuracy_for_evaluation_fusion_and_reports():
    """Evaluation (summarize), fusion and reports (table_row) share one definition: labels first,
    the mean of per-class recalls over the classes that have videos, NaN without videos."""
    from twostream.core.scores import VideoScores
    from twostream.score_fusion.report_data import table_row

    labels, predictions = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    scores = np.eye(3, dtype=np.float32)[predictions]  # a third class that no video has
    expected = (2 / 3 + 1) / 2
    assert summarize(scores, np.arange(4), labels)[0]["mean_class_accuracy"] == pytest.approx(expected)
    row = table_row("s", "stream", "s.npz", VideoScores(np.array(list("abcd")), labels, scores, ("x", "y", "z")))
    assert row.mean_class_accuracy == pytest.approx(expected)
    assert mean_class_accuracy(labels, predictions) == pytest.approx(expected)
    assert np.isnan(mean_class_accuracy(np.array([], np.int64), np.array([], np.int64)))
