"""The fusion heads on feature maps (twostream.feature_fusion.map_heads): the streams' maps, each
head's use of the temporal input, the motion attention on a real moving object with real flow, and
a ViT temporal stream's cross-modality patch embedding. Training, evaluation, resume and the report
of these heads: test_feature_fusion.py, beside the other heads."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from flowprep.demo.data import DemoConfig, draw_spec, object_geometry, render_video
from flowprep.flow.registry import make_flow
from flowprep.format.quantize import quantize
from tests.support.cli import one_line_error, twostream
from tests.support.synthetic import SynthVideo, write_extraction
from twostream.core.config import TrainConfig
from twostream.feature_fusion.config import FusionTrainConfig
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.model import TwoStreamModel
from twostream.feature_fusion.trainer import fit_fusion
from twostream.streams.models import build_model
from twostream.streams.trainer import fit as fit_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")
VIT = "timm:vit_tiny_patch16_224"


def test_feature_maps_are_the_pooled_features_places():
    torch.manual_seed(0)
    resnet = build_model("resnet18", 4, 5, 0.5).eval()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        feature_map = resnet.feature_map(x)
        assert feature_map.shape == (2, resnet.map_channels, 2, 2) == (2, 512, 2, 2)
        torch.testing.assert_close(feature_map.mean(dim=(2, 3)), resnet.features(x))  # what its pooling averages
    # a ViT built for the stream's crops: its patch tokens on their grid, the class token left out
    vit = build_model(VIT, 3, 5, 0.5, crop_size=96).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        tokens = vit.body.forward_features(x)
        feature_map = vit.feature_map(x)
    assert tokens.shape == (2, 37, 192) and feature_map.shape == (2, 192, 6, 6) and vit.map_channels == 192
    torch.testing.assert_close(feature_map[:, :, 1, 2], tokens[:, 1 + 6 + 2])
    assert vit.features(x).shape == (2, 192)
    # a 3D CNN's map of a clip keeps its time steps: (N, C, t, h, w) (the heads on clip pairs: test_clip_heads.py)
    tiny3d = build_model("tiny3d", 3, 5, 0.5, clip=4).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        feature_map = tiny3d.feature_map(clip)
        assert feature_map.shape == (1, tiny3d.map_channels, 2, 8, 8) == (1, 64, 2, 8, 8)
        torch.testing.assert_close(feature_map.mean(dim=(2, 3, 4)), tiny3d.features(clip))
    # a video Swin's tokens after its final norm, on their (t, h, w) grid: what its pooling averages
    swin = build_model("swin3d_t", 2, 5, 0.5, clip=4, crop_size=64).eval()
    clip = torch.randn(1, 2, 4, 64, 64)
    with torch.no_grad():
        feature_map = swin.feature_map(clip)
        assert feature_map.shape == (1, swin.map_channels, 2, 2, 2) == (1, 768, 2, 2, 2)  # 2x4x4 patches, 3 merges
        torch.testing.assert_close(feature_map.mean(dim=(2, 3, 4)), swin.features(clip))


@pytest.mark.slow
def test_mvit_maps_are_its_patch_tokens_and_its_features_the_class_token():
    """mvit_v2_s (16 x 224 x 224 only: about 2 s a pass on one core): the map is the model's own
    tokens after its final norm, the class token left out, on the (t, h, w) grid its blocks pooled
    them to; its pooled features are the class token (what its classifier reads), so unlike a CNN's
    or swin3d's the map's average is not them."""
    torch.manual_seed(0)
    mvit = build_model("mvit_v2_s", 2, 5, 0.5, clip=16, crop_size=224).eval()
    normed = []
    hook = mvit.body.norm.register_forward_hook(lambda module, inputs, output: normed.append(output))
    clip = torch.randn(1, 2, 16, 224, 224)
    with torch.no_grad():
        features = mvit.features(clip)  # torchvision's own forward, to its (identity) head
        hook.remove()
        feature_map = mvit.feature_map(clip)
    (tokens,) = normed
    assert tokens.shape == (1, 1 + 8 * 7 * 7, 768)  # 2x4x4 patches of 16 x 224 x 224, space pooled 8x by its blocks
    assert feature_map.shape == (1, mvit.map_channels, 8, 7, 7) == (1, 768, 8, 7, 7)
    torch.testing.assert_close(feature_map[:, :, 3, 1, 2], tokens[:, 1 + 3 * 49 + 1 * 7 + 2])  # t, h, w order
    torch.testing.assert_close(feature_map.flatten(2).transpose(1, 2), tokens[:, 1:])
    torch.testing.assert_close(features, tokens[:, 0])
    assert not torch.allclose(feature_map.mean(dim=(2, 3, 4)), features, atol=1e-2)


def two_stream(method: str, hidden: int, backbone: str = "resnet18", crop: int = 64) -> TwoStreamModel:
    torch.manual_seed(0)
    return TwoStreamModel(build_model(backbone, 3, 5, 0.5, crop_size=crop), build_model(backbone, 4, 5, 0.5, crop_size=crop),
                          HeadSpec(method, hidden, 0.0), joint=False).eval()


@pytest.mark.parametrize("method,hidden,backbone", [("motion", 0, "resnet18"), ("motion", 8, "resnet18"),
                                                    ("cross-attention", 16, "resnet18"), ("cross-attention", 16, VIT)])
def test_the_heads_read_the_temporal_input(method, hidden, backbone):
    """Each sample's output changes when the flow half of the batch is permuted (its RGB kept)."""
    crop = 96 if backbone == VIT else 64
    model = two_stream(method, hidden, backbone, crop)
    if method == "motion" and hidden:  # trained weights: its zero-initialised map starts uniform
        torch.nn.init.normal_(model.head.learned[-1].weight)
    if method == "cross-attention":  # trained weights: what attention adds starts at zero
        for attention in (model.head.spatial_to_motion, model.head.motion_to_spatial):
            torch.nn.init.normal_(attention.out_proj.weight)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 7, crop, crop, generator=generator)
    # a moving square in each flow stack, at a different place in each
    x[:, 3:] = 0.05 * torch.randn(4, 4, crop, crop, generator=generator)
    for k in range(4):
        x[k, 3:, 8 * k:8 * k + 16, 8 * k:8 * k + 16] += 0.8
    permuted = torch.cat([x[:, :3], x[[1, 2, 3, 0], 3:]], dim=1)
    with torch.no_grad():
        out, out_permuted = model(x), model(permuted)
    assert out.shape == (4, 5)
    assert all(not torch.allclose(out[k], out_permuted[k], atol=1e-4) for k in range(4))
    if method == "motion":  # the places it pools follow the flow
        weights, permuted_weights = model.motion_attention(x), model.motion_attention(permuted)
        torch.testing.assert_close(weights.sum(dim=(1, 2)), torch.ones(4))
        torch.testing.assert_close(permuted_weights, weights[[1, 2, 3, 0]])
    if method == "cross-attention":  # both directions: each side's queries gather from the other side
        swapped_rgb = torch.cat([x[[1, 2, 3, 0], :3], x[:, 3:]], dim=1)
        with torch.no_grad():
            spatial_gathered, motion_gathered = model.head.attended(model._maps(x))
            from_other_motion = model.head.attended(model._maps(permuted))[0]
            from_other_rgb = model.head.attended(model._maps(swapped_rgb))[1]
        assert all(not torch.allclose(spatial_gathered[k], from_other_motion[k], atol=1e-4) for k in range(4))
        assert all(not torch.allclose(motion_gathered[k], from_other_rgb[k], atol=1e-4) for k in range(4))


