"""Rawframes interoperability: export to the denseflow/mmaction2 tree, import back, round trips
(exact for raw codecs through PNG, within JPEG error otherwise; with no options from what export
wrote), the trees denseflow and mmaction2's scripts write (numbering from 0 or 1, x_/y_ names,
class folders, T or T-1 fields, annotation lists), denseflow trees without backward flow,
damaged trees with refusals that name the cause, and the refusal to mix imports with extractions."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import flowprep.extract.staged_run as staged_run_module
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.folder import ExtractionFolder, FolderError
from flowprep.format.quantize import dequantize, quantize
from flowprep.format.shards import open_shard, stored_extract_config, video_reader
from flowprep.rawframes.export import ExportConfig, export_rawframes
from flowprep.rawframes.importer import ImportConfig, ImportRun, approximate_backward, import_rawframes
from flowprep.rawframes.layout import RawframesError, group_frame_names, parse_annotation_list, plan_frames
from flowprep.tools.verify import verify_path
from tests.support import rawframe_trees as trees
from tests.support.cli import flowprep
from tests.support.extraction import extract
from tests.support.reliability.signals import StagingSampler
from tests.support.videos import FRAMES, make_videos, square_box

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
    status, stdout, _ = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--video", "left",
                                "--no-backward", "--workers", "1", "--list-prefix", "mini")
    assert status == 0 and "1 exported, 0 already in the tree" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".flowprep.lock", "flowprep_export.json", "left",
                                                     "mini_val_split_1_rawframes.txt"]
    record = json.loads((out / "flowprep_export.json").read_text())
    assert record["flow_mean_subtracted"] is True and record["source_config"]["extract"]["bound"] == 20.0
    assert not list((out / "left").glob("backward_*"))
    status, stdout, _ = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--workers", "1",
                                "--list-prefix", "mini", "--no-backward")
    assert status == 0 and "2 exported, 1 already in the tree" in stdout
    status, _, err = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--video", "nobody")
    assert status == 2 and "no video 'nobody' in the index" in err and err.count("\n") == 1


# issue 30: a stopped export resumed with --format png or --restore-means mixed two kinds of video
# in one tree, whose record claimed one; two exports into one --out both ran
@pytest.mark.parametrize("changed,why", [(["--format", "png"], "image_format: 'jpg' -> 'png'"),
                                         (["--restore-means"], "restore_mean: False -> True"),
                                         (["--layout", "class"], "layout: 'flat' -> 'class'")])
def test_an_export_resumed_with_other_options_is_refused_in_one_line(jpeg_extraction, tmp_path, capsys, changed, why):
    out = tmp_path / "rawframes"
    export_rawframes(jpeg_extraction, out, ["left"], ExportConfig())
    (out / "flowprep_export.json").unlink()
    # stopped after its first video: a record with its options is there before any video is written
    status, _, _ = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, "--video", "left")
    assert status == 0
    status, stdout, err = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, *changed)
    assert status == 2 and err.count("\n") == 1 and why in err and "use the same options to resume" in err, err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["left"]  # nothing written
    status, stdout, _ = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out, *changed, "--overwrite")
    assert status == 0 and "3 exported, 0 already" in stdout  # every video rewritten
    record = json.loads((out / "flowprep_export.json").read_text())
    assert record["export"]["image_format"] == ("png" if "png" in changed else "jpg")


def test_an_export_is_stopped_in_the_tree_before_any_video_and_resumes(jpeg_extraction, tmp_path, monkeypatch):
    """The record of a stopped export holds its options: written before the first video."""
    import flowprep.rawframes.export as export

    out = tmp_path / "rawframes"

    def stopped(*args, **kwargs):
        assert json.loads((out / "flowprep_export.json").read_text())["export"]["image_format"] == "png"
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_video", stopped)
    with pytest.raises(KeyboardInterrupt):
        export_rawframes(jpeg_extraction, out, None, ExportConfig(image_format="png", workers=1))
    monkeypatch.undo()
    with pytest.raises(RawframesError, match="image_format: 'png' -> 'jpg'"):
        export_rawframes(jpeg_extraction, out, None, ExportConfig(workers=1))


def test_a_second_export_into_a_tree_in_use_is_refused(jpeg_extraction, tmp_path, capsys):
    from runkit.lock import folder_lock

    out = tmp_path / "rawframes"
    with folder_lock(out):  # an export running in another process holds the tree
        status, _, err = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", out)
    assert status == 2 and err.count("\n") == 1 and "in use by another export" in err and str(out) in err
    assert not any(p.is_dir() for p in out.iterdir())


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
    assert summary.ok and summary.finished == len(MOTIONS)
    assert compare(raw_extraction, back) == {"rgb_mean": 0.0, "rgb_max": 0.0, "flow_mean": 0.0, "flow_max": 0.0}
    index, original = ExtractionFolder(back).read_index(), ExtractionFolder(raw_extraction).read_index()
    for vid in MOTIONS:
        assert (index[vid].label, index[vid].label_name, index[vid].splits) == \
               (original[vid].label, original[vid].label_name, original[vid].splits)


def test_round_trip_through_jpeg_is_within_jpeg_error(jpeg_extraction, videos, tmp_path, capsys):
    tree = tmp_path / "tree"
    export_rawframes(jpeg_extraction, tree)
    back = tmp_path / "back"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", back, "--manifest", videos,
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
    status, stdout, _ = flowprep(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1", "--fps", "25")
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
    status, stdout, _ = flowprep(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1", "--fps", "25")
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
    status, stdout, _ = flowprep(capsys, "import-rawframes", denseflow_tree, "--out", out, "--workers", "1")
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
    with pytest.raises(FolderError, match="holds frames imported from a rawframes tree"):
        run_extract(ExtractRun(videos, videos.parent, out, ExtractConfig(flow_method="farneback")), interactive=False)
    with pytest.raises(FolderError, match="holds an extraction made by `flowprep extract`"):
        import_rawframes(ImportRun(denseflow_tree, jpeg_extraction, workers=1), interactive=False)
    with pytest.raises(FolderError, match=r"different settings \(bound: 20.0 -> 5.0\)"):
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
    status, _, err = flowprep(capsys, "import-rawframes", denseflow_tree, "--out", tmp_path / "o", "--bound", "0")
    assert status == 2 and err.count("\n") == 1 and "0.0 is not in the range x>0" in err
    status, _, err = flowprep(capsys, "import-rawframes", tmp_path / "nothing", "--out", tmp_path / "o")
    assert status == 2 and err.count("\n") == 1 and "is not a folder" in err


# --- the trees users have (issue 17): written as denseflow and mmaction2's scripts write them ---
TREE_MOTIONS = {"right": (2, 0), "down": (0, 2), "left": (-2, 0)}
TRAIN = {"right", "down"}


def moving_median(out: Path, video_id: str, motion: str, t: int = 3) -> np.ndarray:
    """Median forward flow (px) inside the moving square of frame t of an imported video."""
    index = ExtractionFolder(out).read_index()
    with open_shard(out / index[video_id].shard) as f:
        video = video_reader(f, video_id)
        rows, cols = square_box(t, velocity=TREE_MOTIONS[motion])
        return np.median(video.flow("forward", t)[rows, cols].reshape(-1, 2), axis=0)


def background_codes(out: Path, video_id: str) -> np.ndarray:
    """The most common forward flow codes of a video's first field: its still background."""
    index = ExtractionFolder(out).read_index()
    with open_shard(out / index[video_id].shard) as f:
        codes = video_reader(f, video_id).flow_codes("forward", 0)
    return np.array([np.bincount(codes[..., c].ravel()).argmax() for c in range(2)])


