"""Check a GPU machine end to end, in one command and under 10 minutes: is tvl1-torch right and
fast here?

    make check-gpu
    PYTHONPATH=. python benchmarks/check_gpu.py            # a bare GPU node: no install, its own torch
    PYTHONPATH=. python benchmarks/check_gpu.py --smoke    # tiny sizes, under 30 s (make test runs it)

On the first CUDA device: the fused kernels against PyTorch's operations on the device; the flow
on the device against the CPU's on real pairs; the out-of-memory halving under a memory cap
(torch.cuda.set_per_process_memory_fraction), with the memory held when each retry starts; the
fused iteration's bandwidth in GB/s against a device-to-device copy's; fields/s at batches
16/64/128/256/512/1024 of DISTINCT real pairs (every consecutive pair of the clips, then their
mirror images and pairs two and three frames apart: never a pair twice in a batch), with the
slowest pair's iterations (a batch runs until it stops) and the iterations' costs by pyramid
level; the pipeline (`flowprep extract`, the clips listed again and again for ~80,000 fields:
a minute or more, past its start-up) against the backend alone; the pipeline's video jobs and
batcher with each batch's copies overlapped with the compute of the next (pinned buffers, a copy
stream) and run in turn, ~10,000 fields each, twice each; and the way the flow really ran
(`triton`, or `eager` after a fallback, with why).

The real pairs come from the shared clips (../shared/data/clips, or $FLOWPREP_SHARED_DATA); from a
plain checkout without them, from the two 48-frame cuts shipped in benchmarks/data/reference
(it says so). Without CUDA every check runs on the CPU at small sizes (the kernels through
Triton's interpreter), prints its fields/s and says that no GPU was found. Needs torch, numpy,
opencv-python (contrib not needed), h5py and, for the kernels, Triton; nothing is installed.

Results: --out/check_gpu.json; with a GPU also merged into benchmarks/results/gpu_flow.json (the
same document as bench_gpu_flow.py's), which `make readme-figures` puts in docs/benchmarks.md. Exit
status 1 when a check fails.
"""
from __future__ import annotations

import os
import sys

import torch

CUDA = torch.cuda.is_available()
if not CUDA:  # before anything imports Triton: its kernels then run on the CPU, interpreted
    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse
import json
import statistics
import tempfile
import time
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_gpu_flow import BYTES_PER_PIXEL_ITERATION, Results, batch_of, copy_bandwidth, measure_backend, sync
from common import CLIPS, REPO, RESULTS_DIR, gray_frames

from flowprep.extract.batched import FlowBatcher, device_outcomes
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.flow.tvl1.solver import BYTES_PER_PIXEL, TorchTVL1, TVL1Params, inner_iteration, median_filter
from flowprep.format.manifest import read_manifest

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"
REFERENCE = REPO / "benchmarks" / "data" / "reference"  # two short real cuts, shipped: a checkout without ../shared
PIPELINE_FIELDS = 80_000  # the GPU pipeline run: a minute or more at the targets' rates, past its start-up


class Sizes:
    """What each check runs on: a GPU's sizes, the CPU's (a few minutes) or the smoke test's."""

    def __init__(self, cuda: bool, smoke: bool) -> None:
        if cuda and not smoke:
            self.frame, self.pairs, self.state, self.flow_frame = (340, 256), 8, (64, 256, 340), (340, 256)
            self.batches, self.params, self.oom_batch = [16, 64, 128, 256, 512, 1024], TVL1Params(), 16
            self.pipeline_frames, self.point_seconds, self.pipeline_fields = None, 10.0, PIPELINE_FIELDS
        elif not smoke:
            # the flow check's kernels run interpreted: 84x64, one level over 64x80 pixels (two launches
            # an iteration) and three under it (one a warping), minutes, not a quarter of an hour
            self.frame, self.pairs, self.state, self.flow_frame = (170, 128), 2, (2, 64, 80), (84, 64)
            self.batches, self.params, self.oom_batch = [1, 2], TVL1Params(), 8
            self.pipeline_frames, self.point_seconds, self.pipeline_fields = 3, 5.0, 0
        else:
            self.frame, self.pairs, self.state, self.flow_frame = (40, 32), 1, (2, 12, 16), (40, 32)
            self.batches, self.oom_batch = [1, 2], 4
            self.params = TVL1Params(nscales=2, warps=1, outer_iterations=2, inner_iterations=5)
            self.pipeline_frames, self.point_seconds, self.pipeline_fields = 2, 0.5, 0


