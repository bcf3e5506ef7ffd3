"""The trainer's input pipeline against the denseflow/mmaction2 rawframes JPEG tree, and training speed.

    make bench-train        (python benchmarks/bench_train.py --repeats 5: about 7 minutes on 2 CPU cores, 2 more on
                             the first run; --models resnet18 measures ResNet-18 alone, as before)

1. Extracts the real clips of ../shared/data/clips (data_manifests/shared_clips.csv, 11 videos,
   340x256, DIS flow) with lossless flow storage (raw + gzip) into bench_out/train (kept between
   runs; a rerun resumes, i.e. skips it), and exports it as a rawframes tree with flowprep's
   `export_rawframes` (img_00001.jpg, flow_x_00001.jpg, flow_y_00001.jpg per video: denseflow's
   layout and JPEG quality, 95, no backward flow).
2. Copies the shards with every other flow codec (the default, jpeg:80, first): the same flow
   codes, each encoded once from the lossless ones, as extraction would have encoded them. So
   every source holds the same data, compressed once; none decodes a re-compressed copy.
3. Temporal-stream loader throughput (L=10 forward stacks, random 224 crops and flips, batch 16,
   2 DataLoader workers: the trainer's own TrainSamples and loader) from each shard folder and from
   the JPEG tree, which is read by the same dataset through a source that opens the tree's files
   (cv2.imread per file, as mmaction2's RawFrameDecode does). Warm page cache (every file read
   once first); the sources take turns, `--repeats` times; medians and their ratio, measured in
   this one invocation. Then the same with a cold page cache: each source's files are evicted
   (posix_fadvise DONTNEED) before its measurement.
4. Training samples/s and peak memory per backbone and stream, the trainer's train_one_epoch on
   the shards of the default flow codec (batch 8 on the CPU, 32 on a GPU; AMP and channels_last
   on, where they apply: CUDA): ResNet-18 (224 crops; the flow stack L=10), a timm backbone
   (timm:convnext_tiny, 224 crops) and 3D clip streams (r3d_18 on 16-frame clips of 112 crops,
   its Kinetics protocol; tiny3d on 8-frame clips). The 2D streams twice: their JPEGs decoded in
   the loader workers and on the device (`twostream train --decode-on loader|device`). Each is
   also timed on synthetic in-memory data (the loader's first batch, repeated, as many batches as
   an epoch: the model-bound rate), and said to be loader-bound where real data reaches less than
   90 % of it. On CUDA the GPU's mean utilisation during the epoch (torch.cuda.utilization, NVML;
   n/a without pynvml). Each measurement runs in a process of its own (`--one MODEL`), so its
   peak resident memory (ru_maxrss; on a GPU, the peak allocated device memory) is its own.

A small setting (provisional figures in minutes on 2 cores): --repeats 1 --samples 256
--models resnet18 --train-samples 48.

Results: benchmarks/results/train.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from common import CLIPS, REPO, machine, require_shared_data, save_results

from flowprep.extract.config import DEFAULT_FLOW_CODEC, ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.extract.shard_writer import StagedVideo, pack_shard
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_index import IndexEntry, scan_shard
from flowprep.format.shards import VIDEOS_GROUP, iter_videos, open_shard, stored_bytes
from flowprep.rawframes.export import ExportConfig, export_rawframes
from flowprep.rawframes.layout import FLOW_KINDS, IMG, frame_name
from twostream.core.device import resolve_device
from twostream.data.clip_sampling import ClipSpec
from twostream.data.datasets import Augment, TrainSamples, set_epoch, train_loader
from twostream.data.device_decode import DeviceDecoder, StoredTrainSamples
from twostream.data.samples import InputSpec
from twostream.data.store import ShardStore
from twostream.engine.loops import train_one_epoch
from twostream.streams.models import build_model

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"
WORK = REPO / "bench_out" / "train"
LOSSLESS = "raw:gzip:1"  # the extraction's flow codec, from which every other is encoded
# the first is the extraction default
FLOW_CODECS = list(dict.fromkeys([DEFAULT_FLOW_CODEC, "jpeg:95", "jpeg:90", "jpeg:80", "png:1", "raw:gzip:1", "raw:none"]))
LENGTH, CROP, BATCH, WORKERS = 10, 224, 16, 2
SAMPLES = 1536  # per measurement, after the first batch (worker start-up excluded)


# --- data ---------------------------------------------------------------------------------------
def extract(out: Path) -> Path:
    config = ExtractConfig(flow_method="dis", width=340, height=256, flow_codec=LOSSLESS)  # default RGB codec
    run_extract(ExtractRun(MANIFEST, CLIPS, out, config, workers=2), interactive=False)
    return out


def recode(src: Path, dst: Path, flow_codec: str) -> Path:
    """The same frames and flow codes in another flow codec (RGB unchanged), via flowprep's writer."""
    if (dst / "index.json").exists():
        return dst
    stored = ExtractionFolder(src).read_config()
    config = ExtractConfig.from_dict({**stored.settings, "flow_codec": flow_codec})
    config_json = config.to_json()
    rgb_codec, codec = config.rgb_codec, config.flow_codec
    staging = dst / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    staged = []
    for shard in ExtractionFolder(src).shard_paths():
        with open_shard(shard) as f:
            for video in iter_videos(f):
                a = video.attrs
                with StagedVideo(staging, video.video_id, a.width, a.height, rgb_codec, codec, video.bound,
                                 config_json) as s:
                    for t in range(a.num_frames):
                        s.add_frame(cv2.cvtColor(video.rgb(t), cv2.COLOR_RGB2BGR))
                    for direction in ("forward", "backward"):
                        means = video.flow_means(direction)
                        for t in range(a.num_pairs):
                            s.add_flow(direction, video.flow_codes(direction, t), means[t])
                    staged.append(s.commit(a))
    pack_shard(staged, dst / "shard-00000.h5", config_json)
    for p in staged:
        p.unlink()
    staging.rmdir()
    folder = ExtractionFolder(dst)
    folder.write_index(scan_shard(dst / "shard-00000.h5", dst))
    folder.write_config("extract", config.to_dict())
    return dst