def test_a_denseflow_level2_tree_imports_with_labels_and_splits_from_mmaction2_lists(tmp_path, capsys):
    # build_rawframes.py --level 2 with denseflow: 0-based img_/flow_x_, <class>/<video>/, .done markers
    tree = tmp_path / "data" / "ucf101" / "rawframes"
    dirs = trees.denseflow_tree(tree, TREE_MOTIONS)
    assert sorted(p.name for p in (tree / dirs["right"]).iterdir())[:2] == ["flow_x_00000.jpg", "flow_x_00001.jpg"]
    labels = {name: i for i, name in enumerate(sorted(TREE_MOTIONS))}
    trees.file_lists(tmp_path / "lists", "ucf101", dirs, {m: trees.FRAMES for m in dirs}, labels, TRAIN, splits=2)
    out = tmp_path / "imported"
    pattern = str(tmp_path / "lists" / "ucf101_{part}_split_{n}_rawframes.txt")
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", out, "--annotations", pattern,
                                  "--workers", "1", "--flow-codec", "png")  # lossless: the codes as they were
    assert status == 0, stdout + err
    assert "3 found, 3 imported now" in stdout and "labels and splits: 4 annotation list(s)" in stdout
    index = ExtractionFolder(out).read_index()
    assert {v: (e.label, e.label_name, e.splits, e.num_frames) for v, e in index.items()} == {
        trees.video_of(m): (labels[m], trees.class_of(m),
                            {"split1": "train" if m in TRAIN else "test", "split2": "test" if m in TRAIN else "train"},
                            trees.FRAMES)
        for m in TREE_MOTIONS}
    assert (background_codes(out, trees.video_of("right")) == 128).all()  # cvRound: zero motion is 128
    for motion, velocity in TREE_MOTIONS.items():
        np.testing.assert_allclose(moving_median(out, trees.video_of(motion), motion), velocity, atol=0.6)


