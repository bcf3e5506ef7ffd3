"""The cost of scaling out, in one run: extraction on a Dask cluster against local worker
processes, training samples/s in 1 and 2 processes (torchrun, CPU), and how long a Kinetics-sized
index takes to load.

    make bench-scale
    python benchmarks/bench_scale.py --repeats 3

- Extraction: the shared clips (each twice: 22 videos) with Farneback at 340x256, the first
  `--frames` frames of each, by 2 local worker processes and by a Dask LocalCluster of 2 worker
  processes (1 thread each) on the same machine: the cluster's cost is what going through a
  scheduler adds (serialising jobs, results, heartbeats). Interleaved repeats; the ratio is the
  median of the ratios within a repeat.
- Training: the spatial stream (ResNet-18, 64 px crops, batch 8 a process) on synthetic shards,
  `twostream train` in 1 process (2 torch threads) and under `torchrun --nproc_per_node=2`
  (1 thread each): samples/s of the last epoch, from metrics.jsonl.
- Index: a generated index of 240,000 videos over 1,000 shard files (real, tiny files: the
  trainer opens every shard's header), read by the trainer's `open_extraction` and split into a
  training part with a held-out share.
- Resume: `flowprep extract` resumed on a folder whose 100,000-video manifest has 30,000 videos
  finished but not packed (real staging files of a tiny video, each under its own id): seconds
  from the command's start to its first new video being written (a worker's first staging file),
  then SIGTERM. Before issue 19 the resume check rebuilt the staged set for every manifest row
  (42 ms a row with 33,514 staged: hours before the first video).

    python benchmarks/bench_scale.py --only resume
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLIPS, REPO, require_shared_data, save_results

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_index import IndexEntry
from flowprep.format.manifest import read_manifest, write_manifest

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"
TWOSTREAM = Path(sys.executable).parent / "twostream"


def extraction(frames: int, repeats: int) -> dict:
    from distributed import LocalCluster

    entries = read_manifest(MANIFEST)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "twice.csv"
        # each clip twice, under another id: 22 videos, an even share for 2 workers
        write_manifest(manifest, entries + [type(e)(e.video_id + "_b", e.path, e.label, e.label_name, e.splits)
                                             for e in entries])
        config = ExtractConfig(flow_method="farneback", width=340, height=256, max_frames=frames)

        def run(name: str, **options) -> float:
            out = Path(tmp) / f"{name}_{time.monotonic_ns()}"
            started = time.perf_counter()
            summary = run_extract(ExtractRun(manifest, CLIPS, out, config, workers=2, **options), interactive=False)
            seconds = time.perf_counter() - started
            assert not summary.failures, summary.failures
            return 2 * summary.pairs / seconds  # flow fields a second

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            run("warm-up", scheduler=cluster.scheduler_address)
            run("warm-up")
            runs = [{"local": run("local"), "dask": run("dask", scheduler=cluster.scheduler_address)}
                    for _ in range(repeats)]
    return {"videos": 2 * len(entries), "frames_per_video": frames, "runs": runs,
            "local_fields_per_s": statistics.median(r["local"] for r in runs),
            "dask_fields_per_s": statistics.median(r["dask"] for r in runs),
            "dask_over_local": statistics.median(r["dask"] / r["local"] for r in runs)}


def synthetic_shards(root: Path, videos: int, per_shard: int | None = None) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.support.synthetic import moving_video, write_extraction

    return write_extraction(root, [moving_video(f"v{i:05d}", i % 4, frames=8, width=80, height=72, seed=i)
                                   for i in range(videos)], codec="jpeg:95", videos_per_shard=per_shard)


def training(epochs: int) -> dict:
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        shards = synthetic_shards(Path(tmp) / "shards", 96)
        args = ["train", str(shards), "--crop-size", "64", "--epochs", str(epochs), "--batch-size", "8",
                "--loader-workers", "1", "--val-every", "0", "--lr", "0.01"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        commands = {"1 process, 2 threads": [str(TWOSTREAM), *args, "--threads", "2"],
                    "2 processes (torchrun), 1 thread each": [sys.executable, "-m", "torch.distributed.run",
                                                              "--standalone", "--nproc_per_node=2", str(TWOSTREAM),
                                                              *args, "--threads", "1"]}
        for name, command in commands.items():
            out = Path(tmp) / name.split()[0]
            result = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise SystemExit(result.stderr[-2000:])
            last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
            rates[name] = last["samples_per_s"]
    return {"samples_per_s": rates, "backbone": "resnet18", "crop": 64, "batch_per_process": 8}


def index_loading(videos: int, shards: int) -> dict:
    from twostream.data.extraction import open_extraction, split_holdout, videos_in_split

    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic_shards(Path(tmp) / "big", shards, per_shard=1)
        folder = ExtractionFolder(root)
        real = list(folder.read_index().values())
        entries = [IndexEntry(f"video{i:06d}", real[i % shards].shard, i % 400, f"class{i % 400}", 250,
                              {"split1": "test" if i % 10 == 0 else "train"}) for i in range(videos)]
        started = time.perf_counter()
        folder.write_index(entries)
        written = time.perf_counter() - started
        started = time.perf_counter()
        extraction = open_extraction(root)
        opened = time.perf_counter() - started
        started = time.perf_counter()
        trained, held = split_holdout(videos_in_split(extraction, "split1", "train"), 0.1, 0)
        selected = time.perf_counter() - started
    return {"videos": videos, "shards": shards, "write_index_s": written, "open_extraction_s": opened,
            "select_and_hold_out_s": selected, "training_videos": len(trained), "held_out": len(held)}


def resume_at_scale(videos: int, staged: int) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.support.reliability.signals import first_new_video_after_resume

    with tempfile.TemporaryDirectory() as tmp:
        return first_new_video_after_resume(Path(tmp), videos, staged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60, help="frames per video in the extraction runs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", choices=["extraction", "training", "index", "resume"], default=None,
                        help="run this measurement alone (the others' results are kept)")
    args = parser.parse_args()
    measurements = {"extraction": lambda: extraction(args.frames, args.repeats),
                    "training": lambda: training(args.epochs),
                    "index": lambda: index_loading(240_000, 1_000),
                    "resume": lambda: resume_at_scale(100_000, 30_000)}
    results = {}
    if args.only is not None:
        previous = REPO / "benchmarks" / "results" / "scale.json"
        results = {k: v for k, v in json.loads(previous.read_text()).items() if k in measurements} \
            if previous.exists() else {}
        measurements = {args.only: measurements[args.only]}
    if "extraction" in measurements:
        require_shared_data()
    for name, measure in measurements.items():
        results[name] = measure()
        print(json.dumps(results[name]), flush=True)
    print(f"results: {save_results('scale', results)}")


if __name__ == "__main__":
    main()
