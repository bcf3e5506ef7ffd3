"""Memory stays bounded by a frame pair, not by the video's length: a long video's flow is never
all in RAM. Measured as the peak resident memory of a fresh process extracting one video."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.support.videos import texture

PROBE = """
import json, resource, sys
from pathlib import Path
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
folder = Path(sys.argv[1])
config = ExtractConfig(flow_method="dis", flow_params=(("preset", "ultrafast"),), width=320, height=240)
summary = run_extract(ExtractRun(folder / "manifest.csv", folder, folder / "out", config, workers=1), interactive=False)
print(json.dumps({"pairs": summary.pairs, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_long_video(path, frames: int) -> None:
    """A panning texture at 160x120 (stored upscaled to 320x240, so each flow field is 600 kB)."""
    big = texture(120, 160 + frames, seed=7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for t in range(frames):
        writer.write(cv2.cvtColor(np.ascontiguousarray(big[:, t:t + 160]), cv2.COLOR_GRAY2BGR))
    writer.release()


def peak_memory_mb(folder, frames: int) -> tuple[int, float]:
    write_long_video(folder / "v.avi", frames)
    (folder / "manifest.csv").write_text("video_id,path,label\nv,v.avi,0\n")
    result = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["pairs"], report["peak_mb"]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    (tmp_path / "short").mkdir()
    (tmp_path / "long").mkdir()
    short_pairs, short_mb = peak_memory_mb(tmp_path / "short", 40)
    long_pairs, long_mb = peak_memory_mb(tmp_path / "long", 600)
    assert (short_pairs, long_pairs) == (39, 599)
    # holding the long video's flow would take 599 pairs x 2 fields x 320x240x2 float32 = 740 MB
    assert long_mb - short_mb < 100, (short_mb, long_mb)
