"""Training and evaluation end to end on tiny synthetic shards: both streams learn, a resumed run
equals an uninterrupted one, evaluate writes the scores file, and bad input is one line."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pytest
import torch

import runkit.signals as signals
from tests.support import cli
from tests.support.cli import one_line_error, twostream
from tests.support.reliability.common import wait_until
from tests.support.reliability.training import same_tensors
from tests.support.synthetic import indexed_video, moving_video, two_class_videos, write_extraction
from twostream.core.checkpoint import CheckpointError, load_checkpoint
from twostream.core.config import EvalConfig, TrainConfig
from twostream.core.run_folder import METRICS_FILE
from twostream.core.scores import load_scores
from twostream.engine import fit_loop
from twostream.streams import trainer
from twostream.streams.evaluator import evaluate
from twostream.streams.trainer import fit

METRIC_KEYS = {"epoch", "phase", "loss", "accuracy", "lr", "samples_per_s", "time"}


@pytest.fixture(scope="module", autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two classes (colour and vertical motion), two training and one test video each; 56x48 frames."""
    videos = two_class_videos(4, 2, test_seed=10)
    return write_extraction(tmp_path_factory.mktemp("shards") / "ex", videos, codec="jpeg:95")


def tiny(shards, out, **options) -> TrainConfig:
    # crops of 48 leave resnet18 a 2x2 last feature map: batch norm statistics need more than one value
    base = dict(extraction=str(shards), out=str(out), flow_length=2, crop_size=48, epochs=14, batch_size=4, lr=0.01,
                schedule="cosine", dropout=0.0, color_jitter=0.0, val_every=0, workers=0, threads=1)
    if options.get("stream") == "temporal":
        base.pop("color_jitter")
    return TrainConfig(**{**base, **options})


def eval_config(run, shards, out, **options) -> EvalConfig:
    return EvalConfig(**{"checkpoint": str(run / "checkpoint.pt"), "extraction": str(shards), "out": str(out),
                         "clips": 3, "workers": 0, "threads": 1, **options})


@pytest.fixture(scope="module")
def spatial_run(shards, tmp_path_factory, learning_seed):
    run = tmp_path_factory.mktemp("runs") / "spatial"
    metrics = fit(tiny(shards, run, seed=learning_seed), interactive=False).metrics
    return run, metrics


@pytest.mark.slow
def test_spatial_stream_learns_the_training_set_and_scores_round_trip(spatial_run, shards, tmp_path):
    run, metrics = spatial_run
    assert metrics["train"]["accuracy"] == 1.0
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 15)) and all(set(r) == METRIC_KEYS for r in lines)
    assert lines[-1]["loss"] < lines[0]["loss"] / 5 and lines[-1]["time"] > lines[0]["time"] > 0

    result, scores = evaluate(eval_config(run, shards, tmp_path / "s.npz", subset="train"), interactive=False)
    assert result["video_top1"] == 1.0 and result["clip_top1"] == 1.0 and result["mean_class_accuracy"] == 1.0
    loaded = load_scores(tmp_path / "s.npz")
    assert loaded.video_ids.tolist() == ["train0", "train1", "train2", "train3"]
    assert loaded.labels.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(loaded.scores, scores.scores)
    np.testing.assert_allclose(loaded.scores.sum(axis=1), 1.0, atol=1e-5)
    assert loaded.class_names == ("class0", "class1")
    assert loaded.meta["stream"] == "spatial" and loaded.meta["protocol"] == {"clips": 3, "crops": "ten"}
    assert loaded.accuracy() == 1.0


@pytest.mark.slow
def test_temporal_stream_learns_the_training_set(shards, tmp_path, learning_seed):
    metrics = fit(tiny(shards, tmp_path / "temporal", stream="temporal", seed=learning_seed), interactive=False).metrics
    assert metrics["train"]["accuracy"] == 1.0
    result, scores = evaluate(eval_config(tmp_path / "temporal", shards, tmp_path / "t.npz", subset="train",
                                          crops="center"), interactive=False)
    assert result["video_top1"] == 1.0
    assert scores.meta["stream"] == "temporal"


class Killed(BaseException):
    """Stands for SIGKILL right after a checkpoint was written."""


def logged(run):
    """What a run's metrics.jsonl says of each epoch, less its timings."""
    return [{k: r[k] for k in ("epoch", "phase", "loss", "accuracy", "lr")}
            for r in map(json.loads, (run / METRICS_FILE).read_text().splitlines())]


