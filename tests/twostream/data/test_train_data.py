"""Datasets over synthetic shards: which frames and fields land in which channels, shapes, worker
processes, determinism, and bad input as one-line errors."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from flowprep.format.shards import ShardFormatError
from tests.support.synthetic import BWD_X, BWD_Y, FWD_X, FWD_Y, indexed_video, moving_video, write_extraction
from twostream.core.device import resolve_device
from twostream.data.datasets import Augment, EvalSamples, TrainSamples, eval_loader, set_epoch, train_loader
from twostream.data.extraction import DataError, check_crop_size, check_stack_length, open_extraction, videos_in_split
from twostream.data.samples import InputSpec, read_sample
from twostream.data.store import ShardStore
from twostream.engine.loops import model_input

STEP = 2 * 20.0 / 255  # one quantisation step of the default bound
CPU = resolve_device("cpu", amp=False, channels_last=False)


def network_input(item) -> np.ndarray:
    """What the model sees of a dataset item's first clip or crop: float32 (C, S, S)."""
    return model_input(item[0][:1], item[1][:1], CPU)[0].numpy()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    videos = [indexed_video("long", 30, label=0), indexed_video("short", 5, label=1),
              indexed_video("test", 12, label=1, splits={"split1": "test"})]
    return write_extraction(tmp_path_factory.mktemp("indexed") / "ex", videos)


def spec(stream="temporal", length=4, stack="forward", mean_subtraction=True, crop=24) -> InputSpec:
    return InputSpec(stream, length, stack, mean_subtraction, crop)


def entry(extraction_dir, video_id):
    return open_extraction(extraction_dir).index[video_id]


def test_forward_stack_channels_are_interleaved_x_y_of_consecutive_fields(indexed):
    store = ShardStore(indexed)
    e = entry(indexed, "long")
    planes, means = read_sample(store.video(e), spec(), e.num_frames, 7)
    assert planes.shape == (8, 32, 40) and means is None
    assert planes[:, 0, 0].tolist() == [FWD_X + 7, FWD_Y + 7, FWD_X + 8, FWD_Y + 8, FWD_X + 9, FWD_Y + 9,
                                        FWD_X + 10, FWD_Y + 10]
    # the network input interleaves them: x7, y7, x8, y8, ...
    x = network_input(EvalSamples(store, [e], spec(), clips=1, crops="center")[0]) * 20.0
    codes13 = [c for t in range(13, 17) for c in (FWD_X + t, FWD_Y + t)]  # the one test clip is at position 13
    np.testing.assert_allclose(x[:, 0, 0], np.array(codes13) * STEP - 20.0, atol=1e-4)


def test_bidirectional_stack_channels(indexed):
    store = ShardStore(indexed)
    e = entry(indexed, "long")
    planes, _ = read_sample(store.video(e), spec(stack="bidirectional"), e.num_frames, 7)
    # tau = 9: backward fields 7, 8 then forward fields 9, 10
    assert planes[:, 5, 5].tolist() == [BWD_X + 7, BWD_Y + 7, BWD_X + 8, BWD_Y + 8, FWD_X + 9, FWD_Y + 9,
                                        FWD_X + 10, FWD_Y + 10]


def test_short_video_stack_is_edge_padded_not_an_index_error(indexed):
    store = ShardStore(indexed)
    e = entry(indexed, "short")  # 5 frames, 4 fields, L=10
    planes, _ = read_sample(store.video(e), spec(length=10), e.num_frames, 0)
    assert planes[0::2, 0, 0].tolist() == [FWD_X + i for i in [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]]


def test_spatial_clip_is_the_frame_at_the_position(indexed):
    store = ShardStore(indexed)
    e = entry(indexed, "long")
    rgb, _ = read_sample(store.video(e), spec("spatial"), e.num_frames, 13)
    assert rgb.shape == (32, 40, 3) and np.all(rgb == 130)


