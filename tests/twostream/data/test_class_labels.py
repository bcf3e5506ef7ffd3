"""Labels are input (issue 30, item 5): labels far beyond the classes that have videos are not class
indices (before: a label of 10^12 made a classifier of 10^12 outputs); a subset of a larger
dataset keeps its labels."""
from __future__ import annotations

import pytest

from flowprep.format.folder import IndexEntry
from twostream.core.errors import DataError
from twostream.data.extraction import class_names


def test_labels_far_beyond_the_classes_seen_are_not_class_indices():
    entry = IndexEntry("a", "shard-00000.h5", 0, "walk", 10, {"split1": "train"})
    few = {"a": entry, "b": IndexEntry("b", "shard-00000.h5", 99_000, "run", 10, {"split1": "train"})}
    with pytest.raises(DataError, match="labels run up to 99,000 but only 2 classes have videos"):
        class_names(few)
    subset = {"a": entry, "b": IndexEntry("b", "shard-00000.h5", 510, "run", 10, {"split1": "train"})}
    assert len(class_names(subset)) == 511  # a subset of a larger dataset keeps its labels
