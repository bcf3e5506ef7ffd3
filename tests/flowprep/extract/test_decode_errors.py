"""Damage inside a video (issue 30): 20,000 random bytes over the middle of a real .avi decode into
228 of its 240 frames with no error from OpenCV; FFmpeg's decoder reports the damage on stderr
(flowprep.extract.decode.decoder_log). The video is a failures record (or, with
--allow-decode-errors, kept with a recorded warning), `manifest check --full` names it, and none
of FFmpeg's lines reaches the terminal. The 11 real clips decode clean (no false positive:
test_real_clips extracts them all through the same check)."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import VIDEOS_GROUP
from tests.support.reliability.common import FLOWPREP, run


@pytest.fixture(scope="module")
def damaged(shared_data, tmp_path_factory) -> Path:
    """A manifest of two real clips, one with 20,000 random bytes over its middle."""
    root = tmp_path_factory.mktemp("damaged")
    clips = shared_data / "clips" / "ucf101" / "SoccerJuggling"
    data = bytearray((clips / "v_SoccerJuggling_g23_c01.avi").read_bytes())
    middle = len(data) // 2
    data[middle - 10_000:middle + 10_000] = np.random.default_rng(0).bytes(20_000)
    (root / "bad.avi").write_bytes(bytes(data))
    shutil.copy(clips / "v_SoccerJuggling_g24_c01.avi", root / "good.avi")
    (root / "manifest.csv").write_text("video_id,path,label\nbad,bad.avi,0\ngood,good.avi,1\n")
    return root / "manifest.csv"


def extract(manifest: Path, out: Path, *options: str):
    # every frame decoded (the damage is in the middle), few kept: a fast extraction
    return run([*FLOWPREP, "extract", "--manifest", manifest, "--out", out, "--flow", "farneback", "--size", "64x48",
                "--stride", "8", *options])


def ffmpeg_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " @ 0x" in line]


def test_a_damaged_video_is_a_failure_and_ffmpeg_stays_off_the_terminal(damaged, tmp_path):
    done = extract(damaged, tmp_path / "out", "--workers", "2")
    assert done.returncode == 3, done.stderr[-2000:]
    assert not ffmpeg_lines(done.stdout + done.stderr)
    failures = {f.video_id: f.reason for f in ExtractionFolder(tmp_path / "out").read_failures()}
    assert set(failures) == {"bad"} and failures["bad"].startswith("damaged: the decoder reported") \
        and "--allow-decode-errors" in failures["bad"], failures
    assert set(ExtractionFolder(tmp_path / "out").read_index()) == {"good"}


def test_allowed_decode_errors_keep_the_video_with_a_recorded_warning(damaged, tmp_path):
    done = extract(damaged, tmp_path / "out", "--workers", "1", "--allow-decode-errors")  # in the run's own process
    assert done.returncode == 0, done.stderr[-2000:]
    assert not ffmpeg_lines(done.stdout + done.stderr)
    assert "warning: bad: kept despite" in done.stderr
    folder = ExtractionFolder(tmp_path / "out")
    index = folder.read_index()
    assert set(index) == {"bad", "good"}
    warnings = {}
    for video_id, entry in index.items():
        with h5py.File(folder.root / entry.shard, "r") as f:
            warnings[video_id] = f[VIDEOS_GROUP][video_id].attrs["decode_warning"]
    assert warnings["good"] == "" and warnings["bad"].startswith("kept despite"), warnings
    assert run([*FLOWPREP, "verify", folder.root]).returncode == 0


# the real clips decode clean through the same check: test_real_clips extracts all 11 (summary.ok)
def test_manifest_check_full_names_the_damaged_video(damaged):
    done = run([*FLOWPREP, "manifest", "check", damaged, "--full", "--workers", "2"])
    assert done.returncode == 3 and not ffmpeg_lines(done.stdout + done.stderr)
    assert "damaged: bad:" in done.stdout and "2 videos: 1 ok, 0 missing, 0 unreadable, 1 damaged" in done.stdout
