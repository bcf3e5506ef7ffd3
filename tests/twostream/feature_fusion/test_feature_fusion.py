"""Feature-level fusion: the paired input (one box and flip for frame and stack), the two heads,
frozen vs joint training, complementary streams fused beyond either, resume, the scores file
through `twostream report`, and bad input as one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flowprep.demo.data import DemoConfig
from flowprep.format.quantize import quantize
from tests.support.cli import one_line_error, twostream
from tests.support.extraction import extract_demo
from tests.support.synthetic import SynthVideo, write_extraction
from twostream.cli.main import main as twostream_main
from twostream.core.config import EvalConfig, TrainConfig
from twostream.core.run_folder import METRICS_FILE
from twostream.core.scores import load_scores
from twostream.data.datasets import Augment, EvalSamples, TrainSamples
from twostream.data.extraction import open_extraction
from twostream.data.paired import PairSpec, anchor_frame
from twostream.data.samples import InputSpec
from twostream.data.store import ShardStore
from twostream.feature_fusion import trainer as fusion_trainer
from twostream.feature_fusion.checkpoint import load_fusion_checkpoint
from twostream.feature_fusion.config import FusionTrainConfig
from twostream.feature_fusion.evaluator import evaluate_fusion
from twostream.feature_fusion.heads import HeadSpec
from twostream.feature_fusion.model import TwoStreamModel
from twostream.feature_fusion.trainer import fit_fusion
from twostream.streams.evaluator import evaluate
from twostream.streams.models import build_model
from twostream.streams.trainer import fit as fit_stream

FUSED = ("mid", "attention", "motion", "cross-attention")
METRIC_KEYS = {"epoch", "phase", "loss", "accuracy", "lr", "samples_per_s", "time"}
COLOURS = np.array([[150, 30, 0], [0, 30, 150]])  # appearance factor: reddish or bluish
MOTIONS = (6.0, -6.0)  # motion factor: vertical flow, px per frame (a flip leaves it the same)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the paired input ----------------------------------------------------------------------------
def test_the_frame_of_a_stack_is_at_its_tau():
    assert [anchor_frame(p, 12, 4, "forward") for p in (0, 3, 7)] == [0, 3, 7]
    assert [anchor_frame(p, 12, 4, "bidirectional") for p in (0, 3, 7)] == [2, 5, 9]  # p + L/2
    assert anchor_frame(0, 5, 10, "bidirectional") == 2  # a short video: its padded stack's middle
    pair = PairSpec(InputSpec("spatial", 4, "forward", True, 24), InputSpec("temporal", 4, "forward", True, 24))
    assert pair.positions(12) == 8 and pair.in_channels == (3, 8)
    with pytest.raises(ValueError, match="same crop size to share crop boxes; the spatial stream takes 24, the temporal 32"):
        PairSpec(InputSpec("spatial", 4, "forward", True, 24), InputSpec("temporal", 4, "forward", True, 32))


def coordinate_video(frames: int = 9, width: int = 40, height: int = 32) -> SynthVideo:
    """Pixels that say where they are: RGB = (6 column, 6 row, 10 frame); forward flow codes
    x = 100 + field, y = 6 column; backward x = 60 + field, y = 6 row."""
    rows, cols = np.mgrid[0:height, 0:width]
    t = np.arange(frames - 1)[:, None, None]
    rgb = np.stack(np.broadcast_arrays(6 * cols[None], 6 * rows[None], 10 * np.arange(frames)[:, None, None]), -1)
    def field(x, y):
        return np.stack(np.broadcast_arrays(x, y), -1).astype(np.uint8)

    zeros = np.zeros((frames - 1, 2), np.float32)
    return SynthVideo("coords", 0, "class0", rgb.astype(np.uint8), field(100 + t, 6 * cols[None] + 0 * t),
                      field(60 + t, 6 * rows[None] + 0 * t), zeros, zeros)


def check_pair(planes: np.ndarray, position: int) -> bool:
    """Asserts that frame and stack of one pair show the same pixels; returns whether flipped.
    Channels: R, G, B, then the bidirectional L=2 stack: backward x, y, forward x, y."""
    r, g, b, bx, by, fx, fy = planes.astype(int)
    flipped = r[0, 0] > r[0, -1]
    assert np.all(b == 10 * (position + 1))  # the frame at tau = p + 1
    np.testing.assert_array_equal(fy, r)  # the same columns, in the same (mirrored or not) order
    np.testing.assert_array_equal(by, g)  # the same rows
    # a flip negates x flow: code c -> 255 - c
    assert np.all(fx == (255 - (100 + position + 1) if flipped else 100 + position + 1))
    assert np.all(bx == (255 - (60 + position) if flipped else 60 + position))
    return bool(flipped)


def test_paired_items_share_box_and_flip_in_training_and_test(tmp_path):
    shards = write_extraction(tmp_path / "ex", [coordinate_video()])
    entry = open_extraction(shards).index["coords"]
    pair = PairSpec(InputSpec("spatial", 2, "bidirectional", True, 24), InputSpec("temporal", 2, "bidirectional", True, 24))
    train = TrainSamples(ShardStore(shards), [entry], pair, Augment(), segments=1, seed=0)
    flips, lefts = set(), set()
    for epoch in range(12):
        codes, affine, label = train[(epoch, 0)]
        assert codes.shape == (1, 7, 24, 24) and affine.shape == (1, 2, 7) and label == 0
        planes = codes[0].numpy()
        position = int(planes[2, 0, 0]) // 10 - 1  # from the frame; check_pair holds the stack to it
        flips.add(check_pair(planes, position))
        lefts.add(int(planes[0].min()))
        # each half keeps its own normalisation: ImageNet's for RGB, the bound's for flow
        np.testing.assert_allclose(affine[0, 1, 3:].numpy(), -1.0)
        assert affine[0, 0, 0] > 0.01 and affine[0, 0, 3] < 0.01
    assert flips == {False, True} and len(lefts) > 2  # random flips, random boxes

    test = EvalSamples(ShardStore(shards), [entry], pair, clips=3, crops="ten")
    assert len(test) == 3  # positions of the stack: 9 frames, L=2 -> 7
    for j, position in enumerate([1, 3, 5]):
        codes, _, _, video = test[j]
        assert codes.shape == (10, 7, 24, 24) and video == 0
        assert [check_pair(c.numpy(), position) for c in codes] == [False] * 5 + [True] * 5


# --- the model -----------------------------------------------------------------------------------
def two_stream(method: str, joint: bool = False, hidden: int = 16, classes: int = 5) -> TwoStreamModel:
    torch.manual_seed(0)
    hidden = 0 if method == "motion" else hidden  # the parameter-free one
    return TwoStreamModel(build_model("resnet18", 3, classes, 0.5), build_model("resnet18", 4, classes, 0.5),
                          HeadSpec(method, hidden, 0.5), joint)


@pytest.mark.parametrize("method,hidden", [("mid", 0), ("mid", 16), ("attention", 16)])
def test_heads_give_class_logits(method, hidden):
    model = two_stream(method, hidden=hidden).eval()
    x = torch.randn(3, 7, 32, 32)
    logits = model(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match=r"a two-stream input has 7 channels \(3 RGB \+ 4 flow\), got 6"):
        model(x[:, :6])


def test_attention_weights_sum_to_one_and_weigh_the_streams_logits():
    model = two_stream("attention").eval()
    with torch.no_grad():
        model.head.net[-1].bias.copy_(torch.tensor([0.3, -0.2]))
        model.head.net[-1].weight.normal_()  # weights that differ from sample to sample
    x = torch.randn(4, 7, 32, 32)
    w = model.fusion_weights(x)
    assert w.shape == (4, 2) and (w > 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(4))
    assert not torch.allclose(w[0], w[1])
    with torch.no_grad():
        zs, zt = model.spatial(x[:, :3]), model.temporal(x[:, 3:])
        model.head.log_scale.fill_(np.log(3.0))
        standard = [(z - z.mean(dim=1, keepdim=True)) / z.std(dim=1, keepdim=True, unbiased=False) for z in (zs, zt)]
        torch.testing.assert_close(model(x), 3.0 * (w[:, :1] * standard[0] + w[:, 1:] * standard[1]))
        # so a stream cannot drown the other by the scale of its logits alone
        torch.testing.assert_close(model.head(*model._streams(x)[:2], (100 * zs, zt)), model(x))
    with pytest.raises(ValueError, match="only the attention head weighs the streams; this model's head is mid"):
        two_stream("mid").fusion_weights(x)


@pytest.mark.parametrize("method", FUSED)
def test_mixed_precision_path_trains_the_head(method):
    """The CUDA path (autocast, channels_last), run with bfloat16 autocast on the CPU (no GPU here)."""
    from twostream.core.device import Device
    from twostream.engine.loops import predict_samples, train_one_epoch

    model = two_stream(method).to(memory_format=torch.channels_last)
    device = Device(torch.device("cpu"), torch.bfloat16, channels_last=True)
    affine = torch.stack([torch.full((2, 1, 7), 2 / 255), torch.full((2, 1, 7), -1.0)], dim=-2)  # (B, K, 2, C)
    batch = (torch.randint(0, 256, (2, 1, 7, 32, 32), dtype=torch.uint8), affine, torch.tensor([0, 3]))
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.01)
    result = train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, [batch], device, device.scaler(), 1,
                             interactive=False)
    assert result.samples == 2 and np.isfinite(result.loss)
    scores, _ = predict_samples(model, [batch[:2]], device, "val", interactive=False)
    assert scores.shape == (2, 5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)


def test_head_spec_names_bad_values():
    with pytest.raises(ValueError, match="fusion method must be one of mid, attention, motion, cross-attention; got 'late'"):
        HeadSpec("late", 0, 0.5)
    with pytest.raises(ValueError, match="hidden units of the attention head must be a positive integer, got 0"):
        HeadSpec("attention", 0, 0.5)
    with pytest.raises(ValueError, match=r"head dropout must be in \[0, 1\), got 1.0"):
        HeadSpec("mid", 0, 1.0)


# --- trained on two complementary streams ---------------------------------------------------------
def factor_video(video_id: str, colour: int, motion: int, split: str, frames: int = 6, height: int = 32,
                 width: int = 40) -> SynthVideo:
    """Class 2 * colour + motion. Every video has the same texture and the same flow noise (one
    seed), so a frame tells the colour and nothing else, a stack the motion and nothing else: each
    stream alone tells 2 of the 4 classes apart, and fusion all 4."""
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.integers(0, 100, size=(frames, height, width, 1)) + COLOURS[colour], 0, 255).astype(np.uint8)
    flow = rng.normal(0, 1.5, size=(frames - 1, height, width, 2)) + np.array([0.0, MOTIONS[motion]])
    zeros = np.zeros((frames - 1, 2), np.float32)
    label = 2 * colour + motion
    return SynthVideo(video_id, label, f"c{colour}m{motion}", rgb, quantize(flow, 20.0), quantize(-flow, 20.0),
                      zeros, zeros, {"split1": split})


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    videos = [factor_video(f"{split}{k}_{c}{m}", c, m, split, height=48, width=56) for c in (0, 1) for m in (0, 1)
              for split, copies in (("train", 2), ("test", 1)) for k in range(copies)]
    return write_extraction(tmp_path_factory.mktemp("factors") / "ex", videos)


def fast(**options) -> dict:
    return {"workers": 0, "threads": 1, **options}


@pytest.fixture(scope="module")
def streams(shards, tmp_path_factory, learning_seed):
    """Two resnet18 streams trained on 48x48 crops (smaller ones leave resnet18 a 1x1 last feature
    map, and batch norm statistics from a few batches of those are too poor to test with), each
    until it has learned its factor: 24 epochs. With 8, on some seeds (and some CPUs' float paths)
    a stream had not yet ranked its factor's two classes first, and no fusion of its logits can
    recover what its logits lack (test_the_streams_learned_their_factor says which stream)."""
    runs = tmp_path_factory.mktemp("streams")
    for stream in ("spatial", "temporal"):
        fit_stream(TrainConfig(**fast(extraction=str(shards), out=str(runs / stream), stream=stream, flow_length=2, crop_size=48,
                               epochs=24, batch_size=4, lr=0.01, schedule="cosine", dropout=0.0, val_every=0,
                               seed=learning_seed)),
            interactive=False)
    return runs / "spatial" / "checkpoint.pt", runs / "temporal" / "checkpoint.pt"


def fusion_config(shards, streams, out, **options) -> FusionTrainConfig:
    spatial, temporal = streams
    base = fast(spatial=str(spatial), temporal=str(temporal), extraction=str(shards), out=str(out), epochs=6, batch_size=4,
                lr=0.05, dropout=0.0, schedule="cosine", val_every=0)
    return FusionTrainConfig(**{**base, **options})


@pytest.fixture(scope="module")
def fused(shards, streams, tmp_path_factory, learning_seed):
    """Every head on the frozen streams (motion: the parameter-free one)."""
    runs = tmp_path_factory.mktemp("fused")
    metrics = {m: fit_fusion(fusion_config(shards, streams, runs / m, head=m, seed=learning_seed),
                             interactive=False).metrics for m in FUSED}
    return runs, metrics


def video_accuracy(config: EvalConfig, evaluate_fn) -> float:
    return evaluate_fn(config, interactive=False)[0]["video_top1"]


def eval_config(checkpoint, shards, out, **options) -> EvalConfig:
    return EvalConfig(**fast(checkpoint=str(checkpoint), extraction=str(shards), out=str(out), clips=3, crops="center",
                             **options))


def test_the_streams_learned_their_factor(shards, streams, tmp_path):
    """The premise of fusing them: on every training video, the spatial stream ranks the two
    classes of its colour first, the temporal stream the two of its motion."""
    factor = {"spatial": lambda label: {label - label % 2, label - label % 2 + 1},
              "temporal": lambda label: {label % 2, label % 2 + 2}}
    for (stream, classes), checkpoint in zip(factor.items(), streams):
        _, scores = evaluate(eval_config(checkpoint, shards, tmp_path / f"{stream}.npz", subset="train"), interactive=False)
        top2 = [set(np.argsort(-row)[:2].tolist()) for row in scores.scores]
        assert top2 == [classes(int(label)) for label in scores.labels], stream


def test_fusion_of_complementary_streams_beats_both(shards, streams, fused, tmp_path):
    runs, metrics = fused
    # on the training videos, with the test protocol: each stream can tell at most half the classes
    stream_acc = [video_accuracy(eval_config(s, shards, tmp_path / f"{i}.npz", subset="train"), evaluate)
                  for i, s in enumerate(streams)]
    assert max(stream_acc) <= 0.5
    for method in FUSED:
        accuracy = video_accuracy(eval_config(runs / method / "checkpoint.pt", shards, tmp_path / f"{method}.npz",
                                              subset="train"), evaluate_fusion)
        assert accuracy > max(stream_acc) and accuracy >= 0.75, (method, accuracy, stream_acc)
        assert metrics[method]["train"]["accuracy"] > max(stream_acc)


def test_runs_log_metrics_and_store_every_config(shards, streams, fused, learning_seed):
    runs, _ = fused
    lines = [json.loads(line) for line in (runs / "mid" / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 7)) and all(set(r) == METRIC_KEYS for r in lines)
    assert lines[-1]["loss"] < lines[0]["loss"]
    state = load_fusion_checkpoint(runs / "attention" / "checkpoint.pt")
    assert state["config"] == fusion_config(shards, streams, runs / "attention", head="attention", seed=learning_seed)
    assert state["head"] == HeadSpec("attention", 128, 0.0) and state["epoch"] == 6
    assert state["spatial_config"].stream == "spatial" and state["temporal_config"].flow_length == 2
    assert json.loads((runs / "attention" / "config.json").read_text())["method"] == "attention"


def stream_weights(path):
    from twostream.core.checkpoint import load_checkpoint

    return load_checkpoint(path)["model"]


def test_frozen_streams_stay_unchanged_and_joint_ones_move(shards, streams, fused, tmp_path):
    runs, _ = fused
    before = {name: stream_weights(path) for name, path in zip(("spatial", "temporal"), streams)}

    def moved(run):
        model = load_fusion_checkpoint(run / "checkpoint.pt")["model"]
        return {name: [k for k, v in weights.items() if not torch.equal(model[f"{name}.{k}"], v)]
                for name, weights in before.items()}

    # frozen: every weight and batch norm statistic as trained; the head learned
    assert moved(runs / "mid") == {"spatial": [], "temporal": []}
    joint = fit_fusion(fusion_config(shards, streams, tmp_path / "joint", head="mid", joint=True, epochs=1),
                       interactive=False).metrics
    assert np.isfinite(joint["train"]["loss"])
    changed = moved(tmp_path / "joint")
    for name in ("spatial", "temporal"):
        assert "body.conv1.weight" in changed[name] and "body.bn1.running_mean" in changed[name]
        assert "classifier.weight" not in changed[name]  # mid fusion does not use the streams' classifiers


class Killed(BaseException):
    """Stands for SIGKILL right after a checkpoint was written."""


@pytest.mark.parametrize("method", ["attention", "motion", "cross-attention"])  # motion with hidden 8: the learned one
def test_a_resumed_fusion_run_equals_an_uninterrupted_one(shards, streams, tmp_path, monkeypatch, method):
    options = dict(head=method, epochs=2, hidden=8, dropout=0.3, segments=2, color_jitter=0.2, schedule="step",
                   lr_steps=(1,))
    fit_fusion(fusion_config(shards, streams, tmp_path / "straight", **options), interactive=False)
    real_save = fusion_trainer.save_fusion_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise Killed

    monkeypatch.setattr(fusion_trainer, "save_fusion_checkpoint", save_then_die)
    with pytest.raises(Killed):
        fit_fusion(fusion_config(shards, streams, tmp_path / "resumed", **options), interactive=False)
    monkeypatch.setattr(fusion_trainer, "save_fusion_checkpoint", real_save)
    fit_fusion(fusion_config(shards, streams, tmp_path / "resumed", **options), resume=True, interactive=False)
    a, b = (load_fusion_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("straight", "resumed"))
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [json.loads(line)["loss"] for line in (tmp_path / "straight" / METRICS_FILE).read_text().splitlines()] == \
        [json.loads(line)["loss"] for line in (tmp_path / "resumed" / METRICS_FILE).read_text().splitlines()]


# --- the command line ----------------------------------------------------------------------------
def test_scores_go_through_twostream_report(capsys, shards, streams, fused, tmp_path):
    runs, _ = fused
    common = ["--extraction", str(shards), "--clips", "2", "--crops", "center", "--loader-workers", "0",
              "--threads", "1"]
    for name, path in zip(("spatial", "temporal"), streams):
        code, _, err = twostream(capsys, "evaluate", str(path), *common, "--out", str(tmp_path / name))
        assert code == 0, err
    for method in FUSED:
        code, out, err = twostream(capsys, "fuse-features", "evaluate", str(runs / method), *common, "--json")
        assert code == 0, err
        assert json.loads(out)["scores"] == str(runs / method / "scores_test.npz")
    scores = load_scores(runs / "mid" / "scores_test.npz")
    assert scores.meta["fusion_method"] == "mid" and scores.meta["part"] == "test" and len(scores.video_ids) == 4
    np.testing.assert_allclose(scores.scores.sum(axis=1), 1.0, atol=1e-5)

    code, out, err = twostream(capsys, "report", str(tmp_path / "spatial"), str(tmp_path / "temporal"), "--row", f"mid={runs / 'mid' / 'scores_test.npz'}",
                               "--row", f"attention={runs / 'attention' / 'scores_test.npz'}",
                               "--fused", str(runs / "motion" / "scores_test.npz"),
                               "--fused", str(runs / "cross-attention" / "scores_test.npz"),
                               "--curves", f"mid={runs / 'mid' / METRICS_FILE}", "--out", str(tmp_path / "report"))
    assert code == 0, err
    table = {r["name"]: r for r in json.loads((tmp_path / "report" / "table.json").read_text())["rows"]}
    assert list(table) == ["spatial", "temporal", "motion", "cross-attention", "mid", "attention"]
    assert table["motion"]["kind"] == "fusion"
    assert table["mid"]["kind"] == "extra" and table["mid"]["top1"] == scores.accuracy()
    assert table["attention"]["top1"] == load_scores(runs / "attention" / "scores_test.npz").accuracy()
    assert (tmp_path / "report" / "curves_mid.png").exists()


def test_bad_input_is_one_line(capsys, shards, streams, fused, tmp_path):
    spatial, temporal = map(str, streams)
    base = ["fuse-features", "train", str(shards), "--loader-workers", "0", "--threads", "1", "--epochs", "1"]
    out = ["--out", str(tmp_path / "run")]
    assert one_line_error(capsys, *base, "--spatial", temporal, "--temporal", temporal, *out).endswith(
        "is a temporal stream checkpoint, not spatial")
    assert "--method': 'late' is not one of 'mid', 'attention', 'motion', 'cross-attention'" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, *out, "--method", "late")
    assert "hidden units of the attention head must be a positive integer, got 0" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, *out, "--method", "attention", "--hidden", "0")
    assert "the spatial stream was trained on split 'split1', not 'split2'" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, *out, "--split", "split2")
    assert "--subset val: the streams held out no training videos of split 'split1' (holdout 0.2)" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, *out, "--subset", "val")
    runs, _ = fused
    assert "already holds a run" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, "--out", str(runs / "mid"))
    assert "was trained with a different config (epochs: 6 -> 1" in one_line_error(
        capsys, *base, "--spatial", spatial, "--temporal", temporal, "--out", str(runs / "mid"), "--resume",
        "--method", "mid", "--lr", "0.05", "--dropout", "0", "--batch-size", "4", "--schedule", "cosine",
        "--val-every", "0")
    assert "is a stream checkpoint of 'twostream train'; 'fuse-features evaluate' takes" in one_line_error(
        capsys, "fuse-features", "evaluate", spatial, "--extraction", str(shards))


def test_fuse_features_train_writes_tensorboard_events_with_its_metrics(fused):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from twostream.engine.metrics_log import SCALARS, TENSORBOARD_DIR, MetricsLog

    runs, _ = fused
    events = EventAccumulator(str(runs / "mid" / TENSORBOARD_DIR))
    events.Reload()
    logged = MetricsLog.read(runs / "mid" / "metrics.jsonl")
    assert logged
    for record in logged:
        for name in SCALARS:
            (value,) = [e.value for e in events.Scalars(f"{record['phase']}/{name}") if e.step == record["epoch"]]
            assert value == pytest.approx(record[name], rel=1e-6)


# --- the streams that see motion without precomputed flow, as the motion half ------------------------
MOTION_DEMO = DemoConfig(seed=5, videos_per_class=3, frames=8, width=48, height=48)  # 2 train, 1 test a class
WINDOW_ARGS = ["--clip", "4", "--crop-size", "40", "--batch-size", "8", "--epochs", "1", "--val-every", "0",
               "--loader-workers", "0", "--threads", "1", "--holdout", "0"]


@pytest.fixture(scope="module")
def window_runs(tmp_path_factory):
    """A tiny real demo extraction, and a spatial, a dynamic-image and a learned-flow run (its layer
    on feature maps, with a 2-level pyramid) trained on it for an epoch."""
    root = tmp_path_factory.mktemp("windowfusion")
    shards = extract_demo(root, MOTION_DEMO)
    runs = {}
    for stream, extra in (("spatial", ["--clip", "0"]), ("dynamic-image", []),
                          ("learned-flow", ["--flow-on", "features", "--flow-param", "nscales=2",
                                            "--flow-param", "pool=1"])):
        runs[stream] = root / stream
        args = ["train", str(shards), "--stream", stream, "--out", str(runs[stream]), *WINDOW_ARGS, *extra]
        with pytest.raises(SystemExit) as info:
            twostream_main([str(a) for a in args])
        assert info.value.code == 0, stream
    return shards, runs


def test_window_streams_fuse_at_feature_level(window_runs, tmp_path, capsys):
    """fuse-features takes a dynamic-image or learned-flow run as its motion half: a head trains on the
    pairs (the window's first frame and the window) and evaluates to the usual scores file; the
    parameter-free motion head weighs places by the learned layer's flow, and is refused in one line
    with a dynamic image, which has none."""
    shards, runs = window_runs
    base = ["fuse-features", "train", str(shards), "--spatial", str(runs["spatial"]), "--loader-workers", "0",
            "--threads", "1", "--epochs", "1", "--batch-size", "8", "--val-every", "0"]
    for motion, method in (("dynamic-image", "mid"), ("learned-flow", "motion")):
        out = tmp_path / f"{motion}-{method}"
        code, _, err = twostream(capsys, *base, "--temporal", str(runs[motion]), "--method", method, "--out", str(out))
        assert code == 0, err[-2000:]
        state = load_fusion_checkpoint(out / "checkpoint.pt")
        assert state["temporal_config"].stream == motion
        code, _, err = twostream(capsys, "fuse-features", "evaluate", str(out), "--clips", "2", "--crops", "center",
                                 "--loader-workers", "0", "--threads", "1")
        assert code == 0, err[-2000:]
        scores = load_scores(out / "scores_test.npz")
        assert scores.scores.shape == (8, 8) and np.isfinite(scores.scores).all()
    assert "a dynamic-image stream has none: give --hidden N" in one_line_error(
        capsys, *base, "--temporal", str(runs["dynamic-image"]), "--method", "motion", "--out", str(tmp_path / "x"))
    assert one_line_error(capsys, *base, "--temporal", str(runs["spatial"]), "--method", "mid",
                          "--out", str(tmp_path / "y")).endswith("is a spatial stream checkpoint, not temporal")


def test_a_learned_flow_window_pairs_with_its_first_frame(window_runs):
    """The pair's planes: the RGB frame at the window's first index, then the window's T frames as
    3T planes (colour-major, as the stream takes them back), each plane with its colour's affine."""
    shards, runs = window_runs
    from twostream.core.checkpoint import load_checkpoint
    from twostream.feature_fusion.checkpoint import pair_spec

    spatial, motion = (load_checkpoint(runs[s] / "checkpoint.pt")["config"] for s in ("spatial", "learned-flow"))
    pair = pair_spec(spatial, motion)
    assert pair.in_channels == (3, 12)
    entry = open_extraction(shards).index[sorted(open_extraction(shards).index)[0]]
    video = ShardStore(shards).video(entry)
    raw = pair.read_raw(video, entry.num_frames, 2)
    planes, affine = pair.to_input(raw, video.bound, flip=False)
    assert planes.shape == (15, 40, 40) and affine.shape == (2, 15)
    window = pair.temporal.frames.to_input(raw[1], video.bound, False)[0]  # (3, T, S, S)
    np.testing.assert_array_equal(planes[:3], window[:, 0])  # the frame is the window's first
    np.testing.assert_array_equal(planes[3:].reshape(3, 4, 40, 40), window)
    np.testing.assert_array_equal(affine[:, 3:].reshape(2, 3, 4), np.repeat(affine[:, :3, None], 4, axis=2))