@pytest.mark.parametrize("tool", ["denseflow", "flow_extraction"])
def test_class_folder_trees_import_without_options(tmp_path, capsys, tool):
    # the 11-of-11 failure of issue 17: numbering from 0 (denseflow), x_/y_ names (flow_extraction.py)
    tree = tmp_path / "rawframes"
    if tool == "denseflow":
        trees.denseflow_tree(tree, TREE_MOTIONS)
    else:  # its video list holds <class>/<video>.avi lines: dest is <class>/<video>/
        for name, frames in trees.videos(TREE_MOTIONS).items():
            trees.flow_extraction_video(tree / trees.class_of(name) / trees.video_of(name), frames)
    out = tmp_path / "imported"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", out, "--workers", "1")
    assert status == 0, stdout + err
    index = ExtractionFolder(out).read_index()
    assert {v: (e.label_name, e.num_frames) for v, e in index.items()} == {
        trees.video_of(m): (trees.class_of(m), trees.FRAMES) for m in TREE_MOTIONS}
    np.testing.assert_allclose(moving_median(out, trees.video_of("down"), "down"), [0.0, 2.0], atol=0.6)


def test_an_mmaction2_flow_extraction_tree_imports(tmp_path, capsys):
    # flow_extraction.py --save-rgb: x_/y_ names from 1, flat, truncated codes; lists given one by one
    tree = tmp_path / "rawframes"
    clips = trees.videos(TREE_MOTIONS)
    for name, frames in clips.items():
        trees.flow_extraction_video(tree / trees.video_of(name), frames)
    dirs = {m: trees.video_of(m) for m in TREE_MOTIONS}
    labels = {name: i for i, name in enumerate(sorted(TREE_MOTIONS))}
    lists = trees.file_lists(tmp_path, "mini", dirs, {m: trees.FRAMES for m in dirs}, labels, TRAIN)
    out = tmp_path / "imported"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", out, "--workers", "1", "--flow-codec", "png",
                                  *[a for path in lists for a in ("--annotations", path)])
    assert status == 0, stdout + err
    index = ExtractionFolder(out).read_index()
    assert {v: (e.label, e.splits) for v, e in index.items()} == {
        trees.video_of(m): (labels[m], {"split1": "train" if m in TRAIN else "test"}) for m in TREE_MOTIONS}
    # truncation: zero motion is code 127, half a step below zero once read
    assert (background_codes(out, trees.video_of("left")) == 127).all()
    for motion, velocity in TREE_MOTIONS.items():
        np.testing.assert_allclose(moving_median(out, trees.video_of(motion), motion), velocity, atol=0.6)


@pytest.mark.parametrize("flows", ["T-1", "T"])
def test_opencv_rgb_with_denseflow_flow_imports_and_says_what_it_drops(tmp_path, capsys, flows):
    # build_rawframes.py --use-opencv --task rgb (img_ from 1), then --task flow (denseflow: from 0);
    # "T": the RGB decoder saw one frame fewer than denseflow, so there are as many fields as frames
    tree = tmp_path / "rawframes"
    clip = trees.videos({"right": (2, 0)}, frames=trees.FRAMES + 1)["right"]
    rgb = clip[:-1] if flows == "T" else clip
    trees.denseflow_video(tree / "Move" / "v_right", rgb, rgb_from_opencv=True, flow_frames=clip)
    out = tmp_path / "imported"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", out, "--workers", "1")
    assert status == 0, stdout + err
    frames = len(rgb)
    assert ExtractionFolder(out).read_index()["v_right"].num_frames == frames
    if flows == "T":
        assert (f"dropped: 1 video(s) had as many flow fields as frames; the last field of each has no frame after "
                f"it (e.g. v_right: flow_x_{frames - 1:05d}.jpg and flow_y_{frames - 1:05d}.jpg") in stdout
    else:
        assert "dropped" not in stdout
    np.testing.assert_allclose(moving_median(out, "v_right", "right"), [2.0, 0.0], atol=0.6)


