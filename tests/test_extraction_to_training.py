"""Chains across both packages: extract -> export-rawframes -> import-rawframes -> train ->
evaluate (a folder packed from a rawframes tree is an extraction folder like any other, and the
trainer reads both kinds: docs/rawframes.md), and extract with tvl1-torch -> train -> evaluate."""
from __future__ import annotations

import pytest

from flowprep.format.folder import ExtractionFolder
from tests.support.extraction import HEIGHT, MOTIONS, extract, make_videos, run_cli
from tests.support.twostream_cli import one_line_error, twostream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    extraction = extract(make_videos(root / "videos", MOTIONS, frames=12), root / "extracted")
    return extraction, root


def test_an_imported_rawframes_tree_trains_and_evaluates(imported, capsys):
    extraction, root = imported
    tree, packed = root / "tree", root / "imported"
    assert run_cli(capsys, "export-rawframes", extraction, "--out", tree, "--workers", "1")[0] == 0
    # the manifest gives labels and splits; frame folders are found as TREE/<path without extension>
    assert run_cli(capsys, "import-rawframes", tree, "--out", packed, "--bound", "20", "--workers", "1",
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
    run_cli(capsys, "export-rawframes", extraction, "--out", tree, "--workers", "1")
    run_cli(capsys, "import-rawframes", tree, "--out", packed, "--workers", "1")
    message = one_line_error(capsys, "train", str(packed), "--out", str(root / "too_big"), "--stream",
                             "spatial", "--crop-size", str(HEIGHT + 1), "--loader-workers", "0")
    assert f"crop size {HEIGHT + 1} is larger than the stored frames' shorter side ({HEIGHT} px" in message


def test_tvl1_torch_shards_train_like_any_other(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", MOTIONS, frames=12)
    out = tmp_path / "shards"
    status, _, err = run_cli(capsys, "extract", "--manifest", manifest, "--out", out, "--flow", "tvl1-torch",
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
