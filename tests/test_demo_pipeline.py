"""`make demo`, reduced to tiny sizes: the whole job runs end to end through the Makefile, the
same recipe a user runs: generate, extract, train both streams, evaluate, feature-level fusion (and
where the motion head looks), score fusion, report."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

TINY = {"DEMO_VIDEOS_PER_CLASS": 6, "DEMO_FRAMES": 14, "DEMO_SIZE": "48x48", "DEMO_CROP": 40,
        "DEMO_SPATIAL_EPOCHS": 2, "DEMO_TEMPORAL_EPOCHS": 2, "DEMO_EVAL_CLIPS": 2,
        "FEATURE_FUSION_ARGS": "--val-every 0 --loader-workers 1 --threads 2 --epochs 2"}


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_and_reports_every_method(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    demo = tmp_path / "demo"
    args = ["make", "-C", str(REPO), "--no-print-directory", "demo", f"DEMO={demo}"]
    args += [f"{k}={v}" for k, v in TINY.items()]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = demo / "runs" / "report"
    table = json.loads((report / "table.json").read_text())
    names = [row["name"] for row in table["rows"]]
    assert names[:2] == ["spatial", "temporal"]
    assert {"average", "weighted", "weighted-val", "svm", "logreg", "mid", "attention", "motion",
            "cross-attention"} <= set(names)
    assert all(row["videos"] == 16 for row in table["rows"])  # 8 classes x 2 test videos
    for png in ("confusion.png", "per_class.png", "curves_spatial.png", "curves_temporal.png", "motion_attention.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "svm" in (report / "report.md").read_text()
    # the printed table is the report's
    assert "<- best" in result.stdout
    # and it ends by classifying a held-out test video from its file: a class name of the demo, first
    said = re.search(r"held-out test video, (\S+) \(its class: (\S+)\):\nvideo .*\n(\S+)\s+(\S+) \(([\d.]+)\)",
                     result.stdout)
    assert said, result.stdout[-2000:]
    path, true_class, video, predicted, score = said.groups()
    classes = {row.split(",")[3] for row in (demo / "data" / "manifest.csv").read_text().splitlines()[1:]}
    assert video.endswith(path) and true_class in classes and predicted in classes and 0 <= float(score)

    # run again: every step resumes or is idempotent, nothing is retrained
    again = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already completed its 2 epochs" in again.stderr
    assert "0 extracted now, 48 already done" in again.stdout
