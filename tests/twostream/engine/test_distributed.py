"""Training across processes: torchrun on the CPU (gloo) trains a tiny model, checkpoints, is
killed, resumes, and evaluates into a scores file that holds every video exactly once, the same
as one process's; and the shares each process takes of an epoch."""
from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest

from tests.support import cli
from tests.support.reliability.common import wait_until
from tests.support.reliability.training import checkpoint_epoch, torchrun
from tests.support.synthetic import two_class_videos, write_extraction
from twostream.core.scores import load_scores
from twostream.core.world import World, rank_share
from twostream.data.datasets import EpochSampler


def test_every_item_of_an_epoch_goes_to_one_process_and_the_shares_are_equal():
    for count, size in ((10, 2), (7, 3), (1, 2)):
        shares = [rank_share(count, World(rank, size)) for rank in range(size)]
        assert len({len(s) for s in shares}) == 1
        assert sorted(set(i for s in shares for i in s)) == list(range(count))
    samplers = [EpochSampler(9, seed=3, world=World(rank, 2)) for rank in range(2)]
    for sampler in samplers:
        sampler.set_epoch(4)
    keys = [k for sampler in samplers for k in sampler]
    assert {i for _, i in keys} == set(range(9)) and all(epoch == 4 for epoch, _ in keys)
    assert [k for k in EpochSampler(9, seed=3)] != [k for k in samplers[0]]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    videos = two_class_videos(24, 5, test_seed=50)
    return write_extraction(tmp_path_factory.mktemp("ddp") / "ex", videos, codec="jpeg:95")


@pytest.mark.slow
def test_torchrun_trains_is_killed_resumes_and_scores_every_video_once(shards, tmp_path):
    run = tmp_path / "run"
    train = ["train", str(shards), "--out", str(run), "--crop-size", "48", "--epochs", "3",
             "--batch-size", "2", "--lr", "0.01", "--loader-workers", "0", "--threads", "1", "--val-every", "0",
             "--holdout", "0"]  # every training video trained on: evaluate --subset train scores all 24
    env = {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(torchrun(*train), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli.environment(env),
                            start_new_session=True)
    wait_until(lambda: checkpoint_epoch(run / "checkpoint.pt") >= 1, proc)
    killed = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "the run ended before it could be killed mid-way"
    assert 1 <= checkpoint_epoch(run / "checkpoint.pt") < 3

    resumed = cli.run(torchrun(*train, "--resume"), env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoint_epoch(run / "checkpoint.pt") == 3
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # one line an epoch: only the main process writes
    assert resumed.stdout.count("checkpoint:") == 1  # and prints
    assert "2 process(es): batch 2 a process, 4 in all, learning rate 0.01" in resumed.stderr

    evaluate = ["evaluate", str(run / "checkpoint.pt"), "--extraction", str(shards), "--subset", "train",
                "--clips", "3", "--crops", "center", "--loader-workers", "0", "--threads", "1"]
    both = cli.run(torchrun(*evaluate, "--out", str(tmp_path / "two")), env=env, timeout=300)
    assert both.returncode == 0, both.stderr[-3000:]
    one = cli.run([*cli.TWOSTREAM, *evaluate, "--out", str(tmp_path / "one")], env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two, single = load_scores(tmp_path / "two" / "scores_train.npz"), load_scores(tmp_path / "one" / "scores_train.npz")
    assert sorted(two.video_ids.tolist()) == sorted(set(two.video_ids.tolist())) == [f"train{i:02d}" for i in range(24)]
    assert two.video_ids.tolist() == single.video_ids.tolist()
    np.testing.assert_allclose(two.scores, single.scores, atol=1e-5)
