"""`flowprep inspect` and `flowprep verify` on a real (tiny) extraction, and on copies of it
damaged the ways files get damaged: truncated, a dataset gone, another format version, a frame
that no longer decodes, a video cut short, an index out of step."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from flowprep.extract.config import DEFAULT_FLOW_CODEC, DEFAULT_RGB_CODEC
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_index import INDEX_FILE
from flowprep.tools.inspection import inspect_path, inspect_video
from flowprep.tools.verify import verify_path
from tests.support.cli import flowprep
from tests.support.extraction import extract
from tests.support.videos import FRAMES, make_videos

MOTIONS = {"right": (2, 0), "down": (0, 2)}


@pytest.fixture(scope="module")
def extraction(tmp_path_factory) -> Path:
    """Two videos and one failure (a missing file), 8 frames each, JPEG codecs."""
    root = tmp_path_factory.mktemp("inspect")
    return extract(make_videos(root / "videos", MOTIONS, missing=True), root / "out")


@pytest.fixture()
def damaged(extraction, tmp_path) -> Path:
    """A copy of the extraction to break."""
    return Path(shutil.copytree(extraction, tmp_path / "copy"))


def shard_of(folder: Path) -> Path:
    (shard,) = ExtractionFolder(folder).shard_paths()
    return shard


# --- inspect ------------------------------------------------------------------------------------
def test_inspect_counts_videos_frames_classes_splits_bytes_and_failures(extraction):
    s = inspect_path(extraction)
    assert s["kind"] == "extraction" and s["videos"] == 2 and s["indexed_videos"] == 2
    assert s["frames"] == 2 * FRAMES and s["flow_fields_per_direction"] == 2 * (FRAMES - 1)
    assert s["classes"] == {"down": 1, "right": 1}
    assert s["splits"] == {"split1": {"train": 1, "test": 1, "unused": 0}}
    on_disk = shard_of(extraction).stat().st_size
    assert s["bytes"]["on_disk"] == on_disk and s["bytes"]["per_frame"] == pytest.approx(on_disk / (2 * FRAMES))
    assert s["config"]["extract"]["flow_method"] == "farneback"
    assert [f["video_id"] for f in s["failures"]] == ["ghost"]
    assert s["failures"][0]["reason"].startswith("file not found")


def test_inspect_one_shard_gives_its_stored_config(extraction):
    s = inspect_path(shard_of(extraction))
    assert s["kind"] == "shard" and s["videos"] == 2 and s["config"]["bound"] == 20.0


def test_inspect_video_reports_attributes_bytes_and_flow_statistics(extraction):
    v = inspect_video(extraction, "right")
    assert v["attrs"]["num_frames"] == FRAMES and v["attrs"]["label_name"] == "right"
    assert v["codecs"] == {"rgb": DEFAULT_RGB_CODEC, "flow": DEFAULT_FLOW_CODEC} and v["bound"] == 20.0
    with h5py.File(shard_of(extraction)) as f:
        offsets = f["videos/right/rgb_offsets"][()]
    assert v["bytes"]["rgb"] == offsets[-1] + offsets.nbytes  # the JPEG files and where each starts
    forward = v["flow"]["forward"]
    assert forward["fields"] == FRAMES - 1
    # the square moves 2 px a frame: flow peaks near 2 px, is near zero on the background
    assert 1.5 < forward["max_magnitude"] < 3.0
    assert 0.05 < forward["mean_magnitude"] < 1.0
    assert forward["clipped_share"] == 0.0


def test_flow_beyond_the_bound_shows_as_clipped(tmp_path):
    out = extract(make_videos(tmp_path / "v", {"right": (2, 0)}), tmp_path / "o", bound=1.0)
    stats = inspect_video(out, "right")["flow"]["forward"]
    assert stats["clipped_share"] > 0.01 and stats["max_magnitude"] <= np.hypot(1.0, 1.0) + 1e-6


def test_inspect_cli_text_and_json(extraction, capsys):
    status, out, _ = flowprep(capsys, "inspect", extraction)
    assert status == 0
    assert "videos: 2" in out and "frames: 16 RGB, 14 flow fields per direction" in out
    assert "classes: 2 (down 1, right 1)" in out and "failures: 1" in out and "ghost: file not found" in out
    status, out, _ = flowprep(capsys, "inspect", extraction, "--video", "down", "--json")
    assert status == 0 and json.loads(out)["attrs"]["label_name"] == "down"
    status, _, err = flowprep(capsys, "inspect", extraction, "--video", "nobody")
    assert status == 2 and "no video 'nobody' in this extraction" in err and err.count("\n") == 1


# --- verify: all well ---------------------------------------------------------------------------
def test_verify_a_good_extraction(extraction, capsys):
    report = verify_path(extraction)
    assert report.ok and report.shards == 1 and report.videos == 2
    assert report.frames_decoded == 2 * (FRAMES + 2 * (FRAMES - 1))
    status, out, _ = flowprep(capsys, "verify", extraction)
    assert status == 0 and out.strip().endswith("all well")
    assert verify_path(shard_of(extraction), quick=True).ok


def test_verify_a_path_that_does_not_exist_is_a_one_line_error(tmp_path, capsys):
    status, _, err = flowprep(capsys, "verify", tmp_path / "nothing")
    assert status == 2 and err.count("\n") == 1 and "no such extraction folder or shard" in err


# --- verify: damage -----------------------------------------------------------------------------
def only_problem(report) -> str:
    assert not report.ok
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    return str(report.problems[0])


def test_a_truncated_shard_is_reported_with_its_file(damaged, capsys):
    shard = shard_of(damaged)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    problem = only_problem(verify_path(damaged, quick=True))
    assert problem.startswith(str(shard)) and "not a readable HDF5 file (corrupt or truncated?)" in problem
    status, out, _ = flowprep(capsys, "verify", damaged, "--quick")
    assert status == 3 and "1 problem(s)" in out


def test_a_missing_dataset_is_reported_with_file_and_video(damaged):
    with h5py.File(shard_of(damaged), "a") as f:
        del f["videos/down/flow_backward"]
    problem = only_problem(verify_path(damaged, quick=True))
    assert problem == f"{shard_of(damaged)} video 'down': lacks dataset 'flow_backward'"


def test_another_format_version_is_reported_with_both_versions(damaged):
    with h5py.File(shard_of(damaged), "a") as f:
        f.attrs["format_version"] = 2
    problem = only_problem(verify_path(damaged, quick=True))
    assert "shard format version 2, but this flowprep reads version 1" in problem


def test_a_frame_that_does_not_decode_is_found_by_the_full_check_only(damaged):
    with h5py.File(shard_of(damaged), "a") as f:
        start = f["videos/right/rgb_offsets"][3]  # frame 3's JPEG file starts here: overwrite its header
        junk = np.frombuffer(b"\xff\xd8 not a jpeg any more", np.uint8)
        f["videos/right/rgb"][start:start + junk.size] = junk
    assert verify_path(damaged, quick=True).ok
    problem = only_problem(verify_path(damaged))
    assert problem.startswith(f"{shard_of(damaged)} video 'right': rgb[3] does not decode")


def test_a_video_cut_short_is_incomplete(damaged):
    with h5py.File(shard_of(damaged), "a") as f:
        offsets = f["videos/right/flow_forward_offsets"][: FRAMES - 3 + 1]  # the first FRAMES - 3 fields
        del f["videos/right/flow_forward_offsets"]
        f["videos/right/flow_forward_offsets"] = offsets
    problem = only_problem(verify_path(damaged, quick=True))
    assert f"flow_forward holds {FRAMES - 3} entries, expected {FRAMES - 1} for {FRAMES} frames (incomplete)" in problem


def test_an_index_out_of_step_with_the_shards_is_reported(damaged):
    index_path = damaged / INDEX_FILE
    index = json.loads(index_path.read_text())
    index["videos"]["phantom"] = dict(index["videos"]["right"])
    del index["videos"]["right"]
    index_path.write_text(json.dumps(index))
    problems = sorted(str(p) for p in verify_path(damaged, quick=True).problems)
    assert problems == [f"{shard_of(damaged)} video 'phantom': listed in the index but in no shard",
                        f"{shard_of(damaged)} video 'right': in a shard but not in the index (stale index: "
                        "re-run the same extract command to rebuild it)"]
