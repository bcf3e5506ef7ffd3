"""Rawframes interoperability: export to the denseflow/mmaction2 tree, import back, round trips
(exact for raw codecs through PNG, within JPEG error otherwise), denseflow trees without
backward flow, damaged trees, and the refusal to mix imports with extractions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import ExtractError, run_extract
from flowprep.format.folder import ExtractionFolder
from flowprep.format.quantize import dequantize, quantize
from flowprep.format.shards import open_shard, stored_extract_config, video_reader
from flowprep.rawframes.export import ExportConfig, export_rawframes
from flowprep.rawframes.importer import ImportConfig, ImportRun, approximate_backward, import_rawframes
from flowprep.rawframes.layout import RawframesError, group_frame_names, parse_annotation_list
from flowprep.tools.verify import verify_path
from tests.support.extraction import FRAMES, extract, make_videos, run_cli
from tests.support.videos import square_box

MOTIONS = {"right": (2, 0), "down": (0, 2), "left": (-2, 0)}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("raw") / "videos", MOTIONS)


@pytest.fixture(scope="module")
def jpeg_extraction(videos, tmp_path_factory) -> Path:
    return extract(videos, tmp_path_factory.mktemp("jpeg") / "ucf_mini")


@pytest.fixture(scope="module")
def raw_extraction(videos, tmp_path_factory) -> Path:
    return extract(videos, tmp_path_factory.mktemp("rawc") / "out", rgb_codec="raw", flow_codec="raw:lzf")


def readers(folder: Path):
    """{video id: (open file, VideoReader)} of an extraction folder; the caller closes the files."""
    out = {}
    for video_id, entry in ExtractionFolder(folder).read_index().items():
        f = open_shard(folder / entry.shard)
        out[video_id] = (f, video_reader(f, video_id))
    return out


def compare(a_dir: Path, b_dir: Path) -> dict[str, float]:
    """Largest mean and max absolute differences of RGB frames and flow codes between two folders."""
    a, b = readers(a_dir), readers(b_dir)
    worst = {"rgb_mean": 0.0, "rgb_max": 0.0, "flow_mean": 0.0, "flow_max": 0.0}
    try:
        assert set(a) == set(b)
        for vid in a:
            va, vb = a[vid][1], b[vid][1]
            assert va.num_frames == vb.num_frames
            for i in range(va.num_frames):
                d = np.abs(va.rgb(i).astype(int) - vb.rgb(i))
                worst["rgb_mean"], worst["rgb_max"] = max(worst["rgb_mean"], d.mean()), max(worst["rgb_max"], d.max())
            for direction in ("forward", "backward"):
                for i in range(va.num_frames - 1):
                    d = np.abs(va.flow_codes(direction, i).astype(int) - vb.flow_codes(direction, i))
                    worst["flow_mean"] = max(worst["flow_mean"], d.mean())
                    worst["flow_max"] = max(worst["flow_max"], d.max())
    finally:
        for f, _ in list(a.values()) + list(b.values()):
            f.close()
    return worst


# --- export -------------------------------------------------------------------------------------
def test_export_writes_the_denseflow_tree_and_mmaction2_lists(jpeg_extraction, tmp_path):
    out = tmp_path / "rawframes"
    summary = export_rawframes(jpeg_extraction, out)
    assert summary.ok and sorted(summary.exported) == sorted(MOTIONS)
    names = sorted(p.name for p in (out / "right").iterdir())
    assert [n for n in names if n.startswith("img_")] == [f"img_{i:05d}.jpg" for i in range(1, FRAMES + 1)]
    for kind in ("flow_x", "flow_y", "backward_flow_x", "backward_flow_y"):
        assert [n for n in names if n.startswith(kind + "_")] == [f"{kind}_{i:05d}.jpg" for i in range(1, FRAMES)]
    # mmaction2's list names and lines: frame_dir total_frames label (total = flow fields, T-1)
    train = parse_annotation_list((out / "ucf_mini_train_split_1_rawframes.txt").read_text(), "train list")
    val = parse_annotation_list((out / "ucf_mini_val_split_1_rawframes.txt").read_text(), "val list")
    assert [(r.frame_dir, r.total_frames, r.label) for r in train] == [("down", FRAMES - 1, 1), ("right", FRAMES - 1, 0)]
    assert [(r.frame_dir, r.label) for r in val] == [("left", 2)]
    with open_shard(jpeg_extraction / ExtractionFolder(jpeg_extraction).read_index()["right"].shard) as f:
        video = video_reader(f, "right")
        # a stored RGB JPEG is written out byte for byte: no second generation of loss
        offsets = f["videos/right/rgb_offsets"][()]
        assert (out / "right" / "img_00003.jpg").read_bytes() == f["videos/right/rgb"][offsets[2]:offsets[3]].tobytes()
        # flow images are the quantised codes, grayscale, 128 ~ no motion, as denseflow writes them
        flow_x = cv2.imread(str(out / "right" / "flow_x_00003.jpg"), cv2.IMREAD_UNCHANGED)
        assert flow_x.ndim == 2 and flow_x.shape == (video.attrs.height, video.attrs.width)
        assert np.abs(flow_x.astype(int) - video.flow_codes("forward", 2)[..., 0]).mean() < 1.0
        rows, cols = square_box(2, velocity=MOTIONS["right"])
        assert np.median(dequantize(flow_x[rows, cols], video.bound)) == pytest.approx(2.0, abs=0.6)


def test_export_options_and_resume(jpeg_extraction, tmp_path, capsys):
    out = tmp_path / "rawframes"
    status, stdout, _ = run_cli(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--video", "left",
                                "--no-backward", "--workers", "1", "--list-prefix", "mini")
    assert status == 0 and "1 exported, 0 already in the tree" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["flowprep_export.json", "left", "mini_val_split_1_rawframes.txt"]
    record = json.loads((out / "flowprep_export.json").read_text())
    assert record["flow_mean_subtracted"] is True and record["source_config"]["extract"]["bound"] == 20.0
    assert not list((out / "left").glob("backward_*"))
    status, stdout, _ = run_cli(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--workers", "1",
                                "--list-prefix", "mini")
    assert status == 0 and "2 exported, 1 already in the tree" in stdout
    status, _, err = run_cli(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--video", "nobody")
    assert status == 2 and "no video 'nobody' in the index" in err and err.count("\n") == 1


def test_export_with_restored_means_adds_the_mean_vector_back(jpeg_extraction, tmp_path):
    export_rawframes(jpeg_extraction, tmp_path / "r", ["right"], ExportConfig(image_format="png", restore_mean=True))
    with open_shard(jpeg_extraction / ExtractionFolder(jpeg_extraction).read_index()["right"].shard) as f:
        video = video_reader(f, "right")
        expected = quantize(video.flow("forward", 0, restore_mean=True), video.bound)[..., 0]
        assert np.abs(video.flow_means("forward")[0]).max() > 0.05  # the test means something
    written = cv2.imread(str(tmp_path / "r" / "right" / "flow_x_00001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, expected)


# --- round trips --------------------------------------------------------------------------------
def test_round_trip_is_exact_for_raw_codecs(raw_extraction, videos, tmp_path):
    tree = tmp_path / "tree"
    assert export_rawframes(raw_extraction, tree, config=ExportConfig(image_format="png")).ok
    back = tmp_path / "back"
    summary = import_rawframes(ImportRun(tree, back, ImportConfig(rgb_codec="raw", flow_codec="raw:lzf", mean_subtracted=True),
                                         manifest=videos, workers=1), interactive=False)
    assert summary.ok and summary.imported == len(MOTIONS)
    assert compare(raw_extraction, back) == {"rgb_mean": 0.0, "rgb_max": 0.0, "flow_mean": 0.0, "flow_max": 0.0}
    index, original = ExtractionFolder(back).read_index(), ExtractionFolder(raw_extraction).read_index()
    for vid in MOTIONS:
        assert (index[vid].label, index[vid].label_name, index[vid].splits) == \
               (original[vid].label, original[vid].label_name, original[vid].splits)


def test_round_trip_through_jpeg_is_within_jpeg_error(jpeg_extraction, videos, tmp_path, capsys):
    tree = tmp_path / "tree"
    export_rawframes(jpeg_extraction, tree)
    back = tmp_path / "back"
    status, stdout, err = run_cli(capsys, "import-rawframes", tree, "--out", back, "--manifest", videos,
                                  "--mean-subtracted", "--workers", "1")
    assert status == 0, err
    assert "assumed: flow quantised with bound 20 px, mean subtracted (bound from flowprep_export.json); backward flow read from backward_flow_* files" in stdout
    worst = compare(jpeg_extraction, back)
    assert worst["rgb_mean"] < 1.5 and worst["flow_mean"] < 1.0
    assert worst["flow_max"] <= 12  # a few codes at JPEG edges, never a wrong field


# --- import -------------------------------------------------------------------------------------
@pytest.fixture()
def denseflow_tree(jpeg_extraction, tmp_path) -> Path:
    """What denseflow writes: img_, flow_x_, flow_y_ only, under <class>/<video>/ folders."""
    flat = tmp_path / "flat"
    export_rawframes(jpeg_extraction, flat, config=ExportConfig(backward=False))
    tree = tmp_path / "denseflow"
    for name in MOTIONS:
        shutil.copytree(flat / name, tree / f"class_{name}" / f"v_{name}")
    return tree


def test_a_denseflow_tree_imports_with_approximated_backward_flow(denseflow_tree, tmp_path, capsys):
    out = tmp_path / "imported"
    status, stdout, _ = run_cli(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1", "--fps", "25")
    assert status == 0
    assert "3 found, 3 imported now" in stdout and "approximated from the forward flow" in stdout
    index = ExtractionFolder(out).read_index()
    # labels from the class folders, in sorted order
    assert {v: (e.label, e.label_name) for v, e in index.items()} == {
        "v_down": (0, "class_down"), "v_left": (1, "class_left"), "v_right": (2, "class_right")}
    with open_shard(out / index["v_right"].shard) as f:
        config = json.loads(stored_extract_config(f))
        assert config["origin"] == "rawframes" and config["backward_flow"] == "negate" and config["bound"] == 20.0
        video = video_reader(f, "v_right")
        assert video.attrs.fps_source == 25.0 and not video.attrs.mean_subtracted
        t = 3
        rows, cols = square_box(t + 1, velocity=MOTIONS["right"])
        backward = np.median(video.flow("backward", t)[rows, cols].reshape(-1, 2), axis=0)
        np.testing.assert_allclose(backward, [-2.0, 0.0], atol=0.6)
    assert verify_path(out).ok  # an ordinary extraction folder, imported config and all
    # resume: nothing left to do
    status, stdout, _ = run_cli(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1", "--fps", "25")
    assert status == 0 and "0 imported now, 3 already done" in stdout


def test_the_bound_the_user_states_is_the_one_stored(denseflow_tree, tmp_path):
    out = tmp_path / "b10"
    import_rawframes(ImportRun(denseflow_tree, out, ImportConfig(bound=10.0), workers=1), interactive=False)
    with open_shard(out / ExtractionFolder(out).read_index()["v_right"].shard) as f:
        video = video_reader(f, "v_right")
        assert video.bound == 10.0
        rows, cols = square_box(2, velocity=MOTIONS["right"])
        # the same codes read with half the bound: half the displacement
        assert np.median(video.flow("forward", 2)[rows, cols][..., 0]) == pytest.approx(1.0, abs=0.3)


def test_damaged_frame_folders_are_failures_with_reasons(denseflow_tree, tmp_path, capsys):
    (denseflow_tree / "class_down" / "v_down" / "img_00001.jpg").unlink()  # still found, and reported
    (denseflow_tree / "class_left" / "v_left" / "flow_y_00007.jpg").unlink()
    (denseflow_tree / "class_right" / "v_right" / "flow_x_00002.jpg").write_bytes(b"garbage")
    out = tmp_path / "imported"
    status, stdout, _ = run_cli(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1")
    assert status == 3 and "0 imported now" in stdout
    reasons = {f.video_id: f.reason for f in ExtractionFolder(out).read_failures()}
    assert reasons["v_down"].endswith("img_NNNNN images start at img_00002; trees are numbered from 0 (denseflow) "
                                      "or 1 (mmaction2), so img_00001 is missing")
    assert reasons["v_left"].endswith("7 flow_x images but 6 flow_y images: flow_y_00007 is missing")
    assert reasons["v_right"].endswith("flow_x_00002.jpg: does not decode as an image")


def test_backward_files_can_be_required(denseflow_tree, tmp_path):
    summary = import_rawframes(ImportRun(denseflow_tree, tmp_path / "o", ImportConfig(backward_flow="files"), workers=1),
                               interactive=False)
    assert not summary.ok and len(summary.failures) == 3
    assert "0 backward_flow_x images for 8 img frames" in summary.failures[0].reason
    assert "--backward negate" in summary.failures[0].reason


def test_imports_and_extractions_do_not_mix(jpeg_extraction, denseflow_tree, videos, tmp_path):
    out = tmp_path / "imported"
    import_rawframes(ImportRun(denseflow_tree, out, workers=1), interactive=False)
    with pytest.raises(ExtractError, match="holds frames imported from a rawframes tree"):
        run_extract(ExtractRun(videos, videos.parent, out, ExtractConfig(flow_method="farneback")), interactive=False)
    with pytest.raises(RawframesError, match="holds an extraction made by `flowprep extract`"):
        import_rawframes(ImportRun(denseflow_tree, jpeg_extraction, workers=1), interactive=False)
    with pytest.raises(RawframesError, match=r"different settings \(bound: 20.0 -> 5.0\)"):
        import_rawframes(ImportRun(denseflow_tree, out, ImportConfig(bound=5.0), workers=1), interactive=False)


# --- pieces -------------------------------------------------------------------------------------
def test_approximate_backward_is_exact_for_uniform_motion():
    field = np.zeros((20, 30, 2), np.float32)
    field[..., 0], field[..., 1] = 3.0, -1.5
    codes = quantize(field, 20.0)
    backward = approximate_backward(codes, 20.0)
    np.testing.assert_array_equal(backward, 255 - codes)  # exact negation in uint8
    np.testing.assert_allclose(dequantize(backward, 20.0), -dequantize(codes, 20.0), atol=1e-5)


def test_frame_names_with_gaps_or_duplicates_are_refused():
    files = group_frame_names(["img_00002.jpg", "img_00001.jpg", "flow_x_00001.jpg", "log.txt"], "d")
    assert files.names("img") == ("img_00001.jpg", "img_00002.jpg") and files.count("flow_x") == 1
    with pytest.raises(RawframesError, match="img_NNNNN images img_00001..img_00003 have a gap: img_00002 is missing"):
        group_frame_names(["img_00001.jpg", "img_00003.jpg"], "d")
    with pytest.raises(RawframesError, match="img_00001.jpg and img_00001.png are both img frame 1"):
        group_frame_names(["img_00001.jpg", "img_00001.png"], "d")


def test_bad_import_options_are_one_line_usage_errors(denseflow_tree, tmp_path, capsys):
    status, _, err = run_cli(capsys, "import-rawframes", denseflow_tree, "--out", tmp_path / "o", "--bound", "0")
    assert status == 2 and err.count("\n") == 1 and "0.0 is not in the range x>0" in err
    status, _, err = run_cli(capsys, "import-rawframes", tmp_path / "nothing", "--out", tmp_path / "o")
    assert status == 2 and err.count("\n") == 1 and "is not a folder" in err
