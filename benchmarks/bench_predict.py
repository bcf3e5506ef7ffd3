"""How fast trained runs classify new videos: `twostream predict` on files, and `--live` on a stream.

    make bench-predict      (python benchmarks/bench_predict.py: about 5 minutes on 2 CPU cores)

Streams of randomly initialised networks (speed does not depend on the weights), 101 classes,
on the input of an extraction at 340x256 with DIS flow (its default, medium preset), 224 crops,
flow stacks of L=10, fused by the weighted mean; torch on `--threads` threads (2: this machine's
cores). Everything is the predictor's own code (twostream.predict), timed from the video file on.

1. Files: videos/s of `Predictor.predict_files` on the shared clips (../shared/data/clips, 11
   real videos of 2-10 s) with ResNet-18 streams, at the paper's protocol (25 clips x 10 crops,
   on the first `--default-videos` clips: it takes tens of seconds a video on a CPU) and at the
   fast one (3 clips x the centre crop, `predict --fast`, all of them). Decoding and flow included.
2. Live: a UCF101 clip at 340x256 played as a stream (its frames looped to `--live-frames`, Motion JPEG),
   `run_live` with a window of L + 1 = 11 frames and a label every 25 frames (one a second at
   25 frames/s): the frames/s sustained (frames read over the wall time, flow of one new pair a
   frame, networks and all) and the latency from a window's newest frame to its label, for
   ResNet-18, timm:efficientnet_lite0 and larger backbones, up to the first that falls below 25
   frames/s: the largest that sustains it is reported. Medians of `--repeats` runs.

Results: benchmarks/results/predict.json (figures from a shared machine are provisional).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from common import CLIPS, require_shared_data, save_results

from flowprep.demo.data import write_video
from flowprep.extract.config import ExtractConfig
from flowprep.extract.frames import resize
from twostream.data.samples import InputSpec
from twostream.predict.live import run_live
from twostream.predict.predictor import FAST_CLIPS, FAST_CROPS, Predictor, Scorer
from twostream.predict.video_input import video_files
from twostream.streams.models import build_model

EXTRACT = ExtractConfig(flow_method="dis", width=340, height=256)
CLASSES = tuple(f"class {k}" for k in range(101))
FLOW_LENGTH, CROP, EVERY, TARGET_FPS = 10, 224, 25, 25.0
# in order of network work; the live measurement stops at the first below TARGET_FPS
LIVE_BACKBONES = ("timm:efficientnet_lite0", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16")


def scorer(stream: str, backbone: str) -> Scorer:
    layout = InputSpec(stream, FLOW_LENGTH, "forward", True, CROP)
    torch.manual_seed(0)
    model = build_model(backbone, layout.in_channels, len(CLASSES), 0.5).eval()
    return Scorer(stream, Path(f"(random {backbone})"), model, layout, CLASSES, EXTRACT, f"{stream} {backbone}")


DEVICE = {"name": "cpu"}  # --device


def predictor(backbone: str, clips: int, crops: str) -> Predictor:
    from twostream.predict.fusion import named_fusion

    return Predictor([scorer("spatial", backbone), scorer("temporal", backbone)], named_fusion("weighted"), clips,
                     crops, device=DEVICE["name"])


def files_rate(backbone: str, videos: list[Path], clips: int, crops: str) -> dict:
    p = predictor(backbone, clips, crops)
    started = time.perf_counter()
    results = list(p.predict_files(videos))
    seconds = time.perf_counter() - started
    failed = [r.source for r in results if not hasattr(r, "scores")]
    return {"backbone": backbone, "clips": clips, "crops": crops, "videos": len(videos), "failed": failed,
            "seconds": seconds, "videos_per_s": len(videos) / seconds}


def live_stream(out: Path, frames: int) -> Path:
    """A UCF101 clip at 340x256, looped to `frames` frames, as Motion JPEG (a webcam's usual format;
    FFV1, the demo's lossless codec, takes as long to decode as DIS takes to compute a field)."""
    source = next(p for p in video_files([CLIPS / "ucf101"]))
    capture = cv2.VideoCapture(str(source))
    clip = []
    while (read := capture.read())[0]:
        clip.append(resize(read[1], (340, 256)))
    looped = [clip[i % len(clip)] for i in range(frames)]
    return write_video(out, looped, 25.0, fourcc="MJPG")


def live_rate(backbone: str, stream: Path, repeats: int) -> dict:
    p = predictor(backbone, 1, "center")
    keys = ("frames_per_s", "labels_per_s", "latency_ms_median", "labels_skipped")
    runs = [{k: summary[k] for k in keys} for summary in (run_live(p, str(stream), every=EVERY, echo=lambda line: None)
                                                          for _ in range(repeats))]
    return {"backbone": backbone, "runs": runs, **{k: statistics.median(r[k] for r in runs) for k in keys}}


def sustains(result: dict) -> bool:
    """The goal: TARGET_FPS frames/s or more, and a label at least once a second."""
    return result["frames_per_s"] >= TARGET_FPS and result["labels_per_s"] >= 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the files")
    parser.add_argument("--live-threads", type=int, default=1,
                        help="torch threads of the live networks' thread (the frame loop's flow has the other core)")
    parser.add_argument("--device", default="auto", help="the networks' device: auto (a GPU where there is one), cpu, "
                                                          "cuda (flow stays DIS on the CPU)")
    parser.add_argument("--default-videos", type=int, default=2, help="clips predicted with the 25 x 10 protocol")
    parser.add_argument("--live-frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_shared_data()
    torch.set_num_threads(args.threads)
    DEVICE["name"] = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    cv2.setNumThreads(1)  # DIS runs in the loop's thread, as a worker's would
    videos = video_files([CLIPS])
    files = [files_rate("resnet18", videos[:args.default_videos], 25, "ten"),
             files_rate("resnet18", videos, FAST_CLIPS, FAST_CROPS)]
    for r in files:
        print(f"files, {r['clips']} x {r['crops']}: {r['videos_per_s']:.3f} videos/s ({r['videos']} videos)",
              flush=True)
    live = []
    torch.set_num_threads(args.live_threads)
    with tempfile.TemporaryDirectory() as tmp:
        stream = live_stream(Path(tmp) / "stream.avi", args.live_frames)
        for backbone in LIVE_BACKBONES:
            live.append(live_rate(backbone, stream, args.repeats))
            print(f"live {backbone}: {live[-1]['frames_per_s']:.1f} frames/s, {live[-1]['labels_per_s']:.2f} labels/s, "
                  f"{live[-1]['latency_ms_median']:.0f} ms", flush=True)
            if not sustains(live[-1]) and backbone != LIVE_BACKBONES[0]:
                break
    sustaining = [r["backbone"] for r in live if sustains(r)]
    path = save_results("predict", {
        "device": DEVICE["name"] if DEVICE["name"] == "cpu" else torch.cuda.get_device_name(), "threads": args.threads,
        "live_threads": args.live_threads, "extraction": EXTRACT.to_dict(), "flow_length": FLOW_LENGTH,
        "crop": CROP, "every": EVERY, "target_fps": TARGET_FPS, "files": files, "live": live,
        "live_frames": args.live_frames, "largest_sustaining": sustaining[-1] if sustaining else None})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
