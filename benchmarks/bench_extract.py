"""Extraction throughput: each flow backend alone, the flowprep pipeline with 1 and 2 workers, and
a plain sequential loop as mmaction2's / denseflow's scripts run it, all in one invocation.

    make bench-extract                       # all backends
    python benchmarks/bench_extract.py --methods tvl1 --repeats 3

Input: the first F frames of the 11 real clips of shared/data/clips (data_manifests/
shared_clips.csv), resized to 340x256, each clip listed twice: 22 videos, so that two workers
share them evenly (with 11, one worker would sit idle through the last video, a tail that a real
dataset of thousands of videos never has). Rates are in frame pairs per second; every pair costs
two flow computations (forward and backward), in the pipeline and in the plain loop alike.
- backend: single-thread rate of the flow function alone on exactly the same frame pairs
  (TV-L1's speed varies 3x from clip to clip, so nothing else is comparable);
- pipeline, N workers: `run_extract` end to end (decode, resize, flow both ways, mean
  subtraction, quantisation, encoding, HDF5 writing, packing into a shard), after a tiny untimed
  extraction that starts the worker pool; efficiency = rate / (N x backend rate);
- plain loop: a fresh Python process (so OpenCV's default threading applies, as users run it)
  decoding, computing forward and backward flow, and writing img/flow_x/flow_y JPEG files per
  frame into a folder per video, like mmaction2's tools/misc/flow_extraction.py and denseflow;
  with the same flow parameters as the pipeline, and for TV-L1 also with OpenCV's default
  parameters, which those scripts run with (half the accuracy on FlyingChairs, and slower).
Each repeat runs the measurements back to back; rates are medians over repeats, and each
ratio is the median of the ratios taken within a repeat (the machine's load drifts).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from common import CLIPS, REPO, gray_frames, machine, require_shared_data, save_results

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.frames import resize
from flowprep.extract.run import run_extract
from flowprep.flow.registry import make_flow
from flowprep.format.manifest import read_manifest
from flowprep.format.quantize import quantize

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"
CLIP_PATHS = [e.path for e in read_manifest(MANIFEST)]
COPIES = 2  # each clip twice: an even share per worker
VIDEO_PATHS = CLIP_PATHS * COPIES
# frames per clip: enough work for the rate to dominate start-up, small enough for TV-L1
FRAMES = {"tvl1": 3, "farneback": 31, "dis": 61}
METHOD_PARAMS = {"tvl1": {}, "farneback": {}, "dis": {"preset": "medium"}}
# the TV-L1 parameters mmaction2's flow_extraction.py and denseflow run with: OpenCV's defaults
OPENCV_TVL1 = {"nscales": 5, "scale_step": 0.8, "warps": 5}
SIZE = (340, 256)


def backend_seconds(method: str, frames: int) -> tuple[float, int]:
    """(seconds, frame pairs) of the flow function alone, one thread, forward + backward per pair."""
    cv2.setNumThreads(1)
    flow = make_flow(method, METHOD_PARAMS[method])
    clips = [gray_frames(CLIPS / p, frames, SIZE) for p in CLIP_PATHS]
    pairs = [(a, b) for clip in clips for a, b in zip(clip, clip[1:])] * COPIES
    t0 = time.perf_counter()
    for a, b in pairs:
        flow(a, b)
        flow(b, a)
    return time.perf_counter() - t0, len(pairs)


def start_pool(workers: int, tmp: Path) -> None:
    """A tiny extraction with `workers` processes, so the timed runs find the pool started."""
    manifest = tmp / "warmup.csv"
    manifest.write_text("video_id,path,label\n" + "".join(f"w{i},{p},0\n" for i, p in enumerate(CLIP_PATHS[:workers])))
    config = ExtractConfig(flow_method="dis", flow_params=(("preset", "ultrafast"),), width=SIZE[0], height=SIZE[1],
                           max_frames=2)
    run_extract(ExtractRun(manifest, CLIPS, tmp / f"warmup_{workers}", config, workers=workers), interactive=False)
    shutil.rmtree(tmp / f"warmup_{workers}")


def write_manifest(tmp: Path) -> Path:
    """The benchmark's dataset: VIDEO_PATHS, each under its own video id."""
    manifest = tmp / "videos.csv"
    manifest.write_text("video_id,path,label\n" + "".join(f"v{i:02d},{p},0\n" for i, p in enumerate(VIDEO_PATHS)))
    return manifest


