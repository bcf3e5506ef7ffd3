"""A dataset of thousands of shard files: each loader worker holds a bounded number open, so a
run over 2,000 shards with 2 workers trains and evaluates under an open-file limit of 256."""
from __future__ import annotations

import resource

import pytest

from tests.support.cli import TWOSTREAM, run
from tests.support.synthetic import moving_video, write_extraction
from twostream.data.store import ShardStore

SHARDS = 2000


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    videos = [moving_video(f"v{i:04d}", i % 2, frames=3, width=32, height=32, seed=i,
                           splits={"split1": "test" if i % 10 == 0 else "train"}) for i in range(SHARDS)]
    return write_extraction(tmp_path_factory.mktemp("many") / "ex", videos, videos_per_shard=1)


def test_a_store_keeps_a_bounded_number_of_shards_open(many):
    from flowprep.format.folder import ExtractionFolder

    index = ExtractionFolder(many).read_index()
    store = ShardStore(many, max_open=8, max_readers=16)
    entries = sorted(index.values(), key=lambda e: e.video_id)[:50]
    for entry in entries + entries[:5]:
        assert store.video(entry).num_frames == 3
        assert store.open_files() <= 8
    store.close()


def limited_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.mark.slow
def test_train_and_evaluate_over_2000_shards_with_256_open_files(many, tmp_path):
    common = ["--loader-workers", "2", "--threads", "1"]
    train = run([*TWOSTREAM, "train", many, *common, "--out", tmp_path / "run", "--crop-size", "32", "--epochs", "1",
                 "--batch-size", "64", "--val-every", "0"], preexec_fn=limited_open_files)
    assert train.returncode == 0, train.stderr[-3000:]
    evaluate = run([*TWOSTREAM, "evaluate", tmp_path / "run", *common, "--clips", "1", "--crops", "center",
                    "--batch-size", "64"], preexec_fn=limited_open_files)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "200 test videos" in evaluate.stdout