@pytest.mark.parametrize("layout", ["flat", "class"])
def test_a_flowprep_export_round_trips_with_no_options(jpeg_extraction, tmp_path, capsys, layout):
    tree = tmp_path / "tree"
    layout_options = ["--layout", layout] if layout == "class" else []  # flat: the default
    status, _, err = flowprep(capsys, "export-rawframes", jpeg_extraction, "--out", tree, *layout_options,
                             "--workers", "1")
    assert status == 0, err
    if layout == "class":  # mmaction2's --level 2 layout: <class>/<video>/, and so in the lists
        assert sorted(p.relative_to(tree).as_posix() for p in tree.glob("*/*") if p.is_dir()) == [
            "down/down", "left/left", "right/right"]
        assert (tree / "ucf_mini_val_split_1_rawframes.txt").read_text() == f"left/left {FRAMES - 1} 2\n"
    back = tmp_path / "back"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", back, "--workers", "1")
    assert status == 0, err
    assert "mean subtracted (bound and mean subtraction from flowprep_export.json)" in stdout
    assert "labels and splits: the annotation lists flowprep_export.json names" in stdout
    original, again = ExtractionFolder(jpeg_extraction).read_index(), ExtractionFolder(back).read_index()
    assert {v: (e.label, e.label_name, e.splits, e.num_frames) for v, e in again.items()} == \
           {v: (e.label, e.label_name, e.splits, e.num_frames) for v, e in original.items()}
    assert ExtractionFolder(back).read_config().settings["mean_subtracted"] is True
    worst = compare(jpeg_extraction, back)
    assert worst["rgb_mean"] < 1.5 and worst["flow_mean"] < 1.0


def test_restored_means_are_recorded_as_not_subtracted(jpeg_extraction, tmp_path, capsys):
    tree = tmp_path / "tree"
    export_rawframes(jpeg_extraction, tree, config=ExportConfig(restore_mean=True))
    status, stdout, _ = flowprep(capsys, "import-rawframes", tree, "--out", tmp_path / "back", "--workers", "1")
    assert status == 0 and "mean not subtracted (bound and mean subtraction from flowprep_export.json)" in stdout