def test_resumed_run_equals_an_uninterrupted_one(shards, tmp_path, monkeypatch):
    # holdout 0.5: one video of each class is kept out of training and validated on
    options = dict(epochs=3, batch_size=2, crop_size=32, holdout=0.5, val_every=1, val_clips=2, lr=0.01, schedule="step",
                   lr_steps=(2,), dropout=0.3, color_jitter=0.3, multiscale_crop=True, segments=2)
    straight = tiny(shards, tmp_path / "straight", **options)
    fit(straight, interactive=False)

    real_save = trainer.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["epoch"] == 1:
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    # resumed with 2 loader workers: the data must not depend on who loads it
    resumed = tiny(shards, tmp_path / "resumed", **options, workers=2)
    with pytest.raises(Killed):
        fit(resumed, interactive=False)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    fit(resumed, resume=True, interactive=False)

    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"])

    assert logged(tmp_path / "straight") == logged(tmp_path / "resumed")
    assert [(r["epoch"], r["phase"]) for r in logged(tmp_path / "resumed")] == [
        (1, "train"), (1, "val"), (2, "train"), (2, "val"), (3, "train"), (3, "val")]

    # the held-out videos are what `evaluate --part val` scores, and `--part train` the others
    _, held = evaluate(eval_config(tmp_path / "resumed", shards, tmp_path / "val.npz", subset="val", crops="center"),
                       interactive=False)
    _, trained = evaluate(eval_config(tmp_path / "resumed", shards, tmp_path / "tr.npz", subset="train", crops="center"),
                          interactive=False)
    assert len(held.video_ids) == 2 and sorted(held.labels.tolist()) == [0, 1]
    assert sorted(held.video_ids.tolist() + trained.video_ids.tolist()) == ["train0", "train1", "train2", "train3"]


# --- the command line: one line naming the bad thing -------------------------------------------
def test_a_stop_during_validation_saves_a_checkpoint_that_resumes_to_the_same_weights(shards, tmp_path, monkeypatch):
    """SIGTERM while epoch 2 validates (SLURM's time limit can fall there as anywhere): the run
    saves a checkpoint whose epoch's training is done, says so, and the resumed run validates
    that epoch again and ends with the uninterrupted run's weights and metrics."""
    monkeypatch.setattr(signals, "_received", None)  # restored after: a stop seen here must not reach other tests
    options = dict(epochs=3, batch_size=2, crop_size=32, holdout=0.5, val_every=1, val_clips=2, lr=0.01,
                   schedule="step", lr_steps=(2,), dropout=0.3, segments=2)
    straight = tiny(shards, tmp_path / "straight", **options)
    fit(straight, interactive=False)

    real_predict, calls = fit_loop.predict_all, []

    def signalled_in_second_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # deferred by the training loop: acted on after a batch
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(fit_loop, "predict_all", signalled_in_second_validation)
    stopped_run = tiny(shards, tmp_path / "stopped", **options)
    with pytest.raises(signals.Stop, match="stopped by SIGTERM in epoch 2 of 3 during validation") as stop:
        fit(stopped_run, interactive=False)
    assert stop.value.status == 143
    saved = load_checkpoint(tmp_path / "stopped" / "checkpoint.pt")
    assert saved["epoch"] == 1 and saved["epoch_totals"]["batches"] > 0  # epoch 2's training kept
    monkeypatch.setattr(fit_loop, "predict_all", real_predict)
    fit(stopped_run, resume=True, interactive=False)

    straight_end, resumed_end = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("straight", "stopped"))
    assert straight_end["epoch"] == resumed_end["epoch"] == 3
    assert same_tensors(straight_end["model"], resumed_end["model"])

    assert logged(tmp_path / "straight") == logged(tmp_path / "stopped")


def train_args(shards, out, *extra: str) -> list[str]:
    return ["train", str(shards), "--out", str(out), "--crop-size", "48", "--epochs", "1",
            "--batch-size", "4", "--loader-workers", "0", "--threads", "1", *extra]


@pytest.mark.parametrize("extra,expected", [
    (["--backbone", "alexnet"], "unknown backbone 'alexnet'; choices: resnet18, resnet34"),
    (["--backbone", "timm:resnet5O"], "unknown timm model 'resnet5O'; did you mean"),
    (["--clip", "8"], "--clip 8 makes a 3D stream: the backbone must be a video network"),
    (["--split", "split9"], "split 'split9' is not in"),
    (["--stream", "temporal", "--flow-length", "40"], "flow length 40 needs videos of at least 41 frames, but the longest "
                                                      "of the 4 training videos has 8"),
    (["--crop-size", "64"], "crop size 64 is larger than the stored frames' shorter side (48 px"),
    (["--flow-stack", "bidirectional", "--flow-length", "3"], "the flow length must be even; got 3"),
    (["--lr-steps", "x"], "expected comma-separated epoch numbers such as 20,30; got 'x'"),
    (["--pretrained", "/nonexistent/r18.pth"], "pretrained weights file /nonexistent/r18.pth not found"),
])
def test_bad_train_input_is_one_line(capsys, shards, tmp_path, extra, expected):
    assert expected in one_line_error(capsys, *train_args(shards, tmp_path / "run", *extra))


