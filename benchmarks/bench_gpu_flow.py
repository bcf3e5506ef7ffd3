"""tvl1-torch's speed: on the CPU and on every GPU it finds, in one run.

    make bench-gpu-flow        # or, with no install (a GPU node): PYTHONPATH=. python benchmarks/bench_gpu_flow.py
    python benchmarks/bench_gpu_flow.py --batches 64,256,1024 --kernels triton,eager --point-seconds 30

(`make check-gpu`, benchmarks/check_gpu.py, is the short check of a GPU machine; this is the sweep.)

For each device: tvl1-torch flow fields per second at 340x256 against the batch size, for each
way of running the inner iteration (`triton`: the fused kernels; `compile`: torch.compile of the
PyTorch operations; `eager`: the operations one by one); the whole extraction pipeline on the
device (`flowprep extract --flow tvl1-torch --device D`) against the backend alone on the same
frames; and what the iterations cost: full-resolution-equivalent iterations a field, the bytes
they move (88 a pixel an iteration: what one fused iteration reads and writes), and the share of
the device's bandwidth that reaches (measured with a device-to-device copy, bytes read plus
written). On the CPU also OpenCV's tvl1 with the same parameters on 1 thread and on all cores
(one process a core), and tvl1-torch per core against OpenCV per core.

Frames: real pairs from the 11 clips of shared/data/clips (FLOWPREP_SHARED_DATA elsewhere),
resized to 340x256 and converted to grey as the extractor does; a batch repeats them as needed.
Each point: one untimed batch (compilation, memory), then timed batches until 3 are done or
`--point-seconds` have passed; the rate is fields over time, synchronised with the device.
Results go to benchmarks/results/gpu_flow.json after every point, so a run cut short keeps what
it measured; `make readme-figures` puts them in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from common import CLIPS, REPO, RESULTS_DIR, gray_frames, require_shared_data
from joblib import Parallel, delayed

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.flow.registry import make_flow
from flowprep.flow.tvl1.solver import TorchTVL1, TVL1Params
from flowprep.format.manifest import read_manifest

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"
SIZE = (340, 256)
BYTES_PER_PIXEL_ITERATION = 88  # what one fused iteration reads and writes (flowprep/flow/tvl1/kernels.py)


class Results:
    """The JSON document, written again after every measurement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                           f"Python {platform.python_version()}, torch {torch.__version__}, OpenCV {cv2.__version__}",
                           "size": list(SIZE), "devices": {}}

    def put(self, device: str, key: str, value) -> None:
        self.data["devices"].setdefault(device, {})[key] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1))


