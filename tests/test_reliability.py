"""A sample of the reliability suite (tests/support/reliability/), on every `make test`: kill
-9 of an extraction at moments of each kind of write, a full disk, kill -9 of training during a
checkpoint write, training on a running extraction, damaged shards, and every bad video, manifest
and argument. `make bench-reliability` runs the whole sweep and puts its counts in docs/reliability.md;
the Dask worker and device out-of-memory scenarios run in tests/flowprep/extract (test_scale_out,
test_batched) as well."""
from __future__ import annotations

import pytest

from flowprep.format.folder import ExtractionFolder
from tests.support import reliability as r
from tests.support.synthetic import two_class_videos, write_extraction

pytestmark = pytest.mark.slow


def test_a_check_of_no_scenario_fails():
    """An empty list of records checked nothing (a sweep that ran no case): it fails, never passes."""
    with pytest.raises(AssertionError, match="no scenario was checked"):
        r.assert_held([])
    r.assert_held(r.Record("kind", "what", True))
    with pytest.raises(AssertionError, match="kind: what: why"):
        r.assert_held([r.Record("kind", "what", True), r.Record("kind", "what", False, "why")])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> r.Reference:
    """An uninterrupted extraction with lossless codecs: what every killed run must end equal to."""
    return r.reference_run(tmp_path_factory.mktemp("reliability"), lossless=True)


# one moment of each kind of write: a staging file, a shard's pack and its rename, the index, the clean-up
@pytest.mark.parametrize("point,count", [("staging-flush", 2), ("pack-copy", 2), ("pack-rename", 1),
                                         ("write:index.json", 2), ("staging-unlink", 1)])
def test_an_extraction_killed_at_a_write_ends_equal_to_an_uninterrupted_one(reference, tmp_path, point, count):
    assert (point, count) in r.EXTRACTION_POINTS  # the sweep covers what the sample does
    r.assert_held(r.extraction_kill(reference, tmp_path, point, count))


def test_a_full_disk_stops_the_run_in_one_line_and_the_same_command_finishes_it(reference, tmp_path):
    r.assert_held(r.disk_full(reference, tmp_path))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    videos = two_class_videos(8, 2, test_seed=20)
    return write_extraction(tmp_path_factory.mktemp("shards"), videos, codec="jpeg:95")


def test_training_killed_while_it_writes_a_checkpoint_resumes_to_the_same_weights(shards, tmp_path):
    baseline = tmp_path / "baseline"
    done = r.run(r.train_command(shards, baseline))
    assert done.returncode == 0, done.stderr[-2000:]
    r.assert_held(r.training_kill(shards, tmp_path, baseline / "checkpoint.pt", "checkpoint-write", 2))


def test_training_on_a_running_extraction_uses_what_is_complete_and_says_so(tmp_path):
    r.assert_held(r.training_during_extraction(tmp_path, cases=("single run",)))  # parts: in the sweep


def test_a_folder_that_is_not_whole_yet_says_why(reference, tmp_path):
    import shutil

    folder = tmp_path / "parts"
    (folder / "parts" / "part-00000-of-00003").mkdir(parents=True)
    shutil.copy(reference.out / "config.json", folder / "config.json")
    stopped = ExtractionFolder(folder / "parts" / "part-00000-of-00003")
    stopped.staging_dir.mkdir()
    (stopped.staging_dir / "v0.h5.part").write_bytes(b"")
    assert ExtractionFolder(folder).unfinished() == [
        f"the run into {stopped.root} stopped before it finished; the same command, run again, finishes it",
        f"{folder / 'parts'} lacks part(s) 1, 2 of 3"]
    assert ExtractionFolder(reference.out).unfinished() == []


@pytest.mark.parametrize("kind", ["corrupt frames", "another format version"])
def test_a_damaged_shard_is_named_by_verify_and_refused_by_train_and_evaluate(reference, tmp_path, kind):
    assert kind in r.DAMAGE
    r.assert_held(r.damaged_shards(reference.out, tmp_path, (kind,)))


def test_every_bad_video_is_a_failures_record_and_every_unusual_one_is_extracted(tmp_path):
    r.assert_held(r.bad_videos(tmp_path))


def test_every_bad_manifest_and_argument_is_one_line_naming_it(tmp_path):
    r.assert_held(r.bad_manifests(tmp_path) + r.bad_arguments(tmp_path))



@pytest.mark.parametrize("cause,expected", [
    (OSError(28, "No space left on device", "/data/out/shard-00003.h5.part"),
     "no space left on the device to write /data/out/shard-00003.h5.part; free space and run the same command"),
    (RuntimeError("Can't decrement id ref count (file write failed: time = Sun Nov 29 20:42:24 2026\n, filename = "
                  "'/data/out/staging/v3.h5.part', file descriptor = 6, errno = 28, error message = 'No space left on "
                  "device', buf = 0x55, total write size = 4760)"),
     "no space left on the device to write /data/out/staging/v3.h5.part; free space"),
    (OSError(122, "Disk quota exceeded"), "the disk quota is used up: cannot write /data/out; free space (or raise"),
    (OSError(27, "File too large"), "the file-size limit (ulimit -f) stops the writing of /data/out; raise it"),
])
def test_a_full_disk_is_one_line_naming_the_file_whoever_reports_it(cause, expected):
    from pathlib import Path

    from runkit.faults import disk_full, is_disk_full

    error = disk_full(Path("/data/out"), cause if isinstance(cause, OSError) else OSError(str(cause)))
    assert str(error).startswith(expected) and "\n" not in str(error) and is_disk_full(error)