def test_mean_subtraction_off_puts_the_stored_means_back(indexed):
    store = ShardStore(indexed)
    e = entry(indexed, "long")
    _, means = read_sample(store.video(e), spec(mean_subtraction=False), e.num_frames, 5)
    np.testing.assert_allclose(means, [[0.1 * t, -0.1 * t] for t in range(5, 9)], atol=1e-6)
    data = EvalSamples(store, [e], spec(mean_subtraction=False, crop=24), clips=1, crops="center")
    x = network_input(data[0]) * 20.0  # pixels; the one clip is at position 13 of 26
    np.testing.assert_allclose(x[0, 0, 0], (FWD_X + 13) * STEP - 20.0 + 0.1 * 13, atol=1e-4)
    np.testing.assert_allclose(x[1, 0, 0], (FWD_Y + 13) * STEP - 20.0 - 0.1 * 13, atol=1e-4)


def test_train_items_have_segment_shape_and_depend_only_on_seed_epoch_and_index(indexed):
    ex = open_extraction(indexed)
    videos = videos_in_split(ex, "split1", "train")
    data = TrainSamples(ShardStore(indexed), videos, spec(length=4, crop=24), Augment(multiscale_crop=True), segments=3,
                      seed=7)
    x, affine, label = data[(0, 0)]
    assert x.shape == (3, 8, 24, 24) and x.dtype == torch.uint8 and label == videos[0].label
    assert affine.shape == (3, 2, 8) and affine.dtype == torch.float32
    assert torch.equal(data[(0, 0)][0], x)
    assert not torch.equal(data[(1, 0)][0], x)


def test_loader_with_two_workers_matches_the_main_process(indexed):
    ex = open_extraction(indexed)
    videos = videos_in_split(ex, "split1", "train")
    s = spec("spatial", crop=24)

    def epoch_batches(workers):
        data = TrainSamples(ShardStore(indexed), videos, s, Augment(color_jitter=0.2), segments=2, seed=3)
        loader = train_loader(data, batch_size=2, workers=workers, seed=3, pin_memory=False)
        out = []
        for epoch in (0, 1):
            set_epoch(loader, epoch)
            out.append([(x.clone(), y.clone()) for x, _, y in loader])
        return out

    main, workers = epoch_batches(0), epoch_batches(2)
    for a, b in zip(main, workers):
        assert len(a) == len(b) == 1
        assert a[0][0].shape == (2, 2, 3, 24, 24)
        assert torch.equal(a[0][0], b[0][0]) and torch.equal(a[0][1], b[0][1])
    assert not torch.equal(main[0][0][0], main[1][0][0])  # another epoch, other draws


def test_eval_clips_give_every_crop_of_uniform_positions(indexed):
    ex = open_extraction(indexed)
    videos = videos_in_split(ex, "split1", "train")
    data = EvalSamples(ShardStore(indexed), videos, spec("spatial", crop=24), clips=4, crops="ten")
    assert len(data) == 8 and data.video_index.tolist() == [0] * 4 + [1] * 4
    x, _, label, v = data[5]
    assert x.shape == (10, 3, 24, 24) and v == 1 and label == videos[1].label
    torch.testing.assert_close(x[5], x[0].flip(-1))  # crop 5 is crop 0 mirrored
    batches = list(eval_loader(data, batch_size=3, workers=2, pin_memory=False))
    assert [b[0].shape[0] for b in batches] == [3, 3, 2]
    assert torch.cat([b[3] for b in batches]).tolist() == data.video_index.tolist()


def test_flip_in_training_negates_x_flow(tmp_path):
    # one video moving right: every training sample's x flow is +4 px, or -4 px when flipped
    video = indexed_video("right", 12)
    video.forward[..., 0] = np.uint8(128 + round(4 / STEP))
    video.forward[..., 1] = 128
    ex = write_extraction(tmp_path / "ex", [video])
    data = TrainSamples(ShardStore(ex), [entry(ex, "right")], spec(length=2, crop=24), Augment(), segments=1, seed=0)
    signs = set()
    for epoch in range(12):
        x = network_input(data[(epoch, 0)]) * 20.0
        assert np.allclose(np.abs(x[0::2]), 4.0, atol=STEP) and np.allclose(x[1::2], 0.0, atol=STEP)
        signs.add(float(np.sign(x[0].mean())))
    assert signs == {1.0, -1.0}


