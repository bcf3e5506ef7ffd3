"""The default frame size of `flowprep extract` keeps the aspect ratio (short side 256, as
mmaction2 for Kinetics), `--size 340x256` stays for the TSN protocol, and a folder made with the
old default (340x256, stored in its config) resumes with the same command (issue 17 item 6)."""
from __future__ import annotations

import json

from flowprep.extract.config import DEFAULT_SHORT_SIDE, ExtractConfig
from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import open_shard, video_reader
from tests.support.cli import flowprep
from tests.support.videos import make_videos


def widescreen(root, names=("wide",)):
    """16:9 videos (a phone's, Kinetics') and their manifest."""
    return make_videos(root, dict.fromkeys(names, (2, 0)), 3, size=(160, 90), square=24, classes=1, tests=0)


def stored_frame_size(out, video_id):
    index = ExtractionFolder(out).read_index()
    with open_shard(out / index[video_id].shard) as f:
        a = video_reader(f, video_id).attrs
        return a.width, a.height


def test_the_default_size_keeps_the_aspect_ratio(tmp_path, capsys):
    manifest = widescreen(tmp_path / "videos")
    out = tmp_path / "out"
    status, _, err = flowprep(capsys, "extract", "--manifest", manifest, "--out", out, "--flow", "farneback",
                             "--workers", "1")
    assert status == 0, err
    assert stored_frame_size(out, "wide") == (455, DEFAULT_SHORT_SIDE) == (455, 256)  # 160x90 is 16:9, so is 455x256
    settings = ExtractionFolder(out).read_config().settings
    assert (settings["width"], settings["height"], settings["short_side"]) == (None, None, 256)
    assert ExtractConfig().short_side == 256 and ExtractConfig(width=340, height=256).short_side is None


def test_a_folder_made_with_the_old_default_resumes_with_the_same_command(tmp_path, capsys):
    manifest = widescreen(tmp_path / "videos", ("a", "b"))
    out = tmp_path / "out"
    args = ["extract", "--manifest", manifest, "--out", out, "--flow", "farneback", "--workers", "1"]
    # what the old default wrote: an explicit 340x256 in the stored config
    status, _, err = flowprep(capsys, *args, "--size", "340x256", "--max-frames", "2")
    assert status == 0, err
    stored = json.loads((out / "config.json").read_text())["extract"]
    assert (stored["width"], stored["height"], stored["short_side"]) == (340, 256, None)
    manifest.write_text(manifest.read_text() + "c,a.avi,0,c0,train\n")  # one more video to do
    status, stdout, err = flowprep(capsys, *args, "--max-frames", "2")
    assert status == 0, stdout + err
    assert stored_frame_size(out, "c") == (340, 256)  # resumed at the folder's size, not the new default
    # a new size on purpose is still refused without --overwrite, naming the difference
    status, _, err = flowprep(capsys, *args, "--max-frames", "2", "--short-side", "64")
    assert status == 2 and "short_side: None -> 64" in err, err
