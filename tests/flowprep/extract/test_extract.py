"""End to end: synthetic videos with known motion and every kind of bad input, through
`flowprep extract`, into shards that are read back."""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from joblib import delayed

import runkit.lock as lock_module
import runkit.signals as signals
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.decode import VideoError, VideoInfo
from flowprep.extract.progress import Progress
from flowprep.extract.run import run_extract
from flowprep.extract.staged_run import Staging, pack_outcomes, process_outcomes
from flowprep.extract.video_job import VideoOutcome, frame_sampler
from flowprep.format.folder import ExtractionFolder, FolderError
from flowprep.format.shards import open_shard, video_reader
from runkit.lock import LOCK_FILE
from tests.support.cli import FLOWPREP, run
from tests.support.videos import moving_square_frames, square_box, write_video

MOTIONS = {"right": (2, 0), "down": (0, 2), "left": (-3, 0)}
FRAMES = 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three good videos (known motion) and one of each kind of bad input, with a manifest."""
    root = tmp_path_factory.mktemp("videos")
    rows = ["video_id,path,label,label_name,split1"]
    for label, (name, velocity) in enumerate(MOTIONS.items()):
        write_video(root / f"{name}.avi", moving_square_frames(FRAMES, velocity=velocity))
        rows.append(f"{name},{name}.avi,{label},{name},{'train' if label < 2 else 'test'}")
    long = write_video(root / "long.avi", moving_square_frames(60, velocity=(0, 0)), fourcc="MJPG")
    (root / "truncated.avi").write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    (root / "empty.avi").write_bytes(b"")
    (root / "notes.avi").write_text("this is not a video\n" * 50)
    write_video(root / "single.avi", moving_square_frames(1))
    for name in ("missing", "truncated", "empty", "notes", "single"):
        rows.append(f"{name},{name}.avi,0,right,train")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def extract_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "farneback",
            "--size", "128x96", "--workers", "2", *extra]


@pytest.fixture(scope="module")
def extracted(dataset, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("out") / "extraction"
    return out, run([*FLOWPREP, *extract_args(dataset, out)])


def test_some_failures_give_exit_status_3_and_a_summary(extracted):
    out, result = extracted
    assert result.returncode == 3, result.stderr
    assert "3 extracted now, 0 already done, 5 failed" in result.stdout
    assert "failures.jsonl" in result.stdout


def test_every_bad_input_has_a_one_line_reason(extracted):
    out, _ = extracted
    reasons = {f.video_id: f.reason for f in ExtractionFolder(out).read_failures()}
    assert set(reasons) == {"missing", "truncated", "empty", "notes", "single"}
    assert reasons["missing"].startswith("file not found")
    assert reasons["empty"].startswith("empty file")
    assert reasons["truncated"].startswith("truncated")
    assert reasons["notes"].startswith("not a readable video")
    assert reasons["single"].startswith("too short: 1 frame(s)")
    assert all("\n" not in r for r in reasons.values())


def test_shards_hold_frames_and_flow_with_the_right_sign_and_size(extracted, dataset):
    out, _ = extracted
    index = ExtractionFolder(out).read_index()
    assert set(index) == set(MOTIONS)
    for name, velocity in MOTIONS.items():
        entry = index[name]
        assert entry.num_frames == FRAMES and entry.label_name == name
        assert entry.splits == {"split1": "train" if entry.label < 2 else "test"}
        with open_shard(out / entry.shard) as f:
            video = video_reader(f, name)
            assert video.attrs.width == 128 and video.attrs.height == 96
            assert video.attrs.fps_source == pytest.approx(25.0)
            assert f[f"videos/{name}/rgb_offsets"].shape == (FRAMES + 1,)  # jpeg: FRAMES image files
            assert f[f"videos/{name}/flow_forward_offsets"].shape == (FRAMES - 1 + 1,)
            source = moving_square_frames(FRAMES, velocity=velocity)
            rgb = video.rgb(3)
            assert rgb.shape == (96, 128, 3) and np.abs(rgb.astype(int) - source[3][..., ::-1]).mean() < 2
            for t in (0, FRAMES - 2):
                rows, cols = square_box(t, velocity=velocity)
                forward = video.flow("forward", t, restore_mean=True)[rows, cols]
                np.testing.assert_allclose(np.median(forward.reshape(-1, 2), 0), velocity, atol=0.5)
                rows, cols = square_box(t + 1, velocity=velocity)
                backward = video.flow("backward", t, restore_mean=True)[rows, cols]
                np.testing.assert_allclose(np.median(backward.reshape(-1, 2), 0), [-v for v in velocity], atol=0.5)
            # mean subtraction took the (small) camera-free mean out and stored it
            means = video.flow_means("forward")
            assert means.shape == (FRAMES - 1, 2) and np.abs(means).max() < 1.0


def test_rerun_resumes_skipping_done_videos_and_retrying_failures(extracted, dataset):
    out, _ = extracted
    before = sorted(p.name for p in ExtractionFolder(out).shard_paths())
    result = run([*FLOWPREP, *extract_args(dataset, out)])
    assert result.returncode == 3
    assert "0 extracted now, 3 already done, 5 failed" in result.stdout
    assert sorted(p.name for p in ExtractionFolder(out).shard_paths()) == before  # nothing rewritten, nothing duplicated


def test_a_different_config_is_refused_unless_overwriting(extracted, dataset):
    out, _ = extracted
    result = run([*FLOWPREP, *extract_args(dataset, out, "--bound", "10")])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "different config (bound: 20.0 -> 10.0)" in result.stderr and "--overwrite" in result.stderr
    result = run([*FLOWPREP, *extract_args(dataset, out, "--bound", "10", "--overwrite")])
    assert result.returncode == 3 and "3 extracted now" in result.stdout
    assert json.loads((out / "config.json").read_text())["extract"]["bound"] == 10.0


@pytest.mark.parametrize("args,expected", [
    (["--flow", "raft"], "Invalid value for '--flow': 'raft' is not one of 'tvl1', 'tvl1-torch', 'farneback', 'dis'"),
    (["--flow-param", "nscales=x"], "nscales must be int, got 'x'"),
    (["--flow", "farneback", "--flow-param", "speed=3"], "unknown parameter 'speed' for flow method 'farneback'"),
    (["--size", "big"], "expected WIDTHxHEIGHT"),
    (["--rgb-codec", "webp"], "unknown codec 'webp'"),
    (["--fps", "10", "--stride", "2"], "either a target fps or a stride"),
    (["--workers", "-1"], "-1 is not in the range x>=0"),
])
def test_bad_arguments_get_one_line_naming_the_value(dataset, tmp_path, args, expected):
    base = ["extract", "--manifest", str(dataset / "manifest.csv"), "--out", str(tmp_path / "o")]
    result = run([*FLOWPREP, *base, *args])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr


def test_a_bad_manifest_gets_one_line_naming_the_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,path,label\na,a.avi,0\nb,b.avi,minus one\n")
    result = run([*FLOWPREP, "extract", "--manifest", str(manifest), "--out", str(tmp_path / "o")])
    assert result.returncode == 2
    assert result.stderr.strip() == f"flowprep: error: {manifest} line 3: label 'minus one' is not a non-negative integer"


def test_the_config_carries_the_registry_entry_and_codecs_and_stores_their_names():
    """Names are resolved once, when a config is made (from names, or from the CLI's resolved
    objects: the same config); what is stored is the names, and reads back to the same config."""
    import pickle

    from flowprep.flow.registry import FLOW_METHODS
    from flowprep.format.codecs import Codec, parse_codec

    named = ExtractConfig(flow_method="dis", flow_params=(("preset", "fast"),), rgb_codec="PNG", flow_codec="raw:gzip")
    assert named.flow_method is FLOW_METHODS["dis"] and isinstance(named.rgb_codec, Codec)
    given = ExtractConfig(flow_method=FLOW_METHODS["dis"], flow_params=(("preset", "fast"),),
                          rgb_codec=parse_codec("png"), flow_codec=parse_codec("raw:gzip:4"))
    assert given == named and given.to_json() == named.to_json()
    stored = named.to_dict()
    assert (stored["flow_method"], stored["rgb_codec"], stored["flow_codec"]) == ("dis", "png:1", "raw:gzip:4")
    assert ExtractConfig.from_json(named.to_json()) == named and pickle.loads(pickle.dumps(named)) == named


def test_max_frames_stride_and_short_side(dataset, tmp_path):
    config = ExtractConfig(flow_method="dis", flow_params=(("preset", "ultrafast"),), width=None, height=None,
                           short_side=48, stride=2, max_frames=4, flow_codec="raw:lzf", rgb_codec="png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,path,label\nright,right.avi,0\n")
    summary = run_extract(ExtractRun(manifest, dataset, tmp_path / "o", config, workers=1), interactive=False)
    assert summary.ok and summary.frames == 4 and summary.pairs == 3
    with open_shard(ExtractionFolder(tmp_path / "o").shard_paths()[0]) as f:
        video = video_reader(f, "right")
        assert (video.attrs.width, video.attrs.height) == (64, 48)
        assert video.attrs.fps_sampled == pytest.approx(12.5)
        # PNG is lossless: frame 1 is source frame 2, resized
        assert video.rgb(1).shape == (48, 64, 3)
        assert video.flow_codes("forward", 0).shape == (48, 64, 2)
        assert f["videos/right/flow_forward"].chunks == (1, 2, 48, 64)


def test_an_unwritable_output_folder_is_a_one_line_error(dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run([*FLOWPREP, *extract_args(dataset, blocker / "out")])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_refusal_is_raised_before_any_work(dataset, tmp_path):
    manifest = dataset / "manifest.csv"
    run_extract(ExtractRun(manifest, dataset, tmp_path / "o", ExtractConfig(flow_method="farneback", width=64, height=48),
                           workers=1), interactive=False)
    with pytest.raises(FolderError, match="different config"):
        run_extract(ExtractRun(manifest, dataset, tmp_path / "o", ExtractConfig(flow_method="dis", width=64, height=48)),
                    interactive=False)


def test_a_second_run_into_a_folder_in_use_is_refused(dataset, tmp_path):
    """Two runs into one folder would overwrite each other's staging files: the second is refused
    while the first holds the folder (here: the lock held by this process, as a running extraction
    holds it), and runs once it is released."""
    out = tmp_path / "busy"
    with ExtractionFolder(out).lock():
        result = run([*FLOWPREP, *extract_args(dataset, out)])
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith(
            f"{out} is in use by another flowprep run; let it finish (or stop it), or choose another --out")
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing written
        assert ExtractionFolder(out).in_use()
    assert not ExtractionFolder(out).in_use()
    assert run([*FLOWPREP, *extract_args(dataset, out)]).returncode == 3  # the bad inputs of the dataset fail, the rest done
    assert len(ExtractionFolder(out).read_index()) == len(MOTIONS)


def test_a_run_waits_out_a_lock_held_for_a_moment(tmp_path):
    """A trainer's `in_use` probe holds a shared lock for an instant; a run starting then (cluster
    part jobs and training ranks often start together) waits it out instead of being refused."""
    folder = ExtractionFolder(tmp_path / "out")
    folder.root.mkdir()
    probe = os.open(folder.root / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(probe, fcntl.LOCK_SH)
    released = threading.Event()

    def release() -> None:  # the probe lets go 0.3 s after the run asked for the lock
        time.sleep(0.3)
        released.set()  # before the close: once the lock is taken, this is set
        os.close(probe)

    asked = time.monotonic()
    threading.Thread(target=release).start()
    with folder.lock():
        # the run was given the lock only after the probe let go: it waited (a lock that did not
        # wait would have been refused, or taken beside the probe)
        assert released.is_set()
        assert time.monotonic() - asked >= 0.3
        assert folder.in_use()


def test_a_file_system_without_locks_runs_with_a_warning(tmp_path, monkeypatch, caplog):
    """Lustre mounted without -o flock fails every flock with ENOSYS: the run goes on, and says
    that nothing keeps a second run out."""
    def no_locks(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    monkeypatch.setattr(lock_module.fcntl, "flock", no_locks)
    folder = ExtractionFolder(tmp_path / "out")
    with caplog.at_level(logging.WARNING, logger="flowprep"), folder.lock():
        assert not folder.in_use()
    assert "gives no file locks" in caplog.text


def test_fps_on_a_video_without_a_frame_rate_is_that_videos_failure():
    """FFmpeg gives nearly every file a frame rate; decode records 0.0 where it gives none usable.
    --fps cannot apply there: a VideoError (a failures record), never a ValueError that stops the run."""
    with pytest.raises(VideoError, match=r"usable frame rate \(0.0\), so --fps cannot be applied"):
        frame_sampler(VideoInfo(fps=0.0, width=48, height=32, header_frames=0), ExtractConfig(fps=10.0))
    assert frame_sampler(VideoInfo(fps=0.0, width=48, height=32, header_frames=0), ExtractConfig()).ratio == 1.0
    assert frame_sampler(VideoInfo(fps=30.0, width=48, height=32, header_frames=0), ExtractConfig(fps=10.0)).ratio == 1 / 3


class Jobs:
    """Started jobs as the packing loop sees them: their outcomes, and close() (what ends them)."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes, self.closed = iter(outcomes), False

    def __iter__(self) -> "Jobs":
        return self

    def __next__(self):
        return next(self.outcomes)

    def close(self) -> None:
        self.closed = True


