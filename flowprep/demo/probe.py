"""Linear probes of an extracted demo dataset: what one RGB frame and what a flow stack reveal.

The demo's claim (flowprep.demo.data) is that one frame tells the appearance but not the
motion, and the flow tells the motion but not the appearance. This measures it without a CNN:
logistic regression on simple features, trained on split1's train videos, scored on its test
videos, for each (input, factor) pair. Frame features: a 8x8 thumbnail plus Y/Cr/Cb histograms
(position, size and colour are all there to exploit). Flow features: histograms of x, y flow,
divergence and magnitude of a 10-field forward stack, plus its 8x8 thumbnail.

    python -m flowprep.demo.probe EXTRACTION_DIR     (after flowprep extract of a demo manifest)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import open_shard, video_reader

STACK = 10  # flow fields per sample, the temporal stream's default L
FACTORS = ("appearance", "motion")


def frame_features(rgb: np.ndarray) -> np.ndarray:
    thumb = cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    hists = [np.histogram(ycrcb[..., k], bins=16, range=(0, 256))[0] / ycrcb[..., k].size for k in range(3)]
    return np.concatenate([thumb, *hists]).astype(np.float32)


def flow_features(stack: np.ndarray) -> np.ndarray:
    """Features of an (L, H, W, 2) float flow stack."""
    vx, vy = stack[..., 0], stack[..., 1]
    divergence = np.gradient(vx, axis=2) + np.gradient(vy, axis=1)
    magnitude = np.hypot(vx, vy)
    hists = [np.histogram(a, bins=16, range=r)[0] / a.size
             for a, r in ((vx, (-4, 4)), (vy, (-4, 4)), (divergence, (-0.5, 0.5)), (magnitude, (0, 6)))]
    thumb = cv2.resize(stack.mean(axis=0), (8, 8), interpolation=cv2.INTER_AREA).ravel()
    return np.concatenate([*hists, thumb]).astype(np.float32)


@dataclass(frozen=True)
class ProbeData:
    frames: np.ndarray  # (N_frames, F) features of single frames
    frame_factors: np.ndarray  # (N_frames, 2) appearance index, motion index
    frame_train: np.ndarray  # (N_frames,) bool: from a train video
    flows: np.ndarray  # (N_videos, G) features of one flow stack per video
    flow_factors: np.ndarray
    flow_train: np.ndarray


def factor_indices(label_names: list[str]) -> np.ndarray:
    """(N, 2) appearance and motion indices from demo label names 'appearance-motion'."""
    parts = [name.split("-", 1) for name in label_names]
    if any(len(p) != 2 for p in parts):
        bad = next(n for n, p in zip(label_names, parts) if len(p) != 2)
        raise ValueError(f"label name {bad!r} is not a demo class 'appearance-motion'")
    columns = []
    for k in range(2):
        values = sorted({p[k] for p in parts})
        columns.append([values.index(p[k]) for p in parts])
    return np.array(columns, dtype=np.int64).T


def collect(extraction_dir: Path, frame_step: int = 2) -> ProbeData:
    """Features of every `frame_step`-th frame and of the middle flow stack of every video."""
    index = ExtractionFolder(Path(extraction_dir)).read_index()
    factors = dict(zip(index, factor_indices([e.label_name for e in index.values()])))
    frames, frame_meta, flows, flow_meta = [], [], [], []
    shards = {}
    try:
        for video_id, entry in index.items():
            if entry.shard not in shards:
                shards[entry.shard] = open_shard(Path(extraction_dir) / entry.shard)
            video = video_reader(shards[entry.shard], video_id)
            train = entry.splits.get("split1") == "train"
            for i in range(0, video.num_frames, frame_step):
                frames.append(frame_features(video.rgb(i)))
                frame_meta.append((*factors[video_id], train))
            fields = video.num_frames - 1
            start = max(0, (fields - STACK) // 2)
            stack = np.stack([video.flow("forward", min(start + k, fields - 1)) for k in range(STACK)])
            flows.append(flow_features(stack))
            flow_meta.append((*factors[video_id], train))
    finally:
        for f in shards.values():
            f.close()
    fm, vm = np.array(frame_meta), np.array(flow_meta)
    return ProbeData(np.stack(frames), fm[:, :2], fm[:, 2].astype(bool), np.stack(flows), vm[:, :2], vm[:, 2].astype(bool))


def probe_accuracy(features: np.ndarray, targets: np.ndarray, train: np.ndarray) -> float:
    """Test accuracy of a logistic regression fitted on the train rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(features[train], targets[train])
    return float(model.score(features[~train], targets[~train]))


def probe(data: ProbeData) -> dict[tuple[str, str], float]:
    """{(input, factor): test accuracy} for input in (frame, flow) and factor in FACTORS."""
    out = {}
    for name, x, y, train in (("frame", data.frames, data.frame_factors, data.frame_train),
                              ("flow", data.flows, data.flow_factors, data.flow_train)):
        for k, factor in enumerate(FACTORS):
            out[(name, factor)] = probe_accuracy(x, y[:, k], train)
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m flowprep.demo.probe EXTRACTION_DIR")
    data = collect(Path(args[0]))
    chance = {k: 1 / len(np.unique(data.flow_factors[:, i])) for i, k in enumerate(FACTORS)}
    print(f"{len(data.flows)} videos ({int(data.flow_train.sum())} train), {len(data.frames)} frames")
    for (name, factor), accuracy in probe(data).items():
        print(f"{name:>5} -> {factor:<10}  test accuracy {100 * accuracy:5.1f}%  (chance {100 * chance[factor]:.1f}%)")


if __name__ == "__main__":
    main()
