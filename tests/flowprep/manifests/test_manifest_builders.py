"""Manifest builders against the real official split lists (counts must be the official ones),
malformed copies of them, folder trees, Kinetics CSVs, and `flowprep manifest check`."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from flowprep.format.manifest import read_manifest
from flowprep.manifests.folder import build_folder_manifest, stratified_split
from flowprep.manifests.kinetics import KineticsError, build_kinetics, check_template, parse_kinetics_csv
from flowprep.manifests.official import SplitListError, hmdb51_manifest, read_split_files, split_counts, ucf101_manifest
from tests.conftest import REPO
from tests.support.cli import flowprep
from tests.support.videos import moving_square_frames, write_video

UCF101_COUNTS = {"split1": (9537, 3783), "split2": (9586, 3734), "split3": (9624, 3696)}


@pytest.fixture(scope="module")
def ucf_dir(shared_data) -> Path:
    return shared_data / "splits" / "ucf101"


@pytest.fixture(scope="module")
def hmdb_dir(shared_data) -> Path:
    return shared_data / "splits" / "hmdb51"


@pytest.fixture(scope="module")
def ucf101(ucf_dir):
    return ucf101_manifest(ucf_dir)


@pytest.fixture(scope="module")
def hmdb51(hmdb_dir):
    return hmdb51_manifest(hmdb_dir)


# --- the official lists -------------------------------------------------------------------------
def test_ucf101_has_the_official_counts(ucf101):
    assert len(ucf101) == 13320
    assert len({e.video_id for e in ucf101}) == 13320
    assert len({e.label for e in ucf101}) == 101 and {e.label for e in ucf101} == set(range(101))
    counts = split_counts(ucf101)
    for column, (train, test) in UCF101_COUNTS.items():
        assert counts[column] == {"train": train, "test": test, "unused": 0}


def test_ucf101_labels_follow_classind_and_paths_keep_the_official_layout(ucf101, ucf_dir):
    assert b"\r\n" in (ucf_dir / "trainlist01.txt").read_bytes()  # the CRLF quirk is really exercised
    by_id = {e.video_id: e for e in ucf101}
    first = by_id["v_ApplyEyeMakeup_g08_c01"]
    assert (first.label, first.label_name, first.path) == (0, "ApplyEyeMakeup", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    assert by_id["v_YoYo_g25_c05"].label == 100
    # the folder is HandstandPushups (class 37 in classInd, 36 0-based), the files HandStandPushups
    quirk = by_id["v_HandStandPushups_g01_c01"]
    assert quirk.path == "HandstandPushups/v_HandStandPushups_g01_c01.avi"
    assert (quirk.label, quirk.label_name) == (36, "HandstandPushups")
    assert quirk.splits_dict == {"split1": "test", "split2": "train", "split3": "train"}
    assert sum(e.label_name == "HandstandPushups" for e in ucf101) == sum(
        "HandstandPushups/" in line for line in (ucf_dir / "trainlist01.txt").read_text().splitlines()
        + (ucf_dir / "testlist01.txt").read_text().splitlines())


def test_hmdb51_has_the_official_counts(hmdb51):
    assert len(hmdb51) == 6766 and len({e.video_id for e in hmdb51}) == 6766
    assert {e.label for e in hmdb51} == set(range(51))
    for column in ("split1", "split2", "split3"):
        assert split_counts(hmdb51)[column] == {"train": 3570, "test": 1530, "unused": 1666}


def test_hmdb51_labels_are_sorted_class_names_and_trailing_spaces_are_harmless(hmdb51, hmdb_dir):
    assert (hmdb_dir / "brush_hair_test_split1.txt").read_text().splitlines()[0].endswith(" ")
    names = sorted({e.label_name for e in hmdb51})
    assert all(e.label == names.index(e.label_name) for e in hmdb51)
    clip = next(e for e in hmdb51 if e.video_id == "April_09_brush_hair_u_nm_np1_ba_goo_0")
    assert clip.path == "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
    assert clip.splits_dict == {"split1": "train", "split2": "train", "split3": "test"}


@pytest.mark.parametrize("name,build", [("ucf101", "ucf101"), ("hmdb51", "hmdb51")])
def test_shipped_manifests_are_what_the_builder_makes(name, build, request):
    # data_manifests/ is rebuilt with `make manifests`; this keeps the committed files honest
    assert read_manifest(REPO / "data_manifests" / f"{name}.csv") == request.getfixturevalue(build)


def test_cli_builds_a_manifest_that_read_manifest_accepts(ucf_dir, tmp_path, capsys):
    status, out, _ = flowprep(capsys, "manifest", "ucf101", "--splits-dir", ucf_dir, "--out", tmp_path / "u.csv")
    assert status == 0
    assert "13320 videos, 101 classes" in out and "split1: 9537 train / 3783 test / 0 unused" in out
    assert len(read_manifest(tmp_path / "u.csv")) == 13320


# --- malformed lists ----------------------------------------------------------------------------
def damaged_copy(src: Path, dst: Path, name: str, edit) -> Path:
    """A copy of the split folder with `name`'s lines changed by edit(lines) (CRLF kept)."""
    shutil.copytree(src, dst)
    raw = (dst / name).read_bytes().decode()
    newline = "\r\n" if "\r\n" in raw else "\n"
    lines = raw.split(newline)
    edit(lines)
    (dst / name).write_bytes(newline.join(lines).encode())
    return dst