def test_a_folder_that_is_not_an_extraction_is_named(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no dataset index; is" in one_line_error(capsys, *train_args(tmp_path / "empty", tmp_path / "run"))


def test_cuda_asked_on_a_machine_without_it(capsys, shards, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "device 'cuda' asked for, but CUDA is not available here" in one_line_error(
        capsys, *train_args(shards, tmp_path / "run", "--device", "cuda"))


def test_existing_runs_need_resume_and_resume_needs_the_same_options(capsys, spatial_run, shards, tmp_path):
    run, _ = spatial_run
    assert "already holds a run" in one_line_error(capsys, *train_args(shards, run))
    message = one_line_error(capsys, *train_args(shards, run, "--resume"))
    assert "was trained with a different config (" in message and "epochs: 14 -> 1" in message
    assert "--resume: there is no" in one_line_error(capsys, *train_args(shards, tmp_path / "fresh", "--resume"))


def test_evaluate_refuses_another_stream_or_other_classes(capsys, spatial_run, shards, tmp_path):
    run, _ = spatial_run
    ckpt = str(run / "checkpoint.pt")
    message = one_line_error(capsys, "evaluate", ckpt, "--extraction", str(shards), "--stream", "temporal")
    assert message.endswith("checkpoint.pt is a spatial stream checkpoint, not temporal")
    three = write_extraction(tmp_path / "three", [moving_video(f"v{i}", i, width=56, height=48) for i in range(3)])
    message = one_line_error(capsys, "evaluate", ckpt, "--extraction", str(three), "--subset", "train")
    assert message.endswith("checkpoint.pt was trained on 2 classes, but the shards have 3")


def test_evaluate_part_val_needs_a_run_with_holdout(capsys, spatial_run, shards):
    run, _ = spatial_run
    message = one_line_error(capsys, "evaluate", str(run), "--subset", "val")
    assert "no held-out videos in split 'split1': the run was trained with holdout 0.2, which keeps none" in message


def test_evaluate_refuses_a_corrupt_checkpoint(capsys, shards, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00" * 100)
    message = one_line_error(capsys, "evaluate", str(bad), "--extraction", str(shards))
    assert f"{bad}: not a readable checkpoint" in message
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_evaluate_command_prints_metrics_and_writes_scores(capsys, spatial_run, shards):
    run, _ = spatial_run
    code, out, err = twostream(capsys, "evaluate", str(run), "--clips", "2", "--crops", "center",
                               "--loader-workers", "0", "--threads", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["videos"] == 2 and result["scores"] == str(run / "scores_test.npz")
    assert set(result) >= {"clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy"}
    assert load_scores(run / "scores_test.npz").video_ids.tolist() == ["test0", "test1"]


def test_short_videos_train_under_the_padding_rule(tmp_path):
    videos = [indexed_video("long", 12, label=0), indexed_video("short", 4, label=1)]  # 40x32
    shards = write_extraction(tmp_path / "ex", videos)
    config = TrainConfig(extraction=str(shards), out=str(tmp_path / "run"), stream="temporal", flow_length=6, crop_size=32,
                         epochs=1, batch_size=2, workers=0, threads=1, val_every=0)
    assert fit(config, interactive=False).metrics["train"]["accuracy"] >= 0.0


@pytest.mark.slow
def test_sigkilled_training_resumes_with_the_same_command(shards, tmp_path):
    """The real thing, once: `twostream train` killed (SIGKILL, whole process group, loader workers
    included) after its first checkpoint, then the same command with --resume finishes the run."""
    run = tmp_path / "run"
    cmd = [*cli.TWOSTREAM, "train", str(shards), "--out", str(run), "--crop-size", "32",
           "--epochs", "8", "--batch-size", "2", "--loader-workers", "2", "--threads", "1", "--val-every", "0"]
    checkpoint = run / "checkpoint.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until(checkpoint.exists, proc)
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = load_checkpoint(checkpoint)["epoch"]
    assert 1 <= killed_at < 8
    done = cli.run(cmd + ["--resume"], timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {checkpoint} after epoch {killed_at} of 8" in done.stderr
    assert load_checkpoint(checkpoint)["epoch"] == 8
    epochs = [json.loads(line)["epoch"] for line in (run / METRICS_FILE).read_text().splitlines()]
    assert epochs == list(range(1, 9))  # none lost, none twice
    assert not list(run.glob("*.tmp"))


def test_mixed_precision_path_trains_and_predicts():
    """The CUDA path's autocast branch, run with bfloat16 autocast on the CPU (no GPU here)."""
    from twostream.core.device import Device
    from twostream.engine.loops import predict_samples, train_one_epoch
    from twostream.streams.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", 4, 3, 0.5)
    device = Device(torch.device("cpu"), torch.bfloat16, channels_last=True)
    model.to(memory_format=torch.channels_last)
    def codes(*shape):  # uint8 planes and their (scale, shift): what the loaders give
        affine = torch.stack([torch.full(shape[:-2], 2 / 255), torch.full(shape[:-2], -1.0)], dim=-2)
        return torch.randint(0, 256, shape, dtype=torch.uint8), affine

    batches = [(*codes(2, 2, 4, 32, 32), torch.tensor([0, 2]))]  # (B, K segments, C, H, W)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    result = train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, batches, device, device.scaler(), 1,
                             interactive=False)
    assert result.samples == 2 and np.isfinite(result.loss)
    scores, _ = predict_samples(model, [codes(3, 10, 4, 32, 32)], device, "val", interactive=False)
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
