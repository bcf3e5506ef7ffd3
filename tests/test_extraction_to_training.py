"""Chains across both packages: extract -> export-rawframes -> import-rawframes -> train ->
evaluate (a folder packed from a rawframes tree is an extraction folder like any other, and the
trainer reads both kinds: docs/rawframes.md); the trees users have (denseflow's, mmaction2's
flow_extraction.py's, a flowprep export in the class layout) -> import-rawframes with only the
options they need -> train; and extract with tvl1-torch -> train -> evaluate."""
from __future__ import annotations

import pytest

from flowprep.format.folder import ExtractionFolder
from tests.support import rawframe_trees as trees
from tests.support.cli import flowprep, one_line_error, twostream
from tests.support.extraction import extract
from tests.support.videos import HEIGHT, MOTIONS, make_videos

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    extraction = extract(make_videos(root / "videos", MOTIONS, frames=12), root / "extracted")
    return extraction, root


def test_an_imported_rawframes_tree_trains_and_evaluates(imported, capsys):
    extraction, root = imported
    tree, packed = root / "tree", root / "imported"
    assert flowprep(capsys, "export-rawframes", extraction, "--out", tree, "--workers", "1")[0] == 0
    # the manifest gives labels and splits; frame folders are found as TREE/<path without extension>
    assert flowprep(capsys, "import-rawframes", tree, "--out", packed, "--bound", "20", "--workers", "1",
                   "--manifest", root / "videos" / "manifest.csv")[0] == 0
    original, again = ExtractionFolder(extraction).read_index(), ExtractionFolder(packed).read_index()
    assert {v: e.num_frames for v, e in again.items()} == {v: e.num_frames for v, e in original.items()}
    assert ExtractionFolder(packed).read_config().kind == "import"

    run = root / "run"
    common = ["--split", "split1", "--loader-workers", "0", "--threads", "1"]
    status, out, err = twostream(capsys, "train", str(packed), *common, "--stream", "temporal", "--out", str(run),
                                 "--flow-length", "4", "--crop-size", "64", "--epochs", "1", "--batch-size", "2",
                                 "--val-every", "0")
    assert status == 0, err
    status, out, err = twostream(capsys, "evaluate", str(run), *common, "--clips", "2", "--crops", "center")
    assert status == 0, err
    assert "2 test videos of split1" in out and (run / "scores_test.npz").is_file()


def test_the_crop_is_checked_against_the_imported_frames_size(imported, capsys):
    extraction, root = imported
    tree, packed = root / "tree2", root / "imported2"
    flowprep(capsys, "export-rawframes", extraction, "--out", tree, "--workers", "1")
    flowprep(capsys, "import-rawframes", tree, "--out", packed, "--workers", "1")
    message = one_line_error(capsys, "train", str(packed), "--out", str(root / "too_big"), "--stream",
                             "spatial", "--crop-size", str(HEIGHT + 1), "--loader-workers", "0")
    assert f"crop size {HEIGHT + 1} is larger than the stored frames' shorter side ({HEIGHT} px" in message


@pytest.mark.parametrize("source", ["denseflow", "flow_extraction", "flowprep_export"])
def test_the_trees_users_have_import_and_train(imported, tmp_path, capsys, source):
    tree, options = tmp_path / "rawframes", []
    labels = {name: i for i, name in enumerate(MOTIONS)}
    train = {name for name in MOTIONS if labels[name] < len(MOTIONS) / 2}
    if source == "flowprep_export":  # the class layout, read back with no options at all
        assert flowprep(capsys, "export-rawframes", imported[0], "--out", tree, "--layout", "class", "--workers", "1")[0] == 0
    else:
        if source == "denseflow":  # build_rawframes.py --level 2: <class>/<video>/, numbered from 0
            dirs = trees.denseflow_tree(tree, MOTIONS)
        else:  # flow_extraction.py --save-rgb: <video>/, x_/y_ numbered from 1
            dirs = {name: trees.video_of(name) for name in MOTIONS}
            for name, frames in trees.videos(MOTIONS).items():
                trees.flow_extraction_video(tree / dirs[name], frames)
        trees.file_lists(tmp_path / "lists", "mini", dirs, {m: trees.FRAMES for m in dirs}, labels, train)
        options = ["--annotations", str(tmp_path / "lists" / "mini_{part}_split_{n}_rawframes.txt")]
    packed = tmp_path / "imported"
    status, out, err = flowprep(capsys, "import-rawframes", tree, "--out", packed, "--workers", "1", *options)
    assert status == 0, out + err
    index = ExtractionFolder(packed).read_index()
    assert len(index) == len(MOTIONS) and sum(e.in_split("split1", "train") for e in index.values()) == len(train)
    status, out, err = twostream(capsys, "train", str(packed), "--split", "split1", "--loader-workers", "0",
                                 "--threads", "1", "--stream", "temporal", "--out", str(tmp_path / "run"),
                                 "--flow-length", "4", "--crop-size", "64", "--epochs", "1", "--batch-size", "2",
                                 "--val-every", "0")
    assert status == 0, err
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_tvl1_torch_shards_train_like_any_other(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", MOTIONS, frames=12)
    out = tmp_path / "shards"
    status, _, err = flowprep(capsys, "extract", "--manifest", manifest, "--out", out, "--flow", "tvl1-torch",
                             "--device", "cpu", "--workers", "2", "--size", "128x96", "--flow-param", "nscales=3",
                             "--flow-param", "warps=1")
    assert status == 0, err
    common = ["--loader-workers", "0", "--threads", "1"]
    status, _, err = twostream(capsys, "train", str(out), *common, "--stream", "temporal", "--out", str(tmp_path / "run"),
                               "--flow-length", "4", "--crop-size", "64", "--epochs", "1", "--batch-size", "2",
                               "--val-every", "0")
    assert status == 0, err
    status, out_text, err = twostream(capsys, "evaluate", str(tmp_path / "run"), *common,
                                      "--clips", "2", "--crops", "center")
    assert status == 0 and "2 test videos of split1" in out_text, err
