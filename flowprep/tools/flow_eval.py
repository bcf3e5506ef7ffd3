"""Accuracy of a flow backend against ground truth: Middlebury .flo files and endpoint error.

Used by the test that holds the TV-L1 default to its accuracy target and by
`make bench-flow-params`, which measured the default (docs/benchmarks.md, "Choosing the TV-L1 defaults").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
from joblib import Parallel, delayed

from flowprep.flow.registry import make_flow

FLO_MAGIC = b"PIEH"


def read_flo(path: str | Path) -> np.ndarray:
    """Middlebury .flo file (magic 'PIEH', int32 width, height, then float32 u,v) -> (H, W, 2)."""
    with open(path, "rb") as fh:
        if fh.read(4) != FLO_MAGIC:
            raise ValueError(f"{path} is not a Middlebury .flo file (no 'PIEH' magic)")
        width, height = (int(v) for v in np.frombuffer(fh.read(8), np.int32))
        data = np.frombuffer(fh.read(), np.float32)
    if data.size != width * height * 2:
        raise ValueError(f"{path}: header says {width}x{height}, data holds {data.size} floats")
    return data.reshape(height, width, 2).copy()


# Middlebury's UNKNOWN_FLOW_THRESH: a ground-truth component above it (1e10 in their files, as in
# KITTI's converted ones) marks a pixel whose true flow is unknown (occluded, outside the scene)
UNKNOWN_FLOW = 1e9


def endpoint_error(flow: np.ndarray, truth: np.ndarray) -> float:
    """Average Euclidean distance between estimated and true displacement vectors, over the
    pixels whose true flow is known (counting the unknown ones scored zero flow on a Middlebury
    pair 3.8e7 px instead of 1.26)."""
    known = np.all(np.isfinite(truth) & (np.abs(truth) < UNKNOWN_FLOW), axis=-1)
    if not known.any():
        raise ValueError("the ground truth marks every pixel's flow unknown")
    return float(np.linalg.norm(flow - truth, axis=-1)[known].mean())


@dataclass(frozen=True)
class FlowPair:
    name: str
    first: Path
    second: Path
    truth: Path


def flyingchairs_pairs(folder: str | Path) -> list[FlowPair]:
    """The NNNNNNN-img0.png / -img1.png / -gt.flo triples in `folder`, sorted by name."""
    folder = Path(folder)
    pairs = []
    for truth in sorted(folder.glob("*-gt.flo")):
        stem = truth.name[: -len("-gt.flo")]
        pairs.append(FlowPair(stem, folder / f"{stem}-img0.png", folder / f"{stem}-img1.png", truth))
    if not pairs:
        raise ValueError(f"no FlyingChairs pairs (*-gt.flo with -img0.png, -img1.png) in {folder}")
    return pairs


def pair_epe(method: str, params: Mapping[str, Any] | None, pair: FlowPair) -> tuple[float, float]:
    """(endpoint error, seconds of flow computation) of one pair, on one thread."""
    import time

    cv2.setNumThreads(1)
    first = cv2.imread(str(pair.first), cv2.IMREAD_GRAYSCALE)
    second = cv2.imread(str(pair.second), cv2.IMREAD_GRAYSCALE)
    flow = make_flow(method, params)
    started = time.perf_counter()
    estimate = flow(first, second)
    seconds = time.perf_counter() - started
    return endpoint_error(estimate, read_flo(pair.truth)), seconds


def average_epe(method: str, params: Mapping[str, Any] | None, pairs: list[FlowPair],
                workers: int = 1) -> tuple[float, float]:
    """(mean EPE over pairs, mean single-thread seconds a pair)."""
    results = Parallel(n_jobs=workers)(delayed(pair_epe)(method, params, p) for p in pairs)
    epes, seconds = zip(*results)
    return float(np.mean(epes)), float(np.mean(seconds))
