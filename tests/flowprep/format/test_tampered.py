"""Folders from elsewhere are input (issue 19): names from a folder never become paths outside it
or reach the terminal raw, links in shards are not followed, FIFOs are not opened, shards of
another extraction are refused, malformed JSON and configs are one-line errors: a sample of
tests/support/reliability/tampered.py (`make bench-reliability` runs every scenario), and the
rules themselves in-process. Checkpoints from elsewhere: tests/twostream/core/test_mismatched_checkpoints.py."""
from __future__ import annotations

import json
import os

import h5py
import pytest

from flowprep.extract.config import ExtractConfig
from flowprep.extract.staged_run import ShardPacker
from flowprep.format.folder import ExtractionFolder, staged_video_id, staging_path
from flowprep.format.manifest import ManifestError, read_manifest
from flowprep.format.names import check_video_id
from flowprep.format.shards import ShardFormatError, open_shard, video_reader
from flowprep.rawframes.export import export_rawframes
from flowprep.rawframes.layout import RawframesError
from runkit.safe_paths import RootGuard
from tests.support.reliability import assert_held, tampered
from tests.support.synthetic import moving_video, write_extraction, write_staged


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["a video group named '..'", "'../victim' as an id in index.json only",
                                  "a FIFO named as a shard", "a shard of another extraction"])
def test_a_tampered_folder_is_refused_in_one_line_and_nothing_outside_out_changes(tampered_work, kind):
    assert_held([tampered.tampered_folder(tampered_work, kind)])


@pytest.fixture
def folder(tmp_path):
    videos = [moving_video(f"v{i}", i % 2, seed=i, width=32, height=24, frames=4) for i in range(3)]
    return write_extraction(tmp_path / "folder", videos)


def test_export_writes_and_deletes_nothing_outside_its_out(folder, tmp_path):
    victim = tmp_path / "victim.part"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    tampered.edit_index(folder, lambda v: v.update({"../victim": v.pop("v0")}))
    with pytest.raises(ShardFormatError, match=r"index.json: refused: video_id '\.\./victim'"):
        export_rawframes(folder, tmp_path / "out")
    assert (victim / "keep.txt").exists() and not (tmp_path / "out").exists()


def test_export_refuses_an_out_whose_video_folder_is_a_symlink_out_of_it(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "v1").symlink_to(elsewhere)
    with pytest.raises(RawframesError, match="outside"):
        export_rawframes(folder, out)
    assert list(elsewhere.iterdir()) == []


def test_links_in_a_shard_are_never_followed(folder, tmp_path):
    shard = tampered.first_shard(folder)
    other = tmp_path / "other.h5"
    write_extraction(tmp_path / "other", [moving_video("x", 0, seed=9, width=32, height=24, frames=4)])
    os.replace(tampered.first_shard(tmp_path / "other"), other)
    with h5py.File(shard, "a") as f:
        f["videos"]["soft"] = h5py.SoftLink("/videos/v1")
        f["videos"]["external"] = h5py.ExternalLink(str(other), "/videos/x")
        f["videos"]["v2"]["rgb_link"] = h5py.ExternalLink(str(other), "/videos/x/rgb")
    with open_shard(shard) as f:
        for video_id in ("soft", "external", "v2"):
            with pytest.raises(ShardFormatError, match="link"):
                video_reader(f, video_id)
        video_reader(f, "v1")  # the others read as before


def test_failure_records_of_a_folder_from_elsewhere_are_read_escaped(folder):
    (folder / "failures.jsonl").write_text(json.dumps({"video_id": "v\x1b[2J", "path": "p\nq", "reason": "r",
                                                       "time": "t"}) + "\n")
    (failure,) = ExtractionFolder(folder).read_failures()
    assert (failure.video_id, failure.path) == ("v\\x1b[2J", "p\\nq")


def test_a_fifo_is_never_opened_as_a_shard(tmp_path):
    os.mkfifo(tmp_path / "shard-00000.h5")
    with pytest.raises(ShardFormatError, match="FIFO"):
        open_shard(tmp_path / "shard-00000.h5")  # before the fix: h5py waits for a writer forever


def test_index_and_config_json_nested_deeply_or_of_wrong_types_are_one_line_errors(folder):
    good_index = (folder / "index.json").read_text()
    (folder / "index.json").write_text('{"format_version": 1, "videos": ' + tampered.nested() + "}")
    with pytest.raises(ShardFormatError, match="index.json: unreadable dataset index: nested too deeply"):
        ExtractionFolder(folder).read_index()
    (folder / "index.json").write_text(good_index)
    tampered.edit_index(folder, lambda v: v["v1"].update(num_frames="4"))
    with pytest.raises(ShardFormatError, match="num_frames '4' is not an integer in 0..10,000,000"):
        ExtractionFolder(folder).read_index()
    config = json.loads((folder / "config.json").read_text())
    for key, value in (("width", "112"), ("height", [112])):
        (folder / "config.json").write_text(json.dumps({**config, "extract": {**config["extract"], key: value}}))
        with pytest.raises(ShardFormatError, match=f"config.json: unreadable extraction config: {key} is"):
            ExtractionFolder(folder).read_config()


