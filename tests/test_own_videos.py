"""README's "Your own videos", run as written: a tree of class folders of real videos -> manifest
folder -> manifest check -> extract -> train x 2 -> evaluate x 2 -> fuse -> report, with no option
beyond those the README shows except the ones appended here to shrink sizes and epochs (a later
option wins). Before, the manifest's paths were relative to the video folder while check and
extract resolved them against the manifest's: "11 videos: 0 ok, 11 missing", and no word of
--video-root."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from flowprep.cli.main import main as flowprep_main
from tests.support.videos import moving_square_frames, write_video
from twostream.cli.main import main as twostream_main

README = Path(__file__).resolve().parent.parent / "README.md"
# appended to the README's lines: tiny frames, one epoch, one process each
SHRINK = {
    ("flowprep", "extract"): ["--size", "64x48", "--workers", "1"],
    ("flowprep", "manifest"): [],
    ("twostream", "train"): ["--epochs", "1", "--crop-size", "32", "--flow-length", "4", "--batch-size", "4",
                             "--val-every", "0", "--loader-workers", "0", "--threads", "1"],
    ("twostream", "evaluate"): ["--clips", "3", "--loader-workers", "0", "--threads", "1"],
    ("twostream", "fuse"): [],
    ("twostream", "report"): [],
    ("twostream", "predict"): ["--fast", "--threads", "1"],
}
MAINS = {"flowprep": flowprep_main, "twostream": twostream_main}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def readme_commands() -> list[list[str]]:
    section = README.read_text().split("## Your own videos", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.strip() and not line.startswith("#")]


def class_folders(root: Path) -> None:
    """videos/<class>/<video>.avi: 2 classes (a square moving right or down), 4 videos each, one
    of them a folder deeper; 12 frames of 64x48."""
    for label, (name, velocity) in enumerate({"right": (1, 0), "down": (0, 1)}.items()):
        for k in range(4):
            folder = root / name / ("day2" if k == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            write_video(folder / f"{name}_{k}.avi",
                        moving_square_frames(12, 64, 48, square=16, velocity=velocity, seed=10 * label + k))


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    program, args = argv[0], argv[1:]
    extra = SHRINK[(program, args[0])]
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        MAINS[program]([*args, *extra])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_the_readme_own_videos_commands_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    class_folders(tmp_path / "videos")
    (tmp_path / "new_video.mp4").write_bytes((tmp_path / "videos" / "down" / "down_0.avi").read_bytes())
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["flowprep", "manifest"], ["flowprep", "manifest"], ["flowprep", "extract"],
                                         ["twostream", "train"], ["twostream", "train"], ["twostream", "evaluate"],
                                         ["twostream", "evaluate"], ["twostream", "fuse"], ["twostream", "report"],
                                         ["twostream", "predict"]]
    outputs = []
    for argv in commands:
        code, out, err = run(capsys, argv)
        assert code == 0, f"{shlex.join(argv)}: exit {code}\n{out}\n{err[-2000:]}"
        outputs.append(out)
    assert "8 videos: 8 ok, 0 missing, 0 unreadable" in outputs[1]
    assert "2 test videos of split1" in outputs[5] and (tmp_path / "runs" / "spatial" / "scores_test.npz").is_file()
    table = json.loads((tmp_path / "runs" / "report" / "table.json").read_text())
    names = [r["name"] for r in table["rows"]]
    assert names[:2] == ["spatial", "temporal"] and "average" in names and "weighted" in names
    assert (tmp_path / "runs" / "report" / "curves_spatial.png").is_file()  # the runs' metrics, found by report
    assert re.search(r"^new_video\.mp4\s+(right|down) \(", outputs[9], flags=re.M), outputs[9]  # a class name


def test_a_manifest_written_away_from_its_videos_says_which_flag(tmp_path, capsys):
    """Where the manifest's folder does not hold the video folder, paths start at the video folder:
    `manifest folder` says to give --video-root, and so do check and extract when videos are missing."""
    class_folders(tmp_path / "data" / "videos")
    manifest = tmp_path / "lists" / "my.csv"
    code, out, _ = run(capsys, ["flowprep", "manifest", "folder", str(tmp_path / "data" / "videos"), "--out",
                                str(manifest)])
    assert code == 0 and f"give --video-root {tmp_path / 'data' / 'videos'}" in out
    code, out, _ = run(capsys, ["flowprep", "manifest", "check", str(manifest)])
    assert code == 3 and "8 missing" in out and "pass --video-root ROOT" in out
    code, out, _ = run(capsys, ["flowprep", "extract", "--manifest", str(manifest), "--out", str(tmp_path / "x")])
    assert code == 3 and "file not found" in out and "pass --video-root ROOT" in out
    code, out, _ = run(capsys, ["flowprep", "manifest", "check", str(manifest), "--video-root",
                                str(tmp_path / "data" / "videos")])
    assert code == 0, out


def test_folder_manifest_paths_start_from_the_manifest_folder(tmp_path, capsys):
    class_folders(tmp_path / "videos")
    run(capsys, ["flowprep", "manifest", "folder", str(tmp_path / "videos"), "--out", str(tmp_path / "videos.csv")])
    run(capsys, ["flowprep", "manifest", "folder", str(tmp_path / "videos"), "--out",
                 str(tmp_path / "videos" / "manifest.csv")])
    above = (tmp_path / "videos.csv").read_text().splitlines()
    inside = (tmp_path / "videos" / "manifest.csv").read_text().splitlines()
    assert above[1].split(",")[:2] == ["down_3", "videos/down/day2/down_3.avi"]
    assert inside[1].split(",")[:2] == ["down_3", "down/day2/down_3.avi"]
    assert [r.split(",")[0] for r in above] == [r.split(",")[0] for r in inside]  # same ids, labels, split
