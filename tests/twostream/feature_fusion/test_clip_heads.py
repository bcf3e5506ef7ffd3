"""Feature-level fusion of two clip streams (3D networks on `--clip T` inputs): the clip pair (the
RGB clip and the flow clip at one position, one box and flip), the heads on (N, C, t, h, w) feature
maps using the other stream, the motion head's weights following a moving square over time steps,
and the commands end to end on tiny tiny3d runs, with the mismatched pairs refused in one line."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from flowprep.format.quantize import quantize
from tests.support.cli import one_line_error, twostream
from tests.support.inputs import CPU
from tests.support.synthetic import SynthVideo, write_extraction
from twostream.core.checkpoint import load_checkpoint
from twostream.core.config import TrainConfig
from twostream.core.scores import load_scores
from twostream.data.clip_pairs import ClipPairSpec
from twostream.data.clip_sampling import ClipSpec
from twostream.data.datasets import EvalSamples
from twostream.data.extraction import open_extraction
from twostream.data.store import ShardStore
from twostream.engine.loops import model_input
from twostream.feature_fusion.checkpoint import build_two_stream, pair_spec
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.model import TwoStreamModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIDE, SQUARE, STEP, FRAMES = 64, 16, 4, 9  # a square this size moves this many pixels a frame


def square_corner(t: int, direction: int) -> int:
    return 4 + STEP * t if direction > 0 else 4 + STEP * (FRAMES - 1 - t)


def square_video(video_id: str, label: int, direction: int, split: str = "train") -> SynthVideo:
    """A dark square moving diagonally (down-right, or up-left for direction -1) over a static
    textured background, and its exact forward flow: the square's pixels move (STEP, STEP) a frame."""
    rng = np.random.default_rng(len(video_id) + 10 * label)
    background = rng.integers(120, 255, size=(SIDE, SIDE, 1))
    rgb = np.repeat(np.repeat(background[None], FRAMES, axis=0), 3, axis=3).astype(np.uint8)
    flow = np.zeros((FRAMES - 1, SIDE, SIDE, 2), np.float32)
    for t in range(FRAMES):
        corner = square_corner(t, direction)
        rgb[t, corner:corner + SQUARE, corner:corner + SQUARE] = (20, 20, 200) if label else (200, 20, 20)
        if t < FRAMES - 1:
            flow[t, corner:corner + SQUARE, corner:corner + SQUARE] = STEP * direction
    zeros = np.zeros((FRAMES - 1, 2), np.float32)
    return SynthVideo(video_id, label, f"class{label}", rgb, quantize(flow, 20.0), quantize(-flow, 20.0), zeros, zeros,
                      {"split1": split})


def clip_two_stream(method: str, hidden: int, clip: int = 4, backbone: str = "tiny3d", crop: int = 32) -> TwoStreamModel:
    """Two clip streams and a head, built as `fuse-features` builds them from the runs' configs."""
    torch.manual_seed(0)
    spatial, temporal = (TrainConfig(extraction="ex", out="run", stream=stream, backbone=backbone, clip=clip,
                                     crop_size=crop) for stream in ("spatial", "temporal"))
    return build_two_stream(spatial, temporal, 5, HeadSpec(method, hidden, 0.0), joint=False).eval()


# a clip stream's crop for these tests, and its map's (t, h, w) and channels on a 4-frame clip
# (tiny3d halves time once and space twice; swin3d_t's patches are 2 x 4 x 4, its 3 merges halve space)
CLIP_MAPS = {"tiny3d": (32, (2, 8, 8), 64), "swin3d_t": (64, (2, 2, 2), 768)}


@pytest.mark.parametrize("method,hidden,backbone", [("motion", 0, "tiny3d"), ("motion", 8, "tiny3d"),
                                                    ("cross-attention", 16, "tiny3d"), ("mid", 0, "tiny3d"),
                                                    ("attention", 16, "tiny3d"), ("motion", 0, "swin3d_t"),
                                                    ("motion", 8, "swin3d_t"), ("cross-attention", 16, "swin3d_t")])
