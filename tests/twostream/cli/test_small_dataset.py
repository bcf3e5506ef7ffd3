"""A researcher's own small dataset (issue 26): 4 classes x 7 training videos (28) and 2 test
videos each, trained through the CLI with its defaults, as the README's "Your own videos" does.
Validation is never the test set unless asked for, and the defaults give real optimisation."""
from __future__ import annotations

import json

import pytest

from tests.support.cli import flowprep, twostream
from tests.support.synthetic import moving_video, write_extraction
from twostream.core.config import TrainConfig
from twostream.core.run_folder import METRICS_FILE, RUN_CONFIG_FILE
from twostream.score_fusion.report import read_curve
from twostream.score_fusion.report_data import validated_on_test

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ("--epochs", "1", "--crop-size", "32", "--val-clips", "1", "--loader-workers", "0", "--threads", "1")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    videos = [moving_video(f"train{c}{i}", c, frames=4, seed=10 * c + i, width=32, height=32) for c in range(4)
              for i in range(7)]
    videos += [moving_video(f"test{c}{i}", c, frames=4, seed=100 + 10 * c + i, width=32, height=32,
                            splits={"split1": "test"}) for c in range(4) for i in range(2)]
    return write_extraction(tmp_path_factory.mktemp("small") / "ex", videos)


def train(capsys, caplog, *args: str) -> str:
    """`twostream train ARGS` (with FAST), which must succeed: what it logged and printed."""
    caplog.clear()
    with caplog.at_level("INFO", logger="twostream"):
        code, out, err = twostream(capsys, "train", *FAST, *args)  # the last of a repeated option wins
    assert code == 0, err
    return caplog.text + out + err


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]


