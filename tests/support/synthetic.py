"""Tiny extraction folders for the train tests, written straight from arrays (no video, no flow
computation): shards through flowprep's own writer, then the index and config.json, exactly as
`flowprep extract` leaves them.

Two kinds of content:
- `indexed_video`: every flow field's codes name its direction and index (x = base + t), so
  tests can assert which fields land in which channels;
- `moving_video`: a textured frame per class colour and constant vertical flow per class
  direction (up or down: a horizontal flip leaves it the same class), learnable in a few steps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from flowprep.extract.config import ExtractConfig
from flowprep.extract.shard_writer import StagedVideo, pack_shard
from flowprep.format.codecs import parse_codec
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_index import scan_shard
from flowprep.format.quantize import quantize
from flowprep.format.shards import VideoAttrs

# code bases of indexed_video: forward x, forward y, backward x, backward y
FWD_X, FWD_Y, BWD_X, BWD_Y = 10, 100, 60, 160


@dataclass
class SynthVideo:
    video_id: str
    label: int
    label_name: str
    rgb: np.ndarray  # (T, H, W, 3) uint8 RGB
    forward: np.ndarray  # (T-1, H, W, 2) uint8 codes
    backward: np.ndarray
    forward_means: np.ndarray  # (T-1, 2) float32
    backward_means: np.ndarray
    splits: dict = field(default_factory=lambda: {"split1": "train"})


def indexed_video(video_id: str, frames: int, label: int = 0, splits: dict | None = None,
                  width: int = 40, height: int = 32) -> SynthVideo:
    t = np.arange(frames - 1)
    shape = (frames - 1, height, width)
    def field(base):  # (T-1, H, W): field t holds base + t everywhere
        return np.broadcast_to((base + t)[:, None, None], shape)

    forward = np.stack([field(FWD_X), field(FWD_Y)], -1)
    backward = np.stack([field(BWD_X), field(BWD_Y)], -1)
    rgb = np.broadcast_to((np.arange(frames) * 10)[:, None, None, None], (frames, height, width, 3))
    means_f = np.stack([0.1 * t, -0.1 * t], 1).astype(np.float32)
    means_b = np.stack([0.2 * t, 0.3 * t], 1).astype(np.float32)
    return SynthVideo(video_id, label, f"class{label}", rgb.astype(np.uint8), forward.astype(np.uint8),
                      backward.astype(np.uint8), means_f, means_b, splits or {"split1": "train"})


def moving_video(video_id: str, label: int, frames: int = 8, splits: dict | None = None, width: int = 40,
                 height: int = 32, bound: float = 20.0, seed: int = 0) -> SynthVideo:
    """Class 0: reddish frames, downward flow; class 1: bluish frames, upward flow (+-8 px)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 120, size=(frames, height, width, 1))
    tint = np.array([[120, 40, 0], [0, 40, 120]][label % 2])
    rgb = np.clip(texture + tint, 0, 255).astype(np.uint8)
    vy = 8.0 if label % 2 == 0 else -8.0
    noise = rng.normal(0, 2.0, size=(frames - 1, height, width, 2))
    flow = noise + np.array([0.0, vy])
    backward = -flow
    codes_f, codes_b = quantize(flow, bound), quantize(backward, bound)
    zeros = np.zeros((frames - 1, 2), np.float32)
    return SynthVideo(video_id, label, f"class{label}", rgb, codes_f, codes_b, zeros, zeros,
                      splits or {"split1": "train"})


def two_class_videos(train: int, test: int, test_seed: int, width: int = 56, height: int = 48) -> list[SynthVideo]:
    """`train` training and `test` test videos (split1), of moving_video's two classes in turn: ids
    train0, train1, ... and test0, ... (zero-padded to one width), seeds i and test_seed + i."""
    def named(prefix: str, count: int, i: int) -> str:
        return f"{prefix}{i:0{len(str(count - 1))}d}"

    return ([moving_video(named("train", train, i), i % 2, seed=i, width=width, height=height) for i in range(train)]
            + [moving_video(named("test", test, i), i % 2, seed=test_seed + i, width=width, height=height,
                            splits={"split1": "test"}) for i in range(test)])


def write_staged(staging: Path, v: SynthVideo, codec: str, bound: float, config_json: str) -> Path:
    """`v` as a committed staging file in `staging`, storing `config_json` as its run's config."""
    height, width = v.rgb.shape[1:3]
    frames = len(v.rgb)
    rgb_codec = flow_codec = parse_codec(codec)
    with StagedVideo(staging, v.video_id, width, height, rgb_codec, flow_codec, bound, config_json) as s:
        for frame in v.rgb:
            s.add_frame(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        for t in range(frames - 1):
            s.add_flow("forward", v.forward[t], v.forward_means[t])
            s.add_flow("backward", v.backward[t], v.backward_means[t])
        return s.commit(VideoAttrs(
            label=v.label, label_name=v.label_name, splits=json.dumps(v.splits), source_path=f"{v.video_id}.avi",
            source_width=width, source_height=height, fps_source=25.0, fps_sampled=25.0, width=width,
            height=height, num_frames=frames, mean_subtracted=True))


def write_extraction(out_dir: Path, videos: list[SynthVideo], codec: str = "raw", bound: float = 20.0,
                     videos_per_shard: int | None = None) -> Path:
    """An extraction folder holding `videos` in one shard (or shards of `videos_per_shard`); all
    videos must share one size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = videos[0].rgb.shape[1:3]
    config = ExtractConfig(flow_method="farneback", width=width, height=height, bound=bound,
                           rgb_codec=codec, flow_codec=codec)
    config_json = config.to_json()
    staging = out_dir / "staging"
    staging.mkdir(exist_ok=True)
    staged = [write_staged(staging, v, codec, bound, config_json) for v in videos]
    per_shard = videos_per_shard or len(staged)
    entries = []
    for number, start in enumerate(range(0, len(staged), per_shard)):
        shard = out_dir / f"shard-{number:05d}.h5"
        pack_shard(staged[start:start + per_shard], shard, config_json)
        entries += scan_shard(shard, out_dir)
    for p in staged:
        p.unlink()
    staging.rmdir()
    folder = ExtractionFolder(out_dir)
    folder.write_index(entries)
    folder.write_config("extract", config.to_dict())
    return out_dir


def factor_streams_dataset(root: Path) -> tuple[Path, tuple[Path, Path]]:
    """Tiny shards (24 training, 4 test videos of 2 classes, 56x48) and a spatial and a temporal
    stream trained on them for one epoch (flow length 4): what feature fusion starts from."""
    from twostream.core.config import TrainConfig
    from twostream.streams.trainer import fit

    videos = two_class_videos(24, 4, test_seed=40)
    shards = write_extraction(root / "shards", videos, codec="jpeg:95")
    streams = []
    for stream in ("spatial", "temporal"):
        out = root / stream
        if not (out / "checkpoint.pt").exists():
            fit(TrainConfig(extraction=str(shards), out=str(out), stream=stream, flow_length=4, crop_size=48, epochs=1,
                            batch_size=4, val_every=0, workers=0, threads=1), interactive=False)
        streams.append(out / "checkpoint.pt")
    return shards, (streams[0], streams[1])
