"""Small files written whole and read with one-line errors: how both packages keep their JSON and
text files (the extraction folder's, a training run's, a report's) whole across a kill."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flowprep.format.faults import fault_point


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a kill leaves the old file or the new."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: leave no half-written file behind
        raise
    fault_point(f"write:{path.name}")
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def read_json_file(path: Path, error: type[Exception], missing: str, what: str) -> Any:
    """The JSON document in `path`, or `error` with a one-line message naming the file: `missing`
    when there is no such file, "unreadable <what>: ..." when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {what}: {exc}") from None
    except RecursionError:  # json's parser recurses once per level: a hostile file nests 100,000 deep
        raise error(f"{path}: unreadable {what}: nested too deeply") from None