def test_motion_attention_follows_a_moving_object():
    """A demo video (an object moving up or down over a cluttered background, a shaking camera),
    its flow from DIS: the parameter-free head's highest weight is at the object at every stack."""
    config = DemoConfig(seed=0, videos_per_class=3, width=256, height=256)
    flow = make_flow("dis")
    model = two_stream("motion", 0, crop=256)  # resnet18: an 8x8 map, 32-pixel cells
    for label in (0, 1):  # red up, red down
        spec = draw_spec(config, label, 0)
        assert spec.motion in ("up", "down")
        grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in render_video(spec)]
        stacks, rgb = [], []
        for start in (1, 8, 14):  # L = 2 stacks; the frame at the middle
            fields = [flow(grey[start + k], grey[start + k + 1]) for k in range(2)]
            stacks.append(np.concatenate([f.transpose(2, 0, 1) for f in fields]) / 20.0)
            rgb.append(np.repeat(grey[start + 1][None] / 255.0 - 0.5, 3, axis=0))
        x = torch.from_numpy(np.concatenate([np.stack(rgb), np.stack(stacks)], axis=1)).float()
        weights = model.motion_attention(x)
        peaks = []
        for k, start in enumerate((1, 8, 14)):
            row, col = divmod(int(weights[k].argmax()), 8)
            cx, cy, _ = object_geometry(spec, start + 1)
            cx, cy = cx - spec.camera[start + 1][0], cy - spec.camera[start + 1][1]
            # the peak cell holds the object's centre, or touches the cell that does
            assert abs(row - cy // 32) <= 1 and abs(col - cx // 32) <= 1, (spec.motion, start, (row, col), (cx, cy))
            peaks.append(row)
        assert peaks == sorted(peaks, reverse=spec.motion == "up") and peaks[0] != peaks[-1]


def test_a_vit_temporal_stream_starts_from_the_rgb_patch_embedding_averaged():
    """Cross-modality initialisation (TSN) of a ViT: its patch embedding, a 16x16 stride-16 conv, is
    the first conv on RGB; for a 2L-channel stack its filters are the RGB ones averaged, repeated."""
    torch.manual_seed(0)
    rgb = build_model(VIT, 3, 5, 0.5, crop_size=96).body.state_dict()
    temporal = build_model(VIT, 10, 5, 0.5, rgb_state=rgb, origin="rgb vit", crop_size=96)
    weight = temporal.body.patch_embed.proj.weight
    assert weight.shape == (192, 10, 16, 16)
    torch.testing.assert_close(weight, rgb["patch_embed.proj.weight"].mean(dim=1, keepdim=True).repeat(1, 10, 1, 1))
    torch.testing.assert_close(temporal.body.patch_embed.proj.bias, rgb["patch_embed.proj.bias"])
    # weights of 224 crops (14x14 patches) at 96: the position embedding resampled to 6x6
    at_224 = build_model(VIT, 3, 5, 0.5).body.state_dict()
    assert at_224["pos_embed"].shape == (1, 197, 192)
    resampled = build_model(VIT, 10, 5, 0.5, rgb_state=at_224, origin="224", crop_size=96)
    assert resampled.body.pos_embed.shape == (1, 37, 192)
    torch.testing.assert_close(resampled.body.pos_embed[0, 0], at_224["pos_embed"][0, 0])  # the class token's
    assert resampled.features(torch.randn(1, 10, 96, 96)).shape == (1, 192)


def test_the_python_api_builds_every_fusion_head():
    from twostream.api import FUSION_HEADS, build_fusion_model
    from twostream.api import build_model as api_build_model

    assert FUSION_HEADS == ("mid", "attention", "motion", "cross-attention")
    x = torch.randn(2, 7, 64, 64)
    for method in FUSION_HEADS:
        torch.manual_seed(0)
        model = build_fusion_model(api_build_model("resnet18", 3, 5), api_build_model("resnet18", 4, 5), method).eval()
        assert model.head_spec.hidden == {"mid": 0, "attention": 128, "motion": 0, "cross-attention": 128}[method]
        assert model(x).shape == (2, 5) and not any(p.requires_grad for p in model.stream_parameters())
    motion = build_fusion_model(api_build_model("resnet18", 3, 5), api_build_model("resnet18", 4, 5), "motion", hidden=4)
    assert motion.head_spec.name == "motion-learned" and motion.motion_attention(x).shape == (2, 2, 2)
    with pytest.raises(ValueError, match="fusion method must be one of mid, attention, motion, cross-attention; got 'x'"):
        build_fusion_model(api_build_model("resnet18", 3, 5), api_build_model("resnet18", 4, 5), "x")


SIDE, SQUARE, STEP = 128, 24, 12  # frame size; a square this size moves this many pixels a frame


def square_video(video_id: str, label: int, direction: int) -> SynthVideo:
    """A dark square moving diagonally over a static textured background, and its exact flow: the
    square's pixels move (STEP, STEP) a frame (or back, direction -1), the background not at all."""
    frames = 8
    rng = np.random.default_rng(label)
    background = rng.integers(120, 255, size=(SIDE, SIDE, 1))
    rgb = np.repeat(np.repeat(background[None], frames, axis=0), 3, axis=3).astype(np.uint8)
    flow = np.zeros((frames - 1, SIDE, SIDE, 2), np.float32)
    for t in range(frames):
        corner = square_corner(t, direction)
        rgb[t, corner:corner + SQUARE, corner:corner + SQUARE] = 20
        if t < frames - 1:
            flow[t, corner:corner + SQUARE, corner:corner + SQUARE] = STEP * direction
    zeros = np.zeros((frames - 1, 2), np.float32)
    return SynthVideo(video_id, label, f"class{label}", rgb, quantize(flow, 20.0), quantize(-flow, 20.0), zeros, zeros)


def square_corner(t: int, direction: int) -> int:
    return 4 + STEP * t if direction > 0 else 4 + STEP * (7 - t)


def test_show_draws_where_the_motion_head_looks(tmp_path, capsys):
    """`fuse-features show` on a motion run: each row's frame is the video's frame at the position,
    and the heat drawn over it is highest in the cell of the moving square."""
    shards = write_extraction(tmp_path / "ex", [square_video("right", 0, 1), square_video("left", 1, -1)])
    streams = {}
    for stream in ("spatial", "temporal"):
        config = TrainConfig(extraction=str(shards), out=str(tmp_path / stream), stream=stream, flow_length=2,
                             crop_size=SIDE, epochs=1, batch_size=2, val_every=0, workers=0, threads=1)
        fit_stream(config, interactive=False)
        streams[stream] = str(tmp_path / stream / "checkpoint.pt")
    fit_fusion(FusionTrainConfig(spatial=streams["spatial"], temporal=streams["temporal"], extraction=str(shards),
                                 out=str(tmp_path / "motion"), head="motion", epochs=1, batch_size=2, val_every=0,
                                 workers=0, threads=1), interactive=False)
    out = tmp_path / "pictures" / "right.png"
    code, printed, err = twostream(capsys, "fuse-features", "show", str(tmp_path / "motion"), "--video", "right",
                                   "--out", str(out), "--rows", "3", "--device", "cpu")
    assert code == 0, err
    positions = [int(p) for p in printed.strip().split("positions ")[1].split(", ")]
    assert len(positions) == 3 and positions[0] < positions[-1]
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(float)
    row_height = 14 + SIDE
    assert picture.shape == (3 * row_height, 2 * SIDE + 4, 3)
    video = square_video("right", 0, 1)
    cells = SIDE // 4  # resnet18's map of a 128 crop: 4x4
    for k, position in enumerate(positions):
        frame = picture[k * row_height + 14:(k + 1) * row_height, :SIDE]
        overlay = picture[k * row_height + 14:(k + 1) * row_height, SIDE + 4:]
        np.testing.assert_array_equal(frame, video.rgb[position])  # a forward stack's frame: its first
        drawn = (overlay - 0.35 * frame).sum(axis=2).reshape(4, cells, 4, cells).mean(axis=(1, 3))
        # the stack's motion: the square at `position` and one step on, whose middle is in this cell
        middle = (square_corner(position, 1) + STEP / 2 + SQUARE / 2) // cells
        assert np.unravel_index(drawn.argmax(), drawn.shape) == (middle, middle), (position, drawn.round())

    # bad input: one line each
    assert "'--out': must end in .png, got 'right.gif'" in one_line_error(
        capsys, "fuse-features", "show", str(tmp_path / "motion"), "--video", "right", "--out", str(tmp_path / "right.gif"))
    code, _, err = twostream(capsys, "fuse-features", "show", str(tmp_path / "motion"), "--video", "up", "--out", str(out))
    assert code != 0 and err.strip().endswith(f"no video 'up' in {shards}") and "Traceback" not in err
    fit_fusion(FusionTrainConfig(spatial=streams["spatial"], temporal=streams["temporal"], extraction=str(shards),
                                 out=str(tmp_path / "mid"), head="mid", epochs=1, batch_size=2, val_every=0,
                                 workers=0, threads=1), interactive=False)
    code, _, err = twostream(capsys, "fuse-features", "show", str(tmp_path / "mid"), "--video", "right", "--out", str(out))
    assert code != 0 and "is a mid fusion run; only the motion head weighs places" in err and len(err.strip().splitlines()) == 1


def test_a_spatial_stream_with_motion_attention_trains_evaluates_and_looks_where_it_moves(tmp_path, capsys):
    """`twostream train --stream spatial --motion-attention`: the stream reads the stack beside its
    frame and pools its feature map with the stack's motion weights; evaluate runs it as trained."""
    from twostream.core.checkpoint import load_checkpoint
    from twostream.core.scores import load_scores

    shards = write_extraction(tmp_path / "ex", [square_video("right", 0, 1), square_video("left", 1, -1)])
    run = tmp_path / "spatial"
    common = ["--loader-workers", "0", "--threads", "1"]
    code, _, err = twostream(capsys, "train", str(shards), "--stream", "spatial", "--motion-attention", "--flow-length",
                             "2", "--crop-size", str(SIDE), "--epochs", "1", "--batch-size", "2", "--val-every", "0",
                             "--out", str(run), *common)
    assert code == 0, err
    code, _, err = twostream(capsys, "evaluate", str(run), "--subset", "train", "--clips", "2", "--crops", "center",
                             *common)
    assert code == 0, err
    assert len(load_scores(run / "scores_train.npz").video_ids) == 2

    state = load_checkpoint(run / "checkpoint.pt")
    assert state["config"].motion_attention and state["config"].motion_channels == 4
    model = build_model("resnet18", 3, 2, 0.5, crop_size=SIDE, motion_channels=4).eval()
    model.load_state_dict(state["model"])
    video = square_video("right", 0, 1)
    frames = torch.from_numpy(video.rgb[[0, 4]]).permute(0, 3, 1, 2).float() / 255
    stacks = torch.from_numpy(np.stack([(video.forward[t:t + 2].astype(np.float32) - 127.5) / 127.5 for t in (0, 4)]))
    x = torch.cat([frames, stacks.permute(0, 1, 4, 2, 3).reshape(2, 4, SIDE, SIDE)], dim=1)
    with torch.no_grad():
        features, weights = model.motion_attention(x)
        torch.testing.assert_close(features, torch.einsum("nchw,nhw->nc", model.feature_map(x[:, :3]), weights))
        swapped = torch.cat([x[:, :3], x[[1, 0], 3:]], dim=1)
        assert not torch.allclose(model(x), model(swapped), atol=1e-5)  # the same frames, the other stacks
    for k, t in enumerate((0, 4)):  # the 4x4 map's highest weight: the cell of the square's middle
        middle = (square_corner(t, 1) + STEP / 2 + SQUARE / 2) // (SIDE // 4)
        assert np.unravel_index(int(weights[k].argmax()), (4, 4)) == (middle, middle)
    assert "--motion-attention weighs a 2D spatial stream's feature map with the flow beside its frame; got " \
           "--stream temporal" in one_line_error(capsys, "train", str(shards), "--stream", "temporal",
                                                 "--motion-attention", "--out", str(tmp_path / "t"))
