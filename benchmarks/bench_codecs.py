"""Storage and read speed of each codec, for RGB frames and for flow: the basis of the defaults.

    make bench-codecs

Extracts the same real clips (first 60 frames of 4 clips, 340x256, DIS medium flow) once per
codec, then measures bytes on disk per frame for each stream, random-access read speed through
`VideoReader` (what the trainer does: one frame or one flow field per read, decoded to arrays),
and the error a lossy codec adds to the flow (in pixels, against the lossless codes).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from common import CLIPS, machine, require_shared_data, save_results

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from flowprep.format.folder import ExtractionFolder
from flowprep.format.quantize import quantization_step
from flowprep.format.shards import FLOW_DIRECTIONS, RGB, VIDEOS_GROUP, item_count, iter_videos, open_shard, stored_bytes

CLIP_PATHS = [
    "ucf101/SoccerJuggling/v_SoccerJuggling_g23_c01.avi",
    "ucf101/SoccerJuggling/v_SoccerJuggling_g24_c01.avi",
    "kinetics400_unlabelled/SOX5yA1l24A.mp4",
    "kinetics400_unlabelled/WUzgd7C1pWA.mp4",
]
CODECS = ["jpeg:95", "jpeg:90", "jpeg:80", "png:1", "raw:lzf", "raw:gzip:4", "raw:none"]


def stream_bytes(shard: Path) -> tuple[int, int, int, int]:
    """(rgb bytes, flow bytes (both directions), frames, flow fields) stored in a shard."""
    rgb = flow = frames = fields = 0
    with h5py.File(shard, "r") as f:
        for video in f[VIDEOS_GROUP].values():
            rgb += stored_bytes(video, RGB)
            frames += item_count(video, RGB)
            for name in FLOW_DIRECTIONS.values():
                flow += stored_bytes(video, name)
                fields += item_count(video, name)
    return rgb, flow, frames, fields


def read_rate(shard: Path, kind: str, reads: int, rng: np.random.Generator) -> float:
    """Random single-item reads per second through VideoReader (median of 3 passes)."""
    with open_shard(shard) as f:
        videos = list(iter_videos(f))
        picks = [(videos[i], int(rng.integers(videos[i].num_frames - 1))) for i in rng.integers(len(videos), size=reads)]
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            for video, t in picks:
                video.rgb(t) if kind == "rgb" else video.flow("forward", t)
            rates.append(reads / (time.perf_counter() - t0))
    return statistics.median(rates)


def flow_error(shard: Path, reference: Path) -> tuple[float, float, float]:
    """Mean and maximum absolute difference in pixels between flow values read from `shard` and
    from `reference` (every 5th forward field), and the share of values that differ at all."""
    errors = []
    with open_shard(shard) as a, open_shard(reference) as b:
        for va, vb in zip(iter_videos(a), iter_videos(b)):
            for t in range(0, va.num_frames - 1, 5):
                errors.append(np.abs(va.flow("forward", t) - vb.flow("forward", t)).ravel())
    values = np.concatenate(errors)
    return float(values.mean()), float(values.max()), float(np.count_nonzero(values) / values.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--reads", type=int, default=400)
    args = parser.parse_args()
    require_shared_data()
    rng = np.random.default_rng(0)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench_codecs_") as tmpdir:
        tmp = Path(tmpdir)
        manifest = tmp / "manifest.csv"
        manifest.write_text("video_id,path,label\n" + "".join(f"{Path(p).stem},{p},0\n" for p in CLIP_PATHS))
        shards = {}
        for codec in CODECS:
            config = ExtractConfig(flow_method="dis", flow_params=(("preset", "medium"),), width=340, height=256,
                                   max_frames=args.frames,
                                   rgb_codec=codec, flow_codec=codec)
            out = tmp / codec.replace(":", "_")
            summary = run_extract(ExtractRun(manifest, CLIPS, out, config, workers=2), interactive=False)
            assert summary.ok, summary.failures
            shards[codec] = ExtractionFolder(out).shard_paths()[0]
        for codec, shard in shards.items():
            rgb, flow, frames, fields = stream_bytes(shard)
            error, error_max, changed = flow_error(shard, shards["raw:none"])
            rows[codec] = {
                "rgb_kB_per_frame": round(rgb / frames / 1e3, 2),
                "flow_kB_per_field": round(flow / fields / 1e3, 2),
                "rgb_reads_per_s": round(read_rate(shard, "rgb", args.reads, rng)),
                "flow_reads_per_s": round(read_rate(shard, "flow", args.reads, rng)),
                "flow_error_px": round(error, 4),
                "flow_error_max_px": round(error_max, 3),
                "flow_values_changed": round(changed, 4),
            }
    step = quantization_step(20.0)
    print(f"machine: {machine()}; {len(CLIP_PATHS)} clips x {args.frames} frames at 340x256; "
          f"{args.reads} random reads, median of 3; flow error vs lossless codes (1 code = {step:.3f} px)")
    print(f"{'codec':<12} {'RGB kB/frame':>12} {'flow kB/field':>13} {'RGB reads/s':>12} {'flow reads/s':>13} {'flow err px':>12} {'max err px':>11} {'changed':>8}")
    for codec, r in rows.items():
        print(f"{codec:<12} {r['rgb_kB_per_frame']:12.1f} {r['flow_kB_per_field']:13.1f} {r['rgb_reads_per_s']:12d} "
              f"{r['flow_reads_per_s']:13d} {r['flow_error_px']:12.4f} {r['flow_error_max_px']:11.3f} {r['flow_values_changed']:8.1%}")
    print(f"saved {save_results('codecs', {'frames_per_clip': args.frames, 'codecs': rows})}")


if __name__ == "__main__":
    main()