def test_the_heads_on_clip_streams_read_the_temporal_input(method, hidden, backbone):
    """Each sample's output changes when the flow clips are permuted across the batch (its RGB
    clip kept); the map heads see every (t, h, w) place of both maps: a 3D CNN's places, or a video
    transformer's tokens (swin3d_t; mvit_v2_s's maps: test_map_heads.py)."""
    crop, places, channels = CLIP_MAPS[backbone]
    model = clip_two_stream(method, hidden, backbone=backbone, crop=crop)
    with torch.no_grad():  # as if trained: the weights that start at zero (a uniform learned map, what
        for weight in model.head.parameters():  # cross-attention adds, attention's 1:1) have moved
            if weight.dim() > 1 and not weight.any():
                torch.nn.init.normal_(weight)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 4, crop, crop, generator=generator)
    x[:, 3:] = 0.05 * torch.randn(4, 2, 4, crop, crop, generator=generator)
    cell = crop // 8
    for k in range(4):  # a moving patch in each flow clip, at a different place in each
        x[k, 3:, :, cell * k:cell * (k + 3), cell * k:cell * (k + 3)] += 0.8
    permuted = torch.cat([x[:, :3], x[[1, 2, 3, 0], 3:]], dim=1)
    with torch.no_grad():
        out, out_permuted = model(x), model(permuted)
    assert out.shape == (4, 5)
    assert all(not torch.allclose(out[k], out_permuted[k], atol=1e-4) for k in range(4))
    if method == "motion":
        weights = model.motion_attention(x)
        assert weights.shape == (4, *places)
        torch.testing.assert_close(weights.sum(dim=(1, 2, 3)), torch.ones(4))
        torch.testing.assert_close(model.motion_attention(permuted), weights[[1, 2, 3, 0]])
    if method == "cross-attention":
        assert model.head.tokens(model._maps(x).spatial).shape == (4, places[0] * places[1] * places[2], channels)