def test_a_run_that_stops_closes_its_jobs_before_it_returns(tmp_path):
    """The loop ends the jobs it packs for when it stops, with refused videos recorded before them
    (closing only a chain of the two ended nothing: a chain has no close)."""
    folder = ExtractionFolder(tmp_path / "out")
    folder.staging_dir.mkdir(parents=True)
    staging = Staging(folder, index={}, staged=[])  # a fresh folder's
    refused = [VideoOutcome("a", "a.avi", None, "outside the video root")]
    jobs = Jobs([VideoOutcome("b", "b.avi", tmp_path / "gone.h5", None, frames=2, pairs=1)])  # packing it fails
    with pytest.raises(FileNotFoundError):
        pack_outcomes(staging, lambda: jobs, Progress(2, interactive=False), ExtractConfig().to_json(), 1e6,
                      failed_first=refused)
    assert jobs.closed
    assert [f.video_id for f in folder.read_own_failures()] == ["a"]


def _staged_after(seconds: float, video_id: str, staged: str) -> VideoOutcome:
    time.sleep(seconds)
    return VideoOutcome(video_id, f"{video_id}.avi", Path(staged), None, frames=2, pairs=1)


def test_a_run_that_stops_lets_its_worker_queues_end_before_it_returns(tmp_path):
    """Worker processes' queues: their feeder threads (daemons) end before a stopped run returns.
    Exiting first froze one between a semaphore's unlink and its unregistration, and loky's
    resource tracker printed "leaked semlock" warnings after the run's one line (CI). Before the
    fix a feeder was alive after 3-7 of these 16 stops; the real workers and queues of
    process_outcomes, the first video's packing failing."""
    alive_after = []
    for attempt in range(16):
        folder = ExtractionFolder(tmp_path / f"out{attempt}")
        folder.staging_dir.mkdir(parents=True)
        staging = Staging(folder, index={}, staged=[])
        gone = str(tmp_path / "gone.h5")  # packing the first finished video fails: the run ends early
        jobs = [delayed(_staged_after)(0.05 if i == 0 else 2.0, f"v{i}", gone) for i in range(6)]
        with pytest.raises(FileNotFoundError):
            pack_outcomes(staging, lambda: process_outcomes(jobs, 2), Progress(6, interactive=False),
                          ExtractConfig().to_json(), 1e6)
        alive_after.append(sum(t.name == "QueueFeederThread" and t.is_alive() for t in threading.enumerate()))
    assert not any(alive_after), f"feeder threads alive after each stopped run: {alive_after}"


def test_a_stop_while_the_jobs_start_waits_for_their_handle_then_closes_them(tmp_path, monkeypatch):
    """SIGTERM while joblib starts the workers: raised there, it left no handle to close, and the
    workers outlived the run's lock (seen under load). Deferred, it stops the run before any
    packing, and the started jobs are closed."""
    monkeypatch.setattr(signals, "_received", None)  # restored after: a stop seen here must not reach other tests
    folder = ExtractionFolder(tmp_path / "out")
    folder.staging_dir.mkdir(parents=True)
    staged = tmp_path / "out" / "staging" / "left.h5"
    staging = Staging(folder, index={}, staged=[staged])  # would fail to pack (no file) if packing began
    jobs = Jobs([VideoOutcome("b", "b.avi", None, "never reached")])

    def start() -> Jobs:  # the signal comes while the jobs start
        os.kill(os.getpid(), signal.SIGTERM)
        return jobs

    with pytest.raises(signals.Stop) as stopped:
        pack_outcomes(staging, start, Progress(1, interactive=False), ExtractConfig().to_json(), 1e6)
    assert stopped.value.status == 143
    assert jobs.closed