def test_validation_is_held_out_of_training_by_default_and_never_the_test_set(small_set, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    err = train(capsys, caplog, str(small_set), "--out", str(run))
    # 1 of each class's 7 training videos held out (20 %, seeded): 24 trained on, 4 validated on
    assert "24 training videos, 4 validation videos (held out of training, --holdout 0.2)" in err
    assert "(test)" not in err and "val (held-out videos) clip accuracy" in err
    assert "validation on the held-out videos (1 clips x center crop)" in err
    vals = [r for r in records(run) if r["phase"] == "val"]
    assert vals and all(r["subset"] == "held-out" for r in vals)
    config = json.loads((run / RUN_CONFIG_FILE).read_text())
    assert config["holdout"] == 0.2 and config["val_on_test"] is False
    assert validated_on_test("spatial", read_curve(run / METRICS_FILE)) is None

    # holding nothing out trains on all 28 and validates on nothing, saying how to get either back
    bare = tmp_path / "bare"
    err = train(capsys, caplog, str(small_set), "--out", str(bare), "--holdout", "0")
    assert "28 training videos, 0 validation videos (none)" in err and "--val-on-test" in err
    assert [r["phase"] for r in records(bare)] == ["train"]


def test_validating_on_test_is_an_explicit_recorded_choice(small_set, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    err = train(capsys, caplog, str(small_set), "--out", str(run), "--holdout", "0", "--val-on-test")
    assert "8 validation videos (the test videos, --val-on-test)" in err
    assert "the validation figures are test figures" in err
    assert [r["subset"] for r in records(run) if r["phase"] == "val"] == ["test"]
    assert json.loads((run / RUN_CONFIG_FILE).read_text())["val_on_test"] is True
    # the report built from its curves says so
    assert "validated on the test videos during training (--val-on-test)" in validated_on_test(
        "spatial", read_curve(run / METRICS_FILE))


def test_a_run_config_written_before_val_on_test_still_loads():
    old = TrainConfig(extraction="s", out="o", holdout=0.0).to_dict()
    del old["val_on_test"]
    assert TrainConfig.from_dict(old).val_on_test is False


def test_a_small_training_set_gets_several_steps_an_epoch_by_default(small_set, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    err = train(capsys, caplog, str(small_set), "--out", str(run), "--holdout", "0", "--val-every", "0")
    # 28 training videos: not one step of 32 but 3 of 8 (the last 4 videos wait for the next epoch's draw)
    assert "batch size 8: the default for 28 training videos" in err
    assert "3 optimisation steps an epoch" in err
    assert json.loads((run / RUN_CONFIG_FILE).read_text())["batch_size"] == 8
    from twostream.core.schedule import default_batch_size

    assert [default_batch_size(n) for n in (1, 28, 127, 128, 255, 256, 10_000)] == [8, 8, 8, 16, 16, 32, 32]


def test_a_given_batch_size_is_kept_and_a_resumed_run_keeps_its_own(small_set, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    err = train(capsys, caplog, str(small_set), "--out", str(run), "--batch-size", "32", "--val-every", "0")
    assert "batch size 32 exceeds the 24 training videos" in err and "leave --batch-size out" in err
    assert "1 optimisation steps an epoch" in err
    # a run stored with its batch size (here 32, as every run made before the default) resumes without the option
    err = train(capsys, caplog, str(small_set), "--out", str(run), "--val-every", "0", "--resume")
    assert "already completed its 1 epochs" in err
    assert json.loads((run / RUN_CONFIG_FILE).read_text())["batch_size"] == 32


def test_training_during_an_extraction_uses_the_videos_finished_so_far(tmp_path, capsys, caplog):
    """The packer of a running extraction with the default 1 GB shards closes a shard once its first
    video has waited a minute (a fake clock here), so `train` reads the videos finished so far while
    the run holds the folder's lock, and `inspect` counts the finished videos still in staging."""
    from flowprep.extract.config import ExtractConfig
    from flowprep.extract.staged_run import ShardPacker
    from flowprep.format.folder import ExtractionFolder
    from runkit.lock import folder_lock
    from tests.support.synthetic import write_staged

    out = tmp_path / "ex"
    config = ExtractConfig(flow_method="farneback", width=32, height=32, rgb_codec="raw", flow_codec="raw")
    folder = ExtractionFolder(out)
    with folder_lock(out):  # the extraction is running
        folder.write_config("extract", config.to_dict())
        folder.staging_dir.mkdir()
        now = [0.0]
        packer = ShardPacker(folder, config.to_json(), 1024 * 2**20, index={}, note=lambda line: None,
                             clock=lambda: now[0])
        for i, at in enumerate([0, 10, 30, 65, 80, 100]):  # seconds since the run's first finished video
            now[0] = float(at)
            packer.add(write_staged(folder.staging_dir, moving_video(f"v{i}", i % 2, frames=4, seed=i, width=32,
                                                                      height=32), "raw", 20.0, config.to_json()))
        assert [p.name for p in folder.shard_paths()] == ["shard-00000.h5"]  # v0-v3; v4, v5 wait (120 s now)

        err = train(capsys, caplog, str(out), "--out", str(tmp_path / "run"))
        assert "a flowprep run is still writing into" in err and "using the 4 video(s) of 2 class(es)" in err
        assert json.loads((tmp_path / "run" / RUN_CONFIG_FILE).read_text())["epochs"] == 1

        code, text, _ = flowprep(capsys, "inspect", str(out))
        assert code == 0
        assert "videos: 4" in text and "staged: 2 finished video(s) not yet packed" in text
        assert "unfinished: a flowprep run is still writing into" in text


def test_training_writes_tensorboard_events_with_the_scalars_of_metrics_jsonl(small_set, tmp_path, capsys, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from twostream.engine.metrics_log import SCALARS, TENSORBOARD_DIR

    run = tmp_path / "run"
    train(capsys, caplog, str(small_set), "--out", str(run), "--epochs", "2", "--val-every", "1")
    events = EventAccumulator(str(run / TENSORBOARD_DIR))
    events.Reload()
    logged = records(run)
    assert {r["phase"] for r in logged} == {"train", "val"}
    assert sorted(events.Tags()["scalars"]) == sorted(f"{phase}/{name}" for phase in ("train", "val")
                                                       for name in SCALARS)
    for record in logged:
        for name in SCALARS:
            (value,) = [e.value for e in events.Scalars(f"{record['phase']}/{name}") if e.step == record["epoch"]]
            assert value == pytest.approx(record[name], rel=1e-6)

    bare = tmp_path / "bare"
    train(capsys, caplog, str(small_set), "--out", str(bare), "--no-tensorboard")
    assert not (bare / TENSORBOARD_DIR).exists()


def test_a_run_records_its_extraction_absolute_so_evaluate_finds_it_from_elsewhere(small_set, tmp_path, capsys,
                                                                                   caplog, monkeypatch):
    monkeypatch.chdir(small_set.parent)
    train(capsys, caplog, small_set.name, "--out", str(tmp_path / "run"), "--val-every", "0")
    assert json.loads((tmp_path / "run" / RUN_CONFIG_FILE).read_text())["shards"] == str(small_set)
    monkeypatch.chdir(tmp_path)
    code, out, err = twostream(capsys, "evaluate", str(tmp_path / "run"), "--clips", "1", "--crops", "center",
                               "--loader-workers", "0", "--threads", "1")
    assert code == 0, err
    assert f"8 test videos of split1 in {small_set}" in out


def test_a_usage_error_points_to_the_help_of_the_command_it_came_from(capsys):
    code, _, err = flowprep(capsys, "manifest", "folder", ".", "--out", "x.csv", "--test-fraction", "1.0")
    assert code == 2 and "(see 'flowprep manifest folder --help')" in err
