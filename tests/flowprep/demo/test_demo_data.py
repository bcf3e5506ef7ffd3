"""The demo dataset: deterministic from its seed, and built so that one frame tells the appearance
but not the motion, and the flow the motion but not the appearance."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from flowprep.demo.data import (
    APPEARANCES,
    MOTIONS,
    DemoConfig,
    DemoDataError,
    draw_spec,
    object_geometry,
    render_video,
    write_demo_dataset,
)
from flowprep.demo.probe import collect, probe
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.manifest import read_manifest
from tests.support.cli import FLOWPREP, run

TINY = DemoConfig(seed=3, videos_per_class=2, frames=6, width=48, height=40)


def test_the_same_seed_gives_identical_files_and_another_seed_other_frames(tmp_path):
    a, b = write_demo_dataset(tmp_path / "a", TINY), write_demo_dataset(tmp_path / "b", TINY)
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 16 + 2  # videos, manifest, config
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = dataclasses.replace(TINY, seed=4)
    assert not np.array_equal(render_video(draw_spec(TINY, 0, 0))[0], render_video(draw_spec(other, 0, 0))[0])


def test_a_video_does_not_depend_on_how_many_others_are_made():
    bigger = dataclasses.replace(TINY, videos_per_class=5)
    assert draw_spec(TINY, 3, 1) == draw_spec(bigger, 3, 1)


def test_videos_decode_to_the_rendered_frames(tmp_path):
    write_demo_dataset(tmp_path, TINY)
    cap = cv2.VideoCapture(str(tmp_path / "videos" / "blue-grow-001.avi"))
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    expected = render_video(draw_spec(TINY, TINY.classes.index(("blue", "grow")), 1))
    assert len(decoded) == TINY.frames
    assert all(np.array_equal(d, e) for d, e in zip(decoded, expected))  # FFV1 is lossless


def test_manifest_lists_every_class_with_train_and_test_videos(tmp_path):
    config = DemoConfig(seed=3, videos_per_class=6, frames=4, width=40, height=32)
    write_demo_dataset(tmp_path, config)
    entries = read_manifest(tmp_path / "manifest.csv")
    assert len(entries) == 8 * 6
    assert {e.label: e.label_name for e in entries} == {
        label: f"{a}-{m}" for label, (a, m) in enumerate((a, m) for a in APPEARANCES for m in MOTIONS)}
    for label in range(8):
        splits = [e.splits_dict["split1"] for e in entries if e.label == label]
        assert splits.count("test") == 2 and splits.count("train") == 4
    assert all((tmp_path / e.path).is_file() for e in entries)


def test_appearances_differ_in_colour_only():
    """Swap the colour, keep every other random choice: the grey frames flow sees are the same
    (to rounding), while the colour under the object differs."""
    for label, index in ((0, 0), (2, 1), (5, 0), (7, 1)):
        spec = draw_spec(DemoConfig(seed=11), label, index)
        other = dataclasses.replace(spec, appearance="blue" if spec.appearance == "red" else "red")
        a, b = render_video(spec), render_video(other)
        for fa, fb in zip(a, b):
            grey_a = cv2.cvtColor(fa, cv2.COLOR_BGR2GRAY).astype(int)
            grey_b = cv2.cvtColor(fb, cv2.COLOR_BGR2GRAY).astype(int)
            assert np.abs(grey_a - grey_b).max() <= 1
        cx, cy, _ = object_geometry(spec, 0)
        centre = (int(cy - spec.camera[0][1]), int(cx - spec.camera[0][0]))  # always inside the frame
        assert np.abs(a[0][centre].astype(int) - b[0][centre].astype(int)).max() > 30


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest gap between two empirical CDFs (the Kolmogorov-Smirnov statistic)."""
    grid = np.concatenate([a, b])
    cdf = [np.searchsorted(np.sort(x), grid, side="right") / len(x) for x in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def test_one_frame_has_the_same_geometry_distribution_for_every_motion():
    """Position and size of the object in a frame: one distribution for every motion (so one
    frame cannot tell the motion), while their changes between frames tell the motions apart.
    (Resting a still factor at the middle of its range instead gives distances of 0.1-0.3.)"""
    config = DemoConfig(seed=5, videos_per_class=1000)
    samples, changes = {}, {}
    for motion in MOTIONS:
        label = config.classes.index(("red", motion))
        geometry = np.array([[object_geometry(spec, t) for t in range(config.frames)]
                             for spec in (draw_spec(config, label, i) for i in range(config.videos_per_class))])
        samples[motion] = geometry.reshape(-1, 3)  # (x, y, size) in every frame of every video
        changes[motion] = tuple(np.sign(np.round(np.diff(geometry[:, :, 1:], axis=1).mean(axis=(0, 1)), 6)))
    for motion, values in samples.items():
        assert max(ks_distance(values[:, k], samples["up"][:, k]) for k in range(3)) < 0.06, motion
    assert changes == {"up": (-1, 0), "down": (1, 0), "grow": (0, 1), "shrink": (0, -1)}


def test_frames_tell_the_appearance_and_flow_the_motion_but_not_the_other_way(tmp_path):
    """Linear probes on a small extracted set: the demo's whole point, measured."""
    config = DemoConfig(seed=1, videos_per_class=12, test_per_class=4, frames=12, width=64, height=64)
    write_demo_dataset(tmp_path / "videos", config)
    run = ExtractRun(manifest=tmp_path / "videos" / "manifest.csv", video_root=tmp_path / "videos",
                     out_dir=tmp_path / "shards", workers=2,
                     extract=ExtractConfig(flow_method="dis", flow_params=(("preset", "fast"),), width=64, height=64))
    assert not run_extract(run).failures
    accuracy = probe(collect(tmp_path / "shards", frame_step=3))
    assert accuracy[("frame", "appearance")] >= 0.9
    assert accuracy[("frame", "motion")] <= 0.45  # chance is 0.25
    assert accuracy[("flow", "motion")] >= 0.9
    assert accuracy[("flow", "appearance")] <= 0.7  # chance is 0.5


@pytest.mark.parametrize("kwargs, expected", [
    ({"frames": 1}, "frames must be at least 2"), ({"width": 16}, "size must be at least 32x32"),
    ({"videos_per_class": 1}, "videos per class must be at least 2"),
    ({"videos_per_class": 4, "test_per_class": 4}, "test videos per class must be 1..3"),
    ({"motions": ("up", "left")}, "motions must be distinct names among up, down, grow, shrink; got up, left"),
    ({"jitter": 9.0}, "jitter must be 0..4 pixels, got 9.0"), ({"seed": -1}, "seed must be an integer"),
])
def test_bad_configs_are_refused_naming_the_value(kwargs, expected):
    with pytest.raises(DemoDataError, match=expected.replace(".", r"\.")):
        DemoConfig(**kwargs)


def test_command_writes_a_manifest_and_refuses_to_mix_configs(tmp_path):
    out = tmp_path / "demo"
    args = ["make-demo-data", "--out", str(out), "--videos-per-class", "2", "--frames", "4", "--size", "40x32"]
    result = run([*FLOWPREP, *args])
    assert result.returncode == 0, result.stderr
    assert "16 videos (8 train, 8 test) of 8 classes (2 appearances x 4 motions)" in result.stdout
    assert read_manifest(out / "manifest.csv")[0].path == "videos/red-up-000.avi"
    assert run([*FLOWPREP, *args]).returncode == 0  # the same config again is fine
    result = run([*FLOWPREP, *args[:-1], "48x32"])
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]  # after the config log line
    assert error.startswith("flowprep: error: ") and "another config (width: 40 -> 48)" in error
