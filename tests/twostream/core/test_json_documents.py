"""A scores file's metadata or a run's config.json nested 100,000 deep is one line or no recorded
config, not a RecursionError (issue 30, item 9; the reader itself: tests/runkit/test_json_documents.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.reliability.tampered import nested
from twostream.cli.runs import recorded_config
from twostream.core.scores import ScoresError, load_scores


def test_scores_whose_metadata_nests_deeply_are_one_line(tmp_path):
    path = tmp_path / "scores_test.npz"
    np.savez(path, video_ids=np.array(["a"]), labels=np.array([0]), scores=np.zeros((1, 2), np.float32),
             class_names=np.array(["x", "y"]), meta=np.asarray(nested()))
    with pytest.raises(ScoresError, match="not a readable scores file: nested too deeply"):
        load_scores(path)


def test_a_run_config_nested_deeply_is_read_as_no_recorded_config(tmp_path):
    (tmp_path / "config.json").write_text(nested())
    assert recorded_config(tmp_path / "checkpoint.pt") == {}
