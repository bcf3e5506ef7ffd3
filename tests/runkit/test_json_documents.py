"""JSON nested 100,000 deep, or of another type, wherever the tools read JSON (issue 30, item 9).
Before, each reader ended in a RecursionError traceback; now one line naming the file, through the
one reader (runkit.files.parse_json; tests/test_layout.py holds every module to it). Its
readers: an export's flowprep_export.json (tests/flowprep/rawframes/test_json_documents.py), a
scores file's metadata and a run's config.json (tests/twostream/core/test_json_documents.py)."""
from __future__ import annotations

import pytest

from runkit.files import parse_json
from tests.support.reliability.tampered import nested


def test_the_reader_names_depth_and_type():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(nested())
    with pytest.raises(ValueError, match="expected a JSON object, got array"):
        parse_json("[1]", dict)
    assert parse_json('{"a": 1}', dict) == {"a": 1}
