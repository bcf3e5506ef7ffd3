"""Shared pieces of the benchmark scripts: where the reference data is, timing, reporting."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from flowprep.extract.frames import resize, to_gray

REPO = Path(__file__).resolve().parent.parent
# the reference data beside the checkout; FLOWPREP_SHARED_DATA points elsewhere (a GPU machine
# that has a copy of it somewhere else)
SHARED_DATA = Path(os.environ.get("FLOWPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
CLIPS = SHARED_DATA / "clips"
RESULTS_DIR = REPO / "benchmarks" / "results"


def require_shared_data() -> None:
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"benchmark needs the reference data in {SHARED_DATA}, which is absent")


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls (the machine is shared and noisy)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gray_frames(path: Path, count: int, size: tuple[int, int] = (340, 256)) -> list[np.ndarray]:
    """The first `count` frames of a clip, resized and grey, exactly as the extractor computes flow on them."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(to_gray(resize(frame, size)))
    cap.release()
    return frames


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, OpenCV {cv2.__version__}"


def save_results(name: str, results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"), **results}, indent=1))
    return path
