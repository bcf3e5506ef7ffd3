"""JSON nested 100,000 deep, or of another type, wherever the tools read JSON (issue 30, item 9):
a run's config.json, an export's flowprep_export.json, a scores file's metadata. Before, each ended
in a RecursionError traceback; now one line naming the file, through the one reader
(flowprep.format.files.parse_json; tests/test_layout.py holds every module to it)."""
from __future__ import annotations

import numpy as np
import pytest

from flowprep.format.files import parse_json
from flowprep.rawframes.layout import RawframesError
from flowprep.rawframes.record import EXPORT_RECORD, read_export_record
from tests.support.reliability.tampered import nested
from twostream.cli.runs import recorded_config
from twostream.core.scores import ScoresError, load_scores


def test_the_reader_names_depth_and_type():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(nested())
    with pytest.raises(ValueError, match="expected a JSON object, got array"):
        parse_json("[1]", dict)
    assert parse_json('{"a": 1}', dict) == {"a": 1}


def test_an_export_record_nested_deeply_is_one_line(tmp_path):
    (tmp_path / EXPORT_RECORD).write_text(nested())
    with pytest.raises(RawframesError, match="not a readable export record: nested too deeply"):
        read_export_record(tmp_path)


def test_scores_whose_metadata_nests_deeply_are_one_line(tmp_path):
    path = tmp_path / "scores_test.npz"
    np.savez(path, video_ids=np.array(["a"]), labels=np.array([0]), scores=np.zeros((1, 2), np.float32),
             class_names=np.array(["x", "y"]), meta=np.asarray(nested()))
    with pytest.raises(ScoresError, match="not a readable scores file: nested too deeply"):
        load_scores(path)


def test_a_run_config_nested_deeply_is_read_as_no_recorded_config(tmp_path):
    (tmp_path / "config.json").write_text(nested())
    assert recorded_config(tmp_path / "checkpoint.pt") == {}
