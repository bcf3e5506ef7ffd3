"""TV-L1 parameter choices: accuracy on FlyingChairs and speed on real 340x256 video.

    make bench-flow-params

Endpoint error over the 9 FlyingChairs pairs of shared/data/flow_gt (2 pairs at a time, one
thread each), and single-thread flow fields/s on 2 consecutive frame pairs of each of the 11 real
clips at 340x256 (what extraction runs on; TV-L1's speed varies severalfold with content). The flowprep default must reach EPE <= 5.0; OpenCV's defaults give ~6.4.
The DIS and Farneback defaults are measured too, for reference.
"""
from __future__ import annotations

import cv2
from common import CLIPS, REPO, SHARED_DATA, gray_frames, median_time, require_shared_data, save_results

from flowprep.flow.registry import make_flow
from flowprep.format.manifest import read_manifest
from flowprep.tools.flow_eval import average_epe, flyingchairs_pairs

OPENCV_DEFAULTS = {"nscales": 5, "scale_step": 0.8, "warps": 5}
CANDIDATES = [
    ("tvl1", OPENCV_DEFAULTS, "OpenCV defaults (denseflow)"),
    ("tvl1", {"nscales": 8, "scale_step": 0.8, "warps": 5}, "deeper pyramid, OpenCV's scale step"),
    ("tvl1", {"nscales": 8, "scale_step": 0.7, "warps": 5}, ""),
    ("tvl1", {"nscales": 6, "scale_step": 0.6, "warps": 5}, ""),
    ("tvl1", {"nscales": 5, "scale_step": 0.5, "warps": 5}, ""),
    ("tvl1", {"nscales": 5, "scale_step": 0.5, "warps": 3}, ""),
    ("tvl1", {"nscales": 8, "scale_step": 0.7, "warps": 2}, ""),
    ("tvl1", {}, "flowprep default"),
    ("dis", {"preset": "medium"}, "flowprep default"),
    ("farneback", {}, "flowprep default"),
]


def main() -> None:
    require_shared_data()
    pairs = flyingchairs_pairs(SHARED_DATA / "flow_gt" / "flyingchairs")
    # speed varies severalfold with content: two frame pairs of each real clip
    clips = [gray_frames(CLIPS / e.path, 3) for e in read_manifest(REPO / "data_manifests" / "shared_clips.csv")]
    video_pairs = [(a, b) for clip in clips for a, b in zip(clip, clip[1:])]
    cv2.setNumThreads(1)
    rows = []
    print(f"{'method':<10} {'params':<48} {'EPE px':>7} {'fields/s 340x256':>17}  note")
    for method, params, note in CANDIDATES:
        epe, _ = average_epe(method, params, pairs, workers=2)
        flow = make_flow(method, params)
        repeats = 1 if method == "tvl1" else 5
        per_pair = median_time(lambda: [flow(a, b) for a, b in video_pairs], repeats) / len(video_pairs)
        rows.append({"method": method, "params": params, "epe": round(epe, 3), "fields_per_s": round(1 / per_pair, 2),
                     "note": note})
        print(f"{method:<10} {str(params):<48} {epe:7.2f} {1 / per_pair:16.2f}  {note}", flush=True)
    path = save_results("flow_params", {"rows": rows})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
