"""What motion without precomputed flow costs: training cost per sample of the dynamic-image and
learned-flow streams against the spatial and temporal streams, and the flow extraction they do
without.

    make demo-motion        (runs this last: python benchmarks/bench_motion.py --shards out/demo3d/shards
                             --runs out/demo3d/runs; about a minute on 2 CPU cores)

1. Training: each run of `make demo-motion` (RUNS/<stream>/config.json: the same crops, clips and
   backbone) trains one epoch on the demo's training videos with the trainer's own dataset,
   loader (no worker processes: the loading, a dynamic image's pooling included, is counted in
   the one process) and train_one_epoch, on 2 torch threads. The streams take turns, `--repeats`
   times; the medians of samples/s, and each stream's cost per sample as a ratio to the spatial
   stream's, measured in this one invocation.
2. Extraction saved: the flow that `flowprep extract` computes for the temporal stream (the demo's
   DIS, and OpenCV's TV-L1 with its defaults, the paper's), timed pair by pair on `--videos` of
   the demo's videos (forward and backward, as extraction computes them), per video and for the
   whole set. The new streams read the frames only.

Results: benchmarks/results/motion.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import cv2
import torch
from common import save_results

from flowprep.flow.registry import make_flow
from twostream.core.config import TrainConfig
from twostream.core.device import resolve_device
from twostream.data.datasets import Augment, TrainSamples, set_epoch, train_loader
from twostream.data.extraction import open_extraction, videos_in_split
from twostream.data.motion_inputs import stream_layout
from twostream.data.store import ShardStore
from twostream.engine.loops import train_one_epoch
from twostream.streams.motion_models import build_stream_model

# the runs of make demo-motion measured (RUNS/<name>), by name; learned-flow-maps is the learned-flow
# stream with its layer on feature maps (--flow-on features)
STREAMS = ("spatial", "temporal", "dynamic-image", "learned-flow", "learned-flow-maps")
THREADS = 2


class Trainer:
    """One stream's model, optimiser and loader, as its run trained them."""

    def __init__(self, config: TrainConfig, shards: Path) -> None:
        extraction = open_extraction(shards)
        entries = videos_in_split(extraction, config.split, "train")
        data = TrainSamples(ShardStore(shards), entries, stream_layout(config),
                          Augment(config.multiscale_crop, config.flip, config.color_jitter), 1, config.seed)
        self.loader = train_loader(data, config.batch_size, 0, config.seed, False)
        torch.manual_seed(0)
        self.model = build_stream_model(config, extraction.num_classes)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=0.9)
        self.device = resolve_device("cpu", amp=False, channels_last=False)
        self.epoch = 0

    def samples_per_s(self) -> float:
        set_epoch(self.loader, self.epoch)
        result = train_one_epoch(self.model, torch.nn.CrossEntropyLoss(), self.optimizer, self.loader, self.device,
                                 self.device.scaler(), self.epoch, interactive=False)
        self.epoch += 1
        return result.samples_per_s


def flow_seconds_per_video(shards: Path, videos: int) -> dict[str, float]:
    """Seconds of DIS and of OpenCV's TV-L1 for one video's forward and backward fields (median over videos)."""
    extraction = open_extraction(shards)
    entries = videos_in_split(extraction, "split1", "train")[:videos]
    store = ShardStore(shards)
    cv2.setNumThreads(1)
    out = {}
    for method in ("dis", "tvl1"):
        flow = make_flow(method)
        times = []
        for entry in entries:
            reader = store.video(entry)
            grey = [cv2.cvtColor(reader.rgb(i), cv2.COLOR_RGB2GRAY) for i in range(entry.num_frames)]
            started = time.perf_counter()
            for a, b in zip(grey[:-1], grey[1:]):
                flow(a, b)
                flow(b, a)
            times.append(time.perf_counter() - started)
        out[method] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, default=Path("out/demo3d/shards"))
    parser.add_argument("--runs", type=Path, default=Path("out/demo3d/runs"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(THREADS)
    configs = {s: TrainConfig.from_json((args.runs / s / "config.json").read_text()) for s in STREAMS}
    trainers = {s: Trainer(configs[s], args.shards) for s in STREAMS}
    for trainer in trainers.values():  # a first epoch each warms up (allocator, caches)
        trainer.samples_per_s()
    rates: dict[str, list[float]] = {s: [] for s in STREAMS}
    for _ in range(args.repeats):
        for stream, trainer in trainers.items():
            rates[stream].append(trainer.samples_per_s())
    medians = {s: statistics.median(r) for s, r in rates.items()}
    streams = {s: {"samples_per_s": medians[s], "cost_vs_spatial": medians["spatial"] / medians[s],
                   "runs": [round(r, 2) for r in rates[s]],
                   "input": {"clip": configs[s].clip, "clip_stride": configs[s].clip_stride,
                             "flow_on": configs[s].flow_on if configs[s].stream == "learned-flow" else None,
                             "flow_length": configs[s].flow_length if s == "temporal" else None,
                             "crop_size": configs[s].crop_size, "backbone": configs[s].backbone,
                             "batch_size": configs[s].batch_size}}
               for s in STREAMS}
    entries = list(open_extraction(args.shards).index.values())
    flow = flow_seconds_per_video(args.shards, args.videos)
    saved = {m: {"seconds_per_video": t, "seconds_for_the_set": t * len(entries)} for m, t in flow.items()}
    results = {"streams": streams, "repeats": args.repeats, "torch_threads": THREADS,
               "videos": len(entries), "frames_per_video": entries[0].num_frames,
               "flow_extraction_saved": saved, "flow_timed_on_videos": args.videos,
               "provisional": "measured on a 2-core machine shared with other work"}
    path = save_results("motion", results)
    print(json.dumps({s: round(v["samples_per_s"], 2) for s, v in streams.items()}), f"-> {path}")


if __name__ == "__main__":
    main()