def clips() -> tuple[Path, Path, str]:
    """(manifest, video folder, what they are) of the real clips: the shared ones, or the shipped cuts."""
    if (CLIPS / read_manifest(MANIFEST)[0].path).is_file():
        return MANIFEST, CLIPS, f"the shared clips ({CLIPS})"
    return REFERENCE / "manifest.csv", REFERENCE, f"the reference cuts shipped in {REFERENCE.relative_to(REPO)} " \
        f"(no shared clips in {CLIPS})"


def real_pairs(count: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`count` consecutive grey pairs a clip, at `size`, as the extractor makes them."""
    first, second = [], []
    manifest, folder, _ = clips()
    for entry in read_manifest(manifest):
        frames = gray_frames(folder / entry.path, count + 1, size)
        first += frames[:-1]
        second += frames[1:]
    return np.stack(first), np.stack(second)


def distinct_pairs(count: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """`count` grey pairs at `size`, no two the same, and how many are distinct (all, unless the
    clips run out): every consecutive pair of every clip, then the same mirrored (left-right,
    upside down, both), then pairs 2 and 3 frames apart (larger motions) and their mirrors."""
    manifest, folder, _ = clips()
    videos = [gray_frames(folder / e.path, 10**6, size) for e in read_manifest(manifest)]
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for gap in (1, 2, 3):
        for flip in (lambda f: f, np.fliplr, np.flipud, lambda f: np.flipud(np.fliplr(f))):
            for frames in videos:
                for a, b in zip(frames[:-gap], frames[gap:]):
                    if len(first) == count:
                        return np.stack(first), np.stack(second), count
                    first.append(np.ascontiguousarray(flip(a)))
                    second.append(np.ascontiguousarray(flip(b)))
    distinct = len(first)
    index = np.arange(count) % distinct  # the clips ran out: repeats, and the report says how many are distinct
    return np.stack(first)[index], np.stack(second)[index], distinct


def check_kernels(device: str, shape: tuple[int, int, int]) -> dict:
    """One fused iteration and the fused median against PyTorch's operations, on random state."""
    from flowprep.flow.tvl1.kernels import PairFlags, fused_iteration, median5

    torch.manual_seed(0)
    n = shape[0]
    state = {k: torch.randn(shape, device=device) for k in ("u1", "u2", "p11", "p12", "p21", "p22", "i1wx", "i1wy",
                                                           "rho_c")}
    state["grad"] = state["i1wx"] ** 2 + state["i1wy"] ** 2
    active = torch.arange(n, device=device) % 3 != 1  # some pairs stopped
    eager = {k: v.clone() for k, v in state.items()}
    fused = {k: v.clone() for k, v in state.items()}
    error = inner_iteration(eager, TVL1Params(), active)
    flags = PairFlags(n, torch.device(device))
    flags.active[0].copy_(active.to(torch.int8))
    fused_iteration(fused, TVL1Params(), flags, 0.0)
    state_difference = max(float((eager[k] - fused[k]).abs().max()) for k in eager)
    error_difference = float(((error - flags.error[0]).abs() / error.clamp(min=1e-6)).max())
    m1, _ = median5(state["u1"], state["u2"], flags.active[0])
    reference = median_filter(state["u1"], 5)
    median_difference = float((torch.where(active[:, None, None], reference, state["u1"]) - m1).abs().max())
    ok = state_difference < 1e-4 and error_difference < 1e-4 and median_difference == 0.0
    return {"ok": ok, "state_max_difference": state_difference, "error_relative_difference": error_difference,
            "median_max_difference": median_difference, "shape": list(shape)}


def check_flow(device: str, first: np.ndarray, second: np.ndarray, params: TVL1Params) -> dict:
    """The flow on `device` (its default path) against PyTorch's operations on the CPU, real pairs."""
    on_cpu = TorchTVL1(params, "cpu", kernels="eager").flow(first, second)
    backend = TorchTVL1(params, device, kernels="auto" if device != "cpu" else "triton")
    here = backend.flow(first, second)
    difference = float(np.linalg.norm(on_cpu - here, axis=-1).mean())
    return {"ok": difference < 0.05 and backend.path == "triton",
            "mean_endpoint_difference": difference, "pairs": len(first), "path": backend.path,
            "fallback": backend.fallback}


class Recording:
    """A backend that notes, when each attempt starts, its batch and the device memory in use
    (on the CPU: how many tensors of failed attempts are still alive)."""

    def __init__(self, backend: TorchTVL1, cap: int | None) -> None:
        self.backend, self.cap, self.attempts, self.failed = backend, cap, [], []

    @property
    def path(self) -> str:
        return self.backend.path

    def fields_that_fit(self, height: int, width: int) -> None:
        return None  # the check is of halving after out-of-memory errors, not of the first batch's fit

    def codes(self, first, second, bound, mean_subtraction):
        held = (torch.cuda.memory_allocated() if CUDA else sum(r() is not None for r in self.failed))
        self.attempts.append({"fields": len(first), "held": held})
        if self.cap is not None and len(first) > self.cap:  # the CPU has no memory cap: the fault, injected
            a = torch.from_numpy(np.ascontiguousarray(first)).float()
            self.failed.append(weakref.ref(a))
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: room for {self.cap} fields)")
        return self.backend.codes(first, second, bound, mean_subtraction)