def pipeline_seconds(method: str, frames: int, workers: int, out: Path) -> tuple[float, dict]:
    """(seconds, what it wrote) of one `run_extract` of the videos with `workers` processes."""
    config = ExtractConfig(flow_method=method, flow_params=tuple(METHOD_PARAMS[method].items()),
                           width=SIZE[0], height=SIZE[1], max_frames=frames)
    manifest = write_manifest(out.parent)
    t0 = time.perf_counter()
    summary = run_extract(ExtractRun(manifest, CLIPS, out, config, workers=workers), interactive=False)
    seconds = time.perf_counter() - t0
    assert summary.ok, summary.failures
    files = [p for p in out.rglob("*") if p.is_file()]
    info = {"pairs": summary.pairs, "files": len(files), "bytes_per_frame": sum(p.stat().st_size for p in files) / summary.frames}
    shutil.rmtree(out)
    return seconds, info


def plain_loop(method: str, frames: int, out: Path, params: dict, bound: float = 20.0) -> dict:
    """What mmaction2's flow_extraction.py does, made bidirectional: sequential, OpenCV default
    threading, one JPEG file per RGB frame and per flow component."""
    flow = make_flow(method, params)
    pairs = 0
    t0 = time.perf_counter()
    for number, rel in enumerate(VIDEO_PATHS):
        folder = out / f"v{number:02d}"
        folder.mkdir(parents=True)
        cap = cv2.VideoCapture(str(CLIPS / rel))
        prev = None
        for i in range(1, frames + 1):
            ok, frame = cap.read()
            if not ok:
                break
            frame = resize(frame, SIZE)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), frame)
            if prev is not None:
                for prefix, field in (("", flow(prev, gray)), ("backward_", flow(gray, prev))):
                    codes = quantize(field, bound)
                    cv2.imwrite(str(folder / f"{prefix}flow_x_{i - 1:05d}.jpg"), codes[..., 0])
                    cv2.imwrite(str(folder / f"{prefix}flow_y_{i - 1:05d}.jpg"), codes[..., 1])
                pairs += 1
            prev = gray
        cap.release()
    elapsed = time.perf_counter() - t0
    files = [p for p in out.rglob("*") if p.is_file()]
    nframes = sum(1 for p in files if p.name.startswith("img_"))
    return {"seconds": elapsed, "pairs": pairs, "threads": cv2.getNumThreads(),
            "bytes_per_frame": sum(p.stat().st_size for p in files) / nframes,
            "files_per_video": len(files) / len(VIDEO_PATHS)}


def plain_loop_seconds(method: str, frames: int, out: Path, params: dict | None = None) -> tuple[float, dict]:
    """(seconds, what it wrote) of the plain loop, in a fresh process: OpenCV's default threading."""
    params = METHOD_PARAMS[method] if params is None else params
    result = subprocess.run([sys.executable, __file__, "--plain-loop", method, "--plain-params", json.dumps(params),
                             "--frames", str(frames), "--out", str(out)], capture_output=True, text=True, check=True)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    shutil.rmtree(out)
    return info["seconds"], info