def test_a_shard_of_another_extraction_is_refused_where_the_folder_is_read(folder, tmp_path):
    other = write_extraction(tmp_path / "other", [moving_video("w", 0, seed=5, width=40, height=24, frames=4)])
    os.replace(tampered.first_shard(other), folder / "shard-00009.h5")
    with pytest.raises(ShardFormatError, match=r"shard-00009.h5 was made with another config .*width: 32 -> 40"):
        ExtractionFolder(folder).scan_shards()  # what a resumed run indexes
    ExtractionFolder(folder).check_shards(["shard-00000.h5"])  # its own shards still pass


def test_a_staging_file_of_another_extraction_or_video_is_refused_when_packed(tmp_path):
    """A file dropped into staging/ was copied into the folder's next shard as it was (another
    config's frames, or a video other than its name says, under the folder's config)."""
    folder = ExtractionFolder(write_extraction(tmp_path / "ex", [moving_video("a", 0)]))
    own = ExtractConfig(flow_method="farneback", width=40, height=32, rgb_codec="raw", flow_codec="raw").to_json()
    other = ExtractConfig(flow_method="farneback", width=40, height=32, bound=10.0, rgb_codec="raw",
                          flow_codec="raw").to_json()
    folder.staging_dir.mkdir()
    foreign = write_staged(folder.staging_dir, moving_video("b", 1), "raw", 10.0, other)
    renamed = write_staged(folder.staging_dir, moving_video("c", 1), "raw", 20.0, own)
    misnamed = renamed.rename(staging_path(folder.staging_dir, "d"))
    good = write_staged(folder.staging_dir, moving_video("e", 0), "raw", 20.0, own)
    for staged, why in ((foreign, r"was made with another config .*bound"),
                        (misnamed, r"holds the videos \['c'\], not the one its name says")):
        packer = ShardPacker(folder, own, 1.0, index={}, note=lambda line: None)
        with pytest.raises(ShardFormatError, match=rf"staging/{staged.name} {why}.*: not this folder's staging file"):
            packer.add(staged)
        assert folder.shard_paths() == [folder.root / "shard-00000.h5"]  # nothing packed, nothing left half-written
        assert not list(folder.root.glob("*.part"))
    ShardPacker(folder, own, 1.0, index={}, note=lambda line: None).add(good)  # the folder's own packs
    with open_shard(folder.root / "shard-00001.h5") as f:
        assert video_reader(f, "e").attrs.num_frames == 8


def test_staging_files_are_named_by_the_id_rule_both_ways(tmp_path):
    """One owner names staging files and reads their ids back: a file in staging/ whose name is
    not an id (`.h5`, a control character) is refused naming it, not resumed as a video."""
    staging = ExtractionFolder(tmp_path).staging_dir
    assert staged_video_id(staging_path(staging, "v_Walk_g01_c01")) == "v_Walk_g01_c01"
    for name in (".h5", "..h5", "a\x1bb.h5", "notes.txt"):
        with pytest.raises(ShardFormatError, match="not a staging file's name"):
            staged_video_id(staging / name)


@pytest.mark.parametrize("video_id", ["v\x1b[31m", "a\nb", "a\rb", "\u202eevil", "..", "/abs", "a/b"])
def test_the_one_id_rule_refuses_control_characters_and_separators(tmp_path, video_id):
    assert check_video_id(video_id) is not None
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        fh.write('video_id,path,label\n"' + video_id + '",v.avi,0\n')
    with pytest.raises(ManifestError, match="line 2: video_id") as caught:
        read_manifest(manifest)
    assert not any(c in str(caught.value) for c in "\x1b\n\r\u202e")  # shown escaped


def test_a_video_symlink_out_of_the_root_is_found(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside.avi").write_bytes(b"x")
    (root / "real.avi").write_bytes(b"x")
    (root / "out.avi").symlink_to(tmp_path / "outside.avi")
    (root / "in.avi").symlink_to(root / "real.avi")
    (tmp_path / "outdir").mkdir()
    (root / "sub" / "far").symlink_to(tmp_path / "outdir")
    guard = RootGuard(root)
    assert guard.outside(root / "out.avi") == str(tmp_path / "outside.avi")
    assert guard.outside(root / "sub" / "far" / "v.avi") == str(tmp_path / "outdir" / "v.avi")
    assert guard.outside(root / "in.avi") is None and guard.outside(root / "real.avi") is None


@pytest.mark.slow
def test_a_video_symlink_out_of_the_root_is_a_failure_unless_followed(tampered_work):
    assert_held(tampered.video_symlinks(tampered_work))
