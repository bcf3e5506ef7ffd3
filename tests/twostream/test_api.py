"""The Python API (twostream.api, docs/api.md): map-style datasets that work with `ds[i]`,
DataLoader(shuffle=True) and DistributedSampler and give what the trainer feeds its model; the
test protocol and fusion as functions; and docs/api.md's loop, run as written."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from tests.support.synthetic import two_class_videos, write_extraction
from twostream.api import (
    SpatialFrames,
    TemporalStacks,
    build_model,
    evaluate_videos,
    fuse_scores,
    load_scores,
    save_scores,
)
from twostream.core.checkpoint import load_checkpoint
from twostream.core.config import EvalConfig, TrainConfig
from twostream.core.device import resolve_device
from twostream.core.errors import DataError
from twostream.data.datasets import Augment, TrainSamples
from twostream.data.samples import InputSpec
from twostream.data.store import ShardStore
from twostream.engine.loops import model_input
from twostream.streams.evaluator import evaluate
from twostream.streams.trainer import fit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two classes, three training and one test video each; 56x48 frames of 8."""
    videos = two_class_videos(6, 2, test_seed=10)
    return write_extraction(tmp_path_factory.mktemp("api") / "ex", videos)


def test_an_item_is_a_normalised_tensor_and_a_label(shards):
    spatial = SpatialFrames(shards, crop_size=48)
    x, y = spatial[0]
    assert x.dtype == torch.float32 and x.shape == (3, 48, 48) and isinstance(y, int) and y == 0
    assert spatial[-1][1] == 1 and len(spatial) == 6 and spatial.num_classes == 2
    with pytest.raises(IndexError):
        spatial[6]
    temporal = TemporalStacks(shards, crop_size=32, flow_length=3)
    x, y = temporal[1]
    assert x.shape == (6, 32, 32) and y == 1 and temporal.in_channels == 6
    # flow of class 1 moves up 8 px (bound 20): y channels near -0.4 in units of the bound, x near 0
    assert float(x[1::2].mean()) == pytest.approx(-0.4, abs=0.05) and abs(float(x[0::2].mean())) < 0.05


def test_items_are_what_the_trainer_feeds_its_model(shards):
    """With a seed, ds[i] in epoch e is the trainer's item (e, i) after its on-device normalisation."""
    data = SpatialFrames(shards, crop_size=40, color_jitter=0.2, seed=3)
    data.set_epoch(5)
    trainer = TrainSamples(ShardStore(shards), data.videos, InputSpec("spatial", 10, "forward", True, 40),
                         Augment(False, True, 0.2), segments=1, seed=3)
    codes, affine, label = trainer[(5, 2)]
    expected = model_input(codes, affine, resolve_device("cpu", False, False))[0]
    x, y = data[2]
    assert y == label and torch.allclose(x, expected)
    assert torch.equal(data[2][0], x)  # the same epoch, the same draw
    data.set_epoch(6)
    assert not torch.equal(data[2][0], x)


def test_without_a_seed_every_access_draws_anew(shards):
    data = TemporalStacks(shards, crop_size=32, flow_length=2)
    first = data[0][0]
    assert any(not torch.equal(first, data[0][0]) for _ in range(10))


def test_a_shuffling_loader_and_a_distributed_sampler_take_it(shards):
    """DataLoader(shuffle=True) and DistributedSampler call ds[int]: TrainSamples took (epoch, index)
    pairs and failed with 'cannot unpack non-iterable int object'."""
    data = SpatialFrames(shards, crop_size=32)
    labels = [int(y) for _, ys in DataLoader(data, batch_size=4, shuffle=True, num_workers=2) for y in ys]
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        batches = list(DataLoader(data, batch_size=2, sampler=sampler))
        assert sum(len(ys) for _, ys in batches) == 3
        seen += list(sampler)
    assert sorted(seen) == list(range(6))


def test_subsets_and_bad_arguments(shards):
    assert [e.video_id for e in SpatialFrames(shards, subset="test", crop_size=32).videos] == ["test0", "test1"]
    held = SpatialFrames(shards, subset="val", holdout=0.34, crop_size=32)
    trained = SpatialFrames(shards, subset="train", holdout=0.34, crop_size=32)
    assert len(held) == 2 and len(trained) == 4 and not {e.video_id for e in held.videos} & {
        e.video_id for e in trained.videos}
    with pytest.raises(DataError, match="subset must be one of train, test, val; got 'dev'"):
        SpatialFrames(shards, subset="dev")
    with pytest.raises(DataError, match="crop size 64 is larger"):
        SpatialFrames(shards, crop_size=64)
    with pytest.raises(DataError, match="flow length 9 needs videos of at least 10 frames"):
        TemporalStacks(shards, crop_size=32, flow_length=9)


