"""Clip streams (`--clip T`): clip sampling, the clip input (RGB 3 x T, flow 2 x T, the flip rule),
the three-crop test protocol, and a 3D RGB stream on a small demo set seeing the motion that a
single frame cannot (the 2D spatial stream's cap is 25 %: docs/demo.md), through train, evaluate,
score fusion; feature fusion of clip streams refused in one line; frame sampling checked."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flowprep.demo.data import DemoConfig
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.quantize import LEVELS
from tests.support.cli import one_line_error, twostream
from tests.support.extraction import extract_demo
from twostream.core.config import TrainConfig
from twostream.core.scores import load_scores
from twostream.data.clip_sampling import ClipSpec, clip_indices, clip_positions, frame_sampling
from twostream.data.transforms import eval_crops, rgb_affine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- sampling and the clip input: pure functions ----------------------------------------------------
def test_clip_indices_follow_the_stride_and_pad_short_videos_at_their_edges():
    assert clip_positions(16, 8, 2) == 2 and clip_indices(1, 16, 8, 2) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert clip_positions(15, 4, 1) == 12 and clip_indices(11, 15, 4, 1) == [11, 12, 13, 14]
    # 5 items, a span of 8: one centred clip, the first and last items repeated
    assert clip_positions(5, 8, 1) == 1 and clip_indices(0, 5, 8, 1) == [0, 0, 0, 1, 2, 3, 4, 4]
    with pytest.raises(IndexError):
        clip_indices(13, 15, 4, 1)


class StripedVideo:
    """A reader of frames whose value tells (frame, row, column), and flow whose code tells the field."""
    bound, height, width = 20.0, 12, 16

    def rgb(self, index: int) -> np.ndarray:
        frame = np.zeros((self.height, self.width, 3), np.uint8)
        frame[..., 0] = index
        frame[..., 1] = np.arange(self.width)[None]
        return frame

    def flow_planes(self, fields, box=None):
        _, left, h, w = box if box is not None else (0, 0, self.height, self.width)
        planes = np.empty((2 * len(fields), h, w), np.uint8)
        for k, (direction, index) in enumerate(fields):
            assert direction == "forward"
            planes[2 * k] = 100 + index + np.arange(left, left + w)[None] * 0  # x code: 100 + field
            planes[2 * k + 1] = 50 + index  # y code
        return planes


def test_a_clip_is_channels_by_time_and_a_flipped_flow_clip_negates_x():
    video = StripedVideo()
    rgb = ClipSpec("spatial", 4, 2, 8)
    codes, affine = rgb.to_input(rgb.read_raw(video, 10, 1), video.bound, flip=False)
    assert codes.shape == (3, 4, 8, 8) and codes.dtype == np.uint8
    assert [int(codes[0, t, 0, 0]) for t in range(4)] == [1, 3, 5, 7]  # frames 1, 3, 5, 7 in time order
    np.testing.assert_array_equal(affine, rgb_affine())
    box_codes, _ = rgb.to_input(rgb.cut_raw(rgb.read_raw(video, 10, 1), eval_crops(12, 16, 8, "center")[0][0]),
                              video.bound, flip=True)
    assert list(box_codes[1, 0, 0]) == list(range(11, 3, -1))  # columns 4..11, mirrored

    flow = ClipSpec("temporal", 3, 1, 8)
    raw = flow.read_raw(video, 10, 2)
    codes, affine = flow.to_input(raw[:, :8, :8], video.bound, flip=False)
    assert codes.shape == (2, 3, 8, 8) and affine.shape == (2, 2)
    assert [int(codes[0, t, 0, 0]) for t in range(3)] == [102, 103, 104]  # x of fields 2, 3, 4
    assert [int(codes[1, t, 0, 0]) for t in range(3)] == [52, 53, 54]  # y
    flipped, flipped_affine = flow.to_input(raw[:, :8, :8], video.bound, flip=True)
    np.testing.assert_array_equal(flipped[0], LEVELS - codes[0, :, :, ::-1])  # x negated (on codes: 255 - x)
    np.testing.assert_array_equal(flipped[1], codes[1, :, :, ::-1])
    np.testing.assert_array_equal(flipped_affine, affine)  # no mean vectors: the same normalisation


def test_three_crops_spread_along_the_longer_side():
    boxes = [(b.top, b.left) for b, flip in eval_crops(48, 64, 40, "three")]
    assert boxes == [(4, 0), (4, 12), (4, 24)]
    assert [(b.top, b.left) for b, _ in eval_crops(64, 48, 40, "three")] == [(0, 4), (12, 4), (24, 4)]


def test_frame_sampling_words():
    assert frame_sampling({"fps": 10.0, "stride": 1}, "extract") == "fps 10"
    assert frame_sampling({"fps": None, "stride": 2}, "extract") == "stride 2"
    assert frame_sampling({}, "import") == "unknown"


def test_clip_options_are_checked_in_one_line():
    with pytest.raises(ValueError, match="--clip 8 makes a 3D stream: the backbone must be a video network"):
        TrainConfig(extraction="s", out="o", clip=8)
    with pytest.raises(ValueError, match="r3d_18 is a video network: give --clip T"):
        TrainConfig(extraction="s", out="o", backbone="r3d_18")
    with pytest.raises(ValueError, match="--no-mean-subtraction is not available for clip streams"):
        TrainConfig(extraction="s", out="o", stream="temporal", backbone="tiny3d", clip=4, mean_subtraction=False)
    assert TrainConfig(extraction="s", out="o", stream="temporal", backbone="tiny3d", clip=4).in_channels == 2


# --- a 3D RGB stream on the demo data -------------------------------------------------------------
DEMO = DemoConfig(seed=7, videos_per_class=12, frames=16, width=48, height=48)  # 8 train, 4 test a class
CLIP_ARGS = ["--backbone", "tiny3d", "--clip", "8", "--clip-stride", "2", "--crop-size", "40", "--batch-size", "8",
             "--lr", "0.05", "--schedule", "cosine", "--color-jitter", "0", "--dropout", "0.5", "--val-every", "0",
             "--loader-workers", "0", "--threads", "1"]
EVAL_ARGS = ["--clips", "2", "--crops", "three", "--loader-workers", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory):
    return extract_demo(tmp_path_factory.mktemp("clipdemo"), DEMO)


def train_clip_stream(capsys, shards, run, stream, epochs, seed, *more):
    code, _, err = twostream(capsys, "train", str(shards), "--stream", stream, "--out", str(run),
                             "--epochs", str(epochs), "--seed", str(seed), *CLIP_ARGS, *more)
    assert code == 0, err[-2000:]
    code, _, err = twostream(capsys, "evaluate", str(run), "--extraction", str(shards), *EVAL_ARGS)
    assert code == 0, err[-2000:]
    return load_scores(run / "scores_test.npz").meta["metrics"]


@pytest.fixture(scope="module")
def rgb_clip(demo_shards, tmp_path_factory, learning_seed):
    """A tiny3d RGB clip stream trained (20 epochs, about 20 s on one core) and evaluated through the CLI."""
    run = tmp_path_factory.mktemp("runs") / "rgb"
    return run, train_clip_stream(_Capture(), demo_shards, run, "spatial", 20, learning_seed)


class _Capture:
    """capsys for a module fixture (pytest's is function-scoped): the CLI's output is pytest's to capture."""

    def readouterr(self):
        return "", ""


@pytest.mark.slow
def test_a_3d_rgb_stream_sees_the_motion_a_frame_cannot(rgb_clip):
    run, metrics = rgb_clip
    config = json.loads((run / "config.json").read_text())
    assert (config["clip"], config["clip_stride"], config["frames"]) == (8, 2, "stride 1")  # recorded
    # one frame shows the colour only: a 2D RGB stream is capped at 1 in 4 (docs/demo.md); a clip shows the motion
    assert metrics["video_top1"] >= 0.5, metrics
    scores = load_scores(run / "scores_test.npz")
    assert scores.scores.shape == (32, 8)
    assert scores.meta["protocol"] == {"clips": 2, "crops": "three"}


@pytest.mark.slow
def test_clip_streams_fuse_at_score_level_and_pair_for_feature_fusion(rgb_clip, demo_shards, tmp_path, capsys):
    rgb, _ = rgb_clip
    flow = tmp_path / "flow"
    metrics = train_clip_stream(capsys, demo_shards, flow, "temporal", 1, 0)
    assert 0.0 <= metrics["video_top1"] <= 1.0
    assert torch.load(flow / "checkpoint.pt", weights_only=True)["in_channels"] == 2  # x and y, over time
    code, _, err = twostream(capsys, "fuse", str(rgb), str(flow), "--out", str(tmp_path / "fused"))
    assert code == 0, err[-2000:]
    assert load_scores(tmp_path / "fused" / "average.npz").scores.shape == (32, 8)
    # feature-level fusion pairs the two clips (the heads on clip pairs: tests/twostream/feature_fusion/test_clip_heads.py)
    from twostream.core.checkpoint import load_checkpoint
    from twostream.feature_fusion.checkpoint import pair_spec

    pair = pair_spec(*(load_checkpoint(run / "checkpoint.pt")["config"] for run in (rgb, flow)))
    assert pair.in_channels == (3, 2) and (pair.spatial.clip, pair.spatial.stride) == (8, 2)


@pytest.mark.slow
def test_shards_sampled_at_another_rate_are_refused(rgb_clip, demo_shards, tmp_path, capsys):
    rgb, _ = rgb_clip
    data = demo_shards.parent / "data"
    other = tmp_path / "shards_fps"
    config = ExtractConfig(flow_method="dis", width=DEMO.width, height=DEMO.height, fps=12.5)
    run_extract(ExtractRun(data / "manifest.csv", data, other, config, workers=1), interactive=False)
    message = one_line_error(capsys, "evaluate", str(rgb), "--extraction", str(other),
                             "--out", str(tmp_path / "s"), *EVAL_ARGS)
    assert "trained on frames sampled at stride 1, but" in message and "sampled at fps 12.5" in message


def test_an_unreachable_pretrained_url_is_one_line_and_not_a_path(demo_shards, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    url = "http://127.0.0.1:9/x.pth"
    message = one_line_error(capsys, "train", str(demo_shards), "--out", str(tmp_path / "run"),
                             "--pretrained", url, "--epochs", "1", "--loader-workers", "0", "--crop-size", "40")
    assert f"could not fetch {url} (" in message and "--pretrained PATH (the local file)" in message
    assert not (tmp_path / "run").exists()