def measure(method: str, frames: int, repeats: int, tmp: Path) -> dict:
    """Each repeat runs the measurements back to back; a ratio is taken within a repeat
    (the machine's load drifts between repeats), then its median over repeats."""
    start_pool(2, tmp)
    runs = []
    for r in range(repeats):
        backend, pairs = backend_seconds(method, frames)
        one, _ = pipeline_seconds(method, frames, 1, tmp / f"one_{r}")
        two, written = pipeline_seconds(method, frames, 2, tmp / f"two_{r}")
        plain, plain_info = plain_loop_seconds(method, frames, tmp / f"plain_{r}")
        assert plain_info["pairs"] == written["pairs"] == pairs
        runs.append({"backend": pairs / backend, "one": pairs / one, "two": pairs / two, "plain": pairs / plain})
        if method == "tvl1":  # also as users run it: mmaction2's script keeps OpenCV's TV-L1 defaults
            opencv, _ = plain_loop_seconds(method, frames, tmp / f"plain_opencv_{r}", OPENCV_TVL1)
            runs[-1]["plain_opencv_params"] = pairs / opencv
    median = {k: statistics.median(run[k] for run in runs) for k in runs[0]}

    def ratio(num: str, den: str, scale: float = 1.0) -> float:
        return round(statistics.median(run[num] / (scale * run[den]) for run in runs), 3)

    return {
        "frames_per_clip": frames,
        "pairs": pairs,
        "backend_single_thread": round(median["backend"], 3),
        "pipeline_1_worker": round(median["one"], 3),
        "pipeline_2_workers": round(median["two"], 3),
        "efficiency_1": ratio("one", "backend"),
        "efficiency_2": ratio("two", "backend", 2.0),
        "plain_loop": round(median["plain"], 3),
        "plain_loop_threads": plain_info["threads"],
        "speedup_vs_plain_loop": ratio("two", "plain"),
        "runs": runs,
        "flowprep_bytes_per_frame": round(written["bytes_per_frame"]),
        "flowprep_files": written["files"],
        "plain_bytes_per_frame": round(plain_info["bytes_per_frame"]),
        "plain_files_per_video": round(plain_info["files_per_video"], 1),
        **({"plain_loop_opencv_params": round(median["plain_opencv_params"], 3), "opencv_params": OPENCV_TVL1,
            "speedup_vs_plain_loop_opencv_params": ratio("two", "plain_opencv_params")}
           if "plain_opencv_params" in median else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="tvl1,farneback,dis")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: per method)")
    parser.add_argument("--plain-loop", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain-params", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:  # child process of plain_loop_seconds
        print(json.dumps(plain_loop(args.plain_loop, args.frames, args.out, json.loads(args.plain_params))))
        return
    require_shared_data()
    print(f"machine: {machine()}; frames at {SIZE[0]}x{SIZE[1]}; the {len(CLIP_PATHS)} real clips of {MANIFEST.name}, each {COPIES} times; "
          f"{args.repeats} repeats; rates in frame pairs/s (2 flow fields a pair)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmpdir:
        tmp = Path(tmpdir)
        for method in args.methods.split(","):
            frames = args.frames or FRAMES[method]
            row = results[method] = measure(method, frames, args.repeats, tmp)
            print(f"\n{method} ({frames} frames/clip, {row['pairs']} pairs, params "
                  f"{METHOD_PARAMS[method] or 'flowprep defaults'})")
            print(f"  backend alone, 1 thread       {row['backend_single_thread']:8.2f} pairs/s")
            print(f"  pipeline, 1 worker            {row['pipeline_1_worker']:8.2f} pairs/s  ({row['efficiency_1']:.0%} of backend)")
            print(f"  pipeline, 2 workers           {row['pipeline_2_workers']:8.2f} pairs/s  "
                  f"({row['efficiency_2']:.0%} of 2x backend)")
            print(f"  plain loop ({row['plain_loop_threads']} OpenCV threads)  {row['plain_loop']:8.2f} pairs/s  "
                  f"-> pipeline is {row['speedup_vs_plain_loop']:.2f}x the plain loop")
            if "plain_loop_opencv_params" in row:
                print(f"  plain loop, OpenCV's TV-L1 parameters {row['plain_loop_opencv_params']:8.2f} pairs/s  "
                      f"-> pipeline is {row['speedup_vs_plain_loop_opencv_params']:.2f}x")
            print(f"  disk: flowprep {row['flowprep_bytes_per_frame'] / 1e3:.1f} kB/frame, "
                  f"{row['flowprep_files']} files in all; plain loop "
                  f"{row['plain_bytes_per_frame'] / 1e3:.1f} kB/frame, {row['plain_files_per_video']:.0f} files/video",
                  flush=True)
    path = save_results("extract", {"repeats": args.repeats, "size": SIZE, "clips": CLIP_PATHS, "copies": COPIES,
                                    "methods": results})
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
