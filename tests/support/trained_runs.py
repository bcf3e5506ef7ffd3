"""Tiny trained runs on a clearly separable real dataset, for the tests that use what was trained
(predict, export, live): two classes that differ in both colour (a red or a blue tint: the spatial
stream's cue) and motion (a square moving right or down: the temporal stream's), real videos
extracted with DIS and a ResNet-18 per stream trained a few epochs (a few seconds each on 2 cores)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from tests.support.videos import moving_square_frames, write_video

CLASSES = {"red_right": ((0.35, 0.35, 1.0), (2, 0)), "blue_down": ((1.0, 0.35, 0.35), (0, 2))}  # BGR tint, motion
WIDTH, HEIGHT, FRAMES = 64, 64, 12
TRAIN_PER_CLASS = 4
# crops of 48 leave ResNet-18 a 2x2 last feature map: batch norm statistics need more than one value
TRAIN_OPTIONS = {"crop_size": 48, "flow_length": 4, "batch_size": 4, "lr": 0.01, "dropout": 0.0, "epochs": 14, "holdout": 0.0,
                 "val_every": 0, "workers": 0, "threads": 1, "schedule": "cosine"}
STREAM_OPTIONS = {"spatial": {"color_jitter": 0.0, "epochs": 8}, "temporal": {"epochs": 16, "lr": 0.03}}


@dataclass(frozen=True)
class TinyRuns:
    videos: Path  # videos/<class>/<id>.avi
    manifest: Path
    shards: Path
    spatial: Path
    temporal: Path
    held_out: dict[str, Path]  # class name -> a video of it that no run saw


def tinted_video(path: Path, name: str, seed: int, frames: int = FRAMES) -> Path:
    tint, velocity = CLASSES[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    grey = moving_square_frames(frames, WIDTH, HEIGHT, square=16, velocity=velocity, seed=seed)
    return write_video(path, [np.clip(f * np.array(tint), 0, 255).astype(np.uint8) for f in grey])


def tinted_dataset(root: Path) -> tuple[Path, dict[str, Path]]:
    """The videos, a manifest of the training ones (all 'train' of split1, plus one 'test' video a
    class for evaluate), and one more video a class outside the manifest. Not make_videos: these
    classes differ in colour as well as motion, and the runs need both cues."""
    rows = ["video_id,path,label,label_name,split1"]
    held_out = {}
    for label, name in enumerate(CLASSES):
        for k in range(TRAIN_PER_CLASS + 1):
            video_id = f"{name}_{k}"
            tinted_video(root / name / f"{video_id}.avi", name, seed=100 * label + k)
            rows.append(f"{video_id},{name}/{video_id}.avi,{label},{name},{'test' if k == TRAIN_PER_CLASS else 'train'}")
        held_out[name] = tinted_video(root / "new" / f"{name}_new.avi", name, seed=100 * label + 50)
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, held_out


def extract(manifest: Path, out: Path, **settings) -> Path:
    config = ExtractConfig(**{"flow_method": "dis", "width": WIDTH, "height": HEIGHT, **settings})
    run_extract(ExtractRun(manifest, manifest.parent, out, config, workers=1), interactive=False)
    return out


def train_runs(root: Path, seed: int = 0, **settings) -> TinyRuns:
    from twostream.core.config import TrainConfig  # torch: only for the tests that train
    from twostream.streams.trainer import fit

    manifest, held_out = tinted_dataset(root / "videos")
    shards = extract(manifest, root / "shards", **settings)
    runs = {}
    for stream in ("spatial", "temporal"):
        runs[stream] = root / "runs" / stream
        fit(TrainConfig(extraction=str(shards), out=str(runs[stream]), stream=stream, seed=seed,
                        **{**TRAIN_OPTIONS, **STREAM_OPTIONS[stream]}),
            interactive=False)
    return TinyRuns(root / "videos", manifest, shards, runs["spatial"], runs["temporal"], held_out)
