"""Links, FIFOs and devices planted inside a folder the tool writes (issue 30, items 1-4): every
file the tool creates, replaces or deletes in its folders is a regular file or absent, never
followed through a link; every reader refuses a FIFO at once instead of waiting for a writer; an
--out that overlaps its input folder is refused (twostream's runs: tests/twostream/engine/
test_run_out_overlap.py). Each case checks a canary outside the folder."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from runkit.files import NotRegularFileError, open_for_writing, open_regular, write_text_atomic
from runkit.safe_paths import overlap_problem
from tests.support.cli import FLOWPREP, flowprep, run
from tests.support.extraction import extract
from tests.support.videos import HEIGHT, WIDTH, make_videos

CANARY = b"outside the folder: must never change\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny extraction (2 videos, Farneback) and its manifest."""
    root = tmp_path_factory.mktemp("planted")
    manifest = make_videos(root / "videos", {"right": (2, 0), "down": (0, 2)})
    return manifest, extract(manifest, root / "extraction")


@pytest.fixture
def copied(finished, tmp_path):
    """A copy of the extraction (as from another lab), a canary file and folder beside it."""
    manifest, source = finished
    folder = tmp_path / "copy"
    shutil.copytree(source, folder, symlinks=True)
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.h5.part").write_bytes(CANARY)
    return manifest, folder, canary, outside


def extract_again(capsys, manifest, folder):
    return flowprep(capsys, "extract", "--manifest", manifest, "--out", folder, "--flow", "farneback",
                   "--size", f"{WIDTH}x{HEIGHT}", "--workers", "1")


@pytest.mark.parametrize("planted", ["index.json.tmp", "config.json.tmp", "failures.jsonl.tmp"])
def test_a_temporary_file_linked_outside_is_refused_and_the_target_is_untouched(capsys, copied, planted):
    manifest, folder, canary, _ = copied
    (folder / planted).symlink_to(canary)
    code, _, err = extract_again(capsys, manifest, folder)
    assert canary.read_bytes() == CANARY
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert planted in last and "symbolic link" in last, last


def test_a_dangling_lock_link_creates_nothing_outside(capsys, copied, tmp_path):
    manifest, folder, _, _ = copied
    target = tmp_path / "created-outside"
    (folder / ".flowprep.lock").unlink(missing_ok=True)
    (folder / ".flowprep.lock").symlink_to(target)
    code, _, err = extract_again(capsys, manifest, folder)
    assert not os.path.lexists(target)
    assert code == 2 and ".flowprep.lock" in err and "symbolic link" in err, err


def test_a_staging_folder_linked_outside_has_nothing_deleted_there(capsys, copied):
    manifest, folder, _, outside = copied
    shutil.rmtree(folder / "staging", ignore_errors=True)
    (folder / "staging").symlink_to(outside, target_is_directory=True)
    code, _, err = extract_again(capsys, manifest, folder)
    assert (outside / "keep.h5.part").read_bytes() == CANARY
    assert sorted(p.name for p in outside.iterdir()) == ["keep.h5.part"]
    assert code == 2 and "staging" in err and "symbolic link" in err, err


def test_the_same_run_without_planted_links_still_resumes(capsys, copied):
    manifest, folder, _, _ = copied
    code, _, err = extract_again(capsys, manifest, folder)
    assert code == 0, err


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device"])
def test_a_file_out_replaces_only_a_regular_file(capsys, tmp_path, finished, kind):
    """`manifest folder --out X` over a link, a FIFO or a device node (as root: /dev/null was
    replaced by a regular file before) leaves it as it was."""
    manifest, _ = finished
    out = tmp_path / "manifest.csv"
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    if kind == "symlink":
        out.symlink_to(canary)
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        try:
            os.mknod(out, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        except PermissionError:
            pytest.skip("creating a device node needs root")
    before = os.lstat(out)
    classes = tmp_path / "videos"
    (classes / "walk").mkdir(parents=True)
    shutil.copy(manifest.parent / "right.avi", classes / "walk" / "a.avi")
    code, _, err = flowprep(capsys, "manifest", "folder", classes, "--out", out)
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert canary.read_bytes() == CANARY
    assert code == 2 and "not a regular file" in err, err


def test_writers_never_follow_a_link_and_readers_never_wait_on_a_fifo(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    link = tmp_path / "link"
    link.symlink_to(canary)
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        write_text_atomic(link, "x")
    (tmp_path / "data.json.tmp").symlink_to(canary)
    with pytest.raises(NotRegularFileError, match="data.json.tmp"):
        write_text_atomic(tmp_path / "data.json", "x")
    with pytest.raises(NotRegularFileError):
        open_for_writing(link)
    assert canary.read_bytes() == CANARY
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError, match="FIFO"):
        open_regular(fifo)  # returns at once: O_NONBLOCK, then fstat
    write_text_atomic(tmp_path / "plain.json", "{}")  # the ordinary case still works
    assert (tmp_path / "plain.json").read_text() == "{}"


# (inspect's, verify's) exit status with a FIFO in place of each file; None: it is not theirs to read
FIFO_EXITS = {".flowprep.lock": (0, 0),  # a FIFO is no run's lock: the folder reads as usual
              "index.json": (0, 3),  # inspect counts the shards themselves and says why the index was not read
              "config.json": (0, 3),  # inspect shows the config as unreadable, naming why
              "failures.jsonl": (2, None)}


@pytest.mark.parametrize("name", sorted(FIFO_EXITS))
def test_a_fifo_in_an_extraction_never_hangs_its_readers(finished, tmp_path, name):
    """inspect and verify (and train's in-use probe) on a folder with a FIFO in place of one of its
    files: an answer within the time limit, naming the FIFO, never a hang (before: both hung)."""
    _, source = finished
    folder = tmp_path / "copy"
    shutil.copytree(source, folder)
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)
    for command, expected in zip(("inspect", "verify"), FIFO_EXITS[name]):
        done = run([*FLOWPREP, command, folder], timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        if expected is not None:
            assert done.returncode == expected, (command, done.stdout, done.stderr)
        if expected not in (0, None) or command == "inspect" and name != ".flowprep.lock":
            assert "FIFO" in done.stdout + done.stderr, (command, done.stdout, done.stderr)


def test_an_out_that_overlaps_its_input_folder_is_named(tmp_path):
    extraction = tmp_path / "ex"
    (extraction / "sub").mkdir(parents=True)
    assert "is the extraction" in overlap_problem(extraction, extraction, "the extraction")
    assert "lies inside" in overlap_problem(extraction / "sub", extraction, "the extraction")
    assert "contains" in overlap_problem(tmp_path, extraction, "the extraction")
    assert overlap_problem(tmp_path / "runs", extraction, "the extraction") is None
    (tmp_path / "alias").symlink_to(extraction)
    assert "is the extraction" in overlap_problem(tmp_path / "alias", extraction, "the extraction")


def test_an_image_that_is_a_fifo_is_a_failure_of_its_video_not_a_hang(finished, tmp_path):
    """import-rawframes with a FIFO named like a frame (before: the import hung for ever)."""
    _, source = finished
    tree = tmp_path / "tree"
    run([*FLOWPREP, "export-rawframes", source, "--out", tree], check=True, timeout=120)
    frame = tree / "right" / "img_00001.jpg"
    frame.unlink()
    os.mkfifo(frame)
    done = run([*FLOWPREP, "import-rawframes", tree, "--out", tmp_path / "imported", "--workers", "1"], timeout=120)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    failures = (tmp_path / "imported" / "failures.jsonl").read_text()
    assert "img_00001.jpg" in failures and "FIFO" in failures, failures
