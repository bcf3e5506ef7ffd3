"""An export record (flowprep_export.json) nested 100,000 deep is one line naming it, not a
RecursionError (issue 30, item 9; the reader itself: tests/runkit/test_json_documents.py)."""
from __future__ import annotations

import pytest

from flowprep.rawframes.layout import RawframesError
from flowprep.rawframes.record import EXPORT_RECORD, read_export_record
from tests.support.reliability.tampered import nested


def test_an_export_record_nested_deeply_is_one_line(tmp_path):
    (tmp_path / EXPORT_RECORD).write_text(nested())
    with pytest.raises(RawframesError, match="not a readable export record: nested too deeply"):
        read_export_record(tmp_path)