def real_pairs(per_clip: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive grey 340x256 frame pairs from every shared clip."""
    first, second = [], []
    for entry in read_manifest(MANIFEST):
        frames = gray_frames(CLIPS / entry.path, per_clip + 1, SIZE)
        first += frames[:-1]
        second += frames[1:]
    return np.stack(first), np.stack(second)


def batch_of(first: np.ndarray, second: np.ndarray, fields: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(fields) % len(first)
    return first[index], second[index]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def measure_backend(device: str, kernels: str, fields: int, first: np.ndarray, second: np.ndarray,
                    point_seconds: float) -> dict:
    """fields/s of the backend's codes (flow, mean subtraction, quantisation, copy back), the way
    it really ran (`path`: a kernel that fell back is reported as the eager run it was), and what
    the iterations cost, counted on the untimed first batch (the counters add work)."""
    stats: dict = {}
    backend = TorchTVL1(TVL1Params(), device, kernels=kernels, stats=stats)
    a, b = batch_of(first, second, fields)
    started = time.perf_counter()
    backend.codes(a, b, 20.0, True)  # untimed: compilation, allocator warm-up, the counters
    sync(device)
    warm_seconds = time.perf_counter() - started
    counted = backend.solver.stats
    backend.solver = replace(backend.solver, stats=None)
    times = []
    deadline = time.perf_counter() + point_seconds
    while len(times) < 3 and (not times or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        backend.codes(a, b, 20.0, True)
        sync(device)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    area = a.shape[1] * a.shape[2]
    return {"kernels": kernels, "path": backend.path, "fallback": backend.fallback, "batch": fields,
            "fields_per_s": fields / seconds, "batches_timed": len(times), "first_batch_s": warm_seconds,
            **iteration_costs(counted, fields, area)}


def iteration_costs(stats: dict, fields: int, area: int) -> dict:
    """Full-resolution-equivalent iterations and median filters a field, the bytes they move, and
    by pyramid level (finest first) the share of those bytes and of the sequential iterations
    (the loop's iterations whatever the batch: what a launch-bound device pays)."""
    iterations = float(stats["pixel_iterations"]) / (fields * area)
    levels = sorted(stats.get("levels", {}).items(), key=lambda kv: -kv[0][0] * kv[0][1])
    total_pixels = sum(float(v["pixel_iterations"]) for _, v in levels) or 1.0
    total_sequential = sum(int(v["sequential_iterations"]) for _, v in levels) or 1
    pairs = stats.get("pair_iterations")
    per_pair = sorted(int(v) for v in pairs.tolist()) if pairs is not None else [0]
    return {"iterations_per_field": iterations,
            # a batch runs until its slowest pair stops: the slowest against the median pair
            "slowest_pair_iterations": per_pair[-1], "median_pair_iterations": per_pair[len(per_pair) // 2],
            "median_filters_per_field": float(stats.get("median_pixels", 0)) / (fields * area),
            "bytes_per_field": iterations * area * BYTES_PER_PIXEL_ITERATION,
            "levels": [{"size": f"{w}x{h}", "bytes_share": float(v["pixel_iterations"]) / total_pixels,
                        "sequential_iterations_share": int(v["sequential_iterations"]) / total_sequential,
                        "sequential_iterations": int(v["sequential_iterations"])} for (h, w), v in levels]}


def measure_stopping(device: str, first: np.ndarray, second: np.ndarray, fields: int) -> list[dict]:
    """The stopping rule's cost: per-pair masks (each pair stops where OpenCV would) with the
    device looked at every iteration or every 10, against a fixed count (every inner and outer
    iteration, epsilon 0: no look at all). Rate, and mean endpoint difference from the first."""
    a, b = batch_of(first, second, fields)
    modes = [("masks, look every iteration", TVL1Params(), 1), ("masks, look every 10 iterations", TVL1Params(), 10),
             ("fixed count (all iterations)", TVL1Params(epsilon=0.0), 10**9)]
    rows, reference = [], None
    for name, params, every in modes:
        backend = TorchTVL1(params, device, check_every=every)
        backend.flow(a[:2], b[:2])  # untimed warm-up
        sync(device)
        t0 = time.perf_counter()
        flow = backend.flow(a, b)
        sync(device)
        seconds = time.perf_counter() - t0
        reference = flow if reference is None else reference
        rows.append({"mode": name, "fields_per_s": fields / seconds,
                     "endpoint_difference": float(np.linalg.norm(flow - reference, axis=-1).mean())})
    return rows


def copy_bandwidth(device: str) -> float:
    """Bytes read plus written per second by a large device-to-device copy."""
    if not device.startswith("cuda"):
        return float("nan")
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * src.numel() / statistics.median(times)


def opencv_rate(first: np.ndarray, second: np.ndarray, workers: int) -> float:
    """OpenCV tvl1 fields/s with flowprep's defaults: one thread in each of `workers` processes."""
    def chunk(indices):
        cv2.setNumThreads(1)
        flow = make_flow("tvl1")
        for i in indices:
            flow(first[i], second[i])
        return len(indices)

    pairs = len(first)
    started = time.perf_counter()
    done = sum(Parallel(n_jobs=workers)(delayed(chunk)(list(range(w, pairs, workers))) for w in range(workers)))
    return done / (time.perf_counter() - started)


def pipeline_rate(device: str, fields: int, frames_per_clip: int, workers: int) -> dict:
    """`flowprep extract --flow tvl1-torch --device D` on the shared clips (each clip's first
    frames), against the backend alone on exactly those frames."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shards"
        config = ExtractConfig(flow_method="tvl1-torch", width=SIZE[0], height=SIZE[1], max_frames=frames_per_clip)
        run = ExtractRun(MANIFEST, CLIPS, out, config, workers=workers, device=device, batch=fields)
        started = time.perf_counter()
        summary = run_extract(run, interactive=False)
        seconds = time.perf_counter() - started
    first, second = real_pairs(frames_per_clip - 1)
    backend = TorchTVL1(TVL1Params(), device)
    pairs = len(first)
    a = np.concatenate([first, second])
    b = np.concatenate([second, first])  # both directions, as the pipeline computes them
    backend.codes(a[: min(len(a), 64)], b[: min(len(b), 64)], 20.0, True)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(a), fields):
        backend.codes(a[start:start + fields], b[start:start + fields], 20.0, True)
    sync(device)
    alone = time.perf_counter() - t0
    return {"pairs": summary.pairs, "videos": summary.finished, "failed": len(summary.failures),
            "pipeline_fields_per_s": 2 * summary.pairs / seconds, "backend_fields_per_s": 2 * pairs / alone,
            "ratio": (2 * summary.pairs / seconds) / (2 * pairs / alone), "batch": fields, "workers": run.n_workers}


def measure_points(results: Results, device: str, points: list, kernels: list[str], batches: str,
                   first: np.ndarray, second: np.ndarray, args: argparse.Namespace) -> None:
    bandwidth = results.data["devices"][device]["copy_bandwidth_gb_s"] * 1e9
    for way in kernels:
        for fields in (int(b) for b in batches.split(",")):
            try:
                point = measure_backend(device, way, fields, first, second, args.point_seconds)
                point["bandwidth_share"] = point["fields_per_s"] * point["bytes_per_field"] / bandwidth
            except Exception as exc:  # noqa: BLE001  a way that fails here is a result too
                point = {"kernels": way, "batch": fields, "error": f"{type(exc).__name__}: {exc}"[:300]}
                torch.cuda.empty_cache()
            points.append(point)
            results.put(device, "backend", points)
            print(json.dumps(point), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="64,256,1024,4096", help="GPU batch sizes (fields)")
    parser.add_argument("--cpu-batches", default="2,16", help="CPU batch sizes (fields)")
    parser.add_argument("--kernels", default="triton,eager,compile", help="ways of running the iteration on a GPU")
    parser.add_argument("--slow-batches", default="256,1024", help="GPU batch sizes for the ways other than triton")
    parser.add_argument("--point-seconds", type=float, default=20.0, help="time per measured point, at most")
    parser.add_argument("--pipeline-frames", type=int, default=0, help="frames per clip in the pipeline runs "
                        "(0: 200 on a GPU, 5 on the CPU)")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "gpu_flow.json")
    args = parser.parse_args()
    require_shared_data()
    results = Results(args.out)
    first, second = real_pairs(16)
    print(f"{len(first)} real frame pairs at {SIZE[0]}x{SIZE[1]}", flush=True)
    cores = os.cpu_count() or 1

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    kernels = args.kernels.split(",")
    points: dict[str, list] = {d: [] for d in gpus}
    for device in gpus:
        props = torch.cuda.get_device_properties(device)
        results.put(device, "model", props.name)
        results.put(device, "memory_gb", props.total_memory / 1e9)
        results.put(device, "copy_bandwidth_gb_s", copy_bandwidth(device) / 1e9)
        print(f"{device}: {props.name}, {props.total_memory / 1e9:.0f} GB, "
              f"copy {results.data['devices'][device]['copy_bandwidth_gb_s']:.0f} GB/s", flush=True)
        # the fastest way first, then the pipeline on it: what a cut-short run must not lose
        measure_points(results, device, points[device], kernels[:1], args.batches, first, second, args)
        best = max((p for p in points[device] if "fields_per_s" in p), key=lambda p: p["fields_per_s"], default=None)
        if best is not None:
            pipeline = pipeline_rate(device, best["batch"], args.pipeline_frames or 200, workers=max(1, cores - 2))
            results.put(device, "pipeline", pipeline)
            print(json.dumps(pipeline), flush=True)
            results.put(device, "stopping", measure_stopping(device, first, second, best["batch"]))
            print(json.dumps(results.data["devices"][device]["stopping"]), flush=True)

    if not args.skip_cpu:
        torch.set_num_threads(1)
        cpu_points = [measure_backend("cpu", "eager", int(b), first[:8], second[:8], args.point_seconds)
                      for b in args.cpu_batches.split(",")]
        results.put("cpu", "backend", cpu_points)
        print(json.dumps(cpu_points), flush=True)
        if hasattr(cv2, "optflow"):
            pairs = min(len(first), 4 * cores)
            one = opencv_rate(first[:4], second[:4], 1)
            every = opencv_rate(first[:pairs], second[:pairs], cores)
            torch_rate = max(p["fields_per_s"] for p in cpu_points)
            results.put("cpu", "opencv", {"one_thread_fields_per_s": one, "all_cores_fields_per_s": every,
                                          "cores": cores, "torch_per_core_over_opencv_per_core": torch_rate / one})
            print(json.dumps(results.data["devices"]["cpu"]["opencv"]), flush=True)
        else:  # opencv-python without contrib (a GPU machine's own OpenCV): no cv2.optflow
            print("OpenCV here has no contrib modules (cv2.optflow): OpenCV's tvl1 not measured", flush=True)
        results.put("cpu", "stopping", measure_stopping("cpu", first, second, 4))
        print(json.dumps(results.data["devices"]["cpu"]["stopping"]), flush=True)
        torch.set_num_threads(cores)
        pipeline = pipeline_rate("cpu", 16, args.pipeline_frames or 5, workers=cores)
        results.put("cpu", "pipeline", pipeline)
        print(json.dumps(pipeline), flush=True)

    for device in gpus:  # the other ways of running the iteration, for the comparison
        measure_points(results, device, points[device], kernels[1:], args.slow_batches, first, second, args)
    print(f"results: {results.path}")


if __name__ == "__main__":
    sys.exit(main())
