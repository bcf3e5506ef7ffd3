"""TREE/flowprep_export.json: what `flowprep export-rawframes` made a tree from and how, so that
`flowprep import-rawframes` reads the tree back with no options (the one owner of that file).

    {"source": ..., "source_config": {"format_version": 1, "extract" | "import": {...}},
     "export": {ExportConfig}, "bound": 20.0, "flow_mean_subtracted": true,
     "layout": "flat" | "class", "annotation_lists": ["x_train_split_1_rawframes.txt", ...],
     "label_names": {"0": "ApplyEyeMakeup", ...}}

An export writes the record twice: first, before any video, with the lists of an earlier run (none
for a new tree), so that a stopped export leaves its options behind and the same command resumes
only with the same (`resume_problem`); then, last, naming the lists of this run.

source_config is the source folder's config.json as it stands (built and parsed by its owner,
flowprep.format.folder_config.FolderConfig). Trees written before "bound", "layout", "annotation_lists"
and "label_names" existed are still read: the bound from source_config, the lists by their
mmaction2 names in the tree's root.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.format.folder_config import FolderConfig, settings_differences
from flowprep.rawframes.layout import RawframesError
from runkit.files import parse_json, read_regular_text, write_text_atomic

EXPORT_RECORD = "flowprep_export.json"
LIST_GLOB = "*_rawframes.txt"  # mmaction2's annotation list names, as export writes them
# what decides the files of a tree, with the value a record written before the option existed
# stands for: the export options of `export` (ExportConfig's), then the record's own fields
CONTENT_OPTIONS = {"image_format": "jpg", "jpeg_quality": 95, "backward": True, "restore_mean": False,
                   "layout": "flat"}
CONTENT_FIELDS = ("bound", "flow_mean_subtracted")


@dataclass(frozen=True)
class ExportRecord:
    bound: float | None  # None: the source's config was unreadable
    mean_subtracted: bool | None
    annotation_lists: tuple[str, ...]  # file names in the tree's root
    label_names: dict[int, str] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)  # what decides the files (content_of)


def content_of(record: dict[str, Any]) -> dict[str, Any]:
    """The options and fields of a record (as written) that decide what the tree's files hold."""
    options = record.get("export") if isinstance(record.get("export"), dict) else {}
    return {**{k: options.get(k, default) for k, default in CONTENT_OPTIONS.items()},
            **{k: record.get(k) for k in CONTENT_FIELDS}}


def resume_problem(tree: Path, previous: ExportRecord, record: dict[str, Any]) -> str | None:
    """Why an export with `record` (as it would be written) cannot add to `tree`, whose record is
    `previous`: another image format, restored means or layout would mix two kinds of video in
    one tree, which a record can describe only one of (and an import would read wrongly). None
    when it can."""
    differences = settings_differences(previous.content, content_of(record))
    if not differences:
        return None
    return (f"{tree} was exported with other options ({'; '.join(differences)}); use the same options to "
            f"resume, another --out, or --overwrite to rewrite its videos")


def write_export_record(out_dir: Path, record: dict[str, Any]) -> None:
    write_text_atomic(out_dir / EXPORT_RECORD, json.dumps(record, indent=1, sort_keys=True))


def read_export_record(tree: Path) -> ExportRecord | None:
    """The record of a tree flowprep exported; None for any other tree. A record that is there
    but does not parse is an error naming it: guessing instead could mislabel every video."""
    path = tree / EXPORT_RECORD
    if not path.is_file():
        return None
    try:
        data = parse_json(read_regular_text(path), dict)
        bound = data.get("bound")
        if bound is None and data.get("source_config") is not None:  # a tree exported before "bound" was recorded
            bound = FolderConfig.parse(data["source_config"]).settings.get("bound")
        if bound is not None and not (isinstance(bound, (int, float)) and bound > 0):
            raise ValueError(f"bound {bound!r} is not a positive number")
        mean = data.get("flow_mean_subtracted")
        if mean is not None and not isinstance(mean, bool):
            raise ValueError(f"flow_mean_subtracted {mean!r} is not true, false or null")
        lists = data.get("annotation_lists")
        if lists is None:
            lists = sorted(p.name for p in tree.glob(LIST_GLOB))
        if not isinstance(lists, list) or not all(isinstance(n, str) and _plain_name(n) for n in lists):
            raise ValueError(f"annotation_lists {lists!r} is not a list of file names in the tree's root")
        names = data.get("label_names") or {}
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise ValueError(f"label_names {names!r} is not a mapping of labels to names")
        label_names = {int(k): v for k, v in names.items()}
        content = content_of(data)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RawframesError(f"{path}: not a readable export record: {exc}") from None
    return ExportRecord(None if bound is None else float(bound), mean, tuple(lists), label_names, content)


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")