@pytest.mark.parametrize("name,edit,message", [
    ("testlist01.txt", lambda lines: lines.__setitem__(4, "NoSuchClass/v_NoSuchClass_g01_c01.avi"),
     "testlist01.txt line 5: unknown class 'NoSuchClass'"),
    ("trainlist02.txt", lambda lines: lines.__setitem__(9, lines[2]),
     "trainlist02.txt line 10: duplicate video 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c03.avi', already on line 3"),
    ("trainlist01.txt", lambda lines: lines.__setitem__(6, lines[6] + " extra"),
     "trainlist01.txt line 7: 3 columns, expected 2 (path label)"),
    ("trainlist01.txt", lambda lines: lines.__setitem__(0, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 7"),
     "trainlist01.txt line 1: label '7', but class 'ApplyEyeMakeup' is 1"),
    ("classInd.txt", lambda lines: lines.__setitem__(2, "4 Archery"),
     "classInd.txt line 3: class index '4', expected 3"),
])
def test_malformed_ucf101_lists_give_line_numbered_errors(ucf_dir, tmp_path, name, edit, message):
    folder = damaged_copy(ucf_dir, tmp_path / "lists", name, edit)
    with pytest.raises(SplitListError) as err:
        ucf101_manifest(folder)
    assert message in str(err.value) and str(folder / name) in str(err.value)


def test_a_video_in_both_train_and_test_of_a_split_is_refused(ucf_dir, tmp_path):
    folder = damaged_copy(ucf_dir, tmp_path / "lists", "testlist03.txt",
                          lambda lines: lines.__setitem__(0, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"))
    with pytest.raises(SplitListError, match=r"testlist03.txt line 1: video .* is also in trainlist03.txt"):
        ucf101_manifest(folder)


@pytest.mark.parametrize("edit,message", [
    (lambda lines: lines.__setitem__(3, lines[3].split()[0] + " 5 "), "line 4: code '5'"),
    (lambda lines: lines.__setitem__(3, lines[0]), "line 4: duplicate video"),
    (lambda lines: lines.__setitem__(3, lines[3].replace(".avi ", ".avi 1 ")), "line 4: 3 columns, expected 2"),
])
def test_malformed_hmdb51_files_give_line_numbered_errors(hmdb_dir, tmp_path, edit, message):
    folder = damaged_copy(hmdb_dir, tmp_path / "lists", "brush_hair_test_split1.txt", edit)
    with pytest.raises(SplitListError, match=message) as err:
        hmdb51_manifest(folder)
    assert "brush_hair_test_split1.txt" in str(err.value)


def test_hmdb51_needs_every_split_file_of_a_class(hmdb_dir, tmp_path):
    shutil.copytree(hmdb_dir, tmp_path / "lists")
    (tmp_path / "lists" / "wave_test_split2.txt").unlink()
    with pytest.raises(SplitListError, match="wave_test_split2.txt is missing"):
        hmdb51_manifest(tmp_path / "lists")


def test_hmdb51_clip_names_shared_by_two_classes_get_class_qualified_ids(hmdb_dir):
    texts = {n: t for n, t in read_split_files(hmdb_dir).items() if n.startswith(("wave_", "smile_"))}
    clip = texts["wave_test_split1.txt"].split()[0]
    for k in (1, 2, 3):  # the same clip name under smile too
        texts[f"smile_test_split{k}.txt"] += f"{clip} 1 \n"
    from flowprep.manifests.official import build_hmdb51
    entries = build_hmdb51(texts)
    stem = clip[:-4]
    ids = {e.label_name: e.video_id for e in entries if e.path.endswith("/" + clip)}
    assert ids == {"wave": f"wave__{stem}", "smile": f"smile__{stem}"}
    assert len({e.video_id for e in entries}) == len(entries)


def test_missing_official_file_is_named(ucf_dir, tmp_path):
    shutil.copytree(ucf_dir, tmp_path / "lists")
    (tmp_path / "lists" / "testlist02.txt").unlink()
    with pytest.raises(SplitListError, match=r"testlist02.txt is missing; the official lists are classInd.txt"):
        ucf101_manifest(tmp_path / "lists")


# --- folder trees -------------------------------------------------------------------------------
def test_folder_split_is_stratified_seeded_and_reproducible():
    per_class = {"a": [f"a/{i:02d}.mp4" for i in range(10)], "b": [f"b/{i}.mp4" for i in range(5)], "c": ["c/only.mp4"]}
    parts = stratified_split(per_class, 0.3, seed=1)
    test_per_class = {cls: sum(parts[p] == "test" for p in paths) for cls, paths in per_class.items()}
    assert test_per_class == {"a": 3, "b": 2, "c": 0}  # round(3.0), round(1.5) = 2, and one video stays in train
    assert stratified_split(per_class, 0.3, seed=1) == parts
    assert any(stratified_split(per_class, 0.3, seed=s) != parts for s in range(2, 6))


def test_folder_cli_builds_labels_from_sorted_class_folders(tmp_path, capsys):
    root = tmp_path / "videos"
    for cls, n in (("walk", 4), ("jump", 3)):
        (root / cls / "sub").mkdir(parents=True)
        for i in range(n):
            (root / cls / ("sub" if i == 0 else "") / f"clip{i}.mp4").write_bytes(b"x")
    (root / "jump" / "notes.txt").write_text("not a video")
    status, out, _ = flowprep(capsys, "manifest", "folder", root, "--out", tmp_path / "m.csv", "--seed", "3")
    assert status == 0, out
    entries = read_manifest(tmp_path / "m.csv")
    assert {(e.label, e.label_name) for e in entries} == {(0, "jump"), (1, "walk")}
    # paths start from the manifest's folder, which holds the video folder: readers need no --video-root
    assert sorted(e.path for e in entries if e.label_name == "jump") == [
        "videos/jump/clip1.mp4", "videos/jump/clip2.mp4", "videos/jump/sub/clip0.mp4"]
    # clip1 exists in both classes: ids fall back to the path so they stay unique
    assert {e.video_id for e in entries} >= {"jump__clip1", "walk__clip1"}
    status, _, err = flowprep(capsys, "manifest", "folder", root, "--out", tmp_path / "m.csv", "--test-fraction", "1.5")
    assert status == 2 and "test fraction must be in [0, 1), got 1.5" in err


def test_folder_ids_fall_back_to_paths_only_where_stems_collide():
    entries = build_folder_manifest({"a": ["a/x.mp4", "a/y.mp4"], "b": ["b/x.avi"]}, 0.5, 0)
    assert [e.video_id for e in entries] == ["a__x", "y", "b__x"]


# --- Kinetics -----------------------------------------------------------------------------------
KINETICS_CSV = """label,youtube_id,time_start,time_end,split,is_cc
abseiling,--GkrdYZ9Tc,0,10,train,0
air drumming,-VtLx-mcPds,14,24,train,0
abseiling,0347ZoDXyP0,102,112,validate,0
air drumming,zzz_111,5,15,test,0
"""


def test_kinetics_rows_become_entries_with_sorted_labels_and_crawler_paths():
    entries = build_kinetics(parse_kinetics_csv(KINETICS_CSV, "k.csv"))
    by_id = {e.video_id: e for e in entries}
    assert set(by_id) == {"--GkrdYZ9Tc_000000_000010", "-VtLx-mcPds_000014_000024", "0347ZoDXyP0_000102_000112",
                          "zzz_111_000005_000015"}
    e = by_id["-VtLx-mcPds_000014_000024"]
    assert (e.label, e.label_name, e.path) == (1, "air drumming", "air drumming/-VtLx-mcPds_000014_000024.mp4")
    assert [by_id[i].splits_dict["split1"] for i in sorted(by_id)] == ["train", "train", "test", "unused"]
    custom = build_kinetics(parse_kinetics_csv(KINETICS_CSV, "k.csv"), "{split}/{label_dir}/{youtube_id}.mp4")
    assert {e.path for e in custom} >= {"train/air_drumming/-VtLx-mcPds.mp4"}


@pytest.mark.parametrize("text,message", [
    ("label,youtube_id,time_start\nx,y,1\n", "k.csv line 1: header lacks time_end, split"),
    (KINETICS_CSV + "abseiling,abc,1,2\n", "k.csv line 6: 4 columns, header has 6"),
    (KINETICS_CSV + "abseiling,abc,1,2,holdout,0\n", "k.csv line 6: split 'holdout'; accepted: train, validate, val, test"),
    (KINETICS_CSV + "abseiling,abc,soon,2,train,0\n", "k.csv line 6: time_start 'soon' is not a whole number"),
    (KINETICS_CSV + "abseiling,--GkrdYZ9Tc,0,10,validate,0\n", "k.csv line 6: duplicate clip '--GkrdYZ9Tc_000000_000010', already at k.csv line 2"),
])
def test_malformed_kinetics_csv_gives_line_numbered_errors(text, message):
    with pytest.raises(KineticsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_kinetics(parse_kinetics_csv(text, "k.csv"))


def test_kinetics_template_with_an_unknown_field_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown field \{youtube\}.*accepted: label, label_dir"):
        check_template("{label}/{youtube}.mp4")
    (tmp_path / "k.csv").write_text(KINETICS_CSV)
    status, _, err = flowprep(capsys, "manifest", "kinetics", tmp_path / "k.csv", "--out", tmp_path / "m.csv",
                             "--path-template", "{clip}.mp4")
    assert status == 2 and err.count("\n") == 1 and "unknown field {clip}" in err


@pytest.mark.parametrize("template, problem", [
    ("../k400/{label_dir}/{youtube_id}.mp4", "leaves the video root with '..'"),
    ("/data/k400/{youtube_id}.mp4", "is absolute"),
])
def test_kinetics_template_giving_a_path_outside_the_video_root_is_refused(template, problem):
    """A manifest with such paths is refused by every reader, so the builder refuses to write it."""
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_template(template)


# --- manifest check -----------------------------------------------------------------------------
def test_check_reports_missing_and_unreadable_videos(shared_data, tmp_path, capsys):
    clips = shared_data / "clips"
    write_video(tmp_path / "good.avi", moving_square_frames(4, 64, 48))
    (tmp_path / "notes.avi").write_text("not a video\n" * 20)
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "real.avi").symlink_to(clips / "hmdb51" / "wave" / "TrumanShow_wave_f_nm_np1_fr_med_26.avi")
    (tmp_path / "m.csv").write_text(
        "video_id,path,label\n"
        "real,real.avi,0\ngood,good.avi,0\nnotes,notes.avi,1\nempty,empty.avi,1\nghost,ghost.avi,1\n")
    status, out, _ = flowprep(capsys, "manifest", "check", tmp_path / "m.csv")
    assert status == 3
    assert "5 videos: 2 ok, 1 missing, 2 unreadable" in out
    assert "missing: ghost: file not found" in out
    assert "unreadable: notes: not a readable video" in out and "unreadable: empty: empty file" in out
    # all well: exit 0
    (tmp_path / "ok.csv").write_text("video_id,path,label\nreal,real.avi,0\ngood,good.avi,0\n")
    status, out, _ = flowprep(capsys, "manifest", "check", tmp_path / "ok.csv", "--full", "--json")
    assert status == 0 and '"missing": 0' in out


def test_check_finds_truncation_only_when_decoding_fully(tmp_path, capsys):
    long = write_video(tmp_path / "long.avi", moving_square_frames(60, 64, 48, velocity=(0, 0)), fourcc="MJPG")
    (tmp_path / "cut.avi").write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    (tmp_path / "m.csv").write_text("video_id,path,label\ncut,cut.avi,0\n")
    assert flowprep(capsys, "manifest", "check", tmp_path / "m.csv")[0] == 0
    status, out, _ = flowprep(capsys, "manifest", "check", tmp_path / "m.csv", "--full")
    assert status == 3 and "unreadable: cut: truncated" in out