def test_export_refuses_a_label_name_that_is_no_folder_name(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", {"right": (2, 0)})
    manifest.write_text(manifest.read_text().replace(",right,train", ",../up,train"))
    extraction = extract(manifest, tmp_path / "x")
    status, _, err = flowprep(capsys, "export-rawframes", extraction, "--out", tmp_path / "t", "--layout", "class")
    assert status == 2 and err.count("\n") == 1 and "label name '../up' of right cannot be a class folder" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("names, message", [
    (["img_00000.jpg", "img_00001.jpg", "flow_x_00000.jpg", "x_00001.jpg"],
     "holds both x_NNNNN and flow_x_NNNNN images (x_00001.jpg); one naming per folder (mmaction2's x_/y_ or "
     "denseflow's flow_x_/flow_y_)"),
    (["img_00002.jpg", "img_00003.jpg"],
     "img_NNNNN images start at img_00002; trees are numbered from 0 (denseflow) or 1 (mmaction2), so img_00001 is missing"),
    (["img_00000.jpg", "img_00001.jpg", "img_00004.jpg", "img_00005.jpg"],
     "img_NNNNN images img_00000..img_00005 have a gap: img_00002 is missing (and 1 more)"),
])
def test_tree_refusals_name_the_cause(names, message):
    with pytest.raises(RawframesError) as info:
        group_frame_names(names, "d")
    assert str(info.value) == f"d: {message}"


@pytest.mark.parametrize("names, message", [
    (["img_00001.jpg", "img_00002.jpg", "img_00003.jpg"],
     "no flow images (flow_x_NNNNN and flow_y_NNNNN as denseflow names them, or x_NNNNN and y_NNNNN as "
     "mmaction2's flow_extraction.py does) for 3 img frames"),
    (["x_00001.jpg", "y_00001.jpg"], "0 img_NNNNN frame(s) (mmaction2's flow_extraction.py writes them only with "
                                     "--save-rgb); at least 2 are needed"),
    (["img_00000.jpg", "img_00001.jpg", "img_00002.jpg", "img_00003.jpg", "flow_x_00000.jpg", "flow_y_00000.jpg"],
     "1 flow_x images for 4 img frames: flow_x_00001..flow_x_00002 are missing (one field per frame pair)"),
    (["img_00001.jpg", "img_00002.jpg", "x_00001.jpg", "x_00002.jpg", "x_00003.jpg", "y_00001.jpg", "y_00002.jpg",
      "y_00003.jpg"], "3 x images for 2 img frames: img_00003 is missing, or the flow is not of these frames"),
])
def test_count_refusals_name_the_missing_images(names, message):
    with pytest.raises(RawframesError) as info:
        plan_frames(group_frame_names(names, "d"), False, "d")
    assert str(info.value) == f"d: {message}"


def test_annotation_lists_that_do_not_fit_are_refused(tmp_path, capsys):
    tree = tmp_path / "tree"
    trees.denseflow_tree(tree, {"right": (2, 0)})
    lists = tmp_path / "lists"
    lists.mkdir()

    def refusal(*options: str) -> str:
        status, _, err = flowprep(capsys, "import-rawframes", tree, "--out", tmp_path / "o", *options)
        assert status == 2 and err.count("\n") == 1, err
        return err

    assert "matches no file" in refusal("--annotations", str(lists / "u_{part}_split_{n}.txt"))
    assert "{nr} is not a field" in refusal("--annotations", str(lists / "u_{nr}.txt"))
    (lists / "a_train_split_1_rawframes.txt").write_text("MoveRight/v_MoveRight_g01_c01 8 0\n")
    (lists / "a_val_split_1_rawframes.txt").write_text("MoveRight/v_MoveRight_g01_c01 8 0\n")
    assert "is in both" in refusal("--annotations", str(lists / "a_{part}_split_{n}_rawframes.txt"))
    (lists / "b.txt").write_text("MoveRight/v_MoveRight_g01_c01 8 0 3\n")
    assert "4 columns: a multi-label line" in refusal("--annotations", str(lists / "b.txt"))
    (lists / "c.txt").write_text("../elsewhere 8 0\n")
    assert "leaves the video root" in refusal("--annotations", str(lists / "c.txt"))
    assert "give --manifest or --annotations, not both" in refusal("--annotations", str(lists / "b.txt"),
                                                                    "--manifest", str(lists / "b.txt"))


def test_bound_help_says_denseflows_own_default(capsys):
    _, stdout, _ = flowprep(capsys, "import-rawframes", "--help")
    text = " ".join(stdout.split())
    assert "denseflow's -b (its own default is 32; mmaction2's build_rawframes.py passes 20)" in text


def test_an_older_export_record_still_reads_and_a_stated_bound_wins(jpeg_extraction, tmp_path, capsys, caplog):
    tree = tmp_path / "tree"
    export_rawframes(jpeg_extraction, tree)
    record = json.loads((tree / "flowprep_export.json").read_text())
    for key in ("bound", "layout", "annotation_lists", "label_names"):  # what records held before issue 17
        del record[key]
    (tree / "flowprep_export.json").write_text(json.dumps(record))
    out = tmp_path / "back"
    status, stdout, err = flowprep(capsys, "import-rawframes", tree, "--out", out, "--workers", "1", "--bound", "10")
    assert status == 0, err
    assert "bound 10 px, mean subtracted (mean subtraction from flowprep_export.json)" in stdout
    assert "--bound 10 differs from the bound 20 that flowprep_export.json records" in caplog.text
    index, original = ExtractionFolder(out).read_index(), ExtractionFolder(jpeg_extraction).read_index()
    assert {v: e.splits for v, e in index.items()} == {v: e.splits for v, e in original.items()}
    (tree / "flowprep_export.json").write_text("{not json")
    status, _, err = flowprep(capsys, "import-rawframes", tree, "--out", tmp_path / "o2")
    assert status == 2 and err.count("\n") == 1 and "flowprep_export.json: not a readable export record" in err


def test_import_staging_stays_under_its_bound_with_a_slow_packer(denseflow_tree, tmp_path, monkeypatch):
    """import-rawframes' workers wait for room in staging as extract's do (issue 19 item 6): with
    tiny shards and a packer slower than the workers, the frame folders waiting to be packed never
    exceed STAGING_SHARDS shards' worth plus one video a worker (before: all 12 piled up)."""
    tree = tmp_path / "many"
    for copy in range(4):
        for folder in denseflow_tree.iterdir():
            for video in folder.iterdir():
                shutil.copytree(video, tree / folder.name / f"{video.name}_{copy}")
    slow_add = staged_run_module.ShardPacker.add

    def slow(self, staged):  # a slow file system under the packer; the workers, other processes, are not slowed
        time.sleep(0.3)
        slow_add(self, staged)

    monkeypatch.setattr(staged_run_module.ShardPacker, "add", slow)
    out = tmp_path / "imported"
    shard_mb = 0.001  # smaller than one video: each is its own shard, and the bound is about a video
    with StagingSampler(ExtractionFolder(out).staging_dir) as sampled:
        summary = import_rawframes(ImportRun(tree, out, workers=2, shard_size_mb=shard_mb), interactive=False)
    assert summary.ok and summary.finished == 12
    limit = staged_run_module.max_staged_bytes(shard_mb * 1e6) + 2 * sampled.largest
    assert sampled.most <= limit, f"{sampled.most} bytes staged at once, bound {limit} (largest video {sampled.largest})"


# --- issue 30: damaged images, symlinks out of the tree, videos in no list ----------------------------
def test_empty_and_damaged_images_are_failures_of_their_video_in_the_workers(denseflow_tree, tmp_path):
    import struct

    from tests.support.cli import FLOWPREP, run

    (denseflow_tree / "class_down" / "v_down" / "img_00003.jpg").write_bytes(b"")
    # a BMP header claiming 60000 x 60000 pixels: OpenCV's decoder raises (cv2.error) rather than
    # returning None; it was a worker's traceback that ended the whole import
    header = bytearray(cv2.imencode(".bmp", np.zeros((4, 4), np.uint8))[1].tobytes())
    header[18:26] = struct.pack("<ii", 60000, 60000)
    (denseflow_tree / "class_left" / "v_left" / "flow_x_00002.jpg").write_bytes(bytes(header))
    done = run([*FLOWPREP, "import-rawframes", denseflow_tree, "--out", tmp_path / "imported", "--workers", "2"])
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "1 imported now" in done.stdout and "2 failed" in done.stdout
    reasons = {f.video_id: f.reason for f in ExtractionFolder(tmp_path / "imported").read_failures()}
    assert reasons["v_down"].endswith("img_00003.jpg: an empty file (0 bytes), not an image")
    assert "flow_x_00002.jpg: does not decode as an image" in reasons["v_left"]


def test_frame_folders_and_images_linked_out_of_the_tree_need_follow_symlinks(jpeg_extraction, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    export_rawframes(jpeg_extraction, elsewhere, config=ExportConfig(backward=False))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "right").symlink_to(elsewhere / "right", target_is_directory=True)  # a whole video elsewhere
    shutil.copytree(elsewhere / "down", tree / "down")
    (tree / "down" / "img_00002.jpg").unlink()
    (tree / "down" / "img_00002.jpg").symlink_to(elsewhere / "down" / "img_00002.jpg")  # one image elsewhere
    shutil.copytree(elsewhere / "left", tree / "left")
    status, stdout, _ = flowprep(capsys, "import-rawframes", tree, "--out", tmp_path / "refused", "--workers", "1")
    assert status == 3 and "3 found, 1 imported now" in stdout and "2 failed" in stdout
    reasons = {f.video_id: f.reason for f in ExtractionFolder(tmp_path / "refused").read_failures()}
    assert "outside the rawframes tree" in reasons["right"] and "pass --follow-symlinks" in reasons["right"]
    assert "img_00002.jpg is a symlink to" in reasons["down"] and "pass --follow-symlinks" in reasons["down"]
    status, stdout, _ = flowprep(capsys, "import-rawframes", tree, "--out", tmp_path / "followed", "--workers", "1",
                                "--follow-symlinks")
    assert status == 0 and "3 imported now" in stdout


def test_a_round_trip_says_how_many_videos_no_list_holds_and_why(tmp_path, capsys):
    manifest = make_videos(tmp_path / "videos", MOTIONS)
    rows = manifest.read_text().splitlines()
    # 'down' in neither train nor test: in no annotation list
    manifest.write_text("\n".join(r.rsplit(",", 1)[0] + ",unused" if r.startswith("down,") else r for r in rows) + "\n")
    extraction = extract(manifest, tmp_path / "extracted")
    status, _, err = flowprep(capsys, "export-rawframes", extraction, "--out", tmp_path / "tree", "--workers", "1")
    assert status == 0, err
    status, stdout, _ = flowprep(capsys, "import-rawframes", tmp_path / "tree", "--out", tmp_path / "back",
                                "--workers", "1")
    assert status == 0 and "2 found, 2 imported now" in stdout
    assert "left out: 1 video folder(s) of the tree are in none of these lists" in stdout and "'unused'" in stdout \
        and "e.g. down" in stdout, stdout