def check_out_of_memory(device: str, first: np.ndarray, second: np.ndarray, params: TVL1Params, batch: int) -> dict:
    """A batch that does not fit halves until it does, each retry after the failed attempt's memory is freed."""
    a, b = batch_of(first, second, batch)
    backend = TorchTVL1(params, device)
    result: dict = {}
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        backend.codes(a[: batch // 4], b[: batch // 4], 20.0, True)
        peak = torch.cuda.max_memory_allocated() - base
        result["bytes_per_pixel_measured"] = peak / ((batch // 4) * a.shape[1] * a.shape[2])
        result["bytes_per_pixel_assumed"] = BYTES_PER_PIXEL
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.empty_cache()
        # room for about a third of the batch above what is in use now
        torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 1.3 * peak) / total))
        recording = Recording(backend, None)
    else:
        recording = Recording(backend, batch // 4)
    notes: list[str] = []
    batcher = FlowBatcher(recording, 20.0, True, batch, notes.append,
                          torch.cuda.empty_cache if CUDA else (lambda: None))
    try:
        codes, _ = batcher.submit(a, b).result()
        done = len(codes) == batch
    except Exception as exc:  # noqa: BLE001  a failure is the check's result
        done, result["error"] = False, f"{type(exc).__name__}: {exc}"[:300]
    finally:
        batcher.close()
        if CUDA:
            torch.cuda.set_per_process_memory_fraction(1.0)
    first_held = recording.attempts[0]["held"] if recording.attempts else 0
    # each retry starts with no more held than the first attempt did (CPU: no failed attempt's tensor alive)
    freed = all(r["held"] <= first_held + (2**20 if CUDA else 0) for r in recording.attempts[1:])
    halved = len(recording.attempts) > 1
    fits = result.get("bytes_per_pixel_measured", 0) <= BYTES_PER_PIXEL  # the first batch's size is safe
    return {"ok": done and freed and halved and fits, **result, "attempts": recording.attempts, "notes": notes,
            "batches_from_now_on": batcher.max_fields, "memory": "bytes allocated" if CUDA else "failed attempts' "
            "tensors alive"}


def check_bandwidth(device: str, shape: tuple[int, int, int], path: str) -> dict:
    """Bytes an iteration moves (88 a pixel) over its time, against a device-to-device copy."""
    from flowprep.flow.tvl1.kernels import PairFlags, fused_iteration

    n = shape[0]
    state = {k: torch.randn(shape, device=device) for k in ("u1", "u2", "p11", "p12", "p21", "p22", "i1wx", "i1wy",
                                                           "rho_c", "grad")}
    flags = PairFlags(n, torch.device(device))
    active = torch.ones(n, dtype=torch.bool, device=device)

    def step():
        if path == "triton":
            fused_iteration(state, TVL1Params(), flags, -1.0)  # threshold -1: no pair stops
        else:
            inner_iteration(state, TVL1Params(), active)

    step()
    sync(device)
    repeats = 20 if CUDA else 2
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    seconds = (time.perf_counter() - t0) / repeats
    rate = BYTES_PER_PIXEL_ITERATION * shape[0] * shape[1] * shape[2] / seconds
    copy = copy_bandwidth(device) if CUDA else float("nan")
    return {"ok": True, "path": path, "shape": list(shape), "iteration_ms": seconds * 1e3, "gb_s": rate / 1e9,
            "copy_gb_s": copy / 1e9, "share_of_copy": rate / copy if CUDA else None}


def check_pipeline(device: str, size: tuple[int, int], frames: int | None, batch: int, workers: int,
                   params: TVL1Params, fields: int) -> dict:
    """`flowprep extract --flow tvl1-torch` on the real clips, listed again and again for about
    `fields` flow fields (at least once), against the backend alone on one pass's frames."""
    flow_params = tuple(sorted(TVL1Params.__dataclass_fields__))
    names = {"lam": "lambda"}
    config = ExtractConfig(flow_method="tvl1-torch", max_frames=frames, width=size[0], height=size[1],
                           flow_params=tuple((names.get(k, k), getattr(params, k)) for k in flow_params))
    manifest, folder, _ = clips()
    first, second = real_pairs(frames - 1 if frames else 10**6, size)
    passes = max(1, -(-fields // (2 * len(first))))
    with tempfile.TemporaryDirectory() as tmp:
        lines = manifest.read_text().splitlines()
        repeated = Path(tmp) / "manifest.csv"
        repeated.write_text("\n".join([lines[0]] + [f"{row.split(',', 1)[0]}~{copy},{row.split(',', 1)[1]}"
                                                     for copy in range(passes) for row in lines[1:] if row]) + "\n")
        run = ExtractRun(repeated, folder, Path(tmp) / "shards", config, workers=workers, device=device, batch=batch)
        started = time.perf_counter()
        summary = run_extract(run, interactive=False)
        seconds = time.perf_counter() - started
    a, b = np.concatenate([first, second]), np.concatenate([second, first])  # both directions, as extracted
    backend = TorchTVL1(params, device)
    backend.codes(a[:2], b[:2], 20.0, True)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(a), batch):
        backend.codes(a[start:start + batch], b[start:start + batch], 20.0, True)
    sync(device)
    alone = len(a) / (time.perf_counter() - t0)
    rate = 2 * summary.pairs / seconds
    return {"ok": not summary.failures and summary.pairs == passes * len(first), "pairs": summary.pairs,
            "passes": passes, "seconds_run": seconds,
            "videos": summary.finished, "failed": len(summary.failures), "pipeline_fields_per_s": rate,
            "backend_fields_per_s": alone, "ratio": rate / alone, "batch": batch, "workers": run.n_workers,
            "path": summary.flow_paths}


def check_overlap(device: str, size: tuple[int, int], frames: int | None, batch: int, workers: int,
                  params: TVL1Params, fields: int) -> dict:
    """The pipeline's fields/s with the batcher's steps overlapped (batch k+1 uploaded and k-1
    downloaded while k computes: pinned buffers and a copy stream on CUDA) and run in turn, on the
    same videos (the clips listed again for about `fields` fields), each mode twice in turn
    (overlapped first, then serial, then again): the video jobs on threads and the batcher, no
    packing into shards."""
    flow_params = tuple(sorted(TVL1Params.__dataclass_fields__))
    names = {"lam": "lambda"}
    config = ExtractConfig(flow_method="tvl1-torch", max_frames=frames, width=size[0], height=size[1],
                           flow_params=tuple((names.get(k, k), getattr(params, k)) for k in flow_params))
    manifest, folder, _ = clips()
    entries = read_manifest(manifest)
    per_pass = 2 * len(real_pairs(frames - 1 if frames else 10**6, size)[0])
    videos = [(e, folder / e.path) for _ in range(max(1, -(-fields // per_pass))) for e in entries]
    rates: dict[str, list[float]] = {"overlapped": [], "serial": []}
    failed = 0
    for overlap in (True, False, True, False):
        with tempfile.TemporaryDirectory() as tmp:
            staging = Path(tmp)
            t0 = time.perf_counter()
            outcomes = list(device_outcomes(videos, config, staging, device, workers, batch, overlap=overlap))
            seconds = time.perf_counter() - t0
        failed += sum(o.error is not None for o in outcomes)
        rates["overlapped" if overlap else "serial"].append(2 * sum(o.pairs for o in outcomes) / seconds)
    overlapped, serial = (statistics.median(rates[k]) for k in ("overlapped", "serial"))
    return {"ok": failed == 0, "videos": len(videos), "failed": failed, "batch": batch, "workers": workers,
            "overlapped_fields_per_s": overlapped, "serial_fields_per_s": serial, "ratio": overlapped / serial,
            "runs": rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, under 30 s: is every check runnable here")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "check_gpu", help="folder for check_gpu.json")
    parser.add_argument("--batches", help="comma-separated batch sizes for the rates (default by device)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1) if not CUDA else torch.get_num_threads())
    device = "cuda:0" if CUDA else "cpu"
    sizes = Sizes(CUDA, args.smoke)
    if args.batches:
        sizes.batches = [int(b) for b in args.batches.split(",")]
    import triton

    args.out.mkdir(parents=True, exist_ok=True)
    results = Results(args.out / "check_gpu.json")
    results.data["torch"], results.data["triton"] = torch.__version__, triton.__version__
    results.data["smoke"] = args.smoke
    if CUDA:
        props = torch.cuda.get_device_properties(device)
        results.put(device, "model", props.name)
        results.put(device, "memory_gb", props.total_memory / 1e9)
        print(f"{device}: {props.name}, {props.total_memory / 1e9:.0f} GB; torch {torch.__version__}, "
              f"Triton {triton.__version__}", flush=True)
    else:
        print(f"no GPU found (torch.cuda.is_available() is false): every check on the CPU at small sizes, the "
              f"kernels through Triton's interpreter; torch {torch.__version__}, Triton {triton.__version__}", flush=True)
    started = time.perf_counter()
    source = clips()[2]
    results.data["clips"] = source
    first, second = real_pairs(sizes.pairs, sizes.frame)
    print(f"{len(first)} real pairs at {sizes.frame[0]}x{sizes.frame[1]} from {source}", flush=True)
    checks: dict = {}

    def run(name: str, fn, *fn_args) -> dict:
        t0 = time.perf_counter()
        try:
            checks[name] = fn(*fn_args)
        except Exception as exc:  # noqa: BLE001  a check that breaks is reported, the others still run
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        checks[name]["seconds"] = time.perf_counter() - t0
        results.put(device, "checks", checks)
        print(f"{'ok    ' if checks[name]['ok'] else 'FAILED'} {name}: "
              f"{json.dumps({k: v for k, v in checks[name].items() if k != 'ok'})[:400]}", flush=True)
        return checks[name]

    run("kernels", check_kernels, device, sizes.state)
    shown = 2 * sizes.pairs if CUDA else 1
    flow_pairs = (first[:shown], second[:shown]) if sizes.flow_frame == sizes.frame else \
        tuple(x[:shown] for x in real_pairs(1, sizes.flow_frame))
    flow = run("flow", check_flow, device, *flow_pairs, sizes.params)
    run("out_of_memory", check_out_of_memory, device, first, second, sizes.params, sizes.oom_batch)
    path = flow.get("path", "eager") if CUDA else "eager"  # on the CPU the interpreter's speed means nothing
    run("bandwidth", check_bandwidth, device, sizes.state, path)
    points = []
    many, other, distinct = distinct_pairs(max(sizes.batches), sizes.frame)  # a batch never holds a pair twice
    print(f"batches of up to {len(many)} pairs, {distinct} of them distinct", flush=True)
    for batch in sizes.batches:
        kernels = "auto" if CUDA else "eager"
        try:
            point = measure_backend(device, kernels, batch, many[:batch], other[:batch], sizes.point_seconds) \
                if sizes.params == TVL1Params() else _measure_small(device, batch, many[:batch], other[:batch],
                                                                   sizes.params)
            point["distinct_pairs"] = min(batch, distinct)
        except Exception as exc:  # noqa: BLE001  a batch that fails is a result too
            point = {"kernels": kernels, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]}
            if CUDA:
                torch.cuda.empty_cache()
        if CUDA and "fields_per_s" in point:
            point["bandwidth_share"] = point["fields_per_s"] * point["bytes_per_field"] / (
                checks["bandwidth"].get("copy_gb_s", float("nan")) * 1e9)
        points.append(point)
        results.put(device, "backend", points)
        print(f"batch {batch}: " + (f"{point['fields_per_s']:.2f} fields/s ({point['path']}), slowest pair "
                                    f"{point.get('slowest_pair_iterations')} iterations, median "
                                    f"{point.get('median_pair_iterations')}" if "fields_per_s" in point
                                    else point["error"]), flush=True)
    best = max((p for p in points if "fields_per_s" in p), key=lambda p: p["fields_per_s"], default={"batch": 2})
    workers = max(1, (os.cpu_count() or 1) - 2) if CUDA else 2
    pipeline = run("pipeline", check_pipeline, device, sizes.frame, sizes.pipeline_frames,
                   best["batch"] if CUDA else 8, workers, sizes.params, sizes.pipeline_fields)
    if "pipeline_fields_per_s" in pipeline:
        results.put(device, "pipeline", {k: v for k, v in pipeline.items() if k not in ("ok", "seconds")})
    overlap = run("overlap", check_overlap, device, sizes.frame, sizes.pipeline_frames, best["batch"] if CUDA else 8,
                  workers, sizes.params, sizes.pipeline_fields // 8)
    if "ratio" in overlap:
        results.put(device, "overlap", {k: v for k, v in overlap.items() if k not in ("ok", "seconds")})
    results.put(device, "path", flow.get("path"))
    results.data["seconds"] = time.perf_counter() - started
    results.save()
    ok = all(c["ok"] for c in checks.values()) and all("error" not in p for p in points)
    if CUDA and not args.smoke:
        merge_into(RESULTS_DIR / "gpu_flow.json", results.data)
    print(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} in {results.data['seconds']:.0f} s; "
          f"{'' if CUDA else 'no GPU found: CPU only; '}results: {results.path}", flush=True)
    return 0 if ok else 1


def _measure_small(device: str, batch: int, first: np.ndarray, second: np.ndarray, params: TVL1Params) -> dict:
    """fields/s with the smoke test's parameters (measure_backend uses the defaults)."""
    stats: dict = {}
    backend = TorchTVL1(params, device, stats=stats)
    a, b = batch_of(first, second, batch)
    backend.codes(a, b, 20.0, True)
    per_pair = sorted(int(v) for v in stats["pair_iterations"].tolist())
    backend.solver = replace(backend.solver, stats=None)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        backend.codes(a, b, 20.0, True)
        times.append(time.perf_counter() - t0)
    return {"kernels": "auto", "path": backend.path, "batch": batch, "fields_per_s": batch / statistics.median(times),
            "slowest_pair_iterations": per_pair[-1], "median_pair_iterations": per_pair[len(per_pair) // 2]}


def merge_into(path: Path, data: dict) -> None:
    """This machine's GPU entries into the saved results, keeping the other devices' (the CPU's sweep)."""
    saved = json.loads(path.read_text()) if path.exists() else {"devices": {}}
    for device, entry in data["devices"].items():
        entry = {**entry, "source": "make check-gpu", "date": data["date"], "machine": data["machine"]}
        saved["devices"][device] = entry
    saved.setdefault("gpu_check", {})["seconds"] = data["seconds"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1))


if __name__ == "__main__":
    sys.exit(main())