def shard_storage(folder: Path) -> dict[str, float]:
    """Bytes on disk and bytes stored per stream (forward flow alone: what the tree holds)."""
    parts = {"rgb": 0, "flow_forward": 0, "flow_backward": 0}
    for shard in ExtractionFolder(folder).shard_paths():
        with h5py.File(shard, "r") as f:
            for video in f[VIDEOS_GROUP].values():
                for name in parts:
                    parts[name] += stored_bytes(video, name)
    files = ExtractionFolder(folder).shard_paths()
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), **{f"{k}_bytes": v for k, v in parts.items()}}


def tree_storage(tree: Path) -> dict[str, float]:
    files = [p for p in tree.rglob("*") if p.is_file() and p.suffix == ".jpg"]
    flow = [p for p in files if p.name.startswith("flow_")]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "flow_forward_bytes": sum(p.stat().st_size for p in flow), "flow_files": len(flow)}


def warm_cache(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            p.read_bytes()


def evict_cache(folder: Path) -> None:
    """Drop the folder's files from the page cache (posix_fadvise DONTNEED: no root needed), so
    the next reads come from the disk. File system metadata (inodes, directories) stays cached."""
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# --- the rawframes tree as a source of the trainer's dataset -----------------------------------------
class TreeVideo:
    """One video folder of a rawframes tree, with VideoReader's reading methods (a tree keeps no
    mean vectors, so only mean-subtracted input, the default, can be read from it). Each flow
    field is two files, read and decoded whole, then cut to the box: what mmaction2's
    RawFrameDecode does."""

    def __init__(self, folder: Path, bound: float) -> None:
        self.folder, self.bound = folder, bound
        first = cv2.imread(str(folder / frame_name(IMG, 0, "jpg")), cv2.IMREAD_GRAYSCALE)
        self.height, self.width = first.shape

    def rgb(self, index: int) -> np.ndarray:
        image = cv2.imread(str(self.folder / frame_name(IMG, index, "jpg")), cv2.IMREAD_COLOR)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def flow_planes(self, fields: list[tuple[str, int]], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        top, left, h, w = box if box is not None else (0, 0, self.height, self.width)
        out = np.empty((2 * len(fields), h, w), np.uint8)
        for k, (direction, index) in enumerate(fields):
            for c, kind in enumerate(FLOW_KINDS[direction]):
                image = cv2.imread(str(self.folder / frame_name(kind, index, "jpg")), cv2.IMREAD_GRAYSCALE)
                out[2 * k + c] = image[top:top + h, left:left + w]
        return out


class TreeSource:
    def __init__(self, root: Path, bound: float) -> None:
        self.root, self.bound = root, bound
        self._videos: dict[str, TreeVideo] = {}

    def video(self, entry: IndexEntry) -> TreeVideo:
        if entry.video_id not in self._videos:
            self._videos[entry.video_id] = TreeVideo(self.root / entry.video_id, self.bound)
        return self._videos[entry.video_id]


# --- measurements -----------------------------------------------------------------------------
def loader_rate(source, entries: list[IndexEntry], epoch: int, samples: int = SAMPLES) -> float:
    """Temporal samples per second through TrainSamples + the trainer's loader."""
    spec = InputSpec("temporal", LENGTH, "forward", True, CROP)
    data = TrainSamples(source, entries, spec, Augment(), segments=1, seed=epoch)
    loader = train_loader(data, BATCH, WORKERS, seed=epoch, pin_memory=False)
    set_epoch(loader, epoch)
    batches = iter(loader)
    next(batches)  # workers started, first batch in
    started, seen = time.perf_counter(), 0
    for x, _, _ in batches:
        seen += x.shape[0]
        if seen >= samples:
            break
    rate = seen / (time.perf_counter() - started)
    del batches, loader
    return rate


# (backbone, clip frames (0: a 2D stream), crop): what step 4 measures, each as both streams
TRAINING_MODELS = [("resnet18", 0, 224), ("timm:convnext_tiny", 0, 224), ("r3d_18", 16, 112), ("tiny3d", 8, 112)]
DECODE_OPTIONS = ("loader", "device")  # twostream train --decode-on; 3D clip streams decode in the loader only
LOADER_BOUND = 0.9  # real data below this share of the synthetic rate: the loader bounds training


class Utilisation:
    """The GPU's mean utilisation (%) over a block, sampled every 0.2 s through
    torch.cuda.utilization (NVML, the pynvml package); `percent` None where it cannot be read."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples, self.percent = device, [], None
        self._stop = threading.Event()
        self._thread = None
        if device.type == "cuda":
            try:
                torch.cuda.utilization(device)
                self._thread = threading.Thread(target=self._sample, daemon=True)
            except Exception:  # noqa: BLE001 (no pynvml, no NVML: said as n/a)
                pass

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(torch.cuda.utilization(self.device))

    def __enter__(self) -> Utilisation:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.percent = statistics.mean(self.samples) if self.samples else None


def _epochs(model, optimizer, batches, device, decode=None) -> tuple[float, float | None]:
    """Samples/s of the second of two epochs on `batches` (the first warms up: worker start,
    allocator, kernels, cuDNN's choices), and the GPU's mean utilisation during it."""
    criterion = torch.nn.CrossEntropyLoss()
    for epoch in range(2):
        if hasattr(batches, "batch_sampler"):
            set_epoch(batches, epoch)
        with Utilisation(device.device) as utilisation:
            result = train_one_epoch(model, criterion, optimizer, batches, device, device.scaler(), epoch,
                                     interactive=False, decode=decode)
    return result.samples_per_s, utilisation.percent


def training_rate(folder: Path, entries: list[IndexEntry], stream: str, num_classes: int, backbone: str = "resnet18",
                  clip: int = 0, crop: int = CROP, decode_on: str = "loader", synthetic: bool = False) -> dict:
    """Training samples/s of one backbone and stream on the shards, their images decoded as
    `decode_on` says; with `synthetic`, also the same model's rate on in-memory data (the loader's
    first batch, repeated: the model-bound rate, as many batches as an epoch of real data)."""
    device = resolve_device("auto", amp=True, channels_last=True)
    cuda = device.device.type == "cuda"
    batch = 32 if cuda else 8
    spec = ClipSpec(stream, clip, 1, crop) if clip else InputSpec(stream, LENGTH, "forward", True, crop)
    augment = Augment(color_jitter=0.2 if stream == "spatial" else 0.0)
    samples, decode = (StoredTrainSamples, DeviceDecoder(spec, device.device)) if decode_on == "device" \
        else (TrainSamples, None)
    data = samples(ShardStore(folder), entries, spec, augment, segments=1, seed=0)
    loader = train_loader(data, batch, WORKERS, seed=0, pin_memory=cuda)
    torch.manual_seed(0)
    model = build_model(backbone, spec.in_channels, num_classes, 0.5, clip=clip, crop_size=crop)
    device.place(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device.device)
    result = {"decode_on": decode_on, "amp": str(device.amp_dtype).replace("torch.", "") if cuda else "off",
              "channels_last": device.channels_last}
    if synthetic:
        set_epoch(loader, 0)
        first = next(iter(loader))
        first = decode(first) if decode else first
        in_memory = [tuple(t.pin_memory() if cuda and t.device.type == "cpu" else t for t in first)] * len(loader)
        result["synthetic_samples_per_s"], result["synthetic_gpu_utilisation"] = _epochs(model, optimizer, in_memory,
                                                                                          device)
    result["samples_per_s"], result["gpu_utilisation"] = _epochs(model, optimizer, loader, device, decode)
    peak = (torch.cuda.max_memory_allocated(device.device) if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: kB
    return {**result, "batch_size": batch, "batches_per_epoch": len(loader), "device": str(device.device),
            "gpu": torch.cuda.get_device_name(device.device) if cuda else None,
            "torch_threads": torch.get_num_threads(), "peak_memory_mb": peak / 1e6,
            "peak_memory_of": "device memory allocated" if cuda else "process RSS"}


def training_in_own_process(backbone: str, clip: int, crop: int, stream: str, threads: int, decode_on: str,
                            synthetic: bool, samples: int) -> dict:
    """`training_rate` in a fresh process (its own peak memory), through `--one`."""
    spec = json.dumps({"backbone": backbone, "clip": clip, "crop": crop, "stream": stream, "decode_on": decode_on,
                       "synthetic": synthetic, "samples": samples})
    done = subprocess.run([sys.executable, __file__, "--one", spec, "--threads", str(threads)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {backbone} {stream} (decode on {decode_on}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_measurement(spec: str) -> None:
    """The child's side of `training_in_own_process`: print the result as one JSON line."""
    one = json.loads(spec)
    base = training_shards()
    index = ExtractionFolder(base).read_index()
    num_classes = max(e.label for e in index.values()) + 1
    # 2D streams: every video 4 times over (each item one random frame or stack); 3D: twice (a clip costs more)
    videos = sorted(index.values(), key=lambda e: e.video_id) * (2 if one["clip"] else 4)
    videos = videos[:one.pop("samples")] if one.get("samples") else videos
    result = training_rate(base, videos, one["stream"], num_classes, one["backbone"], one["clip"], one["crop"],
                           one["decode_on"], one.pop("synthetic"))
    print(json.dumps({**one, **result}))


def training_shards() -> Path:
    """Step 4's shards: the extraction's default flow codec (JPEG, which --decode-on device decodes)."""
    return WORK / f"shards_{DEFAULT_FLOW_CODEC.replace(':', '')}"


def measure_training(models: list[tuple[str, int, int]], threads: int, samples: int) -> list[dict]:
    """Step 4: each backbone and stream under each decode option, and on synthetic data; which bounds."""
    training = []
    for backbone, clip, crop in models:
        for stream in ("spatial", "temporal"):
            rows = [training_in_own_process(backbone, clip, crop, stream, threads, decode_on, decode_on == "loader",
                                            samples)
                    for decode_on in (DECODE_OPTIONS[:1] if clip else DECODE_OPTIONS)]
            synthetic = rows[0]["synthetic_samples_per_s"]
            for row in rows:
                row["synthetic_samples_per_s"] = synthetic
                row["real_to_synthetic"] = row["samples_per_s"] / synthetic
                row["bound"] = "loader" if row["real_to_synthetic"] < LOADER_BOUND else "model"
            training += rows
    return training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the training measurement (1 on a shared 2-core machine)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child measuring one model
    parser.add_argument("--models", default=",".join(m for m, _, _ in TRAINING_MODELS),
                        help="backbones of step 4, comma-separated (of " + ", ".join(m for m, _, _ in TRAINING_MODELS)
                             + ")")
    parser.add_argument("--samples", type=int, default=SAMPLES,
                        help="samples per loader measurement of step 3 (a small setting: 256)")
    parser.add_argument("--train-samples", type=int, default=0,
                        help="training samples per epoch of step 4 (0: every video 4 times, 3D twice; small: 48)")
    args = parser.parse_args()
    if args.one:
        logging.basicConfig(level=logging.WARNING)
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(1)
        one_measurement(args.one)
        return
    require_shared_data()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    base = extract(WORK / f"shards_{LOSSLESS.replace(':', '')}")
    folders = {codec: base if codec == LOSSLESS else recode(base, WORK / f"shards_{codec.replace(':', '')}", codec)
               for codec in FLOW_CODECS}
    tree = WORK / "rawframes"
    export_rawframes(base, tree, config=ExportConfig(image_format="jpg", backward=False, workers=2))
    index = ExtractionFolder(base).read_index()
    # every video many times over: each item is one random stack of one video
    entries = sorted(index.values(), key=lambda e: e.video_id) * 40
    bound = ExtractionFolder(base).read_config().settings["bound"]

    sources = {"rawframes jpeg tree": (TreeSource(tree, bound), tree)}
    sources.update({f"shards (flow {codec})": (ShardStore(folder), folder) for codec, folder in folders.items()})
    rates: dict[str, dict[str, list[float]]] = {cache: {name: [] for name in sources} for cache in ("warm", "cold")}
    for r in range(args.repeats):
        for name, (source, folder) in sources.items():
            for cache in ("warm", "cold"):
                (warm_cache if cache == "warm" else evict_cache)(folder)
                rates[cache][name].append(loader_rate(source, entries, epoch=r, samples=args.samples))
                print(f"  repeat {r + 1}, {cache} cache: {name}: {rates[cache][name][-1]:.1f} samples/s", flush=True)

    storage = {"rawframes jpeg tree": tree_storage(tree)}
    storage.update({f"shards (flow {codec})": shard_storage(folder) for codec, folder in folders.items()})
    loader = {}
    for cache, by_source in rates.items():
        # each repeat measures every source back to back: the ratio is taken within a repeat
        # (the machine's load drifts between repeats), then its median over repeats
        tree = by_source["rawframes jpeg tree"]
        loader[cache] = {name: {"median_samples_per_s": statistics.median(v), "runs": v,
                                "ratio_to_tree": statistics.median(r / t for r, t in zip(v, tree))}
                         for name, v in by_source.items()}

    chosen = args.models.split(",")
    models = [rows for rows in TRAINING_MODELS if rows[0] in chosen]
    training = measure_training(models, args.threads, args.train_samples)

    results = {
        "command": "make bench-train",
        "data": f"{len(index)} real clips (data_manifests/shared_clips.csv), 340x256, DIS flow, "
                f"{sum(e.num_frames for e in index.values())} frames",
        "loader": {"stream": "temporal", "flow_length": LENGTH, "crop": CROP, "batch_size": BATCH,
                   "workers": WORKERS, "samples_per_measurement": args.samples, "repeats": args.repeats,
                   "results": loader},
        "storage": storage,
        "training_resnet18": {t["stream"]: t for t in training if t["backbone"] == "resnet18" and t["decode_on"] == "loader"},
        "training": training,
        "training_shards": f"flow {DEFAULT_FLOW_CODEC} (the extraction default), RGB jpeg",
        "loader_bound_below": LOADER_BOUND,
    }
    path = save_results("train", results)

    print(f"\n{machine()}")
    print(f"temporal loader (L={LENGTH}, {CROP} crops, batch {BATCH}, {WORKERS} workers), samples/s, median of "
          f"{args.repeats}, and the median of the repeats' ratios to the tree:")
    print(f"  {'':26s} {'warm cache':>16s} {'cold cache':>16s} {'files':>6s} {'MB total':>9s} {'MB fwd flow':>11s}")
    for name in sources:
        s, w, c = storage[name], loader["warm"][name], loader["cold"][name]
        print(f"  {name:26s} {w['median_samples_per_s']:7.1f} (x{w['ratio_to_tree']:.2f}) "
              f"{c['median_samples_per_s']:7.1f} (x{c['ratio_to_tree']:.2f}) {s['files']:6d} {s['bytes'] / 1e6:9.1f} "
              f"{s['flow_forward_bytes'] / 1e6:11.1f}")
    for t in training:
        shape = f"{t['clip']}-frame clips, {t['crop']} crops" if t["clip"] else f"{t['crop']} crops"
        gpu = "n/a" if t["gpu_utilisation"] is None else f"{t['gpu_utilisation']:.0f} %"
        print(f"training {t['backbone']} {t['stream']} ({shape}), decode on {t['decode_on']}: {t['samples_per_s']:.1f} "
              f"samples/s, synthetic data {t['synthetic_samples_per_s']:.1f} (x{t['real_to_synthetic']:.2f}: "
              f"{t['bound']}-bound), GPU utilisation {gpu}, peak {t['peak_memory_mb']:.0f} MB {t['peak_memory_of']} "
              f"(batch {t['batch_size']}, {t['device']}, AMP {t['amp']}, channels_last {t['channels_last']}, "
              f"{t['torch_threads']} torch thread(s))")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