def test_holdout_is_stratified_stable_and_never_takes_a_whole_class(indexed):
    from flowprep.format.folder_index import IndexEntry
    from twostream.data.extraction import split_holdout

    videos = [IndexEntry(f"v{c}_{i}", "s.h5", c, f"c{c}", 10, {"split1": "train"}) for c in range(3) for i in range(8)]
    videos.append(IndexEntry("lonely", "s.h5", 3, "c3", 10, {"split1": "train"}))
    trained, held = split_holdout(videos, 0.25, seed=0)
    assert sorted(e.label for e in held) == [0, 0, 1, 1, 2, 2]  # 2 of 8 per class, none of a class of 1
    assert len(trained) + len(held) == len(videos) and not {e.video_id for e in trained} & {e.video_id for e in held}
    # stable: a class keeps its held-out videos when the order changes and other classes' videos go
    again = split_holdout([e for e in videos[::-1] if e.label != 0], 0.25, seed=0)[1]
    assert {e.video_id for e in again} == {e.video_id for e in held if e.label != 0}
    assert {e.video_id for e in split_holdout(videos, 0.25, seed=1)[1]} != {e.video_id for e in held}
    assert split_holdout(videos, 0.0, seed=0) == (videos, [])


# --- bad input --------------------------------------------------------------------------------
def test_a_split_that_selects_nothing_is_named(indexed):
    ex = open_extraction(indexed)
    with pytest.raises(DataError, match="split 'split2' is not in .*index.json; splits there: split1"):
        videos_in_split(ex, "split2", "train")


def test_a_part_with_no_videos_is_named(tmp_path):
    ex = open_extraction(write_extraction(tmp_path / "ex", [indexed_video("a", 6)]))
    with pytest.raises(DataError, match=r"split 'split1' selects no test videos in .* \(1 train\)"):
        videos_in_split(ex, "split1", "test")


def test_a_stack_longer_than_every_video_is_refused(indexed, caplog):
    ex = open_extraction(indexed)
    videos = videos_in_split(ex, "split1", "train")
    with pytest.raises(DataError, match="flow length 40 needs videos of at least 41 frames, but the longest of the 2 "
                                        "training videos has 30"):
        check_stack_length(videos, 40, "training")
    check_stack_length(videos, 10, "training")  # one short video: padded, with a warning
    assert "1 of 2 training videos have fewer than 10 flow fields" in caplog.text


def test_a_crop_larger_than_the_frames_is_refused(indexed):
    with pytest.raises(DataError, match="crop size 224 is larger than the stored frames' shorter side "
                                        r"\(32 px in .*\); pass --crop-size 32 or less"):
        check_crop_size(open_extraction(indexed), 224)


def test_a_shard_of_another_format_version_is_named(indexed, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(indexed, copy)
    with h5py.File(copy / "shard-00000.h5", "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ShardFormatError, match=r"shard-00000.h5: shard format version 99, but this flowprep reads version 1"):
        open_extraction(copy)
    index = json.loads((copy / "index.json").read_text())
    index["format_version"] = 99
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardFormatError, match="index of format version 99"):
        open_extraction(copy)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=f"shard folder {tmp_path / 'nope'} does not exist"):
        open_extraction(tmp_path / "nope")


def test_moving_videos_have_the_declared_motion(tmp_path):
    ex = write_extraction(tmp_path / "ex", [moving_video("down", 0), moving_video("up", 1)])
    store = ShardStore(ex)
    for name, sign in (("down", 1), ("up", -1)):
        e = entry(ex, name)
        x = network_input(EvalSamples(store, [e], spec(length=2, crop=24), 1, "center")[0]) * 20
        assert abs(np.median(x[1::2]) - sign * 8) < 0.5 and abs(np.median(x[0::2])) < 0.5
