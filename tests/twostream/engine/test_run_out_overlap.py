"""A training run's or a fusion head's --out that overlaps its extraction or a streams run is
refused in one line before anything is read or written (issue 30, item 4; the file-safety rules
themselves: tests/runkit/test_planted_links.py)."""
from __future__ import annotations

import shutil

import pytest

from tests.support.cli import one_line_error
from tests.support.extraction import extract
from tests.support.videos import make_videos


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny extraction (2 videos, Farneback)."""
    root = tmp_path_factory.mktemp("overlap")
    return extract(make_videos(root / "videos", {"right": (2, 0), "down": (0, 2)}), root / "extraction")


@pytest.fixture
def folder(finished, tmp_path):
    """A copy of the extraction, in a folder of its own."""
    folder = tmp_path / "copy"
    shutil.copytree(finished, folder, symlinks=True)
    return folder


def test_training_into_its_own_extraction_is_refused_and_the_folder_is_unchanged(capsys, folder):
    config_before = (folder / "config.json").read_bytes()
    listing = sorted(p.name for p in folder.iterdir())
    line = one_line_error(capsys, "train", str(folder), "--stream", "spatial", "--out", str(folder),
                          "--epochs", "1", "--loader-workers", "0")
    assert "is the extraction" in line, line
    assert (folder / "config.json").read_bytes() == config_before
    assert sorted(p.name for p in folder.iterdir()) == listing
    line = one_line_error(capsys, "train", str(folder), "--stream", "spatial", "--out", str(folder / "run"),
                          "--epochs", "1", "--loader-workers", "0")
    assert "lies inside the extraction" in line, line


def test_a_fusion_head_into_the_extraction_or_a_streams_run_is_refused_before_anything_is_read(capsys, folder):
    """The check comes first: the stream checkpoints here are not even checkpoints."""
    runs = folder.parent / "runs"
    for stream in ("spatial", "temporal"):
        (runs / stream).mkdir(parents=True)
        (runs / stream / "checkpoint.pt").write_bytes(b"not read")
    config_before = (folder / "config.json").read_bytes()
    common = ("fuse-features", "train", str(folder), "--spatial", str(runs / "spatial"),
              "--temporal", str(runs / "temporal"))
    assert "is the extraction" in one_line_error(capsys, *common, "--out", str(folder))
    assert "is the spatial run" in one_line_error(capsys, *common, "--out", str(runs / "spatial"))
    assert (folder / "config.json").read_bytes() == config_before
