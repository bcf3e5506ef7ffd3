"""Motion without precomputed flow: the dynamic-image input (approximate rank pooling, its
coefficients against the paper's closed form and the reference implementation's sum, a ramp's
pooling, the loader's output on a real shard) and the dynamic-image and learned-flow streams
through train, evaluate and fuse on a tiny demo set, with their configs checked in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flowprep.demo.data import DemoConfig
from tests.support.cli import one_line_error, twostream
from tests.support.extraction import extract_demo
from twostream.api import build_model, load_run
from twostream.core.config import TrainConfig
from twostream.core.scores import load_scores
from twostream.data.clip_sampling import ClipSpec
from twostream.data.dynamic_images import FLAT, dynamic_image, harmonic, rank_pool, rank_pool_coefficients
from twostream.data.extraction import open_extraction, videos_in_split
from twostream.data.motion_inputs import FrameWindow
from twostream.data.store import ShardStore
from twostream.data.transforms import CropBox, rgb_affine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- approximate rank pooling: pure functions -------------------------------------------------------
@pytest.mark.parametrize("frames", [1, 2, 3, 5, 10, 25])
def test_coefficients_are_the_closed_form_and_the_reference_sum(frames):
    alpha = rank_pool_coefficients(frames)
    t = np.arange(1, frames + 1)
    # the closed form, with the harmonic numbers written out as sums
    closed = [2 * (frames - s + 1) - (frames + 1) * sum(1 / j for j in range(s, frames + 1)) for s in t]
    # hbilen/dynamic-image-nets' vl_nnarpooltemporal.m: fw(i) = sum((2*(i:N)-N-1) ./ (i:N))
    reference = [sum((2 * j - frames - 1) / j for j in range(s, frames + 1)) for s in t]
    np.testing.assert_allclose(alpha, closed, rtol=0, atol=1e-12)
    np.testing.assert_allclose(alpha, reference, rtol=0, atol=1e-12)
    assert abs(alpha.sum()) < 1e-9  # what stays constant over the clip cancels


def test_known_values():
    assert harmonic(0) == 0 and harmonic(3) == pytest.approx(11 / 6)
    np.testing.assert_allclose(rank_pool_coefficients(2), [-0.5, 0.5])  # 2 frames: half their difference
    np.testing.assert_allclose(rank_pool_coefficients(3), [-4 / 3, 2 / 3, 2 / 3])


def test_rank_pooling_a_linear_ramp_gives_its_slope_whatever_its_offset():
    """Frames I_t = a + b t: the pooled image is b * sum_t alpha_t t, a multiple of the slope b, and
    the offset a vanishes; a ramp backwards in time pools to the negative."""
    rng = np.random.default_rng(0)
    offset, slope = rng.uniform(0, 100, (8, 8, 3)), rng.uniform(-3, 3, (8, 8, 3))
    t = np.arange(1, 11, dtype=np.float64)
    frames = offset[None] + slope[None] * t[:, None, None, None]
    gain = float(rank_pool_coefficients(10) @ t)
    assert gain > 0
    np.testing.assert_allclose(rank_pool(frames), gain * slope, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rank_pool(frames[::-1]), -gain * slope, rtol=1e-4, atol=1e-3)


def test_the_dynamic_image_is_rescaled_to_the_image_range():
    frames = np.zeros((4, 6, 6, 3), np.uint8)
    frames[:, 2, 2, 0] = [10, 20, 30, 40]  # one pixel's red rises
    image = dynamic_image(frames)
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255 and image[2, 2, 0] == 255
    assert (dynamic_image(np.full((4, 6, 6, 3), 77, np.uint8)) == FLAT).all()  # nothing changes: mid grey


def test_window_streams_are_checked_in_one_line():
    with pytest.raises(ValueError, match="dynamic-image stream takes a window of --clip T frames"):
        TrainConfig(extraction="s", out="o", stream="dynamic-image")
    with pytest.raises(ValueError, match="learned-flow stream takes a 2D backbone"):
        TrainConfig(extraction="s", out="o", stream="learned-flow", clip=4, backbone="tiny3d")
    with pytest.raises(ValueError, match="the dynamic-image stream takes 0"):
        TrainConfig(extraction="s", out="o", stream="dynamic-image", clip=4, color_jitter=0.2)
    config = TrainConfig(extraction="s", out="o", stream="learned-flow", clip=4)
    assert config.in_channels == 3 and config.lr == 0.005 and config.color_jitter == 0.0
    # the layer's options: every parameter resolved and stored (a run stored without them reads as the defaults)
    assert dict(config.flow_layer) == {"tau": 0.25, "lambda": 0.15, "theta": 0.3, "nscales": 1, "scale_step": 0.7,
                                       "warps": 1, "inner_iterations": 10, "pool": 2, "lr_scale": 0.01}
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="--flow-on and --flow-param set the learned-flow stream's TV-L1 layer; "
                                         "got --stream dynamic-image"):
        TrainConfig(extraction="s", out="o", stream="dynamic-image", clip=4, flow_layer=(("tau", 0.2),))
    with pytest.raises(ValueError, match="flow on must be one of frames, features; got 'pixels'"):
        TrainConfig(extraction="s", out="o", stream="learned-flow", clip=4, flow_on="pixels")
    with pytest.raises(ValueError, match=r"--flow-on features cuts the backbone after its first stage: a torchvision "
                                         r"ResNet \(resnet18, .*\); got 'timm:resnet18'"):
        TrainConfig(extraction="s", out="o", stream="learned-flow", clip=4, flow_on="features", backbone="timm:resnet18")


def test_the_layer_options_are_one_line_usage_errors(capsys, tmp_path):
    base = ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--stream", "learned-flow", "--clip", "4"]
    assert "the flow layer's nscales must be at least 1, got 0" in one_line_error(
        capsys, *base, "--flow-param", "nscales=0")
    assert "unknown learned flow layer parameter 'iterations'; accepted: tau, lambda, theta" in one_line_error(
        capsys, *base, "--flow-param", "iterations=5")
    assert "'--flow-param': expected NAME=VALUE, got 'tau'" in one_line_error(capsys, *base, "--flow-param", "tau")


# --- on real shards ---------------------------------------------------------------------------------
DEMO = DemoConfig(seed=3, videos_per_class=3, frames=8, width=48, height=48)  # 2 train, 1 test a class


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return extract_demo(tmp_path_factory.mktemp("motiondemo"), DEMO)


def test_the_loader_pools_the_window_read_from_a_shard(shards):
    extraction = open_extraction(shards)
    entry = videos_in_split(extraction, "split1", "train")[0]
    video = ShardStore(shards).video(entry)
    window = FrameWindow("dynamic-image", ClipSpec("spatial", 4, 2, 40))
    assert window.positions(entry.num_frames) == entry.num_frames - 6  # a span of 7 frames
    box = CropBox(3, 5, 40, 40)
    codes, affine = window.to_input(window.read_raw(video, entry.num_frames, 1, box), video.bound, flip=False)
    frames = np.stack([video.rgb(i)[3:43, 5:45] for i in (1, 3, 5, 7)])  # frames 1, 3, 5, 7, cut to the box
    np.testing.assert_array_equal(codes, dynamic_image(frames).transpose(2, 0, 1))
    assert codes.shape == (3, 40, 40) and codes.min() == 0 and codes.max() == 255  # the object moved
    np.testing.assert_array_equal(affine, rgb_affine())
    flipped, _ = window.to_input(window.read_raw(video, entry.num_frames, 1, box), video.bound, flip=True)
    np.testing.assert_array_equal(flipped, codes[:, :, ::-1])
    clip, _ = FrameWindow("learned-flow", window.frames).to_input(window.read_raw(video, entry.num_frames, 1, box),
                                                            video.bound, flip=False)
    np.testing.assert_array_equal(clip, frames.transpose(3, 0, 1, 2))  # the frames themselves, (3, T, S, S)


ARGS = ["--clip", "4", "--crop-size", "40", "--batch-size", "8", "--epochs", "1", "--val-every", "0",
        "--loader-workers", "0", "--threads", "1", "--dropout", "0.5"]
EVAL_ARGS = ["--clips", "2", "--crops", "center", "--loader-workers", "0", "--threads", "1"]


def test_both_streams_train_evaluate_and_fuse_like_the_others(shards, tmp_path, capsys):
    """A training epoch of each (its weights move: the learned layer's too), evaluation to the
    usual scores file, and score fusion of the two runs."""
    runs = {}
    layer_args = {"dynamic-image": [], "learned-flow": ["--flow-param", "inner_iterations=3", "--flow-param", "tau=0.2"]}
    for stream in ("dynamic-image", "learned-flow"):
        run = tmp_path / stream
        code, _, err = twostream(capsys, "train", str(shards), "--stream", stream, "--out", str(run), *ARGS,
                                 *layer_args[stream])
        assert code == 0, err[-2000:]
        code, _, err = twostream(capsys, "evaluate", str(run), *EVAL_ARGS)
        assert code == 0, err[-2000:]
        scores = load_scores(run / "scores_test.npz")
        assert scores.scores.shape == (8, 8) and scores.meta["stream"] == stream
        assert np.isfinite(scores.scores).all()
        runs[stream] = run
    state = torch.load(runs["learned-flow"] / "checkpoint.pt", weights_only=True)
    theta = state["model"]["body.0.flow.log_theta"].exp()
    assert theta.item() != pytest.approx(0.3, abs=1e-7)  # the layer's step size was trained
    assert state["in_channels"] == 3
    # the layer's options are the run's: in its config.json, and in the network predict and the API load
    stored = json.loads((runs["learned-flow"] / "config.json").read_text())
    assert dict(stored["flow_layer"])["inner_iterations"] == 3 and stored["flow_on"] == "frames"
    loaded = load_run(runs["learned-flow"]).model.body[0].flow
    assert loaded.iterations == 3 and loaded.log_theta.exp().item() == pytest.approx(theta.item())
    api_model = build_model("resnet18", 3, 8, 0.5, 40, stream="learned-flow", clip=4,
                            flow_params={"inner_iterations": 3, "tau": 0.2})
    api_model.load_state_dict(state["model"])  # strict: the API builds the network the run trained
    code, _, err = twostream(capsys, "fuse", str(runs["dynamic-image"]), str(runs["learned-flow"]),
                             "--out", str(tmp_path / "fused"))
    assert code == 0, err[-2000:]
    assert load_scores(tmp_path / "fused" / "average.npz").scores.shape == (8, 8)