def test_evaluate_videos_is_twostream_evaluate(shards, tmp_path):
    """The protocol as a function gives the scores `twostream evaluate` writes for the same model."""
    config = TrainConfig(extraction=str(shards), out=str(tmp_path / "run"), crop_size=40, epochs=1, batch_size=3,
                         lr=0.01, val_every=0, workers=0, threads=1)
    fit(config, interactive=False)
    _, written = evaluate(EvalConfig(checkpoint=str(tmp_path / "run" / "checkpoint.pt"), extraction=str(shards),
                                     out=str(tmp_path / "s.npz"), clips=3, crops="ten", workers=0, threads=1),
                          interactive=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    model = build_model("resnet18", 3, 2, state["config"].dropout)
    model.load_state_dict(state["model"])
    scores = evaluate_videos(model, SpatialFrames(shards, crop_size=40), clips=3, crops="ten")
    assert scores.video_ids.tolist() == written.video_ids.tolist() == ["test0", "test1"]
    np.testing.assert_allclose(scores.scores, written.scores, atol=1e-5)
    assert scores.meta["metrics"]["video_top1"] == scores.accuracy()


def test_fuse_scores_weighs_the_streams(shards, tmp_path):
    spatial = SpatialFrames(shards, subset="test", crop_size=32)
    model = build_model("resnet18", 3, 2)
    s = evaluate_videos(model, spatial, clips=2, crops="center")
    t = evaluate_videos(model, spatial, clips=1, crops="center")
    t = dataclasses.replace(t, meta={**t.meta, "stream": "temporal"})  # a stand-in: fusion checks each file's stream
    save_scores(tmp_path / "t.npz", t)
    fused = fuse_scores(s, tmp_path / "t.npz", method="weighted", ratio=(1, 3))
    np.testing.assert_allclose(fused.scores, 0.25 * s.scores + 0.75 * t.scores, atol=1e-6)
    assert load_scores(tmp_path / "t.npz").video_ids.tolist() == fused.video_ids.tolist()


def docs_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_the_loop_in_docs_api_md_runs_as_written(tmp_path, monkeypatch):
    """docs/api.md's loop and its fusion lines, exactly as written, on a tiny real extraction where
    they look for it (out/demo/shards: 112x112 frames, as the demo's)."""
    loop, fusion = docs_blocks()[:2]
    monkeypatch.chdir(tmp_path)
    videos = two_class_videos(4, 2, test_seed=10, width=112, height=112)
    write_extraction(tmp_path / "out" / "demo" / "shards", videos)
    names: dict = {}
    exec(compile(loop, str(DOCS), "exec"), names)  # noqa: S102 (the docs' own code, run as written)
    scores = names["scores"]
    assert scores.video_ids.tolist() == ["test0", "test1"] and scores.meta["protocol"] == {"clips": 25, "crops": "ten"}
    assert load_scores(tmp_path / "out" / "my_spatial_scores_test.npz").video_ids.tolist() == ["test0", "test1"]
    # the fusion lines, with the spatial scores standing in for a temporal stream's
    stand_in = dataclasses.replace(scores, meta={**scores.meta, "stream": "temporal"})  # fusion checks each file's stream
    save_scores(tmp_path / "out" / "my_temporal_scores_test.npz", stand_in)
    exec(compile(fusion, str(DOCS), "exec"), names)  # noqa: S102
    np.testing.assert_allclose(names["fused"].scores, scores.scores, atol=1e-6)


def test_build_model_builds_the_window_streams():
    """build_model(stream=...) builds what `twostream train --stream NAME --clip T` trains: the
    learned-flow network with its layer's options (on frames or feature maps), the dynamic-image
    network as an RGB one; bad values in one line."""
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 4, 40, 40)
    for flow_on in ("frames", "features"):
        model = build_model("resnet18", 3, 5, stream="learned-flow", clip=4, crop_size=40, flow_on=flow_on,
                            flow_params={"inner_iterations": 3, "tau": 0.2, "nscales": 2}).eval()
        with torch.no_grad():
            assert model(clip).shape == (2, 5) and model.feature_map(clip).shape[:2] == (2, 512)
        layer = model.body[0].flow if flow_on == "frames" else model.body.flow
        assert layer.iterations == 3 and layer.pyramid.nscales == 2
        assert layer.step_sizes().tau.item() == pytest.approx(0.2)
        trained = TrainConfig(extraction="s", out="o", stream="learned-flow", clip=4, crop_size=40, flow_on=flow_on,
                              flow_layer=(("inner_iterations", 3), ("tau", 0.2), ("nscales", 2)))
        from twostream.streams.motion_models import build_stream_model

        expected = build_stream_model(trained, 5).state_dict()  # the trainer's: the same weights load
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in expected.items()}
    dynamic = build_model("resnet18", 3, 5, stream="dynamic-image", clip=4)
    assert {k: v.shape for k, v in dynamic.state_dict().items()} == \
        {k: v.shape for k, v in build_model("resnet18", 3, 5).state_dict().items()}
    with pytest.raises(ValueError, match="the flow layer's warps must be at least 1, got 0"):
        build_model("resnet18", 3, 5, stream="learned-flow", clip=4, flow_params={"warps": 0})
    with pytest.raises(ValueError, match="stream must be one of dynamic-image, learned-flow"):
        build_model("resnet18", 3, 5, stream="temporal", clip=4)
    with pytest.raises(ValueError, match="--flow-on features cuts the backbone after its first stage"):
        build_model("vgg16", 3, 5, stream="learned-flow", clip=4, flow_on="features")