def test_the_clip_pair_and_the_motion_weights_follow_a_moving_square(tmp_path):
    """Read through the clip pair from real shards: RGB step t is the frame flow step t starts at, a
    flip mirrors both halves and negates the flow's x, and the parameter-free motion head's peak
    place at each of the map's time steps is where the square moved during that step's fields."""
    shards = write_extraction(tmp_path / "ex", [square_video("right", 0, 1), square_video("left", 1, -1)])
    pair = ClipPairSpec(ClipSpec("spatial", 4, 1, SIDE), ClipSpec("temporal", 4, 1, SIDE))
    extraction, store = open_extraction(shards), ShardStore(shards)
    entry = extraction.index["right"]
    assert pair.positions(entry.num_frames) == FRAMES - 1 - 4 + 1  # the flow clip's: one field fewer than frames
    video = store.video(entry)
    raw = pair.read_raw(video, entry.num_frames, 2)
    planes, affine = pair.to_input(raw, video.bound, flip=False)
    assert planes.shape == (5, 4, SIDE, SIDE) and affine.shape == (2, 5)
    np.testing.assert_array_equal(planes[:3].transpose(1, 2, 3, 0), np.stack([video.rgb(i) for i in range(2, 6)]))
    flipped = pair.to_input(raw, video.bound, flip=True)
    x, x_flipped = (model_input(torch.from_numpy(p)[None], torch.from_numpy(a)[None], CPU)[0] for p, a in
                    ((planes, affine), flipped))
    torch.testing.assert_close(x_flipped[:3], x[:3].flip(-1))
    torch.testing.assert_close(x_flipped[3], -x[3].flip(-1), atol=1e-6, rtol=0)  # the flow's x, negated
    torch.testing.assert_close(x_flipped[4], x[4].flip(-1))

    for spatial, message in ((ClipSpec("spatial", 8, 1, SIDE), "the same clip length (--clip) to pair their clips; "
                                                              "the spatial stream takes 8, the temporal 4"),
                             (ClipSpec("spatial", 4, 1, 48), "the same crop size (--crop-size) to pair their clips; "
                                                            "the spatial stream takes 48, the temporal 64")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ClipPairSpec(spatial, pair.temporal)

    model = clip_two_stream("motion", 0)
    cells = SIDE // 16  # tiny3d's 16x16 map of a 64 crop: 4-pixel cells; its 2 time steps: 2 fields each
    for video_id, direction in (("right", 1), ("left", -1)):
        entry = extraction.index[video_id]
        items = EvalSamples(store, [entry], pair, clips=3, crops="center")
        codes, affine = (torch.stack([items[j][k][0] for j in range(len(items))]) for k in (0, 1))
        weights = model.motion_attention(model_input(codes, affine, CPU))
        assert weights.shape == (3, 2, 16, 16)
        for j, (_, position) in enumerate(items.items):
            peaks = []
            for step in range(2):
                first = position + 2 * step  # the step's two fields: the square where both put it
                low = max(square_corner(first, direction), square_corner(first + 1, direction)) // cells
                high = (min(square_corner(first, direction), square_corner(first + 1, direction)) + SQUARE) // cells
                row, col = divmod(int(weights[j, step].argmax()), 16)
                assert low <= row < high and low <= col < high, (video_id, position, step, (row, col), (low, high))
                peaks.append(row)
            assert (peaks[1] - peaks[0]) * direction > 0  # it moved with the square


CLIP_ARGS = ["--backbone", "tiny3d", "--crop-size", "48", "--batch-size", "4", "--epochs", "1", "--val-every", "0",
             "--loader-workers", "0", "--threads", "1", "--holdout", "0", "--lr", "0.05"]


def test_clip_streams_fuse_at_feature_level_end_to_end(tmp_path, capsys):
    """Two tiny3d clip runs (RGB clips, flow clips) on generated videos; `fuse-features train` and
    `evaluate` with the motion and cross-attention heads; `show` draws each step of each clip's map
    at its middle frame; a clip pair of other lengths, strides or crops, or of a clip and a 2D stream, is refused
    in one line."""
    videos = [square_video(f"v{i}", i % 2, 1 if i % 2 else -1, "test" if i >= 4 else "train") for i in range(6)]
    shards = write_extraction(tmp_path / "ex", videos)
    runs = {}
    for name, stream, extra in (("rgb", "spatial", ["--clip", "4"]), ("flow", "temporal", ["--clip", "4"]),
                                ("flow-stride", "temporal", ["--clip", "4", "--clip-stride", "2"]),
                                ("flow-2d", "temporal", ["--backbone", "resnet18", "--flow-length", "2"])):
        runs[name] = tmp_path / name
        code, _, err = twostream(capsys, "train", shards, "--stream", stream, "--out", runs[name], *CLIP_ARGS, *extra)
        assert code == 0, err[-2000:]
    common = ["--loader-workers", "0", "--threads", "1"]
    base = ["fuse-features", "train", shards, "--spatial", runs["rgb"], "--epochs", "1", "--batch-size", "4",
            "--val-every", "0", *common]
    for method in ("motion", "cross-attention"):
        out = tmp_path / method
        code, _, err = twostream(capsys, *base, "--temporal", runs["flow"], "--method", method, "--out", out)
        assert code == 0, err[-2000:]
        code, _, err = twostream(capsys, "fuse-features", "evaluate", out, "--clips", "2", "--crops", "center", *common)
        assert code == 0, err[-2000:]
        scores = load_scores(out / "scores_test.npz")
        assert scores.scores.shape == (2, 2) and np.isfinite(scores.scores).all()
        assert scores.meta["fusion_method"] == method

    picture = tmp_path / "motion.png"
    code, printed, err = twostream(capsys, "fuse-features", "show", tmp_path / "motion", "--video", "v4", "--rows", "2",
                                   "--out", picture, "--device", "cpu")
    assert code == 0, err
    drawn = cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB)
    zoom = drawn.shape[1] // (2 * 48 + 4)  # a 48 crop is drawn enlarged, so that the labels fit
    row = 14 + zoom * 48
    assert zoom >= 2 and drawn.shape == (14 + 2 * 2 * row, zoom * (2 * 48 + 4), 3)  # 2 clips x the map's 2 steps
    positions = [int(p) for p in printed.strip().split("positions ")[1].split(", ")]
    for k, (position, frame) in enumerate((p, f) for p in positions for f in (1, 3)):  # the steps' middle frames
        top = 14 + k * row + 14
        np.testing.assert_array_equal(drawn[top:top + zoom * 48:zoom, :zoom * 48:zoom],
                                      videos[4].rgb[position + frame, 8:56, 8:56])  # the centre crop

    spatial, flow = (load_checkpoint(runs[n] / "checkpoint.pt")["config"] for n in ("rgb", "flow"))
    assert pair_spec(spatial, flow).in_channels == (3, 2)
    refused = {"flow-stride": "the two clip streams must take the same clip stride (--clip-stride) to pair their "
                              "clips; the spatial stream takes 1, the temporal 2",
               "flow-2d": "the spatial stream is a clip stream (--clip 4) and the temporal stream a 2D one: "
                          "feature-level fusion pairs two 2D streams or two clip streams"}
    for name, message in refused.items():
        assert message in one_line_error(capsys, *base, "--temporal", runs[name], "--method", "mid",
                                         "--out", tmp_path / f"refused-{name}")
