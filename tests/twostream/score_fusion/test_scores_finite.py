"""Score files whose scores are not all finite numbers are refused in one line by fuse and report
(issue 19 item 8: all-NaN scores were fused into an 18% accuracy without a word)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.cli import twostream
from twostream.core.scores import VideoScores, save_scores


def _scores(values: np.ndarray, stream: str) -> VideoScores:
    n, classes = values.shape
    return VideoScores(np.array([f"v{i:03d}" for i in range(n)]), np.arange(n) % classes, values.astype(np.float32),
                       tuple(f"c{k}" for k in range(classes)), {"stream": stream})


@pytest.mark.parametrize("bad", ["all NaN", "one inf", "one NaN"])
@pytest.mark.parametrize("command", ["fuse", "report"])
def test_scores_that_are_not_finite_are_refused_in_one_line_naming_the_file(capsys, tmp_path, bad, command):
    rng = np.random.default_rng(0)
    good = rng.dirichlet(np.ones(4), size=20)
    broken = good.copy()
    if bad == "all NaN":
        broken[:] = np.nan
    else:
        broken[7, 2] = np.inf if bad == "one inf" else np.nan
    save_scores(tmp_path / "spatial.npz", _scores(good, "spatial"))
    save_scores(tmp_path / "temporal.npz", _scores(broken, "temporal"))
    code, stdout, stderr = twostream(capsys, command, str(tmp_path / "spatial.npz"), str(tmp_path / "temporal.npz"),
                                     "--out", str(tmp_path / "out"))
    assert code == 2, stdout
    assert stderr.startswith("twostream: error: ") and stderr.count("\n") == 1
    assert str(tmp_path / "temporal.npz") in stderr and "not finite" in stderr
    assert ("'v007'" in stderr) == (bad != "all NaN") or "'v000'" in stderr
    assert not (tmp_path / "out").exists()
